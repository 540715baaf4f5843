//! Event fan-out: every event of a job gets its `seq`, goes into the job's replay log, and is
//! broadcast to WebSocket subscribers.
//!
//! The log and the broadcast are updated under one short lock, so a subscriber that takes a
//! snapshot of the log and subscribes in the same critical section ([`Hub::subscribe_job`]) sees
//! every event exactly once. Events are serialized once, here, and shared as `Arc<str>`: a
//! thousand WebSocket clients cost one serialization per event.
//!
//! Memory is bounded by keeping the logs of unfinished jobs plus the last
//! [`Hub::KEEP_FINISHED`] finished ones.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bench_shared::event::{Envelope, Event};
use tokio::sync::broadcast;

/// One published event, serialized.
#[derive(Debug, Clone)]
pub struct HubMsg {
    pub job_id: Arc<str>,
    pub seq: u64,
    /// Compact JSON of the envelope (no trailing newline).
    pub json: Arc<str>,
    /// The event ends its job.
    pub terminal: bool,
}

#[derive(Debug, Default)]
struct JobLog {
    events: Vec<HubMsg>,
    finished: bool,
}

#[derive(Debug, Default)]
struct Inner {
    logs: HashMap<Arc<str>, JobLog>,
    /// Finished jobs, oldest first (for eviction).
    finished: VecDeque<Arc<str>>,
}

/// The event hub of one agent.
#[derive(Debug)]
pub struct Hub {
    machine_id: String,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<HubMsg>,
    /// Prometheus counters moved by every published event.
    metrics: Option<Arc<crate::prom::AgentMetrics>>,
}

/// Answer of [`Hub::subscribe_job`]: what happened so far, and a receiver for what follows.
pub struct Subscription {
    pub replay: Vec<HubMsg>,
    pub rx: broadcast::Receiver<HubMsg>,
    /// True when the job already ended (the replay holds its terminal event).
    pub finished: bool,
}

impl Hub {
    /// Finished jobs whose logs are kept for late readers.
    pub const KEEP_FINISHED: usize = 64;

    /// `capacity` bounds how far a broadcast subscriber may fall behind before it lags.
    pub fn new(machine_id: impl Into<String>, capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Hub { machine_id: machine_id.into(), inner: Mutex::new(Inner::default()), tx, metrics: None }
    }

