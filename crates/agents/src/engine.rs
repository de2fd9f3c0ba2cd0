//! The conversation engine (seed 001 ChatService): turns a user's message
//! into a streamed answer and keeps the history.
//!
//! For every turn it: checks the message, finds or creates the session
//! (titled from its first message), builds the context window, saves the
//! user message (the acknowledgement: from here it is never lost; a new
//! or empty session's first message is saved in the same write that
//! creates or titles it, since it has no history to read), runs a
//! backend, forwards its events, and saves the assistant message with
//! model, tokens, response time, sources and tool calls. Cancelled or
//! failed answers are saved with what was generated and finish reason
//! `cancelled` / `error`. Generation runs in its own task: a client that
//! goes away cancels it, and the partial answer is still saved. No
//! transaction spans a model call and nothing is written per token.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use confab_llm::ChatMessage;
use confab_models::{
    AgentKind, ChatSession, FinishReason, MemoryItem, Message, MessageRole, NewMessage, NewSession,
    ServerEvent, SourceInfo, Usage,
};
use confab_rag::chunk::count_tokens;
use futures_util::{Stream, StreamExt};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::backend::{BackendRegistry, ChatContext, UserSettings};
use crate::error::AgentError;
use crate::event::{AnswerEvent, ChatEvent, ToolCallRecord};
use crate::profiles::system_prompt;
use crate::store::{ConversationStore, MemoryStore};
use crate::tools::builtin::truncate;

/// Limits of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Token budget of the context window (system prompt, memory, history, new message).
    pub context_tokens: usize,
    /// Most past messages loaded before fitting them to the budget.
    pub history_messages: u32,
    /// Long-term memory items put in the system prompt.
    pub memory_items: u32,
    /// Longest user message, in characters.
    pub max_message_chars: usize,
    /// Longest saved reply, in bytes (longer replies are cut and flagged).
    pub max_reply_bytes: usize,
    /// Longest generated title, in characters.
    pub title_chars: usize,
    /// Events buffered between the generation task and a slow client.
    pub channel_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            context_tokens: 4_096,
            history_messages: 50,
            memory_items: 10,
            max_message_chars: 32_000,
            max_reply_bytes: 60 * 1024,
            title_chars: 60,
            channel_capacity: 256,
        }
    }
}

/// One user message to answer.
#[derive(Debug, Clone)]
pub struct ChatTurn {
    /// The user.
    pub user_id: String,
    /// The session to continue; a new one is created when `None`.
    pub session_id: Option<Uuid>,
    /// The agent of a new session (a resumed session keeps its own).
    pub agent: AgentKind,
    /// The course of a new course session.
    pub course_id: Option<String>,
    /// The message.
    pub content: String,
    /// Backend to use instead of the default.
    pub backend: Option<String>,
    /// The user's settings.
    pub settings: UserSettings,
    /// Retrieval collections of the knowledge bases this turn draws on,
    /// already checked readable by the user (`kb:<id>`).
    pub knowledge: Vec<String>,
}

impl ChatTurn {
    /// A dashboard turn in a new session.
    pub fn new(user_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            session_id: None,
            agent: AgentKind::Dashboard,
            course_id: None,
            content: content.into(),
            backend: None,
            settings: UserSettings::default(),
            knowledge: Vec::new(),
        }
    }
}

/// A conversation answered without being saved ([`Engine::stream_stateless`]).
#[derive(Debug, Clone)]
pub struct StatelessTurn {
    /// The user (for memory items and tools).
    pub user_id: String,
    /// Which agent answers.
    pub agent: AgentKind,
    /// The course of a course agent.
    pub course_id: Option<String>,
    /// The conversation, oldest first; the last message is the user's question.
    pub messages: Vec<(MessageRole, String)>,
    /// Backend to use instead of the default.
    pub backend: Option<String>,
    /// The user's settings.
    pub settings: UserSettings,
    /// Knowledge-base collections to draw on, already checked readable.
    pub knowledge: Vec<String>,
}

