//! Knowledge bases through the gateway: upload every format over real HTTP
//! (multipart and JSON), watch ingestion (polling and SSE), ask about the
//! documents on every chat path (REST, SSE, WebSocket, /v1), cited sources
//! with page / heading; bad uploads; and the isolation sweep (another user
//! with the owner's ids gets 404 everywhere, the owner's data unchanged).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Stack, sse_data};
use confab_store::Db;
use confab_testkit::FakeLlmConfig;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Ws;

const PATIENCE: Duration = Duration::from_secs(90);
const BOUNDARY: &str = "confab-kb-test-boundary-7MA4YWxkTrZu0gW";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../crates/rag/tests/fixtures/kb/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A multipart/form-data body with one `file` part per (name, bytes).
fn multipart(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(s: &Stack, token: &str, kb: &str, files: &[(&str, Vec<u8>)]) -> reqwest::Response {
    s.authed(
        token,
        Method::POST,
        &format!("/api/knowledge/{kb}/documents"),
    )
    .header(
        "content-type",
        format!("multipart/form-data; boundary={BOUNDARY}"),
    )
    .body(multipart(files))
    .send()
    .await
    .unwrap()
}

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn create_base(s: &Stack, token: &str, name: &str) -> String {
    let (status, body) = json_of(
        s.authed(token, Method::POST, "/api/knowledge")
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn documents(s: &Stack, token: &str, kb: &str) -> Vec<Value> {
    let (status, body) = json_of(
        s.authed(
            token,
            Method::GET,
            &format!("/api/knowledge/{kb}/documents"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

/// Polls until no document is queued or processing.
async fn settled(s: &Stack, token: &str, kb: &str) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let docs = documents(s, token, kb).await;
        if docs
            .iter()
            .all(|d| d["status"] == "ready" || d["status"] == "failed")
        {
            return docs;
        }
        assert!(
            Instant::now() < deadline,
            "ingestion never settled: {docs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ask(s: &Stack, token: &str, kb: &str, question: &str) -> Value {
    let (status, body) = json_of(
        s.authed(token, Method::POST, "/api/chat")
            .json(&json!({ "message": question, "knowledge": [kb] }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn upload_and_ask_through_the_gateway(db: Db) {
    let s = Stack::start(db, "echo", FakeLlmConfig::default()).await;
    let (_, alice, _) = s.register("alice-kb@example.com").await;
    let kb = create_base(&s, &alice, "Station documents").await;

    // Progress as SSE, opened before the upload.
    let events = s
        .authed(&alice, Method::GET, &format!("/api/knowledge/{kb}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");

    let files = [
        "handbook.pdf",
        "orchard.pdf",
        "fieldguide.docx",
        "kitchen.docx",
        "notes.md",
        "page.html",
        "plain.txt",
    ];
    let parts: Vec<(&str, Vec<u8>)> = files.iter().map(|f| (*f, fixture(f))).collect();
    let (status, body) = json_of(upload(&s, &alice, &kb, &parts).await).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["items"].as_array().unwrap().len(), files.len());
    assert!(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["outcome"] == "queued")
    );
    // Text given directly as JSON.
    let (status, body) = json_of(
        s.authed(
            &alice,
            Method::POST,
            &format!("/api/knowledge/{kb}/documents"),
        )
        .json(&json!({"title": "radio", "text": "# Radio\n\nThe radio call sign is Osprey Nine."}))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{body}");

    // The SSE stream shows every document reaching `ready`.
    let mut stream = events.bytes_stream();
    let mut text = String::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ready = text.matches("\"status\":\"ready\"").count();
        if ready > files.len() {
            break;
        }
        let chunk = tokio::time::timeout_at(deadline.into(), stream.next())
            .await
            .unwrap_or_else(|_| panic!("no progress to ready over SSE:\n{text}"))
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.contains("event: document"));
    drop(stream);

    let docs = settled(&s, &alice, &kb).await;
    assert_eq!(docs.len(), files.len() + 1);
    for d in &docs {
        assert_eq!(d["status"], "ready", "{d}");
        assert!(d["chunk_count"].as_i64().unwrap() > 0);
    }

    // Ask about each format; the cited source is the right file and place.
    let cases = [
        (
            "What is the lighthouse keeper's cat called?",
            "handbook.pdf",
            Some(7),
            None,
        ),
        (
            "Which code does the irrigation valve have?",
            "orchard.pdf",
            Some(2),
            None,
        ),
        (
            "Where does the drinking water come from, Kestrel Spring?",
            "fieldguide.docx",
            None,
            Some("Field Guide > Water Supply"),
        ),
        (
            "How hot must the bakery oven be for the rye loaves?",
            "kitchen.docx",
            None,
            Some("Kitchen Rules > Ovens"),
        ),
        (
            "Who rebuilt the starboard engine?",
            "notes.md",
            None,
            Some("Ship Notes > Engines"),
        ),
        (
            "What does the largest pumpkin win?",
            "page.html",
            None,
            Some("Garden Club > Prizes"),
        ),
        (
            "When does the telescope room open?",
            "plain.txt",
            None,
            None,
        ),
        (
            "What is the radio call sign?",
            "radio.md",
            None,
            Some("Radio"),
        ),
    ];
    for (question, file, page, heading) in cases {
        let answer = ask(&s, &alice, &kb, question).await;
        let top = &answer["sources"][0];
        assert_eq!(top["file_path"], file, "{question}: {answer:#}");
        assert_eq!(top["metadata"]["knowledge_base_id"], kb.as_str());
        assert_eq!(top["metadata"]["filename"], file);
        if let Some(p) = page {
            assert_eq!(top["metadata"]["page"], p, "{question}");
        }
        if let Some(h) = heading {
            assert_eq!(top["metadata"]["heading"], h, "{question}");
        }
    }

    // The same on the SSE chat route, over WebSocket, and through /v1.
    let resp = s
        .authed(
            &alice,
            Method::GET,
            &format!("/api/chat/stream?message=lighthouse%20keeper%20cat&knowledge={kb}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    let sources: Value = sse_data(&body)
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .find(|e| e["type"] == "sources")
        .unwrap();
    assert_eq!(sources["sources"][0]["metadata"]["page"], 7, "{body}");

    let url = format!(
        "{}/ws/chat?token={alice}",
        s.url.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Ws::Text(
        json!({"type": "init", "knowledge": [kb]})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let mut ws_sources = None;
    while let Some(msg) = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap() {
        let Ws::Text(t) = msg.unwrap() else { continue };
        let e: Value = serde_json::from_str(&t).unwrap();
        match e["type"].as_str().unwrap() {
            "ready" => ws
                .send(Ws::Text(
                    json!({"type": "chat_message", "content": "Who rebuilt the starboard engine?"})
                        .to_string()
                        .into(),
                ))
                .await
                .unwrap(),
            "sources" => ws_sources = Some(e),
            "done" => break,
            "error" => panic!("{e}"),
            _ => {}
        }
    }
    assert_eq!(ws_sources.unwrap()["sources"][0]["file_path"], "notes.md");

    let (status, body) = json_of(
        s.authed(&alice, Method::POST, "/v1/chat/completions")
            .json(&json!({
                "model": "confab-simple",
                "messages": [{"role": "user", "content": "lighthouse keeper cat"}],
                "knowledge": [kb],
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The search route returns the retrieval result directly.
    let (status, body) = json_of(
        s.authed(
            &alice,
            Method::GET,
            &format!("/api/knowledge/{kb}/search?q=Bartholomew%20Quince&k=2"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["items"][0]["metadata"]["page"], 7);

    // An identical re-upload is a no-op; a document's detail has its chunks.
    let (status, body) =
        json_of(upload(&s, &alice, &kb, &[("notes.md", fixture("notes.md"))]).await).await;
    assert_eq!(status, 202);
    assert_eq!(body["items"][0]["outcome"], "unchanged");
    let handbook = docs
        .iter()
        .find(|d| d["filename"] == "handbook.pdf")
        .unwrap();
    let (status, detail) = json_of(
        s.authed(
            &alice,
            Method::GET,
            &format!(
                "/api/knowledge/{kb}/documents/{}",
                handbook["id"].as_str().unwrap()
            ),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(detail["page_count"], 10);
    assert!(
        detail["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["page"] == 7)
    );
}

async fn bad_uploads_over_http(db: Db) {
    let s = Stack::start(db, "echo", FakeLlmConfig::default()).await;
    let (_, token, _) = s.register("carl-kb@example.com").await;
    let kb = create_base(&s, &token, "strict").await;
    // One document already there, which no refused upload may touch.
    let (status, _) =
        json_of(upload(&s, &token, &kb, &[("notes.md", fixture("notes.md"))]).await).await;
    assert_eq!(status, 202);
    let before = settled(&s, &token, &kb).await;
    assert_eq!(before.len(), 1);
    type Case<'a> = (Vec<(&'a str, Vec<u8>)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("empty.md", Vec::new())], 422, "validation_error"),
        (
            vec![("../secret.md", b"# x".to_vec())],
            422,
            "validation_error",
        ),
        (
            vec![("fake.pdf", b"# not a pdf".to_vec())],
            422,
            "validation_error",
        ),
        (
            vec![("fake.docx", fixture("orchard.pdf"))],
            422,
            "validation_error",
        ),
        (
            vec![("program.exe", b"MZ".to_vec())],
            415,
            "unsupported_media_type",
        ),
        // A raw control character cannot even be a header value: the
        // multipart parser refuses the body (the RFC 5987 form below gets
        // through the parser and is refused by the name check).
        (
            vec![("ctrl\u{1b}[31m.md", b"# x".to_vec())],
            400,
            "bad_request",
        ),
        (vec![], 422, "validation_error"),
        // Over CONFAB_KNOWLEDGE_MAX_FILE_MB (20) but under the gateway's 32 MiB.
        (
            vec![("big.txt", vec![b'a'; 21 * 1024 * 1024])],
            413,
            "payload_too_large",
        ),
    ];
    for (files, status, code) in cases {
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        let (got, body) = json_of(upload(&s, &token, &kb, &files).await).await;
        assert_eq!(
            (got, body["error"].as_str().unwrap()),
            (status, code),
            "{names:?}: {body}"
        );
        assert_eq!(documents(&s, &token, &kb).await, before, "{names:?}");
    }
    let encoded = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''ctrl%1B%5B31m.md\r\n\r\n# x\r\n--{BOUNDARY}--\r\n"
    );
    let (got, body) = json_of(
        s.authed(
            &token,
            Method::POST,
            &format!("/api/knowledge/{kb}/documents"),
        )
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(encoded)
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (got, body["error"].as_str().unwrap()),
        (422, "validation_error"),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("file name"),
        "{body}"
    );
    assert_eq!(documents(&s, &token, &kb).await, before);
    let (got, body) = json_of(
        s.authed(
            &token,
            Method::POST,
            &format!("/api/knowledge/{kb}/documents"),
        )
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(got, 415, "{body}");
    let (got, body) = json_of(
        s.authed(&token, Method::POST, "/api/knowledge")
            .json(&json!({"name": "   "}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got, 422, "{body}");
    let (got, _) = json_of(
        s.authed(&token, Method::POST, "/api/knowledge")
            .json(&json!({"name": "pub", "shared": true}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got, 403);
    assert_eq!(documents(&s, &token, &kb).await, before, "nothing stored");

    // Files whose content turns out unreadable fail with a reason.
    let (status, _) = json_of(
        upload(
            &s,
            &token,
            &kb,
            &[
                ("corrupt.pdf", fixture("corrupt.pdf")),
                ("encrypted.pdf", fixture("encrypted.pdf")),
                ("bomb.docx", fixture("bomb.docx")),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 202);
    let docs = settled(&s, &token, &kb).await;
    assert_eq!(docs.len(), 4);
    assert!(docs.contains(&before[0]), "the good document is untouched");
    for d in docs.iter().filter(|d| **d != before[0]) {
        assert_eq!(d["status"], "failed", "{d}");
        assert_eq!(d["chunk_count"], 0);
        assert!(!d["error"].as_str().unwrap().is_empty());
    }
}

async fn another_user_gets_404_everywhere(db: Db) {
    let s = Stack::start(db, "echo", FakeLlmConfig::default()).await;
    let (_, alice, _) = s.register("alice-iso@example.com").await;
    let (_, bob, _) = s.register("bob-iso@example.com").await;
    let kb = create_base(&s, &alice, "private").await;
    let (status, body) =
        json_of(upload(&s, &alice, &kb, &[("notes.md", fixture("notes.md"))]).await).await;
    assert_eq!(status, 202, "{body}");
    let docs = settled(&s, &alice, &kb).await;
    let doc = docs[0]["id"].as_str().unwrap().to_owned();
    let before = (
        docs.clone(),
        ask(&s, &alice, &kb, "starboard engine").await["sources"].clone(),
    );

    let base = format!("/api/knowledge/{kb}");
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, base.clone(), None),
        (Method::PATCH, base.clone(), Some(json!({"name": "mine"}))),
        (Method::GET, format!("{base}/documents"), None),
        (
            Method::POST,
            format!("{base}/documents"),
            Some(json!({"title": "x", "text": "y"})),
        ),
        (Method::GET, format!("{base}/documents/{doc}"), None),
        (Method::DELETE, format!("{base}/documents/{doc}"), None),
        (Method::GET, format!("{base}/search?q=engine"), None),
        (Method::GET, format!("{base}/events"), None),
        (
            Method::POST,
            "/api/chat".into(),
            Some(json!({"message": "engine", "knowledge": [kb]})),
        ),
        (
            Method::GET,
            format!("/api/chat/stream?message=engine&knowledge={kb}"),
            None,
        ),
        (
            Method::POST,
            "/v1/chat/completions".into(),
            Some(
                json!({"model": "confab", "messages": [{"role": "user", "content": "engine"}], "knowledge": [kb]}),
            ),
        ),
        (Method::DELETE, base.clone(), None),
    ];
    for (method, path, body) in routes {
        let mut req = s.authed(&bob, method.clone(), &path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let (status, body) = json_of(req.send().await.unwrap()).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    let (status, _) = json_of(upload(&s, &bob, &kb, &[("x.md", b"# x".to_vec())]).await).await;
    assert_eq!(status, 404, "multipart upload");
    // Bob's list and a WebSocket `init` naming Alice's base.
    let (_, list) = json_of(
        s.authed(&bob, Method::GET, "/api/knowledge")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(list["items"].as_array().unwrap().is_empty());
    let url = format!("{}/ws/chat?token={bob}", s.url.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Ws::Text(
        json!({"type": "init", "knowledge": [kb]})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    loop {
        let msg = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let Ws::Text(t) = msg else { continue };
        let e: Value = serde_json::from_str(&t).unwrap();
        assert_ne!(e["type"], "ready", "{e}");
        if e["type"] == "error" {
            assert_eq!(e["code"], "not_found", "{e}");
            break;
        }
    }
    // Bob's own chats never cite Alice's documents.
    let (status, answer) = json_of(
        s.authed(&bob, Method::POST, "/api/chat")
            .json(&json!({"message": "Who rebuilt the starboard engine of the Albatross?"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !answer["sources"].to_string().contains("Albatross"),
        "{answer}"
    );

    // Alice's data is unchanged.
    let after = (
        documents(&s, &alice, &kb).await,
        ask(&s, &alice, &kb, "starboard engine").await["sources"].clone(),
    );
    assert_eq!(before.0, after.0);
    assert_eq!(before.1[0]["content"], after.1[0]["content"]);
}

confab_testkit::backend_tests!(
    upload_and_ask_through_the_gateway,
    bad_uploads_over_http,
    another_user_gets_404_everywhere,
);
