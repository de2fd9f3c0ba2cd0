//! Heading-aware chunking of Markdown and plain text (pure functions, no I/O).
//!
//! A Markdown document is cut into sections at its headings (ATX `#`..`######`
//! and setext `===` / `---` underlines); the heading path ("Guide > Install >
//! Linux") becomes the title of every chunk of the section. A section is cut
//! into blocks (blank-line separated paragraphs; a fenced code block is one
//! block, and `#` lines inside it are not headings), and blocks are packed
//! whole into chunks of at most [`ChunkConfig::max_tokens`] approximate tokens
//! ([`count_tokens`]).
//!
//! A block larger than the limit is split at sentence ends, then at line
//! breaks, then between words, and a single giant "word" is cut between
//! characters (never inside a UTF-8 character, and not before a combining mark
//! or around a zero-width joiner unless there is no other place). Those pieces
//! are at most `max_tokens - overlap_tokens`, so the overlap always fits.
//!
//! Consecutive chunks of one section overlap: the next chunk starts with the
//! tail of the previous chunk's text (cut at a word boundary, or between CJK
//! characters) of up to [`ChunkConfig::overlap_tokens`]. The overlap shrinks
//! when the next block would not fit otherwise, and is not taken from fenced
//! code (a tail never starts inside a code block). Chunks never cross a section
//! boundary, so the first chunk of a section has no overlap.
//!
//! Guarantees, for any input: every chunk has
//! `tokens == count_tokens(&text) <= max_tokens` (there is no unsplittable
//! case), no chunk is empty or whitespace-only, indexes run 0..n in order, and
//! the output depends only on the input and the configuration. A leading YAML
//! (`---`) or TOML (`+++`) front matter block is not chunked.

use serde::{Deserialize, Serialize};

/// Default [`ChunkConfig::max_tokens`].
pub const DEFAULT_MAX_TOKENS: usize = 200;
/// Default [`ChunkConfig::overlap_tokens`].
pub const DEFAULT_OVERLAP_TOKENS: usize = 30;
/// Smallest `max_tokens` accepted by [`ChunkConfig::new`].
pub const MIN_MAX_TOKENS: usize = 16;

/// Letters/digits per token in [`count_tokens`].
const WORD_CHARS: usize = 5;
/// Punctuation/symbol characters per token in [`count_tokens`].
const SYMBOL_CHARS: usize = 3;
/// Separator between two blocks inside a chunk.
const BLOCK_SEP: &str = "\n\n";
/// Longest setext heading text; a longer "paragraph + `---`" is a paragraph and a rule.
const MAX_SETEXT_CHARS: usize = 200;

/// Chunk size limits, in [`count_tokens`] tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkConfig {
    /// Largest chunk, in tokens (default 200, at least 16 through [`ChunkConfig::new`]).
    pub max_tokens: usize,
    /// Tokens repeated from the previous chunk of the same section (default 30, below `max_tokens`).
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self {
            max_tokens: DEFAULT_MAX_TOKENS,
            overlap_tokens: DEFAULT_OVERLAP_TOKENS,
        }
    }
}

impl ChunkConfig {
    /// A validated configuration: `max_tokens >= 16` and `overlap_tokens < max_tokens`.
    pub fn new(max_tokens: usize, overlap_tokens: usize) -> Result<Self, ChunkError> {
        if max_tokens < MIN_MAX_TOKENS {
            return Err(ChunkError::MaxTooSmall(max_tokens));
        }
        if overlap_tokens >= max_tokens {
            return Err(ChunkError::OverlapTooLarge {
                max_tokens,
                overlap_tokens,
            });
        }
        Ok(Self {
            max_tokens,
            overlap_tokens,
        })
    }

    /// The limits actually used: fields set directly are clamped (max at least 1, overlap below max).
    fn limits(&self) -> (usize, usize) {
        let max = self.max_tokens.max(1);
        (max, self.overlap_tokens.min(max - 1))
    }
}

/// An invalid [`ChunkConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// `max_tokens` is below [`MIN_MAX_TOKENS`].
    #[error("max_tokens must be at least {MIN_MAX_TOKENS}, got {0}")]
    MaxTooSmall(usize),
    /// `overlap_tokens` is not below `max_tokens`.
    #[error("overlap_tokens ({overlap_tokens}) must be less than max_tokens ({max_tokens})")]
    OverlapTooLarge {
        /// The requested maximum.
        max_tokens: usize,
        /// The requested overlap.
        overlap_tokens: usize,
    },
}

