//! A protocol-faithful fake Ollama server with scripted timing.
//!
//! No real Ollama can be installed where the tests run, so the Ollama client is tested against
//! this fake, built from Ollama's documented API (docs/api.md): streamed NDJSON from
//! `/api/chat` and `/api/generate`, a final `done: true` line with durations in nanoseconds,
//! `{"error": …}` lines mid-stream with HTTP 200, 404 `model "x" not found` for unknown models,
//! `keep_alive: 0` unloads, `/api/tags`, `/api/show`, `/api/ps`, `/api/version`, and `/api/pull`
//! streamed (see `pull`; a pulled model is listed afterwards).
//!
//! Timing is scripted from one start instant per request: token `i` is written at
//! `start + ttft + i / rate` (`sleep_until`, so delays never accumulate), which lets tests check
//! that the client measures TTFT and decode rate correctly.

mod generation;
mod pull;

pub use pull::FakePull;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use generation::{Endpoint, generation};

/// A model the fake serves.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeModel {
    pub name: String,
    pub family: String,
    pub parameter_size: String,
    pub quantization_level: String,
    pub size_bytes: u64,
    /// Trained context length (`/api/show` `model_info["llama.context_length"]`).
    pub context_length: u64,
}

impl FakeModel {
    pub fn new(name: &str) -> Self {
        FakeModel {
            name: name.to_owned(),
            family: "llama".into(),
            parameter_size: "1.2B".into(),
            quantization_level: "Q4_K_M".into(),
            size_bytes: 807_694_464,
            context_length: 131_072,
        }
    }
}

/// `load_duration` of a request whose model was already loaded (Ollama reports ~1 ms).
pub const WARM_LOAD_MS: f64 = 1.0;

/// What the fake does for every generation.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeScript {
    pub models: Vec<FakeModel>,
    pub version: String,
    /// Request received → first token written, with the model already loaded (warm).
    pub ttft_ms: f64,
    /// Token rate after the first token.
    pub tokens_per_s: f64,
    /// Thinking tokens, emitted before the content tokens (`message.thinking`).
    pub thinking: Vec<String>,
    /// Content tokens. Both lists together are capped by the request's `num_predict`.
    pub tokens: Vec<String>,
    /// After this many tokens, write `{"error": error_message}` (HTTP status stays 200) and stop.
    pub error_after: Option<usize>,
    pub error_message: String,
    /// After this many tokens, write nothing more but keep the connection open (a stalled
    /// engine: what the agent's `idle_timeout_s` is for).
    pub stall_after: Option<usize>,
    /// Extra time before the first token when the model is not loaded (cold), reported as
    /// `load_duration`; a warm request reports [`WARM_LOAD_MS`].
    pub load_ms: f64,
    /// Every model starts loaded (as after earlier runs); `false` makes each first request cold.
    pub preloaded: bool,
    /// Reported `prompt_eval_count`.
    pub prompt_tokens: u64,
    /// How long an unload request (`keep_alive: 0`) takes to answer.
    pub unload_ms: f64,
    /// What `/api/pull` streams.
    pub pull: FakePull,
}

impl Default for FakeScript {
    fn default() -> Self {
        FakeScript {
            models: vec![FakeModel::new("llama3.2:1b"), FakeModel::new("qwen3:0.6b")],
            version: "0.33.0".into(),
            ttft_ms: 200.0,
            tokens_per_s: 50.0,
            thinking: Vec::new(),
            tokens: (0..20).map(|i| format!(" word{i}")).collect(),
            error_after: None,
            stall_after: None,
            error_message: "an error was encountered while running the model: unexpected EOF".into(),
            load_ms: 50.0,
            preloaded: true,
            prompt_tokens: 26,
            unload_ms: 0.0,
            pull: FakePull::default(),
        }
    }
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub path: String,
    pub body: Value,
}

#[derive(Debug, Default)]
struct Recorded {
    requests: Vec<Received>,
    /// Loaded model → the `num_ctx` it was loaded with (what `/api/ps` reports).
    loaded: BTreeMap<String, u64>,
    /// Models pulled since start (listed after the script's).
    pulled: Vec<FakeModel>,
}

#[derive(Clone)]
struct Fake {
    script: Arc<FakeScript>,
    recorded: Arc<Mutex<Recorded>>,
}

/// A running fake; it stops when dropped.
pub struct FakeOllama {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    pub addr: SocketAddr,
    recorded: Arc<Mutex<Recorded>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeOllama {
    /// Serves `script` on 127.0.0.1, on a port the OS picks.
    pub async fn spawn(script: FakeScript) -> FakeOllama {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let mut initial = Recorded::default();
        if script.preloaded {
            initial.loaded = script.models.iter().map(|m| (m.name.clone(), 4096)).collect();
        }
        let recorded = Arc::new(Mutex::new(initial));
        let app = router(Fake { script: Arc::new(script), recorded: recorded.clone() });
        // Like Ollama (Go sets TCP_NODELAY by default): every line leaves when it is written,
        // never held back by Nagle's algorithm waiting for a delayed ACK.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeOllama { base_url: format!("http://{addr}"), addr, recorded, task }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Received> {
        bench_shared::sync::lock(&self.recorded).requests.clone()
    }

    /// Bodies of the requests received on `path`.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.requests().into_iter().filter(|r| r.path == path).map(|r| r.body).collect()
    }

