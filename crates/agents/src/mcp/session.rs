//! Connections and sessions: connecting (handshake and tool list),
//! reconnecting, and the connected servers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use confab_llm::ToolDefinition;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

use super::config::header_map;
use super::tool::{parameters, tool_name};
use super::transport::{Connection, SseRetry, client_info, connect_stdio, error_text, with_stderr};
use super::{McpError, McpServerConfig, McpTool, McpTransport};
use crate::tools::ToolRegistry;
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

/// Connection state shared by a server's tools.
pub(super) struct Inner {
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
    pub(super) async fn connection(&self) -> Result<Arc<Connection>, String> {
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
    pub(super) async fn invalidate(&self, conn: &Arc<Connection>) {
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
