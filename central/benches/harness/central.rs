//! Central in-process on 127.0.0.1:0, with its machines, driven over HTTP like a browser.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bench_central::AppState;
use bench_central::config::{MachineConfig, Settings};
use serde_json::Value;

/// Longest wait for a run or for machines (a guard, never a synchronization device).
const LIMIT: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(20);

pub fn machine(id: &str, base_url: &str) -> MachineConfig {
    MachineConfig::new(id, base_url)
}

/// Faster health checks than the defaults, so machines come online quickly.
pub fn settings() -> Settings {
    Settings {
        health_interval: Duration::from_millis(200),
        start_delay: Duration::from_millis(800),
        ..Settings::default()
    }
}

pub struct Central {
    pub base_url: String,
    pub client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Central {
    pub async fn spawn(machines: &[MachineConfig], results_dir: &Path) -> Result<Central> {
        let state = AppState::start(machines, results_dir, settings())?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(bench_central::serve(listener, state, async move {
            let _ = rx.await;
        }));
        Ok(Central { base_url: format!("http://{addr}"), client: reqwest::Client::new(), _stop: tx })
    }

    pub async fn get_json(&self, path: &str) -> Result<Value> {
        http_json(&self.client, &format!("{}{path}", self.base_url)).await
    }

    /// `POST /api/runs`; returns the run id.
    pub async fn start_run(&self, body: &Value) -> Result<String> {
        start_run(&self.client, &self.base_url, body).await
    }

    pub async fn wait_online(&self, ids: &[String]) -> Result<()> {
        wait_online(&self.client, &self.base_url, ids).await
    }

    pub async fn wait_run_end(&self, run_id: &str) -> Result<Value> {
        wait_run_end(&self.client, &self.base_url, run_id).await
    }
}

pub async fn http_json(client: &reqwest::Client, url: &str) -> Result<Value> {
    let resp = client.get(url).send().await?;
    let status = resp.status();
    let body: Value = resp.json().await.with_context(|| format!("JSON from {url}"))?;
    if !status.is_success() {
        bail!("GET {url}: {status} {body}");
    }
    Ok(body)
}

pub async fn start_run(client: &reqwest::Client, base_url: &str, body: &Value) -> Result<String> {
    let resp = client.post(format!("{base_url}/api/runs")).json(body).send().await?;
    let status = resp.status();
    let answer: Value = resp.json().await?;
    if status.as_u16() != 201 {
        bail!("POST /api/runs answered {status}: {answer}");
    }
    Ok(answer["run_id"].as_str().context("run_id")?.to_owned())
}

/// Polls `/api/machines` until every id is connected with capabilities.
pub async fn wait_online(client: &reqwest::Client, base_url: &str, ids: &[String]) -> Result<()> {
    let start = Instant::now();
    loop {
        let ms = http_json(client, &format!("{base_url}/api/machines")).await?;
        let list = ms.as_array().context("machines list")?;
        let online = ids.iter().all(|id| {
            list.iter().any(|m| {
                m["machine_id"] == id.as_str()
                    && m["state"] != "offline"
                    && m["ws_connected"] == true
                    && m["capabilities"].is_object()
            })
        });
        if online {
            return Ok(());
        }
        if start.elapsed() > LIMIT {
            bail!("machines not online after {LIMIT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls the run until it is no longer running; returns its detail.
pub async fn wait_run_end(client: &reqwest::Client, base_url: &str, run_id: &str) -> Result<Value> {
    let start = Instant::now();
    loop {
        let d = http_json(client, &format!("{base_url}/api/runs/{run_id}")).await?;
        if d["metadata"]["status"] != "running" && d["live"] == false {
            return Ok(d);
        }
        if start.elapsed() > LIMIT {
            bail!("run {run_id} still running after {LIMIT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The stored events of a run.
pub async fn events(client: &reqwest::Client, base_url: &str, run_id: &str) -> Result<Vec<Value>> {
    let text = client.get(format!("{base_url}/api/runs/{run_id}/events")).send().await?.text().await?;
    text.lines().map(|l| Ok(serde_json::from_str(l)?)).collect()
}

/// A `llm_generate` run body.
pub fn generate_body(model: &str, max_tokens: u32) -> Value {
    serde_json::json!({"model": model, "prompt": "Race: count to ten.", "max_tokens": max_tokens, "temperature": 0.0,
                       "num_ctx": 1024, "repeat": 1})
}
