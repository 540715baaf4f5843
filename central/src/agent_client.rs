//! Typed HTTP calls to one agent's REST API, with its bearer token.
//!
//! The same calls reach an original bench-race agent ([`crate::original`]): its `/health` and
//! `/capabilities` are read as central's types, and its jobs are driven by central itself (it has
//! no `/time`, no job log and one generation per job).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bench_shared::api::{
    AgentTime, Capabilities, ErrorBody, Health, JobAccepted, JobView, Protocol, PullAccepted, PullRequest, RunningPull,
};
use bench_shared::event::{RawEnvelope, Received};
use bench_shared::job::JobSpec;
use serde::de::DeserializeOwned;

use crate::config::MachineConfig;
use crate::original::OriginalAgent;
use crate::original::wire::{OriginalAccepted, OriginalCapabilities, OriginalHealth, OriginalJob};

/// Why a call to an agent failed; the message is what ends up as a machine's `reason`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    #[error("agent unreachable: {0}")]
    Unreachable(String),
    #[error("agent did not answer within {0:?}")]
    Timeout(Duration),
    #[error("agent answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("unexpected answer from agent: {0}")]
    Protocol(String),
    /// The agent cannot do this (an original bench-race agent has no `/time`).
    #[error("{0}")]
    Unsupported(String),
}

impl AgentError {
    /// The agent answered 404 (it does not know the job).
    pub fn is_not_found(&self) -> bool {
        matches!(self, AgentError::Status { status: 404, .. })
    }

    /// The agent refused central's token: 401, or 429 once it limits the wrong tokens it keeps
    /// getting from central's address.
    pub fn is_token_refused(&self) -> bool {
        match self {
            AgentError::Status { status: 401, .. } => true,
            AgentError::Status { status: 429, message } => {
                message.starts_with(bench_server::auth::LIMITED_ERROR_PREFIX)
            }
            _ => false,
        }
    }
}

/// A cheap handle (clone of a pooled `reqwest::Client`) for one agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    base_url: String,
    machine_id: String,
    token: Option<String>,
    timeout: Duration,
    protocol: Arc<ProtocolState>,
    original: Arc<OriginalAgent>,
}

/// Which agent answers: as configured (`protocol:` in machines.yaml), else as its `/health` showed.
#[derive(Debug)]
struct ProtocolState {
    configured: Option<Protocol>,
    /// 0: not known yet (native assumed), 1: native, 2: original.
    detected: AtomicU8,
}

impl ProtocolState {
    fn get(&self) -> Protocol {
        match (self.configured, self.detected.load(Ordering::Relaxed)) {
            (Some(p), _) => p,
            (None, 2) => Protocol::Original,
            _ => Protocol::Native,
        }
    }

    fn detected(&self, p: Protocol) {
        let v = if p == Protocol::Original { 2 } else { 1 };
        if self.detected.swap(v, Ordering::Relaxed) != v && self.configured.is_none() {
            tracing::info!("agent protocol detected from /health: {}", p.as_str());
        }
    }
}

impl AgentClient {
    /// Uses `http` (the shared pool), or a client of its own when the machine trusts its own CA
    /// (`ca_cert_file`).
    pub fn new(http: reqwest::Client, machine: &MachineConfig, timeout: Duration) -> Self {
        let http = match machine.tls_client_config() {
            Some(tls) => reqwest::Client::builder()
                .connect_timeout(timeout)
                .tls_backend_preconfigured((*tls).clone())
                .build()
                .unwrap_or_else(|e| {
                    // Only a broken TLS build fails here; the shared client then reports the
                    // certificate error on every call, naming the agent.
                    tracing::error!(machine_id = %machine.machine_id, error = %e, "cannot build the agent's TLS client");
                    http
                }),
            None => http,
        };
        AgentClient {
            http,
            base_url: machine.base_url().to_owned(),
            machine_id: machine.machine_id.clone(),
            token: machine.token.clone(),
            timeout,
            protocol: Arc::new(ProtocolState { configured: machine.protocol, detected: AtomicU8::new(0) }),
            original: Arc::new(OriginalAgent::new(&machine.machine_id)),
        }
    }

    /// The agent's protocol: configured, or detected from its `/health` (native until then).
    pub fn protocol(&self) -> Protocol {
        self.protocol.get()
    }

    fn is_original(&self) -> bool {
        self.protocol() == Protocol::Original
    }

