//! `rate-load`: a constant-rate (open-loop) HTTP load generator, for the
//! gateway overhead benchmark (`scripts/bench-gateway.sh`).
//!
//! ```text
//! rate-load --url URL --rate R [--duration-secs 10] [--warmup-secs 2]
//!           [--header 'Name: value']... [--body JSON] [--expect TEXT]
//!           [--pid NAME=PID]... [--label TEXT]
//! ```
//!
//! Request `i` is scheduled at `t0 + i / R` whatever happened to the
//! earlier ones (open loop: a slow answer never delays the next request),
//! by a dedicated pacing thread that sleeps until each scheduled instant
//! and hands the request to the tokio runtime. Latency is measured from
//! the *scheduled* instant to the last byte of the response body, so a
//! server (or generator) falling behind shows up as latency instead of
//! being hidden by a lower request rate ("coordinated omission"). The
//! service time (from the actual send) and the pacing lag (actual send
//! minus scheduled instant) are reported too: a large lag means the
//! generator itself could not keep up and the run says little.
//!
//! The first `--warmup-secs` of the schedule are the warm-up (connections
//! opened, caches filled): sent at the same rate, not measured. The
//! measured window follows without a pause.
//!
//! An error is anything but a `2xx` whose body contains `--expect` (when
//! given): another status, a transport error, no complete answer within
//! `--timeout-ms`, or a request not sent because `--max-in-flight`
//! requests were already waiting.
//!
//! With `--pid NAME=PID` the CPU time (`utime + stime` of
//! `/proc/PID/stat`) each named process used during the measured window is
//! reported, in total, in cores and per request; the generator's own is
//! always reported as `rate-load`, the whole machine's busy time (from
//! `/proc/stat`) as `machine`, and the machine's minus the watched
//! processes' as `others`: load from anything else, which makes the run
//! noisy. Their memory when the window ends (`VmRSS`, and the peak
//! `VmHWM`) is reported under `memory`.
//!
//! Output: a one-line summary on stderr, then one line of JSON with every
//! figure on stdout. Exit code 0 when something was measured (the JSON's
//! `ok` says whether fewer than 0.1% of the requests failed), 1 when no
//! request succeeded, 2 for bad arguments.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use confab_testkit::procfs::{cpu_time, machine_busy};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

const USAGE: &str = "usage: rate-load --url URL --rate R [options]

Sends requests at a constant rate (open loop) and reports the latency from each
request's scheduled instant to the end of its response (median, p90, p99, p99.9, max).

options:
  --url URL              target (required)
  --rate R               requests per second (required; fractions allowed)
  --duration-secs S      measured window (default 10)
  --warmup-secs S        warm-up at the same rate before it, not measured (default 2)
  --method M             HTTP method (default POST with a body, GET without)
  --header 'Name: value' a request header (repeatable)
  --body TEXT            request body (sent with content-type application/json
                         unless a content-type header is given)
  --expect TEXT          a 2xx answer counts as an error unless its body contains TEXT
  --timeout-ms T         an answer not complete after T ms is an error (default 10000)
  --max-in-flight N      requests waiting for their answer at most; a request due
                         while N are waiting is not sent and counts as an error
                         (default 10000)
  --threads N            tokio worker threads of the generator (default 1)
  --pid NAME=PID         report the CPU time and memory of process PID as NAME (repeatable)
  --label TEXT           copied into the JSON line";

/// The share of failed requests a run may have and still be `ok`.
const MAX_ERROR_RATE: f64 = 0.001;
/// How many error messages are printed (the rest are only counted).
const ERRORS_SHOWN: usize = 5;

