//! The history crate's error type.

use confab_error::{DomainError, ErrorKind};
use confab_store::StoreError;
use uuid::Uuid;

/// Everything the session and history services can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// An id given by the caller is not a UUID.
    #[error("invalid {kind} id `{value}`: expected a UUID")]
    InvalidId {
        /// `session` or `message`.
        kind: &'static str,
        /// The rejected text (shortened).
        value: String,
    },
    /// The user id is empty, too long or contains control characters.
    #[error("invalid user id: {0}")]
    InvalidUser(String),
    /// A title was empty or blank.
    #[error("title must not be empty")]
    EmptyTitle,
    /// A title exceeded the limit.
    #[error("title is {len} characters long; the limit is {max}")]
    TitleTooLong {
        /// Characters given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Message content was empty or blank.
    #[error("message content must not be empty")]
    EmptyContent,
    /// Message content exceeded the limit.
    #[error("message content is {len} bytes; the limit is {max}")]
    ContentTooLong {
        /// Bytes given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Metadata was not a JSON object.
    #[error("metadata must be a JSON object, not {0}")]
    MetadataNotObject(&'static str),
    /// Some other field was out of range.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The export format is not one we write.
    #[error("unknown export format `{0}`: use json, markdown or txt")]
    UnknownExportFormat(String),
    /// A pagination cursor was not one we issued.
    #[error("invalid cursor `{0}`")]
    InvalidCursor(String),
    /// An import document could not be read.
    #[error("invalid import: {0}")]
    InvalidImport(String),
    /// No such session for this user.
    #[error("session {0} not found")]
    SessionNotFound(Uuid),
    /// No such message for this user.
    #[error("message {0} not found")]
    MessageNotFound(Uuid),
    /// The session is deleted and can no longer change.
    #[error("session {0} is deleted")]
    SessionDeleted(Uuid),
    /// A stored row could not be read back (data written by something else).
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for HistoryError {
    fn from(e: diesel::result::Error) -> Self {
        HistoryError::Store(StoreError::Query(e))
    }
}

impl DomainError for HistoryError {
    fn kind(&self) -> ErrorKind {
        match self {
            HistoryError::InvalidId { .. }
            | HistoryError::InvalidUser(_)
            | HistoryError::UnknownExportFormat(_)
            | HistoryError::InvalidCursor(_) => ErrorKind::Malformed,
            HistoryError::EmptyTitle
            | HistoryError::TitleTooLong { .. }
            | HistoryError::EmptyContent
            | HistoryError::MetadataNotObject(_)
            | HistoryError::InvalidField { .. }
            | HistoryError::InvalidImport(_) => ErrorKind::Invalid,
            HistoryError::ContentTooLong { .. } => ErrorKind::TooLarge,
            HistoryError::SessionNotFound(_) | HistoryError::MessageNotFound(_) => {
                ErrorKind::NotFound
            }
            HistoryError::SessionDeleted(_) => ErrorKind::Conflict,
            HistoryError::Corrupt(_) => ErrorKind::Internal,
            HistoryError::Store(e) => e.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            HistoryError::SessionDeleted(_) => "session_deleted",
            HistoryError::Store(e) => e.code(),
            _ => self.kind().code(),
        }
    }

    fn public_message(&self) -> String {
        match self {
            HistoryError::Store(e) => e.public_message(),
            _ => self.to_string(),
        }
    }
}

impl HistoryError {
    /// Whether the caller's input is at fault (a 4xx-class error): not
    /// found, deleted, or input a service refused (database failures,
    /// whatever their kind, are not the caller's).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, HistoryError::Store(_)) && self.kind().is_client_error()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn kinds_and_codes() {
        let id = uuid::Uuid::nil();
        let cases: Vec<(HistoryError, ErrorKind, &str)> = vec![
            (
                HistoryError::InvalidId {
                    kind: "session",
                    value: "x".into(),
                },
                ErrorKind::Malformed,
                "bad_request",
            ),
            (
                HistoryError::InvalidCursor("c".into()),
                ErrorKind::Malformed,
                "bad_request",
            ),
            (
                HistoryError::UnknownExportFormat("pdf".into()),
                ErrorKind::Malformed,
                "bad_request",
            ),
            (
                HistoryError::EmptyTitle,
                ErrorKind::Invalid,
                "validation_error",
            ),
            (
                HistoryError::InvalidField {
                    field: "score",
                    reason: "bad".into(),
                },
                ErrorKind::Invalid,
                "validation_error",
            ),
            (
                HistoryError::ContentTooLong { len: 2, max: 1 },
                ErrorKind::TooLarge,
                "payload_too_large",
            ),
            (
                HistoryError::SessionNotFound(id),
                ErrorKind::NotFound,
                "not_found",
            ),
            (
                HistoryError::MessageNotFound(id),
                ErrorKind::NotFound,
                "not_found",
            ),
            (
                HistoryError::SessionDeleted(id),
                ErrorKind::Conflict,
                "session_deleted",
            ),
            (
                HistoryError::Store(StoreError::PoolTimeout(Duration::from_millis(5))),
                ErrorKind::Unavailable,
                "unavailable",
            ),
            (
                HistoryError::Store(StoreError::Connect("down".into())),
                ErrorKind::Unavailable,
                "unavailable",
            ),
            (
                HistoryError::Corrupt("x".into()),
                ErrorKind::Internal,
                "internal",
            ),
        ];
        for (err, kind, code) in cases {
            assert_eq!(err.kind(), kind, "{err}");
            assert_eq!(err.code(), code, "{err}");
            // A client error is never a server fault.
            assert_eq!(err.is_client_error(), kind.is_client_error(), "{err}");
        }
    }
}
