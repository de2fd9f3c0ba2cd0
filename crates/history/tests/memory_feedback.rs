//! Memory items, message feedback, experience and global counts, run on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use confab_history::{GlobalCounts, HistoryConfig, HistoryError, Services};
use confab_models::*;
use confab_store::Db;
use serde_json::json;

fn svc(db: &Db) -> Services {
    Services::new(db.clone(), HistoryConfig::default())
}

async fn session(s: &Services, user: &str) -> ChatSession {
    s.sessions
        .create(user, NewSession::default())
        .await
        .unwrap()
}

async fn say(s: &Services, user: &str, session: &ChatSession, role: MessageRole) -> Message {
    s.history
        .save_message(
            user,
            &session.id.to_string(),
            NewMessage::new(role, format!("{role} says hi")),
        )
        .await
        .unwrap()
}

fn score(n: i32) -> NewFeedback {
    NewFeedback {
        score: Some(n),
        ..NewFeedback::default()
    }
}

async fn memory_round_trip(db: Db) {
    let s = svc(&db);
    assert!(s.memory.list("alice", None).await.unwrap().is_empty());
    assert_eq!(s.memory.count("alice").await.unwrap(), 0);

    let first = s
        .memory
        .remember("alice", "  likes Rust  ", Some(json!({"from": "chat"})))
        .await
        .unwrap();
    assert_eq!(first.content, "likes Rust");
    assert_eq!(first.user_id, "alice");
    assert_eq!(first.metadata["from"], "chat");
    for i in 0..4 {
        s.memory
            .remember("alice", &format!("fact {i}"), None)
            .await
            .unwrap();
    }
    s.memory.remember("bob", "bob's fact", None).await.unwrap();

    let all = s.memory.list("alice", None).await.unwrap();
    assert_eq!(all.len(), 5);
    // Newest first.
    assert_eq!(all[0].content, "fact 3");
    assert_eq!(all[4], first);
    let two = s.memory.list("alice", Some(2)).await.unwrap();
    assert_eq!(
        two.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["fact 3", "fact 2"]
    );
    // Limits are clamped, never an error.
    assert_eq!(s.memory.list("alice", Some(0)).await.unwrap().len(), 1);
    assert_eq!(
        s.memory.list("alice", Some(u32::MAX)).await.unwrap().len(),
        5
    );
    assert_eq!(s.memory.count("alice").await.unwrap(), 5);
    assert_eq!(s.memory.count("bob").await.unwrap(), 1);

    assert_eq!(s.memory.clear("alice").await.unwrap(), 5);
    assert_eq!(s.memory.clear("alice").await.unwrap(), 0);
    assert!(s.memory.list("alice", None).await.unwrap().is_empty());
    // Bob's items are untouched.
    assert_eq!(s.memory.list("bob", None).await.unwrap().len(), 1);
}

async fn memory_rejects_bad_input(db: Db) {
    let s = svc(&db);
    assert!(matches!(
        s.memory.remember("alice", "   ", None).await,
        Err(HistoryError::EmptyContent)
    ));
    assert!(matches!(
        s.memory.remember("alice", &"x".repeat(4001), None).await,
        Err(HistoryError::InvalidField {
            field: "content",
            ..
        })
    ));
    assert!(matches!(
        s.memory.remember("alice", "a\0b", None).await,
        Err(HistoryError::InvalidField {
            field: "content",
            ..
        })
    ));
    assert!(matches!(
        s.memory.remember("alice", "ok", Some(json!([1, 2]))).await,
        Err(HistoryError::MetadataNotObject(_))
    ));
    assert!(matches!(
        s.memory.remember("", "ok", None).await,
        Err(HistoryError::InvalidUser(_))
    ));
    assert!(matches!(
        s.memory.list("a\nb", None).await,
        Err(HistoryError::InvalidUser(_))
    ));
    // Exactly at the limit is fine (characters, not bytes).
    let long = "я".repeat(4000);
    assert_eq!(
        s.memory
            .remember("alice", &long, None)
            .await
            .unwrap()
            .content,
        long
    );
    assert_eq!(s.memory.count("alice").await.unwrap(), 1);
}

