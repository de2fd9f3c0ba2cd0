//! Tools from MCP servers (stdio child processes and streamable HTTP).
//!
//! Configuration comes in the common `mcpServers` file shape
//! ([`McpConfig::from_json`], [`McpConfig::load`], [`McpConfig::from_env_value`]
//! for the value of `CONFAB_MCP_SERVERS`, which the caller reads):
//!
//! ```json
//! {"mcpServers": {
//!   "time": {"command": "mcp-server-time", "args": [], "env": {"TZ": "UTC"}},
//!   "docs": {"url": "http://127.0.0.1:8000/mcp", "headers": {"Authorization": "Bearer ..."}}
//! }}
//! ```
//!
//! Per server, besides `command`/`args`/`env`/`cwd` (stdio) or
//! `url`/`headers` (streamable HTTP): `connect_timeout` in seconds (default
//! 10) and `disabled` (skip it). Unknown keys are ignored.
//!
//! [`McpServers::connect_all`] connects to every server (a server that
//! cannot be reached at startup is reported and contributes no tools) and
//! [`McpServers::register_into`] adds each server's tools to a
//! [`ToolRegistry`] as `{server}__{tool}` ([`McpTool`]).
//!
//! Robustness: a server that dies gives [`ToolError::Unavailable`] for the
//! call that was in flight, and the next call reconnects (one connection
//! attempt per call, behind a lock, bounded by `connect_timeout`; a dead
//! stdio child noticed before a call is replaced at once). Stdio children
//! are killed when their [`McpServer`] is dropped, so keep the
//! [`McpServers`] alive as long as its tools are registered: afterwards
//! they answer [`ToolError::Unavailable`].
//!
//! Stdio children do not inherit the whole environment (it holds API keys
//! and database URLs): only [`INHERITED_ENV_VARS`] plus the configured `env`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use confab_llm::{BoxFuture, ToolDefinition};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ContentBlock,
    ErrorCode, Implementation,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::common::client_side_sse::SseRetryPolicy;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceError, ServiceExt};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

use crate::tools::{DynTool, ToolContext, ToolError, ToolOutput, ToolRegistry};

/// Name of the environment variable the server binaries read the MCP
/// configuration from (a file path or inline JSON); this crate never reads it.
pub const MCP_SERVERS_VAR: &str = "CONFAB_MCP_SERVERS";

/// How long connecting to a server (spawn or HTTP, handshake, tool list) may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Environment variables a stdio server inherits from this process (when set).
pub const INHERITED_ENV_VARS: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LC_ALL", "TMPDIR", "TZ",
];

/// Longest tool name model APIs accept.
const MAX_TOOL_NAME: usize = 64;

/// How many 1 ms polls dropping a killed stdio child waits to reap it.
const REAP_POLLS: usize = 200;

/// Lines of a stdio server's stderr kept for error messages.
const STDERR_TAIL_LINES: usize = 20;

/// What went wrong reading MCP configuration or connecting to a server.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The configuration file could not be read.
    #[error("cannot read MCP configuration {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The configuration is not valid JSON of the expected shape.
    #[error("invalid MCP configuration: {0}")]
    InvalidConfig(String),
    /// The stdio server's command could not be started.
    #[error("MCP server `{server}`: cannot start `{command}`: {source}")]
    Spawn {
        /// Server name.
        server: String,
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// Connecting (including the handshake and tool list) took longer than `connect_timeout`.
    #[error("MCP server `{server}`: no answer within {seconds:.1} s")]
    ConnectTimeout {
        /// Server name.
        server: String,
        /// The limit.
        seconds: f64,
    },
    /// The connection or the MCP handshake failed.
    #[error("MCP server `{server}`: cannot connect: {reason}")]
    Connect {
        /// Server name.
        server: String,
        /// What happened (with the end of a stdio server's stderr, if any).
        reason: String,
    },
    /// The server did not list its tools.
    #[error("MCP server `{server}`: cannot list tools: {reason}")]
    ListTools {
        /// Server name.
        server: String,
        /// What happened.
        reason: String,
    },
}

