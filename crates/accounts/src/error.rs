//! The accounts crate's error type.

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

impl AccountsError {
    /// A short machine-readable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            AccountsError::InvalidEmail(_)
            | AccountsError::InvalidField { .. }
            | AccountsError::InvalidCatalog(_) => "validation_error",
            AccountsError::EmailTaken => "email_taken",
            AccountsError::WeakPassword(_) => "weak_password",
            AccountsError::InvalidCredentials => "invalid_credentials",
            AccountsError::InvalidToken(_) => "invalid_token",
            AccountsError::TokenReused => "token_reused",
            AccountsError::InvalidApiKey => "invalid_api_key",
            AccountsError::UserNotFound(_)
            | AccountsError::ApiKeyNotFound(_)
            | AccountsError::TrackNotFound(_)
            | AccountsError::LessonNotFound(_) => "not_found",
            AccountsError::TooManyApiKeys(_) => "conflict",
            AccountsError::Io(_) => "io",
            AccountsError::Config(_) | AccountsError::Crypto(_) | AccountsError::Corrupt(_) => {
                "internal"
            }
            AccountsError::Store(StoreError::PoolTimeout(_) | StoreError::Connect(_)) => {
                "unavailable"
            }
            AccountsError::Store(_) => "database",
        }
    }

    /// The HTTP status this error stands for (400-class for the caller's
    /// faults, 401 for failed authentication, 503 when the database is
    /// unreachable or saturated, 500 otherwise).
    pub fn status(&self) -> u16 {
        match self.code() {
            "validation_error" | "weak_password" => 422,
            "email_taken" | "conflict" => 409,
            "invalid_credentials" | "invalid_token" | "token_reused" | "invalid_api_key" => 401,
            "not_found" => 404,
            "unavailable" => 503,
            _ => 500,
        }
    }

    /// Whether the caller's input is at fault (a 4xx-class error).
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status())
    }

    /// Whether this is a failed authentication (a 401).
    pub fn is_unauthorized(&self) -> bool {
        self.status() == 401
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
