//! Sessions, messages, export/import, feedback, memory and system routes
//! through real HTTP, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::{add_message, expect, expect_error, new_session, spawn};
use confab_models::{ChatSession, MessagePage, SessionExport, SessionPage};
use confab_store::Db;
use reqwest::Method;
use serde_json::{Value, json};

async fn session_crud_and_pagination(db: Db) {
    let server = spawn(db).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(new_session(&server, "alice", &format!("chat {i}")).await);
    }
    // Pages of 2, newest first, no repeats, ending with a null cursor.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let path = match &cursor {
            Some(c) => format!("/api/sessions?limit=2&cursor={c}"),
            None => "/api/sessions?limit=2".to_owned(),
        };
        let page: SessionPage =
            serde_json::from_value(expect(server.as_user("alice", Method::GET, &path), 200).await)
                .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|s| s.id.to_string()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    let id = &ids[0];
    let got = expect(
        server.as_user("alice", Method::GET, &format!("/api/sessions/{id}")),
        200,
    )
    .await;
    assert_eq!(got["title"], "chat 0");
    assert_eq!(got["user_id"], "alice");
    assert_eq!(got["status"], "active");

    let updated = expect(
        server
            .as_user("alice", Method::PATCH, &format!("/api/sessions/{id}"))
            .json(&json!({"title": "  Renamed ", "metadata": {"pinned": true}})),
        200,
    )
    .await;
    assert_eq!(updated["title"], "Renamed");
    assert_eq!(updated["metadata"]["pinned"], true);

    let archived = expect(
        server.as_user(
            "alice",
            Method::POST,
            &format!("/api/sessions/{id}/archive"),
        ),
        200,
    )
    .await;
    assert_eq!(archived["status"], "archived");
    let page = expect(
        server.as_user("alice", Method::GET, "/api/sessions?status=archived"),
        200,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], id.as_str());
    let active = expect(
        server.as_user(
            "alice",
            Method::POST,
            &format!("/api/sessions/{id}/unarchive"),
        ),
        200,
    )
    .await;
    assert_eq!(active["status"], "active");

    let stats = expect(
        server.as_user("alice", Method::GET, "/api/sessions/stats"),
        200,
    )
    .await;
    assert_eq!(stats["total_sessions"], 5);
    assert_eq!(stats["active_sessions"], 5);

    // Soft delete: gone from lists, readable as deleted, read-only.
    expect(
        server.as_user("alice", Method::DELETE, &format!("/api/sessions/{id}")),
        204,
    )
    .await;
    let gone = expect(
        server.as_user("alice", Method::GET, &format!("/api/sessions/{id}")),
        200,
    )
    .await;
    assert_eq!(gone["status"], "deleted");
    let page: SessionPage = serde_json::from_value(
        expect(server.as_user("alice", Method::GET, "/api/sessions"), 200).await,
    )
    .unwrap();
    assert_eq!(page.items.len(), 4);
    assert!(page.items.iter().all(|s| s.id.to_string() != *id));
    let deleted = expect(
        server.as_user("alice", Method::GET, "/api/sessions?status=deleted"),
        200,
    )
    .await;
    assert_eq!(deleted["items"].as_array().unwrap().len(), 1);
    expect_error(
        server
            .as_user("alice", Method::PATCH, &format!("/api/sessions/{id}"))
            .json(&json!({"title": "again"})),
        409,
        "session_deleted",
    )
    .await;
    // Purge: gone for good.
    expect(
        server.as_user(
            "alice",
            Method::DELETE,
            &format!("/api/sessions/{id}?purge=true"),
        ),
        204,
    )
    .await;
    expect_error(
        server.as_user("alice", Method::GET, &format!("/api/sessions/{id}")),
        404,
        "not_found",
    )
    .await;
    server.stop().await;
}

