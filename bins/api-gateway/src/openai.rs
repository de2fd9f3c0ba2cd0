//! The OpenAI-compatible API: `POST /v1/chat/completions` (JSON, or SSE
//! chunks ending with `data: [DONE]`) and `GET /v1/models`, authenticated
//! by API key or JWT, answered by confab's agents (RAG, tools) through
//! chat-service. A conversation is stateless unless the `X-Confab-Session-Id`
//! header (or the `user` field) names one of the caller's sessions, which
//! then continues (and is saved). Errors use OpenAI's shape
//! `{"error": {"message", "type", "code"}}` so SDKs report them properly.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, get, post, web};
use bytes::Bytes;
use chrono::Utc;
use confab_error::ErrorKind;
use confab_models::{FinishReason, RelayEvent, ServerEvent, SourceInfo, Usage};
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use confab_web::ApiError;

use crate::auth::AuthUser;
use crate::state::GatewayState;

/// Models: `confab` (the default backend), `confab-simple` (RAG),
/// `confab-agent` (tools), `confab-course-<track id>` (the course agent).
const MODELS: &[(&str, &str)] = &[
    (
        "confab",
        "the default chat backend with the dashboard agent",
    ),
    (
        "confab-simple",
        "retrieval-augmented answers with cited sources",
    ),
    (
        "confab-agent",
        "the tool-using agent (tracks, progress, knowledge search, MCP tools)",
    ),
];

/// An error in OpenAI's shape `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiError {
    status: StatusCode,
    body: OaErrorBody,
    retry_after: Option<u64>,
    /// chat-service's status passed on (not counted as the gateway's own 429).
    upstream: bool,
}

/// The `error` object of an OpenAI error.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct OaErrorBody {
    message: String,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<String>,
    code: String,
}

/// `{"error": ...}`.
#[derive(Serialize)]
struct OaErrorEnvelope<'a> {
    error: &'a OaErrorBody,
}

impl OpenAiError {
    fn new(status: StatusCode, kind: &'static str, code: &str, message: impl Into<String>) -> Self {
        let body = OaErrorBody {
            message: message.into(),
            kind,
            param: None,
            code: code.to_owned(),
        };
        Self {
            status,
            body,
            retry_after: None,
            upstream: false,
        }
    }

    /// 400 `invalid_request_error`.
    fn invalid(code: &str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message,
        )
    }

    /// chat-service's error status, passed on (a 429 is `rate_limit_error`
    /// with the provider's wait).
    fn upstream(
        status: StatusCode,
        code: &str,
        message: impl Into<String>,
        retry: Option<u64>,
    ) -> Self {
        let kind = match status {
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            s if s.is_client_error() => "invalid_request_error",
            _ => "api_error",
        };
        Self {
            retry_after: retry,
            upstream: true,
            ..Self::new(status, kind, code, message)
        }
    }

    /// An `error` event of chat-service: OpenAI's status for its kind
    /// (every invalid request is a 400; chat-service's own faults are the
    /// gateway's 502).
    fn from_event(kind: ErrorKind, code: &str, message: &str) -> Self {
        let status = match ApiError::status_of(kind) {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            StatusCode::INTERNAL_SERVER_ERROR => StatusCode::BAD_GATEWAY,
            s => s,
        };
        let retry = kind.retry_after().map(|w| w.as_secs());
        let kind = if status == StatusCode::TOO_MANY_REQUESTS {
            "rate_limit_error"
        } else {
            "api_error"
        };
        Self {
            retry_after: retry,
            upstream: true,
            ..Self::new(status, kind, code, message)
        }
    }

    /// chat-service's stream ended without `done` or `error`.
    fn ended_early() -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "api_error",
            "bad_gateway",
            "chat-service ended the answer early",
        )
    }

    /// The error as an SSE `data:` frame.
    fn frame(&self) -> Bytes {
        sse_frame(&OaErrorEnvelope { error: &self.body })
    }
}

impl std::fmt::Display for OpenAiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.body.code, self.status, self.body.message
        )
    }
}

impl ResponseError for OpenAiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status).json(OaErrorEnvelope { error: &self.body });
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.upstream {
            res = crate::metrics::mark_upstream(res);
        }
        res
    }
}

