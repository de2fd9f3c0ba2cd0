//! The built-in model's reply rules (see the [module documentation](super)).

use std::cmp::Reverse;
use std::collections::BTreeSet;

use serde_json::{Map, Value};

use rust_stemmers::{Algorithm, Stemmer};

use super::{is_stop_word, words};
use crate::prompt::{PromptSource, SOURCES_HEADER, parse_sources};
use crate::{
    ChatChunk, ChatMessage, ChatRequest, FinishReason, LlmError, Role, ToolCall, ToolDefinition,
    Usage,
};

/// Most characters of one tool result quoted back.
const TOOL_RESULT_CHARS: usize = 600;
/// Most characters of the user's question echoed by the offline reply.
const ECHO_CHARS: usize = 160;
/// Most characters of one quoted source sentence.
const SENTENCE_CHARS: usize = 400;
/// Most source sentences in an answer.
const MAX_SENTENCES: usize = 3;
/// Id of the tool call the model makes.
const CALL_ID: &str = "call_builtin_0";

/// What the model decided to answer.
enum Reply {
    /// Plain text.
    Text(String),
    /// One tool call.
    Call(ToolCall),
}

/// Every item of the reply stream for `request`.
pub(super) fn respond(request: &ChatRequest) -> Vec<Result<ChatChunk, LlmError>> {
    let prompt_tokens = count_u32(
        request
            .messages
            .iter()
            .map(|m| m.content.split_whitespace().count())
            .sum(),
    );
    let mut out = Vec::new();
    match reply(request) {
        Reply::Call(call) => {
            out.push(Ok(ChatChunk::ToolCall(call)));
            out.push(Ok(ChatChunk::Usage(Usage::new(prompt_tokens, 1))));
            out.push(Ok(ChatChunk::Finish(FinishReason::ToolCalls)));
        }
        Reply::Text(text) => {
            let text = cut_at_stop(&text, &request.stop);
            let words = split_words(text);
            let limit = request
                .max_tokens
                .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
            let finish = if words.len() > limit {
                FinishReason::Length
            } else {
                FinishReason::Stop
            };
            let emitted = words.len().min(limit);
            out.extend(
                words
                    .into_iter()
                    .take(limit)
                    .map(|w| Ok(ChatChunk::Text(w.to_owned()))),
            );
            out.push(Ok(ChatChunk::Usage(Usage::new(
                prompt_tokens,
                count_u32(emitted),
            ))));
            out.push(Ok(ChatChunk::Finish(finish)));
        }
    }
    out
}

/// Applies the reply rules in order.
fn reply(request: &ChatRequest) -> Reply {
    if let Some(text) = tool_result_reply(&request.messages) {
        return Reply::Text(text);
    }
    if let Some(call) = tool_call(request) {
        return Reply::Call(call);
    }
    if let Some(text) = sources_reply(request) {
        return Reply::Text(text);
    }
    Reply::Text(offline_reply(request.last_user_text()))
}

/// Saturating `usize` -> `u32`.
fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `text` up to (not including) the earliest non-empty stop sequence.
fn cut_at_stop<'a>(text: &'a str, stop: &[String]) -> &'a str {
    let cut = stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min();
    match cut {
        Some(at) => text.get(..at).unwrap_or(text),
        None => text,
    }
}

/// Splits text into word chunks, each word carrying the whitespace after it
/// (leading whitespace goes with the first word), so that the chunks
/// concatenate back to `text` exactly.
fn split_words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_ws = false;
    for (i, c) in text.char_indices() {
        let ws = c.is_whitespace();
        if !ws && prev_ws && i > start && text.get(start..i).is_some_and(has_non_ws) {
            if let Some(word) = text.get(start..i) {
                out.push(word);
            }
            start = i;
        }
        prev_ws = ws;
    }
    if let Some(rest) = text.get(start..).filter(|r| !r.is_empty()) {
        out.push(rest);
    }
    out
}

/// Whether `s` contains anything but whitespace.
fn has_non_ws(s: &str) -> bool {
    s.chars().any(|c| !c.is_whitespace())
}

/// At most `max` characters of `text`, with `…` when cut.
fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => {
            let mut s = text.get(..at).unwrap_or(text).trim_end().to_owned();
            s.push('…');
            s
        }
        None => text.to_owned(),
    }
}

