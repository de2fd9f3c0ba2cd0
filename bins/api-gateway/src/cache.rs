//! Short-lived caches for what the gateway reads on hot paths: the
//! authenticated user (checked on every request), the user an API key
//! stands for, and the per-user catalogue views (dashboard, track, lesson). In Redis when `REDIS_URL` is
//! set (JSON values with a TTL, shared by every replica), in-process
//! otherwise, or off (TTL 0).
//!
//! Correctness: every entry lives under two counters, a global generation
//! (bumped by a catalogue import) and a per-user version (bumped by the
//! gateway's writes to the user: profile, progress, logout everywhere,
//! password, deletion). A read returns the counters it saw as a [`Stamp`]; a fill
//! writes under that stamp, so a value loaded from the database before a
//! concurrent invalidation lands under an old stamp that nobody reads
//! again. When Redis is unreachable, reads miss (the database answers) and
//! a failed invalidation bumps the generation as soon as Redis answers again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::shared::SharedRedis;

/// Default key prefix in Redis.
pub const DEFAULT_PREFIX: &str = "confab:";
/// A per-user version counter outlives every entry by far.
const VERSION_TTL_SECS: i64 = 86_400;
/// In-process entries swept when the map grows past this.
const LOCAL_SWEEP_AT: usize = 50_000;

/// Reads `GEN` (global) and `UV:uid` (per user), then the entry under
/// them: `ARGV` = prefix, user id, kind (`u` or `c`), hash field (`""`
/// for the plain `u` value). Returns {gen, ver, value or nil}.
const READ_LUA: &str = r"
local p = ARGV[1]
local g = redis.call('GET', p .. 'gen') or '0'
local v = redis.call('GET', p .. 'uv:' .. ARGV[2]) or '0'
local k = p .. ARGV[3] .. ':' .. g .. ':' .. v .. ':' .. ARGV[2]
local value
if ARGV[4] == '' then
  value = redis.call('GET', k)
else
  value = redis.call('HGET', k, ARGV[4])
end
return {g, v, value}
";

/// The API-key form of [`READ_LUA`]: `ARGV` = prefix, key hash. The owner
/// of the key comes from `ak:HASH` (set by an earlier lookup; a key's owner
/// never changes), then the entry under the owner's counters. Returns {}
/// when the owner is unknown, else {owner, gen, ver, value or nil}.
const READ_KEY_LUA: &str = r"
local p = ARGV[1]
local owner = redis.call('GET', p .. 'ak:' .. ARGV[2])
if not owner then return {} end
local g = redis.call('GET', p .. 'gen') or '0'
local v = redis.call('GET', p .. 'uv:' .. owner) or '0'
local value = redis.call('HGET', p .. 'k:' .. g .. ':' .. v .. ':' .. owner, ARGV[2])
return {owner, g, v, value}
";

/// The counters a read saw; a fill writes under them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    generation: String,
    version: String,
}

/// A cache read: the value if cached, and the stamp to fill under (none
/// when the cache is off or unreachable: do not fill).
#[derive(Debug)]
pub struct Lookup<T> {
    /// The cached value.
    pub value: Option<T>,
    /// Where a fill goes.
    pub stamp: Option<Stamp>,
}

impl<T> Lookup<T> {
    fn miss(stamp: Option<Stamp>) -> Self {
        Self { value: None, stamp }
    }
}

/// Which cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The authenticated user.
    User,
    /// Per-user catalogue views.
    Catalog,
    /// The user of an API key (field: the key's hash).
    ApiKey,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::User => "u",
            Kind::Catalog => "c",
            Kind::ApiKey => "k",
        }
    }
}

/// In-process state: the same counters and keys as in Redis.
#[derive(Debug, Default)]
struct Local {
    generation: u64,
    versions: HashMap<String, u64>,
    entries: HashMap<String, (String, Instant)>,
    /// API key hash -> owner.
    key_owners: HashMap<String, (String, Instant)>,
}

impl Local {
    fn stamp(&self, user: &str) -> Stamp {
        Stamp {
            generation: self.generation.to_string(),
            version: self.versions.get(user).copied().unwrap_or(0).to_string(),
        }
    }
}

#[derive(Debug)]
enum Backend {
    Off,
    Local(Mutex<Local>),
    Redis {
        redis: Arc<SharedRedis>,
        read: redis::Script,
        read_key: redis::Script,
        /// An invalidation failed: bump the generation once Redis answers.
        dirty: AtomicBool,
    },
}

/// The gateway's short-lived caches.
#[derive(Debug)]
pub struct Cache {
    backend: Backend,
    user_ttl: Duration,
    catalog_ttl: Duration,
    api_key_ttl: Duration,
}

