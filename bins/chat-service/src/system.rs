//! System routes (seed 003): liveness, health with dependency checks, statistics.

use std::sync::Arc;
use std::time::Instant;

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use confab_history::GlobalCounts;
use confab_llm::ChatModel;
use confab_models::{ExperienceSummary, UserSessionStats};
use confab_store::Backend;
use confab_web::{ApiError, Caller, ErrorBody};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::openapi::SYSTEM;
use crate::state::AppState;

/// Name of this service in health answers.
pub const SERVICE: &str = "chat-service";
/// Version of this service.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Liveness answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: String,
    /// `chat-service`.
    pub service: String,
    /// Service version.
    pub version: String,
}

fn liveness() -> web::Json<Liveness> {
    web::Json(Liveness {
        status: "ok".to_owned(),
        service: SERVICE.to_owned(),
        version: VERSION.to_owned(),
    })
}

/// Liveness: the process answers (no dependency is checked).
#[utoipa::path(tag = SYSTEM, responses((status = 200, description = "OK", body = Liveness)))]
#[get("/")]
pub async fn root() -> web::Json<Liveness> {
    liveness()
}

/// Liveness, for probes and the gateway.
#[utoipa::path(tag = SYSTEM, responses((status = 200, description = "OK", body = Liveness)))]
#[get("/health")]
pub async fn health() -> web::Json<Liveness> {
    liveness()
}

/// The database's state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatabaseHealth {
    /// Whether a trivial query succeeded.
    pub ok: bool,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Round trip of the query, in milliseconds.
    pub latency_ms: f64,
    /// Why it failed.
    pub error: Option<String>,
}

/// A provider's state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderHealth {
    /// Provider name (`openai`, `ollama`, `builtin`, ...).
    pub provider: String,
    /// Its default model.
    pub model: String,
    /// Whether it listed its models in time.
    pub ok: bool,
    /// Models it offers (when it answered).
    pub models: Vec<String>,
    /// Time to answer, in milliseconds.
    pub latency_ms: f64,
    /// Why it failed.
    pub error: Option<String>,
    /// Which model answers, what it is good for and how to switch (the
    /// in-process and built-in models; servers describe themselves).
    pub about: Option<String>,
}

/// Versions of what answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Versions {
    /// chat-service version.
    pub chat_service: String,
    /// Version of the chat event protocol and REST API.
    pub api: String,
}

/// Health with dependency checks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthReport {
    /// `ok`, `degraded` (a provider is down) or `unavailable` (the database is down).
    pub status: String,
    /// `chat-service`.
    pub service: String,
    /// When checked.
    pub timestamp: DateTime<Utc>,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// The database.
    pub database: DatabaseHealth,
    /// Every configured provider, main first.
    pub providers: Vec<ProviderHealth>,
    /// Versions.
    pub versions: Versions,
    /// Things that work but not as configured, e.g. knowledge bases or
    /// collections embedded with another model (searched by keywords until re-embedded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

async fn database_health(state: &AppState) -> DatabaseHealth {
    let started = Instant::now();
    let result = state.db.ping().await;
    DatabaseHealth {
        ok: result.is_ok(),
        backend: match state.db.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
        .to_owned(),
        latency_ms: started.elapsed().as_secs_f64() * 1000.0,
        error: result.err().map(|e| e.to_string()),
    }
}

/// Asks every provider for its models, each within the probe timeout, concurrently.
pub async fn probe_providers(state: &AppState) -> Vec<ProviderHealth> {
    let timeout = state.provider_probe_timeout;
    join_all(
        state
            .providers
            .iter()
            .map(|p: &Arc<dyn ChatModel>| async move {
                let started = Instant::now();
                let answer = tokio::time::timeout(timeout, p.list_models()).await;
                let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
                let (ok, models, error) = match answer {
                    Ok(Ok(models)) => (true, models.into_iter().map(|m| m.id).collect(), None),
                    Ok(Err(e)) => (false, Vec::new(), Some(e.to_string())),
                    Err(_) => (
                        false,
                        Vec::new(),
                        Some(format!("no answer within {} ms", timeout.as_millis())),
                    ),
                };
                ProviderHealth {
                    provider: p.provider().to_owned(),
                    model: p.default_model().to_owned(),
                    ok,
                    models,
                    latency_ms,
                    error,
                    about: p.about(),
                }
            }),
    )
    .await
}

/// Health: database reachable, providers answering, versions. 503 when the database is down.
#[utoipa::path(
    tag = SYSTEM,
    responses(
        (status = 200, description = "ok or degraded", body = HealthReport),
        (status = 401, description = "Internal key missing", body = ErrorBody),
        (status = 503, description = "The database is down", body = HealthReport),
    )
)]
#[get("/api/health")]
pub async fn api_health(state: web::Data<AppState>, _caller: Caller) -> HttpResponse {
    let (database, providers) =
        futures_util::join!(database_health(&state), probe_providers(&state));
    let status = if !database.ok {
        "unavailable"
    } else if providers.iter().any(|p| !p.ok) {
        "degraded"
    } else {
        "ok"
    };
    let report = HealthReport {
        status: status.to_owned(),
        service: SERVICE.to_owned(),
        timestamp: Utc::now(),
        uptime_secs: state.started.elapsed().as_secs(),
        database,
        providers,
        versions: Versions {
            chat_service: VERSION.to_owned(),
            api: "v1".to_owned(),
        },
        warnings: crate::knowledge::embedding_warnings(&state).await,
    };
    if report.database.ok {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().json(report)
    }
}

