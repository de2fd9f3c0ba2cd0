//! Ollama's native API: `/api/chat` (NDJSON streaming, tool calls),
//! `/api/embed`, `/api/tags`.

use std::sync::Arc;

use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::LlmError;
use crate::http::{HttpOptions, send, transport_error, truncate};
use crate::lines::LineBuffer;
use crate::openai::check_embeddings;
use crate::retry::RetryPolicy;
use crate::types::{
    ChatChunk, ChatMessage, ChatRequest, FinishReason, ModelInfo, Role, ToolCall, Usage,
};
use crate::{BoxFuture, ChatModel, ChatStream, EmbeddingModel};

/// A provider for an Ollama server.
#[derive(Debug, Clone)]
pub struct OllamaProvider {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    client: reqwest::Client,
    base: String,
    model: String,
    embedding_model: String,
    dimensions: usize,
    retry: RetryPolicy,
    options: HttpOptions,
}

impl OllamaProvider {
    /// A provider for the Ollama server at `host` (e.g. `http://127.0.0.1:11434`).
    pub fn new(
        host: &str,
        model: impl Into<String>,
        options: HttpOptions,
        retry: RetryPolicy,
    ) -> Result<Self, LlmError> {
        let host = host.trim().trim_end_matches('/');
        let base = if host.starts_with("http://") || host.starts_with("https://") {
            host.to_owned()
        } else if host.is_empty() {
            return Err(LlmError::Config("Ollama host is empty".into()));
        } else {
            // OLLAMA_HOST is often given as host:port.
            format!("http://{host}")
        };
        let model = model.into();
        Ok(Self {
            inner: Arc::new(Inner {
                client: options.client()?,
                base,
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

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base
    }
}

fn message_json(m: &ChatMessage) -> Value {
    let mut v = json!({"role": m.role.as_str(), "content": m.content});
    if !m.tool_calls.is_empty() {
        v["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| json!({"function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
    }
    if m.role == Role::Tool
        && let Some(name) = &m.name
    {
        v["tool_name"] = json!(name);
    }
    v
}

impl Inner {
    fn body(&self, request: &ChatRequest, stream: bool) -> Value {
        let mut options = serde_json::Map::new();
        if let Some(t) = request.temperature {
            options.insert("temperature".into(), json!(t));
        }
        if let Some(n) = request.max_tokens {
            options.insert("num_predict".into(), json!(n));
        }
        if !request.stop.is_empty() {
            options.insert("stop".into(), json!(request.stop));
        }
        if let Some(p) = request.top_p {
            options.insert("top_p".into(), json!(p));
        }
        if let Some(seed) = request.seed {
            options.insert("seed".into(), json!(seed));
        }
        let mut body = json!({
            "model": request.model.clone().unwrap_or_else(|| self.model.clone()),
            "messages": request.messages.iter().map(message_json).collect::<Vec<_>>(),
            "stream": stream,
        });
        if !options.is_empty() {
            body["options"] = Value::Object(options);
        }
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(crate::types::ToolDefinition::to_wire)
                .collect();
        }
        body
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, LlmError> {
        send("ollama", rb).await
    }
}

#[derive(Deserialize)]
struct ChatLine {
    #[serde(default)]
    message: Option<LineMessage>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    prompt_eval_count: Option<u32>,
    #[serde(default)]
    eval_count: Option<u32>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct LineMessage {
    #[serde(default)]
    content: String,
    #[serde(default)]
    tool_calls: Vec<LineToolCall>,
}

#[derive(Deserialize)]
struct LineToolCall {
    #[serde(default)]
    id: Option<String>,
    function: LineFunction,
}

#[derive(Deserialize)]
struct LineFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

/// The chunks one NDJSON line yields; `Err` ends the stream.
fn line_chunks(line: &str, calls_so_far: &mut usize) -> Result<(Vec<ChatChunk>, bool), LlmError> {
    let parsed: ChatLine = serde_json::from_str(line).map_err(|e| {
        LlmError::BadResponse(format!(
            "malformed stream line ({e}): {}",
            truncate(line, 200)
        ))
    })?;
    if let Some(err) = parsed.error {
        return Err(LlmError::Unavailable(format!("ollama stream error: {err}")));
    }
    let mut out = Vec::new();
    if let Some(msg) = parsed.message {
        if !msg.content.is_empty() {
            out.push(ChatChunk::Text(msg.content));
        }
        for call in msg.tool_calls {
            let id = call.id.unwrap_or_else(|| format!("call_{calls_so_far}"));
            *calls_so_far += 1;
            let arguments = match call.function.arguments {
                Value::Null => json!({}),
                // Some models send the arguments as a JSON string.
                Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
                v => v,
            };
            out.push(ChatChunk::ToolCall(ToolCall {
                id,
                name: call.function.name,
                arguments,
            }));
        }
    }
    if parsed.done {
        out.push(ChatChunk::Usage(Usage::new(
            parsed.prompt_eval_count.unwrap_or(0),
            parsed.eval_count.unwrap_or(0),
        )));
        let reason = if *calls_so_far > 0 {
            FinishReason::ToolCalls
        } else {
            parsed
                .done_reason
                .as_deref()
                .map_or(FinishReason::Stop, crate::types::finish_reason)
        };
        out.push(ChatChunk::Finish(reason));
    }
    Ok((out, parsed.done))
}

/// Reads an NDJSON `/api/chat` body into chunks.
fn ndjson_chunks(response: reqwest::Response) -> ChatStream {
    Box::pin(async_stream::stream! {
        let mut body = response.bytes_stream();
        let mut lines = LineBuffer::default();
        let mut calls = 0usize;
        let mut out: Vec<ChatChunk> = Vec::new();
        loop {
            // Every complete line in the buffer; Ok(true) once the reply is done.
            let result = loop {
                match lines.next_line() {
                    Ok(Some(line)) if line.trim().is_empty() => {}
                    Ok(Some(line)) => match line_chunks(line.trim(), &mut calls) {
                        Ok((chunks, done)) => {
                            out.extend(chunks);
                            if done {
                                break Ok(true);
                            }
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
                Ok(true) => return,
                Err(e) => {
                    yield Err(e);
                    return;
                }
                Ok(false) => {}
            }
            match body.next().await {
                Some(Ok(bytes)) => lines.feed(&bytes),
                Some(Err(e)) => {
                    yield Err(transport_error(&e, "ollama stream"));
                    return;
                }
                None => {
                    // A last line without a newline is still a line.
                    let tail = match lines.rest() {
                        Ok(rest) if rest.trim().is_empty() => Ok(false),
                        Ok(rest) => line_chunks(rest.trim(), &mut calls).map(|(chunks, done)| {
                            out.extend(chunks);
                            done
                        }),
                        Err(e) => Err(e),
                    };
                    for chunk in out.drain(..) {
                        yield Ok(chunk);
                    }
                    match tail {
                        Ok(true) => {}
                        Ok(false) => yield Err(LlmError::BadResponse(
                            "stream ended before the reply was complete".into(),
                        )),
                        Err(e) => yield Err(e),
                    }
                    return;
                }
            }
        }
    })
}

impl ChatModel for OllamaProvider {
    fn provider(&self) -> &str {
        "ollama"
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
                let rb = inner
                    .client
                    .post(format!("{}/api/chat", inner.base))
                    .json(&*body);
                Ok(ndjson_chunks(inner.send(rb).await?))
            }
        })
    }

    fn list_models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, LlmError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let rb = inner
                .client
                .get(format!("{}/api/tags", inner.base))
                .timeout(inner.options.request_timeout);
            let v: Value = inner
                .send(rb)
                .await?
                .json()
                .await
                .map_err(|e| LlmError::BadResponse(format!("malformed model list: {e}")))?;
            let models = v["models"]
                .as_array()
                .ok_or_else(|| LlmError::BadResponse("model list has no `models` array".into()))?;
            Ok(models
                .iter()
                .filter_map(|m| m["name"].as_str().or(m["model"].as_str()))
                .map(|id| ModelInfo {
                    id: id.to_owned(),
                    provider: "ollama".to_owned(),
                })
                .collect())
        })
    }
}

impl EmbeddingModel for OllamaProvider {
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
                        .client
                        .post(format!("{}/api/embed", inner.base))
                        .json(&body)
                        .timeout(inner.options.request_timeout);
                    inner
                        .send(rb)
                        .await?
                        .text()
                        .await
                        .map_err(|e| transport_error(&e, "ollama embeddings"))
                })
                .await?;
            #[derive(Deserialize)]
            struct Body {
                embeddings: Vec<Vec<f32>>,
            }
            let parsed: Body = serde_json::from_str(&text).map_err(|e| {
                LlmError::BadResponse(format!(
                    "malformed embeddings ({e}): {}",
                    truncate(&text, 200)
                ))
            })?;
            check_embeddings(parsed.embeddings, texts.len(), inner.dimensions)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let mut calls = 0;
        let (c, done) = line_chunks(
            r#"{"message":{"role":"assistant","content":"Hi"},"done":false}"#,
            &mut calls,
        )
        .unwrap();
        assert_eq!(c, vec![ChatChunk::Text("Hi".into())]);
        assert!(!done);
        let (c, done) = line_chunks(
            r#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},"done":false}"#,
            &mut calls,
        )
        .unwrap();
        assert!(!done);
        assert_eq!(
            c,
            vec![ChatChunk::ToolCall(ToolCall {
                id: "call_0".into(),
                name: "f".into(),
                arguments: json!({"a": 1})
            })]
        );
        let (c, done) = line_chunks(
            r#"{"done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":2}"#,
            &mut calls,
        )
        .unwrap();
        assert!(done);
        assert_eq!(
            c,
            vec![
                ChatChunk::Usage(Usage::new(3, 2)),
                ChatChunk::Finish(FinishReason::ToolCalls)
            ]
        );
        assert!(matches!(
            line_chunks("{oops", &mut calls),
            Err(LlmError::BadResponse(_))
        ));
        assert!(matches!(
            line_chunks(r#"{"error":"boom"}"#, &mut calls),
            Err(LlmError::Unavailable(_))
        ));
    }
}
