//! Ingestion and retrieval on SQLite, PostgreSQL without pgvector (the
//! in-memory fallback) and PostgreSQL with pgvector.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use confab_llm::{BoxFuture, BuiltinProvider, EmbeddingModel, LlmError};
use confab_models::Metadata;
use confab_rag::extract::DocumentKind;
use confab_rag::{IngestOutcome, Rag, RagConfig, RagError, SearchMode, SearchOptions};
use confab_store::Db;

async fn rag(db: &Db) -> Rag {
    Rag::open(
        db.clone(),
        Arc::new(BuiltinProvider::new()),
        RagConfig::default(),
    )
    .await
    .unwrap()
}

fn opts(collection: Option<&str>, top_k: usize) -> SearchOptions {
    SearchOptions {
        collection: collection.map(str::to_owned),
        top_k,
        mode: SearchMode::Hybrid,
    }
}

async fn add(rag: &Rag, collection: &str, source: &str, text: &str) -> IngestOutcome {
    rag.ingest_text(
        collection,
        source,
        source,
        text,
        DocumentKind::Markdown,
        Metadata::new(),
    )
    .await
    .unwrap()
}

const OWNERSHIP: &str = "# Ownership\n\nEvery value in Rust has a single owner. When the owner goes out of scope the value is dropped.\n\n## Borrowing\n\nReferences borrow a value without taking ownership; the borrow checker enforces the rules.";
const SOURDOUGH: &str = "# Sourdough\n\nA sourdough starter is a culture of wild yeast and lactobacilli fed with flour and water.";

async fn ingest_is_idempotent_and_replaces(db: Db) {
    let rag = rag(&db).await;
    let IngestOutcome::Added(n) = add(&rag, "docs", "rust/ownership.md", OWNERSHIP).await else {
        panic!("first ingest adds")
    };
    assert!(n >= 1);
    assert_eq!(
        add(&rag, "docs", "rust/ownership.md", OWNERSHIP).await,
        IngestOutcome::Unchanged
    );
    add(&rag, "docs", "bread.md", SOURDOUGH).await;

    let hits = rag
        .search("who owns a value in Rust", &opts(None, 3))
        .await
        .unwrap();
    assert_eq!(hits[0].file_path, "rust/ownership.md");
    assert!(hits.iter().all(|h| (0.0..=1.0).contains(&h.score)));
    for key in ["chunk_index", "title", "document_id", "collection"] {
        assert!(hits[0].metadata.contains_key(key), "metadata lacks {key}");
    }
    assert_eq!(hits[0].metadata["collection"], "docs");

    let changed = "# Ownership\n\nMoves transfer ownership of a heap allocation to a new binding; the old one becomes unusable.";
    assert!(matches!(
        add(&rag, "docs", "rust/ownership.md", changed).await,
        IngestOutcome::Replaced(_)
    ));
    let hits = rag
        .search("borrow checker enforces", &opts(Some("docs"), 5))
        .await
        .unwrap();
    assert!(
        hits.iter().all(|h| !h.content.contains("borrow checker")),
        "old chunks were replaced: {hits:?}"
    );
    let hits = rag
        .search(
            "heap allocation moves to a new binding",
            &opts(Some("docs"), 1),
        )
        .await
        .unwrap();
    assert!(hits[0].content.contains("heap allocation"));

    assert!(
        rag.delete_document("docs", "rust/ownership.md")
            .await
            .unwrap()
    );
    assert!(
        !rag.delete_document("docs", "rust/ownership.md")
            .await
            .unwrap()
    );
    let hits = rag
        .search("ownership heap allocation binding", &opts(None, 5))
        .await
        .unwrap();
    assert!(hits.iter().all(|h| h.file_path != "rust/ownership.md"));
}

