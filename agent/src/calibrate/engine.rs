//! The zero-latency engine the calibration measures against: a tiny OpenAI-compatible server on
//! `127.0.0.1:0` inside the agent process (its own thread and runtime, so the measuring path's
//! tasks never wait for it on a worker). Its first token leaves as soon as the request is read;
//! the rest follow as fast as the reader takes them (TCP flow control paces the writer), one
//! token per SSE event, then the `usage` chunk and `data: [DONE]`, as llama.cpp's server ends a
//! stream.

use std::convert::Infallible;
use std::sync::OnceLock;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The one model it serves.
pub const MODEL: &str = "client-ceiling";

/// Events per write after the first (the first token leaves alone, at once). Writing several
/// events at a time keeps the engine's own cost far below the reader's, so the figures measure
/// the reader.
const EVENTS_PER_WRITE: u64 = 16;

/// One token's SSE event (`" tok"`, about one token of English text).
fn token_event() -> &'static Bytes {
    static EVENT: OnceLock<Bytes> = OnceLock::new();
    EVENT.get_or_init(|| {
        let chunk = json!({"id": "calibration", "object": "chat.completion.chunk", "model": MODEL,
            "choices": [{"index": 0, "delta": {"content": " tok"}, "finish_reason": null}]});
        Bytes::from(format!("data: {chunk}\n\n"))
    })
}

/// [`EVENTS_PER_WRITE`] token events in one buffer.
fn token_block() -> &'static Bytes {
    static BLOCK: OnceLock<Bytes> = OnceLock::new();
    BLOCK.get_or_init(|| Bytes::from(token_event().repeat(EVENTS_PER_WRITE as usize)))
}

/// A running zero-latency engine; stops when dropped.
#[derive(Debug)]
pub struct ZeroLatencyEngine {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    _stop: oneshot::Sender<()>,
}

impl ZeroLatencyEngine {
    /// Binds `127.0.0.1:0` on a thread of its own and answers once the address is known.
    pub async fn start() -> std::io::Result<ZeroLatencyEngine> {
        let (addr_tx, addr_rx) = oneshot::channel::<std::io::Result<std::net::SocketAddr>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        std::thread::Builder::new().name("ceiling-engine".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = addr_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e));
                        return;
                    }
                };
                if addr_tx.send(listener.local_addr()).is_err() {
                    return;
                }
                // No Nagle: the first token leaves when written, as a real engine's does.
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                let _ = axum::serve(listener, router())
                    .with_graceful_shutdown(async move {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        })?;
        let addr = addr_rx.await.map_err(|_| std::io::Error::other("the engine thread ended before binding"))??;
        Ok(ZeroLatencyEngine { base_url: format!("http://{addr}"), _stop: stop_tx })
    }
}

fn router() -> Router {
    Router::new()
        .route(
            "/v1/models",
            get(|| async { axum::Json(json!({"object": "list", "data": [{"id": MODEL, "object": "model"}]})) }),
        )
        .route("/v1/chat/completions", post(chat))
}

/// Streams exactly `max_tokens` tokens (at least 1).
async fn chat(body: Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let n = req["max_tokens"].as_u64().unwrap_or(1).max(1);
    let usage = json!({"id": "calibration", "object": "chat.completion.chunk", "model": MODEL,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}});
    let tail = Bytes::from(format!("data: {usage}\n\ndata: [DONE]\n\n"));
    // (tokens sent so far, tail sent)
    let frames = futures_util::stream::unfold((0u64, false), move |(sent, done)| {
        let tail = tail.clone();
        async move {
            if done {
                return None;
            }
            let (bytes, next) = match n - sent {
                0 => (tail, (sent, true)),
                _ if sent == 0 => (token_event().clone(), (1, false)),
                left if left >= EVENTS_PER_WRITE => (token_block().clone(), (sent + EVENTS_PER_WRITE, false)),
                left => (Bytes::from(token_event().repeat(left as usize)), (n, false)),
            };
            Some((Ok::<_, Infallible>(bytes), next))
        }
    });
    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(frames)).into_response()
}
