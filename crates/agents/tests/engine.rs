//! The conversation engine end to end: the `simple` and `agent` backends
//! against the fake LLM server over real HTTP, the real history on SQLite
//! and PostgreSQL, exact event sequences and what was persisted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Fixture, fast, slow};
use confab_agents::store::ConversationStore;
use confab_agents::tools::{Tool, ToolContext, ToolError, ToolOutput};
use confab_agents::{AgentError, BackendConfig, ChatTurn, Engine, UserSettings};
use confab_error::DomainError;
use confab_llm::BoxFuture;
use confab_models::{AgentKind, MessageQuery, MessageRole, ServerEvent};
use confab_store::Db;
use futures_util::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A compact, comparable form of an event.
fn label(e: &ServerEvent) -> String {
    match e {
        ServerEvent::Stage { stage, .. } => format!("stage:{stage}"),
        ServerEvent::Token { content } => format!("token:{content}"),
        ServerEvent::ToolCall { name, .. } => format!("tool_call:{name}"),
        ServerEvent::ToolResult { name, is_error, .. } => {
            format!(
                "tool_result:{name}:{}",
                if *is_error { "error" } else { "ok" }
            )
        }
        ServerEvent::Sources { sources } => format!("sources:{}", sources.len()),
        ServerEvent::Done { finish_reason, .. } => {
            format!(
                "done:{}",
                serde_json::to_value(finish_reason)
                    .unwrap()
                    .as_str()
                    .unwrap()
            )
        }
        ServerEvent::Error { code, .. } => format!("error:{code}"),
        other => format!("{other:?}"),
    }
}

async fn run(engine: &Engine, turn: ChatTurn) -> Vec<ServerEvent> {
    engine
        .stream_message(turn, CancellationToken::new())
        .collect()
        .await
}

fn labels(events: &[ServerEvent]) -> Vec<String> {
    events.iter().map(label).collect()
}

fn done_ids(events: &[ServerEvent]) -> (uuid::Uuid, uuid::Uuid) {
    match events.last() {
        Some(ServerEvent::Done {
            session_id,
            message_id,
            ..
        }) => (*session_id, *message_id),
        other => panic!("expected done last, got {other:?}"),
    }
}

/// The session's messages oldest first, with its message_count.
async fn persisted(
    fx: &Fixture,
    user: &str,
    session: uuid::Uuid,
) -> (i64, Vec<confab_models::Message>) {
    let s = fx
        .store
        .sessions()
        .get(user, &session.to_string())
        .await
        .unwrap();
    let mut page = fx
        .store
        .history()
        .get_session_messages(user, &session.to_string(), MessageQuery::default())
        .await
        .unwrap();
    page.items.reverse();
    (s.message_count, page.items)
}

fn meta<'a>(m: &'a confab_models::Message, key: &str) -> &'a Value {
    m.metadata.get(key).unwrap_or(&Value::Null)
}

