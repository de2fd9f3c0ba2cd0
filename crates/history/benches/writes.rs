//! Benchmark of concurrent history writes (issue 18, item 3).
//!
//! Run with `cargo bench -p confab-history --bench writes` (part of `make
//! bench`). It always runs on a temporary SQLite file, and also on a fresh
//! PostgreSQL database when `TEST_DATABASE_URL` names a server.
//!
//! Per backend, on one database opened twice (the same file or database):
//! - `1 writer`: one task calling `HistoryService::save_message` in a loop,
//!   one transaction per message (group commit off): the reference;
//! - `64 writers, 1 tx each`: 64 tasks saving at once, each message its own
//!   transaction (group commit off): the figure before group commit;
//! - `64 writers, Db::write default`: the same in the default
//!   configuration: group commit on SQLite (PostgreSQL keeps one
//!   transaction per write on parallel connections, so there the two
//!   64-writer rows measure the same thing).
//!
//! The three run in alternating rounds so machine noise hits them alike.
//! Each writer appends to a session of its own (64 sessions of 8 users).
//! Printed per mode: acknowledged messages/s, and the median and p99 of one
//! `save_message` call (from the call to its acknowledgement), with the
//! targets (SQLite >= 10,000/s, PostgreSQL >= 5,000/s with 64 writers) as
//! PASS/MISS; a miss does not fail the run.
//!
//! Environment: `CONFAB_BENCH_QUICK=1` (a fifth of the messages),
//! `TEST_DATABASE_URL=postgres://...` (also run on PostgreSQL).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_history::{HistoryConfig, HistoryService, SessionService};
use confab_models::{MessageRole, NewMessage, NewSession};
use confab_store::{Backend, Db, DbConfig};
use confab_testkit::TestDb;

const WRITERS: usize = 64;
const USERS: usize = 8;
const ROUNDS: usize = 3;

/// A deterministic message of 40..400 characters.
fn text(seed: u64) -> String {
    const WORDS: [&str; 16] = [
        "the", "answer", "course", "lesson", "model", "question", "history", "rust", "session",
        "message", "token", "stream", "search", "index", "commit", "writer",
    ];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = String::new();
    let len = 40 + (x % 360) as usize;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(WORDS[(x % 16) as usize]);
    }
    out
}

/// Latencies of the calls of one mode, and the wall time of its rounds.
#[derive(Default)]
struct Figures {
    calls: Vec<Duration>,
    wall: Duration,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.calls.len() as f64 / self.wall.as_secs_f64()
    }

    fn pct(&self, p: f64) -> Duration {
        let mut v = self.calls.clone();
        v.sort();
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }
}