/// Parsed command line.
#[derive(Debug, Clone)]
struct Args {
    url: String,
    rate: f64,
    duration: Duration,
    warmup: Duration,
    method: Option<reqwest::Method>,
    headers: Vec<(String, String)>,
    body: Option<String>,
    expect: Option<String>,
    timeout: Duration,
    max_in_flight: usize,
    threads: usize,
    pids: Vec<(String, u32)>,
    label: Option<String>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        url: String::new(),
        rate: 0.0,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        method: None,
        headers: Vec::new(),
        body: None,
        expect: None,
        timeout: Duration::from_secs(10),
        max_in_flight: 10_000,
        threads: 1,
        pids: Vec::new(),
        label: None,
    };
    let mut args = args.into_iter();
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
        let seconds = |v: String| {
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("{flag}: not a non-negative number: {v}"))
        };
        let size = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: not a non-negative integer: {v}"))
        };
        match flag.as_str() {
            "--url" => parsed.url = value()?,
            "--rate" => {
                let v = value()?;
                parsed.rate = v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r > 0.0)
                    .ok_or_else(|| format!("{flag}: not a positive number: {v}"))?;
            }
            "--duration-secs" => parsed.duration = seconds(value()?)?,
            "--warmup-secs" => parsed.warmup = seconds(value()?)?,
            "--method" => {
                let v = value()?;
                parsed.method = Some(
                    reqwest::Method::from_bytes(v.to_ascii_uppercase().as_bytes())
                        .map_err(|_| format!("{flag}: not an HTTP method: {v}"))?,
                );
            }
            "--header" => {
                let v = value()?;
                let (name, val) = v
                    .split_once(':')
                    .ok_or_else(|| format!("{flag}: expected `Name: value`, got {v}"))?;
                parsed
                    .headers
                    .push((name.trim().to_owned(), val.trim().to_owned()));
            }
            "--body" => parsed.body = Some(value()?),
            "--expect" => parsed.expect = Some(value()?),
            "--timeout-ms" => {
                let v = value()?;
                let ms = v
                    .parse::<u64>()
                    .map_err(|_| format!("{flag}: not a non-negative integer: {v}"))?;
                parsed.timeout = Duration::from_millis(ms.max(1));
            }
            "--max-in-flight" => parsed.max_in_flight = size(value()?)?.max(1),
            "--threads" => parsed.threads = size(value()?)?.max(1),
            "--pid" => {
                let v = value()?;
                let (name, pid) = v
                    .split_once('=')
                    .ok_or_else(|| format!("{flag}: expected NAME=PID, got {v}"))?;
                let pid = pid
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{flag}: not a process id: {pid}"))?;
                parsed.pids.push((name.trim().to_owned(), pid));
            }
            "--label" => parsed.label = Some(value()?),
            _ => return Err(format!("unknown argument: {flag}")),
        }
    }
    if parsed.url.is_empty() {
        return Err("--url is required".into());
    }
    if parsed.rate <= 0.0 {
        return Err("--rate is required".into());
    }
    if parsed.duration.is_zero() {
        return Err("--duration-secs must be positive".into());
    }
    Ok(Some(parsed))
}

/// What one request is, shared by every send.
struct Spec {
    url: String,
    method: reqwest::Method,
    headers: HeaderMap,
    body: Option<Bytes>,
    expect: Option<Vec<u8>>,
    timeout: Duration,
}

