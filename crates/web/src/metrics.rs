//! Prometheus metrics: a registry owned by each server (no global
//! recorder), HTTP request counts and latencies by matched route pattern
//! and status, and the `GET /metrics` handler (OpenMetrics text,
//! optionally behind `METRICS_TOKEN`).
//!
//! A binary builds a [`MetricsBuilder`], registers its own metrics on
//! [`MetricsBuilder::registry`], adds [`MetricsBuilder::on_scrape`] hooks
//! that copy gauges from its atomics, then puts the built [`Metrics`] in
//! app data (`web::Data<Metrics>`), wraps the app in [`track_http`] and
//! routes `GET /metrics` to [`serve_metrics`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use subtle::ConstantTimeEq;

use crate::config::{ConfigError, Vars};
use crate::error::ApiError;

pub use prometheus_client;

/// The path of the metrics endpoint.
pub const METRICS_PATH: &str = "/metrics";
/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Route label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Latency buckets in seconds (1 ms .. 60 s).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
];

/// A histogram family whose members all use the same buckets.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A histogram family over [`LATENCY_BUCKETS`].
pub fn latency_family<L>() -> HistogramFamily<L>
where
    L: Clone + std::hash::Hash + Eq,
{
    fn make() -> Histogram {
        Histogram::new(LATENCY_BUCKETS)
    }
    Family::new_with_constructor(make)
}

/// How `/metrics` is protected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// When set, `/metrics` needs `Authorization: Bearer <token>`; open otherwise.
    pub token: Option<String>,
}

impl MetricsConfig {
    /// Reads `METRICS_TOKEN` (empty or unset: open).
    pub fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        let token = vars
            .get("METRICS_TOKEN")
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        Ok(Self { token })
    }
}

/// Labels of one HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// Request method.
    pub method: String,
    /// Matched route pattern (`/api/chat/sessions/{id}`) or `unmatched`.
    pub route: String,
    /// Response status code.
    pub status: u16,
}

/// HTTP request metrics (cheap to clone: the families are shared).
#[derive(Clone)]
pub struct HttpMetrics {
    /// Requests answered.
    pub requests: Family<HttpLabels, Counter>,
    /// Time until the response head (streams: until they start), in seconds.
    pub duration: HistogramFamily<HttpLabels>,
}

impl HttpMetrics {
    /// Registers `http_requests` and `http_request_duration_seconds`.
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::default();
        let duration = latency_family();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, matched route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time until the response head (streams: until they start), by method, matched route and status",
            duration.clone(),
        );
        Self { requests, duration }
    }

    /// Records one answered request.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = HttpLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }
}

/// Hook run before each scrape (copies gauges from atomics).
type ScrapeHook = Box<dyn Fn() + Send + Sync>;

/// Builds [`Metrics`]: register metrics, add scrape hooks, then [`MetricsBuilder::build`].
pub struct MetricsBuilder {
    registry: Registry,
    http: HttpMetrics,
    hooks: Vec<ScrapeHook>,
}

impl Default for MetricsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsBuilder {
    /// A fresh registry with the HTTP metrics in it.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let http = HttpMetrics::register(&mut registry);
        Self {
            registry,
            http,
            hooks: Vec::new(),
        }
    }

    /// The registry, to register the binary's own metrics.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Runs `hook` before every scrape (e.g. to set a gauge from an atomic).
    pub fn on_scrape(&mut self, hook: impl Fn() + Send + Sync + 'static) -> &mut Self {
        self.hooks.push(Box::new(hook));
        self
    }

    /// The finished metrics.
    pub fn build(self, config: &MetricsConfig) -> Metrics {
        Metrics {
            inner: Arc::new(Inner {
                registry: self.registry,
                http: self.http,
                hooks: self.hooks,
                token: config.token.clone(),
            }),
        }
    }
}

struct Inner {
    registry: Registry,
    http: HttpMetrics,
    hooks: Vec<ScrapeHook>,
    token: Option<String>,
}

/// A server's metrics (cheap to clone; put it in app data).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("protected", &self.inner.token.is_some())
            .finish()
    }
}

impl Metrics {
    /// The HTTP request metrics.
    pub fn http(&self) -> &HttpMetrics {
        &self.inner.http
    }

    /// Runs the scrape hooks and renders the exposition text.
    pub fn render(&self) -> String {
        for hook in &self.inner.hooks {
            hook();
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        text
    }

    /// Whether `req` may read the metrics.
    fn allows(&self, req: &HttpRequest) -> bool {
        let Some(token) = &self.inner.token else {
            return true;
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        bool::from(given.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// `GET /metrics`: the exposition text; 401 without the right bearer token
/// when `METRICS_TOKEN` is set; 404 when the app has no metrics.
pub async fn serve_metrics(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let Some(metrics) = req.app_data::<web::Data<Metrics>>() else {
        return Err(ApiError::not_found("no metrics here"));
    };
    if !metrics.allows(&req) {
        return Err(ApiError::unauthorized(
            "metrics need `Authorization: Bearer <METRICS_TOKEN>`",
        ));
    }
    Ok(HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(metrics.render()))
}

/// Middleware (use with `actix_web::middleware::from_fn(track_http)`):
/// counts every request by method, matched route pattern (never the raw
/// path) and status, and observes its latency. A no-op without
/// `web::Data<Metrics>` in app data.
pub async fn track_http(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(metrics) = req.app_data::<web::Data<Metrics>>().cloned() else {
        return next.call(req).await.map(|r| r.map_into_boxed_body());
    };
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let result = next.call(req).await;
    let elapsed = started.elapsed();
    match &result {
        Ok(res) => {
            let route = res.request().match_pattern();
            let route = route.as_deref().unwrap_or(UNMATCHED);
            metrics
                .http()
                .observe(&method, route, res.status().as_u16(), elapsed);
        }
        Err(e) => {
            let status = e.as_response_error().status_code().as_u16();
            metrics.http().observe(&method, UNMATCHED, status, elapsed);
        }
    }
    result.map(|r| r.map_into_boxed_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_vars() {
        let open = MetricsConfig::from_vars(&Vars::from_pairs([("METRICS_TOKEN", " ")])).unwrap();
        assert_eq!(open.token, None);
        let closed =
            MetricsConfig::from_vars(&Vars::from_pairs([("METRICS_TOKEN", "s3")])).unwrap();
        assert_eq!(closed.token.as_deref(), Some("s3"));
    }

    #[test]
    fn renders_http_metrics_with_buckets() {
        let metrics = MetricsBuilder::new().build(&MetricsConfig::default());
        metrics
            .http()
            .observe("GET", "/a/{id}", 200, Duration::from_millis(3));
        let text = metrics.render();
        assert!(text.contains("# TYPE http_requests counter"), "{text}");
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="/a/{id}",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"le="+Inf",method="GET",route="/a/{id}",status="200"} 1"#),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
