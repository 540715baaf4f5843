//! Test harness: central on 127.0.0.1:0 with real in-process agents (mock engine or the real local
//! engine) or fake agents, driven over HTTP and WebSocket like a browser would.

#![allow(dead_code)] // each test module uses a different subset

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bench_agent::engine::mock::MockSettings;
use bench_agent::engine::{EngineSettings, Fallback};
use bench_central::AppState;
use bench_central::config::{MachineConfig, Settings};
use bench_shared::engine::EngineKind;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A plain HTTP client (after installing the rustls crypto provider reqwest needs).
pub fn http_client() -> reqwest::Client {
    bench_shared::tls::install_crypto_provider();
    reqwest::Client::new()
}

/// Failure guard for anything a test waits on (never a synchronization device).
pub const WAIT_LIMIT: Duration = Duration::from_secs(120);
/// Poll period of bounded waits.
pub const POLL: Duration = Duration::from_millis(25);

/// Short timings so fault tests finish fast.
pub fn test_settings() -> Settings {
    Settings {
        start_delay: Duration::from_millis(800),
        health_interval: Duration::from_millis(200),
        http_timeout: Duration::from_secs(2),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        silence: Duration::from_secs(1),
        // Real-engine tests share one llama.cpp engine on a busy CPU: be as patient as production.
        deadline_base: Duration::from_secs(300),
        deadline_per_token: Duration::from_millis(250),
        browser_buffer: 4096,
        // Two missed pings drop a socket: short enough for fault tests, long enough for a busy CPU.
        ping_interval: Duration::from_millis(500),
    }
}

pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        bench_central::telemetry::init();
    }
}

const PREFIX: &str = "bench-central-test-";

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

pub fn machine(id: &str, base_url: &str) -> MachineConfig {
    let mut m = MachineConfig::new(id, base_url);
    m.label = Some(format!("{id} label"));
    m
}

