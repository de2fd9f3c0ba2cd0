//! confab api-gateway: the single public entry point. It authenticates,
//! serves accounts and the course catalogue, and forwards everything chat
//! to chat-service over HTTP and WebSocket.
//!
//! Layout: [`config`] (variables), [`state`], [`auth`] (JWT / API key
//! extractor), handlers in [`account`], [`courses`], [`chat`] (forwarded
//! routes), [`openai`], [`system`], [`docs`]; the forwarding machinery in
//! [`upstream`], [`proxy`] and [`ws_proxy`]; [`ratelimit`], [`cache`] and
//! the optional Redis they share between replicas ([`shared`]); the web
//! client at `/` ([`ui`]).

pub mod account;
pub mod allowed;
pub mod auth;
pub mod body;
pub mod cache;
pub mod chat;
pub mod client_ip;
pub mod config;
pub mod courses;
pub mod docs;
pub mod metrics;
pub mod openai;
pub mod proxy;
pub mod ratelimit;
pub mod shared;
pub mod state;
pub mod system;
pub mod ui;
pub mod upstream;
pub mod ws_proxy;

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use actix_cors::Cors;
use actix_web::dev::ServerHandle;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpMessage, HttpServer, web};
use confab_accounts::{Accounts, AccountsConfig, JwtConfig};
use confab_store::Db;
use confab_web::RequestId;
use confab_web::extract::{
    json_config, json_errors, not_found, path_config, payload_config, query_config,
};
use confab_web::request_id::request_id;

pub use config::{Config, StartError};
pub use state::GatewayState;

/// The request id the middleware assigned (a fresh one when absent).
pub fn request_id_of(req: &actix_web::HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// CORS from the configured origins (none: no CORS headers at all).
fn cors(origins: &[String]) -> Cors {
    if origins.is_empty() {
        return Cors::default();
    }
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers([
            "authorization",
            "content-type",
            "x-api-key",
            "x-confab-session-id",
            "x-request-id",
            "last-event-id",
        ])
        .expose_headers(["x-request-id", "content-disposition"])
        .max_age(3600);
    if origins.iter().any(|o| o == "*") {
        cors = cors.allow_any_origin();
    } else {
        for o in origins {
            cors = cors.allowed_origin(o);
        }
    }
    cors
}

/// Security headers on every response.
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add((
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
        ))
}

/// Registers every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(system::root)
        .service(system::health)
        .service(account::register)
        .service(account::login)
        .service(account::refresh)
        .service(account::logout)
        .service(account::logout_all)
        .service(account::me)
        .service(account::update_me)
        .service(account::change_password)
        .service(account::delete_me)
        .service(account::my_progress)
        .service(account::list_keys)
        .service(account::create_key)
        .service(account::revoke_key)
        .service(courses::dashboard_tracks)
        .service(courses::track)
        .service(courses::lesson)
        .service(courses::complete_lesson)
        .service(openai::models)
        .service(openai::chat_completions)
        .route("/openapi.json", web::get().to(docs::openapi_json))
        .route("/docs", web::get().to(docs::docs_redirect))
        .service(docs::swagger());
    chat::routes(cfg);
    ui::routes(cfg);
}

/// A server started by [`serve`].
pub struct Running {
    addr: SocketAddr,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl Running {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) -> io::Result<()> {
        self.task
            .await
            .map_err(|e| io::Error::other(format!("server task failed: {e}")))?
    }

    /// Stops (gracefully) and waits.
    pub async fn shutdown(self) -> io::Result<()> {
        self.handle.stop(true).await;
        self.wait().await
    }
}

/// Binds and serves `state` in the background (on the current tokio runtime).
pub fn serve(state: web::Data<GatewayState>, config: &Config) -> io::Result<Running> {
    let max_body = config.http.max_body_bytes;
    let origins = config.cors_origins.clone();
    let gateway_metrics = web::Data::new(state.proxy.metrics.clone());
    let server_metrics = web::Data::new(state.proxy.metrics.build(&config.metrics));
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(gateway_metrics.clone())
            .app_data(server_metrics.clone())
            .app_data(json_config(max_body))
            .app_data(query_config())
            .app_data(path_config())
            .app_data(payload_config(max_body))
            .configure(routes)
            .route(
                confab_web::metrics::METRICS_PATH,
                web::get().to(confab_web::metrics::serve_metrics),
            )
            .default_service(web::to(not_found))
            .wrap(json_errors())
            .wrap(cors(&origins))
            .wrap(security_headers())
            .wrap(from_fn(metrics::count_rate_limited))
            .wrap(from_fn(confab_web::metrics::track_http))
            .wrap(from_fn(request_id))
    })
    .on_connect(confab_web::tcp_nodelay)
    .disable_signals()
    .shutdown_timeout(config.http.shutdown_grace.as_secs().max(1));
    if let Some(workers) = config.http.workers {
        server = server.workers(workers);
    }
    let server = server.bind(config.http.bind.as_str())?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| io::Error::other("bound to no address"))?;
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(Running { addr, handle, task })
}

