//! Job specifications as `POST /jobs` accepts them, and their validation.
//!
//! Validation works on the raw JSON object so that every error names the offending field and the
//! accepted range (`max_tokens: must be an integer from 1 to 1000000, got 0`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::compare::Metric;
use crate::sweep::SweepSpec;
use crate::workload::compute::ComputeSpec;
use crate::workload::decode_spec;
use crate::workload::image::ImageSpec;
use crate::workload::speech::TranscribeSpec;

/// Largest `max_tokens` a job may ask for.
pub const MAX_TOKENS_LIMIT: u64 = 1_000_000;
/// Largest prompt, in bytes (UTF-8).
pub const MAX_PROMPT_BYTES: usize = 2 * 1024 * 1024;
/// Largest `repeat`.
pub const MAX_REPEAT: u64 = 1000;
/// Largest `warmup` for `llm_generate`.
pub const MAX_WARMUP: u64 = 100;
/// Largest `num_ctx`.
pub const MAX_NUM_CTX: u64 = 10_000_000;
/// Highest accepted temperature.
pub const MAX_TEMPERATURE: f64 = 2.0;
/// How far in the past a `start_at` may lie (it then starts at once).
pub const START_AT_PAST_MS: u64 = 60_000;
/// How far in the future a `start_at` may lie.
pub const START_AT_FUTURE_MS: u64 = 300_000;

/// The job types an agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestType {
    LlmGenerate,
    LlmSweep,
    ImageGenerate,
    Transcribe,
    Compute,
}

impl TestType {
    pub const ALL: [TestType; 5] =
        [TestType::LlmGenerate, TestType::LlmSweep, TestType::ImageGenerate, TestType::Transcribe, TestType::Compute];

    pub fn as_str(self) -> &'static str {
        match self {
            TestType::LlmGenerate => "llm_generate",
            TestType::LlmSweep => "llm_sweep",
            TestType::ImageGenerate => "image_generate",
            TestType::Transcribe => "transcribe",
            TestType::Compute => "compute",
        }
    }

    /// Whether the job drives the LLM engine (the others have engines of their own, or none).
    pub fn uses_llm_engine(self) -> bool {
        matches!(self, TestType::LlmGenerate | TestType::LlmSweep)
    }
}

/// A validated job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "test_type", rename_all = "snake_case")]
pub enum JobSpec {
    LlmGenerate(GenerateSpec),
    LlmSweep(SweepSpec),
    ImageGenerate(ImageSpec),
    Transcribe(TranscribeSpec),
    Compute(ComputeSpec),
}

impl JobSpec {
    pub fn test_type(&self) -> TestType {
        match self {
            JobSpec::LlmGenerate(_) => TestType::LlmGenerate,
            JobSpec::LlmSweep(_) => TestType::LlmSweep,
            JobSpec::ImageGenerate(_) => TestType::ImageGenerate,
            JobSpec::Transcribe(_) => TestType::Transcribe,
            JobSpec::Compute(_) => TestType::Compute,
        }
    }

    /// The models the job uses (an image job's checkpoint, a transcription's Whisper model).
    pub fn models(&self) -> Vec<String> {
        match self {
            JobSpec::LlmGenerate(g) => vec![g.model.clone()],
            JobSpec::LlmSweep(s) => s.models.clone(),
            JobSpec::ImageGenerate(i) => i.checkpoint_name().map(str::to_owned).into_iter().collect(),
            JobSpec::Transcribe(t) => vec![t.model.clone()],
            JobSpec::Compute(_) => Vec::new(),
        }
    }

    /// The synchronized start instant (epoch ms), if any.
    pub fn start_at_ms(&self) -> Option<u64> {
        match self {
            JobSpec::LlmGenerate(g) => g.start_at,
            JobSpec::LlmSweep(s) => s.start_at,
            JobSpec::ImageGenerate(i) => i.start_at,
            JobSpec::Transcribe(t) => t.start_at,
            JobSpec::Compute(c) => c.start_at,
        }
    }

