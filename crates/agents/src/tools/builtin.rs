//! The built-in tools: `search_knowledge`, `list_tracks`, `get_progress`,
//! `get_lesson`, `remember` and `current_time`.

use std::sync::Arc;

use confab_llm::BoxFuture;
use confab_rag::{Rag, SearchOptions};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::{Tool, ToolContext, ToolError, ToolOutput};
use crate::store::{Catalog, MemoryStore, StoreError, course_collection};

/// Most characters of one passage quoted back to the model.
const PASSAGE_CHARS: usize = 1_200;
/// Longest memory item accepted.
const MEMORY_CHARS: usize = 2_000;

fn store_error(tool: &str, e: StoreError) -> ToolError {
    match e {
        StoreError::NotFound(m) | StoreError::Invalid(m) => ToolError::Failed(m),
        StoreError::Unavailable(m) => ToolError::Unavailable {
            tool: tool.to_owned(),
            reason: m,
        },
    }
}

/// Arguments of `search_knowledge`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    /// What to look for, in natural language.
    pub query: String,
    /// Only this collection (ignored by the course agent, which always
    /// searches its own course).
    #[serde(default)]
    pub collection: Option<String>,
    /// How many passages (1..=10, default 5).
    #[serde(default)]
    pub top_k: Option<u32>,
}

/// Hybrid search over the knowledge base; returns numbered passages and
/// their sources. A course conversation only ever searches that course's
/// collection.
pub struct SearchKnowledge {
    rag: Arc<Rag>,
}

impl SearchKnowledge {
    /// The tool over `rag`.
    pub fn new(rag: Arc<Rag>) -> Self {
        Self { rag }
    }
}

impl Tool for SearchKnowledge {
    type Args = SearchArgs;

    fn name(&self) -> &str {
        "search_knowledge"
    }

    fn description(&self) -> &str {
        "Search the knowledge base (course materials and documents) and return the most relevant passages with their sources."
    }

    fn call<'a>(
        &'a self,
        args: SearchArgs,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let query = args.query.trim();
            if query.is_empty() {
                return Err(ToolError::InvalidArguments {
                    tool: self.name().into(),
                    reason: "`query` must not be empty".into(),
                });
            }
            let top_k = args.top_k.unwrap_or(5).clamp(1, 10) as usize;
            let asked = args.collection.filter(|c| !c.trim().is_empty());
            // A knowledge base is searched only when this conversation was
            // given it (checked readable before the turn), whatever the model asks.
            if let Some(c) = &asked
                && c.starts_with("kb:")
                && !ctx.knowledge.contains(c)
            {
                return Err(ToolError::Failed(format!(
                    "the knowledge base `{c}` is not available in this conversation"
                )));
            }
            let course = ctx.course_id.as_deref().map(course_collection);
            let found = match (&course, asked) {
                // The course agent searches its course (and the conversation's bases).
                (Some(course), _) if !ctx.knowledge.is_empty() => {
                    self.rag
                        .search_knowledge(query, &ctx.knowledge, Some(course.clone()), top_k)
                        .await
                }
                (Some(course), _) => {
                    let options = SearchOptions {
                        collection: Some(course.clone()),
                        top_k,
                        ..SearchOptions::default()
                    };
                    self.rag.search(query, &options).await
                }
                (None, Some(c)) if c.starts_with("kb:") => {
                    self.rag
                        .search_knowledge(query, std::slice::from_ref(&c), None, top_k)
                        .await
                }
                (None, None) if !ctx.knowledge.is_empty() => {
                    self.rag
                        .search_knowledge(query, &ctx.knowledge, None, top_k)
                        .await
                }
                (None, asked) => {
                    let options = SearchOptions {
                        collection: asked,
                        top_k,
                        ..SearchOptions::default()
                    };
                    self.rag.search(query, &options).await
                }
            };
            let sources = found.map_err(|e| ToolError::Unavailable {
                tool: self.name().into(),
                reason: e.to_string(),
            })?;
            if sources.is_empty() {
                return Ok(ToolOutput::text("No matching passages found."));
            }
            let passages: Vec<serde_json::Value> = sources
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    json!({
                        "n": i + 1,
                        "source": s.file_path,
                        "score": (s.score * 1000.0).round() / 1000.0,
                        "text": truncate(&s.content, PASSAGE_CHARS),
                    })
                })
                .collect();
            Ok(ToolOutput {
                content: serde_json::Value::Array(passages).to_string(),
                sources,
            })
        })
    }
}

/// No arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// Lists the learning tracks with the user's progress.
pub struct ListTracks {
    catalog: Arc<dyn Catalog>,
}

