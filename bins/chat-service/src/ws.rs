//! `GET /ws/chat`: the chat protocol over WebSocket (SPEC.md).
//!
//! One task per connection multiplexes the client's frames, the current
//! answer's events, heartbeat pings and shutdown. One answer at a time: a
//! `chat_message` while one streams gets `error` / `busy`, and so does one
//! over the user's cap on concurrent generations across every socket and
//! stream ([`crate::generations`]). Malformed frames
//! get an `error` event and the connection lives on; a frame over the size
//! limit gets `error` / `message_too_large` and close code 1009.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Session};
use confab_agents::{ChatTurn, UserSettings};
use confab_models::{AgentKind, ClientMessage, ServerEvent};
use confab_web::{ApiError, Caller};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::chat::{ActiveGuard, ChatState, settings_of};

/// Query of `/ws/chat`.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    /// Chat backend for this connection instead of the default.
    #[serde(default)]
    pub backend: Option<String>,
}

/// Upgrades to a WebSocket and runs the conversation.
pub async fn chat_ws(
    app: web::Data<crate::state::AppState>,
    caller: Caller,
    req: HttpRequest,
    query: web::Query<WsQuery>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let state = app.chat()?;
    state.check_open()?;
    let backend = query.into_inner().backend;
    if let Some(b) = &backend {
        state.engine.backends().get(Some(b))?;
    }
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|e| ApiError::bad_request(format!("not a WebSocket upgrade: {e}")))?;
    let stream = stream
        .max_frame_size(state.limits.max_frame_bytes)
        .aggregate_continuations()
        .max_continuation_size(state.limits.max_frame_bytes);
    let conn = Connection::new(state, &app, caller, &req, backend);
    // The connection's logs carry the upgrade request's id.
    actix_web::rt::spawn(tracing::Instrument::instrument(
        conn.run(session, stream),
        tracing::Span::current(),
    ));
    Ok(response)
}

/// The answer being streamed on a connection.
struct Answer {
    events: Pin<Box<dyn Stream<Item = ServerEvent> + Send>>,
    cancel: CancellationToken,
    _guard: ActiveGuard,
}

/// One WebSocket conversation.
struct Connection {
    state: ChatState,
    /// Knowledge bases (to check `init`'s `knowledge` ids).
    kb: Option<confab_rag::KnowledgeService>,
    admin: bool,
    /// Collections of the bases named by `init`, checked readable.
    knowledge: Vec<String>,
    user_id: String,
    settings: UserSettings,
    backend: Option<String>,
    session: Option<Uuid>,
    agent: AgentKind,
    answer: Option<Answer>,
}

/// What ends a connection's loop.
enum Exit {
    Closed,
    Close(CloseReason),
}

impl Connection {
    /// A new conversation of `caller` (no session, no answer yet).
    fn new(
        state: &ChatState,
        app: &crate::state::AppState,
        caller: Caller,
        req: &HttpRequest,
        backend: Option<String>,
    ) -> Self {
        Self {
            state: state.clone(),
            kb: app.knowledge.as_ref().map(|k| k.service.clone()),
            admin: caller.is_admin(),
            knowledge: Vec::new(),
            user_id: caller.user_id,
            settings: settings_of(req),
            backend,
            session: None,
            agent: AgentKind::Dashboard,
            answer: None,
        }
    }

