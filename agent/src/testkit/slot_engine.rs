//! An OpenAI-compatible test engine with a fixed number of slots, for load tests: at most
//! `slots` requests are served at once, the rest queue (FIFO) for a free slot, as llama.cpp's
//! server does with `--parallel N`. A served request's first token comes `ttft` after it got its
//! slot, then one token every `gap`; the first `slow_first` requests take `slow_extra` longer
//! to their first token (a cold engine), for warm-up tests.
//!
//! It runs on its own thread and runtime, so the client under test never delays its clock.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// How the engine serves.
#[derive(Debug, Clone, Copy)]
pub struct SlotScript {
    pub slots: usize,
    pub ttft: Duration,
    pub gap: Duration,
    /// Tokens per answer (capped by the request's `max_tokens`).
    pub tokens: u64,
    pub slow_first: u64,
    pub slow_extra: Duration,
}

impl SlotScript {
    /// `slots` slots, first token after `ttft`, `tokens` tokens `gap` apart, no slow start.
    pub fn new(slots: usize, ttft: Duration, gap: Duration, tokens: u64) -> SlotScript {
        SlotScript { slots, ttft, gap, tokens, slow_first: 0, slow_extra: Duration::ZERO }
    }

    /// Time a request holds its slot for `n` tokens (first token, then `n − 1` gaps).
    pub fn service(&self, n: u64) -> Duration {
        self.ttft + self.gap * n.saturating_sub(1) as u32
    }
}

struct EngineState {
    script: SlotScript,
    slots: Arc<Semaphore>,
    served: AtomicU64,
}

/// A running slot engine; stops when dropped. `base_url` is `http://127.0.0.1:PORT`.
pub struct SlotEngine {
    pub base_url: String,
    state: Arc<EngineState>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The model name it serves.
pub const SLOT_MODEL: &str = "slots";

impl SlotEngine {
    pub fn spawn(script: SlotScript) -> SlotEngine {
        let state =
            Arc::new(EngineState { script, slots: Arc::new(Semaphore::new(script.slots)), served: AtomicU64::new(0) });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app_state = state.clone();
        std::thread::Builder::new()
            .name("slot-engine".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("engine runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
                    addr_tx.send(listener.local_addr().expect("addr")).expect("report addr");
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    let app = Router::new()
                        .route(
                            "/v1/models",
                            get(|| async {
                                axum::Json(json!({"object": "list", "data": [{"id": SLOT_MODEL, "object": "model"}]}))
                            }),
                        )
                        .route("/v1/chat/completions", post(chat))
                        .with_state(app_state);
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
            })
            .expect("engine thread");
        let addr = addr_rx.recv().expect("engine address");
        SlotEngine { base_url: format!("http://{addr}"), state, _stop: stop_tx }
    }

    /// Requests that got a slot so far.
    pub fn served(&self) -> u64 {
        self.state.served.load(Ordering::Acquire)
    }
}

async fn chat(State(state): State<Arc<EngineState>>, body: Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let script = state.script;
    let n = req["max_tokens"].as_u64().unwrap_or(script.tokens).min(script.tokens).max(1);
    let prompt_tokens = req["messages"][0]["content"].as_str().map_or(1, |p| p.split_whitespace().count() as u64);
    // Queue for a slot before answering, as a busy server does.
    let Ok(permit) = state.slots.clone().acquire_owned().await else {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "closed").into_response();
    };
    let index = state.served.fetch_add(1, Ordering::AcqRel);
    let extra = if index < script.slow_first { script.slow_extra } else { Duration::ZERO };
    let start = tokio::time::Instant::now();
    let usage = json!({"id": "x", "object": "chat.completion.chunk", "model": SLOT_MODEL,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}});
    let tail = Bytes::from(format!("data: {usage}\n\ndata: [DONE]\n\n"));
    let frames = futures_util::stream::unfold((0u64, Some(permit)), move |(i, permit)| {
        let tail = tail.clone();
        async move {
            if i > n {
                return None;
            }
            if i < n {
                let due = start + extra + script.ttft + script.gap * i as u32;
                tokio::time::sleep_until(due).await;
                let chunk = json!({"id": "x", "object": "chat.completion.chunk", "model": SLOT_MODEL,
                    "choices": [{"index": 0, "delta": {"content": format!(" w{i}")}, "finish_reason": null}]});
                Some((Ok::<_, Infallible>(Bytes::from(format!("data: {chunk}\n\n"))), (i + 1, permit)))
            } else {
                // The slot frees with the last token, before the usage chunk.
                drop(permit);
                Some((Ok(tail), (i + 1, None)))
            }
        }
    });
    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(frames)).into_response()
}
