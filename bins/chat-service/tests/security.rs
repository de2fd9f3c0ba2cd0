//! Attacks on chat-service (issue 17), against the real binary:
//!
//! - a non-loopback bind without `AGENT_RUNTIME__INTERNAL_API_KEY` does not
//!   start (anyone reaching it could act as any user), unless the operator
//!   opts out explicitly, which starts with a warning;
//! - session imports: the body is read only for an authenticated caller and
//!   within its limit, parsed without a tree of JSON values for every
//!   number, and concurrent maximum-size imports keep the process under a
//!   stated resident memory (read from `/proc`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Child;

#[path = "support/child.rs"]
mod child;
use child::command;

/// The binary's `listening on` URL, or its exit status and stderr when it
/// exits first.
async fn start(dir: &Path, vars: &[(&str, &str)]) -> Result<(Child, String), (i32, String)> {
    let mut child = command(dir, vars).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("neither `listening on` nor an exit within 60 s")
        .unwrap();
    match line.and_then(|l| l.strip_prefix("listening on ").map(str::to_owned)) {
        Some(url) => Ok((child, url)),
        None => {
            let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .expect("did not exit")
                .unwrap();
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .await
                .unwrap();
            Err((status.code().unwrap_or(-1), err))
        }
    }
}

/// The local port of a `http://HOST:PORT` URL.
fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_public_bind_without_an_internal_key_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    // The attack: chat-service on every interface without a key would take
    // X-User-Id from anyone. It must not start.
    for bind in ["0.0.0.0:0", "[::]:0"] {
        let (code, err) = start(dir.path(), &[("CHAT_SERVICE_BIND", bind)])
            .await
            .map(|_| ())
            .expect_err("started on a public address without a key");
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("AGENT_RUNTIME__INTERNAL_API_KEY"), "{err}");
        assert!(err.contains("CHAT_SERVICE_ALLOW_NO_INTERNAL_KEY"), "{err}");
    }
    assert!(
        !dir.path().join("data/confab.db").exists(),
        "nothing was created before refusing"
    );
    let client = reqwest::Client::new();
    // With the key: it starts, and identity headers without the key are refused.
    let (child, url) = start(
        dir.path(),
        &[
            ("CHAT_SERVICE_BIND", "0.0.0.0:0"),
            ("AGENT_RUNTIME__INTERNAL_API_KEY", "a-key-for-the-test"),
        ],
    )
    .await
    .unwrap();
    let local = format!("http://127.0.0.1:{}", port_of(&url));
    let resp = client
        .get(format!("{local}/api/sessions"))
        .header("x-user-id", "victim")
        .header("x-user-role", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    drop(child);
    // The explicit opt-out: starts, and says loudly what it means.
    let (mut child, url) = start(
        dir.path(),
        &[
            ("CHAT_SERVICE_BIND", "0.0.0.0:0"),
            ("CHAT_SERVICE_ALLOW_NO_INTERNAL_KEY", "1"),
        ],
    )
    .await
    .unwrap();
    let local = format!("http://127.0.0.1:{}", port_of(&url));
    let resp = client.get(format!("{local}/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    child.kill().await.unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(
        err.contains("WITHOUT AGENT_RUNTIME__INTERNAL_API_KEY"),
        "{err}"
    );
    // Loopback without a key stays the standalone default.
    let (child, _) = start(dir.path(), &[]).await.unwrap();
    drop(child);
}

/// `VmHWM` (peak resident memory) of `pid`, in MiB.
fn peak_mib(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb / 1024.0
}

/// An import whose session metadata is an array of `n` zeros.
fn zeros_import(n: usize) -> Vec<u8> {
    let mut body = br#"{"format":"confab.session.v1","exported_at":"2026-01-01T00:00:00Z","session":{"metadata":{"a":["#.to_vec();
    for i in 0..n {
        if i > 0 {
            body.push(b',');
        }
        body.push(b'0');
    }
    body.extend_from_slice(b"]}},\"messages\":[]}");
    body
}

/// Sends a request head declaring `length` bytes plus `sent`, returns the status.
async fn declare(url: &str, head: &str, length: usize, sent: &[u8]) -> Option<u16> {
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{head}\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let _ = stream.write_all(sent).await;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.split(' ').nth(1)?.parse().ok()
}

/// Peak memory growth allowed while [`IMPORTS`] concurrent maximum-size
/// (8 MiB) imports of the attack shape are refused.
const IMPORT_GROWTH_MIB: f64 = 80.0;
/// Concurrent imports.
const IMPORTS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn imports_are_read_for_callers_only_and_bounded_in_memory() {
    if !Path::new("/proc/self/status").exists() {
        eprintln!("SKIPPED: no /proc");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let max = 8 * 1024 * 1024;
    let (child, url) = start(
        dir.path(),
        &[
            ("AGENT_RUNTIME__INTERNAL_API_KEY", "k"),
            ("HTTP_MAX_IMPORT_BYTES", &max.to_string()),
            ("HTTP_WORKERS", "2"),
        ],
    )
    .await
    .unwrap();
    let pid = child.id().unwrap();
    // Without the key: 401 before the declared 30 MB arrive.
    assert_eq!(
        declare(&url, "POST /api/sessions/import HTTP/1.1", 30_000_000, b"{").await,
        Some(401)
    );
    // With it but declaring more than the limit: 413 at once.
    assert_eq!(
        declare(
            &url,
            "POST /api/sessions/import HTTP/1.1\r\nX-Internal-Auth: k\r\nX-User-Id: u1",
            max + 1,
            b"{"
        )
        .await,
        Some(413)
    );
    let client = reqwest::Client::new();
    let before = peak_mib(pid);
    let started = Instant::now();
    let body = zeros_import((max - 200) / 2);
    assert!(body.len() <= max);
    let mut tasks = Vec::new();
    for _ in 0..IMPORTS {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let resp = client
                .post(format!("{url}/api/sessions/import"))
                .header("x-internal-auth", "k")
                .header("x-user-id", "attacker")
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body)
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert!(status == 413 || status == 503, "{status} {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    let after = peak_mib(pid);
    eprintln!(
        "chat-service VmHWM {before:.1} MiB -> {after:.1} MiB over {IMPORTS} concurrent 8 MiB imports, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        after - before < IMPORT_GROWTH_MIB,
        "peak RSS grew by {:.1} MiB (limit {IMPORT_GROWTH_MIB} MiB)",
        after - before
    );
    // Nothing was imported, and ordinary imports still work.
    let list: Value = client
        .get(format!("{url}/api/sessions"))
        .header("x-internal-auth", "k")
        .header("x-user-id", "attacker")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let as_user = |m: reqwest::Method, path: &str| {
        client
            .request(m, format!("{url}{path}"))
            .header("x-internal-auth", "k")
            .header("x-user-id", "attacker")
    };
    let resp = as_user(reqwest::Method::POST, "/api/sessions")
        .json(&json!({"title": "kept"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let session: Value = resp.json().await.unwrap();
    let mut export: Value = as_user(
        reqwest::Method::GET,
        &format!(
            "/api/sessions/{}/export?format=json",
            session["id"].as_str().unwrap()
        ),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    export["session"]["metadata"] = json!({"tags": [1, 2, 3]});
    let resp = as_user(reqwest::Method::POST, "/api/sessions/import")
        .json(&export)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    drop(child);
}
