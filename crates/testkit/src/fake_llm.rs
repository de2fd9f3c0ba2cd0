//! A fake LLM server speaking the real OpenAI and Ollama wire formats over
//! real HTTP on `127.0.0.1`, for provider tests and benchmarks.
//!
//! Routes: OpenAI under `/v1` (`POST /v1/chat/completions` JSON and SSE,
//! `POST /v1/embeddings`, `GET /v1/models`) and Ollama under `/api`
//! (`POST /api/chat` NDJSON, `POST /api/embed`, `GET /api/tags`).
//!
//! The behaviour is chosen by the request's `model` name, the same in both
//! wire formats:
//!
//! | model | behaviour |
//! | --- | --- |
//! | `echo` (and any unknown name) | replies with the last user message's text, one word per streamed chunk |
//! | `slow` | like `echo`, sleeping [`FakeLlmConfig::token_delay`] before each token |
//! | `tool_call` | calls the first tool in `tools` (or `lookup`) twice: `{"query": <last user text>}` and `{"query": "second"}` (a tool whose schema requires other properties and has no `query` gets each required property set to the last user text, in both calls); after a `tool` message it answers `tool said: <content>` |
//! | `tool_named` | the last user text is `{"tool": NAME, "arguments": {...}}`: calls that tool once, whether offered or not; after a `tool` message it answers `tool said: <content>` |
//! | `error_500` | HTTP 500 with a provider-shaped error body |
//! | `error_401` | HTTP 401 (`invalid_api_key`) |
//! | `error_400_context` | HTTP 400 with code `context_length_exceeded` |
//! | `error_429_once` | the first request on this server gets 429 with `Retry-After: 1`; later ones behave like `echo` |
//! | `error_429` | every request gets 429 with `Retry-After: 7` and an OpenAI-shaped `rate_limit_exceeded` body |
//! | `drop_mid_stream` | streams 3 tokens, then aborts the connection (the client sees a truncated body) |
//! | `garbage` | HTTP 200 with a malformed payload |
//!
//! ```no_run
//! # async fn demo() {
//! use confab_testkit::fake_llm::FakeLlm;
//!
//! let fake = FakeLlm::start().await;
//! let openai_base = format!("{}/v1", fake.base_url());
//! // ... point a provider at `openai_base`, send a request with model "echo" ...
//! assert!(fake.requests().iter().all(|r| r.method == "POST"));
//! # let _ = openai_base;
//! # }
//! ```

mod behaviour;
mod ollama;
mod openai;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Every model name with a distinct behaviour, as listed by `/v1/models` and `/api/tags`.
pub const MODEL_NAMES: &[&str] = behaviour::MODEL_NAMES;

/// Settings of a [`FakeLlm`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeLlmConfig {
    /// Delay before each token of the `slow` model (default 50 ms).
    pub token_delay: Duration,
    /// Delay before each streamed token of every other model (default zero).
    pub stream_delay: Duration,
    /// When `Some(n)`, echo-style replies are exactly `n` tokens `tok0 tok1 ...`.
    pub tokens: Option<usize>,
    /// Length of the embedding vectors (default 8).
    pub embedding_dimensions: usize,
}

impl Default for FakeLlmConfig {
    fn default() -> Self {
        FakeLlmConfig {
            token_delay: Duration::from_millis(50),
            stream_delay: Duration::ZERO,
            tokens: None,
            embedding_dimensions: 8,
        }
    }
}

/// One HTTP request the fake server received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request path without the query string, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Headers by lowercase name; repeated headers are joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON, or `Value::Null` when it is not JSON.
    pub body: Value,
}

impl RecordedRequest {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// A running fake LLM server; it stops when dropped.
#[derive(Debug)]
pub struct FakeLlm {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl FakeLlm {
    /// Starts a server with the default configuration on `127.0.0.1:0`.
    pub async fn start() -> FakeLlm {
        Self::start_with(FakeLlmConfig::default()).await
    }

    /// Starts a server with `config` on `127.0.0.1:0` (panics if it cannot bind).
    pub async fn start_with(config: FakeLlmConfig) -> FakeLlm {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Self::bind(addr, config)
            .await
            .unwrap_or_else(|e| panic!("fake LLM server cannot bind {addr}: {e}"))
    }

