//! Every schema the OpenAPI document names for a JSON response is checked
//! against real values: DTOs serialised as the handlers serialise them
//! (and, for the response types private to this crate, real responses), so
//! the document cannot drift from the types. A small validator over the
//! JSON Schema subset utoipa emits does the checking; the tests at the end
//! show it rejects the drift it exists to catch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use common::{add_message, expect, new_session, spawn};
use confab_models::knowledge::{
    DocumentStatus, KnowledgeBase, KnowledgeChunk, KnowledgeDocument, KnowledgeDocumentDetail,
    KnowledgeEvent, UploadResult,
};
use confab_models::{
    ChatSession, CleanupReport, ExperienceSummary, Feedback, MemoryItem, Message, MessagePage,
    MessageRole, Metadata, SessionExport, SessionPage, SessionStatistics, SessionStatus,
    SourceInfo, UserSessionStats,
};
use confab_testkit::TestDb;
use reqwest::Method;
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

fn document() -> Value {
    serde_json::to_value(chat_service::openapi()).unwrap()
}

/// A validator for the subset of JSON Schema (OpenAPI 3.1) that utoipa
/// emits for our types. It rejects any keyword it does not know, so a new
/// construct in the document fails loudly here instead of passing unchecked.
/// Objects are closed: a property the schema does not declare is an error
/// (utoipa never says `additionalProperties: false`, but a field the
/// document does not name is exactly the drift this test exists to catch).
struct Validator<'d> {
    schemas: &'d Map<String, Value>,
}

/// Keywords that only describe; they constrain nothing.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "example",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "contentMediaType",
];

impl<'d> Validator<'d> {
    fn new(doc: &'d Value) -> Self {
        Self {
            schemas: doc["components"]["schemas"]
                .as_object()
                .expect("components.schemas"),
        }
    }

