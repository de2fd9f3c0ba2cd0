//! [`FeedbackService`]: scores and comments on assistant messages, and their aggregate.

use std::sync::Arc;

use confab_models::{ExperienceSummary, Feedback, MessageRole, NewFeedback, SessionStatus};
use confab_store::schema::message_feedback::dsl as f;
use confab_store::{Db, DbConnection, write_transaction};
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::upsert::excluded;
use uuid::Uuid;

use crate::config::HistoryConfig;
use crate::error::HistoryError;
use crate::messages::owned_message;
use crate::rows::FeedbackRow;
use crate::validate;

/// Lowest and highest score.
const SCORES: std::ops::RangeInclusive<i32> = 1..=5;

/// Feedback on assistant messages: one item per user and message (giving it
/// again replaces it), and the aggregate served as "experience".
#[derive(Debug, Clone)]
pub struct FeedbackService {
    db: Db,
    config: Arc<HistoryConfig>,
}

/// The score a [`NewFeedback`] stands for: `score` when given, else thumbs
/// up 5 / down 1.
fn score_of(new: &NewFeedback) -> Result<i32, HistoryError> {
    match (new.score, new.thumbs_up) {
        (Some(s), _) if SCORES.contains(&s) => Ok(s),
        (Some(s), _) => Err(HistoryError::InvalidField {
            field: "score",
            reason: format!("must be from 1 to 5, got {s}"),
        }),
        (None, Some(true)) => Ok(5),
        (None, Some(false)) => Ok(1),
        (None, None) => Err(HistoryError::InvalidField {
            field: "score",
            reason: "give a score from 1 to 5 or thumbs_up".into(),
        }),
    }
}

/// Inserts or replaces the user's feedback on a message, returning the stored row.
fn upsert(conn: &mut DbConnection, row: &FeedbackRow) -> QueryResult<FeedbackRow> {
    // ON CONFLICT is not in diesel's MultiBackend: build it per backend.
    macro_rules! upsert_on {
        ($c:expr) => {
            diesel::insert_into(f::message_feedback)
                .values(row)
                .on_conflict((f::user_id, f::message_id))
                .do_update()
                .set((
                    f::score.eq(excluded(f::score)),
                    f::comment.eq(excluded(f::comment)),
                    f::created_at.eq(excluded(f::created_at)),
                ))
                .returning(FeedbackRow::as_returning())
                .get_result($c)
        };
    }
    match conn {
        DbConnection::Sqlite(c) => upsert_on!(c),
        DbConnection::Pg(c) => upsert_on!(c),
    }
}

impl FeedbackService {
    /// A service over `db` with the given limits.
    pub fn new(db: Db, config: Arc<HistoryConfig>) -> Self {
        Self { db, config }
    }

    /// Records `user_id`'s feedback on an assistant message of one of their
    /// sessions, replacing earlier feedback of theirs on it. A message of
    /// another user is "not found"; a message of a deleted session is refused.
    pub async fn give_feedback(
        &self,
        user_id: &str,
        message_id: &str,
        new: NewFeedback,
    ) -> Result<Feedback, HistoryError> {
        validate::user(user_id)?;
        let mid = validate::id("message", message_id)?;
        let score = score_of(&new)?;
        let comment = match new.comment.as_deref() {
            Some(c) => validate::short_text("comment", c, self.config.max_comment_chars)?,
            None => None,
        };
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let (message, session) = owned_message(conn, &user, mid)?;
                    if session.status == SessionStatus::Deleted.as_str() {
                        let sid = session.into_model()?.id;
                        return Err(HistoryError::SessionDeleted(sid));
                    }
                    if message.role != MessageRole::Assistant.as_str() {
                        return Err(HistoryError::InvalidField {
                            field: "message_id",
                            reason: format!(
                                "feedback is for assistant messages; this is a {} message",
                                message.role
                            ),
                        });
                    }
                    let row = FeedbackRow {
                        id: Uuid::now_v7().to_string(),
                        message_id: message.id,
                        session_id: message.session_id,
                        user_id: user.clone(),
                        score,
                        comment,
                        created_at: validate::now_naive(),
                    };
                    upsert(conn, &row)?.into_model()
                })
            })
            .await
    }

    /// The user's feedback on a message, if any.
    pub async fn get_feedback(
        &self,
        user_id: &str,
        message_id: &str,
    ) -> Result<Option<Feedback>, HistoryError> {
        validate::user(user_id)?;
        let mid = validate::id("message", message_id)?;
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                f::message_feedback
                    .filter(f::user_id.eq(user))
                    .filter(f::message_id.eq(mid.to_string()))
                    .select(FeedbackRow::as_select())
                    .first(conn)
                    .optional()?
                    .map(FeedbackRow::into_model)
                    .transpose()
            })
            .await
    }

    /// The aggregate of feedback: of one user when `user_id` is given, of
    /// everyone otherwise; with the `recent` newest items (capped by the
    /// configured page size).
    pub async fn experience(
        &self,
        user_id: Option<&str>,
        recent: u32,
    ) -> Result<ExperienceSummary, HistoryError> {
        if let Some(u) = user_id {
            validate::user(u)?;
        }
        let recent = i64::from(recent.min(self.config.max_page_size));
        let user = user_id.map(str::to_owned);
        self.db
            .run(move |conn| {
                let mut by_score = f::message_feedback
                    .group_by(f::score)
                    .select((f::score, count_star()))
                    .into_boxed();
                let mut latest = f::message_feedback
                    .order((f::created_at.desc(), f::id.desc()))
                    .limit(recent)
                    .select(FeedbackRow::as_select())
                    .into_boxed();
                if let Some(u) = &user {
                    by_score = by_score.filter(f::user_id.eq(u.clone()));
                    latest = latest.filter(f::user_id.eq(u.clone()));
                }
                let counts: Vec<(i32, i64)> = by_score.load(conn)?;
                let mut distribution = [0i64; 5];
                let (mut total, mut sum) = (0i64, 0i64);
                for (score, n) in counts {
                    if let Some(slot) = usize::try_from(score - 1)
                        .ok()
                        .and_then(|i| distribution.get_mut(i))
                    {
                        *slot += n;
                    }
                    total += n;
                    sum += i64::from(score) * n;
                }
                let recent = if recent > 0 {
                    latest
                        .load::<FeedbackRow>(conn)?
                        .into_iter()
                        .map(FeedbackRow::into_model)
                        .collect::<Result<Vec<_>, _>>()?
                } else {
                    Vec::new()
                };
                Ok(ExperienceSummary {
                    total,
                    average_score: (total > 0).then(|| sum as f64 / total as f64),
                    distribution,
                    recent,
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_from_numbers_and_thumbs() {
        let fb = |score, thumbs_up| NewFeedback {
            score,
            thumbs_up,
            comment: None,
        };
        assert_eq!(score_of(&fb(Some(3), None)).unwrap(), 3);
        assert_eq!(score_of(&fb(Some(2), Some(true))).unwrap(), 2);
        assert_eq!(score_of(&fb(None, Some(true))).unwrap(), 5);
        assert_eq!(score_of(&fb(None, Some(false))).unwrap(), 1);
        for bad in [fb(None, None), fb(Some(0), None), fb(Some(6), Some(true))] {
            assert!(matches!(
                score_of(&bad),
                Err(HistoryError::InvalidField { field: "score", .. })
            ));
        }
    }
}
