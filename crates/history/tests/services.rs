//! Session and history service behaviour, run on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{Duration, Utc};
use confab_history::{HistoryConfig, HistoryError, HistoryService, SessionService};
use confab_models::*;
use confab_store::Db;
use confab_store::diesel::prelude::*;
use confab_store::schema::{chat_messages, chat_sessions};
use serde_json::json;

fn svc(db: &Db) -> (SessionService, HistoryService) {
    confab_history::services(db.clone(), HistoryConfig::default())
}

async fn session(ss: &SessionService, user: &str, title: &str) -> ChatSession {
    ss.create(
        user,
        NewSession {
            title: Some(title.into()),
            ..NewSession::default()
        },
    )
    .await
    .unwrap()
}

async fn say(
    hs: &HistoryService,
    user: &str,
    s: &ChatSession,
    role: MessageRole,
    text: &str,
) -> Message {
    hs.save_message(user, &s.id.to_string(), NewMessage::new(role, text))
        .await
        .unwrap()
}

async fn count_rows(db: &Db) -> (i64, i64) {
    db.run(|conn| {
        let s: i64 = chat_sessions::table.count().get_result(conn)?;
        let m: i64 = chat_messages::table.count().get_result(conn)?;
        Ok::<_, confab_store::StoreError>((s, m))
    })
    .await
    .unwrap()
}

/// Moves a session's `updated_at` into the past.
async fn backdate(db: &Db, id: uuid::Uuid, days: i64) {
    let when = (Utc::now() - Duration::days(days)).naive_utc();
    db.run(move |conn| {
        diesel::update(chat_sessions::table.filter(chat_sessions::id.eq(id.to_string())))
            .set(chat_sessions::updated_at.eq(when))
            .execute(conn)
            .map_err(confab_store::StoreError::from)
    })
    .await
    .unwrap();
}

async fn create_get_update(db: Db) {
    let (ss, _) = svc(&db);
    let s = ss.create("alice", NewSession::default()).await.unwrap();
    assert_eq!(s.title, "New chat");
    assert_eq!(s.model_id, "builtin");
    assert_eq!(s.agent, "dashboard");
    assert_eq!(s.status, SessionStatus::Active);
    assert_eq!(s.message_count, 0);
    assert_eq!(ss.get("alice", &s.id.to_string()).await.unwrap(), s);

    let c = ss
        .create(
            "alice",
            NewSession {
                title: Some("  Rust course chat  ".into()),
                model_id: Some("llama3".into()),
                agent: Some("course".into()),
                course_id: Some("rust-101".into()),
                metadata: Some(json!({"lang": "en", "n": 1})),
            },
        )
        .await
        .unwrap();
    assert_eq!(c.title, "Rust course chat");
    assert_eq!(c.course_id.as_deref(), Some("rust-101"));
    assert_eq!(c.metadata["lang"], "en");

    let u = ss
        .update(
            "alice",
            &c.id.to_string(),
            SessionUpdate {
                title: Some("Renamed".into()),
                model_id: None,
                metadata: Some(json!({"pinned": true})),
            },
        )
        .await
        .unwrap();
    assert_eq!(u.title, "Renamed");
    assert_eq!(u.model_id, "llama3");
    assert_eq!(
        u.metadata,
        json!({"pinned": true}).as_object().unwrap().clone()
    );
    assert!(u.updated_at >= c.updated_at);
    assert_eq!(ss.get("alice", &c.id.to_string()).await.unwrap(), u);

    // Another user sees nothing.
    let id = c.id.to_string();
    assert!(matches!(
        ss.get("bob", &id).await,
        Err(HistoryError::SessionNotFound(_))
    ));
    assert!(matches!(
        ss.update(
            "bob",
            &id,
            SessionUpdate {
                title: Some("x".into()),
                ..Default::default()
            }
        )
        .await,
        Err(HistoryError::SessionNotFound(_))
    ));
    assert!(matches!(
        ss.delete("bob", &id).await,
        Err(HistoryError::SessionNotFound(_))
    ));

    // Validation: each its own error.
    assert!(matches!(
        ss.get("alice", "not-a-uuid").await,
        Err(HistoryError::InvalidId { .. })
    ));
    let bad = |title: &str| NewSession {
        title: Some(title.into()),
        ..Default::default()
    };
    assert!(matches!(
        ss.create("alice", bad("   ")).await,
        Err(HistoryError::EmptyTitle)
    ));
    assert!(matches!(
        ss.create("alice", bad(&"t".repeat(201))).await,
        Err(HistoryError::TitleTooLong { len: 201, max: 200 })
    ));
    assert!(matches!(
        ss.create(
            "alice",
            NewSession {
                metadata: Some(json!([1, 2])),
                ..Default::default()
            }
        )
        .await,
        Err(HistoryError::MetadataNotObject(_))
    ));
    assert!(matches!(
        ss.update(
            "alice",
            &id,
            SessionUpdate {
                metadata: Some(json!(7)),
                ..Default::default()
            }
        )
        .await,
        Err(HistoryError::MetadataNotObject(_))
    ));
    assert!(matches!(
        ss.create("", NewSession::default()).await,
        Err(HistoryError::InvalidUser(_))
    ));
    // Failed calls changed nothing.
    assert_eq!(ss.get("alice", &id).await.unwrap(), u);
}

