//! `llm_load` and `llm_capacity` specs: serde structs with defaults and `deny_unknown_fields`,
//! and a `validate` that names the field and the accepted range.
//!
//! Both describe a *workload* (model, prompts, arrivals, length of a load step, warm-up) — the
//! [`Workload`] the agent runs — and a *level*: `llm_load` fixes it (`rate_rps` and/or
//! `concurrency`), `llm_capacity` searches it (`search: rate | concurrency`).

use serde::{Deserialize, Serialize};

use crate::job::{
    FieldError, MAX_NUM_CTX, MAX_TEMPERATURE, MAX_TOKENS_LIMIT, Rule, Spec, check_model, check_nonce, check_start_at,
};

use super::search::SearchMode;

/// Highest `rate_rps` (and capacity search `max` in rate mode).
pub const MAX_RATE_RPS: f64 = 10_000.0;
/// Lowest `rate_rps`.
pub const MIN_RATE_RPS: f64 = 0.01;
/// Highest `concurrency`: also the bound on requests in flight when an open loop has no cap.
pub const MAX_CONCURRENCY: u32 = 4096;
/// Longest load (or load step), seconds.
pub const MAX_DURATION_S: f64 = 86_400.0;
/// Most requests in a load (or load step).
pub const MAX_REQUESTS: u32 = 1_000_000;
/// Longest prompt a load may ask for, tokens.
pub const MAX_INPUT_TOKENS: u32 = 1_000_000;
/// Default load length when neither `duration_s` nor `requests` is given, seconds.
pub const DEFAULT_DURATION_S: f64 = 30.0;
/// Default length of one capacity step, seconds.
pub const DEFAULT_STEP_DURATION_S: f64 = 10.0;
/// Default seed (the schedule and the prompts are functions of it).
pub const DEFAULT_SEED: u64 = 42;

/// How open-loop requests arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Exactly `1/rate` apart.
    Constant,
    /// Exponential gaps (a Poisson process), mean `1/rate`.
    #[default]
    Poisson,
    /// Gamma gaps with shape `burstiness` and mean `1/rate` (1.0 = Poisson; below 1 burstier,
    /// above 1 more regular).
    Gamma,
}

impl Arrival {
    pub fn as_str(self) -> &'static str {
        match self {
            Arrival::Constant => "constant",
            Arrival::Poisson => "poisson",
            Arrival::Gamma => "gamma",
        }
    }
}

/// Which prompts a load sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dataset {
    /// Every prompt different from its first token (a per-request cache-busting tag).
    #[default]
    Synthetic,
    /// `prefix_groups` groups sharing a `prefix_tokens` long prefix; the tag follows the prefix,
    /// so an engine's prefix cache can serve the prefix (SGLang's generated-shared-prefix).
    SharedPrefix,
}

/// Prompt length: a fixed number of tokens, or a normal distribution (rounded, at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TokenCount {
    Fixed(u32),
    Normal(TokenDist),
}

impl<'de> Deserialize<'de> for TokenCount {
    /// A number or `{mean, sd}`, with a message that says so (serde's untagged error does not).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = serde_json::Value::deserialize(d)?;
        match &v {
            serde_json::Value::Number(n) => {
                n.as_u64().and_then(|n| u32::try_from(n).ok()).map(TokenCount::Fixed).ok_or_else(|| {
                    D::Error::custom(format!("must be an integer from 1 to {MAX_INPUT_TOKENS}, got {n}"))
                })
            }
            serde_json::Value::Object(_) => serde_json::from_value(v).map(TokenCount::Normal).map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "must be an integer from 1 to {MAX_INPUT_TOKENS} or {{\"mean\": …, \"sd\": …}}, got {other}"
            ))),
        }
    }
}

/// `{mean, sd}` of a prompt length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenDist {
    pub mean: f64,
    pub sd: f64,
}

impl Default for TokenCount {
    fn default() -> Self {
        TokenCount::Fixed(128)
    }
}

/// Service-level objectives, each an upper bound in ms (any subset).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_ms: Option<f64>,
}

impl Slo {
    /// Each bound that is set, as `(metric name, bound ms)`.
    pub fn bounds(&self) -> Vec<(&'static str, f64)> {
        [("ttft_ms", self.ttft_ms), ("tpot_ms", self.tpot_ms), ("e2e_ms", self.e2e_ms)]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.bounds().is_empty()
    }

