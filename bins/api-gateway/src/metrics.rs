//! api-gateway metrics: upstream (chat-service) errors by kind, proxied
//! WebSocket connections and rate-limit rejections, next to the HTTP
//! metrics of [`confab_web::metrics`], on the server's own registry.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::web;
use confab_web::metrics::prometheus_client::encoding::EncodeLabelSet;
use confab_web::metrics::prometheus_client::metrics::counter::Counter;
use confab_web::metrics::prometheus_client::metrics::family::Family;
use confab_web::metrics::prometheus_client::metrics::gauge::Gauge;
use confab_web::metrics::{MetricsBuilder, MetricsConfig, UNMATCHED};

/// Labels of an upstream error.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorKind {
    /// `connect` (refused / timed out, instance skipped), `request`
    /// (failed mid-request, 502), `ws_connect` (WebSocket upgrade failed),
    /// `unavailable` (no instance reachable, 503).
    pub kind: &'static str,
}

/// Labels of a rejected request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// Matched route pattern or `unmatched`.
    pub route: String,
}

/// The gateway's own metrics (cheap to clone; shared counters).
#[derive(Debug, Clone, Default)]
pub struct GatewayMetrics {
    /// Failures talking to chat-service, by kind.
    pub upstream_errors: Family<ErrorKind, Counter>,
    /// WebSocket connections being relayed right now.
    pub ws_connections: Gauge,
    /// Requests refused by the gateway's own rate limits (429), by route.
    pub rate_limited: Family<RouteLabel, Counter>,
}

impl GatewayMetrics {
    /// Counts an upstream error.
    pub fn upstream_error(&self, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&ErrorKind { kind })
            .inc();
    }

    /// Counts a relayed WebSocket until the guard drops.
    pub fn ws_guard(&self) -> WsGuard {
        self.ws_connections.inc();
        WsGuard(self.ws_connections.clone())
    }

    /// The server's [`confab_web::Metrics`] with these metrics registered.
    pub fn build(&self, config: &MetricsConfig) -> confab_web::Metrics {
        let mut builder = MetricsBuilder::new();
        let registry = builder.registry();
        registry.register(
            "gateway_upstream_errors",
            "Failures talking to chat-service, by kind",
            self.upstream_errors.clone(),
        );
        registry.register(
            "gateway_ws_connections",
            "WebSocket connections relayed to chat-service right now",
            self.ws_connections.clone(),
        );
        registry.register(
            "gateway_rate_limited",
            "Requests refused by the gateway's own rate limits (429), by route",
            self.rate_limited.clone(),
        );
        builder.build(config)
    }
}

/// Decrements the relayed-WebSocket gauge on drop.
#[derive(Debug)]
pub struct WsGuard(Gauge);

impl Drop for WsGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Response extension marking an answer that carries chat-service's
/// status (relayed, or reshaped for the OpenAI API): its 429 is the model
/// provider's rate limit, not the gateway's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FromUpstream;

/// Marks `res` as carrying chat-service's status (see [`FromUpstream`]).
pub fn mark_upstream(mut res: actix_web::HttpResponse) -> actix_web::HttpResponse {
    res.extensions_mut().insert(FromUpstream);
    res
}

/// Middleware: counts the 429 answers of the gateway's own rate limits by
/// route; a 429 marked [`FromUpstream`] (a model provider's limit passed on
/// by chat-service) is not counted.
pub async fn count_rate_limited(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<GatewayMetrics>>().cloned();
    let res = next.call(req).await?.map_into_boxed_body();
    if let Some(metrics) = metrics
        && res.status() == StatusCode::TOO_MANY_REQUESTS
        && res.response().extensions().get::<FromUpstream>().is_none()
    {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| UNMATCHED.to_owned());
        metrics
            .rate_limited
            .get_or_create(&RouteLabel { route })
            .inc();
    }
    Ok(res)
}