/// A whole answer (`send_message`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatReply {
    /// The answer text.
    pub response: String,
    /// When it was saved.
    pub timestamp: DateTime<Utc>,
    /// Model that answered.
    pub model: String,
    /// The session.
    pub session_id: Uuid,
    /// The saved assistant message.
    pub message_id: Uuid,
    /// Sources the answer is grounded on.
    pub sources: Vec<SourceInfo>,
    /// Token accounting.
    pub usage: Usage,
    /// Why it ended.
    pub finish_reason: FinishReason,
}

/// The conversation engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ConversationStore>,
    memory: Option<Arc<dyn MemoryStore>>,
    backends: BackendRegistry,
    config: EngineConfig,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("backends", &self.inner.backends)
            .field("config", &self.inner.config)
            .finish()
    }
}

/// A turn checked and acknowledged, ready to generate.
struct Prepared {
    /// `None` for a stateless turn (nothing is saved).
    session: Option<ChatSession>,
    backend: Arc<dyn crate::backend::ChatBackend>,
    backend_name: String,
    context: Vec<ChatMessage>,
    query: String,
    ctx: ChatContext,
}

/// What a generation produced.
struct Outcome {
    text: String,
    sources: Vec<SourceInfo>,
    tool_calls: Vec<ToolCallRecord>,
    model: String,
    usage: Usage,
    finish_reason: FinishReason,
    error: Option<AgentError>,
}