async fn simple_echo_streams_and_persists(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    let engine = fx.engine("echo", "simple");
    let events = run(&engine, ChatTurn::new("alice", "Who owns a value in Rust?")).await;
    assert_eq!(
        labels(&events),
        [
            "stage:analysis",
            "stage:retrieval",
            "stage:generation",
            "token:Who",
            "token: owns",
            "token: a",
            "token: value",
            "token: in",
            "token: Rust?",
            // Both sections of the ownership lesson (they share no text)
            // and the sourdough one.
            "sources:3",
            "done:stop",
        ]
    );
    let ServerEvent::Sources { sources } = &events[9] else {
        unreachable!()
    };
    assert_eq!(
        sources[0].file_path, "rust/ownership.md",
        "best source first"
    );
    let (sid, mid) = done_ids(&events);
    let ServerEvent::Done { usage, model, .. } = events.last().unwrap() else {
        unreachable!()
    };
    assert_eq!(model, "echo");
    assert!(usage.total_tokens > 0);
    let (count, messages) = persisted(&fx, "alice", sid).await;
    assert_eq!(count, 2);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].role, MessageRole::User);
    assert_eq!(messages[0].content, "Who owns a value in Rust?");
    assert_eq!(messages[1].role, MessageRole::Assistant);
    assert_eq!(messages[1].id, mid);
    assert_eq!(messages[1].content, "Who owns a value in Rust?");
    assert_eq!(messages[1].model_id.as_deref(), Some("echo"));
    assert_eq!(messages[1].tokens_used, Some(i64::from(usage.total_tokens)));
    assert!(messages[1].response_time.unwrap() >= 0.0);
    assert_eq!(meta(&messages[1], "finish_reason"), "stop");
    assert_eq!(meta(&messages[1], "backend"), "simple");
    assert_eq!(meta(&messages[1], "sources").as_array().unwrap().len(), 3);
    // The session is titled from its first message.
    let session = fx
        .store
        .sessions()
        .get("alice", &sid.to_string())
        .await
        .unwrap();
    assert_eq!(session.title, "Who owns a value in Rust?");
    // The model got the sources as a system message before the question.
    let request = fx.llm.requests().last().unwrap().body.clone();
    let msgs = request["messages"].as_array().unwrap();
    assert_eq!(msgs.first().unwrap()["role"], "system");
    let sources_msg = &msgs[msgs.len() - 2];
    assert_eq!(sources_msg["role"], "system");
    assert!(
        sources_msg["content"]
            .as_str()
            .unwrap()
            .contains("[1] rust/ownership.md")
    );
    assert_eq!(msgs.last().unwrap()["content"], "Who owns a value in Rust?");

    // A second turn in the same session sees the first one.
    let mut turn = ChatTurn::new("alice", "And borrowing?");
    turn.session_id = Some(sid);
    let events = run(&engine, turn).await;
    assert_eq!(label(events.last().unwrap()), "done:stop");
    let request = fx.llm.requests().last().unwrap().body.clone();
    let contents: Vec<&str> = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or(""))
        .collect();
    assert!(contents.contains(&"Who owns a value in Rust?"));
    let (count, _) = persisted(&fx, "alice", sid).await;
    assert_eq!(count, 4);
}

async fn simple_error_500_saves_and_ends_with_error(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    let engine = fx.engine("error_500", "simple");
    let events = run(&engine, ChatTurn::new("bob", "hello")).await;
    assert_eq!(
        labels(&events),
        [
            "stage:analysis",
            "stage:retrieval",
            "stage:generation",
            "error:provider_unavailable"
        ]
    );
    let sessions = fx
        .store
        .sessions()
        .list_user_sessions("bob", Default::default())
        .await
        .unwrap();
    let sid = sessions.items[0].id;
    let (count, messages) = persisted(&fx, "bob", sid).await;
    assert_eq!(count, 2, "the user message is kept, the failure recorded");
    assert_eq!(messages[0].content, "hello");
    assert_eq!(meta(&messages[1], "finish_reason"), "error");
    assert_eq!(meta(&messages[1], "error")["code"], "provider_unavailable");
    assert_eq!(meta(&messages[1], "empty"), true);
}

