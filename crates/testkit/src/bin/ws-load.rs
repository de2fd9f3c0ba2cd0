//! `ws-load`: a load generator for chat-service's WebSocket chat, and the
//! baseline it is compared with (the fake LLM server called directly).
//!
//! ```text
//! ws-load chat   --url ws://127.0.0.1:P/ws/chat --conversations 1000 --rounds 3 [--pid PID]
//! ws-load direct --url http://127.0.0.1:F/v1/chat/completions --conversations 1000 [--rounds R]
//! ws-load idle   --url ws://127.0.0.1:P/ws/chat --connections 10000 [--pid PID]
//! ```
//!
//! `chat`: every round opens N sockets (at most `--ramp` handshakes in
//! flight, connect errors retried), then sends one `chat_message` on all of
//! them at the same moment and records, per conversation, the time from
//! the send to the first `token` event (TTFT), the streamed text (tokens
//! counted as the fake server's `tokN` words, and token events), and the
//! final `done`. The server's RSS (`VmRSS` of `/proc/PID/status`) and open
//! file descriptors are sampled before the round, with the sockets open,
//! at the peak while answers stream, after every answer is done, and
//! `--settle-ms` after all sockets are closed.
//!
//! `direct`: the baseline: N concurrent streaming requests (`"stream":
//! true`, model `--model`, default `slow`) straight to an OpenAI-compatible
//! server; TTFT is the time to the first non-empty content delta.
//!
//! `idle`: opens N sockets that send nothing (pings are answered while
//! they are read), samples the server's RSS before and after, reports RSS
//! per connection, holds them `--hold-secs`, then closes them.
//!
//! Output: a human-readable summary, then one line of JSON with every
//! figure (the last line of stdout). The exit code is 0 when the run could
//! be measured (the JSON's `ok` says whether every conversation got its
//! whole answer), 1 when nothing could be measured, 2 for bad arguments.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const USAGE: &str = "usage: ws-load <chat|direct|idle> --url URL [options]

modes:
  chat     N WebSocket conversations to chat-service (ws://HOST:PORT/ws/chat), all
           sending one chat_message at the same moment, for --rounds rounds
  direct   N concurrent streaming chat completions straight to an OpenAI-compatible
           server (http://HOST:PORT/v1/chat/completions): the baseline
  idle     N idle WebSocket connections; RSS per connection

options:
  --url URL              target (required)
  --conversations N      chat/direct: concurrent conversations (default 1000)
  --connections N        idle: connections to open (default 10000)
  --rounds R             chat/direct: rounds (default 3 for chat, 1 for direct)
  --pid PID              server process whose RSS (/proc/PID/status VmRSS) is sampled
  --tokens T             tokens the fake server streams per reply (default 50)
  --message TEXT         the user message (default \"hello\")
  --model NAME           direct: model (default slow)
  --ramp K               most connection handshakes in flight at once (default 64)
  --connect-retries R    retries of a failed connection (default 5)
  --timeout-secs S       chat/direct: limit per answer (default 120)
  --settle-ms MS         pause after closing sockets before sampling RSS (default 1000)
  --hold-secs S          idle: how long the connections stay open (default 5)
  --single-user          chat/idle: no X-User-Id header (every socket is the local user);
                         by default socket i sends X-User-Id: load-i
  --label TEXT           copied into the JSON line";

/// Which measurement to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Chat,
    Direct,
    Idle,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Chat => "chat",
            Mode::Direct => "direct",
            Mode::Idle => "idle",
        }
    }
}

