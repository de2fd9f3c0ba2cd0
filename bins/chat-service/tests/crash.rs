//! Crash safety of the real `chat-service` binary: SIGKILL while 20
//! WebSocket conversations stream (and, harder, while they are still
//! starting: some acknowledged, some not), restart on the same database, and
//! every acknowledged user message is there exactly once (no other at most
//! once), the history API works, and the database is sound (SQLite:
//! `PRAGMA integrity_check`, `PRAGMA foreign_key_check`).
//!
//! "Acknowledged" = the client got an event after `ready` for its message
//! (the engine saves the user message before its first `stage` event).
//!
//! Runs on SQLite (temp dir) and, when `TEST_DATABASE_URL` is set, on a
//! fresh PostgreSQL database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_store::diesel::{self, RunQueryDsl as _};
use confab_store::{Db, DbConfig, DbConnection};
use confab_testkit::ws::WsClient;
use confab_testkit::{FakeLlm, FakeLlmConfig, TestDb};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Conversations streaming when the server is killed.
const CONVERSATIONS: usize = 20;
/// Users they belong to (several sessions per user stream at once).
const USERS: usize = 5;
/// Tokens of each answer: far more than can stream before the kill.
const ANSWER_TOKENS: usize = 3000;
const TOKEN_DELAY: Duration = Duration::from_millis(20);
/// Bound of every wait (a loaded 2-core machine is slow, not stuck).
const PATIENCE: Duration = Duration::from_secs(90);

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
        // Keep draining stdout so the child never blocks on a full pipe.
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

    /// SIGTERM, then waits for the exit status.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("still running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
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

// ---------------------------------------------------------------------------
// Clients.

async fn connect(service: &Service, user: &str) -> WsClient {
    WsClient::connect_within(&service.ws_url(), &[("X-User-Id", user)], PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("cannot connect as {user}: {e}"))
}

fn user_of(i: usize) -> String {
    format!("crash-user-{}", i % USERS)
}

fn content_of(i: usize) -> String {
    format!("crash-test-{i}")
}

/// What a client saw of its conversation.
#[derive(Debug, Default)]
struct Seen {
    /// From `ready` (`None`: the server died before it).
    session_id: Option<String>,
    /// An event after `ready` arrived: the message must survive a crash.
    acknowledged: bool,
    tokens: usize,
    done: bool,
}

/// Progress a client reports to the test.
enum Progress {
    /// An event after `ready`: the message is acknowledged.
    Acknowledged(usize),
    /// The first token arrived.
    Streaming(usize),
}

/// One conversation: sends its message and reads until the socket dies
/// (or the answer is done).
async fn conversation(ws_url: String, i: usize, progress: mpsc::UnboundedSender<Progress>) -> Seen {
    let mut seen = Seen::default();
    let user = user_of(i);
    // The server may already be dead (a kill while conversations start).
    let Ok(mut ws) =
        WsClient::connect_within(&ws_url, &[("X-User-Id", user.as_str())], PATIENCE).await
    else {
        return seen;
    };
    let frame = json!({"type": "chat_message", "content": content_of(i)});
    if ws.try_send(&frame).await.is_err() {
        return seen;
    }
    let Some(ready) = ws.next_event().await else {
        return seen;
    };
    assert_eq!(ready["type"], "ready", "client {i}: {ready}");
    seen.session_id = Some(ready["session_id"].as_str().unwrap().to_owned());
    while let Some(event) = ws.next_event().await {
        let kind = event["type"].as_str().unwrap_or_default().to_owned();
        assert_ne!(kind, "error", "client {i}: {event}");
        if !seen.acknowledged {
            seen.acknowledged = true;
            let _ = progress.send(Progress::Acknowledged(i));
        }
        if kind == "token" {
            seen.tokens += 1;
            if seen.tokens == 1 {
                let _ = progress.send(Progress::Streaming(i));
            }
        }
        if kind == "done" {
            seen.done = true;
            break;
        }
    }
    seen
}

// ---------------------------------------------------------------------------
// Direct database checks.

#[derive(diesel::QueryableByName, Debug)]
struct ContentRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    content: String,
}

#[derive(diesel::QueryableByName, Debug)]
struct CheckRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

/// Contents of every user message, straight from the table.
async fn user_messages(db: &Db) -> Vec<String> {
    const SQL: &str = "SELECT content FROM chat_messages WHERE role = 'user'";
    let rows: Vec<ContentRow> = db
        .run(|conn| {
            let rows = match conn {
                DbConnection::Sqlite(c) => diesel::sql_query(SQL).load(c),
                DbConnection::Pg(c) => diesel::sql_query(SQL).load(c),
            };
            Ok::<_, confab_store::StoreError>(rows.expect("select user messages"))
        })
        .await
        .unwrap();
    rows.into_iter().map(|r| r.content).collect()
}

