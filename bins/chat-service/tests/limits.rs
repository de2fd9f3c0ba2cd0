//! Issue 17 against a real chat-service on 127.0.0.1:0 wired to the fake
//! LLM server (real HTTP), with real WebSocket and HTTP clients:
//! - item 8: a per-user cap on concurrent generations over WebSocket, SSE,
//!   REST and `/api/chat/completions` together (`error` / `busy`, 429);
//! - item 9: the agent's tool allow-list holds at call time, whatever tool
//!   name the model produces;
//! - item 13: seed 004's call with the internal key and no `X-User-Id`
//!   acts as one internal service user, and a user with more than 200
//!   keyed sessions keeps finding theirs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use chat_service::AppState;
use chat_service::chat::ChatLimits;
use common::{KEY, Options, Server};
use confab_history::HistoryConfig;
use confab_llm::LlmConfig;
use confab_models::NewSession;
use confab_store::Db;
use confab_testkit::{FakeLlm, FakeLlmConfig};
use confab_web::Vars;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const PATIENCE: Duration = Duration::from_secs(15);

/// A chat-service answering with the fake server's `model`, with extra variables.
async fn chat_server(
    db: Db,
    llm: &FakeLlm,
    model: &str,
    extra: &[(&str, &str)],
    limits: ChatLimits,
) -> (Server, AppStateHandle) {
    let mut pairs: Vec<(String, String)> = vec![
        ("AGENT_RUNTIME__LLM_PROXY_URL".into(), llm.base_url()),
        ("AGENT_RUNTIME__LLM_MODEL".into(), model.into()),
        ("CONFAB_LLM_MAX_RETRIES".into(), "0".into()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    let vars = Vars::from_pairs(pairs);
    let llm_config = LlmConfig::from_vars(vars.lookup()).unwrap();
    let state = AppState::new(db.clone(), HistoryConfig::default());
    let wiring = chat_service::wiring::build(
        &vars,
        &llm_config,
        db.clone(),
        state.conversation_store(),
        state.memory_store(),
    )
    .await
    .unwrap();
    let state = state.with_wiring(wiring, limits);
    let handle = AppStateHandle {
        sessions: state.sessions.clone(),
        memory: state.memory.clone(),
    };
    (common::spawn_state(state, Options::default()).await, handle)
}

/// The services a test reads back through.
struct AppStateHandle {
    sessions: confab_history::SessionService,
    memory: confab_history::MemoryService,
}

fn slow_llm() -> FakeLlmConfig {
    FakeLlmConfig {
        token_delay: Duration::from_millis(150),
        tokens: Some(40),
        ..FakeLlmConfig::default()
    }
}

async fn connect(server: &Server, user: &str, query: &str) -> Socket {
    let url = format!("{}/ws/chat{query}", server.url.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("X-Internal-Auth", KEY.parse().unwrap());
    req.headers_mut().insert("X-User-Id", user.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

async fn send(ws: &mut Socket, value: Value) {
    ws.send(Ws::Text(value.to_string().into())).await.unwrap();
}

/// The next protocol event (skipping pings).
async fn next(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("an event in time")
            .expect("the socket is open")
            .unwrap();
        match msg {
            Ws::Text(t) => return serde_json::from_str(&t).unwrap(),
            Ws::Ping(_) | Ws::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Events up to and including `done` or `error`.
async fn until_end(ws: &mut Socket) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let e = next(ws).await;
        let end = e["type"] == "done" || e["type"] == "error";
        events.push(e);
        if end {
            return events;
        }
    }
}

/// Sends a chat message and waits for its first token (it is generating).
async fn start_answer(ws: &mut Socket) {
    send(ws, json!({"type": "chat_message", "content": "go"})).await;
    loop {
        let e = next(ws).await;
        assert_ne!(e["type"], "error", "{e}");
        if e["type"] == "token" {
            return;
        }
    }
}

/// Item 8: with a cap of 2, two answers stream for one user over two
/// sockets; a third socket, an SSE stream, a REST call and a completions
/// call of the same user are all refused with `busy` (event or 429) and
/// start no generation; another user is unaffected; once an answer ends
/// the user can start again.
async fn generations_are_capped_per_user(db: Db) {
    let llm = FakeLlm::start_with(slow_llm()).await;
    let limits = ChatLimits {
        max_generations_per_user: 2,
        ..ChatLimits::default()
    };
    let (server, _) = chat_server(db, &llm, "slow", &[], limits).await;
    let mut a = connect(&server, "greedy", "").await;
    let mut b = connect(&server, "greedy", "").await;
    start_answer(&mut a).await;
    start_answer(&mut b).await;
    let requests_before = llm.requests().len();

    let mut c = connect(&server, "greedy", "").await;
    send(&mut c, json!({"type": "chat_message", "content": "third"})).await;
    let refused = until_end(&mut c).await;
    let last = refused.last().unwrap();
    assert_eq!(last["type"], "error", "{refused:?}");
    assert_eq!(last["code"], "busy", "{last}");
    assert!(last["message"].as_str().unwrap().contains('2'), "{last}");
    assert!(refused.iter().all(|e| e["type"] != "token"), "{refused:?}");

    let sse = server
        .as_user("greedy", Method::GET, "/api/chat/stream?message=hi")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 429);
    assert_eq!(sse.headers()["retry-after"], "1");
    let body: Value = sse.json().await.unwrap();
    assert_eq!(body["error"], "busy", "{body}");

    let rest = common::send(
        server
            .as_user("greedy", Method::POST, "/api/chat")
            .json(&json!({"message": "hi"})),
    )
    .await;
    assert_eq!(
        (rest.0.as_u16(), rest.1["error"].as_str()),
        (429, Some("busy"))
    );
    let completions = common::send(
        server
            .as_user("greedy", Method::POST, "/api/chat/completions")
            .json(&json!({"messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(
        (completions.0.as_u16(), completions.1["error"].as_str()),
        (429, Some("busy"))
    );
    // Nothing refused reached the model, and no session was created for it.
    assert_eq!(llm.requests().len(), requests_before);

    // Another user is not affected.
    let mut other = connect(&server, "modest", "").await;
    start_answer(&mut other).await;

    // Cancelling one answer frees a slot.
    send(&mut a, json!({"type": "cancel"})).await;
    let ended = until_end(&mut a).await;
    assert_eq!(ended.last().unwrap()["type"], "done", "{ended:?}");
    let deadline = Instant::now() + PATIENCE;
    loop {
        send(&mut c, json!({"type": "chat_message", "content": "again"})).await;
        let e = next(&mut c).await;
        if e["type"] != "error" {
            break;
        }
        assert_eq!(e["code"], "busy", "{e}");
        assert!(Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Item 9: the model (prompt-injected, or just wrong) names `get_lesson`,
/// a course-agent tool, in a dashboard conversation: the call is refused
/// at call time (`tool_not_allowed`) and the lesson is never read.
async fn tools_outside_the_allowed_set_never_run(db: Db) {
    let catalog = confab_accounts::CatalogService::new(db.clone());
    catalog.load_demo_if_empty().await.unwrap();
    let llm = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let (server, handle) =
        chat_server(db.clone(), &llm, "tool_named", &[], ChatLimits::default()).await;
    let mut ws = connect(&server, "mallory", "?backend=agent").await;
    send(&mut ws, json!({"type": "init", "agent": "dashboard"})).await;
    assert_eq!(next(&mut ws).await["type"], "ready");
    for (tool, arguments) in [
        (
            "get_lesson",
            json!({"lesson_id": demo_lesson_id(&db).await}),
        ),
        ("no_such_tool", json!({})),
    ] {
        let spec = json!({"tool": tool, "arguments": arguments}).to_string();
        send(&mut ws, json!({"type": "chat_message", "content": spec})).await;
        let events = until_end(&mut ws).await;
        let result = events
            .iter()
            .find(|e| e["type"] == "tool_result")
            .unwrap_or_else(|| panic!("no tool_result: {events:?}"));
        assert_eq!(result["name"], tool, "{result}");
        assert_eq!(result["is_error"], true, "{result}");
        let content = result["content"].as_str().unwrap();
        let code = if tool == "get_lesson" {
            "tool_not_allowed"
        } else {
            "unknown_tool"
        };
        assert!(content.contains(code), "{content}");
        assert_eq!(events.last().unwrap()["type"], "done", "{events:?}");
    }
    // A tool that is offered still runs: `remember` writes a memory item.
    let spec = json!({"tool": "remember", "arguments": {"content": "likes tea"}}).to_string();
    send(&mut ws, json!({"type": "chat_message", "content": spec})).await;
    let events = until_end(&mut ws).await;
    let result = events.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!(result["is_error"], false, "{result}");
    let items = handle.memory.list("mallory", Some(10)).await.unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
}

/// The id of the first lesson of the demo catalogue.
async fn demo_lesson_id(db: &Db) -> String {
    use confab_store::diesel::prelude::*;
    use confab_store::schema::lessons;
    db.run(|conn| {
        lessons::table
            .select(lessons::id)
            .order(lessons::id)
            .first::<String>(conn)
            .map_err(confab_store::StoreError::from)
    })
    .await
    .unwrap()
}

/// The `data:` payloads of an SSE body.
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|frame| frame.trim_start_matches('\n').strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// Item 13: the seed's exact call (internal key, no `X-User-Id`) answers
/// with tokens and `[DONE]` as the internal service user: the same key
/// continues the same session; a real user's session key or session id
/// never reaches the service user's sessions and the other way round.
async fn seed_004_call_acts_as_the_service_user(db: Db) {
    let llm = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let (server, handle) = chat_server(db, &llm, "echo", &[], ChatLimits::default()).await;
    let seed_call = |key: &str, content: &str| {
        server
            .anonymous(Method::POST, "/agent/message/stream")
            .header("X-Internal-Auth", KEY)
            .json(&json!({"session_id": key, "role": "user", "content": content}))
    };
    // Without the key: still refused.
    let no_key = server
        .anonymous(Method::POST, "/agent/message/stream")
        .json(&json!({"session_id": "user-session-1", "role": "user", "content": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);

    for content in ["hello there", "second turn"] {
        let resp = seed_call("user-session-1", content).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let frames = sse_data(&resp.text().await.unwrap());
        assert_eq!(
            frames.last().map(String::as_str),
            Some("[DONE]"),
            "{frames:?}"
        );
        let first: Value = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(first["type"], "assistant_message", "{first}");
    }
    let service = chat_service::chat::SERVICE_USER;
    let mine = handle
        .sessions
        .find_by_external_key(service, "user-session-1")
        .await
        .unwrap()
        .expect("the service user's session");
    assert_eq!(mine.message_count, 4, "both turns in one session");

    // A real user with the same key gets their own session.
    let resp = server
        .as_user("alice", Method::POST, "/agent/message/stream")
        .json(&json!({"session_id": "user-session-1", "role": "user", "content": "alice here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
    let alices = handle
        .sessions
        .find_by_external_key("alice", "user-session-1")
        .await
        .unwrap()
        .expect("alice's session");
    assert_ne!(alices.id, mine.id);
    // Naming alice's session id as a key does not reach it: the service
    // user gets a new session of its own for that text.
    let resp = seed_call(&alices.id.to_string(), "let me in")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
    let alice_after = handle
        .sessions
        .get("alice", &alices.id.to_string())
        .await
        .unwrap();
    assert_eq!(alice_after.message_count, 2, "alice's session is untouched");
    // The service user's sessions are not alice's, and not in her lists.
    let listed = common::expect(server.as_user("alice", Method::GET, "/api/sessions"), 200).await;
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [alices.id.to_string()]);
}

/// Issue 19 item 6: a user with more than 200 sessions keeps finding the
/// session of an old key (it used to be looked for among the 200 most
/// recent sessions only, so a new duplicate session was created).
async fn keyed_session_found_among_many(db: Db) {
    let llm = FakeLlm::start_with(FakeLlmConfig::default()).await;
    let (server, handle) = chat_server(db.clone(), &llm, "echo", &[], ChatLimits::default()).await;
    let call = |content: &str| {
        server
            .as_user("busy-bee", Method::POST, "/agent/message/stream")
            .json(&json!({"session_id": "old-key", "role": "user", "content": content}))
    };
    call("first").send().await.unwrap().text().await.unwrap();
    for i in 0..205 {
        handle
            .sessions
            .create(
                "busy-bee",
                NewSession {
                    title: Some(format!("later {i}")),
                    ..NewSession::default()
                },
            )
            .await
            .unwrap();
    }
    call("again").send().await.unwrap().text().await.unwrap();
    let keyed = handle
        .sessions
        .find_by_external_key("busy-bee", "old-key")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        keyed.message_count, 4,
        "the second call continued the old session"
    );
    let all: i64 = db
        .run(|conn| {
            use confab_store::diesel::prelude::*;
            use confab_store::schema::chat_sessions::dsl as s;
            s::chat_sessions
                .filter(s::user_id.eq("busy-bee"))
                .count()
                .get_result(conn)
                .map_err(confab_store::StoreError::from)
        })
        .await
        .unwrap();
    assert_eq!(all, 206, "no duplicate session");
}

confab_testkit::backend_tests!(
    generations_are_capped_per_user,
    tools_outside_the_allowed_set_never_run,
    seed_004_call_acts_as_the_service_user,
    keyed_session_found_among_many,
);
