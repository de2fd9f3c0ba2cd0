//! The fake LLM server over real HTTP, in both wire formats.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use confab_testkit::fake_llm::{FakeLlm, FakeLlmConfig, MODEL_NAMES};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(fake: &FakeLlm, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", fake.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn openai_body(model: &str, text: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [
            { "role": "system", "content": "be brief" },
            { "role": "user", "content": text },
        ],
        "stream": stream,
    })
}

/// The `data:` payloads of an SSE body, in order.
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"))
                .to_string()
        })
        .collect()
}

/// The parsed chunks of an SSE body, checking it ends with `[DONE]`.
fn sse_chunks(body: &str) -> Vec<Value> {
    let data = sse_data(body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{body}");
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn content_of(chunks: &[Value]) -> Vec<String> {
    chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/content")?.as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn ndjson(body: &str) -> Vec<Value> {
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// ---- OpenAI: chat completions ------------------------------------------------

#[tokio::test]
async fn openai_json_echo_with_usage() {
    let fake = FakeLlm::start().await;
    let resp = post(
        &fake,
        "/v1/chat/completions",
        openai_body("echo", "hello there world", false),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "echo");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "hello there world"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // "be brief" + "hello there world"
    assert_eq!(
        body["usage"],
        json!({ "prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8 })
    );
}

#[tokio::test]
async fn unknown_model_and_missing_stream_behave_like_echo() {
    let fake = FakeLlm::start().await;
    let body: Value = post(
        &fake,
        "/v1/chat/completions",
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                { "role": "user", "content": "first" },
                { "role": "assistant", "content": "ok" },
                { "role": "user", "content": [{ "type": "text", "text": "parts work" }] },
            ],
        }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "parts work");
    assert_eq!(body["model"], "gpt-4o-mini");
}

#[tokio::test]
async fn openai_sse_echo_token_order_done_and_usage_chunk() {
    let fake = FakeLlm::start().await;
    let mut req = openai_body("echo", "one two  three\nfour", true);
    req["stream_options"] = json!({ "include_usage": true });
    let resp = post(&fake, "/v1/chat/completions", req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let chunks = sse_chunks(&resp.text().await.unwrap());

    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let id = chunks[0]["id"].clone();
    assert!(chunks.iter().all(|c| c["id"] == id));
    assert_eq!(
        content_of(&chunks),
        vec!["one", " two", "  three", "\nfour"]
    );
    assert_eq!(content_of(&chunks).concat(), "one two  three\nfour");

    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(finish["usage"].is_null());
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({ "prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10 })
    );
}

#[tokio::test]
async fn openai_sse_without_include_usage_has_no_usage_chunk() {
    let fake = FakeLlm::start().await;
    let resp = post(
        &fake,
        "/v1/chat/completions",
        openai_body("echo", "a b", true),
    )
    .await;
    let chunks = sse_chunks(&resp.text().await.unwrap());
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(content_of(&chunks), vec!["a", " b"]);
}

#[tokio::test]
async fn tokens_setting_fixes_the_reply_length() {
    let fake = FakeLlm::start_with(FakeLlmConfig {
        tokens: Some(50),
        ..FakeLlmConfig::default()
    })
    .await;
    let resp = post(
        &fake,
        "/v1/chat/completions",
        openai_body("echo", "ignored", true),
    )
    .await;
    let tokens = content_of(&sse_chunks(&resp.text().await.unwrap()));
    assert_eq!(tokens.len(), 50);
    assert_eq!(tokens[0], "tok0");
    assert_eq!(tokens[49], " tok49");

    let body: Value = post(&fake, "/api/chat", openai_body("echo", "ignored", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["eval_count"], 50);
    assert!(
        body["message"]["content"]
            .as_str()
            .unwrap()
            .starts_with("tok0 tok1 tok2")
    );
}

#[tokio::test]
async fn slow_stream_arrives_incrementally() {
    let fake = FakeLlm::start_with(FakeLlmConfig {
        token_delay: Duration::from_millis(100),
        ..FakeLlmConfig::default()
    })
    .await;
    let start = Instant::now();
    let resp = post(
        &fake,
        "/v1/chat/completions",
        openai_body("slow", "a b c d e f", true),
    )
    .await;
    let mut stream = resp.bytes_stream();
    let mut buffer = String::new();
    let mut arrivals = Vec::new();
    while let Some(frame) = stream.next().await {
        buffer.push_str(std::str::from_utf8(&frame.unwrap()).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.contains("\"content\":\"") && !event.contains("\"content\":\"\"") {
                arrivals.push(start.elapsed());
            }
        }
    }
    assert_eq!(arrivals.len(), 6, "{arrivals:?}");
    let (first, last) = (arrivals[0], arrivals[5]);
    assert!(last >= Duration::from_millis(600), "{arrivals:?}");
    assert!(
        last - first >= Duration::from_millis(400),
        "tokens were buffered: {arrivals:?}"
    );
}

#[tokio::test]
async fn slow_non_stream_takes_the_token_delays() {
    let fake = FakeLlm::start_with(FakeLlmConfig {
        token_delay: Duration::from_millis(40),
        ..FakeLlmConfig::default()
    })
    .await;
    let start = Instant::now();
    let body: Value = post(
        &fake,
        "/v1/chat/completions",
        openai_body("slow", "a b c d e", false),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(body["choices"][0]["message"]["content"], "a b c d e");
}

fn tool_request(stream: bool, tools: bool) -> Value {
    let mut req = openai_body("tool_call", "weather in Paris", stream);
    if tools {
        req["tools"] = json!([
            { "type": "function", "function": { "name": "get_weather", "description": "w", "parameters": { "type": "object" } } },
            { "type": "function", "function": { "name": "other", "parameters": { "type": "object" } } },
        ]);
    }
    req
}

#[tokio::test]
async fn openai_tool_call_deltas_reassemble_into_two_calls() {
    let fake = FakeLlm::start().await;
    let mut req = tool_request(true, true);
    req["stream_options"] = json!({ "include_usage": true });
    let resp = post(&fake, "/v1/chat/completions", req).await;
    let chunks = sse_chunks(&resp.text().await.unwrap());
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");

    // Merge by index, the way a client must.
    let mut calls: BTreeMap<u64, (String, String, String)> = BTreeMap::new();
    let mut fragments: BTreeMap<u64, usize> = BTreeMap::new();
    let mut order = Vec::new();
    for chunk in &chunks {
        let Some(deltas) = chunk
            .pointer("/choices/0/delta/tool_calls")
            .and_then(Value::as_array)
        else {
            continue;
        };
        for delta in deltas {
            let index = delta["index"].as_u64().unwrap();
            let entry = calls.entry(index).or_default();
            if let Some(id) = delta["id"].as_str() {
                assert_eq!(delta["type"], "function");
                assert_eq!(delta["function"]["arguments"], "");
                entry.0 = id.to_string();
                entry.1 = delta["function"]["name"].as_str().unwrap().to_string();
            } else {
                assert!(delta.get("type").is_none() && delta["function"].get("name").is_none());
                *fragments.entry(index).or_default() += 1;
                order.push(index);
            }
            entry
                .2
                .push_str(delta["function"]["arguments"].as_str().unwrap());
        }
    }
    assert_eq!(calls.len(), 2);
    assert!(fragments.values().all(|n| *n >= 3), "{fragments:?}");
    // Fragments of the two calls interleave.
    assert!(order.windows(2).any(|w| w[0] != w[1]) && order.first() == Some(&0));
    assert!(order.iter().rposition(|i| *i == 0) > order.iter().position(|i| *i == 1));

    let (id0, name0, args0) = &calls[&0];
    let (id1, name1, args1) = &calls[&1];
    assert!(id0.starts_with("call_") && id0 != id1);
    assert_eq!(
        (name0.as_str(), name1.as_str()),
        ("get_weather", "get_weather")
    );
    let args0: Value = serde_json::from_str(args0).unwrap();
    let args1: Value = serde_json::from_str(args1).unwrap();
    assert_eq!(args0, json!({ "query": "weather in Paris" }));
    assert_eq!(args1, json!({ "query": "second" }));

    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    assert!(
        chunks.last().unwrap()["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn openai_tool_call_json_has_whole_calls() {
    let fake = FakeLlm::start().await;
    let body: Value = post(&fake, "/v1/chat/completions", tool_request(false, false))
        .await
        .json()
        .await
        .unwrap();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "lookup");
    let args: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({ "query": "weather in Paris" }));
    let args: Value =
        serde_json::from_str(calls[1]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({ "query": "second" }));
}

#[tokio::test]
async fn tool_call_after_a_tool_result_answers_in_text() {
    let fake = FakeLlm::start().await;
    let mut req = tool_request(true, true);
    let messages = req["messages"].as_array_mut().unwrap();
    messages.push(json!({
        "role": "assistant",
        "content": null,
        "tool_calls": [{ "id": "call_1", "type": "function", "function": { "name": "get_weather", "arguments": "{}" } }],
    }));
    messages.push(json!({ "role": "tool", "tool_call_id": "call_1", "content": "sunny" }));
    let resp = post(&fake, "/v1/chat/completions", req).await;
    let chunks = sse_chunks(&resp.text().await.unwrap());
    assert_eq!(content_of(&chunks).concat(), "tool said: sunny");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

// ---- OpenAI: failures ------------------------------------------------------

#[tokio::test]
async fn openai_error_statuses_and_bodies() {
    let fake = FakeLlm::start().await;
    for (model, status, kind, code) in [
        ("error_500", 500, "server_error", Value::Null),
        (
            "error_401",
            401,
            "invalid_request_error",
            json!("invalid_api_key"),
        ),
        (
            "error_400_context",
            400,
            "invalid_request_error",
            json!("context_length_exceeded"),
        ),
    ] {
        for stream in [false, true] {
            let resp = post(
                &fake,
                "/v1/chat/completions",
                openai_body(model, "hi", stream),
            )
            .await;
            assert_eq!(resp.status().as_u16(), status, "{model}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["type"], kind, "{model}");
            assert_eq!(body["error"]["code"], code, "{model}");
        }
    }
    let body: Value = post(
        &fake,
        "/v1/chat/completions",
        openai_body("error_500", "hi", false),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["error"]["message"], "fake upstream failure");
    let body: Value = post(
        &fake,
        "/v1/chat/completions",
        openai_body("error_400_context", "hi", false),
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("This model's maximum context length is 8 tokens")
    );
}

#[tokio::test]
async fn error_429_once_then_succeeds() {
    let fake = FakeLlm::start().await;
    let resp = post(
        &fake,
        "/v1/chat/completions",
        openai_body("error_429_once", "again", true),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"].to_str().unwrap(), "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    for _ in 0..2 {
        let resp = post(
            &fake,
            "/v1/chat/completions",
            openai_body("error_429_once", "again", true),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let chunks = sse_chunks(&resp.text().await.unwrap());
        assert_eq!(content_of(&chunks).concat(), "again");
    }
    // Per server instance: a new server rate-limits again.
    let other = FakeLlm::start().await;
    let resp = post(
        &other,
        "/api/chat",
        openai_body("error_429_once", "x", false),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"].to_str().unwrap(), "1");
    assert!(resp.json::<Value>().await.unwrap()["error"].is_string());
}

#[tokio::test]
async fn drop_mid_stream_truncates_the_sse_body() {
    let fake = FakeLlm::start().await;
    let resp = post(
        &fake,
        "/v1/chat/completions",
        openai_body("drop_mid_stream", "w1 w2 w3 w4 w5", true),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.bytes_stream();
    let mut received = String::new();
    let mut error = None;
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(bytes) => received.push_str(std::str::from_utf8(&bytes).unwrap()),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    assert!(error.is_some(), "no body error; got {received:?}");
    let data = sse_data(&received);
    assert!(!data.iter().any(|d| d == "[DONE]"));
    let chunks: Vec<Value> = data
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(content_of(&chunks), vec!["w1", " w2", " w3"]);
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null())
    );
    // A deliberate abort is not a client disconnect.
    assert_eq!(fake.disconnects(), 0);
}

#[tokio::test]
async fn drop_mid_stream_truncates_the_json_body() {
    let fake = FakeLlm::start().await;
    let resp = post(
        &fake,
        "/v1/chat/completions",
        openai_body("drop_mid_stream", "hello", false),
    )
    .await;
    assert!(resp.bytes().await.is_err());
    let resp = post(
        &fake,
        "/v1/chat/completions",
        openai_body("drop_mid_stream", "hello", false),
    )
    .await;
    assert!(resp.json::<Value>().await.is_err());
}

#[tokio::test]
async fn garbage_is_unparseable() {
    let fake = FakeLlm::start().await;
    let resp = post(
        &fake,
        "/v1/chat/completions",
        openai_body("garbage", "hi", true),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let data = sse_data(&resp.text().await.unwrap());
    assert!(!data.is_empty());
    assert!(
        data.iter()
            .all(|d| d != "[DONE]" && serde_json::from_str::<Value>(d).is_err())
    );

    let resp = post(
        &fake,
        "/v1/chat/completions",
        openai_body("garbage", "hi", false),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.json::<Value>().await.is_err());

    let resp = post(
        &fake,
        "/v1/embeddings",
        json!({ "model": "garbage", "input": "x" }),
    )
    .await;
    assert!(resp.json::<Value>().await.is_err());
}

// ---- OpenAI: embeddings and models -------------------------------------------

#[tokio::test]
async fn openai_embeddings_are_deterministic_and_normalised() {
    let fake = FakeLlm::start_with(FakeLlmConfig {
        embedding_dimensions: 16,
        ..FakeLlmConfig::default()
    })
    .await;
    let body: Value = post(
        &fake,
        "/v1/embeddings",
        json!({ "model": "echo", "input": ["the cat sat", "quantum physics", "the cat sat"] }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "echo");
    assert_eq!(
        body["usage"],
        json!({ "prompt_tokens": 8, "total_tokens": 8 })
    );
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    let vectors: Vec<Vec<f64>> = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["object"], "embedding");
            assert_eq!(d["index"], i);
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect();
    for v in &vectors {
        assert_eq!(v.len(), 16);
        let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    assert_eq!(vectors[0], vectors[2]);
    assert_ne!(vectors[0], vectors[1]);

    let single: Value = post(
        &fake,
        "/v1/embeddings",
        json!({ "model": "m", "input": "the cat sat" }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(single["data"][0]["embedding"], data[0]["embedding"]);

    let resp = post(&fake, "/v1/embeddings", json!({ "model": "m" })).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = post(
        &fake,
        "/v1/embeddings",
        json!({ "model": "error_500", "input": "x" }),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn openai_models_lists_every_behaviour() {
    let fake = FakeLlm::start().await;
    let resp = client()
        .get(format!("{}/v1/models", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["object"], "model");
            assert_eq!(m["owned_by"], "fake");
            m["id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ids, MODEL_NAMES);
    assert_eq!(ids[0], "echo");
    for name in [
        "slow",
        "tool_call",
        "error_429_once",
        "drop_mid_stream",
        "garbage",
    ] {
        assert!(ids.contains(&name));
    }
}

// ---- Ollama ------------------------------------------------------------------

#[tokio::test]
async fn ollama_chat_streams_ndjson_by_default() {
    let fake = FakeLlm::start().await;
    let resp = post(
        &fake,
        "/api/chat",
        json!({ "model": "echo", "messages": [{ "role": "user", "content": "hi there you" }] }),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/x-ndjson"
    );
    let lines = ndjson(&resp.text().await.unwrap());
    assert_eq!(lines.len(), 4);
    let tokens: Vec<&str> = lines[..3]
        .iter()
        .map(|l| {
            assert_eq!(l["done"], false);
            assert_eq!(l["model"], "echo");
            assert_eq!(l["message"]["role"], "assistant");
            assert!(l["created_at"].as_str().unwrap().ends_with('Z'));
            l["message"]["content"].as_str().unwrap()
        })
        .collect();
    assert_eq!(tokens, vec!["hi", " there", " you"]);
    let done = &lines[3];
    assert_eq!(done["done"], true);
    assert_eq!(done["done_reason"], "stop");
    assert_eq!(done["message"]["content"], "");
    assert_eq!(done["prompt_eval_count"], 3);
    assert_eq!(done["eval_count"], 3);
    assert!(done["total_duration"].as_u64().is_some());
}

#[tokio::test]
async fn ollama_chat_without_streaming() {
    let fake = FakeLlm::start().await;
    let resp = post(
        &fake,
        "/api/chat",
        openai_body("echo", "whole reply", false),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["done"], true);
    assert_eq!(body["message"]["content"], "whole reply");
    assert_eq!(body["prompt_eval_count"], 4);
    assert_eq!(body["eval_count"], 2);
}

#[tokio::test]
async fn ollama_tool_call_comes_in_one_chunk() {
    let fake = FakeLlm::start().await;
    let mut req = tool_request(true, true);
    req.as_object_mut().unwrap().remove("stream");
    let lines = ndjson(&post(&fake, "/api/chat", req).await.text().await.unwrap());
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["done"], false);
    let calls = lines[0]["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(
        calls,
        &vec![
            json!({ "function": { "name": "get_weather", "arguments": { "query": "weather in Paris" } } }),
            json!({ "function": { "name": "get_weather", "arguments": { "query": "second" } } }),
        ]
    );
    assert_eq!(lines[1]["done"], true);

    let body: Value = post(&fake, "/api/chat", tool_request(false, false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["message"]["tool_calls"][0]["function"]["name"],
        "lookup"
    );
    assert_eq!(body["done"], true);

    let mut req = tool_request(false, true);
    req["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "role": "tool", "content": "22 degrees" }));
    let body: Value = post(&fake, "/api/chat", req).await.json().await.unwrap();
    assert_eq!(body["message"]["content"], "tool said: 22 degrees");
}

#[tokio::test]
async fn ollama_failures() {
    let fake = FakeLlm::start().await;
    let resp = post(&fake, "/api/chat", openai_body("error_500", "x", true)).await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({ "error": "fake upstream failure" })
    );
    let resp = post(&fake, "/api/chat", openai_body("error_401", "x", true)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = post(
        &fake,
        "/api/chat",
        openai_body("error_400_context", "x", true),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // garbage: a non-JSON line
    let resp = post(&fake, "/api/chat", openai_body("garbage", "x", true)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| serde_json::from_str::<Value>(l).is_err())
    );
    let resp = post(&fake, "/api/chat", openai_body("garbage", "x", false)).await;
    assert!(resp.json::<Value>().await.is_err());

    // drop_mid_stream: three lines, then a body error
    let resp = post(
        &fake,
        "/api/chat",
        openai_body("drop_mid_stream", "a b c d", true),
    )
    .await;
    let mut stream = resp.bytes_stream();
    let mut received = Vec::new();
    let mut failed = false;
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(b) => received.extend_from_slice(&b),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed);
    let lines = ndjson(std::str::from_utf8(&received).unwrap());
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["done"] == false));
}

#[tokio::test]
async fn ollama_embed_and_tags() {
    let fake = FakeLlm::start().await;
    let body: Value = post(
        &fake,
        "/api/embed",
        json!({ "model": "nomic-embed-text", "input": ["alpha", "beta"] }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["model"], "nomic-embed-text");
    let embeddings = body["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 2);
    assert_eq!(embeddings[0].as_array().unwrap().len(), 8);

    // The same text embeds the same in both wire formats.
    let single: Value = post(
        &fake,
        "/api/embed",
        json!({ "model": "m", "input": "alpha" }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(single["embeddings"][0], embeddings[0]);
    let openai: Value = post(
        &fake,
        "/v1/embeddings",
        json!({ "model": "m", "input": "alpha" }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(openai["data"][0]["embedding"], embeddings[0]);

    let resp = client()
        .get(format!("{}/api/tags", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let tags: Value = resp.json().await.unwrap();
    let models = tags["models"].as_array().unwrap();
    assert_eq!(models.len(), MODEL_NAMES.len());
    assert_eq!(models[0]["name"], "echo");
    assert_eq!(models[0]["model"], "echo");
    assert_eq!(models[0]["size"], 0);
}

// ---- Server mechanics --------------------------------------------------------

#[tokio::test]
async fn unknown_routes_and_malformed_json() {
    let fake = FakeLlm::start().await;
    let resp = client()
        .get(format!("{}/v1/nope", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.json::<Value>().await.unwrap()["error"]["message"].is_string());

    let resp = client()
        .get(format!("{}/v1/chat/completions", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let resp = client()
        .get(format!("{}/api/nope", fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(resp.json::<Value>().await.unwrap()["error"].is_string());

    for path in [
        "/v1/chat/completions",
        "/api/chat",
        "/v1/embeddings",
        "/api/embed",
    ] {
        let resp = client()
            .post(format!("{}{path}", fake.base_url()))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(resp.json::<Value>().await.unwrap().get("error").is_some());
    }
    let recorded = fake.requests();
    assert_eq!(recorded.len(), 7);
    assert!(recorded[3].body.is_null());
}

#[tokio::test]
async fn records_requests_with_bodies_and_headers() {
    let fake = FakeLlm::start().await;
    assert!(fake.requests().is_empty());
    let body = openai_body("echo", "recorded", false);
    client()
        .post(format!("{}/v1/chat/completions", fake.base_url()))
        .bearer_auth("sk-test-123")
        .header("X-Custom", "yes")
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    client()
        .get(format!("{}/api/tags", fake.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(first.body, body);
    assert_eq!(first.headers["authorization"], "Bearer sk-test-123");
    assert_eq!(first.header("Authorization"), Some("Bearer sk-test-123"));
    assert_eq!(first.header("x-custom"), Some("yes"));
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(requests[1].method, "GET");
    assert_eq!(requests[1].path, "/api/tags");
    assert!(requests[1].body.is_null());

    fake.clear_requests();
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn counts_a_client_that_drops_a_stream() {
    let fake = FakeLlm::start_with(FakeLlmConfig {
        token_delay: Duration::from_millis(50),
        ..FakeLlmConfig::default()
    })
    .await;
    // A stream read to its end is not a disconnect.
    let resp = post(
        &fake,
        "/v1/chat/completions",
        openai_body("slow", "a b", true),
    )
    .await;
    resp.text().await.unwrap();
    let resp = post(&fake, "/api/chat", openai_body("slow", "a b", true)).await;
    resp.text().await.unwrap();
    assert!(!fake.wait_for_disconnect(Duration::from_millis(200)).await);
    assert_eq!(fake.disconnects(), 0);

    let words = vec!["w"; 100].join(" ");
    let resp = post(
        &fake,
        "/v1/chat/completions",
        openai_body("slow", &words, true),
    )
    .await;
    let mut stream = resp.bytes_stream();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    assert!(fake.wait_for_disconnect(Duration::from_secs(5)).await);
    assert_eq!(fake.disconnects(), 1);

    let resp = post(&fake, "/api/chat", openai_body("slow", &words, true)).await;
    let mut stream = resp.bytes_stream();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    assert!(fake.wait_for_disconnects(2, Duration::from_secs(5)).await);
    assert_eq!(fake.disconnects(), 2);
}

#[tokio::test]
async fn server_stops_when_dropped() {
    let fake = FakeLlm::start().await;
    let url = format!("{}/v1/models", fake.base_url());
    assert!(client().get(&url).send().await.is_ok());
    drop(fake);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        // A fresh client so no pooled connection is reused.
        if client().get(&url).send().await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "server still answering");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn concurrent_streams() {
    let fake = FakeLlm::start_with(FakeLlmConfig {
        tokens: Some(50),
        ..FakeLlmConfig::default()
    })
    .await;
    let client = client();
    let url = format!("{}/v1/chat/completions", fake.base_url());
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let text = client
                    .post(url)
                    .json(&openai_body("echo", "x", true))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                content_of(&sse_chunks(&text)).len()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 50);
    }
    assert_eq!(fake.requests().len(), 64);
}

// ---- The binary ---------------------------------------------------------------

/// Kills the child process if a test fails before it is stopped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_prints_its_address_and_serves() {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_fake-llm"))
        .args(["--port", "0", "--tokens", "4", "--delay-ms", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Child(child);
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"));

    let models: Value = client()
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "echo");
    let reply: Value = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(&openai_body("echo", "ignored", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "tok0 tok1 tok2 tok3"
    );

    // SIGTERM ends it cleanly.
    #[cfg(unix)]
    {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::task::spawn_blocking(move || child.0.wait().unwrap())
            .await
            .unwrap();
        assert!(exit.success(), "{exit:?}");
    }
}

#[test]
fn binary_rejects_bad_arguments() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fake-llm"))
        .args(["--port", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port"));
}

#[tokio::test]
async fn tool_call_fills_required_properties_other_than_query() {
    let fake = FakeLlm::start().await;
    let mut req = openai_body("tool_call", "UTC", false);
    req["tools"] = json!([{ "type": "function", "function": {
        "name": "time__get_current_time",
        "parameters": { "type": "object", "properties": { "timezone": { "type": "string" } }, "required": ["timezone"] }
    } }]);
    let body: Value = post(&fake, "/v1/chat/completions", req)
        .await
        .json()
        .await
        .unwrap();
    let calls = body["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap();
    assert_eq!(calls.len(), 2);
    for call in calls {
        assert_eq!(call["function"]["name"], "time__get_current_time");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({ "timezone": "UTC" }));
    }
}
