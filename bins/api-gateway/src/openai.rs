//! The OpenAI-compatible API: `POST /v1/chat/completions` (JSON, or SSE
//! chunks ending with `data: [DONE]`) and `GET /v1/models`, authenticated
//! by API key or JWT, answered by confab's agents (RAG, tools) through
//! chat-service. A conversation is stateless unless the `X-Confab-Session-Id`
//! header (or the `user` field) names one of the caller's sessions, which
//! then continues (and is saved). Errors use OpenAI's shape
//! `{"error": {"message", "type", "code"}}` so SDKs report them properly.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use bytes::Bytes;
use chrono::Utc;
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
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

/// An OpenAI-style error response.
fn oa_error(
    status: StatusCode,
    kind: &str,
    code: &str,
    message: impl Into<String>,
) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": { "message": message.into(), "type": kind, "param": null, "code": code }
    }))
}

/// An authentication or rate-limit failure in OpenAI's shape.
fn auth_error(e: ApiError) -> HttpResponse {
    let kind = match e.status.as_u16() {
        401 => "authentication_error",
        429 => "rate_limit_error",
        _ => "api_error",
    };
    let retry_after = e.retry_after_secs();
    with_retry_after(oa_error(e.status, kind, e.code, e.message), retry_after)
}

/// `res` with `Retry-After: <secs>` when a wait is known.
fn with_retry_after(mut res: HttpResponse, secs: Option<u64>) -> HttpResponse {
    if let Some(secs) = secs {
        res.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(secs),
        );
    }
    res
}

/// chat-service's error (an HTTP status, or an `error` event mapped to one)
/// in OpenAI's shape: a 429 is `rate_limit_error` with the provider's
/// `Retry-After` when known; marked as upstream so the gateway's own
/// rate-limit metric does not count it.
fn upstream_error(
    status: StatusCode,
    kind: &str,
    code: &str,
    message: impl Into<String>,
    retry_after: Option<u64>,
) -> HttpResponse {
    let kind = if status == StatusCode::TOO_MANY_REQUESTS {
        "rate_limit_error"
    } else {
        kind
    };
    crate::metrics::mark_upstream(with_retry_after(
        oa_error(status, kind, code, message),
        retry_after,
    ))
}

/// `GET /v1/models`.
#[utoipa::path(get, path = "/v1/models", tag = "openai", security(("bearer" = [])),
    responses((status = 200, description = "OpenAI model list", body = Object)))]
#[get("/v1/models")]
pub async fn models(
    state: web::Data<GatewayState>,
    auth: Result<AuthUser, ApiError>,
) -> HttpResponse {
    if let Err(e) = auth {
        return auth_error(e);
    }
    let created = 1_767_225_600; // 2026-01-01
    // confab's routes, then the provider models users may pick (CONFAB_ALLOWED_MODELS).
    let allowed = state
        .proxy
        .allowed_models
        .names()
        .iter()
        .map(String::as_str);
    let data: Vec<Value> = MODELS
        .iter()
        .map(|(id, _)| *id)
        .chain(allowed)
        .map(|id| json!({ "id": id, "object": "model", "created": created, "owned_by": "confab" }))
        .collect();
    HttpResponse::Ok().json(json!({ "object": "list", "data": data }))
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
) -> HttpResponse {
    let auth = match auth {
        Ok(a) => a,
        Err(e) => return auth_error(e),
    };
    // Read only now that the caller is known, within the route's limit.
    let body = match state
        .bodies
        .read(&req, payload, state.body_limits.default)
        .await
    {
        Ok(b) => b,
        Err(e) => {
            let kind = if e.status().is_client_error() {
                "invalid_request_error"
            } else {
                "api_error"
            };
            return oa_error(e.status(), kind, e.code(), e.to_string());
        }
    };
    let parsed = serde_json::from_slice::<OaRequest>(&body.bytes);
    drop(body);
    let request: OaRequest = match parsed {
        Ok(r) => r,
        Err(e) => {
            return oa_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_json",
                format!("invalid request body: {e}"),
            );
        }
    };
    let model = request.model.clone().unwrap_or_else(|| "confab".into());
    let mut identity = auth.identity();
    // An allowed provider model: the default route, answered by that model.
    let routed = route_model(&model).or_else(|| {
        state.proxy.allowed_models.contains(&model).then(|| {
            identity.settings = Some(crate::allowed::AllowedModels::with_model(
                identity.settings.as_deref(),
                model.trim(),
            ));
            (None, "dashboard", None)
        })
    });
    let Some((backend, agent, course)) = routed else {
        return oa_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!("the model `{model}` does not exist; see GET /v1/models"),
        );
    };
    let mut messages = Vec::new();
    for m in &request.messages {
        let role = match m.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            "tool" | "function" => continue,
            other => {
                return oa_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "invalid_role",
                    format!("unknown role `{other}`"),
                );
            }
        };
        match content_text(&m.content) {
            Ok(text) => messages.push(json!({ "role": role, "content": text })),
            Err(e) => {
                return oa_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    "invalid_content",
                    e,
                );
            }
        }
    }
    if messages.last().and_then(|m| m["role"].as_str()) != Some("user") {
        return oa_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_messages",
            "the last message must be from the user",
        );
    }
    let session = req
        .headers()
        .get("x-confab-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(request.user.clone())
        .and_then(|s| Uuid::parse_str(s.trim()).ok());
    let upstream_body = json!({
        "messages": messages,
        "session_id": session,
        "agent": agent,
        "course_id": course,
        "backend": backend,
        "knowledge": request.knowledge,
    });
    let request_id = crate::request_id_of(&req);
    let resp = match state
        .proxy
        .send(
            reqwest::Method::POST,
            "/api/chat/completions",
            &[("content-type", b"application/json".to_vec())],
            Bytes::from(upstream_body.to_string()),
            &identity,
            &request_id,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return oa_error(e.status, "api_error", e.code, e.message),
    };
    if !resp.status().is_success() {
        let status =
            StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let code = body["error"]
            .as_str()
            .unwrap_or("upstream_error")
            .to_owned();
        let message = body["message"]
            .as_str()
            .unwrap_or("chat-service refused the request")
            .to_owned();
        let kind = if status.is_client_error() {
            "invalid_request_error"
        } else {
            "api_error"
        };
        return upstream_error(status, kind, &code, message, retry_after);
    }
    let id = format!("chatcmpl-{}", Uuid::new_v4().simple());
    let created = Utc::now().timestamp();
    let events = resp
        .bytes_stream()
        .eventsource()
        .filter_map(|e| async move {
            e.ok()
                .and_then(|e| serde_json::from_str::<Value>(&e.data).ok())
        });
    if request.stream {
        let include_usage = request
            .stream_options
            .map(|o| o.include_usage)
            .unwrap_or(false);
        HttpResponse::Ok()
            .insert_header(("content-type", "text/event-stream"))
            .insert_header(("cache-control", "no-cache"))
            .insert_header(("x-accel-buffering", "no"))
            .streaming(chunks(events, id, created, model, include_usage))
    } else {
        whole(events, id, created, model).await
    }
}

