//! Auth, the user's profile and progress, API keys.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use confab_accounts::models::ProfileUpdate;
use confab_web::ApiError;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::auth::{AuthUser, api_error};
use crate::ratelimit::RateLimited;
use crate::state::GatewayState;

/// Body of `POST /api/auth/register`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    /// Email (case-insensitive, unique).
    pub email: String,
    /// Password: at least 10 characters mixing letters with digits or symbols.
    pub password: String,
    /// Name shown in the app (default: the part of the email before `@`).
    #[serde(default)]
    pub display_name: Option<String>,
}

/// Body of `POST /api/auth/login`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// Body of `POST /api/auth/refresh` and `/logout`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    /// The refresh token from login or the last refresh.
    pub refresh_token: String,
}

/// Body of `POST /api/users/me/password`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// The password in use now.
    pub current_password: String,
    /// The new password (same rules as at registration).
    pub new_password: String,
}

/// Body of `DELETE /api/users/me`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountBody {
    /// The account's password (signing in again to confirm).
    pub password: String,
}

/// Body of `POST /api/users/me/api-keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// A name to recognise the key by.
    pub name: String,
    /// The account's current password (a key outlives access tokens, so
    /// minting one needs the password, not only a token).
    pub password: String,
}

/// 429 (with `Retry-After`) unless the client IP has attempts left (the
/// TCP peer, or the forwarded client behind a trusted proxy).
async fn limit_ip(state: &GatewayState, req: &HttpRequest) -> Result<(), RateLimited> {
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    let ip = state
        .trusted_proxies
        .client_bucket(req.peer_addr().map(|a| a.ip()), forwarded);
    state.auth_limiter.check(&ip).await.map_err(|wait| {
        RateLimited::new(
            wait,
            format!(
                "too many attempts from this address; retry in {:.0} s",
                wait.as_secs_f64().ceil()
            ),
        )
    })
}

/// `POST /api/auth/register`: creates an account and signs in.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = RegisterBody,
    responses((status = 201, description = "Account created: user and tokens", body = Object),
        (status = 409, description = "Email taken", body = confab_web::ErrorBody),
        (status = 422, description = "Invalid email or weak password", body = confab_web::ErrorBody),
        (status = 429, description = "Too many attempts", body = confab_web::ErrorBody)))]
#[post("/api/auth/register")]
pub async fn register(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    body: web::Json<RegisterBody>,
) -> Result<HttpResponse, actix_web::Error> {
    limit_ip(&state, &req).await?;
    let body = body.into_inner();
    let user = state
        .accounts
        .users
        .register(&body.email, &body.password, body.display_name.as_deref())
        .await
        .map_err(api_error)?;
    let tokens = state
        .accounts
        .tokens
        .issue_tokens(&user)
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Created().json(json!({ "user": user, "tokens": tokens })))
}

/// `POST /api/auth/login`.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, description = "User and tokens", body = Object),
        (status = 401, description = "Wrong email or password", body = confab_web::ErrorBody),
        (status = 429, description = "Too many attempts", body = confab_web::ErrorBody)))]
#[post("/api/auth/login")]
pub async fn login(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, actix_web::Error> {
    limit_ip(&state, &req).await?;
    let attempt = state.login_limiter.begin_login(&body.email).await?;
    let (user, tokens) = state
        .accounts
        .tokens
        .login(&body.email, &body.password)
        .await
        .map_err(api_error)?;
    attempt.succeeded().await;
    Ok(HttpResponse::Ok().json(json!({ "user": user, "tokens": tokens })))
}

/// `POST /api/auth/refresh`: a new token pair; the old refresh token is spent.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses((status = 200, description = "New tokens", body = Object),
        (status = 401, description = "Invalid, expired, revoked or reused refresh token", body = confab_web::ErrorBody)))]
#[post("/api/auth/refresh")]
pub async fn refresh(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse, actix_web::Error> {
    limit_ip(&state, &req).await?;
    let tokens = state
        .accounts
        .tokens
        .refresh(&body.refresh_token)
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Ok().json(tokens))
}

