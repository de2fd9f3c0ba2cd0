//! [`CatalogService`]: the course catalogue (tracks -> modules -> lessons)
//! and each user's lesson progress; catalogue import and the demo catalogue.

mod demo;
mod source;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use confab_models::accounts::{
    ImportSummary, Lesson, LessonCompletion, LessonSummary, Module, Track, TrackCard, UserProgress,
};
use confab_store::schema::lesson_progress::dsl as lp;
use confab_store::schema::lessons::dsl as l;
use confab_store::schema::modules::dsl as m;
use confab_store::schema::tracks::dsl as t;
use confab_store::schema::users::dsl as u;
use confab_store::{Db, DbConnection, write_transaction};
use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;

use crate::error::AccountsError;
use crate::rows::{LessonRow, ModuleRow, ProgressRow, TrackRow, utc};
use crate::validate;

pub use demo::DEMO_TRACKS;
use source::{CatalogTree, TrackDef};

/// Key of the PostgreSQL advisory lock held by catalogue imports.
const IMPORT_LOCK_KEY: i64 = 0x636f_6e66_6361; // "confca"

/// The course catalogue and lesson progress. Reads take the user id (any
/// text id, usually a user's UUID) to fill in completion flags. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct CatalogService {
    db: Db,
}

/// One lesson's place in the catalogue (no content).
#[derive(Debug, Clone, Queryable)]
struct LessonPlace {
    id: String,
    track_id: String,
}

/// Every lesson's place, in catalogue order within each track.
fn lesson_places(conn: &mut DbConnection) -> QueryResult<Vec<LessonPlace>> {
    l::lessons
        .inner_join(m::modules)
        .select((l::id, m::track_id))
        .order((m::track_id, m::position, m::id, l::position, l::id))
        .load(conn)
}

/// The lessons of one track in order (no content).
fn track_places(conn: &mut DbConnection, track_id: &str) -> QueryResult<Vec<LessonPlace>> {
    l::lessons
        .inner_join(m::modules)
        .filter(m::track_id.eq(track_id))
        .select((l::id, m::track_id))
        .order((m::position, m::id, l::position, l::id))
        .load(conn)
}

/// Ids of the lessons the user completed.
fn completed_set(conn: &mut DbConnection, user_id: &str) -> QueryResult<HashSet<String>> {
    Ok(lp::lesson_progress
        .filter(lp::user_id.eq(user_id))
        .select(lp::lesson_id)
        .load::<String>(conn)?
        .into_iter()
        .collect())
}

fn all_tracks(conn: &mut DbConnection) -> QueryResult<Vec<TrackRow>> {
    t::tracks
        .order((t::position, t::id))
        .select(TrackRow::as_select())
        .load(conn)
}

fn find_track(conn: &mut DbConnection, id: &str) -> Result<TrackRow, AccountsError> {
    t::tracks
        .find(id)
        .select(TrackRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AccountsError::TrackNotFound(id.to_owned()))
}

