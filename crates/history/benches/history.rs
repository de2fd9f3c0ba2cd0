//! Benchmark of the history services on a realistic dataset.
//!
//! Run with `cargo bench -p confab-history --bench history`. It always runs
//! on a temporary SQLite file, and also on a fresh PostgreSQL database when
//! `TEST_DATABASE_URL` names a server (the database is created and dropped
//! like the test databases of `confab-testkit`).
//!
//! Per backend it
//! 1. loads 50 users x 20 sessions x 100 messages (100,000 messages of
//!    deterministic pseudo-English text) through `HistoryService::import_document`,
//! 2. measures single-writer `HistoryService::save_message` throughput (then,
//!    on PostgreSQL only, runs `VACUUM ANALYZE` as autovacuum soon would),
//! 3. measures per-call latency (median, p99) of `Db::ping` (the in-run
//!    baseline), `SessionService::list_user_sessions`,
//!    `HistoryService::get_session_messages` (newest page and a `before=`
//!    page from the middle) and `HistoryService::search_messages`, with the
//!    calls of one round interleaved so machine noise hits them all alike,
//! 4. prints a table with every latency also as a ratio of the baseline, and
//!    the SQLite targets with PASS/MISS (a miss does not fail the run).
//!
//! Environment:
//! - `CONFAB_BENCH_QUICK=1`: a tenth of the dataset and of the samples (smoke test);
//! - `TEST_DATABASE_URL=postgres://...`: also run on PostgreSQL;
//! - `CONFAB_BENCH_KEEP=1`: keep the databases afterwards and print where they
//!   are (for `EXPLAIN` on the same data).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use confab_history::HistoryConfig;
use confab_models::{
    ChatSession, Message, MessageQuery, MessageRole, Metadata, NewMessage, SessionExport,
    SessionQuery, SessionStatus,
};
use confab_store::diesel::connection::SimpleConnection;
use confab_store::{Backend, Db, StoreError};
use confab_testkit::TestDb;
use serde_json::json;
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Scale
// ---------------------------------------------------------------------------

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Scale {
    users: usize,
    sessions_per_user: usize,
    messages_per_session: usize,
    inserts: usize,
    insert_sessions: usize,
    samples: usize,
    warmup: usize,
}

impl Scale {
    fn full() -> Self {
        Self {
            users: 50,
            sessions_per_user: 20,
            messages_per_session: 100,
            inserts: 5_000,
            insert_sessions: 100,
            samples: 1_000,
            warmup: 100,
        }
    }

    fn quick() -> Self {
        Self {
            users: 5,
            sessions_per_user: 20,
            messages_per_session: 100,
            inserts: 500,
            insert_sessions: 10,
            samples: 100,
            warmup: 10,
        }
    }

    fn sessions(&self) -> usize {
        self.users * self.sessions_per_user
    }

    fn messages(&self) -> usize {
        self.sessions() * self.messages_per_session
    }
}

// SQLite targets.
const TARGET_INSERTS_PER_SEC: f64 = 5_000.0;
const TARGET_PAGE_P99: Duration = Duration::from_millis(5);
const TARGET_SEARCH_P99: Duration = Duration::from_millis(25);

// ---------------------------------------------------------------------------
// Deterministic text
// ---------------------------------------------------------------------------

/// xorshift64* pseudo-random numbers: deterministic, no dependencies.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self((seed ^ 0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is negligible here).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Function words, most frequent first: never used as search terms.
const FUNCTION_WORDS: &str = "\
the to and of a in is that it for you this with on be can as are or your if we an not at \
by from but have will so do what how which when there they more one all about would should \
could then also each some these into than only just like here where why other them";

