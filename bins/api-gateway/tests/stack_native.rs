//! End-to-end test of the native stack (`scripts/stack-native.sh`, the
//! processes and settings of `docker/compose.yml` on 127.0.0.1): PostgreSQL
//! with pgvector, Redis, two chat-service replicas started at the same
//! moment on a fresh database (concurrent migrations) and api-gateway, each a
//! separate process from the built binaries. A user registers and logs in
//! through the gateway, chats over WebSocket and SSE, exports the session;
//! both replicas serve the same session (shared PostgreSQL); both replicas
//! are SIGKILLed and restarted and the session resumes with its history.
//! The request id of a WS chat and of an SSE chat (one given by the client,
//! one minted by the gateway) is in the log lines of both binaries, and every
//! answer a replica logs carries the id of the gateway request behind it.
//!
//! Needs the `chat-service` binary next to this crate's `api-gateway` (both
//! built by `cargo test --workspace`, or `cargo build -p chat-service
//! -p api-gateway --bins`; `CONFAB_STACK_BIN_DIR` overrides the directory),
//! `redis-server`, `curl`, and the pgvector server of
//! `scripts/pgvector-cluster.sh install`. When one is missing the test says
//! SKIPPED, unless `CONFAB_REQUIRE_STACK=1` (CI), which fails it (and lets
//! the script install pgvector). Ports: `STACK_PG_PORT` (55445),
//! `STACK_REDIS_PORT` (56390), `STACK_GATEWAY_PORT` (18000),
//! `STACK_CHAT_PORTS` ("18001 18002").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use confab_testkit::ws::WsClient;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn script() -> PathBuf {
    root().join("scripts/stack-native.sh")
}

fn var_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The binaries directory, or why the stack cannot run here.
fn prerequisites() -> Result<PathBuf, String> {
    let bin_dir = match std::env::var("CONFAB_STACK_BIN_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => Path::new(env!("CARGO_BIN_EXE_api-gateway"))
            .parent()
            .unwrap()
            .to_owned(),
    };
    if !bin_dir.join("chat-service").is_file() {
        return Err(format!(
            "no chat-service binary in {} (cargo build -p chat-service --bins)",
            bin_dir.display()
        ));
    }
    for tool in ["redis-server", "redis-cli", "curl"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Err(format!(
                "{tool} not found (apt-get install redis-server curl)"
            ));
        }
    }
    let require = std::env::var("CONFAB_REQUIRE_STACK").as_deref() == Ok("1");
    let pgvector = Command::new(root().join("scripts/pgvector-cluster.sh"))
        .arg("bindir")
        .output()
        .is_ok_and(|o| o.status.success());
    if !pgvector && !require {
        return Err("pgvector server not installed (scripts/pgvector-cluster.sh install)".into());
    }
    Ok(bin_dir)
}

/// The stack in one directory; stopped on drop (also when the test panics).
struct Stack {
    dir: PathBuf,
    bin_dir: PathBuf,
}

impl Stack {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(script())
            .args(args)
            .env("BIN_DIR", &self.bin_dir)
            .env("STACK_PG_PORT", var_or("STACK_PG_PORT", "55445"))
            .env("STACK_REDIS_PORT", var_or("STACK_REDIS_PORT", "56390"))
            .env("STACK_GATEWAY_PORT", var_or("STACK_GATEWAY_PORT", "18000"))
            .env(
                "STACK_CHAT_PORTS",
                var_or("STACK_CHAT_PORTS", "18001 18002"),
            )
            // Each answer's own lines too (debug), not only the request lines.
            .env("STACK_LOG_LEVEL", "info,chat_service=debug")
            // Credentials and secrets as a compose .env would give them.
            .env("STACK_ENV_FILE", self.dir.join("test.env"))
            .output()
            .unwrap()
    }

    /// Runs the script with `args`, panicking with its output on failure.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "stack-native.sh {args:?} failed: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn dir_str(&self) -> &str {
        self.dir.to_str().unwrap()
    }

    fn internal_key(&self) -> String {
        std::fs::read_to_string(self.dir.join("secrets/AGENT_RUNTIME__INTERNAL_API_KEY"))
            .unwrap()
            .trim()
            .to_owned()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let out = self.run(&["stop", self.dir_str()]);
        if !out.status.success() {
            eprintln!(
                "stack-native.sh stop: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("stack left for inspection in {}", self.dir.display());
        }
    }
}