/// Whitespace runs collapsed to single spaces, ends trimmed.
fn collapse_ws(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

// --- rule 1: tool results ---------------------------------------------------

/// When the conversation ends with tool results: a reply quoting them.
fn tool_result_reply(messages: &[ChatMessage]) -> Option<String> {
    if messages.last()?.role != Role::Tool {
        return None;
    }
    let call_at = messages
        .iter()
        .rposition(|m| m.role == Role::Assistant && !m.tool_calls.is_empty());
    let start = match call_at {
        Some(i) => i + 1,
        None => messages
            .iter()
            .rposition(|m| m.role != Role::Tool)
            .map_or(0, |i| i + 1),
    };
    let calls: &[ToolCall] = call_at
        .and_then(|i| messages.get(i))
        .map_or(&[], |m| m.tool_calls.as_slice());
    let parts: Vec<String> = messages
        .iter()
        .skip(start)
        .filter(|m| m.role == Role::Tool)
        .map(|m| {
            let name = m
                .name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .or_else(|| {
                    let id = m.tool_call_id.as_deref()?;
                    calls.iter().find(|c| c.id == id).map(|c| c.name.as_str())
                });
            let content = m.content.trim();
            let content = if content.is_empty() {
                "(no output)".to_owned()
            } else {
                truncate_chars(content, TOOL_RESULT_CHARS)
            };
            match name {
                Some(name) => format!("Here is what I found with `{name}`: {content}"),
                None => format!("Here is what I found with the tool: {content}"),
            }
        })
        .collect();
    Some(parts.join("\n\n"))
}

// --- rule 2: tool calls -----------------------------------------------------

/// A call of the offered tool the last user message names, if any.
fn tool_call(request: &ChatRequest) -> Option<ToolCall> {
    if request.tools.is_empty() {
        return None;
    }
    let text = request.last_user_text()?;
    // (start, end, tool): earliest mention wins, then the longest, then
    // the first tool offered.
    let mut best: Option<(usize, usize, &ToolDefinition)> = None;
    for tool in &request.tools {
        let name = tool.name.trim();
        if name.is_empty() {
            continue;
        }
        let spaced = name.replace('_', " ");
        for pattern in [name, spaced.as_str()] {
            let Some((start, end)) = find_word_ci(text, pattern) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((s, e, _)) => start < s || (start == s && end - start > e - s),
            };
            if better {
                best = Some((start, end, tool));
            }
        }
    }
    let (start, end, tool) = best?;
    let before = text
        .get(..start)
        .unwrap_or("")
        .trim_end_matches(is_separator);
    let after = text
        .get(end..)
        .unwrap_or("")
        .trim_start_matches(is_separator);
    let rest = clean_argument(&format!("{before} {after}"));
    Some(ToolCall {
        id: CALL_ID.to_owned(),
        name: tool.name.clone(),
        arguments: build_arguments(&tool.parameters, &rest),
    })
}

/// Characters that make up a word (for name matching).
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The byte span of the first case-insensitive, whole-word occurrence of
/// `needle` in `haystack`.
fn find_word_ci(haystack: &str, needle: &str) -> Option<(usize, usize)> {
    let needle: Vec<char> = needle.chars().flat_map(char::to_lowercase).collect();
    if needle.is_empty() {
        return None;
    }
    let mut prev: Option<char> = None;
    for (start, c) in haystack.char_indices() {
        let boundary_before = !prev.is_some_and(is_word_char);
        prev = Some(c);
        if !boundary_before {
            continue;
        }
        let Some(end) = match_at(haystack, start, &needle) else {
            continue;
        };
        let next = haystack.get(end..).and_then(|s| s.chars().next());
        if !next.is_some_and(is_word_char) {
            return Some((start, end));
        }
    }
    None
}

/// Where a case-insensitive match of `needle` starting at `start` ends.
fn match_at(haystack: &str, start: usize, needle: &[char]) -> Option<usize> {
    let rest = haystack.get(start..)?;
    let mut i = 0;
    for (offset, c) in rest.char_indices() {
        for lower in c.to_lowercase() {
            if needle.get(i) != Some(&lower) {
                return None;
            }
            i += 1;
        }
        if i == needle.len() {
            return Some(start + offset + c.len_utf8());
        }
    }
    None
}

