//! The `chat-service` binary as a child process with a clean environment.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

/// Variables that would change the service's behaviour if inherited.
pub const INHERITED: &[&str] = &[
    "DATABASE_URL",
    "CHAT_SERVICE_BIND",
    "AGENT_RUNTIME__INTERNAL_API_KEY",
    "AGENT_RUNTIME__LLM_PROXY_URL",
    "AGENT_RUNTIME__LLM_MODEL",
    "AGENT_RUNTIME__LOG_LEVEL",
    "CONFAB_LLM_PROVIDER",
    "CONFAB_LLM_FALLBACK",
    "CONFAB_EMBEDDING_PROVIDER",
    "CONFAB_MODELS_DIR",
    "CONFAB_LOCAL_CHAT_MODEL",
    "CONFAB_LOCAL_EMBED_MODEL",
    "OLLAMA_HOST",
    "OPENAI_API_KEY",
    "HTTP_WORKERS",
    "HTTP_MAX_BODY_BYTES",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "RUST_LOG",
    "CHAT_BACKEND",
    "METRICS_TOKEN",
];

/// The binary in `dir` on 127.0.0.1:0 with one worker, logging warnings
/// only, stdout and stderr piped, killed on drop; `vars` come last and win.
pub fn command(dir: &Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chat-service"));
    cmd.current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for v in INHERITED {
        cmd.env_remove(v);
    }
    cmd.env("CHAT_SERVICE_BIND", "127.0.0.1:0")
        .env("HTTP_WORKERS", "1")
        .env("LOG_LEVEL", "warn");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}
