//! The summary of `scripts/bench-gateway.sh`: the `rate-load` figures of
//! every run (`direct-RATE.json`, `gateway-RATE.json`,
//! `chat-service-RATE.json` in the work dir) as the overhead table, the CPU
//! per run, the split at one rate, the highest rate held, the target of
//! `BENCH_GW_TARGET_*`, and the issue-18 targets with PASS/MISS.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::format::{fixed, general, round};
use crate::record::{self, Run};
use crate::target::{Layout, Target};

/// The rate the issue-18 targets of the added p99 and of memory apply to.
const TARGET_RATE_18: f64 = 1000.0;
/// Issue 18: p99 added by the gateway at that rate, ms.
const ADDED_P99_TARGET_MS: f64 = 2.0;
/// Issue 18: the highest rate held, req/s.
const SATURATION_TARGET: f64 = 3000.0;
/// Issue 18: the gateway's RSS after the run at that rate, MiB.
const GATEWAY_RSS_TARGET_MIB: f64 = 64.0;
/// Issue 18: chat-service's RSS after the run at that rate, MiB.
const CHAT_RSS_TARGET_MIB: f64 = 128.0;
/// `others` using more cores than this during a run makes its figures noisy.
const NOISY_CORES: f64 = 0.2;
/// The processes whose CPU is shown per run, in this order.
const CPU_NAMES: [&str; 5] = ["gateway", "chat-service", "fake-llm", "rate-load", "others"];

const TARGET_LAYOUT: Layout = Layout {
    name: 50,
    value: 14,
    decimals: 2,
};

/// How the benchmark ran (the script's settings).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Tokens per fake reply.
    pub tokens: u64,
    /// Measured seconds per run, as given.
    pub secs: String,
    /// Warm-up seconds per run, as given.
    pub warmup_secs: String,
    /// chat-service's HTTP workers.
    pub chat_workers: u64,
    /// api-gateway's HTTP workers.
    pub gateway_workers: u64,
    /// A rate is held only while the gateway's p99 stays below this, ms.
    pub p99_limit_ms: f64,
    /// The fixed rates, as given (each must have been measured).
    pub fixed_rates: Vec<String>,
    /// The rate of the chat-service-only run, as given (`0`: none).
    pub split_rate: String,
    /// The rate the script's target applies to, as given.
    pub target_rate: String,
    /// The script's target: p99 added below this, ms.
    pub target_ms: f64,
    /// Whether a missed script target fails the run.
    pub strict: bool,
}

/// The figures of the runs, read from the work dir.
#[derive(Debug, Clone, Default)]
pub struct Runs {
    /// The rates run, in order, as given.
    pub rates: Vec<String>,
    /// Figures by run name (`direct-200`, `gateway-200`, `chat-service-500`).
    pub figures: BTreeMap<String, Value>,
    /// The machine's load before the runs (text).
    pub machine_before: String,
    /// The machine's load after the runs (text).
    pub machine_after: String,
}

impl Runs {
    /// Reads the figures of `rates` (and of the fixed and split rates)
    /// from `work`; a run without figures is left out.
    pub fn read(work: &Path, settings: &Settings, rates: Vec<String>) -> Result<Runs, String> {
        let mut figures = BTreeMap::new();
        let mut names: Vec<String> = Vec::new();
        for rate in rates.iter().chain(&settings.fixed_rates) {
            names.push(format!("direct-{rate}"));
            names.push(format!("gateway-{rate}"));
        }
        names.push(format!("chat-service-{}", settings.split_rate));
        for name in names {
            if let Some(v) = record::load(&work.join(format!("{name}.json")))? {
                figures.insert(name, v);
            }
        }
        let text = |name: &str| {
            let path = work.join(name);
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        Ok(Runs {
            rates,
            figures,
            machine_before: text("load-before.txt")?,
            machine_after: text("load-after.txt")?,
        })
    }

    fn get(&self, name: &str, rate: &str) -> Option<&Value> {
        self.figures.get(&format!("{name}-{rate}"))
    }
}

/// Differences gateway - direct, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Added {
    /// Of the medians.
    pub p50: Option<f64>,
    /// Of the p99s.
    pub p99: Option<f64>,
    /// Of the maxima.
    pub max: Option<f64>,
}

