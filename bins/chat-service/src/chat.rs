//! Chat over HTTP: `POST /api/chat` (whole reply), `GET /api/chat/stream`
//! (SSE of protocol events), `POST /agent/message/stream` (seed 004 SSE
//! with `data: [DONE]`), plus the shared [`ChatState`] the WebSocket
//! handler uses too. Handlers parse, call the engine, map errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use bytes::Bytes;
use confab_agents::{AnswerEvent, ChatTurn, Engine, StatelessTurn, UserSettings};
use confab_error::DomainError;
use confab_history::SessionService;
use confab_models::{AgentKind, NewSession, RelayEvent, ServerEvent};
use confab_web::{ApiError, Caller, InternalAuth};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::state::AppState;

/// Header the gateway uses to pass the user's settings (JSON object).
pub const SETTINGS_HEADER: &str = "x-user-settings";
/// Interval of SSE keep-alive comments while nothing else is sent.
const SSE_KEEPALIVE: Duration = Duration::from_secs(15);

/// Limits of chat connections.
#[derive(Debug, Clone)]
pub struct ChatLimits {
    /// Largest WebSocket frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// WebSocket ping interval.
    pub heartbeat: Duration,
    /// A connection with no client frame for this long is closed (not while
    /// an answer streams).
    pub idle_timeout: Duration,
    /// How long running answers may go on after shutdown starts.
    pub shutdown_grace: Duration,
    /// Most answers generated at once per user over WebSocket, SSE, REST
    /// and `/v1` together (`0`: no cap); see [`crate::generations`].
    pub max_generations_per_user: usize,
    /// Redis shared by the replicas for that count (`REDIS_URL`; none: per replica).
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys (`REDIS_KEY_PREFIX`).
    pub redis_key_prefix: String,
}

impl Default for ChatLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            heartbeat: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
            max_generations_per_user: 4,
            redis_url: None,
            redis_key_prefix: "confab:".to_owned(),
        }
    }
}

/// What the chat routes share.
#[derive(Clone)]
pub struct ChatState {
    /// The conversation engine.
    pub engine: Engine,
    /// Sessions (the seed-004 route maps its session keys through it).
    pub sessions: SessionService,
    /// Answers being generated right now.
    pub active: Arc<AtomicUsize>,
    /// Open WebSocket connections.
    pub connections: Arc<AtomicUsize>,
    /// Fired when shutdown starts: no new answers, idle sockets close.
    pub draining: CancellationToken,
    /// Fired when the grace period ends: running answers are cancelled
    /// (saved, and ended with `done` / `cancelled`).
    pub abort: CancellationToken,
    /// Limits.
    pub limits: ChatLimits,
    /// Chat metrics (the app state's, shared).
    pub metrics: crate::metrics::ChatMetrics,
    /// The per-user cap on concurrent generations.
    pub generations: Arc<crate::generations::GenerationLimit>,
}

impl ChatState {
    /// State over an engine; `active` and `draining` are shared with the
    /// rest of the service (stats, shutdown).
    pub fn new(
        engine: Engine,
        sessions: SessionService,
        limits: ChatLimits,
        active: Arc<AtomicUsize>,
        draining: CancellationToken,
    ) -> Self {
        let max = limits.max_generations_per_user;
        let generations = match &limits.redis_url {
            Some(url) => crate::generations::GenerationLimit::redis(max, url, &limits.redis_key_prefix)
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "REDIS_URL is unusable: generations are counted per replica");
                    crate::generations::GenerationLimit::local(max)
                }),
            None => crate::generations::GenerationLimit::local(max),
        };
        Self {
            generations: Arc::new(generations),
            engine,
            sessions,
            active,
            connections: Arc::new(AtomicUsize::new(0)),
            draining,
            abort: CancellationToken::new(),
            limits,
            metrics: crate::metrics::ChatMetrics::default(),
        }
    }

    /// Graceful shutdown of chat: stop taking new answers, let running ones
    /// finish for up to the grace period, then cancel them and wait (briefly)
    /// until they are saved.
    pub async fn drain(&self) {
        self.draining.cancel();
        let deadline = tokio::time::Instant::now() + self.limits.shutdown_grace;
        while self.active.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.abort.cancel();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.active.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// 404 unless `session_id` is a live (not deleted) session of `user`.
    pub async fn check_session(&self, user: &str, session_id: Uuid) -> Result<(), ApiError> {
        let session = self.sessions.get(user, &session_id.to_string()).await?;
        if session.status == confab_models::SessionStatus::Deleted {
            return Err(ApiError::not_found(format!(
                "session {session_id} not found"
            )));
        }
        Ok(())
    }

    /// A cancellation token for one answer (cancelled on abort).
    pub fn answer_token(&self) -> CancellationToken {
        self.abort.child_token()
    }

    /// 503 while shutting down.
    pub fn check_open(&self) -> Result<(), ApiError> {
        if self.draining.is_cancelled() {
            Err(ApiError::unavailable("the service is shutting down"))
        } else {
            Ok(())
        }
    }

    /// Counts an answer as active until the guard drops.
    pub fn guard(&self) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        ActiveGuard(self.active.clone(), None)
    }

    /// Starts one generation of `user`: counted as active, and within the
    /// user's cap on concurrent generations, or 429 `busy`.
    pub async fn start_generation(&self, user: &str) -> Result<ActiveGuard, ApiError> {
        let permit = self.generations.acquire(user).await.map_err(|e| {
            self.metrics.error("busy");
            ApiError::new(
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                "busy",
                e.to_string(),
            )
            .with_retry_after(Duration::from_secs(1))
        })?;
        let mut guard = self.guard();
        guard.1 = Some(permit);
        Ok(guard)
    }
}

