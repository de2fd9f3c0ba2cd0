//! The summary of `scripts/bench-ws.sh`: the `ws-load` figures of the
//! baseline (`direct`), the conversations through chat-service (`chat`)
//! and the idle connections (`idle`), compared, with the issue-18 targets
//! and PASS/MISS.

use serde::Serialize;
use serde_json::Value;

use crate::format::{mib, plain, round};
use crate::record::truthy;
use crate::target::{Layout, Target};

/// Issue 18: TTFT p99 added by chat-service, all first messages at once, ms.
const ADDED_TTFT_P99_TARGET_MS: f64 = 100.0;
/// Issue 18: RSS per idle WebSocket, KiB.
const IDLE_RSS_TARGET_KIB: f64 = 16.0;

const TARGET_LAYOUT: Layout = Layout {
    name: 58,
    value: 12,
    decimals: 1,
};

/// How the benchmark ran (the script's settings).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Settings {
    /// Concurrent conversations.
    pub conversations: u64,
    /// Rounds of chat and of direct.
    pub rounds: u64,
    /// Idle connections.
    pub idle: u64,
    /// Tokens per reply.
    pub tokens: u64,
    /// ms before each token.
    pub delay_ms: u64,
    /// chat-service's HTTP workers.
    pub workers: u64,
}

/// One percentile, direct against through chat-service.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Comparison {
    /// Straight to the fake server, ms.
    pub direct_ms: f64,
    /// Through chat-service, ms.
    pub chat_ms: f64,
    /// The difference, ms.
    pub added_ms: f64,
    /// chat / direct (`null` when direct is 0).
    pub ratio: f64,
}

/// [`Comparison`] of the median and of the p99.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// The median.
    pub p50: Comparison,
    /// The p99.
    pub p99: Comparison,
}

/// Time to first token: of rounds 2.. (when there were several), of all.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Ttft {
    /// Rounds 2.. (upstream connections pooled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm: Option<Percentiles>,
    /// Every round.
    pub all: Percentiles,
}

/// A median and a p99, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pair {
    /// The median.
    pub p50: f64,
    /// The p99.
    pub p99: f64,
}

/// chat-service's RSS around one round, KiB.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundRss {
    before: Value,
    open: Value,
    peak: Value,
    after_close: Value,
}

/// One round, direct against through chat-service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Round {
    round: Value,
    direct_ttft_ms: Pair,
    chat_ttft_ms: Pair,
    rss_kib: RoundRss,
    /// chat-service CPU per conversation from the send to the last answer, ms.
    cpu_ms_per_conversation: Value,
    tokens_delivered: Value,
    tokens_sent: Value,
    errors: Value,
    connect_errors: Value,
}

/// Everything, as written to the JSON file.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// How it ran.
    pub settings: Settings,
    /// Time to first token.
    pub ttft: Ttft,
    /// Per round.
    pub rounds: Vec<Round>,
    /// Tokens delivered / sent through chat-service.
    pub tokens_ratio: Value,
    /// chat-service's RSS after each round's close, KiB.
    pub rss_after_close_kib: Value,
    /// First to last of those, KiB.
    pub rss_growth_kib: Value,
    /// RSS per idle connection, bytes.
    pub idle_rss_per_connection_bytes: Value,
    /// The issue-18 targets.
    pub targets: Vec<Target>,
    /// Every conversation got its whole answer, every idle connection stayed open.
    pub ok: bool,
    /// The baseline's figures.
    pub direct: Value,
    /// The conversations' figures.
    pub chat: Value,
    /// The idle connections' figures.
    pub idle: Value,
}

/// The printed summary, the JSON one, and the exit status.
#[derive(Debug, Clone)]
pub struct Report {
    /// The lines to print.
    pub text: String,
    /// The figures to write.
    pub summary: Summary,
    /// Same as `summary.ok`.
    pub success: bool,
}

/// The three runs' figures.
#[derive(Debug, Clone, Copy)]
pub struct Runs<'a> {
    /// `ws-load direct`.
    pub direct: &'a Value,
    /// `ws-load chat`.
    pub chat: &'a Value,
    /// `ws-load idle`.
    pub idle: &'a Value,
}

