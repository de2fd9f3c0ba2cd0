//! The built-in offline provider: deterministic replies, answers from
//! sources, tool calls, limits, and embeddings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_llm::prompt::format_sources;
use confab_llm::{
    BuiltinProvider, ChatChunk, ChatMessage, ChatModel, ChatRequest, ChatResponse, EmbeddingModel,
    FinishReason, ToolCall, ToolDefinition,
};
use futures_util::StreamExt;
use serde_json::json;

async fn chunks(request: ChatRequest) -> Vec<ChatChunk> {
    BuiltinProvider::new()
        .stream(request)
        .map(|item| item.expect("builtin never errors"))
        .collect()
        .await
}

async fn complete(request: ChatRequest) -> ChatResponse {
    BuiltinProvider::new().complete(request).await.unwrap()
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

fn text_chunks(chunks: &[ChatChunk]) -> usize {
    chunks
        .iter()
        .filter(|c| matches!(c, ChatChunk::Text(_)))
        .count()
}

fn sources_prompt() -> String {
    format!(
        "Answer the question using only the sources below. Cite them as [n].\n\n{}",
        format_sources([
            (
                "docs/ownership.md",
                "# Ownership\nEach value in Rust has a single owner. When the owner goes out of \
                 scope, the value is dropped and its memory is freed.",
            ),
            (
                "recipes/pasta.md",
                "Boil the pasta in plenty of salted water. Stir the sauce in at the end.",
            ),
            (
                "docs/borrowing.md",
                "References let code borrow a value without taking ownership of it. A mutable \
                 reference is exclusive.",
            ),
        ])
    )
}

fn rag_request(question: &str) -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::system(sources_prompt()),
        ChatMessage::user(question),
    ])
}

fn list_tracks() -> ToolDefinition {
    ToolDefinition {
        name: "list_tracks".into(),
        description: "List the music tracks matching a query.".into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "what to look for"},
                "limit": {"type": "integer"},
                "shuffle": {"type": "boolean"}
            },
            "required": ["query", "limit"]
        }),
    }
}

fn get_weather() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: "Current weather for a city.".into(),
        parameters: json!({
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"]
        }),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[tokio::test]
async fn names_itself_builtin() {
    let model = BuiltinProvider::new();
    assert_eq!(model.provider(), "builtin");
    assert_eq!(model.default_model(), "builtin");
    assert_eq!(model.dimensions(), 384);
    assert_eq!(BuiltinProvider::DIMENSIONS, 384);
    let models = model.list_models().await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].id, "builtin");
    let reply = complete(ChatRequest::new(vec![ChatMessage::user("hi")])).await;
    assert_eq!(reply.model, "builtin");
    let reply = complete(ChatRequest::new(vec![ChatMessage::user("hi")]).with_model("x")).await;
    assert_eq!(reply.model, "x");
}

#[tokio::test]
async fn same_request_gives_identical_chunks() {
    let requests = vec![
        ChatRequest::new(vec![ChatMessage::user("What is a borrow checker?")]),
        rag_request("What happens when the owner goes out of scope?"),
        ChatRequest::new(vec![ChatMessage::user("list tracks by Miles Davis")])
            .with_tools(vec![list_tracks()]),
    ];
    for request in requests {
        let first = chunks(request.clone()).await;
        let second = chunks(request.clone()).await;
        assert!(!first.is_empty());
        assert_eq!(first, second);
        // A fresh provider instance too.
        let third: Vec<ChatChunk> = BuiltinProvider::new()
            .stream(request)
            .map(|c| c.unwrap())
            .collect()
            .await;
        assert_eq!(first, third);
    }
}

