//! [`Rag`]: ingestion and retrieval over one database and embedding model.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use chrono::Utc;
use confab_llm::EmbeddingModel;
use confab_models::{Metadata, SourceInfo};
use confab_store::sql::{QueryTerm, search_tokens};
use confab_store::{Backend, Db, DbConnection};
use rust_stemmers::{Algorithm, Stemmer};
use serde_json::json;

use crate::chunk::{Chunk, ChunkConfig};
use crate::db::{self, ChunkDetail, DocumentRow, NewChunkRow};
use crate::error::RagError;
use crate::extract::{self, DocumentKind};
use crate::index::{Collections, MemoryIndexConfig};

/// Limits and knobs of ingestion and retrieval.
#[derive(Debug, Clone)]
pub struct RagConfig {
    /// How documents are split.
    pub chunk: ChunkConfig,
    /// Texts per embedding call.
    pub embed_batch: usize,
    /// Name of the embedding model, recorded per collection.
    pub embedding_model: String,
    /// Candidates taken from each retriever before fusion.
    pub candidates: usize,
    /// The `k` of reciprocal rank fusion.
    pub rrf_k: f64,
    /// On PostgreSQL, use pgvector when the extension can be had.
    pub use_pgvector: bool,
    /// The in-memory index (embedded backend and pgvector fallback).
    pub index: MemoryIndexConfig,
}

impl Default for RagConfig {
    fn default() -> Self {
        Self {
            chunk: ChunkConfig::default(),
            embed_batch: 32,
            embedding_model: "builtin".into(),
            candidates: 40,
            rrf_k: 60.0,
            use_pgvector: true,
            index: MemoryIndexConfig::default(),
        }
    }
}

/// Which retrievers a search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMode {
    /// Vector and keyword search fused by reciprocal rank fusion.
    #[default]
    Hybrid,
    /// Vector search only.
    Vector,
    /// Keyword search only.
    Keyword,
}

/// A search request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchOptions {
    /// Only this collection.
    pub collection: Option<String>,
    /// How many sources to return.
    pub top_k: usize,
    /// Retrievers to use.
    pub mode: SearchMode,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            collection: None,
            top_k: 5,
            mode: SearchMode::Hybrid,
        }
    }
}

/// What ingesting one document did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Same content as stored: nothing done.
    Unchanged,
    /// New document with this many chunks.
    Added(usize),
    /// Changed document: its chunks were replaced by this many.
    Replaced(usize),
    /// Not ingested, with the reason.
    Skipped(String),
}

/// Totals of a folder or file ingestion.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestSummary {
    /// Files looked at.
    pub files: usize,
    /// New documents.
    pub added: usize,
    /// Changed documents.
    pub replaced: usize,
    /// Documents left as they were.
    pub unchanged: usize,
    /// Documents removed because their file is gone.
    pub removed: usize,
    /// Chunks written.
    pub chunks: usize,
    /// Files skipped, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Wall time.
    pub seconds: f64,
}

/// Progress of a path ingestion, for progress bars.
#[derive(Debug)]
pub enum Progress<'a> {
    /// The walk found this many candidate files.
    Found(usize),
    /// One file is done.
    File {
        /// Its path.
        path: &'a str,
        /// What happened.
        outcome: &'a IngestOutcome,
    },
}

/// The in-memory vector index of the embedded backend, kept in step with
/// the database through `rag_state.version`.
struct VectorCache {
    index: RwLock<Collections>,
    /// Chunk id -> (collection, hash of its document id), of what the index
    /// holds. SQLite reuses the ids of deleted rows, so an id alone does not
    /// say the row is the same one: a chunk written again (re-ingested or
    /// re-embedded) always gets a new document id, and a changed pair means
    /// the index's vector for that id is stale.
    known: Mutex<HashMap<i64, (String, u64)>>,
    /// The database version the index reflects (`None` before the first load).
    version: Mutex<Option<i64>>,
    /// Chunks with their documents, as retrieval last read them, and the
    /// version they were read at: a chunk or document only changes with
    /// the version, so an entry of the current version is current.
    details: Mutex<DetailCache>,
}

/// Most chunk details [`VectorCache::details`] keeps (it is emptied when full).
const DETAIL_CACHE_ENTRIES: usize = 4096;

/// The chunk details of one database version.
#[derive(Default)]
struct DetailCache {
    version: i64,
    by_id: HashMap<i64, ChunkDetail>,
}

impl DetailCache {
    /// The cached details of `ids` read at `version`, and the ids not cached.
    fn get(&self, version: i64, ids: &[i64]) -> (Vec<ChunkDetail>, Vec<i64>) {
        if self.version != version {
            return (Vec::new(), ids.to_vec());
        }
        let mut found = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.by_id.get(id) {
                Some(d) => found.push(d.clone()),
                None => missing.push(*id),
            }
        }
        (found, missing)
    }

    /// Keeps details read at `version` (an older version's are dropped, a
    /// read older than what is kept is not kept).
    fn put(&mut self, version: i64, details: &[ChunkDetail]) {
        if version < self.version {
            return;
        }
        if version > self.version || self.by_id.len() + details.len() > DETAIL_CACHE_ENTRIES {
            self.by_id.clear();
            self.version = version;
        }
        for d in details {
            self.by_id.insert(d.seq, d.clone());
        }
    }
}

