//! [`ApiKeyService`]: per-user API keys for programmatic clients.

use std::sync::Arc;

use chrono::Duration as ChronoDuration;
use confab_models::accounts::{ApiKeyInfo, CreatedApiKey, User};
use confab_store::schema::api_keys::dsl as k;
use confab_store::schema::users::dsl as u;
use confab_store::{Db, write_transaction};
use diesel::prelude::*;
use uuid::Uuid;

use crate::config::AccountsConfig;
use crate::crypto::{random_token, sha256_hex};
use crate::error::AccountsError;
use crate::rows::{ApiKeyRow, UserRow};
use crate::users::{UserService, load_user};
use crate::validate;

/// What every API key starts with.
pub const API_KEY_PREFIX: &str = "cfb_";
/// Characters of a key kept (in clear) to recognise it: `cfb_` and 8 more.
const SHOWN_CHARS: usize = 12;
/// Longest key name.
const MAX_KEY_NAME: usize = 100;
/// `last_used_at` is written at most this often per key (saves a write per request).
const LAST_USED_EVERY_SECS: i64 = 60;

/// API keys: `cfb_` followed by 32 random bytes (base64url), shown once
/// at creation and stored as a SHA-256 hash. Every call is scoped to the
/// owner: another user's key is "not found". Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiKeyService {
    db: Db,
    config: Arc<AccountsConfig>,
    users: UserService,
}

/// Revokes every live key of `user_id` (logout everywhere, password
/// change); returns how many.
pub(crate) fn revoke_all(
    conn: &mut confab_store::DbConnection,
    user_id: &str,
    now: chrono::NaiveDateTime,
) -> Result<usize, AccountsError> {
    Ok(diesel::update(
        k::api_keys
            .filter(k::user_id.eq(user_id))
            .filter(k::revoked_at.is_null()),
    )
    .set(k::revoked_at.eq(now))
    .execute(conn)?)
}

/// The hash an API key is stored and looked up by (SHA-256, hex), or
/// `None` when `key` does not have the shape of one of our keys.
pub fn api_key_hash(key: &str) -> Option<String> {
    let key = key.trim();
    well_formed(key).then(|| sha256_hex(key))
}