/// One piece of a document, ready to embed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Position in the document's chunk list, from 0.
    pub index: usize,
    /// Heading path such as "Guide > Install > Linux"; empty when the text is under no heading.
    pub title: String,
    /// The text (without the heading line), starting with the overlap from the previous chunk.
    pub text: String,
    /// `count_tokens(&text)`.
    pub tokens: usize,
}

/// Approximate LLM token count: cheap (one pass, no allocation) and deterministic.
///
/// Whitespace separates and counts nothing. A run of letters/digits (and `_`)
/// counts one token per started 5 characters ("the" 1, "chunking" 2), a run of
/// other symbols one per started 3 (". " 1, "```" 1, "-->" 1, an emoji 1),
/// and each CJK / kana / hangul / fullwidth character counts one on its own,
/// so Chinese or Japanese without spaces is measured (and split) too.
/// Combining marks, variation selectors and zero-width joiners extend the
/// current run. English prose comes out near the usual 4 characters per token.
/// The count is additive across whitespace and never grows by concatenation
/// (`count(a + b) <= count(a) + count(b)`).
pub fn count_tokens(text: &str) -> usize {
    let mut counter = Counter::default();
    for c in text.chars() {
        counter.push(c);
    }
    counter.total()
}

/// Splits Markdown into chunks at headings and paragraphs (see the module docs).
pub fn chunk_markdown(text: &str, config: &ChunkConfig) -> Vec<Chunk> {
    let parsed = parse_markdown(text);
    pack_sections(&parsed.sections, config)
}

/// Splits plain text into chunks at blank lines and sentences; no headings, titles are empty.
pub fn chunk_text(text: &str, config: &ChunkConfig) -> Vec<Chunk> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut blocks = Vec::new();
    let mut para: Vec<&str> = Vec::new();
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            flush_paragraph(&mut para, &mut blocks);
        } else {
            para.push(line);
        }
    }
    flush_paragraph(&mut para, &mut blocks);
    let section = Section {
        title: String::new(),
        blocks,
    };
    pack_sections(std::slice::from_ref(&section), config)
}

/// The document title of Markdown: the first level-1 heading, else a front matter `title`.
pub(crate) fn markdown_title(text: &str) -> Option<String> {
    let parsed = parse_markdown(text);
    parsed
        .first_h1
        .filter(|t| !t.is_empty())
        .or_else(|| parsed.front_matter.and_then(front_matter_title))
}

// ---------------------------------------------------------------------------
// Token counting

/// Incremental [`count_tokens`]; `Copy` so a caller can try a character.
#[derive(Debug, Clone, Copy, Default)]
struct Counter {
    done: usize,
    run: Run,
    len: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Run {
    #[default]
    None,
    Word,
    Symbol,
}

impl Counter {
    fn push(&mut self, c: char) {
        if c.is_whitespace() {
            self.close();
        } else if is_extend(c) {
            // Continues the current run, or belongs to the previous CJK character.
        } else if is_cjk(c) {
            self.close();
            self.done += 1;
        } else {
            let run = if c.is_alphanumeric() || c == '_' {
                Run::Word
            } else {
                Run::Symbol
            };
            if run != self.run {
                self.close();
                self.run = run;
            }
            self.len += 1;
        }
    }

    fn close(&mut self) {
        self.done += self.pending();
        self.run = Run::None;
        self.len = 0;
    }

    fn pending(&self) -> usize {
        match self.run {
            Run::None => 0,
            Run::Word => self.len.div_ceil(WORD_CHARS),
            Run::Symbol => self.len.div_ceil(SYMBOL_CHARS),
        }
    }

