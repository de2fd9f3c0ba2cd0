//! Local embedding throughput as a roofline: GFLOP/s achieved embedding
//! ~250-token chunks with [`LocalEmbedder`] (all-MiniLM-L6-v2), beside the
//! f32 matrix-multiply peak candle reaches on this machine with the same
//! threads (measured in the same run), and their ratio.
//!
//! FLOPs of a BERT encoder over `n` tokens (L layers, hidden h, FFN f):
//! `L * (2n(4h^2 + 2hf) + 4n^2 h)` (projections, FFN, attention scores and
//! mixing; softmax, layer norms, GELU and pooling are left out, so the
//! figure slightly understates the work done).
//!
//! `cargo bench -p confab-llm --features local --bench embed_roofline`.
//! Variables: `CONFAB_LOCAL_EMBED_MODEL`, `CONFAB_LOCAL_THREADS` (0 = all
//! cores), `BENCH_CHUNKS` (64), `BENCH_BATCH` (32).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use confab_llm::EmbeddingModel;
use confab_llm::local::{LocalEmbedConfig, LocalEmbedder};

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const LESSONS: [&str; 4] = [
    include_str!("../../accounts/demo/rust-basics/01-ownership/02-borrowing.md"),
    include_str!("../../accounts/demo/rust-basics/01-ownership/01-ownership.md"),
    include_str!(
        "../../accounts/demo/prompting/02-reasoning-and-grounding/02-grounding-with-sources.md"
    ),
    include_str!("../../accounts/demo/rust-basics/02-errors-and-traits/02-traits-and-generics.md"),
];

/// GFLOP/s of `m x k` times `k x n` f32 products, best of a few.
fn matmul_gflops(m: usize, k: usize, n: usize) -> f64 {
    let dev = Device::Cpu;
    let a = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
    let b = Tensor::randn(0f32, 1.0, (k, n), &dev).unwrap();
    let _ = a.matmul(&b).unwrap();
    let flops = 2.0 * (m * k * n) as f64;
    let mut best = 0f64;
    for _ in 0..5 {
        let reps = (4e9 / flops).ceil().max(1.0) as usize;
        let started = Instant::now();
        for _ in 0..reps {
            let c = a.matmul(&b).unwrap();
            std::hint::black_box(c);
        }
        best = best.max(flops * reps as f64 / started.elapsed().as_secs_f64() / 1e9);
    }
    best
}

fn main() {
    let threads = var("CONFAB_LOCAL_THREADS", 0);
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        threads
    };
    let dir = std::env::var_os("CONFAB_LOCAL_EMBED_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2")
        });
    let chunks = var("BENCH_CHUNKS", 64);
    let batch = var("BENCH_BATCH", 32);

    // ~250-token chunks: windows of 185 words of lesson text.
    let words: Vec<&str> = LESSONS.iter().flat_map(|l| l.split_whitespace()).collect();
    let texts: Vec<String> = (0..chunks)
        .map(|i| {
            let start = (i * 37) % (words.len() - 185);
            words[start..start + 185].join(" ")
        })
        .collect();
    // The file pads and truncates to 128; the embedder reads up to the
    // model's 512 positions without padding: count tokens the same way.
    let mut tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    tokenizer.with_padding(None);
    tokenizer.with_truncation(None).unwrap();
    let tokens: Vec<usize> = texts
        .iter()
        .map(|t| tokenizer.encode(t.as_str(), true).unwrap().len().min(512))
        .collect();
    let (l, h, f) = (6.0, 384.0, 1536.0);
    let flops: f64 = tokens
        .iter()
        .map(|&n| {
            let n = n as f64;
            l * (2.0 * n * (4.0 * h * h + 2.0 * h * f) + 4.0 * n * n * h)
        })
        .sum();

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let (ffn, square) = pool.install(|| {
        (
            matmul_gflops(256, 384, 1536),
            matmul_gflops(1024, 1024, 1024),
        )
    });
    let peak = ffn.max(square);

    let mut config = LocalEmbedConfig::new(&dir);
    config.threads = threads;
    config.batch_size = batch;
    let model = LocalEmbedder::load(config).expect("load the embedder (make models)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let achieved = rt.block_on(async {
        let _ = model.embed(&texts[..batch.min(texts.len())]).await.unwrap();
        let mut best = 0f64;
        for _ in 0..3 {
            let started = Instant::now();
            for group in texts.chunks(batch) {
                let v = model.embed(group).await.unwrap();
                assert_eq!(v.len(), group.len());
            }
            best = best.max(flops / started.elapsed().as_secs_f64() / 1e9);
        }
        best
    });
    let mean_tokens = tokens.iter().sum::<usize>() as f64 / tokens.len() as f64;
    let chunk_rate = achieved * 1e9 / (flops / tokens.len() as f64);
    println!(
        "threads {threads} | {} chunks of {mean_tokens:.0} tokens (mean), requests of {batch}",
        texts.len()
    );
    println!(
        "matmul peak (candle f32): {ffn:.1} GFLOP/s at 256x384x1536 (an FFN product), {square:.1} at 1024^3"
    );
    println!(
        "embedding: {achieved:.1} GFLOP/s = {chunk_rate:.1} chunks/s = {:.0}% of the peak {peak:.1} GFLOP/s",
        100.0 * achieved / peak
    );
}
