//! `image_generate`: text to image through ComfyUI or an OpenAI-style images server.
//!
//! Figures (client-measured at the agent, monotonic clock):
//! - `queue_latency_ms`: prompt posted → ComfyUI's `execution_start` for it (null on an images
//!   server, which has no queue to observe).
//! - `gen_time_ms`: execution start → the prompt finished (model load, sampling, VAE decode);
//!   on an images server, request sent → answer read.
//! - `total_ms`: prompt posted → finished (`total_time_s` the same in seconds, the original's name).
//! - `steps_per_s`: the sampler's own pace, `(last step − first step) ÷ (their arrival gap)` from
//!   ComfyUI's `progress` messages where at least two arrived (`steps_per_s_source: progress`);
//!   otherwise `steps ÷ gen seconds` (`gen_time`), which includes load and decode.
//! - `s_per_image`: gen seconds ÷ images made by the prompt.

use serde::{Deserialize, Serialize};

use super::{check_range, check_start_at, check_text, per_second};
use crate::job::{FieldError, Rule, Spec, TestType};
use crate::metrics::Summary;

/// An image at most this large (bytes) also travels inline (base64) in its event.
pub const MAX_INLINE_BYTES: usize = 150 * 1024;
/// Largest `num_images` (ComfyUI batch size, `n` of an images server).
pub const MAX_NUM_IMAGES: u32 = 16;
/// Most sampler steps.
pub const MAX_STEPS: u32 = 1000;

/// The original bench-race's sampler labels and the ComfyUI sampler/scheduler they stand for.
pub const SAMPLER_LABELS: [(&str, &str, &str); 5] = [
    ("Euler", "euler", "normal"),
    ("Euler a", "euler_ancestral", "normal"),
    ("DPM++ 2M", "dpmpp_2m", "normal"),
    ("DPM++ 2M Karras", "dpmpp_2m", "karras"),
    ("DPM++ SDE Karras", "dpmpp_sde", "karras"),
];

/// An `image_generate` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    pub prompt: String,
    #[serde(default)]
    pub negative_prompt: String,
    /// The checkpoint file (ComfyUI `ckpt_name`); `model` is the same thing under the images
    /// servers' name. Give one (an images server may do without: it uses its loaded model).
    #[serde(default)]
    pub checkpoint: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// Repeat `i` uses `seed + i`: the same seeds on every machine, and no repeat served from
    /// ComfyUI's cache of the one before.
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_steps")]
    pub steps: u32,
    #[serde(default = "default_side")]
    pub width: u32,
    #[serde(default = "default_side")]
    pub height: u32,
    #[serde(default = "default_cfg")]
    pub cfg: f64,
    /// A ComfyUI `sampler_name` (`euler`, `dpmpp_2m` …) or one of the original's labels
    /// ([`SAMPLER_LABELS`]: `DPM++ 2M Karras` …, which also set the scheduler).
    #[serde(default = "default_sampler")]
    pub sampler: String,
    /// A ComfyUI scheduler (`normal`, `karras` …); default `normal`, or the label's.
    #[serde(default)]
    pub scheduler: Option<String>,
    #[serde(default = "one")]
    pub num_images: u32,
    #[serde(default = "one")]
    pub repeat: u32,
    #[serde(default)]
    pub start_at: Option<u64>,
    /// The original bench-race's run id (its `POST /api/comfy/txt2img` sends one); echoed in events.
    #[serde(default)]
    pub run_id: Option<String>,
}

fn default_steps() -> u32 {
    20
}
fn default_side() -> u32 {
    512
}
fn default_cfg() -> f64 {
    7.0
}
fn default_sampler() -> String {
    "euler".into()
}
fn one() -> u32 {
    1
}

