//! Domain types of confab: chat sessions and messages, the DTOs the services
//! and HTTP API exchange, and the chat event protocol spoken over WebSocket
//! and SSE.
//!
//! This crate depends on serde (and chrono / uuid for their serde forms)
//! only, so API clients can reuse it without pulling in a database or a web
//! framework. The feature `openapi` derives `utoipa::ToSchema` on the DTOs
//! (the servers' OpenAPI documents are built from these types); without it
//! utoipa is not built.

pub mod accounts;
pub mod chat;
pub mod events;
pub mod history;
pub mod knowledge;
#[cfg(feature = "openapi")]
pub mod openapi;

pub use chat::{
    ChatResponse, ChatSession, Message, MessageRole, Metadata, ParseEnumError, SessionStatus,
    SourceInfo, Usage,
};
pub use events::{AgentKind, ClientMessage, FinishReason, ProtocolError, RelayEvent, ServerEvent};
pub use history::{
    CleanupReport, ExperienceSummary, ExportFormat, Feedback, MemoryItem, MessagePage,
    MessageQuery, MessageSearchHit, MessageUpdate, NewFeedback, NewMessage, NewSession,
    SessionExport, SessionPage, SessionQuery, SessionSearchHit, SessionStatistics, SessionUpdate,
    UserSessionStats,
};

/// Identifier of a session or a message: a UUID (v7, time ordered, when we mint it).
pub type Id = uuid::Uuid;