    /// The component a `$ref` names.
    fn resolve(&self, reference: &str) -> Result<&'d Value, String> {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .ok_or_else(|| format!("unsupported reference {reference}"))?;
        self.schemas
            .get(name)
            .ok_or_else(|| format!("dangling reference {reference}"))
    }

    /// Validates `value` against the component `name`.
    fn component(&self, name: &str, value: &Value) -> Result<(), String> {
        let schema = self
            .schemas
            .get(name)
            .ok_or_else(|| format!("no component {name}"))?;
        self.check(schema, value, name, true)
    }

    /// Every property name an object schema declares (through `$ref` and `allOf`).
    fn declared(&self, schema: &Value, out: &mut Vec<String>) -> Result<(), String> {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            return self.declared(self.resolve(r)?, out);
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            out.extend(props.keys().cloned());
        }
        for branch in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.declared(branch, out)?;
        }
        Ok(())
    }

    /// `closed`: whether keys the schema does not declare are errors (off
    /// inside `allOf`, where the union of the branches is checked instead).
    fn check(
        &self,
        schema: &'d Value,
        value: &Value,
        at: &str,
        closed: bool,
    ) -> Result<(), String> {
        let Some(schema) = schema.as_object() else {
            return match schema {
                Value::Bool(true) => Ok(()),
                Value::Bool(false) => Err(format!("{at}: not allowed by the document")),
                _ => Err(format!("{at}: unsupported schema {schema}")),
            };
        };
        for (keyword, arg) in schema {
            match keyword.as_str() {
                k if ANNOTATIONS.contains(&k) => {}
                "$ref" => {
                    let r = arg.as_str().ok_or("$ref not a string")?;
                    self.check(self.resolve(r)?, value, &format!("{at}->{r}"), closed)?;
                }
                "type" => check_type(arg, value, at)?,
                "format" => check_format(arg, value, at)?,
                "enum" => {
                    let options = arg.as_array().ok_or("enum not an array")?;
                    if !options.contains(value) {
                        return Err(format!("{at}: {value} is not one of {arg}"));
                    }
                }
                "minimum" | "maximum" => {
                    if let Some(n) = value.as_f64() {
                        let bound = arg.as_f64().ok_or("bound not a number")?;
                        let ok = if keyword == "minimum" {
                            n >= bound
                        } else {
                            n <= bound
                        };
                        if !ok {
                            return Err(format!("{at}: {n} breaks {keyword} {bound}"));
                        }
                    }
                }
                "minItems" | "maxItems" => {
                    if let Some(items) = value.as_array() {
                        let bound = arg.as_u64().ok_or("bound not a number")? as usize;
                        let ok = if keyword == "minItems" {
                            items.len() >= bound
                        } else {
                            items.len() <= bound
                        };
                        if !ok {
                            return Err(format!(
                                "{at}: {} items break {keyword} {bound}",
                                items.len()
                            ));
                        }
                    }
                }
                "items" => {
                    if let Some(items) = value.as_array() {
                        for (i, item) in items.iter().enumerate() {
                            self.check(arg, item, &format!("{at}[{i}]"), true)?;
                        }
                    }
                }
                "required" => {
                    if let Some(object) = value.as_object() {
                        for field in arg.as_array().ok_or("required not an array")? {
                            let field = field.as_str().ok_or("required name not a string")?;
                            if !object.contains_key(field) {
                                return Err(format!("{at}: required field `{field}` missing"));
                            }
                        }
                    }
                }
                "properties" => {
                    if let Some(object) = value.as_object() {
                        let props = arg.as_object().ok_or("properties not an object")?;
                        for (field, sub) in props {
                            if let Some(v) = object.get(field) {
                                self.check(sub, v, &format!("{at}.{field}"), true)?;
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let Some(object) = value.as_object() {
                        let props = schema.get("properties").and_then(Value::as_object);
                        for (field, v) in object {
                            if props.is_none_or(|p| !p.contains_key(field)) {
                                self.check(arg, v, &format!("{at}.{field}"), true)?;
                            }
                        }
                    }
                }
                "allOf" => {
                    for (i, branch) in arg
                        .as_array()
                        .ok_or("allOf not an array")?
                        .iter()
                        .enumerate()
                    {
                        self.check(branch, value, &format!("{at}/allOf[{i}]"), false)?;
                    }
                }
                "oneOf" | "anyOf" => {
                    let branches = arg.as_array().ok_or("oneOf not an array")?;
                    let errors: Vec<String> = branches
                        .iter()
                        .filter_map(|b| self.check(b, value, at, closed).err())
                        .collect();
                    let passed = branches.len() - errors.len();
                    if passed == 0 || (keyword == "oneOf" && passed > 1) {
                        return Err(format!(
                            "{at}: {passed} of {} {keyword} branches match ({})",
                            branches.len(),
                            errors.join("; ")
                        ));
                    }
                }
                other => return Err(format!("{at}: the validator does not know `{other}`")),
            }
        }
        // Closed objects: no key the schema does not declare.
        let open = schema.contains_key("additionalProperties");
        if closed
            && !open
            && let Some(object) = value.as_object()
        {
            let mut names = Vec::new();
            self.declared(&Value::Object(schema.clone()), &mut names)?;
            if (!names.is_empty() || schema.contains_key("allOf"))
                && let Some(extra) = object.keys().find(|k| !names.contains(k))
            {
                return Err(format!("{at}: field `{extra}` is not in the document"));
            }
        }
        Ok(())
    }
}

fn check_type(arg: &Value, value: &Value, at: &str) -> Result<(), String> {
    let names: Vec<&str> = match arg {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err(format!("{at}: bad type {arg}")),
    };
    let fits = |name: &str| match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        _ => false,
    };
    if names.iter().any(|n| fits(n)) {
        Ok(())
    } else {
        Err(format!("{at}: {value} is not of type {arg}"))
    }
}

fn check_format(arg: &Value, value: &Value, at: &str) -> Result<(), String> {
    let format = arg.as_str().ok_or("format not a string")?;
    let ok = match (format, value) {
        (_, Value::Null) => true,
        ("uuid", Value::String(s)) => Uuid::parse_str(s).is_ok(),
        ("date-time", Value::String(s)) => DateTime::parse_from_rfc3339(s).is_ok(),
        ("int32", v) => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        ("int64", v) => v.is_i64(),
        ("uint32", v) => v.as_u64().is_some_and(|n| u32::try_from(n).is_ok()),
        ("uint64", v) => v.is_u64(),
        ("double" | "float", v) => v.is_number(),
        (other, _) => {
            return Err(format!(
                "{at}: the validator does not know format `{other}`"
            ));
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{at}: {value} is not a {format}"))
    }
}

/// The components the document names as a JSON response body (directly or
/// as the items of an array), with the operations that return them.
fn response_components(doc: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(responses) = op["responses"].as_object() else {
                continue;
            };
            for (status, response) in responses {
                for (media, content) in response["content"].as_object().into_iter().flatten() {
                    let schema = &content["schema"];
                    let target = schema.get("$ref").or_else(|| schema["items"].get("$ref"));
                    if let Some(r) = target.and_then(Value::as_str) {
                        let name = r.trim_start_matches("#/components/schemas/").to_owned();
                        out.entry(name)
                            .or_default()
                            .push(format!("{method} {path} {status} {media}"));
                    }
                }
            }
        }
    }
    out
}

