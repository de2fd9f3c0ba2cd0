//! Uploaded files: names, types, and text extraction for knowledge bases.
//!
//! Upload-time checks ([`check_upload`]): a safe file name, a supported
//! extension, not empty, under the size limit, and bytes that match the
//! extension (`%PDF-` for `.pdf`, a zip for `.docx`, UTF-8 text without
//! binary bytes for the text formats). Extraction ([`extract`]) runs in the
//! ingestion job and fails with a reason for the document's `error`.
//!
//! Formats:
//! - PDF: text per page with `pdf-extract` (chunks keep their 1-based page);
//!   `lopdf` tells encryption and the page count first (the page limit is
//!   checked before any text is extracted). `pdf-extract` was chosen over
//!   `lopdf`'s own `extract_text` because it decodes font encodings
//!   (ToUnicode CMaps, Type1/CFF encodings) and keeps word spacing; see
//!   docs/OPERATIONS.md "Knowledge bases" for the comparison.
//! - DOCX: `word/document.xml` (and `word/styles.xml` for style names) read
//!   from the zip with a budget: at most `max_zip_entries` entries and
//!   `max_uncompressed_bytes` decompressed bytes in total, counted while
//!   decompressing (sizes in the zip headers are not trusted). A zip bomb
//!   stops at the budget, so memory stays below the upload size plus about
//!   twice the budget. Paragraph styles `Title`/`Heading N` (by id or name)
//!   become Markdown headings, so chunks carry the heading path.
//! - Markdown, HTML, text: `crate::extract`.

use std::io::{Cursor, Read};

use crate::chunk::{Chunk, ChunkConfig};
use crate::extract::{self, DocumentKind, Skip};

/// Limits on uploaded files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimits {
    /// Largest upload, in bytes.
    pub max_file_bytes: u64,
    /// Most pages of a PDF.
    pub max_pdf_pages: usize,
    /// Most entries in a DOCX zip.
    pub max_zip_entries: usize,
    /// Most bytes decompressed from a DOCX, in total.
    pub max_uncompressed_bytes: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 20 * 1024 * 1024,
            max_pdf_pages: 500,
            max_zip_entries: 2_000,
            max_uncompressed_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The type of an uploaded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `.pdf`
    Pdf,
    /// `.docx`
    Docx,
    /// A text format read by [`crate::extract`].
    Text(DocumentKind),
}

impl FileKind {
    /// The stored name: `pdf`, `docx`, `markdown`, `html`, `text`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Docx => "docx",
            Self::Text(k) => k.as_str(),
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pdf" => Self::Pdf,
            "docx" => Self::Docx,
            "markdown" => Self::Text(DocumentKind::Markdown),
            "html" => Self::Text(DocumentKind::Html),
            "text" => Self::Text(DocumentKind::Text),
            _ => return None,
        })
    }
}

/// Why an upload is refused (a 4xx; nothing is stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// Path segments, control characters, empty or too long.
    #[error("invalid file name: {0}")]
    BadName(String),
    /// An extension we do not read.
    #[error("unsupported file type: {0}")]
    Unsupported(String),
    /// No bytes.
    #[error("the file `{0}` is empty")]
    Empty(String),
    /// Over the size limit.
    #[error("the file `{name}` has {size} bytes; the limit is {limit}")]
    TooLarge {
        /// The file.
        name: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not what the extension says.
    #[error("the file `{name}` is not a {expected} file ({found})")]
    Mismatch {
        /// The file.
        name: String,
        /// What the extension says.
        expected: &'static str,
        /// What the bytes look like.
        found: String,
    },
}

