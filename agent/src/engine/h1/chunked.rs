//! The chunked transfer coding (RFC 9112 §7.1), decoded incrementally: each socket read is fed
//! as it arrived, its payload bytes are appended to the caller's buffer, and a size line, a
//! chunk or a trailer split across reads is resumed by the next one.

use bytes::BytesMut;

/// The longest chunk-size line (with extensions) or trailer line accepted: a server that sends
/// more is not speaking HTTP.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line (`1a;ext=v\r\n`).
    Size,
    /// Payload bytes left in the current chunk.
    Data(u64),
    /// The CRLF after a chunk's payload (`2` bytes left, or `1` after the CR).
    DataEnd(u8),
    /// Trailer lines after the last chunk, until an empty line.
    Trailer,
    /// The body is complete.
    Done,
}

/// A malformed chunked body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub struct ChunkedError(pub &'static str);

/// Incremental decoder of one chunked body.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    /// A size or trailer line begun in an earlier read.
    line: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder { state: State::Size, line: Vec::new() }
    }
}

impl Decoder {
    /// True once the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input` (one read), appending its payload bytes to `out`. Returns how many bytes
    /// of `input` belong to the body: all of them, unless the body ended inside this read (the
    /// rest is whatever the server sent after it, which a well-behaved server never does).
    pub fn decode(&mut self, input: &[u8], out: &mut BytesMut) -> Result<usize, ChunkedError> {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            match self.state {
                State::Done => return Ok(pos),
                State::Data(left) => {
                    let take = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.extend_from_slice(&rest[..take]);
                    pos += take;
                    let left = left - take as u64;
                    self.state = if left == 0 { State::DataEnd(2) } else { State::Data(left) };
                }
                State::DataEnd(n) => {
                    let want = if n == 2 { b'\r' } else { b'\n' };
                    // A bare LF after the payload is accepted (as hyper and curl do).
                    if n == 2 && rest[0] == b'\n' {
                        self.state = State::Size;
                    } else if rest[0] != want {
                        return Err(ChunkedError("a chunk's payload is not followed by CRLF"));
                    } else {
                        self.state = if n == 2 { State::DataEnd(1) } else { State::Size };
                    }
                    pos += 1;
                }
                State::Size | State::Trailer => {
                    let Some(nl) = memchr::memchr(b'\n', rest) else {
                        self.push_line(rest)?;
                        return Ok(input.len());
                    };
                    pos += nl + 1;
                    let line: &[u8] = if self.line.is_empty() {
                        &rest[..nl]
                    } else {
                        self.push_line(&rest[..nl])?;
                        &self.line
                    };
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    self.state = match self.state {
                        State::Size => match chunk_size(line)? {
                            0 => State::Trailer,
                            n => State::Data(n),
                        },
                        _ if line.is_empty() => State::Done,
                        // A trailer field: nothing a client of an engine needs.
                        _ => State::Trailer,
                    };
                    self.line.clear();
                }
            }
        }
        Ok(pos)
    }

    fn push_line(&mut self, part: &[u8]) -> Result<(), ChunkedError> {
        if self.line.len() + part.len() > MAX_LINE {
            return Err(ChunkedError("a chunk-size or trailer line is too long"));
        }
        self.line.extend_from_slice(part);
        Ok(())
    }
}

/// The size of a chunk-size line: hex digits, then optional whitespace and `;extensions`.
fn chunk_size(line: &[u8]) -> Result<u64, ChunkedError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkedError("a chunk-size line has no size"));
    }
    if digits > 15 {
        return Err(ChunkedError("a chunk size is too large"));
    }
    match line[digits..].iter().find(|b| !matches!(b, b' ' | b'\t')) {
        None | Some(b';') => {}
        Some(_) => return Err(ChunkedError("a chunk-size line has junk after the size")),
    }
    let text = std::str::from_utf8(&line[..digits]).map_err(|_| ChunkedError("a chunk size is not ASCII"))?;
    u64::from_str_radix(text, 16).map_err(|_| ChunkedError("a chunk size is not a hex number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        b"5\r\nhello\r\n7;name=value\r\n, world\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\n";
    const PAYLOAD: &[u8] = b"hello, worldabcdefghijklmnopqrstuvwxyz";

    fn decode_in_pieces(body: &[u8], cuts: &[usize]) -> (Vec<u8>, bool) {
        let mut d = Decoder::default();
        let mut out = BytesMut::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
            let used = d.decode(&body[start..cut], &mut out).unwrap();
            assert_eq!(used, cut - start, "every byte before the end belongs to the body");
            start = cut;
        }
        (out.to_vec(), d.is_done())
    }

    #[test]
    fn a_whole_body_in_one_read_decodes() {
        assert_eq!(decode_in_pieces(BODY, &[]), (PAYLOAD.to_vec(), true));
    }

    #[test]
    fn every_split_point_decodes_the_same() {
        for a in 0..BODY.len() {
            for b in a..BODY.len() {
                assert_eq!(decode_in_pieces(BODY, &[a, b]), (PAYLOAD.to_vec(), true), "cuts at {a} and {b}");
            }
        }
    }

    #[test]
    fn bytes_after_the_end_are_not_the_body() {
        let mut d = Decoder::default();
        let mut out = BytesMut::new();
        let used = d.decode(b"2\r\nok\r\n0\r\n\r\nHTTP/1.1 200", &mut out).unwrap();
        assert_eq!(used, 12);
        assert!(d.is_done());
        assert_eq!(&out[..], b"ok");
    }

    #[test]
    fn an_unfinished_body_is_not_done() {
        let mut d = Decoder::default();
        let mut out = BytesMut::new();
        d.decode(b"5\r\nhel", &mut out).unwrap();
        assert!(!d.is_done());
        d.decode(b"lo\r\n0\r\n", &mut out).unwrap();
        assert!(!d.is_done(), "the empty line after the last chunk is still missing");
        d.decode(b"\r\n", &mut out).unwrap();
        assert!(d.is_done());
        assert_eq!(&out[..], b"hello");
    }

    #[test]
    fn bare_lf_line_ends_are_accepted() {
        assert_eq!(decode_in_pieces(b"3\nabc\n0\n\n", &[]), (b"abc".to_vec(), true));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        for (body, why) in [
            (&b"zz\r\n"[..], "no size"),
            (b"5x\r\nhello\r\n", "junk"),
            (b"2\r\nokX\r\n", "CRLF"),
            (b"ffffffffffffffff\r\n", "too large"),
        ] {
            let err = Decoder::default().decode(body, &mut BytesMut::new()).unwrap_err();
            assert!(err.0.contains(why), "{body:?}: {err}");
        }
        let mut d = Decoder::default();
        let long = vec![b'1'; MAX_LINE + 1];
        assert!(d.decode(&long, &mut BytesMut::new()).is_err());
    }
}
