//! `bench-report`: the decisions and summaries of the benchmark scripts
//! (`scripts/bench-gateway.sh`, `scripts/bench-ws.sh`, and through the
//! first `scripts/ci-perf.sh`), over the JSON the load tools print
//! (`rate-load`, `ws-load`).
//!
//! ```text
//! bench-report held FILE --p99-limit-ms MS
//! bench-report search-rates --fixed "200 500 1000" RATE...
//! bench-report json-field PATH < FILE
//! bench-report gateway --work DIR --out FILE --fixed-rates "..." [--strict] ... RATE...
//! bench-report ws --direct FILE --chat FILE --idle FILE --out FILE ...
//! ```
//!
//! Exit status: `held` 0 when the rate was held, 1 when not; `gateway`
//! and `ws` 0 when the run counts as measured (see their usage), 1 when
//! not; 2 for bad arguments or unreadable figures.

mod args;
mod format;
mod gateway;
mod record;
mod target;
mod ws;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use args::Args;

const USAGE: &str = "usage: bench-report <command> [options]

commands:
  held FILE --p99-limit-ms MS
        exit 0 when the rate-load run in FILE held its rate (< 0.1% errors,
        p99 below MS), 1 when not
  search-rates --fixed \"R1 R2 ...\" RATE...
        print the RATEs above every fixed rate, one a line, in order
  json-field PATH
        print the field at the dotted PATH (a.b.0.c) of the JSON on stdin
  gateway --work DIR --out FILE --fixed-rates \"R1 R2 ...\" --split-rate R
          --target-rate R --target-ms MS --p99-limit-ms MS --tokens N --secs S
          --warmup-secs S --chat-workers N --gateway-workers N [--strict] RATE...
        the gateway benchmark's summary of the runs of each RATE (rate-load
        figures DIR/direct-RATE.json, DIR/gateway-RATE.json, and
        DIR/chat-service-R.json of the split rate), figures written to FILE;
        exit 1 when a fixed rate was not measured, or with --strict when the
        target (p99 added below --target-ms at --target-rate) was not met
  ws --direct FILE --chat FILE --idle FILE --out FILE --conversations N
     --rounds N --idle-connections N --tokens N --delay-ms N --workers N
        the WebSocket benchmark's summary of the three ws-load runs, figures
        written to --out; exit 1 unless every conversation got its whole
        answer and every idle connection stayed open";

/// Exit status for bad arguments or unreadable figures.
const TROUBLE: u8 = 2;

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().unwrap_or_default();
    let result = match command.as_str() {
        "held" => Args::parse(argv, &[]).and_then(held),
        "search-rates" => Args::parse(argv, &[]).and_then(search_rates),
        "json-field" => Args::parse(argv, &[]).and_then(json_field),
        "gateway" => Args::parse(argv, &["strict"]).and_then(gateway),
        "ws" => Args::parse(argv, &[]).and_then(ws),
        "--help" | "-h" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench-report {command}: {e}");
            ExitCode::from(TROUBLE)
        }
    }
}

fn one_positional(args: &mut Args, what: &str) -> Result<String, String> {
    let mut positional = args.positional();
    match (positional.pop(), positional.is_empty()) {
        (Some(one), true) => Ok(one),
        _ => Err(format!("one {what} expected")),
    }
}

/// `held FILE --p99-limit-ms MS`.
fn held(mut args: Args) -> Result<bool, String> {
    let limit: f64 = args.parsed("p99-limit-ms")?;
    let file = one_positional(&mut args, "file")?;
    args.finish()?;
    let run = record::load(Path::new(&file))?;
    Ok(record::held(run.as_ref(), limit))
}

/// The rates of `search` above every rate of `fixed` (and above 0).
fn rates_above(fixed: &[f64], search: &[(String, f64)]) -> Vec<String> {
    let top = fixed.iter().copied().fold(0.0, f64::max);
    search
        .iter()
        .filter(|(_, rate)| *rate > top)
        .map(|(text, _)| text.clone())
        .collect()
}

