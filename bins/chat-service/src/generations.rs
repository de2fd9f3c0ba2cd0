//! The per-user cap on concurrent generations (`CHAT_MAX_GENERATIONS_PER_USER`):
//! WebSocket, SSE, REST and the gateway's `/v1` (which reaches
//! `POST /api/chat/completions`) all take a [`Permit`] before a model runs,
//! so one user cannot open a hundred sockets (or streams) and run a
//! hundred answers at once.
//!
//! Where the count lives: in chat-service, because only chat-service knows
//! when a generation starts and ends (a WebSocket carries many answers
//! over time; the gateway sees only frames). With several chat-service
//! replicas behind the gateway (round robin), a per-replica count would let
//! a user run `cap x replicas` answers, so with `REDIS_URL` the count is a
//! sorted set per user in Redis (`PREFIXgen:USER`: one member per running
//! answer, scored by its lease expiry). A lease is renewed while the
//! answer runs and removed when it ends; a replica that crashes leaves
//! leases that expire after [`LEASE`], so a crash never locks a user out
//! for longer. Without Redis, or while Redis does not answer, the count is
//! in-process (per replica; logged once when Redis fails).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long a lease in Redis lives without renewal.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often a running answer renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(20);
/// Time limit of one Redis call.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// Takes a lease if the user has fewer than `ARGV[2]` live ones:
/// `KEYS[1]` = the user's set, `ARGV` = lease id, cap, lease ms. Uses the
/// Redis server's clock, so replicas' clocks do not matter. 1 or 0.
const ACQUIRE_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
";

/// Renews a lease (only if it is still there): `KEYS[1]`, `ARGV` = lease id, lease ms.
const RENEW_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
";

/// The user is at the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{max} answers are already being generated for this user; wait for one to finish")]
pub struct Busy {
    /// The cap.
    pub max: usize,
}

struct Shared {
    redis: ConnectionManager,
    prefix: String,
    acquire: redis::Script,
    renew: redis::Script,
    up: AtomicBool,
}

/// Counts running generations per user, in-process or in Redis.
pub struct GenerationLimit {
    max: usize,
    local: Arc<Mutex<HashMap<String, usize>>>,
    shared: Option<Arc<Shared>>,
}

impl std::fmt::Debug for GenerationLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationLimit")
            .field("max", &self.max)
            .field("redis", &self.shared.as_ref().map(|s| &s.prefix))
            .finish()
    }
}

/// One running generation; the count drops when it is dropped.
#[derive(Debug)]
pub struct Permit {
    release: Option<Release>,
}

#[derive(Debug)]
enum Release {
    Local(Arc<Mutex<HashMap<String, usize>>>, String),
    Redis {
        key: String,
        id: String,
        renewer: tokio::task::JoinHandle<()>,
        shared: Arc<Shared>,
    },
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        match self.release.take() {
            None => {}
            Some(Release::Local(counts, user)) => release_local(&counts, &user),
            Some(Release::Redis {
                key,
                id,
                renewer,
                shared,
            }) => {
                renewer.abort();
                let mut conn = shared.redis.clone();
                // Best effort: a lease that is not removed expires.
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move {
                        let mut cmd = redis::cmd("ZREM");
                        cmd.arg(&key).arg(&id);
                        let removed = cmd.query_async::<i64>(&mut conn);
                        let _ = tokio::time::timeout(REDIS_TIMEOUT, removed).await;
                    });
                }
            }
        }
    }
}

fn release_local(counts: &Mutex<HashMap<String, usize>>, user: &str) {
    if let Ok(mut counts) = counts.lock()
        && let Some(n) = counts.get_mut(user)
    {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(user);
        }
    }
}

impl GenerationLimit {
    /// At most `max` concurrent generations per user in this process
    /// (`0`: no cap).
    pub fn local(max: usize) -> Self {
        Self {
            max,
            local: Arc::new(Mutex::new(HashMap::new())),
            shared: None,
        }
    }

