//! Errors of the conversation engine.

use confab_error::{DomainError, ErrorKind};
use confab_llm::LlmError;

use crate::store::StoreError;

/// Why the engine refused or failed a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgentError {
    /// The message is empty or too long.
    #[error("{0}")]
    InvalidMessage(String),
    /// No backend of that name is registered.
    #[error("unknown chat backend `{0}` (known: {1})")]
    UnknownBackend(String, String),
    /// A course agent needs a course id.
    #[error("the course agent needs a `course_id`")]
    MissingCourse,
    /// The history store refused the input, has no such session, or is unreachable.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The model failed.
    #[error(transparent)]
    Generation(#[from] LlmError),
    /// A backend (or the engine's stream) ended without a result.
    #[error("{0}")]
    Incomplete(String),
}

impl AgentError {
    /// The code of the protocol `error` event this error ends an answer
    /// with (`invalid_message`, `storage_unavailable`, the model's code, ...).
    pub fn event_code(&self) -> &'static str {
        match self {
            AgentError::InvalidMessage(_) => "invalid_message",
            AgentError::UnknownBackend(..) => "unknown_backend",
            AgentError::MissingCourse => "missing_course",
            AgentError::Store(StoreError::NotFound(_)) => "not_found",
            AgentError::Store(StoreError::Invalid(_)) => "invalid_request",
            AgentError::Store(StoreError::Unavailable(_)) => "storage_unavailable",
            AgentError::Generation(e) => e.code(),
            AgentError::Incomplete(_) => "internal",
        }
    }

    /// The message of that event.
    pub fn event_message(&self) -> String {
        match self {
            AgentError::Store(StoreError::Unavailable(m)) => format!("storage unavailable: {m}"),
            _ => self.to_string(),
        }
    }

    /// The provider's wait of a rate-limited generation, in whole seconds
    /// rounded up.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.kind()
            .retry_after()
            .map(|wait| wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    }
}

/// Over HTTP: the caller's mistakes are 4xx, a storage failure 503, and
/// any failure of the model 502 `provider_error` naming the model's code
/// (a provider's rate limit stays a 429 with its wait).
impl DomainError for AgentError {
    fn kind(&self) -> ErrorKind {
        match self {
            AgentError::InvalidMessage(_)
            | AgentError::UnknownBackend(..)
            | AgentError::MissingCourse => ErrorKind::Invalid,
            AgentError::Store(e) => e.kind(),
            AgentError::Generation(e) => e.kind(),
            AgentError::Incomplete(_) => ErrorKind::Upstream,
        }
    }

    fn public_message(&self) -> String {
        match self.kind() {
            ErrorKind::Upstream => format!("{}: {self}", self.event_code()),
            _ => self.to_string(),
        }
    }
}
