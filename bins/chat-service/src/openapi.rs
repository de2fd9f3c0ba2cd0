//! The OpenAPI document: its base (info, tags) and documentation-only
//! schemas mirroring the `confab_models` DTOs (that crate is serde-only, so
//! the schemas are declared here; field names and types match its JSON).

#![allow(dead_code)] // the mirror types exist for their schemas only

use chrono::{DateTime, Utc};
use utoipa::ToSchema;
use uuid::Uuid;

/// Tag of session routes.
pub const SESSIONS: &str = "sessions";
/// Tag of message routes.
pub const MESSAGES: &str = "messages";
/// Tag of system routes.
pub const SYSTEM: &str = "system";
/// Tag of memory and experience routes.
pub const MEMORY: &str = "memory";
/// Tag of administrative routes.
pub const ADMIN: &str = "admin";
/// Tag of chat routes.
pub const CHAT: &str = "chat";

/// The document before routes are added.
pub fn base() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
    use utoipa::openapi::tag::TagBuilder;
    use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApiBuilder};
    let tag = |name: &str, description: &str| {
        TagBuilder::new()
            .name(name)
            .description(Some(description))
            .build()
    };
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("confab chat-service")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Chat sessions, history, memory and feedback. Every route under /api acts \
                     for one user: behind the gateway the user comes from X-User-Id, trusted \
                     only with a valid X-Internal-Auth; standalone (no internal key \
                     configured) requests act as the local user. Errors are JSON \
                     {\"error\": code, \"message\": text}.",
                ))
                .build(),
        )
        .tags(Some(vec![
            tag(SESSIONS, "Chat sessions"),
            tag(MESSAGES, "Messages, search and feedback"),
            tag(MEMORY, "Long-term memory and feedback aggregate"),
            tag(SYSTEM, "Liveness, health and statistics"),
            tag(ADMIN, "Administrative operations (role admin)"),
            tag(CHAT, "Chat"),
        ]))
        .components(Some(
            ComponentsBuilder::new()
                .security_scheme(
                    "internal_auth",
                    SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Internal-Auth"))),
                )
                .build(),
        ))
        .build()
}

/// Free-form JSON object.
#[derive(ToSchema)]
#[schema(as = Metadata, value_type = Object)]
pub struct MetadataDoc(serde_json::Map<String, serde_json::Value>);

/// Lifecycle state of a session.
#[derive(ToSchema)]
#[schema(as = SessionStatus)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatusDoc {
    /// Listed and writable.
    Active,
    /// Kept but out of the way.
    Archived,
    /// Soft-deleted.
    Deleted,
}

/// Who wrote a message.
#[derive(ToSchema)]
#[schema(as = MessageRole)]
#[serde(rename_all = "lowercase")]
pub enum MessageRoleDoc {
    /// The user.
    User,
    /// The model.
    Assistant,
    /// A system prompt.
    System,
    /// A tool result.
    Tool,
}

/// A chat session.
#[derive(ToSchema)]
#[schema(as = ChatSession)]
pub struct ChatSessionDoc {
    id: Uuid,
    title: String,
    model_id: String,
    user_id: String,
    agent: String,
    course_id: Option<String>,
    status: SessionStatusDoc,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    message_count: i64,
    metadata: MetadataDoc,
}

/// A message of a session.
#[derive(ToSchema)]
#[schema(as = Message)]
pub struct MessageDoc {
    id: Uuid,
    session_id: Uuid,
    role: MessageRoleDoc,
    content: String,
    timestamp: DateTime<Utc>,
    model_id: Option<String>,
    tokens_used: Option<i64>,
    response_time: Option<f64>,
    metadata: MetadataDoc,
}

/// Input of `POST /api/sessions`; every field is optional.
#[derive(ToSchema)]
#[schema(as = NewSession)]
pub struct NewSessionDoc {
    /// Default "New chat"; 1..=200 characters.
    title: Option<String>,
    model_id: Option<String>,
    /// Default `dashboard`.
    agent: Option<String>,
    course_id: Option<String>,
    metadata: Option<MetadataDoc>,
}

/// Input of `PATCH /api/sessions/{id}`: only given fields change.
#[derive(ToSchema)]
#[schema(as = SessionUpdate)]
pub struct SessionUpdateDoc {
    title: Option<String>,
    model_id: Option<String>,
    /// Replaces the old object.
    metadata: Option<MetadataDoc>,
}

/// Input of `POST /api/sessions/{id}/messages`.
#[derive(ToSchema)]
#[schema(as = NewMessage)]
pub struct NewMessageDoc {
    role: MessageRoleDoc,
    /// Non-empty; at most 64 KiB.
    content: String,
    model_id: Option<String>,
    /// 0..=1,000,000,000.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    tokens_used: Option<i64>,
    /// Seconds, 0..=86,400.
    #[schema(minimum = 0.0, maximum = 86_400.0)]
    response_time: Option<f64>,
    metadata: Option<MetadataDoc>,
}

