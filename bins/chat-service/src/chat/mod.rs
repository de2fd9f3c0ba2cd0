//! Chat over HTTP: `POST /api/chat` (whole reply), `GET /api/chat/stream`
//! (SSE of protocol events), `POST /agent/message/stream` (seed 004 SSE
//! with `data: [DONE]`), plus the shared [`ChatState`] the WebSocket
//! handler uses too. Handlers parse, call the engine, map errors.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use confab_agents::{AnswerEvent, ChatReply, ChatTurn, StatelessTurn};
use confab_models::AgentKind;
use confab_web::{ApiError, Caller};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde::Deserialize;
use uuid::Uuid;

use crate::state::AppState;

mod seed;
mod sse;
mod state;

pub use seed::{__path_agent_stream, AgentMessage, SERVICE_USER, agent_stream};
use sse::{json_sse_body, relay_event};
pub use sse::{sse_body, sse_response};
pub use state::{ActiveGuard, ChatLimits, ChatState, SETTINGS_HEADER, settings_of};

/// Body of `POST /api/chat`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequestBody {
    /// The user's message.
    pub message: String,
    /// Session to continue; a new one is created when absent.
    #[serde(default)]
    pub session_id: Option<Uuid>,
    /// Agent of a new session (default dashboard).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "dashboard")]
    pub agent: Option<AgentKind>,
    /// Course of a new course session.
    #[serde(default)]
    pub course_id: Option<String>,
    /// Chat backend (`simple` | `agent`) instead of the default.
    #[serde(default)]
    pub backend: Option<String>,
    /// Knowledge bases to draw on (ids; each must be readable by the caller, else 404).
    #[serde(default)]
    pub knowledge: Vec<Uuid>,
}

fn turn(
    caller: &Caller,
    req: &HttpRequest,
    message: String,
    session_id: Option<Uuid>,
    agent: Option<AgentKind>,
    course_id: Option<String>,
    backend: Option<String>,
) -> Result<ChatTurn, ApiError> {
    if message.trim().is_empty() {
        return Err(ApiError::validation("`message` must not be empty"));
    }
    Ok(ChatTurn {
        user_id: caller.user_id.clone(),
        session_id,
        agent: agent.unwrap_or_default(),
        course_id,
        content: message,
        backend,
        settings: settings_of(req),
        knowledge: Vec::new(),
    })
}

/// `POST /api/chat`: the whole answer at once.
#[utoipa::path(
    post, path = "/api/chat", tag = "chat",
    request_body = ChatRequestBody,
    responses(
        (status = 200, description = "The answer, saved in the session", body = ChatAnswer),
        (status = 400, description = "Malformed request", body = confab_web::ErrorBody),
        (status = 404, description = "Unknown session", body = confab_web::ErrorBody),
        (status = 422, description = "Invalid message", body = confab_web::ErrorBody),
        (status = 429, description = "The model provider's rate limit (`Retry-After` when it gave a wait)", body = confab_web::ErrorBody),
        (status = 502, description = "The model failed", body = confab_web::ErrorBody),
        (status = 503, description = "Shutting down or storage unavailable", body = confab_web::ErrorBody),
    )
)]
#[post("/api/chat")]
pub async fn post_chat(
    app: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<ChatRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let state = app.chat()?;
    state.check_open()?;
    let body = body.into_inner();
    let knowledge = crate::knowledge::scope(&app, &caller, &body.knowledge).await?;
    let turn = body.into_turn(&caller, &req, knowledge)?;
    let _guard = state.start_generation(&caller.user_id).await?;
    let reply = send_message(state, turn).await?;
    Ok(HttpResponse::Ok().json(ChatAnswer::from(reply)))
}

impl ChatRequestBody {
    /// The turn this body asks for, drawing on `knowledge` (422 on an empty message).
    fn into_turn(
        self,
        caller: &Caller,
        req: &HttpRequest,
        knowledge: Vec<String>,
    ) -> Result<ChatTurn, ApiError> {
        let mut turn = turn(
            caller,
            req,
            self.message,
            self.session_id,
            self.agent,
            self.course_id,
            self.backend,
        )?;
        turn.knowledge = knowledge;
        Ok(turn)
    }
}

/// The whole answer to `turn`; a failure is counted in the chat metrics.
async fn send_message(state: &ChatState, turn: ChatTurn) -> Result<ChatReply, ApiError> {
    state
        .engine
        .send_message(turn, state.answer_token())
        .await
        .map_err(|e| {
            state.metrics.error(e.event_code());
            ApiError::from(e)
        })
}

