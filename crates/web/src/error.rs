//! [`ApiError`]: every error a confab server returns, as JSON
//! `{"error": code, "message": text}` with the right status.

use std::fmt;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use confab_error::{DomainError, ErrorKind};
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

    /// 415: the body (or an uploaded file) is of a type not accepted here.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
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

impl ApiError {
    /// The one mapping of an error kind to an HTTP status.
    pub fn status_of(kind: ErrorKind) -> StatusCode {
        match kind {
            ErrorKind::Malformed => StatusCode::BAD_REQUEST,
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMedia => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Any confab error becomes an HTTP error here, and only here: the status
/// from its kind, its own code and public message (an internal error is
/// logged with its sources and answered with a generic 500), and
/// `Retry-After` for a rate limit with a known wait.
impl<E: DomainError> From<E> for ApiError {
    fn from(e: E) -> Self {
        let kind = e.kind();
        if kind == ErrorKind::Internal {
            return Self::internal(SourceChain(&e));
        }
        let api = Self::new(Self::status_of(kind), e.code(), e.public_message());
        match kind.retry_after() {
            Some(wait) => api.with_retry_after(wait),
            None => api,
        }
    }
}

/// An error and its sources, `: `-separated (for logs).
struct SourceChain<'a>(&'a dyn std::error::Error);

impl fmt::Display for SourceChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A domain error of every kind, for the mapping's tests.
    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Fake {
        kind: ErrorKind,
        message: &'static str,
    }

    impl DomainError for Fake {
        fn kind(&self) -> ErrorKind {
            self.kind
        }
    }

    #[test]
    fn kinds_map_to_statuses_and_codes() {
        let cases = [
            (ErrorKind::Malformed, 400, "bad_request"),
            (ErrorKind::Invalid, 422, "validation_error"),
            (ErrorKind::TooLarge, 413, "payload_too_large"),
            (ErrorKind::UnsupportedMedia, 415, "unsupported_media_type"),
            (ErrorKind::Unauthorized, 401, "unauthorized"),
            (ErrorKind::Forbidden, 403, "forbidden"),
            (ErrorKind::NotFound, 404, "not_found"),
            (ErrorKind::Conflict, 409, "conflict"),
            (
                ErrorKind::RateLimited { retry_after: None },
                429,
                "rate_limited",
            ),
            (ErrorKind::Unavailable, 503, "unavailable"),
            (ErrorKind::Upstream, 502, "provider_error"),
            (ErrorKind::Internal, 500, "internal"),
        ];
        for (kind, status, code) in cases {
            let api = ApiError::from(Fake { kind, message: "m" });
            assert_eq!(api.status.as_u16(), status, "{api}");
            assert_eq!(api.code, code);
            // A client error never becomes a 5xx.
            assert_eq!(kind.is_client_error(), status < 500, "{api}");
        }
    }

    #[test]
    fn rate_limits_keep_their_wait() {
        let api = ApiError::from(Fake {
            kind: ErrorKind::RateLimited {
                retry_after: Some(Duration::from_millis(1500)),
            },
            message: "slow down",
        });
        assert_eq!(api.retry_after_secs(), Some(2));
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
        let api = ApiError::from(Fake {
            kind: ErrorKind::Internal,
            message: "secret table x",
        });
        assert_eq!(api.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!api.message.contains("secret"));
    }
}
