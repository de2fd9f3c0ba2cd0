//! Any OpenAI-compatible server: OpenAI, vLLM, llama.cpp, LM Studio, LiteLLM.
//!
//! `/v1/chat/completions` (JSON and SSE, tool-call deltas merged by index,
//! `stream_options.include_usage`), `/v1/embeddings`, `/v1/models`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::LlmError;
use crate::http::{HttpOptions, send, transport_error, truncate};
use crate::lines::SseReader;
use crate::retry::RetryPolicy;
use crate::types::{
    ChatChunk, ChatMessage, ChatRequest, ChatResponse, FinishReason, ModelInfo, Role, ToolCall,
    Usage,
};
use crate::{BoxFuture, ChatModel, ChatStream, EmbeddingModel};

/// A provider for any server speaking the OpenAI chat-completions API.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    client: reqwest::Client,
    /// Base URL ending in `/v1` (no trailing slash).
    base: String,
    api_key: Option<String>,
    model: String,
    embedding_model: String,
    dimensions: usize,
    retry: RetryPolicy,
    options: HttpOptions,
}

/// `url` normalised to end with `/v1` and no trailing slash.
fn api_base(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.ends_with("/v1") {
        url.to_owned()
    } else {
        format!("{url}/v1")
    }
}

impl OpenAiProvider {
    /// A provider for the server at `base_url` (with or without `/v1`) and
    /// the default chat `model`.
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        model: impl Into<String>,
        options: HttpOptions,
        retry: RetryPolicy,
    ) -> Result<Self, LlmError> {
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(LlmError::Config(format!(
                "base URL `{base_url}` must start with http:// or https://"
            )));
        }
        let model = model.into();
        Ok(Self {
            inner: Arc::new(Inner {
                client: options.client()?,
                base: api_base(base_url),
                api_key: api_key.filter(|k| !k.is_empty()),
                embedding_model: model.clone(),
                model,
                dimensions: 0,
                retry,
                options,
            }),
        })
    }

    /// The same provider, embedding with `model` into `dimensions`-long vectors.
    pub fn with_embeddings(mut self, model: impl Into<String>, dimensions: usize) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.embedding_model = model.into();
        inner.dimensions = dimensions;
        self
    }

    /// The API base URL in use (ends with `/v1`).
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }
}

fn message_json(m: &ChatMessage) -> Value {
    let mut v = json!({"role": m.role.as_str(), "content": m.content});
    if m.role == Role::Assistant && !m.tool_calls.is_empty() {
        if m.content.is_empty() {
            v["content"] = Value::Null;
        }
        v["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments.to_string()},
                })
            })
            .collect();
    }
    if m.role == Role::Tool {
        if let Some(id) = &m.tool_call_id {
            v["tool_call_id"] = json!(id);
        }
        if let Some(name) = &m.name {
            v["name"] = json!(name);
        }
    }
    v
}

impl Inner {
    fn model_of(&self, request: &ChatRequest) -> String {
        request.model.clone().unwrap_or_else(|| self.model.clone())
    }

    fn body(&self, request: &ChatRequest, stream: bool) -> Value {
        let mut body = json!({
            "model": self.model_of(request),
            "messages": request.messages.iter().map(message_json).collect::<Vec<_>>(),
            "stream": stream,
        });
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(crate::types::ToolDefinition::to_wire)
                .collect();
        }
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(n) = request.max_tokens {
            body["max_tokens"] = json!(n);
        }
        if !request.stop.is_empty() {
            body["stop"] = json!(request.stop);
        }
        if let Some(p) = request.top_p {
            body["top_p"] = json!(p);
        }
        if let Some(seed) = request.seed {
            body["seed"] = json!(seed);
        }
        body
    }

    fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        let mut rb = self.client.post(format!("{}{path}", self.base)).json(body);
        if let Some(key) = &self.api_key {
            rb = rb.bearer_auth(key);
        }
        rb
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, LlmError> {
        send("openai", rb).await
    }
}

#[derive(Deserialize)]
struct CompletionBody {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<CompletionChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct CompletionChoice {
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    index: Option<usize>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunction>,
}

#[derive(Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage::new(u.prompt_tokens, u.completion_tokens)
    }
}

