//! The network providers against the fake LLM server, over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_llm::*;
use confab_testkit::fake_llm::{FakeLlm, FakeLlmConfig};
use futures_util::StreamExt;
use serde_json::json;

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(5),
    }
}

fn openai(fake: &FakeLlm) -> OpenAiProvider {
    OpenAiProvider::new(
        &fake.base_url(),
        Some("sk-test".into()),
        "echo",
        HttpOptions::default(),
        fast_retry(),
    )
    .unwrap()
}

fn ollama(fake: &FakeLlm) -> OllamaProvider {
    OllamaProvider::new(
        &fake.base_url(),
        "echo",
        HttpOptions::default(),
        fast_retry(),
    )
    .unwrap()
}

/// Both network providers over the same fake server.
fn providers(fake: &FakeLlm) -> Vec<Provider> {
    vec![
        Provider::OpenAi(openai(fake)),
        Provider::Ollama(ollama(fake)),
    ]
}

fn ask(model: &str, text: &str) -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::system("Be brief."),
        ChatMessage::user(text),
    ])
    .with_model(model)
}

fn lookup_tool() -> ToolDefinition {
    ToolDefinition {
        name: "search_knowledge".into(),
        description: "Search the knowledge base".into(),
        parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
    }
}

async fn drain(mut stream: ChatStream) -> (Vec<ChatChunk>, Option<LlmError>) {
    let mut chunks = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(c) => chunks.push(c),
            Err(e) => {
                assert!(stream.next().await.is_none(), "items after an error");
                return (chunks, Some(e));
            }
        }
    }
    (chunks, None)
}

