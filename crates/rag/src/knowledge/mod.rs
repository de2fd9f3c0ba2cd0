//! Knowledge bases: users' own documents, ingested by durable jobs.
//!
//! A base is a retrieval collection named `kb:<id>` (see [`crate::Rag`]);
//! its documents and chunks are ordinary `rag_documents` / `rag_chunks`
//! rows that point back at `knowledge_documents`, so deleting a base or a
//! document removes its chunks in the same statement (foreign keys with
//! `ON DELETE CASCADE`), and deleting a `users` row removes that user's
//! bases (trigger `knowledge_bases_owner_deleted`).
//!
//! Access: a private base is its owner's alone; every other caller gets
//! [`RagError::NotFound`], exactly as for an id that does not exist. A
//! shared base (created by an administrator) is readable by everyone and
//! changed by administrators only.
//!
//! Ingestion: an upload stores the document (`queued`) and an ingest job
//! holding the bytes in one transaction. A worker claims a job by setting
//! it `running` with a lease ([`KnowledgeConfig::lease`]) that it renews
//! while it works; a job whose lease ran out (its worker died) is claimed
//! again, at most [`KnowledgeConfig::max_attempts`] times. A job's result
//! (the document's chunks replaced, the document `ready`, the job gone) is
//! written in one transaction, so a job interrupted at any point leaves
//! either the old chunks or the new ones, never both.
//!
//! Embedding consistency: each base records the model and dimensions of
//! its vectors. A base whose model is not the configured one is searched by
//! keywords only, and a `reembed` job re-embeds all its chunks and switches
//! the base in one transaction ([`KnowledgeService::check_embedder`]).

mod db;
mod files;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Utc};
use confab_models::SourceInfo;
use confab_models::knowledge::{
    DocumentStatus, KnowledgeBase, KnowledgeBaseUpdate, KnowledgeChunk, KnowledgeDocument,
    KnowledgeDocumentDetail, NewKnowledgeBase, UploadResult,
};
use confab_store::schema::{
    knowledge_bases, knowledge_documents, knowledge_jobs, rag_chunks, rag_collections,
    rag_documents,
};
use confab_store::{DbConnection, write_transaction};
use diesel::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use files::{
    ExtractedFile, FileKind, FileLimits, Section, UploadError, check_filename, check_upload,
    extract, kind_of,
};

use crate::Rag;
use crate::db as rag_db;
use crate::error::RagError;
use db::{BaseRow, DocRow, NewJob, collection_of};

/// Limits and timings of knowledge bases.
#[derive(Debug, Clone)]
pub struct KnowledgeConfig {
    /// Per-file limits.
    pub files: FileLimits,
    /// Most documents one user may store, over all their bases.
    pub max_documents_per_user: i64,
    /// Most uploaded bytes one user may store.
    pub max_bytes_per_user: i64,
    /// Most files in one upload request.
    pub max_files_per_upload: usize,
    /// How long a claimed job stays claimed without a renewal.
    pub lease: Duration,
    /// Claims of one job before its document is marked failed.
    pub max_attempts: i32,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        Self {
            files: FileLimits::default(),
            max_documents_per_user: 200,
            max_bytes_per_user: 200 * 1024 * 1024,
            max_files_per_upload: 20,
            lease: Duration::from_secs(60),
            max_attempts: 3,
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user.
    pub user_id: String,
    /// Whether they are an administrator.
    pub admin: bool,
}

impl Actor {
    /// A caller.
    pub fn new(user_id: impl Into<String>, admin: bool) -> Self {
        Self {
            user_id: user_id.into(),
            admin,
        }
    }
}

/// One uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadFile {
    /// Its name (no path).
    pub filename: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Job id.
    pub id: String,
    /// The base.
    pub kb_id: String,
    /// `ingest` or `reembed`.
    pub kind: String,
    /// Times claimed, this claim included.
    pub attempts: i32,
    document_id: Option<String>,
    payload: Option<Vec<u8>>,
}

/// A base whose vectors are of another embedder than the configured one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedderMismatch {
    /// The base.
    pub knowledge_base_id: String,
    /// Model and dimensions of its vectors.
    pub stored: (String, i32),
    /// The configured model and dimensions.
    pub configured: (String, i32),
}

/// Where ingestion time went, summed over the jobs this service ran
/// ([`KnowledgeService::ingest_stages`]): for benchmarks and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IngestStages {
    /// Documents made `ready`.
    pub documents: u64,
    /// Chunks written.
    pub chunks: u64,
    /// Bytes of the uploaded files of those documents.
    pub bytes: u64,
    /// Text extraction (PDF, DOCX, HTML, Markdown parsing).
    pub extract: Duration,
    /// Splitting the text into chunks.
    pub chunk: Duration,
    /// Embedding the chunks.
    pub embed: Duration,
    /// The write transaction (chunks, index rows, document status).
    pub write: Duration,
}

/// Running totals behind [`IngestStages`] (nanoseconds and counts).
#[derive(Debug, Default)]
struct StageClock {
    documents: AtomicU64,
    chunks: AtomicU64,
    bytes: AtomicU64,
    extract: AtomicU64,
    chunk: AtomicU64,
    embed: AtomicU64,
    write: AtomicU64,
}

fn add(total: &AtomicU64, d: Duration) {
    total.fetch_add(
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

fn nanos(total: &AtomicU64) -> Duration {
    Duration::from_nanos(total.load(Ordering::Relaxed))
}

impl StageClock {
    fn snapshot(&self) -> IngestStages {
        IngestStages {
            documents: self.documents.load(Ordering::Relaxed),
            chunks: self.chunks.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            extract: nanos(&self.extract),
            chunk: nanos(&self.chunk),
            embed: nanos(&self.embed),
            write: nanos(&self.write),
        }
    }
}

/// CRUD, uploads, jobs and search of knowledge bases. Cheap to clone.
#[derive(Debug, Clone)]
pub struct KnowledgeService {
    rag: Rag,
    config: Arc<KnowledgeConfig>,
    stages: Arc<StageClock>,
}

fn not_found(what: &str, id: impl std::fmt::Display) -> RagError {
    RagError::NotFound(format!("{what} {id} not found"))
}

fn utc(t: NaiveDateTime) -> chrono::DateTime<Utc> {
    t.and_utc()
}

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).unwrap_or(Uuid::nil())
}

