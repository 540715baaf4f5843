//! An OpenAI-compatible engine for the soak whose faults the injector controls: it can stall
//! (every stream stops sending until released, so the agent's idle bound fires) and be killed
//! (streams in flight are cut, the port refuses connections) and come back on the same port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

/// The model the soak races.
pub const MODEL: &str = "soak-model";
const TTFT: Duration = Duration::from_millis(20);
const GAP: Duration = Duration::from_millis(5);

#[derive(Debug)]
struct Ctl {
    stalled: AtomicBool,
    /// Bumped by a kill: every stream of an older epoch ends abruptly.
    epoch: watch::Sender<u64>,
}

/// One engine on a fixed port; dropped: stopped.
pub struct SoakEngine {
    pub addr: SocketAddr,
    ctl: Arc<Ctl>,
    stop: Option<oneshot::Sender<()>>,
}

impl SoakEngine {
    pub async fn start() -> anyhow::Result<SoakEngine> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let ctl = Arc::new(Ctl { stalled: AtomicBool::new(false), epoch: watch::Sender::new(0) });
        let mut engine = SoakEngine { addr: listener.local_addr()?, ctl, stop: None };
        engine.serve(listener);
        Ok(engine)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(self.ctl.clone());
        tokio::spawn(bench_server::serve(listener, app, bench_server::Limits::default(), async move {
            let _ = rx.await;
        }));
        self.stop = Some(tx);
    }

    /// Streams stop sending (until [`SoakEngine::release`]).
    pub fn stall(&self) {
        self.ctl.stalled.store(true, Ordering::SeqCst);
    }

    pub fn release(&self) {
        self.ctl.stalled.store(false, Ordering::SeqCst);
    }

    /// Cuts every stream and stops listening.
    pub fn kill(&mut self) {
        self.ctl.epoch.send_modify(|e| *e += 1);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Listens again on the same port (retrying while the old socket lets go).
    pub async fn revive(&mut self) -> anyhow::Result<()> {
        let mut last = None;
        for _ in 0..50 {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => {
                    self.serve(l);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(anyhow::anyhow!("engine port {} not free again: {last:?}", self.addr))
    }
}

fn router(ctl: Arc<Ctl>) -> Router {
    Router::new()
        .route(
            "/v1/models",
            get(|| async { axum::Json(json!({"object": "list", "data": [{"id": MODEL, "object": "model"}]})) }),
        )
        .route("/v1/chat/completions", post(chat))
        .with_state(ctl)
}

async fn chat(State(ctl): State<Arc<Ctl>>, body: Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let n = req["max_tokens"].as_u64().unwrap_or(16).clamp(1, 256);
    let mut epoch = ctl.epoch.subscribe();
    let born = *epoch.borrow_and_update();
    let frames = futures_util::stream::unfold(0u64, move |i| {
        let ctl = ctl.clone();
        let mut epoch = epoch.clone();
        async move {
            if i > n + 1 {
                return None;
            }
            let pause = if i == 0 { TTFT } else { GAP };
            // Sleep, then wait out a stall; a kill (new epoch) cuts the stream.
            let wait = async {
                tokio::time::sleep(pause).await;
                while ctl.stalled.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            tokio::select! {
                () = wait => {}
                _ = epoch.wait_for(|e| *e != born) => {
                    return Some((Err(std::io::Error::other("engine killed")), i + 1000));
                }
            }
            let bytes = if i < n {
                let chunk = json!({"id": "s", "object": "chat.completion.chunk", "model": MODEL,
                    "choices": [{"index": 0, "delta": {"content": format!(" w{i}")}, "finish_reason": null}]});
                format!("data: {chunk}\n\n")
            } else if i == n {
                let usage = json!({"id": "s", "object": "chat.completion.chunk", "model": MODEL,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}],
                    "usage": {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": n + 8}});
                format!("data: {usage}\n\n")
            } else {
                "data: [DONE]\n\n".to_owned()
            };
            Some((Ok::<_, std::io::Error>(Bytes::from(bytes)), i + 1))
        }
    });
    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(frames)).into_response()
}
