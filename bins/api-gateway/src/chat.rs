//! Chat routes, forwarded to chat-service as the authenticated user:
//! REST and SSE through [`crate::proxy`], `/ws/chat` through
//! [`crate::ws_proxy`].

use actix_web::{HttpRequest, HttpResponse, web};
use confab_web::ApiError;

use crate::auth::AuthUser;
use crate::state::GatewayState;

/// Path prefixes (and exact paths) that belong to chat-service.
pub const FORWARDED: &[&str] = &[
    "/api/chat",
    "/api/chat/stream",
    "/api/sessions",
    "/api/messages",
    "/api/memory",
    "/api/experience",
    "/api/stats",
    "/api/admin/cleanup",
    "/api/knowledge",
];

/// Registers the forwarded routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws/chat", web::get().to(ws_chat));
    for prefix in FORWARDED {
        cfg.route(prefix, web::route().to(forward));
        cfg.route(&format!("{prefix}/{{tail:.*}}"), web::route().to(forward));
    }
}

/// Forwards the request as the authenticated user (the body is read only
/// once the caller is authenticated and the path is checked, within the
/// route's limit: see [`crate::body`]).
pub async fn forward(
    state: web::Data<GatewayState>,
    auth: AuthUser,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| req.path().to_owned());
    let path = crate::proxy::checked_target(&path, FORWARDED)?;
    let limit = state.body_limits.for_path(req.path());
    let body = state.bodies.read(&req, payload, limit).await?;
    state
        .proxy
        .forward(&req, &path, body.bytes.clone(), &auth.identity())
        .await
}

/// `GET /ws/chat`: authenticated by `Authorization: Bearer` or `?token=`.
pub async fn ws_chat(
    state: web::Data<GatewayState>,
    auth: AuthUser,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let registration = state.sockets.register(&auth);
    crate::ws_proxy::bridge(&state.proxy, &req, payload, &auth.identity(), registration).await
}