async fn folders_are_ingested_incrementally(db: Db) {
    let rag = rag(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("guide")).unwrap();
    std::fs::write(
        root.join("guide/install.md"),
        "# Install\n\nRun the installer, then add the bin folder to PATH.",
    )
    .unwrap();
    std::fs::write(
        root.join("notes.txt"),
        "Plain text notes about photosynthesis in chloroplasts.",
    )
    .unwrap();
    std::fs::write(
        root.join("page.html"),
        "<html><head><title>Tides</title><style>p{}</style></head><body><h1>Tides</h1><p>The moon&#39;s gravity raises tides.</p><script>x()</script></body></html>",
    )
    .unwrap();
    std::fs::write(
        root.join("logo.png"),
        [0x89u8, b'P', b'N', b'G', 0, 0, 1, 2],
    )
    .unwrap();
    std::fs::write(root.join(".hidden.md"), "# Hidden").unwrap();

    let s = rag.ingest_path(root, "kb", &|_| {}).await.unwrap();
    assert_eq!(
        (s.files, s.added, s.unchanged, s.removed),
        (4, 3, 0, 0),
        "{s:?}"
    );
    assert_eq!(s.skipped.len(), 1);
    assert!(s.skipped[0].0.ends_with("logo.png"));
    assert!(s.chunks >= 3);

    let hits = rag
        .search("moon gravity tides", &opts(Some("kb"), 1))
        .await
        .unwrap();
    assert!(hits[0].file_path.ends_with("page.html"));
    assert!(
        hits[0].content.contains("moon's gravity"),
        "entities decoded, script dropped: {}",
        hits[0].content
    );
    assert!(!hits[0].content.contains("x()"));

    let again = rag.ingest_path(root, "kb", &|_| {}).await.unwrap();
    assert_eq!(
        (again.added, again.replaced, again.unchanged, again.chunks),
        (0, 0, 3, 0)
    );

    std::fs::write(
        root.join("notes.txt"),
        "Plain text notes about mitochondria and ATP.",
    )
    .unwrap();
    std::fs::remove_file(root.join("guide/install.md")).unwrap();
    let third = rag.ingest_path(root, "kb", &|_| {}).await.unwrap();
    assert_eq!(
        (third.replaced, third.unchanged, third.removed),
        (1, 1, 1),
        "{third:?}"
    );
    let hits = rag
        .search("installer PATH bin folder", &opts(Some("kb"), 5))
        .await
        .unwrap();
    assert!(hits.iter().all(|h| !h.file_path.ends_with("install.md")));
    let one = rag
        .ingest_path(&root.join("notes.txt"), "kb", &|_| {})
        .await
        .unwrap();
    assert_eq!(one.unchanged, 1);
    assert!(matches!(
        rag.ingest_path(Path::new("/definitely/not/here"), "kb", &|_| {})
            .await,
        Err(RagError::Io { .. })
    ));
}

/// A 16-dimensional test embedder (hashed words).
struct Small;

impl EmbeddingModel for Small {
    fn dimensions(&self) -> usize {
        16
    }
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        Box::pin(async move {
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = vec![0.0f32; 16];
                    for w in t.split_whitespace() {
                        v[w.len() % 16] += 1.0;
                    }
                    v[0] += 0.01;
                    v
                })
                .collect())
        })
    }
}

async fn dimension_change_is_a_clear_error(db: Db) {
    let builtin = rag(&db).await;
    add(&builtin, "docs", "a.md", OWNERSHIP).await;
    let small = Rag::open(db.clone(), Arc::new(Small), RagConfig::default())
        .await
        .unwrap();
    let err = small
        .ingest_text(
            "docs",
            "b.md",
            "b",
            SOURDOUGH,
            DocumentKind::Markdown,
            Metadata::new(),
        )
        .await
        .unwrap_err();
    match err {
        RagError::DimensionMismatch {
            collection,
            expected,
            got,
        } => {
            assert_eq!((collection.as_str(), expected, got), ("docs", 384, 16));
        }
        other => panic!("expected DimensionMismatch, got {other}"),
    }
    small
        .ingest_text(
            "small",
            "b.md",
            "b",
            SOURDOUGH,
            DocumentKind::Markdown,
            Metadata::new(),
        )
        .await
        .unwrap();
    let hits = small
        .search("sourdough starter yeast", &opts(Some("small"), 3))
        .await
        .unwrap();
    assert_eq!(hits[0].file_path, "b.md");
    assert!(matches!(
        builtin.search("x", &opts(Some(""), 3)).await,
        Err(RagError::InvalidCollection(_))
    ));
}