/// Parsed command line.
#[derive(Debug, Clone)]
struct Args {
    mode: Mode,
    url: String,
    count: usize,
    rounds: usize,
    pid: Option<u32>,
    tokens: usize,
    message: String,
    model: String,
    ramp: usize,
    connect_retries: u32,
    timeout: Duration,
    settle: Duration,
    hold: Duration,
    single_user: bool,
    label: Option<String>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = args.into_iter();
    let mode = match args.next().as_deref() {
        None | Some("--help" | "-h" | "help") => return Ok(None),
        Some("chat") => Mode::Chat,
        Some("direct") => Mode::Direct,
        Some("idle") => Mode::Idle,
        Some(other) => return Err(format!("unknown mode: {other}")),
    };
    let mut parsed = Args {
        mode,
        url: String::new(),
        count: if mode == Mode::Idle { 10_000 } else { 1000 },
        rounds: if mode == Mode::Chat { 3 } else { 1 },
        pid: None,
        tokens: 50,
        message: "hello".into(),
        model: "slow".into(),
        ramp: 64,
        connect_retries: 5,
        timeout: Duration::from_secs(120),
        settle: Duration::from_millis(1000),
        hold: Duration::from_secs(5),
        single_user: false,
        label: None,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a non-negative integer: {v}"))
        };
        let size = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: not a non-negative integer: {v}"))
        };
        match flag.as_str() {
            "--url" => parsed.url = value()?,
            "--conversations" | "--connections" => parsed.count = size(value()?)?,
            "--rounds" => parsed.rounds = size(value()?)?.max(1),
            "--pid" => {
                parsed.pid = Some(
                    u32::try_from(number(value()?)?).map_err(|_| format!("{flag}: too large"))?,
                );
            }
            "--tokens" => parsed.tokens = size(value()?)?,
            "--message" => parsed.message = value()?,
            "--model" => parsed.model = value()?,
            "--ramp" => parsed.ramp = size(value()?)?.max(1),
            "--connect-retries" => {
                parsed.connect_retries =
                    u32::try_from(number(value()?)?).map_err(|_| format!("{flag}: too large"))?;
            }
            "--timeout-secs" => parsed.timeout = Duration::from_secs(number(value()?)?),
            "--settle-ms" => parsed.settle = Duration::from_millis(number(value()?)?),
            "--hold-secs" => parsed.hold = Duration::from_secs(number(value()?)?),
            "--single-user" => parsed.single_user = true,
            "--label" => parsed.label = Some(value()?),
            _ => return Err(format!("unknown argument: {flag}")),
        }
    }
    if parsed.url.is_empty() {
        return Err("--url is required".into());
    }
    Ok(Some(parsed))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ws-load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match args.mode {
        Mode::Chat => chat(&args).await,
        Mode::Direct => direct(&args).await,
        Mode::Idle => idle(&args).await,
    };
    match result {
        Ok(mut report) => {
            report["mode"] = json!(args.mode.name());
            report["url"] = json!(args.url);
            if let Some(label) = &args.label {
                report["label"] = json!(label);
            }
            println!("{report}");
            let _ = std::io::stdout().flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ws-load: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// Server process sampling

/// One look at the server process.
#[derive(Debug, Clone, Copy, Default)]
struct ProcSample {
    rss_kib: u64,
    threads: u64,
    fds: u64,
    /// CPU time (user + system) so far, ms (`/proc/PID/stat`, 10 ms ticks).
    cpu_ms: Option<u64>,
}

impl ProcSample {
    /// Reads `/proc/PID/status` (VmRSS, Threads) and counts `/proc/PID/fd`.
    fn read(pid: Option<u32>) -> Option<ProcSample> {
        let pid = pid?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        Some(ProcSample {
            rss_kib: field("VmRSS:")?,
            threads: field("Threads:").unwrap_or(0),
            fds,
            cpu_ms: confab_testkit::procfs::cpu_time(&pid.to_string())
                .map(|d| d.as_millis() as u64),
        })
    }

    fn json(sample: Option<ProcSample>) -> Value {
        match sample {
            Some(s) => {
                json!({ "rss_kib": s.rss_kib, "threads": s.threads, "fds": s.fds, "cpu_ms": s.cpu_ms })
            }
            None => Value::Null,
        }
    }
}

/// Only VmRSS (cheap enough to poll).
fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
}

/// Samples the server's RSS every 20 ms until stopped; yields the peak.
fn peak_sampler(pid: Option<u32>) -> (watch::Sender<bool>, tokio::task::JoinHandle<Option<u64>>) {
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        pid?;
        let mut peak = 0u64;
        loop {
            if let Some(kib) = rss_kib(pid) {
                peak = peak.max(kib);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                () = closing(&mut stopped) => break,
            }
        }
        if let Some(kib) = rss_kib(pid) {
            peak = peak.max(kib);
        }
        Some(peak)
    });
    (stop, task)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn rss_of(sample: Option<ProcSample>) -> String {
    sample.map_or_else(|| "-".into(), |s| mib(s.rss_kib))
}

// ---------------------------------------------------------------------------
// Statistics

/// Order statistics of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
struct Dist {
    n: usize,
    min: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

impl Dist {
    fn of(values: &[Duration]) -> Dist {
        let mut ms: Vec<f64> = values.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        if n == 0 {
            return Dist::default();
        }
        // Nearest rank.
        let pick = |p: f64| {
            let rank = ((p / 100.0) * n as f64).ceil() as usize;
            ms[rank.clamp(1, n) - 1]
        };
        Dist {
            n,
            min: ms[0],
            p50: pick(50.0),
            p90: pick(90.0),
            p99: pick(99.0),
            max: ms[n - 1],
            mean: ms.iter().sum::<f64>() / n as f64,
        }
    }

    fn json(&self) -> Value {
        let r = |v: f64| (v * 100.0).round() / 100.0;
        json!({
            "n": self.n,
            "min": r(self.min),
            "p50": r(self.p50),
            "p90": r(self.p90),
            "p99": r(self.p99),
            "max": r(self.max),
            "mean": r(self.mean),
        })
    }

