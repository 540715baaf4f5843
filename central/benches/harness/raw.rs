//! The floor: a minimal client written by hand on a plain TCP socket (HTTP/1.1, no library),
//! timing each token chunk's first byte from the moment the request is written.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the scripted engine puts before every token's text, in both protocols.
pub const SCRIPTED_MARKER: &[u8] = b"\"content\":\" t";
/// What an OpenAI-compatible engine puts before a token's text (an empty one is not counted).
pub const OPENAI_MARKER: &[u8] = b"\"content\":\"";

/// The arrivals of one streamed response.
#[derive(Debug, Clone)]
pub struct RawTrace {
    /// Microseconds from the request's first byte written to each token's bytes read.
    pub token_us: Vec<u64>,
    /// The engine's token count (`usage.completion_tokens` / `eval_count`), when it sent one.
    pub engine_tokens: Option<u64>,
}

impl RawTrace {
    pub fn ttft_ms(&self) -> f64 {
        self.token_us.first().map_or(f64::NAN, |u| *u as f64 / 1000.0)
    }

    /// (tokens − 1) / (last − first), as the agent defines its client decode rate: tokens are the
    /// engine's count when it sent one, else the chunks that carried text.
    pub fn decode_tok_s(&self) -> f64 {
        let tokens = self.engine_tokens.unwrap_or(self.token_us.len() as u64);
        match (self.token_us.first(), self.token_us.last()) {
            (Some(f), Some(l)) if l > f && tokens > 1 => (tokens - 1) as f64 / ((l - f) as f64 / 1e6),
            _ => f64::NAN,
        }
    }
}

/// The protocol of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    OpenAi,
    Ollama,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::OpenAi => "openai",
            Protocol::Ollama => "ollama",
        }
    }
}

/// One streamed generation of `max_tokens` for `model` from the engine at `addr`.
pub async fn generate(
    addr: std::net::SocketAddr,
    protocol: Protocol,
    model: &str,
    max_tokens: u64,
) -> std::io::Result<RawTrace> {
    generate_marked(addr, protocol, model, max_tokens, SCRIPTED_MARKER).await
}

/// [`generate`], counting a token at every `marker` that is not followed by `"` (empty text).
pub async fn generate_marked(
    addr: std::net::SocketAddr,
    protocol: Protocol,
    model: &str,
    max_tokens: u64,
    marker: &[u8],
) -> std::io::Result<RawTrace> {
    let (path, body) = match protocol {
        Protocol::OpenAi => (
            "/v1/chat/completions",
            serde_json::json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
                               "max_tokens": max_tokens, "temperature": 0.0,
                               "messages": [{"role": "user", "content": "hi"}]}),
        ),
        Protocol::Ollama => (
            "/api/chat",
            serde_json::json!({"model": model, "stream": true, "options": {"num_predict": max_tokens, "temperature": 0.0},
                               "messages": [{"role": "user", "content": "hi"}]}),
        ),
    };
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut sock = TcpStream::connect(addr).await?;
    sock.set_nodelay(true)?;
    let t0 = Instant::now();
    sock.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; 64 * 1024];
    // The last marker.len() bytes of the previous read, so a marker split across reads counts,
    // and a marker ending a read is judged (empty or not) with the next read's first byte.
    let mut carry: Vec<u8> = Vec::new();
    let mut token_us = Vec::new();
    // The end of the response, where the engine's final counts are.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let at = t0.elapsed().as_micros() as u64;
        carry.extend_from_slice(&buf[..n]);
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 16 * 1024 {
            tail.drain(..tail.len() - 8 * 1024);
        }
        let m = marker.len();
        // Windows of m + 1 bytes: the marker and the byte after it.
        let found = carry.windows(m + 1).filter(|w| &w[..m] == marker && w[m] != b'"').count();
        token_us.extend(std::iter::repeat_n(at, found));
        let keep = m;
        if carry.len() > keep {
            carry.drain(..carry.len() - keep);
        }
    }
    let engine_tokens =
        count_after(&tail, b"\"completion_tokens\":").or_else(|| count_after(&tail, b"\"eval_count\":"));
    Ok(RawTrace { token_us, engine_tokens })
}

/// The integer after the last `key` in `bytes`.
fn count_after(bytes: &[u8], key: &[u8]) -> Option<u64> {
    let at = bytes.windows(key.len()).rposition(|w| w == key)? + key.len();
    let digits: String = bytes[at..].iter().take_while(|b| b.is_ascii_digit()).map(|b| *b as char).collect();
    digits.parse().ok()
}