/// Ratios gateway / direct.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ratio {
    /// Of the medians.
    pub p50: Option<f64>,
    /// Of the p99s.
    pub p99: Option<f64>,
}

/// One rate: both runs and their comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Requests per second.
    pub rate: f64,
    /// The fake server alone.
    pub direct: Option<Value>,
    /// Through the gateway.
    pub gateway: Option<Value>,
    /// Gateway - direct.
    pub added_ms: Added,
    /// Gateway / direct.
    pub ratio: Ratio,
    /// Whether the gateway held the rate.
    pub gateway_held: bool,
    /// Whether the fake server alone held the rate.
    pub direct_held: bool,
    #[serde(skip)]
    rate_text: String,
}

/// The added latency split between chat-service and the gateway, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Part {
    /// chat-service alone - direct.
    pub chat_service_ms: f64,
    /// Gateway - chat-service alone.
    pub gateway_ms: f64,
}

/// [`Part`] of the median and of the p99.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SplitAdded {
    /// Of the medians.
    pub p50: Part,
    /// Of the p99s.
    pub p99: Part,
}

/// The chat-service-only run.
#[derive(Debug, Clone, Serialize)]
pub struct Split {
    /// Its rate.
    pub rate: f64,
    /// Its figures.
    pub chat_service: Value,
    /// The split, when both other runs of that rate were measured.
    pub added: Option<SplitAdded>,
}

/// The script's own target (`BENCH_GW_TARGET_*`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScriptTarget {
    /// At this rate.
    pub rate: f64,
    /// p99 added below this, ms.
    pub p99_added_ms_limit: f64,
    /// Met, missed, or not measured (`null`).
    pub met: Option<bool>,
}

/// The settings as the JSON carries them.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsOut {
    tokens: u64,
    secs: f64,
    warmup_secs: f64,
    chat_workers: u64,
    gateway_workers: u64,
    p99_limit_ms: f64,
    fixed_rates: Vec<f64>,
}

/// The machine's load before and after the runs.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    before: String,
    after: String,
}

/// Everything, as written to the JSON file.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// How it ran.
    pub settings: SettingsOut,
    /// One row per rate run.
    pub rates: Vec<Row>,
    /// The chat-service-only run.
    pub split: Option<Split>,
    /// The highest rate held with every lower rate held too.
    pub highest_rate_held: Option<f64>,
    /// The highest rate with < 0.1% errors (whatever the p99).
    pub highest_rate_below_error_limit: Option<f64>,
    /// The script's target.
    pub target: ScriptTarget,
    /// The issue-18 targets.
    pub targets: Vec<Target>,
    /// The machine's load.
    pub machine: Machine,
}

/// The printed summary, the JSON one, and the exit status.
#[derive(Debug, Clone)]
pub struct Report {
    /// The lines to print.
    pub text: String,
    /// The figures to write.
    pub summary: Summary,
    /// Every fixed rate measured (and, when strict, the target met).
    pub success: bool,
}

fn number(text: &str) -> Result<f64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("not a number: {text:?}"))
}

fn rate(text: &str) -> Result<f64, String> {
    number(text)
}

fn lat(run: Option<&Value>, key: &str) -> Option<f64> {
    run.and_then(|r| Run(r).latency(key))
}

fn say(out: &mut String, line: impl AsRef<str>) {
    out.push_str(line.as_ref());
    out.push('\n');
}

fn row(settings: &Settings, runs: &Runs, rate_text: &str) -> Result<Row, String> {
    let (d, g) = (
        runs.get("direct", rate_text),
        runs.get("gateway", rate_text),
    );
    let diff = |k| match (lat(g, k), lat(d, k)) {
        (Some(g), Some(d)) => Some(round(g - d, 3)),
        _ => None,
    };
    let quotient = |k| match (lat(g, k), lat(d, k)) {
        (Some(g), Some(d)) if g != 0.0 && d != 0.0 => Some(round(g / d, 2)),
        _ => None,
    };
    Ok(Row {
        rate: rate(rate_text)?,
        direct: d.cloned(),
        gateway: g.cloned(),
        added_ms: Added {
            p50: diff("p50"),
            p99: diff("p99"),
            max: diff("max"),
        },
        ratio: Ratio {
            p50: quotient("p50"),
            p99: quotient("p99"),
        },
        gateway_held: record::held(g, settings.p99_limit_ms),
        direct_held: record::held(d, settings.p99_limit_ms),
        rate_text: rate_text.into(),
    })
}