async fn collection_filter_never_leaks(db: Db) {
    let rag = rag(&db).await;
    for (collection, topic) in [
        ("course:1", "rust"),
        ("course:2", "rust"),
        ("docs", "bread"),
    ] {
        for i in 0..4 {
            let text = format!(
                "# {topic} {i}\n\nNotes on {topic} lesson {i} for {collection}: ownership, borrowing, sourdough, yeast."
            );
            add(&rag, collection, &format!("{collection}/{i}.md"), &text).await;
        }
    }
    for q in [
        "rust ownership",
        "sourdough yeast",
        "lesson notes",
        "borrowing",
    ] {
        for c in ["course:1", "course:2", "docs"] {
            let hits = rag.search(q, &opts(Some(c), 10)).await.unwrap();
            assert!(!hits.is_empty(), "{q} in {c}");
            assert!(
                hits.iter().all(|h| h.metadata["collection"] == c),
                "{q} in {c}: {hits:?}"
            );
        }
    }
    let all = rag.search("lesson notes", &opts(None, 20)).await.unwrap();
    let collections: std::collections::HashSet<_> = all
        .iter()
        .map(|h| h.metadata["collection"].clone())
        .collect();
    assert_eq!(collections.len(), 3, "no filter searches every collection");
}

async fn other_writers_are_seen(db: Db) {
    let reader = rag(&db).await;
    let writer = rag(&db).await;
    assert!(
        reader
            .search("sourdough", &opts(None, 3))
            .await
            .unwrap()
            .is_empty()
    );
    add(&writer, "docs", "bread.md", SOURDOUGH).await;
    let hits = reader
        .search("sourdough starter culture", &opts(None, 3))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1, "the reader's index caught up");
    writer.delete_document("docs", "bread.md").await.unwrap();
    assert!(
        reader
            .search("sourdough starter culture", &opts(None, 3))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn retrieval_quality(db: Db) {
    let rag = rag(&db).await;
    support::ingest_corpus(&rag).await;
    let english = support::english_questions();
    let mut report = HashMap::new();
    for mode in [SearchMode::Vector, SearchMode::Keyword, SearchMode::Hybrid] {
        let figures = support::recall(&rag, &english, mode).await;
        report.insert(format!("{mode:?}"), figures);
    }
    eprintln!(
        "retrieval quality on {} questions ({:?}): {report:?}",
        english.len(),
        db.backend()
    );
    let (_, hybrid5) = report["Hybrid"];
    assert!(
        hybrid5 >= 0.9,
        "hybrid recall@5 {hybrid5:.2} < 0.9: {report:?}"
    );
}

confab_testkit::backend_tests!(
    ingest_is_idempotent_and_replaces,
    folders_are_ingested_incrementally,
    dimension_change_is_a_clear_error,
    collection_filter_never_leaks,
    other_writers_are_seen,
    retrieval_quality,
);

#[tokio::test]
async fn pgvector_serves_vector_search_where_available() {
    if let Some(test_db) = confab_testkit::TestDb::pgvector() {
        assert!(
            rag(test_db.db()).await.uses_pgvector(),
            "TEST_PGVECTOR_URL has pgvector"
        );
    }
    let sqlite = confab_testkit::TestDb::sqlite();
    assert!(!rag(sqlite.db()).await.uses_pgvector());
}
