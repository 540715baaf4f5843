//! A protocol-faithful fake ComfyUI, written from ComfyUI's public API (its server routes and
//! WebSocket messages), for the image client's tests and demos. No diffusion model can run here.
//!
//! It keeps ComfyUI's behaviour where a client can trip over it:
//! - `POST /prompt` validates the graph: an unknown `ckpt_name` or `sampler_name` is a 400 with
//!   `error` and `node_errors` (per node: `errors[{type, message, details}]`, `class_type`).
//! - One prompt runs at a time, in queue order; messages go to the submitting client's socket
//!   only (`/ws?clientId=`), in ComfyUI's order: `status`, `execution_start`, `execution_cached`,
//!   `executing {node}`, `progress {value, max}` with a binary preview frame after each step
//!   (`[u32 1][u32 2 = PNG][image]`), `executed`, `execution_success`, then the history entry is
//!   written, then `executing {node: null}` — so a client that reads `/history` on
//!   `execution_success` may still find `{}` and must read again.
//! - Errors: `execution_error` then `executing {node: null}` (as ComfyUI's worker sends it), with
//!   the history entry's `status_str: "error"` and the error among its `messages`.
//! - The checkpoint loader is cached after its first use (`execution_cached: ["1"]`).
//!
//! Test hooks in the prompt text: `FAIL_NODE` (VAEDecode raises after sampling), `DROP_SOCKET`
//! (the server closes the client's socket halfway through sampling, and carries on),
//! `STUCK_QUEUE` (the prompt waits in the queue forever).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

/// What the fake serves and how fast it "samples".
#[derive(Debug, Clone)]
pub struct FakeComfyScript {
    pub checkpoints: Vec<String>,
    /// Time per sampler step.
    pub step_ms: u64,
    /// Model load time on a checkpoint's first use.
    pub load_ms: u64,
}

impl Default for FakeComfyScript {
    fn default() -> Self {
        FakeComfyScript { checkpoints: vec!["sd15-fake.safetensors".into()], step_ms: 5, load_ms: 20 }
    }
}

/// Samplers the fake's KSampler accepts (a subset of ComfyUI's).
pub const SAMPLERS: [&str; 5] = ["euler", "euler_ancestral", "dpmpp_2m", "dpmpp_sde", "ddim"];

#[derive(Debug)]
struct Queued {
    prompt_id: String,
    number: i64,
    client_id: String,
    graph: Value,
}

#[derive(Default)]
struct Inner {
    sockets: HashMap<String, mpsc::UnboundedSender<Option<Message>>>,
    pending: VecDeque<Queued>,
    running: Option<String>,
    history: BTreeMap<String, Value>,
    files: HashMap<String, Vec<u8>>,
    loaded: HashSet<String>,
    interrupt: bool,
    number: i64,
    /// Every graph posted, in order.
    prompts: Vec<Value>,
}

#[derive(Clone)]
struct Fake {
    script: Arc<FakeComfyScript>,
    inner: Arc<Mutex<Inner>>,
    wake: Arc<Notify>,
}

/// A running fake ComfyUI; it stops when dropped.
pub struct FakeComfy {
    pub base_url: String,
    fake: Fake,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FakeComfy {
    pub async fn spawn(script: FakeComfyScript) -> FakeComfy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let fake = Fake { script: Arc::new(script), inner: Arc::default(), wake: Arc::new(Notify::new()) };
        let app = Router::new()
            .route("/system_stats", get(system_stats))
            .route("/object_info/{node}", get(object_info))
            .route("/prompt", post(post_prompt))
            .route("/queue", get(get_queue).post(post_queue))
            .route("/interrupt", post(interrupt))
            .route("/history/{id}", get(history))
            .route("/view", get(view))
            .route("/ws", get(ws))
            .with_state(fake.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let worker = tokio::spawn(worker(fake.clone()));
        FakeComfy { base_url: format!("http://{addr}"), fake, tasks: vec![server, worker] }
    }

    /// Every graph posted to `/prompt` (accepted or not), in order.
    pub fn prompts(&self) -> Vec<Value> {
        bench_shared::sync::lock(&self.fake.inner).prompts.clone()
    }

    /// Prompts waiting in the queue.
    pub fn pending(&self) -> usize {
        bench_shared::sync::lock(&self.fake.inner).pending.len()
    }
}

impl Drop for FakeComfy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn system_stats() -> Json<Value> {
    Json(json!({"system": {"os": "posix", "ram_total": 0, "ram_free": 0, "comfyui_version": "0.3.40-fake",
        "python_version": "3.12", "pytorch_version": "none", "embedded_python": false, "argv": ["main.py"]},
        "devices": []}))
}

async fn object_info(State(f): State<Fake>, Path(node): Path<String>) -> Response {
    if node != "CheckpointLoaderSimple" {
        return Json(json!({})).into_response();
    }
    Json(json!({"CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": [f.script.checkpoints,
        {"tooltip": "The name of the checkpoint (model) to load."}]}}, "output": ["MODEL", "CLIP", "VAE"],
        "name": "CheckpointLoaderSimple", "category": "loaders"}}))
    .into_response()
}