/// `POST /api/auth/logout`: revokes the refresh token.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshBody,
    responses((status = 204, description = "Signed out")))]
#[post("/api/auth/logout")]
pub async fn logout(
    state: web::Data<GatewayState>,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    state
        .accounts
        .tokens
        .logout(&body.refresh_token)
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/auth/logout-all`: signs the user out everywhere: every
/// refresh token is revoked and every access token issued so far stops
/// working (the token version is bumped), in every gateway replica at once
/// (the cached user is dropped).
#[utoipa::path(post, path = "/api/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Signed out everywhere"),
        (status = 401, description = "Not signed in", body = confab_web::ErrorBody)))]
#[post("/api/auth/logout-all")]
pub async fn logout_all(
    state: web::Data<GatewayState>,
    auth: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let result = state.accounts.tokens.logout_all(auth.user.id).await;
    state.cache.invalidate_user(&auth.id()).await;
    crate::auth::revoked(&state, &auth.id()).await;
    result.map_err(api_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/users/me/password`: changes the password after checking the
/// current one. Every other session is signed out (old access and refresh
/// tokens stop working); the answer is a fresh token pair.
#[utoipa::path(post, path = "/api/users/me/password", tag = "users", security(("bearer" = [])),
    request_body = PasswordBody,
    responses((status = 200, description = "`{\"tokens\": ...}`: a fresh token pair", body = Object),
        (status = 401, description = "Not signed in, or the current password is wrong", body = confab_web::ErrorBody),
        (status = 422, description = "Weak new password", body = confab_web::ErrorBody),
        (status = 429, description = "Too many attempts", body = confab_web::ErrorBody)))]
#[post("/api/users/me/password")]
pub async fn change_password(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    auth: AuthUser,
    body: web::Json<PasswordBody>,
) -> Result<HttpResponse, actix_web::Error> {
    limit_ip(&state, &req).await?;
    let result = state
        .accounts
        .users
        .change_password(auth.user.id, &body.current_password, &body.new_password)
        .await;
    if result.is_ok() {
        state.cache.invalidate_user(&auth.id()).await;
        crate::auth::revoked(&state, &auth.id()).await;
    }
    result.map_err(api_error)?;
    let tokens = state
        .accounts
        .tokens
        .issue_tokens(&auth.user)
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Ok().json(json!({ "tokens": tokens })))
}

/// `DELETE /api/users/me`: deletes the account after checking its
/// password, with everything it owns (sessions, messages, memory items,
/// feedback, API keys, progress) in one transaction; its tokens and API
/// keys stop working at once and its open WebSockets close.
#[utoipa::path(delete, path = "/api/users/me", tag = "users", security(("bearer" = [])),
    request_body = DeleteAccountBody,
    responses((status = 204, description = "Account deleted"),
        (status = 401, description = "Not signed in, or the password is wrong", body = confab_web::ErrorBody),
        (status = 429, description = "Too many attempts", body = confab_web::ErrorBody)))]
