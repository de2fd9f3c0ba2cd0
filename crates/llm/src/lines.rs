//! Incremental line and server-sent-event readers over a byte stream.
//!
//! Bytes arrive in arbitrary chunks; these readers hand out complete lines
//! (`LineBuffer`) or the `data` of complete SSE events (`SseReader`) without
//! copying the buffer once per line.

use crate::error::LlmError;

/// Longest line accepted (guards against a peer that never sends a newline).
pub(crate) const MAX_LINE: usize = 8 * 1024 * 1024;

/// Accumulates bytes and yields complete `\n`-terminated lines.
#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    buf: Vec<u8>,
    /// Start of the first unread byte.
    pos: usize,
}

impl LineBuffer {
    /// Appends received bytes, dropping the lines already handed out.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line (without `\n` / `\r\n`), if any.
    pub fn next_line(&mut self) -> Result<Option<&str>, LlmError> {
        let rest = &self.buf[self.pos..];
        let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
            if rest.len() > MAX_LINE {
                return Err(LlmError::BadResponse("stream line too long".into()));
            }
            return Ok(None);
        };
        let start = self.pos;
        self.pos += nl + 1;
        let mut line = &self.buf[start..start + nl];
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        std::str::from_utf8(line)
            .map(Some)
            .map_err(|_| LlmError::BadResponse("stream is not UTF-8".into()))
    }

    /// What is left after the last newline (at the end of the stream).
    pub fn rest(&mut self) -> Result<&str, LlmError> {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        std::str::from_utf8(rest).map_err(|_| LlmError::BadResponse("stream is not UTF-8".into()))
    }
}

/// Reads server-sent events, keeping only their `data` (joined with `\n`
/// when an event has several `data:` lines). Comments and other fields are
/// skipped.
#[derive(Debug, Default)]
pub(crate) struct SseReader {
    lines: LineBuffer,
    data: String,
    has_data: bool,
    /// `data` holds an event already handed out.
    handed_out: bool,
}

/// The value of `line` when it is the field `name` (`name: value` or `name:value`).
fn field_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let value = line.strip_prefix(name)?.strip_prefix(':')?;
    Some(value.strip_prefix(' ').unwrap_or(value))
}

/// Adds the value of a `data:` line to the event being read.
fn push_data(data: &mut String, has_data: &mut bool, line: &str) {
    if let Some(value) = field_value(line, "data") {
        if *has_data {
            data.push('\n');
        }
        data.push_str(value);
        *has_data = true;
    }
}

impl SseReader {
    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.lines.feed(bytes);
    }

    fn reset_if_handed_out(&mut self) {
        if self.handed_out {
            self.handed_out = false;
            self.has_data = false;
            self.data.clear();
        }
    }

    /// The data of the next complete event, if one is buffered.
    pub fn next_event(&mut self) -> Result<Option<&str>, LlmError> {
        self.reset_if_handed_out();
        while let Some(line) = self.lines.next_line()? {
            if line.is_empty() {
                if self.has_data {
                    self.handed_out = true;
                    return Ok(Some(&self.data));
                }
                continue;
            }
            push_data(&mut self.data, &mut self.has_data, line);
        }
        Ok(None)
    }

    /// At the end of the stream: an event that was not closed by a blank line.
    pub fn finish(&mut self) -> Result<Option<&str>, LlmError> {
        self.reset_if_handed_out();
        let rest = self.lines.rest()?;
        push_data(&mut self.data, &mut self.has_data, rest);
        Ok(self.has_data.then_some(self.data.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<String> {
        let mut r = SseReader::default();
        let mut out = Vec::new();
        for c in chunks {
            r.feed(c);
            while let Some(e) = r.next_event().unwrap() {
                out.push(e.to_owned());
            }
        }
        if let Some(e) = r.finish().unwrap() {
            out.push(e.to_owned());
        }
        out
    }

    #[test]
    fn splits_events_across_chunks() {
        assert_eq!(
            events(&[
                b"data: {\"a\"",
                b":1}\n\n: comment\n",
                b"event: x\ndata: b\r\ndata:c\r\n\r\ndata: [DONE]\n\n"
            ]),
            ["{\"a\":1}", "b\nc", "[DONE]"]
        );
        assert_eq!(
            events(&[b"data: tail without blank line"]),
            ["tail without blank line"]
        );
        assert_eq!(events(&[b"\n\n: only comments\n\n"]), Vec::<String>::new());
        assert_eq!(events(&[b"datafield: x\n\ndata: y\n\n"]), ["y"]);
    }

    #[test]
    fn many_events_in_one_chunk() {
        let body = "data: x\n\n".repeat(10_000);
        assert_eq!(events(&[body.as_bytes()]).len(), 10_000);
    }

    #[test]
    fn rejects_bad_utf8() {
        let mut r = SseReader::default();
        r.feed(b"data: \xff\xfe\n\n");
        assert!(r.next_event().is_err());
    }

    #[test]
    fn lines() {
        let mut b = LineBuffer::default();
        b.feed(b"one\r\ntw");
        assert_eq!(b.next_line().unwrap(), Some("one"));
        assert_eq!(b.next_line().unwrap(), None);
        b.feed(b"o\nthree");
        assert_eq!(b.next_line().unwrap(), Some("two"));
        assert_eq!(b.next_line().unwrap(), None);
        assert_eq!(b.rest().unwrap(), "three");
    }
}
