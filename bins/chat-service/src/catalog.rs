//! The course catalogue as the agents see it (the accounts crate's
//! [`CatalogService`] on the shared database), and course indexing: each
//! track's lessons go into the RAG collection `course:<id>`, which the
//! course agent searches.

use std::collections::BTreeSet;

use confab_accounts::{AccountsError, CatalogService};
use confab_agents::store::{
    Catalog, LessonInfo, StoreError, StoreResult, TrackCard, UserProgress, course_collection,
};
use confab_error::{DomainError, ErrorKind};
use confab_llm::BoxFuture;
use confab_models::Metadata;
use confab_rag::Rag;
use confab_rag::extract::DocumentKind;
use serde::Serialize;

/// Prefix of lesson sources in a course collection.
const LESSON_SOURCE: &str = "lessons/";

fn store_error(e: AccountsError) -> StoreError {
    match e.kind() {
        ErrorKind::NotFound => StoreError::NotFound(e.to_string()),
        kind if kind.is_client_error() => StoreError::Invalid(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// [`Catalog`] over the accounts crate's catalogue.
#[derive(Debug, Clone)]
pub struct AccountsCatalog {
    catalog: CatalogService,
}

impl AccountsCatalog {
    /// The adapter over `catalog`.
    pub fn new(catalog: CatalogService) -> Self {
        Self { catalog }
    }
}

fn card(c: confab_accounts::models::TrackCard) -> TrackCard {
    TrackCard {
        id: c.id,
        title: c.title,
        description: c.description,
        lessons_total: c.lessons_total,
        lessons_completed: c.lessons_completed,
        progress_percent: c.progress_percent,
    }
}

fn lesson(l: confab_accounts::models::Lesson) -> LessonInfo {
    LessonInfo {
        id: l.id,
        track_id: l.track_id,
        module_title: l.module_title,
        title: l.title,
        content: l.content,
        completed: l.completed,
    }
}

impl Catalog for AccountsCatalog {
    fn list_tracks<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, StoreResult<Vec<TrackCard>>> {
        Box::pin(async move {
            let cards = self
                .catalog
                .tracks_for_user(user_id)
                .await
                .map_err(store_error)?;
            Ok(cards.into_iter().map(card).collect())
        })
    }

    fn progress<'a>(&'a self, user_id: &'a str) -> BoxFuture<'a, StoreResult<UserProgress>> {
        Box::pin(async move {
            let p = self.catalog.progress(user_id).await.map_err(store_error)?;
            Ok(UserProgress {
                tracks: p.tracks.into_iter().map(card).collect(),
                completed_lessons: p.completed_lessons,
            })
        })
    }

    fn lesson<'a>(
        &'a self,
        user_id: &'a str,
        lesson_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<LessonInfo>> {
        Box::pin(async move {
            let l = self
                .catalog
                .lesson(user_id, lesson_id)
                .await
                .map_err(store_error)?;
            Ok(lesson(l))
        })
    }

    fn track_lessons<'a>(
        &'a self,
        user_id: &'a str,
        track_id: &'a str,
    ) -> BoxFuture<'a, StoreResult<Vec<LessonInfo>>> {
        Box::pin(async move {
            let ls = self
                .catalog
                .track_lessons(user_id, track_id)
                .await
                .map_err(store_error)?;
            Ok(ls.into_iter().map(lesson).collect())
        })
    }
}

/// What indexing a course did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CourseIndexReport {
    /// The track.
    pub course_id: String,
    /// Its RAG collection.
    pub collection: String,
    /// Lessons in the track.
    pub lessons: usize,
    /// Lessons (re)ingested because they are new or changed.
    pub changed: usize,
    /// Lessons removed from the index because they left the track.
    pub removed: usize,
}

/// Errors of course indexing.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The catalogue could not be read.
    #[error(transparent)]
    Catalog(#[from] AccountsError),
    /// The index could not be written.
    #[error(transparent)]
    Rag(#[from] confab_rag::RagError),
}

/// Brings `course:<id>` in line with the track's lessons (idempotent:
/// unchanged lessons are skipped by their content hash).
pub async fn index_course(
    catalog: &CatalogService,
    rag: &Rag,
    course_id: &str,
) -> Result<CourseIndexReport, IndexError> {
    let collection = course_collection(course_id);
    let lessons = match catalog.track_lessons("", course_id).await {
        Ok(l) => l,
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut report = CourseIndexReport {
        course_id: course_id.to_owned(),
        collection: collection.clone(),
        lessons: lessons.len(),
        ..CourseIndexReport::default()
    };
    let mut keep = BTreeSet::new();
    for l in &lessons {
        let source = format!("{LESSON_SOURCE}{}", l.id);
        let mut meta = Metadata::new();
        meta.insert("lesson_id".into(), l.id.clone().into());
        meta.insert("track_id".into(), l.track_id.clone().into());
        meta.insert("module".into(), l.module_title.clone().into());
        let text = format!("# {}\n\n{}", l.title, l.content);
        let outcome = rag
            .ingest_text(
                &collection,
                &source,
                &l.title,
                &text,
                DocumentKind::Markdown,
                meta,
            )
            .await?;
        if !matches!(outcome, confab_rag::IngestOutcome::Unchanged) {
            report.changed += 1;
        }
        keep.insert(source);
    }
    for source in rag.sources(&collection, LESSON_SOURCE).await? {
        if !keep.contains(&source) && rag.delete_document(&collection, &source).await? {
            report.removed += 1;
        }
    }
    Ok(report)
}

/// Indexes every track of the catalogue (at startup).
pub async fn index_all(
    catalog: &CatalogService,
    rag: &Rag,
) -> Result<Vec<CourseIndexReport>, IndexError> {
    let mut reports = Vec::new();
    for track in catalog.tracks_for_user("").await? {
        reports.push(index_course(catalog, rag, &track.id).await?);
    }
    Ok(reports)
}
