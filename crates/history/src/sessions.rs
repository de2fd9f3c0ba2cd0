//! [`SessionService`]: sessions' lifecycle, listing, search, stats and cleanup.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Duration, NaiveDateTime};
use confab_models::{
    ChatSession, CleanupReport, NewSession, SessionPage, SessionQuery, SessionSearchHit,
    SessionStatus, SessionUpdate, UserSessionStats,
};
use confab_store::schema::chat_sessions::dsl as s;
use confab_store::{Db, DbConnection, write_transaction};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::HistoryConfig;
use crate::cursor::SessionCursor;
use crate::error::HistoryError;
use crate::messages::search_message_rows;
use crate::rows::{SessionRow, sessions, utc};
use crate::validate;
use confab_store::raw_load;

/// Most ids deleted or updated by one statement during cleanup.
const CLEANUP_BATCH: usize = 500;

/// Sessions: create, read, list, update, archive, delete, search, stats, cleanup.
/// Every operation that takes a user id only sees that user's sessions.
#[derive(Debug, Clone)]
pub struct SessionService {
    db: Db,
    config: Arc<HistoryConfig>,
}

/// Loads a session owned by `user_id`, or `SessionNotFound`.
pub(crate) fn owned_session(
    conn: &mut DbConnection,
    user_id: &str,
    id: Uuid,
) -> Result<SessionRow, HistoryError> {
    s::chat_sessions
        .filter(s::id.eq(id.to_string()))
        .filter(s::user_id.eq(user_id))
        .select(SessionRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(HistoryError::SessionNotFound(id))
}

/// Loads a session owned by `user_id` that is not deleted.
pub(crate) fn live_session(
    conn: &mut DbConnection,
    user_id: &str,
    id: Uuid,
) -> Result<SessionRow, HistoryError> {
    let row = owned_session(conn, user_id, id)?;
    if row.status == SessionStatus::Deleted.as_str() {
        return Err(HistoryError::SessionDeleted(id));
    }
    Ok(row)
}

/// A validated row for a new session of `user_id` (no messages yet).
pub(crate) fn new_session_row(
    cfg: &HistoryConfig,
    user_id: &str,
    new: NewSession,
) -> Result<SessionRow, HistoryError> {
    validate::user(user_id)?;
    let title = validate::title(cfg, new.title.as_deref().unwrap_or(&cfg.default_title))?;
    let model_id = validate::name(
        "model_id",
        new.model_id.as_deref().unwrap_or(&cfg.default_model),
    )?;
    let agent = validate::name("agent", new.agent.as_deref().unwrap_or("dashboard"))?;
    let course_id = new
        .course_id
        .as_deref()
        .map(|c| validate::name("course_id", c))
        .transpose()?;
    let metadata = validate::metadata(cfg, new.metadata)?;
    let now = validate::now_naive();
    Ok(SessionRow {
        id: Uuid::now_v7().to_string(),
        title,
        model_id,
        user_id: user_id.to_owned(),
        agent,
        course_id,
        status: SessionStatus::Active.as_str().to_owned(),
        created_at: now,
        updated_at: now,
        message_count: 0,
        metadata: validate::metadata_json(&metadata),
    })
}

#[derive(QueryableByName)]
struct StatusCount {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    sessions: i64,
    #[diesel(sql_type = BigInt)]
    messages: i64,
    #[diesel(sql_type = Nullable<Timestamp>)]
    last_activity: Option<NaiveDateTime>,
}

/// Counts over every user, for system statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, QueryableByName, Serialize, Deserialize)]
pub struct GlobalCounts {
    /// Sessions not deleted.
    #[diesel(sql_type = BigInt)]
    pub sessions: i64,
    /// Messages in sessions not deleted.
    #[diesel(sql_type = BigInt)]
    pub messages: i64,
    /// Long-term memory items.
    #[diesel(sql_type = BigInt)]
    pub memory_items: i64,
    /// Feedback items.
    #[diesel(sql_type = BigInt)]
    pub feedback: i64,
}

#[derive(QueryableByName)]
struct Total {
    #[diesel(sql_type = BigInt)]
    total: i64,
}

impl SessionService {
    /// A service over `db` with the given limits.
    pub fn new(db: Db, config: Arc<HistoryConfig>) -> Self {
        Self { db, config }
    }

    /// The configuration in force.
    pub fn config(&self) -> &HistoryConfig {
        &self.config
    }

    /// Creates a session for `user_id`.
    pub async fn create(
        &self,
        user_id: &str,
        new: NewSession,
    ) -> Result<ChatSession, HistoryError> {
        self.insert(user_id, new, None).await
    }

    /// Creates a session for `user_id` bound to the caller's own session
    /// key `key` (seed 004's string session ids), found again by
    /// [`SessionService::find_by_external_key`].
    pub async fn create_for_external_key(
        &self,
        user_id: &str,
        key: &str,
        new: NewSession,
    ) -> Result<ChatSession, HistoryError> {
        let key = validate::external_key(key)?;
        self.insert(user_id, new, Some(key)).await
    }

    /// The most recently created live (not deleted) session of `user_id`
    /// bound to `key`, if any: one index lookup on
    /// `(user_id, external_key, created_at)`, however many sessions the
    /// user has.
    pub async fn find_by_external_key(
        &self,
        user_id: &str,
        key: &str,
    ) -> Result<Option<ChatSession>, HistoryError> {
        validate::user(user_id)?;
        let key = validate::external_key(key)?;
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                s::chat_sessions
                    .filter(s::user_id.eq(user))
                    .filter(s::external_key.eq(key))
                    .filter(s::status.ne(SessionStatus::Deleted.as_str()))
                    .order((s::created_at.desc(), s::id.desc()))
                    .select(SessionRow::as_select())
                    .first(conn)
                    .optional()?
                    .map(SessionRow::into_model)
                    .transpose()
            })
            .await
    }

    async fn insert(
        &self,
        user_id: &str,
        new: NewSession,
        external_key: Option<String>,
    ) -> Result<ChatSession, HistoryError> {
        let row = new_session_row(&self.config, user_id, new)?;
        // Group-committed like messages: answered once it is committed.
        self.db
            .write(move |conn| {
                diesel::insert_into(s::chat_sessions)
                    .values((&row, s::external_key.eq(external_key)))
                    .execute(conn)?;
                row.into_model()
            })
            .await
    }

    /// A session of `user_id` (also when archived or deleted: see `status`).
    pub async fn get(&self, user_id: &str, session_id: &str) -> Result<ChatSession, HistoryError> {
        validate::user(user_id)?;
        let id = validate::id("session", session_id)?;
        let user = user_id.to_owned();
        self.db
            .run(move |conn| owned_session(conn, &user, id)?.into_model())
            .await
    }

    /// One page of the user's sessions, most recently updated first. Reads
    /// no message rows. Deleted sessions appear only when asked for by status.
    pub async fn list_user_sessions(
        &self,
        user_id: &str,
        query: SessionQuery,
    ) -> Result<SessionPage, HistoryError> {
        validate::user(user_id)?;
        let limit = self.config.page_size(query.limit);
        let cursor = query
            .cursor
            .as_deref()
            .map(SessionCursor::decode)
            .transpose()?;
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                let mut q = s::chat_sessions
                    .filter(s::user_id.eq(user))
                    .select(SessionRow::as_select())
                    .into_boxed();
                q = match query.status {
                    Some(status) => q.filter(s::status.eq(status.as_str())),
                    None => q.filter(s::status.ne(SessionStatus::Deleted.as_str())),
                };
                if let Some(c) = cursor {
                    q = q.filter(
                        s::updated_at
                            .lt(c.updated_at)
                            .or(s::updated_at.eq(c.updated_at).and(s::id.lt(c.id))),
                    );
                }
                let mut rows: Vec<SessionRow> = q
                    .order((s::updated_at.desc(), s::id.desc()))
                    .limit(i64::from(limit) + 1)
                    .load(conn)?;
                let more = rows.len() > limit as usize;
                rows.truncate(limit as usize);
                let next_cursor = match rows.last() {
                    Some(last) if more => Some(
                        SessionCursor {
                            updated_at: last.updated_at,
                            id: last.id.clone(),
                        }
                        .encode(),
                    ),
                    _ => None,
                };
                Ok(SessionPage {
                    items: sessions(rows)?,
                    next_cursor,
                })
            })
            .await
    }

    /// Changes title, model and/or metadata. Refused on deleted sessions.
    pub async fn update(
        &self,
        user_id: &str,
        session_id: &str,
        update: SessionUpdate,
    ) -> Result<ChatSession, HistoryError> {
        validate::user(user_id)?;
        let id = validate::id("session", session_id)?;
        let cfg = &self.config;
        let title = update
            .title
            .as_deref()
            .map(|t| validate::title(cfg, t))
            .transpose()?;
        let model_id = update
            .model_id
            .as_deref()
            .map(|m| validate::name("model_id", m))
            .transpose()?;
        let metadata = match update.metadata {
            Some(v) => Some(validate::metadata_json(&validate::metadata(cfg, Some(v))?)),
            None => None,
        };
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let mut row = live_session(conn, &user, id)?;
                    if title.is_none() && model_id.is_none() && metadata.is_none() {
                        return row.into_model();
                    }
                    if let Some(t) = title {
                        row.title = t;
                    }
                    if let Some(m) = model_id {
                        row.model_id = m;
                    }
                    if let Some(m) = metadata {
                        row.metadata = m;
                    }
                    row.updated_at = validate::now_naive();
                    diesel::update(s::chat_sessions.filter(s::id.eq(&row.id)))
                        .set((
                            s::title.eq(&row.title),
                            s::model_id.eq(&row.model_id),
                            s::metadata.eq(&row.metadata),
                            s::updated_at.eq(row.updated_at),
                        ))
                        .execute(conn)?;
                    row.into_model()
                })
            })
            .await
    }

    /// Moves a session between states, refusing to revive deleted ones.
    async fn set_status(
        &self,
        user_id: &str,
        session_id: &str,
        to: SessionStatus,
    ) -> Result<ChatSession, HistoryError> {
        validate::user(user_id)?;
        let id = validate::id("session", session_id)?;
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let mut row = owned_session(conn, &user, id)?;
                    let deleted = SessionStatus::Deleted.as_str();
                    if row.status == deleted {
                        // Deleting twice is a no-op; anything else on a deleted session is refused.
                        return if to == SessionStatus::Deleted {
                            row.into_model()
                        } else {
                            Err(HistoryError::SessionDeleted(id))
                        };
                    }
                    if row.status != to.as_str() {
                        row.status = to.as_str().to_owned();
                        row.updated_at = validate::now_naive();
                        diesel::update(s::chat_sessions.filter(s::id.eq(&row.id)))
                            .set((s::status.eq(&row.status), s::updated_at.eq(row.updated_at)))
                            .execute(conn)?;
                    }
                    row.into_model()
                })
            })
            .await
    }

    /// Archives a session (idempotent).
    pub async fn archive(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<ChatSession, HistoryError> {
        self.set_status(user_id, session_id, SessionStatus::Archived)
            .await
    }

    /// Makes an archived session active again (idempotent).
    pub async fn unarchive(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<ChatSession, HistoryError> {
        self.set_status(user_id, session_id, SessionStatus::Active)
            .await
    }

    /// Soft-deletes a session: it leaves lists and search at once and is
    /// purged by [`SessionService::cleanup_old`] later. Idempotent.
    pub async fn delete(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<ChatSession, HistoryError> {
        self.set_status(user_id, session_id, SessionStatus::Deleted)
            .await
    }

    /// Removes a session and (by cascade) its messages for good.
    pub async fn purge(&self, user_id: &str, session_id: &str) -> Result<(), HistoryError> {
        validate::user(user_id)?;
        let id = validate::id("session", session_id)?;
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                let n = diesel::delete(
                    s::chat_sessions
                        .filter(s::id.eq(id.to_string()))
                        .filter(s::user_id.eq(user)),
                )
                .execute(conn)?;
                if n == 0 {
                    Err(HistoryError::SessionNotFound(id))
                } else {
                    Ok(())
                }
            })
            .await
    }

    /// The user's sessions whose title or messages match `query`: title
    /// matches first (most recent first), then sessions by their best
    /// matching message. Deleted sessions never match.
    pub async fn search_sessions(
        &self,
        user_id: &str,
        query: &str,
        limit: Option<u32>,
    ) -> Result<Vec<SessionSearchHit>, HistoryError> {
        validate::user(user_id)?;
        let limit = self.config.page_size(limit) as usize;
        let needle = query.trim().to_lowercase();
        if needle.is_empty() {
            return Ok(Vec::new());
        }
        let user = user_id.to_owned();
        let query = query.to_owned();
        self.db
            .run(move |conn| {
                // Titles: matched in Rust so case folding is Unicode-correct on both backends.
                let titles: Vec<(String, String)> = s::chat_sessions
                    .filter(s::user_id.eq(&user))
                    .filter(s::status.ne(SessionStatus::Deleted.as_str()))
                    .order((s::updated_at.desc(), s::id.desc()))
                    .select((s::id, s::title))
                    .load(conn)?;
                let mut order: Vec<String> = titles
                    .into_iter()
                    .filter(|(_, t)| t.to_lowercase().contains(&needle))
                    .map(|(id, _)| id)
                    .take(limit)
                    .collect();
                let title_matches = order.len();
                let mut snippets: HashMap<String, String> = HashMap::new();
                if order.len() < limit {
                    for hit in search_message_rows(conn, &user, &query, None, limit * 4)? {
                        let sid = hit.message.session_id.clone();
                        if snippets.contains_key(&sid) {
                            continue;
                        }
                        snippets.insert(sid.clone(), hit.snippet);
                        if !order.contains(&sid) && order.len() < limit {
                            order.push(sid);
                        }
                    }
                }
                let rows: Vec<SessionRow> = s::chat_sessions
                    .filter(s::id.eq_any(&order))
                    .select(SessionRow::as_select())
                    .load(conn)?;
                let mut by_id: HashMap<String, SessionRow> =
                    rows.into_iter().map(|r| (r.id.clone(), r)).collect();
                let mut hits = Vec::with_capacity(order.len());
                for (i, id) in order.iter().enumerate() {
                    if let Some(row) = by_id.remove(id) {
                        hits.push(SessionSearchHit {
                            snippet: snippets.remove(id),
                            title_match: i < title_matches,
                            session: row.into_model()?,
                        });
                    }
                }
                Ok(hits)
            })
            .await
    }

    /// Figures over the user's sessions (deleted ones excluded).
    pub async fn stats(&self, user_id: &str) -> Result<UserSessionStats, HistoryError> {
        validate::user(user_id)?;
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                let by_status: Vec<StatusCount> = raw_load!(
                    conn,
                    "SELECT status, COUNT(*) AS sessions, \
                            CAST(COALESCE(SUM(message_count), 0) AS BIGINT) AS messages, \
                            MAX(updated_at) AS last_activity \
                     FROM chat_sessions WHERE user_id = ? AND status <> 'deleted' GROUP BY status",
                    StatusCount;
                    Text => &user
                )?;
                let tokens: Vec<Total> = raw_load!(
                    conn,
                    "SELECT CAST(COALESCE(SUM(m.tokens_used), 0) AS BIGINT) AS total \
                     FROM chat_messages m JOIN chat_sessions s ON s.id = m.session_id \
                     WHERE s.user_id = ? AND s.status <> 'deleted'",
                    Total;
                    Text => &user
                )?;
                let mut stats = UserSessionStats {
                    total_tokens: tokens.first().map_or(0, |t| t.total),
                    ..UserSessionStats::default()
                };
                for row in by_status {
                    stats.total_sessions += row.sessions;
                    stats.total_messages += row.messages;
                    if row.status == SessionStatus::Active.as_str() {
                        stats.active_sessions += row.sessions;
                    } else if row.status == SessionStatus::Archived.as_str() {
                        stats.archived_sessions += row.sessions;
                    }
                    let last = row.last_activity.map(utc);
                    if last > stats.last_activity {
                        stats.last_activity = last;
                    }
                }
                Ok(stats)
            })
            .await
    }

    /// Counts of sessions, messages, memory items and feedback over every
    /// user (deleted sessions excluded). Not user-scoped: for system statistics.
    pub async fn global_counts(&self) -> Result<GlobalCounts, HistoryError> {
        self.db
            .run(|conn| {
                let rows: Vec<GlobalCounts> = raw_load!(
                    conn,
                    "SELECT \
                       (SELECT COUNT(*) FROM chat_sessions WHERE status <> 'deleted') AS sessions, \
                       (SELECT CAST(COALESCE(SUM(message_count), 0) AS BIGINT) FROM chat_sessions \
                          WHERE status <> 'deleted') AS messages, \
                       (SELECT COUNT(*) FROM user_memory) AS memory_items, \
                       (SELECT COUNT(*) FROM message_feedback) AS feedback",
                    GlobalCounts;
                )?;
                Ok(rows.into_iter().next().unwrap_or_default())
            })
            .await
    }

    /// Archives active sessions idle for more than `days_old` days and
    /// purges sessions deleted more than `days_old` days ago (with their
    /// messages). In a dry run reports the same ids and changes nothing.
    /// Not user-scoped: an administrative operation.
    pub async fn cleanup_old(
        &self,
        days_old: u32,
        dry_run: bool,
    ) -> Result<CleanupReport, HistoryError> {
        if days_old == 0 {
            return Err(HistoryError::InvalidField {
                field: "days_old",
                reason: "must be at least 1".into(),
            });
        }
        let cutoff = validate::now_naive() - Duration::days(i64::from(days_old));
        self.db
            .run(move |conn| {
                let ids_in = |conn: &mut DbConnection,
                              status: SessionStatus|
                 -> Result<Vec<String>, HistoryError> {
                    Ok(s::chat_sessions
                        .filter(s::status.eq(status.as_str()))
                        .filter(s::updated_at.lt(cutoff))
                        .order(s::updated_at.asc())
                        .select(s::id)
                        .load(conn)?)
                };
                let mut report = CleanupReport {
                    dry_run,
                    days_old,
                    ..CleanupReport::default()
                };
                if dry_run {
                    let archive = ids_in(conn, SessionStatus::Active)?;
                    let purge = ids_in(conn, SessionStatus::Deleted)?;
                    report.archived = archive.len() as u64;
                    report.purged = purge.len() as u64;
                    report.archived_ids = parse_ids(&archive)?;
                    report.purged_ids = parse_ids(&purge)?;
                    return Ok(report);
                }
                write_transaction(conn, |conn| {
                    let archive = ids_in(conn, SessionStatus::Active)?;
                    let purge = ids_in(conn, SessionStatus::Deleted)?;
                    for chunk in archive.chunks(CLEANUP_BATCH) {
                        // Archiving is not user activity: updated_at stays as it was.
                        report.archived += diesel::update(
                            s::chat_sessions
                                .filter(s::id.eq_any(chunk))
                                .filter(s::status.eq(SessionStatus::Active.as_str())),
                        )
                        .set(s::status.eq(SessionStatus::Archived.as_str()))
                        .execute(conn)? as u64;
                    }
                    for chunk in purge.chunks(CLEANUP_BATCH) {
                        report.purged += diesel::delete(
                            s::chat_sessions
                                .filter(s::id.eq_any(chunk))
                                .filter(s::status.eq(SessionStatus::Deleted.as_str())),
                        )
                        .execute(conn)? as u64;
                    }
                    report.archived_ids = parse_ids(&archive)?;
                    report.purged_ids = parse_ids(&purge)?;
                    Ok::<_, HistoryError>(())
                })?;
                if report.archived + report.purged > 0 {
                    tracing::info!(
                        archived = report.archived,
                        purged = report.purged,
                        days_old,
                        "cleaned up old sessions"
                    );
                }
                Ok(report)
            })
            .await
    }
}

fn parse_ids(ids: &[String]) -> Result<Vec<Uuid>, HistoryError> {
    ids.iter()
        .map(|id| {
            id.parse()
                .map_err(|_| HistoryError::Corrupt(format!("session id `{id}` is not a UUID")))
        })
        .collect()
}