/// Checks a file name: no path segments, no control characters, 1..=255
/// bytes, not `.`/`..`; returns it trimmed.
pub fn check_filename(name: &str) -> Result<String, UploadError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(UploadError::BadName("the name is empty".into()));
    }
    if trimmed.len() > 255 {
        return Err(UploadError::BadName(
            "the name is longer than 255 bytes".into(),
        ));
    }
    if trimmed.contains(['/', '\\']) {
        return Err(UploadError::BadName(format!(
            "`{}` has path segments: send the file name alone",
            printable(trimmed)
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(UploadError::BadName(format!(
            "`{}` has control characters",
            printable(trimmed)
        )));
    }
    if trimmed == "." || trimmed == ".." {
        return Err(UploadError::BadName(format!(
            "`{trimmed}` is not a file name"
        )));
    }
    Ok(trimmed.to_owned())
}

fn printable(s: &str) -> String {
    s.chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The kind of a file from its name.
pub fn kind_of(name: &str) -> Result<FileKind, UploadError> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".pdf") {
        return Ok(FileKind::Pdf);
    }
    if lower.ends_with(".docx") {
        return Ok(FileKind::Docx);
    }
    match DocumentKind::from_name(name) {
        Ok(k) => Ok(FileKind::Text(k)),
        Err(Skip::Binary) => Err(UploadError::Unsupported(format!(
            "`{}`: binary formats are not read (upload PDF, DOCX, Markdown, HTML or text)",
            printable(name)
        ))),
        Err(e) => Err(UploadError::Unsupported(format!(
            "`{}`: {e} (upload PDF, DOCX, Markdown, HTML or text)",
            printable(name)
        ))),
    }
}

fn is_pdf(bytes: &[u8]) -> bool {
    // The header may follow some junk within the first 1024 bytes.
    bytes.windows(5).take(1024).any(|w| w == b"%PDF-")
}

fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// Upload-time checks of one file; returns the checked name and kind.
pub fn check_upload(
    name: &str,
    bytes: &[u8],
    limits: &FileLimits,
) -> Result<(String, FileKind), UploadError> {
    let name = check_filename(name)?;
    let kind = kind_of(&name)?;
    let size = bytes.len() as u64;
    if size == 0 {
        return Err(UploadError::Empty(name));
    }
    if size > limits.max_file_bytes {
        return Err(UploadError::TooLarge {
            name,
            size,
            limit: limits.max_file_bytes,
        });
    }
    let mismatch = |expected: &'static str, found: &str| UploadError::Mismatch {
        name: name.clone(),
        expected,
        found: found.to_owned(),
    };
    match kind {
        FileKind::Pdf if !is_pdf(bytes) => {
            return Err(mismatch("PDF", "no %PDF- header"));
        }
        FileKind::Docx if !is_zip(bytes) => {
            return Err(mismatch("DOCX", "not a zip archive"));
        }
        FileKind::Text(k) => {
            if is_pdf(&bytes[..bytes.len().min(16)]) {
                return Err(mismatch(k.as_str(), "the bytes are a PDF"));
            }
            if is_zip(bytes) {
                return Err(mismatch(k.as_str(), "the bytes are a zip archive"));
            }
            match extract::extract_bytes_with_limit(&name, bytes, limits.max_file_bytes) {
                Ok(_) => {}
                Err(Skip::Empty) => return Err(UploadError::Empty(name)),
                Err(Skip::NotUtf8) => return Err(mismatch(k.as_str(), "not UTF-8 text")),
                Err(Skip::Binary) => return Err(mismatch(k.as_str(), "binary bytes")),
                Err(e) => return Err(mismatch(k.as_str(), &e.to_string())),
            }
        }
        _ => {}
    }
    Ok((name, kind))
}

/// One part of a document's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// 1-based page (PDF).
    pub page: Option<i32>,
    /// How it is chunked.
    pub kind: DocumentKind,
    /// The text.
    pub text: String,
}

/// A document's extracted text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedFile {
    /// Its parts in order (one per page for PDFs).
    pub sections: Vec<Section>,
    /// Pages (PDF).
    pub page_count: Option<i32>,
}

impl ExtractedFile {
    /// The whole text (for previews).
    pub fn text(&self) -> String {
        let parts: Vec<&str> = self.sections.iter().map(|s| s.text.as_str()).collect();
        parts.join("\n\n")
    }

    /// Chunks of every section, indexes running on, with their page.
    pub fn chunks(&self, config: &ChunkConfig) -> Vec<(Chunk, Option<i32>)> {
        let mut out = Vec::new();
        for s in &self.sections {
            for mut c in extract::chunk_document(s.kind, &s.text, config) {
                c.index = out.len();
                out.push((c, s.page));
            }
        }
        out
    }
}

/// Extracts the text of an uploaded file; `Err` is the reason shown on the
/// failed document.
pub fn extract(
    name: &str,
    kind: FileKind,
    bytes: &[u8],
    limits: &FileLimits,
) -> Result<ExtractedFile, String> {
    let out = match kind {
        FileKind::Pdf => extract_pdf(bytes, limits)?,
        FileKind::Docx => ExtractedFile {
            sections: vec![Section {
                page: None,
                kind: DocumentKind::Markdown,
                text: extract_docx(bytes, limits)?,
            }],
            page_count: None,
        },
        FileKind::Text(_) => {
            let doc = extract::extract_bytes_with_limit(name, bytes, limits.max_file_bytes)
                .map_err(|e| format!("cannot read the text: {e}"))?;
            ExtractedFile {
                sections: vec![Section {
                    page: None,
                    kind: doc.kind,
                    text: doc.text,
                }],
                page_count: None,
            }
        }
    };
    if out.sections.iter().all(|s| s.text.trim().is_empty()) {
        return Err(match kind {
            FileKind::Pdf => "the PDF has no extractable text (scanned images are not read)".into(),
            _ => "the document has no text".into(),
        });
    }
    Ok(out)
}