fn say(out: &mut String, line: impl AsRef<str>) {
    out.push_str(line.as_ref());
    out.push('\n');
}

/// The number at `v[a][b]...`, which must be there.
fn num(v: &Value, what: &str, path: &[&str]) -> Result<f64, String> {
    path.iter()
        .fold(v, |v, key| &v[*key])
        .as_f64()
        .ok_or_else(|| format!("{what}: no number at {}", path.join(".")))
}

fn compare(
    runs: Runs<'_>,
    name: &str,
    field: &str,
    key: &str,
    out: &mut String,
) -> Result<Comparison, String> {
    let d = num(runs.direct, "direct", &[field, key])?;
    let c = num(runs.chat, "chat", &[field, key])?;
    let ratio = if d != 0.0 { c / d } else { f64::INFINITY };
    say(
        out,
        format!(
            "  {name:<6} direct {d:8.1} ms   through chat-service {c:8.1} ms   added {:+8.1} ms   ratio {ratio:6.2}x",
            c - d
        ),
    );
    Ok(Comparison {
        direct_ms: d,
        chat_ms: c,
        added_ms: round(c - d, 2),
        ratio: round(ratio, 3),
    })
}

fn percentiles(runs: Runs<'_>, field: &str, out: &mut String) -> Result<Percentiles, String> {
    Ok(Percentiles {
        p50: compare(runs, "median", field, "p50", out)?,
        p99: compare(runs, "p99", field, "p99", out)?,
    })
}