async fn feedback_upserts_per_user_and_message(db: Db) {
    let s = svc(&db);
    let chat = session(&s, "alice").await;
    say(&s, "alice", &chat, MessageRole::User).await;
    let answer = say(&s, "alice", &chat, MessageRole::Assistant).await;
    let mid = answer.id.to_string();

    let fb = s
        .feedback
        .give_feedback(
            "alice",
            &mid,
            NewFeedback {
                score: Some(4),
                thumbs_up: None,
                comment: Some("  helpful  ".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(fb.score, 4);
    assert_eq!(fb.comment.as_deref(), Some("helpful"));
    assert_eq!(fb.message_id, answer.id);
    assert_eq!(fb.session_id, chat.id);
    assert_eq!(fb.user_id, "alice");
    assert_eq!(
        s.feedback.get_feedback("alice", &mid).await.unwrap(),
        Some(fb.clone())
    );

    // Giving it again replaces it (same id), thumbs down counts as 1, a blank comment is none.
    let again = s
        .feedback
        .give_feedback(
            "alice",
            &mid,
            NewFeedback {
                score: None,
                thumbs_up: Some(false),
                comment: Some("   ".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(again.id, fb.id);
    assert_eq!(again.score, 1);
    assert_eq!(again.comment, None);
    assert!(again.created_at >= fb.created_at);
    let thumbs_up = s
        .feedback
        .give_feedback(
            "alice",
            &mid,
            NewFeedback {
                thumbs_up: Some(true),
                ..NewFeedback::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(thumbs_up.score, 5);

    let exp = s.feedback.experience(Some("alice"), 10).await.unwrap();
    assert_eq!(exp.total, 1);
    assert_eq!(exp.average_score, Some(5.0));
    assert_eq!(exp.distribution, [0, 0, 0, 0, 1]);
    assert_eq!(exp.recent, vec![thumbs_up]);
}

async fn feedback_is_scoped_and_validated(db: Db) {
    let s = svc(&db);
    let chat = session(&s, "alice").await;
    let question = say(&s, "alice", &chat, MessageRole::User).await;
    let answer = say(&s, "alice", &chat, MessageRole::Assistant).await;
    let mid = answer.id.to_string();

    // Another user's message is not found, and nothing is stored.
    assert!(matches!(
        s.feedback.give_feedback("bob", &mid, score(5)).await,
        Err(HistoryError::MessageNotFound(id)) if id == answer.id
    ));
    assert_eq!(s.feedback.get_feedback("bob", &mid).await.unwrap(), None);
    // Unknown and malformed ids.
    let unknown = uuid::Uuid::now_v7().to_string();
    assert!(matches!(
        s.feedback.give_feedback("alice", &unknown, score(5)).await,
        Err(HistoryError::MessageNotFound(_))
    ));
    assert!(matches!(
        s.feedback
            .give_feedback("alice", "not-a-uuid", score(5))
            .await,
        Err(HistoryError::InvalidId {
            kind: "message",
            ..
        })
    ));
    // Only assistant messages take feedback.
    assert!(matches!(
        s.feedback
            .give_feedback("alice", &question.id.to_string(), score(5))
            .await,
        Err(HistoryError::InvalidField {
            field: "message_id",
            ..
        })
    ));
    // Scores 1..=5 or thumbs.
    for bad in [0, 6, -1, i32::MAX] {
        assert!(matches!(
            s.feedback.give_feedback("alice", &mid, score(bad)).await,
            Err(HistoryError::InvalidField { field: "score", .. })
        ));
    }
    assert!(matches!(
        s.feedback
            .give_feedback("alice", &mid, NewFeedback::default())
            .await,
        Err(HistoryError::InvalidField { field: "score", .. })
    ));
    // Comments: at most 2000 characters.
    let long = NewFeedback {
        score: Some(3),
        thumbs_up: None,
        comment: Some("c".repeat(2001)),
    };
    assert!(matches!(
        s.feedback.give_feedback("alice", &mid, long).await,
        Err(HistoryError::InvalidField {
            field: "comment",
            ..
        })
    ));
    let at_limit = NewFeedback {
        score: Some(3),
        thumbs_up: None,
        comment: Some("ж".repeat(2000)),
    };
    s.feedback
        .give_feedback("alice", &mid, at_limit)
        .await
        .unwrap();

    // A deleted session's messages are refused.
    s.sessions
        .delete("alice", &chat.id.to_string())
        .await
        .unwrap();
    assert!(matches!(
        s.feedback.give_feedback("alice", &mid, score(2)).await,
        Err(HistoryError::SessionDeleted(id)) if id == chat.id
    ));
    // Purging the session removes its feedback by cascade.
    s.sessions
        .purge("alice", &chat.id.to_string())
        .await
        .unwrap();
    assert_eq!(s.feedback.experience(None, 10).await.unwrap().total, 0);
}

async fn experience_aggregates(db: Db) {
    let s = svc(&db);
    let empty = s.feedback.experience(None, 10).await.unwrap();
    assert_eq!(empty.total, 0);
    assert_eq!(empty.average_score, None);
    assert_eq!(empty.distribution, [0; 5]);
    assert!(empty.recent.is_empty());

    let a = session(&s, "alice").await;
    let b = session(&s, "bob").await;
    let mut given = Vec::new();
    for n in [5, 4, 4] {
        let m = say(&s, "alice", &a, MessageRole::Assistant).await;
        given.push(
            s.feedback
                .give_feedback("alice", &m.id.to_string(), score(n))
                .await
                .unwrap(),
        );
    }
    let m = say(&s, "bob", &b, MessageRole::Assistant).await;
    let bobs = s
        .feedback
        .give_feedback("bob", &m.id.to_string(), score(1))
        .await
        .unwrap();

    let all = s.feedback.experience(None, 2).await.unwrap();
    assert_eq!(all.total, 4);
    assert_eq!(all.average_score, Some(14.0 / 4.0));
    assert_eq!(all.distribution, [1, 0, 0, 2, 1]);
    assert_eq!(all.recent, vec![bobs.clone(), given[2].clone()]);

    let alice = s.feedback.experience(Some("alice"), 10).await.unwrap();
    assert_eq!(alice.total, 3);
    assert_eq!(alice.average_score, Some(13.0 / 3.0));
    assert_eq!(alice.distribution, [0, 0, 0, 2, 1]);
    given.reverse();
    assert_eq!(alice.recent, given);

    let none = s.feedback.experience(Some("carol"), 10).await.unwrap();
    assert_eq!(none.total, 0);
    assert!(
        s.feedback
            .experience(Some("alice"), 0)
            .await
            .unwrap()
            .recent
            .is_empty()
    );
    assert!(matches!(
        s.feedback.experience(Some(""), 1).await,
        Err(HistoryError::InvalidUser(_))
    ));
}

async fn global_counts(db: Db) {
    let s = svc(&db);
    assert_eq!(
        s.sessions.global_counts().await.unwrap(),
        GlobalCounts::default()
    );
    let a = session(&s, "alice").await;
    let b = session(&s, "bob").await;
    let gone = session(&s, "bob").await;
    say(&s, "alice", &a, MessageRole::User).await;
    let answer = say(&s, "alice", &a, MessageRole::Assistant).await;
    say(&s, "bob", &b, MessageRole::User).await;
    say(&s, "bob", &gone, MessageRole::User).await;
    s.sessions
        .delete("bob", &gone.id.to_string())
        .await
        .unwrap();
    s.memory.remember("alice", "one", None).await.unwrap();
    s.memory.remember("bob", "two", None).await.unwrap();
    s.feedback
        .give_feedback("alice", &answer.id.to_string(), score(3))
        .await
        .unwrap();
    assert_eq!(
        s.sessions.global_counts().await.unwrap(),
        GlobalCounts {
            sessions: 2,
            messages: 3,
            memory_items: 2,
            feedback: 1,
        }
    );
}

async fn deleting_a_message_drops_its_feedback(db: Db) {
    let s = svc(&db);
    let chat = session(&s, "alice").await;
    let answer = say(&s, "alice", &chat, MessageRole::Assistant).await;
    let mid = answer.id.to_string();
    s.feedback
        .give_feedback("alice", &mid, score(2))
        .await
        .unwrap();
    s.history.delete_message("alice", &mid).await.unwrap();
    assert_eq!(s.feedback.get_feedback("alice", &mid).await.unwrap(), None);
    assert_eq!(s.feedback.experience(None, 5).await.unwrap().total, 0);
}

async fn concurrent_feedback_keeps_one_row(db: Db) {
    let s = svc(&db);
    let chat = session(&s, "alice").await;
    let answer = say(&s, "alice", &chat, MessageRole::Assistant).await;
    let mid = answer.id.to_string();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = s.clone();
            let mid = mid.clone();
            tokio::spawn(async move {
                s.feedback
                    .give_feedback("alice", &mid, score(i % 5 + 1))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let exp = s.feedback.experience(None, 10).await.unwrap();
    assert_eq!(exp.total, 1);
    assert_eq!(exp.recent.len(), 1);
}

confab_testkit::backend_tests!(
    memory_round_trip,
    memory_rejects_bad_input,
    feedback_upserts_per_user_and_message,
    feedback_is_scoped_and_validated,
    experience_aggregates,
    global_counts,
    deleting_a_message_drops_its_feedback,
    concurrent_feedback_keeps_one_row,
);
