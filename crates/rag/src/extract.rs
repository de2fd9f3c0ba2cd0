//! Text extraction from files: kind by extension, binary / encoding / size checks, HTML to text.
//!
//! [`extract_bytes`] turns a file's bytes into [`Extracted`] text or a [`Skip`]
//! reason to log. Markdown stays Markdown; HTML is reduced by [`html_to_text`]
//! to Markdown-like text (headings as `#` lines, `<pre>` as fenced code) so
//! [`chunk_document`] can keep its headings as chunk titles. Line endings are
//! normalised to `\n` and a UTF-8 byte order mark is dropped.

use std::borrow::Cow;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::chunk::{self, Chunk, ChunkConfig};

/// Default size limit for one document (10 MiB).
pub const MAX_DOCUMENT_BYTES: u64 = 10 * 1024 * 1024;

/// Bytes examined by the binary sniffing.
const SNIFF_BYTES: usize = 8 * 1024;

/// Extensions of files that are never text.
const BINARY_EXTENSIONS: &[&str] = &[
    // images
    "png",
    "jpg",
    "jpeg",
    "gif",
    "bmp",
    "ico",
    "icns",
    "webp",
    "tif",
    "tiff",
    "psd",
    "heic",
    "avif",
    // documents
    "pdf",
    "doc",
    "docx",
    "xls",
    "xlsx",
    "ppt",
    "pptx",
    "odt",
    "ods",
    "odp",
    "epub",
    // archives and compressed data
    "zip",
    "gz",
    "tgz",
    "bz2",
    "xz",
    "zst",
    "7z",
    "rar",
    "tar",
    "lz4",
    "br",
    "jar",
    "war",
    "crate",
    // executables, objects, bytecode
    "exe",
    "dll",
    "so",
    "dylib",
    "a",
    "o",
    "obj",
    "lib",
    "bin",
    "class",
    "pyc",
    "pyo",
    "wasm",
    "rlib",
    "rmeta",
    "pdb",
    "deb",
    "rpm",
    "apk",
    "msi",
    "dmg",
    "iso",
    "img",
    // media and fonts
    "mp3",
    "mp4",
    "m4a",
    "wav",
    "flac",
    "ogg",
    "opus",
    "avi",
    "mov",
    "mkv",
    "webm",
    "ttf",
    "otf",
    "woff",
    "woff2",
    "eot",
    // data
    "sqlite",
    "sqlite3",
    "db",
    "dat",
    "npy",
    "npz",
    "pt",
    "pth",
    "safetensors",
    "onnx",
    "gguf",
    "parquet",
    "arrow",
    "bson",
];

/// How a document's text is read and chunked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentKind {
    /// `.md`, `.markdown`, `.mdx`: chunked at headings.
    Markdown,
    /// `.txt`, `.text`, `.rst`, `.adoc` and files without an extension: paragraphs only.
    Text,
    /// `.html`, `.htm`: reduced to text, headings kept.
    Html,
}

impl DocumentKind {
    /// The kind for a file name or path, from its extension (case-insensitive).
    pub fn from_name(name: &str) -> Result<Self, Skip> {
        let ext = Path::new(name)
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "" => Ok(Self::Text),
            "md" | "markdown" | "mdx" => Ok(Self::Markdown),
            "txt" | "text" | "rst" | "adoc" => Ok(Self::Text),
            "html" | "htm" => Ok(Self::Html),
            other if BINARY_EXTENSIONS.contains(&other) => Err(Skip::Binary),
            _ => Err(Skip::Unsupported(ext)),
        }
    }

    /// Lowercase name ("markdown", "text", "html").
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Markdown => "markdown",
            Self::Text => "text",
            Self::Html => "html",
        }
    }
}

/// Why a file was not ingested; `Display` gives the reason to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// Binary content (NUL or control bytes) or a known binary extension.
    #[error("binary file")]
    Binary,
    /// An extension that is not a supported text format (lowercase, without the dot).
    #[error("unsupported file type .{0}")]
    Unsupported(String),
    /// Larger than the size limit (the file's size in bytes).
    #[error("file too large ({0} bytes)")]
    TooLarge(u64),
    /// Not valid UTF-8 (UTF-16 and legacy 8-bit encodings are not read).
    #[error("not valid UTF-8 text")]
    NotUtf8,
    /// No text left (empty, blank, or HTML without visible text).
    #[error("no text content")]
    Empty,
}

/// A document's text, ready for [`chunk_document`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The format the text is in.
    pub kind: DocumentKind,
    /// The first level-1 heading (Markdown front matter `title` as a fallback), or HTML `<title>`.
    pub title: Option<String>,
    /// Markdown as written, plain text, or HTML reduced to Markdown-like text; `\n` line endings.
    pub text: String,
}

