//! Event fan-out: every event of a job gets its `seq`, goes into the job's replay log, and is
//! broadcast to WebSocket subscribers.
//!
//! The log and the broadcast are updated under one short lock, so a subscriber that takes a
//! snapshot of the log and subscribes in the same critical section ([`Hub::subscribe_job`]) sees
//! every event exactly once. Events are serialized once, here, and shared as `Arc<str>`: a
//! thousand WebSocket clients cost one serialization per event.
//!
//! Memory is bounded: each job's log keeps its last [`Hub::WINDOW`] events, and only the logs of
//! unfinished jobs plus the last [`Hub::KEEP_FINISHED`] finished ones are kept. With a
//! [`Journal`] every event also goes to disk, and [`Hub::events_full`] /
//! [`Hub::subscribe_job_full`] read what memory no longer holds (older events, jobs from before a
//! restart) back from it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bench_shared::event::{Envelope, Event};
use tokio::sync::broadcast;

use crate::journal::Journal;

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
    /// The last [`Hub::WINDOW`] events.
    events: VecDeque<HubMsg>,
    /// Events published so far (the next seq is `published + 1`).
    published: u64,
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
    /// Every event on disk too, when set.
    journal: Option<Journal>,
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
    /// Events of one job kept in memory; older ones are read back from the journal.
    pub const WINDOW: usize = 2048;

    /// `capacity` bounds how far a broadcast subscriber may fall behind before it lags.
    pub fn new(machine_id: impl Into<String>, capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Hub { machine_id: machine_id.into(), inner: Mutex::new(Inner::default()), tx, journal: None, metrics: None }
    }

    /// Moves these Prometheus metrics with every published event.
    pub fn with_metrics(mut self, metrics: Arc<crate::prom::AgentMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Writes every event to `journal` as well.
    pub fn with_journal(mut self, journal: Journal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Publishes one event of `job_id`; returns its envelope. `fallback_reason` is set on every
    /// event of a job that runs on the mock engine in place of the real one.
    pub fn publish(&self, job_id: &str, event: Event, fallback_reason: Option<&str>) -> Envelope {
        let terminal = event.is_terminal();
        if let Some(m) = &self.metrics {
            m.observe(&event);
        }
        let mut inner = bench_shared::sync::lock(&self.inner);
        let key: Arc<str> = match inner.logs.get_key_value(job_id) {
            Some((k, _)) => k.clone(),
            None => Arc::from(job_id),
        };
        let log = inner.logs.entry(key.clone()).or_default();
        log.published += 1;
        let envelope = Envelope {
            job_id: job_id.to_owned(),
            seq: log.published,
            machine_id: self.machine_id.clone(),
            emitted_at_s: crate::engine::wall_now_s(),
            fallback_reason: fallback_reason.map(str::to_owned),
            event,
        };
        let json: Arc<str> = serde_json::to_string(&envelope).expect("events always serialize").into();
        let msg = HubMsg { job_id: key.clone(), seq: envelope.seq, json, terminal };
        log.events.push_back(msg.clone());
        if log.events.len() > Self::WINDOW {
            log.events.pop_front();
        }
        if let Some(j) = &self.journal {
            j.append(&key, &msg.json);
            if terminal {
                j.finished(&key);
            }
        }
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

    /// Events of `job_id` with `seq > after_seq` held in memory; `None` for a job not in memory
    /// (unknown, evicted, or from before a restart). See [`Hub::events_full`].
    pub fn events(&self, job_id: &str, after_seq: u64) -> Option<Vec<HubMsg>> {
        let inner = bench_shared::sync::lock(&self.inner);
        inner.logs.get(job_id).map(|l| l.events.iter().filter(|m| m.seq > after_seq).cloned().collect())
    }

    /// Every event of `job_id` with `seq > after_seq`: from memory, completed from the journal
    /// where memory no longer holds them. `None` when neither knows the job.
    pub async fn events_full(&self, job_id: &str, after_seq: u64) -> Option<Vec<HubMsg>> {
        let memory = self.events(job_id, after_seq);
        let first_in_memory = memory.as_ref().map(|m| m.first().map_or(u64::MAX, |e| e.seq));
        if first_in_memory.is_some_and(|first| first == u64::MAX || first <= after_seq + 1) {
            return memory; // memory covers it (or there is nothing after after_seq)
        }
        let older = self.read_journal(job_id, after_seq, first_in_memory.unwrap_or(u64::MAX)).await;
        match (older, memory) {
            (None, memory) => memory,
            (Some(mut older), memory) => {
                older.extend(memory.unwrap_or_default());
                Some(older)
            }
        }
    }

    /// Like [`Hub::subscribe_job`], with the replay completed from the journal.
    pub async fn subscribe_job_full(&self, job_id: &str, after_seq: u64) -> Subscription {
        let mut sub = self.subscribe_job(job_id, after_seq);
        let first = sub.replay.first().map_or(u64::MAX, |m| m.seq);
        if first > after_seq + 1
            && let Some(mut older) = self.read_journal(job_id, after_seq, first).await
        {
            sub.finished |= older.iter().any(|m| m.terminal);
            older.append(&mut sub.replay);
            sub.replay = older;
        }
        sub
    }

    /// Journal events of `job_id` with `after_seq < seq < before_seq`.
    async fn read_journal(&self, job_id: &str, after_seq: u64, before_seq: u64) -> Option<Vec<HubMsg>> {
        let journal = self.journal.clone()?;
        let id = job_id.to_owned();
        let lines = tokio::task::spawn_blocking(move || journal.read(&id, after_seq)).await.ok()??;
        let key: Arc<str> = Arc::from(job_id);
        Some(
            lines
                .into_iter()
                .filter(|(seq, _)| *seq < before_seq)
                .map(|(seq, json)| {
                    let terminal = serde_json::from_str::<serde_json::Value>(&json)
                        .ok()
                        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(bench_shared::event::is_terminal_type))
                        .unwrap_or(false);
                    HubMsg { job_id: key.clone(), seq, json: json.into(), terminal }
                })
                .collect(),
        )
    }

    /// Live events of every job.
    pub fn subscribe(&self) -> broadcast::Receiver<HubMsg> {
        self.tx.subscribe()
    }

    /// The log of `job_id` after `after_seq` plus a receiver for later events, taken atomically.
    pub fn subscribe_job(&self, job_id: &str, after_seq: u64) -> Subscription {
        let inner = bench_shared::sync::lock(&self.inner);
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

    #[tokio::test]
    async fn memory_keeps_a_window_and_the_journal_has_the_rest() {
        let dir = std::env::temp_dir().join(format!("agent-hub-{}", uuid::Uuid::new_v4().simple()));
        let hub = Hub::new("m1", 16).with_journal(Journal::open(dir.clone()));
        let n = Hub::WINDOW as u64 + 10;
        for _ in 0..n {
            hub.publish("a", queued(), None);
        }
        let memory = hub.events("a", 0).unwrap();
        assert_eq!(memory.len(), Hub::WINDOW);
        assert_eq!(memory.first().unwrap().seq, 11);
        let all = hub.events_full("a", 0).await.unwrap();
        assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
        assert_eq!(hub.events_full("a", 5).await.unwrap().first().unwrap().seq, 6);
        hub.publish("a", cancelled(), None);
        let sub = hub.subscribe_job_full("a", 0).await;
        assert_eq!(sub.replay.len() as u64, n + 1);
        assert!(sub.finished);
        // A hub that restarted (empty memory) still answers from the journal.
        let restarted = Hub::new("m1", 16).with_journal(Journal::open(dir.clone()));
        assert_eq!(restarted.events_full("a", n).await.unwrap().len(), 1);
        assert!(restarted.events_full("never", 0).await.is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
