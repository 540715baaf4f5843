//! bench-server: serves an axum [`Router`] with the limits both bench-race servers need.
//!
//! `axum::serve` has no header read timeout and no connection cap: thousands of connections that
//! never finish their request headers stay open forever and grow the process (120 MB at 5,000 on
//! the agent). This loop is `axum::serve` with both bounds, built so that the cap cannot be
//! turned against real users:
//!
//! - a **connection cap** ([`Limits::max_connections`]): at the cap, the connection that has
//!   waited longest for request headers (a fresh one that sent nothing, half-sent headers, an
//!   idle keep-alive one) is closed to make room, so a request that arrives complete is always
//!   read and served (see [`slots`]). Only when every connection is busy answering a request is a
//!   newcomer answered `503` (a static response written without reading the request) and closed;
//! - a **header read timeout**: hyper closes a connection whose request headers (first request or
//!   a later keep-alive one) do not arrive within [`Limits::header_read_timeout`].
//!
//! Every request carries the peer's address as [`axum::extract::ConnectInfo`] (per-client login
//! limits). A connection upgraded to a WebSocket leaves the HTTP cap once the upgrade is done;
//! WebSockets are bounded by each server's own subscriber cap. Shutdown mirrors
//! `with_graceful_shutdown`: stop accepting, ask every connection to finish its current request,
//! wait for them.
//!
//! # Layout
//! - [`serve`]: the accept loop with its [`Limits`].
//! - [`slots`]: the cap whose idle holders make room, oldest first (also bounds TLS handshakes).
//! - [`guard`]: Host / Origin / Content-Type checks, JSON 405s, token-free request logs, bearer parsing.
//! - [`auth`]: tokens (generated on first start beyond loopback), login limits, stored sessions.
//! - [`ws`]: the WebSocket subscriber cap and bounded socket buffers.
//! - [`newline`]: the response layer that ends every JSON body with a newline.
//! - [`tls`]: `https://` serving: a listener that completes TLS handshakes before axum sees a
//!   connection (certificate files from config).
//! - [`signal`]: the Ctrl-C / SIGTERM future both binaries shut down on.

pub mod auth;
mod body;
pub mod guard;
pub mod logging;
pub mod newline;
pub mod signal;
pub mod slots;
pub mod tls;
pub mod ws;

pub use signal::shutdown_signal;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc, watch};
use tower::Service;

use slots::{Admission, Slot, Slots};

/// Bounds of one server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Most HTTP connections open at once (WebSockets excluded once upgraded).
    pub max_connections: usize,
    /// Longest wait for a request's headers, from the moment the connection waits for them.
    pub header_read_timeout: Duration,
}

/// Default of [`Limits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default of [`Limits::header_read_timeout`], seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT_S: f64 = 10.0;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Duration::from_secs_f64(DEFAULT_HEADER_READ_TIMEOUT_S),
        }
    }
}

/// Serves `app` on `listener` (a `TcpListener`, or any axum [`Listener`] such as the agent's TLS
/// one) until `shutdown` resolves, then drains open connections.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    L: Listener<Addr = std::net::SocketAddr>,
{
    let slots = Slots::new(limits.max_connections);
    let refusal: Arc<str> = refusal_response(limits.max_connections).into();
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    // `stop` tells connections to finish; `alive` is held by every connection task, so its
    // receiver ends once the last one is gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<Infallible>(1);
    let mut shutdown = pin!(shutdown);
    loop {
        // `Listener::accept` retries failed accepts itself (with a pause on errors like EMFILE).
        let (stream, addr) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        no_delay(&stream);
        let slot = match slots.admit() {
            Admission::Admitted(slot) => slot,
            Admission::Refused => {
                tracing::debug!(limit = limits.max_connections, "connection refused: every connection is busy");
                refuse(stream, &refusal, &refusing);
                continue;
            }
        };
        let (app, mut stop_rx, alive) = (app.clone(), stop_rx.clone(), alive_tx.clone());
        tokio::spawn(async move {
            let _alive = alive;
            serve_connection(stream, Connection { app, addr, slot: Arc::new(slot) }, limits, &mut stop_rx).await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    // `recv` yields `None` once every connection task has dropped its sender.
    let _ = alive_rx.recv().await;
    Ok(())
}

/// Turns Nagle's algorithm off on a plain TCP connection (a TLS listener does it on its own
/// socket): events and WebSocket frames are small writes, and Nagle holding one back until the
/// peer's delayed ACK stalled the live relay by tens of milliseconds at each ping.
fn no_delay<S: std::any::Any>(stream: &S) {
    if let Some(tcp) = (stream as &dyn std::any::Any).downcast_ref::<tokio::net::TcpStream>()
        && let Err(e) = tcp.set_nodelay(true)
    {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}

/// The hyper service of one connection: the app, with the peer address on every request and the
/// connection's slot busy from the moment a request's headers arrived until its response body
/// was written (or dropped).
#[derive(Clone)]
struct Connection<A> {
    app: Router,
    addr: A,
    slot: Arc<Slot>,
}

impl<A: Clone + Send + Sync + 'static> hyper::service::Service<hyper::Request<Incoming>> for Connection<A> {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        let busy = self.slot.busy();
        req.extensions_mut().insert(ConnectInfo(self.addr.clone()));
        // A Router is always ready; `call` needs it by `&mut`.
        let answer = self.app.clone().call(req);
        Box::pin(async move {
            let resp = answer.await?;
            Ok(resp.map(|b| axum::body::Body::new(body::Holding::new(b, busy))))
        })
    }
}

async fn serve_connection<S, A>(stream: S, conn: Connection<A>, limits: Limits, stop: &mut watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A: Clone + Send + Sync + 'static,
{
    // HTTP/1.1 only: hyper-util's auto (h1 + h2c) builder first reads the protocol preface
    // with no timeout at all, so a silent connection would never be closed. Browsers speak h2
    // only over TLS, which these servers do not terminate.
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let slot = conn.slot.clone();
    let mut http = pin!(builder.serve_connection(TokioIo::new(stream), conn).with_upgrades());
    let stopping = async {
        // `wait_for` borrows the value; only whether it happened matters here.
        let _ = stop.wait_for(|s| *s).await.is_ok();
    };
    let finished = tokio::select! {
        result = http.as_mut() => Some(result),
        () = stopping => None,
        // Its slot went to a newcomer: dropping the connection closes it.
        () = slot.evicted() => return,
    };
    let result = match finished {
        Some(result) => result,
        None => {
            http.as_mut().graceful_shutdown();
            http.await
        }
    };
    if let Err(e) = result {
        tracing::trace!("connection ended: {e}");
    }
}

/// Refusals being delivered at once; beyond this a refused connection is closed without a word.
const MAX_REFUSING: usize = 64;
/// How long a refusal may take (answer, then read what the peer sent so the close is clean).
const REFUSE_GRACE: Duration = Duration::from_secs(1);

/// Answers 503 and closes. The request is drained briefly first: closing a socket with unread
/// data makes the kernel send a reset, and the peer would lose the answer.
fn refuse<S>(stream: S, refusal: &Arc<str>, refusing: &Arc<Semaphore>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Ok(slot) = refusing.clone().try_acquire_owned() else { return };
    let refusal = refusal.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let mut stream = stream;
        let _ = tokio::time::timeout(REFUSE_GRACE, async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream.write_all(refusal.as_bytes()).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        })
        .await;
    });
}