impl ListTracks {
    /// The tool over `catalog`.
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Self { catalog }
    }
}

impl Tool for ListTracks {
    type Args = NoArgs;

    fn name(&self) -> &str {
        "list_tracks"
    }

    fn description(&self) -> &str {
        "List the learning tracks (courses) available to the user, with lesson counts and the user's progress."
    }

    fn call<'a>(
        &'a self,
        _args: NoArgs,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let tracks = self
                .catalog
                .list_tracks(&ctx.user_id)
                .await
                .map_err(|e| store_error(self.name(), e))?;
            Ok(ToolOutput::json(&tracks))
        })
    }
}

/// Reports the user's progress over all tracks.
pub struct GetProgress {
    catalog: Arc<dyn Catalog>,
}

impl GetProgress {
    /// The tool over `catalog`.
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Self { catalog }
    }
}

impl Tool for GetProgress {
    type Args = NoArgs;

    fn name(&self) -> &str {
        "get_progress"
    }

    fn description(&self) -> &str {
        "Get the user's learning progress: per track, lessons completed and percent done."
    }

    fn call<'a>(
        &'a self,
        _args: NoArgs,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let progress = self
                .catalog
                .progress(&ctx.user_id)
                .await
                .map_err(|e| store_error(self.name(), e))?;
            Ok(ToolOutput::json(&progress))
        })
    }
}

/// Arguments of `get_lesson`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LessonArgs {
    /// Id of the lesson.
    pub lesson_id: String,
}

/// Returns one lesson's content; a course conversation only sees its own
/// course's lessons.
pub struct GetLesson {
    catalog: Arc<dyn Catalog>,
}

impl GetLesson {
    /// The tool over `catalog`.
    pub fn new(catalog: Arc<dyn Catalog>) -> Self {
        Self { catalog }
    }
}

impl Tool for GetLesson {
    type Args = LessonArgs;

    fn name(&self) -> &str {
        "get_lesson"
    }

    fn description(&self) -> &str {
        "Get the full content (Markdown) of one lesson by id."
    }

    fn call<'a>(
        &'a self,
        args: LessonArgs,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let lesson = self
                .catalog
                .lesson(&ctx.user_id, args.lesson_id.trim())
                .await
                .map_err(|e| store_error(self.name(), e))?;
            if let Some(course) = &ctx.course_id
                && &lesson.track_id != course
            {
                return Err(ToolError::Failed(format!(
                    "lesson `{}` is not part of this course",
                    lesson.id
                )));
            }
            Ok(ToolOutput::json(&lesson))
        })
    }
}

/// Arguments of `remember`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RememberArgs {
    /// The fact to remember about the user, in one sentence.
    pub content: String,
}

/// Stores a long-term memory item for the user.
pub struct Remember {
    memory: Arc<dyn MemoryStore>,
}

impl Remember {
    /// The tool over `memory`.
    pub fn new(memory: Arc<dyn MemoryStore>) -> Self {
        Self { memory }
    }
}

impl Tool for Remember {
    type Args = RememberArgs;

    fn name(&self) -> &str {
        "remember"
    }

    fn description(&self) -> &str {
        "Store a fact about the user (a preference, a goal) to remember in later conversations."
    }

    fn call<'a>(
        &'a self,
        args: RememberArgs,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let content = args.content.trim();
            if content.is_empty() || content.chars().count() > MEMORY_CHARS {
                return Err(ToolError::InvalidArguments {
                    tool: self.name().into(),
                    reason: format!("`content` must have 1..={MEMORY_CHARS} characters"),
                });
            }
            let metadata = match ctx.session_id {
                Some(s) => json!({ "session_id": s }),
                None => json!({}),
            };
            let item = self
                .memory
                .remember(&ctx.user_id, content, metadata)
                .await
                .map_err(|e| store_error(self.name(), e))?;
            Ok(ToolOutput::text(format!("Remembered (id {}).", item.id)))
        })
    }
}

/// Tells the current date and time (UTC).
pub struct CurrentTime;

impl Tool for CurrentTime {
    type Args = NoArgs;

    fn name(&self) -> &str {
        "current_time"
    }

    fn description(&self) -> &str {
        "Get the current date and time (UTC, RFC 3339) and the weekday."
    }

    fn call<'a>(
        &'a self,
        _args: NoArgs,
        _ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let now = chrono::Utc::now();
            Ok(ToolOutput::json(&json!({
                "utc": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "weekday": now.format("%A").to_string(),
            })))
        })
    }
}

/// At most `max` characters of `s`, with an ellipsis when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}