    /// `p99 TTFT ≤ 500 ms, p99 TPOT ≤ 50 ms` (with `percentile` 99).
    pub fn describe(&self, percentile: f64) -> String {
        let p = super::summary::percentile_label(percentile);
        self.bounds()
            .iter()
            .map(|(k, v)| format!("{p} {} ≤ {} ms", metric_label(k), trim(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn validate(&self, field: &str) -> Result<(), FieldError> {
        if self.is_empty() {
            return Err(FieldError::new(field, "must set at least one of ttft_ms, tpot_ms, e2e_ms"));
        }
        for (k, v) in self.bounds() {
            range(&format!("{field}.{k}"), v, 0.001, 3_600_000.0)?;
        }
        Ok(())
    }
}

fn metric_label(key: &str) -> &'static str {
    match key {
        "ttft_ms" => "TTFT",
        "tpot_ms" => "TPOT",
        _ => "E2E",
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// How long one load (or one capacity step) lasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    /// Measured seconds (open loop: `round(rate × s)` requests; closed loop: until the time is up).
    Seconds(f64),
    /// Measured requests.
    Requests(u32),
}

/// The warm-up before the measured window (excluded from every figure).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Warmup {
    None,
    Seconds(f64),
    Requests(u32),
}

/// Where the prefix of shared-prefix prompts comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharedPrefix {
    pub groups: u32,
    pub tokens: u32,
}

/// What a load sends, resolved from either spec: the agent's input.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub model: String,
    pub arrival: Arrival,
    pub burstiness: f64,
    pub input_tokens: TokenCount,
    pub max_tokens: u32,
    /// `Some` for `dataset: shared_prefix`.
    pub shared_prefix: Option<SharedPrefix>,
    pub seed: u64,
    pub temperature: f64,
    pub num_ctx: u32,
    pub prompt_nonce: Option<String>,
    pub length: Length,
    pub warmup: Warmup,
}

/// The load level of one load: an open loop at `rate_rps` (capped by `concurrency` when both
/// are set) or a closed loop of `concurrency` workers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadLevel {
    pub rate_rps: Option<f64>,
    pub concurrency: Option<u32>,
}

/// `llm_load`: one load level for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    pub model: String,
    /// Open loop: requests per second (with `arrival`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_rps: Option<f64>,
    #[serde(default)]
    pub arrival: Arrival,
    /// Gamma shape (`arrival: gamma` only); 1.0 = Poisson.
    #[serde(default = "one")]
    pub burstiness: f64,
    /// Closed loop of this many workers, or the cap on requests in flight of an open loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_requests: Option<u32>,
    #[serde(default)]
    pub input_tokens: TokenCount,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    #[serde(default)]
    pub dataset: Dataset,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_groups: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_tokens: Option<u32>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<Slo>,
    #[serde(default)]
    pub temperature: f64,
    #[serde(default = "default_num_ctx")]
    pub num_ctx: u32,
    /// Epoch ms before which the first request must not be sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<u64>,
    /// Mixed into every prompt's cache-busting tag (central sets one per run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_nonce: Option<String>,
}

/// `llm_capacity`: fixed-length load steps, bracket then bisect, to the highest level that meets
/// the SLO at `percentile`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacitySpec {
    pub model: String,
    /// What the search varies: the open-loop rate, or the closed-loop concurrency.
    #[serde(default)]
    pub search: SearchMode,
    pub slo: Slo,
    /// The percentile every SLO bound applies to (99 = p99).
    #[serde(default = "default_percentile")]
    pub percentile: f64,
    /// First level tried (default 1 req/s or 1 concurrent request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    /// Highest level tried (default 1000 req/s or 256 concurrent requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The search stops when passing and failing levels are this close (percent of the passing one).
    #[serde(default = "default_resolution_pct")]
    pub resolution_pct: f64,
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// A step with more failed requests than this (percent) fails.
    #[serde(default = "default_max_error_pct")]
    pub max_error_pct: f64,
    /// Independent searches (the verdict's repeats); later ones start at the first's capacity.
    #[serde(default = "one_u32")]
    pub repeat: u32,
    #[serde(default)]
    pub arrival: Arrival,
    #[serde(default = "one")]
    pub burstiness: f64,
    /// Rate search only: a cap on requests in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Length of each step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u32>,
    /// Warm-up of each step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_requests: Option<u32>,
    #[serde(default)]
    pub input_tokens: TokenCount,
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    #[serde(default)]
    pub dataset: Dataset,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_groups: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_tokens: Option<u32>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub temperature: f64,
    #[serde(default = "default_num_ctx")]
    pub num_ctx: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_nonce: Option<String>,
}

