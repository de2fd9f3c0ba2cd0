//! Forwarding chat routes to chat-service over HTTP: identity headers in,
//! bodies streamed back as they come (SSE tokens are not buffered), and a
//! 503 JSON within about a second when no instance answers.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use bytes::Bytes;
use confab_web::ApiError;
use futures_util::StreamExt;

use crate::upstream::{Upstream, Upstreams};

/// Who a forwarded request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id chat-service scopes everything to.
    pub user_id: String,
    /// `user` or `admin`.
    pub role: String,
    /// The user's settings as JSON (AI style, preferred model).
    pub settings: Option<String>,
}

/// Request headers passed through to chat-service (everything else,
/// notably `Authorization`, cookies and any client-sent identity or
/// internal-auth header, is dropped).
const PASS_REQUEST: &[&str] = &[
    "content-type",
    "accept",
    "accept-language",
    "last-event-id",
    "user-agent",
];

/// Response headers not copied back (hop-by-hop, or recomputed by actix).
const DROP_RESPONSE: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "upgrade",
    "proxy-connection",
    "te",
    "trailer",
    "x-request-id",
];

/// The forwarder.
#[derive(Debug)]
pub struct Proxy {
    client: reqwest::Client,
    upstreams: Upstreams,
    internal_key: String,
    connect_budget: Duration,
    /// Upstream errors and relayed WebSockets.
    pub metrics: crate::metrics::GatewayMetrics,
    /// Models users may pick (others are dropped from forwarded settings).
    pub allowed_models: crate::allowed::AllowedModels,
}

impl Proxy {
    /// A proxy to `upstreams`, authenticating with `internal_key`.
    /// `connect_timeout` bounds one connection attempt; all attempts of a
    /// request together stay within `connect_budget`.
    pub fn new(
        upstreams: Upstreams,
        internal_key: String,
        connect_timeout: Duration,
        connect_budget: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            client,
            upstreams,
            internal_key,
            connect_budget,
            metrics: crate::metrics::GatewayMetrics::default(),
            allowed_models: crate::allowed::AllowedModels::default(),
        })
    }

    /// The same proxy forwarding only `allowed` preferred models.
    pub fn with_allowed_models(mut self, allowed: crate::allowed::AllowedModels) -> Self {
        self.allowed_models = allowed;
        self
    }

    /// The instances.
    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// The shared HTTP client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The internal key sent as `X-Internal-Auth`.
    pub fn internal_key(&self) -> &str {
        &self.internal_key
    }

    /// Identity and tracing headers for an upstream request.
    pub fn identity_headers(
        &self,
        identity: &Identity,
        request_id: &str,
    ) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("x-internal-auth", self.internal_key.clone()),
            ("x-user-id", identity.user_id.clone()),
            ("x-user-role", identity.role.clone()),
            ("x-request-id", request_id.to_owned()),
        ];
        if let Some(s) = &identity.settings {
            headers.push(("x-user-settings", self.allowed_models.filter_settings(s)));
        }
        headers
    }

    /// Forwards `req` (with `body`) to `path_and_query` on an instance and
    /// streams the answer back.
    pub async fn forward(
        &self,
        req: &HttpRequest,
        path_and_query: &str,
        body: Bytes,
        identity: &Identity,
    ) -> Result<HttpResponse, ApiError> {
        let path_and_query = checked_target(path_and_query, crate::chat::FORWARDED)?;
        let path_and_query = path_and_query.as_str();
        let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
            .map_err(|_| ApiError::bad_request("unsupported method"))?;
        let headers: Vec<(&str, Vec<u8>)> = PASS_REQUEST
            .iter()
            .filter_map(|name| {
                req.headers()
                    .get(*name)
                    .map(|v| (*name, v.as_bytes().to_vec()))
            })
            .collect();
        let request_id = crate::request_id_of(req);
        let resp = self
            .send(
                method,
                path_and_query,
                &headers,
                body,
                identity,
                &request_id,
            )
            .await?;
        Ok(relay(resp))
    }

    /// Sends a request to the first instance that accepts the connection
    /// (round robin, failed ones marked down), within the connect budget.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        headers: &[(&str, Vec<u8>)],
        body: Bytes,
        identity: &Identity,
        request_id: &str,
    ) -> Result<reqwest::Response, ApiError> {
        let started = Instant::now();
        let mut last_error = String::from("no chat-service instance is configured");
        for upstream in self.upstreams.order() {
            if started.elapsed() >= self.connect_budget {
                break;
            }
            let mut builder = self
                .client
                .request(method.clone(), format!("{}{path_and_query}", upstream.url));
            for (name, value) in headers {
                builder = builder.header(*name, value.as_slice());
            }
            for (name, value) in self.identity_headers(identity, request_id) {
                builder = builder.header(name, value);
            }
            if !body.is_empty()
                || method == reqwest::Method::POST
                || method == reqwest::Method::PATCH
            {
                builder = builder.body(body.clone());
            }
            match builder.send().await {
                Ok(resp) => {
                    self.upstreams.mark_up(upstream);
                    return Ok(resp);
                }
                Err(e) if e.is_connect() || (e.is_timeout() && !e.is_body()) => {
                    last_error = format!("{}: {e}", upstream.url);
                    self.metrics.upstream_error("connect");
                    self.upstreams.mark_down(upstream);
                }
                Err(e) => {
                    tracing::warn!(upstream = %upstream.url, error = %e, "chat-service request failed");
                    self.metrics.upstream_error("request");
                    return Err(ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "bad_gateway",
                        "chat-service failed to answer",
                    ));
                }
            }
        }
        tracing::warn!(error = %last_error, "no chat-service instance reachable");
        self.metrics.upstream_error("unavailable");
        Err(unavailable())
    }

    /// A healthy-looking instance for a WebSocket (round robin).
    pub fn ws_candidates(&self) -> Vec<&Upstream> {
        self.upstreams.order()
    }

    /// The connect budget of one request.
    pub fn connect_budget(&self) -> Duration {
        self.connect_budget
    }
}

