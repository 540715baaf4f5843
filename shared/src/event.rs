//! The event envelope agents stream over `/ws` and `GET /jobs/{id}/events`.
//!
//! On the wire every event is one compact JSON object:
//! `{"job_id": "…", "seq": 3, "machine_id": "…", "type": "llm_token", "payload": {…}}`.
//! `seq` counts up from 1 within a job, so a client can detect gaps and replay what it missed.

use serde::{Deserialize, Serialize};

use crate::engine::EngineKind;
use crate::job::TestType;
use crate::load::{LoadDone, LoadProgress, LoadRequests, LoadStep};
use crate::metrics::{Aggregate, RequestMetrics, TokenChannel};
use crate::sweep::{SweepDone, SweepProgress, SweepRow, SweepStarted};
use crate::workload::compute::{ComputeDone, ComputeJobDone, ComputeLine};
use crate::workload::image::{ImageComplete, ImageError, ImageJobDone, ImagePreview, ImageProgress, ImageStarted};
use crate::workload::speech::{TranscribeDone, TranscribeJobDone, TranscribeSegment};

/// One event as sent on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub job_id: String,
    pub seq: u64,
    pub machine_id: String,
    /// Wall-clock epoch seconds when the agent emitted the event (for humans; metrics use
    /// monotonic offsets).
    pub emitted_at_s: f64,
    /// Set on every event of a job that runs on the mock engine because the real one failed
    /// and the agent is configured with `engine.fallback: mock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    #[serde(flatten)]
    pub event: Event,
}

/// An envelope whose payload is kept as raw JSON: what central relays and stores, so that event
/// types it does not know are never dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawEnvelope {
    pub job_id: String,
    #[serde(default)]
    pub seq: u64,
    #[serde(default)]
    pub machine_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub payload: serde_json::Value,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// An agent event as central receives it: the envelope as the agent sent it (relayed and stored
/// unchanged) and its payload decoded once into [`Event`].
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub env: RawEnvelope,
    pub event: Decoded,
}

/// What central could read of an agent event's payload.
// `Known` is nearly every event: boxing it would cost an allocation per token for the rare others.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Known(Event),
    /// A kind this side does not know (a newer agent's): relayed and stored, never folded.
    Unknown,
    /// A known kind whose payload does not match (serde's reason).
    Unreadable(String),
}

impl Received {
    /// Decodes the payload of a received envelope.
    pub fn decode(env: RawEnvelope) -> Received {
        let event = match Event::decode(&env.kind, &env.payload) {
            None => Decoded::Unknown,
            Some(Ok(e)) => Decoded::Known(e),
            Some(Err(e)) => Decoded::Unreadable(e.to_string()),
        };
        Received { env, event }
    }

    /// True for the events that end a job (by kind: an unreadable `job_done` still ends it).
    pub fn is_terminal(&self) -> bool {
        match &self.event {
            Decoded::Known(e) => e.is_terminal(),
            Decoded::Unreadable(_) => is_terminal_type(&self.env.kind),
            Decoded::Unknown => false,
        }
    }
}

