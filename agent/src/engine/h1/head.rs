//! A response's status line and headers, and how its body is framed.

/// The longest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Headers read from one response.
const MAX_HEADERS: usize = 64;

/// How the body of a response ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `transfer-encoding: chunked`.
    Chunked,
    /// `content-length` bytes (0 for a response that has no body).
    Length(u64),
    /// Everything until the server closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub framing: Framing,
    /// The connection may carry another request once this body is read.
    pub keep_alive: bool,
    /// Bytes of the buffer the head took.
    pub len: usize,
}

/// Parses a response head at the start of `buf`: `Ok(None)` while it is incomplete. An
/// informational (1xx) head is returned like any other; the caller skips it.
pub fn parse(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(format!("the response head is longer than {MAX_HEAD} bytes"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("invalid HTTP response head: {e}")),
    };
    let status = response.code.unwrap_or_default();
    let mut chunked = false;
    let mut length: Option<u64> = None;
    let mut keep_alive = response.version == Some(1);
    for h in response.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or_default().trim();
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding frames the body.
            chunked = value.rsplit(',').next().is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let n = value.parse::<u64>().map_err(|_| format!("invalid content-length {value:?}"))?;
            if length.is_some_and(|m| m != n) {
                return Err("conflicting content-length headers".into());
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = if matches!(status, 100..=199 | 204 | 304) {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        keep_alive = false;
        Framing::Close
    };
    Ok(Some(Head { status, framing, keep_alive, len }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_and_keep_alive_follow_the_headers() {
        let head = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nrest").unwrap().unwrap();
        assert_eq!(head, Head { status: 200, framing: Framing::Chunked, keep_alive: true, len: 47 });
        let head =
            parse(b"HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\nconnection: close\r\n\r\n").unwrap().unwrap();
        assert_eq!((head.status, head.framing, head.keep_alive), (404, Framing::Length(12), false));
        let head = parse(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((head.framing, head.keep_alive), (Framing::Close, false));
        let head = parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 3\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.framing, Framing::Chunked, "chunked wins over a length");
        let head = parse(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap().unwrap();
        assert_eq!((head.status, head.framing), (100, Framing::Length(0)));
    }

    #[test]
    fn an_incomplete_head_waits_and_a_bad_one_is_an_error() {
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(), None);
        assert!(parse(b"SMTP ready\r\n\r\n").unwrap_err().contains("invalid HTTP response head"));
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").unwrap_err().contains("content-length"));
        let conflicting = b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n";
        assert!(parse(conflicting).unwrap_err().contains("conflicting"));
        let mut long = b"HTTP/1.1 200 OK\r\n".to_vec();
        long.resize(MAX_HEAD, b'a');
        assert!(parse(&long).unwrap_err().contains("longer than"));
    }
}
