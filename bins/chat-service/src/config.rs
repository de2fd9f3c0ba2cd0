//! The chat-service configuration, read from [`Vars`] by the binary.

use std::time::Duration;

use confab_history::HistoryConfig;
use confab_llm::LlmConfig;
use confab_store::DbConfig;
use confab_web::{AuthConfig, ConfigError, HttpConfig, LogConfig, Vars};

/// Default database.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/confab.db";
/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8001";
/// Default largest import body (32 MiB).
pub const DEFAULT_MAX_IMPORT_BYTES: usize = 32 * 1024 * 1024;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A variable is invalid.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The language model configuration is invalid.
    #[error("language model configuration: {0}")]
    Llm(#[from] confab_llm::LlmError),
    /// The database cannot be opened or migrated.
    #[error(transparent)]
    Store(#[from] confab_store::StoreError),
    /// The engine (providers, RAG, tools) cannot be built.
    #[error(transparent)]
    Wiring(#[from] crate::wiring::WiringError),
    /// The address cannot be bound.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Database connection settings (`DATABASE_URL`, `DATABASE_MAX_CONNECTIONS`).
    pub database: DbConfig,
    /// Listen address, workers, body limit, shutdown grace.
    pub http: HttpConfig,
    /// Internal key (`AGENT_RUNTIME__INTERNAL_API_KEY`).
    pub auth: AuthConfig,
    /// Logging.
    pub log: LogConfig,
    /// Service limits (defaults).
    pub history: HistoryConfig,
    /// Largest `POST /api/sessions/import` body, in bytes.
    pub max_import_bytes: usize,
    /// Imports read and parsed at once (`HTTP_MAX_CONCURRENT_IMPORTS`, 2).
    pub max_concurrent_imports: usize,
    /// How long `/api/health` and `/api/stats` wait for each provider.
    pub provider_probe_timeout: Duration,
    /// Language model providers.
    pub llm: LlmConfig,
    /// WebSocket and streaming limits.
    pub chat: crate::chat::ChatLimits,
    /// All variables (the engine wiring reads its own).
    pub vars: Vars,
    /// Listening beyond loopback without an internal key, as asked by
    /// [`ALLOW_NO_KEY_VAR`] (warned about at start).
    pub unauthenticated_bind: bool,
}

/// The opt-out of the internal-key requirement on a non-loopback bind.
pub const ALLOW_NO_KEY_VAR: &str = "CHAT_SERVICE_ALLOW_NO_INTERNAL_KEY";

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
    /// Reads the configuration. See docs/CONFIG.md for every variable.
    pub fn from_vars(vars: &Vars) -> Result<Self, StartError> {
        let mut database = DbConfig::new(vars.get_or("DATABASE_URL", DEFAULT_DATABASE_URL));
        database.max_connections =
            vars.parse_or("DATABASE_MAX_CONNECTIONS", database.max_connections)?;
        database.connection_timeout =
            vars.millis("DATABASE_TIMEOUT_MS", database.connection_timeout)?;
        let max_import_bytes = vars.parse_or("HTTP_MAX_IMPORT_BYTES", DEFAULT_MAX_IMPORT_BYTES)?;
        let http = HttpConfig::from_vars(vars, "CHAT_SERVICE_BIND", DEFAULT_BIND)?;
        let auth = AuthConfig::from_vars(vars);
        // Without a key, identity headers are believed from anyone who can
        // connect: only loopback, unless the operator really means it.
        // (A bind that is not HOST:PORT at all fails later, as "cannot listen".)
        let is_host_port = http
            .bind
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
        let exposed =
            is_host_port && !is_loopback_bind(&http.bind) && !auth.requires_internal_key();
        let allowed = vars.flag(ALLOW_NO_KEY_VAR, false)?;
        if exposed && !allowed {
            return Err(ConfigError::Invalid {
                name: "AGENT_RUNTIME__INTERNAL_API_KEY",
                reason: format!(
                    "is required when CHAT_SERVICE_BIND ({}) is not a loopback address: without it \
                     anyone who reaches the port can act as any user (X-User-Id). Set the same \
                     key on chat-service and api-gateway, bind to 127.0.0.1, or set \
                     {ALLOW_NO_KEY_VAR}=1 if you really mean it",
                    http.bind
                ),
            }
            .into());
        }
        Ok(Self {
            database,
            http,
            auth,
            log: LogConfig::from_vars(vars)?,
            history: HistoryConfig::default(),
            max_import_bytes,
            max_concurrent_imports: vars.parse_or("HTTP_MAX_CONCURRENT_IMPORTS", 2)?,
            provider_probe_timeout: vars
                .millis("PROVIDER_PROBE_TIMEOUT_MS", Duration::from_millis(2000))?,
            llm: LlmConfig::from_vars(vars.lookup())?,
            chat: chat_limits(vars)?,
            vars: vars.clone(),
            unauthenticated_bind: exposed,
        })
    }

    /// Defaults for `database_url`, listening on `127.0.0.1:0` (tests, embedding).
    pub fn for_database(database_url: &str) -> Result<Self, StartError> {
        let mut vars = Vars::default();
        vars.set("DATABASE_URL", database_url);
        vars.set("CHAT_SERVICE_BIND", "127.0.0.1:0");
        Self::from_vars(&vars)
    }
}

/// WebSocket limits and the shutdown grace period.
fn chat_limits(vars: &Vars) -> Result<crate::chat::ChatLimits, ConfigError> {
    let d = crate::chat::ChatLimits::default();
    Ok(crate::chat::ChatLimits {
        max_frame_bytes: vars.parse_or("WS_MAX_FRAME_BYTES", d.max_frame_bytes)?,
        heartbeat: vars.seconds("WS_HEARTBEAT_SECS", d.heartbeat)?,
        idle_timeout: vars.seconds("WS_IDLE_TIMEOUT_SECS", d.idle_timeout)?,
        shutdown_grace: vars.seconds("SHUTDOWN_GRACE_SECS", d.shutdown_grace)?,
        max_generations_per_user: vars
            .parse_or("CHAT_MAX_GENERATIONS_PER_USER", d.max_generations_per_user)?,
        redis_url: vars.get("REDIS_URL").filter(|u| !u.trim().is_empty()),
        redis_key_prefix: vars.get_or("REDIS_KEY_PREFIX", &d.redis_key_prefix),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::from_vars(&Vars::default()).unwrap();
        assert_eq!(c.database.url, DEFAULT_DATABASE_URL);
        assert_eq!(c.http.bind, DEFAULT_BIND);
        assert!(!c.auth.requires_internal_key());
        assert_eq!(c.max_import_bytes, DEFAULT_MAX_IMPORT_BYTES);

        let c = Config::from_vars(&Vars::from_pairs([
            ("DATABASE_URL", "postgres://u@h/db"),
            ("CHAT_SERVICE_BIND", "0.0.0.0:9000"),
            ("AGENT_RUNTIME__INTERNAL_API_KEY", "k"),
            ("DATABASE_MAX_CONNECTIONS", "3"),
            ("HTTP_MAX_IMPORT_BYTES", "100"),
        ]))
        .unwrap();
        assert_eq!(c.database.url, "postgres://u@h/db");
        assert_eq!(c.database.max_connections, 3);
        assert_eq!(c.http.bind, "0.0.0.0:9000");
        assert!(c.auth.requires_internal_key());
        assert_eq!(c.max_import_bytes, 100);

        let err = Config::from_vars(&Vars::from_pairs([("DATABASE_MAX_CONNECTIONS", "many")]));
        assert!(matches!(err, Err(StartError::Config(_))));
    }

    #[test]
    fn a_public_bind_needs_a_key_or_the_opt_out() {
        for bind in ["127.0.0.1:1", "[::1]:1", "localhost:1", "127.1.2.3:0"] {
            assert!(is_loopback_bind(bind), "{bind}");
            let c = Config::from_vars(&Vars::from_pairs([("CHAT_SERVICE_BIND", bind)])).unwrap();
            assert!(!c.unauthenticated_bind);
        }
        for bind in ["0.0.0.0:8001", "[::]:8001", "10.0.0.5:8001", "chat:8001"] {
            assert!(!is_loopback_bind(bind), "{bind}");
            let err = Config::from_vars(&Vars::from_pairs([("CHAT_SERVICE_BIND", bind)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains("AGENT_RUNTIME__INTERNAL_API_KEY"), "{err}");
            assert!(err.contains(ALLOW_NO_KEY_VAR), "{err}");
            let c = Config::from_vars(&Vars::from_pairs([
                ("CHAT_SERVICE_BIND", bind),
                (ALLOW_NO_KEY_VAR, "1"),
            ]))
            .unwrap();
            assert!(c.unauthenticated_bind);
        }
    }
}
