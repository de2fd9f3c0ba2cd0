//! Local GGUF chat model vs llama.cpp's server on the same GGUF: model load
//! time, prompt time (to the first token) and generation tokens/s (after
//! the first token), greedy, same prompt and max tokens, median of runs.
//!
//! Both are measured the same way, as a client sees a streamed reply: the
//! local model through [`ChatModel::stream`], llama.cpp through the
//! OpenAI-compatible provider at `CONFAB_LLAMA_URL` (skipped when unset).
//! `scripts/bench-local.sh` (`make bench-local`) runs it with one and two
//! threads on both sides (`CANDLE_NUM_THREADS` here, `--n_threads` there).
//!
//! Variables: `CONFAB_LOCAL_CHAT_MODEL` (the GGUF), `BENCH_THREADS`
//! (default 1), `BENCH_RUNS` (default 5), `BENCH_MAX_TOKENS` (default 128).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use confab_llm::local::{LocalChat, LocalChatConfig};
use confab_llm::{
    ChatChunk, ChatMessage, ChatModel, ChatRequest, HttpOptions, OpenAiProvider, RetryPolicy,
};
use futures_util::StreamExt;

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    prompt: Duration,
    tokens: u32,
    gen_rate: f64,
}

async fn measure(model: &dyn ChatModel, request: ChatRequest) -> Run {
    let started = Instant::now();
    let mut first = None;
    let mut last = started;
    let mut chunks = 0u32;
    let mut tokens = None;
    let mut stream = model.stream(request);
    while let Some(item) = stream.next().await {
        match item.expect("reply") {
            ChatChunk::Text(_) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                chunks += 1;
            }
            ChatChunk::Usage(u) => tokens = Some(u.completion_tokens),
            _ => {}
        }
    }
    let first = first.expect("some text");
    let tokens = tokens.unwrap_or(chunks);
    let gen_secs = (last - first).as_secs_f64().max(1e-9);
    Run {
        prompt: first - started,
        tokens,
        gen_rate: f64::from(tokens.saturating_sub(1)) / gen_secs,
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

async fn series(name: &str, model: &dyn ChatModel, request: &ChatRequest, runs: usize) -> f64 {
    let _ = measure(model, request.clone()).await; // warm-up
    let mut rates = Vec::new();
    let mut prompts = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..runs {
        let run = measure(model, request.clone()).await;
        rates.push(run.gen_rate);
        prompts.push(run.prompt.as_secs_f64() * 1000.0);
        tokens.push(run.tokens);
    }
    let rate = median(rates);
    println!(
        "{name:<10} generation {rate:7.1} tok/s (median of {runs}), prompt {:6.1} ms, tokens {tokens:?}",
        median(prompts)
    );
    rate
}

#[tokio::main]
async fn main() {
    let path = std::env::var_os("CONFAB_LOCAL_CHAT_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    let threads: usize = var("BENCH_THREADS", 1);
    let runs: usize = var("BENCH_RUNS", 5);
    let max_tokens: u32 = var("BENCH_MAX_TOKENS", 128);
    let mut request = ChatRequest::new(vec![ChatMessage::user(
        "Write a long story about a dragon who learns to bake bread.",
    )]);
    request.temperature = Some(0.0);
    request.max_tokens = Some(max_tokens);
    println!(
        "threads {threads} (CANDLE_NUM_THREADS={}), max_tokens {max_tokens}, greedy",
        std::env::var("CANDLE_NUM_THREADS").unwrap_or_else(|_| "unset".into())
    );

    let started = Instant::now();
    let mut config = LocalChatConfig::new(&path);
    config.threads = threads;
    let local = tokio::task::spawn_blocking(move || LocalChat::load(config))
        .await
        .unwrap()
        .expect("load the local model (make models)");
    println!(
        "local      load {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let local_rate = series("local", &local, &request, runs).await;

    let Ok(url) = std::env::var("CONFAB_LLAMA_URL") else {
        println!(
            "llama.cpp  SKIPPED (CONFAB_LLAMA_URL not set; scripts/bench-local.sh starts one)"
        );
        return;
    };
    let options = HttpOptions {
        read_timeout: Duration::from_secs(120),
        ..HttpOptions::default()
    };
    let llama =
        OpenAiProvider::new(&url, None, "smollm2", options, RetryPolicy::default()).unwrap();
    let llama_rate = series("llama.cpp", &llama, &request, runs).await;
    println!(
        "ratio      local / llama.cpp generation = {:.2} (threads {threads})",
        local_rate / llama_rate
    );
}
