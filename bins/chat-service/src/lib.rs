//! confab chat-service: sessions, history, memory and feedback over HTTP
//! (and, through the lead's `chat` / `ws` modules, WebSocket/SSE chat).
//!
//! Handlers are thin: they parse, call a service from [`AppState`], and map
//! errors with [`confab_web::ApiError`]. The binary (`src/main.rs`) reads
//! the environment into a [`Config`] and calls [`start`]; tests build an
//! [`AppState`] over a test database and call [`serve`] on `127.0.0.1:0`.
//!
//! Layout: [`routes`] is the route table; `sessions`, `messages`,
//! `memory`, `system` and `admin` hold the handlers; [`mod@openapi`] the
//! document's base and schemas. The agents crate's store traits over the
//! history services are `confab_agents::history` (feature `history`).

mod admin;
pub mod catalog;
pub mod chat;
pub mod config;
pub mod generations;
pub mod knowledge;
mod memory;
mod messages;
pub mod metrics;
pub mod openapi;
pub mod routes;
mod sessions;
pub mod state;
mod system;
pub mod wiring;
pub mod ws;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use confab_store::Db;
use confab_web::extract::{
    json_config, json_errors, not_found, path_config, payload_config, query_config,
};
use confab_web::request_id::request_id;
use tokio_util::sync::CancellationToken;
use utoipa_actix_web::AppExt;

pub use config::{Config, StartError};
pub use sessions::ImportGate;
pub use state::AppState;

/// The OpenAPI document of every route, as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    App::new()
        .into_utoipa_app()
        .openapi(openapi::base())
        .configure(routes::configure)
        .split_for_parts()
        .1
}

/// The serialised OpenAPI document (computed once per server).
#[derive(Debug, Clone)]
pub struct OpenApiJson(Arc<String>);

impl OpenApiJson {
    /// Serialises [`openapi()`].
    pub fn new() -> Self {
        let text = openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"internal\", \"message\": \"{e}\"}}"));
        Self(Arc::new(text))
    }
}

impl Default for OpenApiJson {
    fn default() -> Self {
        Self::new()
    }
}

async fn serve_openapi(doc: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(doc.0.as_str().to_owned())
}

/// Everything an app instance needs (cloned into every worker).
#[derive(Clone)]
pub struct AppParts {
    /// Shared state.
    pub state: web::Data<AppState>,
    /// The OpenAPI document.
    pub openapi: web::Data<OpenApiJson>,
    /// Authentication settings.
    pub auth: confab_web::AuthConfig,
    /// Largest JSON body.
    pub max_body_bytes: usize,
    /// Largest import body.
    pub max_import_bytes: usize,
    /// The server's metrics (`GET /metrics`).
    pub metrics: web::Data<confab_web::Metrics>,
    /// Session imports in flight (bounded).
    pub imports: web::Data<ImportGate>,
}

impl AppParts {
    /// Parts for `state` under `config`.
    pub fn new(state: web::Data<AppState>, config: &Config) -> Self {
        Self {
            state: state.clone(),
            openapi: web::Data::new(OpenApiJson::new()),
            auth: config.auth.clone(),
            max_body_bytes: config.http.max_body_bytes,
            max_import_bytes: config.max_import_bytes,
            imports: web::Data::new(ImportGate::new(
                config.max_concurrent_imports,
                config.max_import_bytes,
            )),
            metrics: web::Data::new(metrics::build(&state, &config.metrics)),
        }
    }
}

/// Registers app data, extractor configs and every route on a
/// [`utoipa_actix_web::UtoipaApp`]-style config: the whole app but the
/// middleware, the 404 default and `/openapi.json`.
pub fn app_config(parts: &AppParts, cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.app_data(parts.state.clone())
        .app_data(parts.openapi.clone())
        .app_data(parts.auth.clone())
        .app_data(parts.metrics.clone())
        .app_data(parts.imports.clone())
        .app_data(json_config(parts.max_body_bytes))
        .app_data(query_config())
        .app_data(path_config())
        .app_data(payload_config(parts.max_import_bytes));
    routes::configure(cfg);
}