/// The full key of an entry (Redis key, or in-process key before the field).
fn entry_key(prefix: &str, kind: Kind, stamp: &Stamp, user: &str) -> String {
    format!(
        "{prefix}{}:{}:{}:{user}",
        kind.tag(),
        stamp.generation,
        stamp.version
    )
}

impl Cache {
    /// No caching.
    pub fn off() -> Self {
        Self {
            backend: Backend::Off,
            user_ttl: Duration::ZERO,
            catalog_ttl: Duration::ZERO,
            api_key_ttl: Duration::ZERO,
        }
    }

    /// In-process caches (one replica: invalidations are local).
    pub fn local(user_ttl: Duration, catalog_ttl: Duration) -> Self {
        Self {
            backend: Backend::Local(Mutex::new(Local::default())),
            user_ttl,
            catalog_ttl,
            api_key_ttl: user_ttl,
        }
    }

    /// Caches in Redis, shared by every replica.
    pub fn redis(redis: Arc<SharedRedis>, user_ttl: Duration, catalog_ttl: Duration) -> Self {
        Self {
            backend: Backend::Redis {
                redis,
                read: redis::Script::new(READ_LUA),
                read_key: redis::Script::new(READ_KEY_LUA),
                dirty: AtomicBool::new(false),
            },
            user_ttl,
            catalog_ttl,
            api_key_ttl: user_ttl,
        }
    }

    /// Sets how long the user of an API key is cached (default: the user
    /// TTL; zero: not cached).
    pub fn with_api_key_ttl(mut self, ttl: Duration) -> Self {
        self.api_key_ttl = ttl;
        self
    }

