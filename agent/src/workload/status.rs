//! What an image or speech server said the last time it was asked (reachable, version, models),
//! cached for a few seconds so `/capabilities` and `POST /jobs` do not each ask again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// How long an answer is reused.
pub const FRESH_FOR: Duration = Duration::from_secs(10);

/// One probe's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub reachable: bool,
    pub version: Option<String>,
    /// The models (checkpoints, Whisper models) the server offers.
    pub models: Vec<String>,
    /// Why it is unreachable, or why the models are unknown.
    pub error: Option<String>,
}

impl Probe {
    pub fn unreachable(error: String) -> Self {
        Probe { reachable: false, version: None, models: Vec::new(), error: Some(error) }
    }
}

/// The last probe and when it was made.
#[derive(Debug, Default)]
pub struct StatusCache {
    last: Mutex<Option<(Instant, Arc<Probe>)>>,
}

impl StatusCache {
    /// The cached probe, or a new one from `probe` when there is none, it is stale or `force`.
    /// Concurrent callers wait for one probe rather than each sending their own.
    pub async fn get<F, Fut>(&self, force: bool, probe: F) -> Arc<Probe>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Probe>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, p)) = last.as_ref()
            && !force
            && at.elapsed() < FRESH_FOR
        {
            return p.clone();
        }
        let p = Arc::new(probe().await);
        *last = Some((Instant::now(), p.clone()));
        p
    }
}
