//! confab's shared actix-web glue, used by the server binaries.
//!
//! - [`ApiError`]: every error as JSON `{"error": code, "message": text}`
//!   with the right status; `From<HistoryError>` and `From<StoreError>`
//!   map service errors (client errors are never 5xx).
//! - [`extract`]: JSON/query/path extractor configs whose errors use that
//!   shape, a 404 default service, and [`extract::json_errors`], a
//!   middleware that rewrites any other non-JSON error response.
//! - [`auth`]: `X-Internal-Auth` checking (constant time) and the
//!   [`Caller`] extractor (user id and role).
//! - [`request_id`]: `X-Request-Id` middleware with a tracing span.
//! - [`telemetry`]: tracing setup (`LOG_FORMAT`, `LOG_LEVEL`).
//! - [`metrics`]: per-server Prometheus registry, HTTP metrics middleware, `GET /metrics`.
//! - [`config`]: the only place that reads the environment ([`Vars`]).
//!
//! This is the only library crate that depends on actix.

pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod request_id;
pub mod signal;
pub mod telemetry;

pub use auth::{AuthConfig, Caller, InternalAuth};
pub use confab_error::{DomainError, ErrorKind};
pub use config::{ConfigError, HttpConfig, Vars};
pub use error::{ApiError, ErrorBody};
pub use metrics::{Metrics, MetricsBuilder, MetricsConfig};
pub use request_id::RequestId;
pub use signal::shutdown_signal;
pub use telemetry::{LogConfig, LogFormat, init_tracing};

/// `HttpServer::on_connect` hook: disables Nagle's algorithm on every
/// accepted TCP connection. Without it, the last small write of a streamed
/// response waits for the client's delayed ACK (~40 ms) on keep-alive
/// connections.
pub fn tcp_nodelay(conn: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>()
        && let Err(e) = tcp.set_nodelay(true)
    {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}