/// Content words, most frequent first (Zipf-distributed after the function words).
const CONTENT_WORDS: &str = "\
data function example code question answer value model time student course problem result \
error file list number use make work need first second new different important simple step \
method system information change case point way string table class type test output input \
user process variable loop array object return call library project understand explain \
learn idea approach solution check write read run build create define include means known \
called following equation formula graph chapter lecture exam homework assignment grade \
theory practice concept term analysis structure memory performance network server request \
response database query index record field column row key map tree node edge path sort \
search order count sum average probability distribution sample mean median variance matrix \
vector derivative integral limit series proof theorem energy force mass velocity \
acceleration temperature pressure cell protein gene evolution species climate history \
economy market price demand supply policy government language grammar essay paragraph \
argument evidence source citation summary introduction conclusion reference version update \
install package module import export config option setting parameter default feature \
interface instance inheritance recursion iteration pointer compiler runtime thread lock \
queue stack heap cache latency bandwidth protocol packet encryption security password \
token session message chat assistant prompt context feedback review deadline schedule \
meeting group team partner notebook spreadsheet chart plot axis label legend color image \
pixel signal frequency filter noise circuit voltage current resistance battery sensor \
robot motor engine design prototype experiment hypothesis observation measurement accuracy \
precision estimate approximation algorithm complexity optimization gradient training \
validation dataset classifier regression cluster neural layer weight bias activation";

/// Rare words: each appears in well under one percent of messages.
const RARE_WORDS: &str = "\
photosynthesis mitochondria kaleidoscope thermodynamics serendipity archipelago quaternion \
eigenvalue palindrome metamorphosis renaissance constellation hieroglyph isotope labyrinth \
nebula obsidian paradox quasar rhetoric syllogism tectonic ultraviolet vernacular \
watershed xylophone zeitgeist allegory bureaucracy catalyst dialectic entropy fibonacci \
geothermal hydraulic impedance juxtaposition kinematics lithium monsoon";

/// The vocabulary, split into words once.
struct Vocab {
    /// Function words then content words, in Zipf rank order.
    ranked: Vec<&'static str>,
    /// Content words in rank order.
    content: Vec<&'static str>,
    rare: Vec<&'static str>,
}

static VOCAB: LazyLock<Vocab> = LazyLock::new(|| {
    let function: Vec<&'static str> = FUNCTION_WORDS.split_whitespace().collect();
    let content: Vec<&'static str> = CONTENT_WORDS.split_whitespace().collect();
    let rare: Vec<&'static str> = RARE_WORDS.split_whitespace().collect();
    let mut ranked = function;
    ranked.extend_from_slice(&content);
    for (i, w) in ranked.iter().chain(&rare).enumerate() {
        assert!(
            !ranked.iter().chain(&rare).skip(i + 1).any(|x| x == w),
            "`{w}` is listed twice in the vocabulary"
        );
    }
    Vocab {
        ranked,
        content,
        rare,
    }
});

/// Probability that a word slot holds a rare word.
const RARE_SLOT: f64 = 0.002;

/// Pseudo-English text over the vocabulary, deterministic per seed.
struct TextGen {
    rng: Rng,
    vocab: &'static Vocab,
    /// Cumulative Zipf weights of `vocab.ranked`.
    cdf: Vec<f64>,
}

impl TextGen {
    fn new(seed: u64) -> Self {
        let vocab: &'static Vocab = &VOCAB;
        let mut cdf = Vec::with_capacity(vocab.ranked.len());
        let mut total = 0.0;
        for rank in 1..=vocab.ranked.len() {
            total += 1.0 / (rank as f64).powf(1.05);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Self {
            rng: Rng::new(seed),
            vocab,
            cdf,
        }
    }

    fn word(&mut self) -> &'static str {
        if self.rng.chance(RARE_SLOT) {
            return self.rng.pick(&self.vocab.rare);
        }
        let u = self.rng.unit();
        let i = self
            .cdf
            .partition_point(|&c| c < u)
            .min(self.vocab.ranked.len() - 1);
        self.vocab.ranked[i]
    }

