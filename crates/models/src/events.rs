//! The chat event protocol: one JSON object per WebSocket frame or SSE `data:` line.
//!
//! Server events are tagged by `type`. Client messages are tagged by `type`
//! too, and the bare seed form `{"message": "..."}` is read as a
//! `chat_message`.

use std::fmt;
use std::time::Duration;

use confab_error::ErrorKind;

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::chat::{Message, SourceInfo, Usage};

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model finished its answer.
    Stop,
    /// The token limit was reached.
    Length,
    /// The model asked for tool calls.
    ToolCalls,
    /// The client cancelled.
    Cancelled,
    /// Generation failed.
    Error,
}

/// Which agent serves a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// Navigation across tracks and general questions.
    #[default]
    Dashboard,
    /// Questions about one course.
    Course,
}

impl AgentKind {
    /// The agent's name as used in sessions and events.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Dashboard => "dashboard",
            AgentKind::Course => "course",
        }
    }
}

/// An event sent from the server to a chat client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// The conversation is set up; `history` holds the resumed session's messages.
    Ready {
        /// Session the connection writes to.
        session_id: Uuid,
        /// Agent serving the session.
        agent: String,
        /// Chat backend in use (`simple`, `agent`, ...).
        backend: String,
        /// Messages already in the session, oldest first.
        history: Vec<Message>,
    },
    /// A progress notice (retrieving, thinking, calling a tool, ...).
    Stage {
        /// Machine-readable stage name.
        stage: String,
        /// Human-readable description.
        content: String,
    },
    /// A piece of the assistant's answer.
    Token {
        /// The text delta.
        content: String,
    },
    /// The model called a tool.
    ToolCall {
        /// Call id, matched by the `tool_result`.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments as JSON.
        arguments: serde_json::Value,
    },
    /// A tool returned.
    ToolResult {
        /// Id of the `tool_call` this answers.
        id: String,
        /// Tool name.
        name: String,
        /// The tool's output (or error text).
        content: String,
        /// Whether the tool failed.
        is_error: bool,
    },
    /// Sources the answer is grounded on.
    Sources {
        /// The retrieved passages, best first.
        sources: Vec<SourceInfo>,
    },
    /// Something went wrong; the connection stays usable unless closed.
    Error {
        /// Machine-readable code (`busy`, `bad_request`, `provider_unavailable`, ...).
        code: String,
        /// Human-readable explanation.
        message: String,
        /// Seconds the model provider asked to wait (its 429 `Retry-After`).
        /// Not part of the wire event (SPEC fixes `error` to `{code, message}`):
        /// never serialized, it carries the wait to HTTP `Retry-After` headers.
        #[serde(skip)]
        retry_after_secs: Option<u64>,
    },
    /// The answer is complete and stored.
    Done {
        /// Session the answer was stored in.
        session_id: Uuid,
        /// Id of the stored assistant message.
        message_id: Uuid,
        /// Model that answered.
        model: String,
        /// Token accounting.
        usage: Usage,
        /// Why generation ended.
        finish_reason: FinishReason,
    },
    /// Answer to a client `ping`.
    Pong,
}

impl ServerEvent {
    /// An `error` event.
    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Self {
        ServerEvent::Error {
            code: code.into(),
            message: message.into(),
            retry_after_secs: None,
        }
    }
}

impl AsRef<ServerEvent> for ServerEvent {
    fn as_ref(&self) -> &ServerEvent {
        self
    }
}

/// A chat event on chat-service's internal stream to the gateway (`POST
/// /api/chat/completions`): the protocol event, plus on an `error` the kind
/// of failure and the provider's wait, so the gateway answers with the
/// right status without reading meaning into error codes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayEvent {
    /// The protocol event.
    #[serde(flatten)]
    pub event: ServerEvent,
    /// The failure's kind on an `error` (its generic [`ErrorKind::code`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Seconds the model provider asked to wait (its 429 `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