    /// Moves these Prometheus metrics with every published event.
    pub fn with_metrics(mut self, metrics: Arc<crate::prom::AgentMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Publishes one event of `job_id`; returns its envelope. `fallback_reason` is set on every
    /// event of a job that runs on the mock engine in place of the real one.
    pub fn publish(&self, job_id: &str, event: Event, fallback_reason: Option<&str>) -> Envelope {
        let terminal = event.is_terminal();
        if let Some(m) = &self.metrics {
            m.observe(&event);
        }
        let mut inner = self.inner.lock().expect("hub lock poisoned");
        let key: Arc<str> = match inner.logs.get_key_value(job_id) {
            Some((k, _)) => k.clone(),
            None => Arc::from(job_id),
        };
        let log = inner.logs.entry(key.clone()).or_default();
        let envelope = Envelope {
            job_id: job_id.to_owned(),
            seq: log.events.len() as u64 + 1,
            machine_id: self.machine_id.clone(),
            emitted_at_s: crate::engine::wall_now_s(),
            fallback_reason: fallback_reason.map(str::to_owned),
            event,
        };
        let json: Arc<str> = serde_json::to_string(&envelope).expect("events always serialize").into();
        let msg = HubMsg { job_id: key.clone(), seq: envelope.seq, json, terminal };
        log.events.push(msg.clone());
        if terminal && !log.finished {
            log.finished = true;
            inner.finished.push_back(key);
            while inner.finished.len() > Self::KEEP_FINISHED {
                if let Some(old) = inner.finished.pop_front() {
                    inner.logs.remove(&old);
                }
            }
        }
        // No subscriber is not an error: the log keeps the event for later readers.
        let _ = self.tx.send(msg);
        envelope
    }

    /// Events of `job_id` with `seq > after_seq`; `None` for an unknown (or evicted) job.
    pub fn events(&self, job_id: &str, after_seq: u64) -> Option<Vec<HubMsg>> {
        let inner = self.inner.lock().expect("hub lock poisoned");
        inner.logs.get(job_id).map(|l| l.events.iter().filter(|m| m.seq > after_seq).cloned().collect())
    }

    /// Live events of every job.
    pub fn subscribe(&self) -> broadcast::Receiver<HubMsg> {
        self.tx.subscribe()
    }

    /// The log of `job_id` after `after_seq` plus a receiver for later events, taken atomically.
    pub fn subscribe_job(&self, job_id: &str, after_seq: u64) -> Subscription {
        let inner = self.inner.lock().expect("hub lock poisoned");
        let rx = self.tx.subscribe();
        let (replay, finished) = match inner.logs.get(job_id) {
            Some(l) => (l.events.iter().filter(|m| m.seq > after_seq).cloned().collect(), l.finished),
            None => (Vec::new(), false),
        };
        Subscription { replay, rx, finished }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_shared::event::JobCancelled;

    fn cancelled() -> Event {
        Event::JobCancelled(JobCancelled { reason: "test".into() })
    }

    fn queued() -> Event {
        Event::JobQueued(bench_shared::event::JobQueued {
            test_type: bench_shared::job::TestType::LlmGenerate,
            models: vec!["m".into()],
            position: 0,
        })
    }

    #[test]
    fn seq_counts_per_job_and_log_replays_after_seq() {
        let hub = Hub::new("m1", 16);
        let mut rx = hub.subscribe();
        assert_eq!(hub.publish("a", queued(), None).seq, 1);
        assert_eq!(hub.publish("b", queued(), Some("engine down")).seq, 1);
        assert_eq!(hub.publish("a", cancelled(), None).seq, 2);
        let a: Vec<u64> = hub.events("a", 0).unwrap().iter().map(|m| m.seq).collect();
        assert_eq!(a, vec![1, 2]);
        assert_eq!(hub.events("a", 1).unwrap().len(), 1);
        assert!(hub.events("zzz", 0).is_none());
        let first = rx.try_recv().unwrap();
        let v: serde_json::Value = serde_json::from_str(&first.json).unwrap();
        assert_eq!(
            (v["job_id"].as_str(), v["seq"].as_u64(), v["machine_id"].as_str()),
            (Some("a"), Some(1), Some("m1"))
        );
        let second: serde_json::Value = serde_json::from_str(&rx.try_recv().unwrap().json).unwrap();
        assert_eq!(second["fallback_reason"], "engine down");
        assert!(!first.json.contains('\n'));
    }

    #[test]
    fn subscribe_job_replays_then_follows() {
        let hub = Hub::new("m1", 16);
        hub.publish("a", queued(), None);
        let mut sub = hub.subscribe_job("a", 0);
        assert_eq!(sub.replay.len(), 1);
        assert!(!sub.finished);
        hub.publish("a", cancelled(), None);
        assert_eq!(sub.rx.try_recv().unwrap().seq, 2);
        assert!(hub.subscribe_job("a", 0).finished);
    }

    #[test]
    fn only_the_last_finished_jobs_are_kept() {
        let hub = Hub::new("m1", 4);
        hub.publish("running", queued(), None);
        for i in 0..Hub::KEEP_FINISHED + 5 {
            hub.publish(&format!("j{i}"), cancelled(), None);
        }
        assert!(hub.events("j0", 0).is_none());
        assert!(hub.events("j4", 0).is_none());
        assert!(hub.events("j5", 0).is_some());
        assert!(hub.events("running", 0).is_some(), "unfinished jobs are never evicted");
    }
}