/// Declares [`Event`] from one list: variant, payload type and wire name, so the enum, its
/// [`Event::KINDS`], [`Event::type_name`] and [`Event::decode`] cannot disagree.
macro_rules! events {
    ($($(#[$doc:meta])* $variant:ident($payload:ty) = $kind:literal,)*) => {
        /// Event types and their payloads.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", content = "payload", rename_all = "snake_case")]
        pub enum Event {
            $($(#[$doc])* $variant($payload),)*
        }

        impl Event {
            /// Every agent event kind, as on the wire (the docs' event reference is checked against it).
            pub const KINDS: &'static [&'static str] = &[$($kind),*];

            /// The wire name of the event type.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(Event::$variant(_) => $kind,)*
                }
            }

            /// Reads a payload of the given kind: `None` for a kind this side does not know.
            pub fn decode(kind: &str, payload: &serde_json::Value) -> Option<Result<Event, serde_json::Error>> {
                match kind {
                    $($kind => Some(<$payload as Deserialize>::deserialize(payload).map(Event::$variant)),)*
                    _ => None,
                }
            }
        }
    };
}

events! {
    JobQueued(JobQueued) = "job_queued",
    JobStarted(JobStarted) = "job_started",
    LlmToken(LlmToken) = "llm_token",
    RequestDone(Box<RequestDone>) = "request_done",
    /// The job's figures over its repeats: the LLM figures, or a workload's ([`JobResult`]).
    JobDone(Box<JobResult>) = "job_done",
    JobError(JobError) = "job_error",
    JobCancelled(JobCancelled) = "job_cancelled",
    SweepStarted(SweepStarted) = "sweep_started",
    SweepProgress(Box<SweepProgress>) = "sweep_progress",
    SweepRow(SweepRow) = "sweep_row",
    SweepDone(Box<SweepDone>) = "sweep_done",
    /// One runtime sampler tick while the job runs (CPU, memory, GPUs).
    RuntimeMetrics(Box<crate::runtime::RuntimeSample>) = "runtime_metrics",
    /// `llm_load` / `llm_capacity`: once a second.
    LoadProgress(LoadProgress) = "load_progress",
    /// `llm_load` / `llm_capacity`: the records of the requests that ended since the last one.
    LoadRequests(LoadRequests) = "load_requests",
    /// `llm_capacity`: a step ended (a point of the curve).
    LoadStep(Box<LoadStep>) = "load_step",
    /// `llm_load` / `llm_capacity`: the result (terminal).
    LoadDone(Box<LoadDone>) = "load_done",
    ImageStarted(ImageStarted) = "image_started",
    ImageProgress(ImageProgress) = "image_progress",
    ImagePreview(Box<ImagePreview>) = "image_preview",
    ImageComplete(Box<ImageComplete>) = "image_complete",
    ImageError(ImageError) = "image_error",
    TranscribeSegment(TranscribeSegment) = "transcribe_segment",
    TranscribeDone(Box<TranscribeDone>) = "transcribe_done",
    ComputeLine(ComputeLine) = "compute_line",
    ComputeDone(ComputeDone) = "compute_done",
    /// Progress of a model pull (`POST /api/models/pull`).
    ModelPullProgress(ModelPullProgress) = "model_pull_progress",
    /// A model pull finished: the engine has the model.
    ModelPullDone(ModelPullDone) = "model_pull_done",
}

impl Event {
    /// True for the events that end a job (`job_done`, `sweep_done`, `load_done`,
    /// `model_pull_done`, `job_error`, `job_cancelled`).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::JobDone(_)
                | Event::SweepDone(_)
                | Event::LoadDone(_)
                | Event::ModelPullDone(_)
                | Event::JobError(_)
                | Event::JobCancelled(_)
        )
    }
}

/// True when an event type name ends a job.
pub fn is_terminal_type(kind: &str) -> bool {
    matches!(kind, "job_done" | "sweep_done" | "load_done" | "model_pull_done" | "job_error" | "job_cancelled")
}

/// `model_pull_progress`: where a pull stands, as the engine reported it. Byte counts add up
/// every layer the engine has announced so far (`null` until it announced one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPullProgress {
    pub model: String,
    /// The engine's own words (`pulling manifest`, `pulling 6a0746a1ec1a`, `verifying sha256 digest`, …).
    pub status: String,
    pub completed_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
}

/// `model_pull_done`: the engine has the model (it said `success`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPullDone {
    pub model: String,
    /// Bytes of every layer of the model (`null` when the engine announced none, e.g. already present).
    pub total_bytes: Option<u64>,
    /// From the request to `success`, wall clock.
    pub duration_s: f64,
}

/// `job_queued`: accepted; `position` is the number of jobs ahead of it (0 = runs next).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobQueued {
    pub test_type: TestType,
    pub models: Vec<String>,
    pub position: usize,
}

