//! [`ApiError`]: every error a confab server returns, as JSON
//! `{"error": code, "message": text}` with the right status.

use std::fmt;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use confab_history::HistoryError;
use confab_store::StoreError;
use confab_store::diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::{Deserialize, Serialize};

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code (`not_found`, `validation_error`, ...).
    #[schema(example = "not_found")]
    pub error: String,
    /// Human-readable explanation.
    #[schema(example = "session 0190c7e2-0000-7000-8000-000000000000 not found")]
    pub message: String,
}

/// An error on its way to becoming an HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// When set, the response carries `Retry-After` (see [`ApiError::with_retry_after`]).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, answered with `Retry-After: <wait in whole seconds,
    /// rounded up, at least 1>` (for 429 and 503).
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// The `Retry-After` value in seconds (rounded up, at least 1), if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(retry_after_secs)
    }

    /// 400: the request is malformed (bad JSON, bad id, bad query).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400: the body is not valid JSON.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    /// 422: well-formed input that breaks a rule (wrong type, missing field, out of range).
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            message,
        )
    }

    /// 401: credentials missing or wrong.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: no such thing (for this caller).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the resource's state forbids this.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413: the body or a field is too large.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 429: slow down.
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
    }

    /// 503: a dependency (database, model) is down or saturated.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500: our fault. The detail is logged; the client gets a generic message.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        )
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code.to_owned(),
            message: self.message.clone(),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after_secs() {
            res.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        res.json(self.body())
    }
}

/// A wait as a `Retry-After` value: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// The error code used for a bare status (responses not built from an [`ApiError`]).
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "timeout",
        409 => "conflict",
        411 => "length_required",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        422 => "validation_error",
        429 => "rate_limited",
        431 => "headers_too_large",
        500 => "internal",
        502 => "bad_gateway",
        503 => "unavailable",
        504 => "gateway_timeout",
        s if s < 500 => "client_error",
        _ => "server_error",
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::PoolTimeout(_) | StoreError::Connect(_) => Self::unavailable(e.to_string()),
            StoreError::Query(q) => from_diesel(q, &e),
            StoreError::UnsupportedUrl(_) | StoreError::Migration(_) | StoreError::Task(_) => {
                Self::internal(&e)
            }
        }
    }
}

fn from_diesel(q: &DieselError, whole: &StoreError) -> ApiError {
    match q {
        DieselError::NotFound => ApiError::not_found("not found"),
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::UniqueViolation => {
                ApiError::conflict("a conflicting change was made at the same time; try again")
            }
            DatabaseErrorKind::ForeignKeyViolation => {
                ApiError::conflict("a related record changed at the same time; try again")
            }
            DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::ClosedConnection => {
                ApiError::unavailable("the database is busy; try again")
            }
            _ if is_busy(info.message()) => {
                ApiError::unavailable("the database is busy; try again")
            }
            _ => ApiError::internal(whole),
        },
        _ => ApiError::internal(whole),
    }
}

/// SQLite reports lock timeouts as plain errors: recognise them by text.
fn is_busy(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("database is locked") || m.contains("database is busy")
}

impl From<HistoryError> for ApiError {
    fn from(e: HistoryError) -> Self {
        let message = e.to_string();
        match e {
            HistoryError::InvalidId { .. }
            | HistoryError::InvalidUser(_)
            | HistoryError::UnknownExportFormat(_)
            | HistoryError::InvalidCursor(_) => Self::bad_request(message),
            HistoryError::EmptyTitle
            | HistoryError::TitleTooLong { .. }
            | HistoryError::EmptyContent
            | HistoryError::MetadataNotObject(_)
            | HistoryError::InvalidField { .. }
            | HistoryError::InvalidImport(_) => Self::validation(message),
            HistoryError::ContentTooLong { .. } => Self::too_large(message),
            HistoryError::SessionNotFound(_) | HistoryError::MessageNotFound(_) => {
                Self::not_found(message)
            }
            HistoryError::SessionDeleted(_) => {
                Self::new(StatusCode::CONFLICT, "session_deleted", message)
            }
            HistoryError::Corrupt(_) => Self::internal(message),
            HistoryError::Store(store) => store.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn history_errors_map_to_client_statuses() {
        let id = uuid::Uuid::nil();
        let cases: Vec<(HistoryError, u16, &str)> = vec![
            (
                HistoryError::InvalidId {
                    kind: "session",
                    value: "x".into(),
                },
                400,
                "bad_request",
            ),
            (HistoryError::InvalidCursor("c".into()), 400, "bad_request"),
            (
                HistoryError::UnknownExportFormat("pdf".into()),
                400,
                "bad_request",
            ),
            (HistoryError::EmptyTitle, 422, "validation_error"),
            (
                HistoryError::InvalidField {
                    field: "score",
                    reason: "bad".into(),
                },
                422,
                "validation_error",
            ),
            (
                HistoryError::ContentTooLong { len: 2, max: 1 },
                413,
                "payload_too_large",
            ),
            (HistoryError::SessionNotFound(id), 404, "not_found"),
            (HistoryError::MessageNotFound(id), 404, "not_found"),
            (HistoryError::SessionDeleted(id), 409, "session_deleted"),
            (
                HistoryError::Store(StoreError::PoolTimeout(Duration::from_millis(5))),
                503,
                "unavailable",
            ),
            (
                HistoryError::Store(StoreError::Connect("down".into())),
                503,
                "unavailable",
            ),
            (HistoryError::Corrupt("x".into()), 500, "internal"),
        ];
        for (err, status, code) in cases {
            let client = err.is_client_error();
            let api = ApiError::from(err);
            assert_eq!(api.status.as_u16(), status, "{api}");
            assert_eq!(api.code, code);
            // A client error never becomes a 5xx.
            assert_eq!(client, status < 500, "{api}");
        }
    }

    #[test]
    fn retry_after_header_is_whole_seconds_at_least_one() {
        let plain = ApiError::too_many_requests("slow down").error_response();
        assert!(plain.headers().get("retry-after").is_none());
        for (wait, want) in [
            (Duration::ZERO, "1"),
            (Duration::from_millis(1), "1"),
            (Duration::from_millis(1000), "1"),
            (Duration::from_millis(1001), "2"),
            (Duration::from_secs(42), "42"),
        ] {
            let e = ApiError::too_many_requests("slow down").with_retry_after(wait);
            let res = e.error_response();
            assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(
                res.headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
                Some(want),
                "{wait:?}"
            );
        }
    }

    #[test]
    fn internal_errors_hide_details() {
        let api = ApiError::from(StoreError::Migration("secret table x".into()));
        assert_eq!(api.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!api.message.contains("secret"));
    }

    #[test]
    fn busy_sqlite_is_unavailable() {
        struct Info;
        impl confab_store::diesel::result::DatabaseErrorInformation for Info {
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
        assert_eq!(ApiError::from(e).status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
