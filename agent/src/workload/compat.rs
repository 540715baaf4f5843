//! The original bench-race's image and compute routes, answered on top of this agent's job queue
//! (behind the same bearer token as every other route), so its central and scripts keep working:
//!
//! - `POST /api/comfy/txt2img` (alias `POST /api/image/start`): its body
//!   `{run_id, prompt, checkpoint, seed, steps = 10, width = 512, height = 512, num_images = 1,
//!   repeat = 1, sampler = "DPM++ 2M Karras"}` becomes an `image_generate` job;
//!   answer `{accepted, agent_job_id, job_id}`. Fields it does not know are ignored, as its server did.
//! - `GET /api/image/job_status?job_id=`, `GET /api/image/jobs[?active=true]`: its job status
//!   shape, read from the job's events.
//! - `GET /api/image/result/{image_id}`: the image bytes.
//! - `GET /api/comfy/health`, `GET /api/comfy/checkpoints`.
//! - `POST /api/compute` `{algorithm, n, threads, repeat_index, job_id?}`: runs a `compute` job and
//!   answers when it is done, with its result shape.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bench_shared::event::{Envelope, Event, JobResult};
use bench_shared::job::{JobSpec, Spec};
use bench_shared::workload::compute::{Algorithm, ComputeSpec};
use bench_shared::workload::image::{ImageInfo, ImageSpec};
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::extract::JsonBody;
use crate::api::state::AppState;

/// The original's txt2img body.
#[derive(Debug, Deserialize)]
pub struct Txt2Img {
    #[serde(default)]
    run_id: Option<String>,
    prompt: String,
    checkpoint: String,
    seed: u64,
    #[serde(default = "ten")]
    steps: u32,
    #[serde(default = "side")]
    width: u32,
    #[serde(default = "side")]
    height: u32,
    #[serde(default = "one")]
    num_images: u32,
    #[serde(default = "one")]
    repeat: u32,
    #[serde(default = "label")]
    sampler: String,
}

fn ten() -> u32 {
    10
}
fn side() -> u32 {
    512
}
fn one() -> u32 {
    1
}
fn label() -> String {
    "DPM++ 2M Karras".into()
}

fn now_ms() -> u64 {
    (crate::engine::wall_now_s() * 1000.0) as u64
}

fn decode<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> Result<T, ApiError> {
    let obj = body.as_object().ok_or_else(|| ApiError::bad("body", "must be a JSON object"))?.clone();
    // Unknown fields are ignored here (the original's server did); `decode_spec` names the rest.
    serde_path_to_error::deserialize::<_, T>(serde_json::Value::Object(obj)).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        match msg.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
            Some(f) => ApiError::bad(f, "is required"),
            None => ApiError::bad(if path == "." { "body".into() } else { path }, msg),
        }
    })
}

/// `POST /api/comfy/txt2img`, `POST /api/image/start`.
pub async fn txt2img(State(state): State<AppState>, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let b: Txt2Img = decode(body)?;
    let mut spec = ImageSpec {
        prompt: b.prompt,
        negative_prompt: String::new(),
        checkpoint: Some(b.checkpoint),
        model: None,
        seed: b.seed,
        steps: b.steps,
        width: b.width,
        height: b.height,
        cfg: 7.0,
        sampler: b.sampler,
        scheduler: None,
        num_images: b.num_images,
        repeat: b.repeat,
        start_at: None,
        run_id: b.run_id,
    };
    spec.validate(now_ms())?;
    let spec = JobSpec::ImageGenerate(spec);
    crate::api::workloads::check(&state, &spec).await?;
    let (job_id, _) = state.jobs.submit(spec, None)?;
    Ok(Json(serde_json::json!({"accepted": true, "agent_job_id": job_id, "job_id": job_id})).into_response())
}

/// The original's job status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImageStatus {
    pub job_id: String,
    /// `pending`, `running`, `complete`, `error`, `timeout` (or `cancelled`).
    pub status: String,
    pub progress: StatusProgress,
    pub queue_latency_ms: Option<f64>,
    pub gen_time_ms: Option<f64>,
    pub total_ms: Option<f64>,
    pub total_time_s: Option<f64>,
    pub images: Vec<String>,
    pub image_filenames: Vec<String>,
    pub error: Option<String>,
    pub run_id: Option<String>,
    pub checkpoint: Option<String>,
    pub resolution: String,
    pub seed: u64,
    pub steps: u32,
    pub sampler: String,
    pub num_images: u32,
    pub repeat: u32,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusProgress {
    pub current_step: u32,
    pub total_steps: u32,
    pub percent: f64,
}