    fn total(&self) -> usize {
        self.done + self.pending()
    }
}

/// Characters that count one token each and are word boundaries on their own.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF      // Hangul Jamo
        | 0x2E80..=0x2FDF    // CJK radicals, Kangxi radicals
        | 0x3000..=0x303F    // CJK symbols and punctuation
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x3100..=0x31FF    // Bopomofo, Hangul compatibility Jamo, Katakana ext.
        | 0x3200..=0x4DBF    // enclosed CJK, compatibility, ideographs ext. A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xA960..=0xA97F    // Hangul Jamo ext. A
        | 0xAC00..=0xD7FF    // Hangul syllables, Jamo ext. B
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFE30..=0xFE4F    // CJK compatibility forms
        | 0xFF00..=0xFFEF    // halfwidth and fullwidth forms
        | 0x20000..=0x3FFFF // ideographs ext. B and later
    )
}

/// Characters that attach to the previous one (no token, no cut before them).
fn is_extend(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F      // combining diacritics
        | 0x0483..=0x0489    // Cyrillic combining marks
        | 0x0591..=0x05BD    // Hebrew points
        | 0x05BF | 0x05C1 | 0x05C2 | 0x05C4 | 0x05C5 | 0x05C7
        | 0x0610..=0x061A | 0x064B..=0x065F | 0x0670 // Arabic marks
        | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF
        | 0x200C | 0x200D    // zero-width (non-)joiner
        | 0x3099 | 0x309A    // combining kana voicing marks
        | 0xFE00..=0xFE0F | 0xFE20..=0xFE2F // variation selectors, half marks
        | 0x1F3FB..=0x1F3FF  // emoji skin tones
        | 0xE0020..=0xE007F  // emoji tag sequences
        | 0xE0100..=0xE01EF  // variation selectors supplement
    )
}

/// Whether text may be cut between `prev` and `next` without breaking a character cluster.
fn cluster_boundary(prev: char, next: char) -> bool {
    !is_extend(next) && prev != '\u{200D}'
}

// ---------------------------------------------------------------------------
// Markdown structure

/// A paragraph or a fenced code block.
#[derive(Debug)]
struct Block {
    text: String,
    code: bool,
}

/// The blocks under one heading path.
#[derive(Debug)]
struct Section {
    title: String,
    blocks: Vec<Block>,
}

#[derive(Debug, Default)]
struct Parsed<'a> {
    sections: Vec<Section>,
    first_h1: Option<String>,
    front_matter: Option<&'a str>,
}

/// Section builder: the heading stack and the blocks of the current section.
#[derive(Default)]
struct Outline {
    sections: Vec<Section>,
    stack: Vec<(usize, String)>,
    blocks: Vec<Block>,
    first_h1: Option<String>,
}

impl Outline {
    fn heading(&mut self, level: usize, title: String) {
        self.finish_section();
        if level == 1 && self.first_h1.is_none() && !title.is_empty() {
            self.first_h1 = Some(title.clone());
        }
        while self.stack.last().is_some_and(|(l, _)| *l >= level) {
            self.stack.pop();
        }
        self.stack.push((level, title));
    }

    fn finish_section(&mut self) {
        if self.blocks.is_empty() {
            return;
        }
        let title = self
            .stack
            .iter()
            .map(|(_, t)| t.as_str())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" > ");
        self.sections.push(Section {
            title,
            blocks: std::mem::take(&mut self.blocks),
        });
    }
}

fn parse_markdown(text: &str) -> Parsed<'_> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (front_matter, body) = split_front_matter(text);
    let mut outline = Outline::default();
    let mut para: Vec<&str> = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    let mut code: Vec<&str> = Vec::new();

    for raw in body.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some((ch, len)) = fence {
            code.push(line);
            if is_fence_close(line, ch, len) {
                outline.blocks.push(Block {
                    text: code.join("\n"),
                    code: true,
                });
                code.clear();
                fence = None;
            }
            continue;
        }
        if let Some(open) = fence_open(line) {
            flush_paragraph(&mut para, &mut outline.blocks);
            fence = Some(open);
            code.push(line);
            continue;
        }
        if line.trim().is_empty() {
            flush_paragraph(&mut para, &mut outline.blocks);
            continue;
        }
        if let Some((level, title)) = atx_heading(line) {
            flush_paragraph(&mut para, &mut outline.blocks);
            outline.heading(level, title);
            continue;
        }
        if let Some(level) = setext_level(line)
            && let Some(title) = setext_title(&para)
        {
            para.clear();
            outline.heading(level, title);
            continue;
        }
        if is_thematic_break(line) {
            flush_paragraph(&mut para, &mut outline.blocks);
            continue;
        }
        para.push(line);
    }
    if !code.is_empty() {
        // An unclosed fence runs to the end of the document, as in CommonMark.
        outline.blocks.push(Block {
            text: code.join("\n"),
            code: true,
        });
    }
    flush_paragraph(&mut para, &mut outline.blocks);
    outline.finish_section();
    Parsed {
        sections: outline.sections,
        first_h1: outline.first_h1,
        front_matter,
    }
}