/// Answer of `POST /api/chat` (seed 003 shape plus ids, sources, usage).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ChatAnswer {
    /// The answer text.
    pub response: String,
    /// When it was saved (RFC 3339).
    pub timestamp: String,
    /// Model that answered.
    pub model: String,
    /// The session (new or continued).
    pub session_id: Uuid,
    /// The saved assistant message.
    pub message_id: Uuid,
    /// Sources the answer cites.
    #[schema(value_type = Vec<Object>)]
    pub sources: Vec<confab_models::SourceInfo>,
    /// Token accounting.
    #[schema(value_type = Object)]
    pub usage: confab_models::Usage,
    /// `stop`, `length`, `cancelled`, ...
    #[schema(value_type = String)]
    pub finish_reason: confab_models::FinishReason,
}

impl From<ChatReply> for ChatAnswer {
    fn from(reply: ChatReply) -> Self {
        Self {
            response: reply.response,
            timestamp: reply
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            model: reply.model,
            session_id: reply.session_id,
            message_id: reply.message_id,
            sources: reply.sources,
            usage: reply.usage,
            finish_reason: reply.finish_reason,
        }
    }
}

/// One Server-Sent Events frame as OpenAPI describes `text/event-stream`
/// (each frame, not the whole body): `data` is one JSON chat event
/// (`{"type": "stage" | "token" | ... | "done", ...}`) or `[DONE]`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SseFrame {
    /// Event name (confab sends none).
    event: Option<String>,
    /// Event id (confab sends none).
    id: Option<String>,
    /// Reconnection delay (confab sends none).
    retry: Option<i64>,
    /// The payload.
    #[schema(content_media_type = "application/json")]
    data: String,
}

/// Query of `GET /api/chat/stream`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// The user's message.
    pub message: String,
    /// Session to continue.
    #[serde(default)]
    pub session_id: Option<Uuid>,
    /// Agent of a new session.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub agent: Option<AgentKind>,
    /// Course of a new course session.
    #[serde(default)]
    pub course_id: Option<String>,
    /// Chat backend instead of the default.
    #[serde(default)]
    pub backend: Option<String>,
    /// Knowledge bases to draw on: ids separated by commas.
    #[serde(default)]
    pub knowledge: Option<String>,
}

/// `GET /api/chat/stream`: the answer as Server-Sent Events, one protocol
/// event (JSON) per `data:` line, ending with `done` or `error`.
#[utoipa::path(
    get, path = "/api/chat/stream", tag = "chat",
    params(StreamQuery),
    responses(
        (status = 200, description = "text/event-stream of chat events", content_type = "text/event-stream", body = SseFrame),
        (status = 400, description = "Malformed query", body = confab_web::ErrorBody),
        (status = 404, description = "Unknown session", body = confab_web::ErrorBody),
        (status = 422, description = "Invalid message", body = confab_web::ErrorBody),
        (status = 503, description = "Shutting down", body = confab_web::ErrorBody),
    )
)]
#[get("/api/chat/stream")]
pub async fn stream_chat(
    app: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, ApiError> {
    let state = app.chat()?;
    state.check_open()?;
    let turn = query
        .into_inner()
        .into_turn(&app, state, &caller, &req)
        .await?;
    let guard = state.start_generation(&caller.user_id).await?;
    let events = crate::metrics::observe(
        &state.metrics,
        state.engine.stream_message(turn, state.answer_token()),
    );
    Ok(sse_response(json_sse_body(events, guard)))
}

impl StreamQuery {
    /// The turn this query asks for: its session checked (404), its knowledge
    /// ids parsed (400) and readable (404), its message not empty (422).
    async fn into_turn(
        self,
        app: &AppState,
        state: &ChatState,
        caller: &Caller,
        req: &HttpRequest,
    ) -> Result<ChatTurn, ApiError> {
        if let Some(sid) = self.session_id {
            // A wrong session is a 404 now, not an event later.
            state.check_session(&caller.user_id, sid).await?;
        }
        let ids = crate::knowledge::parse_ids(self.knowledge.as_deref())?;
        let knowledge = crate::knowledge::scope(app, caller, &ids).await?;
        let mut turn = turn(
            caller,
            req,
            self.message,
            self.session_id,
            self.agent,
            self.course_id,
            self.backend,
        )?;
        turn.knowledge = knowledge;
        Ok(turn)
    }
}

/// One message of a whole conversation (`POST /api/chat/completions`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationMessage {
    /// `system`, `user` or `assistant` (`tool` messages are ignored).
    #[schema(value_type = String, example = "user")]
    pub role: confab_models::MessageRole,
    /// The text.
    pub content: String,
}