fn node_error(class: &str, kind: &str, message: &str, details: String) -> Value {
    json!({"errors": [{"type": kind, "message": message, "details": details, "extra_info": {}}],
        "dependent_outputs": ["7"], "class_type": class})
}

async fn post_prompt(State(f): State<Fake>, Json(body): Json<Value>) -> Response {
    let graph = body["prompt"].clone();
    let client_id = body["client_id"].as_str().unwrap_or_default().to_owned();
    let mut inner = bench_shared::sync::lock(&f.inner);
    inner.prompts.push(graph.clone());
    let mut errors = serde_json::Map::new();
    let ckpt = graph["1"]["inputs"]["ckpt_name"].as_str().unwrap_or_default();
    if !f.script.checkpoints.iter().any(|c| c == ckpt) {
        let details = format!("ckpt_name: '{ckpt}' not in {:?}", f.script.checkpoints);
        errors.insert(
            "1".into(),
            node_error("CheckpointLoaderSimple", "value_not_in_list", "Value not in list", details),
        );
    }
    let sampler = graph["5"]["inputs"]["sampler_name"].as_str().unwrap_or_default();
    if !SAMPLERS.contains(&sampler) {
        let details = format!("sampler_name: '{sampler}' not in {SAMPLERS:?}");
        errors.insert("5".into(), node_error("KSampler", "value_not_in_list", "Value not in list", details));
    }
    if !errors.is_empty() {
        let error = json!({"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
            "details": "", "extra_info": {}});
        return (StatusCode::BAD_REQUEST, Json(json!({"error": error, "node_errors": errors}))).into_response();
    }
    inner.number += 1;
    let number = inner.number;
    let prompt_id = uuid::Uuid::new_v4().to_string();
    inner.pending.push_back(Queued { prompt_id: prompt_id.clone(), number, client_id, graph });
    drop(inner);
    f.wake.notify_one();
    Json(json!({"prompt_id": prompt_id, "number": number, "node_errors": {}})).into_response()
}

async fn get_queue(State(f): State<Fake>) -> Json<Value> {
    let inner = bench_shared::sync::lock(&f.inner);
    let entry = |id: &str, n: i64| json!([n, id, {}, {}, ["7"]]);
    let running: Vec<Value> = inner.running.iter().map(|id| entry(id, 0)).collect();
    let pending: Vec<Value> = inner.pending.iter().map(|q| entry(&q.prompt_id, q.number)).collect();
    Json(json!({"queue_running": running, "queue_pending": pending}))
}

