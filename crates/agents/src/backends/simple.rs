//! `simple`: retrieval-augmented answers. Embed the question, hybrid
//! search (the course's collection for a course agent), a prompt with the
//! numbered sources, stream the answer, then the `sources` event.
//!
//! Events: `stage analysis`, `stage retrieval`, `stage generation`,
//! `token`..., `sources`, then `Finished` (or `Error`).

use std::sync::Arc;

use confab_llm::{ChatMessage, prompt::format_sources};
use confab_models::{AgentKind, FinishReason, SourceInfo};
use confab_rag::SearchOptions;
use futures_util::StreamExt;

use super::{RoundEnd, RoundItem, base_request, llm_error_event, model_round};
use crate::backend::{BackendDeps, ChatBackend, ChatContext};
use crate::event::{ChatEvent, EventStream, Stage};
use crate::store::course_collection;

/// What the model is told about the sources.
const SOURCES_INSTRUCTIONS: &str = "Answer the user's question using the numbered sources below. \
Cite the sources you use as [n]. If they do not contain the answer, say so and answer from general knowledge, clearly marked.";

/// The RAG backend.
pub struct SimpleBackend {
    deps: BackendDeps,
}

/// Registry constructor.
pub fn build(deps: &BackendDeps) -> Arc<dyn ChatBackend> {
    Arc::new(SimpleBackend { deps: deps.clone() })
}

impl ChatBackend for SimpleBackend {
    fn name(&self) -> &str {
        "simple"
    }

    fn stream(&self, query: String, history: Vec<ChatMessage>, ctx: ChatContext) -> EventStream {
        let deps = self.deps.clone();
        Box::pin(async_stream::stream! {
            yield ChatEvent::Stage {
                stage: Stage::Analysis,
                content: "Reading your question".into(),
            };
            let mut sources: Vec<SourceInfo> = Vec::new();
            if let Some(rag) = &deps.rag {
                let collection = match (ctx.agent, &ctx.course_id) {
                    (AgentKind::Course, Some(course)) => Some(course_collection(course)),
                    _ => None,
                };
                yield ChatEvent::Stage {
                    stage: Stage::Retrieval,
                    content: if !ctx.knowledge.is_empty() {
                        "Searching your knowledge bases".into()
                    } else if collection.is_some() {
                        "Searching the course materials".into()
                    } else {
                        "Searching the knowledge base".into()
                    },
                };
                let top_k = deps.config.top_k;
                let search = async {
                    if ctx.knowledge.is_empty() {
                        let options = SearchOptions {
                            collection,
                            top_k,
                            ..SearchOptions::default()
                        };
                        rag.search(&query, &options).await
                    } else {
                        // Only the bases the caller was checked for (plus the course's own).
                        rag.search_knowledge(&query, &ctx.knowledge, collection, top_k).await
                    }
                };
                let found = tokio::select! {
                    biased;
                    _ = ctx.cancel.cancelled() => None,
                    found = search => Some(found),
                };
                match found {
                    None => {
                        yield cancelled(&deps, &ctx);
                        return;
                    }
                    Some(Ok(found)) => sources = found,
                    Some(Err(e)) => {
                        // Answer without sources rather than not at all.
                        tracing::warn!(error = %e, "retrieval failed; answering without sources");
                        yield ChatEvent::Stage {
                            stage: Stage::Retrieval,
                            content: "The knowledge base is unavailable; answering without sources".into(),
                        };
                    }
                }
            }
            let request = base_request(prompt(history, &query, &sources), &deps.config, &ctx);
            let model_name = request
                .model
                .clone()
                .unwrap_or_else(|| deps.model.default_model().to_owned());
            yield ChatEvent::Stage {
                stage: Stage::Generation,
                content: "Writing the answer".into(),
            };
            let mut round = Box::pin(model_round(deps.model.clone(), request, ctx.cancel.clone()));
            while let Some(item) = round.next().await {
                match item {
                    RoundItem::Token(t) => yield ChatEvent::Token(t),
                    RoundItem::End { end, usage, .. } => match end {
                        RoundEnd::Finished(reason) => {
                            yield ChatEvent::Sources(std::mem::take(&mut sources));
                            yield ChatEvent::Finished { model: model_name.clone(), usage, finish_reason: reason };
                        }
                        RoundEnd::Cancelled => {
                            yield ChatEvent::Finished { model: model_name.clone(), usage, finish_reason: FinishReason::Cancelled };
                        }
                        RoundEnd::Failed(e) => yield llm_error_event(&e),
                    },
                }
            }
        })
    }
}

/// The `Finished` event of a request cancelled before the model ran.
pub(crate) fn cancelled(deps: &BackendDeps, ctx: &ChatContext) -> ChatEvent {
    ChatEvent::Finished {
        model: ctx
            .settings
            .preferred_model
            .clone()
            .unwrap_or_else(|| deps.model.default_model().to_owned()),
        usage: Default::default(),
        finish_reason: FinishReason::Cancelled,
    }
}

/// History, then the sources as a system message, then the question.
fn prompt(mut history: Vec<ChatMessage>, query: &str, sources: &[SourceInfo]) -> Vec<ChatMessage> {
    if !sources.is_empty() {
        let block = format_sources(
            sources
                .iter()
                .map(|s| (s.file_path.as_str(), s.content.as_str())),
        );
        history.push(ChatMessage::system(format!(
            "{SOURCES_INSTRUCTIONS}\n\n{block}"
        )));
    }
    history.push(ChatMessage::user(query));
    history
}
