//! [`LocalProvider`]: the local chat model and/or embedder behind one
//! provider value, so configuration can hand either out as a [`Provider`](crate::Provider).

use crate::error::LlmError;
use crate::types::{ChatRequest, ChatResponse, ModelInfo};
use crate::{BoxFuture, ChatModel, ChatStream, EmbeddingModel};

use super::{LocalChat, LocalEmbedder};

/// The in-process models that were loaded (either or both).
#[derive(Debug, Clone)]
pub enum LocalProvider {
    /// A chat model.
    Chat(LocalChat),
    /// An embedder.
    Embed(LocalEmbedder),
}

fn not_loaded(what: &str) -> LlmError {
    LlmError::Config(format!("no local {what} model is loaded"))
}

impl ChatModel for LocalProvider {
    fn provider(&self) -> &str {
        "local"
    }
    fn default_model(&self) -> &str {
        match self {
            LocalProvider::Chat(c) => c.default_model(),
            LocalProvider::Embed(e) => e.model_id(),
        }
    }
    fn stream(&self, request: ChatRequest) -> ChatStream {
        match self {
            LocalProvider::Chat(c) => c.stream(request),
            LocalProvider::Embed(_) => {
                let err = not_loaded("chat");
                Box::pin(futures_util::stream::once(async move { Err(err) }))
            }
        }
    }
    fn complete(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse, LlmError>> {
        match self {
            LocalProvider::Chat(c) => c.complete(request),
            LocalProvider::Embed(_) => Box::pin(async { Err(not_loaded("chat")) }),
        }
    }
    fn list_models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, LlmError>> {
        match self {
            LocalProvider::Chat(c) => c.list_models(),
            LocalProvider::Embed(_) => Box::pin(async { Ok(Vec::new()) }),
        }
    }
    fn about(&self) -> Option<String> {
        match self {
            LocalProvider::Chat(c) => c.about(),
            LocalProvider::Embed(_) => None,
        }
    }
}

impl EmbeddingModel for LocalProvider {
    fn dimensions(&self) -> usize {
        match self {
            LocalProvider::Embed(e) => e.dimensions(),
            LocalProvider::Chat(_) => 0,
        }
    }
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        match self {
            LocalProvider::Embed(e) => e.embed(texts),
            LocalProvider::Chat(_) => Box::pin(async { Err(not_loaded("embedding")) }),
        }
    }
}
