//! Chat over WebSocket, SSE and REST against a real chat-service on
//! 127.0.0.1:0, wired from variables to the fake LLM server (real HTTP),
//! with real WebSocket clients over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chat_service::AppState;
use chat_service::chat::ChatLimits;
use common::{KEY, Options, Server};
use confab_history::HistoryConfig;
use confab_llm::LlmConfig;
use confab_store::Db;
use confab_testkit::ws::WsClient;
use confab_testkit::{FakeLlm, FakeLlmConfig};
use confab_web::Vars;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message as Ws};

/// A chat-service whose engine is wired from variables to `llm` answering as `model`.
async fn chat_server(db: Db, llm: &FakeLlm, model: &str, limits: ChatLimits) -> Server {
    let vars = Vars::from_pairs([
        ("AGENT_RUNTIME__LLM_PROXY_URL", llm.base_url()),
        ("AGENT_RUNTIME__LLM_MODEL", model.to_owned()),
        ("CONFAB_LLM_MAX_RETRIES", "0".to_owned()),
    ]);
    let llm_config = LlmConfig::from_vars(vars.lookup()).unwrap();
    let state = AppState::new(db.clone(), HistoryConfig::default());
    let wiring = chat_service::wiring::build(
        &vars,
        &llm_config,
        db,
        state.conversation_store(),
        state.memory_store(),
    )
    .await
    .unwrap();
    let state = state.with_wiring(wiring, limits);
    common::spawn_state(state, Options::default()).await
}

fn slow_llm(tokens: usize, delay_ms: u64) -> FakeLlmConfig {
    FakeLlmConfig {
        token_delay: Duration::from_millis(delay_ms),
        tokens: Some(tokens),
        ..FakeLlmConfig::default()
    }
}

/// A WebSocket to `/ws/chat` as `user` (behind the gateway).
async fn connect(server: &Server, user: &str) -> WsClient {
    let url = format!("{}/ws/chat", server.url.replace("http://", "ws://"));
    let headers = [("X-Internal-Auth", KEY), ("X-User-Id", user)];
    WsClient::connect(&url, &headers).await.unwrap()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e["type"].as_str().unwrap() {
            "stage" => format!("stage:{}", e["stage"].as_str().unwrap()),
            "token" => format!("token:{}", e["content"].as_str().unwrap()),
            "done" => format!("done:{}", e["finish_reason"].as_str().unwrap()),
            "error" => format!("error:{}", e["code"].as_str().unwrap()),
            "sources" => "sources".into(),
            t => t.to_owned(),
        })
        .collect()
}

fn text_of(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "token")
        .map(|e| e["content"].as_str().unwrap())
        .collect()
}

