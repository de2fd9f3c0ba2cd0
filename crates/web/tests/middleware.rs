//! The middleware and extractor configs on a real actix service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, test, web};
use confab_web::extract::{json_config, json_errors, not_found, path_config, query_config};
use confab_web::request_id::request_id;
use confab_web::{AuthConfig, Caller, ErrorBody, RequestId};
use serde::Deserialize;

#[derive(Deserialize)]
struct Body {
    #[allow(dead_code)]
    n: u32,
}

#[derive(Deserialize)]
struct Query {
    #[allow(dead_code)]
    limit: Option<u32>,
}

async fn echo(_body: web::Json<Body>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"ok": true}))
}

async fn whoami(caller: Caller, id: RequestId) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "user": caller.user_id, "role": caller.role, "request_id": id.as_str()
    }))
}

async fn list(_q: web::Query<Query>) -> HttpResponse {
    HttpResponse::Ok().finish()
}

async fn item(_p: web::Path<uuid::Uuid>) -> HttpResponse {
    HttpResponse::Ok().finish()
}

async fn raw(_b: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().finish()
}

macro_rules! app {
    ($auth:expr) => {
        test::init_service(
            App::new()
                .app_data($auth)
                .app_data(json_config(64))
                .app_data(query_config())
                .app_data(path_config())
                .app_data(web::PayloadConfig::new(16))
                .route("/echo", web::post().to(echo))
                .route("/me", web::get().to(whoami))
                .route("/list", web::get().to(list))
                .route("/item/{id}", web::get().to(item))
                .route("/raw", web::post().to(raw))
                .default_service(web::to(not_found))
                .wrap(json_errors())
                .wrap(from_fn(request_id)),
        )
        .await
    };
}

/// Calls the app and returns the status and JSON error body, checking the shape.
macro_rules! error_of {
    ($app:expr, $req:expr $(,)?) => {{
        let res = test::call_service($app, $req.to_request()).await;
        let status = res.status().as_u16();
        assert!(res.headers().contains_key("x-request-id"));
        assert_eq!(
            res.headers().get("content-type").unwrap(),
            "application/json"
        );
        let body: ErrorBody = test::read_body_json(res).await;
        (status, body)
    }};
}

#[actix_web::test]
async fn every_error_is_json() {
    let app = app!(AuthConfig::standalone());
    let post = |body: &'static str| test::TestRequest::post().uri("/echo").set_payload(body);

    let (s, e) = error_of!(&app, post("{not json"));
    assert_eq!((s, e.error.as_str()), (400, "invalid_json"));
    let (s, e) = error_of!(&app, post(r#"{"n": "seven"}"#));
    assert_eq!((s, e.error.as_str()), (422, "validation_error"));
    let (s, e) = error_of!(&app, post("{}"));
    assert_eq!((s, e.error.as_str()), (422, "validation_error"));
    assert!(e.message.contains("missing field `n`"), "{}", e.message);
    let (s, e) = error_of!(
        &app,
        post(
            r#"{"n": 1, "pad": "0123456789012345678901234567890123456789012345678901234567890123"}"#
        )
    );
    assert_eq!((s, e.error.as_str()), (413, "payload_too_large"));
    let (s, e) = error_of!(&app, test::TestRequest::get().uri("/list?limit=-3"),);
    assert_eq!((s, e.error.as_str()), (400, "bad_request"));
    let (s, e) = error_of!(&app, test::TestRequest::get().uri("/item/nope"));
    assert_eq!((s, e.error.as_str()), (400, "bad_request"));
    let (s, e) = error_of!(&app, test::TestRequest::get().uri("/nowhere"));
    assert_eq!((s, e.error.as_str()), (404, "not_found"));
    // actix's own answers (405 from a route table, 413 from a Bytes body) are rewritten too.
    let (s, e) = error_of!(&app, test::TestRequest::delete().uri("/echo"));
    assert_eq!(s, 404, "{e:?}");
    let (s, e) = error_of!(
        &app,
        test::TestRequest::post()
            .uri("/raw")
            .set_payload("0123456789abcdefXYZ"),
    );
    assert_eq!((s, e.error.as_str()), (413, "payload_too_large"));

    // Without a content type the body is still read as JSON.
    let res = test::call_service(&app, post(r#"{"n": 1}"#).to_request()).await;
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn request_ids_are_echoed_or_minted() {
    let app = app!(AuthConfig::standalone());
    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/me")
            .insert_header(("X-Request-Id", "trace-42"))
            .to_request(),
    )
    .await;
    assert_eq!(res.headers().get("x-request-id").unwrap(), "trace-42");
    let body: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(body["request_id"], "trace-42");
    assert_eq!(body["user"], "local");
    assert_eq!(body["role"], "admin");

    let res = test::call_service(&app, test::TestRequest::get().uri("/me").to_request()).await;
    let minted = res.headers().get("x-request-id").unwrap().to_str().unwrap();
    assert!(uuid::Uuid::parse_str(minted).is_ok(), "{minted}");
}

#[actix_web::test]
async fn internal_key_gates_identity() {
    let app = app!(AuthConfig::with_internal_key("k3y"));
    let (s, e) = error_of!(
        &app,
        test::TestRequest::get()
            .uri("/me")
            .insert_header(("X-User-Id", "alice")),
    );
    assert_eq!((s, e.error.as_str()), (401, "unauthorized"));
    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/me")
            .insert_header(("X-Internal-Auth", "k3y"))
            .insert_header(("X-User-Id", "alice"))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(body["user"], "alice");
    assert_eq!(body["role"], "user");
}