/// An authentication or rate-limit failure (or chat-service unreachable).
impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        let kind = match e.status.as_u16() {
            401 => "authentication_error",
            429 => "rate_limit_error",
            _ => "api_error",
        };
        Self {
            retry_after: e.retry_after_secs(),
            ..Self::new(e.status, kind, e.code, e.message)
        }
    }
}

/// The request body could not be read.
impl From<crate::body::BodyError> for OpenAiError {
    fn from(e: crate::body::BodyError) -> Self {
        let kind = if e.status().is_client_error() {
            "invalid_request_error"
        } else {
            "api_error"
        };
        Self::new(e.status(), kind, e.code(), e.to_string())
    }
}

/// `GET /v1/models`.
#[utoipa::path(get, path = "/v1/models", tag = "openai", security(("bearer" = [])),
    responses((status = 200, description = "OpenAI model list", body = Object)))]
#[get("/v1/models")]
pub async fn models(
    state: web::Data<GatewayState>,
    auth: Result<AuthUser, ApiError>,
) -> Result<web::Json<ModelList>, OpenAiError> {
    auth?;
    // confab's routes, then the provider models users may pick (CONFAB_ALLOWED_MODELS).
    let allowed = state
        .proxy
        .allowed_models
        .names()
        .iter()
        .map(String::as_str);
    let data = MODELS
        .iter()
        .map(|(id, _)| *id)
        .chain(allowed)
        .map(|id| ModelCard {
            id: id.to_owned(),
            object: "model",
            created: 1_767_225_600, // 2026-01-01
            owned_by: "confab",
        })
        .collect();
    Ok(web::Json(ModelList {
        object: "list",
        data,
    }))
}

/// `GET /v1/models`' answer.
#[derive(Debug, Serialize)]
pub struct ModelList {
    object: &'static str,
    data: Vec<ModelCard>,
}

/// One model of the list.
#[derive(Debug, Serialize)]
struct ModelCard {
    id: String,
    object: &'static str,
    created: i64,
    owned_by: &'static str,
}

/// A message of an OpenAI request (content as text or text parts).
#[derive(Debug, Deserialize)]
struct OaMessage {
    role: String,
    #[serde(default)]
    content: OaContent,
}

/// A message's content, parsed straight from the body: no tree of JSON
/// values is built, so a huge array of numbers fails at its first element
/// instead of taking memory for every one of them.
#[derive(Debug, Default)]
enum OaContent {
    /// Absent or null.
    #[default]
    Empty,
    /// A string.
    Text(String),
    /// An array of parts.
    Parts(Vec<OaPart>),
}

