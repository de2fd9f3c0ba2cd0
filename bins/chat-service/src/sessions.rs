//! `/api/sessions/...`: sessions and their messages, user-scoped.

use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpResponse, delete, get, patch, post, web};
use confab_models::{
    ChatSession, Message, MessagePage, MessageQuery, NewMessage, NewSession, SessionExport,
    SessionPage, SessionQuery, SessionSearchHit, SessionStatistics, SessionStatus, SessionUpdate,
    UserSessionStats,
};
use confab_web::{ApiError, Caller, ErrorBody};
use serde::{Deserialize, Serialize};

use crate::openapi::SESSIONS;
use crate::state::AppState;

type Data = web::Data<AppState>;

/// Query of `GET /api/sessions/search`.
#[derive(Debug, Deserialize)]
pub struct SessionSearchQuery {
    /// Words to find in titles and messages.
    pub q: String,
    /// Most hits.
    pub limit: Option<u32>,
}

/// Sessions found by search.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionSearchResults {
    /// Title matches first, then sessions by their best matching message.
    pub items: Vec<SessionSearchHit>,
}

/// Query of `DELETE /api/sessions/{id}`.
#[derive(Debug, Deserialize)]
pub struct DeleteQuery {
    /// Remove for good (with messages) instead of soft-deleting.
    #[serde(default)]
    pub purge: bool,
}

/// Query of `GET /api/sessions/{id}/export`.
#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    /// json (default), markdown (md) or txt (text).
    pub format: Option<String>,
}

/// Creates a session.
#[utoipa::path(
    tag = SESSIONS,
    request_body(content = NewSession, description = "Every field is optional"),
    responses(
        (status = 201, description = "Created", body = ChatSession),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
#[post("/api/sessions")]
pub async fn create_session(
    state: Data,
    caller: Caller,
    body: web::Json<NewSession>,
) -> Result<HttpResponse, ApiError> {
    let session = state
        .sessions
        .create(&caller.user_id, body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(session))
}

/// Lists the caller's sessions, most recently updated first.
#[utoipa::path(
    tag = SESSIONS,
    params(
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("status" = inline(Option<SessionStatus>), Query, description = "Only this state; default active and archived"),
        ("limit" = Option<u32>, Query, description = "Page size (default 50, at most 200)"),
    ),
    responses(
        (status = 200, description = "OK", body = SessionPage),
        (status = 400, description = "Bad cursor, status or limit", body = ErrorBody),
    )
)]
#[get("/api/sessions")]
pub async fn list_sessions(
    state: Data,
    caller: Caller,
    query: web::Query<SessionQuery>,
) -> Result<web::Json<SessionPage>, ApiError> {
    let page = state
        .sessions
        .list_user_sessions(&caller.user_id, query.into_inner())
        .await?;
    Ok(web::Json(page))
}

/// Finds the caller's sessions by title or message content.
#[utoipa::path(
    tag = SESSIONS,
    params(
        ("q" = String, Query, description = "Words to find"),
        ("limit" = Option<u32>, Query, description = "Most hits (default 50, at most 200)"),
    ),
    responses(
        (status = 200, description = "OK", body = SessionSearchResults),
        (status = 400, description = "Missing q or bad limit", body = ErrorBody),
    )
)]
#[get("/api/sessions/search")]
pub async fn search_sessions(
    state: Data,
    caller: Caller,
    query: web::Query<SessionSearchQuery>,
) -> Result<web::Json<SessionSearchResults>, ApiError> {
    let items = state
        .sessions
        .search_sessions(&caller.user_id, &query.q, query.limit)
        .await?;
    Ok(web::Json(SessionSearchResults { items }))
}

/// Figures over the caller's sessions.
#[utoipa::path(tag = SESSIONS, responses((status = 200, description = "OK", body = UserSessionStats)))]
#[get("/api/sessions/stats")]
pub async fn user_stats(
    state: Data,
    caller: Caller,
) -> Result<web::Json<UserSessionStats>, ApiError> {
    Ok(web::Json(state.sessions.stats(&caller.user_id).await?))
}

