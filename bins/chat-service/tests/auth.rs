//! Internal key enforcement, the standalone local user, and admin-only cleanup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{Duration, Utc};
use common::{Options, expect, expect_error, new_session, spawn, spawn_with};
use confab_store::Db;
use confab_store::diesel::prelude::*;
use confab_store::schema::chat_sessions;
use reqwest::Method;
use serde_json::json;

/// Every documented route (ids filled in), which must refuse requests
/// without the internal key when one is configured.
fn api_routes(id: &str) -> Vec<(Method, String)> {
    let mut routes = Vec::new();
    for (path, ops) in common_openapi_paths() {
        if !path.starts_with("/api/") {
            continue;
        }
        for method in ops {
            routes.push((method, path.replace("{id}", id)));
        }
    }
    routes
}

fn common_openapi_paths() -> Vec<(String, Vec<Method>)> {
    let doc = serde_json::to_value(chat_service::openapi()).unwrap();
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter_map(|m| m.to_uppercase().parse::<Method>().ok())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

async fn internal_key_is_required_everywhere(db: Db) {
    let server = spawn(db).await;
    let sid = new_session(&server, "alice", "t").await;
    let routes = api_routes(&sid);
    assert!(routes.len() >= 20, "{routes:?}");
    for (method, path) in &routes {
        // No key, a wrong key, an almost-right key: 401 before anything else happens.
        for key in [
            None,
            Some("nope"),
            Some(&common::KEY[..common::KEY.len() - 1]),
        ] {
            let mut req = server
                .anonymous(method.clone(), path)
                .header("X-User-Id", "alice")
                .header("X-User-Role", "admin")
                .json(&json!({"title": "x", "days_old": 1}));
            if let Some(k) = key {
                req = req.header("X-Internal-Auth", k);
            }
            expect_error(req, 401, "unauthorized").await;
        }
    }
    // Nothing changed.
    let got = expect(
        server.as_user("alice", Method::GET, &format!("/api/sessions/{sid}")),
        200,
    )
    .await;
    assert_eq!(got["title"], "t");
    assert_eq!(got["status"], "active");
    // Liveness and the API document stay open for probes.
    for path in ["/", "/health", "/openapi.json"] {
        expect(server.anonymous(Method::GET, path), 200).await;
    }
    server.stop().await;
}

async fn standalone_is_the_local_user(db: Db) {
    let server = spawn_with(
        db,
        Options {
            key: None,
            ..Options::default()
        },
    )
    .await;
    // Seed 003 style: no headers at all.
    let created = expect(
        server
            .anonymous(Method::POST, "/api/sessions")
            .body(r#"{"title": "local chat"}"#),
        201,
    )
    .await;
    assert_eq!(created["user_id"], "local");
    let list = expect(server.anonymous(Method::GET, "/api/sessions"), 200).await;
    assert_eq!(list["items"][0]["id"], created["id"]);
    // The local user is an administrator.
    let report = expect(
        server
            .anonymous(Method::POST, "/api/admin/cleanup")
            .json(&json!({"days_old": 30, "dry_run": true})),
        200,
    )
    .await;
    assert_eq!(report["dry_run"], true);
    // A named user is someone else, and not an administrator.
    let bobs = expect(
        server
            .anonymous(Method::GET, "/api/sessions")
            .header("X-User-Id", "bob"),
        200,
    )
    .await;
    assert_eq!(bobs["items"], json!([]));
    expect_error(
        server
            .anonymous(Method::POST, "/api/admin/cleanup")
            .header("X-User-Id", "bob")
            .json(&json!({"days_old": 30})),
        403,
        "forbidden",
    )
    .await;
    // Bad identity headers are refused.
    expect_error(
        server
            .anonymous(Method::GET, "/api/sessions")
            .header("X-User-Id", "u".repeat(200)),
        400,
        "bad_request",
    )
    .await;
    server.stop().await;
}

async fn cleanup_is_admin_only_and_works(db: Db) {
    let server = spawn(db.clone()).await;
    let old = new_session(&server, "alice", "old").await;
    let gone = new_session(&server, "bob", "gone").await;
    let fresh = new_session(&server, "alice", "fresh").await;
    expect(
        server.as_user("bob", Method::DELETE, &format!("/api/sessions/{gone}")),
        204,
    )
    .await;
    let when = (Utc::now() - Duration::days(40)).naive_utc();
    let ids = vec![old.clone(), gone.clone()];
    db.run(move |conn| {
        confab_store::diesel::update(chat_sessions::table.filter(chat_sessions::id.eq_any(ids)))
            .set(chat_sessions::updated_at.eq(when))
            .execute(conn)
            .map_err(confab_store::StoreError::from)
    })
    .await
    .unwrap();

    for role in [None, Some("user"), Some("teacher"), Some("Admin")] {
        let mut req = server
            .as_user("alice", Method::POST, "/api/admin/cleanup")
            .json(&json!({"days_old": 30}));
        if let Some(r) = role {
            req = req.header("X-User-Role", r);
        }
        expect_error(req, 403, "forbidden").await;
    }
    let dry = expect(
        server
            .as_admin("root", Method::POST, "/api/admin/cleanup")
            .json(&json!({"days_old": 30, "dry_run": true})),
        200,
    )
    .await;
    assert_eq!(dry["archived_ids"], json!([old]));
    assert_eq!(dry["purged_ids"], json!([gone]));
    // Nothing changed in the dry run.
    let s = expect(
        server.as_user("alice", Method::GET, &format!("/api/sessions/{old}")),
        200,
    )
    .await;
    assert_eq!(s["status"], "active");

    let done = expect(
        server
            .as_admin("root", Method::POST, "/api/admin/cleanup")
            .json(&json!({"days_old": 30})),
        200,
    )
    .await;
    assert_eq!(done["dry_run"], false);
    assert_eq!(done["archived"], 1);
    assert_eq!(done["purged"], 1);
    let s = expect(
        server.as_user("alice", Method::GET, &format!("/api/sessions/{old}")),
        200,
    )
    .await;
    assert_eq!(s["status"], "archived");
    expect_error(
        server.as_user("bob", Method::GET, &format!("/api/sessions/{gone}")),
        404,
        "not_found",
    )
    .await;
    let s = expect(
        server.as_user("alice", Method::GET, &format!("/api/sessions/{fresh}")),
        200,
    )
    .await;
    assert_eq!(s["status"], "active");
    server.stop().await;
}

confab_testkit::backend_tests!(
    internal_key_is_required_everywhere,
    standalone_is_the_local_user,
    cleanup_is_admin_only_and_works,
);
