//! The client against raw TCP servers that answer exactly as scripted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::*;

/// Reads one request (head and `content-length` body) from `sock`; `None` at end of stream.
async fn read_request(sock: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
            let len: usize =
                head.lines().find_map(|l| l.strip_prefix("content-length: ")).map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + len {
                return Some(String::from_utf8_lossy(&got[..end + 4 + len]).into_owned());
            }
        }
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A server: each connection answers its requests with the writes `answer(n)` gives for the
/// n-th request overall (each write flushed apart); it records every request and counts the
/// connections it accepted.
struct Server {
    url: String,
    accepted: Arc<AtomicUsize>,
    requests: mpsc::UnboundedReceiver<String>,
}

async fn server(answer: impl Fn(usize) -> Vec<Vec<u8>> + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/chat/completions?x=1", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let (tx, requests) = mpsc::unbounded_channel();
    let (count, answer) = (accepted.clone(), Arc::new(answer));
    let served = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let (tx, answer, served) = (tx.clone(), answer.clone(), served.clone());
            tokio::spawn(async move {
                while let Some(request) = read_request(&mut sock).await {
                    let _ = tx.send(request);
                    for write in answer(served.fetch_add(1, Ordering::SeqCst)) {
                        if write.is_empty() {
                            return; // close the connection
                        }
                        if sock.write_all(&write).await.is_err() {
                            return;
                        }
                        sock.flush().await.unwrap();
                        tokio::task::yield_now().await;
                    }
                }
            });
        }
    });
    Server { url, accepted, requests }
}

fn client() -> H1Client {
    H1Client::new(Duration::from_secs(5))
}

async fn post(c: &H1Client, url: &str, body: &str) -> Result<(Response, Instant), H1Error> {
    let target = Target::of(url).unwrap();
    c.send(&Post { target: &target, body: body.as_bytes(), bearer: Some("k3y"), send_at: None }).await
}

async fn reads(body: &mut Body) -> Result<Vec<Vec<u8>>, H1Error> {
    let mut out = Vec::new();
    while let Some(read) = std::future::poll_fn(|cx| body.poll_read(cx)).await {
        out.push(read?.to_vec());
    }
    Ok(out)
}

const SSE: [&[u8]; 4] = [
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
    b"e\r\ndata: {\"a\":1}\n\r\n",
    b"e\r\ndata: {\"b\":2}\n\r\n",
    b"0\r\n\r\n",
];

fn sse(_: usize) -> Vec<Vec<u8>> {
    SSE.iter().map(|w| w.to_vec()).collect()
}