async fn list_pagination_survives_inserts(db: Db) {
    let (ss, _) = svc(&db);
    let mut originals = Vec::new();
    for i in 0..23 {
        originals.push(session(&ss, "alice", &format!("s{i}")).await.id);
    }
    session(&ss, "bob", "not alice's").await;
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = ss
            .list_user_sessions(
                "alice",
                SessionQuery {
                    cursor: cursor.clone(),
                    limit: Some(5),
                    status: None,
                },
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 5);
        for w in page.items.windows(2) {
            assert!(
                (w[0].updated_at, w[0].id) > (w[1].updated_at, w[1].id),
                "not newest first"
            );
        }
        seen.extend(page.items.iter().map(|s| s.id));
        pages += 1;
        // Rows inserted between pages must not disturb the walk.
        session(&ss, "alice", &format!("inserted {pages}")).await;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let seen_set: HashSet<_> = seen.iter().copied().collect();
    assert_eq!(seen.len(), seen_set.len(), "a session was repeated");
    for id in &originals {
        assert!(seen_set.contains(id), "session {id} was skipped");
    }
    assert_eq!(
        seen.len(),
        originals.len(),
        "only pre-existing sessions are behind the first page"
    );
    assert!(matches!(
        ss.list_user_sessions(
            "alice",
            SessionQuery {
                cursor: Some("garbage".into()),
                ..Default::default()
            }
        )
        .await,
        Err(HistoryError::InvalidCursor(_))
    ));
}