fn flush_paragraph(para: &mut Vec<&str>, blocks: &mut Vec<Block>) {
    if para.is_empty() {
        return;
    }
    let text = para
        .iter()
        .map(|l| l.trim_end())
        .collect::<Vec<_>>()
        .join("\n");
    para.clear();
    blocks.push(Block { text, code: false });
}

/// Leading spaces (tabs are not counted: a tab-indented line is not a heading).
fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// `#`..`######` followed by a space or the end of the line, at most 3 spaces in.
fn atx_heading(line: &str) -> Option<(usize, String)> {
    let ind = indent(line);
    if ind > 3 {
        return None;
    }
    let t = &line[ind..];
    let hashes = t.bytes().take_while(|b| *b == b'#').count();
    if hashes == 0 || hashes > 6 {
        return None;
    }
    let rest = &t[hashes..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    let mut content = rest.trim();
    let without_closing = content.trim_end_matches('#');
    if without_closing.is_empty() {
        content = "";
    } else if without_closing.ends_with([' ', '\t']) {
        content = without_closing.trim_end();
    }
    Some((hashes, collapse_whitespace(content)))
}

/// A setext underline (`===` level 1, `---` level 2).
fn setext_level(line: &str) -> Option<usize> {
    if indent(line) > 3 {
        return None;
    }
    let t = line.trim();
    if !t.is_empty() && t.bytes().all(|b| b == b'=') {
        Some(1)
    } else if !t.is_empty() && t.bytes().all(|b| b == b'-') {
        Some(2)
    } else {
        None
    }
}

/// The heading text when the open paragraph can take a setext underline.
fn setext_title(para: &[&str]) -> Option<String> {
    let first = para.first()?;
    if para.len() > 3 || starts_with_container_marker(first) {
        return None;
    }
    let title = collapse_whitespace(&para.join(" "));
    (title.chars().count() <= MAX_SETEXT_CHARS).then_some(title)
}

/// A list item or block quote line (its `---` is a rule, not an underline).
fn starts_with_container_marker(line: &str) -> bool {
    let t = line.trim_start();
    if t.starts_with('>') {
        return true;
    }
    let mut chars = t.chars();
    match chars.next() {
        Some('-' | '*' | '+') => matches!(chars.next(), None | Some(' ' | '\t')),
        Some(c) if c.is_ascii_digit() => {
            let digits = t.bytes().take_while(u8::is_ascii_digit).count();
            let rest = &t[digits..];
            digits <= 9
                && (rest.starts_with('.') || rest.starts_with(')'))
                && matches!(rest[1..].chars().next(), None | Some(' ' | '\t'))
        }
        _ => false,
    }
}

/// `---`, `***`, `___` (spaces allowed between), at most 3 spaces in.
fn is_thematic_break(line: &str) -> bool {
    if indent(line) > 3 {
        return false;
    }
    let t = line.trim();
    let Some(first) = t.chars().next() else {
        return false;
    };
    matches!(first, '-' | '*' | '_')
        && t.chars().all(|c| c == first || c == ' ' || c == '\t')
        && t.chars().filter(|c| *c == first).count() >= 3
}

/// An opening code fence (at any indentation, so fences in list items count).
fn fence_open(line: &str) -> Option<(char, usize)> {
    let t = line.trim_start();
    let ch = t.chars().next()?;
    if ch != '`' && ch != '~' {
        return None;
    }
    let len = t.chars().take_while(|c| *c == ch).count();
    if len < 3 || (ch == '`' && t[len..].contains('`')) {
        return None;
    }
    Some((ch, len))
}

fn is_fence_close(line: &str, ch: char, len: usize) -> bool {
    let t = line.trim();
    let n = t.chars().take_while(|c| *c == ch).count();
    n >= len && n == t.len()
}

/// Splits off a leading YAML (`---` ... `---`/`...`) or TOML (`+++` ... `+++`) front matter.
fn split_front_matter(text: &str) -> (Option<&str>, &str) {
    let (open, closes, separator) = if text.starts_with("---") {
        ("---", ["---", "..."], ':')
    } else if text.starts_with("+++") {
        ("+++", ["+++", "+++"], '=')
    } else {
        return (None, text);
    };
    let mut lines = text.split_inclusive('\n');
    let Some(first) = lines.next() else {
        return (None, text);
    };
    if first.trim_end() != open {
        return (None, text);
    }
    let inner_start = first.len();
    let mut pos = inner_start;
    let mut saw_key = false;
    for line in lines {
        let trimmed = line.trim_end();
        if closes.contains(&trimmed) {
            if !saw_key {
                return (None, text);
            }
            return (Some(&text[inner_start..pos]), &text[pos + line.len()..]);
        }
        if !saw_key && !trimmed.trim().is_empty() {
            if !looks_like_key(trimmed, separator) {
                return (None, text);
            }
            saw_key = true;
        }
        pos += line.len();
    }
    (None, text)
}

fn looks_like_key(line: &str, separator: char) -> bool {
    match line.split_once(separator) {
        Some((key, _)) => {
            let key = key.trim();
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '"' | '\''))
        }
        None => false,
    }
}

