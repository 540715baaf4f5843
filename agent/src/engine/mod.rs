//! The engines an agent drives, behind one trait.
//!
//! An engine client measures at the socket: it takes `Instant::now()` right before sending a
//! request and right after each read of response bytes, *before* parsing them, and reports
//! every piece of generated text with its arrival instant. Metric arithmetic happens later, in
//! `bench_shared::metrics`, on the [`GenOutcome`] it returns.
//!
//! # Layout
//! - [`ollama`]: Ollama's native NDJSON API (and `ollama_pull`: `/api/pull`, streamed).
//! - [`openai`]: OpenAI-compatible servers (SSE chat completions, `/v1/models`).
//! - [`mock`]: the deterministic mock engine (a product feature for demos, never a test stand-in).
//! - [`http`], [`lines`], [`record`]: the shared plumbing (client, timed line reader, trace recorder);
//!   [`h1`]: the agent's own HTTP/1.1 client for generation requests to `http://` engines (reads
//!   the socket itself, so each read is stamped as it returns);
//!   `wire_text`: borrowed token text in the wire shapes (no allocation per streamed chunk).
//! - [`build`]: the engine an [`EngineSettings`] describes.

pub mod h1;
pub mod http;
pub mod lines;
pub mod mock;
pub mod ollama;
mod ollama_pull;
mod ollama_wire;
pub mod openai;
mod openai_wire;
pub mod record;
mod wire_text;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bench_shared::engine::{EngineFingerprint, EngineKind, ModelInfo};
use bench_shared::event::ErrorKind;
use bench_shared::metrics::{EngineStats, RequestTrace, TokenChannel};
use tokio::sync::mpsc;

/// One generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRequest {
    pub model: String,
    pub prompt: String,
    pub max_tokens: u32,
    pub temperature: f64,
    pub num_ctx: u32,
    pub seed: Option<i64>,
    /// Stream the response (TTFT measurable) or ask for one JSON answer.
    pub stream: bool,
    /// Limit for the whole request.
    pub timeout: Duration,
    /// An open-loop request's due instant: the client builds the request, then waits until this
    /// instant on the CPU ([`wait_until`]) and sends; the instant it takes right before sending
    /// stays the trace's zero. `None`: send at once.
    pub send_at: Option<Instant>,
}

/// Waits until `at` without a timer (tokio's tick in whole milliseconds): the task looks at the
/// clock, wakes itself and lets the worker's other ready tasks run before it looks again. For
/// waits of about a millisecond at most: it keeps one worker busy meanwhile. (Not
/// `tokio::task::yield_now`: a yielded task waits for the worker's next poll of the I/O driver,
/// which on a busy runtime came milliseconds later.)
pub async fn wait_until(at: Option<Instant>) {
    let Some(at) = at else { return };
    std::future::poll_fn(|cx| {
        if Instant::now() >= at {
            std::task::Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

/// A piece of generated text as it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct TextChunk {
    /// Monotonic arrival instant (taken before parsing the bytes).
    pub at: Instant,
    /// Wall-clock arrival, epoch seconds (for humans).
    pub wall_s: f64,
    pub text: String,
    pub channel: TokenChannel,
}

/// Where an engine sends text live while it generates (for `llm_token` events). Sending never
/// blocks the engine: the channel is unbounded and a closed receiver is ignored.
pub type TokenSink = mpsc::UnboundedSender<TextChunk>;

/// What one generation produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenOutcome {
    /// Client-side timing (offsets from the instant the request was sent).
    pub trace: RequestTrace,
    /// What the engine itself reported.
    pub stats: EngineStats,
    /// Visible generated text.
    pub text: String,
    /// Reasoning text, if the model produced any.
    pub reasoning_text: String,
    /// The instant taken immediately before the request was sent (the trace's zero): a load
    /// measures its send lateness against it.
    pub sent_at: Option<Instant>,
}

/// Engine failures. Each is reported as a `job_error`; none is ever replaced by made-up output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("engine unreachable at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("model {model:?} not found; available models: {}", available.join(", "))]
    ModelNotFound { model: String, available: Vec<String> },
    #[error("engine answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("engine reported an error mid-stream: {0}")]
    Stream(String),
    #[error("unexpected response from engine: {0}")]
    Protocol(String),
    #[error("{}", timeout_message(*.bound, *.limit, *.lines))]
    Timeout {
        bound: TimeoutBound,
        limit: Duration,
        /// Lines of the answer that arrived before the bound ran out (their text is in the
        /// job's `llm_token` events).
        lines: usize,
    },
}

fn timeout_message(bound: TimeoutBound, limit: Duration, lines: usize) -> String {
    let kept = if lines > 0 {
        format!(" (after {lines} lines of the answer; what arrived is kept in the job's events)")
    } else {
        String::new()
    };
    format!("{} within {} = {} s{kept}", bound.what(), bound.key(), limit.as_secs_f64())
}

impl EngineError {
    /// A timeout of `bound` before any of the answer arrived.
    pub fn timeout(bound: TimeoutBound, limit: Duration) -> Self {
        EngineError::Timeout { bound, limit, lines: 0 }
    }

    /// The `job_error` kind for this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Unreachable { .. } => ErrorKind::EngineUnreachable,
            EngineError::ModelNotFound { .. } => ErrorKind::ModelNotFound,
            EngineError::Http { .. } | EngineError::Stream(_) => ErrorKind::EngineError,
            EngineError::Protocol(_) => ErrorKind::Protocol,
            EngineError::Timeout { .. } => ErrorKind::Timeout,
        }
    }
}