/// `job_started`: the job left the queue and is about to send its first request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStarted {
    pub test_type: TestType,
    pub models: Vec<String>,
    pub engine: EngineKind,
    pub engine_base_url: String,
    /// The synchronized start instant (epoch ms) the job waited for, if any.
    pub start_at: Option<u64>,
    /// Wall-clock epoch seconds when the first request was sent.
    pub started_at_s: f64,
    /// Caveats a reader of the numbers must know (e.g. `cold` asked but the engine cannot unload).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// `llm_token`: generated text, coalesced. `timestamp_s` is the wall-clock arrival of the first
/// piece of text in this event (measured on arrival, never on flush).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmToken {
    pub text: String,
    pub timestamp_s: f64,
    pub repeat_index: u32,
    #[serde(default)]
    pub channel: TokenChannel,
    #[serde(default)]
    pub warmup: bool,
    /// Engine deltas coalesced into this event (Ollama and llama.cpp stream one token per
    /// delta), so a live rate counts tokens rather than events or characters.
    #[serde(default)]
    pub tokens: u32,
}

/// `request_done`: one request (one repeat, or one warm-up) finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestDone {
    pub repeat_index: u32,
    pub warmup: bool,
    pub model: String,
    pub engine: EngineKind,
    #[serde(flatten)]
    pub metrics: RequestMetrics,
}

/// `job_done`: the job finished. The bench-race fields (`ttft_ms`, `gen_tokens`,
/// `gen_tokens_per_s`, `total_ms`) are means over the recorded repeats (`gen_tokens` rounded);
/// `aggregate` has the full statistics and `requests` every repeat's metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDone {
    pub ttft_ms: Option<f64>,
    pub gen_tokens: u64,
    pub gen_tokens_per_s: Option<f64>,
    pub total_ms: f64,
    pub model: String,
    pub engine: EngineKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    pub ttfc_ms: Option<f64>,
    pub decode_tok_s: Option<f64>,
    pub engine_decode_tok_s: Option<f64>,
    pub prompt_tokens: Option<u64>,
    pub engine_prefill_tok_s: Option<f64>,
    pub client_prefill_tok_s: Option<f64>,
    pub load_ms: Option<f64>,
    /// Where `load_ms` came from (engine report after a cold unload, or the warm-up estimate).
    #[serde(default)]
    pub load_source: Option<crate::metrics::LoadSource>,
    /// The context length the engine really ran the model with, where it says (Ollama
    /// `/api/ps`, llama.cpp per-slot `n_ctx`).
    #[serde(default)]
    pub context_length: Option<u64>,
    pub token_source: Option<crate::metrics::TokenSource>,
    pub repeats: u32,
    pub aggregate: Aggregate,
    pub requests: Vec<RequestMetrics>,
    /// The text generated by the first recorded repeat (content channel).
    pub output_text: String,
    /// Caveats a reader of the numbers must know (e.g. load time not measured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Mean energy per recorded request, joules, when every request has one.
    #[serde(default)]
    pub energy_j: Option<f64>,
    /// Mean tokens per joule over the recorded requests, when every request has one.
    #[serde(default)]
    pub tokens_per_j: Option<f64>,
    /// A GPU reported thermal or power clock limits during a recorded request (`None`: not
    /// observable on this machine). Makes the job's speed figures suspect for comparison.
    #[serde(default)]
    pub throttled: Option<bool>,
    /// `decode_tok_s ÷` the agent's `client_ceiling.tok_s` (see `/capabilities`): near 1 the
    /// agent's own measuring path, not the machine, may be the limit. `None` when either is
    /// unknown (e.g. the start-up calibration had not finished).
    #[serde(default)]
    pub ceiling_ratio: Option<f64>,
}

