//! A minimal chat service built from confab's libraries: `confab-history`
//! keeps the conversations (a SQLite file), `confab-agents`' engine answers
//! over a `confab-llm` provider, actix-web serves two routes.
//!
//! ```text
//! cargo run -p confab-agents --features history --example chat_service
//! curl -s http://127.0.0.1:PORT/chat -H 'content-type: application/json' \
//!      -d '{"user": "ada", "message": "What is a borrow?"}'
//! curl -s 'http://127.0.0.1:PORT/sessions/SESSION_ID/messages?user=ada'
//! ```
//!
//! `POST /chat` `{user, message, session_id?}` answers and stores both
//! messages (continuing `session_id` when given); `GET
//! /sessions/{id}/messages?user=` pages the stored conversation, newest
//! first. Variables: `PORT` (default: any free port), `DATABASE_URL`
//! (default: a SQLite file in a temp dir), `AGENT_RUNTIME__LLM_PROXY_URL`
//! (an OpenAI-compatible server; default: the offline built-in model) with
//! `AGENT_RUNTIME__LLM_MODEL` and `OPENAI_API_KEY`.

use std::io::Write;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, web};
use confab_agents::history::{HistoryConversationStore, HistoryMemoryStore};
use confab_agents::{
    BackendConfig, BackendDeps, BackendRegistry, ChatTurn, Engine, EngineConfig, ToolRegistry,
};
use confab_error::{DomainError, ErrorKind};
use confab_history::{HistoryConfig, Services};
use confab_llm::{BuiltinProvider, ChatModel, HttpOptions, OpenAiProvider, RetryPolicy};
use confab_models::MessageQuery;
use confab_store::{Db, DbConfig};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What the handlers share.
struct AppState {
    engine: Engine,
    services: Services,
}

/// Body of `POST /chat`.
#[derive(Deserialize)]
struct ChatBody {
    user: String,
    message: String,
    #[serde(default)]
    session_id: Option<Uuid>,
}

/// Query of `GET /sessions/{id}/messages`.
#[derive(Deserialize)]
struct UserQuery {
    user: String,
}

/// Any confab error as `{"error","message"}`, its status from its kind
/// (a service of your own decides this table once, like `confab-web` does).
fn error(e: &impl DomainError) -> HttpResponse {
    let status = match e.kind() {
        ErrorKind::Malformed => StatusCode::BAD_REQUEST,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
        kind if kind.is_client_error() => StatusCode::BAD_REQUEST,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    HttpResponse::build(status).json(json!({"error": e.code(), "message": e.public_message()}))
}

async fn chat(state: web::Data<AppState>, body: web::Json<ChatBody>) -> HttpResponse {
    let body = body.into_inner();
    let mut turn = ChatTurn::new(body.user, body.message);
    turn.session_id = body.session_id;
    match state
        .engine
        .send_message(turn, CancellationToken::new())
        .await
    {
        Ok(reply) => HttpResponse::Ok().json(json!({
            "session_id": reply.session_id,
            "message_id": reply.message_id,
            "model": reply.model,
            "response": reply.response,
        })),
        Err(e) => error(&e),
    }
}

async fn messages(
    state: web::Data<AppState>,
    session_id: web::Path<String>,
    query: web::Query<UserQuery>,
) -> HttpResponse {
    let history = &state.services.history;
    match history
        .get_session_messages(&query.user, &session_id, MessageQuery::default())
        .await
    {
        Ok(page) => HttpResponse::Ok().json(page),
        Err(e) => error(&e),
    }
}

/// The chat model: an OpenAI-compatible server when
/// `AGENT_RUNTIME__LLM_PROXY_URL` is set, else the offline built-in model.
fn chat_model() -> Result<Arc<dyn ChatModel>, confab_llm::LlmError> {
    let Ok(url) = std::env::var("AGENT_RUNTIME__LLM_PROXY_URL") else {
        return Ok(Arc::new(BuiltinProvider::new()));
    };
    let model = std::env::var("AGENT_RUNTIME__LLM_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());
    let key = std::env::var("OPENAI_API_KEY").ok();
    let provider = OpenAiProvider::new(
        &url,
        key,
        model,
        HttpOptions::default(),
        RetryPolicy::default(),
    )?;
    Ok(Arc::new(provider))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // History: sessions, messages and memory in one database.
    let dir = tempfile::tempdir()?;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("chat.db").display()));
    let db = Db::connect(DbConfig::new(url)).await?;
    let services = Services::new(db, HistoryConfig::default());

    // The engine: the history behind its store traits, the `simple` backend
    // (no knowledge base, no tools) over the chat model.
    let store = HistoryConversationStore::new(services.sessions.clone(), services.history.clone());
    let memory = HistoryMemoryStore::new(services.memory.clone());
    let deps = BackendDeps {
        model: chat_model()?,
        rag: None,
        tools: Arc::new(ToolRegistry::new()),
        config: BackendConfig::default(),
    };
    let backends = BackendRegistry::with_builtin(&deps, "simple")?;
    let engine = Engine::new(
        Arc::new(store),
        Some(Arc::new(memory)),
        backends,
        EngineConfig::default(),
    );

    let state = web::Data::new(AppState { engine, services });
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/chat", web::post().to(chat))
            .route("/sessions/{id}/messages", web::get().to(messages))
    })
    .workers(1)
    .bind(("127.0.0.1", port))?;
    for addr in server.addrs() {
        println!("listening on http://{addr}");
    }
    std::io::stdout().flush()?;
    server.run().await?;
    Ok(())
}
