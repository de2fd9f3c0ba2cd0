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

use crate::adapters::{HistoryConversationStore, HistoryMemoryStore};

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
        }
    }

    /// Sets the providers (main first).
    pub fn with_providers(mut self, providers: Vec<Arc<dyn ChatModel>>) -> Self {
        self.providers = providers;
        self
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