impl Spec for ImageSpec {
    const RULES: &'static [(&'static str, Rule)] = &[
        ("prompt", Rule::Prompt),
        ("negative_prompt", Rule::Prompt),
        ("checkpoint", Rule::Model),
        ("model", Rule::Model),
        ("seed", Rule::UInt { min: 0, max: u64::MAX }),
        ("steps", Rule::UInt { min: 1, max: MAX_STEPS as u64 }),
        ("width", Rule::UInt { min: 64, max: 4096 }),
        ("height", Rule::UInt { min: 64, max: 4096 }),
        ("cfg", Rule::Float { min: 0.0, max: 100.0 }),
        ("sampler", Rule::Text),
        ("scheduler", Rule::Text),
        ("num_images", Rule::UInt { min: 1, max: MAX_NUM_IMAGES as u64 }),
        ("repeat", Rule::UInt { min: 1, max: crate::job::MAX_REPEAT }),
        ("start_at", Rule::StartAt),
        ("run_id", Rule::Text),
    ];

    fn validate(&mut self, now_ms: u64) -> Result<(), FieldError> {
        check_text("prompt", &self.prompt, crate::job::MAX_PROMPT_BYTES, false)?;
        check_text("negative_prompt", &self.negative_prompt, crate::job::MAX_PROMPT_BYTES, true)?;
        for (field, v) in [("checkpoint", &self.checkpoint), ("model", &self.model)] {
            if let Some(v) = v {
                check_text(field, v, 256, false)?;
            }
        }
        if let (Some(c), Some(m)) = (&self.checkpoint, &self.model)
            && c != m
        {
            return Err(FieldError::new("model", "give checkpoint or model (the same thing), not two different names"));
        }
        check_range("steps", self.steps, 1, MAX_STEPS, "an integer")?;
        for (field, v) in [("width", self.width), ("height", self.height)] {
            check_range(field, v, 64, 4096, "an integer")?;
            if v % 8 != 0 {
                return Err(FieldError::new(field, format!("must be a multiple of 8 from 64 to 4096, got {v}")));
            }
        }
        if !self.cfg.is_finite() {
            return Err(FieldError::new("cfg", "must be a number from 0 to 100"));
        }
        check_range("cfg", self.cfg, 0.0, 100.0, "a number")?;
        let name_ok =
            |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok(&self.sampler) && !SAMPLER_LABELS.iter().any(|(l, _, _)| *l == self.sampler) {
            let labels: Vec<&str> = SAMPLER_LABELS.iter().map(|(l, _, _)| *l).collect();
            return Err(FieldError::new(
                "sampler",
                format!(
                    "must be a ComfyUI sampler name (euler, dpmpp_2m, …) or one of {}, got {:?}",
                    labels.join(", "),
                    self.sampler
                ),
            ));
        }
        if let Some(s) = &self.scheduler
            && !name_ok(s)
        {
            return Err(FieldError::new(
                "scheduler",
                format!("must be a ComfyUI scheduler name (normal, karras, …), got {s:?}"),
            ));
        }
        check_range("num_images", self.num_images, 1, MAX_NUM_IMAGES, "an integer")?;
        check_range("repeat", self.repeat, 1, crate::job::MAX_REPEAT as u32, "an integer")?;
        if let Some(r) = &self.run_id {
            check_text("run_id", r, 128, false)?;
        }
        check_start_at(self.start_at, now_ms)
    }
}

impl ImageSpec {
    /// The checkpoint asked for (`checkpoint`, else `model`).
    pub fn checkpoint_name(&self) -> Option<&str> {
        self.checkpoint.as_deref().or(self.model.as_deref())
    }

    /// ComfyUI's `(sampler_name, scheduler)` for this spec.
    pub fn sampler_and_scheduler(&self) -> (String, String) {
        let (sampler, label_scheduler) = match SAMPLER_LABELS.iter().find(|(l, _, _)| *l == self.sampler) {
            Some((_, s, sch)) => ((*s).to_owned(), Some(*sch)),
            None => (self.sampler.clone(), None),
        };
        let scheduler =
            self.scheduler.clone().or(label_scheduler.map(str::to_owned)).unwrap_or_else(|| "normal".into());
        (sampler, scheduler)
    }

    /// The seed of repeat `index`.
    pub fn seed_for(&self, index: u32) -> u64 {
        self.seed.wrapping_add(u64::from(index))
    }

    /// `"WxH"`.
    pub fn resolution(&self) -> String {
        format!("{}x{}", self.width, self.height)
    }