    /// Models currently loaded (as `/api/ps` would list them).
    pub fn loaded(&self) -> Vec<String> {
        bench_shared::sync::lock(&self.recorded).loaded.keys().cloned().collect()
    }
}

impl Drop for FakeOllama {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn router(fake: Fake) -> Router {
    Router::new()
        .route("/", get(|| async { "Ollama is running" }))
        .route("/api/version", get(version))
        .route("/api/tags", get(tags))
        .route("/api/ps", get(ps))
        .route("/api/show", post(show))
        .route("/api/pull", post(pull::pull))
        .route("/api/chat", post(|s: State<Fake>, b: Json<Value>| generation(s, b, Endpoint::Chat)))
        .route("/api/generate", post(|s: State<Fake>, b: Json<Value>| generation(s, b, Endpoint::Generate)))
        .with_state(fake)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

impl Fake {
    fn record(&self, path: &str, body: &Value) {
        bench_shared::sync::lock(&self.recorded).requests.push(Received { path: path.into(), body: body.clone() });
    }

    /// Every model served: the script's and those pulled since.
    fn models(&self) -> Vec<FakeModel> {
        let pulled = bench_shared::sync::lock(&self.recorded).pulled.clone();
        self.script.models.iter().cloned().chain(pulled).collect()
    }

    /// Records a model pulled to the end (it is listed and served from now on).
    fn pulled(&self, model: FakeModel) {
        let mut r = bench_shared::sync::lock(&self.recorded);
        if !r.pulled.iter().any(|m| m.name == model.name) && !self.script.models.iter().any(|m| m.name == model.name) {
            r.pulled.push(model);
        }
    }

    /// The model a request names, or the error response Ollama gives.
    fn model(&self, body: &Value) -> Result<FakeModel, Box<Response>> {
        let name = body.get("model").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            return Err(Box::new(error(StatusCode::BAD_REQUEST, "model is required")));
        }
        self.models().into_iter().find(|m| m.name == name).ok_or_else(|| {
            Box::new(error(StatusCode::NOT_FOUND, &format!("model \"{name}\" not found, try pulling it first")))
        })
    }
}

async fn version(State(fake): State<Fake>) -> Json<Value> {
    Json(json!({ "version": fake.script.version }))
}

fn details(m: &FakeModel) -> Value {
    json!({
        "parent_model": "", "format": "gguf", "family": m.family, "families": [m.family],
        "parameter_size": m.parameter_size, "quantization_level": m.quantization_level,
    })
}

fn digest(m: &FakeModel) -> String {
    format!("{:064x}", m.name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)))
}

async fn tags(State(fake): State<Fake>) -> Json<Value> {
    let models: Vec<Value> = fake
        .models()
        .iter()
        .map(|m| {
            json!({
                "name": m.name, "model": m.name, "modified_at": "2026-11-01T10:00:00.000000000Z",
                "size": m.size_bytes, "digest": digest(m), "details": details(m),
            })
        })
        .collect();
    Json(json!({ "models": models }))
}

async fn ps(State(fake): State<Fake>) -> Json<Value> {
    let loaded = bench_shared::sync::lock(&fake.recorded).loaded.clone();
    let models: Vec<Value> = fake
        .script
        .models
        .iter()
        .filter_map(|m| loaded.get(&m.name).map(|ctx| (m, ctx)))
        .map(|(m, ctx)| {
            json!({
                "name": m.name, "model": m.name, "size": m.size_bytes, "digest": digest(m),
                "details": details(m), "expires_at": "2026-11-23T10:05:00.000000000Z",
                "size_vram": m.size_bytes, "context_length": ctx,
            })
        })
        .collect();
    Json(json!({ "models": models }))
}

async fn show(State(fake): State<Fake>, Json(body): Json<Value>) -> Response {
    fake.record("/api/show", &body);
    match fake.model(&body) {
        Ok(m) => Json(json!({
            "details": details(&m),
            // Llama 3.2 1B's architecture, as its GGUF metadata gives it.
            "model_info": {"general.architecture": "llama", "general.parameter_count": 1_235_814_432u64,
                           "llama.context_length": m.context_length, "llama.block_count": 16,
                           "llama.embedding_length": 2048, "llama.attention.head_count": 32,
                           "llama.attention.head_count_kv": 8},
            "capabilities": if fake.script.thinking.is_empty() { json!(["completion"]) } else { json!(["completion", "thinking"]) },
        }))
        .into_response(),
        Err(resp) => *resp,
    }
}
