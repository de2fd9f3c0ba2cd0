//! chat-service metrics: chat connections and generations, tokens
//! streamed, time to first token and provider errors (read off the
//! engine's event streams by [`observe`]), and how long database calls
//! waited for a connection. Registered with the HTTP metrics of
//! [`confab_web::metrics`] on the server's own registry.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use confab_models::ServerEvent;
use confab_web::metrics::prometheus_client::encoding::EncodeLabelSet;
use confab_web::metrics::prometheus_client::metrics::counter::Counter;
use confab_web::metrics::prometheus_client::metrics::family::Family;
use confab_web::metrics::prometheus_client::metrics::gauge::Gauge;
use confab_web::metrics::prometheus_client::metrics::histogram::Histogram;
use confab_web::metrics::prometheus_client::registry::Registry;
use confab_web::metrics::{LATENCY_BUCKETS, MetricsBuilder, MetricsConfig};
use futures_util::{Stream, StreamExt};

use crate::state::AppState;

/// Time-to-first-token buckets in seconds.
const TTFT_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

/// Labels of a provider error.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorKind {
    /// The error code (`provider_timeout`, `provider_unavailable`, `rate_limited`, ...).
    pub kind: String,
}

/// The chat metrics (cheap to clone; families and counters are shared).
#[derive(Clone)]
pub struct ChatMetrics {
    /// Open WebSocket chat connections (set at scrape time).
    pub ws_connections: Gauge,
    /// Answers being generated (set at scrape time).
    pub active_generations: Gauge,
    /// Answer token deltas sent to clients.
    pub tokens_streamed: Counter,
    /// Time from the start of an answer to its first token.
    pub time_to_first_token: Histogram,
    /// Model provider failures, by error code.
    pub provider_errors: Family<ErrorKind, Counter>,
    /// How long a database call waited for a pool permit and connection.
    pub db_pool_wait: Histogram,
}

impl Default for ChatMetrics {
    fn default() -> Self {
        Self {
            ws_connections: Gauge::default(),
            active_generations: Gauge::default(),
            tokens_streamed: Counter::default(),
            time_to_first_token: Histogram::new(TTFT_BUCKETS),
            provider_errors: Family::default(),
            db_pool_wait: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

impl std::fmt::Debug for ChatMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatMetrics")
            .field("tokens_streamed", &self.tokens_streamed.get())
            .finish()
    }
}

/// Whether an error code comes from the model provider layer.
pub fn is_provider_error(code: &str) -> bool {
    code.starts_with("provider_") || code == "rate_limited" || code == "context_length"
}

impl ChatMetrics {
    /// Registers every chat metric on `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "chat_ws_connections",
            "Open WebSocket chat connections",
            self.ws_connections.clone(),
        );
        registry.register(
            "chat_active_generations",
            "Answers being generated right now",
            self.active_generations.clone(),
        );
        registry.register(
            "chat_tokens_streamed",
            "Answer token deltas streamed to clients",
            self.tokens_streamed.clone(),
        );
        registry.register(
            "chat_time_to_first_token_seconds",
            "Time from the start of an answer to its first token",
            self.time_to_first_token.clone(),
        );
        registry.register(
            "chat_provider_errors",
            "Model provider failures, by error code",
            self.provider_errors.clone(),
        );
        registry.register(
            "db_pool_wait_seconds",
            "Time a database call waited for a pool permit and connection",
            self.db_pool_wait.clone(),
        );
    }

    /// Counts a provider error (other codes are ignored).
    pub fn error(&self, code: &str) {
        if is_provider_error(code) {
            self.provider_errors
                .get_or_create(&ErrorKind {
                    kind: code.to_owned(),
                })
                .inc();
        }
    }

    /// The database wait observer feeding [`ChatMetrics::db_pool_wait`].
    pub fn db_observer(&self) -> confab_store::WaitObserver {
        let histogram = self.db_pool_wait.clone();
        Arc::new(move |waited: Duration| histogram.observe(waited.as_secs_f64()))
    }
}

/// Passes an answer's events through, counting token deltas, the time to
/// the first one, and provider errors. Wrap each engine stream once.
pub fn observe<S, E>(metrics: &ChatMetrics, events: S) -> impl Stream<Item = E> + Send + 'static
where
    S: Stream<Item = E> + Send + 'static,
    E: AsRef<ServerEvent>,
{
    let metrics = metrics.clone();
    let started = Instant::now();
    let mut first = true;
    let mut tokens = 0u64;
    // The body is polled outside the handler's span: log in the request's.
    let span = tracing::Span::current();
    events.inspect(move |event| match event.as_ref() {
        ServerEvent::Token { .. } => {
            if first {
                first = false;
                metrics
                    .time_to_first_token
                    .observe(started.elapsed().as_secs_f64());
            }
            tokens += 1;
            metrics.tokens_streamed.inc();
        }
        ServerEvent::Error { code, .. } => {
            metrics.error(code);
            span.in_scope(|| tracing::debug!(code = %code, tokens, "answer failed"));
        }
        ServerEvent::Done { .. } => span.in_scope(|| {
            tracing::debug!(
                tokens,
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                "answer streamed"
            )
        }),
        _ => {}
    })
}

/// The service's [`confab_web::Metrics`]: HTTP metrics plus [`ChatMetrics`],
/// with gauges read from the state's counters at scrape time.
pub fn build(state: &AppState, config: &MetricsConfig) -> confab_web::Metrics {
    let mut builder = MetricsBuilder::new();
    state.metrics.register(builder.registry());
    let active = state.active_generations.clone();
    let gauge = state.metrics.active_generations.clone();
    builder.on_scrape(move || {
        gauge.set(i64::try_from(active.load(Ordering::SeqCst)).unwrap_or(i64::MAX));
    });
    if let Some(chat) = &state.chat {
        let connections = chat.connections.clone();
        let gauge = state.metrics.ws_connections.clone();
        builder.on_scrape(move || {
            gauge.set(i64::try_from(connections.load(Ordering::SeqCst)).unwrap_or(i64::MAX));
        });
    }
    builder.build(config)
}