    /// Sentences of 4-18 words until about `min..=max` characters.
    fn text(&mut self, min: usize, max: usize, paragraphs: bool) -> String {
        let target = self.rng.between(min, max);
        let mut s = String::with_capacity(target + 24);
        while s.len() < target {
            if !s.is_empty() {
                s.push_str(if paragraphs && self.rng.chance(0.15) {
                    "\n\n"
                } else {
                    " "
                });
            }
            let n = self.rng.between(4, 18);
            for i in 0..n {
                let w = self.word();
                if i == 0 {
                    let mut c = w.chars();
                    if let Some(f) = c.next() {
                        s.push(f.to_ascii_uppercase());
                        s.push_str(c.as_str());
                    }
                } else {
                    s.push(' ');
                    s.push_str(w);
                }
                if i + 1 < n && self.rng.chance(0.07) {
                    s.push(',');
                }
            }
            s.push(match self.rng.below(10) {
                0 => '?',
                1 => '!',
                _ => '.',
            });
        }
        if s.len() > max {
            // Cut at a word boundary (the text is ASCII) and end the sentence.
            let cut = s[..max - 1].rfind(' ').unwrap_or(max - 1);
            s.truncate(cut);
            s.push('.');
        }
        s
    }

    fn title(&mut self) -> String {
        let n = self.rng.between(2, 6);
        let mut t = String::new();
        for i in 0..n {
            let w = if self.rng.chance(0.6) {
                // Titles lean on content words.
                self.rng.pick(&self.vocab.content[..120])
            } else {
                self.word()
            };
            if i > 0 {
                t.push(' ');
            }
            let mut c = w.chars();
            if let Some(f) = c.next() {
                t.push(f.to_ascii_uppercase());
                t.push_str(c.as_str());
            }
        }
        t
    }
}

fn user_id(u: usize) -> String {
    format!("bench-user-{u:03}")
}

const MODELS: &[&str] = &["gpt-4o-mini", "claude-3-haiku", "llama-3.1-8b"];

/// The dataset as session exports, in memory.
fn build_dataset(scale: Scale) -> (Vec<(String, SessionExport)>, usize) {
    let mut text = TextGen::new(42);
    let base: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut docs = Vec::with_capacity(scale.sessions());
    let mut bytes = 0;
    let mut next_id: u128 = 1;
    for s in 0..scale.sessions() {
        // Sessions are spread over users round-robin.
        let user = user_id(s % scale.users);
        let session_id = Uuid::from_u128(next_id);
        next_id += 1;
        let created_at = base + chrono::Duration::minutes(97 * s as i64);
        let course = text.rng.chance(0.3);
        let model = text.rng.pick(MODELS);
        let mut metadata = Metadata::new();
        metadata.insert("client".into(), json!("web"));
        let mut at = created_at;
        let mut messages = Vec::with_capacity(scale.messages_per_session);
        for i in 0..scale.messages_per_session {
            at += chrono::Duration::seconds(text.rng.between(5, 600) as i64);
            let assistant = i % 2 == 1;
            let content = if assistant {
                text.text(200, 2_000, true)
            } else {
                text.text(20, 300, false)
            };
            bytes += content.len();
            let mut md = Metadata::new();
            if assistant {
                md.insert("finish_reason".into(), json!("stop"));
            }
            messages.push(Message {
                id: Uuid::from_u128(next_id),
                session_id,
                role: if assistant {
                    MessageRole::Assistant
                } else {
                    MessageRole::User
                },
                tokens_used: assistant.then_some((content.len() / 4) as i64),
                response_time: assistant.then(|| 0.3 + text.rng.unit() * 6.0),
                model_id: assistant.then(|| model.to_owned()),
                content,
                timestamp: at,
                metadata: md,
            });
            next_id += 1;
        }
        let session = ChatSession {
            id: session_id,
            title: text.title(),
            model_id: model.to_owned(),
            user_id: user.clone(),
            agent: if course { "course" } else { "dashboard" }.to_owned(),
            course_id: course.then(|| format!("CS{}", 100 + text.rng.below(5))),
            status: SessionStatus::Active,
            created_at,
            updated_at: at,
            message_count: messages.len() as i64,
            metadata,
        };
        docs.push((
            user,
            SessionExport {
                format: SessionExport::FORMAT.to_owned(),
                exported_at: at,
                session,
                messages,
            },
        ));
    }
    (docs, bytes)
}