/// Components that describe no JSON body: one frame of `text/event-stream`.
const NOT_JSON: &[&str] = &["SseFrame"];

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
}

fn metadata() -> Metadata {
    let mut m = Map::new();
    m.insert("source".into(), json!("test"));
    m.insert("nested".into(), json!({"n": 1}));
    m
}

fn session() -> ChatSession {
    ChatSession {
        id: Uuid::now_v7(),
        title: "Rust".into(),
        model_id: "builtin".into(),
        user_id: "alice".into(),
        agent: "dashboard".into(),
        course_id: None,
        status: SessionStatus::Archived,
        created_at: at(),
        updated_at: at(),
        message_count: 2,
        metadata: metadata(),
    }
}

fn message(role: MessageRole) -> Message {
    Message {
        id: Uuid::now_v7(),
        session_id: Uuid::now_v7(),
        role,
        content: "hello".into(),
        timestamp: at(),
        model_id: (role == MessageRole::Assistant).then(|| "builtin".into()),
        tokens_used: Some(12),
        response_time: None,
        metadata: Metadata::new(),
    }
}

fn document_of(status: DocumentStatus) -> KnowledgeDocument {
    KnowledgeDocument {
        id: Uuid::now_v7(),
        knowledge_base_id: Uuid::now_v7(),
        filename: "orchard.pdf".into(),
        content_type: "pdf".into(),
        size_bytes: 1234,
        status,
        error: (status == DocumentStatus::Failed).then(|| "no text".into()),
        chunk_count: 3,
        page_count: Some(2),
        created_at: at(),
        updated_at: at(),
    }
}

fn feedback() -> Feedback {
    Feedback {
        id: Uuid::now_v7(),
        message_id: Uuid::now_v7(),
        session_id: Uuid::now_v7(),
        user_id: "alice".into(),
        score: 4,
        comment: Some("good".into()),
        created_at: at(),
    }
}

fn value(v: impl Serialize) -> Value {
    serde_json::to_value(v).unwrap()
}

