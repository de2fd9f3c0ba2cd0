//! Retries with jittered exponential backoff, before the first chunk only.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;

use crate::ChatStream;
use crate::error::LlmError;

/// When and how often to try a failed request again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// Backoff of the first retry; doubles each time, with jitter.
    pub base_delay: Duration,
    /// Longest wait; a `Retry-After` longer than this is not waited for.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// How long to wait before retry number `attempt` (0-based) after `err`,
    /// or `None` when it should not be retried.
    pub fn delay(&self, attempt: u32, err: &LlmError) -> Option<Duration> {
        if attempt >= self.max_retries || !err.is_retryable() {
            return None;
        }
        if let LlmError::RateLimited {
            retry_after: Some(wait),
            ..
        } = err
        {
            return (*wait <= self.max_delay).then_some(*wait);
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        // "Equal jitter": half fixed, half random, so retries spread out but never bunch at 0.
        let half = exp / 2;
        let jitter = half.mul_f64(unit_random(attempt));
        Some(half + jitter)
    }

    /// Runs `op` until it succeeds, fails for good, or retries run out.
    pub(crate) async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, LlmError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => match self.delay(attempt, &e) {
                    Some(wait) => {
                        tracing::warn!(error = %e, attempt, wait_ms = wait.as_millis() as u64, "retrying model call");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    None => return Err(e),
                },
            }
        }
    }

    /// A stream that (re)opens with `open` until its first item is not a
    /// retryable error; once anything has been handed out it never retries.
    pub(crate) fn stream<F, Fut>(self, open: F) -> ChatStream
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<ChatStream, LlmError>> + Send,
    {
        Box::pin(async_stream::stream! {
            let mut attempt = 0;
            loop {
                let first = match open().await {
                    Ok(mut inner) => match inner.next().await {
                        Some(Ok(item)) => {
                            yield Ok(item);
                            while let Some(item) = inner.next().await {
                                yield item;
                            }
                            return;
                        }
                        Some(Err(e)) => e,
                        None => LlmError::BadResponse("empty response stream".into()),
                    },
                    Err(e) => e,
                };
                match self.delay(attempt, &first) {
                    Some(wait) => {
                        tracing::warn!(error = %first, attempt, wait_ms = wait.as_millis() as u64, "retrying model stream");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    None => {
                        yield Err(first);
                        return;
                    }
                }
            }
        })
    }
}

/// A number in [0, 1) that differs between calls (no global state).
fn unit_random(salt: u32) -> f64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ (u64::from(salt) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays() {
        let p = RetryPolicy::default();
        let unavailable = LlmError::Unavailable("x".into());
        for attempt in 0..2 {
            let d = p.delay(attempt, &unavailable).unwrap();
            let cap = p.base_delay * 2u32.pow(attempt);
            assert!(d >= cap / 2 && d <= cap, "{d:?} vs {cap:?}");
        }
        assert_eq!(p.delay(2, &unavailable), None, "retries run out");
        assert_eq!(p.delay(0, &LlmError::Unauthorized("x".into())), None);
        assert_eq!(p.delay(0, &LlmError::BadResponse("x".into())), None);
        let limited = |s| LlmError::RateLimited {
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(s)),
        };
        assert_eq!(p.delay(0, &limited(1)), Some(Duration::from_secs(1)));
        assert_eq!(p.delay(0, &limited(60)), None, "too long to wait");
        assert_eq!(RetryPolicy::none().delay(0, &unavailable), None);
    }
}