async fn post_queue(State(f): State<Fake>, Json(body): Json<Value>) -> StatusCode {
    let ids: Vec<String> = body["delete"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    bench_shared::sync::lock(&f.inner).pending.retain(|q| !ids.contains(&q.prompt_id));
    StatusCode::OK
}

async fn interrupt(State(f): State<Fake>) -> StatusCode {
    bench_shared::sync::lock(&f.inner).interrupt = true;
    StatusCode::OK
}

async fn history(State(f): State<Fake>, Path(id): Path<String>) -> Json<Value> {
    let inner = bench_shared::sync::lock(&f.inner);
    Json(match inner.history.get(&id) {
        Some(entry) => json!({ id: entry }),
        None => json!({}),
    })
}

async fn view(State(f): State<Fake>, Query(q): Query<HashMap<String, String>>) -> Response {
    let name = q.get("filename").cloned().unwrap_or_default();
    if q.get("type").map(String::as_str) != Some("output") {
        return StatusCode::NOT_FOUND.into_response();
    }
    match bench_shared::sync::lock(&f.inner).files.get(&name) {
        Some(b) => ([(axum::http::header::CONTENT_TYPE, "image/png")], b.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn ws(State(f): State<Fake>, Query(q): Query<HashMap<String, String>>, up: WebSocketUpgrade) -> Response {
    let client_id = q.get("clientId").cloned().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    up.on_upgrade(move |socket| serve_socket(f, client_id, socket))
}

async fn serve_socket(f: Fake, client_id: String, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let remaining = bench_shared::sync::lock(&f.inner).pending.len();
    let hello =
        json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": remaining}}, "sid": client_id}});
    // As ComfyUI does: the socket is registered first, then greeted with `status`.
    bench_shared::sync::lock(&f.inner).sockets.insert(client_id.clone(), tx);
    if socket.send(Message::Text(hello.to_string().into())).await.is_err() {
        return;
    }
    while let Some(msg) = rx.recv().await {
        match msg {
            Some(m) => {
                if socket.send(m).await.is_err() {
                    break;
                }
            }
            None => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
    bench_shared::sync::lock(&f.inner).sockets.remove(&client_id);
}

fn send(f: &Fake, client: &str, kind: &str, data: Value) {
    if let Some(tx) = bench_shared::sync::lock(&f.inner).sockets.get(client) {
        let _ = tx.send(Some(Message::Text(json!({"type": kind, "data": data}).to_string().into())));
    }
}

fn send_preview(f: &Fake, client: &str, png: Vec<u8>) {
    let mut frame = 1u32.to_be_bytes().to_vec();
    frame.extend_from_slice(&2u32.to_be_bytes());
    frame.extend_from_slice(&png);
    if let Some(tx) = bench_shared::sync::lock(&f.inner).sockets.get(client) {
        let _ = tx.send(Some(Message::Binary(frame.into())));
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Runs queued prompts one at a time, as ComfyUI's prompt worker does.
async fn worker(f: Fake) {
    loop {
        let next = {
            let mut inner = bench_shared::sync::lock(&f.inner);
            let pos = inner
                .pending
                .iter()
                .position(|q| !q.graph["2"]["inputs"]["text"].as_str().unwrap_or("").contains("STUCK_QUEUE"));
            let q = pos.and_then(|p| inner.pending.remove(p));
            if let Some(q) = &q {
                inner.running = Some(q.prompt_id.clone());
                inner.interrupt = false;
            }
            q
        };
        match next {
            Some(q) => {
                execute(&f, q).await;
                bench_shared::sync::lock(&f.inner).running = None;
            }
            None => f.wake.notified().await,
        }
    }
}

async fn execute(f: &Fake, q: Queued) {
    let (id, client, g) = (q.prompt_id.as_str(), q.client_id.as_str(), &q.graph);
    let text = g["2"]["inputs"]["text"].as_str().unwrap_or_default().to_owned();
    let steps = g["5"]["inputs"]["steps"].as_u64().unwrap_or(1) as u32;
    let seed = g["5"]["inputs"]["seed"].as_u64().unwrap_or(0);
    let (w, h) = (
        g["4"]["inputs"]["width"].as_u64().unwrap_or(64) as u32,
        g["4"]["inputs"]["height"].as_u64().unwrap_or(64) as u32,
    );
    let batch = g["4"]["inputs"]["batch_size"].as_u64().unwrap_or(1);
    let ckpt = g["1"]["inputs"]["ckpt_name"].as_str().unwrap_or_default().to_owned();
    let remaining = bench_shared::sync::lock(&f.inner).pending.len();
    send(f, client, "status", json!({"status": {"exec_info": {"queue_remaining": remaining + 1}}}));
    let start = json!({"prompt_id": id, "timestamp": now_ms()});
    send(f, client, "execution_start", start.clone());
    let mut messages = vec![json!(["execution_start", start])];
    let cached = bench_shared::sync::lock(&f.inner).loaded.contains(&ckpt);
    send(
        f,
        client,
        "execution_cached",
        json!({"nodes": if cached { vec!["1"] } else { vec![] }, "prompt_id": id, "timestamp": now_ms()}),
    );
    for node in ["1", "2", "3", "4", "5"] {
        if node == "1" && cached {
            continue;
        }
        send(f, client, "executing", json!({"node": node, "display_node": node, "prompt_id": id}));
        if node == "1" {
            tokio::time::sleep(Duration::from_millis(f.script.load_ms)).await;
            bench_shared::sync::lock(&f.inner).loaded.insert(ckpt.clone());
        }
    }
    let finish = |f: &Fake, status: &str, outputs: Value, messages: Vec<Value>| {
        let entry = json!({"prompt": [q.number, id, g, {"client_id": client}, ["7"]], "outputs": outputs,
            "status": {"status_str": status, "completed": status == "success", "messages": messages}, "meta": {}});
        bench_shared::sync::lock(&f.inner).history.insert(id.to_owned(), entry);
    };
    for step in 1..=steps {
        tokio::time::sleep(Duration::from_millis(f.script.step_ms)).await;
        if std::mem::take(&mut bench_shared::sync::lock(&f.inner).interrupt) {
            let data = json!({"prompt_id": id, "node_id": "5", "node_type": "KSampler", "executed": ["1", "2", "3", "4"], "timestamp": now_ms()});
            send(f, client, "execution_interrupted", data.clone());
            messages.push(json!(["execution_interrupted", data]));
            finish(f, "error", json!({}), messages);
            send(f, client, "executing", json!({"node": null, "prompt_id": id}));
            return;
        }
        send(f, client, "progress", json!({"value": step, "max": steps, "prompt_id": id, "node": "5"}));
        send_preview(f, client, crate::testkit::png::seeded_png(seed ^ u64::from(step), 16, 16));
        if text.contains("DROP_SOCKET")
            && step == steps.div_ceil(2)
            && let Some(tx) = bench_shared::sync::lock(&f.inner).sockets.get(client)
        {
            let _ = tx.send(None);
        }
    }
    send(f, client, "executing", json!({"node": "6", "display_node": "6", "prompt_id": id}));
    if text.contains("FAIL_NODE") {
        let data = json!({"prompt_id": id, "node_id": "6", "node_type": "VAEDecode", "executed": ["1", "2", "3", "4", "5"],
            "exception_message": "Allocation on device 0 would exceed allowed memory. (out of memory)",
            "exception_type": "torch.OutOfMemoryError", "traceback": ["  File \"nodes.py\", line 287, in decode\n"],
            "current_inputs": {}, "current_outputs": {}, "timestamp": now_ms()});
        send(f, client, "execution_error", data.clone());
        messages.push(json!(["execution_error", data]));
        finish(f, "error", json!({}), messages);
        send(f, client, "executing", json!({"node": null, "prompt_id": id}));
        return;
    }
    send(f, client, "executing", json!({"node": "7", "display_node": "7", "prompt_id": id}));
    let mut images = Vec::new();
    for i in 0..batch {
        let name = format!("bench_race_{:05}_.png", q.number * 100 + i as i64);
        let png = crate::testkit::png::seeded_png(seed.wrapping_mul(1000).wrapping_add(i), w, h);
        bench_shared::sync::lock(&f.inner).files.insert(name.clone(), png);
        images.push(json!({"filename": name, "subfolder": "", "type": "output"}));
    }
    let outputs = json!({"7": {"images": images}});
    send(f, client, "executed", json!({"node": "7", "display_node": "7", "output": outputs["7"], "prompt_id": id}));
    let success = json!({"prompt_id": id, "timestamp": now_ms()});
    send(f, client, "execution_success", success.clone());
    messages.push(json!(["execution_success", success]));
    // ComfyUI writes the history entry after execution_success, before `executing null`.
    tokio::time::sleep(Duration::from_millis(2)).await;
    finish(f, "success", outputs, messages);
    send(f, client, "executing", json!({"node": null, "prompt_id": id}));
    let remaining = bench_shared::sync::lock(&f.inner).pending.len();
    send(f, client, "status", json!({"status": {"exec_info": {"queue_remaining": remaining}}}));
}