/// A provider's 429 (`error_429`: always, `Retry-After: 7`; the fixture's
/// provider does not retry) ends the answer with `rate_limited` carrying
/// the wait, through both backends and `send_message`; the user message is
/// kept; the wait is not part of the event's wire JSON.
async fn provider_rate_limit_carries_retry_after(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    for (i, backend) in ["simple", "agent"].into_iter().enumerate() {
        let engine = fx.engine("error_429", backend);
        let user = format!("rita{i}");
        let events = run(&engine, ChatTurn::new(&user, "hello")).await;
        let last = events.last().unwrap();
        match last {
            ServerEvent::Error {
                code,
                retry_after_secs,
                ..
            } => {
                assert_eq!(code, "rate_limited", "{backend}");
                assert_eq!(*retry_after_secs, Some(7), "{backend}");
            }
            other => panic!("{backend}: expected an error, got {other:?}"),
        }
        let wire = serde_json::to_value(last).unwrap();
        assert_eq!(wire["type"], "error");
        assert_eq!(wire.as_object().unwrap().len(), 3, "{wire}");
        let sessions = fx
            .store
            .sessions()
            .list_user_sessions(&user, Default::default())
            .await
            .unwrap();
        let (count, messages) = persisted(&fx, &user, sessions.items[0].id).await;
        assert_eq!(count, 2, "{backend}: the user message is kept");
        assert_eq!(messages[0].content, "hello");
        assert_eq!(meta(&messages[1], "error")["code"], "rate_limited");

        let err = engine
            .send_message(ChatTurn::new(&user, "again"), CancellationToken::new())
            .await
            .unwrap_err();
        match &err {
            AgentError::Generation(e) => {
                assert_eq!(e.code(), "rate_limited", "{backend}");
                assert_eq!(err.retry_after_secs(), Some(7), "{backend}");
            }
            other => panic!("{backend}: expected a generation error, got {other:?}"),
        }
    }
    // A failure without a wait carries none.
    let engine = fx.engine("error_500", "simple");
    let err = engine
        .send_message(ChatTurn::new("rita", "x"), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::Generation(_)), "{err:?}");
    assert_eq!(err.retry_after_secs(), None, "{err:?}");
}

async fn simple_drop_mid_stream_keeps_partial(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    let engine = fx.engine("drop_mid_stream", "simple");
    let events = run(&engine, ChatTurn::new("bob", "one two three four five")).await;
    let l = labels(&events);
    assert_eq!(
        l,
        [
            "stage:analysis",
            "stage:retrieval",
            "stage:generation",
            "token:one",
            "token: two",
            "token: three",
            l.last().unwrap().as_str(),
        ]
    );
    assert!(l.last().unwrap().starts_with("error:provider_"), "{l:?}");
    let sessions = fx
        .store
        .sessions()
        .list_user_sessions("bob", Default::default())
        .await
        .unwrap();
    let (count, messages) = persisted(&fx, "bob", sessions.items[0].id).await;
    assert_eq!(count, 2);
    assert_eq!(messages[1].content, "one two three");
    assert_eq!(meta(&messages[1], "finish_reason"), "error");
}

async fn slow_cancel_keeps_partial_and_ends_with_done(db: Db) {
    let fx = Fixture::new(db, slow(200, Duration::from_millis(20))).await;
    let engine = fx.engine("slow", "simple");
    let cancel = CancellationToken::new();
    let mut stream = Box::pin(engine.stream_message(ChatTurn::new("carol", "go"), cancel.clone()));
    let mut events = Vec::new();
    let mut tokens = 0;
    while let Some(e) = stream.next().await {
        if matches!(e, ServerEvent::Token { .. }) {
            tokens += 1;
            if tokens == 5 {
                cancel.cancel();
            }
        }
        events.push(e);
    }
    let ServerEvent::Done {
        finish_reason,
        session_id,
        message_id,
        ..
    } = events.last().unwrap().clone()
    else {
        panic!("expected done, got {:?}", events.last())
    };
    assert_eq!(finish_reason, confab_models::FinishReason::Cancelled);
    let streamed: String = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Token { content } => Some(content.as_str()),
            _ => None,
        })
        .collect();
    assert!(tokens < 200, "generation stopped early ({tokens} tokens)");
    let (count, messages) = persisted(&fx, "carol", session_id).await;
    assert_eq!(count, 2);
    assert_eq!(messages[1].id, message_id);
    assert_eq!(
        messages[1].content, streamed,
        "what was streamed is what was saved"
    );
    assert_eq!(meta(&messages[1], "finish_reason"), "cancelled");
    assert!(
        fx.llm.wait_for_disconnect(Duration::from_secs(5)).await,
        "the upstream request was closed"
    );
}