/// One part of an array content (fields other than these are skipped).
#[derive(Debug, Deserialize)]
struct OaPart {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

impl<'de> Deserialize<'de> for OaContent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'v> serde::de::Visitor<'v> for Visitor {
            type Value = OaContent;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`content` as a string or an array of text parts")
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<OaContent, E> {
                Ok(OaContent::Empty)
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<OaContent, E> {
                Ok(OaContent::Empty)
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OaContent, E> {
                Ok(OaContent::Text(v.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<OaContent, E> {
                Ok(OaContent::Text(v))
            }

            fn visit_seq<A: serde::de::SeqAccess<'v>>(
                self,
                mut seq: A,
            ) -> Result<OaContent, A::Error> {
                let mut parts = Vec::new();
                while let Some(part) = seq.next_element::<OaPart>()? {
                    parts.push(part);
                }
                Ok(OaContent::Parts(parts))
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Debug, Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The fields of an OpenAI request confab uses (others are accepted and
/// skipped without being kept).
#[derive(Debug, Deserialize)]
struct OaRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<OaMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    user: Option<String>,
    /// confab extension: knowledge base ids the answer draws on.
    #[serde(default)]
    knowledge: Vec<Uuid>,
}

/// Text of a message's content: a string, or the text parts of an array.
fn content_text(content: &OaContent) -> Result<String, String> {
    match content {
        OaContent::Empty => Ok(String::new()),
        OaContent::Text(s) => Ok(s.clone()),
        OaContent::Parts(parts) => {
            let mut out = Vec::new();
            for p in parts {
                match (p.kind.as_deref(), p.text.as_deref()) {
                    (Some("text"), Some(t)) => out.push(t.to_owned()),
                    (Some(kind), _) => {
                        return Err(format!("content parts of type `{kind}` are not supported"));
                    }
                    _ => return Err("content parts need a `type`".into()),
                }
            }
            Ok(out.join("\n"))
        }
    }
}

/// The backend, agent and course a model name stands for.
fn route_model(model: &str) -> Option<(Option<&'static str>, &'static str, Option<String>)> {
    match model {
        "confab" => Some((None, "dashboard", None)),
        "confab-simple" => Some((Some("simple"), "dashboard", None)),
        "confab-agent" => Some((Some("agent"), "dashboard", None)),
        m => m
            .strip_prefix("confab-course-")
            .filter(|c| !c.is_empty())
            .map(|c| (None, "course", Some(c.to_owned()))),
    }
}

/// The body of chat-service's `POST /api/chat/completions`.
#[derive(Debug, Serialize)]
struct UpstreamRequest {
    messages: Vec<UpstreamMessage>,
    session_id: Option<Uuid>,
    agent: &'static str,
    course_id: Option<String>,
    backend: Option<&'static str>,
    /// Knowledge bases the answer draws on (omitted when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    knowledge: Vec<Uuid>,
}

/// One message of the conversation chat-service answers.
#[derive(Debug, Serialize)]
struct UpstreamMessage {
    role: &'static str,
    content: String,
}

/// The request's messages for chat-service (tool messages dropped); the
/// last must be the user's.
fn upstream_messages(messages: &[OaMessage]) -> Result<Vec<UpstreamMessage>, OpenAiError> {
    let mut out = Vec::new();
    for m in messages {
        let role = match m.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            "tool" | "function" => continue,
            other => {
                return Err(OpenAiError::invalid(
                    "invalid_role",
                    format!("unknown role `{other}`"),
                ));
            }
        };
        let content =
            content_text(&m.content).map_err(|e| OpenAiError::invalid("invalid_content", e))?;
        out.push(UpstreamMessage { role, content });
    }
    if out.last().map(|m| m.role) != Some("user") {
        return Err(OpenAiError::invalid(
            "invalid_messages",
            "the last message must be from the user",
        ));
    }
    Ok(out)
}

/// The upstream request for a model: its route, or an allowed provider
/// model on the default route (then `identity` asks chat-service for it).
fn upstream_request(
    state: &GatewayState,
    request: &OaRequest,
    model: &str,
    identity: &mut crate::proxy::Identity,
    session_id: Option<Uuid>,
) -> Result<UpstreamRequest, OpenAiError> {
    let routed = route_model(model).or_else(|| {
        state.proxy.allowed_models.contains(model).then(|| {
            identity.settings = Some(crate::allowed::AllowedModels::with_model(
                identity.settings.as_deref(),
                model.trim(),
            ));
            (None, "dashboard", None)
        })
    });
    let Some((backend, agent, course_id)) = routed else {
        return Err(OpenAiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!("the model `{model}` does not exist; see GET /v1/models"),
        ));
    };
    Ok(UpstreamRequest {
        messages: upstream_messages(&request.messages)?,
        session_id,
        agent,
        course_id,
        backend,
        knowledge: request.knowledge.clone(),
    })
}

/// The session a request continues: `X-Confab-Session-Id`, else `user`, when a UUID.
fn session_of(req: &HttpRequest, request: &OaRequest) -> Option<Uuid> {
    req.headers()
        .get("x-confab-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(request.user.clone())
        .and_then(|s| Uuid::parse_str(s.trim()).ok())
}

/// Reads the body (only now that the caller is known, within the route's limit).
async fn read_request(
    state: &GatewayState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<OaRequest, OpenAiError> {
    let body = state
        .bodies
        .read(req, payload, state.body_limits.default)
        .await?;
    serde_json::from_slice::<OaRequest>(&body.bytes)
        .map_err(|e| OpenAiError::invalid("invalid_json", format!("invalid request body: {e}")))
}

/// Sends the conversation to chat-service; its refusal comes back in OpenAI's shape.
async fn call_upstream(
    state: &GatewayState,
    req: &HttpRequest,
    body: &UpstreamRequest,
    identity: &crate::proxy::Identity,
) -> Result<reqwest::Response, OpenAiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| OpenAiError::from(ApiError::internal(e)))?;
    let content_type = [("content-type", b"application/json".to_vec())];
    let request_id = crate::request_id_of(req);
    let resp = state
        .proxy
        .send(
            reqwest::Method::POST,
            "/api/chat/completions",
            &content_type,
            Bytes::from(bytes),
            identity,
            &request_id,
        )
        .await
        .map_err(|e| OpenAiError::new(e.status, "api_error", e.code, e.message))?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body: Option<confab_web::ErrorBody> = resp.json().await.ok();
    let (code, message) = body.map_or_else(
        || {
            (
                "upstream_error".to_owned(),
                "chat-service refused the request".to_owned(),
            )
        },
        |b| (b.error, b.message),
    );
    Err(OpenAiError::upstream(status, &code, message, retry_after))
}

/// chat-service's events; an unreadable one ends the stream with an error
/// (logged) instead of being skipped.
fn relay_events(resp: reqwest::Response) -> impl Stream<Item = Result<RelayEvent, String>> {
    resp.bytes_stream()
        .eventsource()
        .map(|e| match e {
            Ok(e) => serde_json::from_str::<RelayEvent>(&e.data)
                .map_err(|err| format!("unreadable chat event: {err}")),
            Err(err) => Err(format!("broken event stream: {err}")),
        })
        .scan(false, |failed, e| {
            let item = (!*failed).then_some(e);
            if let Some(Err(err)) = &item {
                tracing::error!(error = %err, "chat-service stream from upstream is corrupt; ending the answer");
                *failed = true;
            }
            futures_util::future::ready(item)
        })
}

/// `POST /v1/chat/completions`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "openai", security(("bearer" = [])),
    request_body(content = Object, description = "OpenAI chat completion request: {model, messages, stream?, stream_options?, user?}"),
    responses((status = 200, description = "chat.completion JSON, or text/event-stream of chat.completion.chunk", body = Object),
        (status = 400, description = "Invalid request (OpenAI error shape)"),
        (status = 401, description = "Not authenticated"),
        (status = 404, description = "Unknown model or session"),
        (status = 429, description = "A rate limit, the gateway's or the model provider's (`rate_limit_error`, `Retry-After` when known)"),
        (status = 503, description = "No chat-service instance reachable")))]
#[post("/v1/chat/completions")]
pub async fn chat_completions(
    state: web::Data<GatewayState>,
    auth: Result<AuthUser, ApiError>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OpenAiError> {
    let auth = auth?;
    let request = read_request(&state, &req, payload).await?;
    let model = request.model.clone().unwrap_or_else(|| "confab".into());
    let mut identity = auth.identity();
    let session = session_of(&req, &request);
    let upstream = upstream_request(&state, &request, &model, &mut identity, session)?;
    let resp = call_upstream(&state, &req, &upstream, &identity).await?;
    let head = Head {
        id: format!("chatcmpl-{}", Uuid::new_v4().simple()),
        created: Utc::now().timestamp(),
        model,
    };
    let events = relay_events(resp);
    if !request.stream {
        return Ok(HttpResponse::Ok().json(whole(events, head).await?));
    }
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    Ok(HttpResponse::Ok()
        .insert_header(("content-type", "text/event-stream"))
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(chunks(events, head, include_usage)))
}

/// What every completion object of one answer repeats.
#[derive(Debug, Clone, Serialize)]
struct Head {
    id: String,
    created: i64,
    model: String,
}

/// A `chat.completion`.
#[derive(Debug, Serialize)]
struct Completion {
    #[serde(flatten)]
    head: Head,
    object: &'static str,
    choices: [Choice; 1],
    usage: Usage,
    /// confab's additions: where the answer was saved, and its sources.
    confab: ConfabExtra,
}

#[derive(Debug, Serialize)]
struct Choice {
    index: u32,
    message: AssistantMessage,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Debug, Serialize)]
struct AssistantMessage {
    role: &'static str,
    content: String,
    refusal: Option<String>,
}

#[derive(Debug, Serialize)]
struct ConfabExtra {
    session_id: Uuid,
    message_id: Uuid,
    sources: Vec<SourceInfo>,
}

/// A `chat.completion.chunk` (`choices` empty on the usage chunk).
#[derive(Debug, Serialize)]
struct Chunk<'a> {
    #[serde(flatten)]
    head: &'a Head,
    object: &'static str,
    choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Debug, Serialize)]
struct ChunkChoice {
    index: u32,
    delta: Delta,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

/// What a chunk adds to the message.
#[derive(Debug, Default, Serialize)]
struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
}

impl Chunk<'_> {
    fn delta(head: &Head, delta: Delta, finish_reason: Option<&'static str>) -> Bytes {
        let choice = ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        };
        sse_frame(&Chunk {
            head,
            object: "chat.completion.chunk",
            choices: vec![choice],
            usage: None,
        })
    }

    fn usage(head: &Head, usage: Usage) -> Bytes {
        sse_frame(&Chunk {
            head,
            object: "chat.completion.chunk",
            choices: Vec::new(),
            usage: Some(usage),
        })
    }
}