/// Reads one WebSocket conversation until `done` (or `error`), sending
/// `content` after `ready`; the handshake carries `X-Request-Id: request_id`
/// when given. Returns every event and the request id the gateway answered
/// the handshake with.
async fn ws_round(
    ws_url: &str,
    request_id: Option<&str>,
    init: Value,
    content: &str,
) -> (Vec<Value>, String) {
    let headers: Vec<(&str, &str)> = request_id
        .map(|id| ("x-request-id", id))
        .into_iter()
        .collect();
    let mut ws = WsClient::connect_within(ws_url, &headers, Duration::from_secs(30))
        .await
        .unwrap();
    let answered_id = ws.response().headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let message = json!({"type": "chat_message", "content": content});
    let events = ws.converse(&init, &message).await;
    ws.close().await;
    (events, answered_id)
}

/// The JSON log lines of `service` in the stack at `dir` (non-JSON lines,
/// e.g. a panic message, fail the test). A last line still being written
/// (no newline yet) is left for the next read.
fn log_lines(dir: &Path, service: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join(format!("logs/{service}.log")))
        .unwrap()
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n') && !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{service}: not JSON ({e}): {l}"))
        })
        .collect()
}

/// The request id a log line was written under (its span or any parent).
fn request_id_of(line: &Value) -> Option<&str> {
    line["span"]["request_id"].as_str().or_else(|| {
        line["spans"]
            .as_array()?
            .iter()
            .find_map(|s| s["request_id"].as_str())
    })
}

