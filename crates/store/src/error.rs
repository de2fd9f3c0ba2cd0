//! The store's error type.

use std::time::Duration;

use confab_error::{DomainError, ErrorKind};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

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

impl DomainError for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::PoolTimeout(_) | StoreError::Connect(_) => ErrorKind::Unavailable,
            StoreError::Query(q) => query_kind(q),
            StoreError::UnsupportedUrl(_) | StoreError::Migration(_) | StoreError::Task(_) => {
                ErrorKind::Internal
            }
        }
    }

    fn public_message(&self) -> String {
        let StoreError::Query(q) = self else {
            return self.to_string();
        };
        match (q, query_kind(q)) {
            (_, ErrorKind::NotFound) => "not found".into(),
            (DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _), _) => {
                "a related record changed at the same time; try again".into()
            }
            (_, ErrorKind::Conflict) => {
                "a conflicting change was made at the same time; try again".into()
            }
            (_, ErrorKind::Unavailable) => "the database is busy; try again".into(),
            _ => self.to_string(),
        }
    }
}

/// The kind of a failed query: a missing row, a constraint broken by a
/// concurrent change, a busy database, or our fault.
fn query_kind(q: &DieselError) -> ErrorKind {
    match q {
        DieselError::NotFound => ErrorKind::NotFound,
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::ForeignKeyViolation => {
                ErrorKind::Conflict
            }
            DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::ClosedConnection => {
                ErrorKind::Unavailable
            }
            _ if is_busy(info.message()) => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        },
        _ => ErrorKind::Internal,
    }
}

/// SQLite reports lock timeouts as plain errors: recognise them by text.
fn is_busy(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("database is locked") || m.contains("database is busy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_store_errors() {
        let cases = [
            (
                StoreError::PoolTimeout(Duration::from_millis(5)),
                ErrorKind::Unavailable,
            ),
            (StoreError::Connect("down".into()), ErrorKind::Unavailable),
            (
                StoreError::Query(DieselError::NotFound),
                ErrorKind::NotFound,
            ),
            (
                StoreError::Migration("secret table x".into()),
                ErrorKind::Internal,
            ),
        ];
        for (e, kind) in cases {
            assert_eq!(e.kind(), kind, "{e}");
        }
    }

    #[test]
    fn busy_sqlite_is_unavailable() {
        struct Info;
        impl diesel::result::DatabaseErrorInformation for Info {
            fn message(&self) -> &str {
                "database is locked"
            }
            fn details(&self) -> Option<&str> {
                None
            }
            fn hint(&self) -> Option<&str> {
                None
            }
            fn table_name(&self) -> Option<&str> {
                None
            }
            fn column_name(&self) -> Option<&str> {
                None
            }
            fn constraint_name(&self) -> Option<&str> {
                None
            }
            fn statement_position(&self) -> Option<i32> {
                None
            }
        }
        let e = StoreError::Query(DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(Info),
        ));
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(e.public_message(), "the database is busy; try again");
    }
}
