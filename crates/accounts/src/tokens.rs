//! [`TokenService`]: JWT access tokens and rotating refresh tokens.
//!
//! Access tokens are HS256 JWTs with `sub`, `role`, `ver`, `iat`, `nbf`,
//! `exp`, `iss`, `jti` and `typ = "access"`; only HS256 is accepted (a
//! token naming `none` or any other algorithm is refused before its
//! signature is looked at). Refresh tokens are 32 random bytes (base64url)
//! of which only the SHA-256 is stored; each refresh revokes the presented
//! token and issues a successor in the same family, and a revoked token
//! presented again revokes the whole family (it was stolen or replayed).

use std::sync::Arc;

use chrono::{DateTime, Duration as ChronoDuration, NaiveDateTime, SubsecRound, Utc};
use confab_models::accounts::{TokenPair, User, UserRole};
use confab_store::schema::refresh_tokens::dsl as rt;
use confab_store::schema::users::dsl as u;
use confab_store::{Db, DbConnection, write_transaction};
use diesel::prelude::*;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, TokenData, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{Clock, JwtConfig};
use crate::crypto::{random_token, sha256_hex};
use crate::error::AccountsError;
use crate::rows::{RefreshRow, UserRow};
use crate::users::{UserService, load_user};

/// The `typ` claim of access tokens.
pub const ACCESS_TYP: &str = "access";
/// Longest token accepted for parsing, in bytes.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    /// The user's role when the token was issued.
    pub role: UserRole,
    /// The user's token version when issued (bumped by "log out everywhere").
    pub ver: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not valid before (Unix seconds).
    pub nbf: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Issuer.
    pub iss: String,
    /// Unique token id.
    pub jti: String,
    /// Token kind: always `access`.
    pub typ: String,
}

impl Claims {
    /// The user id as a UUID.
    pub fn user_id(&self) -> Result<Uuid, AccountsError> {
        self.sub
            .parse()
            .map_err(|_| AccountsError::InvalidToken("subject is not a user id"))
    }
}

/// Signing and verification keys with the validation rules.
struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// `validation` without the issuer and audience checks.
    lax: Validation,
    config: JwtConfig,
}

/// Issues and checks access and refresh tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenService {
    db: Db,
    keys: Arc<JwtKeys>,
    users: UserService,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("config", &self.keys.config)
            .finish()
    }
}

/// What a refresh attempt found, decided inside the transaction.
enum Refreshed {
    Rotated(UserRow, String),
    Reused,
}

fn map_jwt_error(e: &jsonwebtoken::errors::Error) -> AccountsError {
    AccountsError::InvalidToken(match e.kind() {
        ErrorKind::ExpiredSignature => "token has expired",
        ErrorKind::ImmatureSignature => "token is not valid yet",
        ErrorKind::InvalidSignature => "signature does not match",
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => "signing algorithm is not allowed",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
        _ => "malformed token",
    })
}

/// `clock`'s time at the stored precision (microseconds).
fn now(clock: &dyn Clock) -> DateTime<Utc> {
    clock.now().trunc_subsecs(6)
}

/// [`now`] as stored.
fn now_naive(clock: &dyn Clock) -> NaiveDateTime {
    now(clock).naive_utc()
}

/// Whole seconds of a duration as chrono's.
fn chrono_secs(d: std::time::Duration) -> ChronoDuration {
    ChronoDuration::seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 1000))
}

/// Inserts a new refresh token for `user_id` in `family`; returns the token.
fn insert_refresh(
    conn: &mut DbConnection,
    user_id: &str,
    family: &str,
    ttl: ChronoDuration,
    now: NaiveDateTime,
) -> Result<(String, String), AccountsError> {
    let token = random_token()?;
    let row = RefreshRow {
        id: Uuid::now_v7().to_string(),
        user_id: user_id.to_owned(),
        token_hash: sha256_hex(&token),
        family_id: family.to_owned(),
        expires_at: now + ttl,
        revoked_at: None,
        replaced_by: None,
        created_at: now,
    };
    diesel::insert_into(rt::refresh_tokens)
        .values(&row)
        .execute(conn)?;
    Ok((row.id, token))
}

