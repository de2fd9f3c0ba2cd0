//! Every endpoint's error paths: bad JSON, wrong types, missing fields,
//! unknown ids, bad UUIDs, bad query strings, oversize bodies, unknown
//! routes. Each answers the documented status with the JSON error shape,
//! never a 500.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, add_message, expect, expect_error, new_session, spawn};
use confab_store::Db;
use reqwest::Method;
use serde_json::{Value, json};

/// One bad request and what it must answer.
struct Case {
    method: Method,
    path: String,
    body: Option<Body>,
    status: u16,
    code: &'static str,
}

enum Body {
    Raw(String),
    Json(Value),
}

fn case(method: Method, path: impl Into<String>, status: u16, code: &'static str) -> Case {
    Case {
        method,
        path: path.into(),
        body: None,
        status,
        code,
    }
}

fn raw(
    method: Method,
    path: impl Into<String>,
    body: &str,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        body: Some(Body::Raw(body.to_owned())),
        ..case(method, path, status, code)
    }
}

fn json_case(
    method: Method,
    path: impl Into<String>,
    body: Value,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        body: Some(Body::Json(body)),
        ..case(method, path, status, code)
    }
}

async fn run(server: &Server, user: &str, cases: Vec<Case>) {
    for c in cases {
        let mut req = server.as_user(user, c.method.clone(), &c.path);
        match c.body {
            Some(Body::Raw(text)) => {
                req = req.header("content-type", "application/json").body(text);
            }
            Some(Body::Json(v)) => req = req.json(&v),
            None => {}
        }
        let (status, body) = common::send(req).await;
        assert_eq!(
            (status.as_u16(), body["error"].as_str()),
            (c.status, Some(c.code)),
            "{} {}: {body}",
            c.method,
            c.path
        );
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(status.as_u16() < 500, "{} {}: {body}", c.method, c.path);
    }
}