fn extract_pdf(bytes: &[u8], limits: &FileLimits) -> Result<ExtractedFile, String> {
    let doc = match std::panic::catch_unwind(|| lopdf::Document::load_mem(bytes)) {
        Ok(Ok(doc)) => doc,
        Ok(Err(e)) => {
            let msg = e.to_string();
            if msg.to_ascii_lowercase().contains("crypt") {
                return Err(
                    "the PDF is encrypted (password protected): upload an unprotected copy".into(),
                );
            }
            return Err(format!("the PDF is corrupt or unreadable: {msg}"));
        }
        Err(_) => return Err("the PDF is corrupt or unreadable".into()),
    };
    if doc.is_encrypted() || doc.trailer.get(b"Encrypt").is_ok() {
        return Err("the PDF is encrypted (password protected): upload an unprotected copy".into());
    }
    let pages = doc.get_pages().len();
    if pages == 0 {
        return Err("the PDF has no pages".into());
    }
    if pages > limits.max_pdf_pages {
        return Err(format!(
            "the PDF has {pages} pages; the limit is {}",
            limits.max_pdf_pages
        ));
    }
    drop(doc);
    let texts = match std::panic::catch_unwind(|| {
        pdf_extract::extract_text_from_mem_by_pages(bytes)
    }) {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return Err(format!("the PDF is corrupt or unreadable: {e}")),
        Err(_) => return Err("the PDF is corrupt or unreadable (text extraction failed)".into()),
    };
    let sections = texts
        .into_iter()
        .enumerate()
        .filter(|(_, t)| !t.trim().is_empty())
        .map(|(i, t)| Section {
            page: Some(i as i32 + 1),
            kind: DocumentKind::Text,
            text: tidy_pdf_text(&t),
        })
        .collect();
    Ok(ExtractedFile {
        sections,
        page_count: Some(pages as i32),
    })
}

/// Joins lines of one paragraph (PDF text has a line break per visual line)
/// and keeps blank lines as paragraph breaks.
fn tidy_pdf_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

/// Reads one zip entry within the remaining budget; `Ok(None)` when absent.
fn read_entry(
    zip: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    budget: &mut u64,
    limit: u64,
) -> Result<Option<Vec<u8>>, String> {
    let file = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(format!("the DOCX is corrupt: {e}")),
    };
    let mut out = Vec::new();
    let read = file
        .take(*budget + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("the DOCX is corrupt: {e}"))? as u64;
    if read > *budget {
        return Err(format!(
            "the DOCX expands to more than {limit} bytes (a zip bomb?): refused"
        ));
    }
    *budget -= read;
    Ok(Some(out))
}

fn extract_docx(bytes: &[u8], limits: &FileLimits) -> Result<String, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| format!("not a readable DOCX (zip): {e}"))?;
    if zip.len() > limits.max_zip_entries {
        return Err(format!(
            "the DOCX has {} zip entries; the limit is {}",
            zip.len(),
            limits.max_zip_entries
        ));
    }
    let limit = limits.max_uncompressed_bytes;
    let mut budget = limit;
    let styles = read_entry(&mut zip, "word/styles.xml", &mut budget, limit)?;
    let document = read_entry(&mut zip, "word/document.xml", &mut budget, limit)?
        .ok_or("not a DOCX: the archive has no word/document.xml")?;
    let headings = styles
        .map(|s| heading_styles(&s))
        .transpose()?
        .unwrap_or_default();
    docx_markdown(&document, &headings)
}

fn local(name: &[u8]) -> &[u8] {
    name.rsplit(|b| *b == b':').next().unwrap_or(name)
}

fn attr_val(e: &quick_xml::events::BytesStart<'_>) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        (local(a.key.as_ref()) == b"val").then(|| String::from_utf8_lossy(&a.value).into_owned())
    })
}

/// Heading level of a style by its name (`heading 1`, `Heading1`, `Title`).
fn level_of_name(name: &str) -> Option<usize> {
    let n = name.to_ascii_lowercase().replace(' ', "");
    if n == "title" {
        return Some(1);
    }
    let digits = n.strip_prefix("heading")?;
    let level: usize = digits.parse().ok()?;
    (1..=6).contains(&level).then_some(level)
}

