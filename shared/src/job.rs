//! Job specifications as `POST /jobs` accepts them, and their validation.
//!
//! Each test type's spec is a serde struct (`deny_unknown_fields`, a default for every optional
//! field) that implements [`Spec`]: its [`Rule`]s say what each field accepts, and its
//! `validate` checks ranges and cross-field rules. [`JobSpec::from_json`] does both for a raw
//! body, and every error names the field and the accepted range (`max_tokens: must be an integer
//! from 1 to 1000000, got 0`). Callers in code build the structs directly (defaults from
//! [`GenerateSpec::new`], [`SweepSpec::new`]) and call [`JobSpec::validate`].

mod rules;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compare::Metric;
use crate::load::{CapacitySpec, LoadSpec};
use crate::sweep::SweepSpec;
use crate::workload::compute::ComputeSpec;
use crate::workload::image::ImageSpec;
use crate::workload::speech::TranscribeSpec;

pub use rules::{
    FieldError, MAX_MODEL_BYTES, MAX_MODELS, MAX_NONCE_CHARS, MAX_PROMPT_BYTES, Rule, START_AT_FUTURE_MS,
    START_AT_PAST_MS, Spec, check_model, check_models, check_nonce, check_prompt, check_start_at, parse, short,
};

/// Largest `max_tokens` a job may ask for.
pub const MAX_TOKENS_LIMIT: u64 = 1_000_000;
/// Largest `repeat`.
pub const MAX_REPEAT: u64 = 1000;
/// Largest `warmup` for `llm_generate`.
pub const MAX_WARMUP: u64 = 100;
/// Largest `num_ctx`.
pub const MAX_NUM_CTX: u64 = 10_000_000;
/// Highest accepted temperature.
pub const MAX_TEMPERATURE: f64 = 2.0;
/// Largest `min_effect_pct`.
pub const MAX_MIN_EFFECT_PCT: f64 = 100.0;

/// The job types an agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestType {
    LlmGenerate,
    LlmSweep,
    LlmLoad,
    LlmCapacity,
    ImageGenerate,
    Transcribe,
    Compute,
}

