//! The SSE routes of the real `chat-service` binary read as a real client
//! reads them: reqwest's `bytes_stream()` parsed by `eventsource-stream`,
//! event by event as they arrive, with the fake LLM's `slow` model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_testkit::{FakeLlm, FakeLlmConfig};
use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

const PATIENCE: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------
// The binary as a child process.

struct Service {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
    // Kept alive as long as the service points at it.
    _llm: FakeLlm,
    _dir: tempfile::TempDir,
}

impl Service {
    /// The binary, standalone, on a temp SQLite file, answering with the
    /// fake server's `slow` model: `tokens` tokens `delay` apart.
    async fn start(tokens: usize, delay: Duration) -> Service {
        let llm = FakeLlm::start_with(FakeLlmConfig {
            token_delay: delay,
            tokens: Some(tokens),
            ..FakeLlmConfig::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}", dir.path().join("sse.db").display());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-service"));
        cmd.current_dir(dir.path())
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
            .env("LOG_LEVEL", "warn")
            .env("DATABASE_URL", db)
            .env("AGENT_RUNTIME__LLM_PROXY_URL", llm.base_url())
            .env("AGENT_RUNTIME__LLM_MODEL", "slow")
            .env("CONFAB_LLM_MAX_RETRIES", "0");
        let mut child = cmd.spawn().expect("cannot spawn chat-service");
        let stderr = Arc::new(Mutex::new(String::new()));
        tokio::spawn(collect(child.stderr.take().unwrap(), stderr.clone()));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = match tokio::time::timeout(PATIENCE, lines.next_line()).await {
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
        Service {
            child,
            url,
            stderr,
            _llm: llm,
            _dir: dir,
        }
    }