/// A running central.
pub struct TestCentral {
    pub base_url: String,
    pub addr: std::net::SocketAddr,
    pub results_dir: ResultsDir,
    pub state: AppState,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestCentral {
    pub async fn spawn(machines: Vec<MachineConfig>, results_dir: ResultsDir) -> TestCentral {
        Self::spawn_with(machines, results_dir, test_settings()).await
    }

    pub async fn spawn_with(machines: Vec<MachineConfig>, results_dir: ResultsDir, settings: Settings) -> TestCentral {
        Self::spawn_secured(machines, results_dir, settings, Default::default()).await
    }

    /// Like [`TestCentral::spawn_with`], with a `central:` block (token, origins, limits).
    pub async fn spawn_secured(
        machines: Vec<MachineConfig>,
        results_dir: ResultsDir,
        settings: Settings,
        central: bench_central::config::CentralConfig,
    ) -> TestCentral {
        init_logs();
        let state = AppState::start(&machines, &results_dir, settings).expect("start central").with_central(central);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(bench_central::serve(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        TestCentral {
            base_url: format!("http://{addr}"),
            addr,
            results_dir,
            state,
            client: http_client(),
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let resp = self.get(path).await;
        let status = resp.status();
        let body: Value = resp.json().await.expect("JSON body");
        assert!(status.is_success(), "GET {path}: {status} {body}");
        body
    }

    pub async fn post_run(&self, body: Value) -> (u16, Value) {
        let resp = self.client.post(self.url("/api/runs")).json(&body).send().await.expect("POST /api/runs");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("JSON body"))
    }

    /// `POST /api/runs`, asserting 201; returns the run id.
    pub async fn start_run(&self, body: Value) -> String {
        let (status, json) = self.post_run(body).await;
        assert_eq!(status, 201, "POST /api/runs: {json}");
        json["run_id"].as_str().expect("run_id").to_owned()
    }

    /// Waits until every listed machine is online (or busy) with its models known.
    pub async fn wait_online(&self, ids: &[&str]) {
        self.wait_for("machines online", || async move {
            let ms = self.get_json("/api/machines").await;
            let ok = ids.iter().all(|id| {
                ms.as_array().unwrap().iter().any(|m| {
                    m["machine_id"] == *id
                        && m["state"] != "offline"
                        && m["ws_connected"] == true
                        && m["capabilities"].is_object()
                })
            });
            ok.then_some(())
        })
        .await
    }

    /// Polls `GET /api/runs/{id}` until the run is no longer `running`; returns the detail.
    /// On timeout the panic shows the run's last state.
    pub async fn wait_run_end(&self, run_id: &str) -> Value {
        self.wait_run_end_within(run_id, WAIT_LIMIT).await
    }

    /// [`TestCentral::wait_run_end`] with another limit (sweeps on a busy CPU take minutes).
    pub async fn wait_run_end_within(&self, run_id: &str, limit: Duration) -> Value {
        let path = format!("/api/runs/{run_id}");
        let start = Instant::now();
        loop {
            let d = self.get_json(&path).await;
            if d["metadata"]["status"] != "running" && d["live"] == false {
                return d;
            }
            if start.elapsed() > limit {
                let events = self.events(run_id).await;
                let tail: Vec<&Value> = events.iter().rev().take(5).collect();
                panic!("run {run_id} still running after {limit:?}: {}\nlast events: {tail:?}", d["machines"]);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls `check` every [`POLL`] until it yields a value; panics after [`WAIT_LIMIT`].
    pub async fn wait_for<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(start.elapsed() < WAIT_LIMIT, "timed out waiting for {what}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until central stored agent events of `machine_id` up to `seq`.
    pub async fn wait_seq(&self, run_id: &str, machine_id: &str, seq: u64) {
        let path = format!("/api/runs/{run_id}");
        self.wait_for(&format!("{machine_id} seq {seq} stored"), || {
            let path = path.clone();
            async move {
                (self.get_json(&path).await["machines"][machine_id]["last_seq"].as_u64() >= Some(seq)).then_some(())
            }
        })
        .await
    }

    /// Stored events of a run.
    pub async fn events(&self, run_id: &str) -> Vec<Value> {
        let resp = self.get(&format!("/api/runs/{run_id}/events")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
        resp.text().await.unwrap().lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect()
    }

    pub fn run_file(&self, run_id: &str, name: &str) -> PathBuf {
        self.results_dir.join("runs").join(run_id).join(name)
    }

    pub fn read_json(&self, run_id: &str, name: &str) -> Value {
        let text = std::fs::read_to_string(self.run_file(run_id, name)).expect("file");
        serde_json::from_str(&text).expect("JSON file")
    }

    /// Stops central the way a crash would look to the files: tasks stop, nothing is finalized.
    pub async fn stop(mut self) {
        self.state.cancel.cancel();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(WAIT_LIMIT, server).await.expect("central stops in time").unwrap().unwrap();
        }
    }
}

impl Drop for TestCentral {
    fn drop(&mut self) {
        self.state.cancel.cancel();
    }
}

/// A real `bench-agent` in-process on 127.0.0.1:0.
pub struct RealAgent {
    pub base_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    _results: ResultsDir,
}

impl RealAgent {
    /// An agent over the mock engine serving `models`.
    pub async fn mock(machine_id: &str, models: &[&str], ttft_ms: f64, tokens_per_s: f64) -> RealAgent {
        Self::mock_with_token(machine_id, models, ttft_ms, tokens_per_s, None).await
    }

    /// Like [`RealAgent::mock`], with the agent's `auth_token` set.
    pub async fn mock_with_token(
        machine_id: &str,
        models: &[&str],
        ttft_ms: f64,
        tokens_per_s: f64,
        token: Option<&str>,
    ) -> RealAgent {
        let engine = EngineSettings {
            kind: EngineKind::Mock,
            base_url: String::new(),
            api_key: None,
            fallback: Fallback::None,
            request_timeout_s: 60.0,
            mock: MockSettings { ttft_ms, tokens_per_s, models: models.iter().map(|m| m.to_string()).collect() },
            ..bench_agent::engine::EngineSettings::defaults(bench_shared::engine::EngineKind::Mock)
        };
        Self::spawn(machine_id, engine, token).await
    }

    /// An agent over the real local llama.cpp engine (`smollm2:135m`).
    pub async fn local_engine(machine_id: &str) -> RealAgent {
        let url = tokio::task::spawn_blocking(bench_agent::testkit::local_engine::local_engine_url).await.unwrap();
        let engine = EngineSettings {
            kind: EngineKind::Openai,
            base_url: url,
            api_key: None,
            fallback: Fallback::None,
            request_timeout_s: 120.0,
            mock: MockSettings::default(),
            ..bench_agent::engine::EngineSettings::defaults(bench_shared::engine::EngineKind::Mock)
        };
        Self::spawn(machine_id, engine, None).await
    }

    /// An agent over an OpenAI-compatible server at `base_url` (e.g. the slot test engine).
    pub async fn openai(machine_id: &str, base_url: &str) -> RealAgent {
        let engine = EngineSettings {
            kind: EngineKind::Openai,
            base_url: base_url.to_owned(),
            api_key: None,
            fallback: Fallback::None,
            request_timeout_s: 60.0,
            mock: MockSettings::default(),
            ..bench_agent::engine::EngineSettings::defaults(bench_shared::engine::EngineKind::Mock)
        };
        Self::spawn(machine_id, engine, None).await
    }

    /// An agent over an Ollama server (e.g. a scripted fake) at `base_url`.
    pub async fn ollama(machine_id: &str, base_url: &str) -> RealAgent {
        let engine = EngineSettings {
            kind: EngineKind::Ollama,
            base_url: base_url.to_owned(),
            api_key: None,
            fallback: Fallback::None,
            request_timeout_s: 60.0,
            mock: MockSettings::default(),
            ..bench_agent::engine::EngineSettings::defaults(bench_shared::engine::EngineKind::Mock)
        };
        Self::spawn(machine_id, engine, None).await
    }

    /// An agent over the mock engine serving `https://localhost:PORT` with `tls` (PEM files).
    pub async fn mock_tls(machine_id: &str, models: &[&str], tls: &bench_server::tls::TlsFiles) -> RealAgent {
        let engine = EngineSettings {
            kind: EngineKind::Mock,
            base_url: String::new(),
            api_key: None,
            fallback: Fallback::None,
            request_timeout_s: 60.0,
            mock: MockSettings {
                ttft_ms: 30.0,
                tokens_per_s: 400.0,
                models: models.iter().map(|m| m.to_string()).collect(),
            },
            ..bench_agent::engine::EngineSettings::defaults(bench_shared::engine::EngineKind::Mock)
        };
        let mut config = bench_agent::AgentConfig::new(machine_id, engine);
        let results = temp_results_dir();
        config.results_dir = results.to_path_buf();
        config.tls = Some(tls.clone());
        let server_tls = bench_shared::tls::server_config(&tls.cert_file, &tls.key_file).expect("agent TLS config");
        let state = bench_agent::AppState::new(config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().unwrap().port();
        let listener = bench_server::tls::TlsListener::new(listener, server_tls).expect("TLS listener");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(bench_agent::serve(listener, state, async move {
            let _ = rx.await;
        }));
        RealAgent { base_url: format!("https://localhost:{port}"), shutdown: Some(tx), _results: results }
    }

    /// An agent over the mock LLM engine whose config `configure` completes (image and speech
    /// engines for the workload races).
    pub async fn with_config(machine_id: &str, configure: impl FnOnce(&mut bench_agent::AgentConfig)) -> RealAgent {
        let engine = EngineSettings {
            kind: EngineKind::Mock,
            base_url: String::new(),
            api_key: None,
            fallback: Fallback::None,
            request_timeout_s: 60.0,
            mock: MockSettings { ttft_ms: 5.0, tokens_per_s: 400.0, models: vec!["mock-llm".into()] },
            ..bench_agent::engine::EngineSettings::defaults(bench_shared::engine::EngineKind::Mock)
        };
        Self::spawn_configured(machine_id, engine, None, configure).await
    }

    async fn spawn(machine_id: &str, engine: EngineSettings, token: Option<&str>) -> RealAgent {
        Self::spawn_configured(machine_id, engine, token, |_| {}).await
    }

    async fn spawn_configured(
        machine_id: &str,
        engine: EngineSettings,
        token: Option<&str>,
        configure: impl FnOnce(&mut bench_agent::AgentConfig),
    ) -> RealAgent {
        let mut config = bench_agent::AgentConfig::new(machine_id, engine);
        config.auth_token = token.map(str::to_owned);
        let results = temp_results_dir();
        config.results_dir = results.to_path_buf();
        configure(&mut config);
        let state = bench_agent::AppState::new(config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(bench_agent::serve(listener, state, async move {
            let _ = rx.await;
        }));
        RealAgent { base_url: format!("http://{addr}"), shutdown: Some(tx), _results: results }
    }
}

impl Drop for RealAgent {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A `llm_generate` run body.
pub fn generate_body(model: &str, max_tokens: u32) -> Value {
    json!({"model": model, "prompt": "Race: count to ten.", "max_tokens": max_tokens, "temperature": 0.0,
           "num_ctx": 1024, "repeat": 1})
}

/// Stored events of one machine with a given type.
pub fn of<'a>(events: &'a [Value], machine_id: &str, kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["machine_id"] == machine_id && e["type"] == kind).collect()
}

/// Asserts the agent events stored for `machine_id` have seq 1, 2, 3, … with no gap or repeat.
pub fn assert_contiguous(events: &[Value], machine_id: &str) -> usize {
    let seqs: Vec<u64> = events
        .iter()
        .filter(|e| e["machine_id"] == machine_id && e.get("seq").is_some())
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "events of {machine_id} are not 1..n in order");
    seqs.len()
}

/// The generated text of a machine's first recorded repeat, rebuilt from stored `llm_token` events.
pub fn text_of(events: &[Value], machine_id: &str) -> String {
    of(events, machine_id, "llm_token")
        .iter()
        .filter(|e| e["payload"]["warmup"] != true && e["payload"]["repeat_index"] == 0)
        .filter(|e| e["payload"]["channel"].as_str().is_none_or(|c| c == "content"))
        .map(|e| e["payload"]["text"].as_str().unwrap_or(""))
        .collect()
}

/// Wall-clock epoch milliseconds (fractional).
pub fn now_ms() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0
}

/// A central in its own runtime on its own thread, so a test can make it vanish the way a crash
/// does: its runtime is dropped and no task gets to run its shutdown path.
pub struct CrashableCentral {
    pub base_url: String,
    crash: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CrashableCentral {
    pub fn spawn(machines: Vec<MachineConfig>, results_dir: ResultsDir) -> CrashableCentral {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (crash_tx, crash_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async {
                let state = AppState::start(&machines, &results_dir, test_settings()).expect("start central");
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                tokio::spawn(bench_central::serve(listener, state, std::future::pending()));
            });
            let _ = crash_rx.recv();
            rt.shutdown_background();
        });
        let addr = addr_rx.recv().expect("central started");
        CrashableCentral { base_url: format!("http://{addr}"), crash: Some(crash_tx), thread: Some(thread) }
    }

    /// Drops the runtime: every task stops where it is.
    pub fn crash(mut self) {
        if let Some(tx) = self.crash.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for CrashableCentral {
    fn drop(&mut self) {
        if let Some(tx) = self.crash.take() {
            let _ = tx.send(());
        }
    }
}
