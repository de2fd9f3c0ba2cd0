//! Shared helpers: a real chat-service on 127.0.0.1:0 over a test database,
//! and a reqwest client that speaks as a given user.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use actix_web::web;
use chat_service::{AppState, Config, Running};
use confab_history::HistoryConfig;
use confab_llm::{BuiltinProvider, ChatModel};
use confab_store::Db;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

/// The internal key used by tests that run "behind the gateway".
pub const KEY: &str = "test-internal-key";

/// A running server and a client for it.
pub struct Server {
    pub running: Option<Running>,
    pub url: String,
    pub client: reqwest::Client,
    pub key: Option<String>,
}

/// Options of [`spawn_with`].
pub struct Options {
    pub key: Option<&'static str>,
    pub max_body_bytes: usize,
    pub max_import_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            key: Some(KEY),
            max_body_bytes: 128 * 1024,
            max_import_bytes: 256 * 1024,
        }
    }
}

/// A server over `db` behind the gateway (internal key [`KEY`]).
pub async fn spawn(db: Db) -> Server {
    spawn_with(db, Options::default()).await
}

/// A server over `db` with these options.
pub async fn spawn_with(db: Db, opts: Options) -> Server {
    let providers: Vec<Arc<dyn ChatModel>> = vec![Arc::new(BuiltinProvider::new())];
    let state = AppState::new(db, HistoryConfig::default()).with_providers(providers);
    spawn_state(state, opts).await
}

/// A server over a prepared state with these options.
pub async fn spawn_state(state: AppState, opts: Options) -> Server {
    let mut config = Config::for_database("sqlite://unused.db").unwrap();
    config.http.workers = Some(2);
    config.http.max_body_bytes = opts.max_body_bytes;
    config.max_import_bytes = opts.max_import_bytes;
    config.http.shutdown_grace = std::time::Duration::from_secs(1);
    config.auth = match opts.key {
        Some(k) => confab_web::AuthConfig::with_internal_key(k),
        None => confab_web::AuthConfig::standalone(),
    };
    let running = chat_service::serve(web::Data::new(state), &config).unwrap();
    Server {
        url: running.url(),
        running: Some(running),
        client: reqwest::Client::new(),
        key: opts.key.map(str::to_owned),
    }
}

impl Server {
    /// A request with no identity headers at all.
    pub fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.url))
    }

    /// A request acting for `user` (with the internal key when configured).
    pub fn as_user(&self, user: &str, method: Method, path: &str) -> RequestBuilder {
        let mut req = self.anonymous(method, path).header("X-User-Id", user);
        if let Some(k) = &self.key {
            req = req.header("X-Internal-Auth", k);
        }
        req
    }

    /// A request acting for `user` with role admin.
    pub fn as_admin(&self, user: &str, method: Method, path: &str) -> RequestBuilder {
        self.as_user(user, method, path)
            .header("X-User-Role", "admin")
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.unwrap();
        }
    }
}

/// Sends and returns the status and JSON body (`Null` when empty).
pub async fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let res: Response = req.send().await.expect("request failed");
    let status = res.status();
    let text = res.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text}"))
    };
    (status, body)
}

/// Sends and expects `status`; returns the JSON body.
pub async fn expect(req: RequestBuilder, status: u16) -> Value {
    let (s, body) = send(req).await;
    assert_eq!(s.as_u16(), status, "body: {body}");
    body
}

/// Sends, expects an error `status` with the JSON error shape and `code`; returns the message.
pub async fn expect_error(req: RequestBuilder, status: u16, code: &str) -> String {
    let (s, body) = send(req).await;
    assert_eq!(s.as_u16(), status, "body: {body}");
    assert_eq!(body["error"], code, "body: {body}");
    let message = body["message"].as_str().expect("message is a string");
    assert!(!message.is_empty());
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "only error and message: {body}"
    );
    message.to_owned()
}

/// Creates a session for `user` and returns its id.
pub async fn new_session(server: &Server, user: &str, title: &str) -> String {
    let body = expect(
        server
            .as_user(user, Method::POST, "/api/sessions")
            .json(&serde_json::json!({ "title": title })),
        201,
    )
    .await;
    body["id"].as_str().unwrap().to_owned()
}

/// Appends a message and returns its id.
pub async fn add_message(
    server: &Server,
    user: &str,
    session: &str,
    role: &str,
    text: &str,
) -> String {
    let body = expect(
        server
            .as_user(
                user,
                Method::POST,
                &format!("/api/sessions/{session}/messages"),
            )
            .json(&serde_json::json!({ "role": role, "content": text })),
        201,
    )
    .await;
    body["id"].as_str().unwrap().to_owned()
}