fn readable(b: &BaseRow, a: &Actor) -> bool {
    b.owner_id == a.user_id || b.shared
}

fn writable(b: &BaseRow, a: &Actor) -> bool {
    b.owner_id == a.user_id || (b.shared && a.admin)
}

fn check_name(name: &str) -> Result<String, RagError> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > 200 || name.chars().any(char::is_control) {
        return Err(RagError::InvalidInput(
            "a knowledge base name has 1-200 printable characters".into(),
        ));
    }
    Ok(name.to_owned())
}

fn doc_dto(d: &DocRow) -> KnowledgeDocument {
    KnowledgeDocument {
        id: uuid(&d.id),
        knowledge_base_id: uuid(&d.kb_id),
        filename: d.filename.clone(),
        content_type: d.content_type.clone(),
        size_bytes: d.size_bytes,
        status: DocumentStatus::parse(&d.status),
        error: d.error.clone(),
        chunk_count: d.chunk_count,
        page_count: d.page_count,
        created_at: utc(d.created_at),
        updated_at: utc(d.updated_at),
    }
}

fn hash_bytes(kind: FileKind, bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_str().as_bytes());
    h.update([0]);
    h.update(bytes);
    format!("{:x}", h.finalize())
}

/// Loads a base the actor may read (`NotFound` otherwise).
fn load_readable(conn: &mut DbConnection, id: &str, a: &Actor) -> Result<BaseRow, RagError> {
    match db::base(conn, id)? {
        Some(b) if readable(&b, a) => Ok(b),
        _ => Err(not_found("knowledge base", id)),
    }
}

/// Loads a base the actor may change (`NotFound` when unreadable, `Forbidden` when read-only).
fn load_writable(conn: &mut DbConnection, id: &str, a: &Actor) -> Result<BaseRow, RagError> {
    let b = load_readable(conn, id, a)?;
    if !writable(&b, a) {
        return Err(RagError::Forbidden(
            "this knowledge base is shared: only administrators change it".into(),
        ));
    }
    Ok(b)
}

impl KnowledgeService {
    /// The service over `rag` (its database and embedder).
    pub fn new(rag: Rag, config: KnowledgeConfig) -> Self {
        Self {
            rag,
            config: Arc::new(config),
            stages: Arc::default(),
        }
    }

    /// Time spent per ingestion stage by this service's jobs so far.
    pub fn ingest_stages(&self) -> IngestStages {
        self.stages.snapshot()
    }

    /// The configuration in force.
    pub fn config(&self) -> &KnowledgeConfig {
        &self.config
    }

    /// The retrieval service underneath.
    pub fn rag(&self) -> &Rag {
        &self.rag
    }

    fn current_model(&self) -> (String, i32) {
        (
            self.rag.config.embedding_model.clone(),
            self.rag.embedder.dimensions() as i32,
        )
    }

    fn base_dto(&self, b: &BaseRow, a: &Actor, documents: i64) -> KnowledgeBase {
        let (model, dims) = self.current_model();
        KnowledgeBase {
            id: uuid(&b.id),
            name: b.name.clone(),
            owner_id: b.owner_id.clone(),
            shared: b.shared,
            writable: writable(b, a),
            embedding_model: b.embedding_model.clone(),
            dimensions: b.dimensions,
            reembedding: b.embedding_model != model || b.dimensions != dims,
            document_count: documents,
            created_at: utc(b.created_at),
            updated_at: utc(b.updated_at),
        }
    }

    /// Creates a base (shared ones by administrators only).
    pub async fn create_base(
        &self,
        a: &Actor,
        new: NewKnowledgeBase,
    ) -> Result<KnowledgeBase, RagError> {
        let name = check_name(&new.name)?;
        if new.shared && !a.admin {
            return Err(RagError::Forbidden(
                "only administrators publish shared knowledge bases".into(),
            ));
        }
        let (model, dims) = self.current_model();
        let now = Utc::now().naive_utc();
        let row = BaseRow {
            id: Uuid::now_v7().to_string(),
            owner_id: a.user_id.clone(),
            name,
            shared: new.shared,
            embedding_model: model,
            dimensions: dims,
            created_at: now,
            updated_at: now,
        };
        let r = row.clone();
        self.rag
            .db
            .run(move |conn| write_transaction(conn, |conn| db::insert_base(conn, &r)))
            .await?;
        Ok(self.base_dto(&row, a, 0))
    }

    /// The bases the actor may read: their own, then the shared ones.
    pub async fn list_bases(&self, a: &Actor) -> Result<Vec<KnowledgeBase>, RagError> {
        let user = a.user_id.clone();
        let (rows, counts) = self
            .rag
            .db
            .run(move |conn| {
                let rows = db::readable_bases(conn, &user)?;
                let ids: Vec<String> = rows.iter().map(|b| b.id.clone()).collect();
                let counts = db::document_counts(conn, &ids)?;
                Ok::<_, RagError>((rows, counts))
            })
            .await?;
        Ok(rows
            .iter()
            .map(|b| {
                let n = counts
                    .iter()
                    .find(|(id, _)| *id == b.id)
                    .map_or(0, |(_, n)| *n);
                self.base_dto(b, a, n)
            })
            .collect())
    }

