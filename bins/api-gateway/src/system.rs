//! Liveness and health.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Serialize;
use serde_json::json;

use crate::state::GatewayState;

/// `GET /livez`: liveness (`GET /` is the web client, see [`crate::ui`]).
#[utoipa::path(get, path = "/livez", tag = "system", responses((status = 200, description = "The gateway is up", body = Object)))]
#[get("/livez")]
pub async fn root(state: web::Data<GatewayState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "service": "confab api-gateway",
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "docs": "/docs",
    }))
}

/// Whether `req` may see internal details (instance URLs): it carries the
/// `METRICS_TOKEN` as a bearer token, or authenticates as an administrator.
async fn sees_details(state: &GatewayState, req: &HttpRequest) -> bool {
    let bearer = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(bearer) = bearer.filter(|b| !b.is_empty()) else {
        return false;
    };
    if let Some(token) = &state.metrics_token
        && confab_web::auth::constant_time_eq(bearer.as_bytes(), token.as_bytes())
    {
        return true;
    }
    matches!(
        crate::auth::authenticate(state, req).await,
        Ok(user) if user.user.role == confab_accounts::models::UserRole::Admin
    )
}

/// `GET /api/health`: the gateway, its database and every chat-service
/// instance (by name: `chat-service-1`, ...; their URLs only for
/// administrators and `METRICS_TOKEN` holders).
#[utoipa::path(get, path = "/api/health", tag = "system",
    responses((status = 200, description = "Everything answers", body = Object),
        (status = 503, description = "Something is down (details in the body)")))]
#[get("/api/health")]
pub async fn health(state: web::Data<GatewayState>, req: HttpRequest) -> HttpResponse {
    let details = sees_details(&state, &req).await;
    let db_ok = tokio::time::timeout(Duration::from_secs(2), state.db.ping())
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
    let instances = check_instances(&state, details).await;
    let redis_ok = match &state.redis {
        Some(r) => Some(r.ping().await),
        None => None,
    };
    let body = HealthReport::new(&state, db_ok, instances, redis_ok);
    if body.status == "ok" {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Body of `GET /api/health`. Fields are in alphabetical order, as the
/// `json!` objects this replaced serialised them.
#[derive(Debug, Serialize)]
struct HealthReport {
    chat_services: Vec<InstanceHealth>,
    database: DatabaseHealth,
    gateway: GatewayHealth,
    redis: RedisHealth,
    /// `ok`, or `degraded` when something is down.
    status: &'static str,
}

/// One chat-service instance.
#[derive(Debug, Serialize)]
struct InstanceHealth {
    name: String,
    /// `ok` or `unreachable`.
    status: &'static str,
    /// Only for administrators and `METRICS_TOKEN` holders.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
}

/// The gateway's database.
#[derive(Debug, Serialize)]
struct DatabaseHealth {
    backend: String,
    /// `ok` or `unreachable`.
    status: &'static str,
}

/// The gateway itself.
#[derive(Debug, Serialize)]
struct GatewayHealth {
    status: &'static str,
    version: &'static str,
}

/// Redis and the response cache's backend.
#[derive(Debug, Serialize)]
struct RedisHealth {
    cache: &'static str,
    /// `off` (not configured), `ok` or `down`.
    status: &'static str,
}

impl HealthReport {
    /// The report of these checks; `degraded` unless the database, at least
    /// one chat-service instance and Redis (when configured) answer.
    fn new(
        state: &GatewayState,
        db_ok: bool,
        instances: Vec<InstanceHealth>,
        redis_ok: Option<bool>,
    ) -> Self {
        let any_chat = instances.iter().any(|i| i.status == "ok");
        let status = if db_ok && any_chat && redis_ok != Some(false) {
            "ok"
        } else {
            "degraded"
        };
        let redis_status = match redis_ok {
            None => "off",
            Some(true) => "ok",
            Some(false) => "down",
        };
        Self {
            chat_services: instances,
            database: DatabaseHealth {
                backend: format!("{:?}", state.db.backend()).to_lowercase(),
                status: if db_ok { "ok" } else { "unreachable" },
            },
            gateway: GatewayHealth {
                status: "ok",
                version: env!("CARGO_PKG_VERSION"),
            },
            redis: RedisHealth {
                cache: state.cache.backend_name(),
                status: redis_status,
            },
            status,
        }
    }
}

/// Asks every chat-service instance's `/health` at once (2 s each); their
/// URLs only when `details`.
async fn check_instances(state: &GatewayState, details: bool) -> Vec<InstanceHealth> {
    let checks = state
        .proxy
        .upstreams()
        .all()
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let client = state.proxy.client().clone();
            let url = format!("{}/health", u.url);
            let base = u.url.clone();
            async move {
                let answer =
                    tokio::time::timeout(Duration::from_secs(2), client.get(&url).send()).await;
                let ok = matches!(&answer, Ok(Ok(r)) if r.status().is_success());
                InstanceHealth {
                    name: format!("chat-service-{}", i + 1),
                    status: if ok { "ok" } else { "unreachable" },
                    url: details.then_some(base),
                }
            }
        });
    futures_util::future::join_all(checks).await
}
