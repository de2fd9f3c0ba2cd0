//! What the engine and the tools need from the outside world, as traits:
//! the conversation history (implemented over `confab-history` by the
//! server), long-term memory, and the course catalogue (implemented over
//! the accounts crate). In-memory versions live in [`crate::memory`] for
//! tests and embedded use.

use confab_error::{DomainError, ErrorKind};
use confab_llm::BoxFuture;
use confab_models::{ChatSession, MemoryItem, Message, NewMessage, NewSession, SessionUpdate};
use serde::{Deserialize, Serialize};

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The session, message or item does not exist for this user.
    #[error("{0}")]
    NotFound(String),
    /// The input was refused (too long, bad id, ...).
    #[error("{0}")]
    Invalid(String),
    /// The store could not be reached or failed.
    #[error("{0}")]
    Unavailable(String),
}

impl DomainError for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::NotFound(_) => ErrorKind::NotFound,
            StoreError::Invalid(_) => ErrorKind::Malformed,
            StoreError::Unavailable(_) => ErrorKind::Unavailable,
        }
    }
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Sessions and messages, user-scoped (a session of another user is "not found").
pub trait ConversationStore: Send + Sync {
    /// Creates a session.
    fn create_session<'a>(
        &'a self,
        user_id: &'a str,
        new: NewSession,
    ) -> BoxFuture<'a, StoreResult<ChatSession>>;

    /// A live (not deleted) session of the user.
    fn get_session<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<ChatSession>>;

    /// Changes a session's title or metadata.
    fn update_session<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
        update: SessionUpdate,
    ) -> BoxFuture<'a, StoreResult<ChatSession>>;

    /// Appends a message (and bumps the session's count).
    fn save_message<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
        message: NewMessage,
    ) -> BoxFuture<'a, StoreResult<Message>>;

    /// The last `n` messages, oldest first.
    fn recent_messages<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
        n: u32,
    ) -> BoxFuture<'a, StoreResult<Vec<Message>>>;

    /// Creates a session holding `message` as its first message. A store
    /// that can should do it in one write (this default makes two).
    fn create_session_with_message<'a>(
        &'a self,
        user_id: &'a str,
        new: NewSession,
        message: NewMessage,
    ) -> BoxFuture<'a, StoreResult<(ChatSession, Message)>> {
        Box::pin(async move {
            let session = self.create_session(user_id, new).await?;
            let saved = self
                .save_message(user_id, &session.id.to_string(), message)
                .await?;
            Ok((session, saved))
        })
    }

    /// Saves the first message of a session opened empty and gives the
    /// session `title`. A store that can should do both in one write and
    /// set the title only while the session has no message (this default
    /// makes two writes).
    fn save_first_message<'a>(
        &'a self,
        user_id: &'a str,
        session_id: &'a str,
        title: String,
        message: NewMessage,
    ) -> BoxFuture<'a, StoreResult<Message>> {
        Box::pin(async move {
            let update = SessionUpdate {
                title: Some(title),
                ..SessionUpdate::default()
            };
            self.update_session(user_id, session_id, update).await?;
            self.save_message(user_id, session_id, message).await
        })
    }
}

/// Long-term memory items of a user.
pub trait MemoryStore: Send + Sync {
    /// Stores an item.
    fn remember<'a>(
        &'a self,
        user_id: &'a str,
        content: &'a str,
        metadata: serde_json::Value,
    ) -> BoxFuture<'a, StoreResult<MemoryItem>>;

    /// The user's most recent items, newest first.
    fn recall<'a>(
        &'a self,
        user_id: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, StoreResult<Vec<MemoryItem>>>;
}

/// A track of the catalogue as a card, with the user's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackCard {
    /// Track id (also the course id of the course agent).
    pub id: String,
    /// Title.
    pub title: String,
    /// One-paragraph description.
    pub description: String,
    /// Lessons in the track.
    pub lessons_total: u32,
    /// Lessons the user completed.
    pub lessons_completed: u32,
    /// 0..=100.
    pub progress_percent: f64,
}

/// A lesson as the tools see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LessonInfo {
    /// Lesson id.
    pub id: String,
    /// The track (course) it belongs to.
    pub track_id: String,
    /// Module title.
    pub module_title: String,
    /// Lesson title.
    pub title: String,
    /// Markdown content.
    pub content: String,
    /// Whether the user completed it.
    pub completed: bool,
}

/// A user's progress over the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserProgress {
    /// Every track with the user's progress.
    pub tracks: Vec<TrackCard>,
    /// Ids of the lessons the user completed.
    pub completed_lessons: Vec<String>,
}

/// The course catalogue, as the dashboard and course agents see it.
pub trait Catalog: Send + Sync {
    /// All tracks with the user's progress.
    fn list_tracks<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, StoreResult<Vec<TrackCard>>>;

    /// The user's progress.
    fn progress<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, StoreResult<UserProgress>>;

    /// One lesson.
    fn lesson<'a>(
        &'a self,
        user_id: &'a str,
        lesson_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<LessonInfo>>;

    /// The lessons of a track, in order (titles and ids; content may be empty).
    fn track_lessons<'a>(
        &'a self,
        user_id: &'a str,
        track_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<LessonInfo>>>;
}

/// Name of the RAG collection holding a course's lesson materials.
pub fn course_collection(course_id: &str) -> String {
    format!("course:{course_id}")
}