    /// What two machines' images must share to be comparable (see [`ImageSettings`]).
    pub fn settings(&self) -> ImageSettings {
        let (sampler, scheduler) = self.sampler_and_scheduler();
        ImageSettings {
            checkpoint: self.checkpoint_name().map(str::to_owned),
            width: self.width,
            height: self.height,
            steps: self.steps,
            sampler,
            scheduler,
            cfg: self.cfg,
            seed: self.seed,
            num_images: self.num_images,
        }
    }
}

/// The settings that make two machines' images comparable: a difference in any of them and the
/// timings (and images) say nothing about the machines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSettings {
    pub checkpoint: Option<String>,
    pub width: u32,
    pub height: u32,
    pub steps: u32,
    pub sampler: String,
    pub scheduler: String,
    pub cfg: f64,
    pub seed: u64,
    pub num_images: u32,
}

impl ImageSettings {
    /// The names of the settings that differ (`checkpoint`, `resolution`, `steps`, `sampler`,
    /// `scheduler`, `cfg`, `seed`, `num_images`).
    pub fn differences(&self, other: &ImageSettings) -> Vec<&'static str> {
        let mut d = Vec::new();
        if self.checkpoint != other.checkpoint {
            d.push("checkpoint");
        }
        if (self.width, self.height) != (other.width, other.height) {
            d.push("resolution");
        }
        if self.steps != other.steps {
            d.push("steps");
        }
        if self.sampler != other.sampler {
            d.push("sampler");
        }
        if self.scheduler != other.scheduler {
            d.push("scheduler");
        }
        if self.cfg != other.cfg {
            d.push("cfg");
        }
        if self.seed != other.seed {
            d.push("seed");
        }
        if self.num_images != other.num_images {
            d.push("num_images");
        }
        d
    }
}

/// The image engine protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageEngineKind {
    /// ComfyUI: `POST /prompt`, its WebSocket, `/history`, `/view`.
    Comfyui,
    /// `POST /v1/images/generations` (stable-diffusion.cpp's server, LocalAI …).
    Openai,
}

impl ImageEngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageEngineKind::Comfyui => "comfyui",
            ImageEngineKind::Openai => "openai",
        }
    }
}

/// How `steps_per_s` was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepsSource {
    /// From the arrival of ComfyUI's `progress` messages (the sampler alone).
    Progress,
    /// `steps ÷ gen seconds` (includes load and decode).
    GenTime,
}

/// `image_started`: the engine began on repeat `repeat_index`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageStarted {
    pub repeat_index: u32,
    /// ComfyUI's prompt id.
    #[serde(default)]
    pub prompt_id: Option<String>,
    pub queue_latency_ms: Option<f64>,
    /// Wall-clock epoch seconds.
    pub started_at_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// `image_progress`: the sampler reached `step` of `total_steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageProgress {
    pub repeat_index: u32,
    pub step: u32,
    pub total_steps: u32,
    #[serde(default)]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// `image_preview`: a preview frame the engine sent while sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagePreview {
    pub repeat_index: u32,
    pub step: u32,
    pub total_steps: u32,
    pub content_type: String,
    pub size_bytes: u64,
    /// The image, base64, when at most [`MAX_INLINE_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_b64: Option<String>,
    /// Where a larger preview can be fetched: `GET /api/image/result/{image_id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// One generated image, kept by the agent and served at `GET /api/image/result/{image_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// A UUID.
    pub image_id: String,
    /// The engine's file name (ComfyUI's output name).
    pub filename: String,
    pub content_type: String,
    pub size_bytes: u64,
    /// Hex SHA-256 of the image bytes.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_b64: Option<String>,
}

