//! Provider-overhead benchmark: [`OpenAiProvider::stream`] versus a raw
//! `reqwest` loop, both against the in-process fake LLM server.
//!
//! Run with `cargo bench -p confab-llm --bench provider`.
//!
//! The fake server of `confab-testkit` runs on its own tokio runtime with
//! zero delay, and every `echo` reply is exactly 50 streamed tokens
//! (`tok0 tok1 ... tok49`). The client side (a hand-built multi-thread
//! runtime) streams 1,000 chat requests, 64 in flight at a time, two ways:
//!
//! - **raw**: a bare `reqwest` client (same timeouts and user agent as the
//!   provider's) POSTs the very JSON body the provider sends (captured from
//!   the fake server) to `/v1/chat/completions` and only reads the response
//!   bytes. Its time to first token is the first body chunk carrying a
//!   non-empty `"content"` (the role-only first event, `"content":""`, does
//!   not count, just as the provider yields no `Text` for it); it checks
//!   only that the body ends with `data: [DONE]`.
//! - **provider**: `OpenAiProvider::stream` with the default retry policy
//!   and timeouts; time to first token is the first `ChatChunk::Text`. Every
//!   stream must yield exactly 50 text chunks concatenating to the expected
//!   text, usage with 50 completion tokens, and end with `Finish(Stop)`;
//!   anything else makes the benchmark exit non-zero.
//!
//! Total time is from sending the request to the end of the stream/body.
//! Both clients are warmed up first (connection pools full), then the two
//! phases run in several rounds: raw then provider in round 1, alternating
//! order afterwards, so drift on a shared machine hits both alike. The table
//! shows the median over rounds of each per-round figure (median and p99
//! TTFT and total time, wall time for all requests) with the provider/raw
//! ratio and the target "within 1.1x of the raw loop" as PASS/MISS (a miss
//! does not fail the run). CPU time per request, read per thread from
//! `/proc/self/task` and split into client and fake-server threads, is
//! shown too: the loop is CPU-bound, so it explains the wall-time ratio.
//!
//! Memory (whole process, fake server included, the same for both):
//! - peak RSS (`VmHWM`) of a fresh copy of this program that runs only one
//!   kind (setup, warm-up, one phase), raw first, then provider, and the
//!   growth of `VmHWM` over its measured phase;
//! - in this process, round 1 (raw first, provider second): the growth of
//!   `VmHWM` over each phase (reset through `/proc/self/clear_refs` before
//!   each phase when the kernel allows it) and `VmRSS` after it. Memory the
//!   raw phase freed is reused by the provider phase, so these understate
//!   the second phase; the separate-process figures do not.
//!
//! Environment:
//! - `CONFAB_BENCH_QUICK=1`: 100 requests per phase (smoke run);
//! - `CONFAB_BENCH_ROUNDS=n`: rounds of (raw, provider) (default 15, quick 5).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_llm::{
    ChatChunk, ChatMessage, ChatModel, ChatRequest, FinishReason, HttpOptions, OpenAiProvider,
    RetryPolicy,
};
use confab_testkit::fake_llm::{FakeLlm, FakeLlmConfig};
use futures_util::StreamExt;
use reqwest::header::CONTENT_TYPE;

