//! The course catalogue: dashboard cards, tracks, lessons, completion.

use actix_web::{HttpResponse, get, post, web};
use confab_web::ApiError;
use serde_json::json;

use crate::auth::{AuthUser, api_error};
use crate::state::GatewayState;

/// `GET /api/dashboard/tracks`: every track as a card with the user's progress.
#[utoipa::path(get, path = "/api/dashboard/tracks", tag = "courses", security(("bearer" = [])),
    responses((status = 200, description = "Track cards with progress percent", body = Object)))]
#[get("/api/dashboard/tracks")]
pub async fn dashboard_tracks(
    state: web::Data<GatewayState>,
    auth: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let cards = state
        .accounts
        .catalog
        .tracks_for_user(&auth.id())
        .await
        .map_err(api_error)?;
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
    let track = state
        .accounts
        .catalog
        .track(&auth.id(), &id)
        .await
        .map_err(api_error)?;
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
    let lesson = state
        .accounts
        .catalog
        .lesson(&auth.id(), &id)
        .await
        .map_err(api_error)?;
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
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::Ok().json(done))
}
