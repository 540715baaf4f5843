//! The agent's HTTP contract: what `GET /health`, `GET /capabilities`, `POST /jobs` and
//! `GET /jobs/{id}` answer. The agent serializes these structs and central deserializes them, so
//! a renamed field is a compile error on one side or a parse error naming the field on the other,
//! never a silent `null`.
//!
//! Compatibility rule: fields a neighbouring version adds are tolerated (serde ignores unknown
//! fields; [`Capabilities::extra`] keeps them so nothing an agent said is lost), and a missing
//! required field is an error that names it (`missing field `machine_id``). New optional fields
//! carry `#[serde(default)]` so older agents still parse.

use serde::{Deserialize, Serialize};

use crate::engine::{EngineFingerprint, EngineInfo, EngineKind, ModelInfo};
use crate::event::JobError;
use crate::hardware::{Hardware, LegacyCapabilities};
use crate::job::JobSpec;
use crate::metrics::{Aggregate, RequestMetrics};

/// The engine as `/health` reports it: from the agent's cached engine status, never a fresh probe
/// of the engine under test (unless `?refresh=1` asked for one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineHealth {
    pub kind: EngineKind,
    pub base_url: String,
    /// Whether the engine answered its last status check (an error answer counts as reachable).
    pub reachable: bool,
    /// Seconds since that check; `None` before the first one finished.
    #[serde(default)]
    pub checked_age_s: Option<f64>,
    /// Why the last check failed, if it did.
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /health` (open even when the agent has an `auth_token`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub ok: bool,
    pub machine_id: String,
    pub label: String,
    pub engine: EngineHealth,
    /// A job is running.
    pub busy: bool,
    /// Jobs waiting behind the running one.
    pub queue_len: usize,
    /// WebSocket clients closed because they could not keep up (since start).
    #[serde(default)]
    pub ws_slow_disconnects: u64,
}

impl Health {
    /// Running or queueing a job.
    pub fn is_busy(&self) -> bool {
        self.busy || self.queue_len > 0
    }
}

/// `GET /capabilities`: what the agent can run, on which engine, models and hardware.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capabilities {
    pub machine_id: String,
    pub label: String,
    /// Test types this agent runs (`llm_generate`, `llm_sweep`, …); strings, so a newer agent's
    /// extra test types do not break an older central.
    pub tests: Vec<String>,
    /// The LLM models this agent offers (configured `llm_models`, else what the engine lists).
    pub llm_models: Vec<String>,
    #[serde(default)]
    pub whisper_models: Vec<String>,
    #[serde(default)]
    pub sdxl_profiles: Vec<String>,
    pub engine: EngineInfo,
    /// Details of the offered models, as the engine describes them.
    #[serde(default)]
    pub models: Vec<ModelInfo>,
    pub hardware: Hardware,
    /// Jobs the agent queues before answering 429.
    #[serde(default)]
    pub queue_limit: Option<usize>,
    /// What the engine reports about its build and settings (llama.cpp `/props`, Ollama
    /// `/api/version` + `/api/ps`, vLLM `/version`); absent before the engine first answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_fingerprint: Option<EngineFingerprint>,
    /// The fastest this agent's own measuring path can ingest (see [`ClientCeiling`]); `null`
    /// until the start-up calibration has finished, `client_ceiling_unavailable` then says why.
    #[serde(default)]
    pub client_ceiling: Option<ClientCeiling>,
    /// Why `client_ceiling` is `null` (calibration still running, or failed); absent when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ceiling_unavailable: Option<String>,
    /// The image server (`image_engine:`) as last probed; absent when none is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_engine: Option<WorkloadEngine>,
    /// The speech server (`speech_engine:`) as last probed; absent when none is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_engine: Option<WorkloadEngine>,
    /// The original bench-race's flat fields (`accelerator_type`, `gpu_name`, `ollama_reachable`,
    /// …), derived from `hardware` for its central. Written by the agent only: a reader finds
    /// them in `extra` (they repeat `hardware`).
    #[serde(flatten, default, skip_deserializing)]
    pub legacy: Option<LegacyCapabilities>,
    /// Fields this side does not know (a newer agent's), kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Capabilities {
    /// Every LLM model name the agent mentions: `llm_models`, then `models[].name` not already listed.
    pub fn model_names(&self) -> Vec<String> {
        let mut names = self.llm_models.clone();
        for m in &self.models {
            if !names.contains(&m.name) {
                names.push(m.name.clone());
            }
        }
        names
    }

    /// Whether the agent runs this test type.
    pub fn supports(&self, test_type: &str) -> bool {
        self.tests.iter().any(|t| t == test_type)
    }
}

/// An image or speech server as the agent last saw it (cached for a few seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadEngine {
    /// `comfyui` or `openai`.
    pub kind: String,
    pub base_url: String,
    pub reachable: bool,
    #[serde(default)]
    pub version: Option<String>,
    /// The checkpoints or Whisper models it offers (what `sdxl_profiles` / `whisper_models` list).
    #[serde(default)]
    pub models: Vec<String>,
    /// Why it is unreachable, or why its models are unknown.
    #[serde(default)]
    pub error: Option<String>,
}

/// How fast the agent's own measuring path can go: an in-process engine with no latency at
/// all (first token at once, then tokens as fast as loopback takes them) driven through the
/// same engine client, metrics and event publishing a job uses. A result near these figures
/// measures the tool, not the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientCeiling {
    /// Median client decode rate (`decode_tok_s`, the figure `ceiling_ratio` divides) over the
    /// calibration requests, tokens/s.
    pub tok_s: f64,
    /// Median rate of streamed engine events (SSE `data:` chunks carrying text) read and timed,
    /// events/s. The calibration engine sends one token per event, so this is close to `tok_s`;
    /// an engine that packs several tokens per event can go above `tok_s`.
    pub events_per_s: f64,
    /// Median time to first token over the zero-latency engine, ms: the floor any TTFT this
    /// agent reports includes.
    pub ttft_floor_ms: f64,
    /// When it was measured, RFC 3339 UTC.
    pub measured_at: String,
    /// `quick` (the agent's start-up calibration, at most 1 s) or `full` (`bench-agent calibrate`).
    pub kind: CeilingKind,
    /// Recorded calibration requests behind the medians.
    pub requests: u32,
    /// Tokens streamed over those requests.
    pub tokens: u64,
    /// Time the calibration requests took, s.
    pub duration_s: f64,
}

/// Which calibration produced a [`ClientCeiling`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CeilingKind {
    Quick,
    Full,
}

impl CeilingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CeilingKind::Quick => "quick",
            CeilingKind::Full => "full",
        }
    }
}

impl ClientCeiling {
    /// `measured ÷ tok_s`, the share of the ceiling a measured decode rate reached; `None` when
    /// either figure is unknown, not finite or not positive.
    pub fn ratio(&self, measured_tok_s: Option<f64>) -> Option<f64> {
        let measured = measured_tok_s.filter(|m| m.is_finite() && *m > 0.0)?;
        (self.tok_s.is_finite() && self.tok_s > 0.0).then(|| measured / self.tok_s)
    }
}

/// The answer to `POST /jobs` (202).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobAccepted {
    pub job_id: String,
    /// Jobs ahead of this one (0 = runs next).
    pub position: usize,
    pub status: JobStatus,
}

/// Where a job stands on its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Error,
    Cancelled,
}

impl JobStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Error | JobStatus::Cancelled)
    }
}

/// A job as `GET /jobs/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub job_id: String,
    pub status: JobStatus,
    pub spec: JobSpec,
    /// Jobs ahead of this one (the running job included); only while queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// The engine that ran (or runs) the job; set when it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    pub created_at_s: f64,
    /// Metrics of every recorded (non-warm-up) request so far.
    #[serde(default)]
    pub requests: Vec<RequestMetrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<Aggregate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// `seq` of the job's last event so far (a follower that stored less has missed events).
    #[serde(default)]
    pub last_seq: u64,
}