/// The gateway state over `db` with this configuration.
pub fn build_state(
    db: Db,
    config: &Config,
    jwt_secret: String,
) -> Result<GatewayState, StartError> {
    let mut jwt = JwtConfig::new(jwt_secret.into_bytes());
    jwt.access_ttl = config.access_ttl;
    jwt.refresh_ttl = config.refresh_ttl;
    let accounts = Accounts::new(db.clone(), AccountsConfig::new(jwt))
        .map_err(|e| StartError::Accounts(e.to_string()))?;
    let upstreams = upstream::Upstreams::new(&config.chat_services, config.upstream_cooldown);
    let proxy = proxy::Proxy::new(
        upstreams,
        config.internal_key.clone(),
        config.upstream_connect_timeout,
        config.upstream_budget,
    )
    .map_err(|e| StartError::Io(io::Error::other(e.to_string())))?
    .with_allowed_models(config.allowed_models.clone());
    let auth_limit = ratelimit::Limit::per_minute(config.auth_rate_per_minute);
    let user_limit = ratelimit::Limit::per_minute(config.user_rate_per_minute);
    let failures = f64::from(config.login_failures_per_account.max(1));
    let login_limit = ratelimit::Limit {
        burst: failures,
        per_minute: failures * 60.0 / config.login_failure_window.as_secs_f64().max(1.0),
    };
    let redis = config
        .redis_url
        .as_deref()
        .map(|url| {
            shared::SharedRedis::new(url, &config.redis_key_prefix, config.redis_timeout)
                .map(std::sync::Arc::new)
                .map_err(|e| {
                    StartError::Config(confab_web::ConfigError::Invalid {
                        name: "REDIS_URL",
                        reason: e.to_string(),
                    })
                })
        })
        .transpose()?;
    let (auth_limiter, user_limiter, cache) = match &redis {
        Some(r) => (
            ratelimit::RateLimiter::shared(auth_limit, r.clone(), "auth"),
            ratelimit::RateLimiter::shared(user_limit, r.clone(), "user"),
            cache::Cache::redis(r.clone(), config.cache_user_ttl, config.cache_catalog_ttl)
                .with_api_key_ttl(config.cache_api_key_ttl),
        ),
        None => (
            ratelimit::RateLimiter::new(auth_limit),
            ratelimit::RateLimiter::new(user_limit),
            cache::Cache::local(config.cache_user_ttl, config.cache_catalog_ttl)
                .with_api_key_ttl(config.cache_api_key_ttl),
        ),
    };
    let login_limiter = match &redis {
        Some(r) => ratelimit::RateLimiter::shared(login_limit, r.clone(), "login"),
        None => ratelimit::RateLimiter::new(login_limit),
    };
    let sockets = std::sync::Arc::new(ws_proxy::OpenSockets::new(
        accounts.clone(),
        redis.clone(),
        ws_proxy::RECHECK_EVERY,
    ));
    Ok(GatewayState {
        sockets,
        db,
        accounts,
        proxy,
        auth_limiter,
        user_limiter,
        login_limiter,
        trusted_proxies: config.trusted_proxies.clone(),
        cache,
        redis,
        started: Instant::now(),
        bodies: body::BodyBudget::new(config.body_budget_bytes),
        body_limits: state::BodyLimits {
            default: config.http.max_body_bytes,
            import: config.max_import_bytes.max(config.http.max_body_bytes),
        },
        metrics_token: config.metrics.token.clone(),
    })
}

/// Asks every chat-service instance to (re)index `courses` into their RAG
/// collections (idempotent; best effort: an instance that is down indexes
/// every course when it starts). Returns one line per attempt.
pub async fn reindex_courses(
    chat_services: &[String],
    internal_key: &str,
    courses: &[String],
) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut lines = Vec::new();
    for base in chat_services {
        for course in courses {
            let url = format!(
                "{}/api/admin/courses/{course}/index",
                base.trim_end_matches('/')
            );
            let result = client
                .post(&url)
                .header("x-internal-auth", internal_key)
                .header("x-user-id", "system")
                .header("x-user-role", "admin")
                .timeout(std::time::Duration::from_secs(120))
                .send()
                .await;
            lines.push(match result {
                Ok(r) if r.status().is_success() => format!("indexed {course} on {base}"),
                Ok(r) => format!("{base} refused to index {course}: {}", r.status()),
                Err(e) => format!("{base} unreachable ({e}); it indexes courses when it starts"),
            });
        }
    }
    lines
}

/// Opens the database, resolves the JWT secret, loads the demo catalogue
/// when the catalogue is empty, and [`serve`]s.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let db = Db::connect(config.database.clone()).await?;
    let secret = match &config.jwt_secret {
        config::JwtSecret::Given(s) => s.clone(),
        config::JwtSecret::File(path) => confab_accounts::load_or_create_secret(path)
            .map_err(|e| StartError::Accounts(e.to_string()))?,
    };
    let state = build_state(db, &config, secret)?;
    if let Some(redis) = &state.redis
        && !redis.ping().await
    {
        tracing::warn!(
            "REDIS_URL is set but Redis does not answer: starting with in-process rate limits \
             and no cache; /api/health reports it until Redis answers"
        );
    }
    if config.demo_catalog {
        match state.accounts.catalog.load_demo_if_empty().await {
            Ok(Some(summary)) => {
                tracing::info!(?summary, "demo catalogue loaded");
                state.cache.invalidate_all().await;
                // chat-service may have started before the catalogue existed.
                let (urls, key) = (config.chat_services.clone(), config.internal_key.clone());
                tokio::spawn(async move {
                    let mut indexed = false;
                    for attempt in 0..10u64 {
                        let lines = reindex_courses(&urls, &key, &summary.changed).await;
                        indexed = lines.iter().all(|l| l.starts_with("indexed"));
                        for line in &lines {
                            tracing::info!("{line}");
                        }
                        if indexed {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_secs(1 + attempt)).await;
                    }
                    // `make run` waits for one of these two lines.
                    if indexed {
                        tracing::info!("demo courses indexed");
                    } else {
                        tracing::warn!(
                            "demo courses not all indexed; chat-service indexes them when it restarts"
                        );
                    }
                });
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "demo catalogue not loaded"),
        }
    }
    Ok(serve(web::Data::new(state), &config)?)
}