#[delete("/api/users/me")]
pub async fn delete_me(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    auth: AuthUser,
    body: web::Json<DeleteAccountBody>,
) -> Result<HttpResponse, actix_web::Error> {
    limit_ip(&state, &req).await?;
    let checked = state
        .accounts
        .users
        .authenticate(&auth.user.email, &body.password)
        .await
        .map_err(api_error)?;
    if checked.id != auth.user.id {
        return Err(ApiError::unauthorized("wrong password").into());
    }
    let result = state.accounts.users.delete_user(auth.user.id).await;
    state.cache.invalidate_user(&auth.id()).await;
    crate::auth::revoked(&state, &auth.id()).await;
    let erased = result.map_err(api_error)?;
    tracing::info!(user = %auth.id(), sessions = erased.sessions, memory_items = erased.memory_items,
        feedback = erased.feedback, "account deleted with its data");
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/users/me`.
#[utoipa::path(get, path = "/api/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "The signed-in user", body = Object),
        (status = 401, description = "Not signed in", body = confab_web::ErrorBody)))]
#[get("/api/users/me")]
pub async fn me(auth: AuthUser) -> HttpResponse {
    HttpResponse::Ok().json(auth.user)
}

/// `PATCH /api/users/me`: display name and settings (`ai_style`,
/// `preferred_model`; a JSON merge patch).
#[utoipa::path(patch, path = "/api/users/me", tag = "users", security(("bearer" = [])),
    request_body(content = Object, description = "{display_name?, settings?: {ai_style?, preferred_model?}}"),
    responses((status = 200, description = "The updated user", body = Object),
        (status = 422, description = "Invalid settings", body = confab_web::ErrorBody)))]
#[patch("/api/users/me")]
pub async fn update_me(
    state: web::Data<GatewayState>,
    auth: AuthUser,
    body: web::Json<ProfileUpdate>,
) -> Result<HttpResponse, ApiError> {
    (state.proxy.allowed_models).check_settings_patch(body.settings.as_ref())?;
    let user = state
        .accounts
        .users
        .update_profile(auth.user.id, body.into_inner())
        .await
        .map_err(api_error)?;
    state.cache.invalidate_user(&auth.id()).await;
    Ok(HttpResponse::Ok().json(user))
}

/// `GET /api/users/me/progress`.
#[utoipa::path(get, path = "/api/users/me/progress", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "Progress over every track", body = Object)))]
#[get("/api/users/me/progress")]
pub async fn my_progress(
    state: web::Data<GatewayState>,
    auth: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let progress = state
        .accounts
        .catalog
        .progress(&auth.id())
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Ok().json(progress))
}

/// `GET /api/users/me/api-keys`.
#[utoipa::path(get, path = "/api/users/me/api-keys", tag = "users", security(("bearer" = [])),
    responses((status = 200, description = "The user's API keys (never the secrets)", body = Object)))]
#[get("/api/users/me/api-keys")]
pub async fn list_keys(
    state: web::Data<GatewayState>,
    auth: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let keys = state
        .accounts
        .api_keys
        .list_api_keys(auth.user.id)
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Ok().json(json!({ "items": keys })))
}

/// `POST /api/users/me/api-keys`: the key is in the answer, once. Needs
/// the current password; "log out everywhere" and a password change
/// revoke every key.
#[utoipa::path(post, path = "/api/users/me/api-keys", tag = "users", security(("bearer" = [])),
    request_body = NewKeyBody,
    responses((status = 201, description = "The key (shown once) and its info", body = Object),
        (status = 401, description = "Not signed in, or the password is wrong", body = confab_web::ErrorBody),
        (status = 409, description = "Too many keys", body = confab_web::ErrorBody),
        (status = 429, description = "Too many attempts", body = confab_web::ErrorBody)))]
#[post("/api/users/me/api-keys")]
pub async fn create_key(
    state: web::Data<GatewayState>,
    req: HttpRequest,
    auth: AuthUser,
    body: web::Json<NewKeyBody>,
) -> Result<HttpResponse, actix_web::Error> {
    limit_ip(&state, &req).await?;
    let created = state
        .accounts
        .api_keys
        .create_api_key(auth.user.id, &body.name, &body.password)
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Created().json(created))
}

/// `DELETE /api/users/me/api-keys/{id}`.
#[utoipa::path(delete, path = "/api/users/me/api-keys/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Key id")),
    responses((status = 204, description = "Revoked"),
        (status = 404, description = "No such key of yours", body = confab_web::ErrorBody)))]
#[delete("/api/users/me/api-keys/{id}")]
pub async fn revoke_key(
    state: web::Data<GatewayState>,
    auth: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::bad_request("`id` must be a UUID"))?;
    let result = state
        .accounts
        .api_keys
        .revoke_api_key(auth.user.id, id)
        .await;
    // Cached key lookups of this user are dropped in every replica.
    state.cache.invalidate_user(&auth.id()).await;
    crate::auth::revoked(&state, &auth.id()).await;
    result.map_err(api_error)?;
    Ok(HttpResponse::NoContent().finish())
}