impl Engine {
    /// An engine over a history store, optional long-term memory and backends.
    pub fn new(
        store: Arc<dyn ConversationStore>,
        memory: Option<Arc<dyn MemoryStore>>,
        backends: BackendRegistry,
        config: EngineConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                memory,
                backends,
                config,
            }),
        }
    }

    /// The backends.
    pub fn backends(&self) -> &BackendRegistry {
        &self.inner.backends
    }

    /// The limits in force.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Opens a conversation: resumes `resume` (the user's own, live session,
    /// with its recent messages, oldest first) or creates an empty session
    /// for `agent` (a course agent needs `course_id`).
    pub async fn open_session(
        &self,
        user_id: &str,
        agent: AgentKind,
        course_id: Option<&str>,
        resume: Option<Uuid>,
    ) -> Result<(ChatSession, Vec<Message>), AgentError> {
        let store = &self.inner.store;
        match resume {
            Some(id) => {
                let sid = id.to_string();
                let session = store.get_session(user_id, &sid).await?;
                let history = store
                    .recent_messages(user_id, &sid, self.inner.config.history_messages)
                    .await?;
                Ok((session, history))
            }
            None => {
                let course = check_course(agent, course_id)?;
                let session = store
                    .create_session(
                        user_id,
                        NewSession {
                            agent: Some(agent.as_str().to_owned()),
                            course_id: course,
                            ..NewSession::default()
                        },
                    )
                    .await?;
                Ok((session, Vec::new()))
            }
        }
    }

    /// The context window for a new message: the agent's system prompt
    /// with the user's long-term memory items, then as many recent messages
    /// as fit the token budget (oldest dropped first), then the new message.
    /// The system prompt and the new message are always kept.
    pub async fn conversation_context(
        &self,
        user_id: &str,
        session: &ChatSession,
        settings: &UserSettings,
        new_message: &str,
    ) -> Result<Vec<ChatMessage>, AgentError> {
        let config = &self.inner.config;
        let sid = session.id.to_string();
        let (history, memory) = tokio::join!(
            self.inner
                .store
                .recent_messages(user_id, &sid, config.history_messages),
            self.recall(user_id)
        );
        let history = history?;
        let agent = agent_of(session);
        let system = system_prompt(agent, session.course_id.as_deref(), settings);
        Ok(build_context(
            &system,
            &memory,
            &history,
            new_message,
            config.context_tokens,
        ))
    }

    /// Answers a turn as a stream of protocol events, ending with `done` or
    /// `error`. Generation runs in its own task: dropping the stream cancels
    /// it (the partial answer is saved), as does `cancel`.
    pub fn stream_message(
        &self,
        turn: ChatTurn,
        cancel: CancellationToken,
    ) -> impl Stream<Item = ServerEvent> + Send + 'static {
        self.answer(turn, cancel).map(ServerEvent::from)
    }

    /// [`Engine::stream_message`] with the failure kept typed: the stream
    /// ends with `done` or one [`AnswerEvent::Failed`].
    pub fn answer(
        &self,
        turn: ChatTurn,
        cancel: CancellationToken,
    ) -> impl Stream<Item = AnswerEvent> + Send + 'static {
        let engine = self.clone();
        self.spawn_answer(cancel, move |cancel| async move {
            engine.prepare(turn, cancel).await
        })
    }

    /// Answers a turn and returns the whole reply (the reply is saved like
    /// a streamed one). Cancelled answers come back with finish reason
    /// `cancelled`; failures as errors.
    pub async fn send_message(
        &self,
        turn: ChatTurn,
        cancel: CancellationToken,
    ) -> Result<ChatReply, AgentError> {
        let mut events = Box::pin(self.answer(turn, cancel));
        let mut response = String::new();
        let mut sources = Vec::new();
        while let Some(event) = events.next().await {
            let event = match event {
                AnswerEvent::Event(event) => event,
                AnswerEvent::Failed(e) => return Err(e),
            };
            match event {
                ServerEvent::Token { content } => response.push_str(&content),
                ServerEvent::Sources { sources: s } => sources = s,
                ServerEvent::Done {
                    session_id,
                    message_id,
                    model,
                    usage,
                    finish_reason,
                } => {
                    return Ok(ChatReply {
                        response,
                        timestamp: Utc::now(),
                        model,
                        session_id,
                        message_id,
                        sources,
                        usage,
                        finish_reason,
                    });
                }
                _ => {}
            }
        }
        Err(AgentError::Incomplete(
            "the answer ended without a result".into(),
        ))
    }

    /// Answers a conversation the caller gives whole (OpenAI-style: past
    /// messages, the last one from the user) without saving anything. The
    /// agent's system prompt comes first, the caller's system messages
    /// follow it; the window is fitted to the budget like a saved
    /// conversation's. `done` carries nil session and message ids.
    pub fn stream_stateless(
        &self,
        turn: StatelessTurn,
        cancel: CancellationToken,
    ) -> impl Stream<Item = ServerEvent> + Send + 'static {
        self.answer_stateless(turn, cancel).map(ServerEvent::from)
    }

    /// [`Engine::stream_stateless`] with the failure kept typed.
    pub fn answer_stateless(
        &self,
        turn: StatelessTurn,
        cancel: CancellationToken,
    ) -> impl Stream<Item = AnswerEvent> + Send + 'static {
        let engine = self.clone();
        self.spawn_answer(cancel, move |cancel| async move {
            engine.prepare_stateless(turn, cancel).await
        })
    }

    /// Runs `prepare` then the generation in a task of their own, writing
    /// events into a bounded channel; the returned stream reads it. A
    /// reader that goes away cancels the generation (which still saves
    /// what it has).
    fn spawn_answer<P, F>(
        &self,
        cancel: CancellationToken,
        prepare: P,
    ) -> impl Stream<Item = AnswerEvent> + Send + 'static
    where
        P: FnOnce(CancellationToken) -> F + Send + 'static,
        F: std::future::Future<Output = Result<Prepared, AgentError>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(self.inner.config.channel_capacity.max(1));
        let engine = self.clone();
        tokio::spawn(
            async move {
                let watcher = {
                    let tx = tx.clone();
                    let cancel = cancel.clone();
                    tokio::spawn(async move {
                        tx.closed().await;
                        cancel.cancel();
                    })
                };
                match prepare(cancel).await {
                    Err(e) => {
                        let _ = tx.send(AnswerEvent::Failed(e)).await;
                    }
                    Ok(prepared) => engine.generate(prepared, &tx).await,
                }
                watcher.abort();
            }
            .instrument(tracing::Span::current()),
        );
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|event| (event, rx))
        })
    }

    async fn prepare_stateless(
        &self,
        turn: StatelessTurn,
        cancel: CancellationToken,
    ) -> Result<Prepared, AgentError> {
        let config = &self.inner.config;
        let Some((last_role, last)) = turn.messages.last() else {
            return Err(AgentError::InvalidMessage("`messages` is empty".into()));
        };
        if *last_role != MessageRole::User || last.trim().is_empty() {
            return Err(AgentError::InvalidMessage(
                "the last message must be a non-empty user message".into(),
            ));
        }
        let total: usize = turn.messages.iter().map(|(_, c)| c.chars().count()).sum();
        if total > config.max_message_chars * 4 {
            return Err(AgentError::InvalidMessage(format!(
                "the conversation has {total} characters; the limit is {}",
                config.max_message_chars * 4
            )));
        }
        let backend = self.inner.backends.get(turn.backend.as_deref())?;
        let backend_name = backend.name().to_owned();
        let course = check_course(turn.agent, turn.course_id.as_deref())?;
        let mut system = system_prompt(turn.agent, course.as_deref(), &turn.settings);
        let now = Utc::now();
        let mut history = Vec::new();
        let (_, query) = turn.messages[turn.messages.len() - 1].clone();
        for (role, content) in &turn.messages[..turn.messages.len() - 1] {
            match role {
                MessageRole::System => {
                    system.push_str("\n\n");
                    system.push_str(content.trim());
                }
                MessageRole::User | MessageRole::Assistant => history.push(Message {
                    id: Uuid::nil(),
                    session_id: Uuid::nil(),
                    role: *role,
                    content: content.clone(),
                    timestamp: now,
                    model_id: None,
                    tokens_used: None,
                    response_time: None,
                    metadata: Default::default(),
                }),
                MessageRole::Tool => {}
            }
        }
        let memory = self.recall(&turn.user_id).await;
        let mut context = build_context(&system, &memory, &history, &query, config.context_tokens);
        context.pop();
        let ctx = ChatContext {
            user_id: turn.user_id,
            session_id: None,
            agent: turn.agent,
            course_id: course,
            settings: turn.settings,
            knowledge: turn.knowledge,
            cancel,
        };
        Ok(Prepared {
            session: None,
            backend,
            backend_name,
            context,
            query: query.trim().to_owned(),
            ctx,
        })
    }

    async fn recall(&self, user_id: &str) -> Vec<MemoryItem> {
        let Some(memory) = &self.inner.memory else {
            return Vec::new();
        };
        match memory.recall(user_id, self.inner.config.memory_items).await {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "long-term memory unavailable; answering without it");
                Vec::new()
            }
        }
    }

    /// The context window of a session's first message (no history yet).
    fn first_context(
        &self,
        session: &ChatSession,
        settings: &UserSettings,
        memory: &[MemoryItem],
        new_message: &str,
    ) -> Vec<ChatMessage> {
        let system = system_prompt(agent_of(session), session.course_id.as_deref(), settings);
        build_context(
            &system,
            memory,
            &[],
            new_message,
            self.inner.config.context_tokens,
        )
    }

    /// Checks the turn, finds or creates the session, builds the context
    /// and saves the user message.
    async fn prepare(
        &self,
        turn: ChatTurn,
        cancel: CancellationToken,
    ) -> Result<Prepared, AgentError> {
        let config = &self.inner.config;
        let store = &self.inner.store;
        let content = turn.content.trim().to_owned();
        if content.is_empty() {
            return Err(AgentError::InvalidMessage("the message is empty".into()));
        }
        let chars = content.chars().count();
        if chars > config.max_message_chars {
            return Err(AgentError::InvalidMessage(format!(
                "the message has {chars} characters; the limit is {}",
                config.max_message_chars
            )));
        }
        let backend = self.inner.backends.get(turn.backend.as_deref())?;
        let backend_name = backend.name().to_owned();
        let user = turn.user_id.as_str();
        let message = NewMessage::new(MessageRole::User, content.clone());
        let title = || title_from(&content, config.title_chars);
        // A new or empty session has no history to read: its first message
        // is saved in the same write that creates or titles the session,
        // while the long-term memory is read alongside. A session with
        // history has its window built first, then the message saved.
        let (session, mut context) = match turn.session_id {
            None => {
                let course = check_course(turn.agent, turn.course_id.as_deref())?;
                let new = NewSession {
                    title: Some(title()),
                    agent: Some(turn.agent.as_str().to_owned()),
                    course_id: course,
                    ..NewSession::default()
                };
                // The acknowledgement: from here on the message is kept.
                let (created, memory) = tokio::join!(
                    store.create_session_with_message(user, new, message),
                    self.recall(user)
                );
                let (session, _) = created?;
                let context = self.first_context(&session, &turn.settings, &memory, &content);
                (session, context)
            }
            Some(id) => {
                let session = store.get_session(user, &id.to_string()).await?;
                let sid = session.id.to_string();
                if session.message_count == 0 {
                    // A session opened empty (WebSocket `init`) is titled by its first message.
                    let (saved, memory) = tokio::join!(
                        store.save_first_message(user, &sid, title(), message),
                        self.recall(user)
                    );
                    saved?;
                    let context = self.first_context(&session, &turn.settings, &memory, &content);
                    (session, context)
                } else {
                    let context = self
                        .conversation_context(user, &session, &turn.settings, &content)
                        .await?;
                    // The acknowledgement: from here on the message is kept.
                    store.save_message(user, &sid, message).await?;
                    (session, context)
                }
            }
        };
        context.pop(); // the new message: the backend adds it
        let ctx = ChatContext {
            user_id: turn.user_id.clone(),
            session_id: Some(session.id),
            agent: agent_of(&session),
            course_id: session.course_id.clone(),
            settings: turn.settings,
            knowledge: turn.knowledge,
            cancel,
        };
        Ok(Prepared {
            session: Some(session),
            backend,
            backend_name,
            context,
            query: content,
            ctx,
        })
    }

    /// Runs the backend, forwards its events and saves the answer.
    async fn generate(&self, prepared: Prepared, tx: &mpsc::Sender<AnswerEvent>) {
        let started = Instant::now();
        let Prepared {
            session,
            backend,
            backend_name,
            context,
            query,
            ctx,
        } = prepared;
        let mut outcome = Outcome {
            text: String::new(),
            sources: Vec::new(),
            tool_calls: Vec::new(),
            model: ctx
                .settings
                .preferred_model
                .clone()
                .or_else(|| session.as_ref().map(|s| s.model_id.clone()))
                .unwrap_or_default(),
            usage: Usage::default(),
            finish_reason: FinishReason::Error,
            error: None,
        };
        let cancel = ctx.cancel.clone();
        let mut events = backend.stream(query, context, ctx);
        let mut ended = false;
        while let Some(event) = events.next().await {
            let forward = match event {
                ChatEvent::Stage { stage, content } => Some(ServerEvent::Stage {
                    stage: stage.as_str().to_owned(),
                    content,
                }),
                ChatEvent::Token(t) => {
                    outcome.text.push_str(&t);
                    Some(ServerEvent::Token { content: t })
                }
                ChatEvent::ToolCall {
                    id,
                    name,
                    arguments,
                } => {
                    outcome.tool_calls.push(ToolCallRecord {
                        id: id.clone(),
                        name: name.clone(),
                        arguments: arguments.clone(),
                        result: None,
                        is_error: None,
                    });
                    Some(ServerEvent::ToolCall {
                        id,
                        name,
                        arguments,
                    })
                }
                ChatEvent::ToolResult {
                    id,
                    name,
                    content,
                    is_error,
                } => {
                    if let Some(call) = outcome.tool_calls.iter_mut().rev().find(|c| c.id == id) {
                        call.result = Some(truncate(&content, 500));
                        call.is_error = Some(is_error);
                    }
                    Some(ServerEvent::ToolResult {
                        id,
                        name,
                        content,
                        is_error,
                    })
                }
                ChatEvent::Sources(sources) => {
                    outcome.sources = sources.clone();
                    Some(ServerEvent::Sources { sources })
                }
                ChatEvent::Finished {
                    model,
                    usage,
                    finish_reason,
                } => {
                    outcome.model = model;
                    outcome.usage = usage;
                    outcome.finish_reason = finish_reason;
                    ended = true;
                    None
                }
                ChatEvent::Error(e) => {
                    outcome.error = Some(e);
                    outcome.finish_reason = FinishReason::Error;
                    ended = true;
                    None
                }
            };
            if let Some(event) = forward {
                // A closed channel means the client left: the watcher cancels,
                // and the backend ends soon with what it has.
                let _ = tx.send(AnswerEvent::Event(event)).await;
            }
            if ended {
                break;
            }
        }
        drop(events);
        if !ended {
            outcome.error = Some(AgentError::Incomplete(format!(
                "backend `{backend_name}` ended without a result"
            )));
        }
        if outcome.error.is_none() && cancel.is_cancelled() {
            outcome.finish_reason = FinishReason::Cancelled;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let saved = match &session {
            Some(session) => self
                .save_reply(session, &backend_name, &outcome, elapsed)
                .await
                .map(|m| (session.id, m.id)),
            None => Ok((Uuid::nil(), Uuid::nil())),
        };
        let last = match (outcome.error, saved) {
            (Some(e), _) | (None, Err(e)) => AnswerEvent::Failed(e),
            (None, Ok((session_id, message_id))) => AnswerEvent::Event(ServerEvent::Done {
                session_id,
                message_id,
                model: outcome.model,
                usage: outcome.usage,
                finish_reason: outcome.finish_reason,
            }),
        };
        let _ = tx.send(last).await;
    }

    /// Saves the assistant message of a finished, cancelled or failed answer.
    async fn save_reply(
        &self,
        session: &ChatSession,
        backend_name: &str,
        outcome: &Outcome,
        elapsed: f64,
    ) -> Result<Message, AgentError> {
        let config = &self.inner.config;
        let mut text = outcome.text.clone();
        let mut truncated = false;
        if text.len() > config.max_reply_bytes {
            let mut cut = config.max_reply_bytes;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            truncated = true;
        }
        let empty = text.trim().is_empty();
        if empty {
            // History keeps no empty messages: record that nothing came.
            text = match outcome.finish_reason {
                FinishReason::Cancelled => "[cancelled before any reply]".into(),
                _ => "[no reply]".into(),
            };
        }
        let mut metadata = ReplyMetadata {
            finish_reason: outcome.finish_reason,
            backend: backend_name,
            agent: &session.agent,
            usage: outcome.usage,
            sources: outcome
                .sources
                .iter()
                .map(|s| SourceNote {
                    file_path: &s.file_path,
                    score: s.score,
                    content: Some(truncate(&s.content, 300)),
                })
                .collect(),
            tool_calls: outcome.tool_calls.clone(),
            course_id: session.course_id.as_deref(),
            error: outcome.error.as_ref().map(|e| ErrorNote {
                code: e.event_code(),
                message: truncate(&e.event_message(), 500),
            }),
            truncated,
            empty,
            metadata_trimmed: false,
        };
        metadata.shrink();
        let message = NewMessage {
            role: MessageRole::Assistant,
            content: text,
            model_id: Some(outcome.model.clone()),
            // Bounded like history's validation (a provider may report nonsense).
            tokens_used: Some(i64::from(outcome.usage.total_tokens).min(1_000_000_000)),
            response_time: Some(elapsed.min(86_400.0)),
            metadata: Some(serde_json::to_value(&metadata).map_err(|e| {
                AgentError::Incomplete(format!("reply metadata did not serialise: {e}"))
            })?),
        };
        Ok(self
            .inner
            .store
            .save_message(&session.user_id, &session.id.to_string(), message)
            .await?)
    }
}

