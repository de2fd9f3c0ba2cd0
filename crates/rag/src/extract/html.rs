//! HTML reduced to Markdown-like text: html5ever's tokenizer (the WHATWG
//! tokenizing rules: entities, raw-text elements, comments, broken markup)
//! feeds a small state machine that keeps prose and structure.

use std::borrow::Cow;
use std::cell::RefCell;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};

/// Elements whose raw content is dropped unparsed.
const RAW_SKIP: &[&str] = &[
    "script", "style", "noscript", "iframe", "noembed", "noframes", "xmp",
];
/// Elements whose (parsed) content is dropped: markup, not prose (`nav` menus are noise for retrieval).
const SKIP_PARSED: &[&str] = &["template", "svg", "math", "nav"];
/// Elements that may appear in `<head>`; any other start tag ends an unclosed head.
const HEAD_ELEMENTS: &[&str] = &[
    "title", "meta", "link", "style", "script", "base", "noscript", "template",
];
/// Elements that start and end a paragraph (a blank line).
const PARAGRAPH_ELEMENTS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "blockquote",
    "ul",
    "ol",
    "dl",
    "table",
    "figure",
    "form",
    "details",
    "summary",
    "fieldset",
    "address",
    "hgroup",
    "center",
    "body",
    "html",
    "hr",
    "thead",
    "tbody",
    "tfoot",
    "menu",
    "dialog",
    "search",
];
/// Elements that start and end a line.
const LINE_ELEMENTS: &[&str] = &[
    "tr",
    "dt",
    "dd",
    "figcaption",
    "caption",
    "option",
    "legend",
];

/// Reduces HTML to Markdown-like text (see the module docs); never fails.
///
/// Drops `<script>`, `<style>`, `<head>` (and `<nav>`, `<svg>`, `<template>`)
/// and comments; block elements become line breaks or blank lines; `<h1>`..
/// `<h6>` become `#` lines; `<li>` become `- ` lines; `<pre>` becomes a fenced
/// code block; entities are decoded; whitespace is collapsed outside `<pre>`.
/// Text lines that Markdown would read as headings, rules or fences are
/// escaped with a backslash.
pub fn html_to_text(html: &str) -> String {
    reduce_html(html).1
}

/// The `<title>` (if any) and the reduced text.
pub(super) fn reduce_html(html: &str) -> (Option<String>, String) {
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let tokenizer = Tokenizer::new(Sink(RefCell::default()), TokenizerOpts::default());
    // The sink never pauses the tokenizer (no script execution), so one
    // feed reads the whole input.
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    let reducer = tokenizer.sink.0.into_inner();
    (reducer.title, reducer.out.finish())
}

/// Receives the tokenizer's tokens (it hands the sink `&self`).
struct Sink(RefCell<Reducer>);

impl TokenSink for Sink {
    type Handle = ();

    fn process_token(&self, token: Token, _line_number: u64) -> TokenSinkResult<()> {
        self.0.borrow_mut().token(token)
    }
}

/// What the reduction has seen so far.
#[derive(Default)]
struct Reducer {
    /// The text being built.
    out: TextOut,
    /// The document's first non-empty `<title>`.
    title: Option<String>,
    /// Text of the `<title>` being read.
    title_text: Option<String>,
    /// The raw-text element (`<script>`, `<style>`, ...) being dropped.
    raw: Option<String>,
    /// Open elements whose content is dropped (`<nav>`, `<svg>`, ...).
    skip: Vec<String>,
    /// Inside `<head>` (ended by its end tag or by body content).
    in_head: bool,
}

impl Reducer {
    /// Handles one token; comments, doctypes, NULs and parse errors carry no prose.
    fn token(&mut self, token: Token) -> TokenSinkResult<()> {
        match token {
            Token::CharacterTokens(text) => self.characters(&text),
            Token::TagToken(tag) => return self.tag(&tag),
            _ => {}
        }
        TokenSinkResult::Continue
    }

