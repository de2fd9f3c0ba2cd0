//! The gateway's `GET /metrics` over a real chat-service: the text parses
//! (strict parser shared with chat-service's test), request counters move
//! by route pattern and status, SSE chat and the chat-service's request id
//! line up, and upstream errors are counted when chat-service is down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../chat-service/tests/support/prom.rs"]
mod prom;

use common::Stack;
use confab_store::Db;
use confab_testkit::FakeLlmConfig;
use prom::{Exposition, parse};
use reqwest::Method;

async fn scrape(s: &Stack) -> Exposition {
    let resp = s.req(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    parse(&resp.text().await.unwrap()).unwrap_or_else(|e| panic!("bad exposition: {e}"))
}

fn sum(e: &Exposition, prefix: &str, needles: &[&str]) -> f64 {
    e.samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix) && needles.iter().all(|n| k.contains(n)))
        .map(|(_, v)| *v)
        .sum()
}

async fn gateway_metrics(db: Db) {
    let mut s = Stack::start(db, "echo", FakeLlmConfig::default()).await;
    let (_, access, _) = s.register("metrics@example.com").await;
    let before = scrape(&s).await;

    let sid = uuid::Uuid::new_v4();
    let resp = s
        .authed(&access, Method::GET, &format!("/api/sessions/{sid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = s
        .authed(&access, Method::GET, "/api/chat/stream?message=hi")
        .header("X-Request-Id", "gw-metrics-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "gw-metrics-1");
    let body = resp.text().await.unwrap();
    assert!(body.contains("\"done\""), "{body}");
    let unknown = s.req(Method::GET, "/no/such/thing").send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    let after = scrape(&s).await;
    for name in [
        "http_requests",
        "http_request_duration_seconds",
        "gateway_ws_connections",
    ] {
        assert!(after.families.contains_key(name), "missing family {name}");
    }
    assert!(
        !after.samples.keys().any(|k| k.contains(&sid.to_string())),
        "raw path in labels"
    );
    let sessions = ["route=\"/api/sessions/{", "status=\"404\""];
    assert_eq!(
        sum(&after, "http_requests_total{", &sessions)
            - sum(&before, "http_requests_total{", &sessions),
        1.0
    );
    // The forwarded chat routes are matched by their prefix pattern.
    let stream = ["route=\"/api/chat/{tail:.*}\"", "status=\"200\""];
    assert_eq!(sum(&after, "http_requests_total{", &stream), 1.0);
    let unmatched = ["route=\"unmatched\"", "status=\"404\""];
    assert!(sum(&after, "http_requests_total{", &unmatched) >= 1.0);
    assert_eq!(after.value("gateway_ws_connections"), 0.0);

    // The chat-service's own metrics saw the forwarded stream.
    let chat = s
        .client
        .get(format!("{}/metrics", s.chat_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let chat = parse(&chat).unwrap();
    assert!(chat.value("chat_tokens_streamed_total") >= 1.0);

    // chat-service down: the gateway counts the upstream failure.
    s.chat.take().unwrap().shutdown().await.unwrap();
    let resp = s
        .authed(&access, Method::GET, "/api/sessions")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let down = scrape(&s).await;
    assert!(
        sum(
            &down,
            "gateway_upstream_errors_total{",
            &["kind=\"unavailable\""]
        ) >= 1.0,
        "{:?}",
        down.samples
    );
}

confab_testkit::backend_tests!(gateway_metrics);
