//! A small MCP server speaking streamable HTTP on `127.0.0.1`, built with
//! `rmcp`, for MCP client tests.
//!
//! Tools:
//!
//! | tool | arguments | result |
//! | --- | --- | --- |
//! | `add` | `{"a": number, "b": number}` | the sum as text (`2` + `3` -> `5`) |
//! | `echo` | `{"text": string}` | the text |
//! | `sleep` | `{"ms": integer}` | `slept N ms`, after sleeping that long |
//! | `fail` | `{}` | an `is_error: true` result with text `fail: this tool always fails` |
//!
//! The server can be stopped (every connection and session is cut, the port
//! is released) and restarted on the same port with fresh sessions, to test
//! how clients cope with a server that goes away and comes back.
//!
//! ```no_run
//! # async fn demo() {
//! use confab_testkit::mcp_server::McpTestServer;
//!
//! let mut server = McpTestServer::start().await;
//! let url = server.url(); // http://127.0.0.1:PORT/mcp
//! // ... connect an MCP client to `url`, call `add` ...
//! server.stop();
//! server.restart().await.unwrap();
//! # let _ = url;
//! # }
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// Path the MCP endpoint is served at (any path works; this is the one [`McpTestServer::url`] names).
pub const MCP_PATH: &str = "/mcp";

/// Arguments of `add`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AddArgs {
    /// First number.
    pub a: f64,
    /// Second number.
    pub b: f64,
}

/// Arguments of `echo`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// Text to send back.
    pub text: String,
}

/// Arguments of `sleep`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SleepArgs {
    /// How long to sleep, in milliseconds.
    pub ms: u64,
}

/// The MCP service behind [`McpTestServer`] (one instance per session).
#[derive(Debug, Clone)]
pub struct TestTools {
    tool_router: ToolRouter<Self>,
    calls: Arc<AtomicUsize>,
}

#[tool_router]
impl TestTools {
    fn new(calls: Arc<AtomicUsize>) -> Self {
        Self {
            tool_router: Self::tool_router(),
            calls,
        }
    }

    /// Adds two numbers.
    #[tool(description = "Add two numbers and return the sum.")]
    async fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        (a + b).to_string()
    }

    /// Returns its text.
    #[tool(description = "Return the given text unchanged.")]
    async fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        text
    }

    /// Sleeps, then answers.
    #[tool(description = "Sleep for `ms` milliseconds, then answer.")]
    async fn sleep(&self, Parameters(SleepArgs { ms }): Parameters<SleepArgs>) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        format!("slept {ms} ms")
    }

    /// Always reports a failure (an `is_error` result, not a protocol error).
    #[tool(description = "Always fail.")]
    async fn fail(&self) -> Result<CallToolResult, ErrorData> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(CallToolResult::error(vec![ContentBlock::text(
            "fail: this tool always fails",
        )]))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestTools {}

/// A running streamable-HTTP MCP test server; it stops when dropped.
#[derive(Debug)]
pub struct McpTestServer {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    task: JoinHandle<()>,
    cancel: CancellationToken,
}

impl Running {
    fn stop(self) {
        self.cancel.cancel();
        self.task.abort();
    }
}

impl McpTestServer {
    /// Starts a server on `127.0.0.1:0` (panics if it cannot bind).
    pub async fn start() -> McpTestServer {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Self::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("MCP test server cannot bind {addr}: {e}"))
    }

    /// Starts a server on `addr`.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<McpTestServer> {
        let calls = Arc::new(AtomicUsize::new(0));
        let (addr, running) = serve(addr, calls.clone()).await?;
        Ok(McpTestServer {
            addr,
            calls,
            running: Some(running),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/mcp`, the endpoint to give an MCP client.
    pub fn url(&self) -> String {
        format!("http://{}{MCP_PATH}", self.addr)
    }

    /// Whether the server is serving (not stopped).
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// How many tool calls the server has run (over all restarts).
    pub fn tool_calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Stops serving: the port is released and every open connection and
    /// session is cut, as if the process had died. Does nothing when stopped.
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop();
        }
    }

    /// Serves again on the same port, with no sessions (clients must
    /// initialise again). Stops the running server first, if any.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        // The old listener is closed once its aborted task is dropped; retry
        // briefly in case that has not happened yet.
        let mut attempt = 0;
        loop {
            match serve(self.addr, self.calls.clone()).await {
                Ok((_, running)) => {
                    self.running = Some(running);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for McpTestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
) -> std::io::Result<(SocketAddr, Running)> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let cancel = CancellationToken::new();
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(cancel.clone())
        .with_sse_keep_alive(Some(Duration::from_secs(5)));
    let service = StreamableHttpService::new(
        move || Ok(TestTools::new(calls.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let task = tokio::spawn(accept_loop(listener, service));
    Ok((addr, Running { task, cancel }))
}

/// Accepts connections until aborted; aborting drops the `JoinSet`, which
/// aborts every connection task too.
async fn accept_loop(
    listener: TcpListener,
    service: StreamableHttpService<TestTools, LocalSessionManager>,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(service.clone());
        connections.spawn(async move {
            // Errors here are client disconnects or deliberate aborts.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn post_initialize(url: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .json(&serde_json::json!({
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "t", "version": "1"}}
            }))
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn stops_and_restarts_on_the_same_port() {
        let mut server = McpTestServer::start().await;
        let url = server.url();
        assert!(url.ends_with("/mcp"));
        let response = post_initialize(&url).await;
        assert!(response.status().is_success(), "{}", response.status());
        assert!(response.headers().contains_key("mcp-session-id"));
        let body = response.text().await.unwrap();
        assert!(body.contains("\"tools\""), "{body}");

        server.stop();
        assert!(!server.is_running());
        assert!(tokio::net::TcpStream::connect(server.addr()).await.is_err());

        let addr = server.addr();
        server.restart().await.unwrap();
        assert_eq!(server.addr(), addr);
        assert!(server.is_running());
        assert!(post_initialize(&url).await.status().is_success());
        assert_eq!(server.tool_calls(), 0);
    }
}
