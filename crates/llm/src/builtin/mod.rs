//! The built-in offline provider: deterministic replies and embeddings with
//! no weights and no network, used when no real model is configured.
//!
//! Replies follow fixed rules, checked in order:
//!
//! 1. the last message is a tool result: summarise the results of the last
//!    round of tool calls;
//! 2. tools are offered and the last user message names one (`list_tracks`
//!    or `list tracks`, any case): call it, filling required arguments;
//! 3. a system or user message carries a sources block
//!    ([`crate::prompt::parse_sources`]): answer with the source sentences
//!    that share most words with the question, citing them as `[n]`;
//! 4. otherwise: say this is the offline model and how to configure a real one.
//!
//! Text streams one word per chunk (whitespace kept attached), then a
//! `Usage` chunk, then `Finish`. `max_tokens` counts those word chunks;
//! `stop` sequences cut the text before the first one found.
//!
//! [`reply`] holds the reply rules, [`embed`] the hashed embedder; the
//! words they share (stop words, tokenising) live here.

mod embed;
mod reply;

use futures_util::{StreamExt, stream};

use crate::{BoxFuture, ChatModel, ChatRequest, ChatStream, EmbeddingModel, LlmError};

/// Provider and model name.
const NAME: &str = "builtin";
/// Length of every embedding.
const DIMENSIONS: usize = 384;

/// Words that carry no topic: ignored when matching questions to sources,
/// down-weighted in embeddings. Words under three ASCII letters are treated
/// the same way.
const STOP_WORDS: &[&str] = &[
    "about",
    "above",
    "after",
    "again",
    "all",
    "also",
    "and",
    "answer",
    "any",
    "are",
    "based",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "can",
    "cannot",
    "cite",
    "context",
    "could",
    "describe",
    "did",
    "does",
    "doing",
    "done",
    "down",
    "during",
    "each",
    "explain",
    "few",
    "following",
    "for",
    "from",
    "further",
    "get",
    "give",
    "had",
    "has",
    "have",
    "having",
    "her",
    "here",
    "hers",
    "him",
    "his",
    "how",
    "into",
    "its",
    "itself",
    "just",
    "let",
    "like",
    "may",
    "might",
    "more",
    "most",
    "much",
    "must",
    "myself",
    "not",
    "now",
    "off",
    "once",
    "only",
    "other",
    "our",
    "ours",
    "out",
    "over",
    "own",
    "please",
    "provided",
    "question",
    "same",
    "shall",
    "she",
    "should",
    "show",
    "some",
    "source",
    "sources",
    "such",
    "tell",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "too",
    "under",
    "until",
    "use",
    "using",
    "very",
    "want",
    "was",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
    "yours",
    "yourself",
];

/// confab's offline, deterministic model: no weights, no network.
///
/// The same request always yields the same chunks. See the module
/// documentation for the reply rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinProvider;

impl BuiltinProvider {
    /// Length of every embedding this provider returns.
    pub const DIMENSIONS: usize = DIMENSIONS;

    /// A new built-in provider.
    pub fn new() -> Self {
        Self
    }
}

impl ChatModel for BuiltinProvider {
    fn provider(&self) -> &str {
        NAME
    }

    fn default_model(&self) -> &str {
        NAME
    }

    fn about(&self) -> Option<String> {
        Some(format!(
            "builtin: the offline extractive model, no language model at all: it answers by quoting the retrieved sentences that best match the question (with [n] citations); it cannot explain, rephrase or reason; {}",
            crate::SWITCH_HINT
        ))
    }

    fn stream(&self, request: ChatRequest) -> ChatStream {
        Box::pin(stream::once(async move { reply::respond(&request) }).flat_map(stream::iter))
    }
}

impl EmbeddingModel for BuiltinProvider {
    fn dimensions(&self) -> usize {
        DIMENSIONS
    }

    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, LlmError>> {
        Box::pin(async move { Ok(texts.iter().map(|t| embed::embed_text(t)).collect()) })
    }
}

/// Whether `word` (lowercase) carries no topic.
fn is_stop_word(word: &str) -> bool {
    (word.is_ascii() && word.len() < 3) || STOP_WORDS.binary_search(&word).is_ok()
}

/// Lowercase words split on anything not alphanumeric.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }
}
