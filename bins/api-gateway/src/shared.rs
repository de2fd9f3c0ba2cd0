//! The optional Redis connection the gateway replicas share (`REDIS_URL`):
//! rate-limit buckets ([`crate::ratelimit`]) and short-lived caches
//! ([`crate::cache`]) live there so replicas agree.
//!
//! Failure behaviour: the gateway starts even when Redis is down (logs a
//! warning); every call is bounded by a short timeout and a failed call is
//! `None` (callers fall back: in-process rate limits, no cache); the
//! [`redis::aio::ConnectionManager`] reconnects, so Redis coming back is
//! picked up by the next call. `/api/health` reports `redis: down` (503).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RedisResult};

/// A Redis connection with a key prefix and a per-call time limit.
pub struct SharedRedis {
    client: redis::Client,
    manager: ConnectionManager,
    prefix: String,
    timeout: Duration,
    up: AtomicBool,
}

impl fmt::Debug for SharedRedis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRedis")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("up", &self.is_up())
            .finish()
    }
}

impl SharedRedis {
    /// A lazy connection to `url` (nothing is sent until the first call, so
    /// a Redis that is down does not stop the gateway from starting).
    /// Must be called inside a tokio runtime.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self {
            client,
            manager,
            prefix: prefix.to_owned(),
            timeout,
            up: AtomicBool::new(true),
        })
    }

    /// `prefix` + `rest`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether the last call succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Runs one call within the time limit; `None` when Redis failed or was
    /// too slow (logged once per outage).
    pub async fn call<T, F, Fut>(&self, f: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let result = tokio::time::timeout(self.timeout, f(self.manager.clone())).await;
        match result {
            Ok(Ok(value)) => {
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("redis is back");
                }
                Some(value)
            }
            Ok(Err(e)) => {
                self.down(&e.to_string());
                None
            }
            Err(_) => {
                self.down("timed out");
                None
            }
        }
    }

    fn down(&self, why: &str) {
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                error = why,
                "redis unreachable: in-process rate limits, no cache"
            );
        }
    }

    /// A subscription to `channel` on its own connection (within the time
    /// limit), as a stream of messages that ends when the connection
    /// breaks; `None` when Redis is unreachable.
    pub async fn subscribe(
        &self,
        channel: &str,
    ) -> Option<std::pin::Pin<Box<dyn futures_util::Stream<Item = redis::Msg> + Send>>> {
        let subscribed = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, RedisError>(pubsub.into_on_message())
        };
        match tokio::time::timeout(self.timeout, subscribed).await {
            Ok(Ok(stream)) => Some(Box::pin(stream)),
            Ok(Err(e)) => {
                self.down(&e.to_string());
                None
            }
            Err(_) => {
                self.down("timed out");
                None
            }
        }
    }

    /// `PING` (health checks).
    pub async fn ping(&self) -> bool {
        self.call(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .is_some()
    }
}