/// How to reach an MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum McpTransport {
    /// A child process speaking MCP on its stdin/stdout.
    Stdio {
        /// Program to run (a path, or a name looked up in `PATH`).
        command: String,
        /// Its arguments.
        #[serde(default)]
        args: Vec<String>,
        /// Environment variables to set (on top of [`INHERITED_ENV_VARS`]).
        #[serde(default)]
        env: BTreeMap<String, String>,
        /// Working directory (default: this process's).
        #[serde(default)]
        cwd: Option<PathBuf>,
    },
    /// A streamable-HTTP MCP endpoint.
    Http {
        /// Endpoint URL, e.g. `http://127.0.0.1:8000/mcp`.
        url: String,
        /// Headers sent with every request (e.g. `Authorization`).
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
}

/// One configured MCP server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct McpServerConfig {
    /// Name, used as the prefix of its tools' names (`{name}__{tool}`).
    pub name: String,
    /// How to reach it.
    pub transport: McpTransport,
    /// Limit for connecting (spawn or HTTP, handshake, first tool list); in seconds in JSON.
    #[serde(default = "default_connect_timeout", deserialize_with = "seconds")]
    pub connect_timeout: Duration,
}

fn default_connect_timeout() -> Duration {
    DEFAULT_CONNECT_TIMEOUT
}

fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let secs = f64::deserialize(d)?;
    duration_from_secs(secs).map_err(serde::de::Error::custom)
}

fn duration_from_secs(secs: f64) -> Result<Duration, String> {
    if secs.is_finite() && secs > 0.0 && secs <= 86_400.0 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!(
            "connect_timeout must be a number of seconds in (0, 86400], got {secs}"
        ))
    }
}

impl McpServerConfig {
    /// A stdio server running `command` with `args`.
    pub fn stdio(
        name: impl Into<String>,
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            transport: McpTransport::Stdio {
                command: command.into(),
                args: args.into_iter().map(Into::into).collect(),
                env: BTreeMap::new(),
                cwd: None,
            },
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// A streamable-HTTP server at `url`.
    pub fn http(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            transport: McpTransport::Http {
                url: url.into(),
                headers: BTreeMap::new(),
            },
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// The same with another connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Checks the name, URL and headers.
    pub fn validate(&self) -> Result<(), McpError> {
        let invalid =
            |msg: String| McpError::InvalidConfig(format!("server `{}`: {msg}", self.name));
        if self.name.trim().is_empty() {
            return Err(McpError::InvalidConfig("a server has an empty name".into()));
        }
        if sanitize(&self.name).trim_matches('_').is_empty() {
            return Err(invalid(
                "the name needs at least one of [a-zA-Z0-9-] (it prefixes tool names)".into(),
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(invalid("connect_timeout must be above zero".into()));
        }
        match &self.transport {
            McpTransport::Stdio { command, .. } => {
                if command.trim().is_empty() {
                    return Err(invalid("`command` is empty".into()));
                }
            }
            McpTransport::Http { url, headers } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid(format!(
                        "`url` must start with http:// or https://, got `{url}`"
                    )));
                }
                header_map(headers).map_err(invalid)?;
            }
        }
        Ok(())
    }
}

/// Every configured MCP server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct McpConfig {
    /// The servers, sorted by name (disabled ones left out).
    pub servers: Vec<McpServerConfig>,
}

/// One entry of the `mcpServers` map, as written in config files.
#[derive(Debug, Deserialize)]
struct RawServer {
    #[serde(default, rename = "type", alias = "transport")]
    kind: Option<String>,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    cwd: Option<PathBuf>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default, alias = "connectTimeout")]
    connect_timeout: Option<f64>,
    #[serde(default)]
    disabled: bool,
}

#[derive(Debug, Deserialize)]
struct RawConfig {
    #[serde(rename = "mcpServers", alias = "mcp_servers", alias = "servers")]
    servers: BTreeMap<String, RawServer>,
}

