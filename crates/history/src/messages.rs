//! [`HistoryService`]: messages of a session: save, page, search, edit,
//! delete, export, import and per-session statistics.

use std::sync::Arc;

use chrono::NaiveDateTime;
use confab_models::{
    ChatSession, ExportFormat, Message, MessagePage, MessageQuery, MessageSearchHit, MessageUpdate,
    NewMessage, NewSession, SessionExport, SessionStatistics, SessionStatus,
};
use confab_store::schema::chat_messages::dsl as m;
use confab_store::schema::chat_sessions::dsl as s;
use confab_store::{Db, DbConnection, write_transaction};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text, Timestamp};
use uuid::Uuid;

use crate::config::HistoryConfig;
use crate::cursor::{decode_seq, encode_seq};
use crate::error::HistoryError;
use crate::export::{self, ExportedSession};
use crate::rows::{MessageRow, NewMessageRow, SessionRow, messages, utc};
use crate::sessions::{live_session, new_session_row, owned_session};
use crate::validate;
use confab_store::raw_load;
use confab_store::sql::{fts5_match, search_tokens, tsquery};

/// Rows per multi-row INSERT during import (well under SQLite's bind limit).
const INSERT_BATCH: usize = 500;

/// Message history of sessions. Every operation is scoped to one user.
#[derive(Debug, Clone)]
pub struct HistoryService {
    db: Db,
    config: Arc<HistoryConfig>,
}

/// A full-text hit as read from either backend.
#[derive(QueryableByName)]
pub(crate) struct HitRow {
    #[diesel(embed)]
    pub message: MessageRow,
    #[diesel(sql_type = Text)]
    pub session_title: String,
    #[diesel(sql_type = Text)]
    pub snippet: String,
    #[diesel(sql_type = Double)]
    pub score: f64,
}

#[derive(QueryableByName)]
struct RoleStats {
    #[diesel(sql_type = Text)]
    role: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = BigInt)]
    tokens: i64,
    #[diesel(sql_type = Nullable<Double>)]
    rt_sum: Option<f64>,
    #[diesel(sql_type = BigInt)]
    rt_n: i64,
    #[diesel(sql_type = Nullable<Timestamp>)]
    first_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    last_at: Option<NaiveDateTime>,
}

// The user's matches are found with FTS5 alone, filtered by a set of the
// user's message seqs read from the (session_id, seq) index: no message row
// is read for a match of another user. The unary `+` keeps FTS5 from
// turning the IN list into one rowid lookup per message. Rows and snippets
// are then read for the top hits only.
const SQLITE_SEARCH: &str = "\
WITH hits AS ( \
  SELECT rowid AS seq, bm25(chat_messages_fts) AS rank \
  FROM chat_messages_fts \
  WHERE chat_messages_fts MATCH ? \
    AND +rowid IN (SELECT m.seq FROM chat_messages m WHERE m.session_id IN \
          (SELECT s.id FROM chat_sessions s WHERE s.user_id = ? AND s.status <> 'deleted' \
             AND (? IS NULL OR s.id = ?))) \
  ORDER BY rank, rowid DESC \
  LIMIT ?) \
SELECT m.seq, m.id, m.session_id, m.role, m.content, m.timestamp, m.model_id, \
       m.tokens_used, m.response_time, m.metadata, s.title AS session_title, \
       snippet(chat_messages_fts, 0, '<mark>', '</mark>', '…', 24) AS snippet, \
       -hits.rank AS score \
FROM hits \
JOIN chat_messages_fts ON chat_messages_fts.rowid = hits.seq \
JOIN chat_messages m ON m.seq = hits.seq \
JOIN chat_sessions s ON s.id = m.session_id \
WHERE chat_messages_fts MATCH ? \
ORDER BY hits.rank, hits.seq DESC";