/// Whether `key` has the shape of one of our keys.
fn well_formed(key: &str) -> bool {
    key.strip_prefix(API_KEY_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

impl ApiKeyService {
    pub(crate) fn new(db: Db, config: Arc<AccountsConfig>, users: UserService) -> Self {
        Self { db, config, users }
    }

    /// Creates a key named `name` for the user, who confirms with their
    /// current `password` (a stolen short-lived access token alone cannot
    /// mint a lasting key: [`AccountsError::InvalidCredentials`]). The
    /// returned [`CreatedApiKey::key`] is the only time the key is visible.
    pub async fn create_api_key(
        &self,
        user_id: Uuid,
        name: &str,
        password: &str,
    ) -> Result<CreatedApiKey, AccountsError> {
        let name = validate::short_name("name", name, MAX_KEY_NAME)?;
        self.users.confirm_password(user_id, password).await?;
        let key = format!("{API_KEY_PREFIX}{}", random_token()?);
        let max = self.config.max_api_keys_per_user;
        let row = ApiKeyRow {
            id: Uuid::now_v7().to_string(),
            user_id: user_id.to_string(),
            name,
            prefix: key.chars().take(SHOWN_CHARS).collect(),
            key_hash: sha256_hex(&key),
            created_at: validate::now_naive(),
            last_used_at: None,
            revoked_at: None,
        };
        let info = self
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    load_user(conn, user_id)?;
                    let active: i64 = k::api_keys
                        .filter(k::user_id.eq(&row.user_id))
                        .filter(k::revoked_at.is_null())
                        .count()
                        .get_result(conn)?;
                    if usize::try_from(active).unwrap_or(usize::MAX) >= max {
                        return Err(AccountsError::TooManyApiKeys(max));
                    }
                    diesel::insert_into(k::api_keys)
                        .values(&row)
                        .execute(conn)?;
                    row.into_model()
                })
            })
            .await?;
        Ok(CreatedApiKey { info, key })
    }

    /// The user's keys, revoked ones included, newest first.
    pub async fn list_api_keys(&self, user_id: Uuid) -> Result<Vec<ApiKeyInfo>, AccountsError> {
        self.db
            .run(move |conn| {
                let rows: Vec<ApiKeyRow> = k::api_keys
                    .filter(k::user_id.eq(user_id.to_string()))
                    .order((k::created_at.desc(), k::id.desc()))
                    .select(ApiKeyRow::as_select())
                    .load(conn)?;
                rows.into_iter().map(ApiKeyRow::into_model).collect()
            })
            .await
    }

    /// Revokes one of the user's keys (again is harmless); a key of another
    /// user is [`AccountsError::ApiKeyNotFound`].
    pub async fn revoke_api_key(
        &self,
        user_id: Uuid,
        key_id: Uuid,
    ) -> Result<ApiKeyInfo, AccountsError> {
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let (uid, kid) = (user_id.to_string(), key_id.to_string());
                    let row = k::api_keys
                        .filter(k::id.eq(&kid))
                        .filter(k::user_id.eq(&uid))
                        .select(ApiKeyRow::as_select())
                        .first(conn)
                        .optional()?
                        .ok_or_else(|| AccountsError::ApiKeyNotFound(kid.clone()))?;
                    if row.revoked_at.is_some() {
                        return row.into_model();
                    }
                    let now = validate::now_naive();
                    diesel::update(k::api_keys.filter(k::id.eq(&kid)))
                        .set(k::revoked_at.eq(now))
                        .execute(conn)?;
                    ApiKeyRow {
                        revoked_at: Some(now),
                        ..row
                    }
                    .into_model()
                })
            })
            .await
    }

    /// The owner of a live key; unknown, malformed or revoked keys are
    /// [`AccountsError::InvalidApiKey`]. Records the use (at most once a
    /// minute per key).
    pub async fn authenticate_api_key(&self, key: &str) -> Result<User, AccountsError> {
        let hash = api_key_hash(key).ok_or(AccountsError::InvalidApiKey)?;
        self.authenticate_api_key_hash(hash).await
    }

    /// Which of these key hashes ([`api_key_hash`]) still name a live key
    /// (not revoked, owner not deleted). At most 1000 per call.
    pub async fn live_key_hashes(
        &self,
        hashes: Vec<String>,
    ) -> Result<std::collections::HashSet<String>, AccountsError> {
        self.db
            .run(move |conn| {
                let mut out = std::collections::HashSet::new();
                for chunk in hashes.chunks(1000) {
                    let live: Vec<String> = k::api_keys
                        .filter(k::key_hash.eq_any(chunk))
                        .filter(k::revoked_at.is_null())
                        .select(k::key_hash)
                        .load(conn)?;
                    out.extend(live);
                }
                Ok(out)
            })
            .await
    }

    /// [`ApiKeyService::authenticate_api_key`] by the key's hash.
    pub async fn authenticate_api_key_hash(&self, hash: String) -> Result<User, AccountsError> {
        self.db
            .run(move |conn| {
                let found: Option<(ApiKeyRow, UserRow)> = k::api_keys
                    .inner_join(u::users)
                    .filter(k::key_hash.eq(&hash))
                    .select((ApiKeyRow::as_select(), UserRow::as_select()))
                    .first(conn)
                    .optional()?;
                let Some((key_row, user_row)) = found else {
                    return Err(AccountsError::InvalidApiKey);
                };
                if key_row.revoked_at.is_some() {
                    return Err(AccountsError::InvalidApiKey);
                }
                let now = validate::now_naive();
                let stale = key_row
                    .last_used_at
                    .is_none_or(|t| now - t >= ChronoDuration::seconds(LAST_USED_EVERY_SECS));
                if stale {
                    diesel::update(k::api_keys.filter(k::id.eq(&key_row.id)))
                        .set(k::last_used_at.eq(now))
                        .execute(conn)?;
                }
                user_row.into_model()
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shape() {
        let key = format!("{API_KEY_PREFIX}{}", random_token().unwrap());
        assert!(well_formed(&key));
        assert!(!well_formed("cfb_short"));
        assert!(!well_formed(&key.replacen("cfb_", "xyz_", 1)));
        assert!(!well_formed(&format!("{key}x")));
        assert!(!well_formed(&key.replace(&key[10..11], "!")));
    }
}
