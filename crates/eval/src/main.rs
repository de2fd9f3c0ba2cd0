//! `make eval`: answer quality of the chat models, measured.
//!
//! A grounded QA set (`qa.json` beside this crate: question, the fact that
//! must appear, phrases that would contradict the lesson, the lesson) over
//! the demo catalogue's lessons, run through the real RAG path: the demo
//! catalogue in a scratch SQLite database, its courses indexed by
//! chat-service's own indexer with the configured embedder (the local
//! MiniLM when `make models` fetched it), and each question answered by
//! the `simple` backend (retrieval, the sources in the prompt, the model).
//!
//! An answer is **correct** when it
//! 1. contains the key fact (any of the item's `fact` phrases, whole words,
//!    case-insensitive),
//! 2. cites a source (`[n]` with n one of the retrieved sources), and
//! 3. does not contradict the lesson (none of the item's `wrong` phrases,
//!    and it does not claim that the sources lack the answer when the
//!    lesson was retrieved).
//!
//! ```text
//! eval [--model NAME]... [--floor SCORE] [--limit N] [--max-tokens N]
//! ```
//! `NAME` is `builtin`, `smollm2`, `gemma` or a `.gguf` path (default: the
//! configured default, `CONFAB_LLM_PROVIDER` / `CONFAB_LOCAL_CHAT_MODEL`
//! as `make run` reads them). With `--floor`, the exit status is 1 when the
//! first model's score is below it. Greedy decoding, so runs repeat.
//! Prints one line per question and a summary per model, with the median
//! time to first token (retrieval included) and decode tokens/s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use confab_agents::backend::{BackendConfig, BackendDeps, BackendRegistry, ChatContext};
use confab_agents::event::ChatEvent;
use confab_agents::tools::ToolRegistry;
use confab_llm::{ChatModel, LlmConfig};
use confab_rag::{Rag, RagConfig};
use confab_store::{Db, DbConfig};
use futures_util::StreamExt;
use serde::Deserialize;