/// The 400 of a forwarded path that could leave its route.
fn invalid_path(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_path",
        format!("invalid request path: {why}"),
    )
}

/// Percent-decodes `text` once (invalid escapes are kept as they are).
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            // Both digits are below 16.
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Checks a path (and query) before it is forwarded: no segment may be a
/// dot segment (`.`, `..`, raw or percent-encoded, also encoded twice) or
/// hide a slash or backslash, and no fragment may follow. Then, as a
/// recheck, the URL parser of the HTTP client must leave the path exactly
/// as it is and the path must still be under one of `prefixes` (exactly, or
/// followed by `/`). Anything else is a 400 `invalid_path`: such a path
/// could otherwise be resolved by the client into another chat-service
/// route (`/api/sessions/%2e%2e/%2e%2e/metrics` is `/metrics`).
pub fn checked_target(path_and_query: &str, prefixes: &[&str]) -> Result<String, ApiError> {
    if path_and_query.contains('#') {
        return Err(invalid_path("a fragment (`#`) is not allowed"));
    }
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(p, _)| p);
    if !path.starts_with('/') {
        return Err(invalid_path("the path must start with `/`"));
    }
    for segment in path.split('/') {
        // Decoding up to three times covers `%2e`, `%252e` and `%25252e`.
        let mut text = segment.to_owned();
        for round in 0..=4 {
            if text == "." || text == ".." {
                return Err(invalid_path("`.` and `..` segments are not allowed"));
            }
            if text.contains('\\') || (text.contains('/') && text != segment) {
                return Err(invalid_path("encoded slashes are not allowed"));
            }
            if !text.contains('%') || round == 4 {
                break;
            }
            text = String::from_utf8_lossy(&percent_decode(&text)).into_owned();
        }
        if text.contains('%') {
            return Err(invalid_path("too many levels of percent-encoding"));
        }
    }
    // The recheck: what the client will really request.
    let url = reqwest::Url::parse(&format!("http://upstream.invalid{path_and_query}"))
        .map_err(|_| invalid_path("not a valid URL path"))?;
    if url.path() != path {
        return Err(invalid_path("the path is not in normal form"));
    }
    if !prefixes.iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    }) {
        return Err(invalid_path("not a forwarded route"));
    }
    Ok(path_and_query.to_owned())
}

/// The 503 when no instance answers.
pub fn unavailable() -> ApiError {
    ApiError::unavailable("no chat-service instance is reachable; try again shortly")
}

/// Streams an upstream response back unchanged (status, headers, body),
/// marked [`crate::metrics::FromUpstream`].
fn relay(resp: reqwest::Response) -> HttpResponse {
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = HttpResponse::build(status);
    for (name, value) in resp.headers() {
        if DROP_RESPONSE.contains(&name.as_str()) {
            continue;
        }
        out.append_header((name.as_str(), value.as_bytes()));
    }
    let body = resp.bytes_stream().map(|chunk| {
        chunk.map_err(|e| {
            tracing::debug!(error = %e, "upstream body ended early");
            actix_web::error::ErrorBadGateway("upstream body ended early")
        })
    });
    crate::metrics::mark_upstream(out.streaming(body))
}

#[cfg(test)]
mod tests {
    use super::checked_target;

    #[test]
    fn dot_segments_and_hidden_slashes_are_refused() {
        let prefixes = &["/api/sessions", "/api/chat"];
        for bad in [
            "/api/sessions/%2e%2e/%2e%2e/api/health",
            "/api/sessions/../x",
            "/api/sessions/./x",
            "/api/sessions/%2E%2e",
            "/api/sessions/.%2E/x",
            "/api/sessions/%252e%252e/x",
            "/api/sessions/..%2f..%2fmetrics",
            "/api/sessions/%5c..",
            "/api/sessions/x#/../..",
            "/api/chatx",
            "/metrics",
            "/api/sessions/%25252525252e",
            "/api/sessions/%25252e%25252e/x",
        ] {
            assert!(checked_target(bad, prefixes).is_err(), "{bad}");
        }
        for good in [
            "/api/sessions",
            "/api/sessions/",
            "/api/sessions/abc/messages?limit=5&q=../..",
            "/api/sessions/search?q=a%2F..%2F",
            "/api/sessions/a.b..c",
            "/api/chat/stream?message=hi%20there",
            "/api/sessions/%E2%9C%93",
        ] {
            assert_eq!(checked_target(good, prefixes).unwrap(), good);
        }
    }
}
