//! The shared state of the agent: a cloneable bundle of `Arc`s.

use std::sync::Arc;

use bench_shared::hardware::Hardware;
use tokio::sync::{OnceCell, watch};
use tokio_util::sync::CancellationToken;

use crate::bench::coalesce::FlushPolicy;
use crate::config::AgentConfig;
use crate::engine::Engine;
use crate::engine_status::EngineStatusCache;
use crate::hardware::energy::{EnergyMeter, Rapl};
use crate::hardware::sampler::Sampler;
use crate::hub::Hub;
use crate::jobs::Jobs;
use crate::jobs::runner::Runner;
use crate::prom::AgentMetrics;

/// Default: how far a WebSocket subscriber may fall behind the hub before it is cut off.
pub const DEFAULT_HUB_CAPACITY: usize = 4096;
/// Default: events buffered per WebSocket client while its socket is busy.
pub const DEFAULT_WS_CLIENT_BUFFER: usize = 1024;

/// Everything the handlers and the job worker share.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<AgentConfig>,
    pub engine: Arc<dyn Engine>,
    pub jobs: Arc<Jobs>,
    pub hub: Arc<Hub>,
    /// What the engine last said (models, version); `/health` and `/capabilities` answer from it.
    pub engine_status: Arc<EngineStatusCache>,
    /// Between background engine status probes (default
    /// [`bench_shared::timeouts::AGENT_ENGINE_STATUS_INTERVAL`]; tests shorten it).
    pub engine_status_interval: std::time::Duration,
    /// Detected on first use (it may spawn `nvidia-smi`).
    pub hardware: Arc<OnceCell<Hardware>>,
    /// Events buffered per WebSocket client; a client further behind is disconnected.
    pub ws_client_buffer: usize,
    /// WebSocket clients disconnected for being too slow (shown in `/health`; tests await it).
    pub ws_slow_disconnects: Arc<watch::Sender<u64>>,
    /// Live `/ws` subscribers (`ws_max_subscribers`; 503 beyond).
    pub ws_cap: bench_server::ws::SubscriberCap,
    /// The runtime sampler's ring buffer (started by [`crate::serve`] when enabled).
    pub sampler: Arc<Sampler>,
    /// Energy per request (RAPL and the sampler's GPU power).
    pub energy: Arc<EnergyMeter>,
    /// Prometheus metrics (`GET /metrics`).
    pub metrics: Arc<AgentMetrics>,
    /// The engine's last fingerprint (`/props`, `/api/ps`, …), refreshed only while no job runs.
    pub engine_fingerprint: Arc<tokio::sync::Mutex<Option<bench_shared::engine::EngineFingerprint>>>,
    /// The client ceiling `/capabilities` shows and `job_done.ceiling_ratio` divides by (see
    /// [`crate::calibrate`]); an error says why there is none yet.
    pub ceiling: Arc<watch::Sender<crate::calibrate::CeilingState>>,
    /// Held by the running job; calibration requests take it too, so the two never overlap.
    pub measuring: crate::calibrate::MeasuringGate,
    /// Model pulls running beside the job queue.
    pub pulls: Arc<crate::pulls::Pulls>,
    /// Who may use the API: the token, browser sessions, wrong tokens per client address.
    pub gate: Arc<bench_server::auth::Gate>,
    /// Fired at the end of shutdown, after the running job has published its terminal event:
    /// WebSocket connections flush and close.
    pub closing: CancellationToken,
    /// The image server (`image_engine:`), when configured.
    pub image: Option<Arc<crate::workload::image::ImageEngine>>,
    /// The speech server (`speech_engine:`), when configured.
    pub speech: Option<Arc<crate::workload::speech::SpeechEngine>>,
}

/// The agent's session cookie, named after its machine (cookies are per host, not per port: two
/// agents, or an agent and central, on one host must not overwrite each other's).
pub fn session_cookie(machine_id: &str) -> String {
    let id: String =
        machine_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("bench_agent_{id}")
}

/// Where the agent keeps browser sessions: in its results folder, named after the machine (central
/// keeps its own `sessions.json`, and a results folder may be shared).
pub fn sessions_file(machine_id: &str) -> String {
    format!("{}-sessions.json", session_cookie(machine_id))
}