/// Whitespace, punctuation that separates a command from its argument,
/// and quotes.
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            ':' | ',' | ';' | '-' | '=' | '.' | '?' | '!' | '"' | '`' | '“' | '”'
        )
}

/// The user's text once the tool name is gone: whitespace collapsed,
/// separators and quotes trimmed off the ends.
fn clean_argument(text: &str) -> String {
    collapse_ws(text).trim_matches(is_separator).to_owned()
}

/// A JSON object with every required property of `schema` filled: strings
/// with `text`, other types with a neutral value.
fn build_arguments(schema: &Value, text: &str) -> Value {
    let mut args = Map::new();
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            let property = properties.and_then(|p| p.get(name));
            args.insert(name.to_owned(), argument_value(property, text));
        }
    }
    Value::Object(args)
}

/// The value given to one required property.
fn argument_value(property: Option<&Value>, text: &str) -> Value {
    let Some(property) = property else {
        return Value::String(text.to_owned());
    };
    if let Some(values) = property.get("enum").and_then(Value::as_array) {
        let named = values
            .iter()
            .find(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(text)));
        if let Some(v) = named.or(values.first()) {
            return v.clone();
        }
    }
    if let Some(v) = property.get("const") {
        return v.clone();
    }
    let ty = match property.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ => "string",
    };
    let default = property.get("default").cloned();
    match ty {
        "string" if text.is_empty() => default.unwrap_or_else(|| Value::String(String::new())),
        "string" => Value::String(text.to_owned()),
        "integer" | "number" => default.unwrap_or_else(|| Value::from(0)),
        "boolean" => default.unwrap_or(Value::Bool(false)),
        "array" => default.unwrap_or_else(|| Value::Array(Vec::new())),
        "object" => default.unwrap_or_else(|| Value::Object(Map::new())),
        "null" => Value::Null,
        _ => default.unwrap_or_else(|| Value::String(text.to_owned())),
    }
}

// --- rule 3: sources --------------------------------------------------------

/// One candidate sentence of a source.
struct Candidate {
    /// Position of its source in the block.
    source: usize,
    /// Position within the source.
    position: usize,
    /// Distinct question terms it contains.
    score: usize,
    /// The sentence.
    text: String,
}

/// When a message carries sources: an answer built from their sentences.
fn sources_reply(request: &ChatRequest) -> Option<String> {
    let (at, mut sources) = request
        .messages
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, m)| matches!(m.role, Role::System | Role::User))
        .find_map(|(i, m)| {
            let sources = parse_sources(&m.content);
            (!sources.is_empty()).then_some((i, sources))
        })?;
    let question = question_text(request, at, &mut sources);
    let question_terms: BTreeSet<String> = terms(&question).collect();

    let mut candidates = Vec::new();
    for (si, source) in sources.iter().enumerate() {
        for (position, sentence) in split_sentences(&source.text).into_iter().enumerate() {
            let sentence_terms: BTreeSet<String> = terms(&sentence).collect();
            let score = question_terms.intersection(&sentence_terms).count();
            // A sentence quoting citations of its own (an example prompt)
            // would mix its `[n]` with the answer's.
            if score > 0 && !has_citation(&sentence) {
                candidates.push(Candidate {
                    source: si,
                    position,
                    score,
                    text: sentence,
                });
            }
        }
    }
    candidates.sort_by_key(|c| (Reverse(c.score), c.source, c.position));
    let best = candidates.first().map_or(0, |c| c.score);

    let mut chosen: Vec<&Candidate> = Vec::new();
    for c in &candidates {
        if chosen.len() == MAX_SENTENCES || c.score * 2 < best {
            break;
        }
        if !chosen.iter().any(|d| d.text == c.text) {
            chosen.push(c);
        }
    }

    if chosen.is_empty() {
        return Some(format!(
            "The provided sources don't seem to cover that question. Sources available: {}",
            list_sources(sources.iter())
        ));
    }
    let mut answer = String::from("Based on the sources:");
    for c in &chosen {
        let number = sources.get(c.source).map_or(c.source + 1, |s| s.number);
        answer.push_str(&format!(
            " {} [{number}]",
            truncate_chars(&c.text, SENTENCE_CHARS)
        ));
    }
    let used: BTreeSet<usize> = chosen.iter().map(|c| c.source).collect();
    answer.push_str("\n\nSources: ");
    answer.push_str(&list_sources(used.iter().filter_map(|&i| sources.get(i))));
    Some(answer)
}

