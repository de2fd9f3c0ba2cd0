//! The Ollama wire format: `/api/chat`, `/api/embed`, `/api/tags`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::behaviour::{self, ChatInput, Failure, Plan, ToolCall};
use super::{
    Body, BoxError, FLUSH_PAUSE, Flavour, State, StreamGuard, abort_error, client_error,
    full_response, json_response, sleep_if, stream_response, truncated,
};

/// Content type of Ollama's streamed answers.
const NDJSON: &str = "application/x-ndjson";

/// `POST /api/chat`; `stream` defaults to true as in Ollama.
pub(super) async fn chat(state: &Arc<State>, body: &Value) -> Response<Body> {
    let input = ChatInput::from_body(body);
    let stream = body.get("stream").and_then(Value::as_bool) != Some(false);
    let ctx = Ctx {
        model: input.model.clone(),
        prompt_tokens: input.prompt_tokens(),
        started: Instant::now(),
    };
    match behaviour::plan(state, &input) {
        Plan::Fail(failure) => error_response(&failure),
        plan if stream => stream_chat(state.clone(), ctx, plan),
        plan => complete_chat(ctx, plan).await,
    }
}

/// `POST /api/embed`.
pub(super) fn embed(state: &Arc<State>, body: &Value) -> Response<Body> {
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
            Bytes::from_static(b"{\"embeddings\": [[0.1, nope"),
        );
    }
    let Some(inputs) = behaviour::embedding_inputs(body) else {
        return client_error(
            Flavour::Ollama,
            StatusCode::BAD_REQUEST,
            "invalid input type: 'input' must be a string or an array of strings",
        );
    };
    let dimensions = state.config.embedding_dimensions;
    let embeddings: Vec<Vec<f32>> = inputs
        .iter()
        .map(|text| behaviour::embed(text, dimensions))
        .collect();
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    let response = json!({
        "model": model,
        "embeddings": embeddings,
        "total_duration": 1000,
        "load_duration": 0,
        "prompt_eval_count": tokens,
    });
    if model == "drop_mid_stream" {
        return truncated(response.to_string());
    }
    json_response(StatusCode::OK, &response)
}

/// `GET /api/tags`.
pub(super) fn tags() -> Response<Body> {
    let models: Vec<Value> = behaviour::MODEL_NAMES
        .iter()
        .map(|name| {
            json!({
                "name": name,
                "model": name,
                "modified_at": "2024-01-01T00:00:00Z",
                "size": 0,
                "digest": format!("fake-{name}"),
                "details": {
                    "parent_model": "",
                    "format": "gguf",
                    "family": "fake",
                    "families": ["fake"],
                    "parameter_size": "0B",
                    "quantization_level": "none",
                },
            })
        })
        .collect();
    json_response(StatusCode::OK, &json!({ "models": models }))
}

/// An Ollama error response (`{"error": "..."}`), with `Retry-After` when set.
fn error_response(failure: &Failure) -> Response<Body> {
    let mut response = json_response(failure.status, &json!({ "error": failure.message }));
    if let Some(seconds) = failure.retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// What every line of one response shares.
struct Ctx {
    model: String,
    prompt_tokens: usize,
    started: Instant,
}

impl Ctx {
    /// A message object (done or not) without the final statistics.
    fn message(&self, message: Value, done: bool) -> Value {
        json!({
            "model": self.model,
            "created_at": behaviour::rfc3339_now(),
            "message": message,
            "done": done,
        })
    }

    /// The final `done: true` object with statistics.
    fn done(&self, message: Value, eval_count: usize) -> Value {
        let mut done = self.message(message, true);
        let total = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        done["done_reason"] = json!("stop");
        done["total_duration"] = json!(total);
        done["load_duration"] = json!(0);
        done["prompt_eval_count"] = json!(self.prompt_tokens);
        done["prompt_eval_duration"] = json!(total / 4);
        done["eval_count"] = json!(eval_count);
        done["eval_duration"] = json!(total - total / 4);
        done
    }
}

fn text(content: &str) -> Value {
    json!({ "role": "assistant", "content": content })
}

fn tool_message(calls: &[ToolCall]) -> Value {
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|call| json!({ "function": { "name": call.name, "arguments": call.arguments } }))
        .collect();
    json!({ "role": "assistant", "content": "", "tool_calls": tool_calls })
}

/// One NDJSON line.
fn line(value: &Value) -> Result<Bytes, BoxError> {
    Ok(Bytes::from(format!("{value}\n")))
}

/// The `stream: false` answer.
async fn complete_chat(ctx: Ctx, plan: Plan) -> Response<Body> {
    match plan {
        Plan::Fail(failure) => error_response(&failure),
        Plan::Garbage => full_response(
            StatusCode::OK,
            "application/json",
            Bytes::from_static(b"this is not json {"),
        ),
        Plan::Reply { tokens, delay } => {
            sleep_if(delay * u32::try_from(tokens.len()).unwrap_or(u32::MAX)).await;
            json_response(
                StatusCode::OK,
                &ctx.done(text(&tokens.concat()), tokens.len()),
            )
        }
        Plan::Tools { calls, delay } => {
            sleep_if(delay).await;
            json_response(StatusCode::OK, &ctx.done(tool_message(&calls), calls.len()))
        }
        Plan::Drop { tokens, .. } => {
            truncated(ctx.done(text(&tokens.concat()), tokens.len()).to_string())
        }
    }
}

/// The NDJSON answer.
fn stream_chat(state: Arc<State>, ctx: Ctx, plan: Plan) -> Response<Body> {
    let lines = async_stream::stream! {
        let mut guard = StreamGuard::new(state);
        match plan {
            Plan::Fail(_) => guard.finish(),
            Plan::Garbage => {
                yield Ok(Bytes::from_static(b"this is not json\n"));
                guard.finish();
                yield Ok(Bytes::from_static(b"{\"model\": \"garbage\", \"message\": {nope\n"));
            }
            Plan::Reply { tokens, delay } => {
                for token in &tokens {
                    sleep_if(delay).await;
                    yield line(&ctx.message(text(token), false));
                }
                guard.finish();
                yield line(&ctx.done(text(""), tokens.len()));
            }
            Plan::Tools { calls, delay } => {
                sleep_if(delay).await;
                yield line(&ctx.message(tool_message(&calls), false));
                guard.finish();
                yield line(&ctx.done(text(""), calls.len()));
            }
            Plan::Drop { tokens, delay } => {
                for token in &tokens {
                    sleep_if(delay).await;
                    yield line(&ctx.message(text(token), false));
                }
                tokio::time::sleep(FLUSH_PAUSE).await;
                guard.finish();
                yield Err(abort_error());
            }
        }
    };
    stream_response(NDJSON, lines)
}
