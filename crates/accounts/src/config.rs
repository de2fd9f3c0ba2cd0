//! Configuration of the accounts services, passed in by the caller.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::AccountsError;

/// Where the token service reads the time: issuing (`iat`, `nbf`, `exp`),
/// checking access tokens and refresh-token expiry. Tests pass a clock they
/// can move instead of sleeping.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Shortest JWT secret accepted, in bytes (HS256 wants at least 256 bits).
pub const MIN_SECRET_BYTES: usize = 32;

/// How access tokens are signed and how long tokens live.
#[derive(Clone)]
pub struct JwtConfig {
    /// HMAC secret (at least [`MIN_SECRET_BYTES`] bytes).
    pub secret: Vec<u8>,
    /// `iss` claim written and required.
    pub issuer: String,
    /// Lifetime of access tokens (default 15 minutes).
    pub access_ttl: Duration,
    /// Lifetime of refresh tokens (default 30 days; each refresh starts a new one).
    pub refresh_ttl: Duration,
    /// Clock skew tolerated on `exp` and `nbf` (default 5 seconds).
    pub leeway: Duration,
    /// The token service's time (default [`SystemClock`]).
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("issuer", &self.issuer)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl JwtConfig {
    /// Defaults (issuer `confab`, 15 min access, 30 days refresh, 5 s leeway) with this secret.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
            issuer: "confab".to_owned(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            leeway: Duration::from_secs(5),
            clock: Arc::new(SystemClock),
        }
    }

    /// Checks the secret is long enough and the lifetimes are sane.
    pub fn validate(&self) -> Result<(), AccountsError> {
        if self.secret.len() < MIN_SECRET_BYTES {
            return Err(AccountsError::Config(format!(
                "the JWT secret is {} bytes; at least {MIN_SECRET_BYTES} are required",
                self.secret.len()
            )));
        }
        if self.issuer.trim().is_empty() {
            return Err(AccountsError::Config("the JWT issuer is empty".into()));
        }
        if self.access_ttl < Duration::from_secs(1) || self.refresh_ttl < Duration::from_secs(1) {
            return Err(AccountsError::Config(
                "token lifetimes must be at least one second".into(),
            ));
        }
        if self.leeway > Duration::from_secs(60) {
            return Err(AccountsError::Config(
                "the JWT leeway must be at most 60 seconds".into(),
            ));
        }
        Ok(())
    }
}

/// argon2id cost parameters for new password hashes (existing hashes keep
/// the parameters they were made with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordHashing {
    /// Memory in KiB (default 19456 = 19 MiB, OWASP's argon2id minimum).
    pub memory_kib: u32,
    /// Passes (default 2).
    pub iterations: u32,
    /// Lanes (default 1).
    pub parallelism: u32,
}

impl Default for PasswordHashing {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordHashing {
    /// Cheap parameters for tests only (1 MiB, one pass): never in production.
    pub fn insecure_fast() -> Self {
        Self {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }
}

/// Everything the accounts services need.
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// Token signing and lifetimes.
    pub jwt: JwtConfig,
    /// Password hash cost.
    pub hashing: PasswordHashing,
    /// Most active API keys one user may have (default 25).
    pub max_api_keys_per_user: usize,
    /// Largest settings object, in bytes of JSON (default 8 KiB).
    pub max_settings_bytes: usize,
    /// Most password hashes computed at once (default: twice the number of
    /// CPUs); further logins and registrations wait for a slot, so a burst
    /// cannot take `memory_kib` of memory per request.
    pub max_concurrent_hashes: usize,
}

impl AccountsConfig {
    /// Defaults around this JWT configuration.
    pub fn new(jwt: JwtConfig) -> Self {
        Self {
            jwt,
            hashing: PasswordHashing::default(),
            max_api_keys_per_user: 25,
            max_settings_bytes: 8 * 1024,
            max_concurrent_hashes: std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
        }
    }
}
