//! The agent's own HTTP/1.1 client for generation requests to plain-`http://` engines.
//!
//! Why not reqwest here (it serves every other call, and `https://` engines): hyper's client
//! decodes the body on its connection task and hands it to the reader one chunk at a time
//! through a one-slot channel, and engines write one chunk per token, so every token cost two
//! task wake-ups between the socket and the parser, and the instant a token was stamped with was
//! taken after that hand-off. This client reads the socket itself, up to 64 KiB per read, decodes
//! the chunked framing of the whole read at once ([`chunked`]), and the timed line reader stamps
//! each read the moment it returns: the same discipline as the harness's raw socket reader.
//!
//! What it does: one request per connection at a time, `content-length` request bodies, response
//! heads parsed by `httparse` ([`head`]), chunked / length / close-delimited bodies, keep-alive
//! connections reused per host (the most recently used first, a closed one noticed before it is
//! used, at most [`MAX_IDLE`] kept per host, none older than [`IDLE_FOR`]), `TCP_NODELAY`, and a
//! connect bound. A pooled connection the server closed under us (llama.cpp drops idle ones after
//! a few seconds) is retried once on a fresh one, as the reqwest path does. The request's other
//! bounds (first bytes, idle, total) are the caller's: [`super::http`].

pub mod chunked;
pub mod head;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use head::Framing;

/// Idle connections kept per host.
pub const MAX_IDLE: usize = 256;
/// An idle connection older than this is closed rather than reused.
pub const IDLE_FOR: Duration = Duration::from_secs(60);
/// The first read of a body asks for this much; a read that fills it doubles the next, up to
/// [`MAX_READ`]. Many slow streams keep small buffers; one fast stream is read in large gulps.
const FIRST_READ: usize = 8 * 1024;
const MAX_READ: usize = 64 * 1024;
/// The most of an error answer's body that is read (its message).
pub const MAX_ERROR_BODY: usize = 1024 * 1024;

/// Why a request got no answer, or its answer broke off.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    #[error("connecting: {0}")]
    Connect(io::Error),
    #[error("connecting took longer than {0:?}")]
    ConnectTimeout(Duration),
    /// The connection failed or closed before the answer's head.
    #[error("{0}")]
    NoAnswer(String),
    /// The answer is not HTTP, or its framing is broken.
    #[error("{0}")]
    Protocol(String),
    /// Reading the body failed.
    #[error("{0}")]
    Body(String),
}

/// Where a request goes: `http://host[:port]/path?query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host:port` (the pool's key and the address to resolve; IPv6 hosts in brackets).
    authority: String,
    /// The `Host` header.
    host_header: String,
    path: String,
}

impl Target {
    /// The target of a plain-`http://` URL; `None` for any other scheme (or a URL with user
    /// info), which the reqwest path serves.
    pub fn of(url: &str) -> Option<Target> {
        let parsed = reqwest::Url::parse(url).ok()?;
        if parsed.scheme() != "http" || !parsed.username().is_empty() || parsed.password().is_some() {
            return None;
        }
        let host = parsed.host_str()?;
        let port = parsed.port_or_known_default()?;
        let mut path = parsed.path().to_owned();
        if let Some(q) = parsed.query() {
            path.push('?');
            path.push_str(q);
        }
        let host_header = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        Some(Target { authority: format!("{host}:{port}"), host_header, path })
    }
}

/// One POST with a JSON body.
pub struct Post<'a> {
    pub target: &'a Target,
    pub body: &'a [u8],
    pub bearer: Option<&'a str>,
    /// Send no earlier than this (an open-loop request's due instant): the request is built
    /// first, then waited on ([`super::wait_until`]).
    pub send_at: Option<Instant>,
}

impl Post<'_> {
    /// The request's bytes: head and body in one buffer, so it leaves in one write.
    fn bytes(&self) -> Vec<u8> {
        use std::fmt::Write as _;
        let mut head = String::with_capacity(256);
        let _ = write!(
            head,
            "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\naccept: */*\r\ncontent-length: {}\r\n",
            self.target.path,
            self.target.host_header,
            self.body.len()
        );
        if let Some(key) = self.bearer {
            let _ = write!(head, "authorization: Bearer {key}\r\n");
        }
        head.push_str("\r\n");
        let mut out = Vec::with_capacity(head.len() + self.body.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(self.body);
        out
    }
}

struct Idle {
    stream: TcpStream,
    since: Instant,
}

#[derive(Default)]
struct Pool {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
}

impl Pool {
    /// The most recently parked live connection to `authority`, if any.
    fn take(&self, authority: &str) -> Option<TcpStream> {
        let mut idle = bench_shared::sync::lock(&self.idle);
        let list = idle.get_mut(authority)?;
        while let Some(conn) = list.pop() {
            if conn.since.elapsed() < IDLE_FOR && is_open(&conn.stream) {
                return Some(conn.stream);
            }
        }
        None
    }

