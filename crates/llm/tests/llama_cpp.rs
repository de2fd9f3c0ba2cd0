//! The OpenAI-compatible provider against a real server nobody here wrote:
//! llama.cpp's server (`llama-cpp-python[server]`) running SmolLM2-135M.
//!
//! Runs when `CONFAB_LLAMA_URL` names the server (`.ci/run` starts one with
//! `scripts/llama-server.sh`); otherwise it says loudly that it skipped,
//! and fails instead when `CONFAB_REQUIRE_LLAMA=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use confab_llm::*;
use futures_util::StreamExt;

fn server() -> Option<String> {
    match std::env::var("CONFAB_LLAMA_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CONFAB_REQUIRE_LLAMA").as_deref() == Ok("1") {
                panic!("CONFAB_REQUIRE_LLAMA=1 but CONFAB_LLAMA_URL is not set");
            }
            confab_testkit::skipped(
                "real llama.cpp server test (CONFAB_LLAMA_URL not set; \
                 scripts/llama-server.sh starts one)",
            );
            None
        }
    }
}

async fn provider(url: &str) -> OpenAiProvider {
    let options = HttpOptions {
        read_timeout: Duration::from_secs(60),
        ..HttpOptions::default()
    };
    let probe = OpenAiProvider::new(
        url,
        None,
        "unknown",
        options.clone(),
        RetryPolicy::default(),
    )
    .unwrap();
    let models = probe.list_models().await.unwrap();
    assert!(!models.is_empty(), "the server lists its model");
    OpenAiProvider::new(
        url,
        None,
        models[0].id.clone(),
        options,
        RetryPolicy::default(),
    )
    .unwrap()
}

fn request() -> ChatRequest {
    let mut r = ChatRequest::new(vec![
        ChatMessage::system("You are a helpful assistant. Answer briefly."),
        ChatMessage::user("What is the capital of France?"),
    ]);
    r.max_tokens = Some(24);
    r.temperature = Some(0.0);
    r
}

#[tokio::test]
async fn completes_against_llama_cpp() {
    let Some(url) = server() else { return };
    let p = provider(&url).await;
    let reply = p.complete(request()).await.unwrap();
    assert!(!reply.content.trim().is_empty(), "empty reply: {reply:?}");
    assert!(matches!(
        reply.finish_reason,
        FinishReason::Stop | FinishReason::Length
    ));
    let usage = reply.usage.expect("llama.cpp reports usage");
    assert!(
        usage.prompt_tokens > 5 && usage.completion_tokens > 0,
        "{usage:?}"
    );
    eprintln!("llama.cpp replied: {:?}", reply.content);
}

#[tokio::test]
async fn streams_against_llama_cpp() {
    let Some(url) = server() else { return };
    let p = provider(&url).await;
    let mut stream = p.stream(request());
    let mut texts = Vec::new();
    let mut finish = None;
    while let Some(item) = stream.next().await {
        match item.unwrap() {
            ChatChunk::Text(t) => texts.push(t),
            ChatChunk::Finish(f) => finish = Some(f),
            ChatChunk::Usage(_) | ChatChunk::ToolCall(_) => {}
        }
    }
    assert!(texts.len() >= 2, "streamed in several pieces: {texts:?}");
    assert!(!texts.concat().trim().is_empty());
    assert!(
        matches!(finish, Some(FinishReason::Stop | FinishReason::Length)),
        "{finish:?}"
    );
}
