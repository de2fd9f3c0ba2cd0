//! The OpenAPI document at /openapi.json lists every route, every listed
//! route is served, and every schema reference resolves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{expect, spawn};
use confab_testkit::TestDb;
use reqwest::Method;
use serde_json::Value;

/// The REST routes of this crate (the chat routes are added by their own modules).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/health"),
    ("get", "/api/health"),
    ("get", "/api/stats"),
    ("get", "/api/memory"),
    ("post", "/api/memory"),
    ("post", "/api/memory/clear"),
    ("get", "/api/experience"),
    ("post", "/api/sessions"),
    ("get", "/api/sessions"),
    ("get", "/api/sessions/search"),
    ("get", "/api/sessions/stats"),
    ("post", "/api/sessions/import"),
    ("get", "/api/sessions/{id}"),
    ("patch", "/api/sessions/{id}"),
    ("delete", "/api/sessions/{id}"),
    ("post", "/api/sessions/{id}/archive"),
    ("post", "/api/sessions/{id}/unarchive"),
    ("get", "/api/sessions/{id}/statistics"),
    ("get", "/api/sessions/{id}/messages"),
    ("post", "/api/sessions/{id}/messages"),
    ("get", "/api/sessions/{id}/export"),
    ("get", "/api/messages/search"),
    ("patch", "/api/messages/{id}"),
    ("delete", "/api/messages/{id}"),
    ("post", "/api/messages/{id}/feedback"),
    ("post", "/api/admin/cleanup"),
    ("post", "/api/knowledge"),
    ("get", "/api/knowledge"),
    ("get", "/api/knowledge/{id}"),
    ("patch", "/api/knowledge/{id}"),
    ("delete", "/api/knowledge/{id}"),
    ("post", "/api/knowledge/{id}/documents"),
    ("get", "/api/knowledge/{id}/documents"),
    ("get", "/api/knowledge/{id}/documents/{doc}"),
    ("delete", "/api/knowledge/{id}/documents/{doc}"),
    ("get", "/api/knowledge/{id}/search"),
    ("get", "/api/knowledge/{id}/events"),
];

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                ops.insert((method.clone(), path.clone()));
            }
        }
    }
    ops
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push(v.as_str().unwrap().to_owned());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| refs(i, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_lists_and_serves_every_route() {
    let test_db = TestDb::sqlite();
    let server = spawn(test_db.db().clone()).await;
    let res = server
        .anonymous(Method::GET, "/openapi.json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["info"]["title"], "confab chat-service");
    // Same document as the library builds.
    assert_eq!(doc, serde_json::to_value(chat_service::openapi()).unwrap());

    let ops = operations(&doc);
    for (method, path) in ROUTES {
        assert!(
            ops.contains(&(method.to_string(), path.to_string())),
            "{method} {path} is not documented; documented: {ops:?}"
        );
    }

    for (method, path) in &ops {
        let op = &doc["paths"][path][method];
        assert!(
            op["summary"].as_str().is_some(),
            "{method} {path}: no summary"
        );
        assert!(
            !op["tags"].as_array().unwrap().is_empty(),
            "{method} {path}: no tag"
        );
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: no success response"
        );
        for (status, response) in responses {
            assert!(
                response["description"].as_str().is_some(),
                "{method} {path} {status}: responses need a description"
            );
        }
        if path.contains("{id}") {
            let params = op["parameters"].as_array().expect("parameters");
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == "id" && p["in"] == "path"),
                "{method} {path}: id parameter not documented"
            );
        }
        // Every documented route is served (our 404 for unknown routes says "no route").
        let url_path = path
            .replace("{id}", &uuid::Uuid::nil().to_string())
            .replace("{doc}", &uuid::Uuid::nil().to_string());
        let (_, body) = common::send(server.as_admin(
            "probe",
            method.to_uppercase().parse().unwrap(),
            &url_path,
        ))
        .await;
        if let Some(message) = body["message"].as_str() {
            assert!(
                !message.starts_with("no route"),
                "{method} {path} is documented but not served"
            );
        }
    }

    // Every schema reference resolves.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(schemas.contains_key(name), "dangling reference {r}");
    }
    for name in [
        "ChatSession",
        "Message",
        "ErrorBody",
        "SessionPage",
        "MessagePage",
        "Feedback",
        "ExperienceSummary",
        "MemoryItem",
        "CleanupReport",
        "KnowledgeBase",
        "KnowledgeDocument",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    expect(server.anonymous(Method::GET, "/health"), 200).await;
    server.stop().await;
}
