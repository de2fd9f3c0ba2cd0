//! HTTP plumbing shared by the network providers: client options, status
//! and transport error mapping.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode};

use crate::error::LlmError;

/// Timeouts of a network provider's HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Longest silence between two reads of a response (first token included).
    pub read_timeout: Duration,
    /// Longest a non-streamed request may take end to end.
    pub request_timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(600),
        }
    }
}

impl HttpOptions {
    /// Builds a client with these timeouts.
    pub(crate) fn client(&self) -> Result<reqwest::Client, LlmError> {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            // After a burst, keep a bounded number of idle connections
            // (each holds a socket and buffers) for at most 30 s.
            .pool_max_idle_per_host(64)
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("confab/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LlmError::Config(format!("cannot build HTTP client: {e}")))
    }
}

/// At most this much of a provider's error body is kept in messages.
const MAX_MESSAGE: usize = 600;

/// `s` cut to at most `max` bytes at a char boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Maps a transport error (connecting, sending, reading).
pub(crate) fn transport_error(e: &reqwest::Error, what: &str) -> LlmError {
    if e.is_timeout() {
        LlmError::Timeout(format!("{what}: {e}"))
    } else if e.is_connect() || e.is_request() {
        LlmError::Unavailable(format!("{what}: {e}"))
    } else if e.is_body() || e.is_decode() {
        LlmError::BadResponse(format!(
            "{what}: response body ended early or is malformed: {e}"
        ))
    } else {
        LlmError::Unavailable(format!("{what}: {e}"))
    }
}

/// The `Retry-After` header as a duration (seconds form).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The human message inside a provider's error body (OpenAI, Ollama or plain text).
fn error_message(body: &str) -> (String, Option<String>) {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        let err = &v["error"];
        if let Some(msg) = err["message"].as_str() {
            let code = err["code"]
                .as_str()
                .or(err["type"].as_str())
                .map(str::to_owned);
            return (msg.to_owned(), code);
        }
        if let Some(msg) = err.as_str() {
            return (msg.to_owned(), None);
        }
        if let Some(msg) = v["message"].as_str() {
            return (msg.to_owned(), None);
        }
    }
    let text = truncate(body.trim(), MAX_MESSAGE);
    (
        if text.is_empty() {
            "(empty body)".to_owned()
        } else {
            text.to_owned()
        },
        None,
    )
}

/// Sends a request; a non-success status becomes the matching typed error.
pub(crate) async fn send(
    provider: &str,
    rb: reqwest::RequestBuilder,
) -> Result<Response, LlmError> {
    let response = rb
        .send()
        .await
        .map_err(|e| transport_error(&e, &format!("{provider} request")))?;
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(status_error(provider, response).await)
    }
}

/// Turns a non-success response into the matching typed error.
pub(crate) async fn status_error(provider: &str, response: Response) -> LlmError {
    let status = response.status();
    let retry = retry_after(response.headers());
    let body = response.text().await.unwrap_or_default();
    let (message, code) = error_message(&body);
    let message = format!(
        "{provider} returned {status}: {}",
        truncate(&message, MAX_MESSAGE)
    );
    let lower = message.to_lowercase();
    let context = code.as_deref() == Some("context_length_exceeded")
        || lower.contains("context length")
        || lower.contains("context window")
        || lower.contains("maximum context");
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => LlmError::Unauthorized(message),
        StatusCode::TOO_MANY_REQUESTS => LlmError::RateLimited {
            message,
            retry_after: retry,
        },
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => LlmError::Timeout(message),
        _ if context => LlmError::ContextLength(message),
        s if s.is_server_error() => LlmError::Unavailable(message),
        s if s.is_client_error() => LlmError::InvalidRequest(message),
        _ => LlmError::BadResponse(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_at_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn reads_error_bodies() {
        assert_eq!(
            error_message(r#"{"error":{"message":"bad key","code":"invalid_api_key"}}"#),
            ("bad key".into(), Some("invalid_api_key".into()))
        );
        assert_eq!(
            error_message(r#"{"error":"model not found"}"#).0,
            "model not found"
        );
        assert_eq!(error_message("plain").0, "plain");
        assert_eq!(error_message("").0, "(empty body)");
    }
}
