//! Local embedding benchmark (feature `local`): model load time and
//! embedding throughput of [`LocalEmbedder`] (all-MiniLM-L6-v2 on the CPU)
//! beside the built-in hashed embedder, measured in the same run.
//!
//! Run with `make bench-embed` (fetches the model first), or
//! `cargo bench -p confab-llm --features local --bench local_embed`.
//!
//! - **load**: `LocalEmbedder::load` (read 90 MB of safetensors, build the
//!   BERT graph, start the worker), median of several loads.
//! - **throughput**: sentences per second embedding a fixed set of real
//!   sentences (taken from the RAG fixtures corpus, `crates/rag/tests/fixtures/corpus`,
//!   median 19 words) in requests of 32 texts (`batch_size` 32: split by length), one request in
//!   flight; also with requests of 1 text (no batching), and the built-in
//!   embedder on the same requests. The phases alternate over rounds and the
//!   table shows medians; the ratio built-in/local says how much slower the
//!   real model is than the hashed baseline on this machine, right now.
//! - **batch caps**: the same requests of 32 with `batch_size` 1, 4, 8 and
//!   16 (32 is the row above), to see which forward-pass size pays here.
//! - every vector is checked (384 dims, unit norm); anything else exits
//!   non-zero.
//!
//! Environment: `CONFAB_LOCAL_EMBED_MODEL` (model folder, default
//! `models/all-MiniLM-L6-v2` at the repository root), `CONFAB_LOCAL_THREADS`
//! (inference threads, default 0 = all cores), `CONFAB_BENCH_QUICK=1`
//! (fewer sentences and rounds), `CONFAB_BENCH_ROUNDS=n`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use confab_llm::local::{LocalEmbedConfig, LocalEmbedder};
use confab_llm::{BuiltinProvider, EmbeddingModel};

/// Texts per request in the batched phases.
const BATCH: usize = 32;

/// `batch_size` caps compared on requests of [`BATCH`] texts.
const CAPS: [usize; 4] = [1, 4, 8, 16];

fn fail(msg: &str) -> ! {
    eprintln!("local_embed bench FAILED: {msg}");
    std::process::exit(1);
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| fail(&format!("{name}={v} is not a number")))
    })
}

/// Sentences of the RAG fixtures corpus (8 to 60 words each).
fn sentences(limit: usize) -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rag/tests/fixtures/corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for s in text.split(['.', '?', '!', '\n']) {
            let words = s.split_whitespace().count();
            if (8..=60).contains(&words) {
                out.push(s.trim().to_owned());
            }
        }
    }
    if out.len() < BATCH {
        fail("fewer sentences than one batch in the fixtures corpus");
    }
    // Repeat to the requested count (the same text twice costs the same).
    let base = out.len();
    while out.len() < limit {
        out.push(out[out.len() % base].clone());
    }
    out.truncate(limit);
    out
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Embeds `texts` in requests of `per_request`, one at a time; returns
/// sentences per second.
async fn throughput(model: &dyn EmbeddingModel, texts: &[String], per_request: usize) -> f64 {
    let started = Instant::now();
    for chunk in texts.chunks(per_request) {
        let vectors = model
            .embed(chunk)
            .await
            .unwrap_or_else(|e| fail(&format!("embed: {e}")));
        if vectors.len() != chunk.len() {
            fail("wrong number of vectors");
        }
        for v in &vectors {
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if v.len() != model.dimensions() || (norm - 1.0).abs() > 1e-3 {
                fail(&format!("bad vector: {} dims, norm {norm}", v.len()));
            }
        }
    }
    texts.len() as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let quick = std::env::var("CONFAB_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let rounds = env_usize("CONFAB_BENCH_ROUNDS").unwrap_or(if quick { 3 } else { 7 });
    let count = if quick { 128 } else { 512 };
    let single_count = if quick { 32 } else { 128 };
    let threads = env_usize("CONFAB_LOCAL_THREADS").unwrap_or(0);
    let dir = std::env::var_os("CONFAB_LOCAL_EMBED_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2")
        });
    let config_capped = |batch_size: usize| {
        let mut c = LocalEmbedConfig::new(&dir);
        c.threads = threads;
        c.batch_size = batch_size;
        c
    };
    let config = || config_capped(BATCH);

    let mut loads = Vec::new();
    let mut model = None;
    for _ in 0..rounds.max(3) {
        let started = Instant::now();
        let m = LocalEmbedder::load(config())
            .unwrap_or_else(|e| fail(&format!("{e} (run `make models`)")));
        loads.push(started.elapsed().as_secs_f64());
        model = Some(m);
    }
    let local = model.unwrap();
    let capped: Vec<LocalEmbedder> = CAPS
        .iter()
        .map(|&cap| {
            LocalEmbedder::load(config_capped(cap)).unwrap_or_else(|e| fail(&e.to_string()))
        })
        .collect();
    let builtin = BuiltinProvider::new();
    let texts = sentences(count);
    let words: Vec<f64> = texts
        .iter()
        .map(|t| t.split_whitespace().count() as f64)
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "local embedding bench: {} ({} dims), {} inference threads of {cores} cores, {} sentences (median {} words), requests of {BATCH}, {rounds} rounds",
        local.model_id(),
        local.dimensions(),
        if threads == 0 { cores } else { threads },
        texts.len(),
        median(words)
    );
    rt.block_on(async {
        // Warm-up.
        throughput(&local, &texts[..BATCH], BATCH).await;
        throughput(&builtin, &texts, BATCH).await;
        for m in &capped {
            throughput(m, &texts[..BATCH], BATCH).await;
        }
        let (mut l32, mut l1, mut b32) = (Vec::new(), Vec::new(), Vec::new());
        let mut caps: Vec<Vec<f64>> = vec![Vec::new(); CAPS.len()];
        for round in 0..rounds {
            for (m, out) in capped.iter().zip(&mut caps) {
                out.push(throughput(m, &texts, BATCH).await);
            }
            if round % 2 == 0 {
                b32.push(throughput(&builtin, &texts, BATCH).await);
                l32.push(throughput(&local, &texts, BATCH).await);
                l1.push(throughput(&local, &texts[..single_count], 1).await);
            } else {
                l1.push(throughput(&local, &texts[..single_count], 1).await);
                l32.push(throughput(&local, &texts, BATCH).await);
                b32.push(throughput(&builtin, &texts, BATCH).await);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (l32, l1, b32) = (median(l32), median(l1), median(b32));
        println!("{:<44} {:>12}", "", "median");
        println!(
            "{:<44} {:>9.0} ms",
            "load all-MiniLM-L6-v2",
            median(loads) * 1e3
        );
        println!("{:<44} {:>12.1}", "local sentences/s, requests of 32", l32);
        println!("{:<44} {:>12.1}", "local sentences/s, requests of 1", l1);
        println!(
            "{:<44} {:>12.1}",
            "builtin sentences/s, requests of 32", b32
        );
        println!(
            "{:<44} {:>11.1}x",
            "batching gain (local 32 / local 1)",
            l32 / l1
        );
        println!(
            "{:<44} {:>11.0}x",
            "builtin / local (requests of 32)",
            b32 / l32
        );
        for (cap, xs) in CAPS.iter().zip(caps) {
            println!(
                "{:<44} {:>12.1}",
                format!("local sentences/s, requests of 32, batch_size {cap}"),
                median(xs)
            );
        }
    });
}
