//! OpenAI-style images servers: `POST /v1/images/generations` (stable-diffusion.cpp's server,
//! LocalAI …). One synchronous request per repeat, no per-step progress: `gen_time_ms` is request
//! sent → answer read, `queue_latency_ms` is null (not observable). The standard fields are
//! `prompt`, `n`, `size`, `response_format`, `model`; the other settings (`seed`, `steps`,
//! `cfg_scale`, `negative_prompt`, `sampler_name`) go as extension fields that a server may
//! ignore, which the result says. Where the server has `GET /metrics` with
//! `avg_seconds_per_image` (stable-diffusion.cpp `--metrics`), that figure is reported beside ours.

use std::time::{Duration, Instant};

use bench_shared::event::{ErrorKind, Event};
use bench_shared::workload::image::{ImageComplete, ImageErrorCategory, ImageSpec, ImageStarted, ImageTiming};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::image::{Failure, ImageEngine};
use super::status::Probe;
use crate::jobs::JobEvents;

/// The note every result of this kind carries.
pub const SETTINGS_NOTE: &str = "an OpenAI-style images server: seed, steps, cfg, sampler and negative prompt were sent as \
     extension fields, which this server may ignore; only prompt, n and size are standard";

#[derive(Debug, Deserialize)]
struct Generated {
    data: Vec<Datum>,
}