/// What one trip to the database gathers for a search.
struct Gathered {
    /// The database version the hits are of (with the in-memory index, and
    /// no write between the reads).
    version: Option<i64>,
    /// Keyword hits, best first (`None`: no keyword search).
    keyword: Option<Vec<(i64, f64)>>,
    /// Every collection's model, when asked for.
    models: Vec<db::CollectionModel>,
}

/// Ingestion and retrieval. Cheap to clone.
#[derive(Clone)]
pub struct Rag {
    pub(crate) db: Db,
    pub(crate) embedder: Arc<dyn EmbeddingModel>,
    pub(crate) config: Arc<RagConfig>,
    /// `None` when pgvector serves vector search.
    cache: Option<Arc<VectorCache>>,
}

impl std::fmt::Debug for Rag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rag")
            .field("backend", &self.db.backend())
            .field("pgvector", &self.cache.is_none())
            .field("dimensions", &self.embedder.dimensions())
            .finish()
    }
}

fn check_collection(name: &str) -> Result<(), RagError> {
    let n = name.chars().count();
    if n == 0 || n > 100 || name.chars().any(char::is_control) {
        return Err(RagError::InvalidCollection(
            name.chars().take(100).collect(),
        ));
    }
    Ok(())
}

/// Stable hash of what determines a document's chunks and vectors.
fn content_hash(text: &str, title: &str, config: &RagConfig, dims: usize) -> String {
    // FNV-1a 128-bit: stable across runs and platforms.
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    let meta = format!(
        "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}",
        title, config.chunk.max_tokens, config.chunk.overlap_tokens, config.embedding_model, dims
    );
    for b in meta.bytes().chain(text.bytes()) {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    format!("{h:032x}")
}

impl Rag {
    /// Retrieval over `db` with `embedder`. On PostgreSQL with pgvector
    /// available (and `use_pgvector`), vector search runs in the database;
    /// otherwise from an in-memory index loaded from the chunk rows.
    pub async fn open(
        db: Db,
        embedder: Arc<dyn EmbeddingModel>,
        config: RagConfig,
    ) -> Result<Self, RagError> {
        if embedder.dimensions() == 0 {
            return Err(RagError::InvalidInput(
                "the embedding model reports 0 dimensions: configure its vector length".into(),
            ));
        }
        let pgvector = if db.backend() == Backend::Postgres && config.use_pgvector {
            let on = db.run(db::enable_pgvector).await?;
            if !on {
                tracing::warn!(
                    "pgvector is not available on this PostgreSQL: vector search falls back to an in-memory index"
                );
            }
            on
        } else {
            false
        };
        let cache = if pgvector {
            None
        } else {
            let index =
                Collections::new(config.index).map_err(|e| RagError::Index(e.to_string()))?;
            Some(Arc::new(VectorCache {
                index: RwLock::new(index),
                known: Mutex::new(HashMap::new()),
                version: Mutex::new(None),
                details: Mutex::new(DetailCache::default()),
            }))
        };
        let rag = Self {
            db,
            embedder,
            config: Arc::new(config),
            cache,
        };
        rag.sync().await?;
        for (name, model, dims) in rag.mismatched_collections().await? {
            tracing::warn!(
                collection = %name,
                stored_model = %model,
                stored_dimensions = dims,
                configured_model = %rag.config.embedding_model,
                configured_dimensions = rag.embedder.dimensions(),
                "collection embedded with another model than the configured one: it is searched by keywords only \
                 (re-ingest it with the configured embedder, e.g. confab-ingest with the same CONFAB_EMBEDDING_* as chat-service)"
            );
        }
        Ok(rag)
    }

    /// Collections (not knowledge bases) whose stored vectors come from
    /// another embedding model or dimension than the configured one:
    /// (name, model, dimensions). Vector search leaves them out.
    pub async fn mismatched_collections(&self) -> Result<Vec<(String, String, i32)>, RagError> {
        let (model, dims) = (
            self.config.embedding_model.clone(),
            self.embedder.dimensions() as i32,
        );
        let all = self.db.run(db::every_collection_model).await?;
        Ok(all
            .into_iter()
            .filter(|c| !c.knowledge_base && (c.model != model || c.dimensions != dims))
            .map(|c| (c.name, c.model, c.dimensions))
            .collect())
    }

    /// Whether vector search runs on pgvector.
    pub fn uses_pgvector(&self) -> bool {
        self.cache.is_none()
    }

    /// The configuration in force.
    pub fn config(&self) -> &RagConfig {
        &self.config
    }

    /// Brings the in-memory index in step with the database (other
    /// processes, such as the ingest command, may have written).
    pub async fn sync(&self) -> Result<(), RagError> {
        let Some(cache) = self.cache.clone() else {
            return Ok(());
        };
        self.db
            .run(move |conn| sync_with(&cache, conn).map(drop))
            .await
    }

    /// Embeds texts in batches.
    pub(crate) async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, RagError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.config.embed_batch.max(1)) {
            let vectors = self.embedder.embed(batch).await?;
            let dims = self.embedder.dimensions();
            if let Some(bad) = vectors.iter().find(|v| v.len() != dims) {
                return Err(RagError::DimensionMismatch {
                    collection: "(embedding model)".into(),
                    expected: dims,
                    got: bad.len(),
                });
            }
            out.extend(vectors);
        }
        Ok(out)
    }

    /// Ingests text given directly (e.g. a lesson) as document `source` of
    /// `collection`. Unchanged text does nothing; changed text replaces the
    /// document's chunks.
    pub async fn ingest_text(
        &self,
        collection: &str,
        source: &str,
        title: &str,
        text: &str,
        kind: DocumentKind,
        metadata: Metadata,
    ) -> Result<IngestOutcome, RagError> {
        check_collection(collection)?;
        if source.trim().is_empty() {
            return Err(RagError::InvalidInput(
                "a document needs a source name".into(),
            ));
        }
        let dims = self.embedder.dimensions();
        let hash = content_hash(text, title, &self.config, dims);
        let (c, s) = (collection.to_owned(), source.to_owned());
        let model_name = self.config.embedding_model.clone();
        let stored = self
            .db
            .run(move |conn| {
                // Refuse a dimension change before spending time on embeddings.
                if let Some(d) = db::collection_dimensions(conn, &c)?
                    && d != dims
                {
                    return Err(RagError::DimensionMismatch {
                        collection: c,
                        expected: d,
                        got: dims,
                    });
                }
                // And another model of the same dimension: its vectors are from another space.
                if let Some(m) = db::every_collection_model(conn)?
                    .into_iter()
                    .find(|m| !m.knowledge_base && m.name == c)
                    .map(|m| m.model)
                    && m != model_name
                {
                    return Err(RagError::ModelMismatch {
                        collection: c,
                        expected: m,
                        got: model_name,
                    });
                }
                db::document_hash(conn, &c, &s)
            })
            .await?;
        if stored.as_deref() == Some(hash.as_str()) {
            return Ok(IngestOutcome::Unchanged);
        }
        let chunks: Vec<Chunk> = extract::chunk_document(kind, text, &self.config.chunk);
        let texts: Vec<String> = chunks
            .iter()
            .map(|c| {
                if c.title.is_empty() {
                    c.text.clone()
                } else {
                    format!("{}\n{}", c.title, c.text)
                }
            })
            .collect();
        let vectors = self.embed(&texts).await?;
        let now = Utc::now().naive_utc();
        let doc = DocumentRow {
            id: uuid_v7(),
            collection: collection.to_owned(),
            source: source.to_owned(),
            title: if title.trim().is_empty() {
                source.to_owned()
            } else {
                title.trim().to_owned()
            },
            content_hash: hash,
            chunk_count: chunks.len() as i64,
            metadata: serde_json::to_string(&metadata).unwrap_or_else(|_| "{}".into()),
            created_at: now,
            updated_at: now,
        };
        let rows: Vec<NewChunkRow> = chunks
            .iter()
            .zip(&vectors)
            .map(|(c, v)| NewChunkRow {
                document_id: doc.id.clone(),
                collection: collection.to_owned(),
                chunk_index: c.index as i32,
                title: c.title.clone(),
                content: c.text.clone(),
                dimensions: dims as i32,
                embedding: db::encode_vector(v),
                page: None,
            })
            .collect();
        let n = rows.len();
        let pgvector = self.uses_pgvector();
        let model = self.config.embedding_model.clone();
        let existed = self
            .db
            .run(move |conn| {
                if db::ensure_collection(conn, &doc.collection, dims, &model, now)? && pgvector {
                    db::pgvector_index(conn, dims)?;
                }
                db::replace_document(conn, &doc, &rows, &vectors, pgvector)
            })
            .await?;
        Ok(if existed {
            IngestOutcome::Replaced(n)
        } else {
            IngestOutcome::Added(n)
        })
    }

    /// Removes a document and its chunks; whether it existed.
    pub async fn delete_document(&self, collection: &str, source: &str) -> Result<bool, RagError> {
        let (c, s) = (collection.to_owned(), source.to_owned());
        self.db
            .run(move |conn| db::delete_document(conn, &c, &s))
            .await
    }

    /// Ingests a file, or every supported file under a folder, into
    /// `collection`. In a folder, documents whose files are gone are removed.
    /// Binary and unsupported files are skipped with a reason.
    pub async fn ingest_path(
        &self,
        path: &Path,
        collection: &str,
        progress: &(dyn Fn(Progress<'_>) + Send + Sync),
    ) -> Result<IngestSummary, RagError> {
        check_collection(collection)?;
        let started = Instant::now();
        let meta = std::fs::metadata(path).map_err(|source| RagError::Io {
            path: path.to_owned(),
            source,
        })?;
        let files = if meta.is_dir() {
            walk(path)?
        } else {
            vec![path.to_owned()]
        };
        progress(Progress::Found(files.len()));
        let mut summary = IngestSummary {
            files: files.len(),
            ..IngestSummary::default()
        };
        let mut seen = HashSet::new();
        for file in &files {
            let name = file.to_string_lossy().into_owned();
            seen.insert(name.clone());
            let outcome = match std::fs::read(file) {
                Err(e) => IngestOutcome::Skipped(format!("unreadable: {e}")),
                Ok(bytes) => match extract::extract_bytes(&name, &bytes) {
                    Err(skip) => IngestOutcome::Skipped(skip.to_string()),
                    Ok(doc) => {
                        let title = doc.title.clone().unwrap_or_else(|| file_stem(file));
                        let mut md = Metadata::new();
                        md.insert("path".into(), json!(name));
                        self.ingest_text(collection, &name, &title, &doc.text, doc.kind, md)
                            .await?
                    }
                },
            };
            match &outcome {
                IngestOutcome::Unchanged => summary.unchanged += 1,
                IngestOutcome::Added(n) => {
                    summary.added += 1;
                    summary.chunks += n;
                }
                IngestOutcome::Replaced(n) => {
                    summary.replaced += 1;
                    summary.chunks += n;
                }
                IngestOutcome::Skipped(why) => {
                    tracing::info!(file = %name, reason = %why, "skipped");
                    summary.skipped.push((name.clone(), why.clone()));
                }
            }
            progress(Progress::File {
                path: &name,
                outcome: &outcome,
            });
        }
        if meta.is_dir() {
            let prefix = {
                let p = path.to_string_lossy().into_owned();
                if p.ends_with('/') { p } else { format!("{p}/") }
            };
            let c = collection.to_owned();
            let stored = self
                .db
                .run(move |conn| db::sources_under(conn, &c, &prefix))
                .await?;
            for source in stored.into_iter().filter(|s| !seen.contains(s)) {
                if self.delete_document(collection, &source).await? {
                    summary.removed += 1;
                }
            }
        }
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// Sources of the documents stored in `collection` that start with
    /// `prefix` (`""` for all).
    pub async fn sources(&self, collection: &str, prefix: &str) -> Result<Vec<String>, RagError> {
        check_collection(collection)?;
        let (c, p) = (collection.to_owned(), prefix.to_owned());
        self.db
            .run(move |conn| db::sources_under(conn, &c, &p))
            .await
    }

    /// The best passages for `query` as sources, best first, scores in 0..=1.
    ///
    /// Without a collection, every collection but the knowledge bases
    /// (`kb:...`) is searched: a knowledge base is only searched by name
    /// ([`Rag::search_scoped`]), after its reader was checked.
    pub async fn search(
        &self,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Vec<SourceInfo>, RagError> {
        if let Some(c) = &options.collection {
            check_collection(c)?;
        }
        let scope = options.collection.clone().map(|c| vec![c]);
        let keyword_scope = match options.mode {
            SearchMode::Vector => None,
            SearchMode::Hybrid | SearchMode::Keyword => Some(scope.clone()),
        };
        // Keyword search alone compares no vectors: no models to check.
        let models = options.mode != SearchMode::Keyword;
        let Some(found) = self
            .gather(query, keyword_scope, models, options.top_k)
            .await?
        else {
            return Ok(Vec::new());
        };
        // Never compare the query with vectors of another model (knowledge
        // bases included, when one is named).
        let (model, dims) = (
            self.config.embedding_model.as_str(),
            self.embedder.dimensions() as i32,
        );
        let mismatched: Vec<&str> = found
            .models
            .iter()
            .filter(|m| m.model != model || m.dimensions != dims)
            .map(|m| m.name.as_str())
            .collect();
        let vector_scope = match &scope {
            _ if mismatched.is_empty() => Some(scope.clone()),
            Some(list) if list.iter().any(|c| mismatched.contains(&c.as_str())) => None,
            Some(_) => Some(scope.clone()),
            None => Some(Some(
                found
                    .models
                    .iter()
                    .filter(|m| !m.knowledge_base && !mismatched.contains(&m.name.as_str()))
                    .map(|m| m.name.clone())
                    .collect(),
            )),
        };
        let vector_scope = match options.mode {
            SearchMode::Hybrid | SearchMode::Vector => vector_scope,
            SearchMode::Keyword => None,
        };
        self.rank(query, vector_scope, found, options.top_k).await
    }

    /// Searches exactly these collections: vector search in `vector` (those
    /// whose stored vectors come from this embedder), keyword search in
    /// `keyword` (all of them). Nothing is searched when both are empty.
    pub async fn search_scoped(
        &self,
        query: &str,
        vector: &[String],
        keyword: &[String],
        top_k: usize,
    ) -> Result<Vec<SourceInfo>, RagError> {
        for c in vector.iter().chain(keyword) {
            check_collection(c)?;
        }
        let keyword_scope = (!keyword.is_empty()).then(|| Some(keyword.to_vec()));
        let vector_scope = (!vector.is_empty()).then(|| Some(vector.to_vec()));
        if keyword_scope.is_none() && vector_scope.is_none() {
            return Ok(Vec::new());
        }
        let Some(found) = self.gather(query, keyword_scope, false, top_k).await? else {
            return Ok(Vec::new());
        };
        self.rank(query, vector_scope, found, top_k).await
    }

    /// The one trip to the database a search starts with: the in-memory
    /// index brought in step, the keyword hits in `keyword` (`None`: no
    /// keyword search; `Some(None)`: every collection but knowledge bases)
    /// and, with `models`, every collection's model. `None` for an empty
    /// query.
    async fn gather(
        &self,
        query: &str,
        keyword: Option<Option<Vec<String>>>,
        models: bool,
        top_k: usize,
    ) -> Result<Option<Gathered>, RagError> {
        if query.trim().is_empty() {
            return Ok(None);
        }
        let terms = keyword_terms(query.trim());
        let n = self.candidates(top_k);
        let cache = self.cache.clone();
        let found = self
            .db
            .run(move |conn| gather_with(conn, cache.as_deref(), &terms, keyword, models, n))
            .await?;
        Ok(Some(found))
    }

    /// How many candidates each search method offers to fusion.
    fn candidates(&self, top_k: usize) -> usize {
        self.config.candidates.max(top_k.clamp(1, 100) * 2)
    }

    /// The best `top_k` sources: vector hits in `vector_scope` (`None`: no
    /// vector search; `Some(None)`: every collection but knowledge bases)
    /// fused with the gathered keyword hits.
    async fn rank(
        &self,
        query: &str,
        vector_scope: Option<Option<Vec<String>>>,
        found: Gathered,
        top_k: usize,
    ) -> Result<Vec<SourceInfo>, RagError> {
        let k = top_k.clamp(1, 100);
        let n = self.candidates(top_k);
        let query = query.trim();
        let mode = match (vector_scope.is_some(), found.keyword.is_some()) {
            (true, true) => SearchMode::Hybrid,
            (true, false) => SearchMode::Vector,
            (false, true) => SearchMode::Keyword,
            (false, false) => return Ok(Vec::new()),
        };
        let vector_hits = match vector_scope {
            Some(scope) => self.vector_candidates(query, scope.as_deref(), n).await?,
            None => Vec::new(),
        };
        let keyword_hits = found.keyword.unwrap_or_default();
        let fused = fuse(&vector_hits, &keyword_hits, self.config.rrf_k, mode);
        let wanted: Vec<i64> = fused.iter().take(k * 3).map(|(id, _)| *id).collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let details = self.details(found.version, wanted).await?;
        let by_id: HashMap<i64, ChunkDetail> = details.into_iter().map(|d| (d.seq, d)).collect();
        let mut out: Vec<SourceInfo> = Vec::with_capacity(k);
        let mut taken: Vec<&ChunkDetail> = Vec::new();
        for (id, score) in fused {
            let Some(d) = by_id.get(&id) else { continue };
            // Neighbouring chunks of one section overlap: keep the better
            // one. Chunks of two sections (another heading path) share no
            // text, so both stay.
            if taken.iter().any(|t| {
                t.document_id == d.document_id
                    && t.chunk_title == d.chunk_title
                    && (t.chunk_index - d.chunk_index).abs() <= 1
            }) {
                continue;
            }
            taken.push(d);
            out.push(source_info(d, score));
            if out.len() == k {
                break;
            }
        }
        Ok(out)
    }

    /// The chunks `ids` with their documents: from the detail cache when
    /// they were read at `version`, the rest from the database.
    async fn details(
        &self,
        version: Option<i64>,
        ids: Vec<i64>,
    ) -> Result<Vec<ChunkDetail>, RagError> {
        let (Some(cache), Some(version)) = (&self.cache, version) else {
            return self.db.run(move |conn| db::chunk_details(conn, &ids)).await;
        };
        let (mut found, missing) = cache
            .details
            .lock()
            .map_err(|_| RagError::Index("lock poisoned".into()))?
            .get(version, &ids);
        if missing.is_empty() {
            return Ok(found);
        }
        // Cached under the version they were read at, when no write came
        // in between (every chunk or document write bumps the version).
        let (read_at, read) = self
            .db
            .run(move |conn| {
                let before = db::version(conn)?;
                let read = db::chunk_details(conn, &missing)?;
                let unchanged = db::version(conn)? == before;
                Ok::<_, RagError>((unchanged.then_some(before), read))
            })
            .await?;
        if let Some(at) = read_at {
            cache
                .details
                .lock()
                .map_err(|_| RagError::Index("lock poisoned".into()))?
                .put(at, &read);
        }
        found.extend(read);
        Ok(found)
    }

    /// Vector hits in `collections` (`None`: every collection but knowledge
    /// bases). The in-memory index was brought in step by [`Rag::gather`].
    async fn vector_candidates(
        &self,
        query: &str,
        collections: Option<&[String]>,
        n: usize,
    ) -> Result<Vec<(i64, f64)>, RagError> {
        if collections.is_some_and(<[String]>::is_empty) {
            return Ok(Vec::new());
        }
        let vectors = self.embed(&[query.to_owned()]).await?;
        let Some(q) = vectors.into_iter().next() else {
            return Ok(Vec::new());
        };
        let c = collections.map(<[String]>::to_vec);
        match &self.cache {
            None => {
                self.db
                    .run(move |conn| db::pgvector_search(conn, &q, c.as_deref(), n))
                    .await
            }
            Some(cache) => {
                let index = cache
                    .index
                    .read()
                    .map_err(|_| RagError::Index("lock poisoned".into()))?;
                let mut hits: Vec<(i64, f32)> = match &c {
                    None => index
                        .search_where(&q, n, &|name| !name.starts_with(KB_PREFIX))
                        .map_err(|e| RagError::Index(e.to_string()))?,
                    Some(list) => {
                        let mut all = Vec::new();
                        for name in list {
                            match index.search(&q, n, Some(name)) {
                                Ok(h) => all.extend(h),
                                // A base whose vectors are of another length: no vector hits from it.
                                Err(crate::index::IndexError::CollectionDimensionMismatch {
                                    ..
                                }) => {}
                                Err(e) => return Err(RagError::Index(e.to_string())),
                            }
                        }
                        all
                    }
                };
                hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                hits.truncate(n);
                Ok(hits.into_iter().map(|(id, s)| (id, f64::from(s))).collect())
            }
        }
    }
}

/// The reads of [`Rag::gather`] on one connection.
fn gather_with(
    conn: &mut DbConnection,
    cache: Option<&VectorCache>,
    terms: &[QueryTerm],
    keyword: Option<Option<Vec<String>>>,
    models: bool,
    n: usize,
) -> Result<Gathered, RagError> {
    let version = match cache {
        Some(cache) => Some(sync_with(cache, conn)?),
        None => None,
    };
    let keyword = match keyword {
        Some(scope) => Some(db::keyword_search(conn, terms, scope.as_deref(), n)?),
        None => None,
    };
    let models = if models {
        db::every_collection_model(conn)?
    } else {
        Vec::new()
    };
    // The hits are of `version` only if no write came in between (every
    // chunk or document write bumps it); otherwise the details cache is
    // not used for them.
    let version = match version {
        Some(v) if db::version(conn)? == v => Some(v),
        _ => None,
    };
    Ok(Gathered {
        version,
        keyword,
        models,
    })
}

/// Brings `cache` in step with the database on `conn`; the version it now reflects.
fn sync_with(cache: &VectorCache, conn: &mut DbConnection) -> Result<i64, RagError> {
    let version = db::version(conn)?;
    let mut seen = cache
        .version
        .lock()
        .map_err(|_| RagError::Index("lock poisoned".into()))?;
    if *seen == Some(version) {
        return Ok(version);
    }
    let ids = db::chunk_ids(conn)?;
    let mut known = cache
        .known
        .lock()
        .map_err(|_| RagError::Index("lock poisoned".into()))?;
    let present: HashMap<i64, (String, u64)> = ids
        .into_iter()
        .map(|(id, collection, document)| (id, (collection, document_key(&document))))
        .collect();
    // Gone, or the id now belongs to another row (reused id).
    let gone: Vec<i64> = known
        .iter()
        .filter(|(id, was)| present.get(id) != Some(*was))
        .map(|(id, _)| *id)
        .collect();
    for id in &gone {
        known.remove(id);
    }
    let new: Vec<i64> = present
        .keys()
        .filter(|id| !known.contains_key(id))
        .copied()
        .collect();
    let vectors = db::chunk_vectors(conn, &new)?;
    let mut index = cache
        .index
        .write()
        .map_err(|_| RagError::Index("lock poisoned".into()))?;
    for id in &gone {
        index.remove(*id);
    }
    // Bulk-load per collection: the HNSW graph is built once, in parallel.
    let mut by_collection: HashMap<String, Vec<(i64, Vec<f32>)>> = HashMap::new();
    for (id, collection, vector) in vectors {
        // A chunk without words embeds to zero (or a provider sent junk):
        // it can never be a nearest neighbour, so it stays out of the index.
        if vector.iter().all(|x| *x == 0.0) || vector.iter().any(|x| !x.is_finite()) {
            tracing::debug!(
                id,
                "chunk vector left out of the index (zero or not finite)"
            );
            if let Some(key) = present.get(&id) {
                known.insert(id, key.clone());
            }
            continue;
        }
        by_collection
            .entry(collection)
            .or_default()
            .push((id, vector));
    }
    for (collection, items) in by_collection {
        let Some(dims) = items.first().map(|(_, v)| v.len()) else {
            continue;
        };
        let ids: Vec<i64> = items.iter().map(|(id, _)| *id).collect();
        // A collection re-embedded with another model: its old (now empty) index goes.
        if index
            .get(&collection)
            .is_some_and(|i| i.dimensions() != dims && i.is_empty())
        {
            index.remove_collection(&collection);
        }
        index
            .extend(&collection, dims, items)
            .map_err(|e| RagError::Index(e.to_string()))?;
        for id in ids {
            if let Some(key) = present.get(&id) {
                known.insert(id, key.clone());
            }
        }
    }
    *seen = Some(version);
    Ok(version)
}

/// A compact key of a document id, for [`VectorCache::known`].
fn document_key(document_id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    document_id.hash(&mut h);
    h.finish()
}

fn file_stem(p: &Path) -> String {
    p.file_stem().map_or_else(
        || p.to_string_lossy().into_owned(),
        |s| s.to_string_lossy().into_owned(),
    )
}

fn uuid_v7() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Files under `root`, sorted, skipping hidden entries and not following symlinks.
fn walk(root: &Path) -> Result<Vec<PathBuf>, RagError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| RagError::Io {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| RagError::Io {
                path: dir.clone(),
                source,
            })?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry.file_type().map_err(|source| RagError::Io {
                path: entry.path(),
                source,
            })?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Common words that carry no topic (English and Russian), left out of keyword queries.
const STOP_WORDS: &[&str] = &[
    "a", "about", "an", "and", "are", "as", "at", "be", "can", "do", "does", "for", "from", "how",
    "i", "in", "is", "it", "my", "of", "on", "or", "that", "the", "this", "to", "what", "when",
    "where", "which", "who", "why", "with", "you", "your", "и", "в", "во", "на", "с", "со", "что",
    "как", "это", "по", "к", "у", "о", "из", "за", "для", "ли", "же", "а", "но", "не", "то", "мне",
    "я",
];

fn keyword_tokens(query: &str) -> Vec<String> {
    let tokens = search_tokens(query);
    let content: Vec<String> = tokens
        .iter()
        .filter(|t| !STOP_WORDS.contains(&t.as_str()))
        .cloned()
        .collect();
    if content.is_empty() { tokens } else { content }
}

/// Shortest stem searched as a prefix: shorter ones match too many words.
const MIN_PREFIX_CHARS: usize = 4;

/// The keyword query of `query`: each content word, and its Snowball stem
/// (English for Latin words, Russian for Cyrillic ones) as a prefix, so
/// that "mutably" finds "mutable" and "borrow" finds "borrowed" with an
/// index that does no stemming of its own (SQLite `unicode61`, PostgreSQL
/// `simple`: both language-neutral). The exact word is kept when the
/// prefix does not cover it (`happi*` misses `happy`).
fn keyword_terms(query: &str) -> Vec<QueryTerm> {
    let english = Stemmer::create(Algorithm::English);
    let russian = Stemmer::create(Algorithm::Russian);
    let mut terms: Vec<QueryTerm> = Vec::new();
    for token in keyword_tokens(query) {
        let stemmer = if token.chars().all(|c| c.is_ascii_alphabetic()) {
            Some(&english)
        } else if token.chars().all(|c| matches!(c, 'а'..='я' | 'ё')) {
            Some(&russian)
        } else {
            None
        };
        let stem = stemmer
            .map(|s| s.stem(&token).into_owned())
            .filter(|stem| stem.chars().count() >= MIN_PREFIX_CHARS);
        let mut push = |text: String, prefix: bool| {
            let term = QueryTerm { text, prefix };
            if !terms.contains(&term) {
                terms.push(term);
            }
        };
        match stem {
            Some(stem) if token.starts_with(&stem) => push(stem, true),
            Some(stem) => {
                push(token, false);
                push(stem, true);
            }
            None => push(token, false),
        }
    }
    terms
}

/// Reciprocal rank fusion of the two ranked lists, normalised so a chunk
/// first in every list used scores 1.0.
fn fuse(
    vector: &[(i64, f64)],
    keyword: &[(i64, f64)],
    k: f64,
    mode: SearchMode,
) -> Vec<(i64, f64)> {
    let lists: Vec<&[(i64, f64)]> = match mode {
        SearchMode::Hybrid => vec![vector, keyword],
        SearchMode::Vector => vec![vector],
        SearchMode::Keyword => vec![keyword],
    };
    let max = lists.len() as f64 / (k + 1.0);
    let mut scores: HashMap<i64, f64> = HashMap::new();
    for list in lists {
        for (rank, (id, _)) in list.iter().enumerate() {
            *scores.entry(*id).or_default() += 1.0 / (k + rank as f64 + 1.0);
        }
    }
    let mut out: Vec<(i64, f64)> = scores
        .into_iter()
        .map(|(id, s)| (id, (s / max).clamp(0.0, 1.0)))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// Collections of knowledge bases are named `kb:<id>`.
pub(crate) const KB_PREFIX: &str = "kb:";

fn source_info(d: &ChunkDetail, score: f64) -> SourceInfo {
    let mut metadata = Metadata::new();
    metadata.insert("chunk_index".into(), json!(d.chunk_index));
    if let Some(page) = d.page {
        metadata.insert("page".into(), json!(page));
    }
    if !d.chunk_title.is_empty() {
        metadata.insert("heading".into(), json!(d.chunk_title));
    }
    metadata.insert(
        "title".into(),
        json!(if d.chunk_title.is_empty() {
            d.document_title.clone()
        } else {
            d.chunk_title.clone()
        }),
    );
    metadata.insert("document_id".into(), json!(d.document_id));
    metadata.insert("document_title".into(), json!(d.document_title));
    metadata.insert("collection".into(), json!(d.collection));
    if let Ok(serde_json::Value::Object(extra)) =
        serde_json::from_str::<serde_json::Value>(&d.metadata)
    {
        for (k, v) in extra {
            metadata.entry(k).or_insert(v);
        }
    }
    SourceInfo {
        file_path: d.source.clone(),
        content: d.content.clone(),
        score,
        metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(seq: i64, content: &str) -> ChunkDetail {
        ChunkDetail {
            seq,
            chunk_index: 0,
            chunk_title: String::new(),
            content: content.into(),
            collection: "c".into(),
            document_id: "d".into(),
            source: "s".into(),
            document_title: String::new(),
            metadata: "{}".into(),
            page: None,
        }
    }

    /// Details are only ever served for the version they were read at.
    #[test]
    fn detail_cache_is_per_version() {
        let mut cache = DetailCache::default();
        cache.put(3, &[detail(1, "one"), detail(2, "two")]);
        let (found, missing) = cache.get(3, &[1, 2, 5]);
        assert_eq!(
            found.iter().map(|d| d.content.as_str()).collect::<Vec<_>>(),
            ["one", "two"]
        );
        assert_eq!(missing, [5]);
        // Another version: nothing is served.
        let (found, missing) = cache.get(4, &[1, 2]);
        assert!(found.is_empty());
        assert_eq!(missing, [1, 2]);
        // A read of an older version is not kept over a newer one.
        cache.put(4, &[detail(1, "one, rewritten")]);
        cache.put(3, &[detail(2, "two, stale")]);
        let (found, missing) = cache.get(4, &[1, 2]);
        assert_eq!(found[0].content, "one, rewritten");
        assert_eq!(missing, [2]);
        // Full: emptied, not grown.
        let many: Vec<ChunkDetail> = (10..10 + DETAIL_CACHE_ENTRIES as i64)
            .map(|i| detail(i, "x"))
            .collect();
        cache.put(4, &many);
        assert_eq!(cache.by_id.len(), DETAIL_CACHE_ENTRIES);
        assert_eq!(cache.get(4, &[1]).1, [1]);
    }

    #[test]
    fn fusion_normalises_and_orders() {
        let v = [(1, 0.9), (2, 0.8), (3, 0.7)];
        let kw = [(2, 5.0), (4, 4.0)];
        let f = fuse(&v, &kw, 60.0, SearchMode::Hybrid);
        assert_eq!(f[0].0, 2, "in both lists");
        assert!(f.iter().all(|(_, s)| (0.0..=1.0).contains(s)));
        let only = fuse(&v, &kw, 60.0, SearchMode::Vector);
        assert_eq!(only[0], (1, 1.0));
        assert_eq!(only.len(), 3);
    }

    #[test]
    fn hashes_are_stable_and_sensitive() {
        let c = RagConfig::default();
        let a = content_hash("text", "t", &c, 384);
        assert_eq!(a, content_hash("text", "t", &c, 384));
        assert_ne!(a, content_hash("text!", "t", &c, 384));
        assert_ne!(a, content_hash("text", "t", &c, 768));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn keyword_tokens_drop_stop_words() {
        assert_eq!(
            keyword_tokens("How does the TCP handshake work?"),
            ["tcp", "handshake", "work"]
        );
        assert_eq!(keyword_tokens("what is it"), ["what", "is", "it"]);
    }

    #[test]
    fn keyword_terms_add_stems_as_prefixes() {
        let term = |text: &str, prefix| QueryTerm {
            text: text.into(),
            prefix,
        };
        assert_eq!(
            keyword_terms("How do I borrow a value mutably?"),
            [
                term("borrow", true),
                term("valu", true),
                term("mutabl", true)
            ]
        );
        // Short stems, digits and other scripts stay exact words.
        assert_eq!(
            keyword_terms("tcp e0382 東京"),
            [
                term("tcp", false),
                term("e0382", false),
                term("東京", false)
            ]
        );
        assert_eq!(
            keyword_terms("владение ссылками"),
            [term("владен", true), term("ссылк", true)]
        );
        // A stem that is not a prefix of its word keeps the word.
        assert_eq!(
            keyword_terms("happy"),
            [term("happy", false), term("happi", true)]
        );
    }
}
