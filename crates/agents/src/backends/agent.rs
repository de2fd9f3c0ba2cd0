//! `agent`: a tool-calling loop. The model proposes tool calls, the tools
//! of the conversation's agent run (in parallel, each with a timeout), the
//! results go back, until the model answers or the step limit is hit.
//!
//! Events: `stage analysis`, then per round `stage generation` and either
//! `token`s (the answer) or `tool_call`s, `stage retrieval|tool`,
//! `tool_result`s; finally `sources` and `Finished` (or `Error`).

use std::sync::Arc;

use confab_llm::{ChatMessage, ToolCall};
use confab_models::{FinishReason, SourceInfo, Usage};
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;

use super::{RoundEnd, RoundItem, add_usage, base_request, llm_error_event, model_round};
use crate::backend::{BackendDeps, ChatBackend, ChatContext};
use crate::event::{ChatEvent, EventStream, Stage};
use crate::tools::{ToolError, ToolOutput};

/// Most characters of a tool result sent back to the model.
const RESULT_CHARS: usize = 8_000;

/// The tool-using backend.
pub struct AgentBackend {
    deps: BackendDeps,
}

/// Registry constructor.
pub fn build(deps: &BackendDeps) -> Arc<dyn ChatBackend> {
    Arc::new(AgentBackend { deps: deps.clone() })
}

impl ChatBackend for AgentBackend {
    fn name(&self) -> &str {
        "agent"
    }

    fn stream(&self, query: String, history: Vec<ChatMessage>, ctx: ChatContext) -> EventStream {
        let deps = self.deps.clone();
        Box::pin(async_stream::stream! {
            let tools = deps.tools.definitions(deps.config.tools_for(ctx.agent));
            let tool_ctx = ctx.tool_context();
            let mut messages = history;
            messages.push(ChatMessage::user(query));
            let mut usage = Usage::default();
            let mut sources: Vec<SourceInfo> = Vec::new();
            let mut model_name = ctx
                .settings
                .preferred_model
                .clone()
                .unwrap_or_else(|| deps.model.default_model().to_owned());
            yield ChatEvent::Stage {
                stage: Stage::Analysis,
                content: if tools.is_empty() {
                    "Reading your question".into()
                } else {
                    format!("Planning the answer ({} tools available)", tools.len())
                },
            };
            let max_steps = deps.config.max_steps.max(1);
            for step in 0..max_steps {
                let request = base_request(messages.clone(), &deps.config, &ctx)
                    .with_tools(tools.clone());
                if let Some(m) = &request.model {
                    model_name = m.clone();
                }
                yield ChatEvent::Stage {
                    stage: Stage::Generation,
                    content: if step == 0 { "Thinking".into() } else { "Thinking about the results".into() },
                };
                let mut round = Box::pin(model_round(deps.model.clone(), request, ctx.cancel.clone()));
                let mut outcome = None;
                while let Some(item) = round.next().await {
                    match item {
                        RoundItem::Token(t) => yield ChatEvent::Token(t),
                        RoundItem::End { end, text, tool_calls, usage: u } => {
                            usage = add_usage(usage, u);
                            outcome = Some((end, text, tool_calls));
                        }
                    }
                }
                let Some((end, text, calls)) = outcome else {
                    yield ChatEvent::Error { code: "internal".into(), message: "model round ended without a result".into(), retry_after_secs: None };
                    return;
                };
                match end {
                    RoundEnd::Cancelled => {
                        yield ChatEvent::Finished { model: model_name, usage, finish_reason: FinishReason::Cancelled };
                        return;
                    }
                    RoundEnd::Failed(e) => {
                        yield llm_error_event(&e);
                        return;
                    }
                    RoundEnd::Finished(reason) if calls.is_empty() => {
                        yield ChatEvent::Sources(sources);
                        yield ChatEvent::Finished { model: model_name, usage, finish_reason: reason };
                        return;
                    }
                    RoundEnd::Finished(_) => {}
                }
                // Tool round.
                for call in &calls {
                    yield ChatEvent::ToolCall {
                        id: call.id.clone(),
                        name: call.name.clone(),
                        arguments: call.arguments.clone(),
                    };
                }
                yield tool_stage(&calls);
                messages.push(ChatMessage::assistant_tool_calls(text, calls.clone()));
                let mut running: FuturesOrdered<_> = calls
                    .iter()
                    .map(|call| {
                        let tools = deps.tools.clone();
                        let tool_ctx = tool_ctx.clone();
                        let timeout = deps.config.tool_timeout;
                        let allowed = deps.config.tools_for(ctx.agent).to_vec();
                        let call = call.clone();
                        async move {
                            let result = tools.call(&call.name, &allowed, call.arguments.clone(), &tool_ctx, timeout).await;
                            (call, result)
                        }
                    })
                    .collect();
                loop {
                    let next = tokio::select! {
                        biased;
                        _ = ctx.cancel.cancelled() => {
                            yield ChatEvent::Finished { model: model_name, usage, finish_reason: FinishReason::Cancelled };
                            return;
                        }
                        next = running.next() => next,
                    };
                    let Some((call, result)) = next else { break };
                    let (content, is_error) = tool_result_text(&call, result, &mut sources);
                    yield ChatEvent::ToolResult {
                        id: call.id.clone(),
                        name: call.name.clone(),
                        content: content.clone(),
                        is_error,
                    };
                    messages.push(ChatMessage::tool_result(call.id.clone(), call.name.clone(), content));
                }
            }
            // The step limit: say so plainly rather than loop forever.
            let notice = format!(
                "I stopped after {max_steps} rounds of tool calls without reaching a final answer. \
        Please narrow the question or ask again."
            );
            yield ChatEvent::Token(notice);
            yield ChatEvent::Sources(sources);
            yield ChatEvent::Finished { model: model_name, usage, finish_reason: FinishReason::Length };
        })
    }
}

/// `retrieval` when every call searches the knowledge base, else `tool`.
fn tool_stage(calls: &[ToolCall]) -> ChatEvent {
    let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    if names.iter().all(|n| *n == "search_knowledge") {
        ChatEvent::Stage {
            stage: Stage::Retrieval,
            content: "Searching the knowledge base".into(),
        }
    } else {
        let mut unique: Vec<&str> = Vec::new();
        for n in names {
            if !unique.contains(&n) {
                unique.push(n);
            }
        }
        ChatEvent::Stage {
            stage: Stage::Tool,
            content: format!("Running {}", unique.join(", ")),
        }
    }
}

/// The text the model gets back, and whether it is an error; sources of
/// successful calls are collected (without duplicates).
fn tool_result_text(
    call: &ToolCall,
    result: Result<ToolOutput, ToolError>,
    sources: &mut Vec<SourceInfo>,
) -> (String, bool) {
    match result {
        Ok(output) => {
            for s in output.sources {
                if !sources
                    .iter()
                    .any(|x| x.file_path == s.file_path && x.content == s.content)
                {
                    sources.push(s);
                }
            }
            (
                crate::tools::builtin::truncate(&output.content, RESULT_CHARS),
                false,
            )
        }
        Err(e) => {
            tracing::debug!(tool = %call.name, error = %e, "tool call failed");
            (format!("error ({}): {e}", e.code()), true)
        }
    }
}
