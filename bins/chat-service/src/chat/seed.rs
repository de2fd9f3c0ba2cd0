//! The seed-004 adapter: `POST /agent/message/stream`, its session keys
//! and its caller.

use actix_web::{HttpRequest, HttpResponse, post, web};
use confab_models::{NewSession, ServerEvent};
use confab_web::{ApiError, Caller, InternalAuth};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{ChatState, SseFrame, sse_body, sse_response, turn};
use crate::state::AppState;

/// Body of `POST /agent/message/stream` (seed 004).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AgentMessage {
    /// The caller's session key: a confab session id, or any string naming
    /// a conversation (mapped to a session of this user).
    pub session_id: String,
    /// Must be `user`.
    pub role: String,
    /// The message.
    pub content: String,
}

/// One seed-004 SSE frame, fields in the seed's order.
#[derive(serde::Serialize)]
struct SeedFrame<'a> {
    token: &'a str,
    is_final: bool,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<serde_json::Value>,
}

impl<'a> SeedFrame<'a> {
    fn token(token: &'a str, is_final: bool) -> Self {
        Self {
            token,
            is_final,
            kind: "assistant_message",
            error: None,
        }
    }
}

/// Metadata key holding a seed-004 session key (also kept in the
/// session's indexed `external_key`).
const EXTERNAL_KEY: &str = "external_session_id";

/// The user seed 004's call acts as when it names none: one internal
/// service user (not a UUID, so never a gateway user; its sessions are its
/// own, keyed by `session_id`).
pub const SERVICE_USER: &str = "internal:seed-004";

/// The session a seed-004 key names: a session id of the user, or the most
/// recent session created for that key (one indexed lookup), or a new one.
async fn session_for_key(state: &ChatState, user: &str, key: &str) -> Result<Uuid, ApiError> {
    if let Ok(id) = Uuid::parse_str(key)
        && state.check_session(user, id).await.is_ok()
    {
        return Ok(id);
    }
    if let Some(session) = state.sessions.find_by_external_key(user, key).await? {
        return Ok(session.id);
    }
    let session = state
        .sessions
        .create_for_external_key(
            user,
            key,
            NewSession {
                metadata: Some(json!({ EXTERNAL_KEY: key })),
                ..NewSession::default()
            },
        )
        .await?;
    Ok(session.id)
}

/// Who seed 004's call acts for: with a valid internal key and no
/// `X-User-Id`, the internal service user [`SERVICE_USER`]; otherwise the
/// caller as on every other route.
fn seed_caller(req: &HttpRequest, auth: InternalAuth) -> Result<Caller, ApiError> {
    let config = req
        .app_data::<confab_web::AuthConfig>()
        .ok_or_else(|| ApiError::internal("AuthConfig is not registered as app data"))?;
    let names_user = req
        .headers()
        .get(confab_web::auth::USER_ID_HEADER)
        .is_some_and(|v| !v.as_bytes().trim_ascii().is_empty());
    if auth.verified && !names_user {
        return Ok(Caller {
            user_id: SERVICE_USER.to_owned(),
            role: confab_web::auth::USER_ROLE.to_owned(),
        });
    }
    Caller::from_request_parts(req, config)
}

/// `POST /agent/message/stream` (seed 004): SSE of
/// `{"token","is_final","type":"assistant_message"}` frames, then `data: [DONE]`.
#[utoipa::path(
    post, path = "/agent/message/stream", tag = "chat",
    request_body = AgentMessage,
    responses(
        (status = 200, description = "text/event-stream of tokens, then [DONE]", content_type = "text/event-stream", body = SseFrame),
        (status = 401, description = "Missing or wrong X-Internal-Auth", body = confab_web::ErrorBody),
        (status = 422, description = "Invalid message", body = confab_web::ErrorBody),
    )
)]
#[post("/agent/message/stream")]
pub async fn agent_stream(
    app: web::Data<AppState>,
    auth: InternalAuth,
    req: HttpRequest,
    body: web::Json<AgentMessage>,
) -> Result<HttpResponse, ApiError> {
    let caller = seed_caller(&req, auth)?;
    let state = app.chat()?;
    state.check_open()?;
    let message = body.into_inner().validate()?;
    let session_id = session_for_key(state, &caller.user_id, &message.key).await?;
    let turn = turn(
        &caller,
        &req,
        message.content,
        Some(session_id),
        None,
        None,
        None,
    )?;
    let guard = state.guard();
    let events = crate::metrics::observe(
        &state.metrics,
        state.engine.stream_message(turn, state.answer_token()),
    );
    Ok(sse_response(sse_body(
        seed_frames(events),
        guard,
        Some("[DONE]"),
    )))
}

/// A validated seed-004 message.
struct SeedMessage {
    /// The session key, trimmed.
    key: String,
    /// The message.
    content: String,
}

impl AgentMessage {
    /// 422 unless the role is `user` and the key has 1..=200 characters.
    fn validate(self) -> Result<SeedMessage, ApiError> {
        if self.role != "user" {
            return Err(ApiError::validation("`role` must be `user`"));
        }
        let key = self.session_id.trim();
        if key.is_empty() || key.chars().count() > 200 {
            return Err(ApiError::validation(
                "`session_id` must have 1..=200 characters",
            ));
        }
        Ok(SeedMessage {
            key: key.to_owned(),
            content: self.content,
        })
    }
}

/// The seed-004 frames (JSON) of an answer's events: tokens, the final
/// frame, or an error; other events are left out.
fn seed_frames(
    events: impl Stream<Item = ServerEvent> + Send + 'static,
) -> impl Stream<Item = String> + Send + 'static {
    events.filter_map(|e| async move {
        let frame = match &e {
            ServerEvent::Token { content } => SeedFrame::token(content, false),
            ServerEvent::Done { .. } => SeedFrame::token("", true),
            ServerEvent::Error { code, message, .. } => SeedFrame {
                error: Some(json!({ "code": code, "message": message })),
                kind: "error",
                ..SeedFrame::token("", true)
            },
            _ => return None,
        };
        serde_json::to_string(&frame).ok()
    })
}