impl RawServer {
    fn into_config(self, name: String) -> Result<McpServerConfig, McpError> {
        let invalid = |msg: &str| McpError::InvalidConfig(format!("server `{name}`: {msg}"));
        let kind = self.kind.as_deref().map(str::to_ascii_lowercase);
        let transport = match (kind.as_deref(), self.command, self.url) {
            (Some("sse"), _, _) => {
                return Err(invalid(
                    "the legacy SSE transport is not supported; use a streamable HTTP endpoint",
                ));
            }
            (Some(k), _, _)
                if !matches!(
                    k,
                    "stdio" | "http" | "streamable-http" | "streamable_http" | "streamablehttp"
                ) =>
            {
                return Err(invalid(&format!(
                    "unknown transport type `{k}` (expected stdio or http)"
                )));
            }
            (_, Some(_), Some(_)) => {
                return Err(invalid(
                    "give either `command` (stdio) or `url` (streamable HTTP), not both",
                ));
            }
            (_, Some(command), None) => McpTransport::Stdio {
                command,
                args: self.args,
                env: self.env,
                cwd: self.cwd,
            },
            (_, None, Some(url)) => McpTransport::Http {
                url,
                headers: self.headers,
            },
            (_, None, None) => {
                return Err(invalid(
                    "give `command` (stdio server) or `url` (streamable HTTP server)",
                ));
            }
        };
        let connect_timeout = match self.connect_timeout {
            Some(secs) => duration_from_secs(secs).map_err(|e| invalid(&e))?,
            None => DEFAULT_CONNECT_TIMEOUT,
        };
        let config = McpServerConfig {
            name,
            transport,
            connect_timeout,
        };
        config.validate()?;
        Ok(config)
    }
}

impl McpConfig {
    /// Parses `{"mcpServers": {NAME: {...}, ...}}` (also accepts the key `servers`).
    pub fn from_json(text: &str) -> Result<Self, McpError> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| {
            McpError::InvalidConfig(format!("expected {{\"mcpServers\": {{...}}}}: {e}"))
        })?;
        let mut servers = Vec::new();
        for (name, server) in raw.servers {
            if server.disabled {
                continue;
            }
            servers.push(server.into_config(name)?);
        }
        Ok(Self { servers })
    }

    /// Reads and parses a configuration file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, McpError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| McpError::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|e| match e {
            McpError::InvalidConfig(msg) => {
                McpError::InvalidConfig(format!("{}: {msg}", path.display()))
            }
            other => other,
        })
    }

    /// The value of `CONFAB_MCP_SERVERS`: inline JSON (starting with `{`),
    /// else a file path; blank means no servers.
    pub fn from_env_value(value: &str) -> Result<Self, McpError> {
        let value = value.trim();
        if value.is_empty() {
            Ok(Self::default())
        } else if value.starts_with('{') {
            Self::from_json(value)
        } else {
            Self::load(value)
        }
    }

    /// Whether no server is configured.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }
}