/// Checks that request `id` was logged by the gateway (its request line, for
/// `path`) and by one chat-service replica, there with the answer's own
/// `answer streamed` line. The processes write their logs as they go: this
/// polls for up to 10 s before it fails.
async fn assert_logged_in_both(dir: &Path, id: &str, path: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match logged_in_both(dir, id, path) {
            Ok(()) => return,
            Err(e) if tokio::time::Instant::now() >= deadline => panic!("{e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// [`assert_logged_in_both`]'s check, once.
fn logged_in_both(dir: &Path, id: &str, path: &str) -> Result<(), String> {
    let gateway: Vec<Value> = log_lines(dir, "api-gateway")
        .into_iter()
        .filter(|l| request_id_of(l) == Some(id))
        .collect();
    if !gateway
        .iter()
        .any(|l| l["message"] == "request" && l["span"]["path"] == path)
    {
        return Err(format!(
            "the gateway did not log request {id} for {path}: {gateway:?}"
        ));
    }
    let replicas: Vec<Value> = ["chat-service-1", "chat-service-2"]
        .iter()
        .flat_map(|s| log_lines(dir, s))
        .filter(|l| request_id_of(l) == Some(id))
        .collect();
    if !replicas.iter().any(|l| l["message"] == "request") {
        return Err(format!(
            "no chat-service request line for {id}: {replicas:?}"
        ));
    }
    if !replicas.iter().any(|l| l["message"] == "answer streamed") {
        return Err(format!(
            "the answer of {id} was not logged under its id: {replicas:?}"
        ));
    }
    Ok(())
}

/// Registers `email` through the gateway at `url`, then logs in; returns
/// the user id and the access token.
async fn register_and_login(client: &Client, url: &str, email: &str) -> (String, String) {
    let creds = json!({"email": email, "password": "correct horse 42"});
    let mut bodies = Vec::new();
    for (route, status) in [("register", StatusCode::CREATED), ("login", StatusCode::OK)] {
        let resp = client
            .post(format!("{url}/api/auth/{route}"))
            .json(&creds)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{route}");
        bodies.push(resp.json::<Value>().await.unwrap());
    }
    let user_id = bodies[0]["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(bodies[1]["user"]["id"], user_id.as_str());
    let access = bodies[1]["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    (user_id, access)
}

/// The text of the answer in `events` (its `token` contents).
fn answer(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "token")
        .map(|e| e["content"].as_str().unwrap())
        .collect()
}

async fn messages(client: &Client, url: &str, sid: &str, access: &str) -> Vec<Value> {
    let resp = client
        .get(format!("{url}/api/sessions/{sid}/messages"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn compose_file_dockerfile_and_native_script_agree() {
    let out = Command::new(script()).arg("check").output().unwrap();
    assert!(
        out.status.success(),
        "stack-native.sh check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_stack_end_to_end() {
    let bin_dir = match prerequisites() {
        Ok(b) => b,
        Err(why) => {
            assert!(
                std::env::var("CONFAB_REQUIRE_STACK").as_deref() != Ok("1"),
                "CONFAB_REQUIRE_STACK=1 but the native stack cannot run: {why}"
            );
            confab_testkit::skipped(&why);
            return;
        }
    };
    // Under /tmp: the postgres user (when root) must reach it; short for the socket path.
    let dir = PathBuf::from(format!("/tmp/confab-stack-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("test.env"),
        "POSTGRES_USER=confab_e2e\nPOSTGRES_PASSWORD=e2e-password\nPOSTGRES_DB=confab_e2e\n\
         JWT_SECRET=an-end-to-end-secret-that-is-long-enough-42\n",
    )
    .unwrap();
    let stack = Stack { dir, bin_dir };
    let d = stack.dir_str().to_owned();

    // Both replicas start at the same moment on a fresh database.
    let url = stack.ok(&["start", &d]).trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let status = stack.ok(&["status", &d]);
    for svc in [
        "redis",
        "chat-service-1",
        "chat-service-2",
        "api-gateway",
        "postgres",
    ] {
        assert!(
            status.contains(&format!("{svc}: running")),
            "{svc} not running:\n{status}"
        );
    }
    for replica in ["chat-service-1", "chat-service-2"] {
        let log = std::fs::read_to_string(stack.dir.join(format!("logs/{replica}.log"))).unwrap();
        assert!(!log.contains("migration failed"), "{replica}: {log}");
    }
    let client = Client::new();
    let health: Value = client
        .get(format!("{url}/api/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["database"]["backend"], "postgres", "{health}");
    assert_eq!(health["chat_services"].as_array().unwrap().len(), 2);

    // Register, then log in.
    let (user_id, access) = register_and_login(&client, &url, "e2e@example.com").await;

    // WebSocket through the gateway: a new session.
    let ws_url = format!("{}/ws/chat?token={access}", url.replace("http://", "ws://"));
    // The client gives no request id: the gateway mints one and hands it on.
    let (events, ws_id) = ws_round(
        &ws_url,
        None,
        json!({"type": "init", "agent": "dashboard"}),
        "What is ownership in Rust?",
    )
    .await;
    assert_eq!(events[0]["type"], "ready", "{events:?}");
    let done = events.last().unwrap();
    assert_eq!(done["type"], "done", "{events:?}");
    assert!(!answer(&events).is_empty(), "{events:?}");
    let sid = done["session_id"].as_str().unwrap().to_owned();

    // SSE through the gateway, same session, with the client's request id.
    let sse_id = format!("e2e-sse-{}", std::process::id());
    let resp = client
        .get(format!(
            "{url}/api/chat/stream?message=And%20borrowing%3F&session_id={sid}"
        ))
        .bearer_auth(&access)
        .header("X-Request-Id", &sse_id)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-request-id"], sse_id.as_str());
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = resp.text().await.unwrap();
    let sse: Vec<Value> = body
        .split("\n\n")
        .filter_map(|f| f.trim_start_matches('\n').strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(sse.iter().any(|e| e["type"] == "token"), "{body}");
    assert_eq!(sse.last().unwrap()["type"], "done", "{body}");
    assert_eq!(sse.last().unwrap()["session_id"], sid.as_str());

    // One request id per request, in the logs of both processes; every
    // answer a replica logged carries the id of a request the gateway logged.
    assert_ne!(ws_id, sse_id);
    assert_logged_in_both(&stack.dir, &ws_id, "/ws/chat").await;
    assert_logged_in_both(&stack.dir, &sse_id, "/api/chat/stream").await;
    let gateway_ids: Vec<String> = log_lines(&stack.dir, "api-gateway")
        .iter()
        .filter_map(|l| request_id_of(l).map(str::to_owned))
        .collect();
    let answers: Vec<Value> = ["chat-service-1", "chat-service-2"]
        .iter()
        .flat_map(|s| log_lines(&stack.dir, s))
        .filter(|l| l["message"] == "answer streamed")
        .collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    for line in &answers {
        let id = request_id_of(line).unwrap_or_else(|| panic!("answer without an id: {line}"));
        assert!(
            gateway_ids.iter().any(|g| g == id),
            "{id} unknown to the gateway"
        );
    }

    // Export: JSON and Markdown, as attachments, with both rounds.
    for format in ["json", "markdown"] {
        let resp = client
            .get(format!("{url}/api/sessions/{sid}/export?format={format}"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{format}");
        assert!(
            resp.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .contains("attachment"),
            "{format}"
        );
        let export = resp.text().await.unwrap();
        if format == "json" {
            serde_json::from_str::<Value>(&export).expect("a JSON export");
        }
        assert!(
            export.contains("What is ownership in Rust?") && export.contains("And borrowing?"),
            "{format}: {export}"
        );
    }
    let before = messages(&client, &url, &sid, &access).await;
    assert_eq!(before.len(), 4, "{before:?}");

    // Both replicas serve the same session (one PostgreSQL).
    let key = stack.internal_key();
    for port in var_or("STACK_CHAT_PORTS", "18001 18002").split_whitespace() {
        let resp = client
            .get(format!(
                "http://127.0.0.1:{port}/api/sessions/{sid}/messages"
            ))
            .header("X-Internal-Auth", &key)
            .header("X-User-Id", &user_id)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "replica on {port}");
        let items = resp.json::<Value>().await.unwrap()["items"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(items, 4, "replica on {port}");
    }

    // One replica killed: the gateway goes on through the other.
    stack.ok(&["kill", "chat-service-1", &d]);
    assert_eq!(messages(&client, &url, &sid, &access).await, before);
    // Both killed: chat is unavailable, not an error of ours.
    stack.ok(&["kill", "chat-service-2", &d]);
    let resp = client
        .get(format!("{url}/api/sessions/{sid}/messages"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Both restarted at once; the session resumes with its history.
    std::thread::scope(|s| {
        let a = s.spawn(|| stack.ok(&["restart", "chat-service-1", &d]));
        let b = s.spawn(|| stack.ok(&["restart", "chat-service-2", &d]));
        a.join().unwrap();
        b.join().unwrap();
    });
    // The gateway skips a refused instance for UPSTREAM_COOLDOWN_SECS (5).
    let mut after = Vec::new();
    for _ in 0..100 {
        let resp = client
            .get(format!("{url}/api/sessions/{sid}/messages"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::OK {
            after = resp.json::<Value>().await.unwrap()["items"]
                .as_array()
                .unwrap()
                .clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        after, before,
        "the history survives SIGKILL of both replicas"
    );
    let (events, _) = ws_round(
        &ws_url,
        Some("e2e-ws-after-restart"),
        json!({"type": "init", "agent": "dashboard", "session_id": sid}),
        "One more question after the restart",
    )
    .await;
    assert_eq!(events[0]["type"], "ready", "{events:?}");
    assert_eq!(events[0]["session_id"], sid.as_str());
    let history = events[0]["history"].as_array().unwrap();
    assert_eq!(history.len(), 4, "{history:?}");
    assert!(
        history
            .iter()
            .any(|m| m.to_string().contains("What is ownership in Rust?"))
    );
    assert_eq!(events.last().unwrap()["type"], "done", "{events:?}");
    assert_eq!(events.last().unwrap()["session_id"], sid.as_str());
    assert_eq!(messages(&client, &url, &sid, &access).await.len(), 6);
    assert_logged_in_both(&stack.dir, "e2e-ws-after-restart", "/ws/chat").await;

    // Stop is clean and idempotent.
    stack.ok(&["stop", &d]);
    let out = stack.run(&["status", &d]);
    assert!(!out.status.success());
    let status = String::from_utf8(out.stdout).unwrap();
    assert!(!status.contains("running"), "{status}");
    stack.ok(&["stop", &d]);
}
