//! The adapter exposing an MCP server's tool as an agent tool.

use std::sync::Weak;

use confab_llm::{BoxFuture, ToolDefinition};
use rmcp::ServiceError;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, ErrorCode};
use serde_json::{Map, Value};

use super::config::sanitize;
use super::session::Inner;
use super::transport::{StderrTail, error_text, with_stderr};
use crate::tools::{DynTool, ToolContext, ToolError, ToolOutput};
/// Longest tool name model APIs accept.
const MAX_TOOL_NAME: usize = 64;

/// The registry name of `tool` on `server`: `{server}__{tool}`, sanitised,
/// at most 64 characters, and not one of `taken`.
pub(super) fn tool_name(server: &str, tool: &str, taken: &[String]) -> String {
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
pub(super) fn parameters(schema: &Map<String, Value>) -> Value {
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

/// A tool of an MCP server, named `{server}__{tool}`.
pub struct McpTool {
    pub(super) server: Weak<Inner>,
    pub(super) server_name: String,
    pub(super) remote_name: String,
    pub(super) definition: ToolDefinition,
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
    fn results_become_text_or_failures() {
        let ok = CallToolResult::success(vec![ContentBlock::text("a"), ContentBlock::text("b")]);
        assert_eq!(output(ok).map(|o| o.content), Ok("a\nb".to_owned()));
        let err = CallToolResult::error(vec![ContentBlock::text("boom")]);
        assert_eq!(output(err), Err(ToolError::Failed("boom".into())));
        let image = ContentBlock::image("AAAA", "image/png");
        assert_eq!(content_text(&image), "[image: image/png]");
    }
}