fn one() -> f64 {
    1.0
}
fn one_u32() -> u32 {
    1
}
fn default_max_tokens() -> u32 {
    128
}
fn default_seed() -> u64 {
    DEFAULT_SEED
}
fn default_num_ctx() -> u32 {
    4096
}
fn default_percentile() -> f64 {
    99.0
}
fn default_resolution_pct() -> f64 {
    5.0
}
fn default_max_steps() -> u32 {
    16
}
fn default_max_error_pct() -> f64 {
    1.0
}

/// `field: must be a number from min to max, got x`.
fn range(field: &str, v: f64, min: f64, max: f64) -> Result<(), FieldError> {
    if v.is_finite() && v >= min && v <= max {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("must be a number from {min} to {max}, got {v}")))
    }
}

fn int_range(field: &str, v: u64, min: u64, max: u64) -> Result<(), FieldError> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("must be an integer from {min} to {max}, got {v}")))
    }
}

/// The workload fields both specs share, borrowed for validation.
struct Shape<'a> {
    model: &'a str,
    arrival: Arrival,
    burstiness: f64,
    duration_s: Option<f64>,
    requests: Option<u32>,
    warmup_s: Option<f64>,
    warmup_requests: Option<u32>,
    input_tokens: TokenCount,
    max_tokens: u32,
    dataset: Dataset,
    prefix_groups: Option<u32>,
    prefix_tokens: Option<u32>,
    temperature: f64,
    num_ctx: u32,
    start_at: Option<u64>,
    prompt_nonce: Option<&'a str>,
}

impl Shape<'_> {
    /// The workload fields' rules and cross-field checks (`S` supplies the ranges).
    fn validate<S: Spec>(&self, now_ms: u64) -> Result<(), FieldError> {
        S::check_float("burstiness", self.burstiness)?;
        if self.arrival != Arrival::Gamma && self.burstiness != 1.0 {
            return Err(FieldError::new(
                "burstiness",
                format!("applies to arrival \"gamma\" only (arrival is {:?})", self.arrival.as_str()),
            ));
        }
        match (self.duration_s, self.requests) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new("duration_s", "give either duration_s or requests, not both"));
            }
            (Some(d), None) => S::check_float("duration_s", d)?,
            (None, Some(n)) => S::check_uint("requests", n.into())?,
            (None, None) => {}
        }
        match (self.warmup_s, self.warmup_requests) {
            (Some(_), Some(_)) => {
                return Err(FieldError::new("warmup_s", "give either warmup_s or warmup_requests, not both"));
            }
            (Some(w), None) => S::check_float("warmup_s", w)?,
            (None, Some(n)) => S::check_uint("warmup_requests", n.into())?,
            (None, None) => {}
        }
        match self.input_tokens {
            TokenCount::Fixed(n) => int_range("input_tokens", n.into(), 1, MAX_INPUT_TOKENS.into())?,
            TokenCount::Normal(d) => {
                range("input_tokens.mean", d.mean, 1.0, MAX_INPUT_TOKENS as f64)?;
                range("input_tokens.sd", d.sd, 0.0, d.mean)?;
            }
        }
        S::check_uint("max_tokens", self.max_tokens.into())?;
        match self.dataset {
            Dataset::Synthetic => {
                if self.prefix_groups.is_some() || self.prefix_tokens.is_some() {
                    let f = if self.prefix_groups.is_some() { "prefix_groups" } else { "prefix_tokens" };
                    return Err(FieldError::new(f, "applies to dataset \"shared_prefix\" only"));
                }
            }
            Dataset::SharedPrefix => {
                S::check_uint("prefix_groups", self.prefix_groups.unwrap_or(1).into())?;
                S::check_uint("prefix_tokens", self.prefix_tokens.unwrap_or(1).into())?;
            }
        }
        S::check_float("temperature", self.temperature)?;
        S::check_uint("num_ctx", self.num_ctx.into())?;
        check_nonce("prompt_nonce", self.prompt_nonce)?;
        check_start_at(self.start_at, now_ms)
    }

    fn workload(&self, seed: u64, default_duration_s: f64) -> Workload {
        Workload {
            model: self.model.to_owned(),
            arrival: self.arrival,
            burstiness: self.burstiness,
            input_tokens: self.input_tokens,
            max_tokens: self.max_tokens,
            shared_prefix: (self.dataset == Dataset::SharedPrefix).then(|| SharedPrefix {
                groups: self.prefix_groups.unwrap_or(DEFAULT_PREFIX_GROUPS),
                tokens: self.prefix_tokens.unwrap_or(DEFAULT_PREFIX_TOKENS),
            }),
            seed,
            temperature: self.temperature,
            num_ctx: self.num_ctx,
            prompt_nonce: self.prompt_nonce.map(str::to_owned),
            length: match (self.duration_s, self.requests) {
                (_, Some(n)) => Length::Requests(n),
                (Some(d), None) => Length::Seconds(d),
                (None, None) => Length::Seconds(default_duration_s),
            },
            warmup: match (self.warmup_s, self.warmup_requests) {
                (Some(s), _) if s > 0.0 => Warmup::Seconds(s),
                (_, Some(n)) if n > 0 => Warmup::Requests(n),
                _ => Warmup::None,
            },
        }
    }
}

