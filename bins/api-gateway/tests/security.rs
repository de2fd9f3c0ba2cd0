//! Attacks on the gateway (issue 17), each over real HTTP/WS against a real
//! gateway and chat-service: the attack fails and nothing changed.
//!
//! - dot segments (raw, percent-encoded, mixed) in forwarded paths never
//!   reach chat-service's internal routes (`/api/health`, `/metrics`);
//! - bodies: per-route limits, refused before they are read when the caller
//!   is not authenticated or declares too much, `/v1` parsed into typed
//!   structs; a real gateway process under concurrent maximum-size bodies
//!   stays under a stated resident memory (read from `/proc`);
//! - models outside `CONFAB_ALLOWED_MODELS` cannot be picked (settings,
//!   REST, SSE, WS, `/v1`), and `/v1/models` lists exactly the allowed ones;
//! - `/api/stats` and `/api/health` show no other user's figures and no
//!   internal URLs; an open `/metrics` on a public address is warned about;
//! - sign-in guesses are limited per account (the same answers for unknown
//!   accounts) and IPv6 clients per /64.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{SECRET, Stack};
use confab_store::Db;
use confab_testkit::FakeLlmConfig;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `head` (request line and headers, without the final blank line)
/// plus `body` over a fresh connection to `base` exactly as written (no URL
/// normalisation on our side), and returns the status and the raw response
/// text; `None` when no answer came within `wait`.
async fn raw(base: &str, head: &str, body: &[u8], wait: Duration) -> Option<(u16, String)> {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    // The server may answer (and close) before taking the whole body.
    let _ = stream.write_all(body).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    // A complete head is enough for callers that do not
                    // send the body they declared.
                    if out.windows(4).any(|w| w == b"\r\n\r\n") && out.len() > 12 {
                        let text = String::from_utf8_lossy(&out);
                        if let Some(len) = content_length(&text) {
                            let head_end = text.find("\r\n\r\n").unwrap() + 4;
                            if out.len() >= head_end + len {
                                break;
                            }
                        }
                    }
                }
            }
        }
    })
    .await;
    if read.is_err() && out.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text))
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })
}

/// What chat-service's own health, metrics or OpenAPI answers contain.
fn leaks_internal(text: &str) -> bool {
    text.contains("chat-service")
        || text.contains("# HELP")
        || text.contains("# TYPE")
        || text.contains("\"openapi\"")
        || text.contains("uptime_secs")
}