/// Tokens in every reply.
const TOKENS: usize = 50;
/// Requests in flight at a time.
const IN_FLIGHT: usize = 64;
/// Warm-up requests per client before the first round.
const WARMUP: usize = 2 * IN_FLIGHT;
/// The target: every provider/raw ratio at most this.
const TARGET: f64 = 1.1;
/// A phase taking longer than this is a hang.
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);
/// Name of the client runtime's threads (at most 15 bytes: `comm`).
const CLIENT_THREAD: &str = "bench-client";
/// Name of the fake server runtime's threads.
const SERVER_THREAD: &str = "bench-fake-llm";
/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`, 100 on Linux).
const USER_HZ: u64 = 100;

// ---------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------

/// Sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Scale {
    requests: usize,
    rounds: usize,
}

impl Scale {
    fn from_env() -> Self {
        let quick = std::env::var("CONFAB_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let rounds = std::env::var("CONFAB_BENCH_ROUNDS")
            .ok()
            .map(|v| {
                v.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| fail(&format!("CONFAB_BENCH_ROUNDS={v} is not a count")))
            })
            .unwrap_or(if quick { 5 } else { 15 });
        Self {
            requests: if quick { 100 } else { 1_000 },
            rounds,
        }
    }
}

/// Prints `msg` and exits non-zero: a wrong result or a broken setup.
fn fail(msg: &str) -> ! {
    eprintln!("provider bench FAILED: {msg}");
    std::process::exit(1);
}

/// The text every reply must concatenate to (`tok0 tok1 ... tok49`).
fn expected_text() -> String {
    (0..TOKENS)
        .map(|i| {
            if i == 0 {
                "tok0".to_owned()
            } else {
                format!(" tok{i}")
            }
        })
        .collect()
}

/// What both phases talk to.
#[derive(Clone)]
struct Clients {
    provider: OpenAiProvider,
    request: ChatRequest,
    expected: Arc<str>,
    raw: reqwest::Client,
    url: Arc<str>,
    body: Bytes,
}

// ---------------------------------------------------------------------------
// One request each way
// ---------------------------------------------------------------------------

/// Timings of one request.
#[derive(Debug, Clone, Copy)]
struct Sample {
    ttft: Duration,
    total: Duration,
}

/// One provider stream, checked for exactly the expected reply.
async fn provider_request(c: Clients) -> Result<Sample, String> {
    let Clients {
        provider,
        request,
        expected,
        ..
    } = c;
    let start = Instant::now();
    let mut stream = provider.stream(request);
    let mut ttft = None;
    let mut text = String::with_capacity(expected.len());
    let mut tokens = 0usize;
    let mut usage = None;
    let mut finish = None;
    while let Some(item) = stream.next().await {
        let chunk = item.map_err(|e| format!("provider stream error: {e}"))?;
        if let Some(reason) = finish {
            return Err(format!("{chunk:?} after Finish({reason:?})"));
        }
        match chunk {
            ChatChunk::Text(t) => {
                if ttft.is_none() {
                    ttft = Some(start.elapsed());
                }
                tokens += 1;
                text.push_str(&t);
            }
            ChatChunk::Usage(u) => usage = Some(u),
            ChatChunk::Finish(reason) => finish = Some(reason),
            ChatChunk::ToolCall(call) => return Err(format!("unexpected tool call {call:?}")),
        }
    }
    let total = start.elapsed();
    if tokens != TOKENS {
        return Err(format!("{tokens} text chunks, expected {TOKENS}"));
    }
    if *text != *expected {
        return Err(format!("text {text:?}, expected {expected:?}"));
    }
    if usage.map(|u| u.completion_tokens as usize) != Some(TOKENS) {
        return Err(format!(
            "usage {usage:?}, expected {TOKENS} completion tokens"
        ));
    }
    if finish != Some(FinishReason::Stop) {
        return Err(format!("finish {finish:?}, expected Some(Stop)"));
    }
    Ok(Sample {
        ttft: ttft.ok_or("no text")?,
        total,
    })
}

/// `"content":"` as the fake server (serde_json) writes it.
const CONTENT: &[u8] = b"\"content\":\"";
/// Bytes kept from the end of the previous chunk (needle + 1 and `data: [DONE]\n\n`).
const TAIL: usize = 16;

/// Whether `h` holds a non-empty `"content":"x`.
fn contains_token(h: &[u8]) -> bool {
    h.windows(CONTENT.len() + 1)
        .any(|w| w.starts_with(CONTENT) && w[CONTENT.len()] != b'"')
}

/// Whether `chunk`, or the seam between the previous chunk's `tail` and it,
/// holds a non-empty content.
fn has_token(tail: &[u8], chunk: &[u8]) -> bool {
    if contains_token(chunk) {
        return true;
    }
    let mut seam = [0u8; 2 * TAIL];
    let head = &chunk[..chunk.len().min(TAIL)];
    seam[..tail.len()].copy_from_slice(tail);
    seam[tail.len()..tail.len() + head.len()].copy_from_slice(head);
    contains_token(&seam[..tail.len() + head.len()])
}