    /// At most `max` per user across every replica sharing the Redis at
    /// `url` (keys under `prefix`). The connection is lazy: a Redis that is
    /// down does not stop the service (the count falls back to in-process).
    /// Must be called inside a tokio runtime.
    pub fn redis(max: usize, url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let redis = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            max,
            local: Arc::new(Mutex::new(HashMap::new())),
            shared: Some(Arc::new(Shared {
                redis,
                prefix: prefix.to_owned(),
                acquire: redis::Script::new(ACQUIRE_LUA),
                renew: redis::Script::new(RENEW_LUA),
                up: AtomicBool::new(true),
            })),
        })
    }

    /// The cap (`0`: none).
    pub fn max(&self) -> usize {
        self.max
    }

    /// A permit for one more generation of `user`, or [`Busy`].
    pub async fn acquire(&self, user: &str) -> Result<Permit, Busy> {
        if self.max == 0 {
            return Ok(Permit { release: None });
        }
        if let Some(shared) = &self.shared {
            match self.acquire_shared(shared, user).await {
                Some(Ok(permit)) => return Ok(permit),
                Some(Err(busy)) => return Err(busy),
                None => {} // Redis unreachable: count in-process.
            }
        }
        let Ok(mut counts) = self.local.lock() else {
            return Ok(Permit { release: None });
        };
        let n = counts.entry(user.to_owned()).or_insert(0);
        if *n >= self.max {
            return Err(Busy { max: self.max });
        }
        *n += 1;
        Ok(Permit {
            release: Some(Release::Local(self.local.clone(), user.to_owned())),
        })
    }

    /// `None` when Redis did not answer.
    async fn acquire_shared(
        &self,
        shared: &Arc<Shared>,
        user: &str,
    ) -> Option<Result<Permit, Busy>> {
        let key = format!("{}gen:{user}", shared.prefix);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let lease_ms = u64::try_from(LEASE.as_millis()).unwrap_or(60_000);
        let mut conn = shared.redis.clone();
        let mut invocation = shared.acquire.key(&key);
        invocation.arg(&id).arg(self.max).arg(lease_ms);
        let call = invocation.invoke_async::<i64>(&mut conn);
        let taken = match tokio::time::timeout(REDIS_TIMEOUT, call).await {
            Ok(Ok(taken)) => {
                if !shared.up.swap(true, Ordering::Relaxed) {
                    tracing::info!("redis is back: generation counts are shared again");
                }
                taken
            }
            Ok(Err(e)) => {
                down(shared, &e.to_string());
                return None;
            }
            Err(_) => {
                down(shared, "timed out");
                return None;
            }
        };
        if taken != 1 {
            return Some(Err(Busy { max: self.max }));
        }
        let renewer = {
            let (shared, key, id) = (shared.clone(), key.clone(), id.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(RENEW_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let mut conn = shared.redis.clone();
                    let mut invocation = shared.renew.key(&key);
                    invocation.arg(&id).arg(lease_ms);
                    let call = invocation.invoke_async::<i64>(&mut conn);
                    let _ = tokio::time::timeout(REDIS_TIMEOUT, call).await;
                }
            })
        };
        Some(Ok(Permit {
            release: Some(Release::Redis {
                key,
                id,
                renewer,
                shared: shared.clone(),
            }),
        }))
    }
}

fn down(shared: &Shared, why: &str) {
    if shared.up.swap(false, Ordering::Relaxed) {
        tracing::warn!(
            error = why,
            "redis unreachable: generations are counted per replica until it answers"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_cap_per_user() {
        let limit = GenerationLimit::local(2);
        let a = limit.acquire("u").await.unwrap();
        let _b = limit.acquire("u").await.unwrap();
        assert_eq!(limit.acquire("u").await.unwrap_err(), Busy { max: 2 });
        let _other = limit.acquire("v").await.unwrap();
        drop(a);
        let _c = limit.acquire("u").await.unwrap();
        let off = GenerationLimit::local(0);
        let _many: Vec<_> = futures_util::future::join_all((0..10).map(|_| off.acquire("u")))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    }
}
