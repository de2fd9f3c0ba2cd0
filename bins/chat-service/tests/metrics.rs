//! `GET /metrics` of the real `chat-service` binary (SQLite, the built-in
//! model): the text parses as OpenMetrics/Prometheus (HELP and TYPE for
//! every family, histogram buckets monotone with `+Inf` == count), the
//! request counters and chat metrics move after requests, routes are
//! labelled by pattern; and with `LOG_FORMAT=json` every line logged while
//! a streamed chat runs carries the client's `X-Request-Id`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::prom::{Exposition, parse};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

/// A running binary, its URL and its stderr lines (collected in the background).
struct Service {
    _child: Child,
    url: String,
    logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Service {
    /// The log lines from index `from` on, once one of them contains
    /// `needle` (stderr is read in the background: polled for up to 30 s).
    async fn lines_until(&self, from: usize, needle: &str) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let lines = self.logs.lock().unwrap()[from..].to_vec();
            if lines.iter().any(|l| l.contains(needle)) {
                return lines;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line with {needle:?} within 30 s: {lines:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn start(dir: &std::path::Path, vars: &[(&str, &str)]) -> Service {
    let mut child = support::child::command(dir, vars).spawn().unwrap();
    let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = logs.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .expect("no `listening on` line")
        .unwrap()
        .expect("stdout closed");
    let url = line.strip_prefix("listening on ").unwrap().to_owned();
    Service {
        _child: child,
        url,
        logs,
    }
}

async fn scrape(client: &reqwest::Client, url: &str) -> Exposition {
    let resp = client.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    parse(&resp.text().await.unwrap()).unwrap_or_else(|e| panic!("bad exposition: {e}"))
}

#[tokio::test]
async fn metrics_parse_and_counters_move() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start(dir.path(), &[("LOG_LEVEL", "warn")]).await;
    let client = reqwest::Client::new();
    let before = scrape(&client, &svc.url).await;
    // (Families without samples yet are not written: checked after requests.)

    // A REST request on a route with a path parameter, and a streamed chat.
    let sid = uuid::Uuid::new_v4();
    let resp = client
        .get(format!("{}/api/sessions/{sid}", svc.url))
        .header("X-User-Id", "metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body = client
        .get(format!(
            "{}/api/chat/stream?message=hello%20metrics",
            svc.url
        ))
        .header("X-User-Id", "metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("\"done\""), "{body}");

    let after = scrape(&client, &svc.url).await;
    for name in [
        "http_requests",
        "http_request_duration_seconds",
        "chat_ws_connections",
        "chat_active_generations",
        "chat_tokens_streamed",
        "chat_time_to_first_token_seconds",
        "db_pool_wait_seconds",
    ] {
        assert!(after.families.contains_key(name), "missing family {name}");
    }
    let streamed = r#"http_requests_total{method="GET",route="/api/chat/stream",status="200"}"#;
    // The route label is the pattern (whatever the parameter is called), never the raw path.
    assert!(
        !after.samples.keys().any(|k| k.contains(&sid.to_string())),
        "raw path leaked into labels"
    );
    let nf: f64 = after
        .samples
        .iter()
        .filter(|(k, _)| {
            k.starts_with("http_requests_total{")
                && k.contains("route=\"/api/sessions/{")
                && k.contains("status=\"404\"")
        })
        .map(|(_, v)| *v)
        .sum();
    assert!(
        nf >= 1.0,
        "no 404 counted by route pattern: {:?}",
        after.samples
    );
    assert_eq!(after.value(streamed) - before.value(streamed), 1.0);
    assert!(after.value("chat_tokens_streamed_total") > before.value("chat_tokens_streamed_total"));
    assert!(
        after.value("chat_time_to_first_token_seconds_count")
            > before.value("chat_time_to_first_token_seconds_count")
    );
    assert!(
        after.value("db_pool_wait_seconds_count") > before.value("db_pool_wait_seconds_count"),
        "database waits observed"
    );
    assert_eq!(after.value("chat_active_generations"), 0.0);
}

#[tokio::test]
async fn metrics_token_is_required_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start(
        dir.path(),
        &[("LOG_LEVEL", "warn"), ("METRICS_TOKEN", "s3cret")],
    )
    .await;
    let client = reqwest::Client::new();
    let url = format!("{}/metrics", svc.url);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    let wrong = client.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = client.get(&url).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    parse(&ok.text().await.unwrap()).unwrap();
}

#[tokio::test]
async fn every_log_line_of_a_chat_carries_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let svc = start(
        dir.path(),
        &[
            ("LOG_FORMAT", "json"),
            (
                "LOG_LEVEL",
                "warn,chat_service=debug,confab_agents=debug,confab_llm=debug,confab_web=debug,confab_rag=debug,confab_history=debug,confab_store=debug",
            ),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    // Let start-up work (course indexing) finish before watching.
    let mark = svc
        .lines_until(0, "courses indexed")
        .await
        .len()
        .max(svc.lines_until(0, "chat-service started").await.len());
    let id = format!("req-{}", uuid::Uuid::new_v4());
    let body = client
        .get(format!("{}/api/chat/stream?message=hello%20logs", svc.url))
        .header("X-User-Id", "logger")
        .header("X-Request-Id", &id)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("\"done\""), "{body}");
    // Fails (after a while) when the streamed answer logged nothing.
    let lines = svc.lines_until(mark, "answer streamed").await;
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(
            v["span"]["request_id"].as_str(),
            Some(id.as_str()),
            "line without the request id: {line}"
        );
    }
    // A request without an id gets a minted one, logged and echoed.
    let resp = client
        .get(format!("{}/api/health", svc.url))
        .send()
        .await
        .unwrap();
    let minted = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    // Fails (after a while) when the minted id is not logged.
    svc.lines_until(0, &minted).await;
}
