//! [`GatewayState`]: what every handler can reach.

use std::sync::Arc;
use std::time::Instant;

use confab_accounts::Accounts;
use confab_store::Db;

use crate::cache::Cache;
use crate::proxy::Proxy;
use crate::ratelimit::RateLimiter;
use crate::shared::SharedRedis;

/// Shared state of the gateway (one per process, in `web::Data`).
#[derive(Debug)]
pub struct GatewayState {
    /// Users, catalogue (health checks go through it too).
    pub db: Db,
    /// Accounts services.
    pub accounts: Accounts,
    /// The chat-service forwarder.
    pub proxy: Proxy,
    /// Login/register attempts per client IP.
    pub auth_limiter: RateLimiter,
    /// Requests per user.
    pub user_limiter: RateLimiter,
    /// Failed sign-ins per account.
    pub login_limiter: RateLimiter,
    /// Whose `X-Forwarded-For` names the client of [`Self::auth_limiter`].
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    /// Short-lived caches (user, catalogue views).
    pub cache: Cache,
    /// The Redis the replicas share, when `REDIS_URL` is set.
    pub redis: Option<Arc<SharedRedis>>,
    /// When the gateway started.
    pub started: Instant,
    /// The memory all large request bodies may take at once.
    pub bodies: crate::body::BodyBudget,
    /// The body limit of each route the gateway reads bodies of.
    pub body_limits: BodyLimits,
    /// `METRICS_TOKEN`: also shows internal details in `/api/health`.
    pub metrics_token: Option<String>,
    /// Open WebSockets, closed when their credentials are revoked.
    pub sockets: Arc<crate::ws_proxy::OpenSockets>,
}

/// Largest request bodies, per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Chat, sessions, `/v1` (`HTTP_MAX_BODY_BYTES`, 1 MiB).
    pub default: usize,
    /// `POST /api/sessions/import` (`HTTP_MAX_IMPORT_BYTES`, 32 MiB).
    pub import: usize,
}

impl BodyLimits {
    /// The limit of a forwarded request to `path`.
    pub fn for_path(&self, path: &str) -> usize {
        if path == "/api/sessions/import" {
            self.import
        } else {
            self.default
        }
    }
}