    /// One base the actor may read.
    pub async fn get_base(&self, a: &Actor, id: Uuid) -> Result<KnowledgeBase, RagError> {
        let (actor, id) = (a.clone(), id.to_string());
        let (row, counts) = self
            .rag
            .db
            .run(move |conn| {
                let b = load_readable(conn, &id, &actor)?;
                let counts = db::document_counts(conn, std::slice::from_ref(&id))?;
                Ok::<_, RagError>((b, counts))
            })
            .await?;
        let n = counts.first().map_or(0, |(_, n)| *n);
        Ok(self.base_dto(&row, a, n))
    }

    /// Renames a base.
    pub async fn update_base(
        &self,
        a: &Actor,
        id: Uuid,
        update: KnowledgeBaseUpdate,
    ) -> Result<KnowledgeBase, RagError> {
        let name = update.name.as_deref().map(check_name).transpose()?;
        let (actor, sid) = (a.clone(), id.to_string());
        self.rag
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    load_writable(conn, &sid, &actor)?;
                    if let Some(name) = name {
                        diesel::update(knowledge_bases::table.find(&sid))
                            .set((
                                knowledge_bases::name.eq(name),
                                knowledge_bases::updated_at.eq(Utc::now().naive_utc()),
                            ))
                            .execute(conn)?;
                    }
                    Ok::<_, RagError>(())
                })
            })
            .await?;
        self.get_base(a, id).await
    }

    /// Deletes a base with its documents, chunks and jobs (one statement's cascade).
    pub async fn delete_base(&self, a: &Actor, id: Uuid) -> Result<(), RagError> {
        let (actor, id) = (a.clone(), id.to_string());
        self.rag
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    load_writable(conn, &id, &actor)?;
                    delete_bases(conn, std::slice::from_ref(&id))
                })
            })
            .await
    }

    /// Deletes every base `user_id` owns (the `users` trigger does the same
    /// when the user row goes; this is for callers without one).
    pub async fn delete_user_bases(&self, user_id: &str) -> Result<usize, RagError> {
        let user = user_id.to_owned();
        self.rag
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let ids: Vec<String> = knowledge_bases::table
                        .filter(knowledge_bases::owner_id.eq(&user))
                        .select(knowledge_bases::id)
                        .load(conn)?;
                    delete_bases(conn, &ids)?;
                    Ok(ids.len())
                })
            })
            .await
    }

    /// Stores uploaded files as documents with ingest jobs, all or nothing:
    /// any refused file (name, type, size, bytes, quota) refuses the request.
    /// A file identical to the stored one of the same name is `unchanged`.
    pub async fn upload(
        &self,
        a: &Actor,
        kb: Uuid,
        files: Vec<UploadFile>,
    ) -> Result<Vec<UploadResult>, RagError> {
        if files.is_empty() {
            return Err(RagError::InvalidInput("no files in the upload".into()));
        }
        if files.len() > self.config.max_files_per_upload {
            return Err(RagError::InvalidInput(format!(
                "{} files in one upload; the limit is {}",
                files.len(),
                self.config.max_files_per_upload
            )));
        }
        let mut checked = Vec::with_capacity(files.len());
        for f in files {
            let (name, kind) = check_upload(&f.filename, &f.bytes, &self.config.files)?;
            if checked.iter().any(|(n, _, _, _)| *n == name) {
                return Err(RagError::InvalidInput(format!(
                    "the file name `{name}` appears twice in the upload"
                )));
            }
            let hash = hash_bytes(kind, &f.bytes);
            checked.push((name, kind, hash, f.bytes));
        }
        let (actor, kb_id, config) = (a.clone(), kb.to_string(), self.config.clone());
        self.rag
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let base = load_writable(conn, &kb_id, &actor)?;
                    let (mut docs, mut bytes) = db::usage(conn, &base.owner_id)?;
                    let now = Utc::now().naive_utc();
                    let mut out = Vec::with_capacity(checked.len());
                    for (name, kind, hash, payload) in checked {
                        let size = payload.len() as i64;
                        let existing = db::document_by_name(conn, &kb_id, &name)?;
                        if let Some(d) = &existing
                            && d.content_hash == hash
                            && d.status != "failed"
                        {
                            out.push(UploadResult {
                                document: doc_dto(d),
                                outcome: "unchanged".into(),
                            });
                            continue;
                        }
                        match &existing {
                            Some(d) => {
                                bytes += size - d.size_bytes;
                            }
                            None => {
                                docs += 1;
                                bytes += size;
                            }
                        }
                        if docs > config.max_documents_per_user {
                            return Err(RagError::Quota(format!(
                                "the quota of {} documents would be exceeded",
                                config.max_documents_per_user
                            )));
                        }
                        if bytes > config.max_bytes_per_user {
                            return Err(RagError::Quota(format!(
                                "the quota of {} stored bytes would be exceeded",
                                config.max_bytes_per_user
                            )));
                        }
                        let row = DocRow {
                            id: existing
                                .as_ref()
                                .map_or_else(|| Uuid::now_v7().to_string(), |d| d.id.clone()),
                            kb_id: kb_id.clone(),
                            filename: name,
                            content_type: kind.as_str().to_owned(),
                            size_bytes: size,
                            content_hash: hash,
                            status: "queued".into(),
                            error: None,
                            chunk_count: existing.as_ref().map_or(0, |d| d.chunk_count),
                            page_count: None,
                            created_at: existing.as_ref().map_or(now, |d| d.created_at),
                            updated_at: now,
                        };
                        if existing.is_some() {
                            diesel::update(knowledge_documents::table.find(&row.id))
                                .set((
                                    knowledge_documents::content_type.eq(&row.content_type),
                                    knowledge_documents::size_bytes.eq(row.size_bytes),
                                    knowledge_documents::content_hash.eq(&row.content_hash),
                                    knowledge_documents::status.eq("queued"),
                                    knowledge_documents::error.eq(None::<String>),
                                    knowledge_documents::updated_at.eq(now),
                                ))
                                .execute(conn)?;
                            // An older upload's job has nothing left to do.
                            diesel::delete(
                                knowledge_jobs::table
                                    .filter(knowledge_jobs::document_id.eq(&row.id)),
                            )
                            .execute(conn)?;
                        } else {
                            diesel::insert_into(knowledge_documents::table)
                                .values(&row)
                                .execute(conn)?;
                        }
                        db::insert_job(
                            conn,
                            &NewJob {
                                id: Uuid::now_v7().to_string(),
                                kb_id: kb_id.clone(),
                                document_id: Some(row.id.clone()),
                                kind: "ingest".into(),
                                status: "queued".into(),
                                attempts: 0,
                                lease_until: None,
                                payload: Some(payload),
                                created_at: now,
                                updated_at: now,
                            },
                        )?;
                        out.push(UploadResult {
                            document: doc_dto(&row),
                            outcome: "queued".into(),
                        });
                    }
                    diesel::update(knowledge_bases::table.find(&kb_id))
                        .set(knowledge_bases::updated_at.eq(now))
                        .execute(conn)?;
                    Ok(out)
                })
            })
            .await
    }

    /// Stores text given directly as a Markdown document named after `title`.
    pub async fn add_text(
        &self,
        a: &Actor,
        kb: Uuid,
        title: &str,
        text: &str,
    ) -> Result<UploadResult, RagError> {
        let title = check_filename(title)?;
        // A title naming a text file keeps its name; anything else (no
        // extension, "Notes v2", "report.pdf") is stored as `<title>.md`.
        let has_extension = std::path::Path::new(&title).extension().is_some();
        let filename = match kind_of(&title) {
            Ok(FileKind::Text(_)) if has_extension => title,
            _ => format!("{title}.md"),
        };
        let mut results = self
            .upload(
                a,
                kb,
                vec![UploadFile {
                    filename,
                    bytes: text.as_bytes().to_vec(),
                }],
            )
            .await?;
        results
            .pop()
            .ok_or_else(|| RagError::InvalidInput("nothing uploaded".into()))
    }

    /// The documents of a base, oldest first.
    pub async fn list_documents(
        &self,
        a: &Actor,
        kb: Uuid,
    ) -> Result<Vec<KnowledgeDocument>, RagError> {
        let (actor, kb) = (a.clone(), kb.to_string());
        let rows = self
            .rag
            .db
            .run(move |conn| {
                load_readable(conn, &kb, &actor)?;
                db::documents(conn, &kb)
            })
            .await?;
        Ok(rows.iter().map(doc_dto).collect())
    }

    /// One document with a text preview and its chunks.
    pub async fn get_document(
        &self,
        a: &Actor,
        kb: Uuid,
        doc: Uuid,
    ) -> Result<KnowledgeDocumentDetail, RagError> {
        let (actor, kb, doc) = (a.clone(), kb.to_string(), doc.to_string());
        let (row, chunks) = self
            .rag
            .db
            .run(move |conn| {
                load_readable(conn, &kb, &actor)?;
                let row =
                    db::document(conn, &kb, &doc)?.ok_or_else(|| not_found("document", &doc))?;
                let chunks = db::document_chunks(conn, &doc)?;
                Ok::<_, RagError>((row, chunks))
            })
            .await?;
        let mut preview = String::new();
        for (_, _, _, text) in &chunks {
            if preview.chars().count() >= 1_000 {
                break;
            }
            if !preview.is_empty() {
                preview.push_str("\n\n");
            }
            preview.push_str(text);
        }
        let preview: String = preview.chars().take(1_000).collect();
        Ok(KnowledgeDocumentDetail {
            document: doc_dto(&row),
            preview,
            chunks: chunks
                .into_iter()
                .map(|(index, heading, page, content)| KnowledgeChunk {
                    index,
                    heading,
                    page,
                    content,
                })
                .collect(),
        })
    }

    /// Deletes a document; its chunks leave the index in the same transaction.
    pub async fn delete_document(&self, a: &Actor, kb: Uuid, doc: Uuid) -> Result<(), RagError> {
        let (actor, kb, doc) = (a.clone(), kb.to_string(), doc.to_string());
        self.rag
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    load_writable(conn, &kb, &actor)?;
                    let n = diesel::delete(
                        knowledge_documents::table
                            .filter(knowledge_documents::kb_id.eq(&kb))
                            .filter(knowledge_documents::id.eq(&doc)),
                    )
                    .execute(conn)?;
                    if n == 0 {
                        return Err(not_found("document", &doc));
                    }
                    rag_db::bump_version(conn)?;
                    Ok(())
                })
            })
            .await
    }

    /// The retrieval collections of these bases, checking that the actor
    /// may read every one (`NotFound` for the first that is not readable).
    pub async fn readable_collections(
        &self,
        a: &Actor,
        ids: &[Uuid],
    ) -> Result<Vec<String>, RagError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if ids.len() > 20 {
            return Err(RagError::InvalidInput(
                "a conversation draws on at most 20 knowledge bases".into(),
            ));
        }
        let (actor, wanted) = (
            a.clone(),
            ids.iter().map(Uuid::to_string).collect::<Vec<_>>(),
        );
        self.rag
            .db
            .run(move |conn| {
                let rows = db::bases(conn, &wanted)?;
                let mut out = Vec::with_capacity(wanted.len());
                for id in &wanted {
                    match rows.iter().find(|b| b.id == *id) {
                        Some(b) if readable(b, &actor) => {
                            let c = collection_of(id);
                            if !out.contains(&c) {
                                out.push(c);
                            }
                        }
                        _ => return Err(not_found("knowledge base", id)),
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Retrieval from one base the actor may read.
    pub async fn search(
        &self,
        a: &Actor,
        kb: Uuid,
        query: &str,
        top_k: usize,
    ) -> Result<Vec<SourceInfo>, RagError> {
        let collections = self.readable_collections(a, &[kb]).await?;
        self.rag
            .search_knowledge(query, &collections, None, top_k)
            .await
    }

    /// Claims the next job (re-embeds first, then uploads in order), or `None`.
    pub async fn claim(&self) -> Result<Option<Job>, RagError> {
        let (lease, max_attempts) = (self.config.lease, self.config.max_attempts);
        loop {
            let claimed = self
                .rag
                .db
                .run(move |conn| claim_one(conn, lease, max_attempts))
                .await?;
            match claimed {
                Claim::None => return Ok(None),
                Claim::Lost => continue,
                Claim::GaveUp => continue,
                Claim::Job(job) => return Ok(Some(job)),
            }
        }
    }

    /// Runs a claimed job to its end, renewing its lease meanwhile. Errors
    /// of the job itself end on the document (`failed` with the reason) or
    /// put the job back for a later attempt; `Err` is left for database failures.
    pub async fn run(&self, job: Job) -> Result<(), RagError> {
        let every = (self.config.lease / 3).max(Duration::from_millis(100));
        let id = job.id.clone();
        let work = self.run_inner(job.clone());
        tokio::pin!(work);
        loop {
            tokio::select! {
                r = &mut work => {
                    return match r {
                        Ok(()) => Ok(()),
                        Err(e) => self.release(&job, &e.to_string()).await,
                    };
                }
                _ = tokio::time::sleep(every) => {
                    let (id, lease) = (id.clone(), self.config.lease);
                    self.rag.db.run(move |conn| renew(conn, &id, lease)).await?;
                }
            }
        }
    }

    /// Claims and runs jobs until none is left; how many ran.
    pub async fn drain(&self) -> Result<usize, RagError> {
        let mut n = 0;
        while let Some(job) = self.claim().await? {
            self.run(job).await?;
            n += 1;
        }
        Ok(n)
    }

    async fn run_inner(&self, job: Job) -> Result<(), RagError> {
        match job.kind.as_str() {
            "reembed" => self.reembed(&job).await,
            _ => self.ingest(&job).await,
        }
    }

    /// A failed attempt: back in the queue after a pause, or, after the
    /// last attempt, the document fails with the reason.
    async fn release(&self, job: &Job, reason: &str) -> Result<(), RagError> {
        tracing::warn!(job = %job.id, kb = %job.kb_id, attempts = job.attempts, error = %reason, "knowledge job failed");
        let (job, reason, max) = (job.clone(), reason.to_owned(), self.config.max_attempts);
        self.rag
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let now = Utc::now().naive_utc();
                    if job.attempts >= max {
                        let ours =
                            diesel::delete(knowledge_jobs::table.find(&job.id)).execute(conn)? > 0;
                        if ours && let Some(doc) = &job.document_id {
                            fail_document(conn, doc, &format!("ingestion failed: {reason}"))?;
                        }
                    } else {
                        let wait = chrono::Duration::seconds(5 * i64::from(job.attempts.max(1)));
                        diesel::update(knowledge_jobs::table.find(&job.id))
                            .set((
                                knowledge_jobs::status.eq("queued"),
                                knowledge_jobs::lease_until.eq(Some(now + wait)),
                                knowledge_jobs::updated_at.eq(now),
                            ))
                            .execute(conn)?;
                    }
                    Ok::<_, RagError>(())
                })
            })
            .await
    }

    async fn ingest(&self, job: &Job) -> Result<(), RagError> {
        let Some(doc_id) = job.document_id.clone() else {
            return self.finish_job(&job.id).await;
        };
        let (kb, d) = (job.kb_id.clone(), doc_id.clone());
        let found = self
            .rag
            .db
            .run(move |conn| {
                let base = db::base(conn, &kb)?;
                let doc = db::document(conn, &kb, &d)?;
                let stored = rag_db_chunk_count(conn, &collection_of(&kb))?;
                Ok::<_, RagError>((base, doc, stored))
            })
            .await?;
        let (Some(base), Some(doc), stored) = found else {
            // The base or document was deleted meanwhile.
            return self.finish_job(&job.id).await;
        };
        let (model, dims) = self.current_model();
        let switch_model = base.embedding_model != model || base.dimensions != dims;
        if switch_model && stored > 0 {
            // The base's vectors must be re-embedded first (that job goes
            // first); this one waits without using up an attempt.
            self.ensure_reembed(&base.id).await?;
            return self.defer(job, Duration::from_secs(2)).await;
        }
        let Some(payload) = job.payload.clone() else {
            return self
                .finish_failed(&job.id, &doc_id, "the upload is gone")
                .await;
        };
        let Some(kind) = FileKind::parse(&doc.content_type) else {
            return self
                .finish_failed(&job.id, &doc_id, "unknown document type")
                .await;
        };
        let (name, limits, chunk_config) = (
            doc.filename.clone(),
            self.config.files,
            self.rag.config.chunk,
        );
        let size = payload.len() as u64;
        let extracted = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            extract(&name, kind, &payload, &limits).map(|e| {
                let extracted = started.elapsed();
                let chunks = e.chunks(&chunk_config);
                (
                    e.page_count,
                    chunks,
                    extracted,
                    started.elapsed() - extracted,
                )
            })
        })
        .await
        .map_err(|e| RagError::Index(format!("extraction task: {e}")))?;
        let (page_count, chunks) = match extracted {
            Ok((pages, chunks, extract_time, chunk_time)) => {
                add(&self.stages.extract, extract_time);
                add(&self.stages.chunk, chunk_time);
                (pages, chunks)
            }
            Err(reason) => return self.finish_failed(&job.id, &doc_id, &reason).await,
        };
        if chunks.is_empty() {
            return self
                .finish_failed(&job.id, &doc_id, "the document has no text")
                .await;
        }
        let texts: Vec<String> = chunks
            .iter()
            .map(|(c, _)| {
                if c.title.is_empty() {
                    c.text.clone()
                } else {
                    format!("{}\n{}", c.title, c.text)
                }
            })
            .collect();
        let started = Instant::now();
        let vectors = self.rag.embed(&texts).await?;
        add(&self.stages.embed, started.elapsed());
        let rag_doc_id = Uuid::now_v7().to_string();
        let collection = collection_of(&base.id);
        let rows: Vec<rag_db::NewChunkRow> = chunks
            .iter()
            .zip(&vectors)
            .map(|((c, page), v)| rag_db::NewChunkRow {
                document_id: rag_doc_id.clone(),
                collection: collection.clone(),
                chunk_index: c.index as i32,
                title: c.title.clone(),
                content: c.text.clone(),
                dimensions: dims,
                embedding: rag_db::encode_vector(v),
                page: *page,
            })
            .collect();
        let metadata = json!({
            "knowledge_base_id": base.id,
            "knowledge_base": base.name,
            "knowledge_document_id": doc.id,
            "filename": doc.filename,
        })
        .to_string();
        let pgvector = self.rag.uses_pgvector();
        let (job_id, hash, n) = (job.id.clone(), doc.content_hash.clone(), rows.len() as i64);
        let started = Instant::now();
        let written = self
            .rag
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    // Still the same upload of a still existing document?
                    let Some(current) = db::document(conn, &base.id, &doc.id)? else {
                        diesel::delete(knowledge_jobs::table.find(&job_id)).execute(conn)?;
                        return Ok(false);
                    };
                    if current.content_hash != hash {
                        return Ok(false); // a newer upload's job will write it
                    }
                    let now = Utc::now().naive_utc();
                    if switch_model {
                        switch_base_model(conn, &base.id, &model, dims, now, pgvector)?;
                    }
                    diesel::delete(
                        rag_documents::table
                            .filter(rag_documents::knowledge_document_id.eq(&doc.id)),
                    )
                    .execute(conn)?;
                    diesel::insert_into(rag_documents::table)
                        .values((
                            rag_documents::id.eq(&rag_doc_id),
                            rag_documents::collection.eq(&collection),
                            rag_documents::source.eq(&doc.filename),
                            rag_documents::title.eq(&doc.filename),
                            rag_documents::content_hash.eq(&hash),
                            rag_documents::chunk_count.eq(n),
                            rag_documents::metadata.eq(&metadata),
                            rag_documents::created_at.eq(now),
                            rag_documents::updated_at.eq(now),
                            rag_documents::knowledge_document_id.eq(Some(&doc.id)),
                        ))
                        .execute(conn)?;
                    rag_db::insert_chunks(conn, &rows, &vectors, pgvector)?;
                    diesel::update(knowledge_documents::table.find(&doc.id))
                        .set((
                            knowledge_documents::status.eq("ready"),
                            knowledge_documents::error.eq(None::<String>),
                            knowledge_documents::chunk_count.eq(n),
                            knowledge_documents::page_count.eq(page_count),
                            knowledge_documents::updated_at.eq(now),
                        ))
                        .execute(conn)?;
                    diesel::delete(knowledge_jobs::table.find(&job_id)).execute(conn)?;
                    rag_db::bump_version(conn)?;
                    Ok::<_, RagError>(true)
                })
            })
            .await?;
        add(&self.stages.write, started.elapsed());
        if written {
            self.stages.documents.fetch_add(1, Ordering::Relaxed);
            self.stages.chunks.fetch_add(n as u64, Ordering::Relaxed);
            self.stages.bytes.fetch_add(size, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Puts a job back for later without counting the claim as an attempt.
    async fn defer(&self, job: &Job, wait: Duration) -> Result<(), RagError> {
        let (id, attempts) = (job.id.clone(), job.attempts);
        self.rag
            .db
            .run(move |conn| {
                let now = Utc::now().naive_utc();
                let until =
                    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(2));
                diesel::update(knowledge_jobs::table.find(&id))
                    .set((
                        knowledge_jobs::status.eq("queued"),
                        knowledge_jobs::lease_until.eq(Some(until)),
                        knowledge_jobs::attempts.eq((attempts - 1).max(0)),
                        knowledge_jobs::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                Ok::<_, RagError>(())
            })
            .await
    }

    async fn finish_job(&self, job_id: &str) -> Result<(), RagError> {
        let id = job_id.to_owned();
        self.rag
            .db
            .run(move |conn| {
                diesel::delete(knowledge_jobs::table.find(&id)).execute(conn)?;
                Ok::<_, RagError>(())
            })
            .await
    }

    async fn finish_failed(
        &self,
        job_id: &str,
        doc_id: &str,
        reason: &str,
    ) -> Result<(), RagError> {
        tracing::info!(document = %doc_id, reason, "knowledge document failed");
        let (job, doc, reason) = (job_id.to_owned(), doc_id.to_owned(), reason.to_owned());
        self.rag
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    // A newer upload replaced this job: its document is not ours to fail.
                    if diesel::delete(knowledge_jobs::table.find(&job)).execute(conn)? > 0 {
                        fail_document(conn, &doc, &reason)?;
                    }
                    Ok::<_, RagError>(())
                })
            })
            .await
    }

    async fn ensure_reembed(&self, kb_id: &str) -> Result<(), RagError> {
        let kb = kb_id.to_owned();
        self.rag
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    if !db::has_reembed_job(conn, &kb)? {
                        let now = Utc::now().naive_utc();
                        db::insert_job(
                            conn,
                            &NewJob {
                                id: Uuid::now_v7().to_string(),
                                kb_id: kb.clone(),
                                document_id: None,
                                kind: "reembed".into(),
                                status: "queued".into(),
                                attempts: 0,
                                lease_until: None,
                                payload: None,
                                created_at: now,
                                updated_at: now,
                            },
                        )?;
                    }
                    Ok::<_, RagError>(())
                })
            })
            .await
    }

    /// Bases whose vectors come from another embedder than the configured
    /// one; queues a re-embed job for each (and logs a warning). Call at startup.
    pub async fn check_embedder(&self) -> Result<Vec<EmbedderMismatch>, RagError> {
        let mismatched = self.embedder_mismatches().await?;
        for m in &mismatched {
            tracing::warn!(
                knowledge_base = %m.knowledge_base_id,
                stored_model = %m.stored.0,
                stored_dimensions = m.stored.1,
                configured_model = %m.configured.0,
                configured_dimensions = m.configured.1,
                "knowledge base embedded with another model: keyword search only until it is re-embedded (job queued)"
            );
            self.ensure_reembed(&m.knowledge_base_id).await?;
        }
        Ok(mismatched)
    }

    /// Bases whose vectors come from another embedder than the configured one.
    pub async fn embedder_mismatches(&self) -> Result<Vec<EmbedderMismatch>, RagError> {
        let configured = self.current_model();
        let rows = self.rag.db.run(db::all_bases).await?;
        Ok(rows
            .into_iter()
            .filter(|b| b.embedding_model != configured.0 || b.dimensions != configured.1)
            .map(|b| EmbedderMismatch {
                knowledge_base_id: b.id,
                stored: (b.embedding_model, b.dimensions),
                configured: configured.clone(),
            })
            .collect())
    }

    /// Re-embeds every chunk of a base with the configured model and
    /// switches the base to it, in one transaction.
    async fn reembed(&self, job: &Job) -> Result<(), RagError> {
        let kb = job.kb_id.clone();
        let collection = collection_of(&kb);
        let (c, k) = (collection.clone(), kb.clone());
        let (base, chunks) = self
            .rag
            .db
            .run(move |conn| {
                let base = db::base(conn, &k)?;
                let chunks = db::collection_chunks(conn, &c)?;
                Ok::<_, RagError>((base, chunks))
            })
            .await?;
        let (model, dims) = self.current_model();
        let Some(base) = base else {
            return self.finish_job(&job.id).await;
        };
        if base.embedding_model == model && base.dimensions == dims {
            return self.finish_job(&job.id).await;
        }
        tracing::info!(knowledge_base = %kb, chunks = chunks.len(), from = %base.embedding_model, to = %model, "re-embedding a knowledge base");
        let texts: Vec<String> = chunks
            .iter()
            .map(|(_, _, title, text, _)| {
                if title.is_empty() {
                    text.clone()
                } else {
                    format!("{title}\n{text}")
                }
            })
            .collect();
        let vectors = self.rag.embed(&texts).await?;
        // Every document gets a new id: the rewritten chunks must not look
        // like the old ones to an in-memory index (SQLite reuses row ids).
        let mut renamed: std::collections::BTreeMap<String, String> = Default::default();
        for (doc, ..) in &chunks {
            renamed
                .entry(doc.clone())
                .or_insert_with(|| Uuid::now_v7().to_string());
        }
        let rows: Vec<rag_db::NewChunkRow> = chunks
            .iter()
            .zip(&vectors)
            .map(|((doc, index, title, text, page), v)| rag_db::NewChunkRow {
                document_id: renamed.get(doc).cloned().unwrap_or_else(|| doc.clone()),
                collection: collection.clone(),
                chunk_index: *index,
                title: title.clone(),
                content: text.clone(),
                dimensions: dims,
                embedding: rag_db::encode_vector(v),
                page: *page,
            })
            .collect();
        let pgvector = self.rag.uses_pgvector();
        let (job_id, expected) = (job.id.clone(), chunks.len() as i64);
        self.rag
            .db
            .run(move |conn| {
                write_transaction(conn, |conn| {
                    let now_chunks = db::collection_chunks(conn, &collection)?;
                    if now_chunks != chunks || now_chunks.len() as i64 != expected {
                        // Documents changed meanwhile: try again with what is there now.
                        return Err(RagError::InvalidInput(
                            "the knowledge base changed while it was re-embedded".into(),
                        ));
                    }
                    diesel::delete(
                        rag_chunks::table.filter(rag_chunks::collection.eq(&collection)),
                    )
                    .execute(conn)?;
                    for (old, new) in &renamed {
                        diesel::update(rag_documents::table.find(old))
                            .set(rag_documents::id.eq(new))
                            .execute(conn)?;
                    }
                    let now = Utc::now().naive_utc();
                    switch_base_model(conn, &kb, &model, dims, now, pgvector)?;
                    rag_db::insert_chunks(conn, &rows, &vectors, pgvector)?;
                    diesel::delete(knowledge_jobs::table.find(&job_id)).execute(conn)?;
                    rag_db::bump_version(conn)?;
                    Ok(())
                })
            })
            .await
    }

    /// Documents still queued or processing, over every base (for metrics and tests).
    pub async fn pending_jobs(&self) -> Result<i64, RagError> {
        self.rag
            .db
            .run(|conn| Ok::<_, RagError>(knowledge_jobs::table.count().get_result::<i64>(conn)?))
            .await
    }
}

