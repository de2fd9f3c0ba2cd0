//! [`UserService`]: registration, password checks, profiles, roles.

use std::sync::Arc;

use confab_models::accounts::{ProfileUpdate, User, UserRole};
use confab_store::schema::refresh_tokens::dsl as rt;
use confab_store::schema::users::dsl as u;
use confab_store::{Db, DbConnection, StoreError, write_transaction};
use diesel::prelude::*;
use uuid::Uuid;

use crate::config::AccountsConfig;
use crate::crypto::Hasher;
use crate::error::{AccountsError, is_unique_violation};
use crate::rows::UserRow;
use crate::validate;

/// User accounts: registration with a password policy, argon2id password
/// hashes (computed on tokio's blocking pool), profiles and settings,
/// roles, deletion. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UserService {
    db: Db,
    hasher: Hasher,
    config: Arc<AccountsConfig>,
}

/// Runs a blocking closure (hashing, file I/O) on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, AccountsError>
where
    F: FnOnce() -> Result<T, AccountsError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AccountsError::Store(StoreError::Task(e.to_string())))?
}

/// Loads a user row by id.
pub(crate) fn load_user(conn: &mut DbConnection, id: Uuid) -> Result<UserRow, AccountsError> {
    u::users
        .find(id.to_string())
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AccountsError::UserNotFound(id.to_string()))
}

impl UserService {
    pub(crate) fn new(db: Db, hasher: Hasher, config: Arc<AccountsConfig>) -> Self {
        Self { db, hasher, config }
    }

