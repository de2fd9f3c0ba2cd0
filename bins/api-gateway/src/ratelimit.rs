//! Rate limiting: a token bucket per key (client IP for login and
//! register, user id for everything else), in-process ([`LocalLimiter`])
//! or in Redis when `REDIS_URL` is set (one atomic Lua script per check,
//! on Redis' clock, so every replica draws from the same bucket). When
//! Redis fails, the check falls back to the in-process buckets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use confab_web::ApiError;

use crate::shared::SharedRedis;

/// A limit: `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Bucket size.
    pub burst: f64,
    /// Tokens added per minute.
    pub per_minute: f64,
}

impl Limit {
    /// `per_minute` requests a minute, bursting up to the same number.
    pub fn per_minute(n: u32) -> Self {
        Self {
            burst: f64::from(n.max(1)),
            per_minute: f64::from(n.max(1)),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// In-process buckets by key; stale ones are swept as the map grows.
#[derive(Debug)]
pub struct LocalLimiter {
    limit: Limit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl LocalLimiter {
    /// A limiter applying `limit` to every key.
    pub fn new(limit: Limit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Gives back the token an attempt took (never above the burst).
    pub fn refund(&self, key: &str) {
        if let Ok(mut buckets) = self.buckets.lock()
            && let Some(b) = buckets.get_mut(key)
        {
            b.tokens = (b.tokens + 1.0).min(self.limit.burst);
        }
    }

    /// Takes one token for `key`: `Ok(())`, or `Err(wait)` with how long
    /// until the next token.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let rate = self.limit.per_minute / 60.0;
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() > 100_000 {
            let limit = self.limit;
            buckets.retain(|_, b| {
                let refill = now.duration_since(b.updated).as_secs_f64() * limit.per_minute / 60.0;
                b.tokens + refill < limit.burst
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.limit.burst,
            updated: now,
        });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(self.limit.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((1.0 - bucket.tokens) / rate).max(0.001),
            ))
        }
    }
}

/// The token bucket in Redis: `KEYS[1]` a hash {t: tokens, ts: ms},
/// `ARGV` burst, tokens per ms. Returns {1, 0} (allowed) or {0, wait ms}.
/// The key expires once a full bucket would have refilled.
const BUCKET_LUA: &str = r"
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
return {allowed, wait}
";

/// Gives one token back to `KEYS[1]` (`ARGV[1]` = burst) if the bucket exists.
const REFUND_LUA: &str = r"
local t = redis.call('HGET', KEYS[1], 't')
if t then
  redis.call('HSET', KEYS[1], 't', tostring(math.min(tonumber(ARGV[1]), tonumber(t) + 1)))
end
return 1
";

/// The Redis side of a [`RateLimiter`].
#[derive(Debug)]
struct RedisBuckets {
    redis: Arc<SharedRedis>,
    name: String,
    script: redis::Script,
}

/// A rate limiter: Redis buckets when configured (shared by every
/// replica), in-process otherwise or while Redis is unreachable.
#[derive(Debug)]
pub struct RateLimiter {
    limit: Limit,
    local: LocalLimiter,
    redis: Option<RedisBuckets>,
}

impl RateLimiter {
    /// An in-process limiter applying `limit` to every key.
    pub fn new(limit: Limit) -> Self {
        Self {
            limit,
            local: LocalLimiter::new(limit),
            redis: None,
        }
    }

    /// A limiter keeping its buckets in Redis under `PREFIX rl:NAME:KEY`.
    pub fn shared(limit: Limit, redis: Arc<SharedRedis>, name: &str) -> Self {
        Self {
            limit,
            local: LocalLimiter::new(limit),
            redis: Some(RedisBuckets {
                redis,
                name: name.to_owned(),
                script: redis::Script::new(BUCKET_LUA),
            }),
        }
    }

    /// Whether the buckets live in Redis.
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// Takes one token for `key`: `Ok(())`, or `Err(wait)` with how long
    /// until the next token.
    pub async fn check(&self, key: &str) -> Result<(), Duration> {
        if let Some(r) = &self.redis {
            let redis_key = r.redis.key(&format!("rl:{}:{key}", r.name));
            let rate_per_ms = self.limit.per_minute / 60_000.0;
            let burst = self.limit.burst;
            let script = &r.script;
            let answer = r
                .redis
                .call(|mut c| async move {
                    script
                        .key(redis_key)
                        .arg(burst)
                        .arg(rate_per_ms)
                        .invoke_async::<(i64, i64)>(&mut c)
                        .await
                })
                .await;
            match answer {
                Some((1, _)) => return Ok(()),
                Some((_, wait_ms)) => {
                    return Err(Duration::from_millis(wait_ms.max(1).unsigned_abs()));
                }
                None => {}
            }
        }
        self.local.check(key)
    }

    /// Gives back the token a [`Self::check`] of `key` took.
    pub async fn refund(&self, key: &str) {
        if let Some(r) = &self.redis {
            let redis_key = r.redis.key(&format!("rl:{}:{key}", r.name));
            let burst = self.limit.burst;
            let script = redis::Script::new(REFUND_LUA);
            let script = &script;
            let done = r
                .redis
                .call(|mut c| async move {
                    script
                        .key(redis_key)
                        .arg(burst)
                        .invoke_async::<i64>(&mut c)
                        .await
                })
                .await;
            if done.is_some() {
                return;
            }
        }
        self.local.refund(key);
    }

    /// Counts a sign-in attempt against the account `email` names (whether
    /// or not it exists: the answer is the same): a 429 once too many
    /// attempts failed within the window. Call
    /// [`AccountAttempt::succeeded`] when the password was right, so that
    /// only failures count.
    pub async fn begin_login(&self, email: &str) -> Result<AccountAttempt<'_>, RateLimited> {
        let key = account_key(email);
        self.check(&key).await.map_err(|wait| {
            RateLimited::new(
                wait,
                format!(
                    "too many failed sign-ins for this account; retry in {:.0} s",
                    wait.as_secs_f64().ceil()
                ),
            )
        })?;
        Ok(AccountAttempt { limiter: self, key })
    }
}

/// The bucket key of an account: its email as the accounts compare it
/// (trimmed, lowercase), at most 254 characters.
fn account_key(email: &str) -> String {
    format!(
        "acct:{}",
        email
            .trim()
            .to_lowercase()
            .chars()
            .take(254)
            .collect::<String>()
    )
}

/// A sign-in attempt counted by [`RateLimiter::begin_login`].
#[derive(Debug)]
pub struct AccountAttempt<'a> {
    limiter: &'a RateLimiter,
    key: String,
}

impl AccountAttempt<'_> {
    /// The password was right: the attempt does not count.
    pub async fn succeeded(self) {
        self.limiter.refund(&self.key).await;
    }
}

