//! Splitting a streamed body into lines (NDJSON) and reading SSE `data:` fields.
//!
//! Network reads do not respect line boundaries: one read may carry half a line, or three. The
//! splitter keeps the partial tail until the read that completes it, so each line can be
//! stamped with the instant its last byte arrived.
//!
//! [`LineBuf`] is the allocation-free core the timed reader uses: a line that lies within one
//! read is handed out as a slice of that read (no copy); only a line split across reads is
//! joined, in a buffer reused for the whole body. [`LineSplitter`] is the same splitting with
//! owned lines out, for tests and callers that keep the lines.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;

/// Where the line handed out by [`LineBuf::next_line`] lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Within the current read.
    Read(Range<usize>),
    /// Joined from several reads (in the splitter's own buffer).
    Joined,
}

/// Splits reads into lines without copying them. Lines are trimmed of `\r` and blank lines are
/// dropped (SSE separates events with an empty line; NDJSON never has one).
#[derive(Debug, Default)]
pub struct LineBuf {
    /// The latest read, consumed up to `pos`.
    read: Bytes,
    pos: usize,
    /// A line begun in an earlier read (or, after [`Line::Joined`] was handed out, that line).
    partial: Vec<u8>,
    /// `partial` holds the line handed out last: it is cleared on the next call.
    joined_out: bool,
}

impl LineBuf {
    /// Takes the next read. Call once [`LineBuf::next_line`] has returned `None` (the previous
    /// read is consumed by then).
    pub fn push(&mut self, read: Bytes) {
        debug_assert!(self.pos >= self.read.len(), "a read pushed before the previous one was consumed");
        self.read = read;
        self.pos = 0;
    }

    /// The next complete, non-blank line of the reads pushed so far; `None` when the rest of
    /// the latest read is an unterminated line (kept for the next read).
    pub fn next_line(&mut self) -> Option<Line> {
        self.release();
        loop {
            let rest = &self.read[self.pos..];
            let Some(nl) = memchr::memchr(b'\n', rest) else {
                self.partial.extend_from_slice(rest);
                self.pos = self.read.len();
                return None;
            };
            let start = self.pos;
            self.pos += nl + 1;
            if self.partial.is_empty() {
                let end = start + trimmed_len(&self.read[start..start + nl]);
                if !is_blank(&self.read[start..end]) {
                    return Some(Line::Read(start..end));
                }
            } else {
                self.partial.extend_from_slice(&self.read[start..start + nl]);
                if self.partial_line() {
                    return Some(Line::Joined);
                }
            }
        }
    }

    /// The unterminated line at the end of the body, if any (call once the body has ended).
    pub fn finish(&mut self) -> Option<Line> {
        self.release();
        self.partial_line().then_some(Line::Joined)
    }

    /// The text of `line`, as [`LineBuf::next_line`] or [`LineBuf::finish`] just returned it.
    /// Invalid UTF-8 is replaced (U+FFFD); a line is decoded only once complete, so a character
    /// split across reads is whole by then.
    pub fn text(&self, line: &Line) -> Cow<'_, str> {
        match line {
            Line::Read(range) => String::from_utf8_lossy(&self.read[range.clone()]),
            Line::Joined => String::from_utf8_lossy(&self.partial),
        }
    }

    /// Clears a joined line handed out by the previous call.
    fn release(&mut self) {
        if self.joined_out {
            self.partial.clear();
            self.joined_out = false;
        }
    }

    /// Trims `partial` as a complete line; true when it is a line to hand out (it is cleared
    /// when blank).
    fn partial_line(&mut self) -> bool {
        let len = trimmed_len(&self.partial);
        self.partial.truncate(len);
        if is_blank(&self.partial) {
            self.partial.clear();
            false
        } else {
            self.joined_out = true;
            true
        }
    }
}

/// The length of `line` without its trailing `\r`s.
fn trimmed_len(line: &[u8]) -> usize {
    line.iter().rposition(|&b| b != b'\r').map_or(0, |i| i + 1)
}

/// Empty or only whitespace (Unicode's, as `str::trim` sees it).
fn is_blank(line: &[u8]) -> bool {
    match line.first() {
        None => true,
        // The common case decided without decoding: a line that starts with a visible ASCII byte.
        Some(b) if b.is_ascii_graphic() => false,
        Some(_) => String::from_utf8_lossy(line).trim().is_empty(),
    }
}

/// Splits bytes into owned lines across reads (the [`LineBuf`] splitting, for callers that
/// keep every line).
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: LineBuf,
}

impl LineSplitter {
    /// Feeds one read; returns the lines it completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buf.push(Bytes::copy_from_slice(bytes));
        let mut out = Vec::new();
        while let Some(line) = self.buf.next_line() {
            out.push(self.buf.text(&line).into_owned());
        }
        out
    }

    /// The unterminated tail at the end of the body, if any.
    pub fn finish(&mut self) -> Option<String> {
        let line = self.buf.finish()?;
        Some(self.buf.text(&line).into_owned())
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
    fn lines_within_one_read_are_not_copied_and_joined_lines_are_released() {
        let mut b = LineBuf::default();
        b.push(Bytes::from_static(b"data: 1\r\n\r\n  \ndata: 2"));
        assert_eq!(b.next_line(), Some(Line::Read(0..7)));
        assert_eq!(b.text(&Line::Read(0..7)), "data: 1");
        assert!(matches!(b.text(&Line::Read(0..7)), Cow::Borrowed(_)));
        assert_eq!(b.next_line(), None);
        b.push(Bytes::from_static(b"2\n\xc2\xa0\r\n"));
        assert_eq!(b.next_line(), Some(Line::Joined));
        assert_eq!(b.text(&Line::Joined), "data: 22");
        // A line of Unicode whitespace (NO-BREAK SPACE) is blank, as `str::trim` says.
        assert_eq!(b.next_line(), None);
        assert_eq!(b.finish(), None);
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