impl Spec {
    fn new(args: &Args) -> Result<Spec, String> {
        let mut headers = HeaderMap::new();
        for (name, value) in &args.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("--header: not a header name: {name}"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("--header: not a header value: {value}"))?;
            headers.append(name, value);
        }
        if args.body.is_some() && !headers.contains_key(reqwest::header::CONTENT_TYPE) {
            headers.insert(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let method = args.method.clone().unwrap_or(if args.body.is_some() {
            reqwest::Method::POST
        } else {
            reqwest::Method::GET
        });
        Ok(Spec {
            url: args.url.clone(),
            method,
            headers,
            body: args.body.clone().map(Bytes::from),
            expect: args.expect.clone().map(String::into_bytes),
            timeout: args.timeout,
        })
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Failure {
    /// Not sent: `--max-in-flight` requests were waiting.
    Dropped,
    /// No complete answer within the timeout.
    Timeout,
    /// The connection could not be made.
    Connect,
    /// Another transport error (reset, truncated body, ...).
    Transport,
    /// An answer with a status other than 2xx.
    Status(u16),
    /// A 2xx answer without the expected text.
    Body,
}

impl Failure {
    fn kind(&self) -> String {
        match self {
            Failure::Dropped => "dropped".into(),
            Failure::Timeout => "timeout".into(),
            Failure::Connect => "connect".into(),
            Failure::Transport => "transport".into(),
            Failure::Status(code) => format!("status_{code}"),
            Failure::Body => "unexpected_body".into(),
        }
    }
}

/// One measured request.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Scheduled instant to end of the answer.
    latency: Duration,
    /// Actual send to end of the answer.
    service: Duration,
    /// Actual send minus scheduled instant.
    lag: Duration,
}

/// Results of the measured window (warm-up requests only count errors).
#[derive(Default)]
struct Results {
    samples: Vec<Sample>,
    failures: BTreeMap<Failure, u64>,
    warmup_sent: u64,
    warmup_failures: u64,
    messages: Vec<String>,
    /// End of the last measured answer.
    last_done: Option<Instant>,
}

impl Results {
    fn note(&mut self, message: String) {
        if self.messages.len() < ERRORS_SHOWN {
            self.messages.push(message);
        }
    }
}

/// Shared between the pacer and the request tasks.
struct Shared {
    spec: Spec,
    client: reqwest::Client,
    in_flight: AtomicUsize,
    max_in_flight: usize,
    results: Mutex<Results>,
}

impl Shared {
    fn results(&self) -> std::sync::MutexGuard<'_, Results> {
        self.results.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, warm: bool, outcome: Result<Sample, (Failure, String)>, done: Instant) {
        let mut results = self.results();
        if warm {
            results.warmup_sent += 1;
            if let Err((_, message)) = outcome {
                results.warmup_failures += 1;
                results.note(format!("(warm-up) {message}"));
            }
            return;
        }
        results.last_done = Some(results.last_done.map_or(done, |d| d.max(done)));
        match outcome {
            Ok(sample) => results.samples.push(sample),
            Err((failure, message)) => {
                *results.failures.entry(failure).or_default() += 1;
                results.note(message);
            }
        }
    }
}

/// Sends one request (scheduled at `scheduled`) and records its outcome.
async fn send_one(shared: Arc<Shared>, scheduled: Instant, warm: bool) {
    let started = Instant::now();
    let spec = &shared.spec;
    let mut builder = shared
        .client
        .request(spec.method.clone(), &spec.url)
        .headers(spec.headers.clone());
    if let Some(body) = &spec.body {
        builder = builder.body(body.clone());
    }
    let exchange = async {
        let resp = builder.send().await.map_err(|e| {
            let kind = if e.is_connect() {
                Failure::Connect
            } else {
                Failure::Transport
            };
            (kind, format!("request failed: {e}"))
        })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| (Failure::Transport, format!("reading the body failed: {e}")))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err((
                Failure::Status(status.as_u16()),
                format!("{status}: {text}"),
            ));
        }
        if let Some(expect) = &spec.expect
            && !body
                .windows(expect.len().max(1))
                .any(|w| w == expect.as_slice())
        {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err((Failure::Body, format!("unexpected body: {text}")));
        }
        Ok(())
    };
    let outcome = match tokio::time::timeout(spec.timeout, exchange).await {
        Ok(Ok(())) => {
            let done = Instant::now();
            Ok(Sample {
                latency: done.saturating_duration_since(scheduled),
                service: done.saturating_duration_since(started),
                lag: started.saturating_duration_since(scheduled),
            })
        }
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err((
            Failure::Timeout,
            format!("no complete answer within {:?}", spec.timeout),
        )),
    };
    shared.record(warm, outcome, Instant::now());
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
}

/// Name under which [`cpu_snapshot`] reports the whole machine.
const MACHINE: &str = "machine";

/// CPU times of the machine, then of the watched processes (`rate-load`
/// itself first).
fn cpu_snapshot(pids: &[(String, u32)]) -> Vec<(String, Option<Duration>)> {
    let mut out = vec![
        (MACHINE.to_owned(), machine_busy()),
        ("rate-load".to_owned(), cpu_time("self")),
    ];
    for (name, pid) in pids {
        out.push((name.clone(), cpu_time(&pid.to_string())));
    }
    out
}

