//! The closed set of providers, for configuration-driven dispatch.

use crate::error::LlmError;
use crate::types::{ChatRequest, ChatResponse, ModelInfo};
use crate::{
    BoxFuture, BuiltinProvider, ChatModel, ChatStream, EmbeddingModel, OllamaProvider,
    OpenAiProvider,
};

/// One configured provider.
#[derive(Debug, Clone)]
pub enum Provider {
    /// An OpenAI-compatible server.
    OpenAi(OpenAiProvider),
    /// An Ollama server.
    Ollama(OllamaProvider),
    /// The offline built-in model.
    Builtin(BuiltinProvider),
    /// In-process models (feature `local`).
    #[cfg(feature = "local")]
    Local(crate::local::LocalProvider),
}

macro_rules! dispatch {
    ($self:expr, $p:ident => $e:expr) => {
        match $self {
            Provider::OpenAi($p) => $e,
            Provider::Ollama($p) => $e,
            Provider::Builtin($p) => $e,
            #[cfg(feature = "local")]
            Provider::Local($p) => $e,
        }
    };
}

impl ChatModel for Provider {
    fn provider(&self) -> &str {
        dispatch!(self, p => p.provider())
    }
    fn default_model(&self) -> &str {
        dispatch!(self, p => p.default_model())
    }
    fn stream(&self, request: ChatRequest) -> ChatStream {
        dispatch!(self, p => p.stream(request))
    }
    fn complete(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse, LlmError>> {
        dispatch!(self, p => p.complete(request))
    }
    fn list_models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, LlmError>> {
        dispatch!(self, p => p.list_models())
    }
    fn about(&self) -> Option<String> {
        dispatch!(self, p => p.about())
    }
}

impl EmbeddingModel for Provider {
    fn dimensions(&self) -> usize {
        dispatch!(self, p => p.dimensions())
    }
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        dispatch!(self, p => p.embed(texts))
    }
}