fn table(settings: &Settings, rows: &[Row], out: &mut String) {
    say(
        out,
        format!(
            "== gateway overhead: POST /v1/chat/completions, non-stream, {}-token replies, \
             {} s per run after {} s warm-up; chat-service {} worker(s), gateway {} worker(s), SQLite",
            settings.tokens,
            settings.secs,
            settings.warmup_secs,
            settings.chat_workers,
            settings.gateway_workers
        ),
    );
    say(
        out,
        "latency from the scheduled send to the end of the answer, ms",
    );
    say(
        out,
        format!(
            "{:>6} | {:>10} {:>8} {:>8} | {:>11} {:>8} {:>8} | {:>9} {:>8} | {:>9} {:>6} | {:>12} | {:>10}",
            "rate",
            "direct p50",
            "p99",
            "max",
            "gateway p50",
            "p99",
            "max",
            "added p50",
            "p99",
            "ratio p50",
            "p99",
            "errors d/g",
            "achieved g"
        ),
    );
    for r in rows {
        let (d, g) = (r.direct.as_ref(), r.gateway.as_ref());
        let errors = |run: Option<&Value>| {
            run.and_then(|v| v.get("errors"))
                .map_or_else(|| "-".into(), crate::format::plain)
        };
        let errs = format!("{}/{}", errors(d), errors(g));
        say(
            out,
            format!(
                "{:>6} | {} {} {} | {} {} {} | {} {} | {}x {}x | {errs:>12} | {}",
                r.rate_text,
                fixed(lat(d, "p50"), 10, 2),
                fixed(lat(d, "p99"), 8, 2),
                fixed(lat(d, "max"), 8, 2),
                fixed(lat(g, "p50"), 11, 2),
                fixed(lat(g, "p99"), 8, 2),
                fixed(lat(g, "max"), 8, 2),
                fixed(r.added_ms.p50, 9, 2),
                fixed(r.added_ms.p99, 8, 2),
                fixed(r.ratio.p50, 8, 2),
                fixed(r.ratio.p99, 5, 2),
                fixed(g.and_then(|g| g["achieved_rate"].as_f64()), 10, 2),
            ),
        );
    }
}

fn cpu(rows: &[Row], out: &mut String) {
    say(
        out,
        "CPU during the gateway runs (cores busy; ms per request):",
    );
    for r in rows {
        let cpu = r.gateway.as_ref().map(|g| &g["cpu"]);
        let parts: Vec<String> = CPU_NAMES
            .iter()
            .filter_map(|name| {
                let c = cpu.map(|cpu| &cpu[*name]).filter(|c| record::truthy(c))?;
                let cores = c["cores"].as_f64().unwrap_or(f64::NAN);
                Some(match c["ms_per_request"].as_f64() {
                    Some(per) => format!("{name} {cores:.2} ({per:.3} ms/req)"),
                    None => format!("{name} {cores:.2}"),
                })
            })
            .collect();
        say(
            out,
            format!("  {:>5} req/s: {}", r.rate.trunc() as i64, parts.join(", ")),
        );
    }
    let others = |run: &Option<Value>| {
        run.as_ref()
            .and_then(|r| r["cpu"]["others"]["cores"].as_f64())
    };
    let busiest = rows
        .iter()
        .flat_map(|r| [others(&r.direct), others(&r.gateway)])
        .flatten()
        .filter(|cores| *cores > NOISY_CORES)
        .reduce(f64::max);
    if let Some(busiest) = busiest {
        say(
            out,
            format!(
                "  note: other processes used up to {busiest:.2} cores during some runs: noisy figures"
            ),
        );
    }
}

