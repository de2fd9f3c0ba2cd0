//! What a model name does, independent of the wire format.

use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::{Value, json};

use super::State;

/// Every model name with a distinct behaviour.
pub(super) const MODEL_NAMES: &[&str] = &[
    "echo",
    "slow",
    "tool_call",
    "tool_named",
    "error_500",
    "error_401",
    "error_400_context",
    "error_429_once",
    "error_429",
    "drop_mid_stream",
    "garbage",
];

/// Tool name used by `tool_call` when the request lists no tools.
const DEFAULT_TOOL: &str = "lookup";

/// How many tokens `drop_mid_stream` sends before aborting.
const TOKENS_BEFORE_DROP: usize = 3;

/// How many pieces each streamed tool-call argument string is split into.
const ARGUMENT_PIECES: usize = 4;

/// An upstream failure answered with an HTTP error status.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    pub status: StatusCode,
    pub message: &'static str,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub retry_after: Option<u64>,
}

/// One tool call the fake assistant makes.
#[derive(Debug, Clone)]
pub(super) struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as a JSON object.
    pub arguments: Value,
}

impl ToolCall {
    /// The arguments as JSON text (OpenAI sends them as a string).
    pub fn arguments_text(&self) -> String {
        self.arguments.to_string()
    }

    /// The argument text split into several fragments, as OpenAI streams them.
    pub fn argument_fragments(&self) -> Vec<String> {
        split_pieces(&self.arguments_text(), ARGUMENT_PIECES)
    }
}

/// What to answer to a chat request.
#[derive(Debug, Clone)]
pub(super) enum Plan {
    /// An HTTP error.
    Fail(Failure),
    /// A text reply, token by token, with `delay` before each token.
    Reply {
        tokens: Vec<String>,
        delay: Duration,
    },
    /// Tool calls, with `delay` before each streamed piece.
    Tools {
        calls: Vec<ToolCall>,
        delay: Duration,
    },
    /// A few tokens, then the connection is aborted.
    Drop {
        tokens: Vec<String>,
        delay: Duration,
    },
    /// A malformed payload with status 200.
    Garbage,
}

/// The parts of a chat request (either wire format) that decide the answer.
#[derive(Debug, Clone)]
pub(super) struct ChatInput {
    pub model: String,
    pub messages: Vec<Value>,
    pub tools: Vec<Value>,
}

impl ChatInput {
    /// Reads `model`, `messages` and `tools` from a request body.
    pub fn from_body(body: &Value) -> Self {
        let array = |key: &str| body.get(key).and_then(Value::as_array).cloned();
        ChatInput {
            model: body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            messages: array("messages").unwrap_or_default(),
            tools: array("tools").unwrap_or_default(),
        }
    }

    /// Whitespace-separated words over every message's content.
    pub fn prompt_tokens(&self) -> usize {
        self.messages
            .iter()
            .map(|m| message_text(m).split_whitespace().count())
            .sum()
    }
}

/// The failure, if any, that `model` answers every request with.
/// `error_429_once` fails only the first time on a server; `error_429`
/// every time.
pub(super) fn failure(state: &State, model: &str) -> Option<Failure> {
    let failure = |status, message, kind, code| Failure {
        status,
        message,
        kind,
        code,
        retry_after: None,
    };
    match model {
        "error_500" => Some(failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "fake upstream failure",
            "server_error",
            None,
        )),
        "error_401" => Some(failure(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided: fake. You can find your API key at https://example.invalid/keys.",
            "invalid_request_error",
            Some("invalid_api_key"),
        )),
        "error_400_context" => Some(failure(
            StatusCode::BAD_REQUEST,
            "This model's maximum context length is 8 tokens. However, your messages resulted in more tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            Some("context_length_exceeded"),
        )),
        "error_429_once" if !state.rate_limited.swap(true, Ordering::SeqCst) => Some(Failure {
            retry_after: Some(1),
            ..failure(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for fake model. Please try again in 1s.",
                "requests",
                Some("rate_limit_exceeded"),
            )
        }),
        "error_429" => Some(Failure {
            retry_after: Some(7),
            ..failure(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for fake model. Please try again in 7s.",
                "requests",
                Some("rate_limit_exceeded"),
            )
        }),
        _ => None,
    }
}