    fn llm(&self) -> &FakeLlm {
        &self._llm
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    async fn stop(mut self) {
        let pid = self.child.id().expect("still running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("no exit after SIGTERM")
            .unwrap();
        assert!(status.success(), "{status}; stderr:\n{}", self.stderr());
    }
}

async fn collect(out: impl AsyncRead + Unpin, into: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut s = into.lock().unwrap();
        s.push_str(&line);
        s.push('\n');
    }
}

// ---------------------------------------------------------------------------
// The client side.

/// An SSE response parsed by `eventsource-stream`, with arrival times.
async fn events_of(resp: reqwest::Response) -> impl Stream<Item = (Event, Instant)> + Unpin {
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    Box::pin(resp.bytes_stream().eventsource().map(|e| {
        let e = e.unwrap_or_else(|e| panic!("malformed SSE: {e}"));
        (e, Instant::now())
    }))
}

/// The next event within the patience bound; `None` at the end of the body.
async fn next(
    events: &mut (impl Stream<Item = (Event, Instant)> + Unpin),
) -> Option<(Event, Instant)> {
    tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("no SSE event within the patience bound")
}

async fn get_json(client: &reqwest::Client, url: String, user: &str) -> Value {
    let resp = client
        .get(&url)
        .header("X-User-Id", user)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "GET {url}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Events arrived one by one: between the first token and the last one at
/// least half the time the model took to produce them passed (a buffered
/// response would deliver them all at once).
fn assert_incremental(first: Instant, last: Instant, tokens: usize, delay: Duration, what: &str) {
    let produced_over = delay * (tokens as u32 - 1);
    let spread = last - first;
    assert!(
        spread >= produced_over / 2,
        "{what}: events arrived within {spread:?}, the model took at least {produced_over:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_stream_events_arrive_as_they_are_generated() {
    const TOKENS: usize = 40;
    const DELAY: Duration = Duration::from_millis(50);
    let service = Service::start(TOKENS, DELAY).await;
    let client = reqwest::Client::new();
    let asked = Instant::now();
    let resp = client
        .get(format!(
            "{}/api/chat/stream?message=stream%20me%20please",
            service.url
        ))
        .header("X-User-Id", "sse-reader")
        .send()
        .await
        .unwrap();
    let mut events = events_of(resp).await;
    let mut seen: Vec<(Value, Instant)> = Vec::new();
    while let Some((event, at)) = next(&mut events).await {
        assert_eq!(event.event, "message", "data-only events: {event:?}");
        let value: Value = serde_json::from_str(&event.data)
            .unwrap_or_else(|e| panic!("data is not JSON ({e}): {:?}", event.data));
        seen.push((value, at));
    }
    let kinds: Vec<&str> = seen
        .iter()
        .map(|(v, _)| v["type"].as_str().unwrap())
        .collect();
    let tokens: Vec<&(Value, Instant)> =
        seen.iter().filter(|(v, _)| v["type"] == "token").collect();
    assert_eq!(tokens.len(), TOKENS, "{kinds:?}");
    assert_eq!(&kinds[..3], ["stage", "stage", "stage"], "{kinds:?}");
    assert_eq!(&kinds[kinds.len() - 2..], ["sources", "done"], "{kinds:?}");
    let (done, _) = seen.last().unwrap();
    assert_eq!(done["finish_reason"], "stop", "{done}");

    // Incremental: the first event came long before the last token could
    // even have been produced, and the tokens trickled in.
    let first_event = seen[0].1;
    let (first_token, last_token) = (tokens[0].1, tokens[TOKENS - 1].1);
    assert!(
        first_event + DELAY * (TOKENS as u32 - 1) / 2 <= last_token,
        "first event {:?} after asking, last token {:?}",
        first_event - asked,
        last_token - asked
    );
    assert_incremental(
        first_token,
        last_token,
        TOKENS,
        DELAY,
        "GET /api/chat/stream",
    );

    // What was streamed is what was saved.
    let text: String = tokens
        .iter()
        .map(|(v, _)| v["content"].as_str().unwrap())
        .collect();
    let session = done["session_id"].as_str().unwrap();
    let messages = get_json(
        &client,
        format!("{}/api/sessions/{session}/messages", service.url),
        "sse-reader",
    )
    .await;
    assert_eq!(messages["items"][0]["role"], "assistant");
    assert_eq!(messages["items"][0]["content"], text.as_str());
    assert_eq!(messages["items"][0]["id"], done["message_id"]);
    eprintln!(
        "GET /api/chat/stream: first event after {:?}, first token {:?}, last token {:?}",
        first_event - asked,
        first_token - asked,
        last_token - asked
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_stream_tokens_arrive_one_by_one_and_end_with_done_marker() {
    const TOKENS: usize = 30;
    const DELAY: Duration = Duration::from_millis(50);
    let service = Service::start(TOKENS, DELAY).await;
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/agent/message/stream", service.url))
        .header("X-User-Id", "seed-004")
        .json(&json!({"session_id": "conversation-1", "role": "user", "content": "hello agent"}))
        .send()
        .await
        .unwrap();
    let mut events = events_of(resp).await;
    let mut data = Vec::new();
    while let Some((event, at)) = next(&mut events).await {
        data.push((event.data, at));
    }
    let (last, _) = data.last().expect("some events");
    assert_eq!(last, "[DONE]", "the stream ends with [DONE]");
    let frames: Vec<(Value, Instant)> = data[..data.len() - 1]
        .iter()
        .map(|(d, at)| {
            (
                serde_json::from_str(d).unwrap_or_else(|e| panic!("not JSON ({e}): {d}")),
                *at,
            )
        })
        .collect();
    assert_eq!(frames.len(), TOKENS + 1, "{data:?}");
    for (i, (f, _)) in frames.iter().enumerate() {
        let is_final = i == TOKENS;
        assert_eq!(f["type"], "assistant_message", "{f}");
        assert_eq!(f["is_final"], is_final, "{f}");
        let expected = match i {
            _ if is_final => String::new(),
            0 => "tok0".to_owned(),
            _ => format!(" tok{i}"),
        };
        assert_eq!(f["token"], expected.as_str(), "{f}");
    }
    assert_incremental(
        frames[0].1,
        frames[TOKENS - 1].1,
        TOKENS,
        DELAY,
        "POST /agent/message/stream",
    );
    // The same key continues the same session.
    let sessions = get_json(&client, format!("{}/api/sessions", service.url), "seed-004").await;
    assert_eq!(sessions["items"].as_array().unwrap().len(), 1, "{sessions}");
    assert_eq!(sessions["items"][0]["message_count"], 2, "{sessions}");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_goes_away_cancels_the_answer_and_keeps_what_was_generated() {
    const TOKENS: usize = 1000;
    const DELAY: Duration = Duration::from_millis(20);
    let service = Service::start(TOKENS, DELAY).await;
    let client = reqwest::Client::new();
    let resp = client
        .get(format!(
            "{}/api/chat/stream?message=a%20long%20one",
            service.url
        ))
        .header("X-User-Id", "sse-leaver")
        .send()
        .await
        .unwrap();
    let mut events = events_of(resp).await;
    let mut received = String::new();
    let mut tokens = 0;
    while tokens < 5 {
        let (event, _) = next(&mut events).await.expect("the stream goes on");
        let v: Value = serde_json::from_str(&event.data).unwrap();
        if v["type"] == "token" {
            received.push_str(v["content"].as_str().unwrap());
            tokens += 1;
        }
    }
    // The reader goes away (as EventSource.close() does).
    drop(events);
    assert!(
        service.llm().wait_for_disconnect(PATIENCE).await,
        "the model call was not stopped after the reader left; stderr:\n{}",
        service.stderr()
    );
    // The partial answer is saved as cancelled (wait until it is written).
    let deadline = Instant::now() + PATIENCE;
    let (session, assistant) = loop {
        let list = get_json(
            &client,
            format!("{}/api/sessions", service.url),
            "sse-leaver",
        )
        .await;
        let session = list["items"][0]["id"].as_str().unwrap().to_owned();
        let messages = get_json(
            &client,
            format!("{}/api/sessions/{session}/messages", service.url),
            "sse-leaver",
        )
        .await;
        let assistant = messages["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "assistant")
            .cloned();
        if let Some(a) = assistant {
            break (session, a);
        }
        assert!(
            Instant::now() < deadline,
            "no assistant message saved: {messages}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        assistant["metadata"]["finish_reason"], "cancelled",
        "{assistant}"
    );
    let saved = assistant["content"].as_str().unwrap();
    assert!(
        saved.starts_with(&received),
        "the saved reply starts with what was read: {saved:?} vs {received:?}"
    );
    let saved_tokens = saved.split_whitespace().count();
    assert!(
        saved_tokens < TOKENS / 2,
        "{session}: {saved_tokens} tokens saved, the answer was not stopped early"
    );
    service.stop().await;
}
