//! `/api/admin/...`: administrative operations (role `admin` only).

use actix_web::{post, web};
use confab_models::CleanupReport;
use confab_web::extract::parse_json;
use confab_web::{ApiError, Caller, ErrorBody};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::openapi::ADMIN;
use crate::state::AppState;

/// Body of `POST /api/admin/cleanup`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CleanupRequest {
    /// Idle / deleted for longer than this many days (at least 1).
    pub days_old: u32,
    /// Report only, change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Archives sessions idle for more than `days_old` days and purges sessions
/// deleted longer ago than that (every user's). Role `admin` only.
#[utoipa::path(
    tag = ADMIN,
    request_body = CleanupRequest,
    responses(
        (status = 200, description = "OK", body = CleanupReport),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 422, description = "Missing or invalid field", body = ErrorBody),
    )
)]
#[post("/api/admin/cleanup")]
pub async fn cleanup(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Bytes,
) -> Result<web::Json<CleanupReport>, ApiError> {
    // The role is checked before the body is looked at.
    caller.require_admin()?;
    let request: CleanupRequest = parse_json(&body)?;
    let report = state
        .sessions
        .cleanup_old(request.days_old, request.dry_run)
        .await?;
    tracing::info!(
        admin = %caller.user_id,
        dry_run = report.dry_run,
        archived = report.archived,
        purged = report.purged,
        "cleanup"
    );
    Ok(web::Json(report))
}

/// (Re)indexes a course's lessons into its RAG collection `course:<id>`
/// (idempotent; lessons that left the track are removed). The gateway calls
/// it when the catalogue changes. Role `admin` only.
#[utoipa::path(
    tag = ADMIN,
    params(("id" = String, Path, description = "Track (course) id")),
    responses(
        (status = 200, description = "What changed", body = crate::catalog::CourseIndexReport),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 503, description = "Indexing is not configured or the store failed", body = ErrorBody),
    )
)]
#[post("/api/admin/courses/{id}/index")]
pub async fn index_course(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<crate::catalog::CourseIndexReport>, ApiError> {
    caller.require_admin()?;
    let Some((catalog, rag)) = &state.courses else {
        return Err(ApiError::unavailable(
            "course indexing is not configured on this instance",
        ));
    };
    let id = id.into_inner();
    if id.is_empty() || id.len() > 100 || id.chars().any(char::is_control) {
        return Err(ApiError::bad_request("invalid course id"));
    }
    let report = crate::catalog::index_course(catalog, rag, &id)
        .await
        .map_err(|e| {
            tracing::warn!(course = %id, error = %e, "course indexing failed");
            ApiError::unavailable(format!("indexing failed: {e}"))
        })?;
    Ok(web::Json(report))
}