/// An LLM engine as the agent sees it.
#[async_trait]
pub trait Engine: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> EngineKind;
    fn base_url(&self) -> &str;
    /// The engine's version string, where it has one.
    async fn version(&self) -> Result<Option<String>, EngineError>;
    /// The models the engine serves, with details where it gives them.
    async fn list_models(&self) -> Result<Vec<ModelInfo>, EngineError>;
    /// Runs one generation. Text is sent to `tokens` as it arrives (when given); the outcome
    /// carries the full trace. Returns an error on any failure, including an error reported
    /// mid-stream, and never a partial result presented as complete.
    async fn generate(&self, req: &GenRequest, tokens: Option<&TokenSink>) -> Result<GenOutcome, EngineError>;
    /// Unloads a model so that the next request measures a cold load. Returns `false` when the
    /// engine cannot unload models (the job then reports load time as not measured).
    async fn unload(&self, model: &str) -> Result<bool, EngineError>;
    /// The context length the engine really runs `model` with, where it says so (Ollama's
    /// `/api/ps` once the model is loaded; llama.cpp's per-slot `n_ctx`). Engines may silently
    /// cap a requested `num_ctx`, so results should report this beside the requested one.
    async fn loaded_context_length(&self, _model: &str) -> Result<Option<u64>, EngineError> {
        Ok(None)
    }
    /// Version, build and the settings the engine reports (context size, slots, GPU offload).
    async fn fingerprint(&self) -> Result<EngineFingerprint, EngineError> {
        Ok(EngineFingerprint { kind: Some(self.kind()), version: self.version().await?, ..Default::default() })
    }
    /// Whether [`Engine::pull`] can fetch models (Ollama can; OpenAI-compatible servers and the
    /// mock engine cannot: their models are whatever they were started with).
    fn can_pull(&self) -> bool {
        false
    }
    /// Fetches `model` onto the engine, sending each progress line to `progress`; `Ok` once the
    /// engine says the model is there. An error mid-way (an error line, a cut connection, a
    /// stream that ends early) is an error, never a success.
    async fn pull(&self, model: &str, _progress: &PullSink) -> Result<(), EngineError> {
        Err(EngineError::Protocol(format!("engine kind {} cannot pull models (asked for {model})", self.kind())))
    }
}

/// One progress line of a model pull, as the engine reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullLine {
    pub status: String,
    /// The layer this line is about (`sha256:…`), when it is about one.
    pub digest: Option<String>,
    pub total: Option<u64>,
    pub completed: Option<u64>,
}

/// Where a pull reports its progress lines (never blocks; a closed receiver is ignored).
pub type PullSink = mpsc::UnboundedSender<PullLine>;

/// Seed sent to real engines when a job gives none: a fixed value keeps repeated runs and
/// machines comparable, and sending it explicitly documents what ran (engine defaults differ).
pub const DEFAULT_SEED: i64 = 42;

/// The engine the settings describe. Building makes no request: reachability shows on first use.
pub fn build(settings: &EngineSettings) -> Arc<dyn Engine> {
    match settings.kind {
        EngineKind::Ollama => {
            Arc::new(ollama::OllamaEngine::new(&settings.base_url).with_timeouts(settings.timeouts()))
        }
        EngineKind::Openai => Arc::new(
            openai::OpenAiEngine::new(&settings.base_url, settings.api_key.clone()).with_timeouts(settings.timeouts()),
        ),
        // Config validation refuses the non-LLM kinds for `engine:`; a caller that builds one
        // anyway gets the mock, which labels every result `mock`.
        EngineKind::Mock | EngineKind::Comfyui | EngineKind::Agent => {
            Arc::new(mock::MockEngine::new(settings.mock.clone()))
        }
    }
}

/// Microseconds from `start` to `at` (0 if `at` is earlier).
pub fn offset_us(start: Instant, at: Instant) -> u64 {
    at.saturating_duration_since(start).as_micros() as u64
}

