//! The llm crate's error type.

use std::time::Duration;

use confab_error::{DomainError, ErrorKind};

/// Everything a model call can fail with. Provider messages are kept.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// Credentials missing or refused (HTTP 401/403).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Too many requests (HTTP 429); `retry_after` as the provider asked.
    #[error("rate limited: {message}")]
    RateLimited {
        /// Provider's message.
        message: String,
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The prompt does not fit the model's context window.
    #[error("context length exceeded: {0}")]
    ContextLength(String),
    /// The provider cannot be reached or failed (connect error, HTTP 5xx).
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider answered something we cannot read (malformed JSON or
    /// SSE, a truncated body, an unexpected status).
    #[error("bad response from provider: {0}")]
    BadResponse(String),
    /// The provider took too long.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The caller cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The request itself is invalid (HTTP 400 other than context length, 404 model).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The provider is misconfigured.
    #[error("configuration error: {0}")]
    Config(String),
}

impl LlmError {
    /// Whether trying again (possibly elsewhere) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. } | LlmError::Unavailable(_) | LlmError::Timeout(_)
        )
    }
}

impl DomainError for LlmError {
    /// A rate limit keeps the provider's wait; a cancelled call is our
    /// worker stopping; everything else is the provider failing (or
    /// refusing what we sent it).
    fn kind(&self) -> ErrorKind {
        match self {
            LlmError::RateLimited { retry_after, .. } => ErrorKind::RateLimited {
                retry_after: *retry_after,
            },
            LlmError::Cancelled => ErrorKind::Unavailable,
            _ => ErrorKind::Upstream,
        }
    }

    /// A short machine-readable code (for `error` events).
    fn code(&self) -> &'static str {
        match self {
            LlmError::Unauthorized(_) => "provider_unauthorized",
            LlmError::RateLimited { .. } => "rate_limited",
            LlmError::ContextLength(_) => "context_length",
            LlmError::Unavailable(_) => "provider_unavailable",
            LlmError::BadResponse(_) => "provider_bad_response",
            LlmError::Timeout(_) => "provider_timeout",
            LlmError::Cancelled => "cancelled",
            LlmError::InvalidRequest(_) => "invalid_request",
            LlmError::Config(_) => "provider_config",
        }
    }
}
