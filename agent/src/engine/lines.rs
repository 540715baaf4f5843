//! Splitting a streamed body into lines (NDJSON) and reading SSE `data:` fields.
//!
//! Network reads do not respect line boundaries: one read may carry half a line, or three. The
//! splitter buffers the partial tail until the read that completes it, so each line can be
//! stamped with the instant its last byte arrived.

/// Splits bytes into lines across reads. Lines are trimmed of `\r` and blank lines are dropped
/// (SSE separates events with an empty line; NDJSON never has one).
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds one read; returns the lines it completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            if let Some(line) = Self::take(&mut self.partial) {
                out.push(line);
            }
        }
        self.partial.extend_from_slice(rest);
        out
    }

    /// The unterminated tail at the end of the body, if any.
    pub fn finish(&mut self) -> Option<String> {
        Self::take(&mut self.partial)
    }

    fn take(buf: &mut Vec<u8>) -> Option<String> {
        // Decode only complete lines: a UTF-8 character split across reads is whole by now.
        let line = String::from_utf8_lossy(buf).trim_end_matches('\r').to_owned();
        buf.clear();
        (!line.trim().is_empty()).then_some(line)
    }
}

/// One SSE line, as far as a chat-completions client cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseLine<'a> {
    /// `data: <payload>` (payload without the field name and its optional space).
    Data(&'a str),
    /// `data: [DONE]`: the stream's end marker.
    Done,
    /// A comment (`: keep-alive`), `event:`, `id:` or `retry:` line: no data.
    Other,
}

/// Classifies one SSE line.
pub fn sse_line(line: &str) -> SseLine<'_> {
    match line.strip_prefix("data:") {
        Some(data) => {
            let data = data.strip_prefix(' ').unwrap_or(data).trim_end();
            if data == "[DONE]" { SseLine::Done } else { SseLine::Data(data) }
        }
        None => SseLine::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_reads_are_joined() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"{\"a\":1}\n{\"b\""), vec!["{\"a\":1}"]);
        assert_eq!(s.push(b":2}"), Vec::<String>::new());
        assert_eq!(s.push(b"\n\n{\"c\":3}\r\n{\"d\":4}\n"), vec!["{\"b\":2}", "{\"c\":3}", "{\"d\":4}"]);
        assert_eq!(s.finish(), None);
        s.push(b"tail");
        assert_eq!(s.finish().as_deref(), Some("tail"));
    }

    #[test]
    fn multibyte_character_split_across_reads_survives() {
        let text = "{\"t\":\"héllo ✓\"}\n".as_bytes();
        let mut s = LineSplitter::default();
        let mut out = s.push(&text[..9]);
        out.extend(s.push(&text[9..]));
        assert_eq!(out, vec!["{\"t\":\"héllo ✓\"}"]);
    }

    #[test]
    fn sse_lines_are_classified() {
        assert_eq!(sse_line("data: {\"x\":1}"), SseLine::Data("{\"x\":1}"));
        assert_eq!(sse_line("data:{\"x\":1}"), SseLine::Data("{\"x\":1}"));
        assert_eq!(sse_line("data: [DONE]"), SseLine::Done);
        assert_eq!(sse_line(": keep-alive"), SseLine::Other);
        assert_eq!(sse_line("event: error"), SseLine::Other);
    }
}