/// One SSE event of a streamed completion, borrowing from the event text.
#[derive(Deserialize)]
struct StreamBody<'a> {
    /// The first choice only: we never ask for more than one (`n` = 1).
    #[serde(default, borrow, rename = "choices", deserialize_with = "first_choice")]
    choice: Option<StreamChoice<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct StreamChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<StreamDelta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct StreamDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
}

/// Parses tool-call arguments; a model that wrote invalid JSON gets its raw
/// text back as a string, so the caller can tell it so.
fn parse_arguments(raw: &str) -> Value {
    let raw = raw.trim();
    if raw.is_empty() {
        return json!({});
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// Tool calls being assembled from stream deltas, keyed by index.
#[derive(Default)]
struct ToolCallParts {
    calls: BTreeMap<usize, (String, String, String)>,
}

impl ToolCallParts {
    fn push(&mut self, position: usize, delta: WireToolCall) {
        let index = delta.index.unwrap_or(position);
        let entry = self.calls.entry(index).or_default();
        if let Some(id) = delta.id.filter(|s| !s.is_empty()) {
            entry.0 = id;
        }
        if let Some(f) = delta.function {
            if let Some(name) = f.name.filter(|s| !s.is_empty()) {
                entry.1 = name;
            }
            if let Some(args) = f.arguments {
                entry.2.push_str(&args);
            }
        }
    }

    fn take(&mut self) -> Vec<ToolCall> {
        std::mem::take(&mut self.calls)
            .into_iter()
            .map(|(index, (id, name, args))| ToolCall {
                id: if id.is_empty() {
                    format!("call_{index}")
                } else {
                    id
                },
                name,
                arguments: parse_arguments(&args),
            })
            .collect()
    }
}

/// Reads a `choices` array keeping its first element, without allocating a `Vec`.
fn first_choice<'de, D>(deserializer: D) -> Result<Option<StreamChoice<'de>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct First;
    impl<'de> serde::de::Visitor<'de> for First {
        type Value = Option<StreamChoice<'de>>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of choices")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let first = seq.next_element::<StreamChoice<'de>>()?;
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }
    deserializer.deserialize_any(First)
}

/// What one SSE event contributes to the stream.
enum EventOutcome {
    /// More events follow.
    Continue,
    /// `[DONE]`.
    Done,
}

/// State of a streamed completion being read.
#[derive(Default)]
struct StreamState {
    parts: ToolCallParts,
    finish: Option<FinishReason>,
    saw_tool_calls: bool,
}

impl StreamState {
    /// Reads one event's data, pushing the chunks it yields onto `out`.
    fn event(&mut self, data: &str, out: &mut Vec<ChatChunk>) -> Result<EventOutcome, LlmError> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(EventOutcome::Continue);
        }
        if data == "[DONE]" {
            return Ok(EventOutcome::Done);
        }
        let body: StreamBody<'_> = serde_json::from_str(data).map_err(|e| {
            LlmError::BadResponse(format!(
                "malformed stream event ({e}): {}",
                truncate(data, 200)
            ))
        })?;
        if let Some(err) = body.error {
            let msg = err["message"]
                .as_str()
                .map_or_else(|| err.to_string(), str::to_owned);
            return Err(LlmError::Unavailable(format!("openai stream error: {msg}")));
        }
        if let Some(choice) = body.choice {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    out.push(ChatChunk::Text(text.into_owned()));
                }
                for (i, call) in delta.tool_calls.into_iter().enumerate() {
                    self.parts.push(i, call);
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(crate::types::finish_reason(&reason));
                self.flush_tool_calls(out);
            }
        }
        if let Some(usage) = body.usage {
            out.push(ChatChunk::Usage(usage.into()));
        }
        Ok(EventOutcome::Continue)
    }

    fn flush_tool_calls(&mut self, out: &mut Vec<ChatChunk>) {
        for call in self.parts.take() {
            self.saw_tool_calls = true;
            out.push(ChatChunk::ToolCall(call));
        }
    }

    /// The closing chunks once the stream is over (`done`: `[DONE]` was seen).
    fn end(&mut self, done: bool, out: &mut Vec<ChatChunk>) -> Result<(), LlmError> {
        if !done && self.finish.is_none() {
            return Err(LlmError::BadResponse(
                "stream ended before the reply was complete".into(),
            ));
        }
        self.flush_tool_calls(out);
        let reason = match self.finish.unwrap_or(FinishReason::Stop) {
            FinishReason::Stop if self.saw_tool_calls => FinishReason::ToolCalls,
            other => other,
        };
        out.push(ChatChunk::Finish(reason));
        Ok(())
    }
}