    /// Validates a raw `POST /jobs` body. `now_ms` is the current wall-clock epoch time in ms
    /// (used to check `start_at`).
    pub fn from_json(body: &Value, now_ms: u64) -> Result<JobSpec, FieldError> {
        let obj = body.as_object().ok_or_else(|| FieldError::new("body", "must be a JSON object"))?;
        let mut f = Fields::new(obj);
        let accepted = TestType::ALL.map(TestType::as_str).join(", ");
        let test_type = f.string("test_type", Some("llm_generate"))?;
        let spec = match test_type.as_str() {
            "llm_generate" => JobSpec::LlmGenerate(GenerateSpec::from_fields(&mut f, now_ms)?),
            "llm_sweep" => JobSpec::LlmSweep(SweepSpec::from_fields(&mut f, now_ms)?),
            "image_generate" => {
                let spec: ImageSpec = decode_spec(obj)?;
                spec.validate(now_ms)?;
                return Ok(JobSpec::ImageGenerate(spec));
            }
            "transcribe" => {
                let spec: TranscribeSpec = decode_spec(obj)?;
                spec.validate(now_ms, true)?;
                return Ok(JobSpec::Transcribe(spec));
            }
            "compute" => {
                let spec: ComputeSpec = decode_spec(obj)?;
                spec.validate(now_ms)?;
                return Ok(JobSpec::Compute(spec));
            }
            other => {
                return Err(FieldError::new("test_type", format!("unknown test type {other:?}; accepted: {accepted}")));
            }
        };
        f.finish()?;
        Ok(spec)
    }
}

/// `llm_generate`: one prompt, `repeat` times (after `warmup` unrecorded runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateSpec {
    pub model: String,
    pub prompt: String,
    pub max_tokens: u32,
    pub temperature: f64,
    pub num_ctx: u32,
    pub repeat: u32,
    pub stream: bool,
    pub seed: Option<i64>,
    pub warmup: u32,
    /// Unload the model first so load time is measured (where the engine can).
    pub cold: bool,
    /// Epoch ms before which the first request must not be sent.
    pub start_at: Option<u64>,
    /// Cache-bust nonce: when set, every request's prompt starts with `[nonce r<i>] ` (`w<i>`
    /// for warm-ups), so no engine answers from its prompt cache while every machine still gets
    /// the same prompt. Central sets it for races (`cache_bust: true`).
    #[serde(default)]
    pub prompt_nonce: Option<String>,
    /// Comparison settings central keeps in the run's spec (agents ignore them): the metric the
    /// winner is decided on, and the smallest difference that counts.
    #[serde(default)]
    pub rank_by: Metric,
    #[serde(default = "default_min_effect_pct")]
    pub min_effect_pct: f64,
}

/// 64-bit FNV-1a: a stable hash (the same on every machine and version), no security claim.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// MurmurHash3's 64-bit finalizer: every input bit flips about half the output bits, so
/// tags of consecutive requests part at their first digits.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

fn default_min_effect_pct() -> f64 {
    crate::compare::DEFAULT_MIN_EFFECT_PCT
}

/// Longest `prompt_nonce`.
pub const MAX_NONCE_CHARS: usize = 64;
/// Largest `min_effect_pct`.
pub const MAX_MIN_EFFECT_PCT: f64 = 100.0;

impl GenerateSpec {
    /// The prompt of one request: with a nonce, `[tag] prompt` where `tag` is 16 hex digits
    /// derived from (nonce, warm-up or repeat, index). Consecutive requests' tags differ from
    /// their first character, so an engine's prefix cache holds at most the chat template before
    /// them; every machine derives the same tags, so all get the same prompts.
    pub fn request_prompt(&self, index: u32, warmup: bool) -> String {
        match &self.prompt_nonce {
            Some(nonce) => {
                let key = format!("{nonce}/{}{index}", if warmup { "w" } else { "r" });
                format!("[{:016x}] {}", mix(fnv1a(key.as_bytes())), self.prompt)
            }
            None => self.prompt.clone(),
        }
    }

