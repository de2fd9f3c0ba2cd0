//! `/api/knowledge/...`: knowledge bases (a user's own documents for
//! retrieval), their documents and uploads, progress as SSE, and search;
//! plus the ingestion worker pool ([`KnowledgeState::spawn_workers`]).
//!
//! Handlers parse, call [`confab_rag::KnowledgeService`] and return its
//! errors with `?` (`confab-web` maps them, 415 for an unsupported file type
//! included). Another user's private base is a 404 on every route.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use bytes::Bytes;
use confab_models::SourceInfo;
use confab_models::knowledge::{
    KnowledgeBase, KnowledgeBaseUpdate, KnowledgeDocument, KnowledgeDocumentDetail, KnowledgeEvent,
    NewKnowledgeBase, UploadResult,
};
use confab_rag::KnowledgeService;
use confab_rag::knowledge::{Actor, KnowledgeConfig, UploadFile};
use confab_web::{ApiError, Caller, ErrorBody};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::state::AppState;

type Data = web::Data<AppState>;

/// Tag of knowledge routes.
pub const KNOWLEDGE: &str = "knowledge";

/// How often the progress stream looks at the documents.
const EVENTS_POLL: Duration = Duration::from_millis(400);
/// How often an idle worker looks for jobs (uploads also wake it at once).
const WORKER_POLL: Duration = Duration::from_secs(2);

/// The knowledge service and its worker pool.
#[derive(Debug, Clone)]
pub struct KnowledgeState {
    /// CRUD, uploads, jobs, search.
    pub service: KnowledgeService,
    /// Concurrent ingestion jobs in this process.
    pub workers: usize,
    /// Wakes idle workers after an upload.
    pub wake: Arc<Notify>,
}

impl KnowledgeState {
    /// The state over `service` with `workers` concurrent jobs.
    pub fn new(service: KnowledgeService, workers: usize) -> Self {
        Self {
            service,
            workers: workers.max(1),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Wakes the idle workers after an upload.
    pub fn wake_workers(&self) {
        self.wake.notify_waiters();
        for _ in 0..self.workers {
            self.wake.notify_one();
        }
    }

    /// Reads `CONFAB_KNOWLEDGE_*` (see docs/CONFIG.md).
    pub fn config_from_vars(
        vars: &confab_web::Vars,
    ) -> Result<(KnowledgeConfig, usize), confab_web::ConfigError> {
        let d = KnowledgeConfig::default();
        let mib = 1024 * 1024;
        let mut c = KnowledgeConfig {
            max_documents_per_user: vars
                .parse_or("CONFAB_KNOWLEDGE_MAX_DOCUMENTS", d.max_documents_per_user)?,
            max_bytes_per_user: vars.parse_or(
                "CONFAB_KNOWLEDGE_MAX_MB_PER_USER",
                d.max_bytes_per_user / mib,
            )? * mib,
            lease: vars.seconds("CONFAB_KNOWLEDGE_LEASE_SECS", d.lease)?,
            ..d
        };
        c.files.max_file_bytes = vars.parse_or(
            "CONFAB_KNOWLEDGE_MAX_FILE_MB",
            c.files.max_file_bytes / mib as u64,
        )? * mib as u64;
        c.files.max_pdf_pages =
            vars.parse_or("CONFAB_KNOWLEDGE_MAX_PDF_PAGES", c.files.max_pdf_pages)?;
        let workers = vars.parse_or("CONFAB_KNOWLEDGE_WORKERS", 2usize)?;
        Ok((c, workers))
    }

    /// Starts the worker pool: `workers` tasks that claim and run jobs until
    /// `shutdown` fires. A job cut short stays claimed until its lease runs
    /// out, then another worker (or this process after a restart) resumes it.
    pub fn spawn_workers(&self, shutdown: CancellationToken) {
        for n in 0..self.workers {
            let (service, wake, shutdown) =
                (self.service.clone(), self.wake.clone(), shutdown.clone());
            tokio::spawn(async move {
                tracing::debug!(worker = n, "knowledge worker started");
                loop {
                    if shutdown.is_cancelled() {
                        break;
                    }
                    let claimed = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        c = service.claim() => c,
                    };
                    match claimed {
                        Ok(Some(job)) => {
                            let id = job.id.clone();
                            tokio::select! {
                                _ = shutdown.cancelled() => break,
                                r = service.run(job) => if let Err(e) = r {
                                    tracing::warn!(job = %id, error = %e, "knowledge job stopped");
                                },
                            }
                        }
                        Ok(None) => {
                            tokio::select! {
                                _ = shutdown.cancelled() => break,
                                _ = wake.notified() => {}
                                _ = tokio::time::sleep(WORKER_POLL) => {}
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "knowledge jobs unavailable");
                            tokio::select! {
                                _ = shutdown.cancelled() => break,
                                _ = tokio::time::sleep(WORKER_POLL) => {}
                            }
                        }
                    }
                }
            });
        }
    }
}

fn knowledge(state: &AppState) -> Result<&KnowledgeState, ApiError> {
    state
        .knowledge
        .as_ref()
        .ok_or_else(|| ApiError::unavailable("knowledge bases are not configured on this instance"))
}

fn actor(caller: &Caller) -> Actor {
    Actor::new(caller.user_id.clone(), caller.is_admin())
}

/// The retrieval collections of the bases a conversation names, after
/// checking the caller may read each (404 otherwise). Empty when none.
pub async fn scope(
    state: &AppState,
    caller: &Caller,
    ids: &[Uuid],
) -> Result<Vec<String>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    knowledge(state)?
        .service
        .readable_collections(&actor(caller), ids)
        .await
        .map_err(ApiError::from)
}

