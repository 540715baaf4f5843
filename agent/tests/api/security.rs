//! Reliability and security of the agent's server: transport-level bad input (each a 4xx JSON
//! error naming the problem), the WebSocket subscriber cap, `after_seq` past the end, a stalled
//! engine through the whole job, and a flood of half-open connections.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{TestAgent, WAIT_LIMIT, mock_config, of_type, ollama_config};

/// One raw HTTP/1.1 exchange: the status and the JSON body (read by its content-length, since
/// an answer to an upgrade request may leave the connection open).
pub async fn raw(addr: std::net::SocketAddr, request: String) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WAIT_LIMIT, async {
        loop {
            let text = String::from_utf8_lossy(&out).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse::<usize>().ok());
                if len.is_some_and(|n| body.len() >= n) {
                    return;
                }
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("an answer");
    let text = String::from_utf8_lossy(&out);
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut r = format!("{method} {path} HTTP/1.1\r\ncontent-length: {}\r\n", body.len());
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("connection")) {
        r.push_str("connection: close\r\n");
    }
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        r.push_str("host: 127.0.0.1\r\n");
    }
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r
}

const JOB: &str = r#"{"model":"mock-llm","prompt":"hi","max_tokens":4}"#;
const WS_UPGRADE: [(&str, &str); 4] = [
    ("upgrade", "websocket"),
    ("connection", "upgrade"),
    ("sec-websocket-version", "13"),
    ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
];

/// Table: every transport-level bad input is a 4xx whose JSON `error` names the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_bad_inputs_are_4xx_naming_the_problem() {
    let mut cfg = mock_config();
    cfg.auth_token = Some("s3cret".into());
    cfg.allowed_hosts = vec!["bench.lan".into()];
    let agent = TestAgent::spawn(cfg).await;
    let auth = ("authorization", "Bearer s3cret");
    let json_ct = ("content-type", "application/json");
    let ws = |extra: &[(&'static str, &'static str)]| {
        let mut h: Vec<(&str, &str)> = WS_UPGRADE.to_vec();
        h.push(("authorization", "Bearer s3cret"));
        h.extend_from_slice(extra);
        h
    };
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("no content type", request("POST", "/jobs", &[auth], JOB), 415, "Content-Type"),
        ("text/plain", request("POST", "/jobs", &[auth, ("content-type", "text/plain")], JOB), 415, "application/json"),
        (
            "form",
            request("POST", "/jobs", &[auth, ("content-type", "application/x-www-form-urlencoded")], JOB),
            415,
            "Content-Type",
        ),
        (
            "multipart",
            request("POST", "/jobs", &[auth, ("content-type", "multipart/form-data")], JOB),
            415,
            "Content-Type",
        ),
        ("no token", request("POST", "/jobs", &[json_ct], JOB), 401, "Bearer <token>"),
        ("wrong token", request("GET", "/jobs", &[("authorization", "Bearer nope")], ""), 401, "Bearer <token>"),
        ("basic scheme", request("GET", "/jobs", &[("authorization", "Basic czNjcmV0")], ""), 401, "Bearer <token>"),
        ("token in the wrong place", request("GET", "/jobs?token=s3cret", &[], ""), 401, "Bearer <token>"),
        ("foreign Host", request("GET", "/health", &[("host", "evil.example:9001")], ""), 403, "allowed_hosts"),
        ("foreign Host with token", request("GET", "/jobs", &[auth, ("host", "rebind.example")], ""), 403, "Host"),
        ("foreign Origin on /ws", request("GET", "/ws", &ws(&[("origin", "http://evil.example")]), ""), 403, "Origin"),
        ("null Origin on /ws", request("GET", "/ws", &ws(&[("origin", "null")]), ""), 403, "Origin"),
        ("other port Origin", request("GET", "/ws", &ws(&[("origin", "http://127.0.0.1:1")]), ""), 403, "Origin"),
        ("PUT /jobs", request("PUT", "/jobs", &[auth, json_ct], JOB), 405, "not allowed"),
        ("PATCH /jobs/x", request("PATCH", "/jobs/x", &[auth, json_ct], "{}"), 405, "not allowed"),
        ("DELETE /health", request("DELETE", "/health", &[], ""), 405, "not allowed"),
        ("POST /ws", request("POST", "/ws", &[auth, json_ct], "{}"), 405, "not allowed"),
        ("no such route", request("GET", "/admin", &[auth], ""), 404, "no route"),
        ("after_seq on /ws", request("GET", "/ws?after_seq=-1&job_id=x", &ws(&[]), ""), 400, "after_seq"),
        ("/ws without upgrade", request("GET", "/ws", &[auth], ""), 400, "upgrade"),
        ("unknown job on /ws", request("GET", "/ws?job_id=nope", &ws(&[]), ""), 404, "nope"),
        ("JSON array body", request("POST", "/jobs", &[auth, json_ct], "[1,2]"), 400, "body"),
        ("truncated JSON", request("POST", "/jobs", &[auth, json_ct], "{\"model\":"), 400, "malformed JSON"),
        (
            "prompt of the wrong type",
            request("POST", "/jobs", &[auth, json_ct], r#"{"model":"mock-llm","prompt":7}"#),
            400,
            "prompt",
        ),
    ];
    let n = cases.len();
    for (name, req, want_status, names) in cases {
        let (status, body) = raw(agent.addr, req).await;
        assert_eq!(status, want_status, "{name}: {body}");
        let error = body["error"].as_str().unwrap_or_else(|| panic!("{name}: no JSON error: {body}"));
        assert!(error.contains(names), "{name}: {error:?} does not name {names:?}");
    }
    assert!(n >= 24, "{n} cases");
    // Nothing refused was queued, and a good request still works.
    let (status, body) = raw(agent.addr, request("GET", "/jobs", &[("authorization", "BEARER s3cret")], "")).await;
    assert_eq!((status, body), (200, json!([])), "bearer scheme in any case");
    let (status, body) =
        raw(agent.addr, request("POST", "/jobs", &[auth, ("content-type", "application/json; charset=utf-8")], JOB))
            .await;
    assert_eq!(status, 202, "{body}");
    agent.shutdown().await;
}