fn rag_db_chunk_count(conn: &mut DbConnection, collection: &str) -> Result<i64, RagError> {
    db::chunk_count(conn, collection)
}

/// Records the configured model on a base and its collection.
fn switch_base_model(
    conn: &mut DbConnection,
    kb: &str,
    model: &str,
    dims: i32,
    now: NaiveDateTime,
    pgvector: bool,
) -> Result<(), RagError> {
    diesel::update(knowledge_bases::table.find(kb))
        .set((
            knowledge_bases::embedding_model.eq(model),
            knowledge_bases::dimensions.eq(dims),
            knowledge_bases::updated_at.eq(now),
        ))
        .execute(conn)?;
    diesel::update(rag_collections::table.filter(rag_collections::name.eq(collection_of(kb))))
        .set((
            rag_collections::embedding_model.eq(model),
            rag_collections::dimensions.eq(dims),
        ))
        .execute(conn)?;
    if pgvector {
        rag_db::pgvector_index(conn, dims as usize)?;
    }
    Ok(())
}

fn fail_document(conn: &mut DbConnection, doc: &str, reason: &str) -> Result<(), RagError> {
    // A failed document has no chunks: nothing half-stored.
    diesel::delete(rag_documents::table.filter(rag_documents::knowledge_document_id.eq(doc)))
        .execute(conn)?;
    diesel::update(knowledge_documents::table.find(doc))
        .set((
            knowledge_documents::status.eq("failed"),
            knowledge_documents::error.eq(Some(reason.chars().take(1_000).collect::<String>())),
            knowledge_documents::chunk_count.eq(0i64),
            knowledge_documents::updated_at.eq(Utc::now().naive_utc()),
        ))
        .execute(conn)?;
    Ok(())
}