/// Extracts text from a file's bytes with the default [`MAX_DOCUMENT_BYTES`] limit.
pub fn extract_bytes(name: &str, bytes: &[u8]) -> Result<Extracted, Skip> {
    extract_bytes_with_limit(name, bytes, MAX_DOCUMENT_BYTES)
}

/// Extracts text from a file's bytes; `name` (a file name or path) gives the kind.
pub fn extract_bytes_with_limit(
    name: &str,
    bytes: &[u8],
    max_bytes: u64,
) -> Result<Extracted, Skip> {
    let kind = DocumentKind::from_name(name)?;
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > max_bytes {
        return Err(Skip::TooLarge(size));
    }
    if bytes.is_empty() {
        return Err(Skip::Empty);
    }
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        // UTF-16 with a byte order mark: text, but not in an encoding we read.
        return Err(Skip::NotUtf8);
    }
    if looks_binary(bytes) {
        return Err(Skip::Binary);
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|_| Skip::NotUtf8)?;
    let text = normalize_newlines(text);
    let (title, text) = match kind {
        DocumentKind::Markdown => (chunk::markdown_title(&text), text.into_owned()),
        DocumentKind::Text => (None, text.into_owned()),
        DocumentKind::Html => {
            let (title, reduced) = reduce_html(&text);
            (title.or_else(|| chunk::markdown_title(&reduced)), reduced)
        }
    };
    if text.trim().is_empty() {
        return Err(Skip::Empty);
    }
    Ok(Extracted { kind, title, text })
}

/// Reads and extracts a file: `Err` for I/O errors, `Ok(Err(skip))` for files not to ingest.
///
/// The extension and the size (from metadata) are checked before the file is read.
pub fn extract_file(path: &Path, max_bytes: u64) -> std::io::Result<Result<Extracted, Skip>> {
    let name = path.to_string_lossy();
    if let Err(skip) = DocumentKind::from_name(&name) {
        return Ok(Err(skip));
    }
    let size = std::fs::metadata(path)?.len();
    if size > max_bytes {
        return Ok(Err(Skip::TooLarge(size)));
    }
    let bytes = std::fs::read(path)?;
    Ok(extract_bytes_with_limit(&name, &bytes, max_bytes))
}

/// Chunks extracted text: Markdown and (reduced) HTML by headings, plain text by paragraphs.
pub fn chunk_document(kind: DocumentKind, text: &str, config: &ChunkConfig) -> Vec<Chunk> {
    match kind {
        DocumentKind::Markdown | DocumentKind::Html => chunk::chunk_markdown(text, config),
        DocumentKind::Text => chunk::chunk_text(text, config),
    }
}

/// NUL bytes, or more than 10% control bytes, in the first 8 KiB.
fn looks_binary(bytes: &[u8]) -> bool {
    let sample = &bytes[..bytes.len().min(SNIFF_BYTES)];
    if sample.contains(&0) {
        return true;
    }
    let control = sample
        .iter()
        .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C | 0x1B)) || b == 0x7F)
        .count();
    control * 10 > sample.len()
}

fn normalize_newlines(text: &str) -> Cow<'_, str> {
    if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    }
}

// ---------------------------------------------------------------------------
// HTML

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
fn reduce_html(html: &str) -> (Option<String>, String) {
    let lower = html.to_ascii_lowercase();
    let bytes = html.as_bytes();
    let len = bytes.len();
    let mut out = TextOut::default();
    let mut title: Option<String> = None;
    let mut skip: Vec<String> = Vec::new();
    let mut in_head = false;
    let mut i = 0;

    while i < len {
        if bytes[i] != b'<' {
            let end = html[i..].find('<').map_or(len, |p| i + p);
            let raw = &html[i..end];
            i = end;
            if !skip.is_empty() {
                continue;
            }
            if in_head {
                if raw.trim().is_empty() {
                    continue;
                }
                in_head = false;
            }
            out.text(&decode_entities(raw));
            continue;
        }
        let rest = &lower[i..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            i = comment.find("-->").map_or(len, |p| i + 4 + p + 3);
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            i = rest.find('>').map_or(len, |p| i + p + 1);
            continue;
        }
        let closing = rest.starts_with("</");
        let name_start = i + if closing { 2 } else { 1 };
        if !bytes.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
            // A lone '<' in text.
            if skip.is_empty() && !in_head {
                out.text("<");
            }
            i += 1;
            continue;
        }
        let name_end = bytes[name_start..]
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b':'))
            .map_or(len, |p| name_start + p);
        let name = &lower[name_start..name_end];
        let tag_close = tag_end(bytes, name_end);
        let self_closing = tag_close < len && tag_close > name_end && bytes[tag_close - 1] == b'/';
        i = (tag_close + 1).min(len);

        if closing {
            if !skip.is_empty() {
                if let Some(pos) = skip.iter().rposition(|s| s == name) {
                    skip.truncate(pos);
                }
                continue;
            }
            if name == "head" {
                in_head = false;
                continue;
            }
            out.end_tag(name);
            continue;
        }

        // Raw text elements: their content is never markup.
        let raw_skip = RAW_SKIP.contains(&name);
        if (raw_skip || name == "title") && !self_closing {
            let close = format!("</{name}");
            let content_end = lower[i..].find(&close).map_or(len, |p| i + p);
            if name == "title" && title.is_none() && skip.is_empty() {
                let t = collapse_whitespace(&decode_entities(&html[i..content_end]));
                if !t.is_empty() {
                    title = Some(t);
                }
            }
            i = if content_end < len {
                (tag_end(bytes, content_end + close.len()) + 1).min(len)
            } else {
                len
            };
            continue;
        }
        if !skip.is_empty() {
            if SKIP_PARSED.contains(&name) && !self_closing {
                skip.push(name.to_owned());
            }
            continue;
        }
        if name == "head" {
            in_head = !self_closing;
            continue;
        }
        if in_head {
            if HEAD_ELEMENTS.contains(&name) {
                continue;
            }
            in_head = false;
        }
        if SKIP_PARSED.contains(&name) {
            if !self_closing {
                skip.push(name.to_owned());
            }
            continue;
        }
        out.start_tag(name);
    }
    (title, out.finish())
}