/// Decides the answer to a chat request.
pub(super) fn plan(state: &State, input: &ChatInput) -> Plan {
    if let Some(failure) = failure(state, &input.model) {
        return Plan::Fail(failure);
    }
    let config = &state.config;
    let delay = if input.model == "slow" {
        config.token_delay
    } else {
        config.stream_delay
    };
    let echo = || match config.tokens {
        Some(n) => counted_tokens(n),
        None => tokenize(&last_user_text(&input.messages)),
    };
    match input.model.as_str() {
        "garbage" => Plan::Garbage,
        "drop_mid_stream" => {
            let mut tokens = echo();
            tokens.truncate(TOKENS_BEFORE_DROP);
            if tokens.len() < TOKENS_BEFORE_DROP {
                tokens = counted_tokens(TOKENS_BEFORE_DROP);
            }
            Plan::Drop { tokens, delay }
        }
        "tool_named" => match input.messages.last() {
            Some(last) if last.get("role").and_then(Value::as_str) == Some("tool") => Plan::Reply {
                tokens: tokenize(&format!("tool said: {}", message_text(last))),
                delay,
            },
            _ => Plan::Tools {
                calls: named_call(input),
                delay,
            },
        },
        "tool_call" => match input.messages.last() {
            Some(last) if last.get("role").and_then(Value::as_str) == Some("tool") => Plan::Reply {
                tokens: tokenize(&format!("tool said: {}", message_text(last))),
                delay,
            },
            _ => Plan::Tools {
                calls: tool_calls(input),
                delay,
            },
        },
        _ => Plan::Reply {
            tokens: echo(),
            delay,
        },
    }
}

/// The one call `tool_named` makes: the last user text is
/// `{"tool": NAME, "arguments": {...}}` (a model naming a tool it was not
/// offered); anything else calls `lookup` with no arguments.
fn named_call(input: &ChatInput) -> Vec<ToolCall> {
    let spec: Value = serde_json::from_str(&last_user_text(&input.messages)).unwrap_or_default();
    vec![ToolCall {
        id: format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24]),
        name: spec
            .get("tool")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_TOOL)
            .to_owned(),
        arguments: spec.get("arguments").cloned().unwrap_or_else(|| json!({})),
    }]
}

/// The two calls `tool_call` makes.
fn tool_calls(input: &ChatInput) -> Vec<ToolCall> {
    let name = input
        .tools
        .first()
        .and_then(|t| {
            t.pointer("/function/name")
                .or_else(|| t.get("name"))
                .and_then(Value::as_str)
        })
        .unwrap_or(DEFAULT_TOOL)
        .to_string();
    let query = last_user_text(&input.messages);
    // A tool whose schema requires other properties than `query` (e.g. an
    // MCP tool's `timezone`) gets each of them set to the user's text, twice.
    let required: Vec<String> = input
        .tools
        .first()
        .and_then(|t| {
            t.pointer("/function/parameters")
                .or_else(|| t.get("parameters"))
        })
        .filter(|p| p.pointer("/properties/query").is_none())
        .and_then(|p| p.get("required"))
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let args = if required.is_empty() {
        [json!({ "query": query }), json!({ "query": "second" })]
    } else {
        let filled: serde_json::Map<String, Value> = required
            .into_iter()
            .map(|name| (name, Value::String(query.clone())))
            .collect();
        [Value::Object(filled.clone()), Value::Object(filled)]
    };
    args.into_iter()
        .map(|arguments| ToolCall {
            id: format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24]),
            name: name.clone(),
            arguments,
        })
        .collect()
}