#[tokio::test]
async fn stream_is_words_then_usage_then_finish_and_matches_complete() {
    let request = ChatRequest::new(vec![
        ChatMessage::system("You are helpful."),
        ChatMessage::user("How  do I\tconfigure a model?"),
    ]);
    let streamed = chunks(request.clone()).await;
    let reply = complete(request).await;
    let text = text_of(&streamed);
    assert_eq!(text, reply.content);
    assert!(!text.is_empty());

    let n = streamed.len();
    assert!(n >= 3);
    assert_eq!(streamed[n - 1], ChatChunk::Finish(FinishReason::Stop));
    let ChatChunk::Usage(usage) = &streamed[n - 2] else {
        panic!("usage before finish: {streamed:?}");
    };
    for chunk in &streamed[..n - 2] {
        let ChatChunk::Text(t) = chunk else {
            panic!("only text before usage: {chunk:?}");
        };
        assert_eq!(t.split_whitespace().count(), 1, "one word per chunk: {t:?}");
    }
    assert_eq!(usage.prompt_tokens, 3 + 6);
    assert_eq!(usage.completion_tokens as usize, n - 2);
    assert_eq!(
        usage.completion_tokens as usize,
        text.split_whitespace().count()
    );
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
    assert_eq!(reply.usage, Some(*usage));
    assert_eq!(reply.finish_reason, FinishReason::Stop);
    assert!(reply.tool_calls.is_empty());
}

#[tokio::test]
async fn answers_from_the_relevant_source() {
    let reply = complete(rag_request(
        "What happens to a value when its owner goes out of scope?",
    ))
    .await;
    let text = reply.content;
    assert!(
        text.contains(
            "When the owner goes out of scope, the value is dropped and its memory is freed. [1]"
        ),
        "{text}"
    );
    assert!(text.contains("Sources: [1] docs/ownership.md"), "{text}");
    assert!(!text.contains("[2]"), "{text}");
    assert!(!text.contains("pasta"), "{text}");
    assert!(!text.contains("CONFAB_LLM_PROVIDER"), "{text}");
    assert!(
        text.matches(". [").count() <= 3,
        "at most three sentences: {text}"
    );

    let reply = complete(rag_request("How should I cook pasta, salted water?")).await;
    assert!(
        reply
            .content
            .contains("Boil the pasta in plenty of salted water. [2]"),
        "{}",
        reply.content
    );
    assert!(
        reply.content.ends_with("Sources: [2] recipes/pasta.md"),
        "{}",
        reply.content
    );
    assert!(!reply.content.contains("[1]"), "{}", reply.content);
}

#[tokio::test]
async fn answers_cite_several_sources_in_number_order() {
    let reply = complete(rag_request(
        "Does a reference take ownership of the value, or does the owner keep it?",
    ))
    .await;
    let text = reply.content;
    assert!(text.contains("[1]") && text.contains("[3]"), "{text}");
    assert!(
        text.contains("Sources: [1] docs/ownership.md; [3] docs/borrowing.md"),
        "{text}"
    );
    assert!(!text.contains("[2]"), "{text}");
}

#[tokio::test]
async fn sources_in_the_user_message_itself() {
    // Question before the block.
    let content = format!(
        "How is memory freed in Rust?\n\n{}",
        format_sources([
            ("a.md", "Memory is freed when the owner goes out of scope."),
            ("b.md", "The weather is nice today."),
        ])
    );
    let reply = complete(ChatRequest::new(vec![ChatMessage::user(content)])).await;
    assert!(
        reply
            .content
            .contains("Memory is freed when the owner goes out of scope. [1]"),
        "{}",
        reply.content
    );
    assert!(!reply.content.contains("[2]"), "{}", reply.content);

    // Question after the block: it is not mistaken for part of a source.
    let content = format!(
        "{}Question: what is the weather like?",
        format_sources([
            ("a.md", "Memory is freed when the owner goes out of scope."),
            ("b.md", "The weather is nice today."),
        ])
    );
    let reply = complete(ChatRequest::new(vec![ChatMessage::user(content)])).await;
    assert!(
        reply.content.contains("The weather is nice today. [2]"),
        "{}",
        reply.content
    );
    assert!(!reply.content.contains("Question:"), "{}", reply.content);
    assert!(!reply.content.contains("[1]"), "{}", reply.content);
}

#[tokio::test]
async fn says_when_sources_do_not_cover_the_question() {
    let reply = complete(rag_request("Who won the football world cup?")).await;
    let text = reply.content;
    assert!(text.contains("don't seem to cover"), "{text}");
    assert!(
        text.contains("[1] docs/ownership.md; [2] recipes/pasta.md; [3] docs/borrowing.md"),
        "{text}"
    );
}