async fn dropped_client_cancels_and_saves(db: Db) {
    let fx = Fixture::new(db, slow(500, Duration::from_millis(10))).await;
    let engine = fx.engine("slow", "simple");
    let mut stream =
        Box::pin(engine.stream_message(ChatTurn::new("dave", "go"), CancellationToken::new()));
    let mut tokens = 0;
    while let Some(e) = stream.next().await {
        if matches!(e, ServerEvent::Token { .. }) {
            tokens += 1;
            if tokens == 3 {
                break;
            }
        }
    }
    drop(stream);
    assert!(fx.llm.wait_for_disconnect(Duration::from_secs(5)).await);
    // The partial reply is saved in the background.
    let mut saved = None;
    for _ in 0..100 {
        let sessions = fx
            .store
            .sessions()
            .list_user_sessions("dave", Default::default())
            .await
            .unwrap();
        let (count, messages) = persisted(&fx, "dave", sessions.items[0].id).await;
        if count == 2 {
            saved = Some(messages);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let messages = saved.expect("the partial reply was saved");
    assert_eq!(meta(&messages[1], "finish_reason"), "cancelled");
    assert!(!messages[1].content.is_empty());
}

/// Only `search_knowledge` offered: the fake `tool_call` model calls it twice.
fn search_only() -> BackendConfig {
    BackendConfig {
        dashboard_tools: vec!["search_knowledge".into()],
        course_tools: vec!["search_knowledge".into()],
        ..BackendConfig::default()
    }
}

async fn agent_calls_two_tools_then_answers(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    let engine = fx.engine_with("tool_call", "agent", fx.tools(), search_only());
    let events = run(&engine, ChatTurn::new("erin", "sourdough starter")).await;
    let l = labels(&events);
    let answer_start = l.iter().position(|x| x == "token:tool").unwrap();
    assert_eq!(
        l[..answer_start],
        [
            "stage:analysis",
            "stage:generation",
            "tool_call:search_knowledge",
            "tool_call:search_knowledge",
            "stage:retrieval",
            "tool_result:search_knowledge:ok",
            "tool_result:search_knowledge:ok",
            "stage:generation",
        ]
    );
    // Sources of both searches, without duplicates, best of the first search first.
    let ServerEvent::Sources { sources } = &events[events.len() - 2] else {
        panic!("sources before done: {l:?}")
    };
    assert!(sources.len() >= 2, "{sources:?}");
    assert_eq!(sources[0].file_path, "bread/sourdough.md");
    let keys: std::collections::HashSet<_> =
        sources.iter().map(|s| (&s.file_path, &s.content)).collect();
    assert_eq!(keys.len(), sources.len(), "no duplicate sources");
    assert_eq!(l[l.len() - 1], "done:stop");
    // The tool result reached the model: it quotes the last result back.
    let answer: String = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Token { content } => Some(content.as_str()),
            _ => None,
        })
        .collect();
    assert!(answer.starts_with("tool said: "), "{answer}");
    assert!(answer.contains("\"source\""), "{answer}");
    let second_request = fx.llm.requests()[1].body.clone();
    let msgs = second_request["messages"].as_array().unwrap();
    let tool_msgs: Vec<&Value> = msgs.iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(tool_msgs.len(), 2);
    assert!(
        tool_msgs[0]["content"]
            .as_str()
            .unwrap()
            .contains("sourdough")
    );
    // Persisted: both messages, tool calls with results in metadata.
    let (sid, _) = done_ids(&events);
    let (count, messages) = persisted(&fx, "erin", sid).await;
    assert_eq!(count, 2);
    let calls = meta(&messages[1], "tool_calls").as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["name"], "search_knowledge");
    assert_eq!(calls[0]["arguments"]["query"], "sourdough starter");
    assert_eq!(calls[0]["is_error"], false);
    assert_eq!(meta(&messages[1], "backend"), "agent");
    assert_eq!(messages[1].content, answer);
}

