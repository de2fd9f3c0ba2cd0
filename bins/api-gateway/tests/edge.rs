//! The gateway's own edges: several chat-service instances (round robin,
//! one down), per-IP auth limits (also behind a trusted proxy), CORS, security headers, body limits, the
//! offline docs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Stack, gateway, gateway_config};
use confab_store::Db;
use confab_testkit::{FakeLlm, FakeLlmConfig};
use reqwest::Method;
use serde_json::{Value, json};

async fn round_robin_over_instances_and_one_down(db: Db) {
    let llm_a = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let llm_b = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let a = common::chat_service(db.clone(), &llm_a, "echo", "127.0.0.1:0").await;
    let b = common::chat_service(db.clone(), &llm_b, "echo", "127.0.0.1:0").await;
    // A third URL where nothing listens.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let urls = format!("{},{dead},{}", a.url(), b.url());
    let gw = gateway(db, &gateway_config(&urls)).await;
    let client = reqwest::Client::new();
    let reg: Value = client
        .post(format!("{}/api/auth/register", gw.url()))
        .json(&json!({"email": "rr@example.com", "password": "correct horse 42"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = reg["tokens"]["access_token"].as_str().unwrap().to_owned();
    for i in 0..12 {
        let started = Instant::now();
        let resp = client
            .post(format!("{}/api/chat", gw.url()))
            .bearer_auth(&token)
            .json(&json!({"message": format!("hello {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let (na, nb) = (llm_a.requests().len(), llm_b.requests().len());
    assert_eq!(na + nb, 12);
    assert!(
        na >= 4 && nb >= 4,
        "both live instances served: {na} / {nb}"
    );
    let health: Value = client
        .get(format!("{}/api/health", gw.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<&str> = health["chat_services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "unreachable", "ok"]);
}

async fn auth_is_rate_limited_per_ip(db: Db) {
    let s = Stack::start(db.clone(), "echo", FakeLlmConfig::default()).await;
    let mut config = gateway_config(&s.chat_url);
    config.auth_rate_per_minute = 3;
    let gw = gateway(db.clone(), &config).await;
    let client = reqwest::Client::new();
    // Logins from the client at X-Forwarded-For `forwarded` (sent as is);
    // the statuses.
    let attempts = |url: String, forwarded: Vec<&'static str>| {
        let client = client.clone();
        async move {
            let mut statuses = Vec::new();
            for xff in forwarded {
                let resp = client
                    .post(format!("{url}/api/auth/login"))
                    .header("X-Forwarded-For", xff)
                    .json(&json!({"email": "nobody@example.com", "password": "whatever 123"}))
                    .send()
                    .await
                    .unwrap();
                statuses.push(resp.status().as_u16());
                if resp.status() == 429 {
                    assert!(resp.headers().contains_key("retry-after"));
                    let body: Value = resp.json().await.unwrap();
                    assert_eq!(body["error"], "rate_limited");
                }
            }
            statuses
        }
    };
    // No trusted proxy: the TCP peer counts; a made-up X-Forwarded-For
    // per request does not escape the limit.
    let spoofed = vec![
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.4",
        "198.51.100.5",
    ];
    assert_eq!(attempts(gw.url(), spoofed).await, [401, 401, 401, 429, 429]);

    // Behind a trusted proxy (127.0.0.1, as nginx on the same host), each
    // forwarded client has its own budget, and what a client writes left of
    // the proxy's entry is ignored.
    config.trusted_proxies = api_gateway::client_ip::TrustedProxies::parse("127.0.0.1").unwrap();
    let gw = gateway(db, &config).await;
    let a = vec![
        "203.0.113.7",
        "1.1.1.1, 203.0.113.7",
        "2.2.2.2, 203.0.113.7",
        "203.0.113.7",
    ];
    assert_eq!(attempts(gw.url(), a).await, [401, 401, 401, 429]);
    assert_eq!(attempts(gw.url(), vec!["203.0.113.8"]).await, [401]);
}

async fn cors_headers_limits_and_docs(db: Db) {
    let s = Stack::start(db.clone(), "echo", FakeLlmConfig::default()).await;
    let mut config = gateway_config(&s.chat_url);
    config.cors_origins = vec!["https://app.example.com".into()];
    config.http.max_body_bytes = 4096;
    let gw = gateway(db, &config).await;
    let client = reqwest::Client::new();
    // Preflight from the allowed origin, and from another one.
    let resp = client
        .request(Method::OPTIONS, format!("{}/api/users/me", gw.url()))
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let resp = client
        .get(format!("{}/", gw.url()))
        .header("Origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // Security headers everywhere.
    for h in [
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
        "content-security-policy",
        "x-request-id",
    ] {
        assert!(resp.headers().get(h).is_some(), "{h}");
    }
    // Body limit: 413 JSON.
    let resp = client
        .post(format!("{}/api/auth/register", gw.url()))
        .json(&json!({"email": "big@example.com", "password": "x".repeat(10_000)}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].is_string());
    // Offline docs: the page and its assets come from the gateway.
    let resp = client
        .get(format!("{}/docs", gw.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "redirected to /docs/");
    let html = resp.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(!html.contains("cdn"), "no CDN");
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let resp = client
            .get(format!("{}/docs/{asset}", gw.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{asset}");
    }
    let init = client
        .get(format!("{}/docs/swagger-initializer.js", gw.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"));
    // The document covers both the gateway's and the forwarded routes.
    let doc: Value = client
        .get(format!("{}/openapi.json", gw.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/api/auth/login",
        "/v1/chat/completions",
        "/api/sessions",
        "/api/sessions/{id}/export",
        "/api/chat/stream",
        "/api/knowledge",
        "/api/knowledge/{id}",
        "/api/knowledge/{id}/documents",
        "/api/knowledge/{id}/documents/{doc}",
        "/api/knowledge/{id}/search",
        "/api/knowledge/{id}/events",
    ] {
        assert!(paths.contains_key(p), "{p}");
    }
    assert!(
        !paths.contains_key("/api/chat/completions"),
        "internal route not advertised"
    );
}

confab_testkit::backend_tests!(
    round_robin_over_instances_and_one_down,
    auth_is_rate_limited_per_ip,
    cors_headers_limits_and_docs,
);