fn text_of(chunks: &[ChatChunk]) -> String {
    chunks
        .iter()
        .filter_map(|c| match c {
            ChatChunk::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn complete_and_stream_echo() {
    let fake = FakeLlm::start().await;
    for p in providers(&fake) {
        let reply = p
            .complete(ask("echo", "hello streaming world"))
            .await
            .unwrap();
        assert_eq!(reply.content, "hello streaming world", "{}", p.provider());
        assert_eq!(reply.finish_reason, FinishReason::Stop);
        let usage = reply.usage.expect("usage");
        assert!(
            usage.prompt_tokens >= 5 && usage.completion_tokens >= 3,
            "{usage:?}"
        );

        let (chunks, err) = drain(p.stream(ask("echo", "one two three four"))).await;
        assert!(err.is_none(), "{err:?}");
        let texts: Vec<_> = chunks
            .iter()
            .filter(|c| matches!(c, ChatChunk::Text(_)))
            .collect();
        assert!(texts.len() >= 4, "streamed in pieces: {chunks:?}");
        assert_eq!(text_of(&chunks), "one two three four");
        assert!(
            chunks
                .iter()
                .any(|c| matches!(c, ChatChunk::Usage(u) if u.completion_tokens > 0))
        );
        assert_eq!(chunks.last(), Some(&ChatChunk::Finish(FinishReason::Stop)));
    }
    let reqs = fake.requests();
    let sse = reqs
        .iter()
        .find(|r| r.path == "/v1/chat/completions" && r.body["stream"] == json!(true))
        .unwrap();
    assert_eq!(sse.body["stream_options"]["include_usage"], json!(true));
    assert_eq!(
        sse.body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sse.header("authorization"), Some("Bearer sk-test"));
    assert!(
        reqs.iter()
            .any(|r| r.path == "/api/chat" && r.body["stream"] == json!(true))
    );
}

#[tokio::test]
async fn tool_calls_are_assembled() {
    let fake = FakeLlm::start().await;
    for p in providers(&fake) {
        let req = ask("tool_call", "rust ownership").with_tools(vec![lookup_tool()]);
        let (chunks, err) = drain(p.stream(req.clone())).await;
        assert!(err.is_none(), "{err:?}");
        let calls: Vec<&ToolCall> = chunks
            .iter()
            .filter_map(|c| match c {
                ChatChunk::ToolCall(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(calls.len(), 2, "{}: {chunks:?}", p.provider());
        assert_eq!(calls[0].name, "search_knowledge");
        assert_eq!(calls[0].arguments, json!({"query": "rust ownership"}));
        assert_eq!(calls[1].arguments, json!({"query": "second"}));
        assert_ne!(calls[0].id, calls[1].id);
        assert_eq!(
            chunks.last(),
            Some(&ChatChunk::Finish(FinishReason::ToolCalls))
        );

        let reply = p.complete(req.clone()).await.unwrap();
        assert_eq!(reply.tool_calls.len(), 2);
        assert_eq!(
            reply.tool_calls[0].arguments,
            json!({"query": "rust ownership"})
        );
        assert_eq!(reply.finish_reason, FinishReason::ToolCalls);

        // Sending the results back: the model answers from them.
        let mut messages = req.messages.clone();
        messages.push(ChatMessage::assistant_tool_calls(
            "",
            reply.tool_calls.clone(),
        ));
        messages.push(ChatMessage::tool_result(
            &reply.tool_calls[0].id,
            "search_knowledge",
            "found it",
        ));
        let done = p
            .complete(
                ChatRequest::new(messages)
                    .with_model("tool_call")
                    .with_tools(vec![lookup_tool()]),
            )
            .await
            .unwrap();
        assert!(done.content.contains("found it"), "{}", done.content);
    }
    let sent = fake
        .requests()
        .into_iter()
        .find(|r| {
            r.path == "/v1/chat/completions"
                && r.body["messages"].as_array().is_some_and(|m| m.len() == 4)
        })
        .unwrap();
    assert_eq!(
        sent.body["tools"][0]["function"]["name"],
        "search_knowledge"
    );
    assert_eq!(
        sent.body["messages"][2]["tool_calls"][0]["type"],
        "function"
    );
    assert_eq!(sent.body["messages"][3]["role"], "tool");
    assert!(sent.body["messages"][3]["tool_call_id"].is_string());
}

#[tokio::test]
async fn failures_map_to_typed_errors() {
    let fake = FakeLlm::start().await;
    for p in providers(&fake) {
        let name = p.provider().to_owned();
        let err = p.complete(ask("error_500", "x")).await.unwrap_err();
        assert!(
            matches!(err, LlmError::Unavailable(ref m) if m.contains("fake upstream failure")),
            "{name}: {err}"
        );
        let (_, err) = drain(p.stream(ask("error_500", "x"))).await;
        assert!(
            matches!(err, Some(LlmError::Unavailable(_))),
            "{name}: {err:?}"
        );

        let err = p.complete(ask("garbage", "x")).await.unwrap_err();
        assert!(matches!(err, LlmError::BadResponse(_)), "{name}: {err}");
        let (_, err) = drain(p.stream(ask("garbage", "x"))).await;
        assert!(
            matches!(err, Some(LlmError::BadResponse(_))),
            "{name}: {err:?}"
        );

        let (chunks, err) = drain(p.stream(ask("drop_mid_stream", "a b c d e f g h"))).await;
        assert!(
            !text_of(&chunks).is_empty(),
            "{name}: tokens before the drop"
        );
        assert!(
            matches!(err, Some(LlmError::BadResponse(_))),
            "{name}: {err:?}"
        );
        assert!(!chunks.iter().any(|c| matches!(c, ChatChunk::Finish(_))));
    }
    let openai = openai(&fake);
    let err = openai.complete(ask("error_401", "x")).await.unwrap_err();
    assert!(matches!(err, LlmError::Unauthorized(_)), "{err}");
    let err = openai
        .complete(ask("error_400_context", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, LlmError::ContextLength(ref m) if m.contains("maximum context length")),
        "{err}"
    );

    // 500 is retried (1 + 2 retries); 401, garbage and a dropped stream are not.
    let reqs = fake.requests();
    let count = |model: &str, path: &str| {
        reqs.iter()
            .filter(|r| r.path == path && r.body["model"] == json!(model))
            .count()
    };
    assert_eq!(count("error_500", "/v1/chat/completions"), 6);
    assert_eq!(count("error_500", "/api/chat"), 6);
    assert_eq!(count("error_401", "/v1/chat/completions"), 1);
    assert_eq!(count("garbage", "/v1/chat/completions"), 2);
    assert_eq!(
        count("drop_mid_stream", "/v1/chat/completions"),
        1,
        "no retry after the first token"
    );
    assert_eq!(
        count("drop_mid_stream", "/api/chat"),
        1,
        "no retry after the first token"
    );
}

#[tokio::test]
async fn rate_limit_is_retried_after_retry_after() {
    let fake = FakeLlm::start().await;
    let p = openai(&fake);
    let started = Instant::now();
    let (chunks, err) = drain(p.stream(ask("error_429_once", "patience pays"))).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(text_of(&chunks), "patience pays");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
    assert_eq!(fake.requests().len(), 2);

    // Without retries the typed error surfaces with the server's hint.
    let fake = FakeLlm::start().await;
    let p = OpenAiProvider::new(
        &fake.base_url(),
        None,
        "error_429_once",
        HttpOptions::default(),
        RetryPolicy::none(),
    )
    .unwrap();
    match p
        .complete(ChatRequest::new(vec![ChatMessage::user("x")]))
        .await
    {
        Err(LlmError::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)))
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

/// An address where nothing listens.
async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test]
async fn fallback_when_first_provider_is_down() {
    let fake = FakeLlm::start().await;
    let down = OpenAiProvider::new(
        &closed_port_url().await,
        None,
        "echo",
        HttpOptions::default(),
        RetryPolicy::none(),
    )
    .unwrap();
    let err = down.complete(ask("echo", "x")).await.unwrap_err();
    assert!(matches!(err, LlmError::Unavailable(_)), "{err}");

    let chain = Fallback::new(vec![
        Arc::new(down.clone()) as Arc<dyn ChatModel>,
        Arc::new(ollama(&fake)),
    ])
    .unwrap();
    let reply = chain.complete(ask("echo", "still here")).await.unwrap();
    assert_eq!(reply.content, "still here");
    let (chunks, err) = drain(chain.stream(ask("echo", "streamed anyway"))).await;
    assert!(err.is_none());
    assert_eq!(text_of(&chunks), "streamed anyway");

    // A refusal that another provider would not fix is not masked.
    let chain = Fallback::new(vec![
        Arc::new(openai(&fake)) as Arc<dyn ChatModel>,
        Arc::new(BuiltinProvider::new()),
    ])
    .unwrap();
    let err = chain.complete(ask("error_401", "x")).await.unwrap_err();
    assert!(matches!(err, LlmError::Unauthorized(_)));

    // All down: the last error.
    let chain = Fallback::new(vec![Arc::new(down) as Arc<dyn ChatModel>]).unwrap();
    assert!(matches!(
        chain.complete(ask("echo", "x")).await,
        Err(LlmError::Unavailable(_))
    ));
}

#[tokio::test]
async fn dropping_a_stream_closes_the_upstream_connection() {
    let fake = FakeLlm::start_with(FakeLlmConfig {
        token_delay: Duration::from_millis(50),
        ..FakeLlmConfig::default()
    })
    .await;
    for (i, p) in providers(&fake).into_iter().enumerate() {
        let words = vec!["word"; 200].join(" ");
        let mut stream = p.stream(ask("slow", &words));
        let first = stream.next().await.unwrap().unwrap();
        assert!(matches!(first, ChatChunk::Text(_)));
        drop(stream);
        assert!(
            fake.wait_for_disconnects(i + 1, Duration::from_secs(5))
                .await,
            "{}: the fake server did not see the client go away",
            p.provider()
        );
    }
}

#[tokio::test]
async fn read_timeout_is_a_timeout() {
    let fake = FakeLlm::start_with(FakeLlmConfig {
        token_delay: Duration::from_millis(1500),
        ..FakeLlmConfig::default()
    })
    .await;
    let options = HttpOptions {
        read_timeout: Duration::from_millis(300),
        ..HttpOptions::default()
    };
    let p =
        OpenAiProvider::new(&fake.base_url(), None, "slow", options, RetryPolicy::none()).unwrap();
    let started = Instant::now();
    let (_, err) = drain(p.stream(ask("slow", "a b c"))).await;
    assert!(matches!(err, Some(LlmError::Timeout(_))), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn embeddings_and_models() {
    let fake = FakeLlm::start().await;
    let texts: Vec<String> = vec!["first text".into(), "second text".into(), "third".into()];
    let o = openai(&fake).with_embeddings("embed", 8);
    let l = ollama(&fake).with_embeddings("embed", 8);
    for p in [Provider::OpenAi(o), Provider::Ollama(l)] {
        assert_eq!(p.dimensions(), 8);
        let v = p.embed(&texts).await.unwrap();
        assert_eq!(v.len(), 3);
        assert!(v.iter().all(|e| e.len() == 8));
        assert_ne!(v[0], v[1]);
        assert_eq!(
            p.embed(&texts[..1]).await.unwrap()[0],
            v[0],
            "deterministic"
        );
        assert!(p.embed(&[]).await.unwrap().is_empty());
        let models = p.list_models().await.unwrap();
        assert!(models.iter().any(|m| m.id == "echo"), "{models:?}");
    }
    // A provider configured for the wrong vector length says so.
    let wrong = openai(&fake).with_embeddings("embed", 1536);
    let err = wrong.embed(&texts).await.unwrap_err();
    assert!(
        matches!(err, LlmError::BadResponse(ref m) if m.contains("1536")),
        "{err}"
    );
    let embed_req = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/embeddings")
        .unwrap();
    assert_eq!(
        embed_req.body["input"],
        json!(["first text", "second text", "third"])
    );
}

#[tokio::test]
async fn config_built_models_talk_to_the_server() {
    let fake = FakeLlm::start().await;
    let url = fake.base_url();
    let vars = [
        ("AGENT_RUNTIME__LLM_PROXY_URL", url.as_str()),
        ("AGENT_RUNTIME__LLM_MODEL", "echo"),
        ("CONFAB_LLM_FALLBACK", "builtin"),
    ];
    let config = LlmConfig::from_vars(|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    let model = config.chat_model().unwrap();
    let reply = model
        .complete(ChatRequest::new(vec![ChatMessage::user("configured")]))
        .await
        .unwrap();
    assert_eq!(reply.content, "configured");
    assert_eq!(fake.requests()[0].body["model"], "echo");
}
