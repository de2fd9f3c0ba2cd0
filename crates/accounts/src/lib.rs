//! Accounts and the course catalogue for confab (seed 002).
//!
//! - [`UserService`]: registration (email checked and lowercased, unique in
//!   any letter case; a password policy), argon2id password hashes computed
//!   on tokio's blocking pool, profiles with settings (`ai_style`,
//!   `preferred_model`), roles, deletion.
//! - [`TokenService`]: HS256 JWT access tokens (15 minutes by default) and
//!   opaque refresh tokens (30 days) stored as SHA-256 hashes and rotated on
//!   every refresh; a reused refresh token revokes its whole family.
//!   "Log out everywhere" also invalidates access tokens already issued
//!   (a per-user token version carried in the `ver` claim).
//! - [`ApiKeyService`]: per-user API keys (`cfb_...`), shown once, stored
//!   hashed; creating one needs the current password, and logging out
//!   everywhere or changing the password revokes them all.
//! - [`CatalogService`]: tracks -> modules -> Markdown lessons, each user's
//!   progress, import from a folder or `catalog.json`, and a demo catalogue.
//! - [`erase_user`]: the one list of what deleting an account deletes
//!   (sessions, messages, memory, feedback, tokens, keys, progress), run
//!   in one transaction by [`UserService::delete_user`].
//! - [`load_or_create_secret`]: a persisted random JWT secret for the
//!   embedded development mode.
//!
//! [`Accounts`] bundles the services over one database. Everything is
//! configured by the caller ([`AccountsConfig`]); nothing reads the
//! environment. Every service is cheap to clone and runs diesel through
//! [`confab_store::Db::run`].
//!
//! The data transfer types (users, tokens, API keys, tracks, lessons,
//! progress) live in [`confab_models::accounts`] so clients can share them.

mod api_keys;
mod catalog;
mod config;
mod crypto;
mod erase;
mod error;
mod rows;
mod secret;
mod tokens;
mod users;
pub mod validate;

pub use api_keys::{API_KEY_PREFIX, ApiKeyService, api_key_hash};
pub use catalog::{CatalogService, DEMO_TRACKS};
pub use config::{
    AccountsConfig, Clock, JwtConfig, MIN_SECRET_BYTES, PasswordHashing, SystemClock,
};
pub use erase::{Erased, erase_user};
pub use error::AccountsError;
pub use secret::load_or_create_secret;
pub use tokens::{ACCESS_TYP, Claims, TokenService};
pub use users::UserService;

/// Re-export of the DTOs this crate's services exchange.
pub use confab_models::accounts as models;

use std::sync::Arc;

use confab_store::Db;

/// Every service of this crate over one database and configuration.
#[derive(Debug, Clone)]
pub struct Accounts {
    /// Users, passwords, profiles.
    pub users: UserService,
    /// Access and refresh tokens.
    pub tokens: TokenService,
    /// API keys.
    pub api_keys: ApiKeyService,
    /// Tracks, lessons, progress.
    pub catalog: CatalogService,
}

impl Accounts {
    /// All services over `db`; fails when the configuration is unusable
    /// (a JWT secret shorter than [`MIN_SECRET_BYTES`], bad hash costs).
    pub fn new(db: Db, config: AccountsConfig) -> Result<Self, AccountsError> {
        let hasher = crypto::Hasher::new(config.hashing, config.max_concurrent_hashes)?;
        let jwt = config.jwt.clone();
        let config = Arc::new(config);
        let users = UserService::new(db.clone(), hasher, config.clone());
        let tokens = TokenService::new(db.clone(), jwt, users.clone())?;
        Ok(Self {
            api_keys: ApiKeyService::new(db.clone(), config, users.clone()),
            catalog: CatalogService::new(db),
            users,
            tokens,
        })
    }
}