#[derive(Debug, Deserialize)]
struct Datum {
    #[serde(default)]
    b64_json: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Models {
    data: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
struct ModelEntry {
    id: String,
}

/// Reachable? (any HTTP answer) and the models of `GET /v1/models` where it lists them.
pub async fn probe(eng: &ImageEngine) -> Probe {
    match eng.request(Method::GET, "/v1/models").send().await {
        Err(e) => Probe::unreachable(format!(
            "image engine unreachable at {}: {}",
            eng.base_url(),
            bench_shared::error_chain(&e)
        )),
        Ok(r) if r.status().is_success() => match r.json::<Models>().await {
            Ok(m) => Probe {
                reachable: true,
                version: None,
                models: m.data.into_iter().map(|d| d.id).collect(),
                error: None,
            },
            Err(e) => Probe {
                reachable: true,
                version: None,
                models: Vec::new(),
                error: Some(format!("unreadable /v1/models: {e}")),
            },
        },
        Ok(r) => Probe {
            reachable: true,
            version: None,
            models: Vec::new(),
            error: Some(format!("GET /v1/models answered {}: the server's loaded model is used", r.status())),
        },
    }
}

/// The server's own seconds per image, where it reports them.
async fn engine_s_per_image(eng: &ImageEngine) -> Option<f64> {
    let r =
        tokio::time::timeout(Duration::from_secs(2), eng.request(Method::GET, "/metrics").send()).await.ok()?.ok()?;
    if !r.status().is_success() {
        return None;
    }
    let body = r.text().await.ok()?;
    if let Ok(v) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&body) {
        return v.get("avg_seconds_per_image").and_then(serde_json::Value::as_f64);
    }
    // Prometheus text: `avg_seconds_per_image 3.2`.
    body.lines().find_map(|l| l.strip_prefix("avg_seconds_per_image")?.split_whitespace().last()?.parse().ok())
}

/// Runs repeat `index` as one request.
pub async fn generate(
    eng: &ImageEngine,
    spec: &ImageSpec,
    index: u32,
    events: &JobEvents,
    cancel: &CancellationToken,
) -> Result<ImageComplete, Failure> {
    let (sampler, scheduler) = spec.sampler_and_scheduler();
    let mut body = json!({
        "prompt": spec.prompt,
        "n": spec.num_images,
        "size": spec.resolution(),
        "response_format": "b64_json",
        "negative_prompt": spec.negative_prompt,
        "seed": spec.seed_for(index),
        "steps": spec.steps,
        "cfg_scale": spec.cfg,
        "sampler_name": sampler,
    });
    if let Some(m) = spec.checkpoint_name() {
        body["model"] = json!(m);
    }
    let limit = Duration::from_secs_f64(eng.settings.timeout_s);
    events.emit(Event::ImageStarted(ImageStarted {
        repeat_index: index,
        prompt_id: None,
        queue_latency_ms: None,
        started_at_s: crate::engine::wall_now_s(),
        run_id: spec.run_id.clone(),
    }));
    let t0 = Instant::now();
    let request = async {
        let resp = eng.request(Method::POST, "/v1/images/generations").json(&body).send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, bytes, Instant::now()))
    };
    let (status, bytes, t_end) = tokio::select! {
        _ = cancel.cancelled() => return Err(Failure::Cancelled),
        r = tokio::time::timeout(limit, request) => match r {
            Err(_) => return Err(Failure::new(ErrorKind::Timeout, ImageErrorCategory::Timeout, index,
                format!("the images server did not answer within {:.0} s (image_engine.timeout_s)", limit.as_secs_f64()))),
            Ok(Err(e)) => return Err(Failure::http(&e, index, "POST /v1/images/generations")),
            Ok(Ok(v)) => v,
        },
    };
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes);
        return Err(Failure::new(
            ErrorKind::EngineError,
            ImageErrorCategory::Engine,
            index,
            format!("POST /v1/images/generations answered {status}: {}", text.chars().take(300).collect::<String>()),
        ));
    }
    let answer: Generated = serde_json::from_slice(&bytes).map_err(|e| {
        Failure::new(ErrorKind::Protocol, ImageErrorCategory::Protocol, index, format!("unreadable images answer: {e}"))
    })?;
    let mut images = Vec::new();
    for (i, d) in answer.data.into_iter().enumerate() {
        use base64::Engine as _;
        let b64 = d.b64_json.ok_or_else(|| {
            Failure::new(
                ErrorKind::Protocol,
                ImageErrorCategory::Protocol,
                index,
                "the images server answered without b64_json",
            )
        })?;
        let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|e| {
            Failure::new(
                ErrorKind::Protocol,
                ImageErrorCategory::Protocol,
                index,
                format!("b64_json is not base64: {e}"),
            )
        })?;
        let ct = super::store::sniff_content_type(&raw).ok_or_else(|| {
            Failure::new(
                ErrorKind::Protocol,
                ImageErrorCategory::Protocol,
                index,
                "b64_json is not a PNG, JPEG or WebP image",
            )
        })?;
        let ext = if ct == "image/jpeg" { "jpg" } else { ct.trim_start_matches("image/") };
        let info = eng.store.save(&format!("image_{index}_{i}.{ext}"), raw, ct, true).await.map_err(|e| {
            Failure::new(ErrorKind::Internal, ImageErrorCategory::Engine, index, format!("cannot store the image: {e}"))
        })?;
        images.push(info);
    }
    if images.is_empty() {
        return Err(Failure::new(
            ErrorKind::Protocol,
            ImageErrorCategory::Protocol,
            index,
            "the images server returned no image",
        ));
    }
    let ms = t_end.duration_since(t0).as_secs_f64() * 1000.0;
    let timing = ImageTiming {
        queue_latency_ms: None,
        gen_time_ms: ms,
        total_ms: ms,
        first_progress: None,
        last_progress: None,
    };
    let (steps_per_s, steps_per_s_source, s_per_image) = timing.rates(spec.steps, images.len() as u32);
    Ok(ImageComplete {
        repeat_index: index,
        queue_latency_ms: None,
        gen_time_ms: ms,
        total_ms: ms,
        total_time_s: ms / 1000.0,
        steps: spec.steps,
        resolution: spec.resolution(),
        seed: spec.seed_for(index),
        checkpoint: spec.checkpoint_name().map(str::to_owned),
        sampler,
        scheduler,
        cfg: spec.cfg,
        num_images: spec.num_images,
        images,
        steps_per_s,
        steps_per_s_source,
        s_per_image,
        cached_nodes: Vec::new(),
        prompt_id: None,
        engine_s_per_image: engine_s_per_image(eng).await,
        notes: vec![SETTINGS_NOTE.to_owned()],
        run_id: spec.run_id.clone(),
    })
}
