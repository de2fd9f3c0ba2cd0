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
use confab_accounts::{API_KEY_PREFIX, AccountsError};
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

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user (fresh from the database).
    pub user: User,
    /// How they authenticated.
    pub via: Credential,
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
    let (result, via) = if token.starts_with(API_KEY_PREFIX) {
        // API keys are not cached: a revoked key stops at once, and the
        // key's last use is recorded.
        (
            state.accounts.api_keys.authenticate_api_key(&token).await,
            Credential::ApiKey,
        )
    } else {
        (access_user(state, &token).await, Credential::AccessToken)
    };
    match result {
        Ok(user) => Ok(AuthUser { user, via }),
        // A token for a user that no longer exists is a bad token.
        Err(e) if e.is_unauthorized() || e.code() == "not_found" => {
            Err(ApiError::unauthorized(format!("not authenticated: {e}")))
        }
        Err(e) => Err(api_error(e)),
    }
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
async fn access_user(state: &GatewayState, token: &str) -> Result<User, AccountsError> {
    let tokens = &state.accounts.tokens;
    let claims = tokens.verify_access(token)?;
    let id = claims.user_id()?.to_string();
    let lookup = state.cache.get_user::<CachedUser>(&id).await;
    if let Some(cached) = lookup.value
        && cached.ver == claims.ver
    {
        return Ok(cached.user);
    }
    let user = tokens.authenticate_access(token).await?;
    let cached = CachedUser {
        user,
        ver: claims.ver,
    };
    state.cache.put_user(&id, lookup.stamp, &cached).await;
    Ok(cached.user)
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