/// `{"items": [...]}` of knowledge bases.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KnowledgeBaseList {
    /// The caller's bases and the shared ones.
    pub items: Vec<KnowledgeBase>,
}

/// `{"items": [...]}` of documents.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KnowledgeDocumentList {
    /// The documents with their ingestion state.
    pub items: Vec<KnowledgeDocument>,
}

/// `{"items": [...]}` of uploads.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KnowledgeUploadList {
    /// What each file became, in upload order.
    pub items: Vec<UploadResult>,
}

/// `{"items": [...]}` of retrieved passages.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KnowledgeSearchResults {
    /// Best first.
    pub items: Vec<SourceInfo>,
}

/// Creates a knowledge base (`shared`: administrators only).
#[utoipa::path(
    tag = KNOWLEDGE,
    request_body(content = NewKnowledgeBase),
    responses(
        (status = 201, description = "Created", body = KnowledgeBase),
        (status = 403, description = "`shared` by a non-administrator", body = ErrorBody),
        (status = 422, description = "Invalid name", body = ErrorBody),
    )
)]
#[post("/api/knowledge")]
pub async fn create_base(
    state: Data,
    caller: Caller,
    body: web::Json<NewKnowledgeBase>,
) -> Result<HttpResponse, ApiError> {
    let base = knowledge(&state)?
        .service
        .create_base(&actor(&caller), body.into_inner())
        .await?;
    Ok(HttpResponse::Created().json(base))
}

/// Lists the caller's knowledge bases and the shared ones.
#[utoipa::path(
    tag = KNOWLEDGE,
    responses((status = 200, description = "OK", body = KnowledgeBaseList))
)]
#[get("/api/knowledge")]
pub async fn list_bases(
    state: Data,
    caller: Caller,
) -> Result<web::Json<KnowledgeBaseList>, ApiError> {
    let items = knowledge(&state)?
        .service
        .list_bases(&actor(&caller))
        .await?;
    Ok(web::Json(KnowledgeBaseList { items }))
}

