//! The agent under test, in-process on 127.0.0.1:0 and driven through its real HTTP API
//! (`POST /jobs`, then `/ws?job_id=…` until the terminal event), as central drives it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bench_agent::engine::mock::MockSettings;
use bench_agent::engine::{EngineSettings, Fallback};
use bench_agent::{AgentConfig, AppState};
use bench_shared::engine::EngineKind;
use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for one job (a guard, never a synchronization device).
const JOB_LIMIT: Duration = Duration::from_secs(300);
/// Connections one job's events may take (a slow reader is disconnected and resumes).
const MAX_RESUMES: usize = 1000;

/// A fresh folder under the system temp dir.
pub fn temp_dir(what: &str) -> PathBuf {
    std::env::temp_dir().join("bench-race-harness").join(format!("{what}-{}", uuid::Uuid::new_v4().simple()))
}

/// An agent config for `kind` at `base_url` (mock settings used when `kind` is mock).
pub fn config(machine_id: &str, kind: EngineKind, base_url: &str, mock: MockSettings) -> AgentConfig {
    let engine = EngineSettings {
        kind,
        base_url: base_url.to_owned(),
        api_key: None,
        fallback: Fallback::None,
        request_timeout_s: 600.0,
        mock,
        ..EngineSettings::defaults(kind)
    };
    let mut cfg = AgentConfig::new(machine_id, engine);
    cfg.bind_host = "127.0.0.1".into();
    cfg.bind_port = 0;
    cfg.results_dir = temp_dir("agent");
    cfg
}

/// Mock settings that are never used (the agent talks to a real or scripted engine).
pub fn unused_mock() -> MockSettings {
    MockSettings { ttft_ms: 1.0, tokens_per_s: 1000.0, models: vec!["mock-llm".into()] }
}

/// A running agent; stops when dropped.
pub struct Agent {
    pub addr: std::net::SocketAddr,
    pub base_url: String,
    client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Agent {
    pub async fn spawn(config: AgentConfig) -> Result<Agent> {
        let state = AppState::new(config);
        let mut ceiling = state.ceiling.subscribe();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(bench_agent::serve(listener, state, async move {
            let _ = rx.await;
        }));
        // The start-up calibration keeps a CPU busy for up to 1 s: nothing is timed before it ended.
        let calibrated = ceiling.wait_for(|c| c.as_ref().err().is_none_or(|e| e != bench_agent::calibrate::PENDING));
        let _ = tokio::time::timeout(Duration::from_secs(30), calibrated).await;
        Ok(Agent { addr, base_url: format!("http://{addr}"), client: reqwest::Client::new(), _stop: tx })
    }

    /// Posts `body` to `/jobs` and returns the job's events up to its terminal one.
    pub async fn run_job(&self, body: &Value) -> Result<Vec<Value>> {
        let resp = self.client.post(format!("{}/jobs", self.base_url)).json(body).send().await?;
        let status = resp.status();
        let answer: Value = resp.json().await?;
        if status.as_u16() != 202 {
            bail!("POST /jobs answered {status}: {answer}");
        }
        let job_id = answer["job_id"].as_str().context("job_id")?.to_owned();
        let read = async {
            let mut events: Vec<Value> = Vec::new();
            // A client that falls behind is disconnected by the agent (close 1008) and resumes
            // after the last event it has, as central does: the job's journal replays the rest.
            for _ in 0..MAX_RESUMES {
                let after = events.last().and_then(|e| e["seq"].as_u64());
                let url = match after {
                    Some(seq) => format!("ws://{}/ws?job_id={job_id}&after_seq={seq}", self.addr),
                    None => format!("ws://{}/ws?job_id={job_id}", self.addr),
                };
                let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
                while let Some(msg) = ws.next().await {
                    match msg? {
                        Message::Text(t) => {
                            let v: Value = serde_json::from_str(&t)?;
                            let terminal = bench_shared::event::is_terminal_type(v["type"].as_str().unwrap_or(""));
                            events.push(v);
                            if terminal {
                                return Ok(events);
                            }
                        }
                        Message::Close(Some(frame)) if u16::from(frame.code) == 1008 => break,
                        Message::Close(frame) => {
                            bail!("the agent's WebSocket closed before the job's terminal event: {frame:?}")
                        }
                        _ => {}
                    }
                }
            }
            bail!("the agent's WebSocket ended before the job's terminal event ({MAX_RESUMES} connections)")
        };
        tokio::time::timeout(JOB_LIMIT, read).await.context("job finished in time")?
    }

    /// Runs the job and returns its `job_done` payload (a `job_error` is an error).
    pub async fn job_done(&self, body: &Value) -> Result<Value> {
        let events = self.run_job(body).await?;
        let last = events.last().context("no event")?;
        if last["type"] != "job_done" {
            bail!("job ended with {}: {}", last["type"], last["payload"]);
        }
        Ok(last["payload"].clone())
    }
}

/// A `llm_generate` job body.
pub fn generate(model: &str, max_tokens: u64, repeat: u32) -> Value {
    serde_json::json!({"model": model, "prompt": "hi", "max_tokens": max_tokens, "temperature": 0.0,
                       "num_ctx": 1024, "repeat": repeat, "warmup": 0})
}

impl Agent {
    /// [`Agent::job_done`] taking the body by value (for concurrent futures).
    pub async fn job_done_owned(&self, body: Value) -> Result<Value> {
        self.job_done(&body).await
    }
}