async fn session_routes_reject_bad_input(db: Db) {
    let server = spawn(db).await;
    let sid = new_session(&server, "alice", "t").await;
    let unknown = uuid::Uuid::now_v7().to_string();
    use Method as M;
    let mut cases = vec![
        // Create.
        raw(M::POST, "/api/sessions", "{not json", 400, "invalid_json"),
        raw(M::POST, "/api/sessions", "", 400, "invalid_json"),
        raw(M::POST, "/api/sessions", "[1, 2]", 422, "validation_error"),
        json_case(
            M::POST,
            "/api/sessions",
            json!({"title": 5}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            "/api/sessions",
            json!({"title": "   "}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            "/api/sessions",
            json!({"title": "x".repeat(201)}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            "/api/sessions",
            json!({"metadata": [1]}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            "/api/sessions",
            json!({"agent": ""}),
            422,
            "validation_error",
        ),
        // List.
        case(M::GET, "/api/sessions?status=bogus", 400, "bad_request"),
        case(M::GET, "/api/sessions?limit=-1", 400, "bad_request"),
        case(M::GET, "/api/sessions?limit=lots", 400, "bad_request"),
        case(M::GET, "/api/sessions?cursor=garbage", 400, "bad_request"),
        case(M::GET, "/api/sessions/search", 400, "bad_request"),
        case(
            M::GET,
            "/api/sessions/search?q=x&limit=x",
            400,
            "bad_request",
        ),
        // Import.
        raw(
            M::POST,
            "/api/sessions/import",
            "{\"format\":",
            400,
            "invalid_json",
        ),
        json_case(
            M::POST,
            "/api/sessions/import",
            json!({"a": 1}),
            422,
            "validation_error",
        ),
        // Messages of a session.
        case(
            M::GET,
            format!("/api/sessions/{sid}/messages?before=zzz"),
            400,
            "bad_request",
        ),
        case(
            M::GET,
            format!("/api/sessions/{sid}/messages?after=m-4"),
            400,
            "bad_request",
        ),
        case(
            M::GET,
            format!("/api/sessions/{sid}/messages?limit=-5"),
            400,
            "bad_request",
        ),
        case(
            M::GET,
            format!("/api/sessions/{sid}/messages?before=m1&after=m2"),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            format!("/api/sessions/{sid}/messages"),
            json!({"content": "hi"}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            format!("/api/sessions/{sid}/messages"),
            json!({"role": "boss", "content": "hi"}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            format!("/api/sessions/{sid}/messages"),
            json!({"role": "user", "content": " "}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            format!("/api/sessions/{sid}/messages"),
            json!({"role": "user", "content": "x", "tokens_used": -1}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            format!("/api/sessions/{sid}/messages"),
            json!({"role": "user", "content": "x".repeat(64 * 1024 + 1)}),
            413,
            "payload_too_large",
        ),
        raw(
            M::POST,
            format!("/api/sessions/{sid}/messages"),
            "{\"role\": \"user\", \"content\": ",
            400,
            "invalid_json",
        ),
        // Update.
        raw(
            M::PATCH,
            format!("/api/sessions/{sid}"),
            "nope",
            400,
            "invalid_json",
        ),
        json_case(
            M::PATCH,
            format!("/api/sessions/{sid}"),
            json!({"title": ["a"]}),
            422,
            "validation_error",
        ),
        json_case(
            M::PATCH,
            format!("/api/sessions/{sid}"),
            json!({"title": ""}),
            422,
            "validation_error",
        ),
        // Export.
        case(
            M::GET,
            format!("/api/sessions/{sid}/export?format=pdf"),
            400,
            "bad_request",
        ),
        // Delete.
        case(
            M::DELETE,
            format!("/api/sessions/{sid}?purge=maybe"),
            400,
            "bad_request",
        ),
    ];
    // Bad UUIDs (400) and unknown ids (404) on every `{id}` route.
    for (method, suffix, body) in [
        (M::GET, "", None),
        (M::PATCH, "", Some(json!({"title": "x"}))),
        (M::DELETE, "", None),
        (M::DELETE, "?purge=true", None),
        (M::POST, "/archive", None),
        (M::POST, "/unarchive", None),
        (M::GET, "/statistics", None),
        (M::GET, "/messages", None),
        (
            M::POST,
            "/messages",
            Some(json!({"role": "user", "content": "x"})),
        ),
        (M::GET, "/export", None),
        (M::GET, "/export?format=txt", None),
    ] {
        for (id, status, code) in [
            ("not-a-uuid", 400, "bad_request"),
            ("0190c7e2-zzzz", 400, "bad_request"),
            (unknown.as_str(), 404, "not_found"),
        ] {
            let path = format!("/api/sessions/{id}{suffix}");
            cases.push(match &body {
                Some(b) => json_case(method.clone(), path, b.clone(), status, code),
                None => case(method.clone(), path, status, code),
            });
        }
    }
    run(&server, "alice", cases).await;

    // Operations on a deleted session: 409.
    expect(
        server.as_user("alice", Method::DELETE, &format!("/api/sessions/{sid}")),
        204,
    )
    .await;
    run(
        &server,
        "alice",
        vec![
            case(
                M::POST,
                format!("/api/sessions/{sid}/archive"),
                409,
                "session_deleted",
            ),
            case(
                M::GET,
                format!("/api/sessions/{sid}/messages"),
                409,
                "session_deleted",
            ),
            json_case(
                M::POST,
                format!("/api/sessions/{sid}/messages"),
                json!({"role": "user", "content": "x"}),
                409,
                "session_deleted",
            ),
            case(
                M::GET,
                format!("/api/sessions/{sid}/export"),
                409,
                "session_deleted",
            ),
        ],
    )
    .await;
    server.stop().await;
}

async fn message_and_system_routes_reject_bad_input(db: Db) {
    let server = spawn(db).await;
    let sid = new_session(&server, "alice", "t").await;
    let q = add_message(&server, "alice", &sid, "user", "question").await;
    let a = add_message(&server, "alice", &sid, "assistant", "answer").await;
    let unknown = uuid::Uuid::now_v7().to_string();
    use Method as M;
    let mut cases = vec![
        // Edit.
        raw(
            M::PATCH,
            format!("/api/messages/{q}"),
            "{",
            400,
            "invalid_json",
        ),
        json_case(
            M::PATCH,
            format!("/api/messages/{q}"),
            json!({"content": 1}),
            422,
            "validation_error",
        ),
        json_case(
            M::PATCH,
            format!("/api/messages/{q}"),
            json!({"content": ""}),
            422,
            "validation_error",
        ),
        json_case(
            M::PATCH,
            format!("/api/messages/{q}"),
            json!({"metadata": "x"}),
            422,
            "validation_error",
        ),
        // Search.
        case(M::GET, "/api/messages/search", 400, "bad_request"),
        case(
            M::GET,
            "/api/messages/search?q=x&session_id=nope",
            400,
            "bad_request",
        ),
        case(
            M::GET,
            "/api/messages/search?q=x&limit=-2",
            400,
            "bad_request",
        ),
        // Feedback.
        raw(
            M::POST,
            format!("/api/messages/{a}/feedback"),
            "{\"score\": }",
            400,
            "invalid_json",
        ),
        json_case(
            M::POST,
            format!("/api/messages/{a}/feedback"),
            json!({"score": "five"}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            format!("/api/messages/{a}/feedback"),
            json!({"score": 9}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            format!("/api/messages/{a}/feedback"),
            json!({"score": 0}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            format!("/api/messages/{a}/feedback"),
            json!({}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            format!("/api/messages/{a}/feedback"),
            json!({"thumbs_up": "yes"}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            format!("/api/messages/{a}/feedback"),
            json!({"score": 3, "comment": "c".repeat(2001)}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            format!("/api/messages/{q}/feedback"),
            json!({"score": 3}),
            422,
            "validation_error",
        ),
        // Memory and experience.
        case(M::GET, "/api/memory?limit=-1", 400, "bad_request"),
        case(M::GET, "/api/memory?limit=ten", 400, "bad_request"),
        raw(M::POST, "/api/memory", "{{", 400, "invalid_json"),
        json_case(M::POST, "/api/memory", json!({}), 422, "validation_error"),
        json_case(
            M::POST,
            "/api/memory",
            json!({"content": 7}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            "/api/memory",
            json!({"content": " "}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            "/api/memory",
            json!({"content": "x".repeat(4001)}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            "/api/memory",
            json!({"content": "x", "metadata": [1]}),
            422,
            "validation_error",
        ),
        case(M::GET, "/api/experience?scope=everyone", 400, "bad_request"),
        case(M::GET, "/api/experience?recent=-1", 400, "bad_request"),
        case(M::GET, "/api/experience?scope=all", 403, "forbidden"),
        // Administration: the role is checked first.
        raw(M::POST, "/api/admin/cleanup", "{bad", 403, "forbidden"),
        json_case(
            M::POST,
            "/api/admin/cleanup",
            json!({"days_old": 30}),
            403,
            "forbidden",
        ),
        // Routes that do not exist.
        case(M::GET, "/api/nothing-here", 404, "not_found"),
        case(M::GET, "/api/sessions/a/b/c/d", 404, "not_found"),
        case(M::PUT, "/api/sessions", 404, "not_found"),
    ];
    for (method, suffix, body) in [
        (M::PATCH, "", Some(json!({"content": "x"}))),
        (M::DELETE, "", None),
        (M::POST, "/feedback", Some(json!({"score": 3}))),
    ] {
        for (id, status, code) in [
            ("not-a-uuid", 400, "bad_request"),
            (unknown.as_str(), 404, "not_found"),
        ] {
            let path = format!("/api/messages/{id}{suffix}");
            cases.push(match &body {
                Some(b) => json_case(method.clone(), path, b.clone(), status, code),
                None => case(method.clone(), path, status, code),
            });
        }
    }
    run(&server, "alice", cases).await;

    // The admin's body is validated once the role is.
    let admin_cases = vec![
        raw(M::POST, "/api/admin/cleanup", "{bad", 400, "invalid_json"),
        json_case(
            M::POST,
            "/api/admin/cleanup",
            json!({}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            "/api/admin/cleanup",
            json!({"days_old": -1}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            "/api/admin/cleanup",
            json!({"days_old": "30"}),
            422,
            "validation_error",
        ),
        json_case(
            M::POST,
            "/api/admin/cleanup",
            json!({"days_old": 0}),
            422,
            "validation_error",
        ),
    ];
    for c in admin_cases {
        let mut req = server
            .as_admin("root", c.method.clone(), &c.path)
            .header("content-type", "application/json");
        req = match c.body {
            Some(Body::Raw(t)) => req.body(t),
            Some(Body::Json(v)) => req.body(v.to_string()),
            None => req,
        };
        expect_error(req, c.status, c.code).await;
    }
    server.stop().await;
}

async fn oversize_bodies_are_413(db: Db) {
    let server = spawn(db).await;
    let sid = new_session(&server, "alice", "t").await;
    // JSON bodies over the limit (128 KiB in these tests).
    let big = json!({"title": "x".repeat(200 * 1024)});
    for path in [
        "/api/sessions".to_owned(),
        format!("/api/sessions/{sid}/messages"),
        "/api/memory".to_owned(),
    ] {
        expect_error(
            server.as_user("alice", Method::POST, &path).json(&big),
            413,
            "payload_too_large",
        )
        .await;
    }
    expect_error(
        server
            .as_user("alice", Method::PATCH, &format!("/api/sessions/{sid}"))
            .json(&big),
        413,
        "payload_too_large",
    )
    .await;
    // Import has its own, larger limit (256 KiB here).
    let huge = "x".repeat(300 * 1024);
    expect_error(
        server
            .as_user("alice", Method::POST, "/api/sessions/import")
            .header("content-type", "application/json")
            .body(format!("{{\"pad\": \"{huge}\"}}")),
        413,
        "payload_too_large",
    )
    .await;
    // Without a Content-Length (chunked), the limit still holds.
    let chunks: Vec<Result<String, std::io::Error>> =
        (0..40).map(|_| Ok("y".repeat(8 * 1024))).collect();
    let stream = futures_util::stream::iter(chunks);
    expect_error(
        server
            .as_user("alice", Method::POST, "/api/sessions")
            .body(reqwest::Body::wrap_stream(stream)),
        413,
        "payload_too_large",
    )
    .await;
    // The server is fine afterwards.
    expect(server.as_user("alice", Method::GET, "/api/sessions"), 200).await;
    server.stop().await;
}

confab_testkit::backend_tests!(
    session_routes_reject_bad_input,
    message_and_system_routes_reject_bad_input,
    oversize_bodies_are_413,
);
