//! `https://` serving: a listener that completes TLS handshakes (rustls, ring provider)
//! before axum sees a connection.
//!
//! Handshakes run in their own tasks with a time limit ([`HANDSHAKE_TIMEOUT`]), so a client that
//! connects and says nothing (or speaks plain HTTP) delays no one else; only finished handshakes
//! are handed on. Handshakes in progress are bounded too: at the bound the oldest one is dropped
//! to make room ([`crate::slots`]), so a flood of silent TLS connections costs bounded
//! memory and a real client's handshake still completes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// `tls:` in a server's config (agent.yaml): serve `https://` (and `wss://`) with this certificate.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl TlsFiles {
    /// Makes relative paths relative to `dir` (the folder of agent.yaml).
    pub fn resolve_relative_to(&mut self, dir: &std::path::Path) {
        for p in [&mut self.cert_file, &mut self.key_file] {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }
}

/// How long a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound of handshakes in progress (the agent passes its `max_connections`).
pub const DEFAULT_MAX_HANDSHAKES: usize = crate::DEFAULT_MAX_CONNECTIONS;

/// Accepted TLS connections, ready for HTTP.
#[derive(Debug)]
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `tcp`, handshaking with `config` ([`DEFAULT_MAX_HANDSHAKES`] at once).
    pub fn new(tcp: TcpListener, config: rustls::ServerConfig) -> std::io::Result<Self> {
        Self::bounded(tcp, config, DEFAULT_MAX_HANDSHAKES)
    }

    /// Like [`TlsListener::new`] with at most `max_handshakes` in progress (the oldest is dropped
    /// for a newcomer beyond).
    pub fn bounded(tcp: TcpListener, config: rustls::ServerConfig, max_handshakes: usize) -> std::io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let handshakes = crate::slots::Slots::new(max_handshakes);
        let tls = TlsAcceptor::from(Arc::new(config));
        let (tx, ready) = mpsc::channel(64);
        let acceptor = tokio::spawn(async move {
            loop {
                let (stream, addr) = match tcp.accept().await {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Small writes (events, WebSocket frames) go out at once (see bench_server).
                let _ = stream.set_nodelay(true);
                // Every handshake slot is idle (waiting on its client), so admission never refuses.
                let crate::slots::Admission::Admitted(slot) = handshakes.admit() else { continue };
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream));
                    let done = tokio::select! {
                        done = handshake => done,
                        () = slot.evicted() => {
                            tracing::debug!(%addr, "TLS handshake dropped for a newer one (handshake bound reached)");
                            return;
                        }
                    };
                    drop(slot);
                    match done {
                        Ok(Ok(conn)) => {
                            let _ = tx.send((conn, addr)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { local_addr, ready, acceptor })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task holds a sender for as long as the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
