//! Sessions, messages and the reply/usage/source types shared by every layer.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Free-form metadata attached to sessions, messages and sources: always a JSON object.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// A string did not name a known variant of one of our enums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseEnumError {
    /// The kind of value that was being parsed (e.g. `role`).
    pub kind: &'static str,
    /// The rejected input.
    pub value: String,
}

impl fmt::Display for ParseEnumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} `{}`", self.kind, self.value)
    }
}

impl std::error::Error for ParseEnumError {}

/// Defines `as_str`, `ALL`, `Display` and `FromStr` for a plain string enum.
macro_rules! string_enum {
    ($ty:ident, $kind:literal, { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The canonical lowercase name, as stored and serialised.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $s),+ }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = ParseEnumError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok($ty::$variant),)+
                    _ => Err(ParseEnumError { kind: $kind, value: s.to_owned() }),
                }
            }
        }
    };
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    /// The human user.
    User,
    /// The model's reply.
    Assistant,
    /// A system prompt or notice.
    System,
    /// The output of a tool call.
    Tool,
}

string_enum!(MessageRole, "role", {
    User => "user",
    Assistant => "assistant",
    System => "system",
    Tool => "tool",
});

/// Lifecycle state of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// Listed and writable.
    #[default]
    Active,
    /// Kept but out of the way; still readable and searchable.
    Archived,
    /// Soft-deleted: hidden from lists and search, purged by cleanup.
    Deleted,
}

string_enum!(SessionStatus, "status", {
    Active => "active",
    Archived => "archived",
    Deleted => "deleted",
});

/// A conversation: the container of messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatSession {
    /// Session id.
    pub id: Uuid,
    /// Human-readable title (1..=200 characters).
    pub title: String,
    /// Model the session talks to by default.
    pub model_id: String,
    /// Owner.
    pub user_id: String,
    /// Agent that serves the session (`dashboard`, `course`, ...).
    pub agent: String,
    /// Course the session is bound to, for course agents.
    pub course_id: Option<String>,
    /// Lifecycle state.
    pub status: SessionStatus,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Time of the last change (a message, a rename, archiving, deletion).
    pub updated_at: DateTime<Utc>,
    /// Number of messages in the session.
    pub message_count: i64,
    /// Free-form metadata.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::MetadataSchema, required = true))]
    pub metadata: Metadata,
}

/// One message of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    /// Message id.
    pub id: Uuid,
    /// Session the message belongs to.
    pub session_id: Uuid,
    /// Author.
    pub role: MessageRole,
    /// Text content.
    pub content: String,
    /// When the message was written.
    pub timestamp: DateTime<Utc>,
    /// Model that produced it (assistant messages).
    #[serde(default)]
    pub model_id: Option<String>,
    /// Tokens spent on it, when known.
    #[serde(default)]
    pub tokens_used: Option<i64>,
    /// Seconds the model took to answer, when known.
    #[serde(default)]
    pub response_time: Option<f64>,
    /// Free-form metadata.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::MetadataSchema, required = true))]
    pub metadata: Metadata,
}

/// Token accounting of one model call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Sum of both.
    pub total_tokens: u32,
}

impl Usage {
    /// Usage with `total_tokens` computed from the two parts.
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
        }
    }
}

/// A retrieved passage an answer is grounded on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// Named by the route that documents it, `/api/knowledge/{id}/search`.
#[cfg_attr(feature = "openapi", schema(as = KnowledgeSource))]
pub struct SourceInfo {
    /// Where the passage comes from (file path or lesson reference).
    pub file_path: String,
    /// The passage text.
    pub content: String,
    /// Relevance in 0..=1, higher is better.
    pub score: f64,
    /// chunk_index, title, document_id, collection, ...
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::MetadataSchema, required = true))]
    pub metadata: Metadata,
}

/// A complete (non-streamed) reply, as returned by `POST /api/chat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The assistant's answer.
    pub response: String,
    /// When the answer was finished.
    pub timestamp: DateTime<Utc>,
    /// Model that answered.
    pub model: String,
    /// Session the exchange was stored in.
    pub session_id: Uuid,
    /// Id of the stored assistant message.
    pub message_id: Uuid,
    /// Sources the answer cites.
    #[serde(default)]
    pub sources: Vec<SourceInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_strings() {
        for r in MessageRole::ALL {
            assert_eq!(r.as_str().parse::<MessageRole>(), Ok(*r));
            assert_eq!(
                serde_json::to_string(r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        for s in SessionStatus::ALL {
            assert_eq!(s.as_str().parse::<SessionStatus>(), Ok(*s));
        }
        let err = "moderator".parse::<MessageRole>().unwrap_err();
        assert_eq!(err.to_string(), "unknown role `moderator`");
    }

    #[test]
    fn usage_total_saturates() {
        assert_eq!(Usage::new(3, 4).total_tokens, 7);
        assert_eq!(Usage::new(u32::MAX, 1).total_tokens, u32::MAX);
    }
}