/// Imports a JSON export (`GET /api/sessions/{id}/export?format=json`) as a new session.
#[utoipa::path(
    tag = SESSIONS,
    request_body = SessionExport,
    responses(
        (status = 201, description = "The new session", body = ChatSession),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Not a session export, or invalid content", body = ErrorBody),
    )
)]
#[post("/api/sessions/import")]
pub async fn import_session(
    state: Data,
    caller: Caller,
    gate: web::Data<ImportGate>,
    req: actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // The caller is known (and the internal key checked) before a byte is read.
    let (body, _slot) = gate.read(&req, payload).await?;
    gate.check_value_count(&body)?;
    let doc: SessionExport = serde_json::from_slice(&body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::validation(format!("not a session export: {e}")),
            Category::Syntax | Category::Eof => {
                ApiError::invalid_json(format!("request body is not valid JSON: {e}"))
            }
            Category::Io => ApiError::bad_request(format!("cannot read request body: {e}")),
        }
    })?;
    drop(body);
    let session = state.history.import_document(&caller.user_id, doc).await?;
    Ok(HttpResponse::Created().json(session))
}

/// Session imports in flight: each body is read only with one of a few
/// slots (`HTTP_MAX_CONCURRENT_IMPORTS`), so concurrent maximum-size
/// imports take at most that many times `HTTP_MAX_IMPORT_BYTES`; a request
/// that waits too long for a slot gets a 503.
#[derive(Debug, Clone)]
pub struct ImportGate {
    slots: std::sync::Arc<tokio::sync::Semaphore>,
    max_bytes: usize,
}

impl ImportGate {
    /// `slots` imports at once, each at most `max_bytes`.
    pub fn new(slots: usize, max_bytes: usize) -> Self {
        Self {
            slots: std::sync::Arc::new(tokio::sync::Semaphore::new(slots.max(1))),
            max_bytes,
        }
    }

    /// Most JSON values (scalars, arrays, objects) an import may hold: one
    /// per 16 bytes of the limit (at least 100 000). Free-form metadata is
    /// parsed into a tree of values, and `[0,0,...]` costs 16 times its
    /// size there; counting first (without allocating) bounds that tree.
    fn max_values(&self) -> usize {
        (self.max_bytes / 16).max(100_000)
    }

    /// 413 when `body` holds more JSON values than [`Self::max_values`];
    /// syntax errors are left to the typed parse.
    fn check_value_count(&self, body: &[u8]) -> Result<(), ApiError> {
        let max = self.max_values();
        let mut count = 0usize;
        let mut de = serde_json::Deserializer::from_slice(body);
        let counted =
            serde::de::DeserializeSeed::deserialize(CountValues(&mut count, max), &mut de);
        if count > max {
            return Err(ApiError::too_large(format!(
                "the import holds more than {max} JSON values"
            )));
        }
        drop(counted);
        Ok(())
    }

    async fn read(
        &self,
        req: &actix_web::HttpRequest,
        mut payload: web::Payload,
    ) -> Result<(web::Bytes, tokio::sync::OwnedSemaphorePermit), ApiError> {
        use futures_util::StreamExt;
        let limit = self.max_bytes;
        let too_large =
            || ApiError::too_large(format!("request body exceeds the limit of {limit} bytes"));
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let wait = std::time::Duration::from_secs(10);
        let slot = tokio::time::timeout(wait, self.slots.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                ApiError::unavailable("too many imports at once; retry shortly")
                    .with_retry_after(wait)
            })?;
        let mut buf = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
            if buf.len() + chunk.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok((buf.freeze(), slot))
    }
}

/// Counts JSON values into `.0`, failing once there are more than `.1`.
struct CountValues<'a>(&'a mut usize, usize);

