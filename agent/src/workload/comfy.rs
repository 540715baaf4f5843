//! The ComfyUI client: one prompt per repeat.
//!
//! 1. Open the WebSocket (`/ws?clientId=`) first, so no message about the prompt is missed.
//! 2. `POST /prompt {prompt, client_id}`; a 400 with `node_errors` is a failure naming the node.
//! 3. Follow the socket: `execution_start` (queue latency), `execution_cached`, `progress`
//!    (`image_progress`, the sampler's pace), binary preview frames (`image_preview`),
//!    `execution_error` / `execution_interrupted` (failure naming the node), and `executing
//!    {node: null}` or `execution_success` (finished).
//! 4. `GET /history/{prompt_id}` is the source of truth for the outputs and the status; if the
//!    socket drops, the client polls it instead and says so in the result's notes.
//! 5. `GET /view` fetches each output image; the agent stores it with its SHA-256.
//!
//! A prompt not finished within `image_engine.timeout_s` (a stuck queue, a hung node) is taken
//! off ComfyUI's queue (or interrupted) and the job ends with `job_error {kind: timeout}`.

use std::time::{Duration, Instant};

use bench_shared::event::{ErrorKind, Event};
use bench_shared::workload::image::{
    ImageComplete, ImageErrorCategory, ImagePreview, ImageProgress, ImageSpec, ImageStarted, ImageTiming,
};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::comfy_wire::{self as wire, History, WsMessage};
use super::image::{Failure, ImageEngine};
use super::status::Probe;
use crate::jobs::JobEvents;

/// Between two `/history` polls when the socket is gone.
const POLL: Duration = Duration::from_millis(500);

/// Reachable? version, checkpoints.
pub async fn probe(eng: &ImageEngine) -> Probe {
    let stats = match eng.request(Method::GET, "/system_stats").send().await {
        Ok(r) => r,
        Err(e) => {
            return Probe::unreachable(format!(
                "image engine unreachable at {}: {}",
                eng.base_url(),
                bench_shared::error_chain(&e)
            ));
        }
    };
    let version = stats.text().await.ok().and_then(|b| wire::parse_version(&b));
    let info = eng.request(Method::GET, "/object_info/CheckpointLoaderSimple").send().await;
    let (models, error) = match info {
        Ok(r) if r.status().is_success() => {
            match r.text().await.map_err(|e| e.to_string()).and_then(|b| wire::parse_checkpoints(&b)) {
                Ok(m) => (m, None),
                Err(e) => (Vec::new(), Some(e)),
            }
        }
        Ok(r) => (Vec::new(), Some(format!("GET /object_info/CheckpointLoaderSimple answered {}", r.status()))),
        Err(e) => (Vec::new(), Some(bench_shared::error_chain(&e))),
    };
    Probe { reachable: true, version, models, error }
}

fn ws_url(eng: &ImageEngine, client_id: &str) -> String {
    let base = eng.base_url();
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        format!("ws://{}", base.trim_start_matches("http://"))
    };
    format!("{ws}/ws?clientId={client_id}")
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(eng: &ImageEngine, client_id: &str) -> Result<Socket, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = ws_url(eng, client_id).into_client_request().map_err(|e| e.to_string())?;
    if let Some(k) = &eng.settings.api_key {
        let v = format!("Bearer {k}").parse().map_err(|_| "api_key is not a valid header value".to_owned())?;
        req.headers_mut().insert("authorization", v);
    }
    let limit = Duration::from_secs_f64(eng.settings.connect_timeout_s);
    let mut socket = match tokio::time::timeout(limit, tokio_tungstenite::connect_async(req)).await {
        Ok(Ok((s, _))) => s,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err(format!("no answer within {:.0} s", limit.as_secs_f64())),
    };
    // ComfyUI registers the socket under its client id, then sends `status`. Until that first
    // message arrives the prompt's early progress could go nowhere, so wait for it before posting.
    match tokio::time::timeout(limit, socket.next()).await {
        Ok(Some(Ok(_))) => Ok(socket),
        Ok(Some(Err(e))) => Err(e.to_string()),
        Ok(None) => Err("closed before its first status message".into()),
        Err(_) => Err(format!("no status message within {:.0} s", limit.as_secs_f64())),
    }
}