/// The text of a message's `content` (a string, or an array of text parts).
pub(super) fn message_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str).or_else(|| p.as_str()))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// The text of the last message with role `user` (empty when there is none).
fn last_user_text(messages: &[Value]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(message_text)
        .unwrap_or_default()
}

/// Splits `text` into words, each keeping the whitespace before it, so the
/// tokens concatenate back to `text`.
pub(super) fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for c in text.chars() {
        if c.is_whitespace() && in_word {
            tokens.push(std::mem::take(&mut current));
            in_word = false;
        } else if !c.is_whitespace() {
            in_word = true;
        }
        current.push(c);
    }
    match tokens.last_mut() {
        // Trailing whitespace stays with the last word.
        Some(last) if !in_word => last.push_str(&current),
        _ if !current.is_empty() => tokens.push(current),
        _ => {}
    }
    tokens
}

/// `tok0`, ` tok1`, ... ` tok{n-1}`.
pub(super) fn counted_tokens(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            if i == 0 {
                "tok0".to_string()
            } else {
                format!(" tok{i}")
            }
        })
        .collect()
}

/// Splits `text` into up to `pieces` non-empty parts on char boundaries.
fn split_pieces(text: &str, pieces: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(pieces.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// A deterministic, L2-normalised embedding: the normalised sum of one
/// pseudo-random vector per lowercase word (so texts sharing words are
/// closer), or of the whole text when it has no words.
pub(super) fn embed(text: &str, dimensions: usize) -> Vec<f32> {
    let mut sum = vec![0f64; dimensions];
    let lowered = text.to_lowercase();
    let mut words: Vec<&str> = lowered.split_whitespace().collect();
    if words.is_empty() {
        words.push(&lowered);
    }
    for word in words {
        let seed = fnv1a(word.as_bytes());
        for (i, slot) in sum.iter_mut().enumerate() {
            let x = splitmix64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            // 53 random bits mapped to [-1, 1).
            *slot += (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        }
    }
    let norm = sum.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm > 0.0 {
        sum.iter().map(|v| (v / norm) as f32).collect()
    } else {
        sum.iter().map(|v| *v as f32).collect()
    }
}

/// The texts of an embedding request's `input` (a string or array of strings).
pub(super) fn embedding_inputs(body: &Value) -> Option<Vec<String>> {
    match body.get("input")? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Seconds since the Unix epoch.
pub(super) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The current time as RFC 3339 with nanoseconds, as Ollama sends it.
pub(super) fn rfc3339_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            config: super::super::FakeLlmConfig::default(),
            requests: Default::default(),
            disconnects: tokio::sync::watch::channel(0).0,
            rate_limited: Default::default(),
        }
    }

    #[test]
    fn error_429_always_fails_and_error_429_once_only_first() {
        let state = state();
        for _ in 0..3 {
            let f = failure(&state, "error_429").unwrap();
            assert_eq!(f.status, StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(f.retry_after, Some(7));
            assert_eq!(f.code, Some("rate_limit_exceeded"));
        }
        let once = failure(&state, "error_429_once").unwrap();
        assert_eq!(once.retry_after, Some(1));
        assert!(failure(&state, "error_429_once").is_none());
        assert!(failure(&state, "error_429").is_some());
        assert!(MODEL_NAMES.contains(&"error_429"));
    }

    #[test]
    fn tokens_concatenate_back() {
        let text = "  hello  world\nfoo ";
        let tokens = tokenize(text);
        assert_eq!(tokens, vec!["  hello", "  world", "\nfoo "]);
        assert_eq!(tokens.concat(), text);
        assert!(tokenize("").is_empty());
    }

    #[test]
    fn argument_fragments_are_several() {
        let pieces = split_pieces(r#"{"query":""}"#, 4);
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces.concat(), r#"{"query":""}"#);
    }

    #[test]
    fn embeddings_are_normalised_and_deterministic() {
        let a = embed("The cat sat", 16);
        assert_eq!(a, embed("the cat  sat", 16));
        let norm: f32 = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
        assert_eq!(embed("", 3).len(), 3);
    }
}
