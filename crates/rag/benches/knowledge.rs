//! Knowledge-base benchmark (issue 15): ingestion throughput and scoped
//! retrieval at scale, through [`KnowledgeService`] (the code behind the
//! `/api/knowledge` routes: upload, durable job, extract, chunk, embed, write).
//!
//! `make bench-knowledge` (scripts/bench-knowledge.sh) makes the mixed
//! corpus and runs this; by hand: `cargo bench -p confab-rag --bench knowledge`.
//!
//! 1. **Ingestion** of the mixed corpus in `CONFAB_BENCH_CORPUS` (Markdown,
//!    PDF, HTML, DOCX and text, >= 50 MB: scripts/make-bench-corpus.py),
//!    uploaded 20 files per request into one base and drained by 2 workers,
//!    on a temporary SQLite file, with the built-in embedder; then, when
//!    `models/all-MiniLM-L6-v2` is there, the first `CONFAB_BENCH_LOCAL_MB`
//!    (3) megabytes of it with both embedders (the local model embeds ~100x
//!    slower: the whole corpus would take hours). Printed: MB/s, chunks/s,
//!    and the share of worker time per stage (extract, chunk, embed, write).
//! 2. **Retrieval** scoped to one base among `CONFAB_BENCH_BASES` (1,000)
//!    bases of `CONFAB_BENCH_CHUNKS` (1,000) chunks each. The measured base
//!    holds the retrieval fixtures (tests/fixtures/corpus, 36 files, through
//!    `upload`); its English questions (tests/fixtures/questions.json) are
//!    asked first with that base alone in the database (the baseline), then
//!    again after the other bases are added. The other bases' text uses the
//!    same vocabulary, so every query word matches chunks in every base: a
//!    search that scanned them all would show it in the ratio. Printed per
//!    backend: p50 / p99 of `search(base, question, 5)`, their ratio to the
//!    baseline, and recall@5 (the expected file among the 5 sources).
//!    SQLite always; PostgreSQL with `TEST_DATABASE_URL`, pgvector with
//!    `TEST_PGVECTOR_URL`.
//!
//! Other settings: `CONFAB_BENCH_SKIP_LOCAL=1` (no local-embedder run),
//! `CONFAB_BENCH_SKIP_INGEST=1`, `CONFAB_BENCH_SKIP_RETRIEVAL=1`,
//! `CONFAB_BENCH_SKIP_SQLITE=1` (retrieval on the PostgreSQL servers only).

#![allow(clippy::unwrap_used, clippy::expect_used)]

// The retrieval questions of the tests (tests/fixtures/questions.json).
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_llm::local::{LocalEmbedConfig, LocalEmbedder};
use confab_llm::{BuiltinProvider, EmbeddingModel};
use confab_models::knowledge::NewKnowledgeBase;
use confab_rag::chunk::ChunkConfig;
use confab_rag::knowledge::{Actor, UploadFile};
use confab_rag::{IngestStages, KnowledgeConfig, KnowledgeService, Rag, RagConfig};
use confab_store::Db;
use confab_testkit::TestDb;
use uuid::Uuid;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Limits far above the corpus: the benchmark measures work, not quotas.
fn roomy() -> KnowledgeConfig {
    KnowledgeConfig {
        max_documents_per_user: 1_000_000,
        max_bytes_per_user: i64::MAX / 2,
        ..KnowledgeConfig::default()
    }
}

async fn service(
    db: &Db,
    embedder: Arc<dyn EmbeddingModel>,
    model: &str,
    chunk: ChunkConfig,
) -> KnowledgeService {
    let config = RagConfig {
        embedding_model: model.to_owned(),
        chunk,
        ..RagConfig::default()
    };
    let rag = Rag::open(db.clone(), embedder, config).await.unwrap();
    KnowledgeService::new(rag, roomy())
}

async fn new_base(k: &KnowledgeService, a: &Actor, name: &str) -> Uuid {
    k.create_base(
        a,
        NewKnowledgeBase {
            name: name.into(),
            shared: false,
        },
    )
    .await
    .unwrap()
    .id
}