    /// `off`, `in-process` or `redis`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Off => "off",
            Backend::Local(_) => "in-process",
            Backend::Redis { .. } => "redis",
        }
    }

    fn ttl(&self, kind: Kind) -> Duration {
        match kind {
            Kind::User => self.user_ttl,
            Kind::Catalog => self.catalog_ttl,
            Kind::ApiKey => self.api_key_ttl,
        }
    }

    /// The cached user of the API key with hash `hash`, and the key's owner
    /// when known. Fill with [`Cache::put_api_key`] under the returned
    /// stamp when the owner was known (the stamp was read before the
    /// database was), else record the owner with [`Cache::put_api_key_owner`]
    /// (so the next lookup reads a stamp first). The entry lives under the
    /// owner's version: [`Cache::invalidate_user`] drops it everywhere.
    pub async fn get_api_key<T: DeserializeOwned>(
        &self,
        hash: &str,
    ) -> (Option<String>, Lookup<T>) {
        if self.api_key_ttl.is_zero() {
            return (None, Lookup::miss(None));
        }
        match &self.backend {
            Backend::Off => (None, Lookup::miss(None)),
            Backend::Local(local) => {
                let owner = {
                    let Ok(local) = local.lock() else {
                        return (None, Lookup::miss(None));
                    };
                    local
                        .key_owners
                        .get(hash)
                        .filter(|(_, expires)| *expires > Instant::now())
                        .map(|(owner, _)| owner.clone())
                };
                match owner {
                    Some(owner) => {
                        let lookup = self.get(Kind::ApiKey, &owner, hash).await;
                        (Some(owner), lookup)
                    }
                    None => (None, Lookup::miss(None)),
                }
            }
            Backend::Redis {
                redis, read_key, ..
            } => {
                let prefix = redis.prefix().to_owned();
                let hash = hash.to_owned();
                let answer = redis
                    .call(|mut c| async move {
                        read_key
                            .arg(prefix)
                            .arg(hash)
                            .invoke_async::<Vec<Option<String>>>(&mut c)
                            .await
                    })
                    .await;
                match answer.as_deref() {
                    Some([Some(owner), Some(generation), Some(version), value]) => (
                        Some(owner.clone()),
                        Lookup {
                            value: value
                                .as_deref()
                                .and_then(|json| serde_json::from_str(json).ok()),
                            stamp: Some(Stamp {
                                generation: generation.clone(),
                                version: version.clone(),
                            }),
                        },
                    ),
                    _ => (None, Lookup::miss(None)),
                }
            }
        }
    }

    /// Caches the user of the API key `hash` (owned by `owner`) under `stamp`.
    pub async fn put_api_key<T: Serialize>(
        &self,
        owner: &str,
        hash: &str,
        stamp: Option<Stamp>,
        value: &T,
    ) {
        self.put(Kind::ApiKey, owner, hash, stamp, value).await;
    }

    /// Records that the API key `hash` belongs to `owner`.
    pub async fn put_api_key_owner(&self, hash: &str, owner: &str) {
        let ttl = self.api_key_ttl;
        if ttl.is_zero() {
            return;
        }
        match &self.backend {
            Backend::Off => {}
            Backend::Local(local) => {
                if let Ok(mut local) = local.lock() {
                    let now = Instant::now();
                    if local.key_owners.len() >= LOCAL_SWEEP_AT {
                        local.key_owners.retain(|_, (_, expires)| *expires > now);
                    }
                    local
                        .key_owners
                        .insert(hash.to_owned(), (owner.to_owned(), now + ttl * 4));
                }
            }
            Backend::Redis { redis, .. } => {
                let key = redis.key(&format!("ak:{hash}"));
                let ms = u64::try_from((ttl * 4).as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1);
                let owner = owner.to_owned();
                redis
                    .call(|mut c| async move {
                        redis::cmd("SET")
                            .arg(key)
                            .arg(owner)
                            .arg("PX")
                            .arg(ms)
                            .query_async::<()>(&mut c)
                            .await
                    })
                    .await;
            }
        }
    }

    /// The cached user record of `user`.
    pub async fn get_user<T: DeserializeOwned>(&self, user: &str) -> Lookup<T> {
        self.get(Kind::User, user, "").await
    }

    /// Caches the user record of `user` under `stamp`.
    pub async fn put_user<T: Serialize>(&self, user: &str, stamp: Option<Stamp>, value: &T) {
        self.put(Kind::User, user, "", stamp, value).await;
    }

    /// The cached catalogue view `what` (e.g. `dashboard`, `track:ID`) as `user` sees it.
    pub async fn get_catalog<T: DeserializeOwned>(&self, user: &str, what: &str) -> Lookup<T> {
        self.get(Kind::Catalog, user, what).await
    }

    /// Caches the catalogue view `what` of `user` under `stamp`.
    pub async fn put_catalog<T: Serialize>(
        &self,
        user: &str,
        what: &str,
        stamp: Option<Stamp>,
        value: &T,
    ) {
        self.put(Kind::Catalog, user, what, stamp, value).await;
    }

    async fn get<T: DeserializeOwned>(&self, kind: Kind, user: &str, field: &str) -> Lookup<T> {
        if self.ttl(kind).is_zero() {
            return Lookup::miss(None);
        }
        match &self.backend {
            Backend::Off => Lookup::miss(None),
            Backend::Local(local) => {
                let Ok(local) = local.lock() else {
                    return Lookup::miss(None);
                };
                let stamp = local.stamp(user);
                let key = format!("{}|{field}", entry_key("", kind, &stamp, user));
                let value = local
                    .entries
                    .get(&key)
                    .filter(|(_, expires)| *expires > Instant::now())
                    .and_then(|(json, _)| serde_json::from_str(json).ok());
                Lookup {
                    value,
                    stamp: Some(stamp),
                }
            }
            Backend::Redis {
                redis, read, dirty, ..
            } => {
                if dirty.load(Ordering::Relaxed) {
                    let gen_key = redis.key("gen");
                    let bumped = redis
                        .call(|mut c| async move {
                            redis::cmd("INCR")
                                .arg(gen_key)
                                .query_async::<i64>(&mut c)
                                .await
                        })
                        .await;
                    if bumped.is_none() {
                        return Lookup::miss(None);
                    }
                    dirty.store(false, Ordering::Relaxed);
                }
                let prefix = redis.prefix().to_owned();
                let answer = redis
                    .call(|mut c| async move {
                        read.arg(prefix)
                            .arg(user)
                            .arg(kind.tag())
                            .arg(field)
                            .invoke_async::<(String, String, Option<String>)>(&mut c)
                            .await
                    })
                    .await;
                let Some((generation, version, value)) = answer else {
                    return Lookup::miss(None);
                };
                Lookup {
                    value: value.and_then(|json| serde_json::from_str(&json).ok()),
                    stamp: Some(Stamp {
                        generation,
                        version,
                    }),
                }
            }
        }
    }

    async fn put<T: Serialize>(
        &self,
        kind: Kind,
        user: &str,
        field: &str,
        stamp: Option<Stamp>,
        value: &T,
    ) {
        let ttl = self.ttl(kind);
        let (Some(stamp), false) = (stamp, ttl.is_zero()) else {
            return;
        };
        let Ok(json) = serde_json::to_string(value) else {
            return;
        };
        match &self.backend {
            Backend::Off => {}
            Backend::Local(local) => {
                let Ok(mut local) = local.lock() else {
                    return;
                };
                let now = Instant::now();
                if local.entries.len() >= LOCAL_SWEEP_AT {
                    local.entries.retain(|_, (_, expires)| *expires > now);
                }
                let key = format!("{}|{field}", entry_key("", kind, &stamp, user));
                local.entries.insert(key, (json, now + ttl));
            }
            Backend::Redis { redis, .. } => {
                let key = entry_key(redis.prefix(), kind, &stamp, user);
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let field = field.to_owned();
                redis
                    .call(|mut c| async move {
                        let mut pipe = redis::pipe();
                        if field.is_empty() {
                            pipe.cmd("SET").arg(&key).arg(json).arg("PX").arg(ms);
                        } else {
                            // The first fill sets the TTL: the whole view
                            // expires `ttl` after it started filling.
                            pipe.cmd("HSET").arg(&key).arg(field).arg(json);
                            pipe.cmd("PEXPIRE").arg(&key).arg(ms).arg("NX");
                        }
                        pipe.query_async::<()>(&mut c).await
                    })
                    .await;
            }
        }
    }

    /// Forgets everything cached for `user` (profile, token version,
    /// progress views): call after any write to the user.
    pub async fn invalidate_user(&self, user: &str) {
        match &self.backend {
            Backend::Off => {}
            Backend::Local(local) => {
                if let Ok(mut local) = local.lock() {
                    *local.versions.entry(user.to_owned()).or_insert(0) += 1;
                }
            }
            Backend::Redis { redis, dirty, .. } => {
                let key = redis.key(&format!("uv:{user}"));
                let done = redis
                    .call(|mut c| async move {
                        redis::pipe()
                            .atomic()
                            .cmd("INCR")
                            .arg(&key)
                            .ignore()
                            .cmd("EXPIRE")
                            .arg(&key)
                            .arg(VERSION_TTL_SECS)
                            .ignore()
                            .query_async::<()>(&mut c)
                            .await
                    })
                    .await;
                if done.is_none() {
                    dirty.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// Forgets every cached entry (catalogue import).
    pub async fn invalidate_all(&self) {
        match &self.backend {
            Backend::Off => {}
            Backend::Local(local) => {
                if let Ok(mut local) = local.lock() {
                    local.generation += 1;
                    local.entries.clear();
                }
            }
            Backend::Redis { redis, dirty, .. } => {
                if !bump_generation(redis).await {
                    dirty.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

/// `INCR PREFIXgen` in Redis: every cached entry of every replica is
/// forgotten (what `api-gateway import-courses` does). False when Redis
/// did not answer.
pub async fn bump_generation(redis: &SharedRedis) -> bool {
    let key = redis.key("gen");
    redis
        .call(|mut c| async move { redis::cmd("INCR").arg(key).query_async::<i64>(&mut c).await })
        .await
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_fill_hit_and_invalidations() {
        let cache = Cache::local(Duration::from_secs(30), Duration::from_secs(30));
        let miss: Lookup<String> = cache.get_catalog("u1", "dashboard").await;
        assert!(miss.value.is_none());
        cache
            .put_catalog("u1", "dashboard", miss.stamp, &"v1".to_owned())
            .await;
        let hit: Lookup<String> = cache.get_catalog("u1", "dashboard").await;
        assert_eq!(hit.value.as_deref(), Some("v1"));
        // A fill racing an invalidation lands under the old stamp.
        let stale_stamp = hit.stamp;
        cache.invalidate_user("u1").await;
        cache
            .put_catalog("u1", "dashboard", stale_stamp, &"old".to_owned())
            .await;
        let after: Lookup<String> = cache.get_catalog("u1", "dashboard").await;
        assert!(after.value.is_none(), "{:?}", after.value);
        cache
            .put_catalog("u1", "dashboard", after.stamp, &"v2".to_owned())
            .await;
        cache.invalidate_all().await;
        let after: Lookup<String> = cache.get_catalog("u1", "dashboard").await;
        assert!(after.value.is_none());
    }

    #[tokio::test]
    async fn local_entries_expire_and_zero_ttl_is_off() {
        let cache = Cache::local(Duration::from_millis(20), Duration::ZERO);
        let miss: Lookup<u32> = cache.get_user("u").await;
        cache.put_user("u", miss.stamp, &7u32).await;
        assert_eq!(cache.get_user::<u32>("u").await.value, Some(7));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(cache.get_user::<u32>("u").await.value, None);
        let off: Lookup<u32> = cache.get_catalog("u", "x").await;
        assert!(off.stamp.is_none(), "catalogue TTL 0: no fills");
    }
}