/// Beyond `ws_max_subscribers`, `/ws` answers 503 naming the cap; a freed place is reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_subscriber_cap_answers_503() {
    let mut cfg = mock_config();
    cfg.ws_max_subscribers = 3;
    let agent = TestAgent::spawn(cfg).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(agent.ws_connect("").await);
    }
    let url = format!("ws://{}/ws", agent.addr);
    let err = tokio_tungstenite::connect_async(url.as_str()).await.expect_err("a fourth subscriber is refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status(), 503);
            let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("cap of 3"), "{body}");
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    assert_eq!(agent.state.ws_cap.active(), 3);
    // Close one; its place frees once the agent has noticed.
    let mut first = held.remove(0);
    first.close(None).await.unwrap();
    while first.next().await.is_some() {}
    let deadline = Instant::now() + WAIT_LIMIT;
    while agent.state.ws_cap.active() > 2 {
        assert!(Instant::now() < deadline, "the closed subscriber's place was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    held.push(agent.ws_connect("").await);
    agent.shutdown().await;
}

/// `/ws?job_id=…&after_seq=<last>` of a finished job closes normally at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_after_the_last_event_of_a_finished_job_closes() {
    let agent = TestAgent::spawn(mock_config()).await;
    let id = agent.post_job_ok(json!({"model": "mock-llm", "prompt": "hi", "max_tokens": 4})).await;
    let events = agent.wait_for_terminal(&id).await;
    let last = events.last().unwrap()["seq"].as_u64().unwrap();
    let mut ws = agent.ws_connect(&format!("job_id={id}&after_seq={last}")).await;
    let msg = tokio::time::timeout(WAIT_LIMIT, ws.next()).await.expect("closed in time");
    match msg {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1000);
            assert!(frame.reason.contains("finished"), "{}", frame.reason);
        }
        other => panic!("expected a normal close, got {other:?}"),
    }
    agent.shutdown().await;
}