/// `DELETE /jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobCancelAnswer {
    pub job_id: String,
    /// `cancelled` when the job had already ended or never started, else `cancelling`.
    pub status: String,
}

/// `GET /time`: the agent's wall clock when it handled the request, for central's clock-offset
/// estimate (open like `/health`: a clock reading reveals nothing secret).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AgentTime {
    /// Epoch milliseconds, sub-millisecond precision.
    pub now_unix_ms: f64,
}

/// `POST /api/models/pull` on the agent: pull `model` onto its engine (Ollama).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    pub model: String,
}

impl PullRequest {
    /// Longest model name accepted.
    pub const MAX_MODEL_LEN: usize = 256;

    /// The model name, checked: 1–256 characters of `A-Z a-z 0-9 . _ : / - @ +` (registry names
    /// such as `llama3.2:1b` or `hf.co/user/repo:Q4_K_M`), not starting with `-` or `/`.
    pub fn validate(&self) -> Result<&str, crate::job::FieldError> {
        let m = self.model.trim();
        let ok = !m.is_empty()
            && m.len() <= Self::MAX_MODEL_LEN
            && !m.starts_with(['-', '/'])
            && !m.contains("..")
            && m.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-' | '@' | '+'));
        if ok {
            Ok(m)
        } else {
            Err(crate::job::FieldError {
                field: "model".into(),
                message: format!(
                    "must be 1-{} characters of A-Z a-z 0-9 . _ : / - @ + (e.g. llama3.2:1b), got {:?}",
                    Self::MAX_MODEL_LEN,
                    self.model
                ),
            })
        }
    }
}

