//! Builds the conversation engine from configuration: the LLM provider,
//! the RAG index, the tools (built-in and MCP) and the backends.

use std::sync::Arc;
use std::time::Duration;

use confab_agents::mcp::{McpConfig, McpServers};
use confab_agents::store::{ConversationStore, MemoryStore};
use confab_agents::tools::builtin::{
    CurrentTime, GetLesson, GetProgress, ListTracks, Remember, SearchKnowledge,
};
use confab_agents::{
    BackendConfig, BackendDeps, BackendRegistry, Engine, EngineConfig, ToolRegistry,
};
use confab_llm::{ChatModel, LlmConfig};
use confab_rag::{Rag, RagConfig};
use confab_store::Db;
use confab_web::Vars;

/// Why the engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    /// Bad provider configuration.
    #[error("LLM configuration: {0}")]
    Llm(#[from] confab_llm::LlmError),
    /// The RAG index could not open.
    #[error("RAG: {0}")]
    Rag(#[from] confab_rag::RagError),
    /// A bad variable.
    #[error("{0}")]
    Config(#[from] confab_web::ConfigError),
    /// Bad MCP configuration.
    #[error("MCP configuration: {0}")]
    Mcp(#[from] confab_agents::mcp::McpError),
    /// Bad backend choice.
    #[error("{0}")]
    Agent(#[from] confab_agents::AgentError),
}

/// The engine and what the system routes report about it.
pub struct Wiring {
    /// The conversation engine.
    pub engine: Engine,
    /// The chat model (for health checks and stats).
    pub model: Arc<dyn ChatModel>,
    /// Retrieval.
    pub rag: Arc<Rag>,
    /// Names of the tools available to agents.
    pub tools: Vec<String>,
    /// Connected MCP servers (kept alive while the service runs).
    pub mcp: McpServers,
    /// The course catalogue (shared database with the gateway).
    pub catalog: confab_accounts::CatalogService,
    /// Knowledge bases and their worker pool.
    pub knowledge: crate::knowledge::KnowledgeState,
}

/// Builds everything from `vars` over the database and the history stores.
pub async fn build(
    vars: &Vars,
    llm: &LlmConfig,
    db: Db,
    store: Arc<dyn ConversationStore>,
    memory: Arc<dyn MemoryStore>,
) -> Result<Wiring, WiringError> {
    // Local models load from disk (and convert weights): off the runtime.
    let config = llm.clone();
    let (model, embedder) =
        tokio::task::spawn_blocking(move || (config.chat_model(), config.embedding_model()))
            .await
            .map_err(|e| {
                confab_llm::LlmError::Config(format!("loading the models stopped: {e}"))
            })?;
    let (model, embedder) = (model?, Arc::new(embedder?));
    tracing::info!(
        chat = %model.provider(),
        chat_model = %model.default_model(),
        embedding = %llm.embedding.kind.as_str(),
        embedding_model = %llm.embedding.model,
        "models ready"
    );
    if let Some(about) = model.about() {
        tracing::info!("chat model: {about}");
    }
    if model.provider() == "builtin" && llm.local.chat_present() {
        tracing::info!(
            file = %llm.local.chat_model.display(),
            "a local GGUF chat model is there but not used (it scores below the built-in model on `make eval`); CONFAB_LLM_PROVIDER=local uses it"
        );
    }
    let rag_config = RagConfig {
        embedding_model: llm.embedding.model.clone(),
        ..RagConfig::default()
    };
    let rag = Arc::new(Rag::open(db.clone(), embedder, rag_config).await?);
    let (knowledge_config, knowledge_workers) =
        crate::knowledge::KnowledgeState::config_from_vars(vars)?;
    let knowledge_service = confab_rag::KnowledgeService::new((*rag).clone(), knowledge_config);
    // Bases embedded with another model are re-embedded in the background.
    knowledge_service.check_embedder().await?;
    let knowledge = crate::knowledge::KnowledgeState::new(knowledge_service, knowledge_workers);

    let catalog = confab_accounts::CatalogService::new(db.clone());
    let catalog_tools: Arc<dyn confab_agents::store::Catalog> =
        Arc::new(crate::catalog::AccountsCatalog::new(catalog.clone()));
    let mut tools = ToolRegistry::new();
    tools
        .register(SearchKnowledge::new(rag.clone()))
        .register(ListTracks::new(catalog_tools.clone()))
        .register(GetProgress::new(catalog_tools.clone()))
        .register(GetLesson::new(catalog_tools))
        .register(Remember::new(memory.clone()))
        .register(CurrentTime);
    let mcp_config = match vars.get("CONFAB_MCP_SERVERS") {
        Some(v) if !v.trim().is_empty() => McpConfig::from_env_value(&v)?,
        _ => McpConfig::default(),
    };
    let (mcp, failures) = McpServers::connect_all(mcp_config.servers.clone()).await;
    for (name, error) in failures {
        tracing::warn!(server = %name, %error, "MCP server not connected; its tools are missing");
    }
    mcp.register_into(&mut tools);

    let mut config = BackendConfig {
        top_k: vars.parse_or("CONFAB_RAG_TOP_K", 5usize)?,
        max_steps: vars.parse_or("CONFAB_AGENT_MAX_STEPS", 6usize)?,
        tool_timeout: vars.seconds("CONFAB_TOOL_TIMEOUT_SECS", Duration::from_secs(20))?,
        temperature: vars.parse("CONFAB_LLM_TEMPERATURE")?,
        max_tokens: vars.parse("CONFAB_LLM_MAX_TOKENS")?,
        ..BackendConfig::default()
    };
    for server in &mcp_config.servers {
        let pattern = format!("{}__*", server.name);
        config.dashboard_tools.push(pattern.clone());
        config.course_tools.push(pattern);
    }
    let tool_names = tools.names();
    let deps = BackendDeps {
        model: model.clone(),
        rag: Some(rag.clone()),
        tools: Arc::new(tools),
        config,
    };
    let default = vars.get_or("CHAT_BACKEND", "simple");
    let backends = BackendRegistry::with_builtin(&deps, default.trim())?;
    let engine_config = EngineConfig {
        context_tokens: vars.parse_or("CONFAB_CONTEXT_TOKENS", 4096usize)?,
        ..EngineConfig::default()
    };
    let engine = Engine::new(store, Some(memory), backends, engine_config);
    Ok(Wiring {
        engine,
        model,
        rag,
        tools: tool_names,
        mcp,
        catalog,
        knowledge,
    })
}