impl JobDone {
    /// A job's result from its recorded requests: the bench-race seed fields are means over them,
    /// `aggregate` has the full statistics. `ceiling_ratio` is left to whoever knows the client
    /// ceiling.
    pub fn from_requests(
        model: &str,
        engine: EngineKind,
        fallback_reason: Option<String>,
        requests: Vec<RequestMetrics>,
        output_text: String,
        load: Option<(f64, crate::metrics::LoadSource)>,
        notes: Vec<String>,
    ) -> JobDone {
        use crate::metrics::{TokenSource, aggregate, mean};
        let all = |f: fn(&RequestMetrics) -> Option<f64>| -> Option<f64> {
            let v: Option<Vec<f64>> = requests.iter().map(f).collect();
            v.and_then(mean)
        };
        let energy_j = all(|r| r.energy_j);
        let tokens_per_j = all(|r| r.tokens_per_j);
        let throttled = requests.iter().filter_map(|r| r.throttled).reduce(|a, b| a || b);
        let token_source = requests.first().map(|first| {
            if requests.iter().all(|r| r.token_source == first.token_source) {
                first.token_source
            } else {
                TokenSource::Chunks
            }
        });
        JobDone {
            ttft_ms: mean(requests.iter().filter_map(|r| r.ttft_ms)),
            gen_tokens: mean(requests.iter().map(|r| r.gen_tokens as f64)).unwrap_or(0.0).round() as u64,
            gen_tokens_per_s: mean(requests.iter().filter_map(|r| r.gen_tokens_per_s)),
            total_ms: mean(requests.iter().map(|r| r.total_ms)).unwrap_or(0.0),
            model: model.to_owned(),
            engine,
            fallback_reason,
            ttfc_ms: mean(requests.iter().filter_map(|r| r.ttfc_ms)),
            decode_tok_s: mean(requests.iter().filter_map(|r| r.decode_tok_s)),
            engine_decode_tok_s: mean(requests.iter().filter_map(|r| r.engine_decode_tok_s)),
            prompt_tokens: requests.first().and_then(|r| r.prompt_tokens),
            engine_prefill_tok_s: mean(requests.iter().filter_map(|r| r.engine_prefill_tok_s)),
            client_prefill_tok_s: mean(requests.iter().filter_map(|r| r.client_prefill_tok_s)),
            load_ms: load.map(|l| l.0),
            load_source: load.map(|l| l.1),
            context_length: None,
            token_source,
            repeats: requests.len() as u32,
            aggregate: aggregate(&requests),
            requests,
            output_text,
            notes,
            energy_j,
            tokens_per_j,
            throttled,
            ceiling_ratio: None,
        }
    }
}

/// `job_done`'s payload: the text race's figures ([`JobDone`], bench-race's fields first) or a
/// workload's. On the wire it is the struct itself; a workload's carries its `test_type`, which
/// is how a reader tells them apart (an LLM result has none, as from every older agent).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
// Boxed where it travels (`Event::JobDone(Box<JobResult>)`); one per job.
#[allow(clippy::large_enum_variant)]
pub enum JobResult {
    Llm(JobDone),
    Image(ImageJobDone),
    Transcribe(TranscribeJobDone),
    Compute(ComputeJobDone),
}

impl JobResult {
    /// The text race's figures, if this is one.
    pub fn llm(&self) -> Option<&JobDone> {
        match self {
            JobResult::Llm(d) => Some(d),
            _ => None,
        }
    }

    pub fn test_type(&self) -> Option<TestType> {
        match self {
            JobResult::Llm(_) => None,
            JobResult::Image(_) => Some(TestType::ImageGenerate),
            JobResult::Transcribe(_) => Some(TestType::Transcribe),
            JobResult::Compute(_) => Some(TestType::Compute),
        }
    }
}

impl From<JobDone> for JobResult {
    fn from(d: JobDone) -> Self {
        JobResult::Llm(d)
    }
}

impl<'de> Deserialize<'de> for JobResult {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = serde_json::Value::deserialize(d)?;
        let kind = v.get("test_type").and_then(|t| t.as_str()).map(str::to_owned);
        // The path names the field at fault (`gen_tokens: invalid type …`).
        fn read<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
            serde_path_to_error::deserialize(v).map_err(|e| e.to_string())
        }
        let r = match kind.as_deref() {
            None | Some("llm_generate") => read(v).map(JobResult::Llm),
            Some("image_generate") => read(v).map(JobResult::Image),
            Some("transcribe") => read(v).map(JobResult::Transcribe),
            Some("compute") => read(v).map(JobResult::Compute),
            Some(other) => return Err(D::Error::custom(format!("job_done of unknown test_type {other:?}"))),
        };
        r.map_err(D::Error::custom)
    }
}