impl CountValues<'_> {
    fn bump<E: serde::de::Error>(&mut self) -> Result<(), E> {
        *self.0 += 1;
        if *self.0 > self.1 {
            return Err(E::custom("too many JSON values"));
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for CountValues<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for CountValues<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(mut self, _: bool) -> Result<(), E> {
        self.bump()
    }

    fn visit_i64<E: serde::de::Error>(mut self, _: i64) -> Result<(), E> {
        self.bump()
    }

    fn visit_u64<E: serde::de::Error>(mut self, _: u64) -> Result<(), E> {
        self.bump()
    }

    fn visit_f64<E: serde::de::Error>(mut self, _: f64) -> Result<(), E> {
        self.bump()
    }

    fn visit_str<E: serde::de::Error>(mut self, _: &str) -> Result<(), E> {
        self.bump()
    }

    fn visit_unit<E: serde::de::Error>(mut self) -> Result<(), E> {
        self.bump()
    }

    fn visit_none<E: serde::de::Error>(mut self) -> Result<(), E> {
        self.bump()
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.bump()?;
        while seq
            .next_element_seed(CountValues(&mut *self.0, self.1))?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.bump()?;
        while map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            map.next_value_seed(CountValues(&mut *self.0, self.1))?;
        }
        Ok(())
    }
}

/// One of the caller's sessions (also archived or deleted: see `status`).
#[utoipa::path(
    tag = SESSIONS,
    params(("id" = String, Path, description = "Session id (UUID)")),
    responses(
        (status = 200, description = "OK", body = ChatSession),
        (status = 400, description = "Not a UUID", body = ErrorBody),
        (status = 404, description = "No such session for this user", body = ErrorBody),
    )
)]
#[get("/api/sessions/{id}")]
pub async fn get_session(
    state: Data,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<ChatSession>, ApiError> {
    Ok(web::Json(state.sessions.get(&caller.user_id, &id).await?))
}

/// Renames a session or changes its model or metadata.
#[utoipa::path(
    tag = SESSIONS,
    params(("id" = String, Path, description = "Session id (UUID)")),
    request_body = SessionUpdate,
    responses(
        (status = 200, description = "OK", body = ChatSession),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 404, description = "No such session for this user", body = ErrorBody),
        (status = 409, description = "The session is deleted", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
#[patch("/api/sessions/{id}")]
pub async fn update_session(
    state: Data,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<SessionUpdate>,
) -> Result<web::Json<ChatSession>, ApiError> {
    let session = state
        .sessions
        .update(&caller.user_id, &id, body.into_inner())
        .await?;
    Ok(web::Json(session))
}

/// Deletes a session: soft by default (hidden, purged by cleanup later), for good with `purge=true`.
#[utoipa::path(
    tag = SESSIONS,
    params(
        ("id" = String, Path, description = "Session id (UUID)"),
        ("purge" = Option<bool>, Query, description = "Remove with its messages now"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a UUID", body = ErrorBody),
        (status = 404, description = "No such session for this user", body = ErrorBody),
    )
)]
#[delete("/api/sessions/{id}")]
pub async fn delete_session(
    state: Data,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    if query.purge {
        state.sessions.purge(&caller.user_id, &id).await?;
    } else {
        state.sessions.delete(&caller.user_id, &id).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Archives a session (idempotent).
#[utoipa::path(
    tag = SESSIONS,
    params(("id" = String, Path, description = "Session id (UUID)")),
    responses(
        (status = 200, description = "OK", body = ChatSession),
        (status = 404, description = "No such session for this user", body = ErrorBody),
        (status = 409, description = "The session is deleted", body = ErrorBody),
    )
)]
#[post("/api/sessions/{id}/archive")]
pub async fn archive_session(
    state: Data,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<ChatSession>, ApiError> {
    Ok(web::Json(
        state.sessions.archive(&caller.user_id, &id).await?,
    ))
}

/// Makes an archived session active again (idempotent).
#[utoipa::path(
    tag = SESSIONS,
    params(("id" = String, Path, description = "Session id (UUID)")),
    responses(
        (status = 200, description = "OK", body = ChatSession),
        (status = 404, description = "No such session for this user", body = ErrorBody),
        (status = 409, description = "The session is deleted", body = ErrorBody),
    )
)]
#[post("/api/sessions/{id}/unarchive")]
pub async fn unarchive_session(
    state: Data,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<ChatSession>, ApiError> {
    Ok(web::Json(
        state.sessions.unarchive(&caller.user_id, &id).await?,
    ))
}

/// Figures about one session: counts by role, tokens, response time.
#[utoipa::path(
    tag = SESSIONS,
    params(("id" = String, Path, description = "Session id (UUID)")),
    responses(
        (status = 200, description = "OK", body = SessionStatistics),
        (status = 404, description = "No such session for this user", body = ErrorBody),
    )
)]
#[get("/api/sessions/{id}/statistics")]
pub async fn session_statistics(
    state: Data,
    caller: Caller,
    id: web::Path<String>,
) -> Result<web::Json<SessionStatistics>, ApiError> {
    Ok(web::Json(
        state
            .history
            .session_statistics(&caller.user_id, &id)
            .await?,
    ))
}