#[tokio::test]
async fn the_request_is_sent_whole_and_a_chunked_answer_is_decoded() {
    let mut s = server(sse).await;
    let c = client();
    let (mut response, _) = post(&c, &s.url, "{\"q\":1}").await.unwrap();
    assert_eq!(response.status, 200);
    let text: Vec<u8> = reads(&mut response.body).await.unwrap().concat();
    assert_eq!(text, b"data: {\"a\":1}\ndata: {\"b\":2}\n");
    let request = s.requests.recv().await.unwrap();
    let host = s.url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    assert_eq!(
        request,
        format!(
            "POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
             accept: */*\r\ncontent-length: 7\r\nauthorization: Bearer k3y\r\n\r\n{{\"q\":1}}"
        )
    );
}

#[tokio::test]
async fn a_completed_body_returns_its_connection_for_the_next_request() {
    let s = server(sse).await;
    let c = client();
    for _ in 0..3 {
        let (mut response, _) = post(&c, &s.url, "{}").await.unwrap();
        reads(&mut response.body).await.unwrap();
    }
    assert_eq!(s.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_dropped_after_its_last_line_is_reused_once_its_terminator_is_there() {
    // The whole answer in one write: when the reader stops at its last line, the terminator
    // is already in the socket.
    let s = server(|_| vec![SSE.concat()]).await;
    let c = client();
    for _ in 0..2 {
        let (mut response, _) = post(&c, &s.url, "{}").await.unwrap();
        let first = std::future::poll_fn(|cx| response.body.poll_read(cx)).await.unwrap().unwrap();
        assert!(first.starts_with(b"data: {\"a\":1}"));
        // The decoder took the whole read: the body is complete.
        drop(response);
    }
    assert_eq!(s.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn length_and_close_delimited_bodies_are_read_whole() {
    let s = server(|n| match n {
        0 => vec![b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello".to_vec(), b" world".to_vec()],
        _ => vec![b"HTTP/1.0 200 OK\r\n\r\nuntil ".to_vec(), b"the end".to_vec(), vec![]],
    })
    .await;
    let c = client();
    let (mut r, _) = post(&c, &s.url, "{}").await.unwrap();
    assert_eq!(r.body.collect(100).await.unwrap(), &b"hello world"[..]);
    let (mut r, _) = post(&c, &s.url, "{}").await.unwrap();
    assert_eq!(r.body.collect(100).await.unwrap(), &b"until the end"[..]);
    assert!(matches!(r.body.collect(100).await, Ok(b) if b.is_empty()), "a finished body stays finished");
}

#[tokio::test]
async fn an_error_status_keeps_its_body_and_a_long_one_is_refused() {
    let s = server(|_| {
        vec![b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n{\"error\":\"no model\"}"
            .to_vec()]
    })
    .await;
    let c = client();
    let (mut r, _) = post(&c, &s.url, "{}").await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.body.collect(MAX_ERROR_BODY).await.unwrap(), &b"{\"error\":\"no model\"}"[..]);
    let (mut r, _) = post(&c, &s.url, "{}").await.unwrap();
    assert!(r.body.collect(5).await.unwrap_err().to_string().contains("longer than 5 bytes"));
}

#[tokio::test]
async fn an_informational_head_is_skipped() {
    let s =
        server(|_| vec![b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()]).await;
    let (mut r, _) = post(&client(), &s.url, "{}").await.unwrap();
    assert_eq!((r.status, r.body.collect(10).await.unwrap()), (200, Bytes::from_static(b"ok")));
}

#[tokio::test]
async fn a_body_cut_off_is_an_error_not_an_end() {
    let s = server(|_| vec![SSE[0].to_vec(), SSE[1].to_vec(), vec![]]).await;
    let (mut r, _) = post(&client(), &s.url, "{}").await.unwrap();
    let err = reads(&mut r.body).await.unwrap_err();
    assert!(err.to_string().contains("closed before the end of the answer"), "{err}");
    let s = server(|_| vec![b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n".to_vec()]).await;
    let (mut r, _) = post(&client(), &s.url, "{}").await.unwrap();
    assert!(reads(&mut r.body).await.unwrap_err().to_string().contains("malformed chunked body"));
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_server_is_retried_once_on_a_fresh_one() {
    // Each connection answers once and then closes after the next request (a server that drops
    // keep-alive connections without saying so).
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/x", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if read_request(&mut sock).await.is_some() {
                    sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
                }
                // Reads the next request and closes without an answer.
                let _ = read_request(&mut sock).await;
            });
        }
    });
    let c = client();
    for _ in 0..3 {
        let (mut r, _) = post(&c, &url, "{}").await.unwrap();
        assert_eq!(r.body.collect(10).await.unwrap(), &b"ok"[..]);
    }
    // 1 + 2 × (the pooled one fails, a fresh one answers): the failed reuse costs one retry each.
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_fresh_connection_that_closes_unanswered_is_an_error_not_a_loop() {
    let s = server(|_| vec![vec![]]).await;
    let err = post(&client(), &s.url, "{}").await.err().unwrap();
    assert!(matches!(err, H1Error::NoAnswer(_)), "{err:?}");
    assert_eq!(s.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/x", listener.local_addr().unwrap());
    drop(listener);
    assert!(matches!(post(&client(), &url, "{}").await, Err(H1Error::Connect(_))));
}

#[test]
fn only_plain_http_urls_are_targets() {
    let t = Target::of("http://127.0.0.1:8080/v1/chat/completions").unwrap();
    assert_eq!(
        (t.authority.as_str(), t.host_header.as_str(), t.path.as_str()),
        ("127.0.0.1:8080", "127.0.0.1:8080", "/v1/chat/completions")
    );
    let t = Target::of("http://[::1]/api/chat").unwrap();
    assert_eq!((t.authority.as_str(), t.host_header.as_str()), ("[::1]:80", "[::1]"));
    assert_eq!(Target::of("https://example.com/v1/chat/completions"), None);
    assert_eq!(Target::of("http://user:pw@example.com/"), None);
}

#[tokio::test]
async fn a_large_fast_body_is_read_in_growing_reads() {
    // 2,000 chunks written at once: far fewer reads than chunks come out.
    let mut answer = SSE[0].to_vec();
    for _ in 0..2000 {
        answer.extend_from_slice(SSE[1]);
    }
    answer.extend_from_slice(SSE[3]);
    let s = server(move |_| vec![answer.clone()]).await;
    let (mut r, _) = post(&client(), &s.url, "{}").await.unwrap();
    let reads = reads(&mut r.body).await.unwrap();
    assert_eq!(reads.concat().len(), 2000 * 14);
    assert!(reads.len() < 100, "{} reads for 2,000 chunks", reads.len());
}