    async fn run(mut self, mut session: Session, mut stream: actix_ws::AggregatedMessageStream) {
        self.state.connections.fetch_add(1, Ordering::SeqCst);
        let limits = self.state.limits.clone();
        let mut heartbeat = tokio::time::interval(limits.heartbeat);
        heartbeat.tick().await;
        let mut last_seen = Instant::now();
        let mut last_activity = Instant::now();
        let draining = self.state.draining.clone();
        let exit = loop {
            let generating = self.answer.is_some();
            let next_event = async {
                match self.answer.as_mut() {
                    Some(a) => a.events.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                frame = stream.recv() => {
                    last_seen = Instant::now();
                    match frame {
                        None => break Exit::Closed,
                        Some(Err(e)) => {
                            let too_large = matches!(e, actix_ws::ProtocolError::Overflow);
                            let (code, message, close) = if too_large {
                                ("message_too_large", format!("frames are limited to {} bytes", limits.max_frame_bytes), CloseCode::Size)
                            } else {
                                ("protocol_error", e.to_string(), CloseCode::Protocol)
                            };
                            let _ = send(&mut session, &ServerEvent::error(code, message.clone())).await;
                            break Exit::Close(CloseReason { code: close, description: Some(message) });
                        }
                        Some(Ok(AggregatedMessage::Text(text))) => {
                            last_activity = Instant::now();
                            // Boxed: its state (session open, knowledge checks) would
                            // otherwise sit in every idle connection's task (issue 18:
                            // the task was 3.5 KiB, most of it this).
                            if Box::pin(self.on_text(&mut session, &text)).await.is_err() {
                                break Exit::Closed;
                            }
                        }
                        Some(Ok(AggregatedMessage::Binary(_))) => {
                            let e = ServerEvent::error("bad_frame", "frames must be JSON text");
                            if send(&mut session, &e).await.is_err() {
                                break Exit::Closed;
                            }
                        }
                        Some(Ok(AggregatedMessage::Ping(bytes))) => {
                            if session.pong(&bytes).await.is_err() {
                                break Exit::Closed;
                            }
                        }
                        Some(Ok(AggregatedMessage::Pong(_))) => {}
                        Some(Ok(AggregatedMessage::Close(reason))) => break Exit::Close(reason.unwrap_or(CloseReason { code: CloseCode::Normal, description: None })),
                    }
                }
                event = next_event => {
                    match event {
                        Some(event) => {
                            let last = matches!(event, ServerEvent::Done { .. } | ServerEvent::Error { .. });
                            if last {
                                if let ServerEvent::Done { session_id, .. } = &event {
                                    self.session = Some(*session_id);
                                }
                                self.answer = None;
                                last_activity = Instant::now();
                            }
                            if send(&mut session, &event).await.is_err() {
                                break Exit::Closed;
                            }
                            if last && draining.is_cancelled() {
                                break Exit::Close(CloseReason { code: CloseCode::Away, description: Some("server shutting down".into()) });
                            }
                        }
                        None => self.answer = None,
                    }
                }
                _ = heartbeat.tick() => {
                    if last_seen.elapsed() > limits.heartbeat * 3 {
                        break Exit::Close(CloseReason { code: CloseCode::Away, description: Some("no answer to pings".into()) });
                    }
                    if !generating && last_activity.elapsed() > limits.idle_timeout {
                        break Exit::Close(CloseReason { code: CloseCode::Normal, description: Some("idle timeout".into()) });
                    }
                    if session.ping(b"").await.is_err() {
                        break Exit::Closed;
                    }
                }
                _ = draining.cancelled(), if !generating => {
                    break Exit::Close(CloseReason { code: CloseCode::Away, description: Some("server shutting down".into()) });
                }
            }
        };
        // A client that left mid-answer cancels it; the engine saves what was generated.
        if let Some(answer) = self.answer.take() {
            answer.cancel.cancel();
        }
        if let Exit::Close(reason) = exit {
            let _ = session.close(Some(reason)).await;
        }
        self.state.connections.fetch_sub(1, Ordering::SeqCst);
    }

    /// Handles one text frame; `Err` when the socket is gone.
    async fn on_text(&mut self, session: &mut Session, text: &str) -> Result<(), actix_ws::Closed> {
        let message = match ClientMessage::parse(text) {
            Ok(m) => m,
            Err(e) => return send(session, &ServerEvent::error("bad_frame", e.to_string())).await,
        };
        match message {
            ClientMessage::Ping => send(session, &ServerEvent::Pong).await,
            ClientMessage::Cancel => match &self.answer {
                Some(a) => {
                    a.cancel.cancel();
                    Ok(())
                }
                None => {
                    send(
                        session,
                        &ServerEvent::error("not_generating", "nothing to cancel"),
                    )
                    .await
                }
            },
            ClientMessage::Init {
                agent,
                course_id,
                session_id,
                knowledge,
            } => {
                if self.answer.is_some() {
                    return send(session, &busy()).await;
                }
                match self.check_knowledge(&knowledge).await {
                    Ok(collections) => self.knowledge = collections,
                    Err(e) => return send(session, &ServerEvent::error(e.code, e.message)).await,
                }
                self.open(session, agent, course_id, session_id).await
            }
            ClientMessage::ChatMessage { content } => {
                if self.answer.is_some() {
                    return send(session, &busy()).await;
                }
                if self.state.draining.is_cancelled() {
                    return send(
                        session,
                        &ServerEvent::error(
                            "shutting_down",
                            "the service is shutting down; reconnect shortly",
                        ),
                    )
                    .await;
                }
                if self.session.is_none() {
                    // The bare seed form: an implicit dashboard session.
                    self.open(session, AgentKind::Dashboard, None, None).await?;
                    if self.session.is_none() {
                        return Ok(());
                    }
                }
                let turn = ChatTurn {
                    user_id: self.user_id.clone(),
                    session_id: self.session,
                    agent: self.agent,
                    course_id: None,
                    content,
                    backend: self.backend.clone(),
                    settings: self.settings.clone(),
                    knowledge: self.knowledge.clone(),
                };
                // The user's cap over all their sockets and streams.
                let guard = match self.state.start_generation(&self.user_id).await {
                    Ok(guard) => guard,
                    Err(e) => return send(session, &ServerEvent::error(e.code, e.message)).await,
                };
                let cancel = self.state.answer_token();
                let events = crate::metrics::observe(
                    &self.state.metrics,
                    self.state.engine.stream_message(turn, cancel.clone()),
                );
                self.answer = Some(Answer {
                    events: Box::pin(events),
                    cancel,
                    _guard: guard,
                });
                Ok(())
            }
        }
    }

    /// The collections of the knowledge bases `init` names (an error when
    /// one is not readable by this user).
    async fn check_knowledge(&self, ids: &[Uuid]) -> Result<Vec<String>, ApiError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let Some(kb) = &self.kb else {
            return Err(ApiError::unavailable(
                "knowledge bases are not configured on this instance",
            ));
        };
        let actor = confab_rag::knowledge::Actor::new(self.user_id.clone(), self.admin);
        kb.readable_collections(&actor, ids)
            .await
            .map_err(ApiError::from)
    }