#[tokio::test]
async fn offline_reply_explains_configuration() {
    let reply = complete(ChatRequest::new(vec![ChatMessage::user(
        "  What is the capital of France?  ",
    )]))
    .await;
    let text = reply.content;
    assert!(text.contains("offline"), "{text}");
    assert!(text.contains("What is the capital of France?"), "{text}");
    for needle in [
        "CONFAB_LLM_PROVIDER=openai",
        "AGENT_RUNTIME__LLM_PROXY_URL",
        "AGENT_RUNTIME__LLM_MODEL",
        "CONFAB_LLM_PROVIDER=ollama",
        "OLLAMA_HOST",
    ] {
        assert!(text.contains(needle), "{needle} missing: {text}");
    }

    // A long question is echoed only briefly.
    let long = "word ".repeat(2_000);
    let reply = complete(ChatRequest::new(vec![ChatMessage::user(long)])).await;
    assert!(reply.content.len() < 1_000, "{}", reply.content.len());
}

#[tokio::test]
async fn calls_a_tool_the_user_names() {
    let request = ChatRequest::new(vec![
        ChatMessage::system("You can call tools."),
        ChatMessage::user("Please list tracks: Miles Davis"),
    ])
    .with_tools(vec![get_weather(), list_tracks()]);
    let streamed = chunks(request.clone()).await;
    assert_eq!(text_chunks(&streamed), 0, "{streamed:?}");
    assert_eq!(
        streamed.last(),
        Some(&ChatChunk::Finish(FinishReason::ToolCalls))
    );
    let calls: Vec<&ToolCall> = streamed
        .iter()
        .filter_map(|c| match c {
            ChatChunk::ToolCall(call) => Some(call),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 1);
    let call = calls[0];
    assert_eq!(call.name, "list_tracks");
    assert_eq!(call.id, "call_builtin_0");
    let args = call.arguments.as_object().expect("arguments are an object");
    assert_eq!(args["query"], json!("Please Miles Davis"));
    assert_eq!(args["limit"], json!(0));
    assert!(
        !args.contains_key("shuffle"),
        "optional fields are left out"
    );
    // Valid JSON text round trip.
    let reparsed: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&call.arguments).unwrap()).unwrap();
    assert_eq!(&reparsed, &call.arguments);

    let reply = complete(request).await;
    assert_eq!(reply.finish_reason, FinishReason::ToolCalls);
    assert_eq!(reply.tool_calls, vec![call.clone()]);
    assert!(reply.content.is_empty());

    // The exact name, any case.
    let reply = complete(
        ChatRequest::new(vec![ChatMessage::user("GET_WEATHER Paris")])
            .with_tools(vec![list_tracks(), get_weather()]),
    )
    .await;
    assert_eq!(reply.tool_calls.len(), 1);
    assert_eq!(reply.tool_calls[0].name, "get_weather");
    assert_eq!(reply.tool_calls[0].arguments, json!({"city": "Paris"}));
}

#[tokio::test]
async fn no_tool_call_without_tools_or_mention() {
    // Named, but no tools registered.
    let reply = complete(ChatRequest::new(vec![ChatMessage::user(
        "list tracks by Miles Davis",
    )]))
    .await;
    assert!(reply.tool_calls.is_empty());
    assert_eq!(reply.finish_reason, FinishReason::Stop);
    assert!(!reply.content.is_empty());

    // Registered, but not named (and not a mere substring of a word).
    for text in ["What's on my playlist tracks page?", "hello there"] {
        let reply = complete(
            ChatRequest::new(vec![ChatMessage::user(text)]).with_tools(vec![list_tracks()]),
        )
        .await;
        assert!(reply.tool_calls.is_empty(), "{text}");
        assert_eq!(reply.finish_reason, FinishReason::Stop);
    }
}

