//! The HTTP plumbing both real engine clients share: one client configuration, error mapping,
//! and a response reader that stamps every read at the socket.

use bench_shared::error_chain;
use std::borrow::Cow;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;

use super::h1::{self, H1Client, H1Error};
use super::lines::LineBuf;
use super::{EngineError, TimeoutBound, Timeouts};

/// Limit for the small metadata calls (`/api/tags`, `/v1/models`, `/api/version`, …): these
/// answer in milliseconds on a healthy engine, so a long wait means it is stuck.
pub const META_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits of one request: its total and the engine's per-phase bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub total: Duration,
    /// What the total is, for the message when it runs out.
    pub total_bound: TimeoutBound,
    pub timeouts: Timeouts,
}

impl Bounds {
    /// A generation request limited to `total` (`engine.request_timeout_s`).
    pub fn request(total: Duration, timeouts: Timeouts) -> Self {
        Bounds { total, total_bound: TimeoutBound::Request, timeouts }
    }

    /// A metadata call ([`META_TIMEOUT`]).
    pub fn meta(timeouts: Timeouts) -> Self {
        Bounds { total: META_TIMEOUT, total_bound: TimeoutBound::Metadata, timeouts }
    }

    /// The wait for the first bytes of an answer: the first-token bound or the total, whichever is shorter.
    fn first_bytes(&self) -> (Duration, TimeoutBound) {
        if self.timeouts.first_token < self.total {
            (self.timeouts.first_token, TimeoutBound::FirstToken)
        } else {
            (self.total, self.total_bound)
        }
    }
}

/// The client every engine uses.
///
/// - `no_proxy()`: engines live on the machine or the LAN; an `HTTP_PROXY` set for the rest of
///   the system would add a hop to every measured request (and usually cannot reach 127.0.0.1).
/// - `tcp_nodelay(true)`: requests are small; Nagle's algorithm would delay them and skew TTFT.
/// - `connect`: a dead host must not hold a job for the whole request timeout
///   (`engine.connect_timeout_s`).
/// - No overall timeout here: each request sets its own (generation vs metadata).
pub fn client(connect: Duration) -> reqwest::Client {
    bench_shared::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .connect_timeout(connect)
        .build()
        // Fails only when the TLS backend cannot initialise: a broken build, not a runtime state.
        .expect("the HTTP client (rustls, ring provider) initialises")
}

/// Joins a base URL (with or without a trailing slash) and an absolute path.
pub fn join(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

/// Maps a transport failure to an engine error.
pub fn transport_error(url: &str, bounds: Bounds, err: reqwest::Error) -> EngineError {
    // Connect first: a connect timeout is the connect bound, not the request's own limit.
    if err.is_connect() && err.is_timeout() {
        EngineError::timeout(TimeoutBound::Connect, bounds.timeouts.connect)
    } else if err.is_connect() || (err.is_request() && !err.is_body() && !err.is_timeout()) {
        EngineError::Unreachable { url: url.to_owned(), reason: error_chain(&err) }
    } else if err.is_timeout() {
        EngineError::timeout(bounds.total_bound, bounds.total)
    } else {
        EngineError::Protocol(format!("reading the response from {url}: {}", error_chain(&err)))
    }
}

/// Sends a request; returns the response and the instant taken immediately before sending.
///
/// A pooled keep-alive connection may be closed by the server at the very moment it is reused
/// (llama.cpp's HTTP server drops idle connections after a few seconds): the request then fails
/// with "connection closed before message completed" without the engine having answered. That
/// one failure is retried once on a fresh connection, and the timing is taken for the attempt
/// that is answered, so no measurement includes the dead connection.
///
/// The answer's headers must arrive within the first-token bound (a hung engine that accepts
/// and never answers ends there, not at the request's total).
pub async fn send(builder: RequestBuilder, url: &str, bounds: Bounds) -> Result<(Response, Instant), EngineError> {
    send_at(builder, url, bounds, None).await
}

/// [`send`], built at once and sent no earlier than `at` ([`super::wait_until`]).
async fn send_at(
    builder: RequestBuilder,
    url: &str,
    bounds: Bounds,
    at: Option<Instant>,
) -> Result<(Response, Instant), EngineError> {
    let request = builder.timeout(bounds.total);
    let spare = request.try_clone();
    super::wait_until(at).await;
    let t0 = Instant::now();
    match first_bytes(bounds, request.send()).await? {
        Ok(response) => Ok((response, t0)),
        Err(err) if is_stale_connection(&err) && spare.is_some() => {
            tracing::debug!(url, error = %error_chain(&err), "pooled connection was closed; retrying on a fresh one");
            let retry = spare.expect("checked above");
            let t0 = Instant::now();
            let response = first_bytes(bounds, retry.send()).await?.map_err(|e| transport_error(url, bounds, e))?;
            Ok((response, t0))
        }
        Err(err) => Err(transport_error(url, bounds, err)),
    }
}

async fn first_bytes<T>(bounds: Bounds, fut: impl Future<Output = T>) -> Result<T, EngineError> {
    let (limit, bound) = bounds.first_bytes();
    tokio::time::timeout(limit, fut).await.map_err(|_| EngineError::timeout(bound, limit))
}

/// True when a request failed because its (reused) connection closed before any response.
fn is_stale_connection(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            return h.is_incomplete_message();
        }
        source = s.source();
    }
    false
}