    /// Opens (or resumes) the connection's session and sends `ready`.
    async fn open(
        &mut self,
        session: &mut Session,
        agent: AgentKind,
        course_id: Option<String>,
        resume: Option<Uuid>,
    ) -> Result<(), actix_ws::Closed> {
        let opened = self
            .state
            .engine
            .open_session(&self.user_id, agent, course_id.as_deref(), resume)
            .await;
        match opened {
            Ok((chat, history)) => {
                self.session = Some(chat.id);
                self.agent = if chat.agent == "course" {
                    AgentKind::Course
                } else {
                    AgentKind::Dashboard
                };
                let backend = self
                    .backend
                    .clone()
                    .unwrap_or_else(|| self.state.engine.backends().default_name().to_owned());
                send(
                    session,
                    &ServerEvent::Ready {
                        session_id: chat.id,
                        agent: chat.agent,
                        backend,
                        history,
                    },
                )
                .await
            }
            Err(e) => send(session, &confab_agents::AnswerEvent::Failed(e).into()).await,
        }
    }
}

fn busy() -> ServerEvent {
    ServerEvent::error(
        "busy",
        "an answer is still streaming; wait for `done` or send `cancel`",
    )
}

async fn send(session: &mut Session, event: &ServerEvent) -> Result<(), actix_ws::Closed> {
    match serde_json::to_string(event) {
        Ok(json) => session.text(json).await,
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise an event");
            Ok(())
        }
    }
}