/// One page of a session's messages, newest first.
#[utoipa::path(
    tag = SESSIONS,
    params(
        ("id" = String, Path, description = "Session id (UUID)"),
        ("before" = Option<String>, Query, description = "`older_cursor` of a page: older messages"),
        ("after" = Option<String>, Query, description = "`newer_cursor` of a page: newer messages"),
        ("limit" = Option<u32>, Query, description = "Page size (default 50, at most 200)"),
    ),
    responses(
        (status = 200, description = "OK", body = MessagePage),
        (status = 400, description = "Bad id or cursor", body = ErrorBody),
        (status = 404, description = "No such session for this user", body = ErrorBody),
        (status = 409, description = "The session is deleted", body = ErrorBody),
    )
)]
#[get("/api/sessions/{id}/messages")]
pub async fn list_messages(
    state: Data,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<MessageQuery>,
) -> Result<web::Json<MessagePage>, ApiError> {
    Ok(web::Json(
        state
            .history
            .get_session_messages(&caller.user_id, &id, query.into_inner())
            .await?,
    ))
}

/// Appends a message to a session (without generating a reply).
#[utoipa::path(
    tag = SESSIONS,
    params(("id" = String, Path, description = "Session id (UUID)")),
    request_body = NewMessage,
    responses(
        (status = 201, description = "Created", body = Message),
        (status = 404, description = "No such session for this user", body = ErrorBody),
        (status = 409, description = "The session is deleted", body = ErrorBody),
        (status = 413, description = "Content too long", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
    )
)]
#[post("/api/sessions/{id}/messages")]
pub async fn add_message(
    state: Data,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<NewMessage>,
) -> Result<HttpResponse, ApiError> {
    let message = state
        .history
        .save_message(&caller.user_id, &id, body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(message))
}

/// Downloads a session as JSON (importable), Markdown or plain text.
#[utoipa::path(
    tag = SESSIONS,
    params(
        ("id" = String, Path, description = "Session id (UUID)"),
        ("format" = Option<String>, Query, description = "json (default), markdown or txt"),
    ),
    responses(
        (status = 200, description = "The document, as an attachment", content(
            (SessionExport = "application/json"),
            (String = "text/markdown"),
            (String = "text/plain"),
        )),
        (status = 400, description = "Unknown format or bad id", body = ErrorBody),
        (status = 404, description = "No such session for this user", body = ErrorBody),
        (status = 409, description = "The session is deleted", body = ErrorBody),
    )
)]
#[get("/api/sessions/{id}/export")]
pub async fn export_session(
    state: Data,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let format = query.format.as_deref().unwrap_or("json");
    let export = state
        .history
        .export_session(&caller.user_id, &id, format)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, export.content_type))
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(export.filename)],
        })
        .body(export.body))
}