/// Real values of every response DTO this crate can build in a test, by
/// the component the document names them with.
fn dto_samples() -> Vec<(&'static str, Value)> {
    let base = KnowledgeBase {
        id: Uuid::now_v7(),
        name: "Orchards".into(),
        owner_id: "alice".into(),
        shared: false,
        writable: true,
        embedding_model: "builtin-hash".into(),
        dimensions: 256,
        reembedding: false,
        document_count: 1,
        created_at: at(),
        updated_at: at(),
    };
    let source = SourceInfo {
        file_path: "orchard.pdf".into(),
        content: "apples".into(),
        score: 0.5,
        metadata: metadata(),
    };
    let detail = KnowledgeDocumentDetail {
        document: document_of(DocumentStatus::Ready),
        preview: "Apples grow".into(),
        chunks: vec![
            KnowledgeChunk {
                index: 0,
                heading: "Intro".into(),
                page: Some(1),
                content: "Apples grow".into(),
            },
            KnowledgeChunk {
                index: 1,
                heading: String::new(),
                page: None,
                content: "on trees".into(),
            },
        ],
    };
    let upload = UploadResult {
        document: document_of(DocumentStatus::Queued),
        outcome: "queued".into(),
    };
    let mut samples = vec![
        ("ChatSession", value(session())),
        (
            "ChatSession",
            value(ChatSession {
                course_id: Some("rust-101".into()),
                status: SessionStatus::Active,
                ..session()
            }),
        ),
        ("Message", value(message(MessageRole::Assistant))),
        ("Message", value(message(MessageRole::User))),
        ("SessionStatus", value(SessionStatus::Deleted)),
        ("MessageRole", value(MessageRole::Tool)),
        (
            "SessionPage",
            value(SessionPage {
                items: vec![session(), session()],
                next_cursor: Some("abc".into()),
            }),
        ),
        (
            "SessionPage",
            value(SessionPage {
                items: vec![],
                next_cursor: None,
            }),
        ),
        (
            "MessagePage",
            value(MessagePage {
                items: vec![message(MessageRole::User), message(MessageRole::Assistant)],
                older_cursor: Some("o".into()),
                newer_cursor: None,
            }),
        ),
        (
            "SessionExport",
            value(SessionExport {
                format: SessionExport::FORMAT.into(),
                exported_at: at(),
                session: session(),
                messages: vec![message(MessageRole::System)],
            }),
        ),
        (
            "UserSessionStats",
            value(UserSessionStats {
                total_sessions: 3,
                active_sessions: 2,
                archived_sessions: 1,
                total_messages: 9,
                total_tokens: 100,
                last_activity: Some(at()),
            }),
        ),
        ("UserSessionStats", value(UserSessionStats::default())),
        (
            "SessionStatistics",
            value(SessionStatistics {
                session_id: Uuid::now_v7(),
                message_count: 2,
                user_messages: 1,
                assistant_messages: 1,
                average_response_time: Some(0.25),
                first_message_at: Some(at()),
                last_message_at: Some(at()),
                ..SessionStatistics::default()
            }),
        ),
        (
            "CleanupReport",
            value(CleanupReport {
                dry_run: true,
                days_old: 30,
                archived: 1,
                purged: 0,
                archived_ids: vec![Uuid::now_v7()],
                purged_ids: vec![],
            }),
        ),
        ("Feedback", value(feedback())),
        (
            "Feedback",
            value(Feedback {
                comment: None,
                ..feedback()
            }),
        ),
        (
            "ExperienceSummary",
            value(ExperienceSummary {
                total: 2,
                average_score: Some(4.5),
                distribution: [0, 0, 0, 1, 1],
                recent: vec![feedback()],
            }),
        ),
        (
            "ExperienceSummary",
            value(ExperienceSummary {
                total: 0,
                average_score: None,
                distribution: [0; 5],
                recent: vec![],
            }),
        ),
        (
            "MemoryItem",
            value(MemoryItem {
                id: Uuid::now_v7(),
                user_id: "alice".into(),
                content: "likes tea".into(),
                created_at: at(),
                metadata: metadata(),
            }),
        ),
        ("KnowledgeBase", value(&base)),
        (
            "KnowledgeBaseList",
            value(chat_service::knowledge::KnowledgeBaseList {
                items: vec![
                    base.clone(),
                    KnowledgeBase {
                        shared: true,
                        writable: false,
                        reembedding: true,
                        ..base.clone()
                    },
                ],
            }),
        ),
        (
            "KnowledgeDocument",
            value(document_of(DocumentStatus::Failed)),
        ),
        (
            "KnowledgeDocumentList",
            value(chat_service::knowledge::KnowledgeDocumentList {
                items: vec![
                    document_of(DocumentStatus::Ready),
                    document_of(DocumentStatus::Processing),
                    KnowledgeDocument {
                        page_count: None,
                        ..document_of(DocumentStatus::Queued)
                    },
                ],
            }),
        ),
        ("KnowledgeDocumentDetail", value(&detail)),
        (
            "KnowledgeUploadList",
            value(chat_service::knowledge::KnowledgeUploadList {
                items: vec![
                    upload.clone(),
                    UploadResult {
                        outcome: "unchanged".into(),
                        ..upload
                    },
                ],
            }),
        ),
        (
            "KnowledgeSearchResults",
            value(chat_service::knowledge::KnowledgeSearchResults {
                items: vec![source.clone()],
            }),
        ),
        ("KnowledgeSource", value(&source)),
        (
            "KnowledgeEvent",
            value(KnowledgeEvent {
                document: document_of(DocumentStatus::Processing),
            }),
        ),
        (
            "ErrorBody",
            value(confab_web::ApiError::not_found("no such session").body()),
        ),
        (
            "CourseIndexReport",
            value(chat_service::catalog::CourseIndexReport {
                course_id: "rust-101".into(),
                collection: "course-rust-101".into(),
                lessons: 3,
                changed: 1,
                removed: 0,
            }),
        ),
    ];
    samples.push(("ChatAnswer", value(chat_answer())));
    samples
}