/// `202` answer of `POST /api/models/pull`: the pull's events carry `job_id` (on `/ws` and
/// `GET /jobs/{job_id}/events`). A pull of a model already being pulled answers its job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullAccepted {
    pub job_id: String,
    pub model: String,
    /// `true` when this request joined a pull of the same model already running.
    pub already_running: bool,
}

/// One entry of the agent's `GET /api/models/pulls`: a pull running now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningPull {
    pub model: String,
    pub job_id: String,
}

/// `POST /logout` on the agent (central answers with a redirect to its login page).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoggedOut {
    pub logged_out: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caps_json() -> serde_json::Value {
        json!({
            "machine_id": "m1", "label": "M1", "tests": ["llm_generate", "llm_sweep", "future_test"],
            "llm_models": ["a"], "whisper_models": [], "sdxl_profiles": [],
            "engine": {"kind": "openai", "base_url": "http://e", "version": "b1", "reachable": true},
            "models": [{"name": "a"}, {"name": "b", "quantization": "Q4_0"}],
            "hardware": {"os": "linux", "hostname": "h", "cpu_brand": "x", "cpu_logical_cores": 2,
                         "cpu_physical_cores": 1, "memory_total_bytes": 10, "gpus": []},
            "queue_limit": 16,
            "accelerator_type": null, "gpu_name": "future field"
        })
    }

    #[test]
    fn capabilities_tolerate_and_keep_unknown_fields() {
        let caps: Capabilities = serde_json::from_value(caps_json()).unwrap();
        assert_eq!(caps.model_names(), vec!["a", "b"]);
        assert!(caps.supports("llm_sweep") && caps.supports("future_test") && !caps.supports("x"));
        assert_eq!(caps.extra["gpu_name"], "future field");
        assert!(caps.extra.contains_key("accelerator_type"));
        // Round trip keeps the unknown fields at the top level.
        let back = serde_json::to_value(&caps).unwrap();
        assert_eq!(back["gpu_name"], "future field");
        assert_eq!(back["engine"]["version"], "b1");
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let mut v = caps_json();
        v.as_object_mut().unwrap().remove("machine_id");
        let err = serde_json::from_value::<Capabilities>(v).unwrap_err().to_string();
        assert!(err.contains("missing field `machine_id`"), "{err}");
        let err = serde_json::from_value::<Health>(json!({"ok": true, "machine_id": "m", "label": "l",
            "busy": false, "queue_len": 0}))
        .unwrap_err()
        .to_string();
        assert!(err.contains("missing field `engine`"), "{err}");
    }

    fn ceiling(tok_s: f64) -> ClientCeiling {
        ClientCeiling {
            tok_s,
            events_per_s: tok_s,
            ttft_floor_ms: 0.2,
            measured_at: "2026-12-05T08:00:00Z".into(),
            kind: CeilingKind::Quick,
            requests: 3,
            tokens: 3000,
            duration_s: 0.1,
        }
    }

    #[test]
    fn ceiling_ratio_is_measured_over_ceiling_and_unknown_when_either_is() {
        assert_eq!(ceiling(1000.0).ratio(Some(500.0)), Some(0.5));
        assert_eq!(ceiling(1000.0).ratio(Some(2000.0)), Some(2.0));
        assert_eq!(ceiling(1000.0).ratio(None), None);
        assert_eq!(ceiling(1000.0).ratio(Some(f64::NAN)), None);
        assert_eq!(ceiling(1000.0).ratio(Some(0.0)), None);
        assert_eq!(ceiling(0.0).ratio(Some(10.0)), None);
        assert_eq!(ceiling(f64::INFINITY).ratio(Some(10.0)), None);
    }

    #[test]
    fn capabilities_carry_the_ceiling_and_old_agents_still_parse() {
        let old: Capabilities = serde_json::from_value(caps_json()).unwrap();
        assert_eq!((old.client_ceiling, old.client_ceiling_unavailable), (None, None));
        let mut v = caps_json();
        v["client_ceiling"] = serde_json::to_value(ceiling(1000.0)).unwrap();
        let caps: Capabilities = serde_json::from_value(v).unwrap();
        assert_eq!(caps.client_ceiling, Some(ceiling(1000.0)));
        let back = serde_json::to_value(&caps).unwrap();
        assert_eq!(back["client_ceiling"]["kind"], "quick");
        assert!(back.get("client_ceiling_unavailable").is_none());
        assert!(!caps.extra.contains_key("client_ceiling"), "typed, not kept as unknown");
    }

    #[test]
    fn health_and_job_accepted_shapes() {
        let h: Health = serde_json::from_value(json!({"ok": true, "machine_id": "m", "label": "l",
            "engine": {"kind": "mock", "base_url": "", "reachable": true}, "busy": false, "queue_len": 2,
            "newer_field": 1}))
        .unwrap();
        assert!(h.is_busy() && h.engine.checked_age_s.is_none());
        let a: JobAccepted = serde_json::from_value(json!({"job_id": "j", "position": 0, "status": "queued"})).unwrap();
        assert_eq!(a.status, JobStatus::Queued);
        assert!(JobStatus::Cancelled.is_finished() && !JobStatus::Running.is_finished());
    }
}

/// Which agent central talks to on a machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// This project's `bench-agent` (typed `/health`, `/capabilities`, `/time`, sequenced events).
    #[default]
    Native,
    /// The original Python bench-race agent (`/health` `{ok, machine_id, label}`, one repeat per
    /// `POST /jobs`, unsequenced events timed by its own client). Central drives it itself.
    Original,
}

impl Protocol {
    pub fn is_native(&self) -> bool {
        *self == Protocol::Native
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Native => "native",
            Protocol::Original => "original",
        }
    }
}

/// The JSON body of every error answer, agent and central alike: `error` says what went wrong
/// (naming the field for bad input), `field` names it alone, `detail` holds what a program needs
/// (the accepted range, a limit, the machines of a refused run), `available` the models an agent
/// offers when it refused one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<Vec<String>>,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>) -> Self {
        ErrorBody { error: error.into(), ..Default::default() }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// `detail`: any serializable value (plain data; a value that cannot be serialized is left out).
    pub fn detail(mut self, detail: impl Serialize) -> Self {
        self.detail = serde_json::to_value(detail).ok();
        self
    }
}

/// `detail` of a 413: the body limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitDetail {
    pub limit_bytes: usize,
}