/// Default `prefix_groups` of `dataset: shared_prefix`.
pub const DEFAULT_PREFIX_GROUPS: u32 = 4;
/// Default `prefix_tokens` of `dataset: shared_prefix`.
pub const DEFAULT_PREFIX_TOKENS: u32 = 256;

/// The rules of the workload fields both specs share.
macro_rules! workload_rules {
    ($($extra:expr,)*) => {
        &[
            ("model", Rule::Model),
            ("arrival", Rule::OneOf(&["constant", "poisson", "gamma"])),
            ("burstiness", Rule::Float { min: 0.01, max: 100.0 }),
            ("duration_s", Rule::Float { min: 0.1, max: MAX_DURATION_S }),
            ("requests", Rule::UInt { min: 1, max: MAX_REQUESTS as u64 }),
            ("warmup_s", Rule::Float { min: 0.0, max: 3600.0 }),
            ("warmup_requests", Rule::UInt { min: 0, max: 100_000 }),
            ("input_tokens", Rule::Described(INPUT_TOKENS_RULE)),
            ("max_tokens", Rule::UInt { min: 1, max: MAX_TOKENS_LIMIT }),
            ("dataset", Rule::OneOf(&["synthetic", "shared_prefix"])),
            ("prefix_groups", Rule::UInt { min: 1, max: 10_000 }),
            ("prefix_tokens", Rule::UInt { min: 1, max: MAX_INPUT_TOKENS as u64 }),
            ("seed", Rule::UInt { min: 0, max: u64::MAX }),
            ("temperature", Rule::Float { min: 0.0, max: MAX_TEMPERATURE }),
            ("num_ctx", Rule::UInt { min: 1, max: MAX_NUM_CTX }),
            ("start_at", Rule::StartAt),
            ("prompt_nonce", Rule::Nonce),
            ("concurrency", Rule::UInt { min: 1, max: MAX_CONCURRENCY as u64 }),
            $($extra,)*
        ]
    };
}

const INPUT_TOKENS_RULE: &str = "must be an integer from 1 to 1000000, or {\"mean\": …, \"sd\": …}";
const SLO_RULE: &str = "must be an object of bounds in ms: any of ttft_ms, tpot_ms, e2e_ms";

impl Spec for LoadSpec {
    const RULES: &'static [(&'static str, Rule)] = workload_rules!(
        ("rate_rps", Rule::Float { min: MIN_RATE_RPS, max: MAX_RATE_RPS }),
        ("slo", Rule::Described(SLO_RULE)),
    );

    /// Checks every field; the error names the field and the accepted range.
    fn validate(&mut self, now_ms: u64) -> Result<(), FieldError> {
        check_model("model", &mut self.model)?;
        self.shape().validate::<Self>(now_ms)?;
        match (self.rate_rps, self.concurrency) {
            (None, None) => {
                return Err(FieldError::new(
                    "rate_rps",
                    "give rate_rps (open loop), concurrency (closed loop), or both (a rate capped by concurrency)",
                ));
            }
            (Some(r), _) => Self::check_float("rate_rps", r)?,
            (None, Some(_)) => {}
        }
        if let Some(c) = self.concurrency {
            Self::check_uint("concurrency", c.into())?;
        }
        if self.rate_rps.is_none() && self.arrival != Arrival::default() {
            return Err(FieldError::new("arrival", "applies to an open loop (rate_rps) only"));
        }
        if let Some(slo) = &self.slo {
            slo.validate("slo")?;
        }
        Ok(())
    }
}