fn round_of(d: &Value, c: &Value, settings: &Settings, out: &mut String) -> Result<Round, String> {
    let pair = |v: &Value, what| -> Result<Pair, String> {
        Ok(Pair {
            p50: num(v, what, &["ttft_ms", "p50"])?,
            p99: num(v, what, &["ttft_ms", "p99"])?,
        })
    };
    let (dt, ct) = (pair(d, "direct round")?, pair(c, "chat round")?);
    let s = &c["server"];
    let (before, opened, after) = (
        &s["before"]["rss_kib"],
        &s["open"]["rss_kib"],
        &s["after_close"]["rss_kib"],
    );
    say(
        out,
        format!(
            "  round {}: {:7.1} / {:7.1} ms  vs  {:7.1} / {:7.1} ms (added {:+.1} / {:+.1} ms)",
            plain(&c["round"]),
            dt.p50,
            dt.p99,
            ct.p50,
            ct.p99,
            ct.p50 - dt.p50,
            ct.p99 - dt.p99
        ),
    );
    let mut timeline: Vec<(&String, f64)> = match c["timeline_ms"].as_object() {
        Some(events) => events
            .iter()
            .map(|(k, v)| Ok((k, num(v, "chat round timeline", &["p50"])?)))
            .collect::<Result<_, String>>()?,
        None => Vec::new(),
    };
    timeline.sort_by(|a, b| a.1.total_cmp(&b.1));
    say(
        out,
        format!(
            "           chat-service events from the send, median: {}",
            timeline
                .iter()
                .map(|(k, p50)| format!("{k} {p50:.0} ms"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    say(
        out,
        format!(
            "           RSS: before {}, {} open {}, peak {}, after close {}",
            mib(before.as_f64()),
            settings.conversations,
            mib(opened.as_f64()),
            mib(s["peak_rss_kib"].as_f64()),
            mib(after.as_f64())
        ),
    );
    // CPU from the go to the last answer (the handshakes are before `open`).
    let cpu_ms = match (
        s["open"]["cpu_ms"].as_f64(),
        s["all_done"]["cpu_ms"].as_f64(),
    ) {
        (Some(a), Some(b)) if settings.conversations > 0 => {
            let per = (b - a) / settings.conversations as f64;
            say(
                out,
                format!(
                    "           chat-service CPU from the send to the last answer: {:.0} ms, {per:.2} ms per conversation",
                    b - a
                ),
            );
            Value::from(per)
        }
        _ => Value::Null,
    };
    Ok(Round {
        round: c["round"].clone(),
        cpu_ms_per_conversation: cpu_ms,
        direct_ttft_ms: dt,
        chat_ttft_ms: ct,
        rss_kib: RoundRss {
            before: before.clone(),
            open: opened.clone(),
            peak: s["peak_rss_kib"].clone(),
            after_close: after.clone(),
        },
        tokens_delivered: c["tokens_delivered"].clone(),
        tokens_sent: c["tokens_sent"].clone(),
        errors: c["errors"].clone(),
        connect_errors: c["connect_errors"].clone(),
    })
}

/// The issue-18 targets: the added TTFT p99 (of rounds 2.. when there
/// were several) and the RSS per idle connection.
pub fn targets(settings: &Settings, ttft: &Ttft, per_conn_bytes: Option<f64>) -> Vec<Target> {
    let (which, name_tail) = match &ttft.warm {
        Some(warm) => (warm, format!(" (rounds 2..{})", settings.rounds)),
        None => (&ttft.all, String::new()),
    };
    let added = which.p99.added_ms;
    let per_kib = per_conn_bytes.map(|b| b / 1024.0);
    vec![
        Target::new(
            format!(
                "added TTFT p99, {} first messages at once{name_tail}",
                settings.conversations
            ),
            "<= 100 ms",
            Some(added),
            "ms",
            added <= ADDED_TTFT_P99_TARGET_MS,
        ),
        Target::new(
            format!("RSS per idle WebSocket ({} open)", settings.idle),
            "<= 16 KiB",
            per_kib,
            "KiB",
            per_kib.is_some_and(|k| k <= IDLE_RSS_TARGET_KIB),
        ),
    ]
}

/// The summary of the three runs; `out` is where the JSON goes (printed).
pub fn report(settings: &Settings, runs: Runs<'_>, out: &str) -> Result<Report, String> {
    let Runs { direct, chat, idle } = runs;
    let mut text = String::new();
    let t = &mut text;
    say(
        t,
        format!(
            "== figures: {} conversations x {} rounds, {} tokens per reply at {} ms, \
             chat-service on SQLite with {} workers",
            settings.conversations,
            settings.rounds,
            settings.tokens,
            settings.delay_ms,
            settings.workers
        ),
    );
    let warm = if truthy(&direct["ttft_ms_warm"]) && truthy(&chat["ttft_ms_warm"]) {
        // Round 1 opens every upstream connection (on both sides); later
        // rounds reuse them: the steady-state comparison.
        say(
            t,
            format!(
                "time to first token, rounds 2..{} (connections to the LLM server pooled):",
                settings.rounds
            ),
        );
        Some(percentiles(runs, "ttft_ms_warm", t)?)
    } else {
        None
    };
    say(t, "time to first token, all rounds:");
    let ttft = Ttft {
        warm,
        all: percentiles(runs, "ttft_ms", t)?,
    };
    say(t, "per round (median / p99, direct vs chat-service):");
    let empty = Vec::new();
    let list = |v: &Value| v["rounds"].as_array().unwrap_or(&empty).clone();
    let rounds = list(direct)
        .iter()
        .zip(&list(chat))
        .map(|(d, c)| round_of(d, c, settings, t))
        .collect::<Result<Vec<_>, _>>()?;
    say(
        t,
        format!(
            "tokens delivered / sent: {}/{} = {:.4} (direct: {}/{} = {:.4})",
            plain(&chat["tokens_delivered"]),
            plain(&chat["tokens_sent"]),
            num(chat, "chat", &["ratio"])?,
            plain(&direct["tokens_delivered"]),
            plain(&direct["tokens_sent"]),
            num(direct, "direct", &["ratio"])?,
        ),
    );
    let after = match &chat["rss_after_close_kib"] {
        v if truthy(v) => v.clone(),
        _ => Value::Array(Vec::new()),
    };
    let growth = chat["rss_growth_kib"].clone();
    if let Some(after_list) = after.as_array().filter(|a| !a.is_empty()) {
        say(
            t,
            format!(
                "chat-service RSS after each round's close: {}{}",
                after_list
                    .iter()
                    .map(|k| mib(k.as_f64()))
                    .collect::<Vec<_>>()
                    .join(", "),
                growth.as_f64().map_or_else(String::new, |g| format!(
                    "  (first to last {:+.1} MiB)",
                    g / 1024.0
                ))
            ),
        );
    }
    let per_conn = idle["rss_per_connection_bytes"].clone();
    let s = &idle["server"];
    say(
        t,
        format!(
            "idle: {}/{} connected, {} still open after {} s; RSS {} -> {} (after close {}); per connection {}",
            plain(&idle["connected"]),
            plain(&idle["connections"]),
            plain(&idle["still_open"]),
            plain(&idle["hold_secs"]),
            mib(s["before"]["rss_kib"].as_f64()),
            mib(s["open"]["rss_kib"].as_f64()),
            mib(s["after_close"]["rss_kib"].as_f64()),
            per_conn
                .as_f64()
                .map_or_else(|| "-".into(), |b| format!("{:.1} KiB", b / 1024.0)),
        ),
    );
    say(t, "targets:");
    let targets = targets(settings, &ttft, per_conn.as_f64());
    for target in &targets {
        say(t, target.line(TARGET_LAYOUT));
    }
    let ok = truthy(&direct["ok"])
        && truthy(&chat["ok"])
        && truthy(&idle["ok"])
        && chat["ratio"].as_f64() == Some(1.0);
    say(
        t,
        format!(
            "result: {}",
            if ok {
                "OK"
            } else {
                "PROBLEMS (see the rounds above)"
            }
        ),
    );
    say(t, format!("(all figures: {out})"));
    let summary = Summary {
        settings: *settings,
        ttft,
        rounds,
        tokens_ratio: chat["ratio"].clone(),
        rss_after_close_kib: after,
        rss_growth_kib: growth,
        idle_rss_per_connection_bytes: per_conn,
        targets,
        ok,
        direct: direct.clone(),
        chat: chat.clone(),
        idle: idle.clone(),
    };
    Ok(Report {
        text,
        summary,
        success: ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dist(p50: f64, p99: f64) -> Value {
        json!({"n": 100, "min": p50 / 2.0, "p50": p50, "p90": p99, "p99": p99, "max": p99 + 1.0, "mean": p50})
    }

    fn sample(rss_kib: u64) -> Value {
        json!({"rss_kib": rss_kib, "threads": 6, "fds": 20})
    }

    /// `ws-load direct` figures: TTFT 5 / 10 ms in every round.
    fn direct(rounds: u64) -> Value {
        let round = |n: u64| {
            json!({
                "round": n, "wall_secs": 0.5, "ttft_ms": dist(5.0, 10.0), "done_ms": dist(60.0, 70.0),
                "tokens_delivered": 500, "tokens_sent": 500, "content_deltas": 500, "intact": 10,
                "errors": {}, "ok": true
            })
        };
        json!({
            "conversations": 10, "rounds_run": rounds, "tokens_per_answer": 50, "model": "slow",
            "ttft_ms": dist(5.0, 10.0),
            "ttft_ms_warm": if rounds > 1 { dist(4.0, 8.0) } else { Value::Null },
            "tokens_delivered": 500 * rounds, "tokens_sent": 500 * rounds, "ratio": 1.0,
            "rounds": (1..=rounds).map(round).collect::<Vec<_>>(), "ok": true,
            "mode": "direct", "url": "http://127.0.0.1:1/v1/chat/completions"
        })
    }

    /// `ws-load chat` figures: TTFT p99 `p99` ms (warm: `warm_p99`).
    fn chat(rounds: u64, p99: f64, warm_p99: f64) -> Value {
        let round = |n: u64| {
            // 250 ms of CPU between the go and the last answer.
            let (mut open, mut done) = (sample(41 * 1024), sample(45 * 1024));
            open["cpu_ms"] = json!(1000 * n);
            done["cpu_ms"] = json!(1000 * n + 250);
            json!({
                "round": n, "conversations": 10, "connected": 10, "connect_retries": 0,
                "connect_errors": {}, "ramp_secs": 0.1, "wall_secs": 0.6,
                "ready_ms": dist(1.0, 2.0), "ttft_ms": dist(50.0, p99), "done_ms": dist(100.0, 120.0),
                "timeline_ms": {"done": dist(119.0, 130.0), "ready": dist(8.0, 9.0), "token": dist(74.0, 80.0)},
                "tokens_delivered": 500, "tokens_sent": 500, "token_events": 500,
                "usage_completion_tokens": 500, "ratio": 1.0, "intact": 10, "done": 10,
                "finish_reasons": {"stop": 10}, "errors": {}, "server_closed": 0,
                "server": {"before": sample(40 * 1024), "open": open,
                           "peak_rss_kib": 45 * 1024, "all_done": done,
                           "after_close": sample(45 * 1024 + 512)},
                "ok": true
            })
        };
        json!({
            "conversations": 10, "rounds_run": rounds, "tokens_per_answer": 50, "pid": 42,
            "server_initial": sample(40 * 1024), "ttft_ms": dist(55.0, p99),
            "ttft_ms_warm": if rounds > 1 { dist(50.0, warm_p99) } else { Value::Null },
            "tokens_delivered": 500 * rounds, "tokens_sent": 500 * rounds, "ratio": 1.0,
            "rss_after_close_kib": (1..=rounds).map(|_| 45 * 1024 + 512).collect::<Vec<_>>(),
            "rss_growth_kib": if rounds > 1 { json!(0) } else { Value::Null },
            "rounds": (1..=rounds).map(round).collect::<Vec<_>>(), "ok": true,
            "mode": "chat", "url": "ws://127.0.0.1:2/ws/chat"
        })
    }

    /// `ws-load idle` figures: `per_conn` bytes per connection.
    fn idle(per_conn: Option<f64>) -> Value {
        json!({
            "connections": 200, "connected": 200, "connect_retries": 0, "connect_errors": {},
            "ramp_secs": 0.2, "hold_secs": 5, "still_open": 200, "pid": 43,
            "server": {"before": sample(38 * 1024), "open": sample(39 * 1024),
                       "held": sample(39 * 1024), "after_close": sample(39 * 1024)},
            "rss_per_connection_bytes": per_conn, "rss_per_connection_bytes_held": per_conn,
            "ok": true, "mode": "idle", "url": "ws://127.0.0.1:2/ws/chat"
        })
    }

    fn settings(rounds: u64) -> Settings {
        Settings {
            conversations: 10,
            rounds,
            idle: 200,
            tokens: 50,
            delay_ms: 5,
            workers: 2,
        }
    }

    fn run(rounds: u64, d: &Value, c: &Value, i: &Value) -> Report {
        let runs = Runs {
            direct: d,
            chat: c,
            idle: i,
        };
        report(&settings(rounds), runs, "out.json").unwrap()
    }

    #[test]
    fn targets_pass_on_the_warm_rounds() {
        // All rounds: 200 ms p99 (over the target); rounds 2..: 60 ms.
        let r = run(3, &direct(3), &chat(3, 200.0, 60.0), &idle(Some(3174.0)));
        assert_eq!(
            crate::target::verdicts(&r.summary.targets),
            ["PASS", "PASS"]
        );
        let t = &r.summary.targets;
        assert_eq!(
            t[0].name,
            "added TTFT p99, 10 first messages at once (rounds 2..3)"
        );
        assert_eq!(t[0].figure, Some(52.0));
        assert!(r.success);
        assert!(r.text.contains(
            "  added TTFT p99, 10 first messages at once (rounds 2..3)    target <= 100 ms    figure 52.0 ms      PASS\n"
        ));
        assert!(r.text.contains(
            "  p99    direct      8.0 ms   through chat-service     60.0 ms   added    +52.0 ms   ratio   7.50x\n"
        ));
        assert!(r.text.contains(
            "           chat-service events from the send, median: ready 8 ms, token 74 ms, done 119 ms\n"
        ));
        assert!(r.text.contains(
            "           RSS: before 40.0 MiB, 10 open 41.0 MiB, peak 45.0 MiB, after close 45.5 MiB\n"
        ));
        assert!(r.text.contains(
            "           chat-service CPU from the send to the last answer: 250 ms, 25.00 ms per conversation\n"
        ));
        assert!(r.text.contains("result: OK\n"));
    }

    #[test]
    fn targets_missed() {
        let r = run(
            3,
            &direct(3),
            &chat(3, 50.0, 108.5),
            &idle(Some(16.5 * 1024.0)),
        );
        assert_eq!(
            crate::target::verdicts(&r.summary.targets),
            ["MISS", "MISS"]
        );
        assert_eq!(r.summary.targets[0].figure, Some(100.5));
        assert_eq!(r.summary.targets[1].figure, Some(16.5));
        assert!(r.success, "a MISS does not fail the run");
    }

    #[test]
    fn the_limits_themselves_pass() {
        // Added p99 108 - 8 = 100 ms; 16 KiB per idle connection.
        let r = run(
            2,
            &direct(2),
            &chat(2, 50.0, 108.0),
            &idle(Some(16.0 * 1024.0)),
        );
        assert_eq!(r.summary.targets[0].figure, Some(100.0));
        assert_eq!(
            crate::target::verdicts(&r.summary.targets),
            ["PASS", "PASS"]
        );
    }

    #[test]
    fn one_round_compares_every_round_and_no_idle_figure_has_no_verdict() {
        let r = run(1, &direct(1), &chat(1, 110.5, 0.0), &idle(None));
        assert!(r.summary.ttft.warm.is_none());
        assert_eq!(
            r.summary.targets[0].name,
            "added TTFT p99, 10 first messages at once"
        );
        assert_eq!(crate::target::verdicts(&r.summary.targets), ["MISS", "-"]);
        assert!(!r.text.contains("rounds 2.."));
        assert!(r.text.contains("; per connection -\n"));
        let json = serde_json::to_value(&r.summary).unwrap();
        assert!(json["ttft"].get("warm").is_none());
        assert_eq!(json["idle_rss_per_connection_bytes"], Value::Null);
    }

    #[test]
    fn ok_needs_every_token_and_every_run_ok() {
        let (d, i) = (direct(2), idle(Some(3000.0)));
        assert!(run(2, &d, &chat(2, 60.0, 60.0), &i).success);
        let mut lost = chat(2, 60.0, 60.0);
        lost["ratio"] = json!(0.998);
        let r = run(2, &d, &lost, &i);
        assert!(!r.success && !r.summary.ok);
        assert!(r.text.contains("result: PROBLEMS (see the rounds above)\n"));
        let mut closed = idle(Some(3000.0));
        closed["ok"] = json!(false);
        assert!(!run(2, &d, &chat(2, 60.0, 60.0), &closed).success);
        let mut failed = direct(2);
        failed["ok"] = json!(false);
        assert!(!run(2, &failed, &chat(2, 60.0, 60.0), &i).success);
    }

    #[test]
    fn a_zero_baseline_gives_no_ratio() {
        let mut d = direct(1);
        d["ttft_ms"]["p50"] = json!(0.0);
        let r = run(1, &d, &chat(1, 60.0, 0.0), &idle(None));
        assert!(r.summary.ttft.all.p50.ratio.is_infinite());
        assert!(r.text.contains("ratio    infx\n"));
        let json = serde_json::to_value(&r.summary).unwrap();
        assert_eq!(json["ttft"]["all"]["p50"]["ratio"], Value::Null);
    }

    #[test]
    fn missing_figures_are_an_error() {
        let mut c = chat(1, 60.0, 0.0);
        c["ttft_ms"] = Value::Null;
        let runs = Runs {
            direct: &direct(1),
            chat: &c,
            idle: &idle(None),
        };
        assert!(report(&settings(1), runs, "o").is_err());
    }
}