impl TestType {
    pub const ALL: [TestType; 7] = [
        TestType::LlmGenerate,
        TestType::LlmSweep,
        TestType::LlmLoad,
        TestType::LlmCapacity,
        TestType::ImageGenerate,
        TestType::Transcribe,
        TestType::Compute,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TestType::LlmGenerate => "llm_generate",
            TestType::LlmSweep => "llm_sweep",
            TestType::LlmLoad => "llm_load",
            TestType::LlmCapacity => "llm_capacity",
            TestType::ImageGenerate => "image_generate",
            TestType::Transcribe => "transcribe",
            TestType::Compute => "compute",
        }
    }

    /// Whether the job drives the LLM engine (the others have engines of their own, or none).
    pub fn uses_llm_engine(self) -> bool {
        matches!(self, TestType::LlmGenerate | TestType::LlmSweep | TestType::LlmLoad | TestType::LlmCapacity)
    }

    pub fn parse(s: &str) -> Option<TestType> {
        TestType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// A job of one of the test types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "test_type", rename_all = "snake_case")]
pub enum JobSpec {
    LlmGenerate(GenerateSpec),
    LlmSweep(SweepSpec),
    LlmLoad(LoadSpec),
    LlmCapacity(CapacitySpec),
    ImageGenerate(ImageSpec),
    Transcribe(TranscribeSpec),
    Compute(ComputeSpec),
}

impl JobSpec {
    pub fn test_type(&self) -> TestType {
        match self {
            JobSpec::LlmGenerate(_) => TestType::LlmGenerate,
            JobSpec::LlmSweep(_) => TestType::LlmSweep,
            JobSpec::LlmLoad(_) => TestType::LlmLoad,
            JobSpec::LlmCapacity(_) => TestType::LlmCapacity,
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
            JobSpec::LlmLoad(l) => vec![l.model.clone()],
            JobSpec::LlmCapacity(c) => vec![c.model.clone()],
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
            JobSpec::LlmLoad(l) => l.start_at,
            JobSpec::LlmCapacity(c) => c.start_at,
            JobSpec::ImageGenerate(i) => i.start_at,
            JobSpec::Transcribe(t) => t.start_at,
            JobSpec::Compute(c) => c.start_at,
        }
    }

    /// Sets the synchronized start instant (epoch ms, on the clock of the agent that gets it).
    pub fn set_start_at(&mut self, at: Option<u64>) {
        match self {
            JobSpec::LlmGenerate(g) => g.start_at = at,
            JobSpec::LlmSweep(s) => s.start_at = at,
            JobSpec::LlmLoad(l) => l.start_at = at,
            JobSpec::LlmCapacity(c) => c.start_at = at,
            JobSpec::ImageGenerate(i) => i.start_at = at,
            JobSpec::Transcribe(t) => t.start_at = at,
            JobSpec::Compute(c) => c.start_at = at,
        }
    }

    /// Checks a spec built in code by the same rules as a `POST /jobs` body.
    pub fn validate(&mut self, now_ms: u64) -> Result<(), FieldError> {
        match self {
            JobSpec::LlmGenerate(g) => g.validate(now_ms),
            JobSpec::LlmSweep(s) => s.validate(now_ms),
            JobSpec::LlmLoad(l) => l.validate(now_ms),
            JobSpec::LlmCapacity(c) => c.validate(now_ms),
            JobSpec::ImageGenerate(i) => i.validate(now_ms),
            JobSpec::Transcribe(t) => t.validate(now_ms),
            JobSpec::Compute(c) => c.validate(now_ms),
        }
    }

    /// Validates a raw `POST /jobs` body. `now_ms` is the current wall-clock epoch time in ms
    /// (used to check `start_at`). A missing `test_type` means `llm_generate`.
    pub fn from_json(body: &Value, now_ms: u64) -> Result<JobSpec, FieldError> {
        let mut obj = body.as_object().cloned().ok_or_else(|| FieldError::new("body", "must be a JSON object"))?;
        let accepted = || TestType::ALL.map(TestType::as_str).join(", ");
        let test_type = match obj.remove("test_type") {
            None | Some(Value::Null) => TestType::LlmGenerate,
            Some(Value::String(s)) => TestType::parse(&s).ok_or_else(|| {
                FieldError::new("test_type", format!("unknown test type {s:?}; accepted: {}", accepted()))
            })?,
            Some(other) => {
                return Err(FieldError::new(
                    "test_type",
                    format!("must be a test type ({}), got {}", accepted(), short(&other)),
                ));
            }
        };
        Ok(match test_type {
            TestType::LlmGenerate => JobSpec::LlmGenerate(parse(obj, now_ms)?),
            TestType::LlmSweep => JobSpec::LlmSweep(parse(obj, now_ms)?),
            TestType::LlmLoad => JobSpec::LlmLoad(parse(obj, now_ms)?),
            TestType::LlmCapacity => JobSpec::LlmCapacity(parse(obj, now_ms)?),
            TestType::ImageGenerate => JobSpec::ImageGenerate(parse(obj, now_ms)?),
            TestType::Transcribe => JobSpec::Transcribe(parse(obj, now_ms)?),
            TestType::Compute => JobSpec::Compute(parse(obj, now_ms)?),
        })
    }
}

/// `llm_generate`: one prompt, `repeat` times (after `warmup` unrecorded runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    pub model: String,
    pub prompt: String,
    #[serde(default = "defaults::max_tokens")]
    pub max_tokens: u32,
    #[serde(default = "defaults::temperature")]
    pub temperature: f64,
    #[serde(default = "defaults::num_ctx")]
    pub num_ctx: u32,
    #[serde(default = "defaults::one")]
    pub repeat: u32,
    #[serde(default = "defaults::yes")]
    pub stream: bool,
    #[serde(default)]
    pub seed: Option<i64>,
    #[serde(default)]
    pub warmup: u32,
    /// Unload the model first so load time is measured (where the engine can).
    #[serde(default)]
    pub cold: bool,
    /// Epoch ms before which the first request must not be sent.
    #[serde(default)]
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
    #[serde(default = "defaults::min_effect_pct")]
    pub min_effect_pct: f64,
}