impl Spec for CapacitySpec {
    const RULES: &'static [(&'static str, Rule)] = workload_rules!(
        ("search", Rule::OneOf(&["rate", "concurrency"])),
        ("slo", Rule::Described(SLO_RULE)),
        ("percentile", Rule::Float { min: 50.0, max: 100.0 }),
        ("start", Rule::Float { min: MIN_RATE_RPS, max: MAX_RATE_RPS }),
        ("max", Rule::Float { min: MIN_RATE_RPS, max: MAX_RATE_RPS }),
        ("resolution_pct", Rule::Float { min: 0.1, max: 50.0 }),
        ("max_steps", Rule::UInt { min: 1, max: 100 }),
        ("max_error_pct", Rule::Float { min: 0.0, max: 100.0 }),
        ("repeat", Rule::UInt { min: 1, max: 20 }),
    );

    /// Checks every field; the error names the field and the accepted range.
    fn validate(&mut self, now_ms: u64) -> Result<(), FieldError> {
        check_model("model", &mut self.model)?;
        self.shape().validate::<Self>(now_ms)?;
        self.slo.validate("slo")?;
        Self::check_float("percentile", self.percentile)?;
        Self::check_float("resolution_pct", self.resolution_pct)?;
        Self::check_uint("max_steps", self.max_steps.into())?;
        Self::check_float("max_error_pct", self.max_error_pct)?;
        Self::check_uint("repeat", self.repeat.into())?;
        let (lo, hi) = self.search.bounds();
        let start = self.start_level();
        let max = self.max_level();
        range("start", start, lo, hi)?;
        range("max", max, start, hi)?;
        if self.search == SearchMode::Concurrency {
            for (f, v) in [("start", start), ("max", max)] {
                if v.fract() != 0.0 {
                    return Err(FieldError::new(f, format!("must be a whole number of concurrent requests, got {v}")));
                }
            }
            if self.concurrency.is_some() {
                return Err(FieldError::new(
                    "concurrency",
                    "applies to search \"rate\" only (it is the searched level)",
                ));
            }
            if self.arrival != Arrival::default() {
                return Err(FieldError::new("arrival", "applies to search \"rate\" only"));
            }
        }
        if let Some(c) = self.concurrency {
            Self::check_uint("concurrency", c.into())?;
        }
        Ok(())
    }
}

/// `shape()` of both specs: their workload fields have the same names.
macro_rules! shape_of {
    ($($spec:ty),*) => {$(
        impl $spec {
            fn shape(&self) -> Shape<'_> {
                Shape {
                    model: &self.model,
                    arrival: self.arrival,
                    burstiness: self.burstiness,
                    duration_s: self.duration_s,
                    requests: self.requests,
                    warmup_s: self.warmup_s,
                    warmup_requests: self.warmup_requests,
                    input_tokens: self.input_tokens,
                    max_tokens: self.max_tokens,
                    dataset: self.dataset,
                    prefix_groups: self.prefix_groups,
                    prefix_tokens: self.prefix_tokens,
                    temperature: self.temperature,
                    num_ctx: self.num_ctx,
                    start_at: self.start_at,
                    prompt_nonce: self.prompt_nonce.as_deref(),
                }
            }
        }
    )*};
}

shape_of!(LoadSpec, CapacitySpec);

impl LoadSpec {
    pub fn workload(&self) -> Workload {
        self.shape().workload(self.seed, DEFAULT_DURATION_S)
    }

    pub fn level(&self) -> LoadLevel {
        LoadLevel { rate_rps: self.rate_rps, concurrency: self.concurrency }
    }
}

impl CapacitySpec {
    pub fn start_level(&self) -> f64 {
        self.start.unwrap_or(1.0)
    }

    pub fn max_level(&self) -> f64 {
        self.max.unwrap_or(self.search.default_max())
    }

    /// The workload of every step.
    pub fn workload(&self) -> Workload {
        self.shape().workload(self.seed, DEFAULT_STEP_DURATION_S)
    }