async fn archive_unarchive_delete(db: Db) {
    let (ss, hs) = svc(&db);
    let a = session(&ss, "alice", "keep").await;
    let b = session(&ss, "alice", "archive me").await;
    let c = session(&ss, "alice", "delete me").await;
    say(&hs, "alice", &c, MessageRole::User, "zebra crossing").await;
    let bid = b.id.to_string();
    let cid = c.id.to_string();

    assert_eq!(
        ss.archive("alice", &bid).await.unwrap().status,
        SessionStatus::Archived
    );
    assert_eq!(
        ss.archive("alice", &bid).await.unwrap().status,
        SessionStatus::Archived
    );
    let list = |status| {
        ss.list_user_sessions(
            "alice",
            SessionQuery {
                status,
                ..Default::default()
            },
        )
    };
    let ids = |p: SessionPage| p.items.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(
        ids(list(Some(SessionStatus::Archived)).await.unwrap()),
        vec![b.id]
    );
    assert!(!ids(list(Some(SessionStatus::Active)).await.unwrap()).contains(&b.id));
    assert!(ids(list(None).await.unwrap()).contains(&b.id));
    assert_eq!(
        ss.unarchive("alice", &bid).await.unwrap().status,
        SessionStatus::Active
    );

    assert_eq!(
        hs.search_messages("alice", "zebra", None, None)
            .await
            .unwrap()
            .len(),
        1
    );
    let d = ss.delete("alice", &cid).await.unwrap();
    assert_eq!(d.status, SessionStatus::Deleted);
    assert_eq!(
        ss.delete("alice", &cid).await.unwrap().status,
        SessionStatus::Deleted
    );
    let all = ids(list(None).await.unwrap());
    assert!(all.contains(&a.id) && !all.contains(&c.id));
    assert!(
        hs.search_messages("alice", "zebra", None, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        ss.search_sessions("alice", "delete", None)
            .await
            .unwrap()
            .is_empty()
    );

    // A deleted session is read-only.
    assert!(matches!(
        ss.update(
            "alice",
            &cid,
            SessionUpdate {
                title: Some("x".into()),
                ..Default::default()
            }
        )
        .await,
        Err(HistoryError::SessionDeleted(_))
    ));
    assert!(matches!(
        ss.unarchive("alice", &cid).await,
        Err(HistoryError::SessionDeleted(_))
    ));
    assert!(matches!(
        ss.archive("alice", &cid).await,
        Err(HistoryError::SessionDeleted(_))
    ));
    assert!(matches!(
        hs.save_message("alice", &cid, NewMessage::new(MessageRole::User, "hi"))
            .await,
        Err(HistoryError::SessionDeleted(_))
    ));
    assert!(matches!(
        hs.export_session("alice", &cid, "json").await,
        Err(HistoryError::SessionDeleted(_))
    ));
}

async fn save_message_counts_and_validates(db: Db) {
    let (ss, hs) = svc(&db);
    let s = session(&ss, "alice", "chat").await;
    let sid = s.id.to_string();
    let m1 = say(&hs, "alice", &s, MessageRole::User, "hello").await;
    let mut reply = NewMessage::new(MessageRole::Assistant, "hi there");
    reply.model_id = Some("builtin".into());
    reply.tokens_used = Some(12);
    reply.response_time = Some(0.25);
    reply.metadata = Some(json!({"sources": 0}));
    let m2 = hs.save_message("alice", &sid, reply).await.unwrap();
    assert_eq!(m2.tokens_used, Some(12));
    assert_eq!(m2.metadata["sources"], 0);
    assert!(m2.timestamp >= m1.timestamp);
    let got = ss.get("alice", &sid).await.unwrap();
    assert_eq!(got.message_count, 2);
    assert!(got.updated_at >= m2.timestamp);

    let page = hs
        .get_session_messages("alice", &sid, MessageQuery::default())
        .await
        .unwrap();
    assert_eq!(page.items, vec![m2.clone(), m1.clone()]);

    let try_save = |user: &'static str, id: String, msg: NewMessage| {
        let hs = hs.clone();
        async move { hs.save_message(user, &id, msg).await }
    };
    assert!(matches!(
        try_save(
            "alice",
            sid.clone(),
            NewMessage::new(MessageRole::User, " \n ")
        )
        .await,
        Err(HistoryError::EmptyContent)
    ));
    assert!(matches!(
        try_save(
            "alice",
            sid.clone(),
            NewMessage::new(MessageRole::User, "x".repeat(64 * 1024 + 1))
        )
        .await,
        Err(HistoryError::ContentTooLong { max: 65536, .. })
    ));
    // Exactly at the limit is fine.
    try_save(
        "alice",
        sid.clone(),
        NewMessage::new(MessageRole::User, "x".repeat(64 * 1024)),
    )
    .await
    .unwrap();
    assert!(matches!(
        try_save(
            "alice",
            sid.clone(),
            NewMessage::new(MessageRole::User, "nul\0byte")
        )
        .await,
        Err(HistoryError::InvalidField {
            field: "content",
            ..
        })
    ));
    let mut bad_meta = NewMessage::new(MessageRole::User, "x");
    bad_meta.metadata = Some(json!("string"));
    assert!(matches!(
        try_save("alice", sid.clone(), bad_meta).await,
        Err(HistoryError::MetadataNotObject(_))
    ));
    assert!(matches!(
        try_save(
            "bob",
            sid.clone(),
            NewMessage::new(MessageRole::User, "intrude")
        )
        .await,
        Err(HistoryError::SessionNotFound(_))
    ));
    assert!(matches!(
        try_save(
            "alice",
            uuid::Uuid::now_v7().to_string(),
            NewMessage::new(MessageRole::User, "x")
        )
        .await,
        Err(HistoryError::SessionNotFound(_))
    ));
    assert!(matches!(
        try_save(
            "alice",
            "123".into(),
            NewMessage::new(MessageRole::User, "x")
        )
        .await,
        Err(HistoryError::InvalidId {
            kind: "session",
            ..
        })
    ));
    // Failed saves left no trace.
    assert_eq!(ss.get("alice", &sid).await.unwrap().message_count, 3);
    assert_eq!(count_rows(&db).await.1, 3);
}

