//! The agents crate's store traits over the history services, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chat_service::AppState;
use confab_agents::store::StoreError;
use confab_history::HistoryConfig;
use confab_models::{MessageRole, NewMessage, NewSession, SessionUpdate};
use confab_store::Db;
use serde_json::json;

async fn conversation_store(db: Db) {
    let state = AppState::new(db, HistoryConfig::default());
    let store = state.conversation_store();
    let s = store
        .create_session(
            "alice",
            NewSession {
                title: Some("engine".into()),
                ..NewSession::default()
            },
        )
        .await
        .unwrap();
    let id = s.id.to_string();
    assert_eq!(store.get_session("alice", &id).await.unwrap(), s);
    for i in 0..5 {
        let role = if i % 2 == 0 {
            MessageRole::User
        } else {
            MessageRole::Assistant
        };
        store
            .save_message("alice", &id, NewMessage::new(role, format!("m{i}")))
            .await
            .unwrap();
    }
    let recent = store.recent_messages("alice", &id, 3).await.unwrap();
    let texts: Vec<&str> = recent.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["m2", "m3", "m4"]);
    let renamed = store
        .update_session(
            "alice",
            &id,
            SessionUpdate {
                title: Some("renamed".into()),
                ..SessionUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.title, "renamed");

    // Another user's session, an unknown one: not found.
    assert!(matches!(
        store.get_session("bob", &id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .save_message("bob", &id, NewMessage::new(MessageRole::User, "x"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.recent_messages("bob", &id, 3).await,
        Err(StoreError::NotFound(_))
    ));
    let unknown = uuid::Uuid::now_v7().to_string();
    assert!(matches!(
        store.get_session("alice", &unknown).await,
        Err(StoreError::NotFound(_))
    ));
    // Bad input: invalid.
    assert!(matches!(
        store.get_session("alice", "nope").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .save_message("alice", &id, NewMessage::new(MessageRole::User, "  "))
            .await,
        Err(StoreError::Invalid(_))
    ));
    // A deleted session is gone for the engine.
    state.sessions.delete("alice", &id).await.unwrap();
    assert!(matches!(
        store.get_session("alice", &id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .save_message("alice", &id, NewMessage::new(MessageRole::User, "x"))
            .await,
        Err(StoreError::Invalid(_))
    ));
}

async fn memory_store(db: Db) {
    let state = AppState::new(db, HistoryConfig::default());
    let memory = state.memory_store();
    assert!(memory.recall("alice", 5).await.unwrap().is_empty());
    let item = memory
        .remember("alice", "likes tea", json!({"source": "chat"}))
        .await
        .unwrap();
    assert_eq!(item.metadata["source"], "chat");
    memory
        .remember("alice", "lives in Lisbon", json!(null))
        .await
        .unwrap();
    memory.remember("bob", "bob's", json!({})).await.unwrap();
    let items = memory.recall("alice", 5).await.unwrap();
    let texts: Vec<&str> = items.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["lives in Lisbon", "likes tea"]);
    assert_eq!(memory.recall("alice", 1).await.unwrap().len(), 1);
    assert!(memory.recall("alice", 0).await.unwrap().is_empty());
    assert!(matches!(
        memory.remember("alice", "", json!({})).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        memory.remember("alice", "x", json!([1])).await,
        Err(StoreError::Invalid(_))
    ));
}

confab_testkit::backend_tests!(conversation_store, memory_store);
