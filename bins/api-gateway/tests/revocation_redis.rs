//! Issue 17 items 4, 5 and 8 across replicas sharing one Redis: two real
//! gateways and two real chat-services on 127.0.0.1 over one database.
//! - a key revoked through gateway A is refused by gateway B at once,
//!   although B had it cached;
//! - a WebSocket open on gateway B closes within seconds when the user
//!   logs out everywhere through gateway A;
//! - the per-user cap on concurrent generations holds across chat-service
//!   replicas (counted in Redis).
//!
//! Needs `TEST_REDIS_URL` (`scripts/with-redis.sh cargo test -p api-gateway
//! --test revocation_redis`); without it these tests print SKIPPED, unless
//! `CONFAB_REQUIRE_REDIS=1` (CI), which fails them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use actix_web::web;
use chat_service::AppState;
use chat_service::chat::ChatLimits;
use common::{KEY, PASSWORD, SECRET, Stack, gateway_config};
use confab_history::HistoryConfig;
use confab_llm::LlmConfig;
use confab_store::Db;
use confab_testkit::{FakeLlm, FakeLlmConfig, TestDb};
use confab_web::Vars;
use futures_util::{SinkExt, StreamExt};
use reqwest::{Client, Method};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `TEST_REDIS_URL`, or a loud skip (a failure under `CONFAB_REQUIRE_REDIS=1`).
fn redis_url(test: &str) -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CONFAB_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("CONFAB_REQUIRE_REDIS=1 but TEST_REDIS_URL is not set ({test})");
            }
            eprintln!(
                "SKIPPED {test}: TEST_REDIS_URL is not set (run under scripts/with-redis.sh)"
            );
            None
        }
    }
}

/// A key prefix no other test uses.
fn prefix() -> String {
    format!("confab-test-{}:", uuid::Uuid::new_v4().simple())
}