async fn ws_conversation_two_turns_and_resume(db: Db) {
    let llm = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let server = chat_server(db, &llm, "echo", ChatLimits::default()).await;
    let mut ws = connect(&server, "alice").await;
    ws.send(&json!({"type": "init", "agent": "dashboard"}))
        .await;
    let ready = ws.event().await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["agent"], "dashboard");
    assert_eq!(ready["backend"], "simple");
    assert_eq!(ready["history"], json!([]));
    let session_id = ready["session_id"].as_str().unwrap().to_owned();

    ws.send(&json!({"type": "chat_message", "content": "hello there"}))
        .await;
    let events = ws.until_end().await;
    assert_eq!(
        kinds(&events),
        [
            "stage:analysis",
            "stage:retrieval",
            "stage:generation",
            "token:hello",
            "token: there",
            "sources",
            "done:stop"
        ]
    );
    let done = events.last().unwrap();
    assert_eq!(done["session_id"], session_id.as_str());
    assert_eq!(done["model"], "echo");
    ws.send(&json!({"type": "chat_message", "content": "second turn"}))
        .await;
    let events = ws.until_end().await;
    assert_eq!(text_of(&events), "second turn");
    ws.send(&json!({"type": "ping"})).await;
    assert_eq!(ws.event().await, json!({"type": "pong"}));
    ws.socket().close(None).await.unwrap();

    // A new connection resumes with the history.
    let mut ws = connect(&server, "alice").await;
    ws.send(&json!({"type": "init", "agent": "dashboard", "session_id": session_id}))
        .await;
    let ready = ws.event().await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["session_id"], session_id.as_str());
    let history: Vec<(String, String)> = ready["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_owned(),
                m["content"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            ("user".into(), "hello there".into()),
            ("assistant".into(), "hello there".into()),
            ("user".into(), "second turn".into()),
            ("assistant".into(), "second turn".into()),
        ]
    );
    ws.send(&json!({"type": "chat_message", "content": "third"}))
        .await;
    let events = ws.until_end().await;
    assert_eq!(events.last().unwrap()["session_id"], session_id.as_str());
    // The model saw the earlier turns.
    let body = llm.requests().last().unwrap().body.clone();
    let contents: Vec<String> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(contents.contains(&"second turn".to_owned()), "{contents:?}");

    // Another user cannot resume it.
    let mut ws = connect(&server, "mallory").await;
    ws.send(&json!({"type": "init", "agent": "dashboard", "session_id": session_id}))
        .await;
    let e = ws.event().await;
    assert_eq!(e["type"], "error");
    assert_eq!(e["code"], "not_found");
    // ...and the connection lives on.
    ws.send(&json!({"type": "ping"})).await;
    assert_eq!(ws.event().await["type"], "pong");
}

async fn ws_bare_message_form(db: Db) {
    let llm = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let server = chat_server(db, &llm, "echo", ChatLimits::default()).await;
    let mut ws = connect(&server, "bob").await;
    ws.send(&json!({"message": "seed form"})).await;
    let ready = ws.event().await;
    assert_eq!(ready["type"], "ready");
    assert_eq!(ready["agent"], "dashboard");
    let events = ws.until_end().await;
    assert_eq!(text_of(&events), "seed form");
    assert_eq!(events.last().unwrap()["type"], "done");
}

