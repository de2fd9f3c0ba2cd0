//! Who is calling: a JWT access token or an API key (`Authorization:
//! Bearer ...`, `X-API-Key`, or `?token=` on the WebSocket route for
//! browsers), checked against the accounts database, then rate limited
//! per user.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, web};
use confab_accounts::models::{User, UserRole};
use confab_accounts::{API_KEY_PREFIX, AccountsError, api_key_hash};
use confab_web::ApiError;

use serde::{Deserialize, Serialize};

use crate::proxy::Identity;
use crate::state::GatewayState;

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A JWT access token.
    AccessToken,
    /// A per-user API key.
    ApiKey,
}

/// What to check again later to know the credential is still good (open
/// WebSockets are re-checked: see [`crate::ws_proxy::OpenSockets`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// An access token carrying this token version.
    TokenVersion(i64),
    /// An API key with this hash.
    ApiKey(String),
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user (fresh from the database).
    pub user: User,
    /// How they authenticated.
    pub via: Credential,
    /// How to tell later whether the credential was revoked.
    pub recheck: Recheck,
}

impl AuthUser {
    /// The identity forwarded to chat-service.
    pub fn identity(&self) -> Identity {
        Identity {
            user_id: self.user.id.to_string(),
            role: role_name(self.user.role).to_owned(),
            settings: serde_json::to_string(&self.user.settings).ok(),
        }
    }

    /// The user id as text.
    pub fn id(&self) -> String {
        self.user.id.to_string()
    }
}

/// `user` or `admin`.
pub fn role_name(role: UserRole) -> &'static str {
    role.as_str()
}

/// Maps an accounts error to an HTTP error.
pub fn api_error(e: AccountsError) -> ApiError {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
        return ApiError::internal(e);
    }
    ApiError::new(status, e.code(), e.to_string())
}

/// The credential a request carries, if any.
fn credential(req: &HttpRequest) -> Option<String> {
    if let Some(v) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v);
        return Some(token.trim().to_owned());
    }
    if let Some(v) = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_owned());
    }
    if req.path() == "/ws/chat" {
        return web::Query::<std::collections::HashMap<String, String>>::from_query(
            req.query_string(),
        )
        .ok()
        .and_then(|q| q.get("token").cloned());
    }
    None
}

/// Authenticates a request (without rate limiting).
pub async fn authenticate(state: &GatewayState, req: &HttpRequest) -> Result<AuthUser, ApiError> {
    let Some(token) = credential(req).filter(|t| !t.is_empty()) else {
        return Err(ApiError::unauthorized(
            "sign in: send `Authorization: Bearer <access token or API key>`",
        ));
    };
    let result = if token.starts_with(API_KEY_PREFIX) {
        api_key_user(state, &token)
            .await
            .map(|(user, hash)| (user, Credential::ApiKey, Recheck::ApiKey(hash)))
    } else {
        access_user(state, &token)
            .await
            .map(|(user, ver)| (user, Credential::AccessToken, Recheck::TokenVersion(ver)))
    };
    match result {
        Ok((user, via, recheck)) => Ok(AuthUser { user, via, recheck }),
        // A token for a user that no longer exists is a bad token.
        Err(e) if e.is_unauthorized() || e.code() == "not_found" => {
            Err(ApiError::unauthorized(format!("not authenticated: {e}")))
        }
        Err(e) => Err(api_error(e)),
    }
}

/// The user of an API key, and the key's hash. Cached briefly
/// (`CACHE_API_KEY_TTL_SECS`) under the owner's cache version, so revoking
/// a key, logging out everywhere, changing the password or deleting the
/// account through the gateway drops it in every replica sharing the
/// cache at once; a key revoked behind the gateway's back works until the
/// entry expires. A cache hit does not record the key's last use (the
/// database's `last_used_at` is written at most once a minute anyway).
async fn api_key_user(state: &GatewayState, token: &str) -> Result<(User, String), AccountsError> {
    let hash = api_key_hash(token).ok_or(AccountsError::InvalidApiKey)?;
    let (owner, lookup) = state.cache.get_api_key::<User>(&hash).await;
    if let Some(user) = lookup.value {
        return Ok((user, hash));
    }
    let user = state
        .accounts
        .api_keys
        .authenticate_api_key_hash(hash.clone())
        .await?;
    let id = user.id.to_string();
    match owner {
        // The stamp was read before the database: a revocation racing
        // this fill lands under a newer version and hides it.
        Some(owner) if owner == id => {
            state
                .cache
                .put_api_key(&owner, &hash, lookup.stamp, &user)
                .await;
        }
        _ => state.cache.put_api_key_owner(&hash, &id).await,
    }
    Ok((user, hash))
}

/// Tells every open WebSocket of `user` (in every replica) that its
/// credentials may have been revoked: after logout everywhere, a password
/// change, a key revocation or the account's deletion.
pub async fn revoked(state: &GatewayState, user: &str) {
    state.sockets.revoke_user(user).await;
}

/// The cached form of an access-token check: the user and the token
/// version that was current when they were loaded.
#[derive(Debug, Serialize, Deserialize)]
struct CachedUser {
    user: User,
    ver: i64,
}

/// The user of a valid access token: from the cache when the token's
/// version matches the cached one, else from the database (which then
/// fills the cache). The gateway's own writes drop the cached entry in
/// every replica sharing the cache: profile and progress changes, logout
/// everywhere, password change and account deletion (see [`crate::account`]).
/// A change made behind the gateway's back (a role or account changed
/// directly in the database or by another process, or a write through
/// another replica when the caches are in-process rather than in Redis)
/// is seen only when the entry expires (`CACHE_USER_TTL_SECS`; the user
/// cache is off by default without Redis).
async fn access_user(state: &GatewayState, token: &str) -> Result<(User, i64), AccountsError> {
    let tokens = &state.accounts.tokens;
    let claims = tokens.verify_access(token)?;
    let id = claims.user_id()?.to_string();
    let lookup = state.cache.get_user::<CachedUser>(&id).await;
    if let Some(cached) = lookup.value
        && cached.ver == claims.ver
    {
        return Ok((cached.user, claims.ver));
    }
    let user = tokens.authenticate_access(token).await?;
    let cached = CachedUser {
        user,
        ver: claims.ver,
    };
    state.cache.put_user(&id, lookup.stamp, &cached).await;
    Ok((cached.user, claims.ver))
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req
                .app_data::<web::Data<GatewayState>>()
                .cloned()
                .ok_or_else(|| ApiError::internal("gateway state missing"))?;
            let user = authenticate(&state, &req).await?;
            if let Err(wait) = state.user_limiter.check(&user.id()).await {
                // An ApiError carrying the wait: its response has
                // `Retry-After`, and the OpenAI routes copy it over.
                return Err(ApiError::too_many_requests(format!(
                    "too many requests; retry in {:.1} s",
                    wait.as_secs_f64()
                ))
                .with_retry_after(wait));
            }
            Ok(user)
        })
    }
}
