//! A slow-headers flood for tests of both servers: many connections that never finish their
//! request headers, and a fresh complete request timed against them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connections that sent half a request (or nothing) and wait.
pub struct Flood {
    pub conns: Vec<TcpStream>,
    /// Wall time to open them all.
    pub opened_in: Duration,
}

/// Opens `n` connections to `addr`; even ones send a partial request, odd ones nothing at all.
pub async fn half_open(addr: SocketAddr, n: usize) -> Flood {
    let started = Instant::now();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(addr).await.expect("flood connect");
        if i % 2 == 0 {
            // A write to a connection the server already closed may fail: that is the point.
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n").await;
        }
        conns.push(s);
    }
    Flood { conns, opened_in: started.elapsed() }
}

impl Flood {
    /// How many of the connections the server has closed (EOF or reset), waiting at most `within`
    /// for at least `expect` of them (a guard: the count is what it is when the wait ends).
    pub async fn closed(&mut self, expect: usize, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        let mut closed = vec![false; self.conns.len()];
        loop {
            for (i, s) in self.conns.iter().enumerate() {
                closed[i] = closed[i] || is_closed(s);
            }
            let n = closed.iter().filter(|c| **c).count();
            if n >= expect || Instant::now() >= deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// True when the server closed `s` (EOF or an error); what it sent first (a 408 or 503) is read
/// past. Never waits.
fn is_closed(s: &TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match s.try_read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// `GET path` on a fresh connection with `Connection: close`: the status and the time from
/// connecting to the end of the answer.
pub async fn timed_get(addr: SocketAddr, path: &str) -> (u16, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out);
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, elapsed)
}

/// This process's resident memory, KiB (Linux; `None` elsewhere).
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}