async fn messages_search_and_statistics(db: Db) {
    let server = spawn(db).await;
    let sid = new_session(&server, "alice", "Rust questions").await;
    let mut mids = Vec::new();
    for i in 0..6 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        let text = format!(
            "message {i} about borrowing{}",
            if i == 3 { " lifetimes" } else { "" }
        );
        mids.push(add_message(&server, "alice", &sid, role, &text).await);
    }
    // Newest first, older pages by `before`, newer ones by `after`.
    let page: MessagePage = serde_json::from_value(
        expect(
            server.as_user(
                "alice",
                Method::GET,
                &format!("/api/sessions/{sid}/messages?limit=4"),
            ),
            200,
        )
        .await,
    )
    .unwrap();
    let got: Vec<String> = page.items.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(
        got,
        [
            mids[5].clone(),
            mids[4].clone(),
            mids[3].clone(),
            mids[2].clone()
        ]
    );
    let older = page.older_cursor.unwrap();
    let rest: MessagePage = serde_json::from_value(
        expect(
            server.as_user(
                "alice",
                Method::GET,
                &format!("/api/sessions/{sid}/messages?before={older}"),
            ),
            200,
        )
        .await,
    )
    .unwrap();
    let got: Vec<String> = rest.items.iter().map(|m| m.id.to_string()).collect();
    assert_eq!(got, [mids[1].clone(), mids[0].clone()]);
    assert!(rest.older_cursor.is_none());
    let newer = page.newer_cursor.unwrap();
    let new_id = add_message(&server, "alice", &sid, "user", "a late message").await;
    let fresh = expect(
        server.as_user(
            "alice",
            Method::GET,
            &format!("/api/sessions/{sid}/messages?after={newer}"),
        ),
        200,
    )
    .await;
    assert_eq!(fresh["items"][0]["id"], new_id.as_str());

    // Edit and delete.
    let edited = expect(
        server
            .as_user(
                "alice",
                Method::PATCH,
                &format!("/api/messages/{}", mids[0]),
            )
            .json(&json!({"content": "edited text about ownership"})),
        200,
    )
    .await;
    assert_eq!(edited["content"], "edited text about ownership");
    expect(
        server.as_user(
            "alice",
            Method::DELETE,
            &format!("/api/messages/{}", mids[1]),
        ),
        204,
    )
    .await;

    // Search.
    let hits = expect(
        server.as_user("alice", Method::GET, "/api/messages/search?q=lifetimes"),
        200,
    )
    .await;
    let items = hits["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["message"]["id"], mids[3].as_str());
    assert!(items[0]["snippet"].as_str().unwrap().contains("<mark>"));
    let scoped = expect(
        server.as_user(
            "alice",
            Method::GET,
            &format!("/api/messages/search?q=ownership&session_id={sid}"),
        ),
        200,
    )
    .await;
    assert_eq!(scoped["items"].as_array().unwrap().len(), 1);
    let sessions = expect(
        server.as_user("alice", Method::GET, "/api/sessions/search?q=rust"),
        200,
    )
    .await;
    assert_eq!(sessions["items"][0]["session"]["id"], sid.as_str());
    assert_eq!(sessions["items"][0]["title_match"], true);
    let none = expect(
        server.as_user("alice", Method::GET, "/api/sessions/search?q="),
        200,
    )
    .await;
    assert_eq!(none["items"], json!([]));

    let st = expect(
        server.as_user(
            "alice",
            Method::GET,
            &format!("/api/sessions/{sid}/statistics"),
        ),
        200,
    )
    .await;
    assert_eq!(st["message_count"], 6);
    assert_eq!(st["user_messages"], 4);
    assert_eq!(st["assistant_messages"], 2);
    server.stop().await;
}