    fn line(&self) -> String {
        format!(
            "median {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n={})",
            self.p50, self.p90, self.p99, self.max, self.n
        )
    }
}

/// TTFT of rounds 2.. (upstream connections already pooled), printed and
/// as JSON; `null` when there was a single round.
fn warm_dist(values: &[Duration]) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    let dist = Dist::of(values);
    println!("rounds 2..: time to first token {}", dist.line());
    dist.json()
}

/// The fake server's reply of `n` tokens: `tok0 tok1 ... tok{n-1}`.
fn expected_text(n: usize) -> String {
    (0..n)
        .map(|i| format!("tok{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counts of short error descriptions.
fn tally<'a>(items: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item.to_owned()).or_insert(0) += 1;
    }
    counts
}

// ---------------------------------------------------------------------------
// WebSocket connections

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Shared connection settings and counters.
struct Connector {
    url: String,
    single_user: bool,
    retries: u32,
    handshakes: Semaphore,
    retried: AtomicU32,
}

impl Connector {
    fn new(args: &Args) -> Arc<Self> {
        Arc::new(Connector {
            url: args.url.clone(),
            single_user: args.single_user,
            retries: args.connect_retries,
            handshakes: Semaphore::new(args.ramp),
            retried: AtomicU32::new(0),
        })
    }

    /// Opens socket `index` (at most `--ramp` handshakes at once), retrying
    /// failures with a growing pause.
    async fn connect(&self, index: usize) -> Result<Socket, String> {
        let config = WebSocketConfig::default()
            .read_buffer_size(8 * 1024)
            .write_buffer_size(0);
        let mut attempt = 0u32;
        loop {
            let result = {
                let _permit = self.handshakes.acquire().await.map_err(|e| e.to_string())?;
                let mut request = self
                    .url
                    .as_str()
                    .into_client_request()
                    .map_err(|e| format!("bad url: {e}"))?;
                if !self.single_user {
                    let user = HeaderValue::try_from(format!("load-{index}"))
                        .map_err(|e| e.to_string())?;
                    request.headers_mut().insert("X-User-Id", user);
                }
                tokio::time::timeout(
                    Duration::from_secs(10),
                    tokio_tungstenite::connect_async_with_config(request, Some(config), true),
                )
                .await
            };
            let error = match result {
                Ok(Ok((socket, _))) => return Ok(socket),
                Ok(Err(e)) => describe_ws_error(&e),
                Err(_) => "handshake timeout (10 s)".to_owned(),
            };
            if attempt >= self.retries {
                return Err(error);
            }
            attempt += 1;
            self.retried.fetch_add(1, Ordering::Relaxed);
            let pause = Duration::from_millis(50 * 2u64.pow(attempt.min(6)));
            tokio::time::sleep(pause.min(Duration::from_secs(2))).await;
        }
    }
}

fn describe_ws_error(e: &WsError) -> String {
    match e {
        WsError::Io(io) => format!("io: {:?}", io.kind()),
        WsError::Http(response) => format!("http {}", response.status().as_u16()),
        other => other.to_string(),
    }
}

/// Sends a close frame and reads until the server ends the connection
/// (at most 5 s).
async fn close_socket(mut socket: Socket) {
    let _ = socket.close(None).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(frame) = socket.next().await {
            if frame.is_err() {
                break;
            }
        }
    })
    .await;
}

/// Resolves once `signal` is `true` (or its sender is gone).
async fn closing(signal: &mut watch::Receiver<bool>) {
    let _ = signal.wait_for(|s| *s).await;
}

