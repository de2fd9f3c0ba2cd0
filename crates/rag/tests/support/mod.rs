//! The retrieval evaluation shared by `rag.rs` and `local_recall.rs`: the
//! fixture corpus (tests/fixtures/corpus), its English questions
//! (tests/fixtures/questions.json) and the recall@1 / recall@5 loop.

use std::path::PathBuf;

use confab_rag::{Rag, SearchMode, SearchOptions};

/// The collection the fixture corpus is ingested into.
pub const EVAL_COLLECTION: &str = "eval";

/// One evaluation question and the corpus file that answers it.
#[derive(serde::Deserialize)]
pub struct Question {
    /// The question text.
    pub question: String,
    /// The answering file's name under the corpus folder.
    pub expected: String,
    /// Language of the question; absent means English.
    #[serde(default)]
    pub lang: Option<String>,
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Ingests the fixture corpus into [`EVAL_COLLECTION`] (at least 30 files).
pub async fn ingest_corpus(rag: &Rag) {
    let summary = rag
        .ingest_path(&fixtures().join("corpus"), EVAL_COLLECTION, &|_| {})
        .await
        .unwrap();
    assert!(summary.added >= 30, "{summary:?}");
}

/// The English questions of questions.json (at least 30).
pub fn english_questions() -> Vec<Question> {
    let text = std::fs::read_to_string(fixtures().join("questions.json")).unwrap();
    let questions: Vec<Question> = serde_json::from_str(&text).unwrap();
    let english: Vec<Question> = questions
        .into_iter()
        .filter(|q| q.lang.as_deref().unwrap_or("en") == "en")
        .collect();
    assert!(english.len() >= 30, "{} English questions", english.len());
    english
}

/// (recall@1, recall@5) of `mode` over `questions`: the share of questions
/// whose expected file is the first hit, and among the first five hits.
pub async fn recall(rag: &Rag, questions: &[Question], mode: SearchMode) -> (f64, f64) {
    let options = SearchOptions {
        collection: Some(EVAL_COLLECTION.into()),
        top_k: 5,
        mode,
    };
    let (mut at1, mut at5) = (0, 0);
    for q in questions {
        let hits = rag.search(&q.question, &options).await.unwrap();
        let pos = hits
            .iter()
            .position(|h| h.file_path.ends_with(&format!("/{}", q.expected)));
        at1 += usize::from(pos == Some(0));
        at5 += usize::from(pos.is_some());
    }
    let n = questions.len() as f64;
    (at1 as f64 / n, at5 as f64 / n)
}
