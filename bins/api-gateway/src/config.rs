//! The gateway configuration, read from [`Vars`] by the binary.

use std::path::PathBuf;
use std::time::Duration;

use confab_store::DbConfig;
use confab_web::{ConfigError, HttpConfig, LogConfig, Vars};

/// Default database (shared with chat-service in the embedded mode).
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/confab.db";
/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8000";
/// Default chat-service instance.
pub const DEFAULT_CHAT_SERVICE: &str = "http://127.0.0.1:8001";

/// Default largest session import body (32 MiB, as chat-service's).
pub const DEFAULT_MAX_IMPORT_BYTES: usize = 32 * 1024 * 1024;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A variable is invalid.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The database cannot be opened or migrated.
    #[error(transparent)]
    Store(#[from] confab_store::StoreError),
    /// Accounts setup failed (secret file, demo catalogue).
    #[error("accounts: {0}")]
    Accounts(String),
    /// The address cannot be bound, or the HTTP client cannot be built.
    #[error("cannot start: {0}")]
    Io(#[from] std::io::Error),
}

/// Where the JWT signing secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtSecret {
    /// `JWT_SECRET`.
    Given(String),
    /// Embedded dev mode: generated once and kept in this file.
    File(PathBuf),
}

/// Everything the gateway needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Database (users, catalogue).
    pub database: DbConfig,
    /// Listen address, workers, body limit, shutdown grace.
    pub http: HttpConfig,
    /// Logging.
    pub log: LogConfig,
    /// `GET /metrics` protection (`METRICS_TOKEN`).
    pub metrics: confab_web::MetricsConfig,
    /// chat-service base URLs.
    pub chat_services: Vec<String>,
    /// Key sent as `X-Internal-Auth` (empty: chat-service runs standalone on loopback).
    pub internal_key: String,
    /// JWT signing secret.
    pub jwt_secret: JwtSecret,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
    /// Allowed CORS origins (`*` = any; empty = no CORS headers).
    pub cors_origins: Vec<String>,
    /// Login/register attempts per minute per client IP.
    pub auth_rate_per_minute: u32,
    /// Requests per minute per user on other routes.
    pub user_rate_per_minute: u32,
    /// Failed sign-ins per account within [`Self::login_failure_window`].
    pub login_failures_per_account: u32,
    /// The window of [`Self::login_failures_per_account`].
    pub login_failure_window: Duration,
    /// Proxies whose `X-Forwarded-For` names the client for per-IP limits
    /// (`GATEWAY_TRUSTED_PROXIES`; default none).
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    /// One connection attempt to a chat-service instance.
    pub upstream_connect_timeout: Duration,
    /// All connection attempts of one request (then 503).
    pub upstream_budget: Duration,
    /// How long a failed instance is skipped.
    pub upstream_cooldown: Duration,
    /// Load the demo catalogue when the catalogue is empty.
    pub demo_catalog: bool,
    /// Redis shared by the replicas (rate limits, caches); none: in-process.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key.
    pub redis_key_prefix: String,
    /// Time limit of one Redis call (then: fallback).
    pub redis_timeout: Duration,
    /// How long the authenticated user is cached (0: not cached).
    pub cache_user_ttl: Duration,
    /// How long catalogue views are cached (0: not cached).
    pub cache_catalog_ttl: Duration,
    /// Largest `POST /api/sessions/import` body (`HTTP_MAX_IMPORT_BYTES`).
    pub max_import_bytes: usize,
    /// Memory all large bodies being read may take at once
    /// (`GATEWAY_BODY_BUDGET_BYTES`).
    pub body_budget_bytes: usize,
    /// Models users may pick (`CONFAB_ALLOWED_MODELS`).
    pub allowed_models: crate::allowed::AllowedModels,
    /// How long the user of an API key is cached (0: not cached).
    pub cache_api_key_ttl: Duration,
}

/// Whether `url` is the embedded default (a SQLite file): dev mode.
fn is_embedded(url: &str) -> bool {
    !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
}

/// `REDIS_URL`: unset or empty is none; otherwise a redis:// or rediss:// URL.
fn redis_url(vars: &Vars) -> Result<Option<String>, StartError> {
    match vars.get("REDIS_URL").filter(|u| !u.trim().is_empty()) {
        None => Ok(None),
        Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => Ok(Some(u)),
        Some(_) => Err(ConfigError::Invalid {
            name: "REDIS_URL",
            reason: "must be a redis:// or rediss:// URL".into(),
        }
        .into()),
    }
}

