//! The course catalogue: dashboard cards, tracks, lessons, completion.
//! Reads are cached per user for a short while ([`crate::cache`]): a
//! completion drops the user's views, a catalogue import drops everything.

use actix_web::{HttpResponse, get, post, web};
use confab_web::ApiError;
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::AuthUser;
use crate::state::GatewayState;

/// The catalogue view `what` of `user`: cached, or `load`ed and cached.
async fn cached<T, F>(
    state: &GatewayState,
    user: &str,
    what: &str,
    load: F,
) -> Result<Value, ApiError>
where
    T: Serialize,
    F: Future<Output = Result<T, confab_accounts::AccountsError>>,
{
    let lookup = state.cache.get_catalog::<Value>(user, what).await;
    if let Some(value) = lookup.value {
        return Ok(value);
    }
    let value = serde_json::to_value(load.await?).map_err(ApiError::internal)?;
    state
        .cache
        .put_catalog(user, what, lookup.stamp, &value)
        .await;
    Ok(value)
}

/// `GET /api/dashboard/tracks`: every track as a card with the user's progress.
#[utoipa::path(get, path = "/api/dashboard/tracks", tag = "courses", security(("bearer" = [])),
    responses((status = 200, description = "Track cards with progress percent", body = Object)))]
#[get("/api/dashboard/tracks")]
pub async fn dashboard_tracks(
    state: web::Data<GatewayState>,
    auth: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let user = auth.id();
    let cards = cached(
        &state,
        &user,
        "dashboard",
        state.accounts.catalog.tracks_for_user(&user),
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": cards })))
}

/// `GET /api/tracks/{id}`: a track with its modules and lessons.
#[utoipa::path(get, path = "/api/tracks/{id}", tag = "courses", security(("bearer" = [])),
    params(("id" = String, Path, description = "Track id")),
    responses((status = 200, description = "The track", body = Object),
        (status = 404, description = "No such track", body = confab_web::ErrorBody)))]
#[get("/api/tracks/{id}")]
pub async fn track(
    state: web::Data<GatewayState>,
    auth: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = auth.id();
    let track = cached(
        &state,
        &user,
        &format!("track:{id}"),
        state.accounts.catalog.track(&user, &id),
    )
    .await?;
    Ok(HttpResponse::Ok().json(track))
}

/// `GET /api/lessons/{id}`: a lesson's content.
#[utoipa::path(get, path = "/api/lessons/{id}", tag = "courses", security(("bearer" = [])),
    params(("id" = String, Path, description = "Lesson id")),
    responses((status = 200, description = "The lesson (Markdown)", body = Object),
        (status = 404, description = "No such lesson", body = confab_web::ErrorBody)))]
#[get("/api/lessons/{id}")]
pub async fn lesson(
    state: web::Data<GatewayState>,
    auth: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = auth.id();
    let lesson = cached(
        &state,
        &user,
        &format!("lesson:{id}"),
        state.accounts.catalog.lesson(&user, &id),
    )
    .await?;
    Ok(HttpResponse::Ok().json(lesson))
}

/// `POST /api/lessons/{id}/complete` (idempotent).
#[utoipa::path(post, path = "/api/lessons/{id}/complete", tag = "courses", security(("bearer" = [])),
    params(("id" = String, Path, description = "Lesson id")),
    responses((status = 200, description = "Completion and the track's new progress", body = Object),
        (status = 404, description = "No such lesson", body = confab_web::ErrorBody)))]
#[post("/api/lessons/{id}/complete")]
pub async fn complete_lesson(
    state: web::Data<GatewayState>,
    auth: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let done = state
        .accounts
        .catalog
        .complete_lesson(&auth.id(), &id)
        .await?;
    // Progress shows in the dashboard, track and lesson views.
    state.cache.invalidate_user(&auth.id()).await;
    Ok(HttpResponse::Ok().json(done))
}