/// `writers` tasks each saving `per_writer` messages to its own session; returns the latencies.
async fn round(
    history: &HistoryService,
    sessions: &Arc<Vec<(String, String)>>,
    writers: usize,
    per_writer: usize,
    seed: u64,
) -> (Vec<Duration>, Duration) {
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let history = history.clone();
        let sessions = sessions.clone();
        tasks.spawn(async move {
            let (user, session) = &sessions[w % sessions.len()];
            let mut calls = Vec::with_capacity(per_writer);
            for i in 0..per_writer {
                let role = if i % 2 == 0 {
                    MessageRole::User
                } else {
                    MessageRole::Assistant
                };
                let msg = NewMessage::new(role, text(seed + (w * 100_000 + i) as u64));
                let t = Instant::now();
                history.save_message(user, session, msg).await.unwrap();
                calls.push(t.elapsed());
            }
            calls
        });
    }
    let mut all = Vec::with_capacity(writers * per_writer);
    while let Some(calls) = tasks.join_next().await {
        all.extend(calls.unwrap());
    }
    (all, start.elapsed())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn run_backend(name: &str, grouped: Db, url: &str, per_writer: usize) {
    let target = match grouped.backend() {
        Backend::Sqlite => 10_000.0,
        Backend::Postgres => 5_000.0,
    };
    // The same database without group commit: one transaction per write.
    let mut config = DbConfig::new(url);
    config.max_connections = 16;
    config.connection_timeout = Duration::from_secs(30);
    config.write_batch = 1;
    let single = Db::open(&config).unwrap();

    let (sessions, grouped_history) =
        confab_history::services(grouped.clone(), HistoryConfig::default());
    let single_history = HistoryService::new(single, Arc::new(HistoryConfig::default()));
    let list = create_sessions(&sessions).await;

    let mut one = Figures::default();
    let mut many = Figures::default();
    let mut group = Figures::default();
    for r in 0..ROUNDS {
        eprintln!("[{name}] round {}/{ROUNDS}", r + 1);
        let seed = (r as u64) << 32;
        // The single writer sends as many messages as 8 of the 64 writers,
        // so its round stays short.
        let (calls, wall) = round(&single_history, &list, 1, per_writer * 8, seed).await;
        one.calls.extend(calls);
        one.wall += wall;
        let (calls, wall) = round(&single_history, &list, WRITERS, per_writer, seed + 1).await;
        many.calls.extend(calls);
        many.wall += wall;
        let (calls, wall) = round(&grouped_history, &list, WRITERS, per_writer, seed + 2).await;
        group.calls.extend(calls);
        group.wall += wall;
    }
    let base = one.rate();
    println!("{}", "=".repeat(100));
    println!(
        "{name}: save_message, {WRITERS} sessions of {USERS} users, {ROUNDS} alternating rounds"
    );
    println!("{}", "=".repeat(100));
    println!(
        "{:<34} {:>9} {:>12} {:>9} {:>11} {:>11}",
        "mode", "messages", "messages/s", "x 1-wr", "median", "p99"
    );
    println!("{}", "-".repeat(100));
    for (label, f) in [
        ("1 writer, 1 tx per message", &one),
        ("64 writers, 1 tx per message", &many),
        ("64 writers, Db::write default", &group),
    ] {
        println!(
            "{:<34} {:>9} {:>12.0} {:>8.2}x {:>11} {:>11}",
            label,
            f.calls.len(),
            f.rate(),
            f.rate() / base,
            ms(f.pct(50.0)),
            ms(f.pct(99.0)),
        );
    }
    let rate = group.rate();
    println!(
        "target: >= {target:.0} acknowledged messages/s with {WRITERS} writers: {:.0}/s {} \
         (p99 of one save_message under that load: {}; {:.2}x the 64 writers without group commit)",
        rate,
        if rate >= target { "PASS" } else { "MISS" },
        ms(group.pct(99.0)),
        rate / many.rate(),
    );
}

/// One session per writer, spread over the users.
async fn create_sessions(sessions: &SessionService) -> Arc<Vec<(String, String)>> {
    let mut list = Vec::with_capacity(WRITERS);
    for w in 0..WRITERS {
        let user = format!("bench-user-{}", w % USERS);
        let s = sessions
            .create(
                &user,
                NewSession {
                    title: Some(format!("writer {w}")),
                    ..NewSession::default()
                },
            )
            .await
            .unwrap();
        list.push((user, s.id.to_string()));
    }
    Arc::new(list)
}

fn main() {
    let quick = std::env::var("CONFAB_BENCH_QUICK").as_deref() == Ok("1");
    let per_writer = if quick { 20 } else { 100 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    eprintln!(
        "confab-history writes bench{}: {} CPUs available",
        if quick { " (QUICK)" } else { "" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let sqlite = TestDb::sqlite();
    runtime.block_on(run_backend(
        "SQLite (temp file)",
        sqlite.db().clone(),
        sqlite.url(),
        per_writer,
    ));
    drop(sqlite);
    if let Some(pg) = TestDb::postgres() {
        println!();
        runtime.block_on(run_backend(
            "PostgreSQL",
            pg.db().clone(),
            pg.url(),
            per_writer,
        ));
    } else {
        println!("\n(PostgreSQL skipped: TEST_DATABASE_URL is not set)");
    }
}
