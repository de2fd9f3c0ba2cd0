//! The seed 003 Python WebSocket client examples, unchanged
//! (`scripts/seed-clients/*.py`, Python `websockets` from PyPI), against the
//! real `chat-service` binary running standalone on the seed's address
//! `localhost:8000` with the built-in model: each script ends on `done`,
//! and the conversation is saved for the standalone user `local`.
//!
//! Needs `CONFAB_PYTHON` (a python with `websockets`:
//! `CONFAB_PYTHON="$(scripts/py-clients.sh python)"`); without it the test
//! says SKIPPED, unless `CONFAB_REQUIRE_PYTHON=1` (CI), which fails it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// The seed's address (the scripts are unchanged, so this is fixed).
const SEED_ADDR: &str = "127.0.0.1:8000";
const PATIENCE: Duration = Duration::from_secs(90);
/// Time limit of one script run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The python to run the scripts with, or `None` (test skipped).
fn python() -> Option<PathBuf> {
    match std::env::var("CONFAB_PYTHON")
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            if std::env::var("CONFAB_REQUIRE_PYTHON").as_deref() == Ok("1") {
                panic!(
                    "CONFAB_REQUIRE_PYTHON=1 but CONFAB_PYTHON is not set \
                     (CONFAB_PYTHON=\"$(scripts/py-clients.sh python)\" after scripts/py-clients.sh install)"
                );
            }
            confab_testkit::skipped(
                "seed 003 Python WebSocket clients: CONFAB_PYTHON is not set \
                 (scripts/py-clients.sh install && \
                 CONFAB_PYTHON=\"$(scripts/py-clients.sh python)\" cargo test ...)",
            );
            None
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// A running `chat-service` child process.
struct Service {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
}

impl Service {
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
        cmd.env("HTTP_WORKERS", "2").env("LOG_LEVEL", "warn");
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
                "chat-service did not start ({other:?}); stderr:\n{}",
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

    async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("still running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("no exit after SIGTERM")
            .unwrap()
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

/// Fails clearly when something else already serves the seed's port.
fn seed_port_is_free() {
    if let Err(e) = std::net::TcpListener::bind(SEED_ADDR) {
        panic!(
            "port 8000 is busy ({e}): the seed 003 scripts connect to ws://localhost:8000 \
             unchanged, so this test needs {SEED_ADDR} free; stop whatever listens there"
        );
    }
    // `localhost` may resolve to ::1 first: nothing else may answer there.
    if std::net::TcpStream::connect_timeout(&"[::1]:8000".parse().unwrap(), Duration::from_secs(1))
        .is_ok()
    {
        panic!(
            "something listens on [::1]:8000: the seed scripts' `localhost:8000` would reach it \
             instead of chat-service on {SEED_ADDR}"
        );
    }
}

/// Runs one script to its end (at most [`SCRIPT_TIMEOUT`]); returns its stdout.
async fn run_script(python: &Path, script: &Path, service: &Service) -> String {
    let mut child = Command::new(python)
        .arg(script)
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    let started = Instant::now();
    let run = async {
        let (a, b, status) = tokio::join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err),
            child.wait()
        );
        a.unwrap();
        b.unwrap();
        status.unwrap()
    };
    let status = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} did not finish within {SCRIPT_TIMEOUT:?}; server stderr:\n{}",
                script.display(),
                service.stderr()
            )
        });
    assert!(
        status.success(),
        "{} exited with {status}\nstdout:\n{out}\nstderr:\n{err}\nserver stderr:\n{}",
        script.display(),
        service.stderr()
    );
    eprintln!(
        "{} ran in {:?}:\n{out}",
        script.file_name().unwrap().to_string_lossy(),
        started.elapsed()
    );
    out
}

async fn get_json(client: &reqwest::Client, url: String) -> Value {
    // No identity headers: standalone, the local user.
    let resp = client.get(&url).send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "GET {url}: {text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_003_python_clients_run_unchanged() {
    let Some(python) = python() else {
        return;
    };
    let started = Instant::now();
    let scripts = repo_root().join("scripts/seed-clients");
    let test_chat = scripts.join("ws_test_chat.py");
    let main = scripts.join("ws_main.py");
    for s in [&test_chat, &main] {
        assert!(s.is_file(), "{} is missing", s.display());
    }
    seed_port_is_free();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("seed.db").display());
    // Standalone (no internal key), built-in model (no LLM variables).
    let mut service = Service::start(
        dir.path(),
        &[
            ("CHAT_SERVICE_BIND", SEED_ADDR.to_owned()),
            ("DATABASE_URL", db),
        ],
    )
    .await;
    assert_eq!(service.url, format!("http://{SEED_ADDR}"));

    // Example 1 prints `[type] content` and stops after `done`.
    let out = run_script(&python, &test_chat, &service).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("[ready] ")),
        "ready line: {out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("[token] ")),
        "token lines: {out}"
    );
    assert!(
        lines.last().is_some_and(|l| l.starts_with("[done]")),
        "the last line is the done line: {out}"
    );
    // Example 2 prints `type: content` and stops after `done`.
    let out = run_script(&python, &main, &service).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("token: ")),
        "token lines: {out}"
    );
    assert!(
        lines.last().is_some_and(|l| l.starts_with("done:")),
        "the last line is the done line: {out}"
    );

    // Both conversations were saved for the standalone user.
    let client = reqwest::Client::new();
    let list = get_json(&client, format!("{}/api/sessions", service.url)).await;
    let sessions = list["items"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{list}");
    let mut asked = Vec::new();
    for s in sessions {
        assert_eq!(s["user_id"], "local", "{s}");
        let messages = get_json(
            &client,
            format!(
                "{}/api/sessions/{}/messages",
                service.url,
                s["id"].as_str().unwrap()
            ),
        )
        .await;
        let items = messages["items"].as_array().unwrap();
        assert_eq!(items.len(), 2, "{messages}");
        let user = items.iter().find(|m| m["role"] == "user").unwrap();
        let assistant = items.iter().find(|m| m["role"] == "assistant").unwrap();
        assert!(
            !assistant["content"].as_str().unwrap().trim().is_empty(),
            "{messages}"
        );
        assert_eq!(assistant["metadata"]["finish_reason"], "stop", "{messages}");
        asked.push(user["content"].as_str().unwrap().to_owned());
    }
    asked.sort();
    assert_eq!(asked, ["Привет, Нейра!", "Тест"]);

    let status = service.terminate().await;
    assert!(status.success(), "{status}; stderr:\n{}", service.stderr());
    eprintln!("seed client test: {:?}", started.elapsed());
}