    /// A generous bound on the whole search, seconds: `max_steps × repeat` steps, each at most
    /// as long as one at the lowest level it can try (rate searches halve down to a tenth of
    /// `start` in that bound).
    pub fn budget_s(&self, per_request_s: f64) -> f64 {
        let w = self.workload();
        let lowest = match self.search {
            SearchMode::Rate => (self.start_level() / 10.0).max(MIN_RATE_RPS),
            SearchMode::Concurrency => 1.0,
        };
        let step = super::schedule::budget_s(&w, self.level(lowest), per_request_s);
        f64::from(self.max_steps) * f64::from(self.repeat) * step
    }

    /// The load level of a step at `value` of the searched quantity.
    pub fn level(&self, value: f64) -> LoadLevel {
        match self.search {
            SearchMode::Rate => LoadLevel { rate_rps: Some(value), concurrency: self.concurrency },
            SearchMode::Concurrency => LoadLevel { rate_rps: None, concurrency: Some(value.round().max(1.0) as u32) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobSpec;
    use serde_json::{Value, json};

    const NOW: u64 = 1_800_000_000_000;

    fn load(body: Value) -> Result<LoadSpec, FieldError> {
        let mut b = body;
        b["test_type"] = json!("llm_load");
        match JobSpec::from_json(&b, NOW)? {
            JobSpec::LlmLoad(s) => Ok(s),
            other => panic!("{other:?}"),
        }
    }

    fn capacity(body: Value) -> Result<CapacitySpec, FieldError> {
        let mut b = body;
        b["test_type"] = json!("llm_capacity");
        match JobSpec::from_json(&b, NOW)? {
            JobSpec::LlmCapacity(s) => Ok(s),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_workload() {
        let s = load(json!({"model": "m", "rate_rps": 5})).unwrap();
        assert_eq!((s.arrival, s.burstiness, s.max_tokens, s.seed), (Arrival::Poisson, 1.0, 128, 42));
        let w = s.workload();
        assert_eq!(w.length, Length::Seconds(DEFAULT_DURATION_S));
        assert_eq!(w.warmup, Warmup::None);
        assert_eq!(w.input_tokens, TokenCount::Fixed(128));
        assert!(w.shared_prefix.is_none());
        let s = load(json!({"model": "m", "concurrency": 4, "requests": 20, "warmup_requests": 2,
            "input_tokens": {"mean": 100, "sd": 20}, "dataset": "shared_prefix", "prefix_groups": 3}))
        .unwrap();
        let w = s.workload();
        assert_eq!((w.length, w.warmup), (Length::Requests(20), Warmup::Requests(2)));
        assert_eq!(w.input_tokens, TokenCount::Normal(TokenDist { mean: 100.0, sd: 20.0 }));
        assert_eq!(w.shared_prefix, Some(SharedPrefix { groups: 3, tokens: DEFAULT_PREFIX_TOKENS }));
        assert_eq!(s.level(), LoadLevel { rate_rps: None, concurrency: Some(4) });
    }

    #[test]
    fn every_bad_field_is_named_with_its_range() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"rate_rps": 1}), "model", "is required"),
            (json!({"model": "m"}), "rate_rps", "concurrency"),
            (json!({"model": "m", "rate_rps": 0}), "rate_rps", "from 0.01 to 10000"),
            (json!({"model": "m", "rate_rps": "fast"}), "rate_rps", "from 0.01 to 10000"),
            (json!({"model": "m", "concurrency": 0}), "concurrency", "from 1 to 4096"),
            (json!({"model": "m", "rate_rps": 1, "arrival": "burst"}), "arrival", "accepted: constant, poisson, gamma"),
            (json!({"model": "m", "rate_rps": 1, "burstiness": 0.5}), "burstiness", "gamma"),
            (json!({"model": "m", "rate_rps": 1, "arrival": "gamma", "burstiness": 0}), "burstiness", "0.01 to 100"),
            (json!({"model": "m", "rate_rps": 1, "duration_s": 5, "requests": 5}), "duration_s", "not both"),
            (json!({"model": "m", "rate_rps": 1, "requests": 0}), "requests", "from 1 to"),
            (json!({"model": "m", "rate_rps": 1, "warmup_s": 1, "warmup_requests": 1}), "warmup_s", "not both"),
            (json!({"model": "m", "rate_rps": 1, "input_tokens": 0}), "input_tokens", "from 1 to"),
            (
                json!({"model": "m", "rate_rps": 1, "input_tokens": {"mean": 10, "sd": 20}}),
                "input_tokens.sd",
                "0 to 10",
            ),
            (
                json!({"model": "m", "rate_rps": 1, "input_tokens": {"mean": 10, "dev": 2}}),
                "input_tokens.dev",
                "unknown field `dev`",
            ),
            (json!({"model": "m", "rate_rps": 1, "input_tokens": "many"}), "input_tokens", "{\"mean\""),
            (json!({"model": "m", "rate_rps": 1, "max_tokens": 0}), "max_tokens", "from 1 to 1000000"),
            (json!({"model": "m", "rate_rps": 1, "prefix_groups": 2}), "prefix_groups", "shared_prefix"),
            (json!({"model": "m", "rate_rps": 1, "slo": {}}), "slo", "at least one"),
            (json!({"model": "m", "rate_rps": 1, "slo": {"ttft_ms": -1}}), "slo.ttft_ms", "from 0.001"),
            (json!({"model": "m", "rate_rps": 1, "slo": {"ttft": 5}}), "slo.ttft", "unknown field"),
            (json!({"model": "m", "rate_rps": 1, "mdoel": "x"}), "mdoel", "unknown field"),
            (json!({"model": "m", "concurrency": 1, "arrival": "constant"}), "arrival", "open loop"),
            (json!({"model": "m", "rate_rps": 1, "start_at": 5}), "start_at", "epoch time"),
            (json!({"model": "m", "rate_rps": 1, "prompt_nonce": "a b"}), "prompt_nonce", "letters"),
        ];
        for (body, field, needle) in cases {
            let e = load(body.clone()).unwrap_err();
            assert_eq!(e.field, field, "{body}: {e}");
            assert!(e.message.contains(needle), "{body}: {e}");
        }
    }

