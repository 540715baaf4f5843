//! A fake agent for fault cases: an axum router on 127.0.0.1:0 speaking the agent API
//! (`/health`, `/capabilities`, `POST /jobs`, `GET /jobs/{id}`, `GET /jobs/{id}/events`, `/ws`)
//! whose events the test emits by hand, and which can drop its WebSockets, refuse new ones,
//! or die (stop answering anything). Its `GET /time` shows a clock shifted by
//! [`FakeAgent::set_clock_offset_ms`] (or answers 404, as an older agent does).

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bench_shared::api::{Capabilities, EngineHealth, Health, JobAccepted, JobStatus, JobView};
use bench_shared::engine::{EngineInfo, EngineKind, ModelInfo};
use bench_shared::hardware::Hardware;
use bench_shared::job::JobSpec;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::support::{WAIT_LIMIT, now_ms};

/// A job the fake received.
#[derive(Debug, Clone)]
pub struct FakeJob {
    pub job_id: String,
    pub body: Value,
    /// Epoch ms when `POST /jobs` arrived.
    pub received_at_ms: f64,
    pub events: Vec<Value>,
}

struct Inner {
    machine_id: String,
    models: Mutex<Vec<String>>,
    jobs: Mutex<Vec<FakeJob>>,
    /// `after_seq` of every `GET /jobs/{id}/events` call.
    backfills: Mutex<Vec<u64>>,
    events_tx: broadcast::Sender<String>,
    /// Bumped to make every open WebSocket drop.
    generation: watch::Sender<u64>,
    subscribers: watch::Sender<usize>,
    jobs_posted: watch::Sender<usize>,
    accept_ws: AtomicBool,
    dead: AtomicBool,
    /// When set, `POST /jobs` answers this status and body.
    refuse: Mutex<Option<(u16, Value)>>,
    /// Job ids of every `DELETE /jobs/{id}`.
    cancels: Mutex<Vec<String>>,
    /// This agent's clock − the real clock, ms; `i64::MIN` = no `GET /time` (404).
    clock_offset_ms: AtomicI64,
}

#[derive(Clone)]
struct Shared(Arc<Inner>);

pub struct FakeAgent {
    pub base_url: String,
    inner: Arc<Inner>,
    server: JoinHandle<()>,
}

