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

mod support;

use std::sync::Arc;

use confab_llm::local::{LocalEmbedConfig, LocalEmbedder};
use confab_llm::{BuiltinProvider, EmbeddingModel};
use confab_rag::{Rag, RagConfig, SearchMode};
use confab_testkit::TestDb;
use support::Question;

/// Recall@1 and recall@5 per search mode over `questions`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Recall {
    vector: (f64, f64),
    hybrid: (f64, f64),
}

async fn measure(embedder: Arc<dyn EmbeddingModel>, name: &str, questions: &[Question]) -> Recall {
    let test_db = TestDb::sqlite();
    let config = RagConfig {
        embedding_model: name.to_owned(),
        ..RagConfig::default()
    };
    let rag = Rag::open(test_db.db().clone(), embedder, config)
        .await
        .unwrap();
    support::ingest_corpus(&rag).await;
    Recall {
        vector: support::recall(&rag, questions, SearchMode::Vector).await,
        hybrid: support::recall(&rag, questions, SearchMode::Hybrid).await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_embeddings_recall_at_least_builtin() {
    let Some(dir) = confab_testkit::local_embed_model_dir() else {
        return;
    };
    let local = LocalEmbedder::load(LocalEmbedConfig::new(dir)).unwrap();
    let english = support::english_questions();

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