/// Reads (answering pings) until `close` fires or the server goes away;
/// then closes. `true` when the server ended the connection first.
async fn hold_then_close(mut socket: Socket, mut close: watch::Receiver<bool>) -> bool {
    loop {
        tokio::select! {
            () = closing(&mut close) => {
                close_socket(socket).await;
                return false;
            }
            frame = socket.next() => match frame {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return true,
                Some(Ok(_)) => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------
// chat mode

/// What the orchestrator hears from conversation tasks.
enum Phase {
    Connected(bool),
    Finished,
}

/// One conversation of one round.
#[derive(Debug, Default)]
struct Conversation {
    connect_error: Option<String>,
    ready: Option<Duration>,
    ttft: Option<Duration>,
    total: Option<Duration>,
    token_events: usize,
    text: String,
    finish_reason: Option<String>,
    error: Option<String>,
    completion_tokens: Option<u64>,
    server_closed: bool,
    /// First arrival of each event kind (`ready`, `stage:NAME`, `token`,
    /// `sources`, `done`), from the send.
    marks: Vec<(String, Duration)>,
}

impl Conversation {
    fn mark(&mut self, key: String, at: Duration) {
        if !self.marks.iter().any(|(k, _)| *k == key) {
            self.marks.push((key, at));
        }
    }
}

/// One conversation: connect, wait for `go`, send, read to `done`, wait
/// for `close`, close.
async fn conversation(
    index: usize,
    connector: Arc<Connector>,
    content: String,
    timeout: Duration,
    phases: mpsc::UnboundedSender<Phase>,
    mut go: watch::Receiver<bool>,
    close: watch::Receiver<bool>,
) -> Conversation {
    let mut conv = Conversation::default();
    let mut socket = match connector.connect(index).await {
        Ok(s) => {
            let _ = phases.send(Phase::Connected(true));
            s
        }
        Err(e) => {
            conv.connect_error = Some(e);
            let _ = phases.send(Phase::Connected(false));
            return conv;
        }
    };
    let _ = go.wait_for(|g| *g).await;
    let frame = json!({ "type": "chat_message", "content": content }).to_string();
    let start = Instant::now();
    if let Err(e) = socket.send(Message::text(frame)).await {
        conv.error = Some(format!("send: {}", describe_ws_error(&e)));
        let _ = phases.send(Phase::Finished);
        return conv;
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let frame = match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => {
                conv.error = Some("timeout".into());
                break;
            }
            Ok(None) => {
                conv.error = Some("connection closed".into());
                conv.server_closed = true;
                break;
            }
            Ok(Some(Err(e))) => {
                conv.error = Some(describe_ws_error(&e));
                conv.server_closed = true;
                break;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let text = match frame {
            Message::Text(t) => t,
            Message::Close(_) => {
                conv.error = Some("server closed".into());
                conv.server_closed = true;
                break;
            }
            _ => continue,
        };
        let Ok(event) = serde_json::from_str::<Value>(&text) else {
            conv.error = Some("malformed event".into());
            break;
        };
        let kind = event["type"].as_str().unwrap_or_default();
        let key = match kind {
            "stage" => format!("stage:{}", event["stage"].as_str().unwrap_or("?")),
            other => other.to_owned(),
        };
        conv.mark(key, start.elapsed());
        match kind {
            "ready" => conv.ready = Some(start.elapsed()),
            "token" => {
                if conv.ttft.is_none() {
                    conv.ttft = Some(start.elapsed());
                }
                conv.token_events += 1;
                conv.text
                    .push_str(event["content"].as_str().unwrap_or_default());
            }
            "done" => {
                conv.total = Some(start.elapsed());
                conv.finish_reason = event["finish_reason"].as_str().map(str::to_owned);
                conv.completion_tokens = event
                    .pointer("/usage/completion_tokens")
                    .and_then(Value::as_u64);
                break;
            }
            "error" => {
                conv.error = Some(format!(
                    "error event: {}",
                    event["code"].as_str().unwrap_or("?")
                ));
                break;
            }
            _ => {}
        }
    }
    let _ = phases.send(Phase::Finished);
    if !conv.server_closed {
        conv.server_closed = hold_then_close(socket, close).await;
    }
    conv
}

/// Distribution of each event kind's first arrival, in order of the medians.
fn timeline(conversations: &[&Conversation]) -> Vec<(String, Dist)> {
    let mut by_key: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for c in conversations {
        for (key, at) in &c.marks {
            by_key.entry(key.as_str()).or_default().push(*at);
        }
    }
    let mut out: Vec<(String, Dist)> = by_key
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Dist::of(&v)))
        .collect();
    out.sort_by(|a, b| a.1.p50.total_cmp(&b.1.p50));
    out
}

/// Figures of one chat round.
struct ChatRound {
    report: Value,
    ttft: Vec<Duration>,
    delivered: u64,
    expected: u64,
    ok: bool,
    after_close_kib: Option<u64>,
}

async fn chat_round(args: &Args, round: usize) -> Result<ChatRound, String> {
    let n = args.count;
    let before = ProcSample::read(args.pid);
    let connector = Connector::new(args);
    let (phase_tx, mut phases) = mpsc::unbounded_channel();
    let (go_tx, go) = watch::channel(false);
    let (close_tx, close) = watch::channel(false);
    let ramp_start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..n {
        tasks.spawn(conversation(
            i,
            connector.clone(),
            args.message.clone(),
            args.timeout,
            phase_tx.clone(),
            go.clone(),
            close.clone(),
        ));
    }
    drop(phase_tx);
    let mut connected = 0usize;
    let mut attempted = 0usize;
    while attempted < n {
        match phases.recv().await {
            Some(Phase::Connected(ok)) => {
                attempted += 1;
                connected += usize::from(ok);
            }
            Some(Phase::Finished) => {}
            None => break,
        }
    }
    let ramp = ramp_start.elapsed();
    // Let the server settle the handshakes before sampling.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let open = ProcSample::read(args.pid);

    let (stop_sampler, sampler) = peak_sampler(args.pid);
    let go_at = Instant::now();
    let _ = go_tx.send(true);
    let mut finished = 0usize;
    while finished < connected {
        match phases.recv().await {
            Some(Phase::Finished) => finished += 1,
            Some(Phase::Connected(_)) => {}
            None => break,
        }
    }
    let wall = go_at.elapsed();
    let _ = stop_sampler.send(true);
    let peak = sampler.await.ok().flatten();
    let after_done = ProcSample::read(args.pid);

    let _ = close_tx.send(true);
    let mut conversations = Vec::with_capacity(n);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(c) => conversations.push(c),
            Err(e) => return Err(format!("a conversation task failed: {e}")),
        }
    }
    tokio::time::sleep(args.settle).await;
    let after_close = ProcSample::read(args.pid);

    // Tally.
    let expected_text = expected_text(args.tokens);
    let sent: Vec<&Conversation> = conversations
        .iter()
        .filter(|c| c.connect_error.is_none())
        .collect();
    let ttft: Vec<Duration> = sent.iter().filter_map(|c| c.ttft).collect();
    let ready: Vec<Duration> = sent.iter().filter_map(|c| c.ready).collect();
    let total: Vec<Duration> = sent.iter().filter_map(|c| c.total).collect();
    let delivered: u64 = sent
        .iter()
        .map(|c| c.text.split_whitespace().count() as u64)
        .sum();
    let token_events: u64 = sent.iter().map(|c| c.token_events as u64).sum();
    let expected = (sent.len() * args.tokens) as u64;
    let intact = sent.iter().filter(|c| c.text == expected_text).count();
    let done = sent.iter().filter(|c| c.total.is_some()).count();
    let finish = tally(sent.iter().filter_map(|c| c.finish_reason.as_deref()));
    let errors = tally(sent.iter().filter_map(|c| c.error.as_deref()));
    let connect_errors = tally(
        conversations
            .iter()
            .filter_map(|c| c.connect_error.as_deref()),
    );
    let server_closed = sent.iter().filter(|c| c.server_closed).count();
    let usage_tokens: u64 = sent.iter().filter_map(|c| c.completion_tokens).sum();
    let ratio = if expected == 0 {
        0.0
    } else {
        delivered as f64 / expected as f64
    };
    let ok = connected == n
        && done == n
        && intact == n
        && errors.is_empty()
        && finish.keys().all(|k| k == "stop");
    let ttft_dist = Dist::of(&ttft);
    let timeline = timeline(&sent);
    let peak_kib = peak.or(after_done.map(|s| s.rss_kib));

    println!(
        "round {round}: {connected}/{n} connected in {:.2} s ({} connect retries{}), all answers in {:.2} s",
        ramp.as_secs_f64(),
        connector.retried.load(Ordering::Relaxed),
        if connect_errors.is_empty() {
            String::new()
        } else {
            format!(", failures {connect_errors:?}")
        },
        wall.as_secs_f64(),
    );
    println!("  time to ready:       {}", Dist::of(&ready).line());
    println!("  time to first token: {}", ttft_dist.line());
    println!("  time to done:        {}", Dist::of(&total).line());
    println!(
        "  event timeline from the send (median / p99): {}",
        timeline
            .iter()
            .map(|(k, d)| format!("{k} {:.0}/{:.0} ms", d.p50, d.p99))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  tokens delivered/sent: {delivered}/{expected} = {ratio:.4} ({token_events} token events; {intact}/{} answers intact; {done} done {finish:?}; errors {errors:?})",
        sent.len()
    );
    println!(
        "  server RSS: before {}, {n} open {}, peak {}, all done {}, after close {}",
        rss_of(before),
        rss_of(open),
        peak_kib.map_or_else(|| "-".into(), mib),
        rss_of(after_done),
        rss_of(after_close),
    );
    if let (Some(b), Some(a)) = (before, after_close) {
        println!(
            "  server fds: before {}, after close {}; threads before {}, after close {}",
            b.fds, a.fds, b.threads, a.threads
        );
    }

    let report = json!({
        "round": round,
        "conversations": n,
        "connected": connected,
        "connect_retries": connector.retried.load(Ordering::Relaxed),
        "connect_errors": connect_errors,
        "ramp_secs": ramp.as_secs_f64(),
        "wall_secs": wall.as_secs_f64(),
        "ready_ms": Dist::of(&ready).json(),
        "ttft_ms": ttft_dist.json(),
        "done_ms": Dist::of(&total).json(),
        "timeline_ms": timeline
            .iter()
            .map(|(k, d)| (k.clone(), d.json()))
            .collect::<serde_json::Map<_, _>>(),
        "tokens_delivered": delivered,
        "tokens_sent": expected,
        "token_events": token_events,
        "usage_completion_tokens": usage_tokens,
        "ratio": ratio,
        "intact": intact,
        "done": done,
        "finish_reasons": finish,
        "errors": errors,
        "server_closed": server_closed,
        "server": {
            "before": ProcSample::json(before),
            "open": ProcSample::json(open),
            "peak_rss_kib": peak_kib,
            "all_done": ProcSample::json(after_done),
            "after_close": ProcSample::json(after_close),
        },
        "ok": ok,
    });
    Ok(ChatRound {
        report,
        ttft,
        delivered,
        expected,
        ok,
        after_close_kib: after_close.map(|s| s.rss_kib),
    })
}

async fn chat(args: &Args) -> Result<Value, String> {
    println!(
        "ws-load chat: {} conversations x {} rounds against {} (expecting {} tokens per answer)",
        args.count, args.rounds, args.url, args.tokens
    );
    let initial = ProcSample::read(args.pid);
    let mut rounds = Vec::new();
    let mut ttft = Vec::new();
    let (mut delivered, mut expected) = (0u64, 0u64);
    let mut ok = true;
    let mut after_close = Vec::new();
    let mut warm = Vec::new();
    for round in 1..=args.rounds {
        let r = chat_round(args, round).await?;
        if round > 1 {
            warm.extend(r.ttft.iter().copied());
        }
        ttft.extend(r.ttft);
        delivered += r.delivered;
        expected += r.expected;
        ok &= r.ok;
        after_close.push(r.after_close_kib);
        rounds.push(r.report);
    }
    if expected == 0 {
        return Err("no conversation could be started".into());
    }
    let ratio = delivered as f64 / expected as f64;
    let dist = Dist::of(&ttft);
    let after: Vec<u64> = after_close.iter().flatten().copied().collect();
    // Growth from the first round's after-close RSS to the last one's.
    let growth = match (after.first(), after.last()) {
        (Some(first), Some(last)) if after.len() > 1 => Some(*last as i64 - *first as i64),
        _ => None,
    };
    println!(
        "all rounds: time to first token {}; tokens delivered/sent {delivered}/{expected} = {ratio:.4}{}",
        dist.line(),
        growth.map_or_else(String::new, |g| format!(
            "; RSS after close: {} (first to last round {g:+} KiB)",
            after.iter().map(|k| mib(*k)).collect::<Vec<_>>().join(", ")
        )),
    );
    let warm = warm_dist(&warm);
    Ok(json!({
        "conversations": args.count,
        "rounds_run": args.rounds,
        "tokens_per_answer": args.tokens,
        "pid": args.pid,
        "server_initial": ProcSample::json(initial),
        "ttft_ms": dist.json(),
        "ttft_ms_warm": warm,
        "tokens_delivered": delivered,
        "tokens_sent": expected,
        "ratio": ratio,
        "rss_after_close_kib": after,
        "rss_growth_kib": growth,
        "rounds": rounds,
        "ok": ok,
    }))
}

// ---------------------------------------------------------------------------
// direct mode

/// One streamed completion.
#[derive(Debug, Default)]
struct Completion {
    ttft: Option<Duration>,
    total: Option<Duration>,
    tokens: usize,
    text: String,
    error: Option<String>,
}

async fn completion(
    client: reqwest::Client,
    url: String,
    body: Value,
    timeout: Duration,
    mut go: watch::Receiver<bool>,
) -> Completion {
    let _ = go.wait_for(|g| *g).await;
    let start = Instant::now();
    let mut out = Completion::default();
    let run = async {
        let response = client
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("request: {}", short_reqwest(&e)))?;
        if !response.status().is_success() {
            return Err(format!("http {}", response.status().as_u16()));
        }
        let mut stream = response.bytes_stream();
        let mut buffer: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("body: {}", short_reqwest(&e)))?;
            buffer.extend_from_slice(&chunk);
            while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                let Some(data) = line.trim_end().strip_prefix("data:") else {
                    continue;
                };
                let data = data.trim();
                if data == "[DONE]" {
                    out.total = Some(start.elapsed());
                    return Ok(());
                }
                let Ok(chunk) = serde_json::from_str::<Value>(data) else {
                    return Err("malformed chunk".into());
                };
                if let Some(content) = chunk
                    .pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
                    .filter(|c| !c.is_empty())
                {
                    if out.ttft.is_none() {
                        out.ttft = Some(start.elapsed());
                    }
                    out.tokens += 1;
                    out.text.push_str(content);
                }
            }
        }
        Err("stream ended before [DONE]".into())
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => out.error = Some(e),
        Err(_) => out.error = Some("timeout".into()),
    }
    out
}

