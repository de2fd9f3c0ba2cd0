//! Tools the agent backend can call: the [`Tool`] trait (typed arguments
//! with a JSON schema generated from the type), its object-safe form
//! [`DynTool`] (also implemented by MCP tools), and the [`ToolRegistry`].

pub mod builtin;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use confab_llm::{BoxFuture, ToolDefinition};
use confab_models::{AgentKind, SourceInfo};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Who is calling a tool, so tools can scope what they see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolContext {
    /// The user the conversation belongs to.
    pub user_id: String,
    /// The session, when there is one.
    pub session_id: Option<uuid::Uuid>,
    /// The agent running the conversation.
    pub agent: AgentKind,
    /// The course a course agent is bound to.
    pub course_id: Option<String>,
    /// Knowledge-base collections this conversation may search (checked).
    pub knowledge: Vec<String>,
}

impl ToolContext {
    /// A context for `user_id` with the dashboard agent and no session.
    pub fn for_user(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            session_id: None,
            agent: AgentKind::Dashboard,
            course_id: None,
            knowledge: Vec::new(),
        }
    }
}

/// What a tool returns: text for the model, and sources when it retrieved any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolOutput {
    /// The result as the model reads it.
    pub content: String,
    /// Passages the result was built from (cited in the `sources` event).
    pub sources: Vec<SourceInfo>,
}

impl ToolOutput {
    /// A plain text result.
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            sources: Vec::new(),
        }
    }

    /// A result serialised as JSON text.
    pub fn json(value: &impl serde::Serialize) -> Self {
        Self::text(
            serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")),
        )
    }
}

/// Why a tool call failed. The message is shown to the model, which may
/// correct itself.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolError {
    /// No tool of that name is offered.
    #[error("unknown tool `{0}`")]
    UnknownTool(String),
    /// The tool exists but is not in the conversation's allowed set.
    #[error("tool `{0}` is not available in this conversation")]
    NotAllowed(String),
    /// The arguments do not match the tool's schema.
    #[error("invalid arguments for `{tool}`: {reason}")]
    InvalidArguments {
        /// Tool name.
        tool: String,
        /// What is wrong.
        reason: String,
    },
    /// The tool did not answer in time.
    #[error("`{tool}` timed out after {seconds:.1} s")]
    Timeout {
        /// Tool name.
        tool: String,
        /// The limit.
        seconds: f64,
    },
    /// Something the tool needs is not reachable (e.g. an MCP server died).
    #[error("`{tool}` is unavailable: {reason}")]
    Unavailable {
        /// Tool name.
        tool: String,
        /// What happened.
        reason: String,
    },
    /// The tool ran and reported a failure (not found, not allowed, ...).
    #[error("{0}")]
    Failed(String),
}

impl ToolError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ToolError::UnknownTool(_) => "unknown_tool",
            ToolError::NotAllowed(_) => "tool_not_allowed",
            ToolError::InvalidArguments { .. } => "invalid_arguments",
            ToolError::Timeout { .. } => "tool_timeout",
            ToolError::Unavailable { .. } => "tool_unavailable",
            ToolError::Failed(_) => "tool_failed",
        }
    }
}

/// A tool with typed arguments. Its JSON schema is generated from `Args`;
/// the registry turns invalid arguments into [`ToolError::InvalidArguments`]
/// before `call` runs.
pub trait Tool: Send + Sync + 'static {
    /// The arguments the model must give.
    type Args: DeserializeOwned + JsonSchema + Send;

    /// Name the model calls it by (`[a-zA-Z0-9_-]`, at most 64 characters).
    fn name(&self) -> &str;

    /// What it does, for the model.
    fn description(&self) -> &str;

    /// Runs the tool.
    fn call<'a>(
        &'a self,
        args: Self::Args,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>>;
}

/// The object-safe form of a tool: a definition and a call on raw JSON.
/// Every [`Tool`] is one; MCP tools implement it directly.
pub trait DynTool: Send + Sync {
    /// Name, description and JSON schema of the arguments.
    fn definition(&self) -> ToolDefinition;

    /// Runs the tool on the arguments the model sent.
    fn call_json<'a>(
        &'a self,
        args: Value,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>>;
}

impl<T: Tool> DynTool for T {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: self.name().to_owned(),
            description: self.description().to_owned(),
            parameters: schema_for::<T::Args>(),
        }
    }

    fn call_json<'a>(
        &'a self,
        args: Value,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
        // Models sometimes send `null` or nothing for a tool without arguments.
        let args = if args.is_null() {
            Value::Object(Default::default())
        } else {
            args
        };
        match serde_json::from_value::<T::Args>(args) {
            Ok(args) => self.call(args, ctx),
            Err(e) => {
                let err = ToolError::InvalidArguments {
                    tool: self.name().to_owned(),
                    reason: e.to_string(),
                };
                Box::pin(async move { Err(err) })
            }
        }
    }
}