/// The main provider and model.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelManager {
    /// Provider name.
    pub provider: String,
    /// The model used when a request names none.
    pub current_model: String,
}

/// Memory figures.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemoryFigures {
    /// Items of every user.
    pub total: i64,
    /// The caller's items.
    pub user: i64,
}

/// Feedback figures (every user's).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExperienceFigures {
    /// Feedback items.
    pub total: i64,
    /// Mean score 1..=5.
    pub avg_score: Option<f64>,
}

/// Counts over every user (for administrators; the caller's own otherwise).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    /// Sessions not deleted.
    pub sessions: i64,
    /// Messages in them.
    pub messages: i64,
    /// Memory items.
    pub memory_items: i64,
    /// Feedback items.
    pub feedback: i64,
}

impl From<GlobalCounts> for Counts {
    fn from(c: GlobalCounts) -> Self {
        Self {
            sessions: c.sessions,
            messages: c.messages,
            memory_items: c.memory_items,
            feedback: c.feedback,
        }
    }
}

/// System statistics (seed 003 shape plus counts and the caller's figures).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// When computed.
    pub timestamp: DateTime<Utc>,
    /// Whether any generation is streaming.
    pub is_processing: bool,
    /// Generations streaming right now.
    pub active_generations: usize,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// The main provider and model (none configured: null).
    pub model_manager: Option<ModelManager>,
    /// Every configured provider and whether it answers.
    pub providers: Vec<ProviderHealth>,
    /// Counts over every user.
    pub counts: Counts,
    /// Memory items.
    pub memory: MemoryFigures,
    /// Feedback aggregate.
    pub experience: ExperienceFigures,
    /// The caller's sessions.
    pub user: UserSessionStats,
}

/// Statistics: active generations, providers, counts, memory, feedback.
/// Administrators see figures over every user and the providers' errors;
/// other users see their own figures (`counts`, `memory`, `experience`
/// are theirs) and only whether each provider answers.
#[utoipa::path(
    tag = SYSTEM,
    responses(
        (status = 200, description = "OK", body = Stats),
        (status = 503, description = "The database is down", body = ErrorBody),
    )
)]
#[get("/api/stats")]
pub async fn stats(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<web::Json<Stats>, ApiError> {
    if !caller.is_admin() {
        return user_stats(&state, &caller).await;
    }
    let (counts, user_memory, user, experience, providers) = futures_util::join!(
        state.sessions.global_counts(),
        state.memory.count(&caller.user_id),
        state.sessions.stats(&caller.user_id),
        state.feedback.experience(None, 0),
        probe_providers(&state),
    );
    let (counts, experience) = (counts?, experience?);
    let memory = MemoryFigures {
        total: counts.memory_items,
        user: user_memory?,
    };
    let figures = Figures {
        counts: counts.into(),
        memory,
        experience: experience.into(),
        user: user?,
    };
    Ok(web::Json(Stats::now(&state, providers, figures)))
}

/// The figures of [`Stats`] that depend on who asks.
struct Figures {
    counts: Counts,
    memory: MemoryFigures,
    experience: ExperienceFigures,
    user: UserSessionStats,
}

impl Stats {
    /// Statistics as of now: the service's state, `providers` and `figures`.
    fn now(state: &AppState, providers: Vec<ProviderHealth>, figures: Figures) -> Self {
        let active = state.active();
        Self {
            timestamp: Utc::now(),
            is_processing: active > 0,
            active_generations: active,
            uptime_secs: state.started.elapsed().as_secs(),
            model_manager: model_manager(state),
            providers,
            counts: figures.counts,
            memory: figures.memory,
            experience: figures.experience,
            user: figures.user,
        }
    }
}

impl From<ExperienceSummary> for ExperienceFigures {
    fn from(e: ExperienceSummary) -> Self {
        Self {
            total: e.total,
            avg_score: e.average_score,
        }
    }
}

fn model_manager(state: &AppState) -> Option<ModelManager> {
    state.main_provider().map(|p| ModelManager {
        provider: p.provider().to_owned(),
        current_model: p.default_model().to_owned(),
    })
}

/// [`stats`] for a user who is not an administrator: their own figures.
async fn user_stats(state: &AppState, caller: &Caller) -> Result<web::Json<Stats>, ApiError> {
    let (user_memory, user, experience, providers) = futures_util::join!(
        state.memory.count(&caller.user_id),
        state.sessions.stats(&caller.user_id),
        state.feedback.experience(Some(caller.user_id.as_str()), 0),
        probe_providers(state),
    );
    let (user_memory, user, experience) = (user_memory?, user?, experience?);
    let figures = Figures {
        counts: Counts {
            sessions: user.total_sessions,
            messages: user.total_messages,
            memory_items: user_memory,
            feedback: experience.total,
        },
        memory: MemoryFigures {
            total: user_memory,
            user: user_memory,
        },
        experience: experience.into(),
        user,
    };
    Ok(web::Json(Stats::now(state, redacted(providers), figures)))
}

/// Whether each provider answers, not why it failed nor what else it serves.
fn redacted(providers: Vec<ProviderHealth>) -> Vec<ProviderHealth> {
    providers
        .into_iter()
        .map(|p| ProviderHealth {
            error: p.error.map(|_| "unavailable".to_owned()),
            models: Vec::new(),
            ..p
        })
        .collect()
}
