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
    /// Extra time before the first token when the model is not loaded (cold), reported as
    /// `load_duration`; a warm request reports [`WARM_LOAD_MS`].
    pub load_ms: f64,
    /// Every model starts loaded (as after earlier runs); `false` makes each first request cold.
    pub preloaded: bool,
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
            preloaded: true,
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
        let mut initial = Recorded::default();
        if script.preloaded {
            initial.loaded = script.models.iter().map(|m| (m.name.clone(), 4096)).collect();
        }
        let recorded = Arc::new(Mutex::new(initial));
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

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/api/chat",
            Endpoint::Generate => "/api/generate",
        }
    }

    /// A response line carrying `content` and `thinking` where this endpoint puts them
    /// (`message.content` / `message.thinking` for chat, `response` / `thinking` for generate).
    fn line(self, model: &str, done: bool, content: &str, thinking: &str) -> Value {
        // Ollama sends an RFC 3339 creation time; clients ignore it, so a fixed one will do.
        let mut line = json!({"model": model, "created_at": "2026-11-23T10:00:00.000000000Z", "done": done});
        let text = match self {
            Endpoint::Chat => {
                line["message"] = json!({"role": "assistant", "content": content});
                &mut line["message"]
            }
            Endpoint::Generate => {
                line["response"] = json!(content);
                &mut line
            }
        };
        if !thinking.is_empty() {
            text["thinking"] = json!(thinking);
        }
        line
    }
}

/// The scripted stream of one request: what to write, and when.
struct Plan {
    start: Instant,
    gap: Duration,
    /// Reported load time: the script's `load_ms` when cold, [`WARM_LOAD_MS`] when warm.
    load_ms: f64,
    /// Includes the load time when cold.
    ttft: Duration,
    /// (thinking?, text) in emission order.
    tokens: Vec<(bool, String)>,
    /// Whether `num_predict` cut the script short.
    truncated: bool,
    error_after: Option<usize>,
}

impl Plan {
    fn at(&self, i: usize) -> Instant {
        self.start + self.ttft + self.gap.mul_f64(i as f64)
    }

    fn text(&self, thinking: bool) -> String {
        self.tokens.iter().filter(|t| t.0 == thinking).map(|t| t.1.as_str()).collect()
    }
}

/// The final line: durations in ns, consistent with the script (`eval_count / eval_duration`
/// is the scripted rate; `load_duration + prompt_eval_duration` is the request's TTFT). A
/// non-streamed answer carries the whole text in it; a streamed one carries none.
fn final_line(endpoint: Endpoint, model: &str, script: &FakeScript, plan: &Plan, with_text: bool) -> Value {
    let ms_to_ns = |ms: f64| (ms.max(0.0) * 1e6).round() as u64;
    let n = plan.tokens.len();
    let (content, thinking) = if with_text { (plan.text(false), plan.text(true)) } else { Default::default() };
    let mut line = endpoint.line(model, true, &content, &thinking);
    line["done_reason"] = json!(if plan.truncated { "length" } else { "stop" });
    line["total_duration"] = json!(plan.start.elapsed().as_nanos() as u64);
    line["load_duration"] = json!(ms_to_ns(plan.load_ms));
    line["prompt_eval_count"] = json!(script.prompt_tokens);
    line["prompt_eval_duration"] = json!(ms_to_ns(plan.ttft.as_secs_f64() * 1000.0 - plan.load_ms));
    line["eval_count"] = json!(n);
    line["eval_duration"] = json!(ms_to_ns(n as f64 * 1000.0 / script.tokens_per_s));
    line
}