/// One SSE `data:` frame of JSON.
fn sse_frame(value: &impl Serialize) -> Bytes {
    Bytes::from(format!(
        "data: {}\n\n",
        serde_json::to_string(value).unwrap_or_default()
    ))
}

/// OpenAI's finish reason: `length`, or `stop` for every other end.
fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "length",
        _ => "stop",
    }
}

/// An `error` event as OpenAI's error, or `None` for another event.
fn event_error(e: &RelayEvent) -> Option<OpenAiError> {
    match &e.event {
        ServerEvent::Error { code, message, .. } => {
            Some(OpenAiError::from_event(e.error_kind(), code, message))
        }
        _ => None,
    }
}

/// Collects the events into one `chat.completion`.
async fn whole(
    events: impl Stream<Item = Result<RelayEvent, String>>,
    head: Head,
) -> Result<Completion, OpenAiError> {
    let mut events = std::pin::pin!(events);
    let mut content = String::new();
    let mut sources = Vec::new();
    while let Some(Ok(e)) = events.next().await {
        if let Some(err) = event_error(&e) {
            return Err(err);
        }
        match e.event {
            ServerEvent::Token { content: t } => content.push_str(&t),
            ServerEvent::Sources { sources: s } => sources = s,
            ServerEvent::Done {
                session_id,
                message_id,
                usage,
                finish_reason: reason,
                ..
            } => {
                let confab = ConfabExtra {
                    session_id,
                    message_id,
                    sources,
                };
                return Ok(Completion::new(head, content, reason, usage, confab));
            }
            _ => {}
        }
    }
    Err(OpenAiError::ended_early())
}