/// One knowledge base.
#[utoipa::path(
    tag = KNOWLEDGE,
    params(("id" = Uuid, Path, description = "Knowledge base id")),
    responses(
        (status = 200, description = "OK", body = KnowledgeBase),
        (status = 404, description = "No such base (or another user's)", body = ErrorBody),
    )
)]
#[get("/api/knowledge/{id}")]
pub async fn get_base(
    state: Data,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<KnowledgeBase>, ApiError> {
    let base = knowledge(&state)?
        .service
        .get_base(&actor(&caller), id.into_inner())
        .await?;
    Ok(web::Json(base))
}

/// Renames a knowledge base.
#[utoipa::path(
    tag = KNOWLEDGE,
    params(("id" = Uuid, Path, description = "Knowledge base id")),
    request_body(content = KnowledgeBaseUpdate),
    responses(
        (status = 200, description = "OK", body = KnowledgeBase),
        (status = 403, description = "A shared base, caller not an administrator", body = ErrorBody),
        (status = 404, description = "No such base (or another user's)", body = ErrorBody),
        (status = 422, description = "Invalid name", body = ErrorBody),
    )
)]
#[patch("/api/knowledge/{id}")]
pub async fn update_base(
    state: Data,
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<KnowledgeBaseUpdate>,
) -> Result<web::Json<KnowledgeBase>, ApiError> {
    let base = knowledge(&state)?
        .service
        .update_base(&actor(&caller), id.into_inner(), body.into_inner())
        .await?;
    Ok(web::Json(base))
}

/// Deletes a knowledge base with its documents; its chunks leave the index at once.
#[utoipa::path(
    tag = KNOWLEDGE,
    params(("id" = Uuid, Path, description = "Knowledge base id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "A shared base, caller not an administrator", body = ErrorBody),
        (status = 404, description = "No such base (or another user's)", body = ErrorBody),
    )
)]
#[delete("/api/knowledge/{id}")]
pub async fn delete_base(
    state: Data,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    knowledge(&state)?
        .service
        .delete_base(&actor(&caller), id.into_inner())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// JSON body of `POST /api/knowledge/{id}/documents`: text given directly.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextDocument {
    /// Title; the document is stored as `<title>.md` (or as the title when
    /// it already ends in .md/.txt/.html).
    pub title: String,
    /// Markdown or plain text.
    pub text: String,
}