/// `image_complete`: repeat `repeat_index` finished; the original's fields plus this rewrite's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageComplete {
    pub repeat_index: u32,
    pub queue_latency_ms: Option<f64>,
    pub gen_time_ms: f64,
    pub total_ms: f64,
    pub total_time_s: f64,
    pub steps: u32,
    pub resolution: String,
    pub seed: u64,
    pub checkpoint: Option<String>,
    pub sampler: String,
    pub scheduler: String,
    pub cfg: f64,
    pub num_images: u32,
    pub images: Vec<ImageInfo>,
    pub steps_per_s: Option<f64>,
    pub steps_per_s_source: Option<StepsSource>,
    pub s_per_image: Option<f64>,
    /// ComfyUI nodes served from its cache (`execution_cached`): the checkpoint loader there
    /// means the model was already loaded.
    #[serde(default)]
    pub cached_nodes: Vec<String>,
    #[serde(default)]
    pub prompt_id: Option<String>,
    /// Seconds per image the engine itself reports (stable-diffusion.cpp `GET /metrics`).
    #[serde(default)]
    pub engine_s_per_image: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// The figures of one finished prompt (pure: the agent feeds it its instants).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageTiming {
    /// Prompt posted → execution start, ms (`None`: not observable).
    pub queue_latency_ms: Option<f64>,
    /// Execution start (or request sent) → finished, ms.
    pub gen_time_ms: f64,
    /// Prompt posted → finished, ms.
    pub total_ms: f64,
    /// `(step, ms since the prompt was posted)` of the first and last progress message.
    pub first_progress: Option<(u32, f64)>,
    pub last_progress: Option<(u32, f64)>,
}

impl ImageTiming {
    /// `(steps_per_s, its source, s_per_image)`.
    pub fn rates(&self, steps: u32, images: u32) -> (Option<f64>, Option<StepsSource>, Option<f64>) {
        let from_progress = match (self.first_progress, self.last_progress) {
            (Some((s0, t0)), Some((s1, t1))) if s1 > s0 && t1 > t0 => per_second(f64::from(s1 - s0), t1 - t0),
            _ => None,
        };
        let (rate, source) = match from_progress {
            Some(r) => (Some(r), Some(StepsSource::Progress)),
            None => match per_second(f64::from(steps), self.gen_time_ms) {
                Some(r) => (Some(r), Some(StepsSource::GenTime)),
                None => (None, None),
            },
        };
        let per_image = (images > 0 && self.gen_time_ms > 0.0).then(|| self.gen_time_ms / 1000.0 / f64::from(images));
        (rate, source, per_image)
    }
}

/// Why an image job failed, as `image_error` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageErrorCategory {
    /// The engine could not be reached.
    Unreachable,
    /// ComfyUI refused the prompt (`node_errors`).
    Validation,
    /// A node failed while running (`execution_error`).
    Execution,
    /// ComfyUI interrupted the prompt.
    Interrupted,
    /// Nothing finished within the bound.
    Timeout,
    /// The engine answered something unexpected.
    Protocol,
    /// The engine answered with an error status.
    Engine,
}

/// `image_error`: what went wrong (a `job_error` follows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageError {
    pub repeat_index: u32,
    pub message: String,
    pub category: ImageErrorCategory,
    /// The ComfyUI node at fault, with its class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// One repeat's figures, as `job_done` lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRun {
    pub queue_latency_ms: Option<f64>,
    pub gen_time_ms: f64,
    pub total_ms: f64,
    pub steps_per_s: Option<f64>,
    pub s_per_image: Option<f64>,
    pub seed: u64,
    /// SHA-256 of each image of the repeat, in order.
    pub sha256: Vec<String>,
}

/// `job_done` of an `image_generate` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageJobDone {
    pub test_type: TestType,
    pub engine: ImageEngineKind,
    pub settings: ImageSettings,
    pub repeats: u32,
    /// Means over the repeats.
    pub queue_latency_ms: Option<f64>,
    pub gen_time_ms: f64,
    pub total_ms: f64,
    pub steps_per_s: Option<f64>,
    pub s_per_image: Option<f64>,
    pub s_per_image_summary: Option<Summary>,
    pub images: Vec<ImageInfo>,
    pub runs: Vec<ImageRun>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