/// Decrements the active-answer count on drop (and ends the user's
/// generation permit, if it holds one).
pub struct ActiveGuard(Arc<AtomicUsize>, Option<crate::generations::Permit>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The user's settings from the gateway's header (defaults when absent or malformed).
pub fn settings_of(req: &HttpRequest) -> UserSettings {
    req.headers()
        .get(SETTINGS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .map(|v| UserSettings::from_json(&v))
        .unwrap_or_default()
}

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
    let mut turn = turn(
        &caller,
        &req,
        body.message,
        body.session_id,
        body.agent,
        body.course_id,
        body.backend,
    )?;
    turn.knowledge = knowledge;
    let _guard = state.start_generation(&caller.user_id).await?;
    let reply = state
        .engine
        .send_message(turn, state.answer_token())
        .await
        .map_err(|e| {
            state.metrics.error(e.event_code());
            ApiError::from(e)
        })?;
    Ok(HttpResponse::Ok().json(ChatAnswer {
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
    }))
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
    let q = query.into_inner();
    if let Some(sid) = q.session_id {
        // A wrong session is a 404 now, not an event later.
        state.check_session(&caller.user_id, sid).await?;
    }
    let ids = crate::knowledge::parse_ids(q.knowledge.as_deref())?;
    let knowledge = crate::knowledge::scope(&app, &caller, &ids).await?;
    let mut turn = turn(
        &caller,
        &req,
        q.message,
        q.session_id,
        q.agent,
        q.course_id,
        q.backend,
    )?;
    turn.knowledge = knowledge;
    let guard = state.start_generation(&caller.user_id).await?;
    let events = crate::metrics::observe(
        &state.metrics,
        state.engine.stream_message(turn, state.answer_token()),
    );
    let body = sse_body(
        events.map(|e| serde_json::to_string(&e).unwrap_or_default()),
        guard,
        None,
    );
    Ok(sse_response(body))
}

/// An SSE response around a body stream.
pub fn sse_response(
    body: impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

/// `data:` frames for each JSON text, keep-alive comments while idle, an
/// optional last frame; holds `guard` until the stream ends or is dropped.
pub fn sse_body(
    events: impl Stream<Item = String> + Send + 'static,
    guard: ActiveGuard,
    last: Option<&'static str>,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
    async_stream::stream! {
        let _guard = guard;
        let mut events = Box::pin(events);
        loop {
            match tokio::time::timeout(SSE_KEEPALIVE, events.next()).await {
                Ok(Some(json)) => yield Ok(Bytes::from(format!("data: {json}\n\n"))),
                Ok(None) => break,
                Err(_) => yield Ok(Bytes::from_static(b": keep-alive\n\n")),
            }
        }
        if let Some(last) = last {
            yield Ok(Bytes::from(format!("data: {last}\n\n")));
        }
    }
}

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
    let Some(last) = body.messages.last() else {
        return Err(ApiError::validation("`messages` must not be empty"));
    };
    if last.role != confab_models::MessageRole::User || last.content.trim().is_empty() {
        return Err(ApiError::validation(
            "the last message must be a non-empty `user` message",
        ));
    }
    let knowledge = crate::knowledge::scope(&app, &caller, &body.knowledge).await?;
    let guard = state.start_generation(&caller.user_id).await?;
    let events = match body.session_id {
        Some(sid) => {
            state.check_session(&caller.user_id, sid).await?;
            let mut turn = turn(
                &caller,
                &req,
                last.content.clone(),
                Some(sid),
                None,
                None,
                body.backend,
            )?;
            turn.knowledge = knowledge;
            state.engine.answer(turn, state.answer_token()).boxed()
        }
        None => {
            let turn = stateless_turn(&caller, &req, body, knowledge);
            state
                .engine
                .answer_stateless(turn, state.answer_token())
                .boxed()
        }
    };
    let events = crate::metrics::observe(&state.metrics, events.map(relay_event));
    let body = sse_body(
        events.map(|e| serde_json::to_string(&e).unwrap_or_default()),
        guard,
        None,
    );
    Ok(sse_response(body))
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

/// An answer's event for the gateway: the protocol form, and on a failure
/// its kind and the provider's wait.
fn relay_event(event: AnswerEvent) -> RelayEvent {
    match event {
        AnswerEvent::Event(event) => RelayEvent::event(event),
        AnswerEvent::Failed(e) => {
            let kind = e.kind();
            RelayEvent::error(AnswerEvent::Failed(e).into(), kind)
        }
    }
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
    let body = body.into_inner();
    if body.role != "user" {
        return Err(ApiError::validation("`role` must be `user`"));
    }
    let key = body.session_id.trim();
    if key.is_empty() || key.chars().count() > 200 {
        return Err(ApiError::validation(
            "`session_id` must have 1..=200 characters",
        ));
    }
    let session_id = session_for_key(state, &caller.user_id, key).await?;
    let turn = turn(
        &caller,
        &req,
        body.content,
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
    let frames = events.filter_map(|e| async move {
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
    });
    Ok(sse_response(sse_body(frames, guard, Some("[DONE]"))))
}