/// What an assistant message's metadata records, stored as JSON with it.
#[derive(Serialize)]
struct ReplyMetadata<'a> {
    finish_reason: FinishReason,
    backend: &'a str,
    agent: &'a str,
    usage: Usage,
    sources: Vec<SourceNote<'a>>,
    tool_calls: Vec<ToolCallRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    course_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorNote>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    empty: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    metadata_trimmed: bool,
}

/// A source as recorded with a reply: where, how relevant, the passage's start.
#[derive(Serialize)]
struct SourceNote<'a> {
    file_path: &'a str,
    score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
}

/// The error a reply ended with.
#[derive(Serialize)]
struct ErrorNote {
    code: &'static str,
    message: String,
}

impl ReplyMetadata<'_> {
    /// Most bytes of serialised metadata, well under the history's 16 KiB.
    const LIMIT: usize = 12 * 1024;

    /// Serialised length (0 if it cannot be serialised: nothing to shrink).
    fn size(&self) -> usize {
        serde_json::to_string(self).map_or(0, |s| s.len())
    }

    /// Keeps the metadata under [`Self::LIMIT`]: tool results and
    /// arguments are shortened first, then source passages dropped, then
    /// the tool calls (marked `metadata_trimmed`).
    fn shrink(&mut self) {
        if self.size() <= Self::LIMIT {
            return;
        }
        for call in &mut self.tool_calls {
            if let Some(r) = &call.result {
                call.result = Some(truncate(r, 80));
            }
            let text = call.arguments.to_string();
            if text.len() > 200 {
                call.arguments = Value::String(truncate(&text, 200));
            }
        }
        if self.size() <= Self::LIMIT {
            return;
        }
        for s in &mut self.sources {
            s.content = None;
        }
        if self.size() > Self::LIMIT {
            self.tool_calls.clear();
            self.metadata_trimmed = true;
        }
    }
}