/// Why a job failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The engine could not be reached (connection refused, DNS, TLS).
    EngineUnreachable,
    /// The engine does not serve the requested model.
    ModelNotFound,
    /// The engine answered with an error (HTTP status or an `{"error"}` line mid-stream).
    EngineError,
    /// The engine sent something the agent could not parse.
    Protocol,
    /// A request exceeded its time limit.
    Timeout,
    /// The agent failed.
    Internal,
}

impl ErrorKind {
    /// The wire name (`engine_unreachable`, `timeout`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::EngineUnreachable => "engine_unreachable",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::EngineError => "engine_error",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Internal => "internal",
        }
    }
}

/// `job_error`: the job ended in failure; no result is made up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobError {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_index: Option<u32>,
}

/// `job_cancelled`: `DELETE /jobs/{id}` or agent shutdown stopped the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobCancelled {
    pub reason: String,
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_event_kind_is_in_docs_events_md() {
        use crate::reference::{PROBE, expected_names, read_doc, undocumented};
        // The kinds as serde knows them: its "unknown variant" error lists every tag.
        let err = serde_json::from_value::<Event>(serde_json::json!({"type": PROBE, "payload": {}})).unwrap_err();
        let kinds = expected_names(&err.to_string(), "variant").expect("serde lists the event kinds");
        assert_eq!(kinds, Event::KINDS, "Event::KINDS is serde's list of tags, in order");
        let missing =
            undocumented(&read_doc(env!("CARGO_MANIFEST_DIR"), "events.md"), kinds.iter().map(String::as_str));
        assert!(missing.is_empty(), "docs/events.md lacks these agent event kinds: {missing:?}");
    }

    use super::*;

    #[test]
    fn envelope_wire_shape() {
        let env = Envelope {
            job_id: "j1".into(),
            seq: 2,
            machine_id: "m1".into(),
            emitted_at_s: 1.5,
            fallback_reason: None,
            event: Event::LlmToken(LlmToken {
                text: "Hi".into(),
                timestamp_s: 1.25,
                repeat_index: 0,
                channel: TokenChannel::Content,
                warmup: false,
                tokens: 1,
            }),
        };
        let v = serde_json::to_value(&env).unwrap();
        assert_eq!(v["type"], "llm_token");
        assert_eq!(v["payload"]["text"], "Hi");
        assert_eq!(v["job_id"], "j1");
        assert_eq!(v["seq"], 2);
        assert!(v.get("fallback_reason").is_none());
        let back: Envelope = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, env);
        let raw: RawEnvelope = serde_json::from_value(v).unwrap();
        assert_eq!(raw.kind, "llm_token");
        assert_eq!(raw.payload["timestamp_s"], 1.25);
        assert_eq!(raw.extra["emitted_at_s"], 1.5);
        assert_eq!(env.event.type_name(), "llm_token");
    }

    #[test]
    fn kinds_are_the_serde_tags_and_decode_reads_them_back() {
        let mut kinds: Vec<&str> = Event::KINDS.to_vec();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), Event::KINDS.len());
        let samples = [
            Event::JobCancelled(JobCancelled { reason: "x".into() }),
            Event::JobError(JobError { kind: ErrorKind::Timeout, message: "slow".into(), repeat_index: Some(1) }),
            Event::LlmToken(LlmToken {
                text: "Hi".into(),
                timestamp_s: 1.0,
                repeat_index: 0,
                channel: TokenChannel::Content,
                warmup: false,
                tokens: 1,
            }),
            Event::SweepRow(serde_json::Map::new()),
        ];
        for e in samples {
            let v = serde_json::to_value(&e).unwrap();
            assert_eq!(v["type"], e.type_name(), "the macro's name is serde's tag");
            assert!(Event::KINDS.contains(&e.type_name()));
            assert_eq!(Event::decode(e.type_name(), &v["payload"]).unwrap().unwrap(), e);
            if let Event::JobError(err) = &e {
                assert_eq!(v["payload"]["kind"], err.kind.as_str(), "as_str is the wire name");
            }
        }
        assert!(Event::decode("gpu_dance", &serde_json::json!({})).is_none());
        assert!(Event::decode("job_done", &serde_json::json!({"gen_tokens": "many"})).unwrap().is_err());
    }

    #[test]
    fn received_events_keep_the_envelope_and_know_when_a_job_ends() {
        let raw = |kind: &str, payload: serde_json::Value| RawEnvelope {
            job_id: "j".into(),
            seq: 1,
            machine_id: "m".into(),
            kind: kind.into(),
            payload,
            extra: Default::default(),
        };
        let done = Received::decode(raw("job_done", serde_json::json!({"gen_tokens": "many"})));
        assert!(matches!(&done.event, Decoded::Unreadable(why) if why.contains("expected u64")), "{:?}", done.event);
        assert!(done.is_terminal(), "an unreadable job_done still ends the job");
        let novel = Received::decode(raw("gpu_dance", serde_json::json!({"x": 1})));
        assert_eq!((novel.event, novel.env.payload), (Decoded::Unknown, serde_json::json!({"x": 1})));
        let cancelled = Received::decode(raw("job_cancelled", serde_json::json!({"reason": "bye"})));
        assert!(cancelled.is_terminal());
    }

    #[test]
    fn job_done_seed_fields_are_means_of_recorded_repeats() {
        use crate::metrics::{ChunkArrival, EngineStats, RequestTrace, TokenSource, request_metrics};
        let metrics = |ttft_ms: u64, tokens: u64| {
            let chunks = (0..tokens)
                .map(|i| ChunkArrival { offset_us: (ttft_ms + 10 * i) * 1000, channel: TokenChannel::Content })
                .collect();
            let trace = RequestTrace { chunks, end_offset_us: (ttft_ms + 10 * tokens) * 1000, streamed: true };
            request_metrics(&trace, &EngineStats { completion_tokens: Some(tokens), ..Default::default() })
        };
        let requests = vec![metrics(100, 10), metrics(200, 11), metrics(300, 11)];
        let done = JobDone::from_requests("m", EngineKind::Mock, None, requests, "hi".into(), None, vec![]);
        assert_eq!(done.ttft_ms, Some(200.0));
        assert_eq!(done.gen_tokens, 11, "mean 10.67 rounds to 11");
        assert_eq!(done.repeats, 3);
        assert_eq!(done.token_source, Some(TokenSource::Engine));
        assert_eq!(done.aggregate.ttft_ms.unwrap().min, 100.0);
        assert_eq!(done.total_ms, (200.0 + 310.0 + 410.0) / 3.0);
        assert_eq!(done.requests.len(), 3);
        let none = JobDone::from_requests("m", EngineKind::Mock, None, vec![], String::new(), None, vec![]);
        assert_eq!((none.token_source, none.repeats, none.ttft_ms), (None, 0, None));
    }

    #[test]
    fn job_done_payloads_are_told_apart_by_test_type() {
        use crate::workload::compute::{ComputeDone, ComputeJobDone, ComputeSpec};
        let spec: ComputeSpec = serde_json::from_value(serde_json::json!({"n": 100})).unwrap();
        let done = ComputeJobDone::from_repeats(&spec, &[ComputeDone::new(0, 100, 1, 25, 2.0)]);
        let e = Event::JobDone(Box::new(JobResult::Compute(done)));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!((v["type"].as_str(), v["payload"]["test_type"].as_str()), (Some("job_done"), Some("compute")));
        assert_eq!(v["payload"]["result"], 25);
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        let Event::JobDone(r) = back else { panic!() };
        assert_eq!((r.test_type(), r.llm().is_none()), (Some(TestType::Compute), true));
        let bad = serde_json::json!({"type": "job_done", "payload": {"test_type": "teleport"}});
        assert!(serde_json::from_value::<Event>(bad).unwrap_err().to_string().contains("teleport"));
    }

    #[test]
    fn terminal_events() {
        let e = Event::JobCancelled(JobCancelled { reason: "x".into() });
        assert!(e.is_terminal());
        assert!(is_terminal_type(e.type_name()));
        assert!(!is_terminal_type("llm_token"));
    }
}