async fn message_pages_both_ways_survive_inserts(db: Db) {
    let (ss, hs) = svc(&db);
    let s = session(&ss, "alice", "long chat").await;
    let sid = s.id.to_string();
    let mut originals = Vec::new();
    for i in 0..27 {
        originals.push(
            say(&hs, "alice", &s, MessageRole::User, &format!("message {i}"))
                .await
                .id,
        );
    }
    // Walk backwards (older) from the newest, appending between pages.
    let mut seen = Vec::new();
    let mut q = MessageQuery {
        limit: Some(6),
        ..Default::default()
    };
    let first = hs
        .get_session_messages("alice", &sid, q.clone())
        .await
        .unwrap();
    let newest_cursor = first.newer_cursor.clone().unwrap();
    let mut page = first;
    let mut added = Vec::new();
    loop {
        for w in page.items.windows(2) {
            assert!(w[0].timestamp >= w[1].timestamp, "page not newest first");
        }
        seen.extend(page.items.iter().map(|m| m.id));
        added.push(
            say(
                &hs,
                "alice",
                &s,
                MessageRole::Assistant,
                "appended meanwhile",
            )
            .await
            .id,
        );
        match page.older_cursor.clone() {
            Some(c) => {
                q.before = Some(c);
                page = hs
                    .get_session_messages("alice", &sid, q.clone())
                    .await
                    .unwrap();
            }
            None => break,
        }
    }
    let mut expected = originals.clone();
    expected.reverse();
    assert_eq!(
        seen, expected,
        "backward walk repeated or skipped a message"
    );

    // Forwards from the first page's newest message: exactly the appended ones, in order.
    let mut forward = Vec::new();
    let mut after = Some(newest_cursor);
    while let Some(c) = after.take() {
        let p = hs
            .get_session_messages(
                "alice",
                &sid,
                MessageQuery {
                    after: Some(c.clone()),
                    limit: Some(4),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        if p.items.is_empty() {
            assert_eq!(
                p.newer_cursor,
                Some(c),
                "an empty forward page keeps the cursor for polling"
            );
            break;
        }
        assert!(p.older_cursor.is_some());
        let mut ids: Vec<_> = p.items.iter().map(|m| m.id).collect();
        ids.reverse();
        forward.extend(ids);
        after = p.newer_cursor;
    }
    assert_eq!(forward, added);

    assert!(matches!(
        hs.get_session_messages(
            "alice",
            &sid,
            MessageQuery {
                before: Some("m1".into()),
                after: Some("m2".into()),
                limit: None
            }
        )
        .await,
        Err(HistoryError::InvalidField {
            field: "cursor",
            ..
        })
    ));
    assert!(matches!(
        hs.get_session_messages(
            "alice",
            &sid,
            MessageQuery {
                before: Some("zzz".into()),
                ..Default::default()
            }
        )
        .await,
        Err(HistoryError::InvalidCursor(_))
    ));
    assert!(matches!(
        hs.get_session_messages("bob", &sid, MessageQuery::default())
            .await,
        Err(HistoryError::SessionNotFound(_))
    ));
    let recent = hs.recent_messages("alice", &sid, 3).await.unwrap();
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[2].id, *added.last().unwrap());
    assert!(recent[0].timestamp <= recent[2].timestamp);
}

async fn search_ranks_and_scopes(db: Db) {
    let (ss, hs) = svc(&db);
    let a1 = session(&ss, "alice", "rust questions").await;
    let a2 = session(&ss, "alice", "cooking").await;
    let b1 = session(&ss, "bob", "bob's rust").await;
    let both = say(
        &hs,
        "alice",
        &a1,
        MessageRole::User,
        "How does the borrow checker work in Rust?",
    )
    .await;
    let one = say(
        &hs,
        "alice",
        &a1,
        MessageRole::Assistant,
        "Rust has ownership and lifetimes.",
    )
    .await;
    let none = say(
        &hs,
        "alice",
        &a2,
        MessageRole::User,
        "How long do I boil pasta?",
    )
    .await;
    say(
        &hs,
        "bob",
        &b1,
        MessageRole::User,
        "borrow checker rust secrets of bob",
    )
    .await;

    let hits = hs
        .search_messages("alice", "borrow checker rust", None, None)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].message.id, both.id);
    assert_eq!(hits[0].session_title, "rust questions");
    assert!(
        hits[0].snippet.contains("<mark>"),
        "snippet: {}",
        hits[0].snippet
    );

    // No message has every word: fall back to any word, best first, never the unrelated one.
    let hits = hs
        .search_messages("alice", "borrow rust ownership", None, None)
        .await
        .unwrap();
    let ids: Vec<_> = hits.iter().map(|h| h.message.id).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&both.id) && ids.contains(&one.id));
    assert!(!ids.contains(&none.id));
    assert!(hits[0].rank >= hits[1].rank);

    // A message with the query words ranks above one without.
    let hits = hs
        .search_messages("alice", "rust pasta lifetimes", None, None)
        .await
        .unwrap();
    let pos = |id| hits.iter().position(|h| h.message.id == id);
    assert!(
        pos(one.id).unwrap() < pos(both.id).unwrap(),
        "two matching words beat one"
    );

    // Case and scope.
    assert_eq!(
        hs.search_messages("alice", "PASTA", None, None)
            .await
            .unwrap()
            .len(),
        1
    );
    let in_a2 = hs
        .search_messages("alice", "rust", Some(&a2.id.to_string()), None)
        .await
        .unwrap();
    assert!(in_a2.is_empty());
    let in_a1 = hs
        .search_messages("alice", "rust", Some(&a1.id.to_string()), None)
        .await
        .unwrap();
    assert_eq!(in_a1.len(), 2);
    let bobs = hs
        .search_messages("bob", "borrow", None, None)
        .await
        .unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].message.session_id, b1.id);
    assert!(
        hs.search_messages("carol", "rust", None, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        hs.search_messages("alice", "rust", Some("nope"), None)
            .await,
        Err(HistoryError::InvalidId { .. })
    ));

    // Unicode.
    let ru = session(&ss, "alice", "Привет мир").await;
    say(
        &hs,
        "alice",
        &ru,
        MessageRole::User,
        "Объясни заимствование в Rust",
    )
    .await;
    assert_eq!(
        hs.search_messages("alice", "заимствование", None, None)
            .await
            .unwrap()
            .len(),
        1
    );

    // Sessions: by title (Unicode case-insensitive) and by message text.
    let by_title = ss.search_sessions("alice", "привет", None).await.unwrap();
    assert_eq!(by_title.len(), 1);
    assert!(by_title[0].title_match);
    assert_eq!(by_title[0].session.id, ru.id);
    let by_text = ss.search_sessions("alice", "pasta", None).await.unwrap();
    assert_eq!(by_text.len(), 1);
    assert_eq!(by_text[0].session.id, a2.id);
    assert!(!by_text[0].title_match);
    assert!(
        by_text[0]
            .snippet
            .as_deref()
            .unwrap_or("")
            .contains("<mark>")
    );
    let rust = ss.search_sessions("alice", "rust", None).await.unwrap();
    assert_eq!(rust[0].session.id, a1.id, "title match first");
    assert!(rust.iter().all(|h| h.session.user_id == "alice"));
}

