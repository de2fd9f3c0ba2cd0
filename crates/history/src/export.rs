//! Rendering a [`SessionExport`] as JSON, Markdown or plain text.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use confab_models::{ExportFormat, MessageRole, SessionExport};

use crate::error::HistoryError;

/// An exported session, ready to send as a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedSession {
    /// The format written.
    pub format: ExportFormat,
    /// Suggested file name (`title-slug-1234abcd.md`).
    pub filename: String,
    /// MIME type.
    pub content_type: &'static str,
    /// The document.
    pub body: String,
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn role_name(role: MessageRole) -> &'static str {
    match role {
        MessageRole::User => "User",
        MessageRole::Assistant => "Assistant",
        MessageRole::System => "System",
        MessageRole::Tool => "Tool",
    }
}

/// A file-name-safe slug of a title (ASCII letters and digits, dashes), at most 48 chars.
fn slug(title: &str) -> String {
    let mut out = String::new();
    for ch in title.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 48 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "chat".to_owned()
    } else {
        out
    }
}

/// Renders `doc` in `format`.
pub fn render(doc: &SessionExport, format: ExportFormat) -> Result<ExportedSession, HistoryError> {
    let body = match format {
        ExportFormat::Json => serde_json::to_string_pretty(doc)
            .map_err(|e| HistoryError::Corrupt(format!("cannot serialise export: {e}")))?,
        ExportFormat::Markdown => markdown(doc),
        ExportFormat::Txt => text(doc),
    };
    let short_id: String = doc
        .session
        .id
        .simple()
        .to_string()
        .chars()
        .take(8)
        .collect();
    Ok(ExportedSession {
        format,
        filename: format!(
            "{}-{short_id}.{}",
            slug(&doc.session.title),
            format.extension()
        ),
        content_type: format.content_type(),
        body,
    })
}

fn markdown(doc: &SessionExport) -> String {
    let s = &doc.session;
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", s.title);
    let _ = writeln!(out, "- Session: `{}`", s.id);
    let _ = writeln!(out, "- Model: {}", s.model_id);
    let _ = writeln!(out, "- Agent: {}", s.agent);
    if let Some(course) = &s.course_id {
        let _ = writeln!(out, "- Course: {course}");
    }
    let _ = writeln!(out, "- Created: {}", when(s.created_at));
    let _ = writeln!(out, "- Updated: {}", when(s.updated_at));
    let _ = writeln!(out, "- Messages: {}", doc.messages.len());
    let _ = writeln!(out, "- Exported: {}", when(doc.exported_at));
    for msg in &doc.messages {
        let _ = write!(out, "\n---\n\n### {}", role_name(msg.role));
        if let Some(model) = &msg.model_id {
            let _ = write!(out, " ({model})");
        }
        let _ = writeln!(out, " · {}\n", when(msg.timestamp));
        let _ = writeln!(out, "{}", msg.content.trim_end());
    }
    out
}

fn text(doc: &SessionExport) -> String {
    let s = &doc.session;
    let mut out = String::new();
    let _ = writeln!(out, "{}", s.title);
    let _ = writeln!(out, "{}", "=".repeat(s.title.chars().count().clamp(3, 80)));
    let _ = writeln!(out, "Session:  {}", s.id);
    let _ = writeln!(out, "Model:    {}", s.model_id);
    let _ = writeln!(out, "Created:  {}", when(s.created_at));
    let _ = writeln!(out, "Updated:  {}", when(s.updated_at));
    let _ = writeln!(out, "Messages: {}", doc.messages.len());
    for msg in &doc.messages {
        let _ = writeln!(out, "\n[{}] {}:", when(msg.timestamp), role_name(msg.role));
        let _ = writeln!(out, "{}", msg.content.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slugs() {
        assert_eq!(slug("Hello, World!"), "hello-world");
        assert_eq!(slug("Привет"), "chat");
        assert_eq!(slug("  a  b  "), "a-b");
        assert!(slug(&"x".repeat(100)).len() <= 48);
    }
}
