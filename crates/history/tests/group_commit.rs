//! Group-committed writes (`Db::write`) under the history services, run on
//! SQLite and PostgreSQL: every acknowledged write is committed and seen by
//! other connections, a failing or panicking write undoes only itself, and
//! a new conversation's first message is saved in the same write as its
//! session.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::HashMap;

use confab_history::{HistoryConfig, HistoryError, HistoryService, SessionService};
use confab_models::*;
use confab_store::diesel::prelude::*;
use confab_store::schema::{chat_messages, chat_sessions};
use confab_store::{Db, StoreError};

fn svc(db: &Db) -> (SessionService, HistoryService) {
    confab_history::services(db.clone(), HistoryConfig::default())
}

async fn new_session(ss: &SessionService, user: &str) -> ChatSession {
    ss.create(user, NewSession::default()).await.unwrap()
}

/// Messages per session as stored, read on a pooled connection (not the writer's).
async fn stored_counts(db: &Db) -> (HashMap<String, i64>, HashMap<String, i64>) {
    db.run(|conn| {
        let rows: Vec<(String, i64)> = chat_messages::table
            .group_by(chat_messages::session_id)
            .select((chat_messages::session_id, diesel::dsl::count_star()))
            .load(conn)?;
        let counts: Vec<(String, i64)> = chat_sessions::table
            .select((chat_sessions::id, chat_sessions::message_count))
            .load(conn)?;
        Ok::<_, StoreError>((rows.into_iter().collect(), counts.into_iter().collect()))
    })
    .await
    .unwrap()
}

async fn concurrent_writers_are_all_committed(db: Db) {
    let (ss, hs) = svc(&db);
    let mut sessions = Vec::new();
    for u in 0..8 {
        sessions.push(new_session(&ss, &format!("user-{u}")).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..64 {
        let hs = hs.clone();
        let s = sessions[w % sessions.len()].clone();
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for i in 0..10 {
                let m = hs
                    .save_message(
                        &s.user_id,
                        &s.id.to_string(),
                        NewMessage::new(MessageRole::User, format!("writer {w} message {i}")),
                    )
                    .await
                    .unwrap();
                ids.push(m.id);
            }
            ids
        });
    }
    let mut acknowledged = 0;
    while let Some(ids) = tasks.join_next().await {
        acknowledged += ids.unwrap().len();
    }
    assert_eq!(acknowledged, 640);
    let (rows, counts) = stored_counts(&db).await;
    for s in &sessions {
        let id = s.id.to_string();
        assert_eq!(rows.get(&id), Some(&80), "messages of {id}");
        assert_eq!(counts.get(&id), Some(&80), "message_count of {id}");
        // Timestamps follow insertion order within a session.
        let page = hs
            .get_session_messages(
                &s.user_id,
                &id,
                MessageQuery {
                    limit: Some(200),
                    ..MessageQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.items.len(), 80);
        assert!(
            page.items
                .windows(2)
                .all(|w| w[0].timestamp >= w[1].timestamp),
            "newest first, by time"
        );
    }
}

async fn a_failing_write_undoes_only_itself(db: Db) {
    let (ss, hs) = svc(&db);
    let live = new_session(&ss, "alice").await;
    let gone = new_session(&ss, "alice").await;
    ss.delete("alice", &gone.id.to_string()).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let hs = hs.clone();
        let db = db.clone();
        let live_id = live.id.to_string();
        let target = match i % 3 {
            0 => live.id.to_string(),
            1 => gone.id.to_string(),
            _ => String::new(),
        };
        tasks.spawn(async move {
            if target.is_empty() {
                // A write that changes a row, then fails: its change must go.
                let result: Result<(), HistoryError> = db
                    .write(move |conn| {
                        // One row only: on PostgreSQL an every-row update
                        // racing the message writers could deadlock.
                        diesel::update(chat_sessions::table.filter(chat_sessions::id.eq(live_id)))
                            .set(chat_sessions::title.eq("clobbered"))
                            .execute(conn)?;
                        Err(HistoryError::EmptyTitle)
                    })
                    .await;
                assert!(matches!(result, Err(HistoryError::EmptyTitle)));
                return 0;
            }
            let sid = target.clone();
            match hs
                .save_message("alice", &sid, NewMessage::new(MessageRole::User, "hi"))
                .await
            {
                Ok(_) => 1,
                Err(HistoryError::SessionDeleted(_)) => 0,
                Err(e) => panic!("unexpected {e}"),
            }
        });
    }
    let mut saved = 0;
    while let Some(n) = tasks.join_next().await {
        saved += n.unwrap();
    }
    assert_eq!(saved, 20);
    let (rows, counts) = stored_counts(&db).await;
    assert_eq!(rows.get(&live.id.to_string()), Some(&20));
    assert_eq!(counts.get(&live.id.to_string()), Some(&20));
    assert_eq!(rows.get(&gone.id.to_string()), None);
    let live_now = ss.get("alice", &live.id.to_string()).await.unwrap();
    assert_ne!(live_now.title, "clobbered");
}