    fn from_fields(f: &mut Fields<'_>, now_ms: u64) -> Result<Self, FieldError> {
        Ok(GenerateSpec {
            model: f.model("model")?,
            prompt: f.prompt("prompt")?,
            max_tokens: f.uint("max_tokens", Some(256), 1, MAX_TOKENS_LIMIT)? as u32,
            temperature: f.float("temperature", Some(0.2), 0.0, MAX_TEMPERATURE)?,
            num_ctx: f.uint("num_ctx", Some(4096), 1, MAX_NUM_CTX)? as u32,
            repeat: f.uint("repeat", Some(1), 1, MAX_REPEAT)? as u32,
            stream: f.boolean("stream", Some(true))?,
            seed: f.opt_int("seed")?,
            warmup: f.uint("warmup", Some(0), 0, MAX_WARMUP)? as u32,
            cold: f.boolean("cold", Some(false))?,
            start_at: f.start_at(now_ms)?,
            prompt_nonce: f.nonce("prompt_nonce")?,
            rank_by: f.metric("rank_by")?,
            min_effect_pct: f.float("min_effect_pct", Some(default_min_effect_pct()), 0.0, MAX_MIN_EFFECT_PCT)?,
        })
    }
}

/// A validation error that names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// Typed access to the fields of a JSON object, remembering which were read so that unknown
/// fields can be rejected by [`Fields::finish`].
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    read: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    pub fn new(obj: &'a Map<String, Value>) -> Self {
        Fields { obj, read: Vec::new() }
    }

    fn get(&mut self, name: &'static str) -> Option<&'a Value> {
        self.read.push(name);
        self.obj.get(name).filter(|v| !v.is_null())
    }

    /// Rejects fields that no accessor read.
    pub fn finish(self) -> Result<(), FieldError> {
        let mut unknown: Vec<&String> = self.obj.keys().filter(|k| !self.read.contains(&k.as_str())).collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(k) => {
                let mut known = self.read.clone();
                known.sort();
                known.dedup();
                Err(FieldError::new(k.as_str(), format!("unknown field; accepted fields: {}", known.join(", "))))
            }
        }
    }

    pub fn string(&mut self, name: &'static str, default: Option<&str>) -> Result<String, FieldError> {
        match self.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(FieldError::new(name, format!("must be a string, got {}", kind_of(other)))),
            None => default.map(str::to_owned).ok_or_else(|| FieldError::new(name, "is required")),
        }
    }

    /// A model name: non-empty, at most 256 bytes.
    pub fn model(&mut self, name: &'static str) -> Result<String, FieldError> {
        let m = self.string(name, None)?;
        let trimmed = m.trim();
        if trimmed.is_empty() || trimmed.len() > 256 {
            return Err(FieldError::new(name, "must be a non-empty model name of at most 256 bytes"));
        }
        Ok(trimmed.to_owned())
    }

    /// A list of model names (at least one).
    pub fn models(&mut self, name: &'static str) -> Result<Vec<String>, FieldError> {
        let Some(v) = self.get(name) else {
            return Err(FieldError::new(name, "is required: a non-empty list of model names"));
        };
        let arr = v
            .as_array()
            .ok_or_else(|| FieldError::new(name, format!("must be a list of model names, got {}", kind_of(v))))?;
        if arr.is_empty() || arr.len() > 64 {
            return Err(FieldError::new(name, "must list from 1 to 64 model names"));
        }
        arr.iter()
            .map(|m| match m.as_str().map(str::trim) {
                Some(s) if !s.is_empty() && s.len() <= 256 => Ok(s.to_owned()),
                _ => Err(FieldError::new(name, "every entry must be a non-empty model name of at most 256 bytes")),
            })
            .collect()
    }

    /// A prompt: a string of at most [`MAX_PROMPT_BYTES`] bytes.
    pub fn prompt(&mut self, name: &'static str) -> Result<String, FieldError> {
        let p = self.string(name, None)?;
        if p.len() > MAX_PROMPT_BYTES {
            return Err(FieldError::new(
                name,
                format!("is {} bytes; the limit is {} bytes", p.len(), MAX_PROMPT_BYTES),
            ));
        }
        Ok(p)
    }

    pub fn boolean(&mut self, name: &'static str, default: Option<bool>) -> Result<bool, FieldError> {
        match self.get(name) {
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(FieldError::new(name, format!("must be true or false, got {}", kind_of(other)))),
            None => default.ok_or_else(|| FieldError::new(name, "is required")),
        }
    }

    /// An unsigned integer in `min..=max`.
    pub fn uint(&mut self, name: &'static str, default: Option<u64>, min: u64, max: u64) -> Result<u64, FieldError> {
        let range = || format!("must be an integer from {min} to {max}");
        match self.get(name) {
            None => default.ok_or_else(|| FieldError::new(name, format!("is required; it {}", range()))),
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(FieldError::new(name, format!("{}, got {}", range(), short(v)))),
            },
        }
    }

    /// An optional unsigned integer in `min..=max`.
    pub fn opt_uint(&mut self, name: &'static str, min: u64, max: u64) -> Result<Option<u64>, FieldError> {
        match self.get(name) {
            None => Ok(None),
            Some(_) => self.uint(name, None, min, max).map(Some),
        }
    }

    /// An optional list of unsigned integers, each in `min..=max`.
    pub fn uint_list(
        &mut self,
        name: &'static str,
        default: &[u64],
        min: u64,
        max: u64,
    ) -> Result<Vec<u64>, FieldError> {
        let Some(v) = self.get(name) else { return Ok(default.to_vec()) };
        let msg = || format!("must be a non-empty list of integers from {min} to {max}, got {}", short(v));
        let arr =
            v.as_array().filter(|a| !a.is_empty() && a.len() <= 64).ok_or_else(|| FieldError::new(name, msg()))?;
        arr.iter()
            .map(|x| x.as_u64().filter(|n| (min..=max).contains(n)).ok_or_else(|| FieldError::new(name, msg())))
            .collect()
    }

    /// A finite number in `min..=max`.
    pub fn float(&mut self, name: &'static str, default: Option<f64>, min: f64, max: f64) -> Result<f64, FieldError> {
        let range = || format!("must be a number from {min} to {max}");
        match self.get(name) {
            None => default.ok_or_else(|| FieldError::new(name, format!("is required; it {}", range()))),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x >= min && x <= max => Ok(x),
                _ => Err(FieldError::new(name, format!("{}, got {}", range(), short(v)))),
            },
        }
    }

    pub fn opt_int(&mut self, name: &'static str) -> Result<Option<i64>, FieldError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| FieldError::new(name, format!("must be an integer, got {}", short(v)))),
        }
    }

    /// `rank_by`: one of [`Metric::ALL`] (default `decode_tok_s`).
    pub fn metric(&mut self, name: &'static str) -> Result<Metric, FieldError> {
        let accepted = || Metric::ALL.map(Metric::as_str).join(", ");
        match self.get(name) {
            None => Ok(Metric::default()),
            Some(Value::String(s)) => Metric::parse(s)
                .ok_or_else(|| FieldError::new(name, format!("unknown metric {s:?}; accepted: {}", accepted()))),
            Some(other) => {
                Err(FieldError::new(name, format!("must be a metric name ({}), got {}", accepted(), kind_of(other))))
            }
        }
    }

    /// An optional nonce: 1 to [`MAX_NONCE_CHARS`] ASCII letters, digits, `-` or `_`.
    pub fn nonce(&mut self, name: &'static str) -> Result<Option<String>, FieldError> {
        let Some(v) = self.get(name) else { return Ok(None) };
        match v.as_str() {
            Some(s)
                if !s.is_empty()
                    && s.len() <= MAX_NONCE_CHARS
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                Ok(Some(s.to_owned()))
            }
            _ => Err(FieldError::new(
                name,
                format!("must be 1 to {MAX_NONCE_CHARS} letters, digits, '-' or '_', got {}", short(v)),
            )),
        }
    }

    /// `start_at`: epoch milliseconds, within [`START_AT_PAST_MS`] before and
    /// [`START_AT_FUTURE_MS`] after `now_ms`.
    pub fn start_at(&mut self, now_ms: u64) -> Result<Option<u64>, FieldError> {
        let Some(v) = self.get("start_at") else { return Ok(None) };
        let lo = now_ms.saturating_sub(START_AT_PAST_MS);
        let hi = now_ms + START_AT_FUTURE_MS;
        match v.as_u64() {
            Some(t) if (lo..=hi).contains(&t) => Ok(Some(t)),
            _ => Err(FieldError::new(
                "start_at",
                format!(
                    "must be an integer epoch time in milliseconds from {lo} to {hi} (now − {} s to now + {} s), got {}",
                    START_AT_PAST_MS / 1000,
                    START_AT_FUTURE_MS / 1000,
                    short(v)
                ),
            )),
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A short rendering of a value for error messages (never echoes a huge input back).
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        let mut end = 40;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000_000;

    fn err(body: Value) -> FieldError {
        JobSpec::from_json(&body, NOW).unwrap_err()
    }

    #[test]
    fn seed_body_with_defaults() {
        let spec =
            JobSpec::from_json(&json!({"test_type": "llm_generate", "model": "m", "prompt": "hi"}), NOW).unwrap();
        let JobSpec::LlmGenerate(g) = spec else { panic!("wrong type") };
        assert_eq!((g.max_tokens, g.num_ctx, g.repeat, g.warmup), (256, 4096, 1, 0));
        assert_eq!(g.temperature, 0.2);
        assert!(g.stream && !g.cold);
        assert_eq!(g.start_at, None);
    }

    #[test]
    fn every_bad_field_is_named() {
        let base = || json!({"test_type": "llm_generate", "model": "m", "prompt": "p"});
        let with = |k: &str, v: Value| {
            let mut b = base();
            b[k] = v;
            b
        };
        assert_eq!(err(json!({"test_type": "llm_generate", "prompt": "p"})).field, "model");
        assert_eq!(err(with("max_tokens", json!(0))).field, "max_tokens");
        let e = err(with("max_tokens", json!(1_000_001)));
        assert!(e.message.contains("from 1 to 1000000"), "{e}");
        assert_eq!(err(with("temperature", json!(-0.1))).field, "temperature");
        assert_eq!(err(with("prompt", json!("x".repeat(10 * 1024 * 1024)))).field, "prompt");
        assert_eq!(err(with("test_type", json!("image_gen"))).field, "test_type");
        assert!(err(with("test_type", json!("image_gen"))).message.contains("llm_generate"));
        assert!(err(with("test_type", json!("image_gen"))).message.contains("image_generate, transcribe, compute"));
        assert_eq!(err(with("start_at", json!("soon"))).field, "start_at");
        assert_eq!(err(with("start_at", json!(-5))).field, "start_at");
        assert_eq!(err(with("start_at", json!(NOW + 3_600_000))).field, "start_at");
        assert_eq!(err(with("repeat", json!(2.5))).field, "repeat");
        assert_eq!(err(with("stream", json!("yes"))).field, "stream");
        assert_eq!(err(with("mdoel", json!("typo"))).field, "mdoel");
        assert_eq!(err(json!([1, 2])).field, "body");
        let e = err(with("rank_by", json!("speed")));
        assert!(e.field == "rank_by" && e.message.contains("decode_tok_s, ttft_ms"), "{e}");
        assert_eq!(err(with("min_effect_pct", json!(-1))).field, "min_effect_pct");
        assert_eq!(err(with("prompt_nonce", json!("a b"))).field, "prompt_nonce");
    }

    #[test]
    fn comparison_settings_and_nonce() {
        let spec = JobSpec::from_json(
            &json!({"model": "m", "prompt": "p", "rank_by": "ttft_ms", "min_effect_pct": 5, "prompt_nonce": "ab12"}),
            NOW,
        )
        .unwrap();
        let JobSpec::LlmGenerate(g) = spec else { panic!() };
        assert_eq!((g.rank_by, g.min_effect_pct), (Metric::TtftMs, 5.0));
        let (r0, r1, w0) = (g.request_prompt(0, false), g.request_prompt(1, false), g.request_prompt(0, true));
        assert!(r0.starts_with('[') && r0.ends_with("] p") && r0.len() == "[0123456789abcdef] p".len(), "{r0}");
        assert_eq!(r0, g.request_prompt(0, false), "the same on every machine");
        assert!(r0 != r1 && r0 != w0 && r1 != w0);
        // Tags part within their first digits (almost always; checked here for these).
        assert!(r0[1..3] != r1[1..3] && r0[1..3] != w0[1..3], "{r0} {r1} {w0}");
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c, "FNV-1a test vector");
        // Older stored specs (no such fields) still parse, with the defaults.
        let mut v = serde_json::to_value(&g).unwrap();
        for k in ["rank_by", "min_effect_pct", "prompt_nonce"] {
            v.as_object_mut().unwrap().remove(k);
        }
        let old: GenerateSpec = serde_json::from_value(v).unwrap();
        assert_eq!((old.rank_by, old.min_effect_pct, old.prompt_nonce.as_deref()), (Metric::DecodeTokS, 2.0, None));
        assert_eq!(old.request_prompt(0, false), "p");
    }

    #[test]
    fn workload_specs_decode_validate_and_round_trip() {
        let image = JobSpec::from_json(
            &json!({"test_type": "image_generate", "prompt": "a fox", "checkpoint": "sd15.safetensors", "steps": 4}),
            NOW,
        )
        .unwrap();
        assert_eq!((image.test_type(), image.models()), (TestType::ImageGenerate, vec!["sd15.safetensors".to_owned()]));
        let compute = JobSpec::from_json(&json!({"test_type": "compute", "n": 1000, "threads": 2}), NOW).unwrap();
        assert!(compute.models().is_empty());
        for spec in [image, compute] {
            let back: JobSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
            assert_eq!(back, spec);
        }
        let e = err(json!({"test_type": "image_generate", "prompt": "p", "stpes": 4}));
        assert_eq!(e.field, "stpes");
        let e = err(json!({"test_type": "image_generate", "prompt": "p", "steps": "many"}));
        assert_eq!(e.field, "steps");
        let e = err(json!({"test_type": "compute", "threads": 0}));
        assert!(e.field == "threads" && e.message.contains("from 1 to 1024"), "{e}");
        let e = err(json!({"test_type": "transcribe", "model": "tiny.en"}));
        assert_eq!(e.field, "audio_b64");
        let e = err(json!({"test_type": "compute", "start_at": NOW + 3_600_000}));
        assert_eq!(e.field, "start_at");
    }

    #[test]
    fn start_at_within_window_is_kept() {
        let spec = JobSpec::from_json(&json!({"model": "m", "prompt": "p", "start_at": NOW + 1500}), NOW).unwrap();
        assert_eq!(spec.start_at_ms(), Some(NOW + 1500));
    }

    #[test]
    fn spec_round_trips_through_serde() {
        let spec = JobSpec::from_json(&json!({"model": "m", "prompt": "p", "seed": 7}), NOW).unwrap();
        let back: JobSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
        assert_eq!(serde_json::to_value(&spec).unwrap()["test_type"], "llm_generate");
    }
}