    /// Starts a server with `config` on `addr`.
    pub async fn bind(addr: SocketAddr, config: FakeLlmConfig) -> std::io::Result<FakeLlm> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            config,
            requests: Mutex::new(Vec::new()),
            disconnects: watch::Sender::new(0),
            rate_limited: AtomicBool::new(false),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(FakeLlm { addr, state, task })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (OpenAI routes live under `/v1`, Ollama under `/api`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &FakeLlmConfig {
        &self.state.config
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests().clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state.requests().clear();
    }

    /// How many streaming responses lost their client before the stream finished.
    pub fn disconnects(&self) -> usize {
        *self.state.disconnects.borrow()
    }

    /// Waits up to `timeout` until at least one client disconnect has been seen.
    pub async fn wait_for_disconnect(&self, timeout: Duration) -> bool {
        self.wait_for_disconnects(1, timeout).await
    }

    /// Waits up to `timeout` until at least `count` client disconnects have been seen.
    pub async fn wait_for_disconnects(&self, count: usize, timeout: Duration) -> bool {
        let mut rx = self.state.disconnects.subscribe();
        matches!(
            tokio::time::timeout(timeout, async {
                rx.wait_for(|n| *n >= count).await.is_ok()
            })
            .await,
            Ok(true)
        )
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Shared server state; lives in an `Arc` owned by [`FakeLlm`] and its tasks.
#[derive(Debug)]
struct State {
    config: FakeLlmConfig,
    requests: Mutex<Vec<RecordedRequest>>,
    disconnects: watch::Sender<usize>,
    rate_limited: AtomicBool,
}

impl State {
    fn requests(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts a disconnect when a streaming body is dropped before [`StreamGuard::finish`].
struct StreamGuard {
    state: Arc<State>,
    finished: bool,
}

impl StreamGuard {
    fn new(state: Arc<State>) -> Self {
        StreamGuard {
            state,
            finished: false,
        }
    }

    /// Marks the stream as complete (called just before its last frame).
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.state.disconnects.send_modify(|n| *n += 1);
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Accepts connections until aborted; aborting drops the `JoinSet`, which
/// aborts every connection task too.
async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // e.g. too many open files: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| handle(state.clone(), req));
            // Errors here are client disconnects or deliberate aborts.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Which wire format a route speaks (decides the error body shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    OpenAi,
    Ollama,
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let bytes = body.collect().await.map(|c| c.to_bytes());
    let json = bytes
        .as_ref()
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(b).ok());
    let mut headers = BTreeMap::<String, String>::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    state.requests().push(RecordedRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        headers,
        body: json.clone().unwrap_or(Value::Null),
    });

    let flavour = if path.starts_with("/api/") {
        Flavour::Ollama
    } else {
        Flavour::OpenAi
    };
    let needs_body = parts.method == Method::POST;
    let body = match (needs_body, json) {
        (true, Some(v @ Value::Object(_))) => v,
        (true, _) if is_known_post(&path) => {
            return Ok(client_error(
                flavour,
                StatusCode::BAD_REQUEST,
                "request body is not a valid JSON object",
            ));
        }
        _ => Value::Null,
    };
    let response = match (&parts.method, path.as_str()) {
        (&Method::POST, "/v1/chat/completions") => openai::chat(&state, &body).await,
        (&Method::POST, "/v1/embeddings") => openai::embeddings(&state, &body),
        (&Method::GET, "/v1/models") => openai::models(),
        (&Method::POST, "/api/chat") => ollama::chat(&state, &body).await,
        (&Method::POST, "/api/embed") => ollama::embed(&state, &body),
        (&Method::GET, "/api/tags") => ollama::tags(),
        (method, path) => client_error(
            flavour,
            StatusCode::NOT_FOUND,
            &format!("no route for {method} {path}"),
        ),
    };
    Ok(response)
}

fn is_known_post(path: &str) -> bool {
    matches!(
        path,
        "/v1/chat/completions" | "/v1/embeddings" | "/api/chat" | "/api/embed"
    )
}

/// A 4xx answer in the wire format of `flavour`.
fn client_error(flavour: Flavour, status: StatusCode, message: &str) -> Response<Body> {
    let body = match flavour {
        Flavour::OpenAi => json!({
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": null,
                "code": null,
            }
        }),
        Flavour::Ollama => json!({ "error": message }),
    };
    json_response(status, &body)
}

/// A complete JSON response.
fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    full_response(status, "application/json", Bytes::from(body.to_string()))
}

/// A complete response with a fixed body.
fn full_response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let body = Full::new(body)
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A 200 response whose body is sent chunk by chunk, each item as its own
/// frame; an `Err` item aborts the connection without terminating the body.
fn stream_response(
    content_type: &'static str,
    chunks: impl Stream<Item = Result<Bytes, BoxError>> + Send + 'static,
) -> Response<Body> {
    let body = StreamBody::new(chunks.map_ok(Frame::data)).boxed_unsync();
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    response
}

/// The error a body stream yields to abort its connection mid-response.
fn abort_error() -> BoxError {
    "fake LLM server: connection aborted mid-stream (drop_mid_stream)".into()
}

/// Pause before a deliberate abort, so the frames before it reach the client.
const FLUSH_PAUSE: Duration = Duration::from_millis(5);

/// A JSON body cut in half, after which the connection is aborted.
fn truncated(full: String) -> Response<Body> {
    let full = Bytes::from(full);
    let head = full.slice(..full.len() / 2);
    stream_response(
        "application/json",
        async_stream::stream! {
            yield Ok(head);
            tokio::time::sleep(FLUSH_PAUSE).await;
            yield Err(abort_error());
        },
    )
}

/// Sleeps for `delay` unless it is zero.
async fn sleep_if(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}
