//! Request bodies the gateway reads itself (the forwarded routes and
//! `/v1/chat/completions`): read only after the caller is authenticated,
//! each route with its own limit (a declared `Content-Length` over it is a
//! 413 before a byte is read), and every body larger than
//! [`SMALL_BODY`] holding its size against one process-wide [`BodyBudget`]
//! while it is buffered, so concurrent large bodies cannot take more memory
//! than the budget (beyond it they wait briefly, then get a 503).

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header;
use actix_web::web;
use bytes::{Bytes, BytesMut};
use confab_web::ApiError;
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bodies up to this size are read without a reservation.
pub const SMALL_BODY: usize = 64 * 1024;
/// Default budget of all large bodies being buffered at once (64 MiB).
pub const DEFAULT_BUDGET_BYTES: usize = 64 * 1024 * 1024;
/// Budget accounting unit (1 KiB per permit).
const UNIT: usize = 1024;
/// How long a large body waits for budget before a 503.
const BUDGET_WAIT: Duration = Duration::from_secs(5);

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Declared or sent more than the route takes (413).
    #[error("request body exceeds the limit of {limit} bytes for this route")]
    TooLarge {
        /// The route's limit.
        limit: usize,
    },
    /// Too many large bodies in flight (503).
    #[error("too many large requests at once; retry shortly")]
    Busy,
    /// The client's stream failed (400).
    #[error("cannot read request body: {0}")]
    Read(String),
}

impl BodyError {
    /// The HTTP status of the error.
    pub fn status(&self) -> actix_web::http::StatusCode {
        use actix_web::http::StatusCode;
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Read(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The JSON error code of the error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "payload_too_large",
            Self::Busy => "busy",
            Self::Read(_) => "bad_request",
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { .. } => ApiError::too_large(e.to_string()),
            BodyError::Busy => ApiError::unavailable(e.to_string()).with_retry_after(BUDGET_WAIT),
            BodyError::Read(_) => ApiError::bad_request(e.to_string()),
        }
    }
}

/// A body in memory; its share of the budget is returned when dropped.
#[derive(Debug)]
pub struct Body {
    /// The bytes.
    pub bytes: Bytes,
    _permit: Option<OwnedSemaphorePermit>,
}

/// The memory all large bodies being buffered may take together.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    units: usize,
}

impl BodyBudget {
    /// A budget of `bytes` (at least one maximum-size body of 1 MiB).
    pub fn new(bytes: usize) -> Self {
        let units = bytes.max(1024 * 1024).div_ceil(UNIT);
        Self {
            permits: Arc::new(Semaphore::new(units)),
            units,
        }
    }

    /// Reads the body of `req` from `payload`, at most `limit` bytes.
    pub async fn read(
        &self,
        req: &HttpRequest,
        mut payload: web::Payload,
        limit: usize,
    ) -> Result<Body, BodyError> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
        let expected = match declared {
            Some(n) if n > limit as u64 => return Err(BodyError::TooLarge { limit }),
            Some(n) => usize::try_from(n).unwrap_or(limit),
            None if chunked => limit,
            None => 0,
        };
        let permit = if expected > SMALL_BODY {
            let units = u32::try_from(expected.div_ceil(UNIT).min(self.units))
                .map_err(|_| BodyError::Busy)?;
            let acquire = self.permits.clone().acquire_many_owned(units);
            match tokio::time::timeout(BUDGET_WAIT, acquire).await {
                Ok(Ok(p)) => Some(p),
                _ => return Err(BodyError::Busy),
            }
        } else {
            None
        };
        // A reserved body gets its declared size at once (no regrowth).
        let mut buf = BytesMut::with_capacity(if permit.is_some() {
            expected
        } else {
            expected.min(SMALL_BODY)
        });
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
            // Without a reservation, a body may not grow past SMALL_BODY.
            let cap = if permit.is_some() {
                limit
            } else {
                limit.min(SMALL_BODY.max(expected))
            };
            if buf.len() + chunk.len() > cap {
                return Err(BodyError::TooLarge { limit });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Body {
            bytes: buf.freeze(),
            _permit: permit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_at_least_one_large_body() {
        assert_eq!(BodyBudget::new(0).units, 1024);
        assert_eq!(BodyBudget::new(64 * 1024 * 1024).units, 64 * 1024);
    }
}