fn front_matter_title(front_matter: &str) -> Option<String> {
    front_matter.lines().find_map(|line| {
        let rest = line.strip_prefix("title")?.trim_start();
        let value = rest.strip_prefix([':', '='])?.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        let value = collapse_whitespace(value);
        (!value.is_empty()).then_some(value)
    })
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------
// Splitting oversized blocks

/// A packable piece of a block.
#[derive(Debug)]
struct Unit<'a> {
    text: &'a str,
    /// Text between the previous unit of the same block and this one ([`BLOCK_SEP`] for a block's first).
    sep: &'a str,
    tokens: usize,
    code: bool,
}

#[derive(Debug, Clone, Copy)]
enum Level {
    Sentences,
    Lines,
    Words,
    Chars,
}

fn block_units<'a>(block: &'a Block, max: usize, budget: usize, units: &mut Vec<Unit<'a>>) {
    let text = block.text.as_str();
    let tokens = count_tokens(text);
    if tokens <= max {
        units.push(Unit {
            text,
            sep: BLOCK_SEP,
            tokens,
            code: block.code,
        });
        return;
    }
    let mut pieces = Vec::new();
    let level = if block.code {
        Level::Lines
    } else {
        Level::Sentences
    };
    refine(text, 0, text.len(), level, budget, &mut pieces);
    let mut prev_end = None;
    for (start, end, tokens) in pieces {
        let sep = match prev_end {
            None => BLOCK_SEP,
            Some(p) => &text[p..start],
        };
        units.push(Unit {
            text: &text[start..end],
            sep,
            tokens,
            code: block.code,
        });
        prev_end = Some(end);
    }
}

/// Cuts `text[start..end]` into pieces of at most `budget` tokens, coarsest boundaries first.
fn refine(
    text: &str,
    start: usize,
    end: usize,
    level: Level,
    budget: usize,
    out: &mut Vec<(usize, usize, usize)>,
) {
    let piece = &text[start..end];
    let tokens = count_tokens(piece);
    if tokens <= budget {
        if !piece.trim().is_empty() {
            out.push((start, end, tokens));
        }
        return;
    }
    let (ranges, next) = match level {
        Level::Sentences => (sentence_ranges(piece), Level::Lines),
        Level::Lines => (line_ranges(piece), Level::Words),
        Level::Words => (word_ranges(piece), Level::Chars),
        Level::Chars => {
            for (s, e) in char_ranges(piece, budget) {
                out.push((start + s, start + e, count_tokens(&piece[s..e])));
            }
            return;
        }
    };
    for (s, e) in ranges {
        refine(text, start + s, start + e, next, budget, out);
    }
}