async fn hostile_search_is_harmless(db: Db) {
    let (ss, hs) = svc(&db);
    let s = session(&ss, "alice", "normal").await;
    say(
        &hs,
        "alice",
        &s,
        MessageRole::User,
        "drop table near the star (quoted) text",
    )
    .await;
    let before = count_rows(&db).await;
    let long = "ab ".repeat(3500);
    let inputs = [
        "\"",
        "\"\"",
        "'",
        "''",
        "*",
        "**",
        "NEAR",
        "NEAR(",
        "a NEAR b",
        "-",
        "-drop",
        "(",
        ")",
        "()",
        "'; DROP TABLE chat_messages; --",
        "\"; DROP TABLE chat_sessions; --",
        "AND",
        "OR",
        "NOT",
        "a OR",
        "^",
        ":",
        "col:drop",
        "{}",
        "\\",
        "%",
        "_",
        "&",
        "|",
        "!",
        "<->",
        "'a' & 'b'",
        "日本語",
        "🙂",
        "",
        "   ",
        "\u{0}",
        long.as_str(),
        "x".repeat(10_240).leak(),
    ];
    for q in inputs {
        let hits = hs.search_messages("alice", q, None, None).await;
        assert!(
            hits.is_ok(),
            "{:?}: {:?}",
            &q[..q.len().min(30)],
            hits.err()
        );
        let sess = ss.search_sessions("alice", q, None).await;
        assert!(
            sess.is_ok(),
            "{:?}: {:?}",
            &q[..q.len().min(30)],
            sess.err()
        );
    }
    assert_eq!(
        hs.search_messages("alice", "'; DROP TABLE", None, None)
            .await
            .unwrap()
            .len(),
        1,
        "the words still match"
    );
    assert_eq!(count_rows(&db).await, before, "search changed the database");
    assert_eq!(
        hs.search_messages("alice", "star", None, None)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn update_and_delete_messages(db: Db) {
    let (ss, hs) = svc(&db);
    let s = session(&ss, "alice", "edits").await;
    let sid = s.id.to_string();
    let m1 = say(&hs, "alice", &s, MessageRole::User, "original giraffe").await;
    let m2 = say(&hs, "alice", &s, MessageRole::Assistant, "reply").await;
    let mid = m1.id.to_string();

    let up = hs
        .update_message(
            "alice",
            &mid,
            MessageUpdate {
                content: Some("edited okapi".into()),
                metadata: Some(json!({"edited": true})),
            },
        )
        .await
        .unwrap();
    assert_eq!(up.content, "edited okapi");
    assert_eq!(up.timestamp, m1.timestamp);
    assert!(
        hs.search_messages("alice", "giraffe", None, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        hs.search_messages("alice", "okapi", None, None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        hs.update_message(
            "alice",
            &mid,
            MessageUpdate {
                content: Some("".into()),
                metadata: None
            }
        )
        .await,
        Err(HistoryError::EmptyContent)
    ));
    assert!(matches!(
        hs.update_message(
            "bob",
            &mid,
            MessageUpdate {
                content: Some("hack".into()),
                metadata: None
            }
        )
        .await,
        Err(HistoryError::MessageNotFound(_))
    ));
    assert!(matches!(
        hs.delete_message("bob", &mid).await,
        Err(HistoryError::MessageNotFound(_))
    ));
    assert!(matches!(
        hs.delete_message("alice", "x").await,
        Err(HistoryError::InvalidId {
            kind: "message",
            ..
        })
    ));

    hs.delete_message("alice", &mid).await.unwrap();
    assert!(matches!(
        hs.delete_message("alice", &mid).await,
        Err(HistoryError::MessageNotFound(_))
    ));
    assert_eq!(ss.get("alice", &sid).await.unwrap().message_count, 1);
    let page = hs
        .get_session_messages("alice", &sid, MessageQuery::default())
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![m2.id]
    );
    assert!(
        hs.search_messages("alice", "okapi", None, None)
            .await
            .unwrap()
            .is_empty()
    );

    ss.delete("alice", &sid).await.unwrap();
    assert!(matches!(
        hs.update_message(
            "alice",
            &m2.id.to_string(),
            MessageUpdate {
                content: Some("late".into()),
                metadata: None
            }
        )
        .await,
        Err(HistoryError::SessionDeleted(_))
    ));
}

async fn export_import_round_trip(db: Db) {
    let (ss, hs) = svc(&db);
    let s = ss
        .create(
            "alice",
            NewSession {
                title: Some("Ownership, explained".into()),
                model_id: Some("qwen".into()),
                agent: Some("course".into()),
                course_id: Some("rust-101".into()),
                metadata: Some(json!({"tags": ["rust"], "level": 2})),
            },
        )
        .await
        .unwrap();
    let sid = s.id.to_string();
    say(&hs, "alice", &s, MessageRole::System, "You are a tutor.").await;
    say(
        &hs,
        "alice",
        &s,
        MessageRole::User,
        "What is a move?\nExplain with code.",
    )
    .await;
    let mut reply = NewMessage::new(
        MessageRole::Assistant,
        "A move transfers ownership:\n\n```rust\nlet b = a;\n```",
    );
    reply.model_id = Some("qwen".into());
    reply.tokens_used = Some(42);
    reply.response_time = Some(1.5);
    reply.metadata = Some(json!({"sources": [{"file_path": "a.md"}]}));
    hs.save_message("alice", &sid, reply).await.unwrap();

    let json_export = hs.export_session("alice", &sid, "json").await.unwrap();
    assert_eq!(json_export.content_type, "application/json");
    assert!(
        json_export.filename.starts_with("ownership-explained-")
            && json_export.filename.ends_with(".json")
    );
    let imported = hs.import_session("bob", &json_export.body).await.unwrap();
    assert_ne!(imported.id, s.id);
    assert_eq!(imported.user_id, "bob");
    let original = hs.export_document("alice", &sid).await.unwrap();
    let copy = hs
        .export_document("bob", &imported.id.to_string())
        .await
        .unwrap();
    assert_eq!(copy.session.title, original.session.title);
    assert_eq!(copy.session.model_id, original.session.model_id);
    assert_eq!(copy.session.agent, original.session.agent);
    assert_eq!(copy.session.course_id, original.session.course_id);
    assert_eq!(copy.session.metadata, original.session.metadata);
    assert_eq!(copy.session.created_at, original.session.created_at);
    assert_eq!(copy.session.message_count, 3);
    assert_eq!(copy.messages.len(), original.messages.len());
    for (a, b) in original.messages.iter().zip(&copy.messages) {
        assert_ne!(a.id, b.id);
        assert_eq!(b.session_id, imported.id);
        assert_eq!(
            (a.role, &a.content, a.timestamp),
            (b.role, &b.content, b.timestamp)
        );
        assert_eq!(
            (&a.model_id, a.tokens_used, a.response_time),
            (&b.model_id, b.tokens_used, b.response_time)
        );
        assert_eq!(a.metadata, b.metadata);
    }
    // The copy is searchable for its new owner only.
    assert_eq!(
        hs.search_messages("bob", "ownership", None, None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        hs.search_messages("alice", "ownership", None, None)
            .await
            .unwrap()
            .len(),
        1
    );

    let md = hs.export_session("alice", &sid, "markdown").await.unwrap();
    assert_eq!(md.content_type, "text/markdown; charset=utf-8");
    assert!(md.filename.ends_with(".md"));
    assert!(md.body.starts_with("# Ownership, explained\n"));
    assert!(md.body.contains("### User · "));
    assert!(md.body.contains("### Assistant (qwen) · "));
    assert!(md.body.contains("```rust\nlet b = a;\n```"));
    let txt = hs.export_session("alice", &sid, "txt").await.unwrap();
    assert!(
        txt.body
            .starts_with("Ownership, explained\n====================")
    );
    assert!(txt.body.contains("] System:\nYou are a tutor."));
    assert!(txt.body.contains("Messages: 3"));

    assert!(matches!(
        hs.export_session("alice", &sid, "pdf").await,
        Err(HistoryError::UnknownExportFormat(f)) if f == "pdf"
    ));
    assert!(matches!(
        hs.export_session("bob", &sid, "json").await,
        Err(HistoryError::SessionNotFound(_))
    ));
    let before = count_rows(&db).await;
    for bad in [
        "",
        "{}",
        "[]",
        "not json",
        r#"{"format":"other","exported_at":"2026-01-01T00:00:00Z"}"#,
    ] {
        assert!(
            matches!(
                hs.import_session("bob", bad).await,
                Err(HistoryError::InvalidImport(_))
            ),
            "{bad}"
        );
    }
    let mut doc: serde_json::Value = serde_json::from_str(&json_export.body).unwrap();
    doc["format"] = json!("something.else");
    assert!(matches!(
        hs.import_session("bob", &doc.to_string()).await,
        Err(HistoryError::InvalidImport(_))
    ));
    doc["format"] = json!(SessionExport::FORMAT);
    doc["messages"][1]["content"] = json!("");
    let err = hs
        .import_session("bob", &doc.to_string())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HistoryError::InvalidImport(m) if m.contains("message 2")),
        "{err}"
    );
    assert_eq!(
        count_rows(&db).await,
        before,
        "failed imports wrote nothing"
    );
}

async fn statistics(db: Db) {
    let (ss, hs) = svc(&db);
    let s = session(&ss, "alice", "stats").await;
    let sid = s.id.to_string();
    let empty = hs.session_statistics("alice", &sid).await.unwrap();
    assert_eq!(empty.message_count, 0);
    assert_eq!(empty.average_response_time, None);
    assert_eq!(empty.first_message_at, None);

    let first = say(&hs, "alice", &s, MessageRole::User, "q1").await;
    for (tokens, rt) in [(10, 1.0), (30, 3.0)] {
        let mut r = NewMessage::new(MessageRole::Assistant, "a");
        r.tokens_used = Some(tokens);
        r.response_time = Some(rt);
        hs.save_message("alice", &sid, r).await.unwrap();
    }
    say(&hs, "alice", &s, MessageRole::Tool, "tool output").await;
    let last = say(&hs, "alice", &s, MessageRole::System, "note").await;
    let st = hs.session_statistics("alice", &sid).await.unwrap();
    assert_eq!(st.message_count, 5);
    assert_eq!(
        (
            st.user_messages,
            st.assistant_messages,
            st.tool_messages,
            st.system_messages
        ),
        (1, 2, 1, 1)
    );
    assert_eq!(st.total_tokens, 40);
    assert_eq!(st.average_response_time, Some(2.0));
    assert_eq!(st.first_message_at, Some(first.timestamp));
    assert_eq!(st.last_message_at, Some(last.timestamp));
    assert!(matches!(
        hs.session_statistics("bob", &sid).await,
        Err(HistoryError::SessionNotFound(_))
    ));

    let other = session(&ss, "alice", "archived").await;
    say(&hs, "alice", &other, MessageRole::User, "x").await;
    ss.archive("alice", &other.id.to_string()).await.unwrap();
    let gone = session(&ss, "alice", "gone").await;
    say(&hs, "alice", &gone, MessageRole::User, "x").await;
    ss.delete("alice", &gone.id.to_string()).await.unwrap();
    session(&ss, "bob", "bob's").await;
    let us = ss.stats("alice").await.unwrap();
    assert_eq!(
        (us.total_sessions, us.active_sessions, us.archived_sessions),
        (2, 1, 1)
    );
    assert_eq!(us.total_messages, 6);
    assert_eq!(us.total_tokens, 40);
    assert!(us.last_activity.is_some());
    assert_eq!(
        ss.stats("nobody").await.unwrap(),
        UserSessionStats::default()
    );
}

async fn cleanup_dry_run_and_real(db: Db) {
    let (ss, hs) = svc(&db);
    let fresh = session(&ss, "alice", "fresh").await;
    let idle = session(&ss, "alice", "idle").await;
    let old_deleted = session(&ss, "bob", "old deleted").await;
    let new_deleted = session(&ss, "bob", "new deleted").await;
    say(
        &hs,
        "bob",
        &old_deleted,
        MessageRole::User,
        "unicorn memories",
    )
    .await;
    ss.delete("bob", &old_deleted.id.to_string()).await.unwrap();
    ss.delete("bob", &new_deleted.id.to_string()).await.unwrap();
    backdate(&db, idle.id, 40).await;
    backdate(&db, old_deleted.id, 40).await;

    assert!(matches!(
        ss.cleanup_old(0, true).await,
        Err(HistoryError::InvalidField {
            field: "days_old",
            ..
        })
    ));
    let before = count_rows(&db).await;
    let dry = ss.cleanup_old(30, true).await.unwrap();
    assert!(dry.dry_run);
    assert_eq!((dry.archived, dry.purged), (1, 1));
    assert_eq!(dry.archived_ids, vec![idle.id]);
    assert_eq!(dry.purged_ids, vec![old_deleted.id]);
    assert_eq!(count_rows(&db).await, before, "dry run changed rows");
    assert_eq!(
        ss.get("alice", &idle.id.to_string()).await.unwrap().status,
        SessionStatus::Active
    );

    let real = ss.cleanup_old(30, false).await.unwrap();
    assert_eq!((real.archived, real.purged), (1, 1));
    assert_eq!(real.archived_ids, dry.archived_ids);
    assert_eq!(real.purged_ids, dry.purged_ids);
    let idle_now = ss.get("alice", &idle.id.to_string()).await.unwrap();
    assert_eq!(idle_now.status, SessionStatus::Archived);
    assert_eq!(
        ss.get("alice", &fresh.id.to_string()).await.unwrap().status,
        SessionStatus::Active
    );
    assert!(matches!(
        ss.get("bob", &old_deleted.id.to_string()).await,
        Err(HistoryError::SessionNotFound(_))
    ));
    assert_eq!(
        ss.get("bob", &new_deleted.id.to_string())
            .await
            .unwrap()
            .status,
        SessionStatus::Deleted
    );
    assert_eq!(
        count_rows(&db).await,
        (before.0 - 1, before.1 - 1),
        "purge removed the session and its message"
    );
    let again = ss.cleanup_old(30, false).await.unwrap();
    assert_eq!((again.archived, again.purged), (0, 0));
}

async fn purge_cascades_to_messages_and_search(db: Db) {
    let (ss, hs) = svc(&db);
    let s = session(&ss, "alice", "to purge").await;
    let keep = session(&ss, "alice", "to keep").await;
    for i in 0..5 {
        say(
            &hs,
            "alice",
            &s,
            MessageRole::User,
            &format!("narwhal fact {i}"),
        )
        .await;
    }
    say(&hs, "alice", &keep, MessageRole::User, "narwhal survivor").await;
    assert_eq!(
        hs.search_messages("alice", "narwhal", None, None)
            .await
            .unwrap()
            .len(),
        6
    );
    assert!(matches!(
        ss.purge("bob", &s.id.to_string()).await,
        Err(HistoryError::SessionNotFound(_))
    ));
    ss.purge("alice", &s.id.to_string()).await.unwrap();
    let sid = s.id.to_string();
    let left: i64 = db
        .run(move |conn| {
            chat_messages::table
                .filter(chat_messages::session_id.eq(sid))
                .count()
                .get_result(conn)
                .map_err(confab_store::StoreError::from)
        })
        .await
        .unwrap();
    assert_eq!(left, 0, "messages survived the cascade");
    let hits = hs
        .search_messages("alice", "narwhal", None, None)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].message.session_id, keep.id);
}