/// Reads multipart files, each at most the per-file limit (413 as soon as one is larger).
async fn read_multipart(
    req: &HttpRequest,
    payload: web::Payload,
    config: &KnowledgeConfig,
) -> Result<Vec<UploadFile>, ApiError> {
    let max = config.files.max_file_bytes as usize;
    let mut multipart = actix_multipart::Multipart::new(req.headers(), payload);
    let mut files = Vec::new();
    let mut parts = 0usize;
    while let Some(field) = multipart.next().await {
        let mut field = match field {
            Ok(f) => f,
            // Only the closing boundary (a form with no parts): no files.
            Err(actix_multipart::MultipartError::Incomplete) if parts == 0 => break,
            Err(e) => return Err(ApiError::bad_request(format!("bad multipart body: {e}"))),
        };
        parts += 1;
        // `filename`, else RFC 5987's `filename*=UTF-8''...` (non-ASCII names).
        let filename = field.content_disposition().and_then(|cd| {
            cd.get_filename().map(str::to_owned).or_else(|| {
                cd.get_filename_ext()
                    .map(|ext| String::from_utf8_lossy(&ext.value).into_owned())
            })
        });
        let Some(filename) = filename else {
            // A plain form field: read past it (bounded) and ignore it.
            let mut seen = 0usize;
            while let Some(chunk) = field.next().await {
                let chunk =
                    chunk.map_err(|e| ApiError::bad_request(format!("bad multipart body: {e}")))?;
                seen += chunk.len();
                if seen > 64 * 1024 {
                    return Err(ApiError::too_large("a form field is larger than 64 KiB"));
                }
            }
            continue;
        };
        if files.len() >= config.max_files_per_upload {
            return Err(ApiError::validation(format!(
                "more than {} files in one upload",
                config.max_files_per_upload
            )));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::bad_request(format!("bad multipart body: {e}")))?;
            if bytes.len() + chunk.len() > max {
                return Err(ApiError::too_large(format!(
                    "the file `{}` is larger than the limit of {max} bytes",
                    filename
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(80)
                        .collect::<String>()
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        files.push(UploadFile { filename, bytes });
    }
    if files.is_empty() {
        return Err(ApiError::validation(
            "no files in the multipart body (send them as `file` parts with a filename)",
        ));
    }
    Ok(files)
}

/// Uploads documents: `multipart/form-data` with one or more file parts, or
/// JSON `{title, text}`. All or nothing: any refused file refuses the
/// request. Answers 202 with what each file became (`queued`, or
/// `unchanged` for an identical re-upload); ingestion runs in the background.
#[utoipa::path(
    tag = KNOWLEDGE,
    params(("id" = Uuid, Path, description = "Knowledge base id")),
    request_body(content = TextDocument, description = "JSON {title, text}, or multipart/form-data file parts (PDF, DOCX, Markdown, HTML, text)"),
    responses(
        (status = 202, description = "Accepted: queued for ingestion", body = KnowledgeUploadList),
        (status = 403, description = "A shared base, caller not an administrator", body = ErrorBody),
        (status = 404, description = "No such base (or another user's)", body = ErrorBody),
        (status = 409, description = "Per-user quota (documents or bytes) exceeded", body = ErrorBody),
        (status = 413, description = "A file is over the size limit", body = ErrorBody),
        (status = 415, description = "Unsupported file type", body = ErrorBody),
        (status = 422, description = "Empty file, bad file name, bytes that do not match the extension", body = ErrorBody),
    )
)]
#[post("/api/knowledge/{id}/documents")]
pub async fn upload(
    state: Data,
    caller: Caller,
    id: web::Path<Uuid>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let k = knowledge(&state)?;
    let id = id.into_inner();
    let a = actor(&caller);
    // Unknown or unreadable bases are a 404 before the body is read.
    k.service.get_base(&a, id).await?;
    let items = match UploadFormat::of(&req)? {
        UploadFormat::Multipart => {
            let files = read_multipart(&req, payload, k.service.config()).await?;
            k.service.upload(&a, id, files).await?
        }
        UploadFormat::Json => {
            let doc = read_text_document(payload, k.service.config()).await?;
            vec![k.service.add_text(&a, id, &doc.title, &doc.text).await?]
        }
    };
    k.wake_workers();
    Ok(HttpResponse::Accepted().json(KnowledgeUploadList { items }))
}

/// How an upload's body is sent.
enum UploadFormat {
    /// `multipart/form-data` file parts.
    Multipart,
    /// JSON `{title, text}`.
    Json,
}

impl UploadFormat {
    /// The format named by the request's `Content-Type` (415 for any other).
    fn of(req: &HttpRequest) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            Ok(Self::Multipart)
        } else if content_type.starts_with("application/json") {
            Ok(Self::Json)
        } else {
            Err(ApiError::unsupported_media_type(
                "send multipart/form-data files or JSON {\"title\", \"text\"}",
            ))
        }
    }
}

/// Reads a JSON `{title, text}` body, bounded by the file size limit plus 64 KiB.
async fn read_text_document(
    payload: web::Payload,
    config: &KnowledgeConfig,
) -> Result<TextDocument, ApiError> {
    let limit = config.files.max_file_bytes as usize + 64 * 1024;
    let body = read_bounded(payload, limit).await?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_json(format!("expected {{\"title\", \"text\"}}: {e}")))
}