    /// Central's side of an original agent (its jobs and their events).
    pub fn original(&self) -> &Arc<OriginalAgent> {
        &self.original
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{}", self.base_url, path)).timeout(self.timeout);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, AgentError> {
        let resp = req.send().await.map_err(|e| self.map_err(e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_else(|_| body.chars().take(300).collect());
        Err(AgentError::Status { status: status.as_u16(), message })
    }

    fn map_err(&self, e: reqwest::Error) -> AgentError {
        if e.is_timeout() { AgentError::Timeout(self.timeout) } else { AgentError::Unreachable(error_chain(&e)) }
    }

    /// Reads a typed answer; a body that does not match names the field and the call.
    async fn read<T: DeserializeOwned>(&self, what: &str, resp: reqwest::Response) -> Result<T, AgentError> {
        let bytes = resp.bytes().await.map_err(|e| self.map_err(e))?;
        serde_json::from_slice(&bytes).map_err(|e| AgentError::Protocol(format!("{what}: {e}")))
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, AgentError> {
        let resp = self.send(self.request(reqwest::Method::GET, path)).await?;
        self.read(&format!("GET {path}"), resp).await
    }

    /// `GET /api/image/result/{image_id}`: an image the agent generated.
    pub async fn image(&self, image_id: &str) -> Result<Vec<u8>, AgentError> {
        if uuid::Uuid::parse_str(image_id).is_err() {
            return Err(AgentError::Protocol(format!("image id {image_id:?} is not a UUID")));
        }
        let resp = self.send(self.request(reqwest::Method::GET, &format!("/api/image/result/{image_id}"))).await?;
        Ok(resp.bytes().await.map_err(|e| self.map_err(e))?.to_vec())
    }

    /// `GET /health` (the agent answers from its cached engine status). Without a configured
    /// protocol the answer's shape says which agent this is.
    pub async fn health(&self) -> Result<Health, AgentError> {
        let resp = self.send(self.request(reqwest::Method::GET, "/health")).await?;
        let bytes = resp.bytes().await.map_err(|e| self.map_err(e))?;
        let native = || serde_json::from_slice::<Health>(&bytes);
        let original = || {
            serde_json::from_slice::<OriginalHealth>(&bytes)
                .map(|h| crate::original::wire::health(h, &self.machine_id, &self.base_url))
        };
        let read = match self.protocol.configured {
            Some(Protocol::Native) => native(),
            Some(Protocol::Original) => original(),
            None => match native() {
                Ok(h) => {
                    self.protocol.detected(Protocol::Native);
                    Ok(h)
                }
                Err(e) => original().inspect(|_| self.protocol.detected(Protocol::Original)).map_err(|_| e),
            },
        };
        read.map_err(|e| AgentError::Protocol(format!("GET /health: {e}")))
    }

    /// `GET /capabilities`; `refresh` makes the agent probe its engine first (`?refresh=1`).
    pub async fn capabilities(&self, refresh: bool) -> Result<Capabilities, AgentError> {
        if !self.is_original() {
            return self.get_json(if refresh { "/capabilities?refresh=1" } else { "/capabilities" }).await;
        }
        let raw: serde_json::Map<String, serde_json::Value> = self.get_json("/capabilities").await?;
        let caps: OriginalCapabilities = serde_json::from_value(serde_json::Value::Object(raw.clone()))
            .map_err(|e| AgentError::Protocol(format!("GET /capabilities: {e}")))?;
        self.original.set_engine(caps.engine_kind());
        Ok(caps.into_capabilities(&self.machine_id, &self.base_url, raw))
    }

    /// `GET /time`: the agent's wall clock (for [`crate::clock`]).
    pub async fn time(&self) -> Result<AgentTime, AgentError> {
        if self.is_original() {
            return Err(AgentError::Unsupported(
                "an original bench-race agent has no GET /time: central posts its job at the common start itself"
                    .into(),
            ));
        }
        self.get_json("/time").await
    }

    /// `POST /jobs` with a typed spec (an original agent's job is driven by central).
    pub async fn post_job(&self, job: &JobSpec) -> Result<JobAccepted, AgentError> {
        if self.is_original() {
            return match job {
                JobSpec::LlmGenerate(g) => Ok(self.original.start(self.clone(), g.clone())),
                other => Err(AgentError::Unsupported(format!(
                    "an original bench-race agent runs llm_generate jobs only, not {}",
                    other.test_type().as_str()
                ))),
            };
        }
        let resp = self.send(self.request(reqwest::Method::POST, "/jobs").json(job)).await?;
        self.read("POST /jobs", resp).await
    }

    /// `POST /jobs` on an original agent: one generation.
    pub async fn post_original_job(&self, job: &OriginalJob<'_>) -> Result<OriginalAccepted, AgentError> {
        let resp = self.send(self.request(reqwest::Method::POST, "/jobs").json(job)).await?;
        self.read("POST /jobs", resp).await
    }

    /// `GET /jobs/{id}`.
    pub async fn job(&self, job_id: &str) -> Result<JobView, AgentError> {
        if self.is_original() {
            return self.original.view(job_id);
        }
        self.get_json(&format!("/jobs/{job_id}")).await
    }

    /// `DELETE /jobs/{id}` (cancel).
    pub async fn cancel_job(&self, job_id: &str) -> Result<(), AgentError> {
        if self.is_original() {
            return self.original.cancel(job_id);
        }
        self.send(self.request(reqwest::Method::DELETE, &format!("/jobs/{job_id}"))).await.map(|_| ())
    }

    /// `GET /jobs/{id}/events?after_seq=N`: the job's events after `after_seq`, in order, each
    /// decoded once.
    pub async fn job_events(&self, job_id: &str, after_seq: u64) -> Result<Vec<Received>, AgentError> {
        if self.is_original() {
            return self.original.events(job_id, after_seq);
        }
        let path = format!("/jobs/{job_id}/events?after_seq={after_seq}");
        let resp = self.send(self.request(reqwest::Method::GET, &path)).await?;
        let text = resp.text().await.map_err(|e| self.map_err(e))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str::<RawEnvelope>(l)
                    .map(Received::decode)
                    .map_err(|e| AgentError::Protocol(format!("GET {path}: bad line: {e}")))
            })
            .collect()
    }

    /// `POST /api/models/pull {"model"}`: the agent starts pulling (or joins its running pull).
    pub async fn pull_model(&self, model: &str) -> Result<PullAccepted, AgentError> {
        let body = PullRequest { model: model.to_owned() };
        let resp = self.send(self.request(reqwest::Method::POST, "/api/models/pull").json(&body)).await?;
        self.read("POST /api/models/pull", resp).await
    }

    /// `GET /api/models/pulls`: the pulls the agent is running now.
    pub async fn running_pulls(&self) -> Result<Vec<RunningPull>, AgentError> {
        self.get_json("/api/models/pulls").await
    }
}

pub use bench_shared::error_chain;