async fn image_status(state: &AppState, job_id: &str) -> Option<ImageStatus> {
    let view = state.jobs.get(job_id)?;
    let JobSpec::ImageGenerate(spec) = &view.spec else { return None };
    let mut s = ImageStatus {
        job_id: job_id.to_owned(),
        status: "pending".into(),
        progress: StatusProgress { current_step: 0, total_steps: spec.steps, percent: 0.0 },
        run_id: spec.run_id.clone(),
        checkpoint: spec.checkpoint_name().map(str::to_owned),
        resolution: spec.resolution(),
        seed: spec.seed,
        steps: spec.steps,
        sampler: spec.sampler.clone(),
        num_images: spec.num_images,
        repeat: spec.repeat,
        ..ImageStatus::default()
    };
    let events = state.hub.events_full(job_id, 0).await.unwrap_or_default();
    let mut images: Vec<ImageInfo> = Vec::new();
    for msg in events {
        let Ok(env) = serde_json::from_str::<Envelope>(&msg.json) else { continue };
        match env.event {
            Event::ImageStarted(st) => {
                s.status = "running".into();
                s.queue_latency_ms = st.queue_latency_ms.or(s.queue_latency_ms);
            }
            Event::ImageProgress(p) => {
                s.status = "running".into();
                let pct = if p.total_steps > 0 { 100.0 * f64::from(p.step) / f64::from(p.total_steps) } else { 0.0 };
                s.progress = StatusProgress {
                    current_step: p.step,
                    total_steps: p.total_steps,
                    percent: (pct * 10.0).round() / 10.0,
                };
            }
            Event::ImageComplete(c) => {
                s.queue_latency_ms = c.queue_latency_ms;
                s.gen_time_ms = Some(c.gen_time_ms);
                s.total_ms = Some(c.total_ms);
                s.total_time_s = Some(c.total_time_s);
                images.extend(c.images.iter().cloned());
            }
            Event::JobDone(d) => {
                if let JobResult::Image(d) = *d {
                    s.status = "complete".into();
                    s.gen_time_ms = Some(d.gen_time_ms);
                    s.total_ms = Some(d.total_ms);
                    s.total_time_s = Some(d.total_ms / 1000.0);
                    s.progress = StatusProgress { current_step: spec.steps, total_steps: spec.steps, percent: 100.0 };
                }
            }
            Event::JobError(e) => {
                s.status = if e.kind == bench_shared::event::ErrorKind::Timeout { "timeout" } else { "error" }.into();
                s.error = Some(e.message);
            }
            Event::JobCancelled(c) => {
                s.status = "cancelled".into();
                s.error = Some(c.reason);
            }
            _ => {}
        }
    }
    s.images = images.iter().map(|i| i.image_id.clone()).collect();
    s.image_filenames = images.into_iter().map(|i| i.filename).collect();
    Some(s)
}

