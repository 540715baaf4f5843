//! Test harness: a real agent on 127.0.0.1:0 driven over HTTP and WebSocket, exactly as `curl`
//! and `websocat` would.
//!
//! ```ignore
//! let agent = TestAgent::spawn(mock_config()).await;
//! let id = agent.post_job_ok(json!({"model": "mock-llm", "prompt": "hi"})).await;
//! let events = agent.wait_for_terminal(&id).await;
//! ```

#![allow(dead_code)] // each test module uses a different subset

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bench_agent::engine::mock::MockSettings;
use bench_agent::engine::{EngineSettings, Fallback};
use bench_agent::{AgentConfig, AppState};
use bench_shared::engine::EngineKind;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A WebSocket client connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A plain HTTP client (after installing the rustls crypto provider reqwest needs).
pub fn http_client() -> reqwest::Client {
    bench_shared::tls::install_crypto_provider();
    reqwest::Client::new()
}

/// Failure guard for anything a test waits on (never a synchronization device).
pub const WAIT_LIMIT: Duration = Duration::from_secs(120);

/// A running agent.
pub struct TestAgent {
    pub addr: SocketAddr,
    pub base_url: String,
    pub client: reqwest::Client,
    /// The agent's `auth_token`, sent with every request when set.
    pub token: Option<String>,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestAgent {
    /// Starts an agent for `config` (its bind address is ignored: 127.0.0.1:0).
    pub async fn spawn(config: AgentConfig) -> TestAgent {
        Self::spawn_state(AppState::new(config)).await
    }

    /// Starts an agent on a prepared state (e.g. `AppState::with_ws_limits`).
    pub async fn spawn_state(state: AppState) -> TestAgent {
        bench_agent::telemetry::init_for_tests();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(bench_agent::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        TestAgent {
            addr,
            base_url: format!("http://{addr}"),
            client: http_client(),
            token: state.config.auth_token.clone(),
            state,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.authed(self.client.get(self.url(path))).send().await.expect("GET")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let resp = self.get(path).await;
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.expect("JSON body")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.authed(self.client.delete(self.url(path))).send().await.expect("DELETE")
    }

    /// `POST path` with a JSON body (with the token when the agent has one).
    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.authed(self.client.post(self.url(path)).json(&body)).send().await.expect("POST")
    }

    /// `POST /jobs` with a JSON body.
    pub async fn post_job(&self, body: Value) -> reqwest::Response {
        self.authed(self.client.post(self.url("/jobs")).json(&body)).send().await.expect("POST /jobs")
    }

    /// `POST /jobs` with raw bytes (malformed bodies).
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.authed(self.client.post(self.url("/jobs")).header("content-type", "application/json").body(body))
            .send()
            .await
            .expect("POST /jobs")
    }

    /// `POST /jobs`, asserting 202; returns the job id.
    pub async fn post_job_ok(&self, body: Value) -> String {
        let resp = self.post_job(body).await;
        let status = resp.status();
        let json: Value = resp.json().await.expect("JSON body");
        assert_eq!(status, 202, "POST /jobs answered {status}: {json}");
        json["job_id"].as_str().expect("job_id").to_owned()
    }

    /// Every event of the job so far, from `GET /jobs/{id}/events` (NDJSON).
    pub async fn events(&self, job_id: &str) -> Vec<Value> {
        let resp = self.get(&format!("/jobs/{job_id}/events")).await;
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(ct, "application/x-ndjson");
        let text = resp.text().await.unwrap();
        text.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect()
    }

    /// Opens `/ws?{query}` (adds the token when the agent has one).
    pub async fn ws_connect(&self, query: &str) -> Ws {
        let url = format!("ws://{}/ws{}{query}", self.addr, if query.is_empty() { "" } else { "?" });
        let mut req = url.into_client_request().unwrap();
        if let Some(t) = &self.token {
            req.headers_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await.expect("WebSocket connect");
        ws
    }

    /// Follows the job over `/ws?job_id=…` (which replays from seq 1) until its terminal event;
    /// returns every event.
    pub async fn wait_for_terminal(&self, job_id: &str) -> Vec<Value> {
        let ws = self.ws_connect(&format!("job_id={job_id}")).await;
        read_until_terminal(ws).await
    }

    /// Stops the agent the way ctrl-c does, and waits until it has.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(WAIT_LIMIT, server).await.expect("shutdown in time").unwrap().unwrap();
        }
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Reads JSON text frames until a terminal event (`job_done`, `sweep_done`, `job_error`,
/// `job_cancelled`); panics on anything else or after [`WAIT_LIMIT`].
pub async fn read_until_terminal(mut ws: Ws) -> Vec<Value> {
    let mut events = Vec::new();
    let read = async {
        while let Some(msg) = ws.next().await {
            match msg.expect("WebSocket frame") {
                Message::Text(t) => {
                    assert!(!t.ends_with('\n'), "frames carry no trailing newline");
                    let v: Value = serde_json::from_str(&t).expect("one JSON object per frame");
                    let terminal = bench_shared::event::is_terminal_type(v["type"].as_str().unwrap_or(""));
                    events.push(v);
                    if terminal {
                        return;
                    }
                }
                Message::Close(frame) => panic!("closed before the terminal event: {frame:?}; got {events:?}"),
                _ => {}
            }
        }
        panic!("stream ended before the terminal event; got {events:?}");
    };
    tokio::time::timeout(WAIT_LIMIT, read).await.expect("terminal event in time");
    events
}

/// Events of one type.
pub fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

const PREFIX: &str = "bench-agent-test-";

/// A test's results folder: a fresh temporary directory (`tempfile`), removed when the last
/// clone is dropped. Derefs to its path.
#[derive(Debug, Clone)]
pub struct ResultsDir(std::sync::Arc<tempfile::TempDir>);

impl std::ops::Deref for ResultsDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl AsRef<std::path::Path> for ResultsDir {
    fn as_ref(&self) -> &std::path::Path {
        self.0.path()
    }
}

/// A fresh, empty results folder, removed with its last [`ResultsDir`] clone.
pub fn temp_results_dir() -> ResultsDir {
    let dir = tempfile::Builder::new().prefix(PREFIX).tempdir().expect("a temporary directory");
    ResultsDir(std::sync::Arc::new(dir))
}

/// Where [`mock_config`] & co. point `results_dir` (job journals, sweeps): a unique path under
/// one temporary folder per test process, so an agent restarted with the same config finds its
/// files. That folder outlives the process (statics are never dropped); a test that checks
/// files owns a [`temp_results_dir`] instead, removed when it ends.
fn unused_results_dir() -> PathBuf {
    static ROOT: std::sync::LazyLock<ResultsDir> = std::sync::LazyLock::new(temp_results_dir);
    ROOT.join(uuid::Uuid::new_v4().simple().to_string())
}

fn config(kind: EngineKind, base_url: &str) -> AgentConfig {
    let engine = EngineSettings {
        kind,
        base_url: base_url.to_owned(),
        api_key: None,
        fallback: Fallback::None,
        request_timeout_s: 120.0,
        mock: MockSettings { ttft_ms: 5.0, tokens_per_s: 2000.0, models: vec!["mock-llm".into()] },
        ..bench_agent::engine::EngineSettings::defaults(bench_shared::engine::EngineKind::Mock)
    };
    let mut cfg = AgentConfig::new("test-machine", engine);
    cfg.label = "Test machine".into();
    cfg.bind_host = "127.0.0.1".into();
    cfg.bind_port = 0;
    cfg.results_dir = unused_results_dir();
    cfg
}

/// The built-in mock engine (5 ms TTFT, 2000 tok/s, model `mock-llm`).
pub fn mock_config() -> AgentConfig {
    config(EngineKind::Mock, "")
}

/// An OpenAI-compatible engine at `url` (e.g. `bench_agent::testkit::local_engine_url()`).
pub fn openai_config(url: &str) -> AgentConfig {
    config(EngineKind::Openai, url)
}

/// An Ollama engine at `url` (e.g. the fake Ollama).
pub fn ollama_config(url: &str) -> AgentConfig {
    config(EngineKind::Ollama, url)
}