/// A stream that stalls mid-answer ends the job with `job_error {kind: timeout}` naming
/// `engine.idle_timeout_s`; the tokens that arrived stay in the job's events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_engine_ends_the_job_at_the_idle_bound_keeping_tokens() {
    use bench_agent::testkit::fake_ollama::{FakeOllama, FakeScript};
    let fake =
        FakeOllama::spawn(FakeScript { ttft_ms: 5.0, tokens_per_s: 500.0, stall_after: Some(4), ..Default::default() })
            .await;
    let mut cfg = ollama_config(&fake.base_url);
    cfg.engine.idle_timeout_s = 0.5;
    cfg.stream_flush_chars = 1;
    let agent = TestAgent::spawn(cfg).await;
    let started = Instant::now();
    let id = agent.post_job_ok(json!({"model": "llama3.2:1b", "prompt": "hi", "max_tokens": 20})).await;
    let events = agent.wait_for_terminal(&id).await;
    let detect_s = started.elapsed().as_secs_f64();
    let last = events.last().unwrap();
    assert_eq!(last["type"], "job_error", "{last}");
    assert_eq!(last["payload"]["kind"], "timeout", "{last}");
    let msg = last["payload"]["message"].as_str().unwrap();
    assert!(msg.contains("engine.idle_timeout_s = 0.5 s") && msg.contains("after 4 lines"), "{msg}");
    let text: String =
        of_type(&events, "llm_token").iter().map(|e| e["payload"]["text"].as_str().unwrap_or("")).collect();
    assert!(!text.is_empty(), "the text that arrived before the stall is kept");
    eprintln!("FIGURE stalled stream: job_error after {detect_s:.2} s (idle bound 0.5 s)");
    agent.shutdown().await;
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// 3,000 connections that never finish their headers: the cap refuses what is beyond it, the
/// header read timeout closes the rest, and the agent still answers afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_half_open_connections_are_bounded_and_closed() {
    let mut cfg = mock_config();
    cfg.max_connections = 256;
    cfg.header_read_timeout_s = 1.0;
    let agent = TestAgent::spawn(cfg).await;
    let before = rss_kib();
    let started = Instant::now();
    let mut conns = Vec::with_capacity(3000);
    for i in 0..3000 {
        let mut s = TcpStream::connect(agent.addr).await.unwrap();
        // Half the flood sends a partial request, half sends nothing at all.
        if i % 2 == 0 {
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n").await;
        }
        conns.push(s);
    }
    let peak = rss_kib();
    // Every one of them is closed by the agent (503 beyond the cap, timeout within it).
    let mut buf = [0u8; 512];
    for (i, s) in conns.iter_mut().enumerate() {
        let closed = tokio::time::timeout(WAIT_LIMIT, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "connection {i} was never closed");
    }
    let all_closed_s = started.elapsed().as_secs_f64();
    drop(conns);
    let health = agent.get_json("/health").await;
    assert_eq!(health["ok"], true);
    eprintln!(
        "FIGURE 3000 half-open connections: all closed after {all_closed_s:.1} s; test-process RSS KiB before {before:?}, at peak {peak:?}"
    );
    agent.shutdown().await;
}

/// Request logs never show `?token=`.
#[test]
fn token_in_query_is_redacted_for_logs() {
    assert_eq!(bench_server::guard::redact_query("/ws?token=abc&job_id=j"), "/ws?token=REDACTED&job_id=j");
    let req = "ws://127.0.0.1:1/ws?token=abc".into_client_request().unwrap();
    assert!(!bench_server::guard::redact_query(&req.uri().to_string()).contains("abc"));
}
