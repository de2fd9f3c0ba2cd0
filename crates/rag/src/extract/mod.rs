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

mod html;

pub use html::html_to_text;
use html::reduce_html;

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