    /// Text, its entities already decoded.
    fn characters(&mut self, text: &str) {
        if let Some(title) = &mut self.title_text {
            title.push_str(text);
            return;
        }
        if self.raw.is_some() || !self.skip.is_empty() {
            return;
        }
        if self.in_head {
            if text.trim().is_empty() {
                return;
            }
            self.in_head = false;
        }
        self.out.text(text);
    }

    /// A start or end tag (names come lowercased).
    fn tag(&mut self, tag: &Tag) -> TokenSinkResult<()> {
        let name: &str = &tag.name;
        match tag.kind {
            TagKind::StartTag => return self.start(name, tag.self_closing),
            TagKind::EndTag => self.end(name),
        }
        TokenSinkResult::Continue
    }

    fn start(&mut self, name: &str, self_closing: bool) -> TokenSinkResult<()> {
        // Raw text elements: the tokenizer reads their content as text up
        // to the matching end tag, never as markup.
        if !self_closing && name == "title" {
            self.title_text = Some(String::new());
            return TokenSinkResult::RawData(RawKind::Rcdata);
        }
        if !self_closing && RAW_SKIP.contains(&name) {
            self.raw = Some(name.to_owned());
            let kind = if name == "script" {
                RawKind::ScriptData
            } else {
                RawKind::Rawtext
            };
            return TokenSinkResult::RawData(kind);
        }
        if !self.skip.is_empty() {
            if SKIP_PARSED.contains(&name) && !self_closing {
                self.skip.push(name.to_owned());
            }
            return TokenSinkResult::Continue;
        }
        if name == "head" {
            self.in_head = !self_closing;
            return TokenSinkResult::Continue;
        }
        if self.in_head {
            if HEAD_ELEMENTS.contains(&name) {
                return TokenSinkResult::Continue;
            }
            self.in_head = false;
        }
        if SKIP_PARSED.contains(&name) {
            if !self_closing {
                self.skip.push(name.to_owned());
            }
            return TokenSinkResult::Continue;
        }
        self.out.start_tag(name);
        TokenSinkResult::Continue
    }

    fn end(&mut self, name: &str) {
        if name == "title"
            && let Some(text) = self.title_text.take()
        {
            let text = collapse_whitespace(&text);
            if self.title.is_none() && self.skip.is_empty() && !text.is_empty() {
                self.title = Some(text);
            }
            return;
        }
        if self.raw.as_deref() == Some(name) {
            self.raw = None;
            return;
        }
        if !self.skip.is_empty() {
            if let Some(pos) = self.skip.iter().rposition(|s| s == name) {
                self.skip.truncate(pos);
            }
            return;
        }
        if name == "head" {
            self.in_head = false;
            return;
        }
        self.out.end_tag(name);
    }
}

/// What the current output line starts with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Prefix {
    #[default]
    None,
    Bullet,
    Heading(usize),
}

/// Builds the reduced text line by line.
#[derive(Debug, Default)]
struct TextOut {
    out: String,
    line: String,
    prefix: Prefix,
    heading: Option<usize>,
    pending_space: bool,
    pre: String,
    pre_depth: usize,
}

impl TextOut {
    /// Appends text, collapsing whitespace (kept verbatim inside `<pre>`).
    fn text(&mut self, text: &str) {
        if self.pre_depth > 0 {
            self.pre.push_str(text);
            return;
        }
        for c in text.chars() {
            if c.is_whitespace() {
                if !self.line.is_empty() {
                    self.pending_space = true;
                }
            } else {
                if self.pending_space {
                    self.line.push(' ');
                    self.pending_space = false;
                }
                self.line.push(c);
            }
        }
    }

    fn space(&mut self) {
        if !self.line.is_empty() {
            self.pending_space = true;
        }
    }

    /// Ends the current line; an empty line keeps its prefix for the text that follows.
    fn finish_line(&mut self) {
        let content = self.line.trim();
        if !content.is_empty() {
            match self.prefix {
                Prefix::Heading(level) => {
                    self.out.push_str(&"#".repeat(level));
                    self.out.push(' ');
                    self.out.push_str(content);
                }
                Prefix::Bullet => {
                    self.out.push_str("- ");
                    self.out.push_str(&escape_line(content));
                }
                Prefix::None => self.out.push_str(&escape_line(content)),
            }
            self.out.push('\n');
            self.prefix = Prefix::None;
        }
        self.line.clear();
        self.pending_space = false;
    }