/// Whether `text` holds a citation marker such as `[1]`: digits in
/// brackets that do not follow a name (`v[0]` is indexing).
fn has_citation(text: &str) -> bool {
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        let follows_name =
            prev.is_some_and(|p| p.is_alphanumeric() || matches!(p, '_' | ')' | ']'));
        if c == '[' && !follows_name {
            let rest = text.get(i + 1..).unwrap_or("");
            if let Some((inside, _)) = rest.split_once(']')
                && !inside.is_empty()
                && inside.bytes().all(|b| b.is_ascii_digit())
            {
                return true;
            }
        }
        prev = Some(c);
    }
    false
}

/// `[1] a.md; [2] b.md`.
fn list_sources<'a>(sources: impl Iterator<Item = &'a PromptSource>) -> String {
    sources
        .map(|s| {
            let label = collapse_ws(&s.label);
            if label.is_empty() {
                format!("[{}] (untitled)", s.number)
            } else {
                format!("[{}] {label}", s.number)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The question to answer. When the last user message itself carries the
/// sources block, the question is the text before the block or, failing
/// that, its last paragraph (which is then removed from the last source).
fn question_text(request: &ChatRequest, sources_at: usize, sources: &mut [PromptSource]) -> String {
    let Some(user_at) = request.messages.iter().rposition(|m| m.role == Role::User) else {
        return String::new();
    };
    let Some(message) = request.messages.get(user_at) else {
        return String::new();
    };
    let content = message.content.as_str();
    if user_at != sources_at {
        return content.to_owned();
    }
    let before = content
        .find(SOURCES_HEADER)
        .and_then(|i| content.get(..i))
        .unwrap_or("");
    if has_non_ws(before) {
        return before.to_owned();
    }
    let paragraph = content
        .trim_end()
        .rsplit("\n\n")
        .next()
        .unwrap_or("")
        .trim();
    let Some(last) = sources
        .last_mut()
        .filter(|s| s.text.len() > paragraph.len() && s.text.ends_with(paragraph))
    else {
        return String::new();
    };
    let keep = last.text.len() - paragraph.len();
    last.text = last.text.get(..keep).unwrap_or("").trim_end().to_owned();
    paragraph.to_owned()
}

/// The content terms of `text`: lowercase, stop words dropped, reduced to
/// their Snowball (Porter 2) English stem, so that "mutably" meets
/// "mutable" and "borrow" meets "borrowed".
fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    let stemmer = Stemmer::create(Algorithm::English);
    words(text)
        .filter(|w| !is_stop_word(w))
        .map(move |w| stemmer.stem(&w).into_owned())
}

/// Sentences of a passage: paragraphs and Markdown list items/headings are
/// split apart, then split after `.`, `!` or `?` followed by whitespace.
fn split_sentences(text: &str) -> Vec<String> {
    let mut blocks: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let (starts_block, heading, content) = block_line(line);
        if (starts_block || content.is_empty()) && !current.is_empty() {
            blocks.push(std::mem::take(&mut current));
        }
        if !content.is_empty() {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(content);
        }
        if heading && !current.is_empty() {
            blocks.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }

    let mut out = Vec::new();
    for block in &blocks {
        let mut sentence = String::new();
        let mut chars = block.chars().peekable();
        while let Some(c) = chars.next() {
            sentence.push(c);
            let ends = matches!(c, '.' | '!' | '?' | '。' | '！' | '？')
                && chars.peek().is_none_or(|n| n.is_whitespace());
            if ends {
                push_sentence(&mut out, &sentence);
                sentence.clear();
            }
        }
        push_sentence(&mut out, &sentence);
    }
    out
}

/// Reads one line of a passage: whether it starts a new block (a Markdown
/// heading, list item or quote), whether it is a heading, and its text
/// without the marker.
fn block_line(line: &str) -> (bool, bool, &str) {
    let trimmed = line.trim();
    if trimmed.starts_with('#') {
        return (true, true, trimmed.trim_start_matches('#').trim());
    }
    for marker in ["- ", "* ", "+ ", "> ", "| "] {
        if let Some(rest) = trimmed.strip_prefix(marker) {
            return (true, false, rest.trim());
        }
    }
    let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
    let numbered = trimmed
        .get(digits..)
        .filter(|_| digits > 0)
        .and_then(|r| r.strip_prefix(". ").or_else(|| r.strip_prefix(") ")));
    match numbered {
        Some(rest) => (true, false, rest.trim()),
        None => (false, false, trimmed),
    }
}

/// Adds a sentence (whitespace collapsed) if it has any letter or digit.
fn push_sentence(out: &mut Vec<String>, sentence: &str) {
    if sentence.chars().any(char::is_alphanumeric) {
        out.push(collapse_ws(sentence));
    }
}

// --- rule 4: offline --------------------------------------------------------

/// The reply when nothing else applies.
fn offline_reply(question: Option<&str>) -> String {
    let mut out = String::from(
        "I'm confab's built-in offline model: no language model is configured, \
         so I can't give you a real answer.",
    );
    let asked = question.map(collapse_ws).filter(|q| !q.is_empty());
    if let Some(asked) = asked {
        out.push_str(&format!(
            " You asked: \"{}\"",
            truncate_chars(&asked, ECHO_CHARS)
        ));
    }
    out.push_str(
        "\n\nTo use a real model, set CONFAB_LLM_PROVIDER=openai with \
         AGENT_RUNTIME__LLM_PROXY_URL (any OpenAI-compatible server) and \
         AGENT_RUNTIME__LLM_MODEL, or CONFAB_LLM_PROVIDER=ollama with OLLAMA_HOST.",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_words_round_trips() {
        for text in ["", "  ", "a", " a b  c\n", "héllo wörld 日本 語 ", "x\t\ty"] {
            let words = split_words(text);
            assert_eq!(words.concat(), text);
            assert_eq!(
                words.len(),
                text.split_whitespace()
                    .count()
                    .max(usize::from(!text.is_empty() && text.trim().is_empty()))
            );
        }
    }

    #[test]
    fn finds_whole_words_case_insensitively() {
        assert_eq!(
            find_word_ci("Please LIST tracks now", "list tracks"),
            Some((7, 18))
        );
        assert_eq!(find_word_ci("playlist tracks", "list tracks"), None);
        assert_eq!(find_word_ci("list_tracks_v2", "list_tracks"), None);
        assert_eq!(
            find_word_ci("İstanbul list_tracks", "list_tracks"),
            Some((10, 21))
        );
        assert_eq!(find_word_ci("", "x"), None);
        assert_eq!(find_word_ci("x", ""), None);
    }

    #[test]
    fn sentences_split_on_paragraphs_and_punctuation() {
        let s = split_sentences("# Title\nOne two.\nstill one! Three?\n\n- item four\n1. five");
        assert_eq!(
            s,
            vec![
                "Title",
                "One two.",
                "still one!",
                "Three?",
                "item four",
                "five"
            ]
        );
    }

    #[test]
    fn citation_markers_are_found() {
        assert!(has_citation("[1] lessons/borrowing.md: \"At any time\""));
        assert!(has_citation("see [12]."));
        assert!(!has_citation("let first = &v[0];"));
        assert!(!has_citation("an array [T] or a slice []"));
        assert!(!has_citation("index v[i] here"));
    }

    #[test]
    fn stop_cuts_at_earliest() {
        let stop = vec!["c".to_owned(), String::new(), "b".to_owned()];
        assert_eq!(cut_at_stop("aabbcc", &stop), "aa");
        assert_eq!(cut_at_stop("aa", &stop), "aa");
    }

    #[test]
    fn arguments_fill_required_fields() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "limit": {"type": "integer"},
                "exact": {"type": ["boolean", "null"]},
                "tags": {"type": "array"},
                "order": {"type": "string", "enum": ["asc", "desc"]},
                "optional": {"type": "string"}
            },
            "required": ["query", "limit", "exact", "tags", "order", "missing"]
        });
        let args = build_arguments(&schema, "rust");
        assert_eq!(
            args,
            serde_json::json!({
                "query": "rust", "limit": 0, "exact": false, "tags": [],
                "order": "asc", "missing": "rust"
            })
        );
        assert_eq!(build_arguments(&Value::Null, "x"), serde_json::json!({}));
    }
}
