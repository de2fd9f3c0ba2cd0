//! User isolation: behind the gateway (valid internal key), user B cannot
//! read, list, search, export, change or delete user A's sessions,
//! messages, feedback or memory: 404 (or nothing found) every time, and A's
//! data is untouched afterwards. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{add_message, expect, expect_error, new_session, spawn};
use confab_store::Db;
use reqwest::Method;
use serde_json::json;

async fn other_users_data_is_not_found(db: Db) {
    let server = spawn(db).await;
    let sid = new_session(&server, "alice", "Alice's secret plans").await;
    let question = add_message(&server, "alice", &sid, "user", "my password hint is zebra").await;
    let answer = add_message(&server, "alice", &sid, "assistant", "noted zebra").await;
    expect(
        server
            .as_user(
                "alice",
                Method::POST,
                &format!("/api/messages/{answer}/feedback"),
            )
            .json(&json!({"score": 5})),
        200,
    )
    .await;
    expect(
        server
            .as_user("alice", Method::POST, "/api/memory")
            .json(&json!({"content": "alice likes zebras"})),
        201,
    )
    .await;
    let before = expect(
        server.as_user("alice", Method::GET, &format!("/api/sessions/{sid}/export")),
        200,
    )
    .await;

    // Every route that names one of Alice's sessions or messages: 404 for Bob.
    let s = |p: &str| format!("/api/sessions/{sid}{p}");
    let m = |id: &str, p: &str| format!("/api/messages/{id}{p}");
    let attempts: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, s(""), None),
        (Method::PATCH, s(""), Some(json!({"title": "owned by bob"}))),
        (Method::POST, s("/archive"), None),
        (Method::POST, s("/unarchive"), None),
        (Method::GET, s("/statistics"), None),
        (Method::GET, s("/messages"), None),
        (
            Method::POST,
            s("/messages"),
            Some(json!({"role": "user", "content": "injected"})),
        ),
        (Method::GET, s("/export"), None),
        (Method::GET, s("/export?format=markdown"), None),
        (Method::GET, s("/export?format=txt"), None),
        (
            Method::PATCH,
            m(&question, ""),
            Some(json!({"content": "rewritten by bob"})),
        ),
        (
            Method::POST,
            m(&answer, "/feedback"),
            Some(json!({"score": 1, "comment": "bob was here"})),
        ),
        (Method::DELETE, m(&answer, ""), None),
        (Method::DELETE, m(&question, ""), None),
        (Method::DELETE, s(""), None),
        (Method::DELETE, s("?purge=true"), None),
    ];
    for (method, path, body) in &attempts {
        let mut req = server.as_user("bob", method.clone(), path);
        if let Some(b) = body {
            req = req.json(b);
        }
        let msg = expect_error(req, 404, "not_found").await;
        assert!(!msg.contains("zebra"), "{method} {path}: {msg}");
    }

    // Lists and searches show Bob nothing of Alice's.
    let list = expect(server.as_user("bob", Method::GET, "/api/sessions"), 200).await;
    assert_eq!(list["items"], json!([]));
    for status in ["active", "archived", "deleted"] {
        let list = expect(
            server.as_user(
                "bob",
                Method::GET,
                &format!("/api/sessions?status={status}"),
            ),
            200,
        )
        .await;
        assert_eq!(list["items"], json!([]), "{status}");
    }
    for path in [
        "/api/sessions/search?q=secret".to_owned(),
        "/api/sessions/search?q=zebra".to_owned(),
        "/api/messages/search?q=zebra".to_owned(),
        format!("/api/messages/search?q=zebra&session_id={sid}"),
    ] {
        let hits = expect(server.as_user("bob", Method::GET, &path), 200).await;
        assert_eq!(hits["items"], json!([]), "{path}");
    }
    let stats = expect(
        server.as_user("bob", Method::GET, "/api/sessions/stats"),
        200,
    )
    .await;
    assert_eq!(stats["total_sessions"], 0);
    assert_eq!(stats["total_messages"], 0);
    let mem = expect(server.as_user("bob", Method::GET, "/api/memory"), 200).await;
    assert_eq!(mem, json!({"items": [], "total": 0}));
    let cleared = expect(
        server.as_user("bob", Method::POST, "/api/memory/clear"),
        200,
    )
    .await;
    assert_eq!(cleared["cleared"], 0);
    let exp = expect(server.as_user("bob", Method::GET, "/api/experience"), 200).await;
    assert_eq!(exp["total"], 0);
    assert_eq!(exp["recent"], json!([]));
    // Bob's own page cursors cannot reach Alice's rows either.
    let own = new_session(&server, "bob", "bob's").await;
    let page = expect(
        server.as_user(
            "bob",
            Method::GET,
            &format!("/api/sessions/{own}/messages?before=m999999"),
        ),
        200,
    )
    .await;
    assert_eq!(page["items"], json!([]));

    // Alice's data is exactly as it was.
    let mut after = expect(
        server.as_user("alice", Method::GET, &format!("/api/sessions/{sid}/export")),
        200,
    )
    .await;
    after["exported_at"] = before["exported_at"].clone();
    assert_eq!(after, before);
    let fb = expect(server.as_user("alice", Method::GET, "/api/experience"), 200).await;
    assert_eq!(fb["total"], 1);
    assert_eq!(fb["recent"][0]["score"], 5);
    assert_eq!(fb["recent"][0]["comment"], json!(null));
    let mem = expect(server.as_user("alice", Method::GET, "/api/memory"), 200).await;
    assert_eq!(mem["total"], 1);
    let hits = expect(
        server.as_user("alice", Method::GET, "/api/messages/search?q=zebra"),
        200,
    )
    .await;
    assert_eq!(hits["items"].as_array().unwrap().len(), 2);
    server.stop().await;
}

async fn identity_comes_only_from_trusted_headers(db: Db) {
    let server = spawn(db).await;
    let sid = new_session(&server, "alice", "mine").await;
    // Forged identity without the key: refused, not treated as Alice.
    for key in [None, Some("wrong-key"), Some("")] {
        let mut req = server
            .anonymous(Method::GET, &format!("/api/sessions/{sid}"))
            .header("X-User-Id", "alice");
        if let Some(k) = key {
            req = req.header("X-Internal-Auth", k);
        }
        expect_error(req, 401, "unauthorized").await;
    }
    // The key alone does not pick a user.
    expect_error(
        server
            .anonymous(Method::GET, "/api/sessions")
            .header("X-Internal-Auth", common::KEY),
        401,
        "unauthorized",
    )
    .await;
    server.stop().await;
}

confab_testkit::backend_tests!(
    other_users_data_is_not_found,
    identity_comes_only_from_trusted_headers
);