/// Default values of optional fields (serde's `default = "…"` needs functions).
pub(crate) mod defaults {
    pub fn max_tokens() -> u32 {
        256
    }
    pub fn temperature() -> f64 {
        0.2
    }
    pub fn num_ctx() -> u32 {
        4096
    }
    pub fn one() -> u32 {
        1
    }
    pub fn yes() -> bool {
        true
    }
    pub fn min_effect_pct() -> f64 {
        crate::compare::DEFAULT_MIN_EFFECT_PCT
    }
}

impl Spec for GenerateSpec {
    const RULES: &'static [(&'static str, Rule)] = &[
        ("model", Rule::Model),
        ("prompt", Rule::Prompt),
        ("max_tokens", Rule::UInt { min: 1, max: MAX_TOKENS_LIMIT }),
        ("temperature", Rule::Float { min: 0.0, max: MAX_TEMPERATURE }),
        ("num_ctx", Rule::UInt { min: 1, max: MAX_NUM_CTX }),
        ("repeat", Rule::UInt { min: 1, max: MAX_REPEAT }),
        ("stream", Rule::Bool),
        ("seed", Rule::Int),
        ("warmup", Rule::UInt { min: 0, max: MAX_WARMUP }),
        ("cold", Rule::Bool),
        ("start_at", Rule::StartAt),
        ("prompt_nonce", Rule::Nonce),
        ("rank_by", Rule::Metric),
        ("min_effect_pct", Rule::Float { min: 0.0, max: MAX_MIN_EFFECT_PCT }),
    ];

    fn validate(&mut self, now_ms: u64) -> Result<(), FieldError> {
        check_model("model", &mut self.model)?;
        check_prompt("prompt", &self.prompt)?;
        Self::check_uint("max_tokens", self.max_tokens.into())?;
        Self::check_float("temperature", self.temperature)?;
        Self::check_uint("num_ctx", self.num_ctx.into())?;
        Self::check_uint("repeat", self.repeat.into())?;
        Self::check_uint("warmup", self.warmup.into())?;
        check_start_at(self.start_at, now_ms)?;
        check_nonce("prompt_nonce", self.prompt_nonce.as_deref())?;
        Self::check_float("min_effect_pct", self.min_effect_pct)
    }
}

impl GenerateSpec {
    /// A spec with every optional field at its default.
    pub fn new(model: impl Into<String>, prompt: impl Into<String>) -> Self {
        GenerateSpec {
            model: model.into(),
            prompt: prompt.into(),
            max_tokens: defaults::max_tokens(),
            temperature: defaults::temperature(),
            num_ctx: defaults::num_ctx(),
            repeat: 1,
            stream: true,
            seed: None,
            warmup: 0,
            cold: false,
            start_at: None,
            prompt_nonce: None,
            rank_by: Metric::default(),
            min_effect_pct: defaults::min_effect_pct(),
        }
    }

    /// The prompt of one request: with a nonce, `[tag] prompt` where `tag` is 16 hex digits
    /// derived from (nonce, warm-up or repeat, index). Consecutive requests' tags differ from
    /// their first character, so an engine's prefix cache holds at most the chat template before
    /// them; every machine derives the same tags, so all get the same prompts.
    pub fn request_prompt(&self, index: u32, warmup: bool) -> String {
        match &self.prompt_nonce {
            Some(nonce) => {
                let key = format!("{nonce}/{}{index}", if warmup { "w" } else { "r" });
                format!("[{:016x}] {}", crate::hash::mix(crate::hash::fnv1a(key.as_bytes())), self.prompt)
            }
            None => self.prompt.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::CtxSizing;
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
            assert_eq!(JobSpec::from_json(&serde_json::to_value(&spec).unwrap(), NOW).unwrap(), spec);
        }
        let e = err(json!({"test_type": "image_generate", "prompt": "p", "stpes": 4}));
        assert!(e.field == "stpes" && e.message.contains("steps"), "{e}");
        let e = err(json!({"test_type": "image_generate", "prompt": "p", "steps": "many"}));
        assert_eq!(e.to_string(), "steps: must be an integer from 1 to 1000, got \"many\"");
        let e = err(json!({"test_type": "compute", "threads": 0}));
        assert!(e.field == "threads" && e.message.contains("from 1 to 1024"), "{e}");
        let e = err(json!({"test_type": "transcribe", "model": "tiny.en"}));
        assert_eq!(e.field, "audio_b64");
        let e = err(json!({"test_type": "compute", "start_at": NOW + 3_600_000}));
        assert_eq!(e.field, "start_at");
    }

