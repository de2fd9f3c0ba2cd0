//! Rebuilds the crate when a migration is added or changed: the migrations
//! are embedded by `diesel_migrations::embed_migrations!`, which Cargo does
//! not otherwise know to watch.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
