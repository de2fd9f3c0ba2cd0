//! The local GGUF chat model (feature `local`, llama.cpp) on the real
//! SmolLM2-135M-Instruct Q4_1 weights: greedy determinism, streaming equals
//! the whole reply, stop sequences, max_tokens, usage, cancellation,
//! concurrency (batched decode), prompt-prefix reuse, the busy queue and
//! load errors.
//!
//! The model file is `CONFAB_LOCAL_CHAT_MODEL`, else
//! `models/SmolLM2-135M-Instruct.Q4_1.gguf` at the repository root (`make
//! models` fetches it). When it is missing the model tests print SKIP and
//! pass, and fail instead when `CONFAB_REQUIRE_LOCAL_MODELS=1` (CI).
#![cfg(feature = "llama")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use confab_llm::local::llama::{LocalChat, LocalChatConfig};
use confab_llm::{ChatChunk, ChatMessage, ChatModel, ChatRequest, FinishReason, LlmError};
use futures_util::StreamExt;

fn load_with(tune: impl FnOnce(&mut LocalChatConfig)) -> Option<LocalChat> {
    let mut config = LocalChatConfig::new(confab_testkit::local_chat_model()?);
    config.threads = 2;
    tune(&mut config);
    Some(LocalChat::load(config).unwrap())
}

fn load() -> Option<LocalChat> {
    load_with(|_| {})
}

fn greedy(question: &str, max_tokens: u32) -> ChatRequest {
    let mut r = ChatRequest::new(vec![ChatMessage::user(question)]);
    r.temperature = Some(0.0);
    r.max_tokens = Some(max_tokens);
    r
}

/// Text, usage and finish of a streamed reply.
async fn drain(
    model: &LocalChat,
    request: ChatRequest,
) -> (String, Option<confab_llm::Usage>, FinishReason) {
    let mut stream = model.stream(request);
    let (mut text, mut usage, mut finish) = (String::new(), None, None);
    while let Some(item) = stream.next().await {
        match item.unwrap() {
            ChatChunk::Text(t) => {
                assert!(finish.is_none(), "text after finish");
                text.push_str(&t);
            }
            ChatChunk::Usage(u) => usage = Some(u),
            ChatChunk::Finish(f) => finish = Some(f),
            ChatChunk::ToolCall(c) => panic!("unexpected tool call {c:?}"),
        }
    }
    (text, usage, finish.expect("a finish chunk"))
}

#[tokio::test]
async fn greedy_completion_is_deterministic_and_streams_the_same_text() {
    let Some(model) = load() else { return };
    assert_eq!(model.provider(), "local");
    assert_eq!(model.default_model(), "smollm2-135m-instruct");
    let request = greedy("What is the capital of France?", 24);
    let first = model.complete(request.clone()).await.unwrap();
    let second = model.complete(request.clone()).await.unwrap();
    eprintln!("local model replied: {:?}", first.content);
    assert!(!first.content.trim().is_empty(), "{first:?}");
    assert_eq!(
        first.content, second.content,
        "greedy decoding is deterministic"
    );
    assert_eq!(first.model, "smollm2-135m-instruct");
    assert!(
        first.content.contains("Paris"),
        "a working model knows this: {:?}",
        first.content
    );

    let (streamed, usage, finish) = drain(&model, request).await;
    assert_eq!(
        streamed, first.content,
        "streamed text equals the whole reply"
    );
    assert_eq!(finish, first.finish_reason);
    assert_eq!(usage, first.usage);
}

#[tokio::test]
async fn max_tokens_and_usage_are_exact() {
    let Some(model) = load() else { return };
    let reply = model
        .complete(greedy("Write a long story about a dragon.", 7))
        .await
        .unwrap();
    assert_eq!(reply.finish_reason, FinishReason::Length, "{reply:?}");
    let usage = reply.usage.unwrap();
    assert_eq!(usage.completion_tokens, 7, "{usage:?}");
    // The SmolLM2 template adds its default system prompt; llama.cpp's
    // server counts 31 prompt tokens for this conversation.
    let short = model.complete(greedy("Hi", 3)).await.unwrap();
    let short_usage = short.usage.unwrap();
    assert_eq!(short_usage.prompt_tokens, 31, "{short_usage:?}");
    assert_eq!(short_usage.completion_tokens, 3);
    assert_eq!(short_usage.total_tokens, 34);
    // One more word in the question: one more prompt token.
    let longer = model.complete(greedy("Hi there", 1)).await.unwrap();
    assert_eq!(longer.usage.unwrap().prompt_tokens, 32);
}

