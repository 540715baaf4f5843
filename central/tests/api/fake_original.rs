//! A protocol-faithful fake of the original (Python) bench-race agent, written from its
//! `agent_app.py` and `shared/schemas.py`: `GET /health` → `{ok, machine_id, label}`;
//! `GET /capabilities` → its flat fields; `POST /jobs` (`LLMRequest`) → `{job_id}` at once, then
//! one generation in the background whatever `repeat` says; `/ws` broadcasts every event to every
//! client as `{job_id, type, payload}` (no seq, no machine id): `llm_token {text, timestamp_s}`
//! with `timestamp_s` a monotonic reading (its `time.perf_counter()`), then `job_done {ttft_ms,
//! gen_tokens, gen_tokens_per_s, total_ms, model, engine}` with `gen_tokens` counting words. It
//! has no `/time`, no `GET /jobs/{id}` and no job log. Its "engine" streams words at a fixed rate.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

struct Inner {
    machine_id: String,
    models: Vec<String>,
    ttft: Duration,
    word_gap: Duration,
    /// Every `POST /jobs` body received.
    jobs: Mutex<Vec<Value>>,
    events: broadcast::Sender<String>,
    /// The process's monotonic origin (its `perf_counter` counts from an arbitrary point).
    origin: Instant,
}

pub struct FakeOriginal {
    pub base_url: String,
    inner: Arc<Inner>,
    server: JoinHandle<()>,
}

impl FakeOriginal {
    /// An original agent whose Ollama has `models`, answering after `ttft` with a word every `word_gap`.
    pub async fn spawn(machine_id: &str, models: &[&str], ttft: Duration, word_gap: Duration) -> FakeOriginal {
        let inner = Arc::new(Inner {
            machine_id: machine_id.into(),
            models: models.iter().map(|m| m.to_string()).collect(),
            ttft,
            word_gap,
            jobs: Mutex::new(Vec::new()),
            events: broadcast::channel(4096).0,
            origin: Instant::now() - Duration::from_secs(1000),
        });
        let app = Router::new()
            .route("/health", get(health))
            .route("/capabilities", get(capabilities))
            .route("/jobs", post(jobs))
            .route("/ws", get(ws))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeOriginal { base_url: format!("http://{addr}"), inner, server }
    }

    /// The `POST /jobs` bodies it received.
    pub fn jobs(&self) -> Vec<Value> {
        self.inner.jobs.lock().unwrap().clone()
    }

    /// Broadcasts an event of a job that is not central's (another client's image job, say).
    pub fn broadcast(&self, event: Value) {
        let _ = self.inner.events.send(event.to_string());
    }

    pub fn stop(self) {
        self.server.abort();
    }
}

async fn health(State(s): State<Arc<Inner>>) -> Json<Value> {
    Json(json!({"ok": true, "machine_id": s.machine_id, "label": format!("{} (original)", s.machine_id)}))
}

async fn capabilities(State(s): State<Arc<Inner>>) -> Json<Value> {
    Json(json!({
        "machine_id": s.machine_id, "label": format!("{} (original)", s.machine_id),
        "tests": ["llm_generate"], "llm_models": [], "whisper_models": [], "sdxl_profiles": [],
        "accelerator_type": null, "accelerator_memory_gb": null, "system_memory_gb": 16.0,
        "gpu_name": null, "gpu_vram_bytes": null, "gpu_type": null, "cuda_compute": null,
        "cpu_cores": 8, "cpu_physical_cores": 4, "total_system_ram_bytes": 17_179_869_184u64,
        "ollama_reachable": true, "ollama_models": s.models, "vllm_reachable": false, "vllm_models": [],
        "active_backend": null, "agent_reachable": null, "comfyui_gpu_ok": null, "comfyui_cpu_ok": null
    }))
}

async fn jobs(State(s): State<Arc<Inner>>, Json(body): Json<Value>) -> Json<Value> {
    let job_id = uuid::Uuid::new_v4().to_string();
    s.jobs.lock().unwrap().push(body.clone());
    tokio::spawn(generate(s.clone(), job_id.clone(), body));
    Json(json!({"job_id": job_id}))
}

/// Its `_job_runner_llm` over a fixed-rate stream: a token event per word, then `job_done` with
/// its own client's figures (words counted with `split()`).
async fn generate(s: Arc<Inner>, job_id: String, body: Value) {
    let t0 = Instant::now();
    let max_tokens = body["max_tokens"].as_u64().unwrap_or(256).min(64);
    tokio::time::sleep(s.ttft).await;
    let mut first = None;
    let mut words = 0u64;
    for i in 0..max_tokens {
        if i > 0 {
            tokio::time::sleep(s.word_gap).await;
        }
        let now = Instant::now();
        first.get_or_insert(now);
        let text = format!("word{i} ");
        words += text.split_whitespace().count() as u64;
        let perf = now.duration_since(s.origin).as_secs_f64();
        let event = json!({"job_id": job_id, "type": "llm_token", "payload": {"text": text, "timestamp_s": perf}});
        let _ = s.events.send(event.to_string());
    }
    let end = Instant::now();
    let first = first.unwrap_or(end);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let rate = (end > first).then(|| words as f64 / end.duration_since(first).as_secs_f64());
    let done = json!({"job_id": job_id, "type": "job_done", "payload": {
        "ttft_ms": ms(first.duration_since(t0)), "gen_tokens": words, "gen_tokens_per_s": rate,
        "total_ms": ms(end.duration_since(t0)), "model": body["model"], "engine": "ollama"}});
    let _ = s.events.send(done.to_string());
}

async fn ws(State(s): State<Arc<Inner>>, upgrade: WebSocketUpgrade) -> Response {
    let rx = s.events.subscribe();
    upgrade.on_upgrade(move |socket| serve_ws(socket, rx))
}

async fn serve_ws(mut socket: WebSocket, mut rx: broadcast::Receiver<String>) {
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Ok(text) => if socket.send(Message::text(text)).await.is_err() { break },
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            },
            // It reads and ignores what clients send (pings are answered by the server).
            incoming = socket.recv() => if !matches!(incoming, Some(Ok(_))) { break },
        }
    }
}
