//! Durable ingestion of the real `chat-service` binary: 10 documents are
//! uploaded, the process is SIGKILLed while jobs are running, restarted on
//! the same database, and every document reaches `ready` with the chunk
//! count of a clean run and no duplicated chunk.
//!
//! Runs on SQLite (temp dir) and, when `TEST_DATABASE_URL` is set, on a
//! fresh PostgreSQL database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confab_testkit::TestDb;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

const PATIENCE: Duration = Duration::from_secs(120);
const DOCUMENTS: usize = 10;
const BOUNDARY: &str = "confab-kb-crash-boundary";

struct Service {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
}

impl Service {
    async fn start(dir: &Path, database_url: &str) -> Service {
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
            .env("LOG_LEVEL", "warn")
            .env("DATABASE_URL", database_url)
            .env("CONFAB_KNOWLEDGE_WORKERS", "2")
            .env("CONFAB_KNOWLEDGE_LEASE_SECS", "2");
        let mut child = cmd.spawn().expect("cannot spawn chat-service");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 8192];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = match tokio::time::timeout(PATIENCE, lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            other => panic!(
                "no `listening on` line ({other:?}); stderr:\n{}",
                stderr.lock().unwrap()
            ),
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let url = line.strip_prefix("listening on ").unwrap().to_owned();
        Service { child, url, stderr }
    }

    async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        let status = self.child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL");
    }
}

/// Ten distinct Markdown documents, large enough that ingesting them takes a while.
fn corpus() -> Vec<(String, Vec<u8>)> {
    (0..DOCUMENTS)
        .map(|d| {
            let mut text = format!("# Report {d}\n\n");
            for section in 0..120 {
                text.push_str(&format!("## Section {section} of report {d}\n\n"));
                for p in 0..6 {
                    text.push_str(&format!(
                        "Paragraph {p} of section {section} in report {d} records the reading \
                         {} at station {} with notes on weather, tides and the supply boat. ",
                        (d * 7919 + section * 31 + p) % 1000,
                        (section * 13 + p) % 97
                    ));
                    text.push_str(
                        "The crew logged the wind, the swell and the state of the lamp.\n\n",
                    );
                }
            }
            (format!("report-{d}.md"), text.into_bytes())
        })
        .collect()
}

fn multipart(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn create_base(client: &reqwest::Client, url: &str, name: &str) -> String {
    let resp = client
        .post(format!("{url}/api/knowledge"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn upload(client: &reqwest::Client, url: &str, kb: &str, files: &[(String, Vec<u8>)]) {
    let resp = client
        .post(format!("{url}/api/knowledge/{kb}/documents"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart(files))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
}

async fn documents(client: &reqwest::Client, url: &str, kb: &str) -> Vec<Value> {
    let resp = client
        .get(format!("{url}/api/knowledge/{kb}/documents"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

/// filename -> chunk count, once every document is `ready`.
async fn all_ready(client: &reqwest::Client, url: &str, kb: &str) -> BTreeMap<String, i64> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let docs = documents(client, url, kb).await;
        assert!(docs.iter().all(|d| d["status"] != "failed"), "{docs:#?}");
        if docs.len() == DOCUMENTS && docs.iter().all(|d| d["status"] == "ready") {
            return docs
                .iter()
                .map(|d| {
                    (
                        d["filename"].as_str().unwrap().to_owned(),
                        d["chunk_count"].as_i64().unwrap(),
                    )
                })
                .collect();
        }
        assert!(Instant::now() < deadline, "not all ready: {docs:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn kill_while_ingesting(database_url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let files = corpus();
    let mut service = Service::start(dir.path(), database_url).await;
    let kb = create_base(&client, &service.url, "crash").await;
    upload(&client, &service.url, &kb, &files).await;
    // Kill as soon as a job is running (some may be done, most are not).
    let deadline = Instant::now() + PATIENCE;
    let caught = loop {
        let docs = documents(&client, &service.url, &kb).await;
        let processing = docs.iter().filter(|d| d["status"] == "processing").count();
        let ready = docs.iter().filter(|d| d["status"] == "ready").count();
        if processing > 0 {
            break (processing, ready);
        }
        assert!(ready < DOCUMENTS, "everything finished before the kill");
        assert!(
            Instant::now() < deadline,
            "no job ever started:\n{}",
            service.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    service.kill().await;
    eprintln!("killed with {} processing, {} ready", caught.0, caught.1);

    let service = Service::start(dir.path(), database_url).await;
    let counts = all_ready(&client, &service.url, &kb).await;

    // A clean run of the same files in another base.
    let clean = create_base(&client, &service.url, "clean").await;
    upload(&client, &service.url, &clean, &files).await;
    let clean_counts = all_ready(&client, &service.url, &clean).await;
    assert_eq!(counts, clean_counts);

    // No duplicated chunk: each document's chunks are 0..n once each.
    for d in documents(&client, &service.url, &kb).await {
        let detail: Value = client
            .get(format!(
                "{}/api/knowledge/{kb}/documents/{}",
                service.url,
                d["id"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let indexes: Vec<i64> = detail["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["index"].as_i64().unwrap())
            .collect();
        let expected: Vec<i64> = (0..d["chunk_count"].as_i64().unwrap()).collect();
        assert_eq!(indexes, expected, "{}", d["filename"]);
    }
    // And search finds each report once per matching chunk, not twice.
    let hits: Value = client
        .get(format!(
            "{}/api/knowledge/{kb}/search?q=report%203%20section%205&k=10",
            service.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = hits["items"].as_array().unwrap();
    let mut seen = std::collections::HashSet::new();
    for h in items {
        let key = (
            h["metadata"]["knowledge_document_id"].to_string(),
            h["metadata"]["chunk_index"].to_string(),
        );
        assert!(seen.insert(key), "duplicate hit {h}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_sigkill_while_10_documents_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("data/kb.db").display());
    kill_while_ingesting(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_sigkill_while_10_documents_ingest() {
    let Some(test_db) = TestDb::postgres() else {
        eprintln!("SKIPPED: TEST_DATABASE_URL is not set (PostgreSQL knowledge crash test)");
        return;
    };
    kill_while_ingesting(test_db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pgvector_sigkill_while_10_documents_ingest() {
    let Some(test_db) = TestDb::pgvector() else {
        eprintln!("SKIPPED: TEST_PGVECTOR_URL is not set (pgvector knowledge crash test)");
        return;
    };
    kill_while_ingesting(test_db.url()).await;
}