fn header_map(
    headers: &BTreeMap<String, String>,
) -> Result<HashMap<http::HeaderName, http::HeaderValue>, String> {
    let mut map = HashMap::new();
    for (name, value) in headers {
        let header = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{name}`"))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header `{name}`"))?;
        map.insert(header, value);
    }
    Ok(map)
}

/// `name` with every character outside `[a-zA-Z0-9_-]` replaced by `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The registry name of `tool` on `server`: `{server}__{tool}`, sanitised,
/// at most 64 characters, and not one of `taken`.
fn tool_name(server: &str, tool: &str, taken: &[String]) -> String {
    let full = sanitize(&format!("{server}__{tool}"));
    let base: String = full.chars().take(MAX_TOOL_NAME).collect();
    if !taken.contains(&base) {
        return base;
    }
    (2..)
        .map(|n| {
            let suffix = format!("_{n}");
            let keep = MAX_TOOL_NAME.saturating_sub(suffix.len());
            format!("{}{suffix}", full.chars().take(keep).collect::<String>())
        })
        .find(|name| !taken.contains(name))
        .unwrap_or(base)
}

/// A tool's input schema as tool parameters: an object schema with `properties`.
fn parameters(schema: &Map<String, Value>) -> Value {
    let mut schema = schema.clone();
    schema
        .entry("type")
        .or_insert_with(|| Value::String("object".into()));
    schema
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    schema.remove("$schema");
    Value::Object(schema)
}

/// The last lines a stdio server wrote to stderr.
#[derive(Debug, Default)]
struct StderrTail(StdMutex<VecDeque<String>>);

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
struct ChildGuard {
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
struct Connection {
    client: RunningService<RoleClient, ClientConfig>,
    child: Option<ChildGuard>,
    stderr: Option<Arc<StderrTail>>,
}

impl Connection {
    fn is_alive(&self) -> bool {
        !self.client.is_closed()
            && !self.client.peer().is_transport_closed()
            && self.child.as_ref().is_none_or(ChildGuard::is_running)
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.pid)
    }

    /// Closes the session and stops the child, waiting for it to exit.
    async fn close(mut self) {
        let _ = self
            .client
            .close_with_timeout(Duration::from_millis(500))
            .await;
        if let Some(mut child) = self.child.as_ref().and_then(ChildGuard::take) {
            let _ = child.kill().await;
        }
    }
}

fn client_info() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("confab", env!("CARGO_PKG_VERSION")),
    )
}

/// When rmcp resumes an SSE response stream: after a graceful end (attempt
/// 0, waiting the server's `retry` hint if it gave one), but not after an
/// error. rmcp's default retries errors forever, which would leave a call to
/// a dead server hanging until the registry's timeout; failing at once gives
/// [`ToolError::Unavailable`] and the next call reconnects.
#[derive(Debug)]
struct SseRetry;

impl SseRetryPolicy for SseRetry {
    fn retry(&self, attempt: usize) -> Option<Duration> {
        (attempt == 0).then_some(Duration::from_millis(250))
    }
}

/// Connects to a server, returning the connection and (when `list` is
/// set) its tools; bounded by the configured `connect_timeout`.
async fn connect(
    config: &McpServerConfig,
    list: bool,
) -> Result<(Connection, Vec<rmcp::model::Tool>), McpError> {
    let server = config.name.clone();
    let attempt = async {
        let conn = match &config.transport {
            McpTransport::Stdio {
                command,
                args,
                env,
                cwd,
            } => connect_stdio(&server, command, args, env, cwd.as_deref()).await?,
            McpTransport::Http { url, headers } => {
                let headers = header_map(headers).map_err(|reason| McpError::Connect {
                    server: server.clone(),
                    reason,
                })?;
                let mut http = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .custom_headers(headers);
                http.retry_config = Arc::new(SseRetry);
                let transport = StreamableHttpClientTransport::from_config(http);
                let client =
                    client_info()
                        .serve(transport)
                        .await
                        .map_err(|e| McpError::Connect {
                            server: server.clone(),
                            reason: error_text(&e),
                        })?;
                Connection {
                    client,
                    child: None,
                    stderr: None,
                }
            }
        };
        let tools = if list {
            conn.client
                .peer()
                .list_all_tools()
                .await
                .map_err(|e| McpError::ListTools {
                    server: server.clone(),
                    reason: with_stderr(error_text(&e), conn.stderr.as_deref()),
                })?
        } else {
            Vec::new()
        };
        Ok((conn, tools))
    };
    match tokio::time::timeout(config.connect_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(McpError::ConnectTimeout {
            server,
            seconds: config.connect_timeout.as_secs_f64(),
        }),
    }
}

