//! confab's error model, shared by every crate.
//!
//! Policy: each crate keeps one error enum of its own (thiserror), with its
//! sources kept (`#[from]` / `#[source]`, never a `String` copy of another
//! crate's error), and implements [`DomainError`]: what [`ErrorKind`] of
//! failure each variant is, and its machine-readable code. Only the
//! transport edge (`confab-web`'s `ApiError`, the gateway's OpenAI errors)
//! turns a kind into an HTTP status; domain crates never name statuses.

use std::time::Duration;

/// What kind of failure an error is, independent of any transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input cannot be read at all (a bad id, cursor or syntax).
    Malformed,
    /// Well-formed input that breaks a rule (empty, out of range, unknown name).
    Invalid,
    /// The input is larger than allowed.
    TooLarge,
    /// The input is of a type (a file or body format) that is not accepted.
    UnsupportedMedia,
    /// Credentials are missing, wrong, expired or revoked.
    Unauthorized,
    /// Authenticated, but not allowed to do this.
    Forbidden,
    /// No such thing (for this caller).
    NotFound,
    /// The resource's current state forbids this.
    Conflict,
    /// Too many requests; try again after the wait, when known.
    RateLimited {
        /// How long to wait before trying again.
        retry_after: Option<Duration>,
    },
    /// A dependency we own (the database, a worker) is down, busy or stopping.
    Unavailable,
    /// A service we call (the model provider) failed or answered nonsense.
    Upstream,
    /// Our own fault: a bug, corrupt data, bad configuration.
    Internal,
}

impl ErrorKind {
    /// The generic machine-readable code of this kind (`validation_error`,
    /// `not_found`, ...), used when an error has no more precise one.
    pub fn code(&self) -> &'static str {
        match self {
            ErrorKind::Malformed => "bad_request",
            ErrorKind::Invalid => "validation_error",
            ErrorKind::TooLarge => "payload_too_large",
            ErrorKind::UnsupportedMedia => "unsupported_media_type",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::RateLimited { .. } => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Upstream => "provider_error",
            ErrorKind::Internal => "internal",
        }
    }

    /// Every kind (a rate limit without a wait).
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::Malformed,
        ErrorKind::Invalid,
        ErrorKind::TooLarge,
        ErrorKind::UnsupportedMedia,
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::RateLimited { retry_after: None },
        ErrorKind::Unavailable,
        ErrorKind::Upstream,
        ErrorKind::Internal,
    ];

    /// The kind whose generic [`ErrorKind::code`] this is (`retry_after`
    /// for a rate limit), as an internal wire names it; `None` for another code.
    pub fn from_code(code: &str, retry_after: Option<Duration>) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.code() == code)
            .map(|kind| match kind {
                ErrorKind::RateLimited { .. } => ErrorKind::RateLimited { retry_after },
                other => other,
            })
    }

    /// Whether the caller is at fault (it must never become a 5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            ErrorKind::Unavailable | ErrorKind::Upstream | ErrorKind::Internal
        )
    }

    /// The wait of a rate limit, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ErrorKind::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// An error of a confab crate: its kind and code, and the message a client
/// may see. `confab-web` turns any `DomainError` into an HTTP error, so a
/// handler only writes `?`.
pub trait DomainError: std::error::Error {
    /// What kind of failure this is.
    fn kind(&self) -> ErrorKind;

    /// Machine-readable code (`session_deleted`, `email_taken`, ...); the
    /// kind's generic code unless the error has a more precise one.
    fn code(&self) -> &'static str {
        self.kind().code()
    }

    /// What a client is told (an [`ErrorKind::Internal`] error's message is
    /// only logged, never sent).
    fn public_message(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        let wait = Some(Duration::from_secs(3));
        for kind in ErrorKind::ALL {
            let back = ErrorKind::from_code(kind.code(), wait);
            match kind {
                ErrorKind::RateLimited { .. } => {
                    assert_eq!(back, Some(ErrorKind::RateLimited { retry_after: wait }));
                }
                _ => assert_eq!(back, Some(kind)),
            }
        }
        assert_eq!(ErrorKind::from_code("nonsense", None), None);
    }

    #[test]
    fn server_faults_are_not_client_errors() {
        assert!(ErrorKind::Conflict.is_client_error());
        assert!(ErrorKind::UnsupportedMedia.is_client_error());
        assert!(ErrorKind::RateLimited { retry_after: None }.is_client_error());
        assert!(!ErrorKind::Upstream.is_client_error());
        assert!(!ErrorKind::Internal.is_client_error());
    }
}