fn parse_rate(text: &str) -> Result<f64, String> {
    text.parse().map_err(|_| format!("not a rate: {text:?}"))
}

/// `search-rates --fixed "..." RATE...`.
fn search_rates(mut args: Args) -> Result<bool, String> {
    let fixed = args
        .text("fixed")?
        .split_whitespace()
        .map(parse_rate)
        .collect::<Result<Vec<_>, _>>()?;
    let search = args
        .positional()
        .into_iter()
        .map(|r| parse_rate(&r).map(|x| (r, x)))
        .collect::<Result<Vec<_>, _>>()?;
    args.finish()?;
    for rate in rates_above(&fixed, &search) {
        println!("{rate}");
    }
    Ok(true)
}

/// `json-field PATH < FILE`.
fn json_field(mut args: Args) -> Result<bool, String> {
    let path = one_positional(&mut args, "path")?;
    args.finish()?;
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("stdin is not JSON: {e}"))?;
    let field = record::field(&v, &path).ok_or_else(|| format!("no field {path}"))?;
    println!("{}", format::plain(field));
    Ok(true)
}

fn write_json(out: &Path, summary: &impl Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(summary)
        .map_err(|e| format!("cannot encode the figures: {e}"))?;
    std::fs::write(out, text).map_err(|e| format!("cannot write {}: {e}", out.display()))
}

/// `gateway ...`.
fn gateway(mut args: Args) -> Result<bool, String> {
    let work = PathBuf::from(args.text("work")?);
    let out = PathBuf::from(args.text("out")?);
    let settings = gateway::Settings {
        tokens: args.parsed("tokens")?,
        secs: args.text("secs")?,
        warmup_secs: args.text("warmup-secs")?,
        chat_workers: args.parsed("chat-workers")?,
        gateway_workers: args.parsed("gateway-workers")?,
        p99_limit_ms: args.parsed("p99-limit-ms")?,
        fixed_rates: args
            .text("fixed-rates")?
            .split_whitespace()
            .map(String::from)
            .collect(),
        split_rate: args.text("split-rate")?,
        target_rate: args.text("target-rate")?,
        target_ms: args.parsed("target-ms")?,
        strict: args.flag("strict"),
    };
    let rates = args.positional();
    args.finish()?;
    let runs = gateway::Runs::read(&work, &settings, rates)?;
    let report = gateway::report(&settings, &runs, &out.display().to_string())?;
    write_json(&out, &report.summary)?;
    print!("{}", report.text);
    Ok(report.success)
}

/// `ws ...`.
fn ws(mut args: Args) -> Result<bool, String> {
    let direct = record::load_required(Path::new(&args.text("direct")?))?;
    let chat = record::load_required(Path::new(&args.text("chat")?))?;
    let idle = record::load_required(Path::new(&args.text("idle")?))?;
    let out = PathBuf::from(args.text("out")?);
    let settings = ws::Settings {
        conversations: args.parsed("conversations")?,
        rounds: args.parsed("rounds")?,
        idle: args.parsed("idle-connections")?,
        tokens: args.parsed("tokens")?,
        delay_ms: args.parsed("delay-ms")?,
        workers: args.parsed("workers")?,
    };
    args.finish()?;
    let runs = ws::Runs {
        direct: &direct,
        chat: &chat,
        idle: &idle,
    };
    let report = ws::report(&settings, runs, &out.display().to_string())?;
    write_json(&out, &report.summary)?;
    print!("{}", report.text);
    Ok(report.success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_rates_are_those_above_the_fixed_ones() {
        let search = |rates: &[&str]| -> Vec<(String, f64)> {
            rates
                .iter()
                .map(|r| (r.to_string(), r.parse().unwrap()))
                .collect()
        };
        let s = search(&["1000", "1500", "2000.5", "800"]);
        assert_eq!(rates_above(&[200.0, 500.0, 1000.0], &s), ["1500", "2000.5"]);
        assert_eq!(rates_above(&[], &search(&["1", "0"])), ["1"]);
        assert!(rates_above(&[5000.0], &s).is_empty());
    }
}