impl Completion {
    /// The `chat.completion` of one whole answer.
    fn new(
        head: Head,
        content: String,
        reason: FinishReason,
        usage: Usage,
        confab: ConfabExtra,
    ) -> Self {
        let message = AssistantMessage {
            role: "assistant",
            content,
            refusal: None,
        };
        let choice = Choice {
            index: 0,
            message,
            logprobs: None,
            finish_reason: finish_reason(reason),
        };
        Self {
            head,
            object: "chat.completion",
            choices: [choice],
            usage,
            confab,
        }
    }
}

/// Turns chat events into `chat.completion.chunk` SSE frames as they come.
fn chunks(
    events: impl Stream<Item = Result<RelayEvent, String>> + 'static,
    head: Head,
    include_usage: bool,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    async_stream::stream! {
        let mut events = Box::pin(events);
        let start = Delta { role: Some("assistant"), content: Some(String::new()) };
        yield Ok(Chunk::delta(&head, start, None));
        let mut ended = false;
        while let Some(Ok(e)) = events.next().await {
            if let Some(err) = event_error(&e) {
                yield Ok(err.frame());
                ended = true;
                break;
            }
            match e.event {
                ServerEvent::Token { content } => {
                    yield Ok(Chunk::delta(&head, Delta { content: Some(content), ..Delta::default() }, None));
                }
                ServerEvent::Done { usage, finish_reason: reason, .. } => {
                    yield Ok(Chunk::delta(&head, Delta::default(), Some(finish_reason(reason))));
                    if include_usage {
                        yield Ok(Chunk::usage(&head, usage));
                    }
                    ended = true;
                    break;
                }
                _ => {}
            }
        }
        if !ended {
            yield Ok(OpenAiError::ended_early().frame());
        }
        yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
    }
}