async fn ws_cancel_mid_stream_keeps_partial(db: Db) {
    let llm = FakeLlm::start_with(slow_llm(300, 20)).await;
    let server = chat_server(db, &llm, "slow", ChatLimits::default()).await;
    let mut ws = connect(&server, "carol").await;
    ws.send(&json!({"type": "init", "agent": "dashboard"}))
        .await;
    let session_id = ws.event().await["session_id"].as_str().unwrap().to_owned();
    ws.send(&json!({"type": "chat_message", "content": "go"}))
        .await;
    let mut events = Vec::new();
    loop {
        let e = ws.event().await;
        let tokens = events
            .iter()
            .filter(|e: &&Value| e["type"] == "token")
            .count();
        if e["type"] == "token" && tokens == 4 {
            ws.send(&json!({"type": "cancel"})).await;
        }
        let end = e["type"] == "done" || e["type"] == "error";
        events.push(e);
        if end {
            break;
        }
    }
    let done = events.last().unwrap();
    assert_eq!(done["finish_reason"], "cancelled", "{done}");
    let streamed = text_of(&events);
    assert!(streamed.split_whitespace().count() < 300);
    let msgs: Value = server
        .as_user(
            "carol",
            reqwest::Method::GET,
            &format!("/api/sessions/{session_id}/messages"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = msgs["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["role"], "assistant");
    assert_eq!(
        items[0]["content"],
        streamed.as_str(),
        "the partial reply is kept"
    );
    assert_eq!(items[0]["metadata"]["finish_reason"], "cancelled");
    assert!(llm.wait_for_disconnect(Duration::from_secs(5)).await);
}

async fn ws_busy_while_streaming(db: Db) {
    let llm = FakeLlm::start_with(slow_llm(20, 20)).await;
    let server = chat_server(db, &llm, "slow", ChatLimits::default()).await;
    let mut ws = connect(&server, "dave").await;
    ws.send(&json!({"type": "chat_message", "content": "first"}))
        .await;
    assert_eq!(ws.event().await["type"], "ready");
    assert_eq!(ws.event().await["type"], "stage");
    ws.send(&json!({"type": "chat_message", "content": "second"}))
        .await;
    let events = ws.until_end().await;
    let busy: Vec<&Value> = events.iter().filter(|e| e["type"] == "error").collect();
    // The busy error arrives mid-stream; the first answer still ends with done.
    let rest = if events.last().unwrap()["type"] == "error" {
        ws.until_end().await
    } else {
        Vec::new()
    };
    let all: Vec<Value> = events.iter().chain(rest.iter()).cloned().collect();
    let errors: Vec<&Value> = all.iter().filter(|e| e["type"] == "error").collect();
    assert_eq!(errors.len(), 1, "{all:?} {busy:?}");
    assert_eq!(errors[0]["code"], "busy");
    assert_eq!(all.last().unwrap()["type"], "done");
    assert_eq!(all.iter().filter(|e| e["type"] == "token").count(), 20);
    // Only one model call was made.
    assert_eq!(llm.requests().len(), 1);
}

async fn ws_malformed_and_oversized_frames(db: Db) {
    let llm = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let limits = ChatLimits {
        max_frame_bytes: 1024,
        ..ChatLimits::default()
    };
    let server = chat_server(db, &llm, "echo", limits).await;
    let mut ws = connect(&server, "erin").await;
    for bad in [
        "not json",
        "[1,2]",
        r#"{"type":"dance"}"#,
        r#"{"type":"chat_message"}"#,
        r#"{"message": 5}"#,
        r#"{"type":"init","agent":"robot"}"#,
    ] {
        ws.socket().send(Ws::Text(bad.into())).await.unwrap();
        let e = ws.event().await;
        assert_eq!(e["type"], "error", "{bad}");
        assert_eq!(e["code"], "bad_frame", "{bad}");
        assert!(!e["message"].as_str().unwrap().is_empty());
    }
    ws.socket()
        .send(Ws::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(ws.event().await["code"], "bad_frame");
    // A course session without a course id is refused, the socket lives.
    ws.send(&json!({"type": "init", "agent": "course"})).await;
    assert_eq!(ws.event().await["code"], "missing_course");
    ws.send(&json!({"type": "chat_message", "content": "still alive"}))
        .await;
    assert_eq!(ws.event().await["type"], "ready");
    assert_eq!(text_of(&ws.until_end().await), "still alive");
    // Too large: an error event, then close 1009.
    ws.send(&json!({"type": "chat_message", "content": "x".repeat(4000)}))
        .await;
    let e = ws.event().await;
    assert_eq!(e["code"], "message_too_large");
    let close = tokio::time::timeout(Duration::from_secs(5), ws.socket().next())
        .await
        .unwrap();
    match close {
        Some(Ok(Ws::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected close 1009, got {other:?}"),
    }
}

async fn ws_needs_the_internal_key(db: Db) {
    let llm = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let server = chat_server(db, &llm, "echo", ChatLimits::default()).await;
    let url = format!("{}/ws/chat", server.url.replace("http://", "ws://"));
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    match err {
        tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
}

/// `GET /api/sessions` as `user`: the JSON page (`items`, ...).
async fn sessions_of(server: &Server, user: &str) -> Value {
    server
        .as_user(user, reqwest::Method::GET, "/api/sessions")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `data:` payloads of an SSE body.
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

async fn sse_stream_and_rest_chat(db: Db) {
    let llm = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let server = chat_server(db, &llm, "echo", ChatLimits::default()).await;
    let resp = server
        .as_user(
            "frank",
            reqwest::Method::GET,
            "/api/chat/stream?message=stream%20me",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events: Vec<Value> = sse_data(&resp.text().await.unwrap())
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(
        kinds(&events),
        [
            "stage:analysis",
            "stage:retrieval",
            "stage:generation",
            "token:stream",
            "token: me",
            "sources",
            "done:stop"
        ]
    );
    let session_id = events.last().unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Continue over REST.
    let resp = server
        .as_user("frank", reqwest::Method::POST, "/api/chat")
        .json(&json!({"message": "and rest", "session_id": session_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["response"], "and rest");
    assert_eq!(body["session_id"], session_id.as_str());
    assert_eq!(body["model"], "echo");
    assert!(body["message_id"].is_string());
    assert!(body["sources"].is_array());
    assert!(body["timestamp"].is_string());
    // Someone else's session: 404 on both, nothing written.
    for resp in [
        server
            .as_user(
                "mallory",
                reqwest::Method::GET,
                &format!("/api/chat/stream?message=x&session_id={session_id}"),
            )
            .send()
            .await
            .unwrap(),
        server
            .as_user("mallory", reqwest::Method::POST, "/api/chat")
            .json(&json!({"message": "x", "session_id": session_id}))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.json::<Value>().await.unwrap()["error"], "not_found");
    }
    // Bad input: JSON errors, never 500.
    let cases = [
        (
            server.as_user("frank", reqwest::Method::GET, "/api/chat/stream"),
            400,
        ),
        (
            server.as_user(
                "frank",
                reqwest::Method::GET,
                "/api/chat/stream?message=x&session_id=nope",
            ),
            400,
        ),
        (
            server.as_user(
                "frank",
                reqwest::Method::GET,
                "/api/chat/stream?message=%20",
            ),
            422,
        ),
        (
            server
                .as_user("frank", reqwest::Method::POST, "/api/chat")
                .body("{not json"),
            400,
        ),
        (
            server
                .as_user("frank", reqwest::Method::POST, "/api/chat")
                .json(&json!({"message": 5})),
            422,
        ),
        (
            server
                .as_user("frank", reqwest::Method::POST, "/api/chat")
                .json(&json!({})),
            422,
        ),
        (
            server
                .as_user("frank", reqwest::Method::POST, "/api/chat")
                .json(&json!({"message": ""})),
            422,
        ),
        (
            server
                .as_user("frank", reqwest::Method::POST, "/api/chat")
                .json(&json!({"message": "x", "backend": "nope"})),
            422,
        ),
        (
            server
                .as_user("frank", reqwest::Method::POST, "/api/chat")
                .json(&json!({"message": "x", "agent": "course"})),
            422,
        ),
    ];
    for (req, status) in cases {
        let resp = req.send().await.unwrap();
        let got = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(got, status, "{body}");
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{body}"
        );
    }
}

async fn rest_chat_provider_failure_is_502(db: Db) {
    let llm = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let server = chat_server(db, &llm, "error_500", ChatLimits::default()).await;
    let resp = server
        .as_user("gina", reqwest::Method::POST, "/api/chat")
        .json(&json!({"message": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "provider_error");
    // The user message was kept.
    let sessions = sessions_of(&server, "gina").await;
    assert_eq!(sessions["items"][0]["message_count"], 2);
}

/// A provider's 429 (`error_429`: always, `Retry-After: 7`; no retries
/// here) is a REST 429 with that `Retry-After`; the SSE `error` event stays
/// `{type, code, message}` (SPEC), while the gateway's internal completions
/// stream carries `retry_after_secs`.
async fn rest_chat_provider_rate_limit_is_429_with_retry_after(db: Db) {
    let llm = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let server = chat_server(db, &llm, "error_429", ChatLimits::default()).await;
    let resp = server
        .as_user("hana", reqwest::Method::POST, "/api/chat")
        .json(&json!({"message": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("7")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert!(body["message"].is_string(), "{body}");
    // The user message was kept.
    let sessions = sessions_of(&server, "hana").await;
    assert_eq!(sessions["items"][0]["message_count"], 2);

    let resp = server
        .as_user("hana", reqwest::Method::GET, "/api/chat/stream?message=hi")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let data = sse_data(&resp.text().await.unwrap());
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["type"], "error", "{last}");
    assert_eq!(last["code"], "rate_limited", "{last}");
    let mut keys: Vec<&str> = last
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "type"], "{last}");

    let resp = server
        .as_user("hana", reqwest::Method::POST, "/api/chat/completions")
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let data = sse_data(&resp.text().await.unwrap());
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["code"], "rate_limited", "{last}");
    assert_eq!(last["retry_after_secs"], 7, "{last}");
    // No retries configured: one provider call per request.
    let calls = llm
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions") || r.path == "/api/chat")
        .count();
    assert_eq!(calls, 3);
}

async fn seed_004_agent_stream(db: Db) {
    let llm = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let server = chat_server(db, &llm, "echo", ChatLimits::default()).await;
    let url = format!("{}/agent/message/stream", server.url);
    let body = json!({"session_id": "user-session-1", "role": "user", "content": "Hello, world"});
    let resp = server
        .anonymous(reqwest::Method::POST, "/agent/message/stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = server
        .client
        .post(&url)
        .header("X-Internal-Auth", KEY)
        .header("X-User-Id", "svc-user")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let data = sse_data(&resp.text().await.unwrap());
    assert_eq!(
        data,
        [
            r#"{"token":"Hello,","is_final":false,"type":"assistant_message"}"#,
            r#"{"token":" world","is_final":false,"type":"assistant_message"}"#,
            r#"{"token":"","is_final":true,"type":"assistant_message"}"#,
            "[DONE]",
        ]
    );
    // The same key continues the same session.
    let resp = server
        .client
        .post(&url)
        .header("X-Internal-Auth", KEY)
        .header("X-User-Id", "svc-user")
        .json(&json!({"session_id": "user-session-1", "role": "user", "content": "again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        sse_data(&resp.text().await.unwrap()).last().unwrap(),
        "[DONE]"
    );
    let sessions = sessions_of(&server, "svc-user").await;
    assert_eq!(sessions["items"].as_array().unwrap().len(), 1);
    assert_eq!(sessions["items"][0]["message_count"], 4);
    let resp = server
        .client
        .post(&url)
        .header("X-Internal-Auth", KEY)
        .header("X-User-Id", "svc-user")
        .json(&json!({"session_id": "s", "role": "assistant", "content": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
}

async fn completions_stateless_and_in_a_session(db: Db) {
    let llm = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let server = chat_server(db, &llm, "echo", ChatLimits::default()).await;
    let body = json!({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three four"},
    ]});
    let resp = server
        .as_user("olga", reqwest::Method::POST, "/api/chat/completions")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let events: Vec<Value> = sse_data(&resp.text().await.unwrap())
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(text_of(&events), "three four");
    let done = events.last().unwrap();
    assert_eq!(done["type"], "done");
    assert_eq!(done["session_id"], "00000000-0000-0000-0000-000000000000");
    let sessions = sessions_of(&server, "olga").await;
    assert_eq!(sessions["items"], json!([]), "stateless: nothing saved");
    // With a session: saved there.
    let created: Value = server
        .as_user("olga", reqwest::Method::POST, "/api/sessions")
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sid = created["id"].as_str().unwrap();
    let resp = server
        .as_user("olga", reqwest::Method::POST, "/api/chat/completions")
        .json(&json!({"session_id": sid, "messages": [{"role": "user", "content": "kept"}]}))
        .send()
        .await
        .unwrap();
    let events: Vec<Value> = sse_data(&resp.text().await.unwrap())
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events.last().unwrap()["session_id"], sid);
    // Bad conversations.
    for (bad, status) in [
        (json!({"messages": []}), 422),
        (
            json!({"messages": [{"role": "assistant", "content": "x"}]}),
            422,
        ),
        (
            json!({"messages": [{"role": "robot", "content": "x"}]}),
            422,
        ),
        (json!({"messages": "x"}), 422),
        (
            json!({"messages": [{"role": "user", "content": "x"}], "session_id": "00000000-0000-7000-8000-000000000000"}),
            404,
        ),
    ] {
        let resp = server
            .as_user("olga", reqwest::Method::POST, "/api/chat/completions")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{bad}");
    }
}

async fn courses_are_indexed_for_the_course_agent(db: Db) {
    let catalog = confab_accounts::CatalogService::new(db.clone());
    catalog.load_demo().await.unwrap();
    let llm = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let server = chat_server(db, &llm, "echo", ChatLimits::default()).await;
    let index = |role: &'static str| {
        server
            .as_user(
                "ops",
                reqwest::Method::POST,
                "/api/admin/courses/rust-basics/index",
            )
            .header("X-User-Role", role)
            .send()
    };
    assert_eq!(index("user").await.unwrap().status(), 403);
    let report: Value = index("admin").await.unwrap().json().await.unwrap();
    assert_eq!(report["collection"], "course:rust-basics", "{report}");
    let lessons = report["lessons"].as_u64().unwrap();
    assert!(lessons >= 3, "{report}");
    // Startup indexing may have run already; a second call changes nothing.
    let again: Value = index("admin").await.unwrap().json().await.unwrap();
    assert_eq!(again["changed"], 0);
    assert_eq!(again["removed"], 0);
    // The course agent answers from its course only.
    let resp = server
        .as_user(
            "kim",
            reqwest::Method::GET,
            "/api/chat/stream?message=what%20is%20borrowing&agent=course&course_id=rust-basics",
        )
        .send()
        .await
        .unwrap();
    let events: Vec<Value> = sse_data(&resp.text().await.unwrap())
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let sources = events.iter().find(|e| e["type"] == "sources").unwrap()["sources"]
        .as_array()
        .unwrap()
        .clone();
    assert!(!sources.is_empty());
    for s in &sources {
        assert_eq!(s["metadata"]["collection"], "course:rust-basics", "{s}");
        assert!(s["file_path"].as_str().unwrap().starts_with("lessons/"));
    }
}

async fn ws_idle_connections_are_closed(db: Db) {
    let llm = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let limits = ChatLimits {
        heartbeat: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        ..ChatLimits::default()
    };
    let server = chat_server(db, &llm, "echo", limits).await;
    let mut ws = connect(&server, "ivy").await;
    ws.send(&json!({"type": "chat_message", "content": "hi"}))
        .await;
    assert_eq!(ws.until_end().await.last().unwrap()["type"], "done");
    let started = std::time::Instant::now();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.socket().next())
            .await
            .unwrap()
        {
            Some(Ok(Ws::Ping(_) | Ws::Pong(_))) => continue,
            other => break other,
        }
    };
    match close {
        Some(Ok(Ws::Close(Some(frame)))) => {
            assert_eq!(frame.code, CloseCode::Normal);
            assert_eq!(frame.reason.as_str(), "idle timeout");
        }
        other => panic!("expected an idle close, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

confab_testkit::backend_tests!(
    ws_idle_connections_are_closed,
    courses_are_indexed_for_the_course_agent,
    completions_stateless_and_in_a_session,
    ws_conversation_two_turns_and_resume,
    ws_bare_message_form,
    ws_cancel_mid_stream_keeps_partial,
    ws_busy_while_streaming,
    ws_malformed_and_oversized_frames,
    ws_needs_the_internal_key,
    sse_stream_and_rest_chat,
    rest_chat_provider_failure_is_502,
    rest_chat_provider_rate_limit_is_429_with_retry_after,
    seed_004_agent_stream,
);