async fn read_bounded(mut payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::too_large(format!(
                "the body is larger than {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The documents of a knowledge base with their ingestion state.
#[utoipa::path(
    tag = KNOWLEDGE,
    params(("id" = Uuid, Path, description = "Knowledge base id")),
    responses(
        (status = 200, description = "OK", body = KnowledgeDocumentList),
        (status = 404, description = "No such base (or another user's)", body = ErrorBody),
    )
)]
#[get("/api/knowledge/{id}/documents")]
pub async fn list_documents(
    state: Data,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<web::Json<KnowledgeDocumentList>, ApiError> {
    let items = knowledge(&state)?
        .service
        .list_documents(&actor(&caller), id.into_inner())
        .await?;
    Ok(web::Json(KnowledgeDocumentList { items }))
}

/// One document: metadata, a text preview, its chunks (with page / heading).
#[utoipa::path(
    tag = KNOWLEDGE,
    params(
        ("id" = Uuid, Path, description = "Knowledge base id"),
        ("doc" = Uuid, Path, description = "Document id"),
    ),
    responses(
        (status = 200, description = "OK", body = KnowledgeDocumentDetail),
        (status = 404, description = "No such base or document (or another user's)", body = ErrorBody),
    )
)]
#[get("/api/knowledge/{id}/documents/{doc}")]
pub async fn get_document(
    state: Data,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (id, doc) = path.into_inner();
    let detail = knowledge(&state)?
        .service
        .get_document(&actor(&caller), id, doc)
        .await?;
    Ok(HttpResponse::Ok().json(detail))
}

/// Deletes a document; its chunks leave the index in the same transaction.
#[utoipa::path(
    tag = KNOWLEDGE,
    params(
        ("id" = Uuid, Path, description = "Knowledge base id"),
        ("doc" = Uuid, Path, description = "Document id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "A shared base, caller not an administrator", body = ErrorBody),
        (status = 404, description = "No such base or document (or another user's)", body = ErrorBody),
    )
)]
#[delete("/api/knowledge/{id}/documents/{doc}")]
pub async fn delete_document(
    state: Data,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (id, doc) = path.into_inner();
    knowledge(&state)?
        .service
        .delete_document(&actor(&caller), id, doc)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Query of `GET /api/knowledge/{id}/search`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SearchQuery {
    /// What to look for.
    pub q: String,
    /// How many passages (1..=50, default 5).
    pub k: Option<usize>,
}

/// Retrieval from one knowledge base, as the chat backends see it.
#[utoipa::path(
    tag = KNOWLEDGE,
    params(("id" = Uuid, Path, description = "Knowledge base id"), SearchQuery),
    responses(
        (status = 200, description = "Passages, best first; metadata carries knowledge_base_id, knowledge_document_id, filename, page, heading", body = KnowledgeSearchResults),
        (status = 404, description = "No such base (or another user's)", body = ErrorBody),
    )
)]
#[get("/api/knowledge/{id}/search")]
pub async fn search(
    state: Data,
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<SearchQuery>,
) -> Result<web::Json<KnowledgeSearchResults>, ApiError> {
    let query = query.into_inner();
    if query.q.trim().is_empty() {
        return Err(ApiError::validation("`q` must not be empty"));
    }
    let k = query.k.unwrap_or(5).clamp(1, 50);
    let items = knowledge(&state)?
        .service
        .search(&actor(&caller), id.into_inner(), &query.q, k)
        .await?;
    Ok(web::Json(KnowledgeSearchResults { items }))
}

/// Ingestion progress as Server-Sent Events: `event: document` with
/// `{"document": ...}` for every document now and whenever one changes,
/// `event: idle` whenever nothing is queued or processing. A deleted base
/// ends the stream with `event: error`.
#[utoipa::path(
    tag = KNOWLEDGE,
    params(("id" = Uuid, Path, description = "Knowledge base id")),
    responses(
        (status = 200, description = "text/event-stream of document events", content_type = "text/event-stream", body = KnowledgeEvent),
        (status = 404, description = "No such base (or another user's)", body = ErrorBody),
    )
)]
#[get("/api/knowledge/{id}/events")]
pub async fn events(
    state: Data,
    caller: Caller,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let k = knowledge(&state)?;
    let (a, id) = (actor(&caller), id.into_inner());
    k.service.get_base(&a, id).await?;
    let body = document_events(k.service.clone(), a, id, state.shutdown.clone());
    Ok(crate::chat::sse_response(body))
}

