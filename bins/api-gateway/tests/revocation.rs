//! Issue 17 items 4, 5 and 6 through a real gateway and a real
//! chat-service on 127.0.0.1 (one replica each; the multi-replica forms
//! are in `revocation_redis.rs`):
//! - API keys need the current password and die with "log out
//!   everywhere", a password change and their own revocation (cached
//!   lookups included);
//! - open WebSockets close within seconds of logout-all, a password change
//!   or the account's deletion;
//! - deleting an account deletes its sessions, messages, memory and
//!   feedback, and nobody else's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{PASSWORD, Stack};
use confab_store::Db;
use confab_store::diesel::prelude::*;
use confab_testkit::FakeLlmConfig;
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a revoked socket may stay open ("within a few seconds").
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

async fn status(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Item 4.
async fn api_keys_need_the_password_and_die_with_the_logins(db: Db) {
    let s = Stack::start(db, "echo", FakeLlmConfig::default()).await;
    let (_, access, _) = s.register("keys@example.com").await;
    let mint = |password: Option<&str>| {
        let mut body = json!({"name": "stolen"});
        if let Some(p) = password {
            body["password"] = json!(p);
        }
        s.authed(&access, Method::POST, "/api/users/me/api-keys")
            .json(&body)
    };
    // A stolen access token alone cannot mint a key.
    let (code, body) = status(mint(None)).await;
    assert!(code == 400 || code == 422, "{code} {body}");
    let (code, body) = status(mint(Some("a guessed password 1"))).await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["error"], "invalid_credentials", "{body}");
    let (_, listed) = status(s.authed(&access, Method::GET, "/api/users/me/api-keys")).await;
    assert_eq!(listed["items"], json!([]), "nothing was created");

    let me = |key: &str| s.authed(key, Method::GET, "/api/users/me");
    // Log out everywhere: the key dies (also after being cached by use).
    let key = s.api_key(&access, "one").await;
    for _ in 0..3 {
        assert_eq!(status(me(&key)).await.0, 200);
    }
    assert_eq!(
        status(s.authed(&access, Method::POST, "/api/auth/logout-all"))
            .await
            .0,
        204
    );
    assert_eq!(status(me(&key)).await.0, 401, "key survived logout-all");

    // A password change: the key dies.
    let (_, access, _) = s.login("keys@example.com", PASSWORD).await;
    let key = s.api_key(&access, "two").await;
    for _ in 0..3 {
        assert_eq!(status(me(&key)).await.0, 200);
    }
    let (code, changed) = status(
        s.authed(&access, Method::POST, "/api/users/me/password")
            .json(&json!({"current_password": PASSWORD, "new_password": "another horse 77"})),
    )
    .await;
    assert_eq!(code, 200, "{changed}");
    assert_eq!(
        status(me(&key)).await.0,
        401,
        "key survived a password change"
    );

    // Its own revocation: refused at once, cached or not.
    let access = changed["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = s
        .authed(&access, Method::POST, "/api/users/me/api-keys")
        .json(&json!({"name": "three", "password": "another horse 77"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(status(me(&key)).await.0, 200);
    }
    let kid = created["id"].as_str().unwrap().to_owned();
    let path = format!("/api/users/me/api-keys/{kid}");
    assert_eq!(
        status(s.authed(&access, Method::DELETE, &path)).await.0,
        204
    );
    assert_eq!(status(me(&key)).await.0, 401, "revoked key still worked");
    // Every key is now revoked.
    let (_, listed) = status(s.authed(&access, Method::GET, "/api/users/me/api-keys")).await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{listed}");
    assert!(items.iter().all(|k| !k["revoked_at"].is_null()), "{listed}");
}

/// A socket through the gateway with `credential`, session opened.
async fn open_socket(s: &Stack, credential: &str) -> Socket {
    let mut req = format!("{}/ws/chat", s.url.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "Authorization",
        format!("Bearer {credential}").parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Ws::Text(json!({"type": "init"}).to_string().into()))
        .await
        .unwrap();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Ws::Text(t) = msg {
            let e: Value = serde_json::from_str(&t).unwrap();
            assert_eq!(e["type"], "ready", "{e}");
            return ws;
        }
    }
}

/// Waits (at most [`CLOSE_WITHIN`]) until the server closes `ws`; the last
/// event before the close is `error` / `credentials_revoked` and the close
/// code is 1008. Meanwhile a message sent is never answered.
pub async fn assert_closed_for_revocation(mut ws: Socket, what: &str) {
    let started = Instant::now();
    let _ = ws
        .send(Ws::Text(
            json!({"type": "chat_message", "content": "still here?"})
                .to_string()
                .into(),
        ))
        .await;
    let mut events = Vec::new();
    loop {
        let left = CLOSE_WITHIN.saturating_sub(started.elapsed());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| {
                panic!("{what}: the socket is still open after {CLOSE_WITHIN:?}: {events:?}")
            });
        match msg {
            Some(Ok(Ws::Text(t))) => {
                let e: Value = serde_json::from_str(&t).unwrap();
                events.push(e);
            }
            Some(Ok(Ws::Close(frame))) => {
                let frame = frame.expect("a close frame with a code");
                assert_eq!(frame.code, CloseCode::Policy, "{what}: {frame:?}");
                let last = events.last().expect("an error event before the close");
                assert_eq!(last["type"], "error", "{what}: {events:?}");
                assert_eq!(last["code"], "credentials_revoked", "{what}: {events:?}");
                return;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("{what}: socket error {e} (events {events:?})"),
            None => panic!("{what}: closed without a close frame: {events:?}"),
        }
    }
}

/// Item 5, one replica.
async fn websockets_close_when_credentials_are_revoked(db: Db) {
    let s = Stack::start(
        db,
        "slow",
        FakeLlmConfig {
            token_delay: Duration::from_millis(100),
            tokens: Some(1000),
            ..FakeLlmConfig::default()
        },
    )
    .await;
    // Logout everywhere closes every socket of the user, token and key,
    // even one that is streaming an answer; another user's socket stays.
    let (_, access, _) = s.register("ws@example.com").await;
    let key = s.api_key(&access, "ws").await;
    let token_ws = open_socket(&s, &access).await;
    let mut key_ws = open_socket(&s, &key).await;
    key_ws
        .send(Ws::Text(
            json!({"type": "chat_message", "content": "long"})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let (_, other, _) = s.register("bystander@example.com").await;
    let mut bystander = open_socket(&s, &other).await;
    assert_eq!(
        status(s.authed(&access, Method::POST, "/api/auth/logout-all"))
            .await
            .0,
        204
    );
    assert_closed_for_revocation(token_ws, "logout-all (token)").await;
    assert_closed_for_revocation(key_ws, "logout-all (API key)").await;
    bystander
        .send(Ws::Text(json!({"type": "ping"}).to_string().into()))
        .await
        .unwrap();
    let pong = loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), bystander.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Ws::Text(t) = msg {
            break serde_json::from_str::<Value>(&t).unwrap();
        }
    };
    assert_eq!(pong["type"], "pong", "the bystander's socket lives on");

    // A password change.
    let (_, access, _) = s.login("ws@example.com", PASSWORD).await;
    let ws = open_socket(&s, &access).await;
    let (code, body) = status(
        s.authed(&access, Method::POST, "/api/users/me/password")
            .json(&json!({"current_password": PASSWORD, "new_password": "another horse 77"})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_closed_for_revocation(ws, "password change").await;

    // Deleting the account.
    let access = body["tokens"]["access_token"].as_str().unwrap().to_owned();
    let ws = open_socket(&s, &access).await;
    let code = status(
        s.authed(&access, Method::DELETE, "/api/users/me")
            .json(&json!({"password": "another horse 77"})),
    )
    .await
    .0;
    assert_eq!(code, 204);
    assert_closed_for_revocation(ws, "account deletion").await;
}

/// Rows of `user` in each user-owned table: sessions, messages, memory
/// items, feedback given, API keys, refresh tokens, users.
async fn owned_rows(db: &Db, user: &str) -> [i64; 10] {
    use confab_store::schema::{
        api_keys, chat_messages, chat_sessions, knowledge_bases, knowledge_documents,
        message_feedback, rag_chunks, refresh_tokens, user_memory, users,
    };
    let user = user.to_owned();
    db.run(move |conn| {
        let sessions: Vec<String> = chat_sessions::table
            .filter(chat_sessions::user_id.eq(&user))
            .select(chat_sessions::id)
            .load(conn)?;
        let bases: Vec<String> = knowledge_bases::table
            .filter(knowledge_bases::owner_id.eq(&user))
            .select(knowledge_bases::id)
            .load(conn)?;
        let collections: Vec<String> = bases.iter().map(|b| format!("kb:{b}")).collect();
        Ok::<_, confab_store::StoreError>([
            bases.len() as i64,
            knowledge_documents::table
                .filter(knowledge_documents::kb_id.eq_any(&bases))
                .count()
                .get_result(conn)?,
            rag_chunks::table
                .filter(rag_chunks::collection.eq_any(&collections))
                .count()
                .get_result(conn)?,
            sessions.len() as i64,
            chat_messages::table
                .filter(chat_messages::session_id.eq_any(&sessions))
                .count()
                .get_result(conn)?,
            user_memory::table
                .filter(user_memory::user_id.eq(&user))
                .count()
                .get_result(conn)?,
            message_feedback::table
                .filter(message_feedback::user_id.eq(&user))
                .count()
                .get_result(conn)?,
            api_keys::table
                .filter(api_keys::user_id.eq(&user))
                .count()
                .get_result(conn)?,
            refresh_tokens::table
                .filter(refresh_tokens::user_id.eq(&user))
                .count()
                .get_result(conn)?,
            users::table
                .filter(users::id.eq(&user))
                .count()
                .get_result(conn)?,
        ])
    })
    .await
    .unwrap()
}

/// Gives `user` (with `access`) a chat session with messages, feedback on
/// the answer and a memory item.
async fn make_data(s: &Stack, user: &str, access: &str) {
    let (code, answer) = status(
        s.authed(access, Method::POST, "/api/chat")
            .json(&json!({"message": "remember me"})),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    let mid = answer["message_id"].as_str().unwrap();
    let (code, body) = status(
        s.authed(
            access,
            Method::POST,
            &format!("/api/messages/{mid}/feedback"),
        )
        .json(&json!({"score": 5})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let memory = confab_history::Services::new(s.db.clone(), Default::default()).memory;
    memory.remember(user, "likes tea", None).await.unwrap();
    s.api_key(access, "k").await;
    // A knowledge base with one ingested document.
    let (code, kb) = status(
        s.authed(access, Method::POST, "/api/knowledge")
            .json(&json!({"name": "private notes"})),
    )
    .await;
    assert_eq!(code, 201, "{kb}");
    let docs = format!("/api/knowledge/{}/documents", kb["id"].as_str().unwrap());
    let (code, body) =
        status(s.authed(access, Method::POST, &docs).json(
            &json!({"title": "notes", "text": "The vault code is written on the blue card."}),
        ))
        .await;
    assert_eq!(code, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, listed) = status(s.authed(access, Method::GET, &docs)).await;
        if listed["items"][0]["status"] == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "never ingested: {listed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The knowledge bases `user` owns.
async fn base_ids(db: &Db, user: &str) -> Vec<String> {
    use confab_store::schema::knowledge_bases;
    let user = user.to_owned();
    db.run(move |conn| {
        Ok::<_, confab_store::StoreError>(
            knowledge_bases::table
                .filter(knowledge_bases::owner_id.eq(&user))
                .select(knowledge_bases::id)
                .load(conn)?,
        )
    })
    .await
    .unwrap()
}

/// Index rows (documents and chunks) left in these bases' collections.
async fn leftover_chunks(db: &Db, bases: &[String]) -> i64 {
    use confab_store::schema::{rag_chunks, rag_collections, rag_documents};
    let collections: Vec<String> = bases.iter().map(|b| format!("kb:{b}")).collect();
    db.run(move |conn| {
        let c: i64 = rag_chunks::table
            .filter(rag_chunks::collection.eq_any(&collections))
            .count()
            .get_result(conn)?;
        let d: i64 = rag_documents::table
            .filter(rag_documents::collection.eq_any(&collections))
            .count()
            .get_result(conn)?;
        let k: i64 = rag_collections::table
            .filter(rag_collections::name.eq_any(&collections))
            .count()
            .get_result(conn)?;
        Ok::<_, confab_store::StoreError>(c + d + k)
    })
    .await
    .unwrap()
}

/// Item 6.
async fn deleting_an_account_deletes_its_data(db: Db) {
    let s = Stack::start(db.clone(), "echo", FakeLlmConfig::default()).await;
    let (gone, access, _) = s.register("leaving@example.com").await;
    let (stays, other, _) = s.register("staying@example.com").await;
    make_data(&s, &gone, &access).await;
    make_data(&s, &stays, &other).await;
    let before = owned_rows(&db, &gone).await;
    assert!(before.iter().all(|n| *n > 0), "{before:?}");
    let before_bases = base_ids(&db, &gone).await;
    let kept = owned_rows(&db, &stays).await;

    // Wrong password: nothing happens.
    let code = status(
        s.authed(&access, Method::DELETE, "/api/users/me")
            .json(&json!({"password": "not it at all 1"})),
    )
    .await
    .0;
    assert_eq!(code, 401);
    assert_eq!(owned_rows(&db, &gone).await, before);

    let code = status(
        s.authed(&access, Method::DELETE, "/api/users/me")
            .json(&json!({"password": PASSWORD})),
    )
    .await
    .0;
    assert_eq!(code, 204);
    assert_eq!(
        owned_rows(&db, &gone).await,
        [0; 10],
        "everything of the account is gone"
    );
    assert_eq!(
        leftover_chunks(&db, &before_bases).await,
        0,
        "the knowledge base's chunks are gone"
    );
    assert_eq!(
        owned_rows(&db, &stays).await,
        kept,
        "nobody else's data changed"
    );
}

confab_testkit::backend_tests!(
    api_keys_need_the_password_and_die_with_the_logins,
    websockets_close_when_credentials_are_revoked,
    deleting_an_account_deletes_its_data,
);
