//! [`MemoryService`]: a user's long-term memory items.

use std::sync::Arc;

use confab_models::MemoryItem;
use confab_store::Db;
use confab_store::schema::user_memory::dsl as um;
use diesel::prelude::*;
use uuid::Uuid;

use crate::config::HistoryConfig;
use crate::error::HistoryError;
use crate::rows::MemoryRow;
use crate::validate;

/// Long-term memory: short texts a user asked the assistant to remember
/// across sessions. Every operation is scoped to one user.
#[derive(Debug, Clone)]
pub struct MemoryService {
    db: Db,
    config: Arc<HistoryConfig>,
}

impl MemoryService {
    /// A service over `db` with the given limits.
    pub fn new(db: Db, config: Arc<HistoryConfig>) -> Self {
        Self { db, config }
    }

    /// Stores an item for `user_id`. `metadata` must be a JSON object when given.
    pub async fn remember(
        &self,
        user_id: &str,
        content: &str,
        metadata: Option<serde_json::Value>,
    ) -> Result<MemoryItem, HistoryError> {
        validate::user(user_id)?;
        let content = validate::short_text("content", content, self.config.max_memory_chars)?
            .ok_or(HistoryError::EmptyContent)?;
        let metadata = validate::metadata(&self.config, metadata)?;
        let row = MemoryRow {
            id: Uuid::now_v7().to_string(),
            user_id: user_id.to_owned(),
            content,
            created_at: validate::now_naive(),
            metadata: validate::metadata_json(&metadata),
        };
        self.db
            .run(move |conn| {
                diesel::insert_into(um::user_memory)
                    .values(&row)
                    .execute(conn)?;
                row.into_model()
            })
            .await
    }

    /// The user's most recent items, newest first; `limit` defaults to the
    /// configured page size and is capped by it.
    pub async fn list(
        &self,
        user_id: &str,
        limit: Option<u32>,
    ) -> Result<Vec<MemoryItem>, HistoryError> {
        validate::user(user_id)?;
        let limit = i64::from(self.config.page_size(limit));
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                let rows: Vec<MemoryRow> = um::user_memory
                    .filter(um::user_id.eq(user))
                    .order((um::created_at.desc(), um::id.desc()))
                    .limit(limit)
                    .select(MemoryRow::as_select())
                    .load(conn)?;
                rows.into_iter().map(MemoryRow::into_model).collect()
            })
            .await
    }

    /// How many items the user has.
    pub async fn count(&self, user_id: &str) -> Result<i64, HistoryError> {
        validate::user(user_id)?;
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                Ok(um::user_memory
                    .filter(um::user_id.eq(user))
                    .count()
                    .get_result(conn)?)
            })
            .await
    }

    /// Removes every item of the user; returns how many were removed.
    pub async fn clear(&self, user_id: &str) -> Result<u64, HistoryError> {
        validate::user(user_id)?;
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                let n =
                    diesel::delete(um::user_memory.filter(um::user_id.eq(user))).execute(conn)?;
                Ok(n as u64)
            })
            .await
    }
}
