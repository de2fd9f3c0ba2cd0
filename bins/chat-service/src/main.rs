//! The chat-service binary: reads the environment, starts the server,
//! prints `listening on http://ADDR`, and shuts down gracefully on
//! SIGINT/SIGTERM (a second signal stops at once).

use std::io::Write as _;
use std::process::ExitCode;

use chat_service::{Config, Stopper};
use confab_web::{Vars, init_tracing};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Vars::from_env()
        .map_err(chat_service::StartError::from)
        .and_then(|vars| Config::from_vars(&vars))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chat-service: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config.log);
    if config.metrics.token.is_none() && !chat_service::config::is_loopback_bind(&config.http.bind)
    {
        tracing::warn!(
            bind = %config.http.bind,
            "GET /metrics is open to anyone who reaches this address: METRICS_TOKEN is unset"
        );
    }
    if config.unauthenticated_bind {
        tracing::warn!(
            bind = %config.http.bind,
            "listening beyond loopback WITHOUT AGENT_RUNTIME__INTERNAL_API_KEY ({}=1): anyone who \
             reaches this port can act as any user",
            chat_service::config::ALLOW_NO_KEY_VAR
        );
    }
    let grace = config.http.shutdown_grace;
    let running = match chat_service::start(config).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("chat-service: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", running.url());
    let _ = std::io::stdout().flush();
    tracing::info!(addr = %running.addr(), "chat-service started");

    tokio::spawn(stop_on_signals(running.stopper(), grace));
    match running.wait().await {
        Ok(()) => {
            tracing::info!("chat-service stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

/// First SIGINT/SIGTERM: graceful stop (streams told to finish, requests
/// get `grace`); a second one: immediate stop.
async fn stop_on_signals(stopper: Stopper, grace: std::time::Duration) {
    if confab_web::shutdown_signal().await.is_err() {
        return;
    }
    tracing::info!(grace_secs = grace.as_secs(), "shutting down");
    let graceful = stopper.clone();
    tokio::spawn(async move { graceful.stop(true).await });
    if confab_web::shutdown_signal().await.is_ok() {
        tracing::warn!("second signal: stopping now");
        stopper.stop(false).await;
    }
}
