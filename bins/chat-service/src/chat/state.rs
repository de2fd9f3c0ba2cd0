//! What the chat routes share: limits, the [`ChatState`] (shutdown drain,
//! session checks, the per-user generation cap) and its [`ActiveGuard`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::HttpRequest;
use confab_agents::{Engine, UserSettings};
use confab_history::SessionService;
use confab_web::ApiError;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Header the gateway uses to pass the user's settings (JSON object).
pub const SETTINGS_HEADER: &str = "x-user-settings";

/// Limits of chat connections.
#[derive(Debug, Clone)]
pub struct ChatLimits {
    /// Largest WebSocket frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// WebSocket ping interval.
    pub heartbeat: Duration,
    /// A connection with no client frame for this long is closed (not while
    /// an answer streams).
    pub idle_timeout: Duration,
    /// How long running answers may go on after shutdown starts.
    pub shutdown_grace: Duration,
    /// Most answers generated at once per user over WebSocket, SSE, REST
    /// and `/v1` together (`0`: no cap); see [`crate::generations`].
    pub max_generations_per_user: usize,
    /// Redis shared by the replicas for that count (`REDIS_URL`; none: per replica).
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys (`REDIS_KEY_PREFIX`).
    pub redis_key_prefix: String,
}

impl Default for ChatLimits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            heartbeat: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
            max_generations_per_user: 4,
            redis_url: None,
            redis_key_prefix: "confab:".to_owned(),
        }
    }
}

/// What the chat routes share.
#[derive(Clone)]
pub struct ChatState {
    /// The conversation engine.
    pub engine: Engine,
    /// Sessions (the seed-004 route maps its session keys through it).
    pub sessions: SessionService,
    /// Answers being generated right now.
    pub active: Arc<AtomicUsize>,
    /// Open WebSocket connections.
    pub connections: Arc<AtomicUsize>,
    /// Fired when shutdown starts: no new answers, idle sockets close.
    pub draining: CancellationToken,
    /// Fired when the grace period ends: running answers are cancelled
    /// (saved, and ended with `done` / `cancelled`).
    pub abort: CancellationToken,
    /// Limits.
    pub limits: ChatLimits,
    /// Chat metrics (the app state's, shared).
    pub metrics: crate::metrics::ChatMetrics,
    /// The per-user cap on concurrent generations.
    pub generations: Arc<crate::generations::GenerationLimit>,
}

impl ChatState {
    /// State over an engine; `active` and `draining` are shared with the
    /// rest of the service (stats, shutdown).
    pub fn new(
        engine: Engine,
        sessions: SessionService,
        limits: ChatLimits,
        active: Arc<AtomicUsize>,
        draining: CancellationToken,
    ) -> Self {
        let max = limits.max_generations_per_user;
        let generations = match &limits.redis_url {
            Some(url) => crate::generations::GenerationLimit::redis(max, url, &limits.redis_key_prefix)
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "REDIS_URL is unusable: generations are counted per replica");
                    crate::generations::GenerationLimit::local(max)
                }),
            None => crate::generations::GenerationLimit::local(max),
        };
        Self {
            generations: Arc::new(generations),
            engine,
            sessions,
            active,
            connections: Arc::new(AtomicUsize::new(0)),
            draining,
            abort: CancellationToken::new(),
            limits,
            metrics: crate::metrics::ChatMetrics::default(),
        }
    }

    /// Graceful shutdown of chat: stop taking new answers, let running ones
    /// finish for up to the grace period, then cancel them and wait (briefly)
    /// until they are saved.
    pub async fn drain(&self) {
        self.draining.cancel();
        let deadline = tokio::time::Instant::now() + self.limits.shutdown_grace;
        while self.active.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.abort.cancel();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.active.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// 404 unless `session_id` is a live (not deleted) session of `user`.
    pub async fn check_session(&self, user: &str, session_id: Uuid) -> Result<(), ApiError> {
        let session = self.sessions.get(user, &session_id.to_string()).await?;
        if session.status == confab_models::SessionStatus::Deleted {
            return Err(ApiError::not_found(format!(
                "session {session_id} not found"
            )));
        }
        Ok(())
    }

    /// A cancellation token for one answer (cancelled on abort).
    pub fn answer_token(&self) -> CancellationToken {
        self.abort.child_token()
    }

    /// 503 while shutting down.
    pub fn check_open(&self) -> Result<(), ApiError> {
        if self.draining.is_cancelled() {
            Err(ApiError::unavailable("the service is shutting down"))
        } else {
            Ok(())
        }
    }

    /// Counts an answer as active until the guard drops.
    pub fn guard(&self) -> ActiveGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        ActiveGuard(self.active.clone(), None)
    }

    /// Starts one generation of `user`: counted as active, and within the
    /// user's cap on concurrent generations, or 429 `busy`.
    pub async fn start_generation(&self, user: &str) -> Result<ActiveGuard, ApiError> {
        let permit = self.generations.acquire(user).await.map_err(|e| {
            self.metrics.error("busy");
            ApiError::new(
                actix_web::http::StatusCode::TOO_MANY_REQUESTS,
                "busy",
                e.to_string(),
            )
            .with_retry_after(Duration::from_secs(1))
        })?;
        let mut guard = self.guard();
        guard.1 = Some(permit);
        Ok(guard)
    }
}

/// Decrements the active-answer count on drop (and ends the user's
/// generation permit, if it holds one).
pub struct ActiveGuard(Arc<AtomicUsize>, Option<crate::generations::Permit>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The user's settings from the gateway's header (defaults when absent or malformed).
pub fn settings_of(req: &HttpRequest) -> UserSettings {
    req.headers()
        .get(SETTINGS_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .map(|v| UserSettings::from_json(&v))
        .unwrap_or_default()
}
