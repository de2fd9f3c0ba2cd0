//! The accounts crate's error type.

use confab_error::{DomainError, ErrorKind};
use confab_store::StoreError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Everything the accounts services can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The email address is not one we accept.
    #[error("invalid email address: {0}")]
    InvalidEmail(String),
    /// Another account already uses this email (in any letter case).
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The password breaks the password policy; the text says what is missing.
    #[error("weak password: {0}")]
    WeakPassword(String),
    /// Some other field was out of range.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Wrong email or password (never says which).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// An access or refresh token is malformed, forged, expired, revoked or
    /// belongs to no account; the text says which.
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// A refresh token that was already used or revoked came back: the
    /// whole family of tokens of that login has been revoked.
    #[error("refresh token was already used; every token of this login has been revoked")]
    TokenReused,
    /// The API key is unknown, malformed or revoked.
    #[error("invalid API key")]
    InvalidApiKey,
    /// No such user.
    #[error("user {0} not found")]
    UserNotFound(String),
    /// No such API key for this user.
    #[error("API key {0} not found")]
    ApiKeyNotFound(String),
    /// The user has as many active API keys as allowed.
    #[error("too many API keys: at most {0} active keys per user")]
    TooManyApiKeys(usize),
    /// No such track.
    #[error("track `{0}` not found")]
    TrackNotFound(String),
    /// No such lesson.
    #[error("lesson `{0}` not found")]
    LessonNotFound(String),
    /// A catalogue to import is malformed; the text says where.
    #[error("invalid catalogue: {0}")]
    InvalidCatalog(String),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// The configuration is unusable (e.g. a JWT secret that is too short).
    #[error("invalid accounts configuration: {0}")]
    Config(String),
    /// Hashing or random generation failed.
    #[error("cryptography failed: {0}")]
    Crypto(String),
    /// A stored row could not be read back (data written by something else).
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<DieselError> for AccountsError {
    fn from(e: DieselError) -> Self {
        AccountsError::Store(StoreError::Query(e))
    }
}

impl DomainError for AccountsError {
    fn kind(&self) -> ErrorKind {
        match self {
            AccountsError::InvalidEmail(_)
            | AccountsError::InvalidField { .. }
            | AccountsError::InvalidCatalog(_)
            | AccountsError::WeakPassword(_) => ErrorKind::Invalid,
            AccountsError::EmailTaken | AccountsError::TooManyApiKeys(_) => ErrorKind::Conflict,
            AccountsError::InvalidCredentials
            | AccountsError::InvalidToken(_)
            | AccountsError::TokenReused
            | AccountsError::InvalidApiKey => ErrorKind::Unauthorized,
            AccountsError::UserNotFound(_)
            | AccountsError::ApiKeyNotFound(_)
            | AccountsError::TrackNotFound(_)
            | AccountsError::LessonNotFound(_) => ErrorKind::NotFound,
            AccountsError::Io(_)
            | AccountsError::Config(_)
            | AccountsError::Crypto(_)
            | AccountsError::Corrupt(_) => ErrorKind::Internal,
            AccountsError::Store(e) => store_kind(e),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AccountsError::EmailTaken => "email_taken",
            AccountsError::WeakPassword(_) => "weak_password",
            AccountsError::InvalidCredentials => "invalid_credentials",
            AccountsError::InvalidToken(_) => "invalid_token",
            AccountsError::TokenReused => "token_reused",
            AccountsError::InvalidApiKey => "invalid_api_key",
            _ => self.kind().code(),
        }
    }
}

/// The accounts services treat every database failure but an unreachable
/// or saturated database as their own fault (a row they expected, a
/// constraint they check first).
fn store_kind(e: &StoreError) -> ErrorKind {
    match e.kind() {
        ErrorKind::Unavailable => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

impl AccountsError {
    /// Whether the caller's input is at fault (a 4xx-class error).
    pub fn is_client_error(&self) -> bool {
        self.kind().is_client_error()
    }

    /// Whether this is a failed authentication (a 401).
    pub fn is_unauthorized(&self) -> bool {
        self.kind() == ErrorKind::Unauthorized
    }
}

/// Whether a diesel error is a UNIQUE violation.
pub(crate) fn is_unique_violation(e: &AccountsError) -> bool {
    matches!(
        e,
        AccountsError::Store(StoreError::Query(DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            _
        )))
    )
}