#[tokio::test]
async fn summarises_tool_results() {
    let call = ToolCall {
        id: "call_1".into(),
        name: "list_tracks".into(),
        arguments: json!({"query": "Miles Davis"}),
    };
    let request = ChatRequest::new(vec![
        ChatMessage::user("list tracks by Miles Davis"),
        ChatMessage::assistant_tool_calls("", vec![call]),
        ChatMessage::tool_result("call_1", "list_tracks", "So What; Freddie Freeloader"),
    ])
    .with_tools(vec![list_tracks()]);
    let reply = complete(request).await;
    assert!(reply.tool_calls.is_empty(), "no call loop after a result");
    assert_eq!(reply.finish_reason, FinishReason::Stop);
    assert_eq!(
        reply.content,
        "Here is what I found with `list_tracks`: So What; Freddie Freeloader"
    );

    // Name taken from the call when the result has none; long output trimmed.
    let call = ToolCall {
        id: "c9".into(),
        name: "get_weather".into(),
        arguments: json!({}),
    };
    let mut result = ChatMessage::tool_result("c9", "", "é".repeat(5_000));
    result.name = None;
    let reply = complete(ChatRequest::new(vec![
        ChatMessage::user("weather?"),
        ChatMessage::assistant_tool_calls("", vec![call]),
        result,
    ]))
    .await;
    assert!(
        reply
            .content
            .starts_with("Here is what I found with `get_weather`: éé"),
        "{}",
        reply.content
    );
    assert!(reply.content.chars().count() < 700);
    assert_eq!(reply.finish_reason, FinishReason::Stop);
}

#[tokio::test]
async fn max_tokens_stops_with_length() {
    let mut request = ChatRequest::new(vec![ChatMessage::user("Tell me about Rust")]);
    let full = complete(request.clone()).await.content;
    assert!(full.split_whitespace().count() > 5);

    request.max_tokens = Some(5);
    let streamed = chunks(request.clone()).await;
    assert_eq!(text_chunks(&streamed), 5);
    assert_eq!(
        streamed.last(),
        Some(&ChatChunk::Finish(FinishReason::Length))
    );
    let reply = complete(request.clone()).await;
    assert_eq!(reply.finish_reason, FinishReason::Length);
    assert_eq!(reply.usage.unwrap().completion_tokens, 5);
    assert!(full.starts_with(&reply.content));

    request.max_tokens = Some(0);
    let reply = complete(request.clone()).await;
    assert_eq!(reply.content, "");
    assert_eq!(reply.finish_reason, FinishReason::Length);

    request.max_tokens = Some(100_000);
    let reply = complete(request).await;
    assert_eq!(reply.content, full);
    assert_eq!(reply.finish_reason, FinishReason::Stop);
}

#[tokio::test]
async fn stop_sequences_cut_the_text() {
    let mut request = ChatRequest::new(vec![ChatMessage::user("Tell me about Rust")]);
    let full = complete(request.clone()).await.content;
    let at = full
        .find("offline")
        .expect("offline reply mentions offline");

    request.stop = vec![
        "nowhere-to-be-found".into(),
        "offline".into(),
        String::new(),
    ];
    let reply = complete(request.clone()).await;
    assert_eq!(reply.content, full[..at]);
    assert!(!reply.content.contains("offline"));
    assert_eq!(reply.finish_reason, FinishReason::Stop);

    // Stop first, then the token limit.
    request.max_tokens = Some(1);
    let reply = complete(request).await;
    assert_eq!(reply.content.split_whitespace().count(), 1);
    assert_eq!(reply.finish_reason, FinishReason::Length);
}