/// Input of `PATCH /api/messages/{id}`: only given fields change.
#[derive(ToSchema)]
#[schema(as = MessageUpdate)]
pub struct MessageUpdateDoc {
    content: Option<String>,
    metadata: Option<MetadataDoc>,
}

/// One page of sessions, most recently updated first.
#[derive(ToSchema)]
#[schema(as = SessionPage)]
pub struct SessionPageDoc {
    items: Vec<ChatSessionDoc>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// One page of messages, newest first.
#[derive(ToSchema)]
#[schema(as = MessagePage)]
pub struct MessagePageDoc {
    items: Vec<MessageDoc>,
    /// Pass as `before` for older messages.
    older_cursor: Option<String>,
    /// Pass as `after` for newer messages.
    newer_cursor: Option<String>,
}

/// A session found by search.
#[derive(ToSchema)]
#[schema(as = SessionSearchHit)]
pub struct SessionSearchHitDoc {
    session: ChatSessionDoc,
    title_match: bool,
    snippet: Option<String>,
}

/// Sessions found by search.
#[derive(ToSchema)]
#[schema(as = SessionSearchResults)]
pub struct SessionSearchResultsDoc {
    items: Vec<SessionSearchHitDoc>,
}

/// A message found by full-text search.
#[derive(ToSchema)]
#[schema(as = MessageSearchHit)]
pub struct MessageSearchHitDoc {
    message: MessageDoc,
    session_title: String,
    /// Excerpt with matches in `<mark>`…`</mark>`.
    snippet: String,
    rank: f64,
}

/// Messages found by full-text search.
#[derive(ToSchema)]
#[schema(as = MessageSearchResults)]
pub struct MessageSearchResultsDoc {
    items: Vec<MessageSearchHitDoc>,
}

/// Figures over the caller's sessions.
#[derive(ToSchema)]
#[schema(as = UserSessionStats)]
pub struct UserSessionStatsDoc {
    total_sessions: i64,
    active_sessions: i64,
    archived_sessions: i64,
    total_messages: i64,
    total_tokens: i64,
    last_activity: Option<DateTime<Utc>>,
}

/// Figures about one session.
#[derive(ToSchema)]
#[schema(as = SessionStatistics)]
pub struct SessionStatisticsDoc {
    session_id: Uuid,
    message_count: i64,
    user_messages: i64,
    assistant_messages: i64,
    system_messages: i64,
    tool_messages: i64,
    total_tokens: i64,
    average_response_time: Option<f64>,
    first_message_at: Option<DateTime<Utc>>,
    last_message_at: Option<DateTime<Utc>>,
}

/// What cleanup did (or would do in a dry run).
#[derive(ToSchema)]
#[schema(as = CleanupReport)]
pub struct CleanupReportDoc {
    dry_run: bool,
    days_old: u32,
    archived: u64,
    purged: u64,
    archived_ids: Vec<Uuid>,
    purged_ids: Vec<Uuid>,
}

/// The JSON export of a session (`format` = `confab.session.v1`); import reads it back.
#[derive(ToSchema)]
#[schema(as = SessionExport)]
pub struct SessionExportDoc {
    format: String,
    exported_at: DateTime<Utc>,
    session: ChatSessionDoc,
    /// Oldest first.
    messages: Vec<MessageDoc>,
}

/// Feedback on an assistant message: a score 1..=5 and/or thumbs, and a comment.
#[derive(ToSchema)]
#[schema(as = NewFeedback)]
pub struct NewFeedbackDoc {
    /// 1..=5; wins over `thumbs_up`.
    score: Option<i32>,
    /// Up = 5, down = 1 when no score is given.
    thumbs_up: Option<bool>,
    /// At most 2000 characters.
    comment: Option<String>,
}

/// Stored feedback (one per user and message).
#[derive(ToSchema)]
#[schema(as = Feedback)]
pub struct FeedbackDoc {
    id: Uuid,
    message_id: Uuid,
    session_id: Uuid,
    user_id: String,
    score: i32,
    comment: Option<String>,
    created_at: DateTime<Utc>,
}

/// Aggregate of feedback.
#[derive(ToSchema)]
#[schema(as = ExperienceSummary)]
pub struct ExperienceSummaryDoc {
    total: i64,
    average_score: Option<f64>,
    /// Count per score 1..=5 (index 0 is score 1).
    distribution: [i64; 5],
    /// Newest first.
    recent: Vec<FeedbackDoc>,
}

/// A long-term memory item.
#[derive(ToSchema)]
#[schema(as = MemoryItem)]
pub struct MemoryItemDoc {
    id: Uuid,
    user_id: String,
    content: String,
    created_at: DateTime<Utc>,
    metadata: MetadataDoc,
}
