//! A protocol-faithful fake Ollama server with scripted timing.
//!
//! No real Ollama can be installed where the tests run, so the Ollama client is tested against
//! this fake, built from Ollama's documented API (docs/api.md): streamed NDJSON from
//! `/api/chat` and `/api/generate`, a final `done: true` line with durations in nanoseconds,
//! `{"error": …}` lines mid-stream with HTTP 200, 404 `model "x" not found` for unknown models,
//! `keep_alive: 0` unloads, `/api/tags`, `/api/show`, `/api/ps`, `/api/version`.
//!
//! Timing is scripted from one start instant per request: token `i` is written at
//! `start + ttft + i / rate` (`sleep_until`, so delays never accumulate), which lets tests check
//! that the client measures TTFT and decode rate correctly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::time::Instant;

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

/// What the fake does for every generation.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeScript {
    pub models: Vec<FakeModel>,
    pub version: String,
    /// Request received → first token written.
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
    /// Reported `load_duration` (part of the TTFT).
    pub load_ms: f64,
    /// Reported `prompt_eval_count`.
    pub prompt_tokens: u64,
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
            error_message: "an error was encountered while running the model: unexpected EOF".into(),
            load_ms: 50.0,
            prompt_tokens: 26,
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
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let app = router(Fake { script: Arc::new(script), recorded: recorded.clone() });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeOllama { base_url: format!("http://{addr}"), addr, recorded, task }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Received> {
        self.recorded.lock().expect("fake lock").requests.clone()
    }

    /// Bodies of the requests received on `path`.
    pub fn bodies(&self, path: &str) -> Vec<Value> {
        self.requests().into_iter().filter(|r| r.path == path).map(|r| r.body).collect()
    }

    /// Models currently loaded (as `/api/ps` would list them).
    pub fn loaded(&self) -> Vec<String> {
        self.recorded.lock().expect("fake lock").loaded.keys().cloned().collect()
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
        .route("/api/chat", post(|s: State<Fake>, b: Json<Value>| generation(s, b, Endpoint::Chat)))
        .route("/api/generate", post(|s: State<Fake>, b: Json<Value>| generation(s, b, Endpoint::Generate)))
        .with_state(fake)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

impl Fake {
    fn record(&self, path: &str, body: &Value) {
        self.recorded.lock().expect("fake lock").requests.push(Received { path: path.into(), body: body.clone() });
    }

    /// The model a request names, or the error response Ollama gives.
    fn model(&self, body: &Value) -> Result<FakeModel, Box<Response>> {
        let name = body.get("model").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            return Err(Box::new(error(StatusCode::BAD_REQUEST, "model is required")));
        }
        self.script.models.iter().find(|m| m.name == name).cloned().ok_or_else(|| {
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
        .script
        .models
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
    let loaded = fake.recorded.lock().expect("fake lock").loaded.clone();
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
            "model_info": {"general.architecture": "llama", "general.parameter_count": 1_235_814_432u64,
                           "llama.context_length": m.context_length},
            "capabilities": if fake.script.thinking.is_empty() { json!(["completion"]) } else { json!(["completion", "thinking"]) },
        }))
        .into_response(),
        Err(resp) => *resp,
    }
}

#[derive(Clone, Copy)]
enum Endpoint {
    Chat,
    Generate,
}

/// The scripted stream of one request: what to write, and when.
struct Plan {
    start: Instant,
    gap: Duration,
    ttft: Duration,
    /// (thinking?, text) in emission order.
    tokens: Vec<(bool, String)>,
    error_after: Option<usize>,
}

impl Plan {
    fn at(&self, i: usize) -> Instant {
        self.start + self.ttft + self.gap.mul_f64(i as f64)
    }
}

fn chunk_line(endpoint: Endpoint, model: &str, thinking: bool, text: &str) -> Value {
    let field = if thinking { "thinking" } else { "content" };
    match endpoint {
        Endpoint::Chat => {
            json!({"model": model, "created_at": now_rfc3339(), "message": {"role": "assistant", field: text}, "done": false})
        }
        Endpoint::Generate => {
            let field = if thinking { "thinking" } else { "response" };
            json!({"model": model, "created_at": now_rfc3339(), field: text, "done": false})
        }
    }
}

fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}Z", d.as_secs(), d.subsec_nanos())
}

/// The final line: durations in ns, consistent with the script (`eval_count / eval_duration`
/// is the scripted rate; `load_duration + prompt_eval_duration` is the scripted TTFT). A
/// non-streamed answer carries the whole text in it (`text`); a streamed one carries none.
fn final_line(
    endpoint: Endpoint,
    model: &str,
    script: &FakeScript,
    plan: &Plan,
    text: Option<(String, String)>,
) -> Value {
    let ms_to_ns = |ms: f64| (ms.max(0.0) * 1e6).round() as u64;
    let n = plan.tokens.len();
    let stopped = n < script.thinking.len() + script.tokens.len() || n == 0;
    let mut line = json!({
        "model": model, "created_at": now_rfc3339(), "done": true,
        "done_reason": if stopped { "length" } else { "stop" },
        "total_duration": plan.start.elapsed().as_nanos() as u64,
        "load_duration": ms_to_ns(script.load_ms),
        "prompt_eval_count": script.prompt_tokens,
        "prompt_eval_duration": ms_to_ns(script.ttft_ms - script.load_ms),
        "eval_count": n,
        "eval_duration": ms_to_ns(n as f64 * 1000.0 / script.tokens_per_s),
    });
    let (content, thinking) = text.unwrap_or_default();
    match endpoint {
        Endpoint::Chat => {
            line["message"] = json!({"role": "assistant", "content": content});
            if !thinking.is_empty() {
                line["message"]["thinking"] = json!(thinking);
            }
        }
        Endpoint::Generate => {
            line["response"] = json!(content);
            if !thinking.is_empty() {
                line["thinking"] = json!(thinking);
            }
        }
    }
    line
}