/// Body of `POST /api/chat/completions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletionsBody {
    /// The conversation, oldest first; the last message is the user's.
    pub messages: Vec<ConversationMessage>,
    /// Continue this session: only the last (user) message is used, the
    /// session's own history is the context, and the turn is saved.
    #[serde(default)]
    pub session_id: Option<Uuid>,
    /// Knowledge bases to draw on (the `/v1` extension field `knowledge`).
    #[serde(default)]
    pub knowledge: Vec<Uuid>,
    /// Agent (default dashboard).
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "dashboard")]
    pub agent: Option<AgentKind>,
    /// Course of a course agent.
    #[serde(default)]
    pub course_id: Option<String>,
    /// Chat backend instead of the default.
    #[serde(default)]
    pub backend: Option<String>,
}

/// `POST /api/chat/completions`: answers a whole conversation given by the
/// caller (the gateway's OpenAI-compatible API) as SSE of chat events.
/// Without `session_id` nothing is saved (`done` carries nil ids). This
/// internal route's `error` event also carries `retry_after_secs` (the
/// provider's 429 wait) so the gateway can send `Retry-After`.
#[utoipa::path(
    post, path = "/api/chat/completions", tag = "chat",
    request_body = CompletionsBody,
    responses(
        (status = 200, description = "text/event-stream of chat events", content_type = "text/event-stream", body = SseFrame),
        (status = 404, description = "Unknown session", body = confab_web::ErrorBody),
        (status = 422, description = "Invalid conversation", body = confab_web::ErrorBody),
        (status = 503, description = "Shutting down", body = confab_web::ErrorBody),
    )
)]
#[post("/api/chat/completions")]
pub async fn completions(
    app: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<CompletionsBody>,
) -> Result<HttpResponse, ApiError> {
    let state = app.chat()?;
    state.check_open()?;
    let body = body.into_inner();
    let last = body.last_user_message()?;
    let knowledge = crate::knowledge::scope(&app, &caller, &body.knowledge).await?;
    let guard = state.start_generation(&caller.user_id).await?;
    let events = answer_events(state, &caller, &req, body, last, knowledge).await?;
    let events = crate::metrics::observe(&state.metrics, events.map(relay_event));
    Ok(sse_response(json_sse_body(events, guard)))
}

impl CompletionsBody {
    /// The text of the last message, which must be a non-empty `user` one (422).
    fn last_user_message(&self) -> Result<String, ApiError> {
        let Some(last) = self.messages.last() else {
            return Err(ApiError::validation("`messages` must not be empty"));
        };
        if last.role != confab_models::MessageRole::User || last.content.trim().is_empty() {
            return Err(ApiError::validation(
                "the last message must be a non-empty `user` message",
            ));
        }
        Ok(last.content.clone())
    }
}

/// The answer's events: with a session (checked, 404), `last` continues and
/// is saved in it; without, the whole conversation is answered unsaved.
async fn answer_events(
    state: &ChatState,
    caller: &Caller,
    req: &HttpRequest,
    body: CompletionsBody,
    last: String,
    knowledge: Vec<String>,
) -> Result<BoxStream<'static, AnswerEvent>, ApiError> {
    Ok(match body.session_id {
        Some(sid) => {
            state.check_session(&caller.user_id, sid).await?;
            let mut turn = turn(caller, req, last, Some(sid), None, None, body.backend)?;
            turn.knowledge = knowledge;
            state.engine.answer(turn, state.answer_token()).boxed()
        }
        None => {
            let turn = stateless_turn(caller, req, body, knowledge);
            state
                .engine
                .answer_stateless(turn, state.answer_token())
                .boxed()
        }
    })
}

/// A whole conversation to answer without saving it.
fn stateless_turn(
    caller: &Caller,
    req: &HttpRequest,
    body: CompletionsBody,
    knowledge: Vec<String>,
) -> StatelessTurn {
    StatelessTurn {
        user_id: caller.user_id.clone(),
        agent: body.agent.unwrap_or_default(),
        course_id: body.course_id,
        messages: body
            .messages
            .into_iter()
            .map(|m| (m.role, m.content))
            .collect(),
        backend: body.backend,
        settings: settings_of(req),
        knowledge,
    }
}
