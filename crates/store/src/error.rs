//! The store's error type.

use std::time::Duration;

/// Everything that can go wrong below the services.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `DATABASE_URL` names a scheme we do not speak.
    #[error("unsupported database URL `{0}`: use sqlite://PATH, a file path, or postgres://...")]
    UnsupportedUrl(String),
    /// The database could not be opened or reached.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// No pooled connection became free in time.
    #[error("database is busy: no connection available within {}ms", .0.as_millis())]
    PoolTimeout(Duration),
    /// Applying migrations failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    /// The blocking task running the query was lost (it panicked or was cancelled).
    #[error("database task failed: {0}")]
    Task(String),
}

impl StoreError {
    /// Whether this is diesel's `NotFound`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::Query(diesel::result::Error::NotFound))
    }
}