fn split(settings: &Settings, runs: &Runs, out: &mut String) -> Result<Option<Split>, String> {
    let at = settings.split_rate.as_str();
    let Some(c) = runs.get("chat-service", at) else {
        return Ok(None);
    };
    let (d, g) = (runs.get("direct", at), runs.get("gateway", at));
    let c = Some(c);
    say(
        out,
        format!(
            "split at {at} req/s (p50 / p99 ms): direct {} / {}, chat-service alone {} / {}, \
             through the gateway {} / {}",
            fixed(lat(d, "p50"), 0, 2),
            fixed(lat(d, "p99"), 0, 2),
            fixed(lat(c, "p50"), 0, 2),
            fixed(lat(c, "p99"), 0, 2),
            fixed(lat(g, "p50"), 0, 2),
            fixed(lat(g, "p99"), 0, 2),
        ),
    );
    let part = |k| -> Option<Part> {
        let (d, c, g) = (lat(d, k)?, lat(c, k)?, lat(g, k)?);
        Some(Part {
            chat_service_ms: round(c - d, 3),
            gateway_ms: round(g - c, 3),
        })
    };
    let added = match (part("p50"), part("p99")) {
        (Some(p50), Some(p99)) => Some(SplitAdded { p50, p99 }),
        _ => None,
    };
    let chat_service = c.cloned().unwrap_or_default();
    if let Some(a) = added {
        say(
            out,
            format!(
                "  added by chat-service (RAG + SSE + LLM client): {:+.2} / {:+.2} ms; \
                 by the gateway (auth + proxy + re-encoding): {:+.2} / {:+.2} ms",
                a.p50.chat_service_ms, a.p99.chat_service_ms, a.p50.gateway_ms, a.p99.gateway_ms
            ),
        );
        say(
            out,
            format!(
                "  errors: chat-service alone {}",
                crate::format::plain(&chat_service["errors"])
            ),
        );
    }
    Ok(Some(Split {
        rate: rate(at)?,
        chat_service,
        added,
    }))
}

/// The highest rate held with every lower rate held too.
pub fn highest_held(rows: &[Row]) -> Option<f64> {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    sorted
        .iter()
        .take_while(|r| r.gateway_held)
        .last()
        .map(|r| r.rate)
}

/// The issue-18 targets, from the rows.
pub fn targets(rows: &[Row], highest: Option<f64>, p99_limit_ms: f64) -> Vec<Target> {
    let at = rows.iter().find(|r| r.rate == TARGET_RATE_18);
    let added = at.and_then(|r| r.added_ms.p99);
    let memory = |name: &str| {
        at.and_then(|r| r.gateway.as_ref())
            .and_then(|g| g["memory"][name]["rss_kib"].as_f64())
            .map(|kib| kib / 1024.0)
    };
    let (gateway_mib, chat_mib) = (memory("gateway"), memory("chat-service"));
    vec![
        Target::new(
            "added p99 at 1000 req/s (non-stream)".into(),
            "<= 2 ms",
            added,
            "ms",
            added.is_some_and(|a| a <= ADDED_P99_TARGET_MS) && at.is_some_and(|r| r.gateway_held),
        ),
        Target::new(
            format!(
                "saturation (highest rate held, p99 < {} ms)",
                general(p99_limit_ms)
            ),
            ">= 3000 req/s",
            highest,
            "req/s",
            highest.is_some_and(|h| h >= SATURATION_TARGET),
        ),
        Target::new(
            "gateway RSS after 1000 req/s".into(),
            "<= 64 MiB",
            gateway_mib,
            "MiB",
            gateway_mib.is_some_and(|m| m <= GATEWAY_RSS_TARGET_MIB),
        ),
        Target::new(
            "chat-service RSS after 1000 req/s".into(),
            "<= 128 MiB",
            chat_mib,
            "MiB",
            chat_mib.is_some_and(|m| m <= CHAT_RSS_TARGET_MIB),
        ),
    ]
}

