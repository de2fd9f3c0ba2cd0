//! confab api-gateway: the single public entry point. It authenticates,
//! serves accounts and the course catalogue, and forwards everything chat
//! to chat-service over HTTP and WebSocket.

pub mod config;
pub mod proxy;
pub mod ratelimit;
pub mod upstream;
pub mod ws_proxy;

use actix_web::HttpMessage;
use confab_web::RequestId;

/// The request id the middleware assigned (a fresh one when absent).
pub fn request_id_of(req: &actix_web::HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| format!("gw-{:x}", std::process::id()))
}