/// What the socket told about the prompt so far.
#[derive(Debug, Default)]
struct Track {
    exec_start: Option<Instant>,
    finished: Option<Instant>,
    first_progress: Option<(u32, Instant)>,
    last_progress: Option<(u32, Instant)>,
    total_steps: Option<u32>,
    last_preview_step: Option<u32>,
    cached: Vec<String>,
}

/// Runs repeat `index` of `spec` as one ComfyUI prompt.
pub async fn run_prompt(
    eng: &ImageEngine,
    spec: &ImageSpec,
    index: u32,
    checkpoint: &str,
    events: &JobEvents,
    cancel: &CancellationToken,
) -> Result<ImageComplete, Failure> {
    let client_id = uuid::Uuid::new_v4().simple().to_string();
    let mut notes = Vec::new();
    let mut socket = match connect(eng, &client_id).await {
        Ok(s) => Some(s),
        Err(e) => {
            notes.push(format!(
                "no live progress: the ComfyUI WebSocket could not be opened ({e}); the result was read from /history"
            ));
            None
        }
    };
    let graph = wire::txt2img_graph(spec, index, checkpoint);
    let body = json!({"prompt": graph, "client_id": client_id});
    let t_submit = Instant::now();
    let deadline = t_submit + Duration::from_secs_f64(eng.settings.timeout_s);
    let resp = eng
        .request(Method::POST, "/prompt")
        .json(&body)
        .send()
        .await
        .map_err(|e| Failure::http(&e, index, "POST /prompt"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| Failure::http(&e, index, "POST /prompt"))?;
    if !status.is_success() {
        return Err(refused(index, status.as_u16(), &text));
    }
    let accepted: wire::PromptAccepted = serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            ErrorKind::Protocol,
            ImageErrorCategory::Protocol,
            index,
            format!("unreadable POST /prompt answer ({e})"),
        )
    })?;
    let prompt_id = accepted.prompt_id;
    let mut track = Track::default();
    if socket.is_none() {
        events.emit(Event::ImageStarted(started(index, &prompt_id, None, spec)));
    }
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut history: Option<History> = None;
    while track.finished.is_none() {
        let polling = socket.is_none();
        let next = async {
            match socket.as_mut() {
                Some(s) => s.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => {
                abandon(eng, &prompt_id, track.exec_start.is_some()).await;
                return Err(Failure::Cancelled);
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                return Err(timed_out(eng, index, &prompt_id, &track).await);
            }
            _ = poll.tick(), if polling => {
                if let Some(h) = read_history(eng, index, &prompt_id).await? {
                    track.finished = Some(Instant::now());
                    history = Some(h);
                }
            }
            frame = next => match frame {
                Some(Ok(Message::Text(t))) => on_text(&t, &prompt_id, t_submit, index, spec, &mut track, events)?,
                Some(Ok(Message::Binary(b))) => on_preview(eng, &b, index, spec, &mut track, events).await,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    let step = track.last_progress.map_or(0, |(s, _)| s);
                    notes.push(format!("the ComfyUI WebSocket closed at step {step}; the result was read from /history (finish time within {} ms)", POLL.as_millis()));
                    socket = None;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    let finished = track.finished.expect("the loop ends when finished");
    // The socket's "finished" may come before /history has the entry: read until it does.
    let history = match history {
        Some(h) => h,
        None => loop {
            if let Some(h) = read_history(eng, index, &prompt_id).await? {
                break h;
            }
            if Instant::now() >= deadline {
                return Err(timed_out(eng, index, &prompt_id, &track).await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        },
    };
    if let Some((interrupted, e)) = &history.error {
        return Err(exec_failure(index, *interrupted, e));
    }
    if history.status != "success" && !history.completed {
        return Err(Failure::new(
            ErrorKind::EngineError,
            ImageErrorCategory::Execution,
            index,
            format!("ComfyUI reports prompt {prompt_id} as {:?}, not completed", history.status),
        ));
    }
    if history.images.is_empty() {
        return Err(Failure::new(
            ErrorKind::Protocol,
            ImageErrorCategory::Protocol,
            index,
            format!("prompt {prompt_id} finished without output images"),
        ));
    }
    let mut images = Vec::new();
    for img in &history.images {
        let kind = if img.kind.is_empty() { "output" } else { img.kind.as_str() };
        let mut view = reqwest::Url::parse(&eng.url("/view")).map_err(|e| {
            Failure::new(
                ErrorKind::Internal,
                ImageErrorCategory::Engine,
                index,
                format!("bad image_engine.base_url: {e}"),
            )
        })?;
        view.query_pairs_mut()
            .append_pair("filename", &img.filename)
            .append_pair("subfolder", &img.subfolder)
            .append_pair("type", kind);
        let resp = eng
            .request(Method::GET, &view.as_str()[eng.base_url().len()..])
            .send()
            .await
            .map_err(|e| Failure::http(&e, index, "GET /view"))?;
        if !resp.status().is_success() {
            return Err(Failure::new(
                ErrorKind::EngineError,
                ImageErrorCategory::Engine,
                index,
                format!("GET /view {} answered {}", img.filename, resp.status()),
            ));
        }
        let bytes = resp.bytes().await.map_err(|e| Failure::http(&e, index, "GET /view"))?.to_vec();
        let ct = super::store::sniff_content_type(&bytes).ok_or_else(|| {
            Failure::new(
                ErrorKind::Protocol,
                ImageErrorCategory::Protocol,
                index,
                format!("GET /view {} is not a PNG, JPEG or WebP image", img.filename),
            )
        })?;
        let info = eng.store.save(&img.filename, bytes, ct, true).await.map_err(|e| {
            Failure::new(ErrorKind::Internal, ImageErrorCategory::Engine, index, format!("cannot store the image: {e}"))
        })?;
        images.push(info);
    }
    let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1000.0;
    let queue_latency_ms = track.exec_start.map(|s| ms(t_submit, s));
    if track.exec_start.is_none() {
        notes.push("execution start not observed: gen_time_ms includes the time in ComfyUI's queue".into());
    }
    if track.cached.iter().any(|n| n == "1") {
        notes.push("the checkpoint was already loaded (ComfyUI served its loader from cache)".into());
    }
    let timing = ImageTiming {
        queue_latency_ms,
        gen_time_ms: ms(track.exec_start.unwrap_or(t_submit), finished),
        total_ms: ms(t_submit, finished),
        first_progress: track.first_progress.map(|(s, t)| (s, ms(t_submit, t))),
        last_progress: track.last_progress.map(|(s, t)| (s, ms(t_submit, t))),
    };
    let (steps_per_s, steps_per_s_source, s_per_image) = timing.rates(spec.steps, images.len() as u32);
    let (sampler, scheduler) = spec.sampler_and_scheduler();
    Ok(ImageComplete {
        repeat_index: index,
        queue_latency_ms,
        gen_time_ms: timing.gen_time_ms,
        total_ms: timing.total_ms,
        total_time_s: timing.total_ms / 1000.0,
        steps: spec.steps,
        resolution: spec.resolution(),
        seed: spec.seed_for(index),
        checkpoint: Some(checkpoint.to_owned()),
        sampler,
        scheduler,
        cfg: spec.cfg,
        num_images: spec.num_images,
        images,
        steps_per_s,
        steps_per_s_source,
        s_per_image,
        cached_nodes: track.cached,
        prompt_id: Some(prompt_id),
        engine_s_per_image: None,
        notes,
        run_id: spec.run_id.clone(),
    })
}

fn started(index: u32, prompt_id: &str, queue_latency_ms: Option<f64>, spec: &ImageSpec) -> ImageStarted {
    ImageStarted {
        repeat_index: index,
        prompt_id: Some(prompt_id.to_owned()),
        queue_latency_ms,
        started_at_s: crate::engine::wall_now_s(),
        run_id: spec.run_id.clone(),
    }
}

fn on_text(
    text: &str,
    prompt_id: &str,
    t_submit: Instant,
    index: u32,
    spec: &ImageSpec,
    track: &mut Track,
    events: &JobEvents,
) -> Result<(), Failure> {
    let now = Instant::now();
    let Ok(msg) = WsMessage::parse(text) else {
        tracing::debug!(text, "unreadable ComfyUI message ignored");
        return Ok(());
    };
    // Messages about other clients' prompts are not ours; progress without a prompt id (older
    // ComfyUI) counts once ours has started.
    if msg.prompt_id().is_some_and(|p| p != prompt_id) {
        return Ok(());
    }
    match msg {
        WsMessage::ExecutionStart(_) if track.exec_start.is_none() => {
            track.exec_start = Some(now);
            let q = now.saturating_duration_since(t_submit).as_secs_f64() * 1000.0;
            events.emit(Event::ImageStarted(started(index, prompt_id, Some(q), spec)));
        }
        WsMessage::ExecutionCached(c) => track.cached.extend(c.nodes),
        WsMessage::Progress(p) if track.exec_start.is_some() => {
            if track.first_progress.is_none() {
                track.first_progress = Some((p.value, now));
            }
            track.last_progress = Some((p.value, now));
            track.total_steps = Some(p.max);
            events.emit(Event::ImageProgress(ImageProgress {
                repeat_index: index,
                step: p.value,
                total_steps: p.max,
                node: p.node,
                run_id: spec.run_id.clone(),
            }));
        }
        WsMessage::Executing(e) if e.node.is_none() && e.prompt_id.is_some() => track.finished = Some(now),
        WsMessage::ExecutionSuccess(_) => track.finished = Some(now),
        WsMessage::ExecutionError(e) => return Err(exec_failure(index, false, &e)),
        WsMessage::ExecutionInterrupted(e) => return Err(exec_failure(index, true, &e)),
        _ => {}
    }
    Ok(())
}

async fn on_preview(
    eng: &ImageEngine,
    frame: &[u8],
    index: u32,
    spec: &ImageSpec,
    track: &mut Track,
    events: &JobEvents,
) {
    let Some((format, image)) = wire::parse_binary(frame) else { return };
    let Some((step, _)) = track.last_progress else { return };
    let due = track.last_preview_step.is_none_or(|last| step >= last + eng.settings.preview_every_steps);
    if !due {
        return;
    }
    track.last_preview_step = Some(step);
    let ct = format.content_type();
    let size_bytes = image.len() as u64;
    let (preview_b64, image_id) = if image.len() <= bench_shared::workload::image::MAX_INLINE_BYTES {
        use base64::Engine as _;
        (Some(base64::engine::general_purpose::STANDARD.encode(image)), None)
    } else {
        match eng.store.save("preview", image.to_vec(), ct, false).await {
            Ok(info) => (None, Some(info.image_id)),
            Err(e) => {
                tracing::warn!(error = %e, "a preview could not be stored; skipped");
                return;
            }
        }
    };
    events.emit(Event::ImagePreview(Box::new(ImagePreview {
        repeat_index: index,
        step,
        total_steps: track.total_steps.unwrap_or(spec.steps),
        content_type: ct.to_owned(),
        size_bytes,
        preview_b64,
        image_id,
        run_id: spec.run_id.clone(),
    })));
}

fn refused(index: u32, status: u16, body: &str) -> Failure {
    let r = wire::parse_refusal(status, body);
    let kind = if r.missing_checkpoint { ErrorKind::ModelNotFound } else { ErrorKind::EngineError };
    let (node_id, node_type) =
        r.nodes.first().map(|(id, class, _)| (Some(id.clone()), Some(class.clone()))).unwrap_or_default();
    let mut f = Failure::new(kind, ImageErrorCategory::Validation, index, r.describe());
    if let Failure::Error { error, .. } = &mut f {
        error.node_id = node_id;
        error.node_type = node_type;
    }
    f
}

fn exec_failure(index: u32, interrupted: bool, e: &wire::ExecError) -> Failure {
    let (category, message) = if interrupted {
        (
            ImageErrorCategory::Interrupted,
            format!(
                "ComfyUI interrupted the prompt at node {} ({})",
                e.node_id.as_deref().unwrap_or("?"),
                e.node_type.as_deref().unwrap_or("unknown class")
            ),
        )
    } else {
        (ImageErrorCategory::Execution, format!("ComfyUI: {}", e.describe()))
    };
    let mut f = Failure::new(ErrorKind::EngineError, category, index, message);
    if let Failure::Error { error, .. } = &mut f {
        error.node_id = e.node_id.clone();
        error.node_type = e.node_type.clone();
    }
    f
}

async fn read_history(eng: &ImageEngine, index: u32, prompt_id: &str) -> Result<Option<History>, Failure> {
    let resp = eng
        .request(Method::GET, &format!("/history/{prompt_id}"))
        .send()
        .await
        .map_err(|e| Failure::http(&e, index, "GET /history"))?;
    if !resp.status().is_success() {
        return Err(Failure::new(
            ErrorKind::EngineError,
            ImageErrorCategory::Engine,
            index,
            format!("GET /history answered {}", resp.status()),
        ));
    }
    let body = resp.text().await.map_err(|e| Failure::http(&e, index, "GET /history"))?;
    wire::parse_history(prompt_id, &body)
        .map_err(|e| Failure::new(ErrorKind::Protocol, ImageErrorCategory::Protocol, index, e))
}

/// Takes the prompt off the queue (or interrupts it when it runs), best effort.
async fn abandon(eng: &ImageEngine, prompt_id: &str, running: bool) {
    let req = if running {
        eng.request(Method::POST, "/interrupt").json(&json!({"prompt_id": prompt_id}))
    } else {
        eng.request(Method::POST, "/queue").json(&json!({"delete": [prompt_id]}))
    };
    match tokio::time::timeout(Duration::from_secs(5), req.send()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, prompt_id, "could not withdraw the ComfyUI prompt"),
        Err(_) => tracing::warn!(prompt_id, "ComfyUI did not answer the withdrawal of the prompt within 5 s"),
    }
}

async fn timed_out(eng: &ImageEngine, index: u32, prompt_id: &str, track: &Track) -> Failure {
    let queue = match eng.request(Method::GET, "/queue").send().await {
        Ok(r) => r.text().await.ok().and_then(|b| wire::parse_queue(&b)),
        Err(_) => None,
    };
    abandon(eng, prompt_id, track.exec_start.is_some()).await;
    let where_ = match (track.exec_start, track.last_progress, queue) {
        (None, _, Some((running, pending))) => {
            format!("it never started: ComfyUI's queue holds {running} running and {pending} waiting prompt(s)")
        }
        (None, _, None) => "it never started".to_owned(),
        (Some(_), Some((s, _)), _) => format!("it stopped at step {s}"),
        (Some(_), None, _) => "it started but reported no sampler step".to_owned(),
    };
    Failure::new(
        ErrorKind::Timeout,
        ImageErrorCategory::Timeout,
        index,
        format!(
            "ComfyUI did not finish prompt {prompt_id} within {:.0} s (image_engine.timeout_s): {where_}; the prompt was withdrawn",
            eng.settings.timeout_s
        ),
    )
}
