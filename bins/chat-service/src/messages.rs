//! `/api/messages/...`: editing, deleting, searching and rating messages, user-scoped.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use confab_models::{Feedback, Message, MessageSearchHit, MessageUpdate, NewFeedback};
use confab_web::{ApiError, Caller, ErrorBody};
use serde::{Deserialize, Serialize};

use crate::openapi::MESSAGES;
use crate::state::AppState;

type Data = web::Data<AppState>;

/// Query of `GET /api/messages/search`.
#[derive(Debug, Deserialize)]
pub struct MessageSearchQuery {
    /// Words to find.
    pub q: String,
    /// Only in this session.
    pub session_id: Option<String>,
    /// Most hits.
    pub limit: Option<u32>,
}

/// Messages found by search.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageSearchResults {
    /// Best match first.
    pub items: Vec<MessageSearchHit>,
}

/// Full-text search over the caller's messages.
#[utoipa::path(
    tag = MESSAGES,
    params(
        ("q" = String, Query, description = "Words to find (all, else any)"),
        ("session_id" = Option<String>, Query, description = "Only in this session (UUID)"),
        ("limit" = Option<u32>, Query, description = "Most hits (default 50, at most 200)"),
    ),
    responses(
        (status = 200, description = "OK", body = MessageSearchResults),
        (status = 400, description = "Missing q, bad session id or limit", body = ErrorBody),
    )
)]
#[get("/api/messages/search")]
pub async fn search_messages(
    state: Data,
    caller: Caller,
    query: web::Query<MessageSearchQuery>,
) -> Result<web::Json<MessageSearchResults>, ApiError> {
    let items = state
        .history
        .search_messages(
            &caller.user_id,
            &query.q,
            query.session_id.as_deref(),
            query.limit,
        )
        .await?;
    Ok(web::Json(MessageSearchResults { items }))
}

/// Edits a message's content or metadata.
#[utoipa::path(
    tag = MESSAGES,
    params(("id" = String, Path, description = "Message id (UUID)")),
    request_body = MessageUpdate,
    responses(
        (status = 200, description = "OK", body = Message),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 404, description = "No such message for this user", body = ErrorBody),
        (status = 409, description = "Its session is deleted", body = ErrorBody),
        (status = 413, description = "Content too long", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
#[patch("/api/messages/{id}")]
pub async fn update_message(
    state: Data,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<MessageUpdate>,
) -> Result<web::Json<Message>, ApiError> {
    Ok(web::Json(
        state
            .history
            .update_message(&caller.user_id, &id, body.into_inner())
            .await?,
    ))
}

/// Deletes a message.
#[utoipa::path(
    tag = MESSAGES,
    params(("id" = String, Path, description = "Message id (UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a UUID", body = ErrorBody),
        (status = 404, description = "No such message for this user", body = ErrorBody),
        (status = 409, description = "Its session is deleted", body = ErrorBody),
    )
)]
#[delete("/api/messages/{id}")]
pub async fn delete_message(
    state: Data,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.history.delete_message(&caller.user_id, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Rates an assistant message (score 1..=5 or thumbs, optional comment);
/// rating it again replaces the earlier rating.
#[utoipa::path(
    tag = MESSAGES,
    params(("id" = String, Path, description = "Message id (UUID) of an assistant message")),
    request_body = NewFeedback,
    responses(
        (status = 200, description = "OK", body = Feedback),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 404, description = "No such message for this user", body = ErrorBody),
        (status = 409, description = "Its session is deleted", body = ErrorBody),
        (status = 422, description = "Score out of range, comment too long, not an assistant message", body = ErrorBody),
    )
)]
#[post("/api/messages/{id}/feedback")]
pub async fn give_feedback(
    state: Data,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<NewFeedback>,
) -> Result<web::Json<Feedback>, ApiError> {
    Ok(web::Json(
        state
            .feedback
            .give_feedback(&caller.user_id, &id, body.into_inner())
            .await?,
    ))
}
