//! The state every handler shares: a cloneable bundle of `Arc`s.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::{CentralConfig, MachineConfig, Settings};
use crate::fleet::Fleet;
use crate::hub::Hub;
use crate::prom::CentralMetrics;
use crate::routing::JobRouter;
use crate::runs::RunManager;
use crate::store::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct AppState {
    /// Every configured machine and its live view (`/api/machines`).
    pub fleet: Arc<Fleet>,
    /// Runs in progress (`POST /api/runs`, live state of `GET /api/runs/{id}`).
    pub runs: Arc<RunManager>,
    /// Stored runs (history, exports, events).
    pub store: Store,
    /// Fan-out to browser WebSockets.
    pub hub: Hub,
    pub settings: Settings,
    /// Prometheus metrics (`GET /metrics`).
    pub metrics: Arc<CentralMetrics>,
    /// Fired on shutdown: stops fleet tasks, run tasks and browser sockets.
    pub cancel: CancellationToken,
    /// Who may use central and how much it accepts.
    pub access: Arc<Access>,
    /// Model pulls across the fleet (`/api/models`).
    pub pulls: Arc<crate::pulls::Pulls>,
}

/// Central's `central:` settings and what enforces them at run time.
#[derive(Debug)]
pub struct Access {
    pub config: CentralConfig,
    /// The token, browser sessions of `/login`, wrong tokens per client address.
    pub gate: bench_server::auth::Gate,
    /// Live browser WebSockets (`ws_max_subscribers`; 503 beyond).
    pub ws_cap: bench_server::ws::SubscriberCap,
}

impl Access {
    /// Enforces `config`; browser sessions persist in `sessions_file` (blocking read).
    pub fn new(config: CentralConfig, sessions_file: Option<std::path::PathBuf>) -> Self {
        let ws_cap = bench_server::ws::SubscriberCap::new(config.ws_max_subscribers);
        let gate = match config.token() {
            Some(token) => bench_server::auth::Gate::with_token(token, crate::auth::SESSION_COOKIE, sessions_file),
            None => bench_server::auth::Gate::open(),
        };
        Access { config, gate, ws_cap }
    }
}

/// Where central keeps browser sessions: `<results_dir>/sessions.json`.
pub const SESSIONS_FILE: &str = "sessions.json";
/// Where central keeps the token it generates on first start beyond loopback.
pub const TOKEN_FILE: &str = "central.token";

impl AppState {
    /// Opens the results directory, starts one fleet task per machine, and resumes the runs a
    /// previous process left `running` (see [`crate::runs::resume`]).
    pub fn start(machines: &[MachineConfig], results_dir: &Path, settings: Settings) -> Result<AppState, StoreError> {
        let store = Store::open(results_dir)?;
        let cancel = CancellationToken::new();
        let hub = Hub::new(settings.browser_buffer);
        bench_shared::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(settings.http_timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let fleet = Arc::new(Fleet::new(machines, &http, &settings));
        let router = Arc::new(JobRouter::default());
        fleet.spawn(router.clone(), hub.clone(), settings.clone(), cancel.clone());
        let pulls = Arc::new(crate::pulls::Pulls::new(fleet.clone(), router.clone(), hub.clone(), cancel.clone()));
        let runs = Arc::new(RunManager::new(
            store.clone(),
            fleet.clone(),
            router,
            hub.clone(),
            settings.clone(),
            cancel.clone(),
        ));
        runs.resume_left_running()?;
        let metrics = Arc::new(CentralMetrics::new(&hub));
        let access = Arc::new(Access::new(CentralConfig::default(), None));
        Ok(AppState { fleet, runs, store, hub, settings, metrics, cancel, access, pulls })
    }

    /// The same state with `central:` settings (authentication, origins, limits). Browser
    /// sessions persist next to the runs (`<results_dir>/sessions.json`).
    pub fn with_central(mut self, config: CentralConfig) -> Self {
        let sessions = self.store.runs_dir().parent().map(|d| d.join(SESSIONS_FILE));
        self.access = Arc::new(Access::new(config, sessions));
        self
    }
}