/// `done` of `total` as a percentage with one decimal.
fn percent(done: u32, total: u32) -> f64 {
    if total == 0 {
        0.0
    } else {
        (f64::from(done) * 1000.0 / f64::from(total)).round() / 10.0
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A card for `track` given its lessons in order.
fn card(
    track: &TrackRow,
    modules_total: usize,
    lessons: &[&LessonPlace],
    done: &HashSet<String>,
) -> TrackCard {
    let completed = lessons.iter().filter(|p| done.contains(&p.id)).count();
    TrackCard {
        id: track.id.clone(),
        title: track.title.clone(),
        description: track.description.clone(),
        position: track.position,
        modules_total: count(modules_total),
        lessons_total: count(lessons.len()),
        lessons_completed: count(completed),
        progress_percent: percent(count(completed), count(lessons.len())),
        next_lesson_id: lessons
            .iter()
            .find(|p| !done.contains(&p.id))
            .map(|p| p.id.clone()),
    }
}

/// Cards of every track for the user, plus the completed lesson ids in catalogue order.
fn cards(
    conn: &mut DbConnection,
    user_id: &str,
) -> Result<(Vec<TrackCard>, Vec<String>), AccountsError> {
    let tracks = all_tracks(conn)?;
    let places = lesson_places(conn)?;
    let module_tracks: Vec<String> = m::modules.select(m::track_id).load(conn)?;
    let done = completed_set(conn, user_id)?;
    let mut by_track: HashMap<&str, Vec<&LessonPlace>> = HashMap::new();
    for p in &places {
        by_track.entry(p.track_id.as_str()).or_default().push(p);
    }
    let mut modules_per_track: HashMap<&str, usize> = HashMap::new();
    for tid in &module_tracks {
        *modules_per_track.entry(tid.as_str()).or_default() += 1;
    }
    let mut out = Vec::with_capacity(tracks.len());
    let mut completed = Vec::new();
    for tr in &tracks {
        let lessons = by_track.get(tr.id.as_str()).cloned().unwrap_or_default();
        completed.extend(
            lessons
                .iter()
                .filter(|p| done.contains(&p.id))
                .map(|p| p.id.clone()),
        );
        let modules = modules_per_track.get(tr.id.as_str()).copied().unwrap_or(0);
        out.push(card(tr, modules, &lessons, &done));
    }
    Ok((out, completed))
}

/// The card of one track for the user.
fn track_card(
    conn: &mut DbConnection,
    user_id: &str,
    track_id: &str,
) -> Result<TrackCard, AccountsError> {
    let track = find_track(conn, track_id)?;
    let places = track_places(conn, track_id)?;
    let modules: i64 = m::modules
        .filter(m::track_id.eq(track_id))
        .count()
        .get_result(conn)?;
    let done = completed_set(conn, user_id)?;
    let refs: Vec<&LessonPlace> = places.iter().collect();
    Ok(card(
        &track,
        usize::try_from(modules).unwrap_or(0),
        &refs,
        &done,
    ))
}

/// A full lesson with its neighbours in `places`.
fn lesson_model(
    row: LessonRow,
    track_id: String,
    module_title: String,
    places: &[LessonPlace],
    done: &HashSet<String>,
) -> Lesson {
    let at = places.iter().position(|p| p.id == row.id);
    let previous = at
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| places.get(i))
        .map(|p| p.id.clone());
    let next = at.and_then(|i| places.get(i + 1)).map(|p| p.id.clone());
    Lesson {
        completed: done.contains(&row.id),
        id: row.id,
        track_id,
        module_id: row.module_id,
        module_title,
        title: row.title,
        content: row.content,
        position: row.position,
        previous_lesson_id: previous,
        next_lesson_id: next,
    }
}

/// Writes one track of an import; returns whether anything changed.
fn apply_track(
    conn: &mut DbConnection,
    def: &TrackDef,
    module_owner: &HashMap<String, String>,
    lesson_owner: &HashMap<String, String>,
    now: NaiveDateTime,
) -> Result<bool, AccountsError> {
    // Ids must not belong to another track already.
    for md in &def.modules {
        if let Some(owner) = module_owner.get(&md.id).filter(|o| **o != def.id) {
            return Err(AccountsError::InvalidCatalog(format!(
                "module id `{}` already belongs to track `{owner}`",
                md.id
            )));
        }
        for ld in &md.lessons {
            if let Some(owner) = lesson_owner.get(&ld.id).filter(|o| **o != def.id) {
                return Err(AccountsError::InvalidCatalog(format!(
                    "lesson id `{}` already belongs to track `{owner}`",
                    ld.id
                )));
            }
        }
    }
    let existing_track = t::tracks
        .find(&def.id)
        .select(TrackRow::as_select())
        .first(conn)
        .optional()?;
    let existing_modules: HashMap<String, ModuleRow> = m::modules
        .filter(m::track_id.eq(&def.id))
        .select(ModuleRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let existing_lessons: HashMap<String, LessonRow> = l::lessons
        .inner_join(m::modules)
        .filter(m::track_id.eq(&def.id))
        .select(LessonRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();

    let mut changed = false;
    match &existing_track {
        Some(row)
            if row.title == def.title
                && row.description == def.description
                && row.position == def.position => {}
        Some(_) => {
            diesel::update(t::tracks.find(&def.id))
                .set((
                    t::title.eq(&def.title),
                    t::description.eq(&def.description),
                    t::position.eq(def.position),
                    t::updated_at.eq(now),
                ))
                .execute(conn)?;
            changed = true;
        }
        None => {
            diesel::insert_into(t::tracks)
                .values(TrackRow {
                    id: def.id.clone(),
                    title: def.title.clone(),
                    description: def.description.clone(),
                    position: def.position,
                    created_at: now,
                    updated_at: now,
                })
                .execute(conn)?;
            changed = true;
        }
    }

    let mut keep_modules = HashSet::new();
    let mut keep_lessons = HashSet::new();
    for md in &def.modules {
        keep_modules.insert(md.id.as_str());
        let row = ModuleRow {
            id: md.id.clone(),
            track_id: def.id.clone(),
            title: md.title.clone(),
            position: md.position,
        };
        match existing_modules.get(&md.id) {
            Some(old) if *old == row => {}
            Some(_) => {
                diesel::update(m::modules.find(&md.id))
                    .set((m::title.eq(&row.title), m::position.eq(row.position)))
                    .execute(conn)?;
                changed = true;
            }
            None => {
                diesel::insert_into(m::modules).values(&row).execute(conn)?;
                changed = true;
            }
        }
    }
    for md in &def.modules {
        for ld in &md.lessons {
            keep_lessons.insert(ld.id.as_str());
            let row = LessonRow {
                id: ld.id.clone(),
                module_id: md.id.clone(),
                title: ld.title.clone(),
                content: ld.content.clone(),
                position: ld.position,
            };
            match existing_lessons.get(&ld.id) {
                Some(old) if *old == row => {}
                Some(_) => {
                    diesel::update(l::lessons.find(&ld.id))
                        .set((
                            l::module_id.eq(&row.module_id),
                            l::title.eq(&row.title),
                            l::content.eq(&row.content),
                            l::position.eq(row.position),
                        ))
                        .execute(conn)?;
                    changed = true;
                }
                None => {
                    diesel::insert_into(l::lessons).values(&row).execute(conn)?;
                    changed = true;
                }
            }
        }
    }
    // Lessons first (they may have moved out of a module that goes).
    for id in existing_lessons.keys() {
        if !keep_lessons.contains(id.as_str()) {
            diesel::delete(l::lessons.find(id)).execute(conn)?;
            changed = true;
        }
    }
    for id in existing_modules.keys() {
        if !keep_modules.contains(id.as_str()) {
            diesel::delete(m::modules.find(id)).execute(conn)?;
            changed = true;
        }
    }
    if changed && existing_track.is_some() {
        diesel::update(t::tracks.find(&def.id))
            .set(t::updated_at.eq(now))
            .execute(conn)?;
    }
    Ok(changed)
}

/// Writes a whole import in one transaction (under an advisory lock on
/// PostgreSQL, so concurrent imports queue). With `only_if_empty`, does
/// nothing (returns `None`) when the catalogue has tracks.
fn apply_tree(
    conn: &mut DbConnection,
    tree: &CatalogTree,
    only_if_empty: bool,
) -> Result<Option<ImportSummary>, AccountsError> {
    write_transaction(conn, |conn| {
        if let DbConnection::Pg(c) = conn {
            c.batch_execute(&format!("SELECT pg_advisory_xact_lock({IMPORT_LOCK_KEY})"))?;
        }
        if only_if_empty {
            let n: i64 = t::tracks.count().get_result(conn)?;
            if n > 0 {
                return Ok(None);
            }
        }
        let module_owner: HashMap<String, String> = m::modules
            .select((m::id, m::track_id))
            .load::<(String, String)>(conn)?
            .into_iter()
            .collect();
        let lesson_owner: HashMap<String, String> = l::lessons
            .inner_join(m::modules)
            .select((l::id, m::track_id))
            .load::<(String, String)>(conn)?
            .into_iter()
            .collect();
        let now = validate::now_naive();
        let mut summary = ImportSummary {
            warnings: tree.warnings.clone(),
            ..ImportSummary::default()
        };
        for def in &tree.tracks {
            summary.tracks.push(def.id.clone());
            summary.modules += count(def.modules.len());
            summary.lessons += count(def.modules.iter().map(|md| md.lessons.len()).sum());
            if apply_track(conn, def, &module_owner, &lesson_owner, now)? {
                summary.changed.push(def.id.clone());
            }
        }
        Ok(Some(summary))
    })
}

impl CatalogService {
    /// A catalogue over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Whether the catalogue has no tracks.
    pub async fn is_empty(&self) -> Result<bool, AccountsError> {
        self.db
            .run(|conn| {
                let n: i64 = t::tracks.count().get_result(conn)?;
                Ok(n == 0)
            })
            .await
    }

    /// Every track as a card with the user's progress, in order.
    pub async fn tracks_for_user(&self, user_id: &str) -> Result<Vec<TrackCard>, AccountsError> {
        let user = user_id.to_owned();
        self.db.run(move |conn| Ok(cards(conn, &user)?.0)).await
    }

    /// One track with its modules and lessons (no content) and the user's
    /// completion flags.
    pub async fn track(&self, user_id: &str, track_id: &str) -> Result<Track, AccountsError> {
        let (user, id) = (user_id.to_owned(), track_id.to_owned());
        self.db
            .run(move |conn| {
                let track = find_track(conn, &id)?;
                let modules: Vec<ModuleRow> = m::modules
                    .filter(m::track_id.eq(&id))
                    .order((m::position, m::id))
                    .select(ModuleRow::as_select())
                    .load(conn)?;
                let lessons: Vec<(String, String, String, i32)> = l::lessons
                    .inner_join(m::modules)
                    .filter(m::track_id.eq(&id))
                    .order((l::position, l::id))
                    .select((l::id, l::module_id, l::title, l::position))
                    .load(conn)?;
                let done = completed_set(conn, &user)?;
                let mut by_module: HashMap<String, Vec<LessonSummary>> = HashMap::new();
                let (mut total, mut completed) = (0u32, 0u32);
                for (lid, mid, title, position) in lessons {
                    let is_done = done.contains(&lid);
                    total += 1;
                    completed += u32::from(is_done);
                    by_module.entry(mid).or_default().push(LessonSummary {
                        id: lid,
                        title,
                        position,
                        completed: is_done,
                    });
                }
                Ok(Track {
                    modules: modules
                        .into_iter()
                        .map(|md| Module {
                            lessons: by_module.remove(&md.id).unwrap_or_default(),
                            id: md.id,
                            title: md.title,
                            position: md.position,
                        })
                        .collect(),
                    id: track.id,
                    title: track.title,
                    description: track.description,
                    position: track.position,
                    lessons_total: total,
                    lessons_completed: completed,
                    progress_percent: percent(completed, total),
                })
            })
            .await
    }

    /// One lesson with its content, its neighbours in the track and the
    /// user's completion flag.
    pub async fn lesson(&self, user_id: &str, lesson_id: &str) -> Result<Lesson, AccountsError> {
        let (user, id) = (user_id.to_owned(), lesson_id.to_owned());
        self.db
            .run(move |conn| {
                let (row, track_id, module_title): (LessonRow, String, String) = l::lessons
                    .inner_join(m::modules)
                    .filter(l::id.eq(&id))
                    .select((LessonRow::as_select(), m::track_id, m::title))
                    .first(conn)
                    .optional()?
                    .ok_or_else(|| AccountsError::LessonNotFound(id.clone()))?;
                let places = track_places(conn, &track_id)?;
                let done: HashSet<String> = lp::lesson_progress
                    .filter(lp::user_id.eq(&user))
                    .filter(lp::lesson_id.eq(&id))
                    .select(lp::lesson_id)
                    .load::<String>(conn)?
                    .into_iter()
                    .collect();
                Ok(lesson_model(row, track_id, module_title, &places, &done))
            })
            .await
    }

    /// Every lesson of a track, with content, in order.
    pub async fn track_lessons(
        &self,
        user_id: &str,
        track_id: &str,
    ) -> Result<Vec<Lesson>, AccountsError> {
        let (user, id) = (user_id.to_owned(), track_id.to_owned());
        self.db
            .run(move |conn| {
                find_track(conn, &id)?;
                let rows: Vec<(LessonRow, String)> = l::lessons
                    .inner_join(m::modules)
                    .filter(m::track_id.eq(&id))
                    .order((m::position, m::id, l::position, l::id))
                    .select((LessonRow::as_select(), m::title))
                    .load(conn)?;
                let places = track_places(conn, &id)?;
                let done = completed_set(conn, &user)?;
                Ok(rows
                    .into_iter()
                    .map(|(row, module_title)| {
                        lesson_model(row, id.clone(), module_title, &places, &done)
                    })
                    .collect())
            })
            .await
    }

    /// Marks a lesson complete for a user (again is harmless: the first
    /// completion time is kept). The user must be an account.
    pub async fn complete_lesson(
        &self,
        user_id: &str,
        lesson_id: &str,
    ) -> Result<LessonCompletion, AccountsError> {
        let (user, id) = (user_id.to_owned(), lesson_id.to_owned());
        self.db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let track_id: String = l::lessons
                        .inner_join(m::modules)
                        .filter(l::id.eq(&id))
                        .select(m::track_id)
                        .first(conn)
                        .optional()?
                        .ok_or_else(|| AccountsError::LessonNotFound(id.clone()))?;
                    let users: i64 = u::users.filter(u::id.eq(&user)).count().get_result(conn)?;
                    if users == 0 {
                        return Err(AccountsError::UserNotFound(user.clone()));
                    }
                    let existing: Option<NaiveDateTime> = lp::lesson_progress
                        .filter(lp::user_id.eq(&user))
                        .filter(lp::lesson_id.eq(&id))
                        .select(lp::completed_at)
                        .first(conn)
                        .optional()?;
                    let (completed_at, already) = match existing {
                        Some(at) => (at, true),
                        None => {
                            let at = validate::now_naive();
                            diesel::insert_into(lp::lesson_progress)
                                .values(ProgressRow {
                                    user_id: user.clone(),
                                    lesson_id: id.clone(),
                                    completed_at: at,
                                })
                                .execute(conn)?;
                            (at, false)
                        }
                    };
                    let track = track_card(conn, &user, &track_id)?;
                    Ok(LessonCompletion {
                        lesson_id: id.clone(),
                        track_id,
                        completed_at: utc(completed_at),
                        already_completed: already,
                        track,
                    })
                })
            })
            .await
    }

    /// The user's progress over the whole catalogue.
    pub async fn progress(&self, user_id: &str) -> Result<UserProgress, AccountsError> {
        let user = user_id.to_owned();
        self.db
            .run(move |conn| {
                let (tracks, completed) = cards(conn, &user)?;
                let total: u32 = tracks.iter().map(|c| c.lessons_total).sum();
                let done = count(completed.len());
                Ok(UserProgress {
                    tracks,
                    completed_lessons: completed,
                    total_completed: done,
                    total_lessons: total,
                    progress_percent: percent(done, total),
                })
            })
            .await
    }

    /// Imports a catalogue folder (tracks with `track.json`, modules with
    /// `module.json`, Markdown lessons), a folder holding `catalog.json`,
    /// or a `catalog.json` file; see the crate docs for the layout. Tracks
    /// in the import are replaced as a whole (their modules and lessons
    /// absent from the import are removed, with their progress); other
    /// tracks are left alone. Idempotent: [`ImportSummary::changed`] lists
    /// only the tracks that were created or changed.
    pub async fn import_dir(&self, path: impl AsRef<Path>) -> Result<ImportSummary, AccountsError> {
        let path: PathBuf = path.as_ref().to_path_buf();
        let tree = crate::users::blocking(move || {
            let files = source::read_dir(&path)?;
            let root_name = path
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            source::parse_files(&files, &root_name)
        })
        .await?;
        self.apply(tree, false).await.map(Option::unwrap_or_default)
    }

    /// Imports a `catalog.json` document (the whole tree in one JSON text).
    pub async fn import_json(&self, text: &str) -> Result<ImportSummary, AccountsError> {
        let tree = source::parse_catalog_json(text)?;
        self.apply(tree, false).await.map(Option::unwrap_or_default)
    }

    /// Imports the built-in demo catalogue (see [`DEMO_TRACKS`]).
    pub async fn load_demo(&self) -> Result<ImportSummary, AccountsError> {
        let tree = demo::tree()?;
        self.apply(tree, false).await.map(Option::unwrap_or_default)
    }

    /// Imports the demo catalogue when the catalogue has no tracks;
    /// `None` when it already had some.
    pub async fn load_demo_if_empty(&self) -> Result<Option<ImportSummary>, AccountsError> {
        if !self.is_empty().await? {
            return Ok(None);
        }
        let tree = demo::tree()?;
        self.apply(tree, true).await
    }

    /// Removes a track with its modules, lessons and everyone's progress in it.
    pub async fn delete_track(&self, track_id: &str) -> Result<(), AccountsError> {
        let id = track_id.to_owned();
        self.db
            .run(move |conn| {
                let n = diesel::delete(t::tracks.find(&id)).execute(conn)?;
                if n == 0 {
                    Err(AccountsError::TrackNotFound(id))
                } else {
                    Ok(())
                }
            })
            .await
    }

    async fn apply(
        &self,
        tree: CatalogTree,
        only_if_empty: bool,
    ) -> Result<Option<ImportSummary>, AccountsError> {
        let summary = self
            .db
            .run(move |conn| apply_tree(conn, &tree, only_if_empty))
            .await?;
        if let Some(s) = &summary {
            tracing::info!(
                tracks = s.tracks.len(),
                changed = ?s.changed,
                lessons = s.lessons,
                "catalogue imported"
            );
        }
        Ok(summary)
    }
}