/// The message of an error body: `{"error": "..."}` (Ollama), `{"error": {"message": ...}}`
/// (OpenAI), or the raw text.
pub fn error_message(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => match v.get("error") {
            Some(Value::String(s)) => s.clone(),
            Some(e) => e.get("message").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| e.to_string()),
            None => body.trim().to_owned(),
        },
        Err(_) => body.trim().to_owned(),
    }
}

/// Turns a non-success answer into `EngineError::Http` with the engine's own message.
pub async fn http_error(answer: impl Into<Answer>, url: &str, bounds: Bounds) -> EngineError {
    let answer = answer.into();
    let status = answer.status();
    match answer.text(url, bounds).await {
        Ok(body) => EngineError::Http { status, message: error_message(&body) },
        Err(e) => e,
    }
}

/// An engine's answer to a generation request: from reqwest (`https://` engines) or from the
/// agent's own HTTP/1.1 client ([`h1`], `http://` engines).
pub enum Answer {
    Reqwest(Response),
    H1 {
        response: h1::Response,
        /// When the request's total bound runs out.
        deadline: Instant,
    },
}

impl From<Response> for Answer {
    fn from(response: Response) -> Self {
        Answer::Reqwest(response)
    }
}

impl Answer {
    pub fn status(&self) -> u16 {
        match self {
            Answer::Reqwest(r) => r.status().as_u16(),
            Answer::H1 { response, .. } => response.status,
        }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status())
    }

    /// The whole body, within the request's total bound.
    pub async fn bytes(self, url: &str, bounds: Bounds) -> Result<Bytes, EngineError> {
        self.collect(url, bounds, usize::MAX).await
    }

    /// The body as text (an error answer's message: at most [`h1::MAX_ERROR_BODY`] bytes).
    pub async fn text(self, url: &str, bounds: Bounds) -> Result<String, EngineError> {
        let bytes = self.collect(url, bounds, h1::MAX_ERROR_BODY).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn collect(self, url: &str, bounds: Bounds, limit: usize) -> Result<Bytes, EngineError> {
        match self {
            Answer::Reqwest(r) => r.bytes().await.map_err(|e| transport_error(url, bounds, e)),
            Answer::H1 { mut response, deadline } => {
                let read = response.body.collect(limit);
                match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), read).await {
                    Ok(body) => body.map_err(|e| h1_error(url, bounds, e)),
                    Err(_) => Err(EngineError::timeout(bounds.total_bound, bounds.total)),
                }
            }
        }
    }
}

/// A JSON generation request, as the engine clients hand it to [`post_json`].
pub struct JsonPost<'a, B: serde::Serialize> {
    pub url: &'a str,
    pub body: &'a B,
    pub bearer: Option<&'a str>,
    pub bounds: Bounds,
    /// Build at once, send no earlier than this ([`super::GenRequest::send_at`]).
    pub send_at: Option<Instant>,
}

/// POSTs a JSON generation request: over the agent's own HTTP/1.1 client to an `http://`
/// engine, over reqwest otherwise. Returns the answer (its head read) and the instant taken
/// immediately before sending; the head must arrive within the first-token bound.
pub async fn post_json<B: serde::Serialize>(
    client: &reqwest::Client,
    h1: &H1Client,
    req: JsonPost<'_, B>,
) -> Result<(Answer, Instant), EngineError> {
    let JsonPost { url, body, bearer, bounds, send_at: at } = req;
    let Some(target) = h1::Target::of(url) else {
        let mut builder = client.post(url).json(body);
        if let Some(key) = bearer {
            builder = builder.bearer_auth(key);
        }
        let (response, t0) = send_at(builder, url, bounds, at).await?;
        return Ok((Answer::Reqwest(response), t0));
    };
    let body = serde_json::to_vec(body).map_err(|e| EngineError::Protocol(format!("encoding the request: {e}")))?;
    let post = h1::Post { target: &target, body: &body, bearer, send_at: at };
    let (response, t0) = first_bytes(bounds, h1.send(&post)).await?.map_err(|e| h1_error(url, bounds, e))?;
    let deadline = deadline_after(t0, bounds.total);
    Ok((Answer::H1 { response, deadline }, t0))
}