impl RelayEvent {
    /// A protocol event that is not an error.
    pub fn event(event: ServerEvent) -> Self {
        Self {
            event,
            kind: None,
            retry_after_secs: None,
        }
    }

    /// An `error` event of this kind.
    pub fn error(event: ServerEvent, kind: ErrorKind) -> Self {
        let retry_after_secs = kind
            .retry_after()
            .map(|wait| wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        Self {
            event,
            kind: Some(kind.code().to_owned()),
            retry_after_secs,
        }
    }

    /// The kind of an `error` (internal when the sender named none or an
    /// unknown one).
    pub fn error_kind(&self) -> ErrorKind {
        self.kind
            .as_deref()
            .and_then(|name| {
                ErrorKind::from_code(name, self.retry_after_secs.map(Duration::from_secs))
            })
            .unwrap_or(ErrorKind::Internal)
    }
}

impl AsRef<ServerEvent> for RelayEvent {
    fn as_ref(&self) -> &ServerEvent {
        &self.event
    }
}

/// A message sent from a chat client to the server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Open (or resume) a conversation.
    Init {
        /// Agent to talk to.
        agent: AgentKind,
        /// Course, for the `course` agent.
        #[serde(skip_serializing_if = "Option::is_none")]
        course_id: Option<String>,
        /// Session to resume.
        #[serde(skip_serializing_if = "Option::is_none")]
        session_id: Option<Uuid>,
        /// Knowledge bases the conversation draws on (optional; absent = none).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        knowledge: Vec<Uuid>,
    },
    /// A user message to answer.
    ChatMessage {
        /// The user's text.
        content: String,
    },
    /// Stop the generation in progress (the partial reply is kept).
    Cancel,
    /// Keep-alive; answered with `pong`.
    Ping,
}

/// A client frame could not be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// The tagged wire form, used by the hand-written `Deserialize` below.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum TaggedClientMessage {
    Init {
        #[serde(default)]
        agent: AgentKind,
        #[serde(default)]
        course_id: Option<String>,
        #[serde(default)]
        session_id: Option<Uuid>,
        #[serde(default)]
        knowledge: Vec<Uuid>,
    },
    ChatMessage {
        content: String,
    },
    Cancel,
    Ping,
}

impl From<TaggedClientMessage> for ClientMessage {
    fn from(m: TaggedClientMessage) -> Self {
        match m {
            TaggedClientMessage::Init {
                agent,
                course_id,
                session_id,
                knowledge,
            } => ClientMessage::Init {
                agent,
                course_id,
                session_id,
                knowledge,
            },
            TaggedClientMessage::ChatMessage { content } => ClientMessage::ChatMessage { content },
            TaggedClientMessage::Cancel => ClientMessage::Cancel,
            TaggedClientMessage::Ping => ClientMessage::Ping,
        }
    }
}

impl ClientMessage {
    /// Parses one client frame, with an error message fit to send back to the client.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ProtocolError(format!("frame is not valid JSON: {e}")))?;
        Self::from_value(value)
    }

    fn from_value(value: serde_json::Value) -> Result<Self, ProtocolError> {
        let serde_json::Value::Object(map) = value else {
            return Err(ProtocolError("frame must be a JSON object".into()));
        };
        if map.contains_key("type") {
            return serde_json::from_value::<TaggedClientMessage>(serde_json::Value::Object(map))
                .map(Into::into)
                .map_err(|e| ProtocolError(format!("invalid client message: {e}")));
        }
        match map.get("message") {
            Some(serde_json::Value::String(s)) => {
                Ok(ClientMessage::ChatMessage { content: s.clone() })
            }
            Some(_) => Err(ProtocolError("`message` must be a string".into())),
            None => Err(ProtocolError(
                "frame needs a `type` (init, chat_message, cancel, ping) or a `message`".into(),
            )),
        }
    }
}

impl<'de> Deserialize<'de> for ClientMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Self::from_value(value).map_err(serde::de::Error::custom)
    }
}
