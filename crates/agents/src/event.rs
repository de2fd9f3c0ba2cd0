//! What a chat backend emits while it answers.

use std::pin::Pin;

use confab_models::{FinishReason, ServerEvent, SourceInfo, Usage};
use futures_util::Stream;

use crate::AgentError;

/// A step of the answer shown to the user while they wait (seed 003).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Reading the question and deciding what to do.
    Analysis,
    /// Searching the knowledge base.
    Retrieval,
    /// Running tools.
    Tool,
    /// Writing the answer.
    Generation,
}

impl Stage {
    /// Wire name: `analysis`, `retrieval`, `tool`, `generation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Analysis => "analysis",
            Stage::Retrieval => "retrieval",
            Stage::Tool => "tool",
            Stage::Generation => "generation",
        }
    }
}

/// One event of a backend's answer. A stream ends with exactly one
/// [`ChatEvent::Finished`] or [`ChatEvent::Error`].
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// Progress shown to the user.
    Stage {
        /// Which step.
        stage: Stage,
        /// Short human-readable description.
        content: String,
    },
    /// A piece of the answer text.
    Token(String),
    /// The model asked for a tool.
    ToolCall {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments as sent by the model.
        arguments: serde_json::Value,
    },
    /// A tool's result (or error) went back to the model.
    ToolResult {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Result text (or the error message).
        content: String,
        /// Whether the tool failed.
        is_error: bool,
    },
    /// The passages the answer is grounded on.
    Sources(Vec<SourceInfo>),
    /// The answer is complete (or was cancelled).
    Finished {
        /// Model that answered.
        model: String,
        /// Token accounting over all model calls.
        usage: Usage,
        /// Why it ended.
        finish_reason: FinishReason,
    },
    /// The answer failed; text streamed before stays valid.
    Error(crate::AgentError),
}

/// The stream a backend returns.
pub type EventStream = Pin<Box<dyn Stream<Item = ChatEvent> + Send + 'static>>;

/// One event of an answer as the engine streams it: a protocol event, or
/// the typed error that ends the answer. Transports turn it into a wire
/// [`ServerEvent`] only at their edge (`ServerEvent::from`).
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerEvent {
    /// A protocol event (never [`ServerEvent::Error`]: failures are [`AnswerEvent::Failed`]).
    Event(ServerEvent),
    /// The answer failed; text streamed before stays valid.
    Failed(AgentError),
}

impl From<AnswerEvent> for ServerEvent {
    fn from(event: AnswerEvent) -> Self {
        match event {
            AnswerEvent::Event(event) => event,
            AnswerEvent::Failed(e) => ServerEvent::Error {
                code: e.event_code().to_owned(),
                message: e.event_message(),
                retry_after_secs: e.retry_after_secs(),
            },
        }
    }
}

/// A tool call of an answer as the saved reply's metadata records it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ToolCallRecord {
    /// Call id.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as sent by the model.
    pub arguments: serde_json::Value,
    /// The result (or error) text, shortened; absent while the call runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Whether the tool failed; absent while the call runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
}
