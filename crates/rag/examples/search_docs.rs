//! Ingests a folder of Markdown with `confab-rag` and queries it: heading-
//! aware chunks, built-in offline embeddings, hybrid (vector + keyword)
//! retrieval, all in a SQLite file.
//!
//! ```text
//! cargo run -p confab-rag --example search_docs -- [FOLDER] [QUERY]
//! ```
//!
//! Without a folder it writes three small Markdown files to a temp dir and
//! asks about borrowing.

use std::path::PathBuf;
use std::sync::Arc;

use confab_llm::BuiltinProvider;
use confab_rag::{Rag, RagConfig, SearchOptions};
use confab_store::{Db, DbConfig};

/// The sample folder's files.
const SAMPLES: [(&str, &str); 3] = [
    (
        "ownership.md",
        "# Ownership\n\nEvery value in Rust has a single owner; when the owner goes out of scope the value is dropped.\n\n## Borrowing\n\nA reference borrows a value without taking ownership. The borrow checker allows many shared borrows or one mutable borrow at a time.",
    ),
    (
        "sourdough.md",
        "# Sourdough\n\nA starter is a culture of wild yeast fed with flour and water. Feed it daily and bake when it doubles.",
    ),
    (
        "tea.md",
        "# Tea\n\nGreen tea steeps at 80 °C for two minutes; black tea takes boiling water and four minutes.",
    ),
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = tempfile::tempdir()?;
    let folder = match args.next() {
        Some(folder) => PathBuf::from(folder),
        None => {
            let folder = dir.path().join("notes");
            std::fs::create_dir_all(&folder)?;
            for (name, text) in SAMPLES {
                std::fs::write(folder.join(name), text)?;
            }
            folder
        }
    };
    let query = args
        .next()
        .unwrap_or_else(|| "how does borrowing work?".into());

    // The index lives in the database (a SQLite file here).
    let url = format!("sqlite://{}", dir.path().join("rag.db").display());
    let db = Db::connect(DbConfig::new(url)).await?;
    let rag = Rag::open(db, Arc::new(BuiltinProvider::new()), RagConfig::default()).await?;

    // Ingest the folder into one collection (idempotent: unchanged files are skipped).
    let summary = rag.ingest_path(&folder, "notes", &|_| {}).await?;
    println!(
        "ingested {} files into {} chunks ({} skipped)",
        summary.files,
        summary.chunks,
        summary.skipped.len()
    );

    // Query it: the best passages with their file and a 0..=1 score.
    let options = SearchOptions {
        collection: Some("notes".into()),
        top_k: 3,
        ..SearchOptions::default()
    };
    let hits = rag.search(&query, &options).await?;
    println!("query: {query}");
    for hit in &hits {
        let first_line = hit.content.lines().next().unwrap_or_default();
        println!("{:.3}  {}  {first_line}", hit.score, hit.file_path);
    }
    let best = hits.first().ok_or("no passage found")?;
    println!("top: {}", best.file_path);
    Ok(())
}