/// `from + limit`; a bound too long to add to an instant never ends anything (a year is as good).
fn deadline_after(from: Instant, limit: Duration) -> Instant {
    from.checked_add(limit).unwrap_or_else(|| from + Duration::from_secs(365 * 86_400))
}

/// Maps a failure of the agent's own client as [`transport_error`] maps reqwest's.
fn h1_error(url: &str, bounds: Bounds, err: H1Error) -> EngineError {
    match err {
        H1Error::ConnectTimeout(_) => EngineError::timeout(TimeoutBound::Connect, bounds.timeouts.connect),
        H1Error::Connect(e) => EngineError::Unreachable { url: url.to_owned(), reason: format!("connecting: {e}") },
        H1Error::NoAnswer(reason) => EngineError::Unreachable { url: url.to_owned(), reason },
        H1Error::Protocol(m) => EngineError::Protocol(format!("{url}: {m}")),
        H1Error::Body(m) => EngineError::Protocol(format!("reading the response from {url}: {m}")),
    }
}

/// GETs (or POSTs, when `body` is given) a small JSON document with the metadata timeout.
pub async fn fetch_json(
    client: &reqwest::Client,
    url: &str,
    body: Option<&Value>,
    bearer: Option<&str>,
    timeouts: Timeouts,
) -> Result<Value, EngineError> {
    let bounds = Bounds::meta(timeouts);
    let mut builder = match body {
        Some(b) => client.post(url).json(b),
        None => client.get(url),
    };
    if let Some(key) = bearer {
        builder = builder.bearer_auth(key);
    }
    let (response, _) = send(builder, url, bounds).await?;
    if !response.status().is_success() {
        return Err(http_error(response, url, bounds).await);
    }
    let bytes = response.bytes().await.map_err(|e| transport_error(url, bounds, e))?;
    serde_json::from_slice(&bytes).map_err(|e| EngineError::Protocol(format!("{url} answered invalid JSON: {e}")))
}

/// True for the status an engine gives when a path does not exist.
pub fn is_not_found(err: &EngineError) -> bool {
    matches!(err, EngineError::Http { status, .. } if *status == StatusCode::NOT_FOUND.as_u16())
}

