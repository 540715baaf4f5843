//! Typed HTTP calls to one agent's REST API, with its bearer token.

use std::time::Duration;

use bench_shared::api::{
    AgentTime, Capabilities, ErrorBody, Health, JobAccepted, JobView, PullAccepted, PullRequest, RunningPull,
};
use bench_shared::event::{RawEnvelope, Received};
use bench_shared::job::JobSpec;
use serde::de::DeserializeOwned;

use crate::config::MachineConfig;

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
    token: Option<String>,
    timeout: Duration,
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
        AgentClient { http, base_url: machine.base_url().to_owned(), token: machine.token.clone(), timeout }
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

    /// `GET /health` (the agent answers from its cached engine status).
    pub async fn health(&self) -> Result<Health, AgentError> {
        self.get_json("/health").await
    }

    /// `GET /capabilities`; `refresh` makes the agent probe its engine first (`?refresh=1`).
    pub async fn capabilities(&self, refresh: bool) -> Result<Capabilities, AgentError> {
        self.get_json(if refresh { "/capabilities?refresh=1" } else { "/capabilities" }).await
    }

    /// `GET /time`: the agent's wall clock (for [`crate::clock`]).
    pub async fn time(&self) -> Result<AgentTime, AgentError> {
        self.get_json("/time").await
    }

    /// `POST /jobs` with a typed spec.
    pub async fn post_job(&self, job: &JobSpec) -> Result<JobAccepted, AgentError> {
        let resp = self.send(self.request(reqwest::Method::POST, "/jobs").json(job)).await?;
        self.read("POST /jobs", resp).await
    }

    /// `GET /jobs/{id}`.
    pub async fn job(&self, job_id: &str) -> Result<JobView, AgentError> {
        self.get_json(&format!("/jobs/{job_id}")).await
    }

    /// `DELETE /jobs/{id}` (cancel).
    pub async fn cancel_job(&self, job_id: &str) -> Result<(), AgentError> {
        self.send(self.request(reqwest::Method::DELETE, &format!("/jobs/{job_id}"))).await.map(|_| ())
    }

    /// `GET /jobs/{id}/events?after_seq=N`: the job's events after `after_seq`, in order, each
    /// decoded once.
    pub async fn job_events(&self, job_id: &str, after_seq: u64) -> Result<Vec<Received>, AgentError> {
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