fn chat_answer() -> chat_service::chat::ChatAnswer {
    chat_service::chat::ChatAnswer {
        response: "Hi".into(),
        timestamp: at().to_rfc3339(),
        model: "builtin".into(),
        session_id: Uuid::now_v7(),
        message_id: Uuid::now_v7(),
        sources: vec![],
        usage: confab_models::Usage::new(3, 4),
        finish_reason: confab_models::FinishReason::Stop,
    }
}

/// Real responses of the routes whose body types are private to this crate
/// (search results, memory list, statistics, health), by component.
async fn served_samples() -> Vec<(&'static str, Value)> {
    let test_db = TestDb::sqlite();
    let server = spawn(test_db.db().clone()).await;
    let session = new_session(&server, "alice", "Rust lifetimes").await;
    add_message(&server, "alice", &session, "user", "what is a lifetime").await;
    add_message(
        &server,
        "alice",
        &session,
        "assistant",
        "a lifetime is a region",
    )
    .await;
    let get = |path: &str| server.as_user("alice", Method::GET, path);
    let mut out = vec![
        (
            "SessionSearchResults",
            expect(get("/api/sessions/search?q=lifetime"), 200).await,
        ),
        (
            "MessageSearchResults",
            expect(get("/api/messages/search?q=lifetime"), 200).await,
        ),
        (
            "Liveness",
            expect(server.anonymous(Method::GET, "/health"), 200).await,
        ),
        ("HealthReport", expect(get("/api/health"), 200).await),
        (
            "Stats",
            expect(server.as_admin("alice", Method::GET, "/api/stats"), 200).await,
        ),
        ("Stats", expect(get("/api/stats"), 200).await),
    ];
    let item = json!({"content": "likes tea", "metadata": {"from": "test"}});
    out.push((
        "MemoryItem",
        expect(
            server
                .as_user("alice", Method::POST, "/api/memory")
                .json(&item),
            201,
        )
        .await,
    ));
    out.push(("MemoryList", expect(get("/api/memory"), 200).await));
    out.push((
        "Cleared",
        expect(
            server.as_user("alice", Method::POST, "/api/memory/clear"),
            200,
        )
        .await,
    ));
    server.stop().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_response_validates() {
    let doc = document();
    let validator = Validator::new(&doc);
    let mut samples = dto_samples();
    samples.extend(served_samples().await);
    let mut seen = BTreeSet::new();
    for (name, value) in &samples {
        if let Err(e) = validator.component(name, value) {
            panic!("{name} does not validate: {e}\nvalue: {value:#}");
        }
        seen.insert(name.to_string());
    }
    // Every JSON response the document names has been checked above.
    let missing: Vec<_> = response_components(&doc)
        .into_iter()
        .filter(|(name, _)| !seen.contains(name) && !NOT_JSON.contains(&name.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "documented responses without a checked value (add one to dto_samples): {missing:#?}"
    );
}

/// Request bodies, serialised from the types the handlers read, validate too.
#[test]
fn request_bodies_validate() {
    let doc = document();
    let validator = Validator::new(&doc);
    let requests = [
        ("NewSession", value(confab_models::NewSession::default())),
        (
            "NewSession",
            value(confab_models::NewSession {
                title: Some("t".into()),
                metadata: Some(json!({"a": 1})),
                ..Default::default()
            }),
        ),
        (
            "SessionUpdate",
            value(confab_models::SessionUpdate::default()),
        ),
        (
            "NewMessage",
            value(confab_models::NewMessage {
                tokens_used: Some(3),
                response_time: Some(0.5),
                ..confab_models::NewMessage::new(MessageRole::User, "hi")
            }),
        ),
        (
            "MessageUpdate",
            value(confab_models::MessageUpdate {
                content: Some("x".into()),
                metadata: None,
            }),
        ),
        (
            "NewFeedback",
            value(confab_models::NewFeedback {
                score: Some(5),
                thumbs_up: None,
                comment: None,
            }),
        ),
        (
            "NewKnowledgeBase",
            value(confab_models::knowledge::NewKnowledgeBase {
                name: "kb".into(),
                shared: true,
            }),
        ),
        (
            "KnowledgeBaseUpdate",
            value(confab_models::knowledge::KnowledgeBaseUpdate {
                name: Some("kb".into()),
            }),
        ),
        (
            "SessionExport",
            value(SessionExport {
                format: SessionExport::FORMAT.into(),
                exported_at: at(),
                session: session(),
                messages: vec![],
            }),
        ),
    ];
    for (name, value) in requests {
        if let Err(e) = validator.component(name, &value) {
            panic!("{name} does not validate: {e}\nvalue: {value:#}");
        }
    }
}

/// The validator rejects what a drifted document would let through.
#[test]
fn drift_is_rejected() {
    let doc = document();
    let validator = Validator::new(&doc);
    let good = value(session());
    validator.component("ChatSession", &good).unwrap();
    let edit = |f: &dyn Fn(&mut Map<String, Value>)| {
        let mut v = good.clone();
        f(v.as_object_mut().unwrap());
        v
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "a renamed field",
            edit(&|o| {
                let title = o.remove("title").unwrap();
                o.insert("name".into(), title);
            }),
            "`title` missing",
        ),
        (
            "a missing required field",
            edit(&|o| {
                o.remove("status");
            }),
            "`status` missing",
        ),
        (
            "an undocumented field",
            edit(&|o| {
                o.insert("colour".into(), json!("red"));
            }),
            "`colour` is not in the document",
        ),
        (
            "an unknown enum value",
            edit(&|o| {
                o.insert("status".into(), json!("frozen"));
            }),
            "is not one of",
        ),
        (
            "a wrong type",
            edit(&|o| {
                o.insert("message_count".into(), json!("2"));
            }),
            "\"2\" is not",
        ),
        (
            "a null where none is allowed",
            edit(&|o| {
                o.insert("title".into(), Value::Null);
            }),
            "is not of type",
        ),
        (
            "a bad uuid",
            edit(&|o| {
                o.insert("id".into(), json!("42"));
            }),
            "is not a uuid",
        ),
        (
            "a metadata that is no object",
            edit(&|o| {
                o.insert("metadata".into(), json!([1]));
            }),
            "is not of type",
        ),
    ];
    for (what, bad, expected) in cases {
        let err = validator
            .component("ChatSession", &bad)
            .expect_err(&format!("{what} passed"));
        assert!(err.contains(expected), "{what}: {err}");
    }
    // A null optional field is fine; a null in an array of sessions is not.
    validator
        .component(
            "ChatSession",
            &edit(&|o| {
                o.insert("course_id".into(), Value::Null);
            }),
        )
        .unwrap();
    let page = json!({"items": [good.clone(), null], "next_cursor": null});
    assert!(validator.component("SessionPage", &page).is_err());

    // Through `allOf` (the flattened document of a detail): the union of the
    // branches is checked.
    let detail = value(KnowledgeDocumentDetail {
        document: document_of(DocumentStatus::Ready),
        preview: "p".into(),
        chunks: vec![],
    });
    validator
        .component("KnowledgeDocumentDetail", &detail)
        .unwrap();
    let mut extra = detail.clone();
    extra["colour"] = json!("red");
    let err = validator
        .component("KnowledgeDocumentDetail", &extra)
        .unwrap_err();
    assert!(err.contains("`colour` is not in the document"), "{err}");
    let mut missing = detail.clone();
    missing.as_object_mut().unwrap().remove("filename");
    let err = validator
        .component("KnowledgeDocumentDetail", &missing)
        .unwrap_err();
    assert!(err.contains("`filename` missing"), "{err}");
    let mut bad_status = detail;
    bad_status["status"] = json!("done");
    assert!(
        validator
            .component("KnowledgeDocumentDetail", &bad_status)
            .is_err()
    );

    // `deny_unknown_fields` bodies say `additionalProperties: false`.
    let err = validator
        .component("NewKnowledgeBase", &json!({"name": "kb", "colour": "red"}))
        .unwrap_err();
    assert!(err.contains("colour"), "{err}");
}