/// Style id -> heading level, from `word/styles.xml`.
fn heading_styles(xml: &[u8]) -> Result<Vec<(String, usize)>, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match local(e.name().as_ref()) {
                b"style" => {
                    current = e.attributes().flatten().find_map(|a| {
                        (local(a.key.as_ref()) == b"styleId")
                            .then(|| String::from_utf8_lossy(&a.value).into_owned())
                    });
                }
                b"name" => {
                    if let (Some(id), Some(name)) = (&current, attr_val(&e))
                        && let Some(level) = level_of_name(&name)
                    {
                        out.push((id.clone(), level));
                    }
                }
                _ => {}
            },
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("the DOCX styles are not valid XML: {e}")),
        }
        buf.clear();
    }
    Ok(out)
}

/// `word/document.xml` as Markdown: headings from paragraph styles, one
/// paragraph per block.
fn docx_markdown(xml: &[u8], headings: &[(String, usize)]) -> Result<String, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out = String::new();
    let mut para = String::new();
    let mut level: Option<usize> = None;
    let mut in_text = false;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => match local(e.name().as_ref()) {
                b"p" => {
                    para.clear();
                    level = None;
                }
                b"t" => in_text = true,
                _ => {}
            },
            Ok(Event::Empty(e)) => match local(e.name().as_ref()) {
                b"pStyle" => {
                    if let Some(id) = attr_val(&e) {
                        level = headings
                            .iter()
                            .find(|(s, _)| *s == id)
                            .map(|(_, l)| *l)
                            .or_else(|| level_of_name(&id));
                    }
                }
                b"tab" => para.push('\t'),
                b"br" | b"cr" => para.push('\n'),
                _ => {}
            },
            Ok(Event::Text(t)) if in_text => {
                let raw = String::from_utf8_lossy(&t[..]).into_owned();
                let text = quick_xml::escape::unescape(&raw)
                    .map(|c| c.into_owned())
                    .unwrap_or(raw);
                para.push_str(&text);
            }
            Ok(Event::GeneralRef(r)) if in_text => {
                let name = String::from_utf8_lossy(&r[..]).into_owned();
                let text = quick_xml::escape::unescape(&format!("&{name};"))
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                para.push_str(&text);
            }
            Ok(Event::End(e)) => match local(e.name().as_ref()) {
                b"t" => in_text = false,
                b"p" => {
                    let text = para.trim();
                    if !text.is_empty() {
                        if !out.is_empty() {
                            out.push_str("\n\n");
                        }
                        match level {
                            Some(l) => {
                                out.push_str(&"#".repeat(l));
                                out.push(' ');
                                out.push_str(&text.replace('\n', " "));
                            }
                            None => {
                                // A paragraph must not read as a Markdown heading or fence.
                                if text.starts_with(['#', '`', '~', '=', '-']) {
                                    out.push('\\');
                                }
                                out.push_str(text);
                            }
                        }
                    }
                    para.clear();
                    level = None;
                }
                _ => {}
            },
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("the DOCX is not valid XML: {e}")),
        }
        buf.clear();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(check_filename(" a.pdf ").unwrap(), "a.pdf");
        for bad in [
            "",
            "../etc/passwd",
            "a/b.md",
            "c:\\x.txt",
            "a\u{0}.md",
            "x\ny.md",
            "..",
        ] {
            assert!(check_filename(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn magic_bytes_must_match() {
        let l = FileLimits::default();
        assert!(check_upload("a.pdf", b"hello", &l).is_err());
        assert!(check_upload("a.docx", b"%PDF-1.4", &l).is_err());
        assert!(check_upload("a.txt", b"%PDF-1.4\n...", &l).is_err());
        assert!(check_upload("a.md", b"PK\x03\x04....", &l).is_err());
        assert!(check_upload("a.md", b"", &l).is_err());
        assert!(check_upload("a.exe", b"MZ", &l).is_err());
        assert_eq!(
            check_upload("a.md", b"# Hi\n\ntext", &l).unwrap().1,
            FileKind::Text(DocumentKind::Markdown)
        );
    }

    #[test]
    fn docx_headings_become_markdown() {
        let xml = br#"<w:document xmlns:w="x"><w:body>
            <w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Intro</w:t></w:r></w:p>
            <w:p><w:r><w:t xml:space="preserve">Hello &amp; </w:t></w:r><w:r><w:t>world</w:t></w:r></w:p>
            <w:p><w:pPr><w:pStyle w:val="Berschrift2"/></w:pPr><w:r><w:t>Part</w:t></w:r></w:p>
            <w:p><w:r><w:t># not a heading</w:t></w:r></w:p>
        </w:body></w:document>"#;
        let styles = vec![("Berschrift2".to_owned(), 2)];
        let md = docx_markdown(xml, &styles).unwrap();
        assert_eq!(
            md,
            "# Intro\n\nHello & world\n\n## Part\n\n\\# not a heading"
        );
    }
}
