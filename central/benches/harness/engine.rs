//! A scripted engine with exact timing, speaking both protocols the agent measures: OpenAI
//! (`POST /v1/chat/completions`, SSE) and Ollama (`POST /api/chat`, NDJSON), plus the listing
//! endpoints the agent checks (`/v1/models`, `/api/tags`, `/api/version`, `/api/ps`, `/api/show`).
//!
//! Every request gets its first token exactly `ttft` after the request was read, then one token
//! every `gap` on an absolute schedule (deadlines from the request's arrival, so jitter never
//! accumulates). With `gap` zero the tokens are written as fast as the reader takes them. The
//! engine runs on its own thread and runtime, so the clients under test never delay its clock.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use tokio::time::Instant;

/// The model name the engine serves.
pub const MODEL: &str = "scripted";

/// The timing of every response.
#[derive(Debug, Clone, Copy)]
pub struct Script {
    pub ttft: Duration,
    /// Time between tokens (zero: as fast as the reader takes them).
    pub gap: Duration,
    /// Tokens per response (capped by the request's `max_tokens` / `num_predict`).
    pub tokens: u64,
}

/// A running engine on its own thread; `base_url` is `http://127.0.0.1:PORT`.
pub struct ScriptedEngine {
    pub base_url: String,
    pub addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl ScriptedEngine {
    pub fn spawn(script: Script) -> ScriptedEngine {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("scripted-engine".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("engine runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
                    addr_tx.send(listener.local_addr().expect("addr")).expect("report addr");
                    let app = router(Arc::new(script));
                    // No Nagle: each token leaves when written (as llama.cpp's and Ollama's servers
                    // do), so the schedule is exact for every client, pooled connections included.
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
            })
            .expect("engine thread");
        let addr = addr_rx.recv().expect("engine address");
        ScriptedEngine { base_url: format!("http://{addr}"), addr, _stop: stop_tx }
    }
}

fn router(script: Arc<Script>) -> Router {
    Router::new()
        .route(
            "/v1/models",
            get(|| async { axum::Json(json!({"object": "list", "data": [{"id": MODEL, "object": "model"}]})) }),
        )
        .route("/v1/chat/completions", post(openai))
        .route("/api/tags", get(|| async { axum::Json(json!({"models": [tag()]})) }))
        .route("/api/ps", get(|| async { axum::Json(json!({"models": [tag()]})) }))
        .route("/api/version", get(|| async { axum::Json(json!({"version": "0.33.0"})) }))
        .route("/api/show", post(|| async { axum::Json(json!({"model_info": {"llama.context_length": 4096}})) }))
        .route("/api/chat", post(ollama))
        .with_state(script)
}

fn tag() -> Value {
    json!({"name": MODEL, "model": MODEL, "size": 1, "digest": "0", "details": {"family": "llama",
           "parameter_size": "1M", "quantization_level": "Q8_0"}})
}

/// The token count a request asks for, capped by the script.
fn wanted(body: &Value, script: &Script) -> u64 {
    let asked =
        body["max_tokens"].as_u64().or_else(|| body["options"]["num_predict"].as_u64()).unwrap_or(script.tokens);
    asked.min(script.tokens).max(1)
}

/// The `i`-th frame and the final ones, written on the schedule.
fn stream(script: Script, n: u64, frame: impl Fn(u64) -> Bytes + Send + Sync + 'static, tail: Bytes) -> Body {
    let start = Instant::now();
    let frame = Arc::new(frame);
    let frames = futures_util::stream::unfold(0u64, move |i| {
        let frame = frame.clone();
        let tail = tail.clone();
        async move {
            if i > n {
                return None;
            }
            if script.gap.is_zero() {
                if i == 0 {
                    tokio::time::sleep_until(start + script.ttft).await;
                }
            } else {
                let gaps = u32::try_from(i.min(n - 1)).unwrap_or(u32::MAX);
                tokio::time::sleep_until(start + script.ttft + script.gap * gaps).await;
            }
            let bytes = if i == n { tail } else { frame(i) };
            Some((Ok::<_, Infallible>(bytes), i + 1))
        }
    });
    Body::from_stream(frames)
}

async fn openai(State(script): State<Arc<Script>>, body: Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let n = wanted(&req, &script);
    let frame = |i: u64| {
        let chunk = json!({"id": "x", "object": "chat.completion.chunk", "model": MODEL,
                           "choices": [{"index": 0, "delta": {"content": format!(" t{i}")}, "finish_reason": null}]});
        Bytes::from(format!("data: {chunk}\n\n"))
    };
    let usage = json!({"id": "x", "object": "chat.completion.chunk", "model": MODEL,
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
                       "usage": {"prompt_tokens": 4, "completion_tokens": n, "total_tokens": n + 4}});
    let tail = Bytes::from(format!("data: {usage}\n\ndata: [DONE]\n\n"));
    ([(header::CONTENT_TYPE, "text/event-stream")], stream(*script, n, frame, tail)).into_response()
}

async fn ollama(State(script): State<Arc<Script>>, body: Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let n = wanted(&req, &script);
    let frame = |i: u64| {
        let line = json!({"model": MODEL, "created_at": "2026-12-04T00:00:00Z",
                          "message": {"role": "assistant", "content": format!(" t{i}")}, "done": false});
        Bytes::from(format!("{line}\n"))
    };
    let eval_ns = script.gap.as_nanos() as u64 * n.saturating_sub(1).max(1);
    let done = json!({"model": MODEL, "created_at": "2026-12-04T00:00:00Z",
                      "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "length",
                      "total_duration": script.ttft.as_nanos() as u64 + eval_ns, "load_duration": 1_000_000u64,
                      "prompt_eval_count": 4, "prompt_eval_duration": script.ttft.as_nanos() as u64,
                      "eval_count": n, "eval_duration": eval_ns});
    let tail = Bytes::from(format!("{done}\n"));
    ([(header::CONTENT_TYPE, "application/x-ndjson")], stream(*script, n, frame, tail)).into_response()
}
