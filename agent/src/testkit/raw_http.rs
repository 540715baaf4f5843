//! A request sent as raw bytes over TCP, for cases an HTTP client cannot express: a body that is
//! declared but never sent.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `POST path` declaring a `len`-byte JSON body and sending none of it, so a refusal on the
/// declared length cannot race the upload (a client still sending a large body may see the
/// connection close before it reads the answer). `headers` are extra `Name: value` lines.
/// Returns the status and the parsed JSON body of the answer.
pub async fn post_declared_only(
    addr: SocketAddr,
    path: &str,
    headers: &[&str],
    len: usize,
) -> (u16, serde_json::Value) {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str(&format!("Content-Length: {len}\r\nConnection: close\r\n\r\n"));
    conn.write_all(head.as_bytes()).await.expect("write head");
    // Read the answer's head and its declared body; the server need not close the connection.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let text = loop {
        let n = conn.read(&mut buf).await.expect("read answer");
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let declared = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if answer.len() >= end + 4 + declared || n == 0 {
                break text;
            }
        }
        assert!(n > 0, "connection closed before an answer: {text:?}");
    };
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.trim()).unwrap_or("");
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("answer body is not JSON ({e}): {text:?}"));
    (status, json)
}
