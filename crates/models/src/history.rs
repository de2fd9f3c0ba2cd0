//! DTOs of the session and history services: inputs, pages, search hits,
//! statistics, cleanup reports and the export document.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::chat::{ChatSession, Message, MessageRole, ParseEnumError};

/// Input of `SessionService::create`. Missing fields get defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewSession {
    /// Title; defaults to "New chat".
    #[serde(default)]
    pub title: Option<String>,
    /// Model; defaults to the service's configured default model.
    #[serde(default)]
    pub model_id: Option<String>,
    /// Agent; defaults to `dashboard`.
    #[serde(default)]
    pub agent: Option<String>,
    /// Course for course agents.
    #[serde(default)]
    pub course_id: Option<String>,
    /// Metadata; must be a JSON object when given.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::MetadataSchema>))]
    pub metadata: Option<serde_json::Value>,
}

/// Input of `SessionService::update`: only the given fields change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionUpdate {
    /// New title.
    #[serde(default)]
    pub title: Option<String>,
    /// New model.
    #[serde(default)]
    pub model_id: Option<String>,
    /// New metadata (replaces the old object); must be a JSON object.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::MetadataSchema>))]
    pub metadata: Option<serde_json::Value>,
}

/// Input of `HistoryService::save_message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewMessage {
    /// Author.
    pub role: MessageRole,
    /// Text content (non-empty, at most the configured limit).
    pub content: String,
    /// Model that produced it.
    #[serde(default)]
    pub model_id: Option<String>,
    /// Tokens spent.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1_000_000_000))]
    pub tokens_used: Option<i64>,
    /// Seconds the model took.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 86_400.0))]
    pub response_time: Option<f64>,
    /// Metadata; must be a JSON object when given.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::MetadataSchema>))]
    pub metadata: Option<serde_json::Value>,
}

impl NewMessage {
    /// A message with the given role and content and nothing else.
    pub fn new(role: MessageRole, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            model_id: None,
            tokens_used: None,
            response_time: None,
            metadata: None,
        }
    }
}

/// Input of `HistoryService::update_message`: only the given fields change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageUpdate {
    /// New content.
    #[serde(default)]
    pub content: Option<String>,
    /// New metadata (replaces the old object); must be a JSON object.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::MetadataSchema>))]
    pub metadata: Option<serde_json::Value>,
}

/// One page of a user's sessions, most recently updated first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionPage {
    /// The sessions of this page.
    pub items: Vec<ChatSession>,
    /// Opaque cursor of the next (older) page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One page of a session's messages, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessagePage {
    /// The messages of this page, newest first.
    pub items: Vec<Message>,
    /// Cursor for the page of older messages (`before=`); `None` when there are none.
    pub older_cursor: Option<String>,
    /// Cursor for the page of newer messages (`after=`); `None` when there were none
    /// at the time of the query (poll with it to catch up).
    pub newer_cursor: Option<String>,
}

/// A message found by full-text search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageSearchHit {
    /// The matching message.
    pub message: Message,
    /// Title of its session.
    pub session_title: String,
    /// Excerpt with the matches wrapped in `<mark>`…`</mark>`.
    pub snippet: String,
    /// Relevance, higher is better (comparable within one result list only).
    pub rank: f64,
}

/// A session found by `search_sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionSearchHit {
    /// The matching session.
    pub session: ChatSession,
    /// Whether the title matched.
    pub title_match: bool,
    /// Excerpt of the best matching message, when a message matched.
    pub snippet: Option<String>,
}

/// Aggregate figures over one user's sessions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserSessionStats {
    /// Sessions not deleted.
    pub total_sessions: i64,
    /// Active sessions.
    pub active_sessions: i64,
    /// Archived sessions.
    pub archived_sessions: i64,
    /// Messages in sessions not deleted.
    pub total_messages: i64,
    /// Tokens recorded on those messages.
    pub total_tokens: i64,
    /// Most recent activity.
    pub last_activity: Option<DateTime<Utc>>,
}

/// Figures about one session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionStatistics {
    /// The session.
    pub session_id: Uuid,
    /// Messages in total.
    pub message_count: i64,
    /// Messages written by the user.
    pub user_messages: i64,
    /// Messages written by the assistant.
    pub assistant_messages: i64,
    /// System messages.
    pub system_messages: i64,
    /// Tool messages.
    pub tool_messages: i64,
    /// Sum of `tokens_used`.
    pub total_tokens: i64,
    /// Mean of `response_time` over messages that have one, in seconds.
    pub average_response_time: Option<f64>,
    /// Time of the first message.
    pub first_message_at: Option<DateTime<Utc>>,
    /// Time of the last message.
    pub last_message_at: Option<DateTime<Utc>>,
}