/// Sentences: cut after `.`/`!`/`?`/`…` (and closing quotes/brackets) before whitespace,
/// and after `。`/`！`/`？` even without whitespace. Ranges are trimmed and non-empty.
fn sentence_ranges(text: &str) -> Vec<(usize, usize)> {
    #[derive(PartialEq)]
    enum End {
        No,
        Latin,
        Cjk,
    }
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut end = 0;
    let mut state = End::No;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start
                && state != End::No
            {
                out.push((s, end));
                start = None;
                state = End::No;
            }
            continue;
        }
        if let Some(s) = start
            && state == End::Cjk
            && !is_closer(c)
            && !is_cjk_terminal(c)
            && !is_extend(c)
        {
            out.push((s, end));
            start = None;
            state = End::No;
        }
        if start.is_none() {
            start = Some(i);
        }
        end = i + c.len_utf8();
        state = if is_cjk_terminal(c) {
            End::Cjk
        } else if is_terminal(c) {
            if state == End::Cjk {
                End::Cjk
            } else {
                End::Latin
            }
        } else if is_closer(c) || is_extend(c) {
            state
        } else {
            End::No
        };
    }
    if let Some(s) = start {
        out.push((s, end));
    }
    out
}

fn is_terminal(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '‼' | '⁇' | '।' | '؟' | '۔')
}

fn is_cjk_terminal(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '｡')
}

fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\''
            | ')'
            | ']'
            | '}'
            | '*'
            | '_'
            | '`'
            | '»'
            | '”'
            | '’'
            | '」'
            | '』'
            | '）'
            | '】'
            | '〕'
            | '》'
            | '〉'
    )
}

/// Non-blank lines, trimmed.
fn line_ranges(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let lead = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if !trimmed.is_empty() {
            out.push((pos + lead, pos + lead + trimmed.len()));
        }
        pos += line.len();
    }
    out
}

/// Maximal runs of non-whitespace.
fn word_ranges(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// Cuts between characters into pieces of at most `budget` tokens, preferring cluster boundaries.
fn char_ranges(text: &str, budget: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let rest = &text[start..];
        let mut counter = Counter::default();
        let mut cut = rest.len();
        let mut last_boundary = None;
        let mut prev = None;
        for (i, c) in rest.char_indices() {
            let mut next = counter;
            next.push(c);
            if let Some(p) = prev {
                let boundary = cluster_boundary(p, c);
                if next.total() > budget {
                    cut = if boundary {
                        i
                    } else {
                        last_boundary.unwrap_or(i)
                    };
                    break;
                }
                if boundary {
                    last_boundary = Some(i);
                }
            }
            counter = next;
            prev = Some(c);
        }
        out.push((start, start + cut));
        start += cut;
    }
    out
}

// ---------------------------------------------------------------------------
// Packing

fn pack_sections(sections: &[Section], config: &ChunkConfig) -> Vec<Chunk> {
    let (max, overlap) = config.limits();
    let budget = max - overlap;
    let mut chunks = Vec::new();
    let mut units = Vec::new();
    for section in sections {
        units.clear();
        for block in &section.blocks {
            block_units(block, max, budget, &mut units);
        }
        pack_units(&units, &section.title, max, overlap, &mut chunks);
    }
    chunks
}