fn short_reqwest(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connect".into()
    } else if e.is_timeout() {
        "timeout".into()
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        text
    }
}

async fn direct(args: &Args) -> Result<Value, String> {
    println!(
        "ws-load direct: {} concurrent streaming completions x {} rounds against {} (model {})",
        args.count, args.rounds, args.url, args.model
    );
    // One client for every round, as chat-service keeps one: round 1 opens
    // the connections, later rounds reuse them.
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let body = json!({
        "model": args.model,
        "stream": true,
        "messages": [{ "role": "user", "content": args.message }],
    });
    let expected_text = expected_text(args.tokens);
    let mut rounds = Vec::new();
    let mut all_ttft = Vec::new();
    let mut warm = Vec::new();
    let (mut delivered, mut expected) = (0u64, 0u64);
    let mut ok = true;
    for round in 1..=args.rounds {
        let (go_tx, go) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for _ in 0..args.count {
            tasks.spawn(completion(
                client.clone(),
                args.url.clone(),
                body.clone(),
                args.timeout,
                go.clone(),
            ));
        }
        // Let every task reach its start line.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let go_at = Instant::now();
        let _ = go_tx.send(true);
        let mut results = Vec::with_capacity(args.count);
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(c) => results.push(c),
                Err(e) => return Err(format!("a request task failed: {e}")),
            }
        }
        let wall = go_at.elapsed();
        let ttft: Vec<Duration> = results.iter().filter_map(|c| c.ttft).collect();
        let total: Vec<Duration> = results.iter().filter_map(|c| c.total).collect();
        let got: u64 = results
            .iter()
            .map(|c| c.text.split_whitespace().count() as u64)
            .sum();
        let chunks: u64 = results.iter().map(|c| c.tokens as u64).sum();
        let want = (args.count * args.tokens) as u64;
        let intact = results.iter().filter(|c| c.text == expected_text).count();
        let errors = tally(results.iter().filter_map(|c| c.error.as_deref()));
        let round_ok = errors.is_empty() && intact == args.count;
        ok &= round_ok;
        let dist = Dist::of(&ttft);
        println!(
            "round {round}: all answers in {:.2} s; time to first token: {}",
            wall.as_secs_f64(),
            dist.line()
        );
        println!("  time to [DONE]: {}", Dist::of(&total).line());
        println!(
            "  tokens received/sent: {got}/{want} ({chunks} content deltas; {intact}/{} intact; errors {errors:?})",
            args.count
        );
        rounds.push(json!({
            "round": round,
            "wall_secs": wall.as_secs_f64(),
            "ttft_ms": dist.json(),
            "done_ms": Dist::of(&total).json(),
            "tokens_delivered": got,
            "tokens_sent": want,
            "content_deltas": chunks,
            "intact": intact,
            "errors": errors,
            "ok": round_ok,
        }));
        if round > 1 {
            warm.extend(ttft.iter().copied());
        }
        all_ttft.extend(ttft);
        delivered += got;
        expected += want;
    }
    let dist = Dist::of(&all_ttft);
    let ratio = if expected == 0 {
        0.0
    } else {
        delivered as f64 / expected as f64
    };
    println!(
        "all rounds: time to first token {}; tokens {delivered}/{expected} = {ratio:.4}",
        dist.line()
    );
    let warm = warm_dist(&warm);
    Ok(json!({
        "conversations": args.count,
        "rounds_run": args.rounds,
        "tokens_per_answer": args.tokens,
        "model": args.model,
        "ttft_ms": dist.json(),
        "ttft_ms_warm": warm,
        "tokens_delivered": delivered,
        "tokens_sent": expected,
        "ratio": ratio,
        "rounds": rounds,
        "ok": ok,
    }))
}