/// Where a [`TimedLines`] reads from.
enum Source {
    Reqwest(futures_util::stream::BoxStream<'static, reqwest::Result<Bytes>>),
    H1(h1::Body),
}

/// Reads a response body as lines, each stamped with the instant of the read that completed it.
///
/// The instant is taken right after the bytes arrive and before anything is parsed, so parse time
/// never leaks into the figures. A line is lent out (a slice of the read that carried it), not
/// copied: the reader allocates nothing per line.
///
/// Each read is bounded: until the first bytes arrive by the first-token bound (counted from the
/// request's `sent_at`), after that by the idle bound (counted from the latest read), and always
/// by the request's total (counted from `sent_at`; reqwest enforces it too on its path).
pub struct TimedLines {
    body: Source,
    buf: LineBuf,
    url: String,
    bounds: Bounds,
    sent_at: Instant,
    finished: bool,
    /// Instant of the latest read: every line the splitter hands out was completed by it (an
    /// earlier read is consumed before the next is taken), and an unterminated last line
    /// arrived then, not at end-of-body.
    last_read: Option<Instant>,
    /// Lines handed out so far (named in a timeout: what arrived is kept).
    lines: usize,
    /// The one timer of the read bounds, armed at the first-bytes deadline. A read moves the
    /// real deadline (the idle bound counts from the latest read) later without touching the
    /// timer; when the timer fires before the real deadline it is moved there (and moved
    /// earlier only when the first read's idle bound ends before the first-bytes deadline). The body is pending
    /// between nearly every two chunks, so a timer per read would be registered in the
    /// runtime's wheel and removed again for every token.
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl TimedLines {
    pub fn new(answer: Answer, url: &str, bounds: Bounds, sent_at: Instant) -> Self {
        let body = match answer {
            Answer::Reqwest(response) => Source::Reqwest(response.bytes_stream().boxed()),
            Answer::H1 { response, .. } => Source::H1(response.body),
        };
        let mut lines = TimedLines {
            body,
            buf: LineBuf::default(),
            url: url.to_owned(),
            bounds,
            sent_at,
            finished: false,
            last_read: None,
            lines: 0,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        };
        let (deadline, _, _) = lines.read_deadline();
        lines.timer.as_mut().reset(deadline);
        lines
    }

    /// When the next read must have arrived, the bound's length, and which bound that is.
    fn read_deadline(&self) -> (tokio::time::Instant, Duration, TimeoutBound) {
        let (from, limit, bound) = match self.last_read {
            None => {
                let (limit, bound) = self.bounds.first_bytes();
                (self.sent_at, limit, bound)
            }
            Some(at) => (at, self.bounds.timeouts.idle, TimeoutBound::Idle),
        };
        let (deadline, limit, bound) = match deadline_after(self.sent_at, self.bounds.total) {
            total if total < deadline_after(from, limit) => (total, self.bounds.total, self.bounds.total_bound),
            _ => (deadline_after(from, limit), limit, bound),
        };
        (tokio::time::Instant::from_std(deadline), limit, bound)
    }

    /// The next read of the body (`None` at its end), or the bound that ran out first.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, EngineError>> {
        let read = match &mut self.body {
            Source::Reqwest(body) => {
                body.poll_next_unpin(cx).map(|r| r.transpose().map_err(|e| transport_error(&self.url, self.bounds, e)))
            }
            Source::H1(body) => {
                body.poll_read(cx).map(|r| r.transpose().map_err(|e| h1_error(&self.url, self.bounds, e)))
            }
        };
        if let Poll::Ready(read) = read {
            return Poll::Ready(read.map_err(|e| match e {
                EngineError::Timeout { bound, limit, .. } => EngineError::Timeout { bound, limit, lines: self.lines },
                other => other,
            }));
        }
        // The first read switches to the idle bound, which may end before the first-bytes
        // deadline the timer holds: only then is the timer moved earlier.
        let (deadline, _, _) = self.read_deadline();
        if deadline < self.timer.deadline() {
            self.timer.as_mut().reset(deadline);
        }
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let (deadline, limit, bound) = self.read_deadline();
            if deadline <= self.timer.deadline() {
                return Poll::Ready(Err(EngineError::Timeout { bound, limit, lines: self.lines }));
            }
            // Reads came since the timer was armed: the bound ends later.
            self.timer.as_mut().reset(deadline);
        }
    }

    /// The next non-empty line with its arrival instant; `None` at the end of the body (a final
    /// line without a newline is returned too). The line is lent until the next call.
    pub async fn next_line(&mut self) -> Result<Option<(Instant, Cow<'_, str>)>, EngineError> {
        let line = loop {
            if let Some(line) = self.buf.next_line() {
                break line;
            }
            if self.finished {
                match self.buf.finish() {
                    Some(line) => break line,
                    None => return Ok(None),
                }
            }
            match std::future::poll_fn(|cx| self.poll_read(cx)).await? {
                Some(bytes) => {
                    self.last_read = Some(Instant::now());
                    self.buf.push(bytes);
                }
                None => self.finished = true,
            }
        };
        self.lines += 1;
        let at = *self.last_read.get_or_insert_with(Instant::now);
        Ok(Some((at, self.buf.text(&line))))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A raw HTTP server whose first `drop_first` connections read the request and close
    /// without answering (a keep-alive connection closed under the client); later ones answer.
    async fn flaky_server(drop_first: usize) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/chat/completions", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => got.extend_from_slice(&buf[..k]),
                        }
                    }
                    if n >= drop_first {
                        let _ = sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                    }
                });
            }
        });
        (url, accepted)
    }

    fn bounds() -> Bounds {
        Bounds::request(Duration::from_secs(5), Timeouts::default())
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_answer_is_retried_once_on_a_fresh_one() {
        let (url, accepted) = flaky_server(1).await;
        let (response, _) = send(client(Duration::from_secs(5)).post(&url).body("{}"), &url, bounds()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_second_closed_connection_is_an_error_not_a_loop() {
        let (url, accepted) = flaky_server(usize::MAX).await;
        let err = send(client(Duration::from_secs(5)).post(&url).body("{}"), &url, bounds()).await.unwrap_err();
        assert!(matches!(err, EngineError::Unreachable { .. } | EngineError::Protocol(_)), "{err:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }
}
