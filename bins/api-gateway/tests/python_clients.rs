#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Other people's Python clients against a real gateway + chat-service
//! (both in-process on 127.0.0.1:0, chat answered by the fake LLM's `echo`
//! model):
//!
//! - the official `openai` SDK (PyPI) through `/v1`
//!   (`scripts/py-clients/openai_sdk.py`: models, a completion, a streamed
//!   one with usage, an unknown model, a wrong key);
//! - `schemathesis` (PyPI) fuzzing every operation of the gateway's
//!   `/openapi.json` (its own routes plus chat-service's forwarded ones):
//!   no 5xx, and every response matches its documented schema; and every
//!   success response that has a body documents one (else "matches its
//!   schema" checks nothing).
//!
//! The fuzzing has a time budget of 120 s (`--max-time`: schemathesis
//! repeats its fuzzing and stateful phases, at most 20 examples per
//! operation each round, until the budget is spent; one round alone takes
//! ~12 s and misses bugs that need several requests, such as the stats
//! overflow). `CONFAB_FUZZ_SECS=N` sets another budget (0: one round), and
//! `CONFAB_FUZZ_SEED` changes the fixed seed.
//!
//! Needs `CONFAB_PYTHON` (the venv of `scripts/py-clients.sh`:
//! `CONFAB_PYTHON="$(scripts/py-clients.sh python)"`); without it both
//! tests say SKIPPED, unless `CONFAB_REQUIRE_PYTHON=1` (CI), which fails
//! them. They run on SQLite only: they test the HTTP surface, which does
//! not depend on the backend (gateway.rs covers both backends).

mod common;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Stack;
use confab_testkit::{FakeLlmConfig, TestDb};
use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

/// Time limit of the SDK script.
const SDK_TIMEOUT: Duration = Duration::from_secs(120);
/// Default time budget of the fuzzing (`--max-time`), in seconds.
const FUZZ_SECS: u64 = 120;
/// Time limit of the schemathesis process on top of its budget (start,
/// the last round, shrinking, the report).
const FUZZ_GRACE: Duration = Duration::from_secs(180);
/// The default seed of the generated data (reproducible runs).
const FUZZ_SEED: &str = "20260101";

/// The python to run the clients with, or `None` (test skipped).
fn python(what: &str) -> Option<PathBuf> {
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
            confab_testkit::skipped(&format!(
                "{what}: CONFAB_PYTHON is not set (scripts/py-clients.sh install && \
                 CONFAB_PYTHON=\"$(scripts/py-clients.sh python)\" cargo test ...)"
            ));
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

/// A scratch directory (removed on drop) for the processes' working files.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "confab-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Echoes `out` line by line (prefixed) while keeping it.
async fn relay(out: impl AsyncRead + Unpin, tag: &'static str, into: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[{tag}] {line}");
        let mut all = into.lock().unwrap();
        all.push_str(&line);
        all.push('\n');
    }
}

/// Runs `python args...` in `dir` (asynchronously: the in-process servers
/// keep serving), relaying its output live; killed after `limit`.
/// Returns the exit status and the whole output (stdout then stderr lines
/// as they came).
async fn run_python(
    python: &Path,
    args: &[String],
    dir: &Path,
    tag: &'static str,
    limit: Duration,
) -> (ExitStatus, String) {
    let mut child = Command::new(python)
        .args(args)
        .current_dir(dir)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONIOENCODING", "utf-8")
        .env("NO_COLOR", "1")
        .env("COLUMNS", "120")
        // The servers are on 127.0.0.1: no proxy in between.
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let output = Arc::new(Mutex::new(String::new()));
    let out = tokio::spawn(relay(child.stdout.take().unwrap(), tag, output.clone()));
    let err = tokio::spawn(relay(child.stderr.take().unwrap(), tag, output.clone()));
    let status = match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => status.unwrap(),
        Err(_) => {
            let _ = child.kill().await;
            let _ = (out.await, err.await);
            panic!(
                "{tag}: still running after {limit:?}; output so far:\n{}",
                output.lock().unwrap()
            );
        }
    };
    let _ = (out.await, err.await);
    let text = output.lock().unwrap().clone();
    (status, text)
}

/// A fresh stack (on its own SQLite database, which lives as long as the
/// returned `TestDb`) and a user: (database, stack, access token, API key).
async fn stack_and_user(
    tune: impl FnOnce(&mut api_gateway::Config),
) -> (TestDb, Stack, String, String) {
    let db = TestDb::sqlite();
    let stack =
        Stack::start_configured(db.db().clone(), "echo", FakeLlmConfig::default(), tune).await;
    let (_, access, _) = stack.register("py-client@example.com").await;
    let key = stack.api_key(&access, "python").await;
    (db, stack, access, key)
}

