//! The [`ChatBackend`] trait and the [`BackendRegistry`] mapping names to
//! constructors.
//!
//! Adding a backend is one module under `backends/` implementing
//! [`ChatBackend`] plus one line in [`BackendRegistry::with_builtin`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use confab_llm::{ChatMessage, ChatModel};
use confab_models::AgentKind;
use confab_rag::Rag;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::AgentError;
use crate::event::EventStream;
use crate::tools::{ToolContext, ToolRegistry};

/// How the assistant should answer (a user setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AiStyle {
    /// Clear, moderately detailed answers.
    #[default]
    Balanced,
    /// Short answers.
    Concise,
    /// Thorough answers with examples.
    Detailed,
    /// Guide with questions instead of giving the answer away.
    Socratic,
}

/// The user's settings that shape answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserSettings {
    /// Answer style.
    #[serde(default)]
    pub ai_style: AiStyle,
    /// Model to ask instead of the provider's default.
    #[serde(default)]
    pub preferred_model: Option<String>,
}

impl UserSettings {
    /// Reads settings from a JSON object, ignoring unknown or malformed fields.
    pub fn from_json(value: &serde_json::Value) -> Self {
        let style = value
            .get("ai_style")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let model = value
            .get("preferred_model")
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        Self {
            ai_style: style,
            preferred_model: model,
        }
    }
}

/// Who asks, in which conversation, and how to stop.
#[derive(Debug, Clone)]
pub struct ChatContext {
    /// The user.
    pub user_id: String,
    /// The session, when there is one.
    pub session_id: Option<Uuid>,
    /// Which agent answers.
    pub agent: AgentKind,
    /// The course a course agent is bound to.
    pub course_id: Option<String>,
    /// The user's settings.
    pub settings: UserSettings,
    /// Knowledge-base collections (`kb:<id>`) this conversation may draw
    /// on, checked readable by the caller before the turn started.
    pub knowledge: Vec<String>,
    /// Cancelled when the user cancels or goes away.
    pub cancel: CancellationToken,
}

impl ChatContext {
    /// A dashboard context for `user_id` with default settings.
    pub fn new(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            session_id: None,
            agent: AgentKind::Dashboard,
            course_id: None,
            settings: UserSettings::default(),
            knowledge: Vec::new(),
            cancel: CancellationToken::new(),
        }
    }

    /// The context tools see.
    pub fn tool_context(&self) -> ToolContext {
        ToolContext {
            user_id: self.user_id.clone(),
            session_id: self.session_id,
            agent: self.agent,
            // Only a course agent is bound to a course.
            course_id: match self.agent {
                AgentKind::Course => self.course_id.clone(),
                AgentKind::Dashboard => None,
            },
            knowledge: self.knowledge.clone(),
        }
    }
}

/// A way of answering: RAG, tool-using agent, ...
pub trait ChatBackend: Send + Sync {
    /// Registry name (`simple`, `agent`).
    fn name(&self) -> &str;

    /// Answers `query` given the conversation so far (`history` starts with
    /// the system prompt and does not contain `query`). The stream ends with
    /// one `Finished` or `Error` event and stops early when `ctx.cancel` fires.
    fn stream(&self, query: String, history: Vec<ChatMessage>, ctx: ChatContext) -> EventStream;
}

/// Knobs of the backends.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Sources retrieved per question.
    pub top_k: usize,
    /// Most model rounds of the agent loop before it stops.
    pub max_steps: usize,
    /// Limit per tool call.
    pub tool_timeout: Duration,
    /// Tools the dashboard agent may use (`prefix*` matches MCP tools).
    pub dashboard_tools: Vec<String>,
    /// Tools the course agent may use.
    pub course_tools: Vec<String>,
    /// Temperature of model calls (provider default when `None`).
    pub temperature: Option<f32>,
    /// Most tokens per model call.
    pub max_tokens: Option<u32>,
}

impl Default for BackendConfig {
    fn default() -> Self {
        let common = ["search_knowledge", "remember", "current_time"];
        Self {
            top_k: 5,
            max_steps: 6,
            tool_timeout: Duration::from_secs(20),
            dashboard_tools: ["list_tracks", "get_progress"]
                .into_iter()
                .chain(common)
                .map(String::from)
                .collect(),
            course_tools: ["get_lesson"]
                .into_iter()
                .chain(common)
                .map(String::from)
                .collect(),
            temperature: None,
            max_tokens: None,
        }
    }
}

impl BackendConfig {
    /// Tool names offered to `agent`.
    pub fn tools_for(&self, agent: AgentKind) -> &[String] {
        match agent {
            AgentKind::Dashboard => &self.dashboard_tools,
            AgentKind::Course => &self.course_tools,
        }
    }
}

/// What backends are built from.
#[derive(Clone)]
pub struct BackendDeps {
    /// The chat model.
    pub model: Arc<dyn ChatModel>,
    /// Retrieval, when a knowledge base is configured.
    pub rag: Option<Arc<Rag>>,
    /// Tools the agent may call.
    pub tools: Arc<ToolRegistry>,
    /// Knobs.
    pub config: BackendConfig,
}

impl fmt::Debug for BackendDeps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendDeps")
            .field("model", &self.model.provider())
            .field("rag", &self.rag.is_some())
            .field("tools", &self.tools)
            .field("config", &self.config)
            .finish()
    }
}

/// Builds a backend from its dependencies.
pub type BackendConstructor = fn(&BackendDeps) -> Arc<dyn ChatBackend>;

/// Backends by name, with a default.
#[derive(Clone)]
pub struct BackendRegistry {
    backends: BTreeMap<String, Arc<dyn ChatBackend>>,
    default: String,
}

impl fmt::Debug for BackendRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendRegistry")
            .field("backends", &self.names())
            .field("default", &self.default)
            .finish()
    }
}

impl BackendRegistry {
    /// The built-in backends (`simple`, `agent`) over `deps`, with `default`
    /// (e.g. from `CHAT_BACKEND`) as the default.
    pub fn with_builtin(deps: &BackendDeps, default: &str) -> Result<Self, AgentError> {
        let mut registry = Self {
            backends: BTreeMap::new(),
            default: default.to_owned(),
        };
        registry.register("simple", crate::backends::simple::build, deps);
        registry.register("agent", crate::backends::agent::build, deps);
        registry.set_default(default)?;
        Ok(registry)
    }

    /// Adds (or replaces) a backend built by `constructor`.
    pub fn register(
        &mut self,
        name: &str,
        constructor: BackendConstructor,
        deps: &BackendDeps,
    ) -> &mut Self {
        self.backends.insert(name.to_owned(), constructor(deps));
        self
    }

    /// Changes the default; it must be registered.
    pub fn set_default(&mut self, name: &str) -> Result<(), AgentError> {
        self.get(Some(name))?;
        self.default = name.to_owned();
        Ok(())
    }

    /// Name of the default backend.
    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.backends.keys().cloned().collect()
    }

    /// The named backend, or the default for `None`.
    pub fn get(&self, name: Option<&str>) -> Result<Arc<dyn ChatBackend>, AgentError> {
        let name = name.unwrap_or(&self.default);
        self.backends
            .get(name)
            .cloned()
            .ok_or_else(|| AgentError::UnknownBackend(name.to_owned(), self.names().join(", ")))
    }
}