async fn generation(State(fake): State<Fake>, Json(body): Json<Value>, endpoint: Endpoint) -> Response {
    let start = Instant::now();
    fake.record(endpoint.path(), &body);
    let model = match fake.model(&body) {
        Ok(m) => m,
        Err(resp) => return *resp,
    };
    let options = body.get("options").cloned().unwrap_or(json!({}));
    let num_ctx = options.get("num_ctx").and_then(Value::as_u64).unwrap_or(4096);
    let has_input = match endpoint {
        Endpoint::Chat => body.get("messages").and_then(Value::as_array).is_some_and(|m| !m.is_empty()),
        Endpoint::Generate => body.get("prompt").and_then(Value::as_str).is_some_and(|p| !p.is_empty()),
    };
    let unload = body.get("keep_alive").and_then(Value::as_f64) == Some(0.0);
    let cold = {
        let mut recorded = fake.recorded.lock().expect("fake lock");
        let cold = !recorded.loaded.contains_key(&model.name);
        if unload && !has_input {
            recorded.loaded.remove(&model.name);
        } else {
            recorded.loaded.insert(model.name.clone(), num_ctx);
        }
        cold
    };
    if !has_input {
        // Load / unload requests carry no text and are answered at once.
        let mut line = endpoint.line(&model.name, true, "", "");
        line["done_reason"] = json!(if unload { "unload" } else { "load" });
        return Json(line).into_response();
    }
    let script = fake.script.clone();
    let limit = match options.get("num_predict").and_then(Value::as_i64) {
        Some(n) if n >= 0 => n as usize,
        _ => usize::MAX,
    };
    let all = script.thinking.iter().map(|t| (true, t.clone())).chain(script.tokens.iter().map(|t| (false, t.clone())));
    let tokens: Vec<(bool, String)> = all.take(limit).collect();
    let plan = Plan {
        start,
        gap: Duration::from_secs_f64(1.0 / script.tokens_per_s.max(0.001)),
        load_ms: if cold { script.load_ms.max(0.0) } else { WARM_LOAD_MS },
        ttft: Duration::from_secs_f64((script.ttft_ms + if cold { script.load_ms } else { 0.0 }).max(0.0) / 1000.0),
        truncated: tokens.len() < script.thinking.len() + script.tokens.len() || tokens.is_empty(),
        tokens,
        error_after: script.error_after,
    };
    if body.get("stream").and_then(Value::as_bool).unwrap_or(true) {
        streamed(endpoint, model.name, script, plan)
    } else {
        single(endpoint, model.name, script, plan).await
    }
}

/// Writes the NDJSON stream from a task on the scripted schedule.
fn streamed(endpoint: Endpoint, model: String, script: Arc<FakeScript>, plan: Plan) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    tokio::spawn(async move {
        let error_line = format!("{}\n", json!({"error": script.error_message}));
        for (i, (thinking, text)) in plan.tokens.iter().enumerate() {
            tokio::time::sleep_until(plan.at(i)).await;
            if plan.error_after == Some(i) {
                let _ = tx.send(Ok(error_line)).await;
                return;
            }
            let (content, thinking) = if *thinking { ("", text.as_str()) } else { (text.as_str(), "") };
            let line = endpoint.line(&model, false, content, thinking);
            if tx.send(Ok(format!("{line}\n"))).await.is_err() {
                return; // the client went away
            }
        }
        if plan.error_after.is_some_and(|n| n >= plan.tokens.len()) {
            let _ = tx.send(Ok(error_line)).await;
            return;
        }
        let last = final_line(endpoint, &model, &script, &plan, false);
        let _ = tx.send(Ok(format!("{last}\n"))).await;
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

/// A non-streamed answer: one object once every token would have been generated; a scripted
/// error becomes an HTTP 500 with `{"error"}` (there is no stream to put it in).
async fn single(endpoint: Endpoint, model: String, script: Arc<FakeScript>, plan: Plan) -> Response {
    tokio::time::sleep_until(plan.at(plan.tokens.len().saturating_sub(1))).await;
    if plan.error_after.is_some_and(|k| k <= plan.tokens.len()) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, &script.error_message);
    }
    Json(final_line(endpoint, &model, &script, &plan, true)).into_response()
}