/// A tool that sleeps longer than any sensible timeout.
struct Sleepy;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct SleepyArgs {
    #[allow(dead_code)]
    query: String,
}

impl Tool for Sleepy {
    type Args = SleepyArgs;
    fn name(&self) -> &str {
        "sleepy"
    }
    fn description(&self) -> &str {
        "sleeps"
    }
    fn call<'a>(
        &'a self,
        _: SleepyArgs,
        _: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(ToolOutput::text("too late"))
        })
    }
}

async fn agent_tool_timeout_is_a_tool_error(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    let mut tools = fx.tools();
    tools.register(Sleepy);
    let config = BackendConfig {
        dashboard_tools: vec!["sleepy".into()],
        tool_timeout: Duration::from_millis(200),
        ..BackendConfig::default()
    };
    let engine = fx.engine_with("tool_call", "agent", tools, config);
    let started = std::time::Instant::now();
    let events = run(&engine, ChatTurn::new("erin", "hi")).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let l = labels(&events);
    assert!(l.contains(&"tool_result:sleepy:error".to_string()), "{l:?}");
    let result = events
        .iter()
        .find_map(|e| match e {
            ServerEvent::ToolResult { content, .. } => Some(content.clone()),
            _ => None,
        })
        .unwrap();
    assert!(result.contains("tool_timeout"), "{result}");
    assert_eq!(l.last().unwrap(), "done:stop");
}

async fn agent_invalid_arguments_reach_the_model(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    // list_tracks takes no arguments; the fake model sends {"query": ...}.
    let config = BackendConfig {
        dashboard_tools: vec!["list_tracks".into()],
        ..BackendConfig::default()
    };
    let engine = fx.engine_with("tool_call", "agent", fx.tools(), config);
    let events = run(&engine, ChatTurn::new("erin", "tracks")).await;
    let l = labels(&events);
    assert_eq!(
        l.iter()
            .filter(|x| *x == "tool_result:list_tracks:error")
            .count(),
        2,
        "{l:?}"
    );
    let answer: String = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Token { content } => Some(content.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        answer.contains("invalid_arguments"),
        "the model saw the error: {answer}"
    );
    assert_eq!(l.last().unwrap(), "done:stop");
}

async fn agent_step_limit_ends_clearly(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    let config = BackendConfig {
        max_steps: 1,
        ..search_only()
    };
    let engine = fx.engine_with("tool_call", "agent", fx.tools(), config);
    let events = run(&engine, ChatTurn::new("erin", "loop")).await;
    let l = labels(&events);
    assert_eq!(l.last().unwrap(), "done:length");
    let answer: String = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Token { content } => Some(content.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        answer.contains("stopped after 1 rounds of tool calls"),
        "{answer}"
    );
    assert_eq!(fx.llm.requests().len(), 1, "no model call beyond the limit");
}

async fn agent_echo_without_tools_calls(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    let engine = fx.engine("echo", "agent");
    let events = run(&engine, ChatTurn::new("erin", "just answer")).await;
    assert_eq!(
        labels(&events),
        [
            "stage:analysis",
            "stage:generation",
            "token:just",
            "token: answer",
            "sources:0",
            "done:stop",
        ]
    );
    // The dashboard agent's tools were offered.
    let body = fx.llm.requests()[0].body.clone();
    let names: Vec<&str> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "list_tracks",
            "get_progress",
            "search_knowledge",
            "remember",
            "current_time"
        ]
    );
}

async fn agent_error_and_cancel(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    let engine = fx.engine("error_500", "agent");
    let events = run(&engine, ChatTurn::new("erin", "x")).await;
    assert_eq!(
        labels(&events),
        [
            "stage:analysis",
            "stage:generation",
            "error:provider_unavailable"
        ]
    );
    let engine = fx.engine("drop_mid_stream", "agent");
    let events = run(&engine, ChatTurn::new("erin", "a b c d e")).await;
    let l = labels(&events);
    assert_eq!(l[2..5], ["token:a", "token: b", "token: c"]);
    assert!(l[5].starts_with("error:provider_"));
}

