//! Errors of the conversation engine.

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
    /// The session does not exist for this user.
    #[error("{0}")]
    NotFound(String),
    /// A course agent needs a course id.
    #[error("the course agent needs a `course_id`")]
    MissingCourse,
    /// The history store refused the input.
    #[error("{0}")]
    Invalid(String),
    /// The history store is unreachable.
    #[error("storage unavailable: {0}")]
    Storage(String),
    /// The model or the backend failed.
    #[error("{message}")]
    Generation {
        /// Error code (e.g. `provider_unavailable`).
        code: String,
        /// What happened.
        message: String,
        /// Seconds the model provider asked to wait (its 429 `Retry-After`).
        retry_after: Option<u64>,
    },
}

impl AgentError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &str {
        match self {
            AgentError::InvalidMessage(_) => "invalid_message",
            AgentError::UnknownBackend(..) => "unknown_backend",
            AgentError::NotFound(_) => "not_found",
            AgentError::MissingCourse => "missing_course",
            AgentError::Invalid(_) => "invalid_request",
            AgentError::Storage(_) => "storage_unavailable",
            AgentError::Generation { code, .. } => code,
        }
    }
}

impl From<StoreError> for AgentError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => AgentError::NotFound(m),
            StoreError::Invalid(m) => AgentError::Invalid(m),
            StoreError::Unavailable(m) => AgentError::Storage(m),
        }
    }
}