/// Reads an SSE chat-completions body into chunks.
fn sse_chunks(response: reqwest::Response) -> ChatStream {
    Box::pin(async_stream::stream! {
        let mut body = response.bytes_stream();
        let mut reader = SseReader::default();
        let mut state = StreamState::default();
        let mut out: Vec<ChatChunk> = Vec::new();
        let mut done = false;
        'read: loop {
            let result = loop {
                match reader.next_event() {
                    Ok(Some(data)) => match state.event(data, &mut out) {
                        Ok(EventOutcome::Continue) => {}
                        Ok(EventOutcome::Done) => {
                            done = true;
                            break Ok(true);
                        }
                        Err(e) => break Err(e),
                    },
                    Ok(None) => break Ok(false),
                    Err(e) => break Err(e),
                }
            };
            for chunk in out.drain(..) {
                yield Ok(chunk);
            }
            match result {
                Err(e) => {
                    yield Err(e);
                    return;
                }
                Ok(true) => break 'read,
                Ok(false) => {}
            }
            match body.next().await {
                Some(Ok(bytes)) => reader.feed(&bytes),
                Some(Err(e)) => {
                    yield Err(transport_error(&e, "openai stream"));
                    return;
                }
                None => {
                    let tail = match reader.finish() {
                        Ok(Some(data)) => state.event(data, &mut out).map(|o| matches!(o, EventOutcome::Done)),
                        Ok(None) => Ok(false),
                        Err(e) => Err(e),
                    };
                    for chunk in out.drain(..) {
                        yield Ok(chunk);
                    }
                    match tail {
                        Ok(d) => done = d,
                        Err(e) => {
                            yield Err(e);
                            return;
                        }
                    }
                    break 'read;
                }
            }
        }
        match state.end(done, &mut out) {
            Ok(()) => {
                for chunk in out.drain(..) {
                    yield Ok(chunk);
                }
            }
            Err(e) => yield Err(e),
        }
    })
}

impl ChatModel for OpenAiProvider {
    fn provider(&self) -> &str {
        "openai"
    }

    fn default_model(&self) -> &str {
        &self.inner.model
    }

    fn stream(&self, request: ChatRequest) -> ChatStream {
        let inner = self.inner.clone();
        let body = Arc::new(inner.body(&request, true));
        inner.retry.clone().stream(move || {
            let inner = inner.clone();
            let body = body.clone();
            async move {
                let response = inner.send(inner.post("/chat/completions", &body)).await?;
                Ok(sse_chunks(response))
            }
        })
    }

    fn complete(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse, LlmError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let body = inner.body(&request, false);
            let text = inner
                .retry
                .run(|| async {
                    let rb = inner
                        .post("/chat/completions", &body)
                        .timeout(inner.options.request_timeout);
                    let response = inner.send(rb).await?;
                    response
                        .text()
                        .await
                        .map_err(|e| transport_error(&e, "openai response"))
                })
                .await?;
            let parsed: CompletionBody = serde_json::from_str(&text).map_err(|e| {
                LlmError::BadResponse(format!(
                    "malformed completion ({e}): {}",
                    truncate(&text, 200)
                ))
            })?;
            let choice = parsed
                .choices
                .into_iter()
                .next()
                .ok_or_else(|| LlmError::BadResponse("completion has no choices".into()))?;
            let message = choice.message.unwrap_or(WireMessage {
                content: None,
                tool_calls: Vec::new(),
            });
            let mut parts = ToolCallParts::default();
            for (i, call) in message.tool_calls.into_iter().enumerate() {
                parts.push(i, call);
            }
            let tool_calls = parts.take();
            let mut finish_reason = choice
                .finish_reason
                .as_deref()
                .map_or(FinishReason::Stop, crate::types::finish_reason);
            if finish_reason == FinishReason::Stop && !tool_calls.is_empty() {
                finish_reason = FinishReason::ToolCalls;
            }
            Ok(ChatResponse {
                model: parsed.model.unwrap_or_else(|| inner.model_of(&request)),
                content: message.content.unwrap_or_default(),
                tool_calls,
                usage: parsed.usage.map(Usage::from),
                finish_reason,
            })
        })
    }

    fn list_models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, LlmError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let mut rb = inner
                .client
                .get(format!("{}/models", inner.base))
                .timeout(inner.options.request_timeout);
            if let Some(key) = &inner.api_key {
                rb = rb.bearer_auth(key);
            }
            let response = inner.send(rb).await?;
            let v: Value = response
                .json()
                .await
                .map_err(|e| LlmError::BadResponse(format!("malformed model list: {e}")))?;
            let data = v["data"]
                .as_array()
                .ok_or_else(|| LlmError::BadResponse("model list has no `data` array".into()))?;
            Ok(data
                .iter()
                .filter_map(|m| m["id"].as_str())
                .map(|id| ModelInfo {
                    id: id.to_owned(),
                    provider: "openai".to_owned(),
                })
                .collect())
        })
    }
}