/// The agent a session was created for.
fn agent_of(session: &ChatSession) -> AgentKind {
    match session.agent.as_str() {
        "course" => AgentKind::Course,
        _ => AgentKind::Dashboard,
    }
}

/// A course agent needs a course id; the dashboard takes none.
fn check_course(agent: AgentKind, course_id: Option<&str>) -> Result<Option<String>, AgentError> {
    let course = course_id.map(str::trim).filter(|c| !c.is_empty());
    match (agent, course) {
        (AgentKind::Course, None) => Err(AgentError::MissingCourse),
        (AgentKind::Course, Some(c)) => Ok(Some(c.to_owned())),
        (AgentKind::Dashboard, _) => Ok(None),
    }
}

/// A session title from its first message: the first line, whitespace
/// collapsed, cut at a word boundary to `max` characters.
pub fn title_from(message: &str, max: usize) -> String {
    let line = message.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut title = String::new();
    for word in words {
        let extra = usize::from(!title.is_empty());
        if title.chars().count() + extra + word.chars().count() > max {
            if title.is_empty() {
                title = word.chars().take(max.saturating_sub(1)).collect();
            }
            title.push('…');
            return title;
        }
        if extra == 1 {
            title.push(' ');
        }
        title.push_str(word);
    }
    if title.is_empty() {
        "New chat".into()
    } else {
        title
    }
}