// ---------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------

/// Per-call latencies of one operation.
struct Op {
    name: String,
    samples: Vec<Duration>,
    rows: u64,
    target: Option<Duration>,
}

impl Op {
    fn new(name: &str, target: Option<Duration>) -> Self {
        Self {
            name: name.to_owned(),
            samples: Vec::new(),
            rows: 0,
            target,
        }
    }

    fn record(&mut self, d: Duration, rows: usize) {
        self.samples.push(d);
        self.rows += rows as u64;
    }

    fn merged(name: &str, ops: &[&Op], target: Option<Duration>) -> Self {
        let mut m = Self::new(name, target);
        for op in ops {
            m.samples.extend_from_slice(&op.samples);
            m.rows += op.rows;
        }
        m
    }

    fn stats(&self) -> Stats {
        let mut v = self.samples.clone();
        v.sort_unstable();
        Stats {
            n: v.len(),
            median: percentile(&v, 0.50),
            p99: percentile(&v, 0.99),
            mean_rows: self.rows as f64 / v.len().max(1) as f64,
        }
    }
}

struct Stats {
    n: usize,
    median: Duration,
    p99: Duration,
    mean_rows: f64,
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn ratio(d: Duration, base: Duration) -> String {
    if base.is_zero() {
        return "-".into();
    }
    format!("{:.1}x", d.as_secs_f64() / base.as_secs_f64())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

/// Times one awaited call.
macro_rules! timed {
    ($e:expr) => {{
        let start = Instant::now();
        let out = $e.await;
        (start.elapsed(), out)
    }};
}

/// What a run found, for the report.
struct Report {
    backend: &'static str,
    scale: Scale,
    text_bytes: usize,
    gen_time: Duration,
    load_time: Duration,
    load_concurrency: usize,
    insert_time: Duration,
    inserts: usize,
    ops: Vec<Op>,
}

/// A loaded session.
struct Loaded {
    user: String,
    id: String,
    messages: usize,
}

/// Kinds of search query, each with its own row.
#[derive(Clone, Copy)]
enum SearchKind {
    Common,
    Rare,
    TwoCommon,
    CommonRare,
}

impl SearchKind {
    const ALL: [SearchKind; 4] = [
        SearchKind::Common,
        SearchKind::Rare,
        SearchKind::TwoCommon,
        SearchKind::CommonRare,
    ];

    fn label(self) -> &'static str {
        match self {
            SearchKind::Common => "search: 1 common word",
            SearchKind::Rare => "search: 1 rare word",
            SearchKind::TwoCommon => "search: 2 common words",
            SearchKind::CommonRare => "search: common + rare",
        }
    }

    fn query(self, rng: &mut Rng) -> String {
        // "Common": the 40 most frequent content words (each in a good share of messages).
        let common = &VOCAB.content[..40];
        let rare = &VOCAB.rare;
        match self {
            SearchKind::Common => rng.pick(common).to_owned(),
            SearchKind::Rare => rng.pick(rare).to_owned(),
            SearchKind::TwoCommon => format!("{} {}", rng.pick(common), rng.pick(common)),
            SearchKind::CommonRare => format!("{} {}", rng.pick(common), rng.pick(rare)),
        }
    }
}

async fn run_backend(backend: &'static str, db: Db, scale: Scale) -> Report {
    let (sessions, history) = confab_history::services(db.clone(), HistoryConfig::default());
    let load_concurrency = match db.backend() {
        // One writer at a time: SQLite serialises writers anyway, and
        // contending on the write lock only adds busy-handler sleeps.
        Backend::Sqlite => 1,
        Backend::Postgres => 4,
    };

    // 1. Dataset and load.
    eprintln!(
        "[{backend}] generating {} sessions / {} messages",
        scale.sessions(),
        scale.messages()
    );
    let gen_start = Instant::now();
    let (docs, text_bytes) = build_dataset(scale);
    let gen_time = gen_start.elapsed();
    eprintln!("[{backend}] loading through import_document ({load_concurrency} in flight)");
    let load_start = Instant::now();
    let mut loaded: Vec<Loaded> = Vec::with_capacity(docs.len());
    let mut tasks = tokio::task::JoinSet::new();
    let collect = |r: ChatSession, loaded: &mut Vec<Loaded>| {
        loaded.push(Loaded {
            user: r.user_id,
            id: r.id.to_string(),
            messages: r.message_count as usize,
        });
    };
    for (user, doc) in docs {
        if tasks.len() >= load_concurrency {
            let done = tasks.join_next().await.expect("a task is running");
            collect(done.unwrap(), &mut loaded);
        }
        let h = history.clone();
        tasks.spawn(async move { h.import_document(&user, doc).await.unwrap() });
    }
    while let Some(done) = tasks.join_next().await {
        collect(done.unwrap(), &mut loaded);
    }
    let load_time = load_start.elapsed();
    assert_eq!(loaded.len(), scale.sessions());
    // Keep a stable order (load order may vary with concurrency).
    loaded.sort_by(|a, b| (&a.user, &a.id).cmp(&(&b.user, &b.id)));

    // 2. Single-writer inserts, round-robin over sessions spread across users.
    eprintln!(
        "[{backend}] {} sequential save_message calls",
        scale.inserts
    );
    let stride = (loaded.len() / scale.insert_sessions).max(1);
    let targets: Vec<usize> = (0..scale.insert_sessions)
        .map(|i| (i * stride) % loaded.len())
        .collect();
    let mut text = TextGen::new(7);
    let payloads: Vec<(usize, NewMessage)> = (0..scale.inserts)
        .map(|i| {
            let idx = targets[i % targets.len()];
            let assistant = loaded[idx].messages % 2 == 1;
            let msg = if assistant {
                let mut m = NewMessage::new(MessageRole::Assistant, text.text(200, 2_000, true));
                m.model_id = Some("gpt-4o-mini".into());
                m.tokens_used = Some((m.content.len() / 4) as i64);
                m.response_time = Some(1.5);
                m
            } else {
                NewMessage::new(MessageRole::User, text.text(20, 300, false))
            };
            (idx, msg)
        })
        .collect();
    let mut save_op = Op::new("save_message (sequential)", None);
    let insert_start = Instant::now();
    for (idx, msg) in payloads {
        let s = &loaded[idx];
        let (d, r) = timed!(history.save_message(&s.user, &s.id, msg));
        r.unwrap();
        save_op.record(d, 1);
        loaded[idx].messages += 1;
    }
    let insert_time = insert_start.elapsed();

    if db.backend() == Backend::Postgres {
        // What autovacuum does shortly after a bulk load; done here so the
        // plans measured do not depend on when it happens to run. (SQLite
        // gets no ANALYZE: the service never runs one.)
        eprintln!("[{backend}] VACUUM ANALYZE");
        db.run(|conn| {
            conn.batch_execute("VACUUM ANALYZE")
                .map_err(StoreError::from)
        })
        .await
        .unwrap();
    }

    // Cursors into the middle of each session, for `before=` pages.
    let mut mid_cursor = Vec::with_capacity(loaded.len());
    for s in &loaded {
        let half = (s.messages / 2).clamp(1, 200) as u32;
        let page = history
            .get_session_messages(
                &s.user,
                &s.id,
                MessageQuery {
                    limit: Some(half),
                    ..MessageQuery::default()
                },
            )
            .await
            .unwrap();
        mid_cursor.push(page.older_cursor.expect("sessions have more than one page"));
    }

    // 3. Latency, interleaved per round.
    eprintln!(
        "[{backend}] latency: {} warm-up + {} measured rounds",
        scale.warmup, scale.samples
    );
    let users: Vec<String> = (0..scale.users).map(user_id).collect();
    let page_target = (db.backend() == Backend::Sqlite).then_some(TARGET_PAGE_P99);
    let search_target = (db.backend() == Backend::Sqlite).then_some(TARGET_SEARCH_P99);
    let mut ping = Op::new("Db::ping (baseline)", None);
    let mut list = Op::new("list_user_sessions (20)", page_target);
    let mut newest = Op::new("get_session_messages newest (50)", page_target);
    let mut before = Op::new("get_session_messages before= (50)", page_target);
    let mut search: Vec<Op> = SearchKind::ALL
        .iter()
        .map(|k| Op::new(k.label(), search_target))
        .collect();
    let mut rng = Rng::new(2026);
    let progress_every = (scale.samples / 5).max(1);
    let mut next_progress = scale.warmup + progress_every;
    for round in 0..scale.warmup + scale.samples {
        let keep = round >= scale.warmup;
        if round == next_progress {
            eprintln!(
                "[{backend}]   round {}/{}",
                round - scale.warmup,
                scale.samples
            );
            next_progress += progress_every;
        }

        let (d, r) = timed!(db.ping());
        r.unwrap();
        if keep {
            ping.record(d, 0);
        }

        let user = &users[rng.below(users.len())];
        let query = SessionQuery {
            limit: Some(20),
            ..SessionQuery::default()
        };
        let (d, r) = timed!(sessions.list_user_sessions(user, query));
        let page = r.unwrap();
        assert_eq!(page.items.len(), 20.min(scale.sessions_per_user));
        if keep {
            list.record(d, page.items.len());
        }

        let i = rng.below(loaded.len());
        let s = &loaded[i];
        let query = MessageQuery {
            limit: Some(50),
            ..MessageQuery::default()
        };
        let (d, r) = timed!(history.get_session_messages(&s.user, &s.id, query));
        let page = r.unwrap();
        assert_eq!(page.items.len(), 50);
        if keep {
            newest.record(d, page.items.len());
        }

        let i = rng.below(loaded.len());
        let s = &loaded[i];
        let query = MessageQuery {
            before: Some(mid_cursor[i].clone()),
            limit: Some(50),
            ..MessageQuery::default()
        };
        let (d, r) = timed!(history.get_session_messages(&s.user, &s.id, query));
        let page = r.unwrap();
        assert!(!page.items.is_empty());
        if keep {
            before.record(d, page.items.len());
        }

        for (kind, op) in SearchKind::ALL.iter().zip(search.iter_mut()) {
            let user = &users[rng.below(users.len())];
            let q = kind.query(&mut rng);
            let (d, r) = timed!(history.search_messages(user, &q, None, Some(20)));
            let hits = r.unwrap();
            if keep {
                op.record(d, hits.len());
            }
        }
    }
    let all_search = Op::merged(
        "search_messages (all kinds above)",
        &search.iter().collect::<Vec<_>>(),
        search_target,
    );
    let mut ops = vec![ping, list, newest, before];
    ops.extend(search);
    ops.push(all_search);
    ops.push(save_op);

    Report {
        backend,
        scale,
        text_bytes,
        gen_time,
        load_time,
        load_concurrency,
        insert_time,
        inserts: scale.inserts,
        ops,
    }
}

fn render(r: &Report) -> String {
    let sqlite = r.backend.starts_with("SQLite");
    let mut out = String::new();
    let base = r.ops[0].stats().median;
    let bar = "=".repeat(108);
    let _ = writeln!(out, "{bar}");
    let _ = writeln!(
        out,
        "{}: {} users, {} sessions, {} messages ({:.1} MB of text; generated in {:.2} s, not counted)",
        r.backend,
        r.scale.users,
        r.scale.sessions(),
        r.scale.messages(),
        r.text_bytes as f64 / 1e6,
        r.gen_time.as_secs_f64()
    );
    let _ = writeln!(out, "{bar}");
    let _ = writeln!(
        out,
        "planner statistics: {}",
        if sqlite {
            "none (no ANALYZE; the service never runs one)"
        } else {
            "VACUUM ANALYZE after load and inserts"
        }
    );
    let load_rate = r.scale.messages() as f64 / r.load_time.as_secs_f64();
    let per_session = r.load_time / r.scale.sessions() as u32;
    let _ = writeln!(
        out,
        "load    import_document x {} ({} in flight): {:.2} s = {:.0} messages/s, {:.1} sessions/s ({} per session = {} baseline)",
        r.scale.sessions(),
        r.load_concurrency,
        r.load_time.as_secs_f64(),
        load_rate,
        r.scale.sessions() as f64 / r.load_time.as_secs_f64(),
        ms(per_session),
        ratio(per_session, base),
    );
    let insert_rate = r.inserts as f64 / r.insert_time.as_secs_f64();
    let per_insert = r.insert_time / r.inserts as u32;
    let _ = write!(
        out,
        "insert  save_message x {} (1 writer):  {:.2} s = {:.0} messages/s ({} per message = {} baseline)",
        r.inserts,
        r.insert_time.as_secs_f64(),
        insert_rate,
        ms(per_insert),
        ratio(per_insert, base),
    );
    if sqlite {
        let _ = write!(
            out,
            "   target >= {TARGET_INSERTS_PER_SEC:.0}/s {}",
            verdict(insert_rate >= TARGET_INSERTS_PER_SEC)
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<36} {:>7} {:>11} {:>11} {:>9} {:>9} {:>6}  {}",
        "operation",
        "samples",
        "median",
        "p99",
        "med/base",
        "p99/base",
        "rows",
        if sqlite { "target (p99)" } else { "" }
    );
    let _ = writeln!(out, "{}", "-".repeat(108));
    let base_p99 = r.ops[0].stats().p99;
    for op in &r.ops {
        let st = op.stats();
        let target = match op.target {
            Some(t) if sqlite => format!("< {} {}", ms(t), verdict(st.p99 < t)),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<36} {:>7} {:>11} {:>11} {:>9} {:>9} {:>6.1}  {}",
            op.name,
            st.n,
            ms(st.median),
            ms(st.p99),
            ratio(st.median, base),
            ratio(st.p99, base_p99),
            st.mean_rows,
            target
        );
    }
    let _ = writeln!(
        out,
        "(med/base = median / baseline median; p99/base = p99 / baseline p99; rows = mean rows returned)"
    );
    if sqlite {
        let _ = writeln!(
            out,
            "SQLite targets: >= {TARGET_INSERTS_PER_SEC:.0} inserts/s, list/page p99 < {}, search p99 < {}",
            ms(TARGET_PAGE_P99),
            ms(TARGET_SEARCH_P99)
        );
    }
    out
}