/// SQLite: opens the file with `Db::open` and runs `PRAGMA integrity_check`
/// and `PRAGMA foreign_key_check`.
fn sqlite_is_sound(url: &str) {
    let db = open_sqlite(url);
    let mut conn = db.get().unwrap();
    let DbConnection::Sqlite(c) = &mut *conn else {
        panic!("not SQLite")
    };
    let rows: Vec<CheckRow> = diesel::sql_query("PRAGMA integrity_check").load(c).unwrap();
    let report: Vec<&str> = rows.iter().map(|r| r.integrity_check.as_str()).collect();
    assert_eq!(report, ["ok"], "integrity_check");
    #[derive(diesel::QueryableByName, Debug)]
    struct FkRow {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table: String,
    }
    let violations: Vec<FkRow> = diesel::sql_query("PRAGMA foreign_key_check")
        .load(c)
        .unwrap();
    let tables: Vec<&str> = violations.iter().map(|r| r.table.as_str()).collect();
    assert!(tables.is_empty(), "foreign key violations in {tables:?}");
}

// ---------------------------------------------------------------------------
// The scenario.

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
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {text}"))
}

/// When the server is killed.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// Every conversation is acknowledged and streaming tokens.
    AllStreaming,
    /// This many messages are acknowledged; the others are on their way.
    Acknowledged(usize),
}

/// `check_db`: the PostgreSQL test database; SQLite files are opened only
/// after the restart, so no other process holds them across the kill.
async fn kill_and_restart(database_url: &str, check_db: Option<&Db>, kill_at: KillAt) {
    let started = Instant::now();
    let llm = FakeLlm::start_with(FakeLlmConfig {
        token_delay: TOKEN_DELAY,
        tokens: Some(ANSWER_TOKENS),
        ..FakeLlmConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let vars = |model: &str| {
        vec![
            ("DATABASE_URL", database_url.to_owned()),
            ("AGENT_RUNTIME__LLM_PROXY_URL", llm.base_url()),
            ("AGENT_RUNTIME__LLM_MODEL", model.to_owned()),
            ("CONFAB_LLM_MAX_RETRIES", "0".to_owned()),
        ]
    };
    let mut service = Service::start(dir.path(), &vars("slow")).await;

    // 20 conversations, 4 concurrent sessions for each of 5 users.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let clients: Vec<_> = (0..CONVERSATIONS)
        .map(|i| tokio::spawn(conversation(service.ws_url(), i, tx.clone())))
        .collect();
    drop(tx);
    let mut acknowledged = BTreeSet::new();
    let mut streaming = BTreeSet::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let enough = match kill_at {
            KillAt::AllStreaming => streaming.len() == CONVERSATIONS,
            KillAt::Acknowledged(n) => acknowledged.len() >= n,
        };
        if enough {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            Ok(Some(Progress::Acknowledged(i))) => {
                acknowledged.insert(i);
            }
            Ok(Some(Progress::Streaming(i))) => {
                streaming.insert(i);
            }
            Ok(None) | Err(_) => {}
        }
        // A conversation that ended before the kill is a failure: show why.
        if let Some(i) = clients.iter().position(|c| c.is_finished()) {
            let outcome = clients.into_iter().nth(i).unwrap().await;
            panic!(
                "client {i} ended before the kill: {outcome:?}; stderr:\n{}",
                service.stderr()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{kill_at:?} not reached after {PATIENCE:?}: {} acknowledged, {} streaming; stderr:\n{}",
            acknowledged.len(),
            streaming.len(),
            service.stderr()
        );
    }
    let kill_after = started.elapsed();

    // SIGKILL (tokio's `kill`, like std's, sends SIGKILL on Unix).
    service.child.kill().await.unwrap();
    let status = service.child.wait().await.unwrap();
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status}");

    // Every client sees its socket die; none got to the end of its answer.
    let mut seen = BTreeMap::new();
    for (i, client) in clients.into_iter().enumerate() {
        let s = tokio::time::timeout(PATIENCE, client)
            .await
            .expect("the client notices the dead server")
            .unwrap();
        assert!(!s.done, "client {i} finished before the kill: {s:?}");
        if let KillAt::AllStreaming = kill_at {
            assert!(s.acknowledged && s.tokens >= 1, "client {i}: {s:?}");
        }
        seen.insert(i, s);
    }
    let acked: Vec<usize> = (0..CONVERSATIONS)
        .filter(|i| seen[i].acknowledged)
        .collect();
    // What the clients counted as acknowledged before the kill is all there.
    assert!(acked.len() >= acknowledged.len());

    // Restart on the same database.
    let service = Service::start(dir.path(), &vars("echo")).await;
    let client = reqwest::Client::new();
    let health = get_json(&client, format!("{}/api/health", service.url), "local").await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["database"]["ok"], true, "{health}");

    for u in 0..USERS {
        let user = user_of(u);
        let list = get_json(
            &client,
            format!("{}/api/sessions?limit=100", service.url),
            &user,
        )
        .await;
        let listed: BTreeMap<String, Value> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].as_str().unwrap().to_owned(), s.clone()))
            .collect();
        assert!(listed.len() <= CONVERSATIONS / USERS, "{user}: {list}");
        // Every listed session reads back, its count matching its messages.
        for (id, session) in &listed {
            let messages = get_json(
                &client,
                format!("{}/api/sessions/{id}/messages?limit=100", service.url),
                &user,
            )
            .await;
            let items = messages["items"].as_array().unwrap();
            assert_eq!(
                session["message_count"].as_u64(),
                Some(items.len() as u64),
                "message_count matches the messages: {session} {messages}"
            );
            let owner = (0..CONVERSATIONS).find(|i| seen[i].session_id.as_deref() == Some(id));
            let users: Vec<&str> = items
                .iter()
                .filter(|m| m["role"] == "user")
                .map(|m| m["content"].as_str().unwrap())
                .collect();
            match owner {
                Some(i) if seen[&i].acknowledged => assert_eq!(
                    users,
                    [content_of(i).as_str()],
                    "client {i}: the acknowledged message exactly once: {messages}"
                ),
                Some(i) => assert!(
                    users.is_empty() || users == [content_of(i).as_str()],
                    "client {i}: {messages}"
                ),
                // Created, but the client never heard of it: at most one message.
                None => assert!(users.len() <= 1, "{messages}"),
            }
        }
        for i in acked.iter().filter(|i| *i % USERS == u) {
            let id = seen[i].session_id.as_ref().unwrap();
            assert!(
                listed.contains_key(id),
                "{user}: session {id} of client {i} not listed: {list}"
            );
        }
    }

    // Straight from the table: each acknowledged message once, none twice.
    let found = match check_db {
        Some(db) => user_messages(db).await,
        None => user_messages(&open_sqlite(database_url)).await,
    };
    for i in 0..CONVERSATIONS {
        let n = found.iter().filter(|c| **c == content_of(i)).count();
        let expected = if seen[&i].acknowledged { 1..=1 } else { 0..=1 };
        assert!(
            expected.contains(&n),
            "client {i} ({:?}): stored {n} times",
            seen[&i]
        );
    }
    assert!(
        found.iter().all(|c| c.starts_with("crash-test-")),
        "{found:?}"
    );

    // The recovered database takes writes: continue a crashed session.
    let first = acked[0];
    let mut ws = connect(&service, &user_of(first)).await;
    let init = json!({"type": "init", "agent": "dashboard", "session_id": seen[&first].session_id});
    ws.send(&init).await;
    let ready = ws.next_event().await.expect("ready");
    assert_eq!(ready["type"], "ready", "{ready}");
    assert_eq!(ready["history"][0]["content"], content_of(first), "{ready}");
    let msg = json!({"type": "chat_message", "content": "after the crash"});
    ws.send(&msg).await;
    let done = loop {
        let e = ws.next_event().await.expect("the answer streams");
        assert_ne!(e["type"], "error", "{e}");
        if e["type"] == "done" {
            break e;
        }
    };
    assert_eq!(done["finish_reason"], "stop", "{done}");
    ws.close().await;

    if database_url.starts_with("sqlite") {
        sqlite_is_sound(database_url);
    }
    let mut service = service;
    let status = service.terminate().await;
    assert!(
        status.success(),
        "exit {status}; stderr:\n{}",
        service.stderr()
    );
    if database_url.starts_with("sqlite") {
        sqlite_is_sound(database_url);
    }
    eprintln!(
        "crash test ({}, {kill_at:?}): killed after {kill_after:?} with {} acknowledged, \
         {} streaming; total {:?}",
        database_url.split(':').next().unwrap_or_default(),
        acked.len(),
        (0..CONVERSATIONS).filter(|i| seen[i].tokens > 0).count(),
        started.elapsed()
    );
}

