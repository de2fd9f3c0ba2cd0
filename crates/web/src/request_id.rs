//! Request ids: taken from `X-Request-Id` (or minted), echoed in the
//! response, and recorded on a tracing span around the handler.

use std::future::{Ready, ready};
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use tracing::Instrument;

/// The request id header.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest request id taken from a client.
const MAX_REQUEST_ID: usize = 128;

/// The id of the current request (extract it in handlers, or read it from
/// the request extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromRequest for RequestId {
    type Error = std::convert::Infallible;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(uuid::Uuid::new_v4().to_string()));
        ready(Ok(id))
    }
}

/// A client's id when it is short, visible ASCII; otherwise none.
fn accepted(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?.trim();
    let ok = !s.is_empty() && s.len() <= MAX_REQUEST_ID && s.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| s.to_owned())
}

/// Middleware (use with `actix_web::middleware::from_fn(request_id)`):
/// assigns the request id, runs the rest inside a `request` span carrying
/// it, logs one line per request and echoes the id in `X-Request-Id`.
pub async fn request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(accepted)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.path(),
    );
    let started = Instant::now();
    // Errors of inner services are already responses; an `Err` here comes
    // from a middleware and is rendered by actix (without the id header).
    // (The request must not be cloned before routing, so it cannot be kept.)
    let mut res = next
        .call(req)
        .instrument(span.clone())
        .await?
        .map_into_boxed_body();
    let status = res.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, elapsed_ms, "request failed");
        } else {
            tracing::info!(status, elapsed_ms, "request");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_short_visible_ids() {
        assert_eq!(
            accepted(&HeaderValue::from_static("abc-123")).as_deref(),
            Some("abc-123")
        );
        assert_eq!(accepted(&HeaderValue::from_static("a b")), None);
        assert_eq!(accepted(&HeaderValue::from_static("")), None);
        let long = "x".repeat(129);
        assert_eq!(accepted(&HeaderValue::from_str(&long).unwrap()), None);
    }
}