impl FakeAgent {
    pub async fn spawn(machine_id: &str, models: &[&str]) -> FakeAgent {
        let inner = Arc::new(Inner {
            machine_id: machine_id.into(),
            models: Mutex::new(models.iter().map(|m| m.to_string()).collect()),
            jobs: Mutex::new(Vec::new()),
            backfills: Mutex::new(Vec::new()),
            events_tx: broadcast::channel(16_384).0,
            generation: watch::channel(0).0,
            subscribers: watch::channel(0).0,
            jobs_posted: watch::channel(0).0,
            accept_ws: AtomicBool::new(true),
            dead: AtomicBool::new(false),
            refuse: Mutex::new(None),
            cancels: Mutex::new(Vec::new()),
            clock_offset_ms: AtomicI64::new(0),
        });
        let app = Router::new()
            .route("/health", get(health))
            .route("/time", get(time))
            .route("/capabilities", get(capabilities))
            .route("/jobs", post(post_job))
            .route("/jobs/{id}", get(get_job).delete(cancel_job))
            .route("/jobs/{id}/events", get(job_events))
            .route("/ws", get(ws))
            .with_state(Shared(inner.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeAgent { base_url: format!("http://{addr}"), inner, server }
    }

    /// Waits until `n` jobs were posted; returns them.
    pub async fn wait_jobs(&self, n: usize) -> Vec<FakeJob> {
        let mut rx = self.inner.jobs_posted.subscribe();
        tokio::time::timeout(WAIT_LIMIT, rx.wait_for(|c| *c >= n)).await.expect("job posted in time").unwrap();
        self.jobs()
    }

    /// Changes the advertised models (as if one had just been pulled).
    pub fn set_models(&self, models: &[&str]) {
        *self.inner.models.lock().unwrap() = models.iter().map(|m| m.to_string()).collect();
    }

    /// Shifts this agent's clock (what `GET /time` shows) by `ms`; `None`: `GET /time` answers
    /// 404, as an agent older than the endpoint does.
    pub fn set_clock_offset_ms(&self, ms: Option<i64>) {
        self.inner.clock_offset_ms.store(ms.unwrap_or(i64::MIN), Ordering::SeqCst);
    }

    pub fn jobs(&self) -> Vec<FakeJob> {
        self.inner.jobs.lock().unwrap().clone()
    }

    /// Makes `POST /jobs` answer `status` with `body` from now on.
    /// Forgets every job, as a restarted agent does (its endpoints answer 404 for them).
    pub fn forget_jobs(&self) {
        self.inner.jobs.lock().unwrap().clear();
    }

    pub fn refuse_jobs(&self, status: u16, body: Value) {
        *self.inner.refuse.lock().unwrap() = Some((status, body));
    }

    pub fn cancels(&self) -> Vec<String> {
        self.inner.cancels.lock().unwrap().clone()
    }

    pub fn backfills(&self) -> Vec<u64> {
        self.inner.backfills.lock().unwrap().clone()
    }

    /// Emits one event of `job_id` (stored for replay, sent to connected WebSockets); returns its seq.
    pub fn emit(&self, job_id: &str, kind: &str, payload: Value) -> u64 {
        let mut jobs = self.inner.jobs.lock().unwrap();
        let job = jobs.iter_mut().find(|j| j.job_id == job_id).expect("known job");
        let seq = job.events.len() as u64 + 1;
        let event = json!({"job_id": job_id, "seq": seq, "machine_id": self.inner.machine_id,
            "emitted_at_s": now_ms() / 1000.0, "type": kind, "payload": payload});
        job.events.push(event.clone());
        let _ = self.inner.events_tx.send(event.to_string());
        seq
    }

    pub fn token(&self, job_id: &str, text: &str) -> u64 {
        self.emit(job_id, "llm_token", json!({"text": text, "timestamp_s": now_ms() / 1000.0, "repeat_index": 0}))
    }

    pub fn started(&self, job_id: &str) -> u64 {
        self.emit(
            job_id,
            "job_started",
            json!({"test_type": "llm_generate", "models": self.models(), "engine": "mock",
                   "engine_base_url": "", "start_at": null, "started_at_s": now_ms() / 1000.0}),
        )
    }

    /// A `job_started` whose first request left exactly at the job's `start_at` (on the agent's clock).
    pub fn started_on_time(&self, job: &FakeJob) -> u64 {
        let at = job.body["start_at"].as_u64().expect("a start_at");
        self.emit(
            &job.job_id,
            "job_started",
            json!({"test_type": "llm_generate", "models": self.models(), "engine": "mock",
                   "engine_base_url": "", "start_at": at, "started_at_s": at as f64 / 1000.0}),
        )
    }

    fn models(&self) -> Vec<String> {
        self.inner.models.lock().unwrap().clone()
    }

    /// A `job_done` with bench-race metrics.
    pub fn done(&self, job_id: &str, text: &str, tok_s: f64) -> u64 {
        self.emit(
            job_id,
            "job_done",
            json!({"ttft_ms": 50.0, "gen_tokens": 5, "gen_tokens_per_s": tok_s, "total_ms": 300.0,
                   "model": self.models()[0], "engine": "mock", "ttfc_ms": 50.0, "decode_tok_s": tok_s,
                   "engine_decode_tok_s": null, "prompt_tokens": 7, "engine_prefill_tok_s": null,
                   "client_prefill_tok_s": null, "load_ms": null, "token_source": "chunks", "repeats": 1,
                   "aggregate": {"requests": 1}, "requests": [], "output_text": text}),
        )
    }

    /// Closes every open WebSocket (no close frame: the connection just ends) and, with
    /// `refuse`, answers new ones 503; returns once none is open.
    pub async fn drop_ws(&self, refuse: bool) {
        if refuse {
            self.inner.accept_ws.store(false, Ordering::SeqCst);
        }
        self.inner.generation.send_modify(|g| *g += 1);
        self.wait_subscribers(|n| n == 0).await;
    }

    pub fn accept_ws(&self) {
        self.inner.accept_ws.store(true, Ordering::SeqCst);
    }

    pub async fn wait_subscribers(&self, ok: impl Fn(usize) -> bool) {
        let mut rx = self.inner.subscribers.subscribe();
        tokio::time::timeout(WAIT_LIMIT, rx.wait_for(|n| ok(*n))).await.expect("subscribers in time").unwrap();
    }

    /// The agent dies: open WebSockets drop, new connections are refused, and requests on
    /// connections already open never get an answer.
    pub async fn kill(&self) {
        self.inner.dead.store(true, Ordering::SeqCst);
        self.server.abort();
        self.drop_ws(true).await;
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.server.abort();
        self.inner.generation.send_modify(|g| *g += 1);
    }
}

async fn alive(s: &Shared) {
    if s.0.dead.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
}

// The fake answers with the shared contract types, as the real agent does.
async fn health(State(s): State<Shared>) -> Json<Health> {
    alive(&s).await;
    Json(Health {
        ok: true,
        machine_id: s.0.machine_id.clone(),
        label: s.0.machine_id.clone(),
        engine: EngineHealth {
            kind: EngineKind::Mock,
            base_url: String::new(),
            reachable: true,
            checked_age_s: Some(0.0),
            error: None,
        },
        busy: false,
        queue_len: 0,
        ws_slow_disconnects: 0,
    })
}

async fn time(State(s): State<Shared>) -> Response {
    alive(&s).await;
    match s.0.clock_offset_ms.load(Ordering::SeqCst) {
        i64::MIN => (StatusCode::NOT_FOUND, Json(json!({"error": "no route GET /time"}))).into_response(),
        shift => Json(bench_shared::api::AgentTime { now_unix_ms: now_ms() + shift as f64 }).into_response(),
    }
}

async fn capabilities(State(s): State<Shared>) -> Json<Capabilities> {
    alive(&s).await;
    let names = s.0.models.lock().unwrap().clone();
    let models = names
        .iter()
        .map(|m| ModelInfo { name: m.clone(), family: Some("fake".into()), ..Default::default() })
        .collect();
    Json(Capabilities {
        machine_id: s.0.machine_id.clone(),
        label: s.0.machine_id.clone(),
        tests: vec!["llm_generate".into(), "llm_sweep".into()],
        llm_models: names,
        whisper_models: vec![],
        sdxl_profiles: vec![],
        engine: EngineInfo {
            kind: EngineKind::Mock,
            base_url: String::new(),
            version: Some("fake-1".into()),
            reachable: true,
            fallback_reason: None,
        },
        models,
        hardware: Hardware {
            os: Some("linux".into()),
            hostname: Some("fake".into()),
            cpu_brand: Some("Fake CPU".into()),
            cpu_logical_cores: 4,
            cpu_physical_cores: Some(2),
            memory_total_bytes: 8_000_000_000,
            gpus: vec![],
            ..Default::default()
        },
        queue_limit: Some(16),
        engine_fingerprint: None,
        client_ceiling: None,
        client_ceiling_unavailable: None,
        image_engine: None,
        speech_engine: None,
        legacy: None,
        extra: Default::default(),
    })
}

async fn post_job(State(s): State<Shared>, Json(body): Json<Value>) -> Response {
    alive(&s).await;
    if let Some((status, body)) = s.0.refuse.lock().unwrap().clone() {
        return (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
    }
    let job_id = uuid::Uuid::new_v4().to_string();
    s.0.jobs.lock().unwrap().push(FakeJob {
        job_id: job_id.clone(),
        body,
        received_at_ms: now_ms(),
        events: Vec::new(),
    });
    s.0.jobs_posted.send_modify(|n| *n += 1);
    (StatusCode::ACCEPTED, Json(JobAccepted { job_id, position: 0, status: JobStatus::Queued })).into_response()
}

async fn get_job(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    alive(&s).await;
    let jobs = s.0.jobs.lock().unwrap();
    match jobs.iter().find(|j| j.job_id == id) {
        None => (StatusCode::NOT_FOUND, Json(json!({"error": "no such job"}))).into_response(),
        Some(j) => {
            let terminal =
                j.events.iter().any(|e| bench_shared::event::is_terminal_type(e["type"].as_str().unwrap_or("")));
            let view = JobView {
                job_id: id,
                status: if terminal { JobStatus::Done } else { JobStatus::Running },
                spec: JobSpec::from_json(&j.body, j.received_at_ms as u64)
                    .expect("the fake only keeps jobs central posted"),
                position: None,
                engine: Some(EngineKind::Mock),
                fallback_reason: None,
                created_at_s: j.received_at_ms / 1000.0,
                requests: vec![],
                aggregate: None,
                error: None,
                last_seq: j.events.len() as u64,
            };
            Json(view).into_response()
        }
    }
}

async fn cancel_job(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    alive(&s).await;
    s.0.cancels.lock().unwrap().push(id.clone());
    Json(json!({"job_id": id, "status": "cancelled"})).into_response()
}

async fn job_events(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    alive(&s).await;
    let after: u64 = q.get("after_seq").and_then(|v| v.parse().ok()).unwrap_or(0);
    s.0.backfills.lock().unwrap().push(after);
    let jobs = s.0.jobs.lock().unwrap();
    let Some(job) = jobs.iter().find(|j| j.job_id == id) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "no such job"}))).into_response();
    };
    let body: String =
        job.events.iter().filter(|e| e["seq"].as_u64().unwrap() > after).map(|e| format!("{e}\n")).collect();
    ([("content-type", "application/x-ndjson")], body).into_response()
}

async fn ws(State(s): State<Shared>, upgrade: WebSocketUpgrade) -> Response {
    alive(&s).await;
    if !s.0.accept_ws.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not now").into_response();
    }
    // Subscribe before answering, so no event emitted after the upgrade is missed.
    let rx = s.0.events_tx.subscribe();
    let generation = s.0.generation.subscribe();
    upgrade.on_upgrade(move |socket| serve_ws(socket, s, rx, generation))
}

async fn serve_ws(
    mut socket: WebSocket,
    s: Shared,
    mut rx: broadcast::Receiver<String>,
    mut generation: watch::Receiver<u64>,
) {
    generation.mark_unchanged();
    s.0.subscribers.send_modify(|n| *n += 1);
    loop {
        tokio::select! {
            _ = generation.changed() => break,
            msg = rx.recv() => match msg {
                Ok(text) => if socket.send(Message::text(text)).await.is_err() { break },
                Err(_) => break,
            },
            incoming = socket.recv() => if !matches!(incoming, Some(Ok(_))) { break },
        }
    }
    drop(socket);
    s.0.subscribers.send_modify(|n| *n -= 1);
}