/// A 429: the usual JSON error body plus `Retry-After` (whole seconds,
/// rounded up).
#[derive(Debug, Clone)]
pub struct RateLimited {
    /// How long until the next token.
    pub wait: Duration,
    /// The explanation in the body.
    pub message: String,
}

impl RateLimited {
    /// A 429 for `wait`, with `message`.
    pub fn new(wait: Duration, message: impl Into<String>) -> Self {
        Self {
            wait,
            message: message.into(),
        }
    }

    /// The `Retry-After` value in seconds (rounded up, at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        confab_web::error::retry_after_secs(self.wait)
    }

    /// The same 429 as an [`ApiError`] (which keeps the wait).
    pub fn to_api_error(&self) -> ApiError {
        ApiError::too_many_requests(self.message.clone()).with_retry_after(self.wait)
    }
}

impl std::fmt::Display for RateLimited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RateLimited {}

impl ResponseError for RateLimited {
    fn status_code(&self) -> StatusCode {
        StatusCode::TOO_MANY_REQUESTS
    }

    fn error_response(&self) -> HttpResponse {
        self.to_api_error().error_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_refuses_then_refills() {
        let limiter = LocalLimiter::new(Limit {
            burst: 3.0,
            per_minute: 6000.0,
        });
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
        }
        let wait = limiter.check("a").unwrap_err();
        assert!(wait <= Duration::from_millis(20), "{wait:?}");
        assert!(limiter.check("b").is_ok(), "keys are independent");
        std::thread::sleep(Duration::from_millis(30));
        assert!(limiter.check("a").is_ok(), "refilled");
    }
}