/// One raw POST whose body is only read (and its end checked).
async fn raw_request(c: Clients) -> Result<Sample, String> {
    let start = Instant::now();
    let mut response = c
        .raw
        .post(&*c.url)
        .header(CONTENT_TYPE, "application/json")
        .body(c.body)
        .send()
        .await
        .map_err(|e| format!("raw request: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("raw request: status {}", response.status()));
    }
    let mut ttft = None;
    let mut tail = Vec::with_capacity(2 * TAIL);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("raw body: {e}"))?
    {
        if ttft.is_none() && has_token(&tail, &chunk) {
            ttft = Some(start.elapsed());
        }
        tail.extend_from_slice(&chunk[chunk.len().saturating_sub(TAIL)..]);
        tail.drain(..tail.len().saturating_sub(TAIL));
    }
    let total = start.elapsed();
    if !tail.ends_with(b"data: [DONE]\n\n") {
        return Err(format!(
            "raw body ends with {:?}",
            String::from_utf8_lossy(&tail)
        ));
    }
    Ok(Sample {
        ttft: ttft.ok_or("raw body has no token")?,
        total,
    })
}

// ---------------------------------------------------------------------------
// Phases
// ---------------------------------------------------------------------------

/// Which client a phase drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Raw,
    Provider,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Provider => "provider",
        }
    }
}

/// Runs `n` requests of `kind`, `IN_FLIGHT` at a time (each worker task
/// takes the next request when its previous one is done). Returns the
/// samples and the wall time.
async fn drive(kind: Kind, clients: &Clients, n: usize) -> Result<(Vec<Sample>, Duration), String> {
    async fn worker<F, Fut>(next: Arc<AtomicUsize>, n: usize, op: F) -> Result<Vec<Sample>, String>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Sample, String>>,
    {
        let mut samples = Vec::with_capacity(n / IN_FLIGHT + 1);
        while next.fetch_add(1, Ordering::Relaxed) < n {
            samples.push(op().await?);
        }
        Ok(samples)
    }

    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::with_capacity(IN_FLIGHT);
    for _ in 0..IN_FLIGHT.min(n) {
        let c = clients.clone();
        let next = next.clone();
        workers.push(match kind {
            Kind::Raw => tokio::spawn(worker(next, n, move || raw_request(c.clone()))),
            Kind::Provider => tokio::spawn(worker(next, n, move || provider_request(c.clone()))),
        });
    }
    let mut samples = Vec::with_capacity(n);
    for w in workers {
        samples.extend(w.await.map_err(|e| format!("worker task: {e}"))??);
    }
    let wall = start.elapsed();
    if samples.len() != n {
        return Err(format!("{} samples, expected {n}", samples.len()));
    }
    Ok((samples, wall))
}

/// The figures of one phase.
#[derive(Debug, Clone, Copy)]
struct Phase {
    ttft_p50: Duration,
    ttft_p99: Duration,
    total_p50: Duration,
    total_p99: Duration,
    wall: Duration,
    /// Growth of `VmHWM` over the phase (kB).
    hwm_growth_kb: u64,
    /// `VmRSS` after the phase (kB).
    rss_after_kb: u64,
    /// CPU time of the client runtime's threads over the phase.
    client_cpu: Duration,
    /// CPU time of the fake server's threads over the phase.
    server_cpu: Duration,
}