/// Opens a SQLite file the service created (no background checkpointer).
fn open_sqlite(url: &str) -> Db {
    let mut config = DbConfig::new(url);
    config.max_connections = 2;
    config.sqlite_checkpoint_interval = None;
    Db::open(&config).unwrap_or_else(|e| panic!("Db::open({url}) after the crash: {e}"))
}

/// A temp directory for a SQLite database the service creates, and its URL.
fn sqlite() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("data/crash.db").display());
    (dir, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_sigkill_while_20_conversations_stream() {
    let (_dir, url) = sqlite();
    kill_and_restart(&url, None, KillAt::AllStreaming).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_sigkill_while_20_conversations_start() {
    let (_dir, url) = sqlite();
    kill_and_restart(&url, None, KillAt::Acknowledged(CONVERSATIONS / 4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_sigkill_while_20_conversations_stream() {
    let Some(test_db) = TestDb::postgres() else {
        return;
    };
    kill_and_restart(test_db.url(), Some(test_db.db()), KillAt::AllStreaming).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_sigkill_while_20_conversations_start() {
    let Some(test_db) = TestDb::postgres() else {
        return;
    };
    kill_and_restart(
        test_db.url(),
        Some(test_db.db()),
        KillAt::Acknowledged(CONVERSATIONS / 4),
    )
    .await;
}