/// The official `openai` Python SDK against the gateway's `/v1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openai_python_sdk() {
    let Some(python) = python("the official openai Python SDK against /v1") else {
        return;
    };
    let t0 = Instant::now();
    let (_db, stack, _, key) = stack_and_user(|_| {}).await;
    let scratch = Scratch::new("openai-sdk");
    let script = repo_root().join("scripts/py-clients/openai_sdk.py");
    let (status, output) = run_python(
        &python,
        &[script.display().to_string(), stack.url.clone(), key.clone()],
        &scratch.0,
        "openai-sdk",
        SDK_TIMEOUT,
    )
    .await;
    eprintln!("openai_sdk.py: {status} after {:.1?}", t0.elapsed());
    assert!(
        status.success(),
        "scripts/py-clients/openai_sdk.py failed ({status}):\n{output}"
    );
    assert!(output.contains("ALL OK"), "{output}");
    // The SDK's requests really went through chat-service to the model.
    assert!(
        stack
            .llm
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/chat/completions")),
        "the fake LLM saw no chat request"
    );
}

/// Operations of an OpenAPI document as `METHOD path`.
fn operations(doc: &Value) -> Vec<String> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                ops.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    ops
}

/// Success responses (2xx other than 204) of `doc` that document no body
/// schema, as `METHOD path status (description)`.
fn undocumented_bodies(doc: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(responses) = op["responses"].as_object() else {
                continue;
            };
            for (status, resp) in responses {
                let has_schema = resp["content"].as_object().is_some_and(|c| {
                    !c.is_empty() && c.values().all(|m| m.get("schema").is_some())
                });
                if status.starts_with('2') && status != "204" && !has_schema {
                    missing.push(format!(
                        "{} {path} {status} ({})",
                        method.to_uppercase(),
                        resp["description"].as_str().unwrap_or("")
                    ));
                }
            }
        }
    }
    missing
}

/// `schemathesis` fuzzing the whole public API through the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_fuzzes_the_openapi_document() {
    let Some(python) = python("schemathesis fuzzing of /openapi.json") else {
        return;
    };
    let t0 = Instant::now();
    let budget: u64 = std::env::var("CONFAB_FUZZ_SECS").map_or(FUZZ_SECS, |s| {
        s.parse()
            .expect("CONFAB_FUZZ_SECS: a number of seconds (0: one round)")
    });
    let seed = std::env::var("CONFAB_FUZZ_SEED").unwrap_or_else(|_| FUZZ_SEED.to_owned());
    let (_db, stack, access, _) = stack_and_user(|c| {
        // One user sends thousands of requests: the per-user and per-IP
        // limits (tested in gateway.rs) would only turn most into 429s.
        c.user_rate_per_minute = 1_000_000;
        c.auth_rate_per_minute = 1_000_000;
        // The token must outlive a long soak.
        c.access_ttl = Duration::from_secs(24 * 3600);
    })
    .await;
    // Something to find: a session with messages.
    let resp = stack
        .authed(&access, Method::POST, "/api/chat")
        .json(&serde_json::json!({"message": "hello fuzzers"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    // The document merges chat-service's forwarded routes.
    let doc: Value = stack
        .req(Method::GET, "/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ops = operations(&doc);
    eprintln!("/openapi.json: {} operations", ops.len());
    for must in [
        "POST /api/auth/register",
        "POST /v1/chat/completions",
        "GET /api/sessions",
        "POST /api/chat",
        "GET /api/chat/stream",
    ] {
        assert!(ops.iter().any(|o| o == must), "{must} not in /openapi.json");
    }

    // Every documented operation is fuzzed: nothing is excluded. The SSE
    // routes are fine (schemathesis reads the whole stream and checks each
    // event); `/ws/chat` is not an OpenAPI operation, so it is not in the
    // document (the WebSocket tests cover it).
    let scratch = Scratch::new("schemathesis");
    let mut args: Vec<String> = [
        "-m",
        "schemathesis.cli",
        "run",
        &format!("{}/openapi.json", stack.url),
        "--url",
        &stack.url,
        "-H",
        &format!("Authorization: Bearer {access}"),
        // No 5xx, and every documented response matches its schema.
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        "20",
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--seed",
        &seed,
        // Nothing kept between runs (no .hypothesis directory).
        "--generation-database",
        "none",
        "--no-color",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if budget > 0 {
        args.extend(["--max-time".to_owned(), budget.to_string()]);
    }
    let limit = FUZZ_GRACE + Duration::from_secs(budget);
    eprintln!(
        "schemathesis {}",
        args[3..]
            .iter()
            .map(|a| if a.starts_with("Authorization") {
                "'Authorization: Bearer <access token>'".to_owned()
            } else {
                a.clone()
            })
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (status, _output) = run_python(&python, &args, &scratch.0, "schemathesis", limit).await;
    eprintln!("schemathesis: {status} after {:.1?}", t0.elapsed());

    let undocumented = undocumented_bodies(&doc);
    if !undocumented.is_empty() {
        eprintln!(
            "/openapi.json: {} success responses document no body schema \
             (so no response of theirs is checked):",
            undocumented.len()
        );
        for u in &undocumented {
            eprintln!("  {u}");
        }
    }
    assert!(
        status.success(),
        "schemathesis found problems ({status}); its report is above"
    );
    assert!(
        undocumented.is_empty(),
        "success responses without a documented body schema:\n  {}",
        undocumented.join("\n  ")
    );
}
