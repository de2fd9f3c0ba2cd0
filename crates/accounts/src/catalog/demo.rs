//! The built-in demo catalogue: two tracks of real lessons (Rust basics,
//! prompt engineering), embedded from `crates/accounts/demo/`.

use super::source::{self, CatalogTree, FileMap};
use crate::error::AccountsError;

/// Ids of the demo tracks.
pub const DEMO_TRACKS: &[&str] = &["rust-basics", "prompting"];

/// The demo folder's files: path relative to `demo/` -> text.
const FILES: &[(&str, &str)] = &[
    (
        "prompting/01-foundations/01-clear-instructions.md",
        include_str!("../../demo/prompting/01-foundations/01-clear-instructions.md"),
    ),
    (
        "prompting/01-foundations/02-examples-and-format.md",
        include_str!("../../demo/prompting/01-foundations/02-examples-and-format.md"),
    ),
    (
        "prompting/01-foundations/module.json",
        include_str!("../../demo/prompting/01-foundations/module.json"),
    ),
    (
        "prompting/02-reasoning-and-grounding/01-step-by-step.md",
        include_str!("../../demo/prompting/02-reasoning-and-grounding/01-step-by-step.md"),
    ),
    (
        "prompting/02-reasoning-and-grounding/02-grounding-with-sources.md",
        include_str!(
            "../../demo/prompting/02-reasoning-and-grounding/02-grounding-with-sources.md"
        ),
    ),
    (
        "prompting/02-reasoning-and-grounding/module.json",
        include_str!("../../demo/prompting/02-reasoning-and-grounding/module.json"),
    ),
    (
        "prompting/track.json",
        include_str!("../../demo/prompting/track.json"),
    ),
    (
        "rust-basics/01-ownership/01-ownership.md",
        include_str!("../../demo/rust-basics/01-ownership/01-ownership.md"),
    ),
    (
        "rust-basics/01-ownership/02-borrowing.md",
        include_str!("../../demo/rust-basics/01-ownership/02-borrowing.md"),
    ),
    (
        "rust-basics/01-ownership/03-lifetimes.md",
        include_str!("../../demo/rust-basics/01-ownership/03-lifetimes.md"),
    ),
    (
        "rust-basics/01-ownership/module.json",
        include_str!("../../demo/rust-basics/01-ownership/module.json"),
    ),
    (
        "rust-basics/02-errors-and-traits/01-error-handling.md",
        include_str!("../../demo/rust-basics/02-errors-and-traits/01-error-handling.md"),
    ),
    (
        "rust-basics/02-errors-and-traits/02-traits-and-generics.md",
        include_str!("../../demo/rust-basics/02-errors-and-traits/02-traits-and-generics.md"),
    ),
    (
        "rust-basics/02-errors-and-traits/module.json",
        include_str!("../../demo/rust-basics/02-errors-and-traits/module.json"),
    ),
    (
        "rust-basics/track.json",
        include_str!("../../demo/rust-basics/track.json"),
    ),
];

/// The demo catalogue, parsed.
pub(crate) fn tree() -> Result<CatalogTree, AccountsError> {
    let files: FileMap = FILES
        .iter()
        .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
        .collect();
    source::parse_files(&files, "demo")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo");
        let on_disk = source::read_dir(&dir).unwrap();
        let embedded: Vec<&str> = FILES.iter().map(|(p, _)| *p).collect();
        let found: Vec<&str> = on_disk.keys().map(String::as_str).collect();
        assert_eq!(embedded, found);
    }

    #[test]
    fn demo_is_big_enough() {
        let tree = tree().unwrap();
        assert!(tree.warnings.is_empty(), "{:?}", tree.warnings);
        let mut ids: Vec<&str> = tree.tracks.iter().map(|t| t.id.as_str()).collect();
        let mut expected = DEMO_TRACKS.to_vec();
        ids.sort_unstable();
        expected.sort_unstable();
        assert_eq!(ids, expected);
        let modules: usize = tree.tracks.iter().map(|t| t.modules.len()).sum();
        let lessons: Vec<_> = tree
            .tracks
            .iter()
            .flat_map(|t| &t.modules)
            .flat_map(|m| &m.lessons)
            .collect();
        assert!(modules >= 3);
        assert!(lessons.len() >= 8);
        for l in lessons {
            assert!(l.content.len() > 1500, "{} is short", l.id);
            assert!(!l.content.starts_with("# "), "{} kept its title", l.id);
        }
    }
}
