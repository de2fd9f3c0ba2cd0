//! The chat-service instances behind the gateway: round robin over the
//! healthy ones, with passive health checks (an instance that refuses a
//! connection or times out is skipped for a while).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One chat-service instance.
#[derive(Debug)]
pub struct Upstream {
    /// Base URL, e.g. `http://127.0.0.1:8001` (no trailing slash).
    pub url: String,
    down_until: Mutex<Option<Instant>>,
}

impl Upstream {
    /// Whether it is currently considered down.
    pub fn is_down(&self) -> bool {
        match self.down_until.lock() {
            Ok(d) => d.is_some_and(|t| Instant::now() < t),
            Err(_) => false,
        }
    }

    /// The WebSocket base URL (`ws://` / `wss://`).
    pub fn ws_url(&self) -> String {
        if let Some(rest) = self.url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.url.clone()
        }
    }
}

/// The instances and the round-robin cursor.
#[derive(Debug)]
pub struct Upstreams {
    list: Vec<Upstream>,
    next: AtomicUsize,
    /// How long an instance that failed is skipped.
    pub cooldown: Duration,
}

impl Upstreams {
    /// Instances from base URLs (trailing slashes removed).
    pub fn new(urls: &[String], cooldown: Duration) -> Self {
        Self {
            list: urls
                .iter()
                .map(|u| Upstream {
                    url: u.trim().trim_end_matches('/').to_owned(),
                    down_until: Mutex::new(None),
                })
                .collect(),
            next: AtomicUsize::new(0),
            cooldown,
        }
    }

    /// All instances.
    pub fn all(&self) -> &[Upstream] {
        &self.list
    }

    /// The order to try instances in for one request: healthy ones first,
    /// starting at the round-robin cursor, then the ones marked down (they
    /// may have come back).
    pub fn order(&self) -> Vec<&Upstream> {
        let n = self.list.len();
        if n == 0 {
            return Vec::new();
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let rotated = (0..n).map(|i| &self.list[(start + i) % n]);
        let (up, down): (Vec<&Upstream>, Vec<&Upstream>) = rotated.partition(|u| !u.is_down());
        up.into_iter().chain(down).collect()
    }

    /// Marks an instance down for the cooldown.
    pub fn mark_down(&self, upstream: &Upstream) {
        if let Ok(mut d) = upstream.down_until.lock() {
            *d = Some(Instant::now() + self.cooldown);
        }
        tracing::warn!(upstream = %upstream.url, "chat-service instance marked down");
    }

    /// Marks an instance healthy.
    pub fn mark_up(&self, upstream: &Upstream) {
        if let Ok(mut d) = upstream.down_until.lock()
            && d.take().is_some()
        {
            tracing::info!(upstream = %upstream.url, "chat-service instance is back");
        }
    }
}
