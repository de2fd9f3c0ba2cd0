//! Time to first token on a RAG-sized prompt (~1,000 tokens: lesson text
//! from the demo catalogue as numbered sources), decode tokens/s, a second
//! conversation turn, and 4 concurrent conversations: the local model
//! beside llama.cpp's server on the same GGUF, in the same run.
//!
//! Every run's prompt starts with a fresh nonce, so llama.cpp's server
//! cannot reuse a cached prefix from the previous run (its prompt cache
//! would otherwise make its first token look ~10x faster than it is). The
//! second-turn figure is the one place where a cached prefix is the point:
//! turn 2 repeats turn 1's conversation plus one question.
//!
//! `scripts/bench-local.sh` (`make bench-local`) runs it. Variables:
//! `CONFAB_LOCAL_CHAT_MODEL` (the GGUF), `CONFAB_LLAMA_URL` (llama.cpp's
//! server; its part is skipped when unset), `BENCH_THREADS` (2),
//! `BENCH_RUNS` (3), `BENCH_PROMPT_TOKENS` (1000), `BENCH_DECODE_TOKENS` (64),
//! `BENCH_CONCURRENT` (4; 0 skips), `BENCH_LABEL` (name of the local engine
//! in the output).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use confab_llm::local::{LocalChat, LocalChatConfig};
use confab_llm::{
    ChatChunk, ChatMessage, ChatModel, ChatRequest, HttpOptions, OpenAiProvider, RetryPolicy,
    prompt::format_sources,
};
use futures_util::StreamExt;

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const LESSONS: [&str; 5] = [
    include_str!("../../accounts/demo/rust-basics/01-ownership/02-borrowing.md"),
    include_str!("../../accounts/demo/rust-basics/01-ownership/01-ownership.md"),
    include_str!("../../accounts/demo/rust-basics/01-ownership/03-lifetimes.md"),
    include_str!("../../accounts/demo/rust-basics/02-errors-and-traits/01-error-handling.md"),
    include_str!("../../accounts/demo/rust-basics/02-errors-and-traits/02-traits-and-generics.md"),
];

/// A RAG prompt of about `words * 1.35` tokens, opened by `nonce`.
fn rag_messages(nonce: &str, words: usize, question: &str) -> Vec<ChatMessage> {
    let mut left = words;
    let mut sources = Vec::new();
    for (i, lesson) in LESSONS.iter().cycle().enumerate() {
        if left == 0 {
            break;
        }
        let take: Vec<&str> = lesson.split_whitespace().take(left.min(220)).collect();
        left -= take.len();
        sources.push((format!("lesson {}", i + 1), take.join(" ")));
    }
    let block = format_sources(sources.iter().map(|(l, t)| (l.as_str(), t.as_str())));
    vec![
        ChatMessage::system(format!(
            "Session {nonce}. Answer from the sources and cite them as [n]."
        )),
        ChatMessage::user(format!("{block}\nQuestion: {question}")),
    ]
}

struct Run {
    ttft: Duration,
    prompt_tokens: u32,
    tokens: u32,
    decode_rate: f64,
    text: String,
}