/// The answer to a connection beyond the cap while every connection is busy: JSON like every
/// other error, then close.
fn refusal_response(limit: usize) -> String {
    let body = format!(
        "{{\"error\":\"too many connections: the server's connection cap of {limit} is reached and every \
         connection is busy; retry later\"}}"
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    #[tokio::test]
    async fn accepted_tcp_connections_send_small_writes_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(!accepted.nodelay().unwrap(), "Nagle is on by default");
        no_delay(&accepted);
        assert!(accepted.nodelay().unwrap());
        no_delay(&client); // any TcpStream; other stream types are left alone
        no_delay(&std::io::Cursor::new(Vec::<u8>::new()));
    }

    async fn start(limits: Limits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        start_app(limits, Router::new().route("/", get(|| async { "ok" }))).await
    }

    async fn start_app(limits: Limits, app: Router) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, app, limits, async move {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    /// Reads until the server closes `s` (EOF or reset), within a guard.
    async fn closed(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 256];
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    async fn get_root(addr: std::net::SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn half_sent_headers_are_closed_after_the_timeout() {
        let limits = Limits { max_connections: 8, header_read_timeout: Duration::from_millis(300) };
        let (addr, _stop) = start(limits).await;
        for partial in [&b"GET / HTTP/1.1\r\nhost: x\r\n"[..], b""] {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(partial).await.unwrap();
            let mut buf = [0u8; 256];
            // The server closes (EOF, possibly after a 408) instead of waiting forever.
            let read = tokio::time::timeout(Duration::from_secs(30), async {
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            assert!(read.is_ok(), "a connection that sent {partial:?} was not closed");
        }
        assert!(get_root(addr).await.ends_with("ok"));
    }

    #[tokio::test]
    async fn at_the_cap_the_oldest_idle_connection_makes_room_for_a_complete_request() {
        let limits = Limits { max_connections: 3, header_read_timeout: Duration::from_secs(30) };
        let (addr, _stop) = start(limits).await;
        let mut idle = Vec::new();
        for _ in 0..3 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
            idle.push(s);
        }
        // A keep-alive connection that was answered is idle too, and younger than the three.
        let mut kept = TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 256];
        let n = kept.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        assert!(closed(&mut idle[0]).await, "the oldest half-open connection was closed for the keep-alive one");
        assert!(get_root(addr).await.ends_with("ok"), "a complete request is served at the cap");
        assert!(closed(&mut idle[1]).await, "then the next oldest");
        // The answered keep-alive connection still works.
        kept.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
        let mut out = String::new();
        kept.read_to_string(&mut out).await.unwrap();
        assert!(out.ends_with("ok"), "{out}");
    }

    #[tokio::test]
    async fn when_every_connection_is_busy_newcomers_get_503_naming_the_cap() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let g = gate.clone();
        let app = Router::new().route("/", get(|| async { "ok" })).route(
            "/slow",
            get(move || {
                let g = g.clone();
                async move {
                    let _ = g.acquire().await;
                    "slow"
                }
            }),
        );
        let limits = Limits { max_connections: 2, header_read_timeout: Duration::from_secs(30) };
        let (addr, _stop) = start_app(limits, app).await;
        let mut busy = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
            busy.push(s);
        }
        // Both requests are being answered once a newcomer is refused (poll: the server reads
        // the two requests asynchronously).
        let mut answer = String::new();
        for _ in 0..500 {
            answer = get_root(addr).await;
            if answer.starts_with("HTTP/1.1 503") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("connection cap of 2"), "{answer}");
        gate.add_permits(2);
        for s in &mut busy {
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            assert!(out.ends_with("slow"), "{out}");
        }
        assert!(get_root(addr).await.ends_with("ok"));
    }
}