/// The summary of the runs; `out` is where the JSON goes (printed).
pub fn report(settings: &Settings, runs: &Runs, out: &str) -> Result<Report, String> {
    let mut text = String::new();
    let rows = runs
        .rates
        .iter()
        .map(|r| row(settings, runs, r))
        .collect::<Result<Vec<_>, _>>()?;
    table(settings, &rows, &mut text);
    cpu(&rows, &mut text);
    let split = split(settings, runs, &mut text)?;

    let below = rows
        .iter()
        .filter(|r| {
            r.gateway
                .as_ref()
                .is_some_and(|g| Run(g).below_error_limit())
        })
        .map(|r| r.rate)
        .reduce(f64::max);
    let highest = highest_held(&rows);
    let limit = general(settings.p99_limit_ms);
    say(
        &mut text,
        format!(
            "highest rate held through the gateway (< 0.1% errors, p99 < {limit} ms): {}{}",
            highest.map_or_else(|| "none".into(), |h| format!("{} req/s", general(h))),
            below.map_or_else(String::new, |b| format!(
                "; highest with < 0.1% errors alone: {} req/s",
                general(b)
            )),
        ),
    );
    let direct_highest = rows
        .iter()
        .filter(|r| r.direct_held)
        .map(|r| r.rate)
        .reduce(f64::max);
    if let Some(h) = direct_highest {
        say(
            &mut text,
            format!(
                "  (the fake server alone held every rate up to {} req/s tried)",
                general(h)
            ),
        );
    }

    let target_rate = rate(&settings.target_rate)?;
    let mut met = None;
    let at_target = rows.iter().find(|r| r.rate == target_rate);
    if let Some((r, added)) = at_target.and_then(|r| Some((r, r.added_ms.p99?))) {
        let ok = added < settings.target_ms && r.gateway_held;
        met = Some(ok);
        say(
            &mut text,
            format!(
                "target: p99 added at {} req/s = {added:.2} ms (< {} ms): {}",
                settings.target_rate,
                general(settings.target_ms),
                if ok { "met" } else { "MISSED" }
            ),
        );
    }
    say(&mut text, "targets:");
    let targets = targets(&rows, highest, settings.p99_limit_ms);
    for t in &targets {
        say(&mut text, t.line(TARGET_LAYOUT));
    }
    let measured = settings
        .fixed_rates
        .iter()
        .all(|r| runs.get("gateway", r).is_some() && runs.get("direct", r).is_some());
    let success = measured && (met == Some(true) || !settings.strict);
    let summary = Summary {
        settings: SettingsOut {
            tokens: settings.tokens,
            secs: number(&settings.secs)?,
            warmup_secs: number(&settings.warmup_secs)?,
            chat_workers: settings.chat_workers,
            gateway_workers: settings.gateway_workers,
            p99_limit_ms: settings.p99_limit_ms,
            fixed_rates: settings
                .fixed_rates
                .iter()
                .map(|r| rate(r))
                .collect::<Result<_, _>>()?,
        },
        rates: rows,
        split,
        highest_rate_held: highest,
        highest_rate_below_error_limit: below,
        target: ScriptTarget {
            rate: target_rate,
            p99_added_ms_limit: settings.target_ms,
            met,
        },
        targets,
        machine: Machine {
            before: runs.machine_before.clone(),
            after: runs.machine_after.clone(),
        },
    };
    say(&mut text, format!("(all figures: {out})"));
    Ok(Report {
        text,
        summary,
        success,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A `rate-load` JSON line (the shape `rate-load` prints).
    fn rate_load(label: &str, rate: f64, p50: f64, p99: f64, error_rate: f64) -> Value {
        let n = (rate * 10.0) as u64;
        let errors = (error_rate * n as f64).round() as u64;
        json!({
            "label": label, "url": "http://127.0.0.1:1/v1/chat/completions", "rate": rate,
            "duration_secs": 10.0, "warmup_secs": 2.0, "scheduled": n,
            "completed": n, "ok_responses": n - errors, "errors": errors,
            "error_rate": error_rate, "errors_by_kind": {}, "achieved_rate": rate,
            "window_secs": 10.0,
            "latency_ms": {"p50": p50, "p90": p50, "p99": p99, "p999": p99, "max": p99 + 1.0, "mean": p50},
            "service_ms": {"p50": p50, "p90": p50, "p99": p99, "p999": p99, "max": p99, "mean": p50},
            "pacing_lag_ms": {"p50": 0.01, "p90": 0.02, "p99": 0.05, "p999": 0.1, "max": 0.2, "mean": 0.01},
            "cpu": {
                "gateway": {"cpu_ms": 1300.0, "cores": 0.13, "ms_per_request": 0.633},
                "rate-load": {"cpu_ms": 300.0, "cores": 0.03, "ms_per_request": 0.15},
                "machine": {"cpu_ms": 2000.0, "cores": 0.2, "ms_per_request": 1.0},
                "others": {"cpu_ms": 400.0, "cores": 0.04}
            },
            "memory": {
                "gateway": {"rss_kib": 50 * 1024, "peak_rss_kib": 60 * 1024},
                "chat-service": {"rss_kib": 100 * 1024, "peak_rss_kib": 110 * 1024}
            },
            "warmup": {"sent": n / 5, "errors": 0},
            "error_messages": [],
            "ok": error_rate < 0.001,
        })
    }

    fn settings(fixed: &[&str]) -> Settings {
        Settings {
            tokens: 8,
            secs: "10".into(),
            warmup_secs: "2".into(),
            chat_workers: 1,
            gateway_workers: 1,
            p99_limit_ms: 100.0,
            fixed_rates: fixed.iter().map(|r| r.to_string()).collect(),
            split_rate: "500".into(),
            target_rate: "500".into(),
            target_ms: 5.0,
            strict: false,
        }
    }

    /// Runs at each `(rate, gateway p99, gateway error rate)`; direct
    /// answers in 0.3 / 0.5 ms, the gateway's median is 2 ms.
    fn runs(rates: &[(&str, f64, f64)]) -> Runs {
        let mut figures = BTreeMap::new();
        for (rate, p99, error_rate) in rates {
            let r: f64 = rate.parse().unwrap();
            figures.insert(
                format!("direct-{rate}"),
                rate_load("direct", r, 0.3, 0.5, 0.0),
            );
            figures.insert(
                format!("gateway-{rate}"),
                rate_load("gateway", r, 2.0, *p99, *error_rate),
            );
        }
        Runs {
            rates: rates.iter().map(|(r, ..)| r.to_string()).collect(),
            figures,
            machine_before: "== machine before the runs\n".into(),
            machine_after: "== machine after the runs\n".into(),
        }
    }

    fn set_rss(runs: &mut Runs, rate: &str, process: &str, mib: u64) {
        let g = runs.figures.get_mut(&format!("gateway-{rate}")).unwrap();
        g["memory"][process]["rss_kib"] = json!(mib * 1024);
    }

    #[test]
    fn every_target_passes() {
        let s = settings(&["500", "1000"]);
        let r = runs(&[
            ("500", 2.4, 0.0),
            ("1000", 2.4, 0.0),
            ("2000", 5.0, 0.0),
            ("3000", 50.0, 0.0),
        ]);
        let report = report(&s, &r, "out.json").unwrap();
        assert_eq!(
            crate::target::verdicts(&report.summary.targets),
            ["PASS"; 4]
        );
        assert_eq!(report.summary.highest_rate_held, Some(3000.0));
        let added = report.summary.rates[1].added_ms;
        assert_eq!(added.p99, Some(1.9));
        assert_eq!(report.summary.targets[0].figure, Some(1.9));
        assert_eq!(report.summary.targets[2].figure, Some(50.0));
        assert!(report.success);
        assert!(report.text.contains(
            "  saturation (highest rate held, p99 < 100 ms)       target >= 3000 req/s  figure 3000.00 req/s  PASS\n"
        ));
        assert!(
            report
                .text
                .contains("target: p99 added at 500 req/s = 1.90 ms (< 5 ms): met\n")
        );
    }

    #[test]
    fn each_target_can_be_missed() {
        let s = settings(&["1000"]);
        // 2.6 ms added at 1000 req/s; 2000 req/s not held (p99 over the limit).
        let mut r = runs(&[
            ("1000", 3.1, 0.0),
            ("2000", 150.0, 0.0),
            ("3000", 50.0, 0.0),
        ]);
        set_rss(&mut r, "1000", "gateway", 65);
        set_rss(&mut r, "1000", "chat-service", 129);
        let report = report(&s, &r, "out.json").unwrap();
        assert_eq!(
            crate::target::verdicts(&report.summary.targets),
            ["MISS"; 4]
        );
        assert_eq!(
            report.summary.highest_rate_held,
            Some(1000.0),
            "3000 req/s held, but 2000 was not"
        );
        assert_eq!(report.summary.highest_rate_below_error_limit, Some(3000.0));
        assert!(report.text.contains(
            "  added p99 at 1000 req/s (non-stream)               target <= 2 ms        figure 2.60 ms        MISS\n"
        ));
        assert!(report.success, "a MISS does not fail the run");
    }

    #[test]
    fn added_p99_within_the_target_misses_when_the_rate_is_not_held() {
        let s = settings(&["1000"]);
        let r = runs(&[("1000", 1.0, 0.002)]);
        let report = report(&s, &r, "out.json").unwrap();
        assert_eq!(report.summary.targets[0].figure, Some(0.5));
        assert_eq!(report.summary.targets[0].verdict.as_str(), "MISS");
        assert_eq!(report.summary.highest_rate_held, None);
        assert_eq!(report.summary.highest_rate_below_error_limit, None);
        assert!(
            report
                .text
                .contains("(< 0.1% errors, p99 < 100 ms): none\n")
        );
    }

    #[test]
    fn unmeasured_targets_have_no_verdict() {
        let s = settings(&["200"]);
        let report = report(&s, &runs(&[("200", 150.0, 0.0)]), "out.json").unwrap();
        assert_eq!(
            crate::target::verdicts(&report.summary.targets),
            ["-", "-", "-", "-"]
        );
        assert!(report.text.contains("figure -              -\n"));
    }

    #[test]
    fn exit_status() {
        let r = runs(&[("500", 2.4, 0.0), ("1000", 2.4, 0.0)]);
        let mut s = settings(&["500", "1000"]);
        assert!(report(&s, &r, "o").unwrap().success);
        s.strict = true;
        assert!(report(&s, &r, "o").unwrap().success, "strict, target met");
        s.target_ms = 1.0;
        let missed = report(&s, &r, "o").unwrap();
        assert_eq!(missed.summary.target.met, Some(false));
        assert!(missed.text.contains("(< 1 ms): MISSED\n"));
        assert!(!missed.success, "strict, target missed");
        s.strict = false;
        assert!(
            report(&s, &r, "o").unwrap().success,
            "not strict, target missed"
        );
        s.strict = true;
        s.target_ms = 5.0;
        s.target_rate = "750".into();
        let unmeasured = report(&s, &r, "o").unwrap();
        assert_eq!(unmeasured.summary.target.met, None);
        assert!(!unmeasured.success, "strict, target rate not run");
        s.strict = false;
        s.fixed_rates.push("2000".into());
        assert!(
            !report(&s, &r, "o").unwrap().success,
            "a fixed rate without figures"
        );
    }

    #[test]
    fn table_and_split_lines() {
        let s = settings(&["500"]);
        let mut r = runs(&[("500", 2.4, 0.0)]);
        let chat = rate_load("chat-service", 500.0, 1.5, 2.0, 0.0);
        r.figures.insert("chat-service-500".into(), chat);
        let report = report(&s, &r, "out.json").unwrap();
        let lines: Vec<&str> = report.text.lines().collect();
        assert_eq!(
            lines[3],
            "   500 |       0.30     0.50     1.50 |        2.00     2.40     3.40 |      1.70     1.90 |     6.67x  4.80x |          0/0 |     500.00"
        );
        assert_eq!(
            lines[5],
            "    500 req/s: gateway 0.13 (0.633 ms/req), rate-load 0.03 (0.150 ms/req), others 0.04"
        );
        assert!(report.text.contains(
            "  added by chat-service (RAG + SSE + LLM client): +1.20 / +1.50 ms; by the gateway (auth + proxy + re-encoding): +0.50 / +0.40 ms\n"
        ));
        let split = report.summary.split.unwrap().added.unwrap();
        assert_eq!(split.p99.gateway_ms, 0.4);
    }

    #[test]
    fn json_keys_in_order() {
        let s = settings(&["500"]);
        let report = report(&s, &runs(&[("500", 2.4, 0.0)]), "o").unwrap();
        let text = serde_json::to_string(&report.summary).unwrap();
        let keys = [
            "\"settings\"",
            "\"tokens\"",
            "\"fixed_rates\"",
            "\"rates\"",
            "\"added_ms\"",
            "\"gateway_held\"",
            "\"direct_held\"",
            "\"split\":null",
            "\"highest_rate_held\"",
            "\"highest_rate_below_error_limit\"",
            "\"target\":{\"rate\":500.0,\"p99_added_ms_limit\":5.0,\"met\":true}",
            "\"targets\"",
            "\"machine\"",
        ];
        let mut from = 0;
        for key in keys {
            let at = text[from..]
                .find(key)
                .unwrap_or_else(|| panic!("{key} after {from}"));
            from += at;
        }
    }
}
