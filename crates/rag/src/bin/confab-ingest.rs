//! `confab-ingest PATH [--collection NAME]`: ingests a file or folder into
//! confab's retrieval index, with a progress bar and a summary.
//!
//! Configuration comes from the environment: `DATABASE_URL`
//! (default `sqlite://data/confab.db`) and the embedding variables of
//! docs/CONFIG.md (`CONFAB_EMBEDDING_PROVIDER`, ...; default: the built-in
//! offline embedder).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use confab_llm::LlmConfig;
use confab_rag::{IngestOutcome, Progress, Rag, RagConfig};
use confab_store::{Db, DbConfig};
use indicatif::{ProgressBar, ProgressStyle};

const USAGE: &str = "usage: confab-ingest PATH [--collection NAME]\n\
    Ingests Markdown, text and HTML files under PATH into the collection (default `docs`).\n\
    Uses DATABASE_URL (default sqlite://data/confab.db) and the CONFAB_EMBEDDING_* variables.";

struct Args {
    path: PathBuf,
    collection: String,
}

fn parse_args() -> Result<Args, String> {
    let mut path = None;
    let mut collection = "docs".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "-c" | "--collection" => {
                collection = args.next().ok_or("--collection needs a value")?;
            }
            s if s.starts_with("--collection=") => {
                collection = s["--collection=".len()..].to_owned()
            }
            s if s.starts_with('-') => return Err(format!("unknown option `{s}`")),
            s if path.is_none() => path = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument `{s}`")),
        }
    }
    Ok(Args {
        path: path.ok_or("PATH is required")?,
        collection,
    })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

async fn run(args: Args) -> Result<(), String> {
    let url = env("DATABASE_URL")
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "sqlite://data/confab.db".into());
    let db = Db::connect(DbConfig::new(url.clone()))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let llm = LlmConfig::from_vars(env).map_err(|e| e.to_string())?;
    // Same variables, same local models, same default as chat-service: a
    // collection is only ever searched with the model that embedded it.
    let embedder = llm.embedding_model().map_err(|e| e.to_string())?;
    eprintln!(
        "confab-ingest: embedding with {} `{}` ({} dimensions)",
        llm.embedding.kind.as_str(),
        llm.embedding.model,
        llm.embedding.dimensions
    );
    let config = RagConfig {
        embedding_model: llm.embedding.model.clone(),
        ..RagConfig::default()
    };
    let rag = Rag::open(db, Arc::new(embedder), config)
        .await
        .map_err(|e| e.to_string())?;

    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} files  {wide_msg}",
        )
        .map_err(|e| e.to_string())?,
    );
    let summary = rag
        .ingest_path(&args.path, &args.collection, &|p| match p {
            Progress::Found(n) => bar.set_length(n as u64),
            Progress::File { path, outcome } => {
                bar.inc(1);
                let what = match outcome {
                    IngestOutcome::Unchanged => "unchanged".to_owned(),
                    IngestOutcome::Added(n) => format!("added, {n} chunks"),
                    IngestOutcome::Replaced(n) => format!("replaced, {n} chunks"),
                    IngestOutcome::Skipped(why) => format!("skipped: {why}"),
                };
                bar.set_message(format!("{path}: {what}"));
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    println!(
        "ingested {} into `{}`: {} files, {} added, {} replaced, {} unchanged, {} removed, {} chunks, {} skipped, {:.1} s",
        args.path.display(),
        args.collection,
        summary.files,
        summary.added,
        summary.replaced,
        summary.unchanged,
        summary.removed,
        summary.chunks,
        summary.skipped.len(),
        summary.seconds
    );
    // Skips grouped by reason ("unsupported file type .rs" x 570), most common first.
    let mut reasons: Vec<(String, usize)> = Vec::new();
    for (_, why) in &summary.skipped {
        match reasons.iter_mut().find(|(r, _)| r == why) {
            Some((_, n)) => *n += 1,
            None => reasons.push((why.clone(), 1)),
        }
    }
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for (why, n) in reasons.iter().take(10) {
        match summary.skipped.iter().find(|(_, w)| w == why) {
            Some((file, _)) if *n == 1 => println!("  skipped {file}: {why}"),
            _ => println!("  skipped {n} files: {why}"),
        }
    }
    if reasons.len() > 10 {
        println!(
            "  ... and {} more kinds of skipped files",
            reasons.len() - 10
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("confab-ingest: {msg}");
            }
            eprintln!("{USAGE}");
            return if msg.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("confab-ingest: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confab-ingest: {e}");
            ExitCode::FAILURE
        }
    }
}