async fn dot_segments_never_reach_internal_routes(db: Db) {
    let s = Stack::start(db, "echo", FakeLlmConfig::default()).await;
    let (_, access, _) = s.register("dots@example.com").await;
    let auth = format!("Authorization: Bearer {access}");
    // The attack of the issue first, then variants of it.
    let paths = [
        "/api/sessions/%2e%2e/%2e%2e/api/health",
        "/api/chat/%2e%2e/%2e%2e/metrics",
        "/api/sessions/../../api/health",
        "/api/chat/../../metrics",
        "/api/sessions/%2E%2E/%2e%2E/api/health",
        "/api/sessions/.%2e/%2e./api/health",
        "/api/memory/./../../openapi.json",
        "/api/messages/x/../../../api/health?x=1",
        "/api/stats/%2e%2e/%2e%2e/metrics",
        "/api/experience/%2e%2e/%2e%2e/health",
        "/api/admin/cleanup/%2e%2e/%2e%2e/%2e%2e/api/health",
        "/api/chat/stream/%2e%2e/%2e%2e/%2e%2e/metrics",
        "/api/sessions/..%2f..%2fapi%2fhealth",
        "/api/sessions/..%5c..%5capi%5chealth",
        "/api/sessions/%252e%252e/%252e%252e/api/health",
        "/api/sessions/%2e%2e",
        "/api/sessions/..",
        // A WebSocket upgrade through the HTTP forwarder.
        "/api/chat/%2e%2e/%2e%2e/ws/chat",
    ];
    for path in paths {
        for method in ["GET", "POST", "DELETE"] {
            let head = format!(
                "{method} {path} HTTP/1.1\r\n{auth}\r\nContent-Type: application/json\r\nContent-Length: 2"
            );
            let (status, text) = raw(&s.url, &head, b"{}", Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("{method} {path}: no answer"));
            assert_eq!(status, 400, "{method} {path}: {text}");
            assert!(!leaks_internal(&text), "{method} {path}: {text}");
            assert!(text.contains("invalid_path"), "{method} {path}: {text}");
        }
    }
    // The same over a WebSocket handshake on the forwarded routes and /ws/chat.
    for path in [
        "/api/chat/%2e%2e/%2e%2e/ws/chat",
        "/api/sessions/../../ws/chat",
        "/ws/chat/%2e%2e/api/health",
        "/ws/chat?backend=x/../../api/health#/../../metrics",
    ] {
        let head = format!(
            "GET {path} HTTP/1.1\r\n{auth}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
        );
        let (status, text) = raw(&s.url, &head, b"", Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("WS {path}: no answer"));
        assert_ne!(status, 101, "WS {path}: {text}");
        assert!((400..500).contains(&status), "WS {path}: {text}");
        assert!(!leaks_internal(&text), "WS {path}: {text}");
    }
    // Without a token the same paths are 401 (nothing forwarded either).
    let (status, text) = raw(
        &s.url,
        "GET /api/sessions/%2e%2e/%2e%2e/api/health HTTP/1.1",
        b"",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert!(status == 400 || status == 401, "{text}");
    assert!(!leaks_internal(&text), "{text}");
    // Nothing changed: ordinary forwarded paths (with dots inside a segment
    // and encoded characters) still work.
    let resp = s
        .authed(&access, Method::POST, "/api/sessions")
        .json(&json!({"title": "a.b..c"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let session: Value = resp.json().await.unwrap();
    let id = session["id"].as_str().unwrap();
    for path in [
        format!("/api/sessions/{id}"),
        format!("/api/sessions/{id}/messages?limit=5"),
        "/api/sessions/search?q=a.b..c".to_owned(),
        "/api/sessions/search?q=..%2F..".to_owned(),
        "/api/stats".to_owned(),
    ] {
        let (status, text) = raw(
            &s.url,
            &format!("GET {path} HTTP/1.1\r\n{auth}"),
            b"",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{path}: {text}");
    }
    let sessions: Value = s
        .authed(&access, Method::GET, "/api/sessions")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["items"].as_array().unwrap().len(), 1, "{sessions}");
}

/// A `/v1` body of the issue's attack shape: `content` an array of `n` zeros.
fn zeros_body(n: usize) -> Vec<u8> {
    let mut body = br#"{"model":"confab","messages":[{"role":"user","content":["#.to_vec();
    for i in 0..n {
        if i > 0 {
            body.push(b',');
        }
        body.push(b'0');
    }
    body.extend_from_slice(b"]}]}");
    body
}

async fn bodies_are_limited_per_route_and_read_only_when_allowed(db: Db) {
    let s = Stack::start(db, "echo", FakeLlmConfig::default()).await;
    let (_, access, _) = s.register("bodies@example.com").await;
    let auth = format!("Authorization: Bearer {access}");
    let quick = Duration::from_secs(5);
    // Unauthenticated: refused at once although the 30 MB body never comes.
    for path in [
        "/v1/chat/completions",
        "/api/chat",
        "/api/sessions/import",
        "/api/sessions",
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 30000000"
        );
        let (status, text) = raw(&s.url, &head, b"{\"messages\":[", quick)
            .await
            .unwrap_or_else(|| {
                panic!("{path}: the gateway waited for the body of an anonymous caller")
            });
        assert_eq!(status, 401, "{path}: {text}");
    }
    // Authenticated but declaring more than the route takes: 413 at once.
    for path in ["/v1/chat/completions", "/api/chat", "/api/sessions"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\n{auth}\r\nContent-Type: application/json\r\nContent-Length: 30000000"
        );
        let (status, text) = raw(&s.url, &head, b"{", quick)
            .await
            .unwrap_or_else(|| panic!("{path}: the gateway read a body over its limit"));
        assert_eq!(status, 413, "{path}: {text}");
    }
    // 2 MiB actually sent (no Content-Length: chunked): 413 too, in JSON.
    for path in ["/v1/chat/completions", "/api/chat"] {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..32).map(|_| Ok(vec![b' '; 64 * 1024])).collect();
        let resp = s
            .authed(&access, Method::POST, path)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 413, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error"].is_object() || body["error"].is_string(),
            "{body}"
        );
    }
    // The attack shape under the limit: a clear 400, parsed without building
    // a tree of JSON values (typed), no answer generated.
    let resp = s
        .authed(&access, Method::POST, "/v1/chat/completions")
        .header("content-type", "application/json")
        .body(zeros_body(400_000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(s.llm.requests().len(), 0, "nothing reached the model");
    // Nothing changed: ordinary requests work, and the import route takes
    // a body larger than 1 MiB.
    let resp = s
        .authed(&access, Method::POST, "/v1/chat/completions")
        .json(&json!({"model": "confab", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hello", "extra": [1, 2]}]}
        ], "temperature": 0.5, "tools": [], "metadata": {"a": [1, {"b": null}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let done: Value = resp.json().await.unwrap();
    assert_eq!(done["choices"][0]["message"]["content"], "hello");
    let resp = s
        .authed(&access, Method::POST, "/api/sessions")
        .json(&json!({"title": "to export"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let session: Value = resp.json().await.unwrap();
    let id = session["id"].as_str().unwrap();
    let resp = s
        .authed(
            &access,
            Method::POST,
            &format!("/api/sessions/{id}/messages"),
        )
        .json(&json!({"role": "user", "content": "kept across the round trip"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let mut export: Value = s
        .authed(
            &access,
            Method::GET,
            &format!("/api/sessions/{id}/export?format=json"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Unknown fields are ignored: 1.5 MB of padding makes the body larger
    // than the 1 MiB of the other routes.
    export["padding"] = json!("x".repeat(1_500_000));
    let resp = s
        .authed(&access, Method::POST, "/api/sessions/import")
        .json(&export)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 201, "import of 1.5 MB: {text}");
    // A syntax error and a wrong shape keep their statuses.
    for (body, want) in [(&b"{\"format\":"[..], 400), (&b"{\"format\": 5}"[..], 422)] {
        let resp = s
            .authed(&access, Method::POST, "/api/sessions/import")
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), want);
    }
}

/// The models the fake LLM was asked for, in order.
fn asked_models(s: &Stack) -> Vec<String> {
    s.llm
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .map(|r| r.body["model"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn only_allowed_models_can_be_picked(db: Db) {
    // "echo" is the configured model; "slow" is allowed too.
    let s = Stack::start_configured(db, "echo", FakeLlmConfig::default(), |c| {
        c.allowed_models = api_gateway::allowed::AllowedModels::new(["echo", "slow"]);
    })
    .await;
    let (id, access, _) = s.register("models@example.com").await;
    let me = |s: &Stack| s.authed(&access, Method::GET, "/api/users/me").send();
    // The attack: pick an expensive model on the operator's provider.
    for model in ["gpt-4-32k-expensive", "ECHO", "confab", "echo-large"] {
        let resp = s
            .authed(&access, Method::PATCH, "/api/users/me")
            .json(&json!({"settings": {"preferred_model": model, "ai_style": "concise"}}))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 422, "{model}: {body}");
        assert_eq!(body["error"], "model_not_allowed", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("echo, slow"),
            "{body}"
        );
    }
    // Nothing changed by the refused patches (not even ai_style).
    let user: Value = me(&s).await.unwrap().json().await.unwrap();
    assert!(user["settings"]["preferred_model"].is_null(), "{user}");
    assert_ne!(user["settings"]["ai_style"], "concise", "{user}");
    // Surrounding blanks are trimmed by the settings validation.
    let resp = s
        .authed(&access, Method::PATCH, "/api/users/me")
        .json(&json!({"settings": {"preferred_model": " echo "}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // An allowed choice is kept and used.
    let resp = s
        .authed(&access, Method::PATCH, "/api/users/me")
        .json(&json!({"settings": {"preferred_model": "slow"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    s.llm.clear_requests();
    let resp = s
        .authed(&access, Method::POST, "/api/chat")
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(asked_models(&s), ["slow"]);
    // A choice stored before the list existed (written behind the
    // gateway's back) is not passed on: the configured model answers, over
    // REST, SSE, WebSocket and /v1.
    let accounts = confab_accounts::Accounts::new(
        s.db.clone(),
        confab_accounts::AccountsConfig::new(confab_accounts::JwtConfig::new(
            SECRET.as_bytes().to_vec(),
        )),
    )
    .unwrap();
    accounts
        .users
        .update_profile(
            uuid::Uuid::parse_str(&id).unwrap(),
            confab_accounts::models::ProfileUpdate {
                display_name: None,
                settings: Some(json!({"preferred_model": "forbidden-model"})),
            },
        )
        .await
        .unwrap();
    s.llm.clear_requests();
    let resp = s
        .authed(&access, Method::POST, "/api/chat")
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = s
        .authed(&access, Method::GET, "/api/chat/stream?message=hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.text().await.unwrap();
    let ws_url = format!(
        "{}/ws/chat?token={access}",
        s.url.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .unwrap();
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;
    ws.send(Ws::Text(r#"{"type":"init","agent":"dashboard"}"#.into()))
        .await
        .unwrap();
    ws.send(Ws::Text(
        r#"{"type":"chat_message","content":"over ws"}"#.into(),
    ))
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let msg = tokio::time::timeout_at(deadline.into(), ws.next())
            .await
            .expect("no done event")
            .unwrap()
            .unwrap();
        if let Ws::Text(t) = msg {
            let event: Value = serde_json::from_str(&t).unwrap();
            assert_ne!(event["type"], "error", "{event}");
            if event["type"] == "done" {
                break;
            }
        }
    }
    let models = asked_models(&s);
    assert_eq!(models.len(), 3, "{models:?}");
    assert!(models.iter().all(|m| m == "echo"), "{models:?}");
    // /v1/models lists exactly what may be picked; /v1 takes those names.
    let list: Value = s
        .authed(&access, Method::GET, "/v1/models")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["confab", "confab-simple", "confab-agent", "echo", "slow"]
    );
    s.llm.clear_requests();
    let resp = s
        .authed(&access, Method::POST, "/v1/chat/completions")
        .json(&json!({"model": "slow", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let done: Value = resp.json().await.unwrap();
    assert_eq!(done["model"], "slow");
    assert_eq!(asked_models(&s), ["slow"]);
    // Any other name never reaches the provider (404 model_not_found, as
    // OpenAI answers and SDKs expect).
    s.llm.clear_requests();
    for model in ["forbidden-model", "gpt-4o"] {
        let resp = s
            .authed(&access, Method::POST, "/v1/chat/completions")
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{model}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "model_not_found", "{body}");
    }
    assert!(asked_models(&s).is_empty());
}

async fn stats_and_health_show_no_one_else(db: Db) {
    let s = Stack::start(db.clone(), "echo", FakeLlmConfig::default()).await;
    // Someone else's activity.
    let (_, other, _) = s.register("other@example.com").await;
    for i in 0..3 {
        let resp = s
            .authed(&other, Method::POST, "/api/sessions")
            .json(&json!({"title": format!("other {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    let (_, access, _) = s.register("curious@example.com").await;
    let resp = s
        .authed(&access, Method::POST, "/api/sessions")
        .json(&json!({"title": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let stats: Value = s
        .authed(&access, Method::GET, "/api/stats")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["counts"]["sessions"], 1, "{stats}");
    assert_eq!(stats["user"]["total_sessions"], 1, "{stats}");
    assert_eq!(stats["memory"]["total"], stats["memory"]["user"], "{stats}");
    for p in stats["providers"].as_array().unwrap() {
        assert!(
            p["error"].is_null() || p["error"] == "unavailable",
            "provider error text: {p}"
        );
    }
    // Unauthenticated health: no internal URLs.
    let text = s
        .req(Method::GET, "/api/health")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let chat_port = s.chat_url.rsplit(':').next().unwrap();
    assert!(!text.contains(&s.chat_url), "{text}");
    assert!(!text.contains(chat_port), "{text}");
    let health: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        health["chat_services"][0]["name"], "chat-service-1",
        "{health}"
    );
    assert_eq!(health["chat_services"][0]["status"], "ok", "{health}");
    // An ordinary user sees no more; a METRICS_TOKEN holder does.
    let text = s
        .authed(&access, Method::GET, "/api/health")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains(&s.chat_url), "{text}");
    let mut config = common::gateway_config(&s.chat_url);
    config.metrics.token = Some("metrics-secret".into());
    let gw = common::gateway(db, &config).await;
    let health: Value = s
        .client
        .get(format!("{}/api/health", gw.url()))
        .bearer_auth("metrics-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        health["chat_services"][0]["url"],
        s.chat_url.as_str(),
        "{health}"
    );
}

/// POSTs a login for `email` as if from `ip` (through a trusted proxy).
async fn login_from(s: &Stack, ip: &str, email: &str, password: &str) -> (u16, Value) {
    let resp = s
        .req(Method::POST, "/api/auth/login")
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The message without its figures (the wait differs between answers).
fn shape(body: &Value) -> (String, String) {
    let message: String = body["message"]
        .as_str()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .collect();
    (body["error"].as_str().unwrap_or("").to_owned(), message)
}

async fn logins_are_throttled_per_account_and_per_ipv6_64(db: Db) {
    let s = Stack::start_configured(db, "echo", FakeLlmConfig::default(), |c| {
        c.trusted_proxies = api_gateway::client_ip::TrustedProxies::parse("127.0.0.1").unwrap();
        c.auth_rate_per_minute = 3;
        c.login_failures_per_account = 4;
    })
    .await;
    s.register("victim@example.com").await;
    // The attack: password guesses spread over many addresses.
    let mut ip = 0;
    let mut next_ip = || {
        ip += 1;
        format!("198.51.100.{ip}")
    };
    let mut answers = Vec::new();
    for _ in 0..4 {
        let (status, body) = login_from(&s, &next_ip(), "victim@example.com", "guess 12345").await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, locked) = login_from(&s, &next_ip(), "Victim@Example.com ", "guess 99999").await;
    assert_eq!(status, 429, "{locked}");
    answers.push(shape(&locked));
    // The right password does not get through the lock either.
    let (status, body) = login_from(&s, &next_ip(), "victim@example.com", "correct horse 42").await;
    assert_eq!(status, 429, "{body}");
    // An unknown account gets exactly the same answers.
    for _ in 0..4 {
        let (status, body) = login_from(&s, &next_ip(), "nobody@example.com", "guess 12345").await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, unknown) = login_from(&s, &next_ip(), "nobody@example.com", "guess 1").await;
    assert_eq!(status, 429, "{unknown}");
    answers.push(shape(&unknown));
    assert_eq!(answers[0], answers[1]);
    // Successful sign-ins do not count: another account signs in often.
    s.register("busy@example.com").await;
    for _ in 0..6 {
        let (status, body) =
            login_from(&s, &next_ip(), "busy@example.com", "correct horse 42").await;
        assert_eq!(status, 200, "{body}");
    }
    // IPv6: addresses of one /64 share a bucket (3 a minute here) ...
    for (i, addr) in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"]
        .iter()
        .enumerate()
    {
        let (status, body) = login_from(&s, addr, &format!("v6-{i}@example.com"), "x").await;
        assert_eq!(status, 401, "{addr}: {body}");
    }
    let (status, body) = login_from(&s, "2001:db8:1:2:aaaa::4", "v6-4@example.com", "x").await;
    assert_eq!(status, 429, "{body}");
    // ... and the next /64 is another client.
    let (status, body) = login_from(&s, "2001:db8:1:3::1", "v6-5@example.com", "x").await;
    assert_eq!(status, 401, "{body}");
}

// ---------------------------------------------------------------------------
// A real gateway process, for figures read from /proc.

/// A gateway binary started on 127.0.0.1:0; killed on drop.
struct GatewayProcess {
    child: Child,
    url: String,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl GatewayProcess {
    /// Starts `api-gateway` over a fresh SQLite file with `extra` variables.
    fn start(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let stderr = dir.path().join("stderr.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_api-gateway"));
        cmd.current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "DATABASE_URL",
                format!("sqlite://{}/gw.db", dir.path().display()),
            )
            .env("GATEWAY_BIND", "127.0.0.1:0")
            .env("JWT_SECRET", SECRET)
            .env("CHAT_SERVICE_URLS", "http://127.0.0.1:9")
            .env("CONFAB_DEMO_CATALOG", "false")
            .env("HTTP_WORKERS", "2")
            .env("LOG_LEVEL", "warn")
            .env("RATE_LIMIT_AUTH_PER_MIN", "1000");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "the gateway did not start: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            });
        Self {
            child,
            url: url.replace("0.0.0.0", "127.0.0.1"),
            stderr,
            _dir: dir,
        }
    }

    /// A `kB` figure of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in MiB.
    fn status_mib(&self, field: &str) -> f64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap()
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap();
        kb / 1024.0
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn register(client: &reqwest::Client, url: &str, email: &str) -> String {
    let resp = client
        .post(format!("{url}/api/auth/register"))
        .json(&json!({"email": email, "password": "correct horse 42"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    body["tokens"]["access_token"].as_str().unwrap().to_owned()
}

/// Concurrent maximum-size `/v1` bodies and 30 MB bodies (the issue's
/// attack, sent chunked so that nothing is known in advance) keep the
/// gateway's peak resident memory (`VmHWM`) within [`RSS_GROWTH_MIB`] of
/// what it was before.
const RSS_GROWTH_MIB: f64 = 96.0;
/// Concurrent maximum-size bodies.
const CONCURRENT: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_stays_bounded_under_concurrent_large_bodies() {
    if !Path::new("/proc/self/status").exists() {
        eprintln!("SKIPPED: no /proc");
        return;
    }
    let gw = GatewayProcess::start(&[]);
    let client = reqwest::Client::new();
    let token = register(&client, &gw.url, "mem@example.com").await;
    // Warm up: a few ordinary requests of each kind.
    for _ in 0..3 {
        let resp = client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(&token)
            .body(zeros_body(10))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
    }
    let before = gw.status_mib("VmHWM");
    let started = Instant::now();
    // Just under 1 MiB: the largest body /v1 takes.
    let max_body = zeros_body((1024 * 1024 - 100) / 2);
    assert!(max_body.len() <= 1024 * 1024);
    let mut tasks = Vec::new();
    for i in 0..CONCURRENT {
        let (client, url, token, body) = (
            client.clone(),
            gw.url.clone(),
            token.clone(),
            max_body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let resp = client
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(&token)
                .body(body)
                .send()
                .await
                .unwrap();
            (i, resp.status().as_u16())
        }));
    }
    for _ in 0..3 {
        let (client, url, token) = (client.clone(), gw.url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            // 30 MB of the attack shape, chunked.
            let mut chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                vec![Ok(br#"{"messages":[{"role":"user","content":[0"#.to_vec())];
            for _ in 0..(30 * 1024 * 1024 / (64 * 1024)) {
                chunks.push(Ok(b",0".repeat(32 * 1024)));
            }
            chunks.push(Ok(b"]}]}".to_vec()));
            let resp = client
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(&token)
                .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                    chunks,
                )))
                .send()
                .await;
            (99, resp.map(|r| r.status().as_u16()).unwrap_or(413))
        }));
    }
    for t in tasks {
        let (i, status) = t.await.unwrap();
        assert!(
            status == 400 || status == 413 || status == 503,
            "request {i}: {status}"
        );
    }
    let after = gw.status_mib("VmHWM");
    let rss = gw.status_mib("VmRSS");
    eprintln!(
        "gateway VmHWM {before:.1} MiB -> {after:.1} MiB (VmRSS now {rss:.1} MiB) over {CONCURRENT} \
         concurrent 1 MiB bodies + 3 x 30 MB, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        after - before < RSS_GROWTH_MIB,
        "peak RSS grew by {:.1} MiB (limit {RSS_GROWTH_MIB} MiB)",
        after - before
    );
    // Nothing changed: the gateway still answers.
    let resp = client
        .get(format!("{}/api/users/me", gw.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.stderr_text());
}

/// `GET /metrics` open on a public address: a warning at start.
#[tokio::test]
async fn an_open_metrics_endpoint_is_warned_about() {
    let gw = GatewayProcess::start(&[("GATEWAY_BIND", "0.0.0.0:0")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !gw.stderr_text().contains("METRICS_TOKEN") {
        assert!(
            Instant::now() < deadline,
            "no warning about /metrics: {}",
            gw.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(gw);
    // Protected, or on loopback: no warning.
    for extra in [
        vec![("GATEWAY_BIND", "0.0.0.0:0"), ("METRICS_TOKEN", "t0ken")],
        vec![],
    ] {
        let gw = GatewayProcess::start(&extra);
        let resp = reqwest::get(format!("{}/", gw.url)).await.unwrap();
        let _ = resp.status();
        assert!(
            !gw.stderr_text().contains("METRICS_TOKEN"),
            "{}",
            gw.stderr_text()
        );
    }
}

confab_testkit::backend_tests!(
    dot_segments_never_reach_internal_routes,
    bodies_are_limited_per_route_and_read_only_when_allowed,
    only_allowed_models_can_be_picked,
    stats_and_health_show_no_one_else,
    logins_are_throttled_per_account_and_per_ipv6_64,
);
