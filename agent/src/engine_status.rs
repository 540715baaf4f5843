//! The engine status cache: what `/health`, `/capabilities` and `POST /jobs` know about the
//! engine, without asking the engine under test on every request.
//!
//! A background task refreshes the status every [`timeouts::AGENT_ENGINE_STATUS_INTERVAL`], but
//! never while a job is running (a model-list call during generation would load the engine
//! being measured). Handlers answer from the cache at once; `?refresh=1` asks for a fresh probe,
//! and `POST /jobs` refreshes at most once, bounded by [`timeouts::AGENT_MODEL_REFRESH`], when the
//! job names a model the cache does not list (it may have just been pulled).
//!
//! [`timeouts::AGENT_ENGINE_STATUS_INTERVAL`]: bench_shared::timeouts::AGENT_ENGINE_STATUS_INTERVAL
//! [`timeouts::AGENT_MODEL_REFRESH`]: bench_shared::timeouts::AGENT_MODEL_REFRESH

use std::sync::Arc;
use std::time::Duration;

use bench_shared::engine::ModelInfo;
use bench_shared::timeouts;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineError};
use crate::jobs::Jobs;

/// What the engine said when asked for its models.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineModels {
    Listed(Vec<ModelInfo>),
    /// Connection refused, DNS, connect timeout: nobody is there.
    Unreachable(String),
    /// Connected, but no answer in time (a busy engine is not a missing one: no fallback).
    NoAnswer(String),
    /// It answered, but with an error.
    Failed(String),
}

impl EngineModels {
    /// The engine answered (with models or with an error).
    pub fn reachable(&self) -> bool {
        matches!(self, EngineModels::Listed(_) | EngineModels::Failed(_))
    }

    pub fn listed(&self) -> &[ModelInfo] {
        match self {
            EngineModels::Listed(m) => m,
            _ => &[],
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            EngineModels::Listed(_) => None,
            EngineModels::Unreachable(e) | EngineModels::NoAnswer(e) | EngineModels::Failed(e) => Some(e),
        }
    }
}

/// One probe of the engine.
#[derive(Debug, Clone)]
pub struct EngineStatus {
    pub models: EngineModels,
    pub version: Option<String>,
    pub checked_at: Instant,
}

/// The cached engine status and the one-at-a-time probe that refreshes it.
#[derive(Debug)]
pub struct EngineStatusCache {
    engine: Arc<dyn Engine>,
    current: watch::Sender<Option<Arc<EngineStatus>>>,
    /// Held while a probe runs: concurrent refreshes share one probe.
    probing: Mutex<()>,
    /// Probes sent to the engine since start (tests read it).
    probes: watch::Sender<u64>,
}

impl EngineStatusCache {
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        EngineStatusCache {
            engine,
            current: watch::Sender::new(None),
            probing: Mutex::new(()),
            probes: watch::Sender::new(0),
        }
    }

    /// The last status, if a probe has finished.
    pub fn current(&self) -> Option<Arc<EngineStatus>> {
        self.current.borrow().clone()
    }

    /// Probes sent so far.
    pub fn probes(&self) -> u64 {
        *self.probes.borrow()
    }

    /// Follows the number of probes sent (tests wait on it instead of sleeping).
    pub fn watch_probes(&self) -> watch::Receiver<u64> {
        self.probes.subscribe()
    }

    /// Probes the engine now (within `timeout`) and caches the answer. When another probe is
    /// already running, waits for it and returns its answer instead of sending a second one.
    pub async fn refresh(&self, timeout: Duration) -> Arc<EngineStatus> {
        let before = self.current().map(|s| s.checked_at);
        let _guard = self.probing.lock().await;
        if let Some(s) = self.current()
            && Some(s.checked_at) != before
        {
            return s; // someone refreshed while we waited
        }
        self.probes.send_modify(|n| *n += 1);
        let deadline = Instant::now() + timeout;
        let models = match tokio::time::timeout_at(deadline, self.engine.list_models()).await {
            Ok(Ok(models)) => EngineModels::Listed(models),
            Ok(Err(e @ EngineError::Unreachable { .. })) => EngineModels::Unreachable(e.to_string()),
            Ok(Err(e @ EngineError::Timeout { .. })) => EngineModels::NoAnswer(e.to_string()),
            Ok(Err(e)) => EngineModels::Failed(e.to_string()),
            Err(_) => EngineModels::NoAnswer(format!(
                "no answer from {} within {:.1} s",
                self.engine.base_url(),
                timeout.as_secs_f64()
            )),
        };
        let version = if models.reachable() {
            tokio::time::timeout_at(deadline, self.engine.version()).await.ok().and_then(Result::ok).flatten()
        } else {
            None
        };
        let status = Arc::new(EngineStatus { models, version, checked_at: Instant::now() });
        self.current.send_replace(Some(status.clone()));
        status
    }

    /// The cached status, probing first when there is none yet.
    pub async fn get_or_refresh(&self) -> Arc<EngineStatus> {
        match self.current() {
            Some(s) => s,
            None => self.refresh(timeouts::AGENT_ENGINE_PROBE).await,
        }
    }

    /// Refreshes every `interval` while no job runs, until `stop` fires.
    pub async fn run(self: Arc<Self>, jobs: Arc<Jobs>, interval: Duration, stop: CancellationToken) {
        loop {
            if !jobs.load().0 {
                self.refresh(timeouts::AGENT_ENGINE_PROBE).await;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{GenOutcome, GenRequest, TokenSink};
    use async_trait::async_trait;
    use bench_shared::engine::EngineKind;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// An engine whose model listing takes `delay` and counts calls.
    #[derive(Debug)]
    struct SlowList {
        delay: Duration,
        calls: AtomicU64,
    }

    #[async_trait]
    impl Engine for SlowList {
        fn kind(&self) -> EngineKind {
            EngineKind::Openai
        }
        fn base_url(&self) -> &str {
            "http://slow"
        }
        async fn version(&self) -> Result<Option<String>, EngineError> {
            Ok(Some("v1".into()))
        }
        async fn list_models(&self) -> Result<Vec<ModelInfo>, EngineError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            Ok(vec![ModelInfo { name: "m".into(), ..Default::default() }])
        }
        async fn generate(&self, _: &GenRequest, _: Option<&TokenSink>) -> Result<GenOutcome, EngineError> {
            Err(EngineError::Protocol("not used".into()))
        }
        async fn unload(&self, _: &str) -> Result<bool, EngineError> {
            Ok(false)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_listing_is_bounded_and_concurrent_refreshes_share_one_probe() {
        let engine = Arc::new(SlowList { delay: Duration::from_secs(7), calls: AtomicU64::new(0) });
        let cache = Arc::new(EngineStatusCache::new(engine.clone()));
        let (a, b) = tokio::join!(cache.refresh(Duration::from_secs(1)), cache.refresh(Duration::from_secs(1)));
        assert!(matches!(a.models, EngineModels::NoAnswer(_)), "{:?}", a.models);
        assert_eq!(a.checked_at, b.checked_at);
        assert_eq!(engine.calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.probes(), 1);
        let s = cache.refresh(Duration::from_secs(10)).await;
        assert_eq!(s.models.listed().len(), 1);
        assert_eq!(s.version.as_deref(), Some("v1"));
        assert!(Arc::ptr_eq(&cache.current().unwrap(), &s));
    }
}
