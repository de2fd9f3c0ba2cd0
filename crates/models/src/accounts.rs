//! DTOs of the accounts crate: users and their settings, tokens, API keys,
//! and the course catalogue (tracks -> modules -> lessons) with a user's
//! progress.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::chat::ParseEnumError;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    /// An ordinary user.
    #[default]
    User,
    /// An administrator.
    Admin,
}

impl UserRole {
    /// Every role.
    pub const ALL: &'static [UserRole] = &[UserRole::User, UserRole::Admin];

    /// The lowercase name, as stored and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            UserRole::User => "user",
            UserRole::Admin => "admin",
        }
    }
}

impl fmt::Display for UserRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UserRole {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(UserRole::User),
            "admin" => Ok(UserRole::Admin),
            _ => Err(ParseEnumError {
                kind: "role",
                value: s.to_owned(),
            }),
        }
    }
}

/// How the assistant should answer this user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AiStyle {
    /// Clear, moderately detailed answers.
    #[default]
    Balanced,
    /// Short answers.
    Concise,
    /// Thorough answers with examples.
    Detailed,
    /// Guiding questions instead of ready answers.
    Socratic,
}

impl AiStyle {
    /// Every style.
    pub const ALL: &'static [AiStyle] = &[
        AiStyle::Balanced,
        AiStyle::Concise,
        AiStyle::Detailed,
        AiStyle::Socratic,
    ];

    /// The lowercase name, as stored and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            AiStyle::Balanced => "balanced",
            AiStyle::Concise => "concise",
            AiStyle::Detailed => "detailed",
            AiStyle::Socratic => "socratic",
        }
    }
}

impl fmt::Display for AiStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AiStyle {
    type Err = ParseEnumError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AiStyle::ALL
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                kind: "ai_style",
                value: s.to_owned(),
            })
    }
}

/// A user's settings: a JSON object with at least `ai_style` and
/// `preferred_model`; other keys (client preferences) are kept as given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserSettings {
    /// Answer style.
    #[serde(default)]
    pub ai_style: AiStyle,
    /// Model to ask instead of the default one.
    #[serde(default)]
    pub preferred_model: Option<String>,
    /// Any other keys, kept as given.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A user account as the API shows it (never with the password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// UUID.
    pub id: Uuid,
    /// Email address, lowercased.
    pub email: String,
    /// Name shown to people.
    pub display_name: String,
    /// What the user may do.
    pub role: UserRole,
    /// Settings.
    pub settings: UserSettings,
    /// When the account was created (UTC).
    pub created_at: DateTime<Utc>,
    /// Last change of the profile (UTC).
    pub updated_at: DateTime<Utc>,
}

/// Input of a profile update: only the given fields change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileUpdate {
    /// New display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// A JSON merge patch (RFC 7396) over the settings object: given keys
    /// replace stored ones, `null` removes a key (or resets it to its default).
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
}

/// What a login or a refresh hands out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    /// Short-lived JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Long-lived opaque token, good for one refresh.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
}

/// An API key as listed (never with the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    /// UUID.
    pub id: Uuid,
    /// The name its owner gave it.
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    /// When it was created (UTC).
    pub created_at: DateTime<Utc>,
    /// When it was last used (UTC, updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked (UTC); revoked keys no longer authenticate.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new API key: the only time the key itself is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedApiKey {
    /// The stored description.
    #[serde(flatten)]
    pub info: ApiKeyInfo,
    /// The key (`cfb_...`); store it now, it cannot be shown again.
    pub key: String,
}

/// A track with its modules and lessons, and the user's completion flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// Slug id (also the course id of the course agent).
    pub id: String,
    /// Title.
    pub title: String,
    /// One-paragraph description.
    pub description: String,
    /// Order on the dashboard.
    pub position: i32,
    /// Modules in order.
    pub modules: Vec<Module>,
    /// Lessons in the track.
    pub lessons_total: u32,
    /// Lessons the user completed.
    pub lessons_completed: u32,
    /// 0..=100.
    pub progress_percent: f64,
}

/// A module of a track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Module {
    /// Slug id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Order in the track.
    pub position: i32,
    /// Lessons in order.
    pub lessons: Vec<LessonSummary>,
}

/// A lesson in a module listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LessonSummary {
    /// Slug id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Order in the module.
    pub position: i32,
    /// Whether the user completed it.
    pub completed: bool,
}

/// One lesson with its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lesson {
    /// Slug id.
    pub id: String,
    /// The track (course) it belongs to.
    pub track_id: String,
    /// Its module.
    pub module_id: String,
    /// The module's title.
    pub module_title: String,
    /// Title.
    pub title: String,
    /// Markdown content.
    pub content: String,
    /// Order in the module.
    pub position: i32,
    /// Whether the user completed it.
    pub completed: bool,
    /// The lesson before this one in the track, if any.
    pub previous_lesson_id: Option<String>,
    /// The lesson after this one in the track, if any.
    pub next_lesson_id: Option<String>,
}

/// A track as a dashboard card with the user's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackCard {
    /// Slug id.
    pub id: String,
    /// Title.
    pub title: String,
    /// One-paragraph description.
    pub description: String,
    /// Order on the dashboard.
    pub position: i32,
    /// Modules in the track.
    pub modules_total: u32,
    /// Lessons in the track.
    pub lessons_total: u32,
    /// Lessons the user completed.
    pub lessons_completed: u32,
    /// 0..=100, rounded to one decimal.
    pub progress_percent: f64,
    /// The first lesson, in order, the user has not completed.
    pub next_lesson_id: Option<String>,
}

/// A user's progress over the whole catalogue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserProgress {
    /// Every track with the user's progress.
    pub tracks: Vec<TrackCard>,
    /// Ids of the lessons the user completed, in catalogue order.
    pub completed_lessons: Vec<String>,
    /// Lessons completed.
    pub total_completed: u32,
    /// Lessons in the catalogue.
    pub total_lessons: u32,
    /// 0..=100 over the whole catalogue, rounded to one decimal.
    pub progress_percent: f64,
}

/// What marking a lesson complete did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LessonCompletion {
    /// The lesson.
    pub lesson_id: String,
    /// Its track.
    pub track_id: String,
    /// When the user first completed it (UTC).
    pub completed_at: DateTime<Utc>,
    /// Whether it was already complete (nothing changed).
    pub already_completed: bool,
    /// The track's progress afterwards.
    pub track: TrackCard,
}

/// What a catalogue import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    /// Ids of every track in the import.
    pub tracks: Vec<String>,
    /// Ids of the tracks that were created or changed (their course index
    /// needs rebuilding).
    pub changed: Vec<String>,
    /// Modules in the import.
    pub modules: u32,
    /// Lessons in the import.
    pub lessons: u32,
    /// Things skipped or ignored while reading (files in the wrong place).
    pub warnings: Vec<String>,
}