async fn generation(State(fake): State<Fake>, Json(body): Json<Value>, endpoint: Endpoint) -> Response {
    let start = Instant::now();
    let path = match endpoint {
        Endpoint::Chat => "/api/chat",
        Endpoint::Generate => "/api/generate",
    };
    fake.record(path, &body);
    let model = match fake.model(&body) {
        Ok(m) => m,
        Err(resp) => return *resp,
    };
    let options = body.get("options").cloned().unwrap_or(json!({}));
    let keep_alive_zero = body.get("keep_alive").and_then(Value::as_f64) == Some(0.0);
    let has_input = match endpoint {
        Endpoint::Chat => body.get("messages").and_then(Value::as_array).is_some_and(|m| !m.is_empty()),
        Endpoint::Generate => body.get("prompt").and_then(Value::as_str).is_some_and(|p| !p.is_empty()),
    };
    if !has_input {
        // Load / unload requests: no text, answered at once.
        let mut recorded = fake.recorded.lock().expect("fake lock");
        let reason = if keep_alive_zero {
            recorded.loaded.remove(&model.name);
            "unload"
        } else {
            recorded.loaded.insert(model.name.clone(), options.get("num_ctx").and_then(Value::as_u64).unwrap_or(4096));
            "load"
        };
        let mut line = json!({"model": model.name, "created_at": now_rfc3339(), "done": true, "done_reason": reason});
        match endpoint {
            Endpoint::Chat => line["message"] = json!({"role": "assistant", "content": ""}),
            Endpoint::Generate => line["response"] = json!(""),
        }
        return Json(line).into_response();
    }
    fake.recorded
        .lock()
        .expect("fake lock")
        .loaded
        .insert(model.name.clone(), options.get("num_ctx").and_then(Value::as_u64).unwrap_or(4096));
    let script = fake.script.clone();
    let limit = match options.get("num_predict").and_then(Value::as_i64) {
        Some(n) if n >= 0 => n as usize,
        _ => usize::MAX,
    };
    let tokens: Vec<(bool, String)> = script
        .thinking
        .iter()
        .map(|t| (true, t.clone()))
        .chain(script.tokens.iter().map(|t| (false, t.clone())))
        .take(limit)
        .collect();
    let plan = Plan {
        start,
        gap: Duration::from_secs_f64(1.0 / script.tokens_per_s.max(0.001)),
        ttft: Duration::from_secs_f64(script.ttft_ms.max(0.0) / 1000.0),
        tokens,
        error_after: script.error_after,
    };
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(true);
    if stream { streamed(endpoint, model.name, script, plan) } else { single(endpoint, model.name, script, plan).await }
}

/// Writes the NDJSON stream from a task on the scripted schedule.
fn streamed(endpoint: Endpoint, model: String, script: Arc<FakeScript>, plan: Plan) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    tokio::spawn(async move {
        for (i, (thinking, text)) in plan.tokens.iter().enumerate() {
            tokio::time::sleep_until(plan.at(i)).await;
            if plan.error_after == Some(i) {
                let _ = tx.send(Ok(format!("{}\n", json!({"error": script.error_message})))).await;
                return;
            }
            if tx.send(Ok(format!("{}\n", chunk_line(endpoint, &model, *thinking, text)))).await.is_err() {
                return; // the client went away
            }
        }
        if plan.error_after.is_some_and(|n| n >= plan.tokens.len()) {
            let _ = tx.send(Ok(format!("{}\n", json!({"error": script.error_message})))).await;
            return;
        }
        let last = final_line(endpoint, &model, &script, &plan, None);
        let _ = tx.send(Ok(format!("{last}\n"))).await;
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

/// A non-streamed answer: one object once every token would have been generated; a scripted
/// error becomes an HTTP 500 with `{"error"}` (there is no stream to put it in).
async fn single(endpoint: Endpoint, model: String, script: Arc<FakeScript>, plan: Plan) -> Response {
    let n = plan.tokens.len();
    tokio::time::sleep_until(plan.at(n.saturating_sub(1))).await;
    if plan.error_after.is_some_and(|k| k <= n) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, &script.error_message);
    }
    let text =
        |thinking: bool| plan.tokens.iter().filter(|t| t.0 == thinking).map(|t| t.1.as_str()).collect::<String>();
    let (content, thinking) = (text(false), text(true));
    Json(final_line(endpoint, &model, &script, &plan, Some((content, thinking)))).into_response()
}