/// Revokes every live token of a family; returns how many.
fn revoke_family(
    conn: &mut DbConnection,
    family: &str,
    now: NaiveDateTime,
) -> Result<usize, AccountsError> {
    Ok(diesel::update(
        rt::refresh_tokens
            .filter(rt::family_id.eq(family))
            .filter(rt::revoked_at.is_null()),
    )
    .set(rt::revoked_at.eq(now))
    .execute(conn)?)
}

impl TokenService {
    /// A token service; fails when the configuration is unusable (e.g. a
    /// secret shorter than [`crate::MIN_SECRET_BYTES`]).
    pub(crate) fn new(db: Db, jwt: JwtConfig, users: UserService) -> Result<Self, AccountsError> {
        jwt.validate()?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = jwt.leeway.as_secs();
        // `exp` and `nbf` are checked against the configured clock in
        // `check_times` (jsonwebtoken would read the system clock).
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[jwt.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        let mut lax = validation.clone();
        lax.iss = None;
        lax.validate_aud = false;
        let keys = JwtKeys {
            encoding: EncodingKey::from_secret(&jwt.secret),
            decoding: DecodingKey::from_secret(&jwt.secret),
            validation,
            lax,
            config: jwt,
        };
        Ok(Self {
            db,
            keys: Arc::new(keys),
            users,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &JwtConfig {
        &self.keys.config
    }

    /// The configured clock (shared with blocking database closures).
    fn clock(&self) -> Arc<dyn Clock> {
        self.keys.config.clock.clone()
    }

    /// `exp` and `nbf` against the clock, give or take the leeway, in
    /// jsonwebtoken's order (expiry first).
    fn check_times(&self, claims: &Claims) -> Result<(), AccountsError> {
        let now = self.keys.config.clock.now().timestamp();
        let leeway = i64::try_from(self.keys.config.leeway.as_secs()).unwrap_or(i64::MAX);
        if claims.exp < now.saturating_sub(leeway) {
            return Err(AccountsError::InvalidToken("token has expired"));
        }
        if claims.nbf > now.saturating_add(leeway) {
            return Err(AccountsError::InvalidToken("token is not valid yet"));
        }
        Ok(())
    }

    /// Signature, required claims, issuer and audience checked by
    /// jsonwebtoken, `exp` and `nbf` by [`TokenService::check_times`], in
    /// jsonwebtoken's own order (the times before issuer and audience).
    fn decode(&self, token: &str) -> Result<TokenData<Claims>, AccountsError> {
        let keys = &self.keys;
        match jsonwebtoken::decode::<Claims>(token, &keys.decoding, &keys.validation) {
            Ok(data) => {
                self.check_times(&data.claims)?;
                Ok(data)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience
                ) =>
            {
                // The signature held: an expired token of another issuer
                // still says "expired".
                if let Ok(data) = jsonwebtoken::decode::<Claims>(token, &keys.decoding, &keys.lax) {
                    self.check_times(&data.claims)?;
                }
                Err(map_jwt_error(&e))
            }
            Err(e) => Err(map_jwt_error(&e)),
        }
    }

    fn sign(&self, user: &User, version: i64) -> Result<String, AccountsError> {
        let now = now(&*self.keys.config.clock).timestamp();
        let ttl = chrono_secs(self.keys.config.access_ttl).num_seconds();
        let claims = Claims {
            sub: user.id.to_string(),
            role: user.role,
            ver: version,
            iat: now,
            nbf: now,
            exp: now.saturating_add(ttl),
            iss: self.keys.config.issuer.clone(),
            jti: Uuid::new_v4().to_string(),
            typ: ACCESS_TYP.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.keys.encoding)
            .map_err(|e| AccountsError::Crypto(format!("signing a token: {e}")))
    }

    /// A signed access token for `user` (looks up the user's current token
    /// version, so a token issued after "log out everywhere" works).
    pub async fn issue_access(&self, user: &User) -> Result<String, AccountsError> {
        let id = user.id;
        let row = self.db.run(move |conn| load_user(conn, id)).await?;
        self.sign(user, row.token_version)
    }

    /// The claims of a valid access token: HS256 only, good signature,
    /// issuer ours, `typ` access, within `nbf..exp` give or take the
    /// configured leeway. Does not look at the database: use
    /// [`TokenService::authenticate_access`] to also check the account.
    pub fn verify_access(&self, token: &str) -> Result<Claims, AccountsError> {
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(AccountsError::InvalidToken("malformed token"));
        }
        let data = self.decode(token)?;
        if data.header.alg != Algorithm::HS256 {
            return Err(AccountsError::InvalidToken(
                "signing algorithm is not allowed",
            ));
        }
        let claims = data.claims;
        if claims.typ != ACCESS_TYP {
            return Err(AccountsError::InvalidToken("not an access token"));
        }
        claims.user_id()?;
        Ok(claims)
    }

    /// The user an access token stands for: [`TokenService::verify_access`],
    /// then the account must still exist and the token must not predate a
    /// "log out everywhere" or a password change.
    pub async fn authenticate_access(&self, token: &str) -> Result<User, AccountsError> {
        let claims = self.verify_access(token)?;
        let id = claims.user_id()?;
        let row = self
            .db
            .run(move |conn| {
                u::users
                    .find(id.to_string())
                    .select(UserRow::as_select())
                    .first(conn)
                    .optional()
                    .map_err(AccountsError::from)
            })
            .await?
            .ok_or(AccountsError::InvalidToken("the account no longer exists"))?;
        if row.token_version != claims.ver {
            return Err(AccountsError::InvalidToken("token has been revoked"));
        }
        row.into_model()
    }

    fn pair(&self, access: String, refresh: String) -> TokenPair {
        TokenPair {
            access_token: access,
            refresh_token: refresh,
            token_type: "Bearer".to_owned(),
            expires_in: self.keys.config.access_ttl.as_secs(),
            refresh_expires_in: self.keys.config.refresh_ttl.as_secs(),
        }
    }

    /// Checks email and password and starts a new login: an access token
    /// and the first refresh token of a new family.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
    ) -> Result<(User, TokenPair), AccountsError> {
        let (user, version) = self.users.check_password(email, password).await?;
        let tokens = self.start_family(&user, version).await?;
        Ok((user, tokens))
    }

    /// Starts a new login for an already authenticated user (e.g. right
    /// after registration).
    pub async fn issue_tokens(&self, user: &User) -> Result<TokenPair, AccountsError> {
        let id = user.id;
        let row = self.db.run(move |conn| load_user(conn, id)).await?;
        self.start_family(user, row.token_version).await
    }

    async fn start_family(&self, user: &User, version: i64) -> Result<TokenPair, AccountsError> {
        let user_id = user.id.to_string();
        let ttl = chrono_secs(self.keys.config.refresh_ttl);
        let clock = self.clock();
        let (_, refresh) = self
            .db
            .run(move |conn| {
                let family = Uuid::now_v7().to_string();
                insert_refresh(conn, &user_id, &family, ttl, now_naive(&*clock))
            })
            .await?;
        let access = self.sign(user, version)?;
        Ok(self.pair(access, refresh))
    }

    /// Trades a refresh token for a new pair. The presented token is
    /// revoked and replaced by a new one in the same family. A token that
    /// was already used or revoked revokes the whole family and fails with
    /// [`AccountsError::TokenReused`]; unknown or expired tokens fail with
    /// [`AccountsError::InvalidToken`].
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AccountsError> {
        let token = refresh_token.trim().to_owned();
        if token.is_empty() || token.len() > 256 {
            return Err(AccountsError::InvalidToken("malformed refresh token"));
        }
        let ttl = chrono_secs(self.keys.config.refresh_ttl);
        let clock = self.clock();
        let outcome = self
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let now = now_naive(&*clock);
                    let Some(old) = rt::refresh_tokens
                        .filter(rt::token_hash.eq(sha256_hex(&token)))
                        .select(RefreshRow::as_select())
                        .first(conn)
                        .optional()?
                    else {
                        return Err(AccountsError::InvalidToken("unknown refresh token"));
                    };
                    if old.revoked_at.is_some() {
                        let n = revoke_family(conn, &old.family_id, now)?;
                        tracing::warn!(
                            user_id = %old.user_id,
                            family = %old.family_id,
                            revoked = n,
                            "refresh token reused: token family revoked"
                        );
                        return Ok(Refreshed::Reused);
                    }
                    if old.expires_at <= now {
                        return Err(AccountsError::InvalidToken("refresh token has expired"));
                    }
                    let user = u::users
                        .find(&old.user_id)
                        .select(UserRow::as_select())
                        .first(conn)
                        .optional()?
                        .ok_or(AccountsError::InvalidToken("the account no longer exists"))?;
                    let (new_id, new_token) =
                        insert_refresh(conn, &old.user_id, &old.family_id, ttl, now)?;
                    // Conditional on still being live: of two concurrent
                    // refreshes with one token, only one rotates.
                    let n = diesel::update(
                        rt::refresh_tokens
                            .filter(rt::id.eq(&old.id))
                            .filter(rt::revoked_at.is_null()),
                    )
                    .set((rt::revoked_at.eq(now), rt::replaced_by.eq(&new_id)))
                    .execute(conn)?;
                    if n == 0 {
                        diesel::delete(rt::refresh_tokens.filter(rt::id.eq(&new_id)))
                            .execute(conn)?;
                        revoke_family(conn, &old.family_id, now)?;
                        return Ok(Refreshed::Reused);
                    }
                    Ok(Refreshed::Rotated(user, new_token))
                })
            })
            .await?;
        match outcome {
            Refreshed::Reused => Err(AccountsError::TokenReused),
            Refreshed::Rotated(row, refresh) => {
                let version = row.token_version;
                let user = row.into_model()?;
                let access = self.sign(&user, version)?;
                Ok(self.pair(access, refresh))
            }
        }
    }

    /// Ends the login a refresh token belongs to (its whole family is
    /// revoked). Returns whether the token was known.
    pub async fn logout(&self, refresh_token: &str) -> Result<bool, AccountsError> {
        let hash = sha256_hex(refresh_token.trim());
        let clock = self.clock();
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let family: Option<String> = rt::refresh_tokens
                        .filter(rt::token_hash.eq(hash))
                        .select(rt::family_id)
                        .first(conn)
                        .optional()?;
                    match family {
                        Some(f) => {
                            revoke_family(conn, &f, now_naive(&*clock))?;
                            Ok(true)
                        }
                        None => Ok(false),
                    }
                })
            })
            .await
    }

    /// Logs the user out everywhere: every refresh token and API key is
    /// revoked and every access token issued so far stops working. Returns
    /// how many refresh tokens were revoked.
    pub async fn logout_all(&self, user_id: Uuid) -> Result<u64, AccountsError> {
        let clock = self.clock();
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let id = user_id.to_string();
                    let n = diesel::update(u::users.find(&id))
                        .set(u::token_version.eq(u::token_version + 1))
                        .execute(conn)?;
                    if n == 0 {
                        return Err(AccountsError::UserNotFound(id));
                    }
                    let now = now_naive(&*clock);
                    let revoked = diesel::update(
                        rt::refresh_tokens
                            .filter(rt::user_id.eq(&id))
                            .filter(rt::revoked_at.is_null()),
                    )
                    .set(rt::revoked_at.eq(now))
                    .execute(conn)?;
                    crate::api_keys::revoke_all(conn, &id, now)?;
                    Ok(revoked as u64)
                })
            })
            .await
    }

    /// The current token version of each of these users that still exists
    /// (an access token carrying another version is revoked; a user
    /// missing from the answer was deleted). At most 1000 ids per call.
    pub async fn token_versions(
        &self,
        user_ids: Vec<String>,
    ) -> Result<std::collections::HashMap<String, i64>, AccountsError> {
        self.db
            .run(move |conn| {
                let mut out = std::collections::HashMap::new();
                for chunk in user_ids.chunks(1000) {
                    let rows: Vec<(String, i64)> = u::users
                        .filter(u::id.eq_any(chunk))
                        .select((u::id, u::token_version))
                        .load(conn)?;
                    out.extend(rows);
                }
                Ok(out)
            })
            .await
    }

    /// Deletes refresh tokens that have expired (revoked ones are kept
    /// until then, to recognise their reuse). Returns how many.
    pub async fn purge_expired(&self) -> Result<u64, AccountsError> {
        let clock = self.clock();
        self.db
            .run(move |conn| {
                let n = diesel::delete(
                    rt::refresh_tokens.filter(rt::expires_at.lt(now_naive(&*clock))),
                )
                .execute(conn)?;
                Ok(n as u64)
            })
            .await
    }
}
