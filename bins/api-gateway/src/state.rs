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
    /// Whose `X-Forwarded-For` names the client of [`Self::auth_limiter`].
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    /// Short-lived caches (user, catalogue views).
    pub cache: Cache,
    /// The Redis the replicas share, when `REDIS_URL` is set.
    pub redis: Option<Arc<SharedRedis>>,
    /// When the gateway started.
    pub started: Instant,
}