/// The complete app: [`app_config`], `/openapi.json`, JSON 404s, JSON
/// errors and request ids.
pub fn build_app(
    parts: AppParts,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .into_utoipa_app()
        .configure(|cfg| app_config(&parts, cfg))
        .into_app()
        .route("/openapi.json", web::get().to(serve_openapi))
        .route(
            confab_web::metrics::METRICS_PATH,
            web::get().to(confab_web::metrics::serve_metrics),
        )
        .default_service(web::to(not_found))
        .wrap(json_errors())
        .wrap(from_fn(confab_web::metrics::track_http))
        .wrap(from_fn(request_id))
}

/// Stops a running server (cloneable, e.g. for a signal handler).
#[derive(Clone)]
pub struct Stopper {
    handle: ServerHandle,
    shutdown: CancellationToken,
    chat: Option<chat::ChatState>,
}

impl Stopper {
    /// Stops accepting connections. Graceful: streams are told to finish
    /// (`AppState::shutdown`) and running requests get the grace period.
    pub async fn stop(&self, graceful: bool) {
        self.shutdown.cancel();
        match (&self.chat, graceful) {
            // Running answers get the grace period, then are cancelled and
            // saved; meanwhile the server stops accepting.
            (Some(chat), true) => {
                futures_util::join!(chat.drain(), self.handle.stop(true));
            }
            (Some(chat), false) => {
                chat.abort.cancel();
                self.handle.stop(false).await;
            }
            (None, _) => self.handle.stop(graceful).await,
        }
    }
}

/// A server started by [`serve`]: its address and how to stop it.
pub struct Running {
    addr: SocketAddr,
    stopper: Stopper,
    state: web::Data<AppState>,
    task: tokio::task::JoinHandle<io::Result<()>>,
}

impl Running {
    /// The bound address (the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state.
    pub fn state(&self) -> &web::Data<AppState> {
        &self.state
    }

    /// A handle that stops the server.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) -> io::Result<()> {
        self.task
            .await
            .map_err(|e| io::Error::other(format!("server task failed: {e}")))?
    }

    /// Stops the server (gracefully) and waits for it.
    pub async fn shutdown(self) -> io::Result<()> {
        self.stopper.stop(true).await;
        self.wait().await
    }
}

/// Binds `config.http.bind` and starts serving `state` in the background
/// (on the current tokio runtime). Returns once the socket is listening.
pub fn serve(state: web::Data<AppState>, config: &Config) -> io::Result<Running> {
    let parts = AppParts::new(state.clone(), config);
    let mut server = HttpServer::new(move || build_app(parts.clone()))
        .on_connect(confab_web::tcp_nodelay)
        .disable_signals()
        // Beyond the grace period, cancelled answers get a few seconds to be saved.
        .shutdown_timeout(config.http.shutdown_grace.as_secs().max(1) + 5);
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
    if let Some(k) = &state.knowledge {
        k.spawn_workers(state.shutdown.clone());
    }
    let stopper = Stopper {
        handle: server.handle(),
        shutdown: state.shutdown.clone(),
        chat: state.chat.clone(),
    };
    let task = tokio::spawn(server);
    Ok(Running {
        addr,
        stopper,
        state,
        task,
    })
}

/// Opens the database (creating a SQLite file's directory and applying
/// migrations), builds the providers and the state, and [`serve`]s.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let metrics = metrics::ChatMetrics::default();
    let db = Db::connect(config.database.clone())
        .await?
        .with_wait_observer(metrics.db_observer());
    let mut state = AppState::new(db.clone(), config.history.clone());
    state.metrics = metrics;
    let wiring = wiring::build(
        &config.vars,
        &config.llm,
        db,
        state.conversation_store(),
        state.memory_store(),
    )
    .await?;
    // Course materials reach the course agent's collections (idempotent).
    let (catalog, rag) = (wiring.catalog.clone(), wiring.rag.clone());
    let state = state
        .with_probe_timeout(config.provider_probe_timeout)
        .with_wiring(wiring, config.chat.clone());
    tokio::spawn(async move {
        match catalog::index_all(&catalog, &rag).await {
            Ok(reports) => {
                let changed: usize = reports.iter().map(|r| r.changed + r.removed).sum();
                tracing::info!(courses = reports.len(), changed, "courses indexed");
            }
            Err(e) => tracing::warn!(error = %e, "course indexing failed"),
        }
    });
    Ok(serve(web::Data::new(state), &config)?)
}
