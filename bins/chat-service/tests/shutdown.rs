//! Graceful shutdown of the real `chat-service` binary on SIGTERM
//! (`SHUTDOWN_GRACE_SECS`): answers that finish within the grace period end
//! normally, longer ones end with `done` / `cancelled` (saved with exactly
//! the tokens the client got), sockets close with 1001, new connections are
//! refused, the process exits 0; idle sockets close at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_testkit::ws::{Frame, WsClient};
use confab_testkit::{FakeLlm, FakeLlmConfig};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Bound of every wait (a loaded 2-core machine is slow, not stuck).
const PATIENCE: Duration = Duration::from_secs(90);
const TOKEN_DELAY: Duration = Duration::from_millis(20);
/// Words (= streamed tokens) of a long answer: 10 s at 20 ms each.
const LONG_WORDS: usize = 500;
/// Words of the short answer: it finishes well within a 1 s grace period.
const SHORT_WORDS: usize = 20;
const LONG_CONVERSATIONS: usize = 5;
const GRACE_SECS: u64 = 1;

// ---------------------------------------------------------------------------
// The binary as a child process.

/// A running `chat-service` child process.
struct Service {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
}

impl Service {
    /// Starts the binary in `dir` with a clean environment plus `vars`, and
    /// waits for its `listening on http://ADDR` line.
    async fn start(dir: &Path, vars: &[(&str, String)]) -> Service {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-service"));
        cmd.current_dir(dir)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        cmd.env("CHAT_SERVICE_BIND", "127.0.0.1:0")
            .env("HTTP_WORKERS", "2")
            .env("LOG_LEVEL", "warn");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("cannot spawn chat-service");
        let stderr = Arc::new(Mutex::new(String::new()));
        tokio::spawn(collect(child.stderr.take().unwrap(), stderr.clone()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(PATIENCE, lines.next_line()).await;
        let line = match first {
            Ok(Ok(Some(line))) => line,
            other => panic!(
                "no `listening on` line ({other:?}); stderr:\n{}",
                stderr.lock().unwrap()
            ),
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        Service { child, url, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn ws_url(&self) -> String {
        format!("{}/ws/chat", self.url.replace("http://", "ws://"))
    }

    /// Sends SIGTERM (does not wait).
    fn sigterm(&self) {
        let pid = self.child.id().expect("still running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the exit status.
    async fn exit_status(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("no exit after SIGTERM; stderr:\n{}", self.stderr()))
            .unwrap()
    }
}

/// Appends a child's output to `into` (keeping the last 256 KiB).
async fn collect(out: impl AsyncRead + Unpin, into: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut s = into.lock().unwrap();
        s.push_str(&line);
        s.push('\n');
        if s.len() > 256 * 1024 {
            let cut = s.len() - 128 * 1024;
            let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap();
            s.drain(..cut);
        }
    }
}

fn vars(database_url: &str, llm: &FakeLlm, grace_secs: u64) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", database_url.to_owned()),
        ("AGENT_RUNTIME__LLM_PROXY_URL", llm.base_url()),
        ("AGENT_RUNTIME__LLM_MODEL", "slow".to_owned()),
        ("CONFAB_LLM_MAX_RETRIES", "0".to_owned()),
        ("SHUTDOWN_GRACE_SECS", grace_secs.to_string()),
    ]
}

// ---------------------------------------------------------------------------
// Clients.

async fn connect(
    ws_url: &str,
    user: &str,
) -> Result<WsClient, tokio_tungstenite::tungstenite::Error> {
    WsClient::connect_within(ws_url, &[("X-User-Id", user)], PATIENCE).await
}

/// One streamed conversation as its client saw it.
#[derive(Debug)]
struct Seen {
    user: String,
    session_id: String,
    text: String,
    tokens: usize,
    done: Option<Value>,
    done_at: Option<Instant>,
    close: Option<CloseCode>,
    closed_at: Instant,
}

/// Sends `words` words and reads until the socket closes; reports the first
/// token on `streaming`.
async fn conversation(
    ws_url: String,
    user: String,
    words: Vec<String>,
    streaming: mpsc::UnboundedSender<String>,
) -> Seen {
    let mut ws = connect(&ws_url, &user)
        .await
        .unwrap_or_else(|e| panic!("{user}: cannot connect: {e}"));
    ws.send(&json!({"type": "chat_message", "content": words.join(" ")}))
        .await;
    let Frame::Event(ready) = ws.next_frame().await else {
        panic!("{user}: closed before ready")
    };
    assert_eq!(ready["type"], "ready", "{user}: {ready}");
    let mut seen = Seen {
        session_id: ready["session_id"].as_str().unwrap().to_owned(),
        user,
        text: String::new(),
        tokens: 0,
        done: None,
        done_at: None,
        close: None,
        closed_at: Instant::now(),
    };
    loop {
        match ws.next_frame().await {
            Frame::Event(e) => {
                assert!(seen.done.is_none(), "{}: event after done: {e}", seen.user);
                assert_ne!(e["type"], "error", "{}: {e}", seen.user);
                if e["type"] == "token" {
                    seen.text.push_str(e["content"].as_str().unwrap());
                    seen.tokens += 1;
                    if seen.tokens == 1 {
                        let _ = streaming.send(seen.user.clone());
                    }
                } else if e["type"] == "done" {
                    seen.done = Some(e);
                    seen.done_at = Some(Instant::now());
                }
            }
            Frame::Closed(code) => {
                seen.close = code;
                seen.closed_at = Instant::now();
                return seen;
            }
        }
    }
}

/// `GET /api/chat/stream` with `words`, read as it arrives until the body
/// ends; reports the first token on `streaming`.
async fn sse_conversation(
    base_url: String,
    words: Vec<String>,
    streaming: mpsc::UnboundedSender<String>,
) -> Seen {
    let user = "sse-user".to_owned();
    let resp = reqwest::Client::new()
        .get(format!(
            "{base_url}/api/chat/stream?message={}",
            words.join("%20")
        ))
        .header("X-User-Id", &user)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut seen = Seen {
        user,
        session_id: String::new(),
        text: String::new(),
        tokens: 0,
        done: None,
        done_at: None,
        close: None,
        closed_at: Instant::now(),
    };
    let mut buffer = String::new();
    loop {
        let chunk = tokio::time::timeout(PATIENCE, body.next())
            .await
            .expect("SSE: no data within the patience bound");
        let Some(chunk) = chunk else { break };
        buffer.push_str(std::str::from_utf8(&chunk.expect("SSE body")).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let Some(data) = frame.trim_end().strip_prefix("data: ") else {
                continue; // a keep-alive comment
            };
            let e: Value = serde_json::from_str(data).unwrap();
            assert!(seen.done.is_none(), "SSE: event after done: {e}");
            assert_ne!(e["type"], "error", "SSE: {e}");
            if e["type"] == "token" {
                seen.text.push_str(e["content"].as_str().unwrap());
                seen.tokens += 1;
                if seen.tokens == 1 {
                    let _ = streaming.send(seen.user.clone());
                }
            } else if e["type"] == "done" {
                seen.session_id = e["session_id"].as_str().unwrap().to_owned();
                seen.done = Some(e);
                seen.done_at = Some(Instant::now());
            }
        }
    }
    seen.closed_at = Instant::now();
    seen
}

fn words(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|k| format!("{prefix}w{k}")).collect()
}

/// Waits for a socket that sends nothing to be closed; returns the close
/// code and when it came.
async fn idle_until_closed(mut ws: WsClient) -> (Option<CloseCode>, Instant) {
    match ws.next_frame().await {
        Frame::Event(e) => panic!("an idle socket got an event: {e}"),
        Frame::Closed(code) => (code, Instant::now()),
    }
}

async fn get_json(client: &reqwest::Client, url: String, user: &str) -> Value {
    let resp = client
        .get(&url)
        .header("X-User-Id", user)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "GET {url} as {user}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Expects connecting to be refused (connection error or an HTTP error
/// status), not a WebSocket.
async fn assert_refused(ws_url: &str, what: &str) {
    let attempt = tokio::time::timeout(Duration::from_secs(10), connect(ws_url, "late-user")).await;
    match attempt {
        Ok(Err(e)) => eprintln!("{what}: refused as expected: {e}"),
        Ok(Ok(_)) => panic!("{what}: a new WebSocket was accepted after shutdown began"),
        Err(_) => panic!("{what}: a new connection hung instead of being refused"),
    }
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_short_answers_and_cancels_long_ones() {
    let started = Instant::now();
    let llm = FakeLlm::start_with(FakeLlmConfig {
        token_delay: TOKEN_DELAY,
        tokens: None,
        ..FakeLlmConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("data/shutdown.db").display());
    let mut service = Service::start(dir.path(), &vars(&db, &llm, GRACE_SECS)).await;
    let ws_url = service.ws_url();

    // An idle socket (session opened, nothing asked).
    let mut idle = connect(&ws_url, "idle-user").await.unwrap();
    idle.send(&json!({"type": "init", "agent": "dashboard"}))
        .await;
    let Frame::Event(ready) = idle.next_frame().await else {
        panic!("idle socket closed")
    };
    assert_eq!(ready["type"], "ready");
    let idle = tokio::spawn(idle_until_closed(idle));

    // Five long answers streaming.
    let (tx, mut streaming) = mpsc::unbounded_channel();
    let long: Vec<_> = (0..LONG_CONVERSATIONS)
        .map(|i| {
            let user = format!("long-{i}");
            let w = words(&format!("long{i}"), LONG_WORDS);
            tokio::spawn(conversation(ws_url.clone(), user, w, tx.clone()))
        })
        .collect();
    // And an SSE reader of a long answer.
    let sse = tokio::spawn(sse_conversation(
        service.url.clone(),
        words("sse", LONG_WORDS),
        tx.clone(),
    ));
    let mut n = 0;
    while n < LONG_CONVERSATIONS + 1 {
        let who = tokio::time::timeout(PATIENCE, streaming.recv())
            .await
            .expect("long answers start streaming")
            .expect("a long conversation ended early");
        assert!(who.starts_with("long-") || who == "sse-user", "{who}");
        n += 1;
    }
    // Then a short one; SIGTERM as soon as it streams.
    let short = tokio::spawn(conversation(
        ws_url.clone(),
        "short-user".into(),
        words("short", SHORT_WORDS),
        tx.clone(),
    ));
    drop(tx);
    let who = tokio::time::timeout(PATIENCE, streaming.recv())
        .await
        .expect("the short answer starts streaming")
        .unwrap();
    assert_eq!(who, "short-user");
    let sigterm_at = Instant::now();
    service.sigterm();

    // The idle socket closes with 1001 at once: before any long answer ends.
    let (idle_code, idle_closed_at) = tokio::time::timeout(PATIENCE, idle)
        .await
        .expect("the idle socket is closed")
        .unwrap();
    assert_eq!(idle_code, Some(CloseCode::Away), "idle socket close code");
    let idle_after = idle_closed_at - sigterm_at;

    // Shutdown has begun: no new connections.
    assert_refused(&ws_url, "WebSocket during the grace period").await;

    let short = tokio::time::timeout(PATIENCE, short)
        .await
        .expect("the short conversation ends")
        .unwrap();
    let mut longs = Vec::new();
    for c in long {
        longs.push(
            tokio::time::timeout(PATIENCE, c)
                .await
                .expect("a long conversation ends")
                .unwrap(),
        );
    }
    let sse = tokio::time::timeout(PATIENCE, sse)
        .await
        .expect("the SSE stream ends")
        .unwrap();
    let status = service.exit_status().await;
    let exited_after = sigterm_at.elapsed();
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        service.stderr()
    );
    assert_refused(&ws_url, "WebSocket after exit").await;

    // The short answer ran to its end during the grace period.
    let done = short.done.as_ref().expect("short: done");
    assert_eq!(done["finish_reason"], "stop", "short: {done}");
    assert_eq!(short.tokens, SHORT_WORDS, "short: {short:?}");
    assert_eq!(short.text, words("short", SHORT_WORDS).join(" "));
    assert_eq!(short.close, Some(CloseCode::Away), "short: {short:?}");
    assert!(
        short.done_at.unwrap() > idle_closed_at,
        "the short answer was still streaming when shutdown began: {short:?}"
    );

    // The long ones were cancelled after the grace period, then closed with 1001.
    let grace = Duration::from_secs(GRACE_SECS);
    let mut long_ends = Vec::new();
    for s in &longs {
        let done = s
            .done
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no done: {s:?}", s.user));
        assert_eq!(done["finish_reason"], "cancelled", "{}: {done}", s.user);
        let ended = s.done_at.unwrap() - sigterm_at;
        long_ends.push(ended);
        assert!(
            ended >= grace.saturating_sub(Duration::from_millis(100)),
            "{}: cancelled before the grace period ended ({ended:?})",
            s.user
        );
        assert!(
            ended <= grace + Duration::from_secs(3),
            "{}: cancelled {ended:?} after SIGTERM, grace is {grace:?}",
            s.user
        );
        assert!(
            s.tokens >= 1 && s.tokens < LONG_WORDS,
            "{}: {} tokens",
            s.user,
            s.tokens
        );
        assert_eq!(s.close, Some(CloseCode::Away), "{}: close code", s.user);
        assert!(s.closed_at >= s.done_at.unwrap());
        assert!(
            idle_closed_at < s.done_at.unwrap(),
            "the idle socket waited for the grace period"
        );
    }

    // The SSE stream too: `done` / `cancelled` after the grace period, then the body ends.
    let done = sse.done.as_ref().expect("SSE: done");
    assert_eq!(done["finish_reason"], "cancelled", "SSE: {done}");
    let ended = sse.done_at.unwrap() - sigterm_at;
    assert!(
        ended >= grace.saturating_sub(Duration::from_millis(100))
            && ended <= grace + Duration::from_secs(3),
        "SSE: cancelled {ended:?} after SIGTERM, grace is {grace:?}"
    );
    assert!(sse.tokens >= 1 && sse.tokens < LONG_WORDS, "SSE: {sse:?}");

    // Restart: the cancelled answers were saved with exactly what was sent.
    let mut service = Service::start(dir.path(), &vars(&db, &llm, GRACE_SECS)).await;
    let client = reqwest::Client::new();
    for s in longs.iter().chain([&short, &sse]) {
        let messages = get_json(
            &client,
            format!("{}/api/sessions/{}/messages", service.url, s.session_id),
            &s.user,
        )
        .await;
        let items = messages["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{}: {messages}", s.user);
        let assistant = items
            .iter()
            .find(|m| m["role"] == "assistant")
            .unwrap_or_else(|| panic!("{}: no assistant message: {messages}", s.user));
        let done = s.done.as_ref().unwrap();
        assert_eq!(assistant["id"], done["message_id"], "{}", s.user);
        assert_eq!(
            assistant["metadata"]["finish_reason"], done["finish_reason"],
            "{}: {assistant}",
            s.user
        );
        assert_eq!(
            assistant["content"].as_str().unwrap(),
            s.text,
            "{}: the saved reply is what the client got",
            s.user
        );
    }
    service.sigterm();
    assert!(service.exit_status().await.success());
    eprintln!(
        "shutdown test: idle closed {idle_after:?} after SIGTERM, long answers ended {long_ends:?}, \
         exit after {exited_after:?}, total {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_sockets_at_once() {
    let llm = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("idle.db").display());
    // A long grace period: idle sockets must not wait for it.
    let grace = Duration::from_secs(30);
    let mut service = Service::start(dir.path(), &vars(&db, &llm, grace.as_secs())).await;
    let ws_url = service.ws_url();
    let mut opened = connect(&ws_url, "idle-a").await.unwrap();
    opened
        .send(&json!({"type": "init", "agent": "dashboard"}))
        .await;
    let Frame::Event(ready) = opened.next_frame().await else {
        panic!("closed before ready")
    };
    assert_eq!(ready["type"], "ready");
    // One that answered a question and is now idle.
    let mut answered = connect(&ws_url, "idle-b").await.unwrap();
    answered.send(&json!({"message": "hello"})).await;
    loop {
        match answered.next_frame().await {
            Frame::Event(e) if e["type"] == "done" => break,
            Frame::Event(e) => assert_ne!(e["type"], "error", "{e}"),
            Frame::Closed(code) => panic!("closed mid-answer: {code:?}"),
        }
    }
    // And one that never said anything.
    let silent = connect(&ws_url, "idle-c").await.unwrap();

    let sigterm_at = Instant::now();
    service.sigterm();
    let mut closes = Vec::new();
    for ws in [opened, answered, silent] {
        let (code, at) = idle_until_closed(ws).await;
        assert_eq!(code, Some(CloseCode::Away));
        closes.push(at - sigterm_at);
    }
    let status = service.exit_status().await;
    let exited = sigterm_at.elapsed();
    assert!(status.success(), "{status}; stderr:\n{}", service.stderr());
    for c in &closes {
        assert!(
            *c < Duration::from_secs(5),
            "idle socket closed {c:?} after SIGTERM"
        );
    }
    assert!(
        exited < Duration::from_secs(10),
        "with only idle sockets the process exits promptly, not after the {grace:?} grace: {exited:?}"
    );
    eprintln!("idle shutdown: sockets closed after {closes:?}, exit after {exited:?}");
}