// The user's session ids are computed once (`= ANY(ARRAY(...))`), so the
// planner does one GIN scan ANDed with the session index instead of a GIN
// scan per session; headlines are made for the rows returned only.
const PG_SEARCH: &str = "\
SELECT m.seq, m.id, m.session_id, m.role, m.content, m.timestamp, m.model_id, \
       m.tokens_used, m.response_time, m.metadata, s.title AS session_title, \
       ts_headline('simple', m.content, to_tsquery('simple', $1), \
         'StartSel=<mark>, StopSel=</mark>, MaxWords=24, MinWords=8, MaxFragments=2, FragmentDelimiter=\" … \"') AS snippet, \
       hits.score \
FROM (SELECT m.seq, ts_rank(m.content_tsv, to_tsquery('simple', $1))::float8 AS score \
      FROM chat_messages m \
      WHERE m.content_tsv @@ to_tsquery('simple', $1) \
        AND m.session_id = ANY(ARRAY(SELECT id FROM chat_sessions \
              WHERE user_id = $2 AND status <> 'deleted' AND ($3::text IS NULL OR id = $3))) \
      ORDER BY score DESC, m.seq DESC LIMIT $4) hits \
JOIN chat_messages m ON m.seq = hits.seq \
JOIN chat_sessions s ON s.id = m.session_id \
ORDER BY hits.score DESC, m.seq DESC";

