//! The gateway's `GET /metrics` over a real chat-service: the text parses
//! (strict parser shared with chat-service's test), request counters move
//! by route pattern and status, SSE chat and the chat-service's request id
//! line up, and upstream errors are counted when chat-service is down; a
//! model provider's 429 reaches the client with its `Retry-After` and is
//! not counted as the gateway's own rate limiting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../chat-service/tests/support/prom.rs"]
mod prom;

use common::Stack;
use confab_store::Db;
use confab_testkit::FakeLlmConfig;
use prom::{Exposition, parse};
use reqwest::Method;
use serde_json::{Value, json};

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

/// The model provider answers every call with 429 and `Retry-After: 7`
/// (fake model `error_429`; chat-service does not retry here): REST and
/// OpenAI clients get 429 with that wait, and `gateway_rate_limited_total`
/// stays put; the gateway's per-user limit does move it.
async fn provider_429_is_passed_on_and_not_counted(db: Db) {
    let s = Stack::start_configured(db, "error_429", FakeLlmConfig::default(), |c| {
        c.user_rate_per_minute = 6
    })
    .await;
    let (_, access, _) = s.register("ratelimited@example.com").await;
    let limited = |e: &Exposition| sum(e, "gateway_rate_limited_total{", &[]);
    let shown = |e: &Exposition| {
        e.samples
            .iter()
            .filter(|(k, _)| k.starts_with("gateway_rate_limited"))
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
    };
    let before = scrape(&s).await;

    let resp = s
        .authed(&access, Method::POST, "/api/chat")
        .json(&json!({"message": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(common::retry_after_secs(&resp), Some(7));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert!(body["message"].is_string(), "{body}");

    let resp = s
        .authed(&access, Method::POST, "/v1/chat/completions")
        .json(&json!({"model": "confab", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(common::retry_after_secs(&resp), Some(7));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");

    // Streaming has sent 200 already: the error chunk says what it was.
    let resp = s
        .authed(&access, Method::POST, "/v1/chat/completions")
        .json(&json!({"model": "confab", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let error: Value = text
        .split("\n\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v.get("error").is_some())
        .unwrap_or_else(|| panic!("no error chunk in {text}"));
    assert_eq!(error["error"]["type"], "rate_limit_error", "{error}");

    let after = scrape(&s).await;
    assert_eq!(
        limited(&after),
        limited(&before),
        "a provider's 429 is not the gateway's: {:?}",
        shown(&after)
    );

    // The gateway's own per-user limit (6 a minute) is counted.
    let mut refused = 0;
    for _ in 0..10 {
        let resp = s
            .authed(&access, Method::GET, "/api/users/me")
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            assert!(common::retry_after_secs(&resp).is_some());
            refused += 1;
        }
    }
    assert!(refused >= 1, "the per-user limit refused nothing");
    let last = scrape(&s).await;
    assert_eq!(
        limited(&last) - limited(&after),
        f64::from(refused),
        "{:?}",
        shown(&last)
    );
    assert_eq!(
        sum(
            &last,
            "gateway_rate_limited_total{",
            &["route=\"/api/users/me\""]
        ) - sum(
            &after,
            "gateway_rate_limited_total{",
            &["route=\"/api/users/me\""]
        ),
        f64::from(refused)
    );
}

confab_testkit::backend_tests!(gateway_metrics, provider_429_is_passed_on_and_not_counted);
