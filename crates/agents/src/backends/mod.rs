//! The built-in backends and what they share: one streamed model call
//! (`model_round`) with cancellation.

pub mod agent;
pub mod simple;

use std::sync::Arc;

use confab_llm::{ChatChunk, ChatModel, ChatRequest, LlmError, ToolCall};
use confab_models::{FinishReason, Usage};
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::event::ChatEvent;

/// How one model call ended.
#[derive(Debug)]
pub(crate) enum RoundEnd {
    /// The model finished.
    Finished(FinishReason),
    /// `cancel` fired first.
    Cancelled,
    /// The model failed (after the tokens already yielded).
    Failed(LlmError),
}

/// An item of [`model_round`]: a token as it arrives, then one summary.
#[derive(Debug)]
pub(crate) enum RoundItem {
    /// A piece of text.
    Token(String),
    /// The end of the call.
    End {
        /// How it ended.
        end: RoundEnd,
        /// All the text.
        text: String,
        /// Tool calls the model made.
        tool_calls: Vec<ToolCall>,
        /// Token accounting (estimated when the provider sent none).
        usage: Usage,
    },
}

/// Streams one model call, stopping as soon as `cancel` fires (dropping
/// the provider stream closes the upstream request).
pub(crate) fn model_round(
    model: Arc<dyn ChatModel>,
    request: ChatRequest,
    cancel: CancellationToken,
) -> impl Stream<Item = RoundItem> + Send + 'static {
    async_stream::stream! {
        let prompt_estimate = estimate_prompt(&request);
        let mut upstream = model.stream(request);
        let mut text = String::new();
        let mut pieces: u32 = 0;
        let mut tool_calls = Vec::new();
        let mut usage: Option<Usage> = None;
        let end = loop {
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => break RoundEnd::Cancelled,
                next = upstream.next() => next,
            };
            match next {
                Some(Ok(ChatChunk::Text(t))) => {
                    if t.is_empty() {
                        continue;
                    }
                    pieces += 1;
                    text.push_str(&t);
                    yield RoundItem::Token(t);
                }
                Some(Ok(ChatChunk::ToolCall(call))) => tool_calls.push(call),
                Some(Ok(ChatChunk::Usage(u))) => usage = Some(u),
                Some(Ok(ChatChunk::Finish(reason))) => break RoundEnd::Finished(reason),
                Some(Err(e)) => break RoundEnd::Failed(e),
                None => {
                    break RoundEnd::Failed(LlmError::BadResponse(
                        "the model stream ended without a finish".into(),
                    ))
                }
            }
        };
        drop(upstream);
        let usage = usage.unwrap_or_else(|| Usage::new(prompt_estimate, pieces));
        yield RoundItem::End { end, text, tool_calls, usage };
    }
}

/// Rough prompt size (4 characters a token) for providers that report none.
fn estimate_prompt(request: &ChatRequest) -> u32 {
    let chars: usize = request
        .messages
        .iter()
        .map(|m| m.content.chars().count() + 16)
        .sum();
    u32::try_from(chars / 4).unwrap_or(u32::MAX)
}

/// Sum of two usages.
pub(crate) fn add_usage(a: Usage, b: Usage) -> Usage {
    Usage::new(
        a.prompt_tokens.saturating_add(b.prompt_tokens),
        a.completion_tokens.saturating_add(b.completion_tokens),
    )
}

/// The event for a failed model call.
pub(crate) fn llm_error_event(e: &LlmError) -> ChatEvent {
    ChatEvent::Error(crate::AgentError::Generation(e.clone()))
}

/// The request every backend starts from.
pub(crate) fn base_request(
    messages: Vec<confab_llm::ChatMessage>,
    config: &crate::backend::BackendConfig,
    ctx: &crate::backend::ChatContext,
) -> ChatRequest {
    let mut request = ChatRequest::new(messages);
    request.model = ctx.settings.preferred_model.clone();
    request.temperature = config.temperature;
    request.max_tokens = config.max_tokens;
    request
}