/// What `cleanup_old` did, or in a dry run would do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CleanupReport {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// The idle threshold in days.
    pub days_old: u32,
    /// Active sessions idle longer than the threshold: archived.
    pub archived: u64,
    /// Sessions deleted longer ago than the threshold: removed for good.
    pub purged: u64,
    /// Ids of the archived sessions.
    pub archived_ids: Vec<Uuid>,
    /// Ids of the purged sessions.
    pub purged_ids: Vec<Uuid>,
}

/// Format of a session export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// A [`SessionExport`] document; imports back.
    Json,
    /// Markdown for people.
    Markdown,
    /// Plain text for people.
    Txt,
}

impl ExportFormat {
    /// Canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Json => "json",
            ExportFormat::Markdown => "markdown",
            ExportFormat::Txt => "txt",
        }
    }

    /// MIME type of the exported document.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Json => "application/json",
            ExportFormat::Markdown => "text/markdown; charset=utf-8",
            ExportFormat::Txt => "text/plain; charset=utf-8",
        }
    }

    /// File extension (no dot).
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Json => "json",
            ExportFormat::Markdown => "md",
            ExportFormat::Txt => "txt",
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExportFormat {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(ExportFormat::Json),
            "markdown" | "md" => Ok(ExportFormat::Markdown),
            "txt" | "text" => Ok(ExportFormat::Txt),
            _ => Err(ParseEnumError {
                kind: "export format",
                value: s.to_owned(),
            }),
        }
    }
}

/// The JSON export of a session; `import_session` reads it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionExport {
    /// Document format tag, [`SessionExport::FORMAT`].
    pub format: String,
    /// When the export was made.
    pub exported_at: DateTime<Utc>,
    /// The session.
    pub session: ChatSession,
    /// Its messages, oldest first.
    pub messages: Vec<Message>,
}

impl SessionExport {
    /// The current format tag.
    pub const FORMAT: &'static str = "confab.session.v1";
}

/// Query of `SessionService::list_user_sessions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionQuery {
    /// Only sessions in this state; default: active and archived (not deleted).
    #[serde(default)]
    pub status: Option<crate::chat::SessionStatus>,
    /// Cursor from a previous page's `next_cursor`.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Page size (capped by the service).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Query of `HistoryService::get_session_messages`: give at most one of `before` / `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageQuery {
    /// Messages older than this cursor (`older_cursor` of a page).
    #[serde(default)]
    pub before: Option<String>,
    /// Messages newer than this cursor (`newer_cursor` of a page).
    #[serde(default)]
    pub after: Option<String>,
    /// Page size (capped by the service).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A long-term memory item: something the user asked the assistant to
/// remember across sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemoryItem {
    /// Item id.
    pub id: Uuid,
    /// Owner.
    pub user_id: String,
    /// What to remember.
    pub content: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// Free-form metadata (e.g. the session it came from).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::MetadataSchema, required = true))]
    pub metadata: crate::chat::Metadata,
}

/// Feedback on one assistant message: a score 1..=5 and/or thumbs, and an
/// optional comment. Thumbs up counts as 5, thumbs down as 1 when no score
/// is given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewFeedback {
    /// Score from 1 (bad) to 5 (great).
    #[serde(default)]
    pub score: Option<i32>,
    /// Thumbs up (`true`) or down (`false`).
    #[serde(default)]
    pub thumbs_up: Option<bool>,
    /// Free text.
    #[serde(default)]
    pub comment: Option<String>,
}

/// Stored feedback on a message (one per user and message; giving it again replaces it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Feedback {
    /// Feedback id.
    pub id: Uuid,
    /// The message it is about.
    pub message_id: Uuid,
    /// The session of that message.
    pub session_id: Uuid,
    /// Who gave it.
    pub user_id: String,
    /// Score 1..=5.
    pub score: i32,
    /// Comment, if any.
    pub comment: Option<String>,
    /// When it was given (or last changed).
    pub created_at: DateTime<Utc>,
}

/// Aggregate of feedback (`GET /api/experience`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperienceSummary {
    /// How many feedback items.
    pub total: i64,
    /// Mean score, when there is any feedback.
    pub average_score: Option<f64>,
    /// Count per score 1..=5 (index 0 is score 1).
    pub distribution: [i64; 5],
    /// The most recent items, newest first.
    pub recent: Vec<Feedback>,
}