fn main() {
    let quick = std::env::var("CONFAB_BENCH_QUICK").as_deref() == Ok("1");
    let keep = std::env::var("CONFAB_BENCH_KEEP").as_deref() == Ok("1");
    let scale = if quick { Scale::quick() } else { Scale::full() };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    eprintln!(
        "confab-history bench{}: {} CPUs available",
        if quick {
            " (QUICK: 1/10 of dataset and samples)"
        } else {
            ""
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let sqlite = TestDb::sqlite();
    eprintln!("[SQLite] {}", sqlite.url());
    let report = runtime.block_on(run_backend(
        "SQLite (temp file)",
        sqlite.db().clone(),
        scale,
    ));
    print!("{}", render(&report));
    finish(sqlite, keep);

    if let Some(pg) = TestDb::postgres() {
        eprintln!("[PostgreSQL] fresh database {}", pg.url());
        let report = runtime.block_on(run_backend("PostgreSQL", pg.db().clone(), scale));
        println!();
        print!("{}", render(&report));
        finish(pg, keep);
    } else {
        println!("\n(PostgreSQL skipped: TEST_DATABASE_URL is not set)");
    }
}

/// Drops the database, or keeps it and says where it is.
fn finish(db: TestDb, keep: bool) {
    if keep {
        println!("(kept: {})", db.url());
        std::mem::forget(db);
    }
}
