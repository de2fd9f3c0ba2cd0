//! Tools from MCP servers (stdio child processes and streamable HTTP).