fn run_search(
    conn: &mut DbConnection,
    user_id: &str,
    tokens: &[String],
    any: bool,
    session_id: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<HitRow>> {
    match conn {
        DbConnection::Sqlite(c) => {
            let expr = fts5_match(tokens, any);
            diesel::sql_query(SQLITE_SEARCH)
                .bind::<Text, _>(&expr)
                .bind::<Text, _>(user_id)
                .bind::<Nullable<Text>, _>(session_id)
                .bind::<Nullable<Text>, _>(session_id)
                .bind::<BigInt, _>(limit)
                .bind::<Text, _>(&expr)
                .load(c)
        }
        DbConnection::Pg(c) => diesel::sql_query(PG_SEARCH)
            .bind::<Text, _>(tsquery(tokens, any))
            .bind::<Text, _>(user_id)
            .bind::<Nullable<Text>, _>(session_id)
            .bind::<BigInt, _>(limit)
            .load(c),
    }
}

/// Full-text search over the user's messages: all words first, and any
/// word when that finds nothing. Any input is safe: it is reduced to words.
pub(crate) fn search_message_rows(
    conn: &mut DbConnection,
    user_id: &str,
    query: &str,
    session_id: Option<&str>,
    limit: usize,
) -> Result<Vec<HitRow>, HistoryError> {
    let tokens = search_tokens(query);
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    let limit = limit as i64;
    let hits = run_search(conn, user_id, &tokens, false, session_id, limit)?;
    if hits.is_empty() && tokens.len() > 1 {
        return Ok(run_search(conn, user_id, &tokens, true, session_id, limit)?);
    }
    Ok(hits)
}

/// Validated fields of a message to insert.
fn message_row(
    config: &HistoryConfig,
    session_id: &str,
    new: NewMessage,
    timestamp: NaiveDateTime,
) -> Result<NewMessageRow, HistoryError> {
    validate::content(config, &new.content)?;
    validate::accounting(new.tokens_used, new.response_time)?;
    let model_id = new
        .model_id
        .as_deref()
        .map(|v| validate::name("model_id", v))
        .transpose()?;
    let metadata = validate::metadata(config, new.metadata)?;
    Ok(NewMessageRow {
        id: Uuid::now_v7().to_string(),
        session_id: session_id.to_owned(),
        role: new.role.as_str().to_owned(),
        content: new.content,
        timestamp,
        model_id,
        tokens_used: new.tokens_used,
        response_time: new.response_time,
        metadata: validate::metadata_json(&metadata),
    })
}

/// Appends `row` to a live session of `user`: bumps the session's count
/// (locking its row first, so writers to one session queue and timestamps
/// follow insertion order), stamps `updated_at` and inserts. Inside the
/// caller's transaction.
fn append(
    conn: &mut DbConnection,
    user: &str,
    sid: Uuid,
    mut row: NewMessageRow,
) -> Result<Message, HistoryError> {
    let bumped = diesel::update(
        s::chat_sessions
            .filter(s::id.eq(&row.session_id))
            .filter(s::user_id.eq(user))
            .filter(s::status.ne(SessionStatus::Deleted.as_str())),
    )
    .set(s::message_count.eq(s::message_count + 1))
    .execute(conn)?;
    if bumped == 0 {
        // Tell apart "not yours / missing" from "deleted".
        live_session(conn, user, sid)?;
        return Err(HistoryError::SessionNotFound(sid));
    }
    row.timestamp = validate::now_naive();
    diesel::update(s::chat_sessions.filter(s::id.eq(&row.session_id)))
        .set(s::updated_at.eq(row.timestamp))
        .execute(conn)?;
    diesel::insert_into(m::chat_messages)
        .values(&row)
        .execute(conn)?;
    inserted(row)
}

/// A stored message as the domain type, given its inserted row.
fn inserted(row: NewMessageRow) -> Result<Message, HistoryError> {
    MessageRow {
        seq: 0,
        id: row.id,
        session_id: row.session_id,
        role: row.role,
        content: row.content,
        timestamp: row.timestamp,
        model_id: row.model_id,
        tokens_used: row.tokens_used,
        response_time: row.response_time,
        metadata: row.metadata,
    }
    .into_model()
}

/// Loads a message whose session belongs to `user_id`, with that session.
pub(crate) fn owned_message(
    conn: &mut DbConnection,
    user_id: &str,
    id: Uuid,
) -> Result<(MessageRow, SessionRow), HistoryError> {
    m::chat_messages
        .inner_join(s::chat_sessions)
        .filter(m::id.eq(id.to_string()))
        .filter(s::user_id.eq(user_id))
        .select((MessageRow::as_select(), SessionRow::as_select()))
        .first(conn)
        .optional()?
        .ok_or(HistoryError::MessageNotFound(id))
}

impl HistoryService {
    /// A service over `db` with the given limits.
    pub fn new(db: Db, config: Arc<HistoryConfig>) -> Self {
        Self { db, config }
    }

    /// The configuration in force.
    pub fn config(&self) -> &HistoryConfig {
        &self.config
    }

    /// Appends a message to a session. The insert, the session's
    /// `message_count` and `updated_at` change in one transaction; the
    /// session row is locked first, so concurrent writers to one session
    /// queue and timestamps follow insertion order.
    pub async fn save_message(
        &self,
        user_id: &str,
        session_id: &str,
        new: NewMessage,
    ) -> Result<Message, HistoryError> {
        validate::user(user_id)?;
        let sid = validate::id("session", session_id)?;
        // Validate before touching the database; the timestamp is set under the lock.
        let row = message_row(&self.config, &sid.to_string(), new, validate::now_naive())?;
        let user = user_id.to_owned();
        // Group-committed: acknowledged once the transaction holding it commits.
        self.db
            .write(move |conn| append(conn, &user, sid, row))
            .await
    }

    /// Saves the first message of a session opened empty (a WebSocket
    /// `init`) and gives the session `title`, in one write. The title is
    /// set only while the session still has no message.
    pub async fn save_first_message(
        &self,
        user_id: &str,
        session_id: &str,
        title: &str,
        new: NewMessage,
    ) -> Result<Message, HistoryError> {
        validate::user(user_id)?;
        let sid = validate::id("session", session_id)?;
        let title = validate::title(&self.config, title)?;
        let row = message_row(&self.config, &sid.to_string(), new, validate::now_naive())?;
        let user = user_id.to_owned();
        self.db
            .write(move |conn| {
                diesel::update(
                    s::chat_sessions
                        .filter(s::id.eq(&row.session_id))
                        .filter(s::user_id.eq(&user))
                        .filter(s::message_count.eq(0)),
                )
                .set(s::title.eq(&title))
                .execute(conn)?;
                append(conn, &user, sid, row)
            })
            .await
    }

    /// Creates a session with its first message, in one write: a new
    /// conversation costs one transaction before its answer starts.
    pub async fn create_session_with_message(
        &self,
        user_id: &str,
        session: NewSession,
        new: NewMessage,
    ) -> Result<(ChatSession, Message), HistoryError> {
        let mut session = new_session_row(&self.config, user_id, session)?;
        let mut row = message_row(&self.config, &session.id, new, session.created_at)?;
        self.db
            .write(move |conn| {
                let now = validate::now_naive();
                session.created_at = now;
                session.updated_at = now;
                session.message_count = 1;
                row.timestamp = now;
                diesel::insert_into(s::chat_sessions)
                    .values(&session)
                    .execute(conn)?;
                diesel::insert_into(m::chat_messages)
                    .values(&row)
                    .execute(conn)?;
                Ok((session.into_model()?, inserted(row)?))
            })
            .await
    }

    /// One page of a session's messages, newest first. With `before` the
    /// page holds messages older than that cursor, with `after` the ones
    /// just newer than it. Pages never repeat or skip messages while new
    /// ones are appended.
    pub async fn get_session_messages(
        &self,
        user_id: &str,
        session_id: &str,
        query: MessageQuery,
    ) -> Result<MessagePage, HistoryError> {
        validate::user(user_id)?;
        let sid = validate::id("session", session_id)?;
        let limit = self.config.page_size(query.limit) as usize;
        let before = query.before.as_deref().map(decode_seq).transpose()?;
        let after = query.after.as_deref().map(decode_seq).transpose()?;
        if before.is_some() && after.is_some() {
            return Err(HistoryError::InvalidField {
                field: "cursor",
                reason: "give `before` or `after`, not both".into(),
            });
        }
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                live_session(conn, &user, sid)?;
                let base = m::chat_messages
                    .filter(m::session_id.eq(sid.to_string()))
                    .select(MessageRow::as_select())
                    .limit(limit as i64 + 1);
                let (mut rows, more): (Vec<MessageRow>, bool) = if let Some(after) = after {
                    let mut rows = base
                        .filter(m::seq.gt(after))
                        .order(m::seq.asc())
                        .load(conn)?;
                    let more = rows.len() > limit;
                    rows.truncate(limit);
                    rows.reverse();
                    (rows, more)
                } else {
                    let mut rows = match before {
                        Some(b) => base.filter(m::seq.lt(b)).order(m::seq.desc()).load(conn)?,
                        None => base.order(m::seq.desc()).load(conn)?,
                    };
                    let more = rows.len() > limit;
                    rows.truncate(limit);
                    (rows, more)
                };
                let newest = rows.first().map(|r| r.seq);
                let oldest = rows.last().map(|r| r.seq);
                let older_cursor = match after {
                    // Everything up to the `after` cursor is older.
                    Some(_) => oldest.map(encode_seq),
                    None => oldest.filter(|_| more).map(encode_seq),
                };
                // Always resumable forwards, so clients can poll for new messages.
                let newer_cursor = newest.or(after).map(encode_seq);
                let items = messages(std::mem::take(&mut rows))?;
                Ok(MessagePage {
                    items,
                    older_cursor,
                    newer_cursor,
                })
            })
            .await
    }

    /// The last `n` messages of a session, oldest first: the window of
    /// history handed to a model.
    pub async fn recent_messages(
        &self,
        user_id: &str,
        session_id: &str,
        n: u32,
    ) -> Result<Vec<Message>, HistoryError> {
        validate::user(user_id)?;
        let sid = validate::id("session", session_id)?;
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                live_session(conn, &user, sid)?;
                let mut rows: Vec<MessageRow> = m::chat_messages
                    .filter(m::session_id.eq(sid.to_string()))
                    .order(m::seq.desc())
                    .limit(i64::from(n))
                    .select(MessageRow::as_select())
                    .load(conn)?;
                rows.reverse();
                messages(rows)
            })
            .await
    }

    /// Full-text search over the user's messages (optionally one session),
    /// best match first, each with a highlighted snippet. Any query string
    /// is accepted; one without words returns nothing.
    pub async fn search_messages(
        &self,
        user_id: &str,
        query: &str,
        session_id: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<MessageSearchHit>, HistoryError> {
        validate::user(user_id)?;
        let sid = session_id
            .map(|id| validate::id("session", id))
            .transpose()?;
        let limit = self.config.page_size(limit) as usize;
        let user = user_id.to_owned();
        let query = query.to_owned();
        self.db
            .run(move |conn| {
                let sid = sid.map(|id| id.to_string());
                search_message_rows(conn, &user, &query, sid.as_deref(), limit)?
                    .into_iter()
                    .map(|hit| {
                        Ok(MessageSearchHit {
                            message: hit.message.into_model()?,
                            session_title: hit.session_title,
                            snippet: hit.snippet,
                            rank: hit.score,
                        })
                    })
                    .collect()
            })
            .await
    }

    /// Changes a message's content and/or metadata. Refused in deleted sessions.
    pub async fn update_message(
        &self,
        user_id: &str,
        message_id: &str,
        update: MessageUpdate,
    ) -> Result<Message, HistoryError> {
        validate::user(user_id)?;
        let mid = validate::id("message", message_id)?;
        if let Some(c) = &update.content {
            validate::content(&self.config, c)?;
        }
        let metadata = match update.metadata {
            Some(v) => Some(validate::metadata_json(&validate::metadata(
                &self.config,
                Some(v),
            )?)),
            None => None,
        };
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let (mut row, session) = owned_message(conn, &user, mid)?;
                    if session.status == SessionStatus::Deleted.as_str() {
                        return Err(HistoryError::SessionDeleted(mid_session(&session)?));
                    }
                    if update.content.is_none() && metadata.is_none() {
                        return row.into_model();
                    }
                    if let Some(c) = update.content {
                        row.content = c;
                    }
                    if let Some(md) = metadata {
                        row.metadata = md;
                    }
                    diesel::update(m::chat_messages.filter(m::id.eq(&row.id)))
                        .set((m::content.eq(&row.content), m::metadata.eq(&row.metadata)))
                        .execute(conn)?;
                    diesel::update(s::chat_sessions.filter(s::id.eq(&session.id)))
                        .set(s::updated_at.eq(validate::now_naive()))
                        .execute(conn)?;
                    row.into_model()
                })
            })
            .await
    }

    /// Deletes a message and keeps the session's `message_count` right.
    pub async fn delete_message(
        &self,
        user_id: &str,
        message_id: &str,
    ) -> Result<(), HistoryError> {
        validate::user(user_id)?;
        let mid = validate::id("message", message_id)?;
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let (row, session) = owned_message(conn, &user, mid)?;
                    if session.status == SessionStatus::Deleted.as_str() {
                        return Err(HistoryError::SessionDeleted(mid_session(&session)?));
                    }
                    let n =
                        diesel::delete(m::chat_messages.filter(m::id.eq(&row.id))).execute(conn)?;
                    diesel::update(s::chat_sessions.filter(s::id.eq(&session.id)))
                        .set((
                            s::message_count.eq(s::message_count - n as i64),
                            s::updated_at.eq(validate::now_naive()),
                        ))
                        .execute(conn)?;
                    Ok(())
                })
            })
            .await
    }

    /// Per-session figures: counts by role, tokens, mean response time, first and last message.
    pub async fn session_statistics(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<SessionStatistics, HistoryError> {
        validate::user(user_id)?;
        let sid = validate::id("session", session_id)?;
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                owned_session(conn, &user, sid)?;
                let rows: Vec<RoleStats> = raw_load!(
                    conn,
                    "SELECT role, COUNT(*) AS n, \
                            CAST(COALESCE(SUM(tokens_used), 0) AS BIGINT) AS tokens, \
                            SUM(response_time) AS rt_sum, COUNT(response_time) AS rt_n, \
                            MIN(timestamp) AS first_at, MAX(timestamp) AS last_at \
                     FROM chat_messages WHERE session_id = ? GROUP BY role",
                    RoleStats;
                    Text => sid.to_string()
                )?;
                let mut st = SessionStatistics {
                    session_id: sid,
                    ..SessionStatistics::default()
                };
                let (mut rt_sum, mut rt_n) = (0.0, 0i64);
                for r in rows {
                    st.message_count = st.message_count.saturating_add(r.n);
                    st.total_tokens = st.total_tokens.saturating_add(r.tokens);
                    rt_sum += r.rt_sum.unwrap_or(0.0);
                    rt_n += r.rt_n;
                    match r.role.as_str() {
                        "user" => st.user_messages += r.n,
                        "assistant" => st.assistant_messages += r.n,
                        "system" => st.system_messages += r.n,
                        _ => st.tool_messages += r.n,
                    }
                    let first = r.first_at.map(utc);
                    if first.is_some()
                        && (st.first_message_at.is_none() || first < st.first_message_at)
                    {
                        st.first_message_at = first;
                    }
                    let last = r.last_at.map(utc);
                    if last > st.last_message_at {
                        st.last_message_at = last;
                    }
                }
                st.average_response_time = (rt_n > 0).then(|| rt_sum / rt_n as f64);
                Ok(st)
            })
            .await
    }

    /// The session and all its messages (oldest first) as a [`SessionExport`].
    pub async fn export_document(
        &self,
        user_id: &str,
        session_id: &str,
    ) -> Result<SessionExport, HistoryError> {
        validate::user(user_id)?;
        let sid = validate::id("session", session_id)?;
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                let session = live_session(conn, &user, sid)?.into_model()?;
                let rows: Vec<MessageRow> = m::chat_messages
                    .filter(m::session_id.eq(sid.to_string()))
                    .order(m::seq.asc())
                    .select(MessageRow::as_select())
                    .load(conn)?;
                Ok(SessionExport {
                    format: SessionExport::FORMAT.to_owned(),
                    exported_at: validate::now(),
                    session,
                    messages: messages(rows)?,
                })
            })
            .await
    }

    /// Exports a session as `json`, `markdown` (`md`) or `txt` (`text`).
    pub async fn export_session(
        &self,
        user_id: &str,
        session_id: &str,
        format: &str,
    ) -> Result<ExportedSession, HistoryError> {
        let format: ExportFormat = format
            .parse()
            .map_err(|_| HistoryError::UnknownExportFormat(format.chars().take(32).collect()))?;
        let doc = self.export_document(user_id, session_id).await?;
        export::render(&doc, format)
    }

    /// Imports a JSON export as a new session of `user_id` (new ids, same
    /// title, settings, metadata and messages with their timestamps).
    pub async fn import_session(
        &self,
        user_id: &str,
        json: &str,
    ) -> Result<ChatSession, HistoryError> {
        let doc: SessionExport = serde_json::from_str(json)
            .map_err(|e| HistoryError::InvalidImport(format!("not a session export: {e}")))?;
        self.import_document(user_id, doc).await
    }

    /// Imports an already parsed [`SessionExport`]; see [`HistoryService::import_session`].
    pub async fn import_document(
        &self,
        user_id: &str,
        doc: SessionExport,
    ) -> Result<ChatSession, HistoryError> {
        validate::user(user_id)?;
        if doc.format != SessionExport::FORMAT {
            return Err(HistoryError::InvalidImport(format!(
                "unsupported format `{}`; expected `{}`",
                doc.format.chars().take(40).collect::<String>(),
                SessionExport::FORMAT
            )));
        }
        let cfg = &self.config;
        if doc.messages.len() > cfg.max_import_messages {
            return Err(HistoryError::InvalidImport(format!(
                "{} messages; the limit is {}",
                doc.messages.len(),
                cfg.max_import_messages
            )));
        }
        let src = doc.session;
        let now = validate::now_naive();
        let session_id = Uuid::now_v7().to_string();
        let session = SessionRow {
            id: session_id.clone(),
            title: validate::title(cfg, &src.title)?,
            model_id: validate::name("model_id", &src.model_id)?,
            user_id: user_id.to_owned(),
            agent: validate::name("agent", &src.agent)?,
            course_id: src
                .course_id
                .as_deref()
                .map(|c| validate::name("course_id", c))
                .transpose()?,
            status: match src.status {
                SessionStatus::Archived => SessionStatus::Archived,
                _ => SessionStatus::Active,
            }
            .as_str()
            .to_owned(),
            created_at: src.created_at.naive_utc(),
            updated_at: now,
            message_count: doc.messages.len() as i64,
            metadata: validate::metadata_json(&validate::metadata(
                cfg,
                Some(serde_json::Value::Object(src.metadata)),
            )?),
        };
        let mut rows = Vec::with_capacity(doc.messages.len());
        for (i, msg) in doc.messages.into_iter().enumerate() {
            let timestamp = msg.timestamp.naive_utc();
            let new = NewMessage {
                role: msg.role,
                content: msg.content,
                model_id: msg.model_id,
                tokens_used: msg.tokens_used,
                response_time: msg.response_time,
                metadata: Some(serde_json::Value::Object(msg.metadata)),
            };
            rows.push(
                message_row(cfg, &session_id, new, timestamp)
                    .map_err(|e| HistoryError::InvalidImport(format!("message {}: {e}", i + 1)))?,
            );
        }
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    diesel::insert_into(s::chat_sessions)
                        .values(&session)
                        .execute(conn)?;
                    for chunk in rows.chunks(INSERT_BATCH) {
                        // Multi-row INSERT is not in diesel's MultiBackend: run it per backend.
                        let insert = diesel::insert_into(m::chat_messages).values(chunk);
                        match conn {
                            DbConnection::Sqlite(c) => insert.execute(c)?,
                            DbConnection::Pg(c) => insert.execute(c)?,
                        };
                    }
                    session.into_model()
                })
            })
            .await
    }
}

fn mid_session(session: &SessionRow) -> Result<Uuid, HistoryError> {
    session
        .id
        .parse()
        .map_err(|_| HistoryError::Corrupt(format!("session id `{}` is not a UUID", session.id)))
}
