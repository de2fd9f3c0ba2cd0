//! The `chat-service` binary as a child process: configuration from the
//! environment, the `listening on` line, the default SQLite file, and a
//! clean exit on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Child;

#[path = "support/child.rs"]
mod child;
use child::command;

/// Starts the binary and returns it with its base URL (from the `listening on` line).
async fn start(dir: &Path, vars: &[(&str, &str)]) -> (Child, String) {
    let mut child = command(dir, vars).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("no `listening on` line within 60 s")
        .unwrap()
        .expect("stdout closed before `listening on`");
    let url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    let port: u16 = url
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected address: {url}"))
        .parse()
        .unwrap();
    assert_ne!(port, 0, "the real port is printed");
    (child, url)
}

async fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("did not exit within 20 s of SIGTERM")
        .unwrap()
}

#[tokio::test]
async fn starts_on_the_default_database_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = start(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let live: serde_json::Value = client
        .get(format!("{url}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live["status"], "ok");
    // Standalone: seed 003's curl works with no headers.
    let res = client
        .post(format!("{url}/api/sessions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"title": "from curl"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let session: serde_json::Value = res.json().await.unwrap();
    assert_eq!(session["user_id"], "local");
    // DATABASE_URL defaults to sqlite://data/confab.db under the working directory.
    assert!(dir.path().join("data/confab.db").exists());

    let status = terminate(&mut child).await;
    assert!(status.success(), "exit status {status}");
    assert!(client.get(format!("{url}/health")).send().await.is_err());

    // Restart on the same file: the data is still there.
    let (mut child, url) = start(dir.path(), &[]).await;
    let list: serde_json::Value = client
        .get(format!("{url}/api/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["title"], "from curl");
    assert!(terminate(&mut child).await.success());
}

#[tokio::test]
async fn internal_key_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("x/y.db").display());
    let (mut child, url) = start(
        dir.path(),
        &[
            ("AGENT_RUNTIME__INTERNAL_API_KEY", "from-env"),
            ("DATABASE_URL", &db),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let res = client
        .get(format!("{url}/api/sessions"))
        .header("X-User-Id", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client
        .get(format!("{url}/api/sessions"))
        .header("X-User-Id", "alice")
        .header("X-Internal-Auth", "from-env")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(dir.path().join("x/y.db").exists());
    assert!(terminate(&mut child).await.success());
}

#[tokio::test]
async fn bad_configuration_fails_fast_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    for (vars, code, needle) in [
        (
            vec![("DATABASE_MAX_CONNECTIONS", "many")],
            2,
            "DATABASE_MAX_CONNECTIONS",
        ),
        (vec![("LOG_FORMAT", "xml")], 2, "log format"),
        (
            vec![("DATABASE_URL", "mysql://h/db")],
            1,
            "unsupported database URL",
        ),
        (
            vec![("CHAT_SERVICE_BIND", "not an address")],
            1,
            "cannot listen",
        ),
    ] {
        let mut child = command(dir.path(), &vars).spawn().unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("should exit")
            .unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .await
            .unwrap();
        assert_eq!(status.code(), Some(code), "{vars:?}: {err}");
        assert!(err.contains(needle), "{vars:?}: {err}");
    }
}
