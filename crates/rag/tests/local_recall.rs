//! Retrieval quality with the local sentence embedder (all-MiniLM-L6-v2,
//! confab-llm feature `local`) beside the built-in hashed embedder, on the
//! retrieval fixtures of `rag.rs` (tests/fixtures: corpus + questions.json),
//! on SQLite.
//!
//! Prints recall@1 and recall@5 of vector-only and hybrid search for both
//! embedders, and asserts that the local model's vector recall@5 on the
//! English questions is at least the built-in one's and at least 0.9.
//!
//! The model folder is `CONFAB_LOCAL_EMBED_MODEL`, else `models/all-MiniLM-L6-v2`
//! at the repository root (`make models`). Missing: SKIP, or a failure when
//! `CONFAB_REQUIRE_LOCAL_MODELS=1` (CI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use confab_llm::local::{LocalEmbedConfig, LocalEmbedder};
use confab_llm::{BuiltinProvider, EmbeddingModel};
use confab_rag::{Rag, RagConfig, SearchMode, SearchOptions};
use confab_testkit::TestDb;

#[derive(serde::Deserialize)]
struct Question {
    question: String,
    expected: String,
    #[serde(default)]
    lang: Option<String>,
}

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CONFAB_LOCAL_EMBED_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2")
        });
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    if std::env::var("CONFAB_REQUIRE_LOCAL_MODELS").as_deref() == Ok("1") {
        panic!(
            "CONFAB_REQUIRE_LOCAL_MODELS=1 but {} has no model.safetensors (run `make models`)",
            dir.display()
        );
    }
    eprintln!(
        "SKIP: local embedding model not found at {} (run `make models` or set CONFAB_LOCAL_EMBED_MODEL)",
        dir.display()
    );
    None
}

/// Recall@1 and recall@5 per search mode over `questions`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Recall {
    vector: (f64, f64),
    hybrid: (f64, f64),
}

async fn measure(embedder: Arc<dyn EmbeddingModel>, name: &str, questions: &[&Question]) -> Recall {
    let test_db = TestDb::sqlite();
    let config = RagConfig {
        embedding_model: name.to_owned(),
        ..RagConfig::default()
    };
    let rag = Rag::open(test_db.db().clone(), embedder, config)
        .await
        .unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let summary = rag
        .ingest_path(&fixtures.join("corpus"), "eval", &|_| {})
        .await
        .unwrap();
    assert!(summary.added >= 30, "{summary:?}");
    let mut recall = Recall {
        vector: (0.0, 0.0),
        hybrid: (0.0, 0.0),
    };
    for mode in [SearchMode::Vector, SearchMode::Hybrid] {
        let (mut at1, mut at5) = (0, 0);
        for q in questions {
            let options = SearchOptions {
                collection: Some("eval".into()),
                top_k: 5,
                mode,
            };
            let hits = rag.search(&q.question, &options).await.unwrap();
            let pos = hits
                .iter()
                .position(|h| h.file_path.ends_with(&format!("/{}", q.expected)));
            at1 += usize::from(pos == Some(0));
            at5 += usize::from(pos.is_some());
        }
        let n = questions.len() as f64;
        let figures = (at1 as f64 / n, at5 as f64 / n);
        match mode {
            SearchMode::Vector => recall.vector = figures,
            _ => recall.hybrid = figures,
        }
    }
    recall
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_embeddings_recall_at_least_builtin() {
    let Some(dir) = model_dir() else { return };
    let local = LocalEmbedder::load(LocalEmbedConfig::new(dir)).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let questions: Vec<Question> =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("questions.json")).unwrap())
            .unwrap();
    let english: Vec<&Question> = questions
        .iter()
        .filter(|q| q.lang.as_deref().unwrap_or("en") == "en")
        .collect();
    assert!(english.len() >= 30);

    let builtin = measure(Arc::new(BuiltinProvider::new()), "builtin", &english).await;
    let model_id = local.model_id().to_owned();
    let minilm = measure(Arc::new(local), &model_id, &english).await;
    eprintln!(
        "recall on {} English questions (recall@1, recall@5):\n  builtin:          vector {:.3?} hybrid {:.3?}\n  {model_id}: vector {:.3?} hybrid {:.3?}",
        english.len(),
        builtin.vector,
        builtin.hybrid,
        minilm.vector,
        minilm.hybrid
    );
    assert!(
        minilm.vector.1 >= builtin.vector.1,
        "local vector recall@5 {:.3} below builtin's {:.3}",
        minilm.vector.1,
        builtin.vector.1
    );
    assert!(
        minilm.vector.1 >= 0.9,
        "local vector recall@5 {:.3} < 0.9",
        minilm.vector.1
    );
    assert!(
        minilm.hybrid.1 >= 0.9,
        "local hybrid recall@5 {:.3} < 0.9",
        minilm.hybrid.1
    );
}