#[tokio::test]
async fn stop_sequences_cut_the_reply() {
    let Some(model) = load() else { return };
    let request = greedy("List three colors of the rainbow.", 40);
    let full = model.complete(request.clone()).await.unwrap().content;
    // A stop sequence taken from the middle of the reply.
    let words: Vec<&str> = full.split_whitespace().collect();
    assert!(words.len() >= 4, "reply too short to test stop: {full:?}");
    let stop = words[words.len() / 2].to_owned();
    let at = full.find(&stop).unwrap();
    let mut stopped_request = request;
    stopped_request.stop = vec![stop.clone()];
    let (text, usage, finish) = drain(&model, stopped_request).await;
    assert_eq!(finish, FinishReason::Stop);
    assert_eq!(text, full[..at], "reply cut right before {stop:?}");
    assert!(usage.unwrap().completion_tokens < 40);
}

#[tokio::test]
async fn dropping_the_stream_stops_generation() {
    // One slot: the next request can only start once the dropped one stopped.
    let Some(model) = load_with(|c| c.slots = 1) else {
        return;
    };
    let request = greedy("Count from 1 to 1000, separated by commas.", 400);
    let mut stream = model.stream(request);
    let mut seen = 0;
    let mut times = Vec::new();
    while let Some(item) = stream.next().await {
        if let ChatChunk::Text(_) = item.unwrap() {
            seen += 1;
            times.push(Instant::now());
            if seen == 8 {
                break;
            }
        }
    }
    assert_eq!(seen, 8, "the counting reply runs long");
    let per_token = (times[7] - times[2]) / 5;
    drop(stream);
    // The worker serves one request at a time: this one starts only when
    // the dropped one has stopped; ~390 more tokens would take far longer.
    let started = Instant::now();
    let next = model.complete(greedy("Hi", 1)).await.unwrap();
    let waited = started.elapsed();
    assert_eq!(next.usage.unwrap().completion_tokens, 1);
    assert!(
        waited < per_token * 60 + Duration::from_millis(200),
        "waited {waited:?} at {per_token:?} per token: the dropped stream kept generating"
    );
}

#[tokio::test]
async fn two_concurrent_requests_both_finish() {
    let Some(model) = load() else { return };
    let a = greedy("What is the capital of France?", 16);
    let b = greedy("Name a fruit.", 16);
    let alone_a = model.complete(a.clone()).await.unwrap();
    let alone_b = model.complete(b.clone()).await.unwrap();
    let (ra, rb) = tokio::join!(model.complete(a), model.complete(b));
    assert_eq!(ra.unwrap().content, alone_a.content);
    assert_eq!(rb.unwrap().content, alone_b.content);
}

#[tokio::test]
async fn a_full_queue_is_busy() {
    let Some(model) = load_with(|c| {
        c.queue_capacity = 1;
        c.slots = 1;
    }) else {
        return;
    };
    let mut running = model.stream(greedy("Count from 1 to 1000.", 300));
    // The first chunk means the worker took it off the queue.
    assert!(matches!(running.next().await, Some(Ok(_))));
    let _queued = model.stream(greedy("Hi", 4));
    let mut rejected = model.stream(greedy("Hello", 4));
    match rejected.next().await {
        Some(Err(LlmError::RateLimited { message, .. })) => assert!(message.contains("busy")),
        other => panic!("expected busy, got {other:?}"),
    }
    assert!(
        rejected.next().await.is_none(),
        "the error is the last item"
    );
}