    fn put(&self, authority: &str, stream: TcpStream) {
        let mut idle = bench_shared::sync::lock(&self.idle);
        let list = idle.entry(authority.to_owned()).or_default();
        list.retain(|c| c.since.elapsed() < IDLE_FOR);
        if list.len() >= MAX_IDLE {
            list.remove(0);
        }
        list.push(Idle { stream, since: Instant::now() });
    }
}

/// An idle connection is usable when reading it would block: no end of stream, no stray bytes.
fn is_open(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// The client (cheap to clone: the pool is shared).
#[derive(Clone)]
pub struct H1Client {
    connect: Duration,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for H1Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Client").field("connect", &self.connect).finish_non_exhaustive()
    }
}

impl H1Client {
    /// A client whose connects are bounded by `connect`.
    pub fn new(connect: Duration) -> Self {
        H1Client { connect, pool: Arc::default() }
    }

    /// Sends `post` and reads the answer's head. Returns the answer and the instant taken
    /// immediately before the connection was taken (from the pool, or connected): the same zero
    /// the reqwest path uses. A pooled connection that fails before any answer is retried once
    /// on a fresh connection, timed from the retry.
    pub async fn send(&self, post: &Post<'_>) -> Result<(Response, Instant), H1Error> {
        let request = post.bytes();
        let authority = &post.target.authority;
        super::wait_until(post.send_at).await;
        let t0 = Instant::now();
        if let Some(stream) = self.pool.take(authority) {
            match self.exchange(stream, &request, authority).await {
                Ok(response) => return Ok((response, t0)),
                Err(H1Error::NoAnswer(reason)) => {
                    tracing::debug!(authority, reason, "pooled connection was closed; retrying on a fresh one");
                }
                Err(e) => return Err(e),
            }
        }
        let t0 = Instant::now();
        let stream = self.connect(authority).await?;
        Ok((self.exchange(stream, &request, authority).await?, t0))
    }

    async fn connect(&self, authority: &str) -> Result<TcpStream, H1Error> {
        let connect = async {
            let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name resolved to no address");
            for addr in tokio::net::lookup_host(authority).await? {
                match TcpStream::connect(addr).await {
                    Ok(stream) => return Ok(stream),
                    Err(e) => last = e,
                }
            }
            Err(last)
        };
        let stream = tokio::time::timeout(self.connect, connect)
            .await
            .map_err(|_| H1Error::ConnectTimeout(self.connect))?
            .map_err(H1Error::Connect)?;
        // Requests are small: Nagle's algorithm would hold them back and skew TTFT.
        stream.set_nodelay(true).map_err(H1Error::Connect)?;
        Ok(stream)
    }

    /// Writes the request and reads the answer's head (skipping informational ones).
    async fn exchange(&self, mut stream: TcpStream, request: &[u8], authority: &str) -> Result<Response, H1Error> {
        stream.write_all(request).await.map_err(|e| H1Error::NoAnswer(format!("sending the request: {e}")))?;
        let mut raw = BytesMut::with_capacity(FIRST_READ);
        loop {
            let head = loop {
                if let Some(head) = head::parse(&raw).map_err(H1Error::Protocol)? {
                    break head;
                }
                raw.reserve(FIRST_READ);
                match read_buf(&mut stream, &mut raw).await {
                    Ok(0) if raw.is_empty() => {
                        return Err(H1Error::NoAnswer("the connection closed before the answer".into()));
                    }
                    Ok(0) => return Err(H1Error::Protocol("the connection closed inside the answer's head".into())),
                    Ok(_) => {}
                    Err(e) if raw.is_empty() => return Err(H1Error::NoAnswer(format!("reading the answer: {e}"))),
                    Err(e) => return Err(H1Error::Protocol(format!("reading the answer's head: {e}"))),
                }
            };
            let _ = raw.split_to(head.len);
            if (100..200).contains(&head.status) {
                continue;
            }
            let framing = match head.framing {
                Framing::Chunked => BodyFraming::Chunked(chunked::Decoder::default()),
                Framing::Length(n) => BodyFraming::Length(n),
                Framing::Close => BodyFraming::Close,
            };
            let mut body = Body {
                stream: Some(stream),
                raw,
                framing,
                read_size: FIRST_READ,
                done: false,
                keep_alive: head.keep_alive,
                pool: self.pool.clone(),
                authority: authority.to_owned(),
            };
            if head.framing == Framing::Length(0) {
                // Nothing to read: the connection is free at once (unless the server sent more).
                body.keep_alive &= body.raw.is_empty();
                body.done = true;
                body.release();
            }
            return Ok(Response { status: head.status, body });
        }
    }
}

async fn read_buf(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    std::future::poll_fn(|cx| poll_read_buf(stream, cx, buf)).await
}