    #[test]
    fn capacity_defaults_and_errors() {
        let s = capacity(json!({"model": "m", "slo": {"ttft_ms": 500}})).unwrap();
        assert_eq!((s.search, s.percentile, s.resolution_pct, s.repeat), (SearchMode::Rate, 99.0, 5.0, 1));
        assert_eq!((s.start_level(), s.max_level()), (1.0, 1000.0));
        assert_eq!(s.workload().length, Length::Seconds(DEFAULT_STEP_DURATION_S));
        assert_eq!(s.level(2.5), LoadLevel { rate_rps: Some(2.5), concurrency: None });
        let c = capacity(json!({"model": "m", "slo": {"tpot_ms": 50}, "search": "concurrency", "max": 16})).unwrap();
        assert_eq!(c.level(3.0), LoadLevel { rate_rps: None, concurrency: Some(3) });
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"model": "m"}), "slo", "is required"),
            (json!({"model": "m", "slo": {"ttft_ms": 1}, "percentile": 20}), "percentile", "from 50 to 100"),
            (json!({"model": "m", "slo": {"ttft_ms": 1}, "search": "users"}), "search", "accepted: rate, concurrency"),
            (json!({"model": "m", "slo": {"ttft_ms": 1}, "search": "concurrency", "start": 1.5}), "start", "whole"),
            (json!({"model": "m", "slo": {"ttft_ms": 1}, "start": 10, "max": 5}), "max", "from 10"),
            (
                json!({"model": "m", "slo": {"ttft_ms": 1}, "search": "concurrency", "concurrency": 2}),
                "concurrency",
                "rate",
            ),
            (json!({"model": "m", "slo": {"ttft_ms": 1}, "rate_rps": 2}), "rate_rps", "unknown field"),
            (json!({"model": "m", "slo": {"ttft_ms": 1}, "repeat": 0}), "repeat", "from 1 to 20"),
        ];
        for (body, field, needle) in cases {
            let e = capacity(body.clone()).unwrap_err();
            assert_eq!(e.field, field, "{body}: {e}");
            assert!(e.message.contains(needle), "{body}: {e}");
        }
    }

    #[test]
    fn stored_specs_round_trip_through_the_tagged_job_spec() {
        let spec = JobSpec::from_json(
            &json!({"test_type": "llm_capacity", "model": "m", "slo": {"ttft_ms": 500}, "search": "concurrency"}),
            NOW,
        )
        .unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["test_type"], "llm_capacity");
        assert_eq!(v["search"], "concurrency");
        let back: JobSpec = serde_json::from_value(v).unwrap();
        assert_eq!(back, spec);
        assert_eq!(back.models(), vec!["m".to_owned()]);
    }
}