/// Index of the `>` ending a tag whose name ends at `from` (quotes after `=` respected), or `len`.
fn tag_end(bytes: &[u8], from: usize) -> usize {
    let mut quote: Option<u8> = None;
    let mut prev_significant = 0u8;
    let mut j = from;
    while j < bytes.len() {
        let b = bytes[j];
        match quote {
            Some(q) => {
                if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'>' => return j,
                b'"' | b'\'' if prev_significant == b'=' => quote = Some(b),
                _ => {}
            },
        }
        if !b.is_ascii_whitespace() {
            prev_significant = b;
        }
        j += 1;
    }
    bytes.len()
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

/// Decodes named (common ones) and numeric character references; unknown ones stay as written.
fn decode_entities(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after
            .char_indices()
            .take(32)
            .find(|(_, c)| *c == ';')
            .and_then(|(semi, _)| decode_entity(&after[..semi]).map(|c| (c, semi)));
        match decoded {
            Some((c, semi)) => {
                if let Some(c) = c {
                    out.push(c);
                }
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The character for an entity name (without `&` and `;`); `Some(None)` for ones that vanish (`&shy;`).
fn decode_entity(name: &str) -> Option<Option<char>> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => num.parse::<u32>().ok(),
        };
        let code = code.filter(|_| !num.is_empty() && !num.starts_with('+'))?;
        return Some(Some(numeric_char(code)));
    }
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" | "ensp" | "emsp" | "thinsp" => ' ',
        "shy" | "zwnj" | "zwj" | "lrm" | "rlm" => return Some(None),
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "bull" => '•',
        "middot" => '·',
        "times" => '×',
        "divide" => '÷',
        "deg" => '°',
        "plusmn" => '±',
        "para" => '¶',
        "sect" => '§',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "larr" => '←',
        "rarr" => '→',
        "uarr" => '↑',
        "darr" => '↓',
        "harr" => '↔',
        "rArr" => '⇒',
        "le" => '≤',
        "ge" => '≥',
        "ne" => '≠',
        "minus" => '−',
        "check" => '✓',
        _ => return None,
    };
    Some(Some(c))
}

/// A numeric reference's character: Windows-1252 for 128..=159 as browsers do, U+FFFD when invalid.
fn numeric_char(code: u32) -> char {
    const CP1252: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž',
        '\u{8F}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}',
        'ž', 'Ÿ',
    ];
    match code {
        0 => '\u{FFFD}',
        128..=159 => CP1252
            .get(usize::try_from(code - 128).unwrap_or(0))
            .copied()
            .unwrap_or('\u{FFFD}'),
        _ => char::from_u32(code).unwrap_or('\u{FFFD}'),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn entities() {
        assert_eq!(
            decode_entities("a &amp; b &lt;c&gt; &#39;&#x41;&#150; &bogus; & &#xD800; &shy;x"),
            "a & b <c> 'A– &bogus; & \u{FFFD} x"
        );
    }

    #[test]
    fn tag_end_respects_quoted_attributes() {
        let html = br#"<a title="x > y" href='z'>"#;
        assert_eq!(tag_end(html, 2), html.len() - 1);
        let html = b"<div class=it's>";
        assert_eq!(tag_end(html, 4), html.len() - 1);
    }
}
