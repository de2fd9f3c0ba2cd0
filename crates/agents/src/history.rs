//! The [`crate::store`] traits over the `confab-history` services (feature
//! `history`): the conversation engine reads and writes sessions, messages
//! and memory through these. chat-service uses them, and so can any service
//! that keeps its conversations with `confab-history`.

use confab_history::{HistoryError, HistoryService, MemoryService, SessionService};
use confab_llm::BoxFuture;
use confab_models::{
    ChatSession, MemoryItem, Message, NewMessage, NewSession, SessionStatus, SessionUpdate,
};

use crate::store::{ConversationStore, MemoryStore, StoreError, StoreResult};

/// Maps a service error: not found -> `NotFound`, other client errors ->
/// `Invalid`, the rest (database down, busy, corrupt) -> `Unavailable`.
pub fn store_error(e: HistoryError) -> StoreError {
    match &e {
        HistoryError::SessionNotFound(_) | HistoryError::MessageNotFound(_) => {
            StoreError::NotFound(e.to_string())
        }
        _ if e.is_client_error() => StoreError::Invalid(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// [`ConversationStore`] over [`SessionService`] and [`HistoryService`].
#[derive(Debug, Clone)]
pub struct HistoryConversationStore {
    sessions: SessionService,
    history: HistoryService,
}

impl HistoryConversationStore {
    /// The store over these services.
    pub fn new(sessions: SessionService, history: HistoryService) -> Self {
        Self { sessions, history }
    }

    /// The session service it writes through.
    pub fn sessions(&self) -> &SessionService {
        &self.sessions
    }

    /// The history service it writes through.
    pub fn history(&self) -> &HistoryService {
        &self.history
    }
}

impl ConversationStore for HistoryConversationStore {
    fn create_session<'a>(
        &'a self,
        user_id: &'a str,
        new: NewSession,
    ) -> BoxFuture<'a, StoreResult<ChatSession>> {
        Box::pin(async move {
            self.sessions
                .create(user_id, new)
                .await
                .map_err(store_error)
        })
    }

    fn get_session<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<ChatSession>> {
        Box::pin(async move {
            let session = self
                .sessions
                .get(user_id, session_id)
                .await
                .map_err(store_error)?;
            // The trait promises live sessions only: a deleted one is gone.
            if session.status == SessionStatus::Deleted {
                return Err(StoreError::NotFound(format!(
                    "session {session_id} not found"
                )));
            }
            Ok(session)
        })
    }

    fn update_session<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
        update: SessionUpdate,
    ) -> BoxFuture<'a, StoreResult<ChatSession>> {
        Box::pin(async move {
            self.sessions
                .update(user_id, session_id, update)
                .await
                .map_err(store_error)
        })
    }

    fn save_message<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
        message: NewMessage,
    ) -> BoxFuture<'a, StoreResult<Message>> {
        Box::pin(async move {
            self.history
                .save_message(user_id, session_id, message)
                .await
                .map_err(store_error)
        })
    }

    fn recent_messages<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
        n: u32,
    ) -> BoxFuture<'a, StoreResult<Vec<Message>>> {
        Box::pin(async move {
            self.history
                .recent_messages(user_id, session_id, n)
                .await
                .map_err(store_error)
        })
    }

    fn create_session_with_message<'a>(
        &'a self,
        user_id: &'a str,
        new: NewSession,
        message: NewMessage,
    ) -> BoxFuture<'a, StoreResult<(ChatSession, Message)>> {
        Box::pin(async move {
            self.history
                .create_session_with_message(user_id, new, message)
                .await
                .map_err(store_error)
        })
    }

    fn save_first_message<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
        title: String,
        message: NewMessage,
    ) -> BoxFuture<'a, StoreResult<Message>> {
        Box::pin(async move {
            self.history
                .save_first_message(user_id, session_id, &title, message)
                .await
                .map_err(store_error)
        })
    }
}

/// [`MemoryStore`] over [`MemoryService`].
#[derive(Debug, Clone)]
pub struct HistoryMemoryStore {
    memory: MemoryService,
}

impl HistoryMemoryStore {
    /// The store over this service.
    pub fn new(memory: MemoryService) -> Self {
        Self { memory }
    }
}

impl MemoryStore for HistoryMemoryStore {
    fn remember<'a>(
        &'a self,
        user_id: &'a str,
        content: &'a str,
        metadata: serde_json::Value,
    ) -> BoxFuture<'a, StoreResult<MemoryItem>> {
        Box::pin(async move {
            self.memory
                .remember(user_id, content, Some(metadata))
                .await
                .map_err(store_error)
        })
    }

    fn recall<'a>(
        &'a self,
        user_id: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, StoreResult<Vec<MemoryItem>>> {
        Box::pin(async move {
            if limit == 0 {
                return Ok(Vec::new());
            }
            self.memory
                .list(user_id, Some(limit))
                .await
                .map_err(store_error)
        })
    }
}