fn finish_reason(done: &Value) -> &'static str {
    match done["finish_reason"].as_str() {
        Some("length") => "length",
        _ => "stop",
    }
}

/// Collects the events into one `chat.completion`.
async fn whole(
    events: impl Stream<Item = Value>,
    id: String,
    created: i64,
    model: String,
) -> HttpResponse {
    let mut events = Box::pin(events);
    let mut content = String::new();
    let mut sources = Value::Array(Vec::new());
    while let Some(e) = events.next().await {
        match e["type"].as_str() {
            Some("token") => content.push_str(e["content"].as_str().unwrap_or("")),
            Some("sources") => sources = e["sources"].clone(),
            Some("done") => {
                return HttpResponse::Ok().json(json!({
                    "id": id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{
                        "index": 0,
                        "message": { "role": "assistant", "content": content, "refusal": null },
                        "logprobs": null,
                        "finish_reason": finish_reason(&e),
                    }],
                    "usage": e["usage"],
                    "confab": {
                        "session_id": e["session_id"],
                        "message_id": e["message_id"],
                        "sources": sources,
                    },
                }));
            }
            Some("error") => {
                let code = e["code"].as_str().unwrap_or("error").to_owned();
                let status = error_status(&code);
                return upstream_error(
                    status,
                    "api_error",
                    &code,
                    e["message"].as_str().unwrap_or("generation failed"),
                    e["retry_after_secs"].as_u64(),
                );
            }
            _ => {}
        }
    }
    oa_error(
        StatusCode::BAD_GATEWAY,
        "api_error",
        "bad_gateway",
        "chat-service ended the answer early",
    )
}

/// The HTTP status of a chat error code.
fn error_status(code: &str) -> StatusCode {
    match code {
        "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
        "invalid_message" | "unknown_backend" | "missing_course" | "invalid_request" => {
            StatusCode::BAD_REQUEST
        }
        "not_found" => StatusCode::NOT_FOUND,
        "storage_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// Turns chat events into `chat.completion.chunk` SSE frames as they come.
fn chunks(
    events: impl Stream<Item = Value> + 'static,
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        })
    };
    let frame = |v: Value| Ok(Bytes::from(format!("data: {v}\n\n")));
    async_stream::stream! {
        let mut events = Box::pin(events);
        yield frame(chunk(json!({ "role": "assistant", "content": "" }), None));
        let mut ended = false;
        while let Some(e) = events.next().await {
            match e["type"].as_str() {
                Some("token") => yield frame(chunk(json!({ "content": e["content"] }), None)),
                Some("done") => {
                    yield frame(chunk(json!({}), Some(finish_reason(&e))));
                    if include_usage {
                        let mut usage = chunk(json!({}), None);
                        usage["choices"] = json!([]);
                        usage["usage"] = e["usage"].clone();
                        yield frame(usage);
                    }
                    ended = true;
                    break;
                }
                Some("error") => {
                    let kind = if e["code"] == "rate_limited" { "rate_limit_error" } else { "api_error" };
                    yield frame(json!({ "error": {
                        "message": e["message"], "type": kind, "param": null, "code": e["code"],
                    }}));
                    ended = true;
                    break;
                }
                _ => {}
            }
        }
        if !ended {
            yield frame(json!({ "error": { "message": "chat-service ended the answer early", "type": "api_error", "param": null, "code": "bad_gateway" }}));
        }
        yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
    }
}
