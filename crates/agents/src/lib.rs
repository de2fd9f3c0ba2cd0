//! Where a user's message becomes a streamed, grounded, persisted answer.
//!
//! - [`backend`]: the [`ChatBackend`] trait and the [`BackendRegistry`]
//!   (`simple` RAG and the tool-using `agent`, in [`backends`]).
//! - [`tools`]: the [`tools::Tool`] trait, the [`ToolRegistry`] and the
//!   built-in tools; [`mcp`] adds tools from MCP servers.
//! - [`profiles`]: the `dashboard` and `course` agents' system prompts.
//! - [`engine`]: the conversation engine ([`Engine`]): sessions, context
//!   window, persistence, cancellation.
//! - [`store`]: what the engine needs from outside (history, memory,
//!   catalogue) as traits; [`memory`] has in-memory versions.
//!
//! This crate knows nothing of HTTP servers; it sees the history crate
//! only through [`store::ConversationStore`], which the optional feature
//! `history` implements over `confab-history` (`history` module).

pub mod backend;
pub mod backends;
pub mod engine;
pub mod error;
pub mod event;
#[cfg(feature = "history")]
pub mod history;
pub mod mcp;
pub mod memory;
pub mod profiles;
pub mod store;
pub mod tools;

pub use backend::{
    AiStyle, BackendConfig, BackendDeps, BackendRegistry, ChatBackend, ChatContext, UserSettings,
};
pub use engine::{ChatReply, ChatTurn, Engine, EngineConfig, StatelessTurn};
pub use error::AgentError;
pub use event::{AnswerEvent, ChatEvent, EventStream, Stage, ToolCallRecord};
pub use tools::{DynTool, Tool, ToolContext, ToolError, ToolOutput, ToolRegistry};