impl AppState {
    /// State for `config`, driving the engine its `engine:` block describes.
    pub fn new(config: AgentConfig) -> Self {
        let engine = crate::engine::build(&config.engine);
        Self::with_engine(config, engine)
    }

    /// State with an explicit engine (tests, embedding).
    pub fn with_engine(config: AgentConfig, engine: Arc<dyn Engine>) -> Self {
        Self::build(config, engine, DEFAULT_HUB_CAPACITY, DEFAULT_WS_CLIENT_BUFFER)
    }

    /// Same state with other WebSocket limits (a tiny buffer lets tests provoke a slow client).
    /// Call before the state is used: it replaces the hub and the job queue.
    pub fn with_ws_limits(self, hub_capacity: usize, ws_client_buffer: usize) -> Self {
        Self::build(Arc::unwrap_or_clone(self.config), self.engine, hub_capacity, ws_client_buffer)
    }

    fn build(config: AgentConfig, engine: Arc<dyn Engine>, hub_capacity: usize, ws_client_buffer: usize) -> Self {
        let metrics = Arc::new(AgentMetrics::new());
        let journal = crate::journal::Journal::open(config.results_dir.join("jobs"));
        let hub = Arc::new(
            Hub::new(config.machine_id.clone(), hub_capacity).with_journal(journal).with_metrics(metrics.clone()),
        );
        let sampler = Arc::new(Sampler::new(config.runtime_sampler.clone()));
        let sampling = config.runtime_sampler.enabled.then(|| sampler.clone());
        let energy = Arc::new(EnergyMeter::new(Rapl::open(), sampling));
        let jobs = Arc::new(Jobs::new(hub.clone(), config.queue_limit));
        let gate = Arc::new(match &config.auth_token {
            Some(token) => bench_server::auth::Gate::with_token(
                token,
                &session_cookie(&config.machine_id),
                Some(config.results_dir.join(sessions_file(&config.machine_id))),
            ),
            None => bench_server::auth::Gate::open(),
        });
        let store = crate::workload::store::ImageStore::new(&config.results_dir);
        let image = config.image_engine.clone().map(|s| crate::workload::image::ImageEngine::new(s, store));
        let speech = config.speech_engine.clone().map(crate::workload::speech::SpeechEngine::new);
        AppState {
            image,
            speech,
            gate,
            pulls: Arc::new(crate::pulls::Pulls::default()),
            ws_cap: bench_server::ws::SubscriberCap::new(config.ws_max_subscribers),
            config: Arc::new(config),
            engine_status: Arc::new(EngineStatusCache::new(engine.clone())),
            engine_status_interval: bench_shared::timeouts::AGENT_ENGINE_STATUS_INTERVAL,
            engine,
            jobs,
            hub,
            hardware: Arc::new(OnceCell::new()),
            ws_client_buffer: ws_client_buffer.max(1),
            ws_slow_disconnects: Arc::new(watch::Sender::new(0)),
            sampler,
            energy,
            metrics,
            engine_fingerprint: Arc::new(tokio::sync::Mutex::new(None)),
            ceiling: Arc::new(watch::Sender::new(Err(crate::calibrate::PENDING.to_owned()))),
            measuring: Arc::new(tokio::sync::Mutex::new(())),
            closing: CancellationToken::new(),
        }
    }

    /// The machine fingerprint (detected once).
    pub async fn hardware(&self) -> Hardware {
        self.hardware
            .get_or_init(|| async {
                let overrides = self.config.hardware_overrides.clone();
                tokio::task::spawn_blocking(move || crate::hardware::detect(&overrides)).await.unwrap_or_default()
            })
            .await
            .clone()
    }

    /// The job worker for this state.
    pub fn runner(&self) -> Runner {
        Runner {
            jobs: self.jobs.clone(),
            engine: self.engine.clone(),
            settings: self.config.engine.clone(),
            flush: self.flush_policy(),
            results_dir: self.config.results_dir.clone(),
            sampler: self.config.runtime_sampler.enabled.then(|| self.sampler.clone()),
            energy: self.energy.clone(),
            ceiling: self.ceiling.clone(),
            measuring: self.measuring.clone(),
            image: self.image.clone(),
            speech: self.speech.clone(),
        }
    }

    /// The coalescing policy of `llm_token` events.
    pub fn flush_policy(&self) -> FlushPolicy {
        FlushPolicy::new(self.config.stream_flush_chars, self.config.stream_flush_seconds)
    }
}