/// Why the evaluation could not run.
#[derive(Debug, thiserror::Error)]
enum EvalError {
    #[error("usage: {0}")]
    Usage(String),
    #[error("qa set: {0}")]
    Data(String),
    #[error("model: {0}")]
    Llm(#[from] confab_llm::LlmError),
    #[error("database: {0}")]
    Store(#[from] confab_store::StoreError),
    #[error("catalogue: {0}")]
    Catalog(#[from] confab_accounts::AccountsError),
    #[error("indexing: {0}")]
    Index(#[from] chat_service::catalog::IndexError),
    #[error("rag: {0}")]
    Rag(#[from] confab_rag::RagError),
    #[error("backend: {0}")]
    Agent(#[from] confab_agents::AgentError),
}

/// One question of the set.
#[derive(Debug, Deserialize)]
struct Item {
    /// The lesson file's stem (`02-borrowing`).
    lesson: String,
    question: String,
    /// Any of these must appear.
    fact: Vec<String>,
    /// None of these may appear.
    #[serde(default)]
    wrong: Vec<String>,
}

/// How one answer scored.
#[derive(Debug, Default, Clone)]
struct Score {
    fact: bool,
    cites: bool,
    contradicts: bool,
    retrieved: bool,
    ttft_ms: f64,
    tokens: u32,
    decode_rate: f64,
}

impl Score {
    fn correct(&self) -> bool {
        self.fact && self.cites && !self.contradicts
    }
}

struct Args {
    models: Vec<String>,
    floor: Option<f64>,
    limit: usize,
    /// Run only question N (1-based), as numbered in the output.
    only: Option<usize>,
    max_tokens: u32,
    /// Print each whole answer and the passages it was given.
    verbose: bool,
}

fn parse_args() -> Result<Args, EvalError> {
    let mut args = Args {
        models: Vec::new(),
        floor: None,
        limit: usize::MAX,
        max_tokens: 160,
        only: None,
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    let usage = || {
        EvalError::Usage(
            "eval [--model builtin|smollm2|gemma|PATH.gguf]... [--floor 0..1] [--limit N] [--only N] [--max-tokens N] [--verbose]".into(),
        )
    };
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(usage);
        match a.as_str() {
            "--model" => args.models.push(value()?),
            "--floor" => args.floor = Some(value()?.parse().map_err(|_| usage())?),
            "--limit" => args.limit = value()?.parse().map_err(|_| usage())?,
            "--max-tokens" => args.max_tokens = value()?.parse().map_err(|_| usage())?,
            "--only" => args.only = Some(value()?.parse().map_err(|_| usage())?),
            "--verbose" => args.verbose = true,
            _ => return Err(usage()),
        }
    }
    Ok(args)
}

/// Lower-case with runs of whitespace as one space.
fn normalise(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Whether `phrase` occurs in `text` as whole words.
fn has_phrase(text: &str, phrase: &str) -> bool {
    let (text, phrase) = (normalise(text), normalise(phrase));
    if phrase.is_empty() {
        return false;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut from = 0;
    while let Some(i) = text[from..].find(&phrase) {
        let at = from + i;
        let end = at + phrase.len();
        let first = phrase.chars().next();
        let last = phrase.chars().last();
        let before_ok = !word(first) || !word(text[..at].chars().last());
        let after_ok = !word(last) || !word(text[end..].chars().next());
        if before_ok && after_ok {
            return true;
        }
        from = at + phrase.chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// Whether the answer cites one of `n` sources as `[k]`.
fn cites(answer: &str, n: usize) -> bool {
    (1..=n).any(|k| answer.contains(&format!("[{k}]")))
}

/// Phrases with which a model says the sources lack the answer.
const NOT_FOUND: &[&str] = &[
    "could not find",
    "couldn't find",
    "do not contain",
    "don't contain",
    "does not contain",
    "not mentioned in the sources",
    "no information",
];

fn score_answer(item: &Item, answer: &str, sources: &[String]) -> Score {
    let slug = item
        .lesson
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start_matches('-');
    let retrieved = sources.iter().any(|s| s.ends_with(slug));
    let wrong = item.wrong.iter().any(|w| has_phrase(answer, w));
    let denies = retrieved && NOT_FOUND.iter().any(|p| has_phrase(answer, p));
    Score {
        fact: item.fact.iter().any(|f| has_phrase(answer, f)),
        cites: cites(answer, sources.len()),
        contradicts: wrong || denies,
        retrieved,
        ..Score::default()
    }
}

/// The model `name` as `make run` would load it.
fn chat_model(name: Option<&str>) -> Result<(String, Arc<dyn ChatModel>), EvalError> {
    let models_dir = PathBuf::from(std::env::var("CONFAB_MODELS_DIR").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models")
            .to_string_lossy()
            .into_owned()
    }));
    let mut overrides: HashMap<&str, String> = HashMap::new();
    overrides.insert(
        "CONFAB_MODELS_DIR",
        models_dir.to_string_lossy().into_owned(),
    );
    match name {
        None => {}
        Some("builtin") => {
            overrides.insert("CONFAB_LLM_PROVIDER", "builtin".into());
        }
        Some(other) => {
            let path = match other {
                "smollm2" => models_dir.join(confab_llm::LOCAL_CHAT_FILE),
                "gemma" => models_dir.join("gemma-3-270m-q4_k_m.gguf"),
                path => PathBuf::from(path),
            };
            overrides.insert("CONFAB_LLM_PROVIDER", "local".into());
            overrides.insert(
                "CONFAB_LOCAL_CHAT_MODEL",
                path.to_string_lossy().into_owned(),
            );
        }
    }
    let config =
        LlmConfig::from_vars(|k| overrides.get(k).cloned().or_else(|| std::env::var(k).ok()))?;
    let model = config.chat_model()?;
    let label = format!("{}:{}", model.provider(), model.default_model());
    Ok((label, model))
}

/// Median of `xs` (0 when empty).
fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

async fn run() -> Result<bool, EvalError> {
    let args = parse_args()?;
    let qa: Vec<Item> = serde_json::from_str(include_str!("../qa.json"))
        .map_err(|e| EvalError::Data(e.to_string()))?;
    let qa: Vec<Item> = match args.only {
        Some(n) => qa.into_iter().skip(n.saturating_sub(1)).take(1).collect(),
        None => qa.into_iter().take(args.limit).collect(),
    };

    // The real RAG path over the demo catalogue, in a scratch database.
    let dir = std::env::temp_dir().join(format!("confab-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| EvalError::Data(e.to_string()))?;
    let db = Db::connect(DbConfig::new(format!(
        "sqlite://{}",
        dir.join("eval.db").display()
    )))
    .await?;
    let base = LlmConfig::from_vars(|k| std::env::var(k).ok())?;
    let embed_config = base.clone();
    let embedder = tokio::task::spawn_blocking(move || embed_config.embedding_model())
        .await
        .map_err(|e| EvalError::Data(e.to_string()))??;
    let rag_config = RagConfig {
        embedding_model: base.embedding.model.clone(),
        ..RagConfig::default()
    };
    let rag = Arc::new(Rag::open(db.clone(), Arc::new(embedder), rag_config).await?);
    let catalog = confab_accounts::CatalogService::new(db.clone());
    catalog.load_demo().await?;
    let reports = chat_service::catalog::index_all(&catalog, &rag).await?;
    println!(
        "indexed {} lessons with the {} embedder ({})",
        reports.iter().map(|r| r.lessons).sum::<usize>(),
        base.embedding.kind.as_str(),
        base.embedding.model
    );

    let names: Vec<Option<String>> = if args.models.is_empty() {
        vec![None]
    } else {
        args.models.iter().cloned().map(Some).collect()
    };
    let mut first_score = None;
    let mut summary = Vec::new();
    for name in names {
        let (label, model) = {
            let name = name.clone();
            tokio::task::spawn_blocking(move || chat_model(name.as_deref()))
                .await
                .map_err(|e| EvalError::Data(e.to_string()))??
        };
        let deps = BackendDeps {
            model,
            rag: Some(rag.clone()),
            tools: Arc::new(ToolRegistry::new()),
            config: BackendConfig {
                temperature: Some(0.0),
                max_tokens: Some(args.max_tokens),
                ..BackendConfig::default()
            },
        };
        let backend = BackendRegistry::with_builtin(&deps, "simple")?.get(Some("simple"))?;
        let mut scores = Vec::new();
        for (i, item) in qa.iter().enumerate() {
            let started = Instant::now();
            let mut first = None;
            let mut last = started;
            let (mut answer, mut passages, mut tokens, mut error) =
                (String::new(), Vec::new(), 0u32, None);
            let mut events =
                backend.stream(item.question.clone(), Vec::new(), ChatContext::new("eval"));
            while let Some(event) = events.next().await {
                match event {
                    ChatEvent::Token(t) => {
                        let now = Instant::now();
                        first.get_or_insert(now);
                        last = now;
                        answer.push_str(&t);
                    }
                    ChatEvent::Sources(s) => passages = s,
                    ChatEvent::Finished { usage, .. } => tokens = usage.completion_tokens,
                    ChatEvent::Error(e) => error = Some(e.to_string()),
                    _ => {}
                }
            }
            let sources: Vec<String> = passages.iter().map(|p| p.file_path.clone()).collect();
            let mut score = score_answer(item, &answer, &sources);
            let first = first.unwrap_or(last);
            score.ttft_ms = (first - started).as_secs_f64() * 1000.0;
            score.tokens = tokens;
            score.decode_rate =
                f64::from(tokens.saturating_sub(1)) / (last - first).as_secs_f64().max(1e-9);
            println!(
                "{label} #{:02} {} fact={} cite={} contra={} retrieved={} ttft={:.0}ms | {} | {}",
                args.only.unwrap_or(i + 1),
                if score.correct() { "OK  " } else { "MISS" },
                score.fact as u8,
                score.cites as u8,
                score.contradicts as u8,
                score.retrieved as u8,
                score.ttft_ms,
                item.question,
                error.unwrap_or_else(|| answer.replace('\n', " ").chars().take(160).collect()),
            );
            if args.verbose {
                println!("  answer: {answer}");
                for (k, p) in passages.iter().enumerate() {
                    println!(
                        "  [{}] {} (score {:.3}): {}",
                        k + 1,
                        p.file_path,
                        p.score,
                        p.content.replace('\n', " ")
                    );
                }
            }
            scores.push(score);
        }
        let n = scores.len().max(1) as f64;
        let rate = |f: fn(&Score) -> bool| scores.iter().filter(|s| f(s)).count() as f64 / n;
        let correct = rate(Score::correct);
        let line = format!(
            "{label}: score {correct:.3} ({} of {}) | fact {:.2} cite {:.2} contradiction {:.2} retrieved {:.2} | median ttft {:.0} ms, decode {:.1} tok/s",
            scores.iter().filter(|s| s.correct()).count(),
            scores.len(),
            rate(|s| s.fact),
            rate(|s| s.cites),
            rate(|s| s.contradicts),
            rate(|s| s.retrieved),
            median(scores.iter().map(|s| s.ttft_ms).collect()),
            median(
                scores
                    .iter()
                    .filter(|s| s.tokens > 4)
                    .map(|s| s.decode_rate)
                    .collect()
            ),
        );
        println!("{line}");
        summary.push(line);
        first_score.get_or_insert(correct);
    }
    println!("== summary");
    for line in &summary {
        println!("{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    match (args.floor, first_score) {
        (Some(floor), Some(score)) if score < floor => {
            println!("FAIL: score {score:.3} is below the floor {floor:.3}");
            Ok(false)
        }
        (Some(floor), Some(score)) => {
            println!("ok: score {score:.3} >= floor {floor:.3}");
            Ok(true)
        }
        _ => Ok(true),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("eval: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn phrases_match_whole_words_only() {
        assert!(has_phrase("Use `&mut s` here", "&mut"));
        assert!(has_phrase("It is a Double\n free", "double free"));
        assert!(!has_phrase("nothing", "no"));
        assert!(has_phrase("No, never.", "no"));
        assert!(!has_phrase("Copyright", "Copy"));
    }

    #[test]
    fn scoring_needs_fact_citation_and_no_contradiction() {
        let item = Item {
            lesson: "02-borrowing".into(),
            question: "q".into(),
            fact: vec!["&mut".into()],
            wrong: vec!["mutable trait".into()],
        };
        let sources = vec!["lessons/rust-basics-borrowing".to_owned()];
        assert!(score_answer(&item, "Take `&mut x` [1].", &sources).correct());
        assert!(!score_answer(&item, "Take `&mut x`.", &sources).correct());
        assert!(!score_answer(&item, "Take `&mut x` [2].", &sources).correct());
        assert!(!score_answer(&item, "Use the mutable trait, &mut [1]", &sources).correct());
        assert!(
            !score_answer(&item, "The sources do not contain it; &mut [1]", &sources).correct()
        );
        assert!(score_answer(&item, "x", &sources).retrieved);
    }

    #[test]
    fn the_qa_set_is_well_formed() {
        let qa: Vec<Item> = serde_json::from_str(include_str!("../qa.json")).unwrap();
        assert!(qa.len() >= 40, "{}", qa.len());
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../accounts/demo");
        for item in &qa {
            assert!(!item.fact.is_empty(), "{item:?}");
            let found = ["rust-basics", "prompting"].iter().any(|track| {
                std::fs::read_dir(demo.join(track)).unwrap().any(|m| {
                    m.unwrap()
                        .path()
                        .join(format!("{}.md", item.lesson))
                        .is_file()
                })
            });
            assert!(found, "no lesson file {}", item.lesson);
        }
    }
}
