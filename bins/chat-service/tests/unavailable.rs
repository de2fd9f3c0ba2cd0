//! Dependencies that fail: a starved database pool answers 503 JSON (never
//! 500), health says `unavailable`; a provider that hangs or errors makes
//! health `degraded` within the probe timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_service::AppState;
use common::{Options, expect, expect_error, spawn_state};
use confab_history::HistoryConfig;
use confab_llm::{
    BoxFuture, BuiltinProvider, ChatModel, ChatRequest, ChatStream, LlmError, ModelInfo,
};
use confab_testkit::TestDb;
use reqwest::Method;

/// A provider that never answers `list_models`.
struct Hanging;

impl ChatModel for Hanging {
    fn provider(&self) -> &str {
        "hanging"
    }
    fn default_model(&self) -> &str {
        "slow-model"
    }
    fn stream(&self, _request: ChatRequest) -> ChatStream {
        Box::pin(futures_util::stream::pending())
    }
    fn list_models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, LlmError>> {
        Box::pin(futures_util::future::pending())
    }
}

/// A provider that refuses.
struct Refusing;

impl ChatModel for Refusing {
    fn provider(&self) -> &str {
        "refusing"
    }
    fn default_model(&self) -> &str {
        "no-model"
    }
    fn stream(&self, _request: ChatRequest) -> ChatStream {
        Box::pin(futures_util::stream::once(async {
            Err(LlmError::Unavailable("down".into()))
        }))
    }
    fn list_models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, LlmError>> {
        Box::pin(async { Err(LlmError::Unauthorized("bad key".into())) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starved_database_is_503_json() {
    let test_db = TestDb::sqlite_with(|c| {
        c.max_connections = 1;
        c.connection_timeout = Duration::from_millis(200);
    });
    let db = test_db.db().clone();
    let state = AppState::new(db.clone(), HistoryConfig::default())
        .with_providers(vec![Arc::new(BuiltinProvider::new())]);
    let server = spawn_state(state, Options::default()).await;
    expect(server.as_user("alice", Method::GET, "/api/sessions"), 200).await;

    // Hold every pooled connection (the one for `Db::run` and the group
    // writer's): every database call times out waiting for one.
    let held = tokio::task::spawn_blocking(move || {
        let mut held = vec![db.get().unwrap()];
        while let Ok(c) = db.get() {
            held.push(c);
        }
        held
    })
    .await
    .unwrap();
    for (method, path) in [
        (Method::GET, "/api/sessions"),
        (Method::POST, "/api/sessions"),
        (Method::GET, "/api/memory"),
        (Method::GET, "/api/stats"),
        (Method::GET, "/api/experience"),
    ] {
        let mut req = server.as_user("alice", method.clone(), path);
        if method == Method::POST {
            req = req.json(&serde_json::json!({}));
        }
        let msg = expect_error(req, 503, "unavailable").await;
        assert!(msg.contains("busy"), "{path}: {msg}");
    }
    let (status, health) = common::send(server.as_user("gw", Method::GET, "/api/health")).await;
    assert_eq!(status.as_u16(), 503);
    assert_eq!(health["status"], "unavailable");
    assert_eq!(health["database"]["ok"], false);
    assert!(
        health["database"]["error"]
            .as_str()
            .unwrap()
            .contains("busy")
    );
    // Liveness does not touch the database.
    expect(server.anonymous(Method::GET, "/health"), 200).await;

    drop(held);
    expect(server.as_user("alice", Method::GET, "/api/sessions"), 200).await;
    let health = expect(server.as_user("gw", Method::GET, "/api/health"), 200).await;
    assert_eq!(health["status"], "ok");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_providers_degrade_health_in_time() {
    let test_db = TestDb::sqlite();
    let providers: Vec<Arc<dyn ChatModel>> = vec![
        Arc::new(BuiltinProvider::new()),
        Arc::new(Hanging),
        Arc::new(Refusing),
    ];
    let state = AppState::new(test_db.db().clone(), HistoryConfig::default())
        .with_providers(providers)
        .with_probe_timeout(Duration::from_millis(300));
    let server = spawn_state(state, Options::default()).await;

    let started = Instant::now();
    let health = expect(server.as_user("gw", Method::GET, "/api/health"), 200).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "probes run concurrently with a timeout"
    );
    assert_eq!(health["status"], "degraded");
    let p = health["providers"].as_array().unwrap();
    assert_eq!(p.len(), 3);
    assert_eq!(
        (p[0]["provider"].as_str(), p[0]["ok"].as_bool()),
        (Some("builtin"), Some(true))
    );
    assert_eq!(
        (p[1]["provider"].as_str(), p[1]["ok"].as_bool()),
        (Some("hanging"), Some(false))
    );
    assert!(
        p[1]["error"].as_str().unwrap().contains("300 ms"),
        "{}",
        p[1]
    );
    assert_eq!(
        (p[2]["provider"].as_str(), p[2]["ok"].as_bool()),
        (Some("refusing"), Some(false))
    );
    assert!(
        p[2]["error"].as_str().unwrap().contains("bad key"),
        "{}",
        p[2]
    );

    let stats = expect(server.as_user("alice", Method::GET, "/api/stats"), 200).await;
    assert_eq!(stats["model_manager"]["provider"], "builtin");
    assert_eq!(stats["providers"][1]["ok"], false);
    server.stop().await;
}