/// Wall-clock now, epoch seconds (for event timestamps; metrics use monotonic instants).
pub use bench_shared::time::now_s as wall_now_s;

/// How the agent talks to its engine: the `engine:` block of agent.yaml.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    pub kind: EngineKind,
    /// Engine URL, e.g. `http://127.0.0.1:11434` (Ollama) or `http://127.0.0.1:8091` (OpenAI-compatible;
    /// with or without a trailing `/v1`). Ignored for `mock`.
    #[serde(default)]
    pub base_url: String,
    /// Bearer token sent to the engine (LiteLLM-style gateways).
    #[serde(default)]
    pub api_key: Option<String>,
    /// What to do when the engine is unreachable at job start: `none` (a `job_error`, the
    /// default) or `mock` (run on the mock engine and say so in every event of the job).
    #[serde(default)]
    pub fallback: Fallback,
    /// Limit for one whole request (headers, every token, the final stats), seconds.
    #[serde(default = "default_request_timeout_s")]
    pub request_timeout_s: f64,
    /// Limit for opening the TCP connection to the engine, seconds.
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: f64,
    /// Limit from sending a request to the first bytes of its answer, seconds (covers a model load).
    #[serde(default = "default_first_token_timeout_s")]
    pub first_token_timeout_s: f64,
    /// Longest silence between two chunks of a streamed answer, seconds.
    #[serde(default = "default_idle_timeout_s")]
    pub idle_timeout_s: f64,
    /// Settings of the mock engine (used when `kind: mock` or on fallback).
    #[serde(default)]
    pub mock: mock::MockSettings,
}

fn default_request_timeout_s() -> f64 {
    600.0
}

fn default_connect_timeout_s() -> f64 {
    10.0
}

fn default_first_token_timeout_s() -> f64 {
    300.0
}

fn default_idle_timeout_s() -> f64 {
    60.0
}

impl EngineSettings {
    /// Settings for `kind` with every default (no URL, no key, no fallback).
    pub fn defaults(kind: EngineKind) -> Self {
        EngineSettings {
            kind,
            base_url: String::new(),
            api_key: None,
            fallback: Fallback::None,
            request_timeout_s: default_request_timeout_s(),
            connect_timeout_s: default_connect_timeout_s(),
            first_token_timeout_s: default_first_token_timeout_s(),
            idle_timeout_s: default_idle_timeout_s(),
            mock: mock::MockSettings::default(),
        }
    }

    /// The engine's per-phase bounds (the total is `request_timeout_s`, per request).
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs_f64(self.connect_timeout_s),
            first_token: Duration::from_secs_f64(self.first_token_timeout_s),
            idle: Duration::from_secs_f64(self.idle_timeout_s),
        }
    }
}

/// Per-phase limits of one engine request; each one that runs out ends the request with
/// [`EngineError::Timeout`] naming it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_token: Duration,
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        EngineSettings::defaults(EngineKind::Mock).timeouts()
    }
}

/// Which bound ended a request: named in the error as the config key a user would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutBound {
    /// `engine.connect_timeout_s`.
    Connect,
    /// `engine.first_token_timeout_s`.
    FirstToken,
    /// `engine.idle_timeout_s`.
    Idle,
    /// `engine.request_timeout_s` (the whole request).
    Request,
    /// The fixed limit of a metadata call (`/api/tags`, `/v1/models`, …).
    Metadata,
    /// The fixed idle limit of a model pull (a pull reports progress continually).
    PullIdle,
    /// The fixed limit of a whole model pull.
    Pull,
}

impl TimeoutBound {
    pub fn key(self) -> &'static str {
        match self {
            TimeoutBound::Connect => "engine.connect_timeout_s",
            TimeoutBound::FirstToken => "engine.first_token_timeout_s",
            TimeoutBound::Idle => "engine.idle_timeout_s",
            TimeoutBound::Request => "engine.request_timeout_s",
            TimeoutBound::Metadata => "the metadata call limit",
            TimeoutBound::PullIdle => "the pull's idle limit",
            TimeoutBound::Pull => "the pull's limit",
        }
    }

    fn what(self) -> &'static str {
        match self {
            TimeoutBound::Connect => "no connection to the engine",
            TimeoutBound::FirstToken => "no answer from the engine",
            TimeoutBound::Idle => "the engine's stream stalled: no data",
            TimeoutBound::Request => "the request did not complete",
            TimeoutBound::Metadata => "no answer to a metadata call",
            TimeoutBound::PullIdle => "the pull stalled: no progress",
            TimeoutBound::Pull => "the pull did not complete",
        }
    }
}

/// Fallback policy when the real engine is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    #[default]
    None,
    Mock,
}

#[cfg(test)]
mod tests_lines;
#[cfg(test)]
mod tests_ollama;
#[cfg(test)]
mod tests_openai;
