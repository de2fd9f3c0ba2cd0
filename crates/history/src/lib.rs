//! Sessions and message history for confab (seed 001).
//!
//! [`SessionService`] owns the lifecycle of chat sessions; [`HistoryService`]
//! owns their messages; [`MemoryService`] keeps a user's long-term memory
//! items; [`FeedbackService`] records scores on assistant messages and
//! aggregates them. Both are cheap to clone, async (diesel runs on the
//! blocking pool through [`confab_store::Db::run`]) and scoped: every call
//! that takes a user id sees only that user's rows, and another user's
//! session is simply "not found".
//!
//! Full-text search uses FTS5 on SQLite and a `tsvector` + GIN index on
//! PostgreSQL; both tokenise without stemming, so results agree across
//! backends. Queries are reduced to plain words before they reach either
//! engine, so no input can inject search syntax or SQL.

mod config;
mod cursor;
mod error;
mod export;
mod feedback;
mod memory;
mod messages;
mod rows;
mod sessions;
mod validate;

pub use config::HistoryConfig;
pub use error::HistoryError;
pub use export::{ExportedSession, render as render_export};
pub use feedback::FeedbackService;
pub use memory::MemoryService;
pub use messages::HistoryService;
pub use sessions::{GlobalCounts, SessionService};

use std::sync::Arc;

use confab_store::Db;

/// The session and history services over one database and configuration.
pub fn services(db: Db, config: HistoryConfig) -> (SessionService, HistoryService) {
    let config = Arc::new(config);
    (
        SessionService::new(db.clone(), config.clone()),
        HistoryService::new(db, config),
    )
}

/// Every service of this crate over one database and configuration.
#[derive(Debug, Clone)]
pub struct Services {
    /// Sessions.
    pub sessions: SessionService,
    /// Messages.
    pub history: HistoryService,
    /// Long-term memory items.
    pub memory: MemoryService,
    /// Feedback on messages.
    pub feedback: FeedbackService,
}

impl Services {
    /// All four services sharing `db` and `config`.
    pub fn new(db: Db, config: HistoryConfig) -> Self {
        let config = Arc::new(config);
        Self {
            sessions: SessionService::new(db.clone(), config.clone()),
            history: HistoryService::new(db.clone(), config.clone()),
            memory: MemoryService::new(db.clone(), config.clone()),
            feedback: FeedbackService::new(db, config),
        }
    }
}