/// The JSON schema of `T` as tool parameters: an inline object schema with
/// no `$schema`/`title` noise (what OpenAI-style APIs expect).
pub fn schema_for<T: JsonSchema>() -> Value {
    let settings = schemars::generate::SchemaSettings::draft07().with(|s| {
        s.inline_subschemas = true;
    });
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut value = schema.to_value();
    if let Value::Object(map) = &mut value {
        map.remove("$schema");
        map.remove("title");
        map.remove("definitions");
        if !map.contains_key("properties") {
            map.insert("properties".into(), Value::Object(Default::default()));
        }
    }
    value
}

/// Named tools, shared by every conversation.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn DynTool>>,
}

impl fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("tools", &self.tools.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a typed tool (replacing one of the same name).
    pub fn register<T: Tool>(&mut self, tool: T) -> &mut Self {
        self.register_dyn(Arc::new(tool))
    }

    /// Adds any tool (replacing one of the same name).
    pub fn register_dyn(&mut self, tool: Arc<dyn DynTool>) -> &mut Self {
        let name = tool.definition().name;
        self.tools.insert(name, tool);
        self
    }

    /// Removes a tool; true when it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        self.tools.remove(name).is_some()
    }

    /// The tool of that name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn DynTool>> {
        self.tools.get(name)
    }

    /// Names of all tools, sorted.
    pub fn names(&self) -> Vec<String> {
        self.tools.keys().cloned().collect()
    }

    /// Whether `name` is in the allowed set `allowed` (names, or prefixes
    /// ending in `*`, as in [`ToolRegistry::definitions`]).
    pub fn is_allowed(allowed: &[String], name: &str) -> bool {
        allowed
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => pattern == name,
            })
    }

    /// Definitions of the named tools that exist, in the order given; names
    /// ending in `*` match a prefix (e.g. `time__*` for an MCP server's tools).
    pub fn definitions(&self, names: &[String]) -> Vec<ToolDefinition> {
        let mut out: Vec<ToolDefinition> = Vec::new();
        for name in names {
            if let Some(prefix) = name.strip_suffix('*') {
                for (n, tool) in &self.tools {
                    if n.starts_with(prefix) && !out.iter().any(|d| &d.name == n) {
                        out.push(tool.definition());
                    }
                }
            } else if let Some(tool) = self.tools.get(name)
                && !out.iter().any(|d| &d.name == name)
            {
                out.push(tool.definition());
            }
        }
        out
    }

    /// Runs a tool with a time limit, if `name` is in the conversation's
    /// allowed set `allowed` (the same patterns as
    /// [`ToolRegistry::definitions`]): whatever name the model produces, a
    /// tool outside that set never runs ([`ToolError::NotAllowed`]).
    /// Unknown tools, invalid arguments, failures and timeouts all come
    /// back as [`ToolError`]s.
    pub async fn call(
        &self,
        name: &str,
        allowed: &[String],
        args: Value,
        ctx: &ToolContext,
        timeout: Duration,
    ) -> Result<ToolOutput, ToolError> {
        if !Self::is_allowed(allowed, name) {
            tracing::warn!(tool = %name, user = %ctx.user_id, "the model called a tool outside the conversation's allowed set");
            return Err(if self.tools.contains_key(name) {
                ToolError::NotAllowed(name.to_owned())
            } else {
                ToolError::UnknownTool(name.to_owned())
            });
        }
        let tool = self
            .tools
            .get(name)
            .ok_or_else(|| ToolError::UnknownTool(name.to_owned()))?;
        match tokio::time::timeout(timeout, tool.call_json(args, ctx)).await {
            Ok(result) => result,
            Err(_) => Err(ToolError::Timeout {
                tool: name.to_owned(),
                seconds: timeout.as_secs_f64(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(Arc<std::sync::atomic::AtomicUsize>);

    impl DynTool for Counter {
        fn definition(&self) -> ToolDefinition {
            ToolDefinition {
                name: "count".into(),
                description: "counts calls".into(),
                parameters: serde_json::json!({"type": "object", "properties": {}}),
            }
        }

        fn call_json<'a>(
            &'a self,
            _args: Value,
            _ctx: &'a ToolContext,
        ) -> BoxFuture<'a, Result<ToolOutput, ToolError>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Ok(ToolOutput::text("ran")) })
        }
    }

    #[tokio::test]
    async fn call_enforces_the_allowed_set() {
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut registry = ToolRegistry::new();
        registry.register_dyn(Arc::new(Counter(runs.clone())));
        let ctx = ToolContext::for_user("u");
        let t = Duration::from_secs(1);
        let call = |allowed: Vec<String>| {
            let (registry, ctx) = (registry.clone(), ctx.clone());
            async move { registry.call("count", &allowed, Value::Null, &ctx, t).await }
        };
        assert_eq!(
            call(vec![]).await,
            Err(ToolError::NotAllowed("count".into()))
        );
        assert_eq!(
            call(vec!["other".into(), "cou".into()]).await,
            Err(ToolError::NotAllowed("count".into()))
        );
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert!(call(vec!["count".into()]).await.is_ok());
        assert!(call(vec!["co*".into()]).await.is_ok());
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
        let unknown = registry
            .call("nope", &["*".into()], Value::Null, &ctx, t)
            .await;
        assert_eq!(unknown, Err(ToolError::UnknownTool("nope".into())));
    }
}