/// Runs the schedule on a dedicated thread: request `i` at `t0 + i / rate`.
/// Returns the CPU snapshot taken when the measured window starts, that
/// window's first scheduled instant, and the instant the last request was
/// handed over.
fn pace(
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    rate: f64,
    warmup_n: u64,
    total_n: u64,
    pids: Vec<(String, u32)>,
) -> (Vec<(String, Option<Duration>)>, Instant, Instant) {
    let t0 = Instant::now() + Duration::from_millis(20);
    let mut start_cpu = Vec::new();
    let mut window_start = t0;
    for i in 0..total_n {
        let scheduled = t0 + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if scheduled > now {
            std::thread::sleep(scheduled - now);
        }
        let warm = i < warmup_n;
        if i == warmup_n {
            start_cpu = cpu_snapshot(&pids);
            window_start = scheduled;
        }
        if shared.in_flight.fetch_add(1, Ordering::SeqCst) >= shared.max_in_flight {
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            let message = format!("not sent: {} requests in flight", shared.max_in_flight);
            shared.record(warm, Err((Failure::Dropped, message)), Instant::now());
            continue;
        }
        runtime.spawn(send_one(shared.clone(), scheduled, warm));
    }
    (start_cpu, window_start, Instant::now())
}

/// Percentiles of `values` (nearest rank), in milliseconds.
fn distribution(mut values: Vec<Duration>) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    values.sort_unstable();
    let n = values.len();
    let at = |q: f64| {
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        ms(values[rank - 1])
    };
    let mean = values.iter().map(Duration::as_secs_f64).sum::<f64>() / n as f64;
    json!({
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": ms(values[n - 1]),
        "mean": round3(mean * 1000.0),
    })
}