/// Nearest-rank percentile of sorted `v`.
fn percentile(v: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Runs one measured phase on `rt`, with memory and CPU accounting.
fn phase(
    rt: &tokio::runtime::Runtime,
    fake: &FakeLlm,
    clients: &Clients,
    kind: Kind,
    n: usize,
) -> Phase {
    fake.clear_requests();
    let hwm_reset = reset_hwm();
    let hwm_before = proc_status_kb("VmHWM");
    let (client_before, server_before) = thread_cpu();
    let (samples, wall) = rt
        .block_on(async {
            tokio::time::timeout(PHASE_TIMEOUT, drive(kind, clients, n))
                .await
                .unwrap_or_else(|_| Err(format!("timed out after {PHASE_TIMEOUT:?}")))
        })
        .unwrap_or_else(|e| fail(&format!("{} phase: {e}", kind.name())));
    let (client_after, server_after) = thread_cpu();
    let hwm_after = proc_status_kb("VmHWM");
    let rss_after_kb = proc_status_kb("VmRSS");
    if !hwm_reset && hwm_after < hwm_before {
        fail("VmHWM went down without a reset");
    }
    let mut ttft: Vec<Duration> = samples.iter().map(|s| s.ttft).collect();
    let mut total: Vec<Duration> = samples.iter().map(|s| s.total).collect();
    ttft.sort_unstable();
    total.sort_unstable();
    Phase {
        ttft_p50: percentile(&ttft, 50.0),
        ttft_p99: percentile(&ttft, 99.0),
        total_p50: percentile(&total, 50.0),
        total_p99: percentile(&total, 99.0),
        wall,
        hwm_growth_kb: hwm_after.saturating_sub(hwm_before),
        rss_after_kb,
        client_cpu: client_after.saturating_sub(client_before),
        server_cpu: server_after.saturating_sub(server_before),
    }
}

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

/// A `kB` field of `/proc/self/status` (0 when unreadable).
fn proc_status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets `VmHWM` to the current RSS; false when the kernel does not allow it.
fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// CPU time (user + system) of the client and the server runtime threads.
fn thread_cpu() -> (Duration, Duration) {
    let mut client = 0u64;
    let mut server = 0u64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (Duration::ZERO, Duration::ZERO);
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        // After `comm`: state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum();
        if comm.starts_with(CLIENT_THREAD) {
            client += ticks;
        } else if comm.starts_with(SERVER_THREAD) {
            server += ticks;
        }
    }
    let ticks = |t: u64| Duration::from_millis(t * 1000 / USER_HZ);
    (ticks(client), ticks(server))
}

// ---------------------------------------------------------------------------
// Memory in a separate process
// ---------------------------------------------------------------------------

/// Set (to `raw` or `provider`) in the child processes that measure memory.
const CHILD_ENV: &str = "CONFAB_BENCH_MEMORY_CHILD";

/// Peak memory of a fresh process running one phase.
#[derive(Debug, Clone, Copy)]
struct ChildMemory {
    /// `VmHWM` of the whole process (setup, warm-up and phase).
    peak_kb: u64,
    /// Growth of `VmHWM` over the measured phase.
    growth_kb: u64,
}

/// In a child process: warm up and run one phase of `kind`, print its memory.
fn child(rt: &tokio::runtime::Runtime, fake: &FakeLlm, clients: &Clients, kind: Kind, n: usize) {
    rt.block_on(drive(kind, clients, WARMUP))
        .unwrap_or_else(|e| fail(&format!("{} warm-up: {e}", kind.name())));
    let before = proc_status_kb("VmHWM");
    let p = phase(rt, fake, clients, kind, n);
    let peak = before.max(proc_status_kb("VmHWM"));
    println!("child-memory {peak} {}", p.hwm_growth_kb);
}

