//! Shared fixtures: the real history services behind the engine's store
//! trait (`confab_agents::history`, as chat-service wires them), a fake LLM
//! server, and engines wired over them.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use confab_agents::history::HistoryConversationStore;
use confab_agents::memory::{InMemoryCatalog, InMemoryMemory, Track};
use confab_agents::store::LessonInfo;
use confab_agents::tools::builtin::{
    CurrentTime, GetLesson, GetProgress, ListTracks, Remember, SearchKnowledge,
};
use confab_agents::{
    BackendConfig, BackendDeps, BackendRegistry, Engine, EngineConfig, ToolRegistry,
};
use confab_history::HistoryConfig;
use confab_llm::{BuiltinProvider, HttpOptions, OpenAiProvider, RetryPolicy};
use confab_models::Metadata;
use confab_rag::extract::DocumentKind;
use confab_rag::{Rag, RagConfig};
use confab_store::Db;
use confab_testkit::{FakeLlm, FakeLlmConfig};

pub const OWNERSHIP: &str = "# Ownership\n\nEvery value in Rust has a single owner. When the owner goes out of scope the value is dropped.\n\n## Borrowing\n\nReferences borrow a value without taking ownership; the borrow checker enforces the rules.";
pub const SOURDOUGH: &str = "# Sourdough\n\nA sourdough starter is a culture of wild yeast and lactobacilli fed with flour and water. Feed the starter daily.";

/// Two courses: `rust` (ownership) and `bread` (sourdough).
pub fn catalog() -> InMemoryCatalog {
    let lesson = |id: &str, track: &str, title: &str, content: &str| LessonInfo {
        id: id.into(),
        track_id: track.into(),
        module_title: "Basics".into(),
        title: title.into(),
        content: content.into(),
        completed: false,
    };
    InMemoryCatalog::new(vec![
        Track {
            id: "rust".into(),
            title: "Rust".into(),
            description: "Systems programming".into(),
            lessons: vec![lesson("rust-1", "rust", "Ownership", OWNERSHIP)],
        },
        Track {
            id: "bread".into(),
            title: "Bread".into(),
            description: "Baking".into(),
            lessons: vec![lesson("bread-1", "bread", "Sourdough", SOURDOUGH)],
        },
    ])
}

/// Everything a test needs: the fake server, the database, the services.
pub struct Fixture {
    pub llm: FakeLlm,
    pub db: Db,
    pub store: Arc<HistoryConversationStore>,
    pub rag: Arc<Rag>,
    pub memory: Arc<InMemoryMemory>,
    pub catalog: Arc<InMemoryCatalog>,
}

impl Fixture {
    /// A fake LLM with `config`, the history and a RAG index holding the
    /// two courses' lessons (builtin embeddings).
    pub async fn new(db: Db, config: FakeLlmConfig) -> Self {
        let llm = FakeLlm::start_with(config).await;
        let (sessions, history) = confab_history::services(db.clone(), HistoryConfig::default());
        let rag = Rag::open(
            db.clone(),
            Arc::new(BuiltinProvider::new()),
            RagConfig::default(),
        )
        .await
        .unwrap();
        for (collection, source, text) in [
            ("course:rust", "rust/ownership.md", OWNERSHIP),
            ("course:bread", "bread/sourdough.md", SOURDOUGH),
        ] {
            rag.ingest_text(
                collection,
                source,
                source,
                text,
                DocumentKind::Markdown,
                Metadata::new(),
            )
            .await
            .unwrap();
        }
        Fixture {
            llm,
            db,
            store: Arc::new(HistoryConversationStore::new(sessions, history)),
            rag: Arc::new(rag),
            memory: Arc::new(InMemoryMemory::new()),
            catalog: Arc::new(catalog()),
        }
    }

    /// The built-in tools over this fixture's services.
    pub fn tools(&self) -> ToolRegistry {
        let mut tools = ToolRegistry::new();
        tools
            .register(SearchKnowledge::new(self.rag.clone()))
            .register(ListTracks::new(self.catalog.clone()))
            .register(GetProgress::new(self.catalog.clone()))
            .register(GetLesson::new(self.catalog.clone()))
            .register(Remember::new(self.memory.clone()))
            .register(CurrentTime);
        tools
    }

    /// An OpenAI-format provider on the fake server answering as `model`.
    pub fn provider(&self, model: &str) -> Arc<OpenAiProvider> {
        Arc::new(
            OpenAiProvider::new(
                &self.llm.base_url(),
                None,
                model,
                HttpOptions::default(),
                RetryPolicy::none(),
            )
            .unwrap(),
        )
    }

    /// An engine whose model is the fake server's `model`, with `backend` as default.
    pub fn engine(&self, model: &str, backend: &str) -> Engine {
        self.engine_with(model, backend, self.tools(), BackendConfig::default())
    }

    /// [`Fixture::engine`] with custom tools and backend configuration.
    pub fn engine_with(
        &self,
        model: &str,
        backend: &str,
        tools: ToolRegistry,
        config: BackendConfig,
    ) -> Engine {
        let deps = BackendDeps {
            model: self.provider(model),
            rag: Some(self.rag.clone()),
            tools: Arc::new(tools),
            config,
        };
        let registry = BackendRegistry::with_builtin(&deps, backend).unwrap();
        Engine::new(
            self.store.clone(),
            Some(self.memory.clone()),
            registry,
            EngineConfig::default(),
        )
    }
}

/// A fake LLM config with no delays.
pub fn fast() -> FakeLlmConfig {
    FakeLlmConfig::default()
}

/// A fake LLM streaming `tokens` tokens `delay` apart (model `slow`).
pub fn slow(tokens: usize, delay: Duration) -> FakeLlmConfig {
    FakeLlmConfig {
        token_delay: delay,
        tokens: Some(tokens),
        ..FakeLlmConfig::default()
    }
}