#[tokio::test]
async fn odd_inputs_do_not_panic() {
    let huge = "lorem ipsum dolor ".repeat(200_000);
    let weird = "\u{0}\u{feff}İ̇ß🦀👩‍👩‍👧‍👦 \u{202e}abc\r\n\t 日本語のテキスト。次の文！";
    let schema_oddities = vec![
        ToolDefinition {
            name: String::new(),
            description: String::new(),
            parameters: serde_json::Value::Null,
        },
        ToolDefinition {
            name: "ß🦀".into(),
            description: String::new(),
            parameters: json!({"required": [1, null, "x"], "properties": []}),
        },
    ];
    let requests = vec![
        ChatRequest::default(),
        ChatRequest::new(vec![ChatMessage::user("")]),
        ChatRequest::new(vec![ChatMessage::assistant("hi")]),
        ChatRequest::new(vec![ChatMessage::tool_result("x", "y", "")]),
        ChatRequest::new(vec![ChatMessage::user(huge.clone())]),
        ChatRequest::new(vec![ChatMessage::user(weird)]).with_tools(schema_oddities.clone()),
        ChatRequest::new(vec![ChatMessage::user(format!("{weird} ß🦀 go"))])
            .with_tools(schema_oddities),
        ChatRequest::new(vec![ChatMessage::user(format!(
            "Sources:\n[1] \n{weird}\n[2] big\n{huge}"
        ))]),
        ChatRequest::new(vec![
            ChatMessage::system("Sources:\n[1] x\n"),
            ChatMessage::user("x"),
        ]),
    ];
    for request in requests {
        let streamed = chunks(request.clone()).await;
        assert!(matches!(streamed.last(), Some(ChatChunk::Finish(_))));
        let reply = complete(request).await;
        assert_eq!(reply.content, text_of(&streamed));
    }

    let weird_call = complete(
        ChatRequest::new(vec![ChatMessage::user("ß🦀 go")]).with_tools(vec![ToolDefinition {
            name: "ß🦀".into(),
            description: String::new(),
            parameters: json!({"required": [1, null, "x"], "properties": []}),
        }]),
    )
    .await;
    assert_eq!(weird_call.tool_calls.len(), 1);
    assert_eq!(weird_call.tool_calls[0].arguments, json!({"x": "go"}));

    let model = BuiltinProvider::new();
    let vectors = model
        .embed(&[huge, weird.to_owned(), "\u{0}".into()])
        .await
        .unwrap();
    for v in &vectors {
        assert_eq!(v.len(), 384);
        assert!(v.iter().all(|x| x.is_finite()));
    }
}

#[tokio::test]
async fn embeddings_are_unit_length_and_deterministic() {
    let model = BuiltinProvider::new();
    let texts: Vec<String> = [
        "How do I reset my password?",
        "ownership in Rust",
        "日本語のテキスト",
        "a",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let first = model.embed(&texts).await.unwrap();
    let second = BuiltinProvider::new().embed(&texts).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(first.len(), texts.len());
    for v in &first {
        assert_eq!(v.len(), model.dimensions());
        assert!((norm(v) - 1.0).abs() < 1e-4, "norm {}", norm(v));
    }
    // The same text alone embeds the same as in a batch.
    let alone = model.embed(&texts[1..2]).await.unwrap();
    assert_eq!(alone[0], first[1]);
    // Case does not matter.
    let upper = model
        .embed(&["OWNERSHIP IN RUST".to_owned()])
        .await
        .unwrap();
    assert_eq!(upper[0], first[1]);

    assert!(model.embed(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn empty_text_embeds_to_zero() {
    let model = BuiltinProvider::new();
    let vectors = model
        .embed(&[String::new(), "   \n\t".into(), "?!.,".into()])
        .await
        .unwrap();
    for v in vectors {
        assert_eq!(v.len(), 384);
        assert!(v.iter().all(|&x| x == 0.0));
    }
}

#[tokio::test]
async fn similar_texts_embed_closer_than_unrelated_ones() {
    let model = BuiltinProvider::new();
    let cases = [
        (
            "How do I reset my password?",
            "password reset steps",
            "the capital of France",
        ),
        (
            "ownership and borrowing in Rust",
            "Rust's borrow checker enforces ownership rules",
            "a recipe for chocolate cake",
        ),
        (
            "configure the Ollama host",
            "set OLLAMA_HOST to configure ollama",
            "football world cup results",
        ),
        (
            "deleting a user account",
            "how to delete accounts of users",
            "weather forecast for tomorrow",
        ),
    ];
    for (a, similar, unrelated) in cases {
        let v = model
            .embed(&[a.to_owned(), similar.to_owned(), unrelated.to_owned()])
            .await
            .unwrap();
        let close = cosine(&v[0], &v[1]);
        let far = cosine(&v[0], &v[2]);
        assert!(
            close > far + 0.1,
            "{a:?}: similar {close} vs unrelated {far}"
        );
        assert!((cosine(&v[0], &v[0]) - 1.0).abs() < 1e-4);
    }
}