async fn concurrent_appends_lose_nothing(db: Db) {
    let (ss, hs) = svc(&db);
    let s = session(&ss, "alice", "busy").await;
    let sid = Arc::new(s.id.to_string());
    let mut tasks = Vec::new();
    for t in 0..8 {
        let hs = hs.clone();
        let sid = sid.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                hs.save_message(
                    "alice",
                    &sid,
                    NewMessage::new(MessageRole::User, format!("writer {t} message {i}")),
                )
                .await
                .map_err(|e| format!("writer {t} message {i}: {e}"))?;
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let got = ss.get("alice", &sid).await.unwrap();
    assert_eq!(got.message_count, 1600);
    assert_eq!(count_rows(&db).await.1, 1600);
    // Every message is there once, and each writer's messages are in its order.
    let mut all = Vec::new();
    let mut q = MessageQuery {
        limit: Some(200),
        ..Default::default()
    };
    loop {
        let page = hs
            .get_session_messages("alice", &sid, q.clone())
            .await
            .unwrap();
        all.extend(page.items.into_iter().map(|m| m.content));
        match page.older_cursor {
            Some(c) => q.before = Some(c),
            None => break,
        }
    }
    all.reverse();
    assert_eq!(all.len(), 1600);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 1600);
    for t in 0..8 {
        let mine: Vec<_> = all
            .iter()
            .filter(|c| c.starts_with(&format!("writer {t} ")))
            .collect();
        let expected: Vec<_> = (0..200)
            .map(|i| format!("writer {t} message {i}"))
            .collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>());
    }
}

confab_testkit::backend_tests!(
    create_get_update,
    list_pagination_survives_inserts,
    archive_unarchive_delete,
    save_message_counts_and_validates,
    message_pages_both_ways_survive_inserts,
    search_ranks_and_scopes,
    hostile_search_is_harmless,
    update_and_delete_messages,
    export_import_round_trip,
    statistics,
    cleanup_dry_run_and_real,
    purge_cascades_to_messages_and_search,
    concurrent_appends_lose_nothing,
);