/// Whether `bind` (`HOST:PORT`) listens on loopback addresses only.
pub fn is_loopback_bind(bind: &str) -> bool {
    let host = bind.rsplit_once(':').map_or(bind, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Config {
    /// Whether `GET /metrics` answers anyone who can reach a non-loopback
    /// bind (`METRICS_TOKEN` unset).
    pub fn metrics_exposed(&self) -> bool {
        self.metrics.token.is_none() && !is_loopback_bind(&self.http.bind)
    }

    /// Reads the configuration. See docs/CONFIG.md for every variable.
    pub fn from_vars(vars: &Vars) -> Result<Self, StartError> {
        let url = vars.get_or("DATABASE_URL", DEFAULT_DATABASE_URL);
        let mut database = DbConfig::new(url.clone());
        database.max_connections =
            vars.parse_or("DATABASE_MAX_CONNECTIONS", database.max_connections)?;
        database.connection_timeout =
            vars.millis("DATABASE_TIMEOUT_MS", database.connection_timeout)?;
        let jwt_secret = match vars.get("JWT_SECRET") {
            Some(s) if s.len() >= 32 => JwtSecret::Given(s),
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "JWT_SECRET",
                    reason: "must be at least 32 characters".into(),
                }
                .into());
            }
            None if is_embedded(&url) => JwtSecret::File(PathBuf::from(
                vars.get_or("JWT_SECRET_FILE", "data/jwt_secret"),
            )),
            None => {
                return Err(ConfigError::Invalid {
                    name: "JWT_SECRET",
                    reason: "is required outside the embedded SQLite mode".into(),
                }
                .into());
            }
        };
        let chat_services: Vec<String> = vars
            .get_or("CHAT_SERVICE_URLS", DEFAULT_CHAT_SERVICE)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if chat_services.is_empty()
            || chat_services
                .iter()
                .any(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(ConfigError::Invalid {
                name: "CHAT_SERVICE_URLS",
                reason: "must be a comma-separated list of http(s):// URLs".into(),
            }
            .into());
        }
        let cors_origins = vars
            .get("CORS_ALLOWED_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let redis = redis_url(vars)?;
        Ok(Self {
            database,
            http: HttpConfig::from_vars(vars, "GATEWAY_BIND", DEFAULT_BIND)?,
            log: LogConfig::from_vars(vars)?,
            metrics: confab_web::MetricsConfig::from_vars(vars)?,
            chat_services,
            internal_key: vars
                .get("AGENT_RUNTIME__INTERNAL_API_KEY")
                .unwrap_or_default(),
            jwt_secret,
            access_ttl: vars.seconds("JWT_ACCESS_TTL_SECS", Duration::from_secs(900))?,
            refresh_ttl: vars.seconds("JWT_REFRESH_TTL_SECS", Duration::from_secs(30 * 86_400))?,
            cors_origins,
            auth_rate_per_minute: vars.parse_or("RATE_LIMIT_AUTH_PER_MIN", 20)?,
            user_rate_per_minute: vars.parse_or("RATE_LIMIT_USER_PER_MIN", 600)?,
            login_failures_per_account: vars.parse_or("LOGIN_MAX_FAILURES_PER_ACCOUNT", 10)?,
            login_failure_window: vars
                .seconds("LOGIN_FAILURE_WINDOW_SECS", Duration::from_secs(900))?,
            trusted_proxies: crate::client_ip::TrustedProxies::parse(
                &vars.get_or("GATEWAY_TRUSTED_PROXIES", ""),
            )?,
            upstream_connect_timeout: vars
                .millis("UPSTREAM_CONNECT_TIMEOUT_MS", Duration::from_millis(300))?,
            upstream_budget: vars.millis("UPSTREAM_BUDGET_MS", Duration::from_millis(900))?,
            upstream_cooldown: vars.seconds("UPSTREAM_COOLDOWN_SECS", Duration::from_secs(5))?,
            demo_catalog: vars.flag("CONFAB_DEMO_CATALOG", true)?,
            redis_url: redis.clone(),
            redis_key_prefix: vars.get_or("REDIS_KEY_PREFIX", crate::cache::DEFAULT_PREFIX),
            redis_timeout: vars.millis("REDIS_TIMEOUT_MS", Duration::from_millis(250))?,
            // Off by default without Redis: a user changed or deleted
            // behind the gateway's back (CLI, another replica) is refused
            // at once.
            cache_user_ttl: vars.seconds(
                "CACHE_USER_TTL_SECS",
                Duration::from_secs(if redis.is_some() { 30 } else { 0 }),
            )?,
            cache_catalog_ttl: vars.seconds("CACHE_CATALOG_TTL_SECS", Duration::from_secs(30))?,
            max_import_bytes: vars.parse_or("HTTP_MAX_IMPORT_BYTES", DEFAULT_MAX_IMPORT_BYTES)?,
            body_budget_bytes: vars.parse_or(
                "GATEWAY_BODY_BUDGET_BYTES",
                crate::body::DEFAULT_BUDGET_BYTES,
            )?,
            allowed_models: crate::allowed::AllowedModels::from_vars(vars),
            // Revocations through this gateway (or any replica, with
            // Redis) drop the entry at once; only a key revoked behind the
            // gateway's back lives on until the entry expires.
            cache_api_key_ttl: vars.seconds(
                "CACHE_API_KEY_TTL_SECS",
                Duration::from_secs(if redis.is_some() { 30 } else { 10 }),
            )?,
        })
    }
}
