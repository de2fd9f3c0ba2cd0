//! Where a user's message becomes a streamed, grounded, persisted answer.
//!
//! - [`tools`]: the [`tools::Tool`] trait, the [`tools::ToolRegistry`] and
//!   the built-in tools; [`mcp`] adds tools from MCP servers.
//! - [`store`]: what the engine needs from outside (history, memory,
//!   catalogue) as traits; [`memory`] has in-memory versions.

pub mod mcp;
pub mod memory;
pub mod store;
pub mod tools;
