//! `image_engine:` and `speech_engine:` in agent.yaml: where the image and speech servers are.

use bench_shared::workload::image::ImageEngineKind;
use serde::{Deserialize, Serialize};

/// `image_engine: {kind, base_url, …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEngineSettings {
    /// `comfyui` or `openai` (`POST /v1/images/generations`).
    pub kind: ImageEngineKind,
    /// Root URL, e.g. `http://127.0.0.1:8188` (ComfyUI) or `http://127.0.0.1:1234` (without `/v1`).
    pub base_url: String,
    /// Bearer token sent to the server, if it wants one.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Longest one prompt may take, queue included, seconds: past it the job ends with
    /// `job_error {kind: timeout}` (a stuck ComfyUI queue, a hung server).
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// Limit for opening a connection, seconds.
    #[serde(default = "default_connect_s")]
    pub connect_timeout_s: f64,
    /// Forward a ComfyUI preview frame at most every this many sampler steps.
    #[serde(default = "default_preview_every")]
    pub preview_every_steps: u32,
}

/// `speech_engine: {kind: openai, base_url, …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechEngineSettings {
    /// `openai`: `POST /v1/audio/transcriptions` (whisper.cpp's server with
    /// `--inference-path /v1/audio/transcriptions`, speaches, faster-whisper-server, vLLM).
    pub kind: SpeechEngineKind,
    pub base_url: String,
    #[serde(default)]
    pub api_key: Option<String>,
    /// Longest one transcription may take, seconds.
    #[serde(default = "default_timeout_s")]
    pub request_timeout_s: f64,
    #[serde(default = "default_connect_s")]
    pub connect_timeout_s: f64,
    /// The model names a server that cannot list its models serves (whisper.cpp's server,
    /// faster-whisper-server: no `GET /v1/models`). Ignored when the server lists its own.
    #[serde(default)]
    pub models: Vec<String>,
}

/// The speech server protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeechEngineKind {
    Openai,
}

fn default_timeout_s() -> f64 {
    600.0
}

fn default_connect_s() -> f64 {
    10.0
}

fn default_preview_every() -> u32 {
    2
}

impl ImageEngineSettings {
    /// Settings with every default, for `kind` at `base_url` (tests, embedding).
    pub fn new(kind: ImageEngineKind, base_url: impl Into<String>) -> Self {
        ImageEngineSettings {
            kind,
            base_url: base_url.into(),
            api_key: None,
            timeout_s: default_timeout_s(),
            connect_timeout_s: default_connect_s(),
            preview_every_steps: default_preview_every(),
        }
    }

    /// `Err((key, message))` for a value out of range.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        check_url("image_engine.base_url", &self.base_url)?;
        check_secs("image_engine.timeout_s", self.timeout_s)?;
        check_secs("image_engine.connect_timeout_s", self.connect_timeout_s)?;
        if self.preview_every_steps == 0 {
            return Err(("image_engine.preview_every_steps", "must be at least 1".into()));
        }
        Ok(())
    }
}

impl SpeechEngineSettings {
    pub fn new(base_url: impl Into<String>) -> Self {
        SpeechEngineSettings {
            kind: SpeechEngineKind::Openai,
            base_url: base_url.into(),
            api_key: None,
            request_timeout_s: default_timeout_s(),
            connect_timeout_s: default_connect_s(),
            models: Vec::new(),
        }
    }

    pub fn check(&self) -> Result<(), (&'static str, String)> {
        check_url("speech_engine.base_url", &self.base_url)?;
        check_secs("speech_engine.request_timeout_s", self.request_timeout_s)?;
        check_secs("speech_engine.connect_timeout_s", self.connect_timeout_s)
    }
}

fn check_url(key: &'static str, url: &str) -> Result<(), (&'static str, String)> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err((key, format!("must be an http(s) URL such as http://127.0.0.1:8188, got {url:?}"))),
    }
}

fn check_secs(key: &'static str, v: f64) -> Result<(), (&'static str, String)> {
    if v.is_finite() && v > 0.0 { Ok(()) } else { Err((key, format!("must be a positive number of seconds, got {v}"))) }
}
