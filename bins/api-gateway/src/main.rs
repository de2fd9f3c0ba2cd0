//! The api-gateway binary: `api-gateway` serves (prints `listening on
//! http://ADDR`), `api-gateway import-courses PATH` imports a catalogue
//! folder or JSON file into the database and exits.

use std::io::Write as _;
use std::process::ExitCode;

use api_gateway::Config;
use confab_web::{Vars, init_tracing};

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Vars::from_env()
        .map_err(api_gateway::StartError::from)
        .and_then(|vars| Config::from_vars(&vars))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("api-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config.log);
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => serve(config).await,
        Some("import-courses") => match args.get(1) {
            Some(path) => import(config, path).await,
            None => {
                eprintln!("usage: api-gateway import-courses PATH");
                ExitCode::from(2)
            }
        },
        Some(other) => {
            eprintln!("api-gateway: unknown command `{other}` (try: import-courses PATH)");
            ExitCode::from(2)
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    if config.metrics_exposed() {
        tracing::warn!(
            bind = %config.http.bind,
            "GET /metrics is open to anyone who reaches this address: METRICS_TOKEN is unset \
             (set it, or keep /metrics off the public network at the proxy)"
        );
    }
    let running = match api_gateway::start(config).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("api-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", running.url());
    let _ = std::io::stdout().flush();
    let handle = running.handle();
    tokio::spawn(async move {
        if confab_web::shutdown_signal().await.is_ok() {
            tracing::info!("shutting down");
            handle.stop(true).await;
        }
    });
    match running.wait().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("api-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn import(config: Config, path: &str) -> ExitCode {
    let db = match confab_store::Db::connect(config.database.clone()).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("api-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    let catalog = confab_accounts::CatalogService::new(db);
    let result = if path.ends_with(".json") {
        match std::fs::read_to_string(path) {
            Ok(text) => catalog.import_json(&text).await,
            Err(e) => {
                eprintln!("api-gateway: cannot read {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        catalog.import_dir(path).await
    };
    match result {
        Ok(summary) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
            forget_cached(&config).await;
            reindex(&config, &summary.changed).await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("api-gateway: import failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// With Redis, drops every replica's cached catalogue views (without it,
/// a running gateway's in-process cache expires within
/// `CACHE_CATALOG_TTL_SECS`).
async fn forget_cached(config: &Config) {
    let Some(url) = &config.redis_url else {
        return;
    };
    let bumped = match api_gateway::shared::SharedRedis::new(
        url,
        &config.redis_key_prefix,
        config.redis_timeout,
    ) {
        Ok(redis) => api_gateway::cache::bump_generation(&redis).await,
        Err(_) => false,
    };
    if bumped {
        println!("cached catalogue views dropped (redis)");
    } else {
        eprintln!(
            "api-gateway: warning: redis unreachable; cached catalogue views expire within {} s",
            config.cache_catalog_ttl.as_secs()
        );
    }
}

/// Asks every chat-service instance to re-index the changed courses.
async fn reindex(config: &Config, courses: &[String]) {
    for line in
        api_gateway::reindex_courses(&config.chat_services, &config.internal_key, courses).await
    {
        println!("{line}");
    }
}
