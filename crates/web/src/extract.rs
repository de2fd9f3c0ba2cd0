//! Extractor configuration and catch-alls that keep every error response in
//! the JSON shape of [`ApiError`]: malformed JSON, wrong types, missing
//! fields, bad query strings and paths, oversized bodies, unknown routes and
//! anything actix answers on its own (405, 413, ...).

use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::error::{ApiError, code_for_status};

/// Default largest JSON body, in bytes (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Classifies a JSON body error: syntax -> 400 `invalid_json`, wrong types or
/// missing fields -> 422 `validation_error`, too large -> 413.
pub fn json_error(err: &JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { length, limit } => ApiError::too_large(format!(
            "request body is {length} bytes; the limit is {limit}"
        )),
        JsonPayloadError::Overflow { limit } => {
            ApiError::too_large(format!("request body exceeds the limit of {limit} bytes"))
        }
        JsonPayloadError::ContentType => ApiError::unsupported_media_type(
            "expected a JSON body (Content-Type: application/json)",
        ),
        JsonPayloadError::Deserialize(e) => {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => ApiError::validation(format!("invalid request body: {e}")),
                Category::Syntax | Category::Eof => {
                    ApiError::invalid_json(format!("request body is not valid JSON: {e}"))
                }
                Category::Io => ApiError::bad_request(format!("cannot read request body: {e}")),
            }
        }
        JsonPayloadError::Payload(e) => {
            ApiError::bad_request(format!("cannot read request body: {e}"))
        }
        JsonPayloadError::Serialize(e) => ApiError::internal(e),
        other => ApiError::bad_request(other.to_string()),
    }
}

/// Parses a JSON body read by hand (e.g. after an authorization check),
/// classifying errors like the `Json` extractor: syntax -> 400, shape -> 422.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| json_error(&JsonPayloadError::Deserialize(e)))
}

/// [`web::JsonConfig`] with a size limit and JSON errors. Any content type
/// is read as JSON, so `curl -d '{...}'` works without a header.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .content_type(|_| true)
        .error_handler(|err, _req| json_error(&err).into())
}

/// [`web::QueryConfig`] whose errors are 400 JSON.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let QueryPayloadError::Deserialize(e) = &err else {
            return ApiError::bad_request(err.to_string()).into();
        };
        ApiError::bad_request(format!("invalid query string: {e}")).into()
    })
}

/// [`web::PathConfig`] whose errors are 400 JSON.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _req| {
        let PathError::Deserialize(e) = &err else {
            return ApiError::bad_request(err.to_string()).into();
        };
        ApiError::bad_request(format!("invalid path: {e}")).into()
    })
}

/// [`web::PayloadConfig`] (for `Bytes` / `String` bodies) with a size limit;
/// its errors are turned into JSON by [`json_errors`].
pub fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

/// Default service: 404 JSON for routes that do not exist.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::not_found(format!("no route for {} {}", req.method(), req.path())).error_response()
}

/// Middleware that rewrites every 4xx/5xx response that is not already JSON
/// (actix's own 404/405/413 answers, extractor errors without a handler)
/// into the `{"error", "message"}` shape, keeping its status and headers.
pub fn json_errors<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().default_handler(to_json_error)
}

fn is_json(res: &ServiceResponse<impl Sized>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn to_json_error<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    if is_json(&res) {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let message = match res.response().error() {
        Some(e) if status.is_client_error() => e.to_string(),
        Some(e) => {
            tracing::error!(error = %e, "internal error");
            "internal server error".to_owned()
        }
        None => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
    };
    let (req, old) = res.into_parts();
    let api = ApiError::new(status, code_for_status(status), message);
    let mut new: HttpResponse<BoxBody> = HttpResponse::build(status).json(api.body());
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    new.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let res: ServiceResponse<EitherBody<B, BoxBody>> =
        ServiceResponse::new(req, new).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}