/// An error with its sources, minus rmcp's transport type names.
fn error_text(error: &dyn std::error::Error) -> String {
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

fn with_stderr(reason: String, stderr: Option<&StderrTail>) -> String {
    match stderr.map(StderrTail::text) {
        Some(text) if !text.trim().is_empty() => format!("{reason}; stderr:\n{text}"),
        _ => reason,
    }
}

async fn connect_stdio(
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

/// Connection state shared by a server's tools.
struct Inner {
    config: McpServerConfig,
    state: tokio::sync::Mutex<ConnState>,
    /// Connection attempts started, to let calls queued behind a failed
    /// attempt share its result instead of each trying again.
    attempts: AtomicU64,
}

#[derive(Default)]
struct ConnState {
    conn: Option<Arc<Connection>>,
    last_error: Option<String>,
}

impl Inner {
    /// The live connection, reconnecting (once) when there is none.
    async fn connection(&self) -> Result<Arc<Connection>, String> {
        let seen = self.attempts.load(Ordering::SeqCst);
        let mut state = self.state.lock().await;
        if let Some(conn) = &state.conn {
            if conn.is_alive() {
                return Ok(conn.clone());
            }
            tracing::info!(server = %self.config.name, "MCP connection lost; reconnecting");
            state.conn = None;
        }
        if self.attempts.load(Ordering::SeqCst) != seen
            && let Some(error) = &state.last_error
        {
            return Err(error.clone());
        }
        self.attempts.fetch_add(1, Ordering::SeqCst);
        match connect(&self.config, false).await {
            Ok((conn, _)) => {
                let conn = Arc::new(conn);
                state.conn = Some(conn.clone());
                state.last_error = None;
                Ok(conn)
            }
            Err(e) => {
                tracing::warn!(server = %self.config.name, error = %e, "MCP reconnect failed");
                let reason = e.to_string();
                state.last_error = Some(reason.clone());
                Err(reason)
            }
        }
    }

    /// Forgets `conn` (when it is still the current one) so the next call reconnects.
    async fn invalidate(&self, conn: &Arc<Connection>) {
        let mut state = self.state.lock().await;
        if state.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            state.conn = None;
        }
    }
}

/// One connected MCP server and the tools it offers.
pub struct McpServer {
    inner: Arc<Inner>,
    tools: Vec<Arc<McpTool>>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.inner.config.name)
            .field(
                "tools",
                &self.tools.iter().map(|t| t.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl McpServer {
    /// Connects (spawning the child or opening the HTTP session) and lists its tools.
    pub async fn connect(config: McpServerConfig) -> Result<Self, McpError> {
        config.validate()?;
        let (conn, listed) = connect(&config, true).await?;
        let inner = Arc::new(Inner {
            config,
            state: tokio::sync::Mutex::new(ConnState {
                conn: Some(Arc::new(conn)),
                last_error: None,
            }),
            attempts: AtomicU64::new(1),
        });
        let mut names: Vec<String> = Vec::new();
        let mut tools = Vec::new();
        for tool in listed {
            let name = tool_name(&inner.config.name, &tool.name, &names);
            names.push(name.clone());
            let description = tool
                .description
                .as_deref()
                .or(tool.title.as_deref())
                .unwrap_or_default()
                .to_owned();
            tools.push(Arc::new(McpTool {
                server: Arc::downgrade(&inner),
                server_name: inner.config.name.clone(),
                remote_name: tool.name.to_string(),
                definition: ToolDefinition {
                    name,
                    description,
                    parameters: parameters(&tool.input_schema),
                },
            }));
        }
        Ok(Self { inner, tools })
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// Its configuration.
    pub fn config(&self) -> &McpServerConfig {
        &self.inner.config
    }

    /// Its tools, as listed when it connected.
    pub fn tools(&self) -> &[Arc<McpTool>] {
        &self.tools
    }

    /// Registry names of its tools.
    pub fn tool_names(&self) -> Vec<String> {
        self.tools.iter().map(|t| t.name().to_owned()).collect()
    }

    /// Adds its tools to `registry` (keep `self` alive while they are used); returns how many.
    pub fn register_into(&self, registry: &mut ToolRegistry) -> usize {
        for tool in &self.tools {
            registry.register_dyn(tool.clone());
        }
        self.tools.len()
    }

    /// Whether a live connection is open now.
    pub async fn is_connected(&self) -> bool {
        let state = self.inner.state.lock().await;
        state.conn.as_ref().is_some_and(|c| c.is_alive())
    }

    /// Process id of the current stdio child, if one is running.
    pub async fn child_pid(&self) -> Option<u32> {
        let state = self.inner.state.lock().await;
        state.conn.as_ref().and_then(|c| c.pid())
    }

    /// Closes the connection (killing a stdio child and waiting for it);
    /// the next tool call reconnects.
    pub async fn disconnect(&self) {
        let conn = self.inner.state.lock().await.conn.take();
        if let Some(conn) = conn {
            match Arc::try_unwrap(conn) {
                Ok(conn) => conn.close().await,
                // A call is still using it: it is killed when that call ends.
                Err(shared) => drop(shared),
            }
        }
    }
}

/// A tool of an MCP server, named `{server}__{tool}`.
pub struct McpTool {
    server: Weak<Inner>,
    server_name: String,
    remote_name: String,
    definition: ToolDefinition,
}

impl std::fmt::Debug for McpTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTool")
            .field("name", &self.definition.name)
            .field("server", &self.server_name)
            .field("remote_name", &self.remote_name)
            .finish()
    }
}

impl McpTool {
    /// The registry name (`{server}__{tool}`).
    pub fn name(&self) -> &str {
        &self.definition.name
    }

    /// The server's name.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The tool's name on its server.
    pub fn remote_name(&self) -> &str {
        &self.remote_name
    }

    fn unavailable(&self, reason: impl Into<String>) -> ToolError {
        ToolError::Unavailable {
            tool: self.definition.name.clone(),
            reason: reason.into(),
        }
    }

    async fn call(&self, args: Value) -> Result<ToolOutput, ToolError> {
        let arguments = match args {
            Value::Null => Map::new(),
            Value::Object(map) => map,
            other => {
                return Err(ToolError::InvalidArguments {
                    tool: self.definition.name.clone(),
                    reason: format!("expected a JSON object, got {other}"),
                });
            }
        };
        let Some(inner) = self.server.upgrade() else {
            return Err(self.unavailable(format!(
                "MCP server `{}` was shut down (its McpServer was dropped)",
                self.server_name
            )));
        };
        let conn = inner
            .connection()
            .await
            .map_err(|reason| self.unavailable(reason))?;
        let params = CallToolRequestParams::new(self.remote_name.clone()).with_arguments(arguments);
        match conn.client.call_tool(params).await {
            Ok(result) => output(result),
            Err(e) => {
                let error = self.service_error(e, conn.stderr.as_deref());
                if matches!(error, ToolError::Unavailable { .. }) {
                    inner.invalidate(&conn).await;
                }
                Err(error)
            }
        }
    }

    fn service_error(&self, error: ServiceError, stderr: Option<&StderrTail>) -> ToolError {
        let tool = self.definition.name.clone();
        match error {
            ServiceError::McpError(data) if data.code == ErrorCode::INVALID_PARAMS => {
                ToolError::InvalidArguments {
                    tool,
                    reason: data.message.into_owned(),
                }
            }
            ServiceError::McpError(data) => ToolError::Failed(format!(
                "MCP server `{}` returned error {}: {}",
                self.server_name, data.code.0, data.message
            )),
            ServiceError::Timeout { timeout } => ToolError::Timeout {
                tool,
                seconds: timeout.as_secs_f64(),
            },
            e @ (ServiceError::TransportSend(_)
            | ServiceError::TransportClosed
            | ServiceError::Cancelled { .. }) => self.unavailable(with_stderr(
                format!(
                    "MCP server `{}` connection lost: {}",
                    self.server_name,
                    error_text(&e)
                ),
                stderr,
            )),
            other => ToolError::Failed(format!(
                "MCP server `{}`: {}",
                self.server_name,
                error_text(&other)
            )),
        }
    }
}

/// The model-facing text of a tool result; `is_error` results become [`ToolError::Failed`].
fn output(result: CallToolResult) -> Result<ToolOutput, ToolError> {
    let mut parts: Vec<String> = result.content.iter().map(content_text).collect();
    parts.retain(|p| !p.is_empty());
    if parts.is_empty()
        && let Some(structured) = &result.structured_content
    {
        parts.push(structured.to_string());
    }
    let text = parts.join("\n");
    if result.is_error == Some(true) {
        let text = if text.is_empty() {
            "the tool reported an error".to_owned()
        } else {
            text
        };
        Err(ToolError::Failed(text))
    } else {
        Ok(ToolOutput::text(text))
    }
}

/// Text of one content block; other kinds are named, not inlined.
fn content_text(block: &ContentBlock) -> String {
    if let Some(text) = block.as_text() {
        return text.text.clone();
    }
    if let ContentBlock::Resource(resource) = block {
        let text = resource.get_text();
        if !text.is_empty() {
            return text;
        }
    }
    let value = serde_json::to_value(block).unwrap_or(Value::Null);
    let field = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
    let kind = field("type").unwrap_or_else(|| "content".into());
    let detail = field("uri")
        .or_else(|| {
            value
                .get("resource")
                .and_then(|r| r.get("uri"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .or_else(|| field("mimeType"))
        .unwrap_or_default();
    if detail.is_empty() {
        format!("[{kind}]")
    } else {
        format!("[{kind}: {detail}]")
    }
}

impl DynTool for McpTool {
    fn definition(&self) -> ToolDefinition {
        self.definition.clone()
    }

    fn call_json<'a>(
        &'a self,
        args: Value,
        _ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        Box::pin(self.call(args))
    }
}

/// Every connected MCP server; dropping it kills their child processes.
#[derive(Debug, Default)]
#[must_use = "dropping McpServers disconnects every server and makes their tools unavailable"]
pub struct McpServers {
    servers: Vec<McpServer>,
}

impl McpServers {
    /// Connects to every server at once; those that fail are returned with
    /// their error (they contribute no tools).
    pub async fn connect_all(
        configs: impl IntoIterator<Item = McpServerConfig>,
    ) -> (Self, Vec<(String, McpError)>) {
        let attempts = configs.into_iter().map(|config| async move {
            let name = config.name.clone();
            (name, McpServer::connect(config).await)
        });
        let mut servers = Vec::new();
        let mut failures = Vec::new();
        for (name, result) in futures_util::future::join_all(attempts).await {
            match result {
                Ok(server) => {
                    tracing::info!(server = %name, tools = server.tools.len(), "MCP server connected");
                    servers.push(server);
                }
                Err(e) => {
                    tracing::warn!(server = %name, error = %e, "MCP server unavailable");
                    failures.push((name, e));
                }
            }
        }
        (Self { servers }, failures)
    }

    /// Adds every server's tools to `registry` (keep `self` alive while they are used); returns how many.
    pub fn register_into(&self, registry: &mut ToolRegistry) -> usize {
        self.servers.iter().map(|s| s.register_into(registry)).sum()
    }

    /// The connected servers.
    pub fn servers(&self) -> &[McpServer] {
        &self.servers
    }

    /// The server of that name.
    pub fn get(&self, name: &str) -> Option<&McpServer> {
        self.servers.iter().find(|s| s.name() == name)
    }

    /// Registry names of all their tools.
    pub fn tool_names(&self) -> Vec<String> {
        self.servers
            .iter()
            .flat_map(McpServer::tool_names)
            .collect()
    }

    /// Whether no server is connected.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Disconnects every server, waiting for stdio children to exit.
    pub async fn shutdown(self) {
        for server in &self.servers {
            server.disconnect().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names_are_sanitised_and_bounded() {
        assert_eq!(
            tool_name("time", "get_current_time", &[]),
            "time__get_current_time"
        );
        assert_eq!(tool_name("my docs", "search.v2", &[]), "my_docs__search_v2");
        let long = "x".repeat(100);
        let name = tool_name("s", &long, &[]);
        assert_eq!(name.len(), 64);
        let again = tool_name("s", &long, std::slice::from_ref(&name));
        assert_eq!(again.len(), 64);
        assert!(again.ends_with("_2"));
    }

    #[test]
    fn parses_the_common_shape() {
        let config = McpConfig::from_json(
            r#"{"mcpServers": {
                "time": {"command": "mcp-server-time", "args": ["--local-timezone", "UTC"], "env": {"A": "b"}},
                "docs": {"url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "Bearer x"}, "connect_timeout": 2.5},
                "off": {"command": "nope", "disabled": true}
            }}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.servers.len(), 2);
        let docs = &config.servers[0];
        assert_eq!(docs.name, "docs");
        assert_eq!(docs.connect_timeout, Duration::from_millis(2500));
        assert!(
            matches!(&docs.transport, McpTransport::Http { headers, .. } if headers.len() == 1)
        );
        let time = &config.servers[1];
        assert_eq!(time.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(
            time.transport,
            McpTransport::Stdio {
                command: "mcp-server-time".into(),
                args: vec!["--local-timezone".into(), "UTC".into()],
                env: BTreeMap::from([("A".into(), "b".into())]),
                cwd: None,
            }
        );
    }

    #[test]
    fn rejects_bad_entries_with_the_server_name() {
        for (text, needle) in [
            (r#"{"mcpServers": {"a": {}}}"#, "server `a`"),
            (
                r#"{"mcpServers": {"a": {"command": "x", "url": "http://h"}}}"#,
                "not both",
            ),
            (r#"{"mcpServers": {"a": {"url": "ftp://h"}}}"#, "http://"),
            (
                r#"{"mcpServers": {"a": {"url": "http://h", "type": "sse"}}}"#,
                "SSE",
            ),
            (
                r#"{"mcpServers": {"a": {"command": "x", "connect_timeout": 0}}}"#,
                "connect_timeout",
            ),
            (
                r#"{"mcpServers": {"a": {"url": "http://h", "headers": {"bad name": "v"}}}}"#,
                "header",
            ),
            (r#"{"servers": 3}"#, "invalid MCP configuration"),
            ("not json", "mcpServers"),
        ] {
            match McpConfig::from_json(text) {
                Ok(c) => panic!("{text} parsed: {c:?}"),
                Err(e) => assert!(e.to_string().contains(needle), "{text}: {e}"),
            }
        }
    }

    #[test]
    fn env_value_is_inline_json_or_a_path() {
        assert!(
            McpConfig::from_env_value("  ")
                .map(|c| c.is_empty())
                .unwrap_or(false)
        );
        let inline = McpConfig::from_env_value(r#" {"mcpServers": {"t": {"command": "x"}}} "#);
        assert!(matches!(inline, Ok(c) if c.servers.len() == 1));
        let missing = McpConfig::from_env_value("/nonexistent/mcp.json");
        assert!(matches!(missing, Err(McpError::ReadConfig { .. })));
    }

    #[test]
    fn server_config_deserialises_directly() {
        let config: McpServerConfig = serde_json::from_str(
            r#"{"name": "t", "transport": {"command": "x", "args": ["y"]}, "connect_timeout": 3}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.connect_timeout, Duration::from_secs(3));
        assert!(matches!(config.transport, McpTransport::Stdio { ref args, .. } if args == &["y"]));
    }

    #[test]
    fn results_become_text_or_failures() {
        let ok = CallToolResult::success(vec![ContentBlock::text("a"), ContentBlock::text("b")]);
        assert_eq!(output(ok).map(|o| o.content), Ok("a\nb".to_owned()));
        let err = CallToolResult::error(vec![ContentBlock::text("boom")]);
        assert_eq!(output(err), Err(ToolError::Failed("boom".into())));
        let image = ContentBlock::image("AAAA", "image/png");
        assert_eq!(content_text(&image), "[image: image/png]");
    }
}