/// Runs the phase of `kind` in a fresh copy of this program.
fn memory_in_child(kind: Kind) -> ChildMemory {
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("current_exe: {e}")));
    let out = std::process::Command::new(exe)
        .env(CHILD_ENV, kind.name())
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| fail(&format!("memory child: {e}")));
    if !out.status.success() {
        fail(&format!(
            "{} memory child exited with {}",
            kind.name(),
            out.status
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let numbers: Vec<u64> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("child-memory "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    match numbers[..] {
        [peak_kb, growth_kb] => ChildMemory { peak_kb, growth_kb },
        _ => fail(&format!("memory child printed {stdout:?}")),
    }
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1} us", d.as_secs_f64() * 1e6)
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// The median of `f` over `phases`.
fn median_of(phases: &[Phase], f: impl Fn(&Phase) -> Duration) -> Duration {
    let mut v: Vec<Duration> = phases.iter().map(f).collect();
    v.sort_unstable();
    percentile(&v, 50.0)
}

/// `f` summed over `phases`, per request.
fn per_request(phases: &[Phase], n: usize, f: impl Fn(&Phase) -> Duration) -> Duration {
    let sum: Duration = phases.iter().map(f).sum();
    sum / u32::try_from(n * phases.len()).unwrap_or(u32::MAX)
}

/// `a / b`, for ratios.
fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(f64::MIN_POSITIVE)
}

fn report(scale: Scale, raw: &[Phase], provider: &[Phase], memory: [ChildMemory; 2]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nprovider overhead: {} requests x {TOKENS} tokens per phase, {IN_FLIGHT} in flight, \
         zero-delay fake server;\ntimes are the median over {} rounds of each round's figure",
        scale.requests, scale.rounds
    );
    let _ = writeln!(
        out,
        "{:<36} {:>12} {:>12} {:>9}  target",
        "metric", "raw", "provider", "ratio"
    );
    type Metric = fn(&Phase) -> Duration;
    let timed: [(&str, Metric); 5] = [
        ("TTFT median", |p| p.ttft_p50),
        ("TTFT p99", |p| p.ttft_p99),
        ("total median", |p| p.total_p50),
        ("total p99", |p| p.total_p99),
        ("wall time (all requests)", |p| p.wall),
    ];
    let mut misses = 0;
    for (name, f) in timed {
        let (r, p) = (median_of(raw, f), median_of(provider, f));
        let x = ratio(p.as_secs_f64(), r.as_secs_f64());
        let verdict = if x <= TARGET {
            "PASS"
        } else {
            misses += 1;
            "MISS"
        };
        let _ = writeln!(
            out,
            "{name:<36} {:>12} {:>12} {x:>8.3}x  <= {TARGET:.1}x {verdict}",
            ms(r),
            ms(p)
        );
    }
    let n = scale.requests;
    let cpu: [(&str, Metric); 3] = [
        ("client CPU per request", |p| p.client_cpu),
        ("fake-server CPU per request", |p| p.server_cpu),
        ("client + server CPU per request", |p| {
            p.client_cpu + p.server_cpu
        }),
    ];
    for (name, f) in cpu {
        let (r, p) = (per_request(raw, n, f), per_request(provider, n, f));
        let x = ratio(p.as_secs_f64(), r.as_secs_f64());
        let _ = writeln!(
            out,
            "{name:<36} {:>12} {:>12} {x:>8.3}x  (info)",
            us(r),
            us(p)
        );
    }
    if n * raw.len() < 5_000 {
        let _ = writeln!(
            out,
            "  (CPU is read in 10 ms ticks: too coarse for this few requests)"
        );
    }
    let kb = |name: &str, r: u64, p: u64| {
        format!(
            "{name:<36} {:>12} {:>12} {:>8.3}x  (info)\n",
            mib(r),
            mib(p),
            ratio(p as f64, r as f64)
        )
    };
    let [mr, mp] = memory;
    out += &kb("peak RSS, own process (VmHWM)", mr.peak_kb, mp.peak_kb);
    out += &kb(
        "  VmHWM growth during the phase",
        mr.growth_kb,
        mp.growth_kb,
    );
    let (r1, p1) = (raw[0], provider[0]);
    out += &kb(
        "round 1 (raw first): VmHWM growth",
        r1.hwm_growth_kb,
        p1.hwm_growth_kb,
    );
    out += &kb(
        "round 1: VmRSS after the phase",
        r1.rss_after_kb,
        p1.rss_after_kb,
    );
    let _ = writeln!(
        out,
        "{}",
        if misses == 0 {
            "all five ratios within the 1.1x target".to_owned()
        } else {
            format!("{misses} of five ratios miss the 1.1x target (reported, not a failure)")
        }
    );
    out
}

fn round_line(round: usize, raw_first: bool, r: &Phase, p: &Phase) -> String {
    let order = if raw_first {
        "raw, provider"
    } else {
        "provider, raw"
    };
    format!(
        "round {round:>2} ({order}): raw / provider: wall {} / {} ({:.2}x), \
         TTFT p50 {} / {}, total p50 {} / {}, p99 {} / {}, VmHWM +{} / +{}",
        ms(r.wall),
        ms(p.wall),
        ratio(p.wall.as_secs_f64(), r.wall.as_secs_f64()),
        ms(r.ttft_p50),
        ms(p.ttft_p50),
        ms(r.total_p50),
        ms(p.total_p50),
        ms(r.total_p99),
        ms(p.total_p99),
        mib(r.hwm_growth_kb),
        mib(p.hwm_growth_kb),
    )
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

fn main() {
    let scale = Scale::from_env();
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .thread_name(name)
            .enable_all()
            .build()
            .expect("tokio runtime")
    };
    let server_rt = runtime(SERVER_THREAD);
    let client_rt = runtime(CLIENT_THREAD);

    let fake = server_rt.block_on(FakeLlm::start_with(FakeLlmConfig {
        tokens: Some(TOKENS),
        ..Default::default()
    }));
    let options = HttpOptions::default();
    let provider = OpenAiProvider::new(
        &fake.base_url(),
        None,
        "echo",
        options.clone(),
        RetryPolicy::default(),
    )
    .unwrap_or_else(|e| fail(&format!("provider: {e}")));
    let request = ChatRequest::new(vec![ChatMessage::user("Stream fifty tokens back, please.")])
        .with_model("echo");
    let raw = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        .user_agent(concat!("confab/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|e| fail(&format!("reqwest client: {e}")));
    let mut clients = Clients {
        url: format!("{}/chat/completions", provider.base_url()).into(),
        provider,
        request,
        expected: expected_text().into(),
        raw,
        body: Bytes::new(),
    };

    // The raw loop sends exactly the body the provider sent.
    client_rt
        .block_on(provider_request(clients.clone()))
        .unwrap_or_else(|e| fail(&format!("first provider request: {e}")));
    let sent = fake
        .requests()
        .pop()
        .unwrap_or_else(|| fail("the fake server recorded no request"));
    if sent.path != "/v1/chat/completions" || sent.body["stream"] != true {
        fail(&format!("unexpected provider request {sent:?}"));
    }
    clients.body = serde_json::to_vec(&sent.body).unwrap().into();

    if let Ok(kind) = std::env::var(CHILD_ENV) {
        let kind = match kind.as_str() {
            "raw" => Kind::Raw,
            "provider" => Kind::Provider,
            other => fail(&format!("{CHILD_ENV}={other}")),
        };
        child(&client_rt, &fake, &clients, kind, scale.requests);
        return;
    }

    println!(
        "provider bench: {} requests x {TOKENS} tokens per phase, {IN_FLIGHT} in flight, \
         {} rounds; {cores} client + {cores} fake-server worker threads; request body {} bytes",
        scale.requests,
        scale.rounds,
        clients.body.len()
    );
    // Peak memory first, each phase in a fresh process (raw, then provider).
    let memory = [Kind::Raw, Kind::Provider].map(memory_in_child);

    for kind in [Kind::Raw, Kind::Provider] {
        client_rt
            .block_on(drive(kind, &clients, WARMUP))
            .unwrap_or_else(|e| fail(&format!("{} warm-up: {e}", kind.name())));
    }
    let mut raw = Vec::with_capacity(scale.rounds);
    let mut provider = Vec::with_capacity(scale.rounds);
    for round in 0..scale.rounds {
        // Raw first in round 1, then alternate.
        let raw_first = round % 2 == 0;
        let run = |kind| phase(&client_rt, &fake, &clients, kind, scale.requests);
        let (r, p) = if raw_first {
            let r = run(Kind::Raw);
            (r, run(Kind::Provider))
        } else {
            let p = run(Kind::Provider);
            (run(Kind::Raw), p)
        };
        println!("{}", round_line(round + 1, raw_first, &r, &p));
        raw.push(r);
        provider.push(p);
    }
    println!(
        "correctness: every provider stream gave {TOKENS} text chunks = the expected text, \
         usage, then Finish(Stop)"
    );
    print!("{}", report(scale, &raw, &provider, memory));

    drop(fake);
    client_rt.shutdown_timeout(Duration::from_secs(1));
    server_rt.shutdown_timeout(Duration::from_secs(1));
}
