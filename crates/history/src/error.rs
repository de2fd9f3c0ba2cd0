//! The history crate's error type.

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

impl HistoryError {
    /// A short machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            HistoryError::InvalidId { .. }
            | HistoryError::InvalidUser(_)
            | HistoryError::EmptyTitle
            | HistoryError::TitleTooLong { .. }
            | HistoryError::EmptyContent
            | HistoryError::ContentTooLong { .. }
            | HistoryError::MetadataNotObject(_)
            | HistoryError::InvalidField { .. }
            | HistoryError::UnknownExportFormat(_)
            | HistoryError::InvalidCursor(_)
            | HistoryError::InvalidImport(_) => "bad_request",
            HistoryError::SessionNotFound(_) | HistoryError::MessageNotFound(_) => "not_found",
            HistoryError::SessionDeleted(_) => "session_deleted",
            HistoryError::Corrupt(_) => "internal",
            HistoryError::Store(StoreError::PoolTimeout(_)) => "unavailable",
            HistoryError::Store(_) => "database",
        }
    }

    /// Whether the caller's input is at fault (a 4xx-class error).
    pub fn is_client_error(&self) -> bool {
        matches!(self.code(), "bad_request" | "not_found" | "session_deleted")
    }
}
