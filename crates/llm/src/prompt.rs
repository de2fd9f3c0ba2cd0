//! How retrieved sources are laid out in a prompt.
//!
//! The RAG pipeline writes sources with [`format_sources`]; the built-in
//! provider reads them back with [`parse_sources`], so it can answer from
//! them offline. Real models just read the text.

/// The line that opens the sources block.
pub const SOURCES_HEADER: &str = "Sources:";

/// A retrieved passage as placed in a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptSource {
    /// 1-based number the answer cites as `[n]`.
    pub number: usize,
    /// Where it comes from (file path, lesson title).
    pub label: String,
    /// The passage.
    pub text: String,
}

/// Formats sources as a numbered block:
///
/// ```text
/// Sources:
/// [1] docs/ownership.md
/// Each value has a single owner...
///
/// [2] ...
/// ```
pub fn format_sources<'a>(sources: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from(SOURCES_HEADER);
    out.push('\n');
    for (i, (label, text)) in sources.into_iter().enumerate() {
        let label = label.replace('\n', " ");
        out.push_str(&format!(
            "[{}] {}\n{}\n\n",
            i + 1,
            label.trim(),
            text.trim()
        ));
    }
    out
}

/// Reads back the sources block written by [`format_sources`] from any
/// message text; empty when there is none.
pub fn parse_sources(text: &str) -> Vec<PromptSource> {
    let Some(start) = text.find(SOURCES_HEADER) else {
        return Vec::new();
    };
    let mut out: Vec<PromptSource> = Vec::new();
    let mut after_blank = true;
    for line in text[start + SOURCES_HEADER.len()..].lines() {
        // A passage may itself quote a numbered list ("[1] notes.md: ..."):
        // a header is the next number, first or after a blank line, as
        // format_sources writes it.
        let header = parse_header(line).filter(|(n, _)| *n == out.len() + 1 && after_blank);
        after_blank = line.trim().is_empty();
        if let Some(header) = header {
            out.push(PromptSource {
                number: header.0,
                label: header.1.to_owned(),
                text: String::new(),
            });
        } else if let Some(last) = out.last_mut() {
            if !last.text.is_empty() {
                last.text.push('\n');
            }
            last.text.push_str(line);
        }
    }
    for s in &mut out {
        s.text = s.text.trim().to_owned();
    }
    out
}

fn parse_header(line: &str) -> Option<(usize, &str)> {
    let rest = line.strip_prefix('[')?;
    let (num, label) = rest.split_once("] ")?;
    let n = num.parse().ok()?;
    Some((n, label.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let text = format!(
            "Answer using the sources.\n\n{}",
            format_sources([
                ("a.md", "First passage.\nSecond line."),
                ("b\nc.md", "Other.")
            ])
        );
        let parsed = parse_sources(&text);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].number, 1);
        assert_eq!(parsed[0].label, "a.md");
        assert_eq!(parsed[0].text, "First passage.\nSecond line.");
        assert_eq!(parsed[1].label, "b c.md");
        assert!(parse_sources("no sources here").is_empty());
    }

    #[test]
    fn numbered_lines_inside_a_passage_are_text() {
        let lesson = "Prompt like this:\n\n[1] lessons/borrowing.md: \"one mutable...\"\n[2] lessons/ownership.md: \"dropped...\"\n\nThen ask.";
        let text = format_sources([
            ("lessons/prompting", lesson),
            ("lessons/ownership", "Each value has one owner."),
        ]);
        let parsed = parse_sources(&text);
        assert_eq!(parsed.len(), 2, "{parsed:#?}");
        assert_eq!(parsed[0].text, lesson);
        assert_eq!(parsed[1].label, "lessons/ownership");
        assert_eq!(parsed[1].text, "Each value has one owner.");
    }
}