async fn export_and_import_round_trip(db: Db) {
    let server = spawn(db).await;
    let sid = new_session(&server, "alice", "Export me, please!").await;
    add_message(&server, "alice", &sid, "user", "What is a trait?").await;
    add_message(&server, "alice", &sid, "assistant", "A set of methods.").await;

    let res = server
        .as_user("alice", Method::GET, &format!("/api/sessions/{sid}/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(disposition.contains("export-me-please-"), "{disposition}");
    assert!(disposition.contains(".json"), "{disposition}");
    let json_text = res.text().await.unwrap();
    let doc: SessionExport = serde_json::from_str(&json_text).unwrap();
    assert_eq!(doc.messages.len(), 2);

    for (format, mime, ext, needle) in [
        (
            "markdown",
            "text/markdown; charset=utf-8",
            ".md",
            "### Assistant",
        ),
        (
            "md",
            "text/markdown; charset=utf-8",
            ".md",
            "# Export me, please!",
        ),
        ("txt", "text/plain; charset=utf-8", ".txt", "User:"),
    ] {
        let res = server
            .as_user(
                "alice",
                Method::GET,
                &format!("/api/sessions/{sid}/export?format={format}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{format}");
        assert_eq!(res.headers()["content-type"], mime);
        let d = res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(d.starts_with("attachment") && d.contains(ext), "{d}");
        let body = res.text().await.unwrap();
        assert!(body.contains(needle), "{format}: {body}");
        assert!(body.contains("What is a trait?"));
    }

    // Import as another user: a new session with the same content.
    let imported: ChatSession = serde_json::from_value(
        expect(
            server
                .as_user("bob", Method::POST, "/api/sessions/import")
                .header("content-type", "application/json")
                .body(json_text.clone()),
            201,
        )
        .await,
    )
    .unwrap();
    assert_ne!(imported.id, doc.session.id);
    assert_eq!(imported.user_id, "bob");
    assert_eq!(imported.title, "Export me, please!");
    assert_eq!(imported.message_count, 2);
    let page: MessagePage = serde_json::from_value(
        expect(
            server.as_user(
                "bob",
                Method::GET,
                &format!("/api/sessions/{}/messages", imported.id),
            ),
            200,
        )
        .await,
    )
    .unwrap();
    let contents: Vec<&str> = page
        .items
        .iter()
        .rev()
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(contents, ["What is a trait?", "A set of methods."]);
    server.stop().await;
}

async fn feedback_memory_experience_and_stats(db: Db) {
    let server = spawn(db).await;
    let sid = new_session(&server, "alice", "Feedback").await;
    let question = add_message(&server, "alice", &sid, "user", "hi").await;
    let answer = add_message(&server, "alice", &sid, "assistant", "hello").await;

    let fb = expect(
        server
            .as_user(
                "alice",
                Method::POST,
                &format!("/api/messages/{answer}/feedback"),
            )
            .json(&json!({"score": 4, "comment": "good"})),
        200,
    )
    .await;
    assert_eq!(fb["score"], 4);
    assert_eq!(fb["comment"], "good");
    assert_eq!(fb["session_id"], sid.as_str());
    let again = expect(
        server
            .as_user(
                "alice",
                Method::POST,
                &format!("/api/messages/{answer}/feedback"),
            )
            .json(&json!({"thumbs_up": false})),
        200,
    )
    .await;
    assert_eq!(again["id"], fb["id"]);
    assert_eq!(again["score"], 1);
    expect_error(
        server
            .as_user(
                "alice",
                Method::POST,
                &format!("/api/messages/{question}/feedback"),
            )
            .json(&json!({"score": 5})),
        422,
        "validation_error",
    )
    .await;
    let exp = expect(server.as_user("alice", Method::GET, "/api/experience"), 200).await;
    assert_eq!(exp["total"], 1);
    assert_eq!(exp["average_score"], 1.0);
    assert_eq!(exp["distribution"], json!([1, 0, 0, 0, 0]));
    assert_eq!(exp["recent"][0]["id"], fb["id"]);
    // Another user's experience is their own.
    let bobs = expect(server.as_user("bob", Method::GET, "/api/experience"), 200).await;
    assert_eq!(bobs["total"], 0);
    let all = expect(
        server.as_admin("root", Method::GET, "/api/experience?scope=all&recent=0"),
        200,
    )
    .await;
    assert_eq!(all["total"], 1);
    assert_eq!(all["recent"], json!([]));

    for i in 0..3 {
        let item = expect(
            server
                .as_user("alice", Method::POST, "/api/memory")
                .json(&json!({"content": format!("fact {i}"), "metadata": {"i": i}})),
            201,
        )
        .await;
        assert_eq!(item["content"], format!("fact {i}"));
    }
    expect(
        server
            .as_user("bob", Method::POST, "/api/memory")
            .json(&json!({"content": "bob's"})),
        201,
    )
    .await;
    let mem = expect(
        server.as_user("alice", Method::GET, "/api/memory?limit=2"),
        200,
    )
    .await;
    assert_eq!(mem["total"], 3);
    let items: Vec<&str> = mem["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["content"].as_str().unwrap())
        .collect();
    assert_eq!(items, ["fact 2", "fact 1"]);

    let stats = expect(server.as_admin("alice", Method::GET, "/api/stats"), 200).await;
    assert_eq!(stats["counts"]["sessions"], 1);
    assert_eq!(stats["counts"]["messages"], 2);
    assert_eq!(stats["counts"]["memory_items"], 4);
    assert_eq!(stats["counts"]["feedback"], 1);
    assert_eq!(stats["memory"], json!({"total": 4, "user": 3}));
    assert_eq!(stats["experience"]["total"], 1);
    assert_eq!(stats["active_generations"], 0);
    assert_eq!(stats["is_processing"], false);
    assert_eq!(stats["model_manager"]["provider"], "builtin");
    assert_eq!(stats["providers"][0]["ok"], true);
    assert_eq!(stats["user"]["total_messages"], 2);

    // The counter the chat routes move shows up.
    let guard = server.running.as_ref().unwrap().state().generation();
    let busy = expect(server.as_user("alice", Method::GET, "/api/stats"), 200).await;
    assert_eq!(busy["active_generations"], 1);
    assert_eq!(busy["is_processing"], true);
    drop(guard);

    let cleared = expect(
        server.as_user("alice", Method::POST, "/api/memory/clear"),
        200,
    )
    .await;
    assert_eq!(cleared, json!({"cleared": 3}));
    let mem = expect(server.as_user("alice", Method::GET, "/api/memory"), 200).await;
    assert_eq!(mem, json!({"items": [], "total": 0}));
    let bob_mem = expect(server.as_user("bob", Method::GET, "/api/memory"), 200).await;
    assert_eq!(bob_mem["total"], 1);
    server.stop().await;
}

async fn health_and_liveness(db: Db) {
    let server = spawn(db).await;
    for path in ["/", "/health"] {
        // Liveness needs no credentials, even behind the gateway.
        let live = expect(server.anonymous(Method::GET, path), 200).await;
        assert_eq!(live["status"], "ok");
        assert_eq!(live["service"], "chat-service");
    }
    let health: Value = expect(server.as_user("gw", Method::GET, "/api/health"), 200).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["database"]["ok"], true);
    assert_eq!(health["providers"][0]["provider"], "builtin");
    assert_eq!(health["providers"][0]["ok"], true);
    assert_eq!(
        health["versions"]["chat_service"],
        env!("CARGO_PKG_VERSION")
    );
    // Request ids are echoed.
    let res = server
        .anonymous(Method::GET, "/health")
        .header("X-Request-Id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-123");
    let ids: HashSet<String> = futures_util::future::join_all((0..3).map(|_| async {
        let res = server
            .anonymous(Method::GET, "/health")
            .send()
            .await
            .unwrap();
        res.headers()["x-request-id"].to_str().unwrap().to_owned()
    }))
    .await
    .into_iter()
    .collect();
    assert_eq!(ids.len(), 3, "minted ids are unique");
    server.stop().await;
}

confab_testkit::backend_tests!(
    session_crud_and_pagination,
    messages_search_and_statistics,
    export_and_import_round_trip,
    feedback_memory_experience_and_stats,
    health_and_liveness,
);
