//! The gateway end to end: accounts, JWT attacks, the proxy to a real
//! chat-service (REST, SSE, WebSocket), isolation between users, the
//! OpenAI-compatible API, and chat-service being down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{SECRET, Stack, sse_data};
use confab_store::Db;
use confab_testkit::FakeLlmConfig;
use confab_testkit::ws::WsClient;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

fn fast() -> FakeLlmConfig {
    FakeLlmConfig::default()
}

async fn status_and_body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn auth_flows(db: Db) {
    let s = Stack::start(db, "echo", fast()).await;
    let (_, access, refresh) = s.register("Ann@Example.com").await;
    // Duplicate in another case.
    let (status, body) = status_and_body(
        s.req(Method::POST, "/api/auth/register")
            .json(&json!({"email": "ann@EXAMPLE.com", "password": "another pass 77"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("email_taken")));
    // Weak passwords: a clear message.
    for weak in ["short1", "aaaaaaaaaaaa", "123456789012", "weak@example.com"] {
        let (status, body) = status_and_body(
            s.req(Method::POST, "/api/auth/register")
                .json(&json!({"email": "weak@example.com", "password": weak}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 422, "{weak}: {body}");
        assert_eq!(body["error"], "weak_password");
        assert!(body["message"].as_str().unwrap().len() > 10);
    }
    // Login, wrong password.
    let (status, body) = status_and_body(
        s.req(Method::POST, "/api/auth/login")
            .json(&json!({"email": "ANN@example.com", "password": "correct horse 42"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = status_and_body(
        s.req(Method::POST, "/api/auth/login")
            .json(&json!({"email": "ann@example.com", "password": "wrong horse 42"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_credentials"))
    );
    // Me, settings.
    let (status, me) = status_and_body(
        s.authed(&access, Method::GET, "/api/users/me")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(me["email"], "ann@example.com");
    let (status, me) = status_and_body(
        s.authed(&access, Method::PATCH, "/api/users/me")
            .json(&json!({"settings": {"ai_style": "socratic"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(me["settings"]["ai_style"], "socratic");
    let (status, _) = status_and_body(
        s.authed(&access, Method::PATCH, "/api/users/me")
            .json(&json!({"settings": {"ai_style": "shouty"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    // Refresh rotates; the old one is then refused; logout revokes.
    let (status, tokens) = status_and_body(
        s.req(Method::POST, "/api/auth/refresh")
            .json(&json!({"refresh_token": refresh}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let new_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, _) = status_and_body(
        s.req(Method::POST, "/api/auth/refresh")
            .json(&json!({"refresh_token": refresh}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "a spent refresh token is refused");
    let (status, _) = status_and_body(
        s.req(Method::POST, "/api/auth/refresh")
            .json(&json!({"refresh_token": new_refresh}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "reuse revoked the whole family");
    let (_, tokens) = status_and_body(
        s.req(Method::POST, "/api/auth/login")
            .json(&json!({"email": "ann@example.com", "password": "correct horse 42"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = tokens["tokens"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = s
        .req(Method::POST, "/api/auth/logout")
        .json(&json!({"refresh_token": r}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, _) = status_and_body(
        s.req(Method::POST, "/api/auth/refresh")
            .json(&json!({"refresh_token": r}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "refresh after logout");
    // Courses and progress.
    let (status, cards) = status_and_body(
        s.authed(&access, Method::GET, "/api/dashboard/tracks")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let cards = cards["items"].as_array().unwrap().clone();
    assert!(cards.len() >= 2);
    let track_id = cards[0]["id"].as_str().unwrap();
    let (_, track) = status_and_body(
        s.authed(&access, Method::GET, &format!("/api/tracks/{track_id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let lesson_id = track["modules"][0]["lessons"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, lesson) = status_and_body(
        s.authed(&access, Method::GET, &format!("/api/lessons/{lesson_id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(lesson["content"].as_str().unwrap().len() > 200);
    for _ in 0..2 {
        let resp = s
            .authed(
                &access,
                Method::POST,
                &format!("/api/lessons/{lesson_id}/complete"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let (_, progress) = status_and_body(
        s.authed(&access, Method::GET, "/api/users/me/progress")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(progress["completed_lessons"], json!([lesson_id]));
    let (_, cards) = status_and_body(
        s.authed(&access, Method::GET, "/api/dashboard/tracks")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let card = cards["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == track_id)
        .unwrap()
        .clone();
    assert!(card["progress_percent"].as_f64().unwrap() > 0.0);
    let (status, _) = status_and_body(
        s.authed(&access, Method::GET, "/api/tracks/nope")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}

/// An HS256 token of `claims` signed with `secret`.
fn forge(claims: Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

async fn jwt_attacks(db: Db) {
    let s = Stack::start(db, "echo", fast()).await;
    let (user_id, access, _) = s.register("bob@example.com").await;
    let now = chrono::Utc::now().timestamp();
    let claims = |iat: i64, nbf: i64, exp: i64| {
        json!({"sub": user_id, "role": "user", "ver": 0, "iat": iat, "nbf": nbf, "exp": exp,
               "iss": "confab", "jti": "x", "typ": "access"})
    };
    let good = forge(claims(now, now, now + 600), SECRET.as_bytes());
    let resp = s
        .authed(&good, Method::GET, "/api/users/me")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        200,
        "a well-formed token signed with the secret works"
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims(now, now, now + 600).to_string())
    );
    let wrong_sig = forge(
        claims(now, now, now + 600),
        b"another-secret-that-is-long-enough-000000",
    );
    let expired = forge(
        claims(now - 7200, now - 7200, now - 3600),
        SECRET.as_bytes(),
    );
    let future = forge(claims(now, now + 3600, now + 7200), SECRET.as_bytes());
    let tampered = {
        let mut parts: Vec<String> = access.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(
            claims(now, now, now + 600)
                .to_string()
                .replace("\"user\"", "\"admin\""),
        );
        parts.join(".")
    };
    for (name, token) in [
        ("alg none", none.as_str()),
        ("wrong signature", wrong_sig.as_str()),
        ("expired", expired.as_str()),
        ("not yet valid", future.as_str()),
        ("tampered claims", tampered.as_str()),
        ("garbage", "not.a.jwt"),
        ("empty", ""),
    ] {
        let (status, body) = status_and_body(
            s.authed(token, Method::GET, "/api/users/me")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401, "{name}: {body}");
        assert!(body["error"].is_string(), "{name}");
        // Chat routes too.
        let (status, _) = status_and_body(
            s.authed(token, Method::GET, "/api/sessions")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401, "{name} on a chat route");
    }
    // No credentials at all.
    let (status, _) =
        status_and_body(s.req(Method::GET, "/api/sessions").send().await.unwrap()).await;
    assert_eq!(status, 401);
    // A token of a deleted user.
    let accounts = confab_accounts::Accounts::new(
        s.db.clone(),
        confab_accounts::AccountsConfig::new(confab_accounts::JwtConfig::new(
            SECRET.as_bytes().to_vec(),
        )),
    )
    .unwrap();
    accounts
        .users
        .delete_user(uuid::Uuid::parse_str(&user_id).unwrap())
        .await
        .unwrap();
    let (status, _) = status_and_body(
        s.authed(&access, Method::GET, "/api/users/me")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401, "deleted user");
}

async fn chat_through_the_gateway(db: Db) {
    let slow = FakeLlmConfig {
        token_delay: Duration::from_millis(50),
        tokens: Some(30),
        ..FakeLlmConfig::default()
    };
    let s = Stack::start(db, "slow", slow).await;
    let (_, access, _) = s.register("carol@example.com").await;
    // SSE: the first events arrive long before the answer ends.
    let started = Instant::now();
    let resp = s
        .authed(&access, Method::GET, "/api/chat/stream?message=hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let mut first_token_at = None;
    while let Some(chunk) = body.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        if first_token_at.is_none() && text.contains("\"type\":\"token\"") {
            first_token_at = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let first = first_token_at.unwrap();
    assert!(total >= Duration::from_millis(30 * 50), "{total:?}");
    assert!(
        first < total / 2,
        "first token at {first:?} of {total:?}: streamed, not buffered"
    );
    let events: Vec<Value> = sse_data(&text)
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events.last().unwrap()["type"], "done");
    assert_eq!(events.iter().filter(|e| e["type"] == "token").count(), 30);
    let session_id = events.last().unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // WebSocket with ?token= (browsers), resuming the SSE session.
    let url = format!(
        "{}/ws/chat?token={access}",
        s.url.replace("http://", "ws://")
    );
    let mut ws = WsClient::connect(&url, &[]).await.unwrap();
    let events = ws
        .converse(
            &json!({"type": "init", "agent": "dashboard", "session_id": session_id}),
            &json!({"type": "chat_message", "content": "again"}),
        )
        .await;
    assert_eq!(events[0]["type"], "ready");
    assert_eq!(events[0]["history"].as_array().unwrap().len(), 2);
    assert_eq!(events.last().unwrap()["type"], "done");
    assert_eq!(events.last().unwrap()["session_id"], session_id.as_str());

    // Header auth on WS; a client that goes away cancels upstream.
    let url = format!("{}/ws/chat", s.url.replace("http://", "ws://"));
    let bearer = format!("Bearer {access}");
    let mut ws = WsClient::connect(&url, &[("Authorization", bearer.as_str())])
        .await
        .unwrap();
    ws.send(&json!({"message": "bye"})).await;
    let mut tokens = 0;
    while tokens < 2 {
        if ws.event().await["type"] == "token" {
            tokens += 1;
        }
    }
    let before = s.llm.disconnects();
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.llm.disconnects() <= before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        s.llm.disconnects() > before,
        "the upstream generation was cancelled"
    );

    // Without a token: 401, no upgrade.
    let url = format!("{}/ws/chat", s.url.replace("http://", "ws://"));
    assert!(tokio_tungstenite::connect_async(url).await.is_err());

    // REST through the gateway: export with Content-Disposition.
    let resp = s
        .authed(
            &access,
            Method::GET,
            &format!("/api/sessions/{session_id}/export?format=markdown"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    assert!(resp.text().await.unwrap().contains("again"));
}

async fn users_are_isolated_through_the_gateway(db: Db) {
    let s = Stack::start(db, "echo", fast()).await;
    let (_, a, _) = s.register("a@example.com").await;
    let (_, b, _) = s.register("b@example.com").await;
    let resp = s
        .authed(&a, Method::POST, "/api/chat")
        .json(&json!({"message": "secret plans"}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let sid = body["session_id"].as_str().unwrap().to_owned();
    let mid = body["message_id"].as_str().unwrap().to_owned();
    s.authed(&a, Method::POST, "/api/memory")
        .json(&json!({"content": "a likes tea"}))
        .send()
        .await
        .unwrap();
    for (method, path, body) in [
        (Method::GET, format!("/api/sessions/{sid}"), None),
        (Method::GET, format!("/api/sessions/{sid}/messages"), None),
        (
            Method::GET,
            format!("/api/sessions/{sid}/export?format=json"),
            None,
        ),
        (Method::GET, format!("/api/sessions/{sid}/statistics"), None),
        (
            Method::PATCH,
            format!("/api/sessions/{sid}"),
            Some(json!({"title": "mine"})),
        ),
        (Method::DELETE, format!("/api/sessions/{sid}"), None),
        (Method::POST, format!("/api/sessions/{sid}/archive"), None),
        (
            Method::PATCH,
            format!("/api/messages/{mid}"),
            Some(json!({"content": "x"})),
        ),
        (Method::DELETE, format!("/api/messages/{mid}"), None),
        (
            Method::POST,
            "/api/chat".to_owned(),
            Some(json!({"message": "hi", "session_id": sid})),
        ),
        (
            Method::GET,
            format!("/api/chat/stream?message=hi&session_id={sid}"),
            None,
        ),
    ] {
        let mut req = s.authed(&b, method.clone(), &path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let (status, body) = status_and_body(req.send().await.unwrap()).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    for path in [
        "/api/sessions",
        "/api/sessions/search?q=secret",
        "/api/messages/search?q=secret",
        "/api/memory",
    ] {
        let (status, body) =
            status_and_body(s.authed(&b, Method::GET, path).send().await.unwrap()).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            !body.to_string().contains("secret plans") && !body.to_string().contains("tea"),
            "{path}: {body}"
        );
    }
    // B cannot resume A's session over WS.
    let url = format!("{}/ws/chat?token={b}", s.url.replace("http://", "ws://"));
    let mut ws = WsClient::connect(&url, &[]).await.unwrap();
    ws.send(&json!({"type": "init", "agent": "dashboard", "session_id": sid}))
        .await;
    let e = ws.event().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("not_found"))
    );
    // A forged identity header is ignored: B stays B.
    let (status, _) = status_and_body(
        s.authed(&b, Method::GET, &format!("/api/sessions/{sid}"))
            .header("X-User-Id", "whoever")
            .header("X-Internal-Auth", common::KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    // A still sees everything.
    let (status, _) = status_and_body(
        s.authed(&a, Method::GET, &format!("/api/sessions/{sid}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}

async fn openai_api(db: Db) {
    let s = Stack::start(db, "echo", fast()).await;
    let (_, access, _) = s.register("dev@example.com").await;
    let (status, key) = status_and_body(
        s.authed(&access, Method::POST, "/api/users/me/api-keys")
            .json(&json!({"name": "sdk", "password": "correct horse 42"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201);
    let api_key = key["key"].as_str().unwrap().to_owned();
    let (status, models) = status_and_body(
        s.authed(&api_key, Method::GET, "/v1/models")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(models["object"], "list");
    let body = json!({"model": "confab", "messages": [
        {"role": "system", "content": "Be nice."},
        {"role": "user", "content": [{"type": "text", "text": "hello world"}]}
    ]});
    let (status, done) = status_and_body(
        s.authed(&api_key, Method::POST, "/v1/chat/completions")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["object"], "chat.completion");
    assert_eq!(done["choices"][0]["message"]["content"], "hello world");
    assert_eq!(done["choices"][0]["finish_reason"], "stop");
    assert!(done["usage"]["total_tokens"].as_u64().unwrap() > 0);
    // Streaming.
    let mut body = body.clone();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = s
        .authed(&api_key, Method::POST, "/v1/chat/completions")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let data = sse_data(&resp.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "hello world");
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str())
        .unwrap();
    assert_eq!(finish, "stop");
    assert!(
        chunks.last().unwrap()["usage"]["total_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Errors in OpenAI's shape.
    for (body, status) in [
        (
            json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}),
            404,
        ),
        (json!({"model": "confab", "messages": []}), 400),
        (
            json!({"model": "confab", "messages": [{"role": "wizard", "content": "x"}]}),
            400,
        ),
        (json!({"messages": "nope"}), 400),
    ] {
        let (got, err) = status_and_body(
            s.authed(&api_key, Method::POST, "/v1/chat/completions")
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(got, status, "{body}: {err}");
        assert!(err["error"]["message"].is_string(), "{err}");
    }
    // A revoked key no longer works.
    let kid = key["id"].as_str().unwrap();
    let resp = s
        .authed(
            &access,
            Method::DELETE,
            &format!("/api/users/me/api-keys/{kid}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = s
        .authed(&api_key, Method::GET, "/v1/models")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["error"]["type"], "authentication_error",
        "OpenAI error shape: {body}"
    );
}

async fn chat_service_down_is_a_quick_503(db: Db) {
    let mut s = Stack::start(db, "echo", fast()).await;
    let (_, access, _) = s.register("eve@example.com").await;
    s.chat.take().unwrap().shutdown().await.unwrap();
    for path in ["/api/sessions", "/api/chat/stream?message=hi"] {
        let started = Instant::now();
        let (status, body) =
            status_and_body(s.authed(&access, Method::GET, path).send().await.unwrap()).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(body["error"], "unavailable");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    let url = format!(
        "{}/ws/chat?token={access}",
        s.url.replace("http://", "ws://")
    );
    let started = Instant::now();
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 503),
        other => panic!("expected 503, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    let (status, health) =
        status_and_body(s.req(Method::GET, "/api/health").send().await.unwrap()).await;
    assert_eq!(status, 503);
    assert_eq!(health["chat_services"][0]["status"], "unreachable");
    // Accounts still work without chat-service.
    let (status, _) = status_and_body(
        s.authed(&access, Method::GET, "/api/users/me")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}

async fn gateway_restart_keeps_sessions_and_tokens(db: Db) {
    let s = Stack::start(db.clone(), "echo", fast()).await;
    let (_, access, refresh) = s.register("gina@example.com").await;
    let resp = s
        .authed(&access, Method::POST, "/api/chat")
        .json(&json!({"message": "before restart"}))
        .send()
        .await
        .unwrap();
    let sid = resp.json::<Value>().await.unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let Stack {
        gateway,
        chat_url,
        client,
        llm,
        chat,
        ..
    } = s;
    gateway.shutdown().await.unwrap();
    // A new gateway process (same database and secret, nothing else shared).
    let gateway = common::gateway(db, &common::gateway_config(&chat_url)).await;
    let url = gateway.url();
    let resp = client
        .post(format!("{url}/api/chat"))
        .bearer_auth(&access)
        .json(&json!({"message": "after restart", "session_id": sid}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let messages: Value = client
        .get(format!("{url}/api/sessions/{sid}/messages"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(messages["items"].as_array().unwrap().len(), 4);
    let resp = client
        .post(format!("{url}/api/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "refresh tokens survive a restart");
    drop((llm, chat));
}

/// `GET /api/users/me` with `token`: the status.
async fn me_status(s: &Stack, token: &str) -> u16 {
    s.authed(token, Method::GET, "/api/users/me")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `POST /api/auth/refresh` with `refresh`: the status and body.
async fn refresh_with(s: &Stack, refresh: &str) -> (u16, Value) {
    status_and_body(
        s.req(Method::POST, "/api/auth/refresh")
            .json(&json!({ "refresh_token": refresh }))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// `POST /api/auth/login`: the status and body.
async fn login_with(s: &Stack, email: &str, password: &str) -> (u16, Value) {
    status_and_body(
        s.req(Method::POST, "/api/auth/login")
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// A stack whose gateway caches the signed-in user (off by default without
/// Redis), so these tests see a stale cache entry if a route forgets to
/// drop it.
async fn caching_stack(db: Db) -> Stack {
    Stack::start_configured(db, "echo", fast(), |c| {
        c.cache_user_ttl = Duration::from_secs(300);
    })
    .await
}

/// Log out everywhere: every access token (even one the cache holds) and
/// every refresh token of the user stop working; other users are untouched.
async fn logout_everywhere(db: Db) {
    let s = caching_stack(db).await;
    let (_, access, refresh) = s.register("lou@example.com").await;
    let (status, second) = login_with(&s, "lou@example.com", "correct horse 42").await;
    assert_eq!(status, 200);
    let access2 = second["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh2 = second["tokens"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, other, _) = s.register("other@example.com").await;
    // Without a token: 401.
    let (status, body) = status_and_body(
        s.req(Method::POST, "/api/auth/logout-all")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    // Warm the cache with both access tokens.
    assert_eq!(me_status(&s, &access).await, 200);
    assert_eq!(me_status(&s, &access2).await, 200);
    assert_eq!(me_status(&s, &other).await, 200);
    let resp = s
        .authed(&access, Method::POST, "/api/auth/logout-all")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(me_status(&s, &access).await, 401, "the cached token");
    assert_eq!(me_status(&s, &access2).await, 401, "the other session");
    let (status, body) = refresh_with(&s, &refresh).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = refresh_with(&s, &refresh2).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(me_status(&s, &other).await, 200, "another user");
    // Signing in again works.
    let (status, body) = login_with(&s, "lou@example.com", "correct horse 42").await;
    assert_eq!(status, 200);
    let fresh = body["tokens"]["access_token"].as_str().unwrap();
    assert_eq!(me_status(&s, fresh).await, 200);
}

/// Password change: checks the current password and the new one's
/// strength (nothing changes when refused), then signs out every session
/// and answers a fresh token pair.
async fn password_change(db: Db) {
    let s = caching_stack(db).await;
    let email = "pat@example.com";
    let (old_pw, new_pw) = ("correct horse 42", "battery staple 77");
    let (_, access, refresh) = s.register(email).await;
    let (_, second) = login_with(&s, email, old_pw).await;
    let access2 = second["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(me_status(&s, &access).await, 200);
    assert_eq!(me_status(&s, &access2).await, 200);
    let change = |token: &str, current: &str, new: &str| {
        s.authed(token, Method::POST, "/api/users/me/password")
            .json(&json!({ "current_password": current, "new_password": new }))
            .send()
    };
    // Wrong current password: 401, nothing changed.
    let (status, body) =
        status_and_body(change(&access, "not my password 1", new_pw).await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_credentials")),
        "{body}"
    );
    // Weak new password: 422 with the validation message, nothing changed.
    for weak in ["short1", "aaaaaaaaaaaa", "pat@example.com"] {
        let (status, body) = status_and_body(change(&access, old_pw, weak).await.unwrap()).await;
        assert_eq!(status, 422, "{weak}: {body}");
        assert_eq!(body["error"], "weak_password");
        assert!(body["message"].as_str().unwrap().len() > 10, "{body}");
    }
    // Malformed bodies: JSON errors.
    let (status, body) = status_and_body(
        s.authed(&access, Method::POST, "/api/users/me/password")
            .json(&json!({ "new_password": new_pw }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(status == 400 || status == 422, "{status} {body}");
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(me_status(&s, &access).await, 200, "still signed in");
    assert_eq!(login_with(&s, email, new_pw).await.0, 401);
    assert_eq!(login_with(&s, email, old_pw).await.0, 200);
    // Without a token: 401.
    let (status, _) = status_and_body(
        s.req(Method::POST, "/api/users/me/password")
            .json(&json!({ "current_password": old_pw, "new_password": new_pw }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);

    // The change.
    let (status, body) = status_and_body(change(&access, old_pw, new_pw).await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let new_access = body["tokens"]["access_token"].as_str().unwrap().to_owned();
    let new_refresh = body["tokens"]["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(me_status(&s, &access).await, 401, "old (cached) token");
    assert_eq!(me_status(&s, &access2).await, 401, "other session");
    assert_eq!(refresh_with(&s, &refresh).await.0, 401, "old refresh token");
    assert_eq!(login_with(&s, email, old_pw).await.0, 401, "old password");
    assert_eq!(me_status(&s, &new_access).await, 200, "returned token");
    let (status, body) = refresh_with(&s, &new_refresh).await;
    assert_eq!(status, 200, "returned refresh token: {body}");
    assert_eq!(
        me_status(&s, body["access_token"].as_str().unwrap()).await,
        200
    );
    let (status, body) = login_with(&s, email, new_pw).await;
    assert_eq!(status, 200, "new password: {body}");
}

/// Deleting one's account needs the password; then the account, its
/// tokens and its API keys are gone.
async fn delete_account(db: Db) {
    let s = caching_stack(db).await;
    let email = "del@example.com";
    let (user_id, access, refresh) = s.register(email).await;
    let key = s.api_key(&access, "cli").await;
    assert_eq!(me_status(&s, &access).await, 200);
    assert_eq!(me_status(&s, &key).await, 200);
    let delete = |token: &str, password: &str| {
        s.authed(token, Method::DELETE, "/api/users/me")
            .json(&json!({ "password": password }))
            .send()
    };
    let (status, body) = status_and_body(delete(&access, "not my password 1").await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_credentials")),
        "{body}"
    );
    let (status, body) = status_and_body(
        s.authed(&access, Method::DELETE, "/api/users/me")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(status == 400 || status == 422, "no body: {status} {body}");
    assert_eq!(me_status(&s, &access).await, 200, "still there");
    assert_eq!(login_with(&s, email, "correct horse 42").await.0, 200);

    let resp = delete(&access, "correct horse 42").await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(me_status(&s, &access).await, 401, "old (cached) token");
    assert_eq!(me_status(&s, &key).await, 401, "API key");
    assert_eq!(refresh_with(&s, &refresh).await.0, 401);
    assert_eq!(login_with(&s, email, "correct horse 42").await.0, 401);
    let (status, _) = status_and_body(delete(&access, "correct horse 42").await.unwrap()).await;
    assert_eq!(status, 401, "twice");
    let accounts = confab_accounts::Accounts::new(
        s.db.clone(),
        confab_accounts::AccountsConfig::new(confab_accounts::JwtConfig::new(
            SECRET.as_bytes().to_vec(),
        )),
    )
    .unwrap();
    assert!(
        accounts
            .users
            .get_user(uuid::Uuid::parse_str(&user_id).unwrap())
            .await
            .is_err(),
        "the row is gone"
    );
}

/// The `Retry-After` of a 429 (which must carry one), in seconds.
fn retry_after(resp: &reqwest::Response) -> u64 {
    common::retry_after_secs(resp).expect("a 429 carries Retry-After")
}

/// The per-user rate limit answers 429 with `Retry-After`, on the REST
/// routes (JSON error) and the OpenAI ones (OpenAI's error shape).
async fn per_user_429_has_retry_after(db: Db) {
    let s = Stack::start_configured(db, "echo", fast(), |c| c.user_rate_per_minute = 3).await;
    let (_, access, _) = s.register("busy@example.com").await;
    for i in 0..3 {
        assert_eq!(me_status(&s, &access).await, 200, "request {i}");
    }
    let resp = s
        .authed(&access, Method::GET, "/api/users/me")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let secs = retry_after(&resp);
    // 3 a minute: the next token is about 20 s away.
    assert!((1..=20).contains(&secs), "{secs}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");

    let resp = s
        .authed(&access, Method::POST, "/v1/chat/completions")
        .json(&json!({"model": "confab", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let secs = retry_after(&resp);
    assert!((1..=20).contains(&secs), "{secs}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    let resp = s
        .authed(&access, Method::GET, "/v1/models")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(retry_after(&resp) >= 1);
}

confab_testkit::backend_tests!(
    gateway_restart_keeps_sessions_and_tokens,
    auth_flows,
    jwt_attacks,
    chat_through_the_gateway,
    users_are_isolated_through_the_gateway,
    openai_api,
    chat_service_down_is_a_quick_503,
    logout_everywhere,
    password_change,
    delete_account,
    per_user_429_has_retry_after,
);
