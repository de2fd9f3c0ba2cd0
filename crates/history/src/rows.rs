//! Diesel row types and their conversion to the domain types.

use chrono::{DateTime, NaiveDateTime, Utc};
use confab_models::{ChatSession, Feedback, MemoryItem, Message, Metadata};
use confab_store::schema::{chat_messages, chat_sessions, message_feedback, user_memory};
use diesel::prelude::*;
use uuid::Uuid;

use crate::error::HistoryError;

/// A `chat_sessions` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = chat_sessions)]
pub(crate) struct SessionRow {
    pub id: String,
    pub title: String,
    pub model_id: String,
    pub user_id: String,
    pub agent: String,
    pub course_id: Option<String>,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub message_count: i64,
    pub metadata: String,
}

/// A `chat_messages` row as read.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = chat_messages)]
pub(crate) struct MessageRow {
    pub seq: i64,
    pub id: String,
    pub session_id: String,
    pub role: String,
    pub content: String,
    pub timestamp: NaiveDateTime,
    pub model_id: Option<String>,
    pub tokens_used: Option<i64>,
    pub response_time: Option<f64>,
    pub metadata: String,
}

/// A `chat_messages` row as written (`seq` is assigned by the database).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = chat_messages, treat_none_as_default_value = false)]
pub(crate) struct NewMessageRow {
    pub id: String,
    pub session_id: String,
    pub role: String,
    pub content: String,
    pub timestamp: NaiveDateTime,
    pub model_id: Option<String>,
    pub tokens_used: Option<i64>,
    pub response_time: Option<f64>,
    pub metadata: String,
}

fn parse_uuid(s: &str, what: &str) -> Result<Uuid, HistoryError> {
    s.parse()
        .map_err(|_| HistoryError::Corrupt(format!("{what} id `{s}` is not a UUID")))
}

fn parse_metadata(s: &str) -> Result<Metadata, HistoryError> {
    serde_json::from_str(s).map_err(|e| HistoryError::Corrupt(format!("metadata: {e}")))
}

/// A stored naive UTC time as a UTC datetime.
pub(crate) fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

impl SessionRow {
    pub fn into_model(self) -> Result<ChatSession, HistoryError> {
        Ok(ChatSession {
            id: parse_uuid(&self.id, "session")?,
            status: self
                .status
                .parse()
                .map_err(|e| HistoryError::Corrupt(format!("{e}")))?,
            metadata: parse_metadata(&self.metadata)?,
            title: self.title,
            model_id: self.model_id,
            user_id: self.user_id,
            agent: self.agent,
            course_id: self.course_id,
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
            message_count: self.message_count,
        })
    }
}

impl MessageRow {
    pub fn into_model(self) -> Result<Message, HistoryError> {
        Ok(Message {
            id: parse_uuid(&self.id, "message")?,
            session_id: parse_uuid(&self.session_id, "session")?,
            role: self
                .role
                .parse()
                .map_err(|e| HistoryError::Corrupt(format!("{e}")))?,
            metadata: parse_metadata(&self.metadata)?,
            content: self.content,
            timestamp: utc(self.timestamp),
            model_id: self.model_id,
            tokens_used: self.tokens_used,
            response_time: self.response_time,
        })
    }
}

/// Converts a list of rows, failing on the first malformed one.
pub(crate) fn messages(rows: Vec<MessageRow>) -> Result<Vec<Message>, HistoryError> {
    rows.into_iter().map(MessageRow::into_model).collect()
}

/// Converts a list of rows, failing on the first malformed one.
pub(crate) fn sessions(rows: Vec<SessionRow>) -> Result<Vec<ChatSession>, HistoryError> {
    rows.into_iter().map(SessionRow::into_model).collect()
}

/// A `user_memory` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = user_memory)]
pub(crate) struct MemoryRow {
    pub id: String,
    pub user_id: String,
    pub content: String,
    pub created_at: NaiveDateTime,
    pub metadata: String,
}

impl MemoryRow {
    pub fn into_model(self) -> Result<MemoryItem, HistoryError> {
        Ok(MemoryItem {
            id: parse_uuid(&self.id, "memory item")?,
            metadata: parse_metadata(&self.metadata)?,
            user_id: self.user_id,
            content: self.content,
            created_at: utc(self.created_at),
        })
    }
}

/// A `message_feedback` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = message_feedback)]
pub(crate) struct FeedbackRow {
    pub id: String,
    pub message_id: String,
    pub session_id: String,
    pub user_id: String,
    pub score: i32,
    pub comment: Option<String>,
    pub created_at: NaiveDateTime,
}

impl FeedbackRow {
    pub fn into_model(self) -> Result<Feedback, HistoryError> {
        Ok(Feedback {
            id: parse_uuid(&self.id, "feedback")?,
            message_id: parse_uuid(&self.message_id, "message")?,
            session_id: parse_uuid(&self.session_id, "session")?,
            user_id: self.user_id,
            score: self.score,
            comment: self.comment,
            created_at: utc(self.created_at),
        })
    }
}
