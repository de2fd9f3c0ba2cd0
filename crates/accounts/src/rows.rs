//! Diesel row types and their conversion to the domain types.

use chrono::{DateTime, NaiveDateTime, Utc};
use confab_models::accounts::{ApiKeyInfo, User};
use confab_store::schema::{
    api_keys, lesson_progress, lessons, modules, refresh_tokens, tracks, users,
};
use diesel::prelude::*;
use uuid::Uuid;

use crate::error::AccountsError;
use crate::validate;

/// A stored naive UTC time as a UTC datetime.
pub(crate) fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

fn parse_uuid(s: &str, what: &str) -> Result<Uuid, AccountsError> {
    s.parse()
        .map_err(|_| AccountsError::Corrupt(format!("{what} id `{s}` is not a UUID")))
}

/// A `users` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub(crate) struct UserRow {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: String,
    pub settings: String,
    pub token_version: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl UserRow {
    /// The stored settings object.
    pub fn settings_map(
        &self,
    ) -> Result<serde_json::Map<String, serde_json::Value>, AccountsError> {
        serde_json::from_str(&self.settings)
            .map_err(|e| AccountsError::Corrupt(format!("settings of user {}: {e}", self.id)))
    }

    pub fn into_model(self) -> Result<User, AccountsError> {
        let settings = validate::settings_from_map(self.settings_map()?)?;
        Ok(User {
            id: parse_uuid(&self.id, "user")?,
            role: self
                .role
                .parse()
                .map_err(|e| AccountsError::Corrupt(format!("{e}")))?,
            settings,
            email: self.email,
            display_name: self.display_name,
            created_at: utc(self.created_at),
            updated_at: utc(self.updated_at),
        })
    }
}

/// A `refresh_tokens` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub(crate) struct RefreshRow {
    pub id: String,
    pub user_id: String,
    pub token_hash: String,
    pub family_id: String,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub replaced_by: Option<String>,
    pub created_at: NaiveDateTime,
}

/// An `api_keys` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub(crate) struct ApiKeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

impl ApiKeyRow {
    pub fn into_model(self) -> Result<ApiKeyInfo, AccountsError> {
        Ok(ApiKeyInfo {
            id: parse_uuid(&self.id, "API key")?,
            name: self.name,
            prefix: self.prefix,
            created_at: utc(self.created_at),
            last_used_at: self.last_used_at.map(utc),
            revoked_at: self.revoked_at.map(utc),
        })
    }
}

/// A `tracks` row.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = tracks)]
pub(crate) struct TrackRow {
    pub id: String,
    pub title: String,
    pub description: String,
    pub position: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A `modules` row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = modules)]
pub(crate) struct ModuleRow {
    pub id: String,
    pub track_id: String,
    pub title: String,
    pub position: i32,
}

/// A `lessons` row.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = lessons)]
pub(crate) struct LessonRow {
    pub id: String,
    pub module_id: String,
    pub title: String,
    pub content: String,
    pub position: i32,
}

/// A `lesson_progress` row.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = lesson_progress)]
pub(crate) struct ProgressRow {
    pub user_id: String,
    pub lesson_id: String,
    pub completed_at: NaiveDateTime,
}