fn ms(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1000.0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("rate-load: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok((report, any_ok)) => {
            println!("{report}");
            let _ = std::io::stdout().flush();
            if any_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("rate-load: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<(Value, bool), String> {
    let spec = Spec::new(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let client = {
        let _guard = runtime.enter();
        reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?
    };
    let shared = Arc::new(Shared {
        spec,
        client,
        in_flight: AtomicUsize::new(0),
        max_in_flight: args.max_in_flight,
        results: Mutex::new(Results::default()),
    });
    let warmup_n = (args.rate * args.warmup.as_secs_f64()).round() as u64;
    let measured_n = ((args.rate * args.duration.as_secs_f64()).round() as u64).max(1);
    let total_n = warmup_n + measured_n;

    let pacer = {
        let shared = shared.clone();
        let handle = runtime.handle().clone();
        let (rate, pids) = (args.rate, args.pids.clone());
        std::thread::Builder::new()
            .name("rate-load-pacer".into())
            .spawn(move || pace(shared, handle, rate, warmup_n, total_n, pids))
            .map_err(|e| format!("cannot start the pacing thread: {e}"))?
    };
    let (start_cpu, window_start, last_sent) = pacer
        .join()
        .map_err(|_| "the pacing thread panicked".to_string())?;
    // Every request ends within its timeout; wait for the stragglers.
    let deadline = Instant::now() + args.timeout + Duration::from_secs(2);
    runtime.block_on(async {
        while shared.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let end_cpu = cpu_snapshot(&args.pids);
    let still_in_flight = shared.in_flight.load(Ordering::SeqCst);
    let results = std::mem::take(&mut *shared.results());
    drop(runtime);

    let ok = results.samples.len() as u64;
    let failed: u64 = results.failures.values().sum::<u64>() + still_in_flight as u64;
    let completed = ok + failed;
    let error_rate = if completed == 0 {
        1.0
    } else {
        failed as f64 / completed as f64
    };
    // The window runs from the first measured scheduled instant to the end
    // of the last measured answer (at least the nominal duration).
    let window_end = results.last_done.unwrap_or(last_sent).max(last_sent);
    let wall = window_end
        .saturating_duration_since(window_start)
        .max(args.duration);
    let achieved = ok as f64 / wall.as_secs_f64();
    let mut errors_by_kind = serde_json::Map::new();
    for (failure, count) in &results.failures {
        errors_by_kind.insert(failure.kind(), json!(count));
    }
    if still_in_flight > 0 {
        errors_by_kind.insert("unfinished".into(), json!(still_in_flight));
    }
    let mut cpu = serde_json::Map::new();
    let mut watched = Duration::ZERO;
    let mut machine = None;
    for ((name, before), (_, after)) in start_cpu.iter().zip(&end_cpu) {
        if let (Some(before), Some(after)) = (before, after) {
            let used = after.saturating_sub(*before);
            if name == MACHINE {
                machine = Some(used);
            } else {
                watched += used;
            }
            cpu.insert(
                name.clone(),
                json!({
                    "cpu_ms": ms(used),
                    "cores": round3(used.as_secs_f64() / wall.as_secs_f64()),
                    "ms_per_request": if completed == 0 { Value::Null } else {
                        json!(round3(used.as_secs_f64() * 1000.0 / completed as f64))
                    },
                }),
            );
        }
    }
    if let Some(machine) = machine {
        // Everything else running meanwhile (other builds, tests): noise.
        let others = machine.saturating_sub(watched);
        cpu.insert(
            "others".into(),
            json!({
                "cpu_ms": ms(others),
                "cores": round3(others.as_secs_f64() / wall.as_secs_f64()),
            }),
        );
    }
    // Memory of the watched processes when the window ends: resident now
    // (`VmRSS`) and the most it ever was (`VmHWM`).
    let mut memory = serde_json::Map::new();
    for (name, pid) in &args.pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        };
        memory.insert(
            name.clone(),
            json!({ "rss_kib": field("VmRSS:"), "peak_rss_kib": field("VmHWM:") }),
        );
    }
    let latency = distribution(results.samples.iter().map(|s| s.latency).collect());
    let service = distribution(results.samples.iter().map(|s| s.service).collect());
    let lag = distribution(results.samples.iter().map(|s| s.lag).collect());
    let report = json!({
        "label": args.label,
        "url": args.url,
        "rate": args.rate,
        "duration_secs": args.duration.as_secs_f64(),
        "warmup_secs": args.warmup.as_secs_f64(),
        "scheduled": measured_n,
        "completed": completed,
        "ok_responses": ok,
        "errors": failed,
        "error_rate": error_rate,
        "errors_by_kind": errors_by_kind,
        "achieved_rate": round3(achieved),
        "window_secs": round3(wall.as_secs_f64()),
        "latency_ms": latency,
        "service_ms": service,
        "pacing_lag_ms": lag,
        "cpu": cpu,
        "memory": memory,
        "warmup": { "sent": results.warmup_sent, "errors": results.warmup_failures },
        "error_messages": results.messages,
        "ok": error_rate < MAX_ERROR_RATE,
    });
    let p = |k: &str| report["latency_ms"][k].as_f64().unwrap_or(f64::NAN);
    eprintln!(
        "rate-load{}: {} req/s for {:.0} s: {ok}/{completed} ok ({:.3}% errors), achieved {:.1} req/s, \
         latency median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.label
            .as_deref()
            .map(|l| format!(" [{l}]"))
            .unwrap_or_default(),
        args.rate,
        args.duration.as_secs_f64(),
        error_rate * 100.0,
        achieved,
        p("p50"),
        p("p99"),
        p("max"),
    );
    for message in &results.messages {
        eprintln!("rate-load:   error: {message}");
    }
    Ok((report, ok > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        let a = parse(&[
            "--url",
            "http://x/",
            "--rate=500",
            "--header",
            "Authorization: Bearer k",
            "--pid",
            "gw=12",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(a.rate, 500.0);
        assert_eq!(a.duration, Duration::from_secs(10));
        assert_eq!(a.headers, vec![("Authorization".into(), "Bearer k".into())]);
        assert_eq!(a.pids, vec![("gw".into(), 12)]);
        assert!(parse(&["--url", "http://x/"]).is_err(), "rate required");
        assert!(parse(&["--rate", "0", "--url", "u"]).is_err());
        assert!(parse(&["--help"]).unwrap().is_none());
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let d = distribution((1..=1000).map(Duration::from_millis).collect());
        assert_eq!(d["p50"], json!(500.0));
        assert_eq!(d["p99"], json!(990.0));
        assert_eq!(d["p999"], json!(999.0));
        assert_eq!(d["max"], json!(1000.0));
        assert_eq!(distribution(Vec::new()), Value::Null);
    }
}