#[tokio::test]
async fn batched_requests_interleave_and_match_their_solo_replies() {
    let Some(model) = load_with(|c| c.slots = 4) else {
        return;
    };
    let long = greedy("Count from 1 to 1000, separated by commas.", 160);
    let short: Vec<ChatRequest> = ["Name a fruit.", "What is the capital of France?", "Say hi."]
        .iter()
        .map(|q| greedy(q, 12))
        .collect();
    let mut alone = Vec::new();
    for r in &short {
        alone.push(model.complete(r.clone()).await.unwrap().content);
    }
    // The long reply starts first; the short ones, sent while it runs,
    // finish before it does (they do not wait behind it) with the same
    // text as alone.
    let mut running = model.stream(long);
    assert!(matches!(running.next().await, Some(Ok(ChatChunk::Text(_)))));
    let replies =
        futures_util::future::join_all(short.iter().map(|r| model.complete(r.clone()))).await;
    let mut rest = 0;
    while let Some(item) = running.next().await {
        if let ChatChunk::Text(_) = item.unwrap() {
            rest += 1;
        }
    }
    assert!(
        rest > 20,
        "the long reply was still running: {rest} chunks after"
    );
    for (reply, solo) in replies.into_iter().zip(alone) {
        assert_eq!(reply.unwrap().content, solo);
    }
}

#[tokio::test]
async fn a_second_turn_reuses_the_cached_prefix_and_answers_the_same() {
    let Some(model) = load_with(|c| c.slots = 1) else {
        return;
    };
    let Some(fresh) = load_with(|c| c.slots = 1) else {
        return;
    };
    let history: String = (1..=60)
        .map(|i| format!("Note {i}: the shop opens at {} o'clock. ", 6 + i % 5))
        .collect();
    let turn1 = vec![
        ChatMessage::system(history),
        ChatMessage::user("When does the shop open?"),
    ];
    let started = Instant::now();
    let first = model
        .complete(greedy_messages(turn1.clone(), 16))
        .await
        .unwrap();
    let cold = started.elapsed();
    let mut turn2 = turn1;
    turn2.push(ChatMessage::assistant(first.content.clone()));
    turn2.push(ChatMessage::user("And on Sundays?"));
    let request = greedy_messages(turn2, 16);
    let started = Instant::now();
    let mut stream = model.stream(request.clone());
    let mut warm_first = None;
    let mut text = String::new();
    while let Some(item) = stream.next().await {
        if let ChatChunk::Text(t) = item.unwrap() {
            warm_first.get_or_insert_with(|| started.elapsed());
            text.push_str(&t);
        }
    }
    // The same conversation on a model with nothing cached.
    let started = Instant::now();
    let expected = fresh.complete(request).await.unwrap();
    let fresh_time = started.elapsed();
    eprintln!(
        "turn 1 {cold:?}; turn 2 first token {warm_first:?} with the cache, whole reply {fresh_time:?} without ({} prompt tokens)",
        expected.usage.unwrap().prompt_tokens
    );
    assert_eq!(text, expected.content, "the cached prefix changes nothing");
}

fn greedy_messages(messages: Vec<ChatMessage>, max_tokens: u32) -> ChatRequest {
    let mut r = ChatRequest::new(messages);
    r.temperature = Some(0.0);
    r.max_tokens = Some(max_tokens);
    r
}

#[test]
fn missing_or_invalid_model_file_is_a_config_error() {
    let missing = LocalChat::load(LocalChatConfig::new("/nonexistent/model.gguf"));
    match missing {
        Err(LlmError::Config(m)) => assert!(m.contains("/nonexistent/model.gguf"), "{m}"),
        other => panic!("expected Config, got {other:?}"),
    }
    let path = std::env::temp_dir().join(format!("confab-bad-{}.gguf", std::process::id()));
    std::fs::write(&path, b"this is not a gguf file at all").unwrap();
    let bad = LocalChat::load(LocalChatConfig::new(&path));
    std::fs::remove_file(&path).unwrap();
    match bad {
        Err(LlmError::Config(m)) => assert!(m.contains("GGUF"), "{m}"),
        other => panic!("expected Config, got {other:?}"),
    }
}
