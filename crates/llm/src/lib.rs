//! confab's one way to talk to language models.
//!
//! Two small capability traits — [`ChatModel`] (complete or stream a chat)
//! and [`EmbeddingModel`] (embed texts) — and the providers behind them:
//! [`OpenAiProvider`] for any OpenAI-compatible server (OpenAI, vLLM,
//! llama.cpp, LM Studio, LiteLLM), [`OllamaProvider`] for Ollama's native
//! API, and [`BuiltinProvider`], an offline deterministic model that needs
//! no weights and no network. [`Provider`] is the closed enum the binaries
//! build from [`LlmConfig`]; [`Fallback`] tries providers in order.
//!
//! Streams are plain `futures` streams of [`ChatChunk`]s that end with one
//! [`ChatChunk::Finish`], or with one `Err` item. Dropping a stream aborts
//! its HTTP request. Retries (connect errors, 429 with `Retry-After`, 5xx)
//! happen only before the first chunk has been handed out.
//!
//! No actix, no database: this crate is reusable on its own.

mod builtin;
mod config;
mod error;
mod fallback;
mod http;
mod lines;
#[cfg(feature = "local")]
pub mod local;
mod ollama;
mod openai;
pub mod prompt;
mod provider;
mod retry;
mod types;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};

pub use builtin::BuiltinProvider;
pub use config::{EmbeddingConfig, LOCAL_CHAT_FILE, LlmConfig, ProviderConfig, ProviderKind};
pub use error::LlmError;
pub use fallback::Fallback;
pub use http::HttpOptions;
pub use ollama::OllamaProvider;
pub use openai::OpenAiProvider;
pub use provider::Provider;
pub use retry::RetryPolicy;
pub use types::{
    ChatChunk, ChatMessage, ChatRequest, ChatResponse, FinishReason, ModelInfo, Role, ToolCall,
    ToolDefinition, Usage,
};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A streamed reply: chunks, then one `Finish` (or one `Err`), then the end.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, LlmError>> + Send + 'static>>;

/// A model that chats.
///
/// ```
/// use confab_llm::{BuiltinProvider, ChatChunk, ChatMessage, ChatModel, ChatRequest};
/// use futures_util::StreamExt;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let model = BuiltinProvider::new();
/// let request = ChatRequest::new(vec![ChatMessage::user("Hello!")]);
/// let reply = model.complete(request.clone()).await.unwrap();
/// assert!(!reply.content.is_empty());
///
/// let mut text = String::new();
/// let mut stream = model.stream(request);
/// while let Some(chunk) = stream.next().await {
///     if let ChatChunk::Text(t) = chunk.unwrap() {
///         text.push_str(&t);
///     }
/// }
/// assert_eq!(text, reply.content);
/// # });
/// ```
pub trait ChatModel: Send + Sync {
    /// Provider name (`openai`, `ollama`, `builtin`, ...).
    fn provider(&self) -> &str;

    /// The model used when a request names none.
    fn default_model(&self) -> &str;

    /// Streams a reply. Errors, including connection errors, arrive as the
    /// stream's (last) item.
    fn stream(&self, request: ChatRequest) -> ChatStream;

    /// The whole reply at once. The default collects [`ChatModel::stream`].
    fn complete(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse, LlmError>> {
        let model = request
            .model
            .clone()
            .unwrap_or_else(|| self.default_model().to_owned());
        let stream = self.stream(request);
        Box::pin(collect(model, stream))
    }

    /// Models this provider offers.
    fn list_models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, LlmError>> {
        let info = ModelInfo {
            id: self.default_model().to_owned(),
            provider: self.provider().to_owned(),
        };
        Box::pin(async move { Ok(vec![info]) })
    }

    /// One line for people: which model answers and what it is good for
    /// (shown by `/api/health` and logged at startup). `None` for servers,
    /// which describe themselves.
    fn about(&self) -> Option<String> {
        None
    }
}

/// How to switch from the in-process models to a real server, for the
/// startup log, `/api/health` and the README.
pub const SWITCH_HINT: &str = "for better answers use a bigger model: OLLAMA_HOST=http://127.0.0.1:11434 AGENT_RUNTIME__LLM_MODEL=llama3.2 (Ollama), or AGENT_RUNTIME__LLM_PROXY_URL=http://host:port/v1 OPENAI_API_KEY=... (any OpenAI-compatible server)";

/// A model that turns texts into vectors.
///
/// ```
/// use confab_llm::{BuiltinProvider, EmbeddingModel};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let model = BuiltinProvider::new();
/// let vectors = model.embed(&["ownership in Rust".to_owned()]).await.unwrap();
/// assert_eq!(vectors[0].len(), model.dimensions());
/// # });
/// ```
pub trait EmbeddingModel: Send + Sync {
    /// Length of every vector this model returns.
    fn dimensions(&self) -> usize;

    /// One vector per text, in order.
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>>;
}

impl<T: ChatModel + ?Sized> ChatModel for Arc<T> {
    fn provider(&self) -> &str {
        (**self).provider()
    }
    fn default_model(&self) -> &str {
        (**self).default_model()
    }
    fn stream(&self, request: ChatRequest) -> ChatStream {
        (**self).stream(request)
    }
    fn complete(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse, LlmError>> {
        (**self).complete(request)
    }
    fn list_models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, LlmError>> {
        (**self).list_models()
    }
    fn about(&self) -> Option<String> {
        (**self).about()
    }
}

impl<T: EmbeddingModel + ?Sized> EmbeddingModel for Arc<T> {
    fn dimensions(&self) -> usize {
        (**self).dimensions()
    }
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        (**self).embed(texts)
    }
}

/// Drains a stream into a [`ChatResponse`] (the first `Err` is returned).
pub async fn collect(model: String, mut stream: ChatStream) -> Result<ChatResponse, LlmError> {
    let mut response = ChatResponse {
        model,
        content: String::new(),
        tool_calls: Vec::new(),
        usage: None,
        finish_reason: FinishReason::Stop,
    };
    let mut finished = false;
    while let Some(item) = stream.next().await {
        match item? {
            ChatChunk::Text(t) => response.content.push_str(&t),
            ChatChunk::ToolCall(call) => response.tool_calls.push(call),
            ChatChunk::Usage(u) => response.usage = Some(u),
            ChatChunk::Finish(reason) => {
                response.finish_reason = reason;
                finished = true;
            }
        }
    }
    if !finished {
        return Err(LlmError::BadResponse(
            "stream ended without a finish".into(),
        ));
    }
    Ok(response)
}
