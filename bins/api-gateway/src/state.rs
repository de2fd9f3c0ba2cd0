//! [`GatewayState`]: what every handler can reach.

use std::time::Instant;

use confab_accounts::Accounts;
use confab_store::Db;

use crate::proxy::Proxy;
use crate::ratelimit::RateLimiter;

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
    /// When the gateway started.
    pub started: Instant,
}