/// One read of whatever the socket has, appended to `buf` (which has spare capacity).
fn poll_read_buf(stream: &TcpStream, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
    loop {
        ready!(stream.poll_read_ready(cx))?;
        match stream.try_read_buf(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => return Poll::Ready(other),
        }
    }
}

/// An answer: its status and its body, not yet read.
pub struct Response {
    pub status: u16,
    pub body: Body,
}

enum BodyFraming {
    Chunked(chunked::Decoder),
    /// Bytes of the body still to come.
    Length(u64),
    Close,
}

/// The body of an answer, read one socket read at a time. Dropped once complete, its
/// connection goes back to the pool (unless the server asked to close it).
pub struct Body {
    stream: Option<TcpStream>,
    /// Bytes read and not yet decoded (the part of the first read after the head).
    raw: BytesMut,
    framing: BodyFraming,
    read_size: usize,
    done: bool,
    keep_alive: bool,
    pool: Arc<Pool>,
    authority: String,
}

impl Body {
    /// The payload of the next socket read (`None` at the body's end). A read that carried only
    /// framing (a chunk-size line) is not returned: the next one is waited for.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, H1Error>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            if !self.raw.is_empty() {
                match self.decode() {
                    Ok(Some(payload)) => return Poll::Ready(Some(Ok(payload))),
                    Ok(None) => continue,
                    Err(e) => return Poll::Ready(Some(Err(e))),
                }
            }
            let Some(stream) = self.stream.as_ref() else { return Poll::Ready(None) };
            self.raw.reserve(self.read_size);
            let spare = self.raw.capacity() - self.raw.len();
            match ready!(poll_read_buf(stream, cx, &mut self.raw)) {
                Ok(0) => {
                    self.stream = None;
                    return Poll::Ready(match self.framing {
                        BodyFraming::Close => {
                            self.done = true;
                            None
                        }
                        _ => Some(Err(H1Error::Body("the connection closed before the end of the answer".into()))),
                    });
                }
                Ok(n) => {
                    if n >= spare && self.read_size < MAX_READ {
                        self.read_size *= 2;
                    }
                }
                Err(e) => {
                    self.stream = None;
                    return Poll::Ready(Some(Err(H1Error::Body(e.to_string()))));
                }
            }
        }
    }

    /// Decodes what `raw` holds: its payload, or `None` when it held only framing.
    fn decode(&mut self) -> Result<Option<Bytes>, H1Error> {
        let payload = match &mut self.framing {
            BodyFraming::Chunked(decoder) => {
                let mut out = BytesMut::with_capacity(self.raw.len());
                let used = decoder.decode(&self.raw, &mut out).map_err(|e| H1Error::Body(e.to_string()))?;
                if used < self.raw.len() {
                    // Bytes after the body: the connection is not in a state to reuse.
                    self.keep_alive = false;
                }
                self.raw.clear();
                self.done = decoder.is_done();
                out.freeze()
            }
            BodyFraming::Length(left) => {
                let take = self.raw.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                if take < self.raw.len() {
                    self.keep_alive = false;
                }
                let payload = self.raw.split_to(take).freeze();
                self.raw.clear();
                *left -= take as u64;
                self.done = *left == 0;
                payload
            }
            BodyFraming::Close => self.raw.split().freeze(),
        };
        if self.done {
            self.release();
        }
        Ok((!payload.is_empty()).then_some(payload))
    }

    /// Parks the connection once the body is complete (and the server keeps it open).
    fn release(&mut self) {
        if let Some(stream) = self.stream.take()
            && self.done
            && self.keep_alive
        {
            self.pool.put(&self.authority, stream);
        }
    }

    /// Reads the rest of the body (at most `limit` bytes are kept).
    pub async fn collect(&mut self, limit: usize) -> Result<Bytes, H1Error> {
        let mut all = BytesMut::new();
        while let Some(read) = std::future::poll_fn(|cx| self.poll_read(cx)).await {
            let read = read?;
            if all.len() + read.len() > limit {
                return Err(H1Error::Body(format!("the answer is longer than {limit} bytes")));
            }
            all.extend_from_slice(&read);
        }
        Ok(all.freeze())
    }
}

impl Drop for Body {
    /// A body dropped right after its last line (an SSE stream's `data: [DONE]`) usually still
    /// has the chunked terminator on its way or in the socket: what is already there is read
    /// without waiting, so the connection can be reused; otherwise it is closed.
    fn drop(&mut self) {
        if self.done || self.stream.is_none() || !self.keep_alive {
            return;
        }
        let mut scratch = BytesMut::with_capacity(256);
        for _ in 0..4 {
            if !self.raw.is_empty() {
                if self.decode().is_err() {
                    return;
                }
                if self.done {
                    return;
                }
                continue;
            }
            let Some(stream) = self.stream.as_ref() else { return };
            scratch.clear();
            match stream.try_read_buf(&mut scratch) {
                Ok(n) if n > 0 => self.raw.extend_from_slice(&scratch),
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests;