async fn agent_slow_cancel(db: Db) {
    let fx = Fixture::new(db, slow(200, Duration::from_millis(20))).await;
    let engine = fx.engine("slow", "agent");
    let cancel = CancellationToken::new();
    let mut stream = Box::pin(engine.stream_message(ChatTurn::new("carol", "go"), cancel.clone()));
    let mut labels_seen = Vec::new();
    while let Some(e) = stream.next().await {
        if matches!(e, ServerEvent::Token { .. }) && !cancel.is_cancelled() {
            cancel.cancel();
        }
        labels_seen.push(label(&e));
    }
    assert_eq!(labels_seen.last().unwrap(), "done:cancelled");
    assert!(labels_seen.len() < 20);
}

async fn course_agent_never_reads_another_course(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    // simple backend: retrieval restricted to the course's collection.
    let engine = fx.engine("echo", "simple");
    let mut turn = ChatTurn::new(
        "frank",
        "how do I feed a sourdough starter with flour and water",
    );
    turn.agent = AgentKind::Course;
    turn.course_id = Some("rust".into());
    let events = run(&engine, turn).await;
    let sources = events
        .iter()
        .find_map(|e| match e {
            ServerEvent::Sources { sources } => Some(sources.clone()),
            _ => None,
        })
        .unwrap();
    assert!(!sources.is_empty());
    for s in &sources {
        assert_eq!(s.metadata["collection"], "course:rust", "{s:?}");
    }
    // Same question on the dashboard finds the bread course first.
    let events = run(
        &engine,
        ChatTurn::new(
            "frank",
            "how do I feed a sourdough starter with flour and water",
        ),
    )
    .await;
    let sources = events
        .iter()
        .find_map(|e| match e {
            ServerEvent::Sources { sources } => Some(sources.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(sources[0].metadata["collection"], "course:bread");

    // agent backend: the model asks for another collection; it is ignored.
    let engine = fx.engine_with("tool_call", "agent", fx.tools(), search_only());
    let mut turn = ChatTurn::new("frank", "sourdough starter flour water");
    turn.agent = AgentKind::Course;
    turn.course_id = Some("rust".into());
    let events = run(&engine, turn).await;
    let sources = events
        .iter()
        .find_map(|e| match e {
            ServerEvent::Sources { sources } => Some(sources.clone()),
            _ => None,
        })
        .unwrap();
    assert!(!sources.is_empty());
    assert!(
        sources
            .iter()
            .all(|s| s.metadata["collection"] == "course:rust")
    );
    // get_lesson refuses another course's lesson.
    let tools = fx.tools();
    let ctx = ToolContext {
        course_id: Some("rust".into()),
        agent: AgentKind::Course,
        ..ToolContext::for_user("frank")
    };
    let err = tools
        .call(
            "get_lesson",
            &["*".to_owned()],
            serde_json::json!({"lesson_id": "bread-1"}),
            &ctx,
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not part of this course"), "{err}");
    let ok = tools
        .call(
            "get_lesson",
            &["*".to_owned()],
            serde_json::json!({"lesson_id": "rust-1"}),
            &ctx,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(ok.content.contains("single owner"));
    // A course session needs a course id.
    let mut turn = ChatTurn::new("frank", "hi");
    turn.agent = AgentKind::Course;
    let events = run(&engine, turn).await;
    assert_eq!(labels(&events), ["error:missing_course"]);
}

async fn context_window_drops_oldest_first(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    let engine = fx.engine("echo", "simple");
    let session = fx
        .store
        .create_session("gina", Default::default())
        .await
        .unwrap();
    let sid = session.id.to_string();
    for i in 0..10 {
        let role = if i % 2 == 0 {
            MessageRole::User
        } else {
            MessageRole::Assistant
        };
        fx.store
            .save_message(
                "gina",
                &sid,
                confab_models::NewMessage::new(
                    role,
                    format!("message number {i} {}", "word ".repeat(20)),
                ),
            )
            .await
            .unwrap();
    }
    let session = fx.store.get_session("gina", &sid).await.unwrap();
    let full = engine
        .conversation_context(
            "gina",
            &session,
            &UserSettings::default(),
            "the new question",
        )
        .await
        .unwrap();
    assert_eq!(full.len(), 12, "system + 10 + new");
    // A tiny budget: system prompt and new message always, then the newest that fit.
    let system_len = full[0].content.len();
    let history: Vec<confab_models::Message> =
        fx.store.recent_messages("gina", &sid, 50).await.unwrap();
    let budget = confab_rag::chunk::count_tokens(&full[0].content)
        + confab_rag::chunk::count_tokens("the new question")
        + 8
        + 3 * (confab_rag::chunk::count_tokens(&history[0].content) + 4);
    let window = confab_agents::engine::build_context(
        &full[0].content,
        &[],
        &history,
        "the new question",
        budget,
    );
    assert_eq!(window.len(), 5, "system + the 3 newest + new");
    assert_eq!(window[0].content.len(), system_len);
    assert!(window[1].content.starts_with("message number 7"));
    assert!(window[3].content.starts_with("message number 9"));
    assert_eq!(window[4].content, "the new question");
    // Zero budget still keeps the system prompt and the new message.
    let window = confab_agents::engine::build_context("sys", &[], &history, "q", 0);
    assert_eq!(window.len(), 2);
    assert_eq!(window[0].content, "sys");
    assert_eq!(window[1].content, "q");
}

async fn memory_items_reach_the_prompt(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    let tools = fx.tools();
    let ctx = ToolContext::for_user("hank");
    tools
        .call(
            "remember",
            &["*".to_owned()],
            serde_json::json!({"content": "prefers examples in Python"}),
            &ctx,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let engine = fx.engine("echo", "simple");
    let events = run(&engine, ChatTurn::new("hank", "hello")).await;
    assert_eq!(label(events.last().unwrap()), "done:stop");
    let body = fx.llm.requests().last().unwrap().body.clone();
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("prefers examples in Python"), "{system}");
    // Another user's memory does not leak.
    let events = run(&engine, ChatTurn::new("ivan", "hello")).await;
    assert_eq!(label(events.last().unwrap()), "done:stop");
    let body = fx.llm.requests().last().unwrap().body.clone();
    assert!(
        !body["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("Python")
    );
}

async fn bad_turns_get_clear_errors(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    let engine = fx.engine("echo", "simple");
    assert_eq!(
        labels(&run(&engine, ChatTurn::new("u", "   ")).await),
        ["error:invalid_message"]
    );
    assert_eq!(
        labels(&run(&engine, ChatTurn::new("u", "x".repeat(40_000))).await),
        ["error:invalid_message"]
    );
    let mut turn = ChatTurn::new("u", "hi");
    turn.backend = Some("nope".into());
    assert_eq!(labels(&run(&engine, turn).await), ["error:unknown_backend"]);
    // Someone else's session is not found, and nothing is written to it.
    let events = run(&engine, ChatTurn::new("owner", "mine")).await;
    let (sid, _) = done_ids(&events);
    let mut turn = ChatTurn::new("intruder", "hi");
    turn.session_id = Some(sid);
    assert_eq!(labels(&run(&engine, turn).await), ["error:not_found"]);
    let (count, _) = persisted(&fx, "owner", sid).await;
    assert_eq!(count, 2);
    assert!(
        fx.store
            .sessions()
            .list_user_sessions("u", Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // send_message maps errors back to typed ones.
    let err = engine
        .send_message(ChatTurn::new("u", ""), CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.event_code(), "invalid_message");
}

async fn send_message_and_open_session(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    let engine = fx.engine("echo", "simple");
    let (session, history) = engine
        .open_session("jo", AgentKind::Dashboard, None, None)
        .await
        .unwrap();
    assert!(history.is_empty());
    assert_eq!(session.title, "New chat");
    let mut turn = ChatTurn::new("jo", "Tell me about ownership please");
    turn.session_id = Some(session.id);
    let reply = engine
        .send_message(turn, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(reply.response, "Tell me about ownership please");
    assert_eq!(reply.session_id, session.id);
    assert!(!reply.sources.is_empty());
    let (session, history) = engine
        .open_session("jo", AgentKind::Dashboard, None, Some(session.id))
        .await
        .unwrap();
    assert_eq!(
        session.title, "Tell me about ownership please",
        "titled by the first message"
    );
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].id, reply.message_id);
    // Not someone else's.
    let err = engine
        .open_session("other", AgentKind::Dashboard, None, Some(session.id))
        .await
        .unwrap_err();
    assert_eq!(err.event_code(), "not_found");
}

async fn stateless_turn_saves_nothing(db: Db) {
    let fx = Fixture::new(db, fast()).await;
    let engine = fx.engine("echo", "simple");
    let turn = confab_agents::StatelessTurn {
        user_id: "sam".into(),
        agent: AgentKind::Dashboard,
        course_id: None,
        messages: vec![
            (MessageRole::System, "Always answer in French.".into()),
            (MessageRole::User, "first question".into()),
            (MessageRole::Assistant, "first answer".into()),
            (MessageRole::User, "second question".into()),
        ],
        backend: None,
        settings: UserSettings::default(),
        knowledge: Vec::new(),
    };
    let events: Vec<ServerEvent> = engine
        .stream_stateless(turn, CancellationToken::new())
        .collect()
        .await;
    let l = labels(&events);
    assert_eq!(l[l.len() - 3], "token: question");
    assert!(l[l.len() - 2].starts_with("sources:"));
    assert_eq!(l[l.len() - 1], "done:stop");
    let (sid, mid) = done_ids(&events);
    assert!(sid.is_nil() && mid.is_nil());
    let body = fx.llm.requests().last().unwrap().body.clone();
    let msgs = body["messages"].as_array().unwrap();
    let system = msgs[0]["content"].as_str().unwrap();
    assert!(system.starts_with("You are confab"), "{system}");
    assert!(system.contains("Always answer in French."));
    let contents: Vec<&str> = msgs
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents,
        ["first question", "first answer", "second question"]
    );
    let sessions = fx
        .store
        .sessions()
        .list_user_sessions("sam", Default::default())
        .await
        .unwrap();
    assert!(sessions.items.is_empty(), "nothing saved");
    // The last message must be the user's.
    let turn = confab_agents::StatelessTurn {
        user_id: "sam".into(),
        agent: AgentKind::Dashboard,
        course_id: None,
        messages: vec![(MessageRole::Assistant, "hi".into())],
        backend: None,
        settings: UserSettings::default(),
        knowledge: Vec::new(),
    };
    let events: Vec<ServerEvent> = engine
        .stream_stateless(turn, CancellationToken::new())
        .collect()
        .await;
    assert_eq!(labels(&events), ["error:invalid_message"]);
}

confab_testkit::backend_tests!(
    stateless_turn_saves_nothing,
    simple_echo_streams_and_persists,
    simple_error_500_saves_and_ends_with_error,
    provider_rate_limit_carries_retry_after,
    simple_drop_mid_stream_keeps_partial,
    slow_cancel_keeps_partial_and_ends_with_done,
    dropped_client_cancels_and_saves,
    agent_calls_two_tools_then_answers,
    agent_tool_timeout_is_a_tool_error,
    agent_invalid_arguments_reach_the_model,
    agent_step_limit_ends_clearly,
    agent_echo_without_tools_calls,
    agent_error_and_cancel,
    agent_slow_cancel,
    course_agent_never_reads_another_course,
    context_window_drops_oldest_first,
    memory_items_reach_the_prompt,
    bad_turns_get_clear_errors,
    send_message_and_open_session,
);