/// The progress stream of base `id` as `a` sees it, until `shutdown`.
fn document_events(
    service: KnowledgeService,
    a: Actor,
    id: Uuid,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
    async_stream::stream! {
        let mut seen: HashMap<Uuid, (String, i64, chrono::DateTime<chrono::Utc>)> = HashMap::new();
        let mut was_idle: Option<bool> = None;
        let mut since_frame = std::time::Instant::now();
        loop {
            let docs = match service.list_documents(&a, id).await {
                Ok(d) => d,
                Err(e) => {
                    let err = ApiError::from(e);
                    let body = error_frame(err);
                    yield Ok::<_, actix_web::Error>(Bytes::from(format!("event: error\ndata: {body}\n\n")));
                    break;
                }
            };
            for d in &docs {
                let key = (d.status.as_str().to_owned(), d.chunk_count, d.updated_at);
                if seen.get(&d.id) != Some(&key) {
                    seen.insert(d.id, key);
                    let json = serde_json::to_string(&KnowledgeEvent { document: d.clone() }).unwrap_or_default();
                    since_frame = std::time::Instant::now();
                    yield Ok(Bytes::from(format!("event: document\ndata: {json}\n\n")));
                }
            }
            let idle = docs.iter().all(|d| d.status.is_final());
            if was_idle != Some(idle) {
                was_idle = Some(idle);
                if idle {
                    since_frame = std::time::Instant::now();
                    let idle = serde_json::to_string(&IdleFrame { documents: docs.len() }).unwrap_or_default();
                    yield Ok(Bytes::from(format!("event: idle\ndata: {idle}\n\n")));
                }
            }
            if since_frame.elapsed() > Duration::from_secs(15) {
                since_frame = std::time::Instant::now();
                yield Ok(Bytes::from_static(b": keep-alive\n\n"));
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(EVENTS_POLL) => {}
            }
        }
    }
}

/// Data of an `event: idle` frame.
#[derive(Serialize)]
struct IdleFrame {
    /// How many documents the base has.
    documents: usize,
}

/// Data of an `event: error` frame: the error's JSON body.
fn error_frame(err: ApiError) -> String {
    serde_json::to_string(&ErrorBody {
        error: err.code.to_owned(),
        message: err.message,
    })
    .unwrap_or_default()
}

/// Parses `id,id,...` (a query parameter) into knowledge base ids (400 on a bad id).
pub fn parse_ids(list: Option<&str>) -> Result<Vec<Uuid>, ApiError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            Uuid::parse_str(s)
                .map_err(|_| ApiError::bad_request(format!("`{s}` is not a knowledge base id")))
        })
        .collect()
}

/// `/api/health` warnings about vectors of another embedding model than the
/// configured one (knowledge bases being re-embedded, other collections
/// searched by keywords only). Empty when all is consistent or unknown.
pub async fn embedding_warnings(state: &AppState) -> Vec<String> {
    let Some(k) = &state.knowledge else {
        return Vec::new();
    };
    let mut out = Vec::new();
    match k.service.embedder_mismatches().await {
        Ok(list) if !list.is_empty() => out.push(format!(
            "{} knowledge base(s) embedded with another model are being re-embedded (keyword search meanwhile)",
            list.len()
        )),
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "embedder check failed"),
    }
    match k.service.rag().mismatched_collections().await {
        Ok(list) => {
            for (name, model, dims) in list {
                out.push(format!(
                    "collection `{name}` was embedded with `{model}` ({dims} dimensions), not the configured model: keyword search only; re-ingest it"
                ));
            }
        }
        Err(e) => tracing::debug!(error = %e, "collection check failed"),
    }
    out
}
