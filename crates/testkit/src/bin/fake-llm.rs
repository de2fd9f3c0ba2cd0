//! `fake-llm`: the fake LLM server of `confab_testkit::fake_llm` as a
//! standalone process, for benchmarks and manual testing.
//!
//! ```text
//! fake-llm [--port P] [--delay-ms D] [--tokens N] [--dimensions N]
//! ```
//!
//! Prints `listening on http://127.0.0.1:PORT` once it accepts connections
//! and runs until Ctrl-C or SIGTERM.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use confab_testkit::fake_llm::{FakeLlm, FakeLlmConfig};

const USAGE: &str = "usage: fake-llm [--port P] [--delay-ms D] [--tokens N] [--dimensions N]

  --port P         port on 127.0.0.1 to listen on (default 0: any free port)
  --delay-ms D     delay before every streamed token of every model
                   (default: 0, and 50 ms for the `slow` model)
  --tokens N       echo-style replies are exactly N tokens `tok0 tok1 ...`
  --dimensions N   embedding vector length (default 8)";

/// Parsed command line.
struct Args {
    port: u16,
    config: FakeLlmConfig,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut port = 0u16;
    let mut config = FakeLlmConfig::default();
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
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a non-negative integer: {v}"))
        };
        match flag.as_str() {
            "--port" => {
                port = u16::try_from(number(value()?)?)
                    .map_err(|_| format!("{flag}: not a port number"))?;
            }
            "--delay-ms" => {
                let delay = Duration::from_millis(number(value()?)?);
                config.token_delay = delay;
                config.stream_delay = delay;
            }
            "--tokens" => {
                config.tokens = Some(
                    usize::try_from(number(value()?)?).map_err(|_| format!("{flag}: too large"))?,
                );
            }
            "--dimensions" => {
                config.embedding_dimensions =
                    usize::try_from(number(value()?)?).map_err(|_| format!("{flag}: too large"))?;
            }
            _ => return Err(format!("unknown argument: {flag}")),
        }
    }
    Ok(Some(Args { port, config }))
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
            eprintln!("fake-llm: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let fake = match FakeLlm::bind(addr, args.config).await {
        Ok(fake) => fake,
        Err(e) => {
            eprintln!("fake-llm: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", fake.base_url());
    let _ = std::io::stdout().flush();
    if let Err(e) = shutdown_signal().await {
        eprintln!("fake-llm: cannot wait for a shutdown signal: {e}");
        return ExitCode::FAILURE;
    }
    drop(fake);
    ExitCode::SUCCESS
}

/// Resolves on Ctrl-C, or on SIGTERM on Unix.
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