    fn line_break(&mut self) {
        if self.heading.is_some() {
            self.space();
        } else {
            self.finish_line();
        }
    }

    fn paragraph_break(&mut self) {
        if self.heading.is_some() {
            self.space();
            return;
        }
        self.finish_line();
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    fn start_tag(&mut self, name: &str) {
        if self.pre_depth > 0 {
            match name {
                "pre" => self.pre_depth += 1,
                "br" => self.pre.push('\n'),
                _ => {}
            }
            return;
        }
        if let Some(level) = heading_level(name) {
            if self.heading.is_none() {
                self.paragraph_break();
                self.heading = Some(level);
                self.prefix = Prefix::Heading(level);
            } else {
                self.space();
            }
            return;
        }
        match name {
            "pre" if self.heading.is_none() => {
                self.paragraph_break();
                self.pre_depth = 1;
                self.pre.clear();
            }
            "br" => {
                if self.line.trim().is_empty() {
                    self.paragraph_break();
                } else {
                    self.line_break();
                }
            }
            "li" => {
                self.line_break();
                if self.heading.is_none() {
                    self.prefix = Prefix::Bullet;
                }
            }
            "td" | "th" => self.space(),
            _ if PARAGRAPH_ELEMENTS.contains(&name) => self.paragraph_break(),
            _ if LINE_ELEMENTS.contains(&name) => self.line_break(),
            _ => {}
        }
    }

    fn end_tag(&mut self, name: &str) {
        if self.pre_depth > 0 {
            match name {
                "pre" => {
                    self.pre_depth -= 1;
                    if self.pre_depth == 0 {
                        self.end_pre();
                    }
                }
                "div" | "p" | "li" | "tr" if !self.pre.is_empty() && !self.pre.ends_with('\n') => {
                    self.pre.push('\n');
                }
                _ => {}
            }
            return;
        }
        if heading_level(name).is_some() {
            if self.heading.take().is_some() {
                self.finish_line();
                self.prefix = Prefix::None;
                self.paragraph_break();
            }
            return;
        }
        match name {
            "li" => {
                self.line_break();
                if self.heading.is_none() {
                    self.prefix = Prefix::None;
                }
            }
            "td" | "th" => self.space(),
            _ if PARAGRAPH_ELEMENTS.contains(&name) => self.paragraph_break(),
            _ if LINE_ELEMENTS.contains(&name) => self.line_break(),
            _ => {}
        }
    }

    /// Emits the `<pre>` content as a fenced code block longer than any backtick run inside.
    fn end_pre(&mut self) {
        let pre = std::mem::take(&mut self.pre);
        let body = pre.trim_start_matches('\n').trim_end();
        if body.trim().is_empty() {
            return;
        }
        let longest_run = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
        let fence = "`".repeat((longest_run + 1).max(3));
        self.paragraph_break();
        self.out.push_str(&fence);
        self.out.push('\n');
        self.out.push_str(body);
        self.out.push('\n');
        self.out.push_str(&fence);
        self.out.push_str("\n\n");
    }

    fn finish(mut self) -> String {
        if self.pre_depth > 0 {
            self.pre_depth = 0;
            self.end_pre();
        }
        self.heading = None;
        self.finish_line();
        let len = self.out.trim_end().len();
        self.out.truncate(len);
        self.out
    }
}

fn heading_level(name: &str) -> Option<usize> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

/// Escapes a text line Markdown would read as a heading, a rule, a setext underline or a fence.
fn escape_line(line: &str) -> Cow<'_, str> {
    let markup = line.starts_with('#')
        || line.starts_with("```")
        || line.starts_with("~~~")
        || line
            .chars()
            .all(|c| matches!(c, '-' | '=' | '*' | '_' | '+' | ' '));
    if markup {
        Cow::Owned(format!("\\{line}"))
    } else {
        Cow::Borrowed(line)
    }
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