#[derive(Deserialize)]
struct EmbeddingsBody {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    #[serde(default)]
    index: usize,
    embedding: Vec<f32>,
}

impl EmbeddingModel for OpenAiProvider {
    fn dimensions(&self) -> usize {
        self.inner.dimensions
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        Box::pin(async move {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let inner = &self.inner;
            let body = json!({"model": inner.embedding_model, "input": texts});
            let text = inner
                .retry
                .run(|| async {
                    let rb = inner
                        .post("/embeddings", &body)
                        .timeout(inner.options.request_timeout);
                    inner
                        .send(rb)
                        .await?
                        .text()
                        .await
                        .map_err(|e| transport_error(&e, "openai embeddings"))
                })
                .await?;
            let mut parsed: EmbeddingsBody = serde_json::from_str(&text).map_err(|e| {
                LlmError::BadResponse(format!(
                    "malformed embeddings ({e}): {}",
                    truncate(&text, 200)
                ))
            })?;
            parsed.data.sort_by_key(|d| d.index);
            check_embeddings(
                parsed.data.into_iter().map(|d| d.embedding).collect(),
                texts.len(),
                inner.dimensions,
            )
        })
    }
}

/// Checks a provider returned one vector per text, of the expected length
/// (`expected` 0 = not configured: any consistent length).
pub(crate) fn check_embeddings(
    vectors: Vec<Vec<f32>>,
    count: usize,
    expected: usize,
) -> Result<Vec<Vec<f32>>, LlmError> {
    if vectors.len() != count {
        return Err(LlmError::BadResponse(format!(
            "asked for {count} embeddings, got {}",
            vectors.len()
        )));
    }
    let want = if expected == 0 {
        vectors.first().map_or(0, Vec::len)
    } else {
        expected
    };
    if let Some(bad) = vectors.iter().find(|v| v.len() != want) {
        return Err(LlmError::BadResponse(format!(
            "embedding has {} dimensions, expected {want}",
            bad.len()
        )));
    }
    Ok(vectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(api_base("http://h:1"), "http://h:1/v1");
        assert_eq!(api_base("http://h:1/v1/"), "http://h:1/v1");
        assert_eq!(
            api_base("https://api.openai.com/v1"),
            "https://api.openai.com/v1"
        );
    }

    #[test]
    fn merges_tool_call_deltas() {
        let mut parts = ToolCallParts::default();
        let d = |index, id: Option<&str>, name: Option<&str>, args: &str| WireToolCall {
            index: Some(index),
            id: id.map(str::to_owned),
            function: Some(WireFunction {
                name: name.map(str::to_owned),
                arguments: Some(args.to_owned()),
            }),
        };
        parts.push(0, d(0, Some("a"), Some("search"), ""));
        parts.push(0, d(1, Some("b"), Some("search"), "{\"q\""));
        parts.push(0, d(0, None, None, "{\"q\": \"x"));
        parts.push(0, d(1, None, None, ": 2}"));
        parts.push(0, d(0, None, None, "\"}"));
        let calls = parts.take();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].id, "a");
        assert_eq!(calls[0].arguments, json!({"q": "x"}));
        assert_eq!(calls[1].arguments, json!({"q": 2}));
        assert_eq!(parse_arguments("{bad"), json!("{bad"));
        assert_eq!(parse_arguments(""), json!({}));
    }
}