impl ImageJobDone {
    pub fn from_repeats(engine: ImageEngineKind, spec: &ImageSpec, done: &[ImageComplete]) -> Self {
        let pick = |f: fn(&ImageComplete) -> Option<f64>| done.iter().filter_map(f).collect::<Vec<f64>>();
        let per_image = pick(|d| d.s_per_image);
        let mut notes: Vec<String> = Vec::new();
        for n in done.iter().flat_map(|d| d.notes.iter()) {
            if !notes.contains(n) {
                notes.push(n.clone());
            }
        }
        ImageJobDone {
            test_type: TestType::ImageGenerate,
            engine,
            settings: spec.settings(),
            repeats: done.len() as u32,
            queue_latency_ms: mean(&pick(|d| d.queue_latency_ms)),
            gen_time_ms: mean(&pick(|d| Some(d.gen_time_ms))).unwrap_or(0.0),
            total_ms: mean(&pick(|d| Some(d.total_ms))).unwrap_or(0.0),
            steps_per_s: mean(&pick(|d| d.steps_per_s)),
            s_per_image: mean(&per_image),
            s_per_image_summary: crate::metrics::summarize(&per_image),
            images: done.iter().flat_map(|d| d.images.iter().cloned()).collect(),
            runs: done
                .iter()
                .map(|d| ImageRun {
                    queue_latency_ms: d.queue_latency_ms,
                    gen_time_ms: d.gen_time_ms,
                    total_ms: d.total_ms,
                    steps_per_s: d.steps_per_s,
                    s_per_image: d.s_per_image,
                    seed: d.seed,
                    sha256: d.images.iter().map(|i| i.sha256.clone()).collect(),
                })
                .collect(),
            notes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> ImageSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_labels_and_seeds() {
        let mut s = spec(json!({"prompt": "a fox", "checkpoint": "sd15.safetensors"}));
        assert_eq!((s.steps, s.width, s.height, s.num_images, s.repeat), (20, 512, 512, 1, 1));
        assert!(s.validate(0).is_ok());
        assert_eq!(s.sampler_and_scheduler(), ("euler".into(), "normal".into()));
        let s = spec(json!({"prompt": "p", "model": "m", "sampler": "DPM++ 2M Karras", "seed": u64::MAX}));
        assert_eq!(s.sampler_and_scheduler(), ("dpmpp_2m".into(), "karras".into()));
        assert_eq!(s.checkpoint_name(), Some("m"));
        assert_eq!((s.seed_for(0), s.seed_for(1)), (u64::MAX, 0));
    }

    #[test]
    fn bad_fields_are_named() {
        let base = json!({"prompt": "p", "checkpoint": "c"});
        let bad = |k: &str, v: serde_json::Value| {
            let mut b = base.clone();
            b[k] = v;
            spec(b).validate(0).unwrap_err()
        };
        assert_eq!(bad("width", json!(500)).field, "width");
        assert!(bad("width", json!(500)).message.contains("multiple of 8"));
        assert_eq!(bad("steps", json!(0)).field, "steps");
        assert_eq!(bad("sampler", json!("rm -rf")).field, "sampler");
        assert_eq!(bad("model", json!("other")).field, "model");
        assert_eq!(bad("num_images", json!(17)).field, "num_images");
        assert_eq!(bad("prompt", json!(" ")).field, "prompt");
        assert_eq!(bad("cfg", json!(101)).field, "cfg");
    }

    #[test]
    fn settings_differences_are_named() {
        let a = spec(json!({"prompt": "p", "checkpoint": "c"})).settings();
        let b = spec(json!({"prompt": "other prompt", "checkpoint": "c"})).settings();
        assert!(a.differences(&b).is_empty(), "the prompt is the run's, not a per-machine setting");
        let c =
            spec(json!({"prompt": "p", "checkpoint": "d", "width": 768, "seed": 3, "sampler": "Euler a"})).settings();
        assert_eq!(a.differences(&c), ["checkpoint", "resolution", "sampler", "seed"]);
    }

    #[test]
    fn rates_prefer_the_sampler_pace() {
        let t = ImageTiming {
            queue_latency_ms: Some(5.0),
            gen_time_ms: 4000.0,
            total_ms: 4005.0,
            first_progress: Some((1, 1005.0)),
            last_progress: Some((20, 2905.0)),
        };
        let (rate, source, per_image) = t.rates(20, 2);
        assert!((rate.unwrap() - 10.0).abs() < 1e-9);
        assert_eq!((source, per_image), (Some(StepsSource::Progress), Some(2.0)));
        let t = ImageTiming { first_progress: None, last_progress: None, ..t };
        assert_eq!(t.rates(20, 1), (Some(5.0), Some(StepsSource::GenTime), Some(4.0)));
        let t = ImageTiming { gen_time_ms: 0.0, ..t };
        assert_eq!(t.rates(20, 1), (None, None, None));
    }
}
