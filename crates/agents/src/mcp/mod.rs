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
//!
//! [`ToolRegistry`]: crate::tools::ToolRegistry
//! [`ToolError::Unavailable`]: crate::tools::ToolError::Unavailable

mod config;
mod error;
mod session;
mod tool;
mod transport;

pub use config::{
    DEFAULT_CONNECT_TIMEOUT, MCP_SERVERS_VAR, McpConfig, McpServerConfig, McpTransport,
};
pub use error::McpError;
pub use session::{McpServer, McpServers};
pub use tool::McpTool;
pub use transport::INHERITED_ENV_VARS;