async fn a_panicking_write_fails_alone(db: Db) {
    let (ss, hs) = svc(&db);
    let s = new_session(&ss, "bob").await;
    let sid = s.id.to_string();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let hs = hs.clone();
        let db = db.clone();
        let sid = sid.clone();
        tasks.spawn(async move {
            if i == 7 {
                let result: Result<(), HistoryError> = db
                    .write(|_conn| -> Result<(), HistoryError> { panic!("a bug in a write") })
                    .await;
                assert!(matches!(result, Err(HistoryError::Store(_))), "{result:?}");
                0
            } else {
                hs.save_message("bob", &sid, NewMessage::new(MessageRole::User, "ok"))
                    .await
                    .unwrap();
                1
            }
        });
    }
    let mut saved = 0;
    while let Some(n) = tasks.join_next().await {
        saved += n.unwrap();
    }
    assert_eq!(saved, 19);
    // The writer keeps working afterwards.
    hs.save_message("bob", &sid, NewMessage::new(MessageRole::User, "after"))
        .await
        .unwrap();
    let (rows, counts) = stored_counts(&db).await;
    assert_eq!(rows.get(&sid), Some(&20));
    assert_eq!(counts.get(&sid), Some(&20));
}

async fn first_message_shares_the_session_write(db: Db) {
    let (ss, hs) = svc(&db);
    let (session, message) = hs
        .create_session_with_message(
            "carol",
            NewSession {
                title: Some("Borrowing".into()),
                agent: Some("course".into()),
                course_id: Some("rust".into()),
                ..NewSession::default()
            },
            NewMessage::new(MessageRole::User, "what is borrowing?"),
        )
        .await
        .unwrap();
    assert_eq!(session.message_count, 1);
    assert_eq!(message.session_id, session.id);
    let stored = ss.get("carol", &session.id.to_string()).await.unwrap();
    assert_eq!(stored.title, "Borrowing");
    assert_eq!(stored.message_count, 1);
    assert_eq!(stored.course_id.as_deref(), Some("rust"));
    let recent = hs
        .recent_messages("carol", &session.id.to_string(), 10)
        .await
        .unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].content, "what is borrowing?");
    // Bad input is refused before anything is written.
    let bad = hs
        .create_session_with_message(
            "carol",
            NewSession::default(),
            NewMessage::new(MessageRole::User, "   "),
        )
        .await;
    assert!(matches!(bad, Err(HistoryError::EmptyContent)), "{bad:?}");
    assert_eq!(
        ss.list_user_sessions("carol", SessionQuery::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // An empty session gets its title with its first message, and only then.
    let empty = new_session(&ss, "carol").await;
    let sid = empty.id.to_string();
    hs.save_first_message(
        "carol",
        &sid,
        "First words",
        NewMessage::new(MessageRole::User, "first words here"),
    )
    .await
    .unwrap();
    hs.save_first_message(
        "carol",
        &sid,
        "Second words",
        NewMessage::new(MessageRole::User, "second"),
    )
    .await
    .unwrap();
    let stored = ss.get("carol", &sid).await.unwrap();
    assert_eq!(stored.title, "First words");
    assert_eq!(stored.message_count, 2);
    // Another user's session is not found, and nothing changes.
    let other = hs
        .save_first_message(
            "mallory",
            &sid,
            "Stolen",
            NewMessage::new(MessageRole::User, "x"),
        )
        .await;
    assert!(
        matches!(other, Err(HistoryError::SessionNotFound(_))),
        "{other:?}"
    );
    assert_eq!(ss.get("carol", &sid).await.unwrap().title, "First words");
}

confab_testkit::backend_tests!(
    concurrent_writers_are_all_committed,
    a_failing_write_undoes_only_itself,
    a_panicking_write_fails_alone,
    first_message_shares_the_session_write,
);

/// With group commit off every write is a transaction of its own, with the same results.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_off_behaves_the_same() {
    let test_db = confab_testkit::TestDb::sqlite_with(|c| c.write_batch = 1);
    concurrent_writers_are_all_committed(test_db.db().clone()).await;
    let test_db = confab_testkit::TestDb::sqlite_with(|c| c.write_batch = 1);
    a_failing_write_undoes_only_itself(test_db.db().clone()).await;
}