/// Greedily packs one section's units into chunks, carrying an overlap between them.
fn pack_units(units: &[Unit<'_>], title: &str, max: usize, overlap: usize, out: &mut Vec<Chunk>) {
    let mut text = String::new();
    let mut tokens = 0;
    // Overlap may only be taken from text[no_overlap_before..] (after the last code unit).
    let mut no_overlap_before = 0;
    for unit in units {
        if text.is_empty() {
            text.push_str(unit.text);
            tokens = unit.tokens;
        } else if tokens + unit.tokens <= max {
            text.push_str(unit.sep);
            text.push_str(unit.text);
            tokens += unit.tokens;
        } else {
            let limit = overlap.min(max.saturating_sub(unit.tokens));
            let tail = overlap_tail(&text[no_overlap_before..], limit).to_owned();
            push_chunk(out, title, &text);
            tokens = count_tokens(&tail);
            text = tail;
            if !text.is_empty() {
                text.push_str(unit.sep);
            }
            text.push_str(unit.text);
            tokens += unit.tokens;
            no_overlap_before = 0;
        }
        if unit.code {
            no_overlap_before = text.len();
        }
    }
    push_chunk(out, title, &text);
}

fn push_chunk(out: &mut Vec<Chunk>, title: &str, text: &str) {
    let text = text.trim();
    if text.is_empty() {
        return;
    }
    out.push(Chunk {
        index: out.len(),
        title: title.to_owned(),
        text: text.to_owned(),
        tokens: count_tokens(text),
    });
}

/// The overlap: a suffix of `text` of at most `limit` tokens starting at a word boundary.
///
/// The longest such suffix, unless a suffix starting at a sentence or line start
/// keeps at least half of `limit`: then the longest of those, so the overlap
/// reads from the start of a sentence when it can.
fn overlap_tail(text: &str, limit: usize) -> &str {
    if limit == 0 {
        return "";
    }
    // (byte offset, starts a sentence or line)
    let mut cuts: Vec<(usize, bool)> = Vec::new();
    let mut prev: Option<char> = None;
    let mut seen_visible = false;
    let mut sentence_ended = false;
    let mut newline_since_visible = false;
    for (i, c) in text.char_indices() {
        let cut = match prev {
            None => !c.is_whitespace(),
            Some(p) => {
                !c.is_whitespace()
                    && cluster_boundary(p, c)
                    && (p.is_whitespace() || is_cjk(p) || is_cjk(c))
            }
        };
        if cut {
            cuts.push((i, !seen_visible || newline_since_visible || sentence_ended));
        }
        if c.is_whitespace() {
            newline_since_visible |= c == '\n';
        } else {
            seen_visible = true;
            newline_since_visible = false;
            sentence_ended = if is_terminal(c) || is_cjk_terminal(c) {
                true
            } else {
                sentence_ended && (is_closer(c) || is_extend(c))
            };
        }
        prev = Some(c);
    }
    // The count is additive across these cuts (whitespace or a CJK character on one side).
    let mut best = text.len();
    let mut best_clean = None;
    let mut used = 0;
    for &(cut, clean) in cuts.iter().rev() {
        used += count_tokens(&text[cut..best]);
        if used > limit {
            break;
        }
        best = cut;
        if clean && used * 2 >= limit {
            best_clean = Some(cut);
        }
    }
    &text[best_clean.unwrap_or(best)..]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn sentences_split_latin_and_cjk() {
        let text = "One. Two!  \"Three?\" four\nfive. 你好。世界！ok";
        let got: Vec<&str> = sentence_ranges(text)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect();
        assert_eq!(
            got,
            [
                "One.",
                "Two!",
                "\"Three?\"",
                "four\nfive.",
                "你好。",
                "世界！",
                "ok"
            ]
        );
    }

    #[test]
    fn char_ranges_respect_budget_and_clusters() {
        let word = "👨\u{200D}👩\u{200D}👧".repeat(20);
        for (s, e) in char_ranges(&word, 2) {
            let piece = &word[s..e];
            assert!(count_tokens(piece) <= 2);
            assert!(!piece.starts_with('\u{200D}') && !piece.ends_with('\u{200D}'));
        }
    }

    #[test]
    fn overlap_tail_is_a_word_suffix() {
        assert_eq!(overlap_tail("alpha beta gamma", 2), "beta gamma");
        assert_eq!(overlap_tail("alpha beta gamma", 0), "");
        assert_eq!(overlap_tail("一二三四五", 2), "四五");
        // A sentence start is preferred when it keeps at least half the limit.
        assert_eq!(
            overlap_tail("One two three. Four five six", 5),
            "Four five six"
        );
        // ... and is skipped when it would keep less.
        assert_eq!(
            overlap_tail("Alpha beta gamma delta epsilon. Zeta eta", 6),
            "delta epsilon. Zeta eta"
        );
        assert_eq!(overlap_tail("One two\nthree four", 3), "three four");
    }

    #[test]
    fn front_matter_is_skipped_and_gives_a_title() {
        let doc = "---\ntitle: \"Hello\"\ndate: 2024\n---\nBody text.\n";
        let parsed = parse_markdown(doc);
        assert_eq!(parsed.sections.len(), 1);
        assert_eq!(parsed.sections[0].blocks[0].text, "Body text.");
        assert_eq!(markdown_title(doc).as_deref(), Some("Hello"));
        // A leading rule followed by prose is not front matter.
        let doc = "---\nJust text.\n\n---\nMore.";
        assert_eq!(parse_markdown(doc).sections[0].blocks.len(), 2);
    }
}