    /// Creates an account with role `user` and default settings. The email
    /// is checked and lowercased (another account with it in any case is
    /// [`AccountsError::EmailTaken`]); the password must pass the policy
    /// ([`validate::password`]); a missing or blank display name becomes
    /// the part of the email before `@`.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        display_name: Option<&str>,
    ) -> Result<User, AccountsError> {
        let email = validate::email(email)?;
        validate::password(password, &email)?;
        let display_name = match display_name.map(str::trim).filter(|d| !d.is_empty()) {
            Some(d) => validate::display_name(d)?,
            None => validate::display_name(email.split('@').next().unwrap_or("user"))?,
        };
        // Refuse a taken email before spending a hash on it.
        let probe = email.clone();
        let taken = self
            .db
            .run(move |conn| {
                let n: i64 = u::users
                    .filter(u::email.eq(probe))
                    .count()
                    .get_result(conn)?;
                Ok::<_, AccountsError>(n > 0)
            })
            .await?;
        if taken {
            return Err(AccountsError::EmailTaken);
        }
        let pw = password.to_owned();
        let password_hash = self.hasher.run(move |h| h.hash(&pw)).await?;
        let now = validate::now_naive();
        let row = UserRow {
            id: Uuid::now_v7().to_string(),
            email,
            display_name,
            password_hash,
            role: UserRole::User.as_str().to_owned(),
            settings: "{}".to_owned(),
            token_version: 0,
            created_at: now,
            updated_at: now,
        };
        self.db
            .run(move |conn| {
                diesel::insert_into(u::users)
                    .values(&row)
                    .execute(conn)
                    .map_err(AccountsError::from)
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            AccountsError::EmailTaken
                        } else {
                            e
                        }
                    })?;
                row.into_model()
            })
            .await
    }

    /// The account with this email and password, or
    /// [`AccountsError::InvalidCredentials`] (also when no such account
    /// exists: a dummy hash is verified then, so both take the same time).
    pub async fn authenticate(&self, email: &str, password: &str) -> Result<User, AccountsError> {
        Ok(self.check_password(email, password).await?.0)
    }

    /// [`UserService::authenticate`], also returning the token version.
    pub(crate) async fn check_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<(User, i64), AccountsError> {
        let row = match validate::email(email) {
            Ok(email) => {
                self.db
                    .run(move |conn| {
                        u::users
                            .filter(u::email.eq(email))
                            .select(UserRow::as_select())
                            .first(conn)
                            .optional()
                            .map_err(AccountsError::from)
                    })
                    .await?
            }
            Err(_) => None,
        };
        let pw = password.to_owned();
        let stored = row.as_ref().map(|r| r.password_hash.clone());
        let ok = self
            .hasher
            .run(move |h| {
                Ok(match stored {
                    Some(hash) => h.verify(&pw, &hash),
                    None => {
                        h.verify_dummy(&pw);
                        false
                    }
                })
            })
            .await?;
        match row {
            Some(row) if ok => {
                let version = row.token_version;
                Ok((row.into_model()?, version))
            }
            _ => Err(AccountsError::InvalidCredentials),
        }
    }

    /// `Ok` when `password` is the user's password, else
    /// [`AccountsError::InvalidCredentials`] (a confirmation step: signing
    /// in again before a sensitive change).
    pub async fn confirm_password(
        &self,
        user_id: Uuid,
        password: &str,
    ) -> Result<(), AccountsError> {
        let row = self.db.run(move |conn| load_user(conn, user_id)).await?;
        let (pw, stored) = (password.to_owned(), row.password_hash);
        let ok = self.hasher.run(move |h| Ok(h.verify(&pw, &stored))).await?;
        if ok {
            Ok(())
        } else {
            Err(AccountsError::InvalidCredentials)
        }
    }

    /// Changes the password after checking the current one; every refresh
    /// token, access token and API key of the user stops working.
    pub async fn change_password(
        &self,
        user_id: Uuid,
        current: &str,
        new_password: &str,
    ) -> Result<(), AccountsError> {
        let row = self.db.run(move |conn| load_user(conn, user_id)).await?;
        validate::password(new_password, &row.email)?;
        let (cur, new) = (current.to_owned(), new_password.to_owned());
        let stored = row.password_hash.clone();
        let new_hash = self
            .hasher
            .run(move |h| {
                if !h.verify(&cur, &stored) {
                    return Err(AccountsError::InvalidCredentials);
                }
                h.hash(&new)
            })
            .await?;
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let now = validate::now_naive();
                    let id = user_id.to_string();
                    let n = diesel::update(u::users.find(&id))
                        .set((
                            u::password_hash.eq(new_hash),
                            u::token_version.eq(u::token_version + 1),
                            u::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    if n == 0 {
                        return Err(AccountsError::UserNotFound(id));
                    }
                    diesel::update(
                        rt::refresh_tokens
                            .filter(rt::user_id.eq(&id))
                            .filter(rt::revoked_at.is_null()),
                    )
                    .set(rt::revoked_at.eq(now))
                    .execute(conn)?;
                    crate::api_keys::revoke_all(conn, &id, now)?;
                    Ok(())
                })
            })
            .await
    }

    /// One user.
    pub async fn get_user(&self, user_id: Uuid) -> Result<User, AccountsError> {
        self.db
            .run(move |conn| load_user(conn, user_id)?.into_model())
            .await
    }

    /// The user with this email (any letter case).
    pub async fn find_by_email(&self, email: &str) -> Result<User, AccountsError> {
        let email = validate::email(email)?;
        self.db
            .run(move |conn| {
                u::users
                    .filter(u::email.eq(&email))
                    .select(UserRow::as_select())
                    .first(conn)
                    .optional()?
                    .ok_or(AccountsError::UserNotFound(email))?
                    .into_model()
            })
            .await
    }

    /// Changes the display name and/or merges a settings patch (RFC 7396:
    /// given keys replace stored ones, `null` removes a key). `ai_style`
    /// must be one of balanced, concise, detailed, socratic;
    /// `preferred_model` a model name or null.
    pub async fn update_profile(
        &self,
        user_id: Uuid,
        update: ProfileUpdate,
    ) -> Result<User, AccountsError> {
        let display_name = update
            .display_name
            .as_deref()
            .map(validate::display_name)
            .transpose()?;
        let max_settings = self.config.max_settings_bytes;
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let mut row = load_user(conn, user_id)?;
                    if let Some(patch) = &update.settings {
                        let merged =
                            validate::settings_patch(&row.settings_map()?, patch, max_settings)?;
                        row.settings = serde_json::to_string(&merged)
                            .map_err(|e| AccountsError::Corrupt(e.to_string()))?;
                    }
                    if let Some(name) = display_name {
                        row.display_name = name;
                    }
                    row.updated_at = validate::now_naive();
                    diesel::update(u::users.find(&row.id))
                        .set((
                            u::display_name.eq(&row.display_name),
                            u::settings.eq(&row.settings),
                            u::updated_at.eq(row.updated_at),
                        ))
                        .execute(conn)?;
                    row.into_model()
                })
            })
            .await
    }

    /// Deletes the account and everything it owns: sessions with their
    /// messages, memory items, feedback, refresh tokens, API keys and lesson
    /// progress, in one transaction (see [`crate::erase_user`]: a crash
    /// mid-way deletes nothing). Its tokens stop working at once.
    pub async fn delete_user(&self, user_id: Uuid) -> Result<crate::Erased, AccountsError> {
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    crate::erase::erase_user(conn, &user_id.to_string())
                })
            })
            .await
    }

    /// Sets the user's role.
    pub async fn set_role(&self, user_id: Uuid, role: UserRole) -> Result<User, AccountsError> {
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let n = diesel::update(u::users.find(user_id.to_string()))
                        .set((
                            u::role.eq(role.as_str()),
                            u::updated_at.eq(validate::now_naive()),
                        ))
                        .execute(conn)?;
                    if n == 0 {
                        return Err(AccountsError::UserNotFound(user_id.to_string()));
                    }
                    load_user(conn, user_id)?.into_model()
                })
            })
            .await
    }

    /// How many accounts exist.
    pub async fn count(&self) -> Result<i64, AccountsError> {
        self.db
            .run(|conn| Ok(u::users.count().get_result(conn)?))
            .await
    }
}