// ---------------------------------------------------------------------------
// idle mode

async fn idle(args: &Args) -> Result<Value, String> {
    let n = args.count;
    println!(
        "ws-load idle: {n} idle connections to {} held {} s",
        args.url,
        args.hold.as_secs()
    );
    let before = ProcSample::read(args.pid);
    let connector = Connector::new(args);
    let (close_tx, close) = watch::channel(false);
    let (phase_tx, mut phases) = mpsc::unbounded_channel::<bool>();
    let server_closed = Arc::new(AtomicU64::new(0));
    let ramp_start = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let connector = connector.clone();
        let close = close.clone();
        let phase_tx = phase_tx.clone();
        let server_closed = server_closed.clone();
        tasks.spawn(async move {
            match connector.connect(i).await {
                Ok(socket) => {
                    let _ = phase_tx.send(true);
                    if hold_then_close(socket, close).await {
                        server_closed.fetch_add(1, Ordering::Relaxed);
                    }
                    None
                }
                Err(e) => {
                    let _ = phase_tx.send(false);
                    Some(e)
                }
            }
        });
    }
    drop(phase_tx);
    let mut connected = 0usize;
    let mut attempted = 0usize;
    while attempted < n {
        match phases.recv().await {
            Some(ok) => {
                attempted += 1;
                connected += usize::from(ok);
            }
            None => break,
        }
    }
    let ramp = ramp_start.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let open = ProcSample::read(args.pid);
    tokio::time::sleep(args.hold.saturating_sub(Duration::from_secs(1))).await;
    let held = ProcSample::read(args.pid);
    let still_open = connected as u64 - server_closed.load(Ordering::Relaxed);
    let _ = close_tx.send(true);
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Some(e)) => failures.push(e),
            Ok(None) => {}
            Err(e) => return Err(format!("a connection task failed: {e}")),
        }
    }
    tokio::time::sleep(args.settle).await;
    let after_close = ProcSample::read(args.pid);
    let connect_errors = tally(failures.iter().map(String::as_str));

    let per_conn = |s: Option<ProcSample>| match (before, s) {
        (Some(b), Some(s)) if connected > 0 => {
            Some((s.rss_kib as f64 - b.rss_kib as f64) * 1024.0 / connected as f64)
        }
        _ => None,
    };
    let per_open = per_conn(open);
    let per_held = per_conn(held);
    println!(
        "{connected}/{n} connected in {:.2} s ({} connect retries{}); {still_open} still open after {} s",
        ramp.as_secs_f64(),
        connector.retried.load(Ordering::Relaxed),
        if connect_errors.is_empty() {
            String::new()
        } else {
            format!(", failures {connect_errors:?}")
        },
        args.hold.as_secs(),
    );
    println!(
        "  server RSS: before {}, {connected} open {}, after {} s {}, after close {}",
        rss_of(before),
        rss_of(open),
        args.hold.as_secs(),
        rss_of(held),
        rss_of(after_close),
    );
    if let Some(p) = per_open {
        println!(
            "  RSS per idle connection: {:.1} KiB (after {} s: {})",
            p / 1024.0,
            args.hold.as_secs(),
            per_held.map_or_else(|| "-".into(), |h| format!("{:.1} KiB", h / 1024.0)),
        );
    }
    if let (Some(b), Some(o), Some(a)) = (before, open, after_close) {
        println!(
            "  server fds: before {}, open {}, after close {}; threads {} / {} / {}",
            b.fds, o.fds, a.fds, b.threads, o.threads, a.threads
        );
    }
    if connected == 0 {
        return Err(format!("no connection could be opened: {connect_errors:?}"));
    }
    Ok(json!({
        "connections": n,
        "connected": connected,
        "connect_retries": connector.retried.load(Ordering::Relaxed),
        "connect_errors": connect_errors,
        "ramp_secs": ramp.as_secs_f64(),
        "hold_secs": args.hold.as_secs(),
        "still_open": still_open,
        "pid": args.pid,
        "server": {
            "before": ProcSample::json(before),
            "open": ProcSample::json(open),
            "held": ProcSample::json(held),
            "after_close": ProcSample::json(after_close),
        },
        "rss_per_connection_bytes": per_open.map(f64::round),
        "rss_per_connection_bytes_held": per_held.map(f64::round),
        "ok": connected == n && still_open == connected as u64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Option<Args>, String> {
        parse_args(list.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_modes_and_defaults() {
        let a = args(&["chat", "--url", "ws://x/ws/chat", "--pid=7"])
            .unwrap_or_default()
            .map(|a| (a.mode, a.count, a.rounds, a.pid, a.tokens));
        assert_eq!(a, Some((Mode::Chat, 1000, 3, Some(7), 50)));
        let a = args(&["idle", "--url", "ws://x", "--connections", "5"])
            .unwrap_or_default()
            .map(|a| (a.mode, a.count, a.rounds));
        assert_eq!(a, Some((Mode::Idle, 5, 1)));
        assert!(args(&["chat"]).is_err());
        assert!(args(&["bogus", "--url", "x"]).is_err());
        assert!(args(&["direct", "--url", "x", "--rounds"]).is_err());
        assert!(matches!(args(&["--help"]), Ok(None)));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let d = Dist::of(&values);
        assert_eq!(
            (d.min, d.p50, d.p90, d.p99, d.max),
            (1.0, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Dist::of(&[]).n, 0);
    }

    #[test]
    fn expected_reply_matches_the_fake_server() {
        assert_eq!(expected_text(3), "tok0 tok1 tok2");
        assert_eq!(expected_text(0), "");
    }
}
