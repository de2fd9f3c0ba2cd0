//! In-memory [`Catalog`] and [`MemoryStore`]: for tests, examples and a
//! server run without the accounts database.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use confab_llm::BoxFuture;
use confab_models::MemoryItem;

use crate::store::{
    Catalog, LessonInfo, MemoryStore, StoreError, StoreResult, TrackCard, UserProgress,
};

/// A track of an [`InMemoryCatalog`].
#[derive(Debug, Clone)]
pub struct Track {
    /// Track id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Lessons in order (their `completed` field is ignored).
    pub lessons: Vec<LessonInfo>,
}

/// A fixed catalogue with per-user completed lessons.
#[derive(Debug, Default)]
pub struct InMemoryCatalog {
    tracks: Vec<Track>,
    completed: Mutex<HashMap<String, BTreeSet<String>>>,
}

impl InMemoryCatalog {
    /// A catalogue of these tracks.
    pub fn new(tracks: Vec<Track>) -> Self {
        Self {
            tracks,
            completed: Mutex::default(),
        }
    }

    /// Marks a lesson completed for a user.
    pub fn complete(&self, user_id: &str, lesson_id: &str) {
        if let Ok(mut done) = self.completed.lock() {
            done.entry(user_id.to_owned())
                .or_default()
                .insert(lesson_id.to_owned());
        }
    }

    fn done(&self, user_id: &str) -> BTreeSet<String> {
        self.completed
            .lock()
            .map(|d| d.get(user_id).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn cards(&self, user_id: &str) -> Vec<TrackCard> {
        let done = self.done(user_id);
        self.tracks
            .iter()
            .map(|t| {
                let total = t.lessons.len() as u32;
                let completed = t.lessons.iter().filter(|l| done.contains(&l.id)).count() as u32;
                TrackCard {
                    id: t.id.clone(),
                    title: t.title.clone(),
                    description: t.description.clone(),
                    lessons_total: total,
                    lessons_completed: completed,
                    progress_percent: if total == 0 {
                        0.0
                    } else {
                        f64::from(completed) * 100.0 / f64::from(total)
                    },
                }
            })
            .collect()
    }
}

impl Catalog for InMemoryCatalog {
    fn list_tracks<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, StoreResult<Vec<TrackCard>>> {
        Box::pin(async move { Ok(self.cards(user_id)) })
    }

    fn progress<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, StoreResult<UserProgress>> {
        Box::pin(async move {
            Ok(UserProgress {
                tracks: self.cards(user_id),
                completed_lessons: self.done(user_id).into_iter().collect(),
            })
        })
    }

    fn lesson<'a>(
        &'a self,
        user_id: &'a str,
        lesson_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<LessonInfo>> {
        Box::pin(async move {
            let done = self.done(user_id);
            self.tracks
                .iter()
                .flat_map(|t| t.lessons.iter())
                .find(|l| l.id == lesson_id)
                .map(|l| LessonInfo {
                    completed: done.contains(&l.id),
                    ..l.clone()
                })
                .ok_or_else(|| StoreError::NotFound(format!("lesson `{lesson_id}` not found")))
        })
    }

    fn track_lessons<'a>(
        &'a self,
        user_id: &'a str,
        track_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<LessonInfo>>> {
        Box::pin(async move {
            let done = self.done(user_id);
            let track = self
                .tracks
                .iter()
                .find(|t| t.id == track_id)
                .ok_or_else(|| StoreError::NotFound(format!("track `{track_id}` not found")))?;
            Ok(track
                .lessons
                .iter()
                .map(|l| LessonInfo {
                    completed: done.contains(&l.id),
                    ..l.clone()
                })
                .collect())
        })
    }
}

/// Memory items kept in a map (lost on restart).
#[derive(Debug, Default)]
pub struct InMemoryMemory {
    items: Mutex<HashMap<String, Vec<MemoryItem>>>,
}

impl InMemoryMemory {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl MemoryStore for InMemoryMemory {
    fn remember<'a>(
        &'a self,
        user_id: &'a str,
        content: &'a str,
        metadata: serde_json::Value,
    ) -> BoxFuture<'a, StoreResult<MemoryItem>> {
        Box::pin(async move {
            let metadata = match metadata {
                serde_json::Value::Object(m) => m,
                _ => Default::default(),
            };
            let item = MemoryItem {
                id: uuid::Uuid::now_v7(),
                user_id: user_id.to_owned(),
                content: content.to_owned(),
                created_at: chrono::Utc::now(),
                metadata,
            };
            self.items
                .lock()
                .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))?
                .entry(user_id.to_owned())
                .or_default()
                .push(item.clone());
            Ok(item)
        })
    }

    fn recall<'a>(
        &'a self,
        user_id: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, StoreResult<Vec<MemoryItem>>> {
        Box::pin(async move {
            let items = self
                .items
                .lock()
                .map_err(|_| StoreError::Unavailable("memory store poisoned".into()))?;
            Ok(items
                .get(user_id)
                .map(|v| v.iter().rev().take(limit as usize).cloned().collect())
                .unwrap_or_default())
        })
    }
}
