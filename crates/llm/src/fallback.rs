//! A chain of chat models: the next one answers when one is unavailable.

use std::sync::Arc;

use futures_util::StreamExt;

use crate::error::LlmError;
use crate::types::{ChatRequest, ChatResponse, ModelInfo};
use crate::{BoxFuture, ChatModel, ChatStream};

/// Tries each model in order until one starts answering. A model is skipped
/// when it fails before its first chunk with an error that another provider
/// may not have (unreachable, 5xx, timeout, rate limited). Once a model has
/// produced anything, its stream is passed through as is.
#[derive(Clone)]
pub struct Fallback {
    chain: Vec<Arc<dyn ChatModel>>,
}

impl std::fmt::Debug for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.chain
                    .iter()
                    .map(|m| (m.provider().to_owned(), m.default_model().to_owned())),
            )
            .finish()
    }
}

impl Fallback {
    /// A chain over `models`, tried first to last. Fails when empty.
    pub fn new(models: Vec<Arc<dyn ChatModel>>) -> Result<Self, LlmError> {
        if models.is_empty() {
            return Err(LlmError::Config(
                "a fallback chain needs at least one model".into(),
            ));
        }
        Ok(Self { chain: models })
    }

    /// The models, in order.
    pub fn models(&self) -> &[Arc<dyn ChatModel>] {
        &self.chain
    }

    /// The request as sent to a later model: a model name chosen for the
    /// first provider means nothing to the others.
    fn for_model(request: &ChatRequest, index: usize) -> ChatRequest {
        let mut r = request.clone();
        if index > 0 {
            r.model = None;
        }
        r
    }
}

impl ChatModel for Fallback {
    fn provider(&self) -> &str {
        self.chain.first().map_or("none", |m| m.provider())
    }

    fn default_model(&self) -> &str {
        self.chain.first().map_or("none", |m| m.default_model())
    }

    fn about(&self) -> Option<String> {
        self.chain.first().and_then(|m| m.about())
    }

    fn stream(&self, request: ChatRequest) -> ChatStream {
        let chain = self.chain.clone();
        Box::pin(async_stream::stream! {
            let mut last_err = None;
            for (i, model) in chain.iter().enumerate() {
                let mut stream = model.stream(Self::for_model(&request, i));
                match stream.next().await {
                    Some(Err(e)) if e.is_retryable() && i + 1 < chain.len() => {
                        tracing::warn!(provider = model.provider(), error = %e, "provider unavailable, falling back");
                        last_err = Some(e);
                    }
                    Some(first) => {
                        yield first;
                        while let Some(item) = stream.next().await {
                            yield item;
                        }
                        return;
                    }
                    None => {
                        last_err = Some(LlmError::BadResponse("empty response stream".into()));
                    }
                }
            }
            yield Err(last_err.unwrap_or_else(|| LlmError::Unavailable("no provider answered".into())));
        })
    }

    fn complete(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse, LlmError>> {
        Box::pin(async move {
            let mut last_err = LlmError::Unavailable("no provider answered".into());
            for (i, model) in self.chain.iter().enumerate() {
                match model.complete(Self::for_model(&request, i)).await {
                    Err(e) if e.is_retryable() && i + 1 < self.chain.len() => {
                        tracing::warn!(provider = model.provider(), error = %e, "provider unavailable, falling back");
                        last_err = e;
                    }
                    other => return other,
                }
            }
            Err(last_err)
        })
    }

    fn list_models(&self) -> BoxFuture<'_, Result<Vec<ModelInfo>, LlmError>> {
        Box::pin(async move {
            let mut all = Vec::new();
            for model in &self.chain {
                match model.list_models().await {
                    Ok(models) => all.extend(models),
                    Err(e) => {
                        tracing::warn!(provider = model.provider(), error = %e, "cannot list models")
                    }
                }
            }
            Ok(all)
        })
    }
}