async fn measure(model: &dyn ChatModel, request: ChatRequest) -> Run {
    let started = Instant::now();
    let mut first = None;
    let mut last = started;
    let mut chunks = 0u32;
    let mut usage = None;
    let mut text = String::new();
    let mut stream = model.stream(request);
    while let Some(item) = stream.next().await {
        match item.expect("reply") {
            ChatChunk::Text(t) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                chunks += 1;
                text.push_str(&t);
            }
            ChatChunk::Usage(u) => usage = Some(u),
            _ => {}
        }
    }
    let first = first.unwrap_or(last);
    let tokens = usage.map_or(chunks, |u| u.completion_tokens);
    Run {
        ttft: first - started,
        prompt_tokens: usage.map_or(0, |u| u.prompt_tokens),
        tokens,
        decode_rate: f64::from(tokens.saturating_sub(1)) / (last - first).as_secs_f64().max(1e-9),
        text,
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn request(messages: Vec<ChatMessage>, max_tokens: u32) -> ChatRequest {
    let mut r = ChatRequest::new(messages);
    r.temperature = Some(0.0);
    r.max_tokens = Some(max_tokens);
    r
}

/// Medians over `runs`: (ttft ms, decode tok/s, second-turn ttft ms,
/// concurrent aggregate tok/s, last user's ttft ms).
async fn series(name: &str, model: &dyn ChatModel, runs: usize, tag: &str) -> [f64; 5] {
    let words: usize = var("BENCH_PROMPT_TOKENS", 1000usize) * 100 / 135;
    let decode: u32 = var("BENCH_DECODE_TOKENS", 64);
    let concurrent: usize = var("BENCH_CONCURRENT", 4);
    let question = "How do I borrow a value mutably?";
    // Warm-up (page in the weights, start threads).
    let _ = measure(model, request(rag_messages("warm", words, question), 4)).await;
    let (mut ttft, mut rate, mut second) = (Vec::new(), Vec::new(), Vec::new());
    let mut prompt_tokens = 0;
    for run in 0..runs {
        let nonce = format!("{tag}-{run}-{}", std::process::id());
        let messages = rag_messages(&nonce, words, question);
        let first = measure(model, request(messages.clone(), decode)).await;
        prompt_tokens = first.prompt_tokens;
        ttft.push(first.ttft.as_secs_f64() * 1000.0);
        rate.push(first.decode_rate);
        // Turn 2 of the same conversation.
        let mut turn2 = messages;
        turn2.push(ChatMessage::assistant(first.text.clone()));
        turn2.push(ChatMessage::user(
            "And how many mutable borrows may exist at once?",
        ));
        let again = measure(model, request(turn2, 8)).await;
        second.push(again.ttft.as_secs_f64() * 1000.0);
        let _ = first.tokens;
    }
    let (mut agg, mut last_ttft) = (0.0, 0.0);
    if concurrent > 0 {
        let started = Instant::now();
        let futs = (0..concurrent).map(|i| {
            let messages = rag_messages(
                &format!("{tag}-c{i}-{}", std::process::id()),
                words,
                question,
            );
            measure(model, request(messages, decode))
        });
        let results = futures_util::future::join_all(futs).await;
        let wall = started.elapsed().as_secs_f64();
        let total: u32 = results.iter().map(|r| r.tokens).sum();
        agg = f64::from(total) / wall;
        last_ttft = results
            .iter()
            .map(|r| r.ttft.as_secs_f64() * 1000.0)
            .fold(0.0, f64::max);
    }
    let out = [median(ttft), median(rate), median(second), agg, last_ttft];
    println!(
        "{name:<14} prompt {prompt_tokens} tok: ttft {:7.0} ms | decode {:6.1} tok/s | 2nd-turn ttft {:6.0} ms | {concurrent} concurrent: {:6.1} tok/s total, last ttft {:6.0} ms",
        out[0], out[1], out[2], out[3], out[4]
    );
    out
}

#[tokio::main]
async fn main() {
    let path = std::env::var_os("CONFAB_LOCAL_CHAT_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    let threads: usize = var("BENCH_THREADS", 2);
    let runs: usize = var("BENCH_RUNS", 3);
    let label = std::env::var("BENCH_LABEL").unwrap_or_else(|_| "local".into());
    println!(
        "model {} | threads {threads} | median of {runs}",
        path.display()
    );

    let started = Instant::now();
    let mut config = LocalChatConfig::new(&path);
    config.threads = threads;
    let local = tokio::task::spawn_blocking(move || LocalChat::load(config))
        .await
        .unwrap()
        .expect("load the local model (make models)");
    println!(
        "{label:<14} load {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let mine = series(&label, &local, runs, "l").await;

    let Ok(url) = std::env::var("CONFAB_LLAMA_URL") else {
        println!(
            "llama.cpp      SKIPPED (CONFAB_LLAMA_URL not set; scripts/bench-local.sh starts one)"
        );
        return;
    };
    let options = HttpOptions {
        read_timeout: Duration::from_secs(300),
        ..HttpOptions::default()
    };
    let llama =
        OpenAiProvider::new(&url, None, "smollm2", options, RetryPolicy::default()).unwrap();
    let theirs = series("llama.cpp srv", &llama, runs, "s").await;
    println!(
        "ratio {label}/llama.cpp: ttft {:.2}x | decode {:.2}x | 2nd-turn ttft {:.2}x | concurrent tok/s {:.2}x, last ttft {:.2}x",
        mine[0] / theirs[0],
        mine[1] / theirs[1],
        mine[2] / theirs[2],
        mine[3] / theirs[3].max(1e-9),
        mine[4] / theirs[4].max(1e-9),
    );
}
