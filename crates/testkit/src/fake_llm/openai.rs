//! The OpenAI wire format: `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::behaviour::{self, ChatInput, Failure, Plan, ToolCall};
use super::{
    Body, BoxError, FLUSH_PAUSE, Flavour, State, StreamGuard, abort_error, client_error,
    full_response, json_response, sleep_if, stream_response, truncated,
};

/// `POST /v1/chat/completions`.
pub(super) async fn chat(state: &Arc<State>, body: &Value) -> Response<Body> {
    let input = ChatInput::from_body(body);
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let ctx = Ctx {
        id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
        created: behaviour::unix_now(),
        model: input.model.clone(),
        prompt_tokens: input.prompt_tokens(),
        include_usage,
    };
    match behaviour::plan(state, &input) {
        Plan::Fail(failure) => error_response(&failure),
        plan if stream => stream_chat(state.clone(), ctx, plan),
        plan => complete_chat(ctx, plan).await,
    }
}

/// `POST /v1/embeddings`.
pub(super) fn embeddings(state: &Arc<State>, body: &Value) -> Response<Body> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(failure) = behaviour::failure(state, model) {
        return error_response(&failure);
    }
    if model == "garbage" {
        return full_response(
            StatusCode::OK,
            "application/json",
            Bytes::from_static(b"{\"object\": \"list\", \"data\": [nope"),
        );
    }
    let Some(inputs) = behaviour::embedding_inputs(body) else {
        return client_error(
            Flavour::OpenAi,
            StatusCode::BAD_REQUEST,
            "'input' must be a string or an array of strings",
        );
    };
    let dimensions = state.config.embedding_dimensions;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            json!({
                "object": "embedding",
                "index": index,
                "embedding": behaviour::embed(text, dimensions),
            })
        })
        .collect();
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    let response = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    });
    if model == "drop_mid_stream" {
        return truncated(response.to_string());
    }
    json_response(StatusCode::OK, &response)
}

/// `GET /v1/models`.
pub(super) fn models() -> Response<Body> {
    let data: Vec<Value> = behaviour::MODEL_NAMES
        .iter()
        .map(|name| {
            json!({
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "fake",
            })
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "object": "list", "data": data }))
}

/// An OpenAI error response, with `Retry-After` when the failure carries one.
fn error_response(failure: &Failure) -> Response<Body> {
    let mut response = json_response(
        failure.status,
        &json!({
            "error": {
                "message": failure.message,
                "type": failure.kind,
                "param": null,
                "code": failure.code,
            }
        }),
    );
    if let Some(seconds) = failure.retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// What every chunk and completion of one response shares.
struct Ctx {
    id: String,
    created: i64,
    model: String,
    prompt_tokens: usize,
    include_usage: bool,
}

impl Ctx {
    fn usage(&self, completion_tokens: usize) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        })
    }

    /// A `chat.completion.chunk` event with one choice.
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Result<Bytes, BoxError> {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        });
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        Ok(event(&chunk))
    }

    /// The final usage chunk sent when `stream_options.include_usage` is true.
    fn usage_chunk(&self, completion_tokens: usize) -> Result<Bytes, BoxError> {
        Ok(event(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [],
            "usage": self.usage(completion_tokens),
        })))
    }

    /// A whole `chat.completion` object.
    fn completion(&self, message: Value, finish_reason: &str, completion_tokens: usize) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_fake",
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
            "usage": self.usage(completion_tokens),
        })
    }
}

/// One SSE event carrying `value`.
fn event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// The first delta of a tool call: index, id, type, name and empty arguments.
fn tool_call_header(index: usize, call: &ToolCall) -> Value {
    json!({
        "index": index,
        "id": call.id,
        "type": "function",
        "function": { "name": call.name, "arguments": "" },
    })
}