/// `GET /api/image/job_status?job_id=`.
pub async fn job_status(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<ImageStatus>, ApiError> {
    let id = q.get("job_id").filter(|s| !s.is_empty()).ok_or_else(|| ApiError::bad("job_id", "is required"))?;
    image_status(&state, id).await.map(Json).ok_or_else(|| ApiError::NotFound(format!("no image job {id:?}")))
}

/// `GET /api/image/jobs[?active=true]`.
pub async fn jobs(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let active = match q.get("active").map(String::as_str) {
        None | Some("false" | "0") => false,
        Some("true" | "1") => true,
        Some(other) => return Err(ApiError::bad("active", format!("must be true or false, got {other:?}"))),
    };
    let mut out = Vec::new();
    for v in state.jobs.list() {
        if active && v.status.is_finished() {
            continue;
        }
        if let Some(s) = image_status(&state, &v.job_id).await {
            out.push(s);
        }
    }
    Ok(Json(serde_json::json!({ "jobs": out })).into_response())
}

/// `GET /api/image/result/{image_id}`.
pub async fn result(State(state): State<AppState>, Path(image_id): Path<String>) -> Result<Response, ApiError> {
    if uuid::Uuid::parse_str(&image_id).is_err() {
        return Err(ApiError::bad("image_id", "must be a UUID"));
    }
    let store = crate::workload::store::ImageStore::new(&state.config.results_dir);
    let (path, ct) = store.find(&image_id).await.ok_or_else(|| ApiError::NotFound(format!("no image {image_id}")))?;
    let bytes = tokio::fs::read(&path).await.map_err(|e| ApiError::NotFound(format!("image {image_id}: {e}")))?;
    Ok(([(header::CONTENT_TYPE, ct), (header::CACHE_CONTROL, "private, max-age=3600")], bytes).into_response())
}

/// `GET /api/comfy/health`.
pub async fn comfy_health(State(state): State<AppState>) -> Json<serde_json::Value> {
    let cfg = &state.config;
    let (running, version, checkpoints, error) = match &state.image {
        Some(e) => {
            let p = e.status(true).await;
            (p.reachable, p.version.clone(), p.models.clone(), p.error.clone())
        }
        None => (false, None, Vec::new(), Some("no image_engine is configured".to_owned())),
    };
    Json(serde_json::json!({"running": running, "version": version, "checkpoints": checkpoints,
        "machine_id": cfg.machine_id, "label": cfg.label, "error": error}))
}

/// `GET /api/comfy/checkpoints`.
pub async fn comfy_checkpoints(State(state): State<AppState>) -> Json<serde_json::Value> {
    let names = match &state.image {
        Some(e) => e.status(false).await.models.clone(),
        None => Vec::new(),
    };
    let items: Vec<serde_json::Value> = names.into_iter().map(|n| serde_json::json!({"name": n})).collect();
    Json(serde_json::json!({ "items": items }))
}

/// The original's compute body.
#[derive(Debug, Deserialize)]
pub struct ComputeBody {
    #[serde(default)]
    algorithm: Option<String>,
    n: u64,
    #[serde(default = "one")]
    threads: u32,
    #[serde(default = "one")]
    repeat_index: u32,
    #[serde(default)]
    job_id: Option<String>,
}

/// `POST /api/compute`: answers when the count is done.
pub async fn compute(State(state): State<AppState>, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let b: ComputeBody = decode(body)?;
    if let Some(a) = &b.algorithm
        && a != Algorithm::SegmentedSieve.as_str()
    {
        return Err(ApiError::bad("algorithm", format!("only segmented_sieve runs here, got {a:?}")));
    }
    if let Some(id) = &b.job_id
        && (id.is_empty() || id.len() > 64 || !id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'))
    {
        return Err(ApiError::bad("job_id", "must be 1 to 64 letters, digits, '-' or '_'"));
    }
    let mut spec =
        ComputeSpec { n: b.n, threads: b.threads, repeat: 1, algorithm: Algorithm::SegmentedSieve, start_at: None };
    spec.validate(now_ms())?;
    let sub = state.hub.subscribe(); // before submitting: the terminal event cannot be missed
    let (job_id, _) = state.jobs.submit_as(JobSpec::Compute(spec), None, b.job_id)?;
    let terminal = wait_terminal(sub, &job_id).await;
    let answer = match terminal.map(|e| e.event) {
        Some(Event::JobDone(d)) => match *d {
            JobResult::Compute(d) => {
                let run = d.runs.first();
                serde_json::json!({"ok": true, "algorithm": d.algorithm.as_str(), "n": d.n,
                    "threads_requested": d.threads, "threads_used": d.threads, "primes_found": d.result,
                    "elapsed_ms": run.map_or(0, |r| r.wall_ms as u64),
                    "primes_per_sec": run.and_then(|r| bench_shared::workload::per_second(d.result as f64, r.wall_ms)),
                    "repeat_index": b.repeat_index, "job_id": job_id, "wall_ms": d.wall_ms, "ops_per_s": d.ops_per_s})
            }
            _ => serde_json::json!({"ok": false, "error": "unexpected result", "job_id": job_id}),
        },
        Some(Event::JobError(e)) => serde_json::json!({"ok": false, "error": e.message, "job_id": job_id}),
        Some(Event::JobCancelled(c)) => serde_json::json!({"ok": false, "error": c.reason, "job_id": job_id}),
        _ => serde_json::json!({"ok": false, "error": "the job ended without a result", "job_id": job_id}),
    };
    Ok(Json(answer).into_response())
}

async fn wait_terminal(mut rx: tokio::sync::broadcast::Receiver<crate::hub::HubMsg>, job_id: &str) -> Option<Envelope> {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match rx.recv().await {
            Ok(m) if m.terminal && &*m.job_id == job_id => return serde_json::from_str(&m.json).ok(),
            Ok(_) | Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return None,
        }
    }
}
