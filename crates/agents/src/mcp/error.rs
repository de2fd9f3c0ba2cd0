//! What can go wrong reading MCP configuration or connecting to a server.

use std::path::PathBuf;

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
