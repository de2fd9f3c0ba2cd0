//! The transport side: stdio child processes (spawn, stderr, reaping) and
//! the streamable-HTTP retry policy.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::RunningService;
use rmcp::transport::common::client_side_sse::SseRetryPolicy;
use rmcp::{RoleClient, ServiceExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

use super::McpError;
/// Environment variables a stdio server inherits from this process (when set).
pub const INHERITED_ENV_VARS: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LC_ALL", "TMPDIR", "TZ",
];

/// How many 1 ms polls dropping a killed stdio child waits to reap it.
const REAP_POLLS: usize = 200;

/// Lines of a stdio server's stderr kept for error messages.
const STDERR_TAIL_LINES: usize = 20;

/// The last lines a stdio server wrote to stderr.
#[derive(Debug, Default)]
pub(super) struct StderrTail(StdMutex<VecDeque<String>>);

impl StderrTail {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == STDERR_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// Forwards a child's stderr to tracing and keeps its last lines.
fn drain_stderr(
    server: String,
    stderr: ChildStderr,
    tail: Arc<StderrTail>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::debug!(target: "confab_agents::mcp", server = %server, "stderr: {line}");
            tail.push(line);
        }
    })
}

/// A stdio server process, killed (and reaped) when dropped.
#[derive(Debug)]
pub(super) struct ChildGuard {
    child: StdMutex<Option<Child>>,
    pid: Option<u32>,
}

impl ChildGuard {
    fn new(child: Child) -> Self {
        Self {
            pid: child.id(),
            child: StdMutex::new(Some(child)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the process is still running.
    fn is_running(&self) -> bool {
        match self.lock().as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Takes the process out, to wait for it.
    fn take(&self) -> Option<Child> {
        self.lock().take()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let Some(mut child) = self.take() else {
            return;
        };
        if !matches!(child.try_wait(), Ok(None)) {
            return; // already exited and reaped
        }
        let _ = child.start_kill();
        // A killed process exits within milliseconds: reap it right here, so
        // no zombie outlives us even when the runtime is shutting down.
        for _ in 0..REAP_POLLS {
            std::thread::sleep(Duration::from_millis(1));
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
        }
        // Still there (e.g. stuck in the kernel): reap it in the background
        // when a runtime is around; otherwise tokio's orphan queue does.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = child.wait().await;
            });
        }
    }
}

/// One live connection to a server.
pub(super) struct Connection {
    pub(super) client: RunningService<RoleClient, ClientConfig>,
    pub(super) child: Option<ChildGuard>,
    pub(super) stderr: Option<Arc<StderrTail>>,
}

impl Connection {
    pub(super) fn is_alive(&self) -> bool {
        !self.client.is_closed()
            && !self.client.peer().is_transport_closed()
            && self.child.as_ref().is_none_or(ChildGuard::is_running)
    }

    pub(super) fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.pid)
    }

    /// Closes the session and stops the child, waiting for it to exit.
    pub(super) async fn close(mut self) {
        let _ = self
            .client
            .close_with_timeout(Duration::from_millis(500))
            .await;
        if let Some(mut child) = self.child.as_ref().and_then(ChildGuard::take) {
            let _ = child.kill().await;
        }
    }
}

pub(super) fn client_info() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("confab", env!("CARGO_PKG_VERSION")),
    )
}

/// When rmcp resumes an SSE response stream: after a graceful end (attempt
/// 0, waiting the server's `retry` hint if it gave one), but not after an
/// error. rmcp's default retries errors forever, which would leave a call to
/// a dead server hanging until the registry's timeout; failing at once gives
/// [`ToolError::Unavailable`](crate::tools::ToolError::Unavailable) and the next call reconnects.
#[derive(Debug)]
pub(super) struct SseRetry;

impl SseRetryPolicy for SseRetry {
    fn retry(&self, attempt: usize) -> Option<Duration> {
        (attempt == 0).then_some(Duration::from_millis(250))
    }
}

/// An error with its sources, minus rmcp's transport type names.
pub(super) fn error_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    // "Transport [rmcp::transport::worker::WorkerTransport<...>] error: X" -> "X"
    while let Some(start) = text.find("Transport [") {
        let Some(end) = text[start..].find("] error: ") else {
            break;
        };
        text.replace_range(start..start + end + "] error: ".len(), "");
    }
    text
}

pub(super) fn with_stderr(reason: String, stderr: Option<&StderrTail>) -> String {
    match stderr.map(StderrTail::text) {
        Some(text) if !text.trim().is_empty() => format!("{reason}; stderr:\n{text}"),
        _ => reason,
    }
}

pub(super) async fn connect_stdio(
    server: &str,
    command: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    cwd: Option<&Path>,
) -> Result<Connection, McpError> {
    let mut cmd = Command::new(command);
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in INHERITED_ENV_VARS {
        if let Some(value) = std::env::var_os(var) {
            cmd.env(var, value);
        }
    }
    cmd.envs(env);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(|source| McpError::Spawn {
        server: server.to_owned(),
        command: command.to_owned(),
        source,
    })?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(McpError::Connect {
            server: server.to_owned(),
            reason: "the child's stdin/stdout are not available".into(),
        });
    };
    let tail = Arc::new(StderrTail::default());
    let drain = child
        .stderr
        .take()
        .map(|stderr| drain_stderr(server.to_owned(), stderr, tail.clone()));
    let guard = ChildGuard::new(child);
    match client_info().serve((stdout, stdin)).await {
        Ok(client) => Ok(Connection {
            client,
            child: Some(guard),
            stderr: Some(tail),
        }),
        Err(e) => {
            // Say why: the exit status and what the process printed.
            let mut reason = error_text(&e);
            if let Some(mut child) = guard.take() {
                match tokio::time::timeout(Duration::from_millis(500), child.wait()).await {
                    Ok(Ok(status)) => reason = format!("{reason} (process exited: {status})"),
                    _ => {
                        let _ = child.kill().await;
                    }
                }
            }
            if let Some(drain) = drain {
                let _ = tokio::time::timeout(Duration::from_millis(200), drain).await;
            }
            Err(McpError::Connect {
                server: server.to_owned(),
                reason: with_stderr(reason, Some(&tail)),
            })
        }
    }
}