/// A chat-service replica with these limits.
async fn chat_replica(db: Db, llm: &FakeLlm, limits: ChatLimits) -> chat_service::Running {
    let vars = Vars::from_pairs([
        ("AGENT_RUNTIME__LLM_PROXY_URL", llm.base_url()),
        ("AGENT_RUNTIME__LLM_MODEL", "slow".to_owned()),
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
    let mut config = chat_service::Config::for_database("sqlite://unused.db").unwrap();
    config.http.workers = Some(2);
    config.http.shutdown_grace = Duration::from_secs(1);
    config.auth = confab_web::AuthConfig::with_internal_key(KEY);
    chat_service::serve(web::Data::new(state), &config).unwrap()
}

/// A gateway replica in front of `chat_urls`, sharing `redis` under `prefix`.
async fn gateway_replica(
    db: &Db,
    chat_urls: &str,
    redis: &str,
    prefix: &str,
) -> api_gateway::Running {
    let mut config = gateway_config(chat_urls);
    config.redis_url = Some(redis.to_owned());
    config.redis_key_prefix = prefix.to_owned();
    config.cache_user_ttl = Duration::from_secs(30);
    config.cache_api_key_ttl = Duration::from_secs(30);
    let state = api_gateway::build_state(db.clone(), &config, SECRET.to_owned()).unwrap();
    state.accounts.catalog.load_demo_if_empty().await.unwrap();
    api_gateway::serve(web::Data::new(state), &config).unwrap()
}

/// Two gateways (A, B) over two chat-services sharing Redis, generations
/// capped at `cap` per user.
struct Replicas {
    a: Stack,
    b_url: String,
    _b: api_gateway::Running,
    _chat2: chat_service::Running,
}

async fn replicas(db: Db, redis: &str, cap: usize) -> Replicas {
    let prefix = prefix();
    let llm = FakeLlm::start_with(FakeLlmConfig {
        token_delay: Duration::from_millis(100),
        tokens: Some(1000),
        ..FakeLlmConfig::default()
    })
    .await;
    let limits = ChatLimits {
        max_generations_per_user: cap,
        redis_url: Some(redis.to_owned()),
        redis_key_prefix: prefix.clone(),
        ..ChatLimits::default()
    };
    let chat1 = chat_replica(db.clone(), &llm, limits.clone()).await;
    let chat2 = chat_replica(db.clone(), &llm, limits).await;
    let urls = format!("{},{}", chat1.url(), chat2.url());
    let a = gateway_replica(&db, &urls, redis, &prefix).await;
    let b = gateway_replica(&db, &urls, redis, &prefix).await;
    Replicas {
        a: Stack {
            url: a.url(),
            chat_url: chat1.url(),
            llm,
            gateway: a,
            chat: Some(chat1),
            client: Client::new(),
            db,
        },
        b_url: b.url(),
        _b: b,
        _chat2: chat2,
    }
}

async fn code(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.unwrap().status().as_u16()
}

async fn socket(base: &str, credential: &str) -> Socket {
    let mut req = format!("{}/ws/chat", base.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {credential}").parse().unwrap(),
    );
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// The next protocol event within 10 s.
async fn next(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an event in time")
            .expect("open")
            .unwrap();
        if let Ws::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn send(ws: &mut Socket, value: Value) {
    ws.send(Ws::Text(value.to_string().into())).await.unwrap();
}

/// Items 4 and 5 across gateway replicas.
async fn revocations_reach_every_gateway(db: Db, redis: &str) {
    let r = replicas(db, redis, 4).await;
    let s = &r.a;
    let (_, access, _) = s.register("two@example.com").await;
    let key = s.api_key(&access, "shared").await;
    let on_b = |credential: &str, path: &str| {
        s.client
            .get(format!("{}{path}", r.b_url))
            .bearer_auth(credential.to_owned())
    };
    // B caches the key's user.
    for _ in 0..3 {
        assert_eq!(code(on_b(&key, "/api/users/me")).await, 200);
    }
    let kid = {
        let listed: Value = s
            .authed(&access, Method::GET, "/api/users/me/api-keys")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        listed["items"][0]["id"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        code(s.authed(
            &access,
            Method::DELETE,
            &format!("/api/users/me/api-keys/{kid}")
        ))
        .await,
        204
    );
    assert_eq!(
        code(on_b(&key, "/api/users/me")).await,
        401,
        "gateway B still accepted a key revoked through A"
    );

    // A socket on B closes when the user logs out everywhere through A.
    let mut ws = socket(&r.b_url, &access).await;
    send(&mut ws, json!({"type": "init"})).await;
    assert_eq!(next(&mut ws).await["type"], "ready");
    assert_eq!(
        code(s.authed(&access, Method::POST, "/api/auth/logout-all")).await,
        204
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut last = Value::Null;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the socket on gateway B is still open 5 s after logout-all on A");
        match msg {
            Some(Ok(Ws::Text(t))) => last = serde_json::from_str(&t).unwrap(),
            Some(Ok(Ws::Close(frame))) => {
                assert_eq!(u16::from(frame.unwrap().code), 1008);
                assert_eq!(last["code"], "credentials_revoked", "{last}");
                break;
            }
            Some(Ok(_)) => {}
            other => panic!("unexpected end: {other:?}"),
        }
    }
    let (_, fresh, _) = s.login("two@example.com", PASSWORD).await;
    assert_eq!(code(on_b(&fresh, "/api/users/me")).await, 200);
}

/// Item 8 across chat-service replicas: with a cap of 2, two answers
/// stream (the gateway spreads the sockets over both replicas), and a
/// third generation, wherever it lands, is `busy`.
async fn generation_cap_is_shared_by_replicas(db: Db, redis: &str) {
    let r = replicas(db, redis, 2).await;
    let s = &r.a;
    let (_, access, _) = s.register("greedy@example.com").await;
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut ws = socket(&s.url, &access).await;
        send(&mut ws, json!({"type": "chat_message", "content": "long"})).await;
        loop {
            let e = next(&mut ws).await;
            assert_ne!(e["type"], "error", "{e}");
            if e["type"] == "token" {
                break;
            }
        }
        streams.push(ws);
    }
    // Round robin: the next requests reach each replica at least once.
    for _ in 0..2 {
        let resp = s
            .authed(&access, Method::GET, "/api/chat/stream?message=third")
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            429,
            "a third generation started on a replica"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "busy", "{body}");
        let mut ws = socket(&r.b_url, &access).await;
        send(&mut ws, json!({"type": "chat_message", "content": "third"})).await;
        let e = loop {
            let e = next(&mut ws).await;
            if e["type"] == "error" || e["type"] == "token" {
                break e;
            }
        };
        assert_eq!(e["code"], "busy", "{e}");
        let v1 = s
            .authed(&access, Method::POST, "/v1/chat/completions")
            .json(&json!({"model": "confab", "messages": [{"role": "user", "content": "x"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(v1.status(), 429);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocations_reach_every_gateway_sqlite() {
    let Some(url) = redis_url("revocations_reach_every_gateway") else {
        return;
    };
    let db = TestDb::sqlite();
    revocations_reach_every_gateway(db.db().clone(), &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generation_cap_is_shared_by_replicas_sqlite() {
    let Some(url) = redis_url("generation_cap_is_shared_by_replicas") else {
        return;
    };
    let db = TestDb::sqlite();
    generation_cap_is_shared_by_replicas(db.db().clone(), &url).await;
}