/// Tokens a message costs in the window (text plus a small per-message overhead).
fn message_tokens(text: &str) -> usize {
    count_tokens(text) + 4
}

/// Fits the window: system prompt (+ memory) and the new message always;
/// past user/assistant messages newest first while they fit; returned in
/// order with the new message last.
pub fn build_context(
    system: &str,
    memory: &[MemoryItem],
    history: &[Message],
    new_message: &str,
    budget_tokens: usize,
) -> Vec<ChatMessage> {
    let mut system = system.to_owned();
    if !memory.is_empty() {
        system.push_str("\n\nWhat you know about the user from earlier conversations:");
        for item in memory {
            system.push_str("\n- ");
            system.push_str(item.content.trim());
        }
    }
    let mut used = message_tokens(&system) + message_tokens(new_message);
    let mut kept: Vec<ChatMessage> = Vec::new();
    for message in history.iter().rev() {
        let chat = match message.role {
            MessageRole::User => ChatMessage::user(message.content.clone()),
            MessageRole::Assistant if !is_placeholder(message) => {
                ChatMessage::assistant(message.content.clone())
            }
            _ => continue,
        };
        let cost = message_tokens(&message.content);
        if used + cost > budget_tokens {
            break;
        }
        used += cost;
        kept.push(chat);
    }
    kept.reverse();
    let mut out = Vec::with_capacity(kept.len() + 2);
    out.push(ChatMessage::system(system));
    out.extend(kept);
    out.push(ChatMessage::user(new_message));
    out
}

