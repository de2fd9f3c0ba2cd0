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

/// (recall@1, recall@5) of `mode` in one knowledge base (file names are the
/// corpus file names).
async fn kb_recall(
    rag: &Rag,
    kb: uuid::Uuid,
    questions: &[Question],
    mode: SearchMode,
) -> (f64, f64) {
    let options = confab_rag::SearchOptions {
        collection: Some(format!("kb:{kb}")),
        top_k: 5,
        mode,
    };
    let (mut at1, mut at5) = (0, 0);
    for q in questions {
        let hits = rag.search(&q.question, &options).await.unwrap();
        let pos = hits.iter().position(|h| h.file_path == q.expected);
        at1 += usize::from(pos == Some(0));
        at5 += usize::from(pos.is_some());
    }
    let n = questions.len() as f64;
    (at1 as f64 / n, at5 as f64 / n)
}

/// Every corpus file as an upload.
fn corpus_uploads() -> Vec<confab_rag::knowledge::UploadFile> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| confab_rag::knowledge::UploadFile {
            filename: p.file_name().unwrap().to_string_lossy().into_owned(),
            bytes: std::fs::read(&p).unwrap(),
        })
        .collect();
    files.sort_by(|a, b| a.filename.cmp(&b.filename));
    assert!(files.len() >= 30);
    files
}

/// A knowledge base ingested with `builtin`, then chat-service restarted
/// with the local model (same 384 dimensions, another vector space): the
/// base is never vector-searched with the new model's query vectors until
/// the re-embed job has run, and then its recall equals a clean local ingest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn knowledge_base_switch_from_builtin_to_local() {
    use confab_rag::KnowledgeService;
    use confab_rag::knowledge::{Actor, KnowledgeConfig};
    let Some(dir) = confab_testkit::local_embed_model_dir() else {
        return;
    };
    let test_db = TestDb::sqlite();
    let db = test_db.db().clone();
    let alice = Actor::new("alice", false);
    let new_base = |k: &KnowledgeService, name: &'static str| {
        let (k, a) = (k.clone(), alice.clone());
        async move {
            k.create_base(
                &a,
                confab_models::knowledge::NewKnowledgeBase {
                    name: name.into(),
                    shared: false,
                },
            )
            .await
            .unwrap()
            .id
        }
    };
    let english = support::english_questions();

    // Ingested with the built-in embedder.
    let builtin_rag = Rag::open(
        db.clone(),
        Arc::new(BuiltinProvider::new()),
        RagConfig::default(),
    )
    .await
    .unwrap();
    let builtin = KnowledgeService::new(builtin_rag, KnowledgeConfig::default());
    let kb = new_base(&builtin, "switched").await;
    for batch in corpus_uploads().chunks(10) {
        builtin.upload(&alice, kb, batch.to_vec()).await.unwrap();
    }
    builtin.drain().await.unwrap();

    // "Restart" with the local model.
    let local = LocalEmbedder::load(LocalEmbedConfig::new(dir)).unwrap();
    let model_id = local.model_id().to_owned();
    assert_eq!(local.dimensions(), BuiltinProvider::new().dimensions());
    let local_rag = Rag::open(
        db.clone(),
        Arc::new(local),
        RagConfig {
            embedding_model: model_id.clone(),
            ..RagConfig::default()
        },
    )
    .await
    .unwrap();
    let k = KnowledgeService::new(local_rag.clone(), KnowledgeConfig::default());
    let mismatched = k.check_embedder().await.unwrap();
    assert_eq!(mismatched.len(), 1, "{mismatched:?}");
    assert_eq!(mismatched[0].stored, ("builtin".to_owned(), 384));
    assert_eq!(mismatched[0].configured, (model_id.clone(), 384));
    // Meanwhile: no vector search of the builtin vectors with local queries...
    assert_eq!(
        kb_recall(&local_rag, kb, &english, SearchMode::Vector).await,
        (0.0, 0.0),
        "a mixed-space vector search happened"
    );
    // ...but keyword search still answers.
    let (_, keyword5) = kb_recall(&local_rag, kb, &english, SearchMode::Hybrid).await;
    assert!(keyword5 > 0.5, "keyword recall@5 {keyword5}");

    // The re-embed job, then the same recall as a clean local ingest.
    assert!(k.drain().await.unwrap() >= 1);
    assert!(k.check_embedder().await.unwrap().is_empty());
    let clean = new_base(&k, "clean").await;
    for batch in corpus_uploads().chunks(10) {
        k.upload(&alice, clean, batch.to_vec()).await.unwrap();
    }
    k.drain().await.unwrap();
    let switched = kb_recall(&local_rag, kb, &english, SearchMode::Vector).await;
    let fresh = kb_recall(&local_rag, clean, &english, SearchMode::Vector).await;
    eprintln!(
        "vector recall (@1, @5) after re-embedding {switched:.3?}, clean local ingest {fresh:.3?}"
    );
    assert_eq!(switched, fresh);
    assert!(fresh.1 >= 0.9, "local vector recall@5 {:.3}", fresh.1);
}
