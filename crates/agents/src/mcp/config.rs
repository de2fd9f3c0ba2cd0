//! Server configuration: the `mcpServers` file shape, parsing and validation.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::McpError;
/// Name of the environment variable the server binaries read the MCP
/// configuration from (a file path or inline JSON); this crate never reads it.
pub const MCP_SERVERS_VAR: &str = "CONFAB_MCP_SERVERS";

/// How long connecting to a server (spawn or HTTP, handshake, tool list) may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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
        /// Environment variables to set (on top of [`INHERITED_ENV_VARS`](super::INHERITED_ENV_VARS)).
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

pub(super) fn header_map(
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
pub(super) fn sanitize(name: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