/// An assistant message recorded for a reply that produced no text.
fn is_placeholder(message: &Message) -> bool {
    message.metadata.get("empty") == Some(&Value::Bool(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata<'a>(sources: Vec<SourceNote<'a>>, calls: Vec<ToolCallRecord>) -> ReplyMetadata<'a> {
        ReplyMetadata {
            finish_reason: FinishReason::Stop,
            backend: "agent",
            agent: "dashboard",
            usage: Usage::new(1, 2),
            sources,
            tool_calls: calls,
            course_id: None,
            error: None,
            truncated: false,
            empty: false,
            metadata_trimmed: false,
        }
    }

    fn call(result_len: usize) -> ToolCallRecord {
        ToolCallRecord {
            id: "c1".into(),
            name: "search_knowledge".into(),
            arguments: serde_json::json!({"query": "q".repeat(300)}),
            result: Some("r".repeat(result_len)),
            is_error: Some(false),
        }
    }

    #[test]
    fn small_metadata_is_kept_whole_and_omits_unset_flags() {
        let mut m = metadata(Vec::new(), vec![call(10)]);
        m.shrink();
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["tool_calls"][0]["result"], "r".repeat(10));
        assert_eq!(v["usage"]["total_tokens"], 3);
        for absent in [
            "course_id",
            "error",
            "truncated",
            "empty",
            "metadata_trimmed",
        ] {
            assert!(v.get(absent).is_none(), "{absent} present");
        }
    }

    #[test]
    fn large_metadata_shrinks_in_order_under_the_limit() {
        let source = |i: usize| SourceNote {
            file_path: "doc.md",
            score: 0.5,
            content: Some(format!("{i}").repeat(300)),
        };
        // Long tool results alone: results and arguments are shortened.
        let mut m = metadata(Vec::new(), (0..20).map(|_| call(2_000)).collect());
        m.shrink();
        assert!(m.size() <= ReplyMetadata::LIMIT);
        assert!(!m.metadata_trimmed);
        assert!(m.tool_calls[0].result.as_ref().unwrap().chars().count() <= 81);
        assert!(m.tool_calls[0].arguments.is_string());
        // Many sources too: their passages go.
        let mut m = metadata((0..60).map(source).collect(), vec![call(2_000)]);
        m.shrink();
        assert!(m.size() <= ReplyMetadata::LIMIT);
        assert!(m.sources.iter().all(|s| s.content.is_none()));
        assert_eq!(m.tool_calls.len(), 1);
        // Still too large: the tool calls go, and that is recorded.
        let mut m = metadata(Vec::new(), (0..400).map(|_| call(2_000)).collect());
        m.shrink();
        assert!(m.size() <= ReplyMetadata::LIMIT);
        assert!(m.tool_calls.is_empty());
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["metadata_trimmed"], true);
    }
}
