//! `/api/memory` and `/api/experience` (seed 003): the caller's long-term
//! memory items and the feedback aggregate.

use actix_web::{HttpResponse, get, post, web};
use confab_models::{ExperienceSummary, MemoryItem};
use confab_web::{ApiError, Caller, ErrorBody};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::openapi::MEMORY;
use crate::state::AppState;

type Data = web::Data<AppState>;

/// Items listed when the caller names no limit (seed 003).
const DEFAULT_MEMORY_LIMIT: u32 = 10;

/// Feedback items in an experience summary when the caller names no number.
const DEFAULT_RECENT_FEEDBACK: u32 = 10;

/// Query of `GET /api/memory`.
#[derive(Debug, Deserialize)]
pub struct MemoryQuery {
    /// Most items (default 10, at most 200).
    pub limit: Option<u32>,
}

/// The caller's memory items.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemoryList {
    /// Newest first.
    pub items: Vec<MemoryItem>,
    /// How many the caller has in all.
    pub total: i64,
}

/// Body of `POST /api/memory`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RememberRequest {
    /// What to remember (at most 4000 characters).
    pub content: String,
    /// Optional JSON object.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// Answer of `POST /api/memory/clear`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Cleared {
    /// Items removed.
    pub cleared: u64,
}

/// Whose feedback `GET /api/experience` aggregates.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The caller's (default).
    #[default]
    User,
    /// Everyone's (administrators only).
    All,
}

/// Query of `GET /api/experience`.
#[derive(Debug, Deserialize)]
pub struct ExperienceQuery {
    /// Newest items to include (default 10, at most 200).
    pub recent: Option<u32>,
    /// `user` (default) or `all` (administrators).
    #[serde(default)]
    pub scope: Scope,
}

/// The caller's most recent memory items.
#[utoipa::path(
    tag = MEMORY,
    params(("limit" = Option<u32>, Query, description = "Most items (default 10, at most 200)")),
    responses(
        (status = 200, description = "OK", body = MemoryList),
        (status = 400, description = "Bad limit", body = ErrorBody),
    )
)]
#[get("/api/memory")]
pub async fn list_memory(
    state: Data,
    caller: Caller,
    query: web::Query<MemoryQuery>,
) -> Result<web::Json<MemoryList>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_MEMORY_LIMIT);
    let (items, total) = futures_util::join!(
        state.memory.list(&caller.user_id, Some(limit)),
        state.memory.count(&caller.user_id),
    );
    Ok(web::Json(MemoryList {
        items: items?,
        total: total?,
    }))
}

/// Stores a memory item for the caller.
#[utoipa::path(
    tag = MEMORY,
    request_body = RememberRequest,
    responses(
        (status = 201, description = "Created", body = MemoryItem),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 422, description = "Empty or too long content, metadata not an object", body = ErrorBody),
    )
)]
#[post("/api/memory")]
pub async fn remember(
    state: Data,
    caller: Caller,
    body: web::Json<RememberRequest>,
) -> Result<HttpResponse, ApiError> {
    let RememberRequest { content, metadata } = body.into_inner();
    let item = state
        .memory
        .remember(&caller.user_id, &content, metadata)
        .await?;
    Ok(HttpResponse::Created().json(item))
}

/// Removes all of the caller's memory items.
#[utoipa::path(tag = MEMORY, responses((status = 200, description = "OK", body = Cleared)))]
#[post("/api/memory/clear")]
pub async fn clear_memory(state: Data, caller: Caller) -> Result<web::Json<Cleared>, ApiError> {
    let cleared = state.memory.clear(&caller.user_id).await?;
    Ok(web::Json(Cleared { cleared }))
}

/// Feedback aggregate: total, average score, distribution, recent items.
#[utoipa::path(
    tag = MEMORY,
    params(
        ("recent" = Option<u32>, Query, description = "Newest items to include (default 10)"),
        ("scope" = inline(Option<Scope>), Query, description = "user (default) or all (administrators)"),
    ),
    responses(
        (status = 200, description = "OK", body = ExperienceSummary),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 403, description = "scope=all by a non-administrator", body = ErrorBody),
    )
)]
#[get("/api/experience")]
pub async fn experience(
    state: Data,
    caller: Caller,
    query: web::Query<ExperienceQuery>,
) -> Result<web::Json<ExperienceSummary>, ApiError> {
    let user = match query.scope {
        Scope::User => Some(caller.user_id.as_str()),
        Scope::All => {
            caller.require_admin()?;
            None
        }
    };
    let recent = query.recent.unwrap_or(DEFAULT_RECENT_FEEDBACK);
    Ok(web::Json(state.feedback.experience(user, recent).await?))
}