/// Runs every queued job with `workers` concurrent workers.
async fn drain(k: &KnowledgeService, workers: usize) {
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let k = k.clone();
        tasks.push(tokio::spawn(async move { k.drain().await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn files_in(dir: &Path) -> Vec<UploadFile> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| UploadFile {
            filename: p.file_name().unwrap().to_string_lossy().into_owned(),
            bytes: std::fs::read(&p).unwrap(),
        })
        .collect()
}

fn share(part: Duration, whole: Duration) -> f64 {
    100.0 * part.as_secs_f64() / whole.as_secs_f64().max(1e-9)
}

/// Ingestion throughput of the corpus with one embedder; (MB/s, chunks/s).
async fn ingest(
    corpus: &[UploadFile],
    embedder: Arc<dyn EmbeddingModel>,
    model: &str,
) -> (f64, f64) {
    let test_db = TestDb::sqlite();
    let k = service(test_db.db(), embedder, model, ChunkConfig::default()).await;
    let a = Actor::new("bench", false);
    let kb = new_base(&k, &a, "corpus").await;
    let started = Instant::now();
    for batch in corpus.chunks(k.config().max_files_per_upload) {
        k.upload(&a, kb, batch.to_vec()).await.unwrap();
    }
    drain(&k, 2).await;
    let wall = started.elapsed();
    let docs = k.list_documents(&a, kb).await.unwrap();
    let failed: Vec<_> = docs
        .iter()
        .filter(|d| d.error.is_some())
        .map(|d| format!("{}: {}", d.filename, d.error.clone().unwrap_or_default()))
        .collect();
    assert!(failed.is_empty(), "failed documents: {failed:#?}");
    let s: IngestStages = k.ingest_stages();
    assert_eq!(s.documents as usize, corpus.len());
    let work = s.extract + s.chunk + s.embed + s.write;
    let mb = s.bytes as f64 / 1e6;
    let (mbps, cps) = (
        mb / wall.as_secs_f64(),
        s.chunks as f64 / wall.as_secs_f64(),
    );
    println!(
        "  {model:<22} {:>4} files {mb:>6.1} MB -> {:>6} chunks in {:>6.1} s: {mbps:>6.3} MB/s, {cps:>7.0} chunks/s \
         | extract {:>4.1}% chunk {:>4.1}% embed {:>4.1}% write {:>4.1}% (of {:.1} s worker time)",
        s.documents,
        s.chunks,
        wall.as_secs_f64(),
        share(s.extract, work),
        share(s.chunk, work),
        share(s.embed, work),
        share(s.write, work),
        work.as_secs_f64(),
    );
    (mbps, cps)
}

/// Words of the fixture corpus, for the other bases' text.
fn vocabulary() -> Vec<String> {
    let mut words = std::collections::BTreeSet::new();
    for f in files_in(&fixtures().join("corpus")) {
        for w in String::from_utf8_lossy(&f.bytes).split(|c: char| !c.is_ascii_alphabetic()) {
            if (3..=14).contains(&w.len()) {
                words.insert(w.to_ascii_lowercase());
            }
        }
    }
    words.into_iter().collect()
}

/// A deterministic xorshift generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Markdown of `paragraphs` paragraphs of 18 words, about one chunk each.
fn noise_document(rng: &mut Rng, words: &[String], paragraphs: usize) -> String {
    let mut out = String::new();
    for p in 0..paragraphs {
        if p % 20 == 0 {
            out.push_str(&format!("## Part {}\n\n", p / 20 + 1));
        }
        for i in 0..18 {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&words[rng.below(words.len())]);
        }
        out.push_str(".\n\n");
    }
    out
}

struct Latency {
    p50: Duration,
    p99: Duration,
    recall5: f64,
}

/// Asks every question (3 rounds) in the base; p50, p99 and recall@5.
async fn ask(k: &KnowledgeService, a: &Actor, kb: Uuid, qs: &[support::Question]) -> Latency {
    let mut times = Vec::with_capacity(qs.len() * 3);
    let mut found = 0;
    for round in 0..3 {
        for q in qs {
            let started = Instant::now();
            let hits = k.search(a, kb, &q.question, 5).await.unwrap();
            times.push(started.elapsed());
            if round == 0 && hits.iter().any(|h| h.file_path == q.expected) {
                found += 1;
            }
        }
    }
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    Latency {
        p50: at(0.50),
        p99: at(0.99),
        recall5: f64::from(found) / qs.len() as f64,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn retrieval(name: &str, db: &Db, bases: usize, chunks: usize) {
    let embedder: Arc<dyn EmbeddingModel> = Arc::new(BuiltinProvider::new());
    let k = service(db, embedder.clone(), "builtin", ChunkConfig::default()).await;
    let owner = Actor::new("reader", false);
    let kb = new_base(&k, &owner, "retrieval fixtures").await;
    for batch in files_in(&fixtures().join("corpus")).chunks(k.config().max_files_per_upload) {
        k.upload(&owner, kb, batch.to_vec()).await.unwrap();
    }
    drain(&k, 2).await;
    let qs = support::english_questions();
    let alone = ask(&k, &owner, kb, &qs).await;

    // The other bases: short chunks (48 tokens) so that a million fit in memory and time.
    let filler = service(db, embedder, "builtin", ChunkConfig::new(48, 4).unwrap()).await;
    let words = vocabulary();
    let mut rng = Rng(0x15_15_15_15);
    let started = Instant::now();
    for b in 0..bases {
        let a = Actor::new(format!("user-{b}"), false);
        let id = new_base(&filler, &a, &format!("base {b}")).await;
        filler
            .add_text(&a, id, "notes", &noise_document(&mut rng, &words, chunks))
            .await
            .unwrap();
        if b % 50 == 49 {
            drain(&filler, 2).await;
        }
    }
    drain(&filler, 2).await;
    let stored = filler.ingest_stages().chunks;
    let fill = started.elapsed();
    // The first search after the fill loads the new vectors into the index.
    let started = Instant::now();
    k.search(&owner, kb, "warm up", 5).await.unwrap();
    let load = started.elapsed();
    let among = ask(&k, &owner, kb, &qs).await;
    println!(
        "  {name:<9} alone: p50 {:>6.2} ms p99 {:>6.2} ms recall@5 {:.3} | among {bases} bases ({stored} chunks, filled in {:.0} s, index load {:.1} s): \
         p50 {:>6.2} ms p99 {:>6.2} ms recall@5 {:.3} | ratio p50 {:.2}x p99 {:.2}x",
        ms(alone.p50),
        ms(alone.p99),
        alone.recall5,
        fill.as_secs_f64(),
        load.as_secs_f64(),
        ms(among.p50),
        ms(among.p99),
        among.recall5,
        among.p50.as_secs_f64() / alone.p50.as_secs_f64(),
        among.p99.as_secs_f64() / alone.p99.as_secs_f64(),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if !flag("CONFAB_BENCH_SKIP_INGEST") {
            let dir = std::env::var_os("CONFAB_BENCH_CORPUS")
                .map(PathBuf::from)
                .expect("CONFAB_BENCH_CORPUS names the corpus folder (make bench-knowledge makes it)");
            let corpus = files_in(&dir);
            let bytes: usize = corpus.iter().map(|f| f.bytes.len()).sum();
            println!(
                "ingestion: {} files, {:.1} MB, one base, 2 workers, SQLite",
                corpus.len(),
                bytes as f64 / 1e6
            );
            ingest(&corpus, Arc::new(BuiltinProvider::new()), "builtin").await;
            let local_dir = if flag("CONFAB_BENCH_SKIP_LOCAL") {
                None
            } else {
                confab_testkit::local_embed_model_dir()
            };
            if let Some(dir) = local_dir {
                // The local model embeds ~100x slower: a prefix of the corpus
                // (every kind of file) keeps the run in minutes.
                let budget = env_usize("CONFAB_BENCH_LOCAL_MB", 3) * 1_000_000;
                let mut taken = 0;
                let prefix: Vec<UploadFile> = corpus
                    .iter()
                    .take_while(|f| {
                        taken += f.bytes.len();
                        taken - f.bytes.len() < budget
                    })
                    .cloned()
                    .collect();
                let local = LocalEmbedder::load(LocalEmbedConfig::new(dir)).unwrap();
                let id = local.model_id().to_owned();
                println!("  (local embedder on the first {} files: CONFAB_BENCH_LOCAL_MB={})", prefix.len(), budget / 1_000_000);
                let b = ingest(&prefix, Arc::new(BuiltinProvider::new()), "builtin (same files)").await;
                let l = ingest(&prefix, Arc::new(local), &id).await;
                println!(
                    "  local / builtin on the same files: {:.3}x MB/s, {:.3}x chunks/s; the whole corpus would take {:.0} min with the local model",
                    l.0 / b.0,
                    l.1 / b.1,
                    bytes as f64 / 1e6 / l.0 / 60.0
                );
            }
        }
        if !flag("CONFAB_BENCH_SKIP_RETRIEVAL") {
            let bases = env_usize("CONFAB_BENCH_BASES", 1_000);
            let chunks = env_usize("CONFAB_BENCH_CHUNKS", 1_000);
            println!(
                "retrieval: one base (36 files) among {bases} bases of ~{chunks} chunks, builtin embedder, k = 5"
            );
            if !flag("CONFAB_BENCH_SKIP_SQLITE") {
                let sqlite = TestDb::sqlite();
                retrieval("sqlite", sqlite.db(), bases, chunks).await;
            }
            if let Some(pg) = TestDb::postgres() {
                retrieval("postgres", pg.db(), bases, chunks).await;
            }
            if let Some(pgv) = TestDb::pgvector() {
                retrieval("pgvector", pgv.db(), bases, chunks).await;
            }
        }
    });
}
