//! [`AppState`]: what every handler can reach, shared by all workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use confab_agents::store::{ConversationStore, MemoryStore};
use confab_history::{
    FeedbackService, HistoryConfig, HistoryService, MemoryService, Services, SessionService,
};
use confab_llm::ChatModel;
use confab_store::Db;
use tokio_util::sync::CancellationToken;

use confab_agents::Engine;
use confab_agents::history::{HistoryConversationStore, HistoryMemoryStore};
use confab_web::ApiError;

use crate::chat::{ChatLimits, ChatState};

/// Shared state of the service (wrapped in `web::Data`, so one per process).
pub struct AppState {
    /// The database (for health checks; handlers go through the services).
    pub db: Db,
    /// Sessions.
    pub sessions: SessionService,
    /// Messages.
    pub history: HistoryService,
    /// Long-term memory items.
    pub memory: MemoryService,
    /// Feedback on messages.
    pub feedback: FeedbackService,
    /// Configured chat model providers, main first (probed by `/api/health`
    /// and `/api/stats`).
    pub providers: Vec<Arc<dyn ChatModel>>,
    /// Generations streaming right now (the chat routes move it; see
    /// [`AppState::generation`]).
    pub active_generations: Arc<AtomicUsize>,
    /// Cancelled when the server begins shutting down: long-running streams
    /// watch it to finish early (saving what they have) within the grace period.
    pub shutdown: CancellationToken,
    /// When the service started.
    pub started: Instant,
    /// How long a provider probe may take.
    pub provider_probe_timeout: Duration,
    /// The chat engine and its connections (`None`: chat routes answer 503).
    pub chat: Option<ChatState>,
    /// Connected MCP servers, kept alive (their child processes end with the state).
    pub mcp: Option<Arc<confab_agents::mcp::McpServers>>,
    /// Chat and database metrics (registered on the server's registry by `serve`).
    pub metrics: crate::metrics::ChatMetrics,
    /// The course catalogue and the index its lessons go to.
    pub courses: Option<(confab_accounts::CatalogService, Arc<confab_rag::Rag>)>,
    /// Knowledge bases and their ingestion workers (`None`: the routes answer 503).
    pub knowledge: Option<crate::knowledge::KnowledgeState>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("db", &self.db)
            .field("providers", &self.providers.len())
            .field("active_generations", &self.active_generations)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `db` with these service limits and no providers.
    pub fn new(db: Db, history: HistoryConfig) -> Self {
        let services = Services::new(db.clone(), history);
        Self {
            db,
            sessions: services.sessions,
            history: services.history,
            memory: services.memory,
            feedback: services.feedback,
            providers: Vec::new(),
            active_generations: Arc::new(AtomicUsize::new(0)),
            shutdown: CancellationToken::new(),
            started: Instant::now(),
            provider_probe_timeout: Duration::from_secs(2),
            chat: None,
            mcp: None,
            metrics: crate::metrics::ChatMetrics::default(),
            courses: None,
            knowledge: None,
        }
    }

    /// Sets the providers (main first).
    pub fn with_providers(mut self, providers: Vec<Arc<dyn ChatModel>>) -> Self {
        self.providers = providers;
        self
    }

    /// Enables chat over `engine`, sharing the generation counter and the
    /// shutdown token.
    pub fn with_engine(mut self, engine: Engine, limits: ChatLimits) -> Self {
        self.chat = Some(ChatState::new(
            engine,
            self.sessions.clone(),
            limits,
            self.active_generations.clone(),
            self.shutdown.clone(),
        ));
        if let Some(chat) = &mut self.chat {
            chat.metrics = self.metrics.clone();
        }
        self
    }

    /// Everything [`crate::wiring::build`] made: the provider, the engine
    /// (chat routes), the MCP servers and course indexing.
    pub fn with_wiring(self, wiring: crate::wiring::Wiring, limits: ChatLimits) -> Self {
        self.with_providers(vec![wiring.model.clone()])
            .with_engine(wiring.engine, limits)
            .with_mcp(wiring.mcp)
            .with_knowledge(wiring.knowledge)
            .with_courses(wiring.catalog, wiring.rag)
    }

    /// Enables knowledge bases (the workers start with [`crate::serve`]).
    pub fn with_knowledge(mut self, knowledge: crate::knowledge::KnowledgeState) -> Self {
        self.knowledge = Some(knowledge);
        self
    }

    /// Enables course indexing.
    pub fn with_courses(
        mut self,
        catalog: confab_accounts::CatalogService,
        rag: Arc<confab_rag::Rag>,
    ) -> Self {
        self.courses = Some((catalog, rag));
        self
    }

    /// Keeps the MCP servers (whose tools the engine uses) alive.
    pub fn with_mcp(mut self, mcp: confab_agents::mcp::McpServers) -> Self {
        self.mcp = Some(Arc::new(mcp));
        self
    }

    /// The chat state, or 503 when chat is not configured.
    pub fn chat(&self) -> Result<&ChatState, ApiError> {
        self.chat
            .as_ref()
            .ok_or_else(|| ApiError::unavailable("chat is not configured on this instance"))
    }

    /// Sets how long a provider probe may take.
    pub fn with_probe_timeout(mut self, timeout: Duration) -> Self {
        self.provider_probe_timeout = timeout;
        self
    }

    /// The main provider, if any.
    pub fn main_provider(&self) -> Option<&Arc<dyn ChatModel>> {
        self.providers.first()
    }

    /// Counts one generation as active until the guard is dropped.
    pub fn generation(&self) -> GenerationGuard {
        self.active_generations.fetch_add(1, Ordering::SeqCst);
        GenerationGuard(self.active_generations.clone())
    }

    /// Generations streaming right now.
    pub fn active(&self) -> usize {
        self.active_generations.load(Ordering::SeqCst)
    }

    /// Sessions and messages as the agents crate's [`ConversationStore`].
    pub fn conversation_store(&self) -> Arc<dyn ConversationStore> {
        Arc::new(HistoryConversationStore::new(
            self.sessions.clone(),
            self.history.clone(),
        ))
    }

    /// Memory items as the agents crate's [`MemoryStore`].
    pub fn memory_store(&self) -> Arc<dyn MemoryStore> {
        Arc::new(HistoryMemoryStore::new(self.memory.clone()))
    }
}

/// Keeps one generation counted in [`AppState::active_generations`].
#[derive(Debug)]
pub struct GenerationGuard(Arc<AtomicUsize>);

impl Drop for GenerationGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