fn delete_bases(conn: &mut DbConnection, ids: &[String]) -> Result<(), RagError> {
    if ids.is_empty() {
        return Ok(());
    }
    diesel::delete(knowledge_bases::table.filter(knowledge_bases::id.eq_any(ids))).execute(conn)?;
    rag_db::bump_version(conn)?;
    Ok(())
}

enum Claim {
    None,
    Lost,
    GaveUp,
    Job(Job),
}

fn claim_one(
    conn: &mut DbConnection,
    lease: Duration,
    max_attempts: i32,
) -> Result<Claim, RagError> {
    write_transaction(conn, |conn| {
        let now = Utc::now().naive_utc();
        let claimable = knowledge_jobs::status
            .eq("queued")
            .and(
                knowledge_jobs::lease_until
                    .is_null()
                    .or(knowledge_jobs::lease_until.le(now)),
            )
            .or(knowledge_jobs::status
                .eq("running")
                .and(knowledge_jobs::lease_until.le(now)));
        // `reembed` sorts after `ingest`: re-embeds first.
        let next: Option<(String, i32, Option<String>)> = knowledge_jobs::table
            .filter(claimable)
            .order((knowledge_jobs::kind.desc(), knowledge_jobs::created_at))
            .select((
                knowledge_jobs::id,
                knowledge_jobs::attempts,
                knowledge_jobs::document_id,
            ))
            .first(conn)
            .optional()?;
        let Some((id, attempts, document_id)) = next else {
            return Ok(Claim::None);
        };
        if attempts >= max_attempts {
            // Claimed that often without finishing: its worker keeps dying on it.
            if let Some(doc) = &document_id {
                fail_document(
                    conn,
                    doc,
                    &format!("ingestion did not finish after {attempts} attempts"),
                )?;
            }
            diesel::delete(knowledge_jobs::table.find(&id)).execute(conn)?;
            return Ok(Claim::GaveUp);
        }
        let until =
            now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
        let n = diesel::update(knowledge_jobs::table.find(&id).filter(claimable))
            .set((
                knowledge_jobs::status.eq("running"),
                knowledge_jobs::lease_until.eq(Some(until)),
                knowledge_jobs::attempts.eq(attempts + 1),
                knowledge_jobs::updated_at.eq(now),
            ))
            .execute(conn)?;
        if n == 0 {
            return Ok(Claim::Lost);
        }
        let (kb_id, kind, payload): (String, String, Option<Vec<u8>>) = knowledge_jobs::table
            .find(&id)
            .select((
                knowledge_jobs::kb_id,
                knowledge_jobs::kind,
                knowledge_jobs::payload,
            ))
            .first(conn)?;
        if let Some(doc) = &document_id {
            diesel::update(knowledge_documents::table.find(doc))
                .set((
                    knowledge_documents::status.eq("processing"),
                    knowledge_documents::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok(Claim::Job(Job {
            id,
            kb_id,
            kind,
            attempts: attempts + 1,
            document_id,
            payload,
        }))
    })
}

fn renew(conn: &mut DbConnection, id: &str, lease: Duration) -> Result<(), RagError> {
    let until = Utc::now().naive_utc()
        + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
    diesel::update(
        knowledge_jobs::table
            .find(id)
            .filter(knowledge_jobs::status.eq("running")),
    )
    .set(knowledge_jobs::lease_until.eq(Some(until)))
    .execute(conn)?;
    Ok(())
}

impl Rag {
    /// Retrieval for a conversation from knowledge-base collections (already
    /// checked readable) plus, optionally, one more collection (a course's).
    /// Bases whose vectors are of another embedder are searched by keywords only.
    pub async fn search_knowledge(
        &self,
        query: &str,
        bases: &[String],
        extra: Option<String>,
        top_k: usize,
    ) -> Result<Vec<SourceInfo>, RagError> {
        let ids: Vec<String> = bases
            .iter()
            .filter_map(|c| c.strip_prefix(crate::service::KB_PREFIX).map(str::to_owned))
            .collect();
        let rows = self.db.run(move |conn| db::bases(conn, &ids)).await?;
        let (model, dims) = (
            self.config.embedding_model.clone(),
            self.embedder.dimensions() as i32,
        );
        let mut vector = Vec::new();
        let mut keyword = Vec::new();
        for b in &rows {
            let c = collection_of(&b.id);
            if b.embedding_model == model && b.dimensions == dims {
                vector.push(c.clone());
            }
            keyword.push(c);
        }
        if let Some(c) = extra {
            vector.push(c.clone());
            keyword.push(c);
        }
        if keyword.is_empty() {
            return Ok(Vec::new());
        }
        if vector.len() < keyword.len() {
            tracing::debug!("some knowledge bases await re-embedding: keyword search for them");
        }
        let mut hits = self.search_scoped(query, &vector, &keyword, top_k).await?;
        // Chunks record their base's name at ingestion: a renamed base's
        // sources carry the name it has now.
        for hit in &mut hits {
            let id = hit
                .metadata
                .get("knowledge_base_id")
                .and_then(serde_json::Value::as_str);
            if let Some(b) = rows.iter().find(|b| Some(b.id.as_str()) == id) {
                hit.metadata
                    .insert("knowledge_base".into(), json!(b.name.clone()));
            }
        }
        Ok(hits)
    }
}