/// The streamed deltas of `calls`, in order: each call's header, then the
/// argument fragments of all calls interleaved.
fn tool_call_deltas(calls: &[ToolCall]) -> Vec<Value> {
    let fragments: Vec<Vec<String>> = calls.iter().map(ToolCall::argument_fragments).collect();
    let rounds = fragments.iter().map(Vec::len).max().unwrap_or(0);
    let mut deltas = Vec::new();
    for round in 0..rounds.max(1) {
        for (index, call) in calls.iter().enumerate() {
            if round == 0 {
                deltas.push(tool_call_header(index, call));
            }
            if let Some(piece) = fragments[index].get(round) {
                deltas.push(json!({ "index": index, "function": { "arguments": piece } }));
            }
        }
    }
    deltas
}

/// The non-streaming answer.
async fn complete_chat(ctx: Ctx, plan: Plan) -> Response<Body> {
    match plan {
        Plan::Fail(failure) => error_response(&failure),
        Plan::Garbage => full_response(
            StatusCode::OK,
            "application/json",
            Bytes::from_static(b"{\"id\": \"chatcmpl-garbage\", \"choices\": [{not json"),
        ),
        Plan::Reply { tokens, delay } => {
            sleep_if(delay * u32::try_from(tokens.len()).unwrap_or(u32::MAX)).await;
            let message =
                json!({ "role": "assistant", "content": tokens.concat(), "refusal": null });
            json_response(
                StatusCode::OK,
                &ctx.completion(message, "stop", tokens.len()),
            )
        }
        Plan::Tools { calls, delay } => {
            sleep_if(delay).await;
            let tool_calls: Vec<Value> = calls
                .iter()
                .map(|call| {
                    json!({
                        "id": call.id,
                        "type": "function",
                        "function": { "name": call.name, "arguments": call.arguments_text() },
                    })
                })
                .collect();
            let completion_tokens = tool_call_deltas(&calls).len();
            let message = json!({
                "role": "assistant",
                "content": null,
                "tool_calls": tool_calls,
                "refusal": null,
            });
            json_response(
                StatusCode::OK,
                &ctx.completion(message, "tool_calls", completion_tokens),
            )
        }
        Plan::Drop { tokens, .. } => {
            let message = json!({ "role": "assistant", "content": tokens.concat() });
            truncated(ctx.completion(message, "stop", tokens.len()).to_string())
        }
    }
}

/// The `text/event-stream` answer.
fn stream_chat(state: Arc<State>, ctx: Ctx, plan: Plan) -> Response<Body> {
    let chunks = async_stream::stream! {
        let mut guard = StreamGuard::new(state);
        match plan {
            Plan::Fail(_) => guard.finish(),
            Plan::Garbage => {
                yield Ok(Bytes::from_static(b"data: {not json\n\n"));
                guard.finish();
                yield Ok(Bytes::from_static(b"data: {\"choices\": [{\"delta\": nope\n\n"));
            }
            Plan::Reply { tokens, delay } => {
                yield ctx.chunk(json!({ "role": "assistant", "content": "" }), None);
                for token in &tokens {
                    sleep_if(delay).await;
                    yield ctx.chunk(json!({ "content": token }), None);
                }
                yield ctx.chunk(json!({}), Some("stop"));
                if ctx.include_usage {
                    yield ctx.usage_chunk(tokens.len());
                }
                guard.finish();
                yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
            }
            Plan::Tools { calls, delay } => {
                let deltas = tool_call_deltas(&calls);
                for (i, delta) in deltas.iter().enumerate() {
                    sleep_if(delay).await;
                    let delta = if i == 0 {
                        json!({ "role": "assistant", "content": null, "tool_calls": [delta] })
                    } else {
                        json!({ "tool_calls": [delta] })
                    };
                    yield ctx.chunk(delta, None);
                }
                yield ctx.chunk(json!({}), Some("tool_calls"));
                if ctx.include_usage {
                    yield ctx.usage_chunk(deltas.len());
                }
                guard.finish();
                yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
            }
            Plan::Drop { tokens, delay } => {
                yield ctx.chunk(json!({ "role": "assistant", "content": "" }), None);
                for token in &tokens {
                    sleep_if(delay).await;
                    yield ctx.chunk(json!({ "content": token }), None);
                }
                tokio::time::sleep(FLUSH_PAUSE).await;
                guard.finish();
                yield Err(abort_error());
            }
        }
    };
    stream_response("text/event-stream", chunks)
}