    #[test]
    fn messages_name_the_accepted_range_for_wrong_types_too() {
        let e = err(json!({"model": "m", "prompt": "p", "max_tokens": "lots"}));
        assert_eq!(e.to_string(), "max_tokens: must be an integer from 1 to 1000000, got \"lots\"");
        let e = err(json!({"model": "m", "prompt": "p", "max_tokens": 5_000_000_000u64}));
        assert_eq!(e.message, "must be an integer from 1 to 1000000, got 5000000000");
        let e = err(json!({"model": "m", "prompt": "p", "temperature": 3}));
        assert_eq!(e.message, "must be a number from 0 to 2, got 3");
        let e = err(json!({"model": "m", "prompt": "p", "mdoel": 1}));
        assert!(
            e.message.starts_with("unknown field; accepted fields: cold, max_tokens, min_effect_pct, model"),
            "{e}"
        );
        let e = err(json!({"prompt": "p"}));
        assert_eq!(e.to_string(), "model: is required; it must be a non-empty model name of at most 256 bytes");
        let e = err(json!({"model": "  ", "prompt": "p"}));
        assert_eq!(e.field, "model");
        let e = err(json!({"test_type": 5, "model": "m", "prompt": "p"}));
        assert!(
            e.field == "test_type"
                && e.message
                    .contains("llm_generate, llm_sweep, llm_load, llm_capacity, image_generate, transcribe, compute"),
            "{e}"
        );
        let e = err(json!({"test_type": "llm_sweep", "models": ["m"], "ctx": 512, "target_prompt_tokens": 256}));
        assert_eq!(e.field, "ctx");
        let e = err(json!({"test_type": "llm_sweep", "models": ["m"], "ctx": 512, "parallel": [1, 0]}));
        assert_eq!(e.to_string(), "parallel: must be a non-empty list of integers from 1 to 256, got [1, 0]");
    }

    #[test]
    fn null_means_default_and_specs_built_in_code_follow_the_same_rules() {
        let spec = JobSpec::from_json(&json!({"model": " m ", "prompt": "p", "max_tokens": null}), NOW).unwrap();
        let JobSpec::LlmGenerate(g) = &spec else { panic!() };
        assert_eq!((g.model.as_str(), g.max_tokens), ("m", 256), "trimmed, defaulted");
        let mut built = JobSpec::LlmGenerate(GenerateSpec::new(" m ", "p"));
        built.validate(NOW).unwrap();
        assert_eq!(built, spec, "the same spec whether parsed or built");
        let mut bad = GenerateSpec::new("m", "p");
        bad.max_tokens = 0;
        assert_eq!(JobSpec::LlmGenerate(bad).validate(NOW).unwrap_err().field, "max_tokens");
        // Sweeps: target_prompt_tokens becomes ctx with prompt sizing; warm-up at least 3.
        let sweep = JobSpec::from_json(
            &json!({"test_type": "llm_sweep", "models": ["m"], "target_prompt_tokens": 256, "warmup": 1}),
            NOW,
        )
        .unwrap();
        let JobSpec::LlmSweep(s) = &sweep else { panic!() };
        assert_eq!((s.ctx, s.sizing, s.warmup, s.target_prompt_tokens), (256, CtxSizing::PromptTokens, 3, None));
        let wire = serde_json::to_value(&sweep).unwrap();
        assert_eq!(wire["sizing"], "prompt_tokens");
        assert_eq!(JobSpec::from_json(&wire, NOW).unwrap(), sweep, "the serialized spec is a valid body");
        let mut typed = SweepSpec::new(vec!["m".into()], 512);
        typed.parallel = vec![1, 2];
        let mut typed = JobSpec::LlmSweep(typed);
        typed.validate(NOW).unwrap();
        let ctx_wire = serde_json::to_value(&typed).unwrap();
        assert!(ctx_wire.get("sizing").is_none() && ctx_wire.get("target_prompt_tokens").is_none(), "{ctx_wire}");
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
