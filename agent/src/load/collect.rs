//! The one consumer of a step's records (oha's pattern): request tasks send each finished
//! request here; it keeps them, publishes `load_requests` and `load_progress` once a second, and
//! stops the step when the engine is gone.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench_shared::event::Event;
use bench_shared::load::events::{LoadPhase, LoadProgress, LoadRequests};
use bench_shared::load::{LoadLevel, RequestRecord};
use bench_shared::metrics::percentile_sorted;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Emit;
use super::step::Finished;
use crate::engine::EngineError;

/// Requests that found nothing listening, in a row, before a step gives up on the engine.
pub const MAX_UNREACHABLE_IN_A_ROW: u32 = 10;

/// How often progress and records are published.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// What the senders and the consumer share.
#[derive(Debug)]
pub struct Counters {
    t0: Instant,
    pub in_flight: AtomicU32,
    /// Requests sent, warm-ups included.
    pub sent: AtomicU64,
    pub measured_sent: AtomicU64,
    /// Every request has been handed out (the pacer or the last worker finished).
    pub all_sent: AtomicBool,
    /// When the measured window opened, µs after `t0` plus one (0: not yet).
    window_start: AtomicU64,
}

impl Counters {
    pub fn new(t0: Instant) -> Counters {
        Counters {
            t0,
            in_flight: AtomicU32::new(0),
            sent: AtomicU64::new(0),
            measured_sent: AtomicU64::new(0),
            all_sent: AtomicBool::new(false),
            window_start: AtomicU64::new(0),
        }
    }

    /// Opens the measured window at `at` (the first call wins).
    pub fn open_window(&self, at: Instant) {
        let us = at.saturating_duration_since(self.t0).as_micros() as u64 + 1;
        let _ = self.window_start.compare_exchange(0, us, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Seconds since the window opened; `None` before (or while it lies in the future).
    pub fn window_elapsed(&self, now: Instant) -> Option<f64> {
        let start = self.window_start.load(Ordering::Acquire);
        if start == 0 {
            return None;
        }
        let since_t0 = now.saturating_duration_since(self.t0).as_secs_f64();
        let e = since_t0 - (start - 1) as f64 / 1e6;
        (e >= 0.0).then_some(e)
    }
}

/// What the progress events say about the step.
pub struct StepInfo {
    pub step: u32,
    /// The capacity level (`None` for `llm_load`).
    pub label: Option<f64>,
    pub level: LoadLevel,
}

/// The step's records, or why it stopped.
pub struct Collected {
    pub records: Vec<RequestRecord>,
    /// Set when the engine was gone (the step was stopped).
    pub failure: Option<EngineError>,
}

/// Running figures of the measured requests, for `load_progress`.
#[derive(Default)]
struct Running {
    completed: u64,
    errors: u64,
    ttft: Vec<f64>,
    e2e: Vec<f64>,
    ended_since_tick: u64,
}

/// Receives until every sender is gone (or the step is stopped).
pub async fn collect(
    mut rx: mpsc::UnboundedReceiver<Finished>,
    counters: &Counters,
    info: &StepInfo,
    emit: &Emit,
    stop: &CancellationToken,
) -> Collected {
    let mut records = Vec::new();
    let mut batch: Vec<RequestRecord> = Vec::new();
    let mut running = Running::default();
    let mut unreachable_in_a_row = 0;
    let mut failure = None;
    let mut last_tick = Instant::now();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_INTERVAL, PROGRESS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some(Finished { record, error }) = msg else { break };
                running.ended_since_tick += 1;
                if !record.warmup {
                    if record.ok() {
                        running.completed += 1;
                        running.ttft.extend(record.ttft_ms);
                        running.e2e.extend(record.e2e_ms);
                    } else {
                        running.errors += 1;
                    }
                }
                match &error {
                    Some(e @ EngineError::ModelNotFound { .. }) => failure = Some(e.clone()),
                    Some(e @ EngineError::Unreachable { .. }) => {
                        unreachable_in_a_row += 1;
                        if unreachable_in_a_row >= MAX_UNREACHABLE_IN_A_ROW {
                            failure = Some(EngineError::Unreachable {
                                url: match e { EngineError::Unreachable { url, .. } => url.clone(), _ => String::new() },
                                reason: format!("{} requests in a row found nothing listening; last: {e}", unreachable_in_a_row),
                            });
                        }
                    }
                    _ => unreachable_in_a_row = 0,
                }
                batch.push(record.clone());
                records.push(record);
                if failure.is_some() {
                    stop.cancel();
                    break;
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                emit(Event::LoadProgress(progress(counters, info, &mut running, now.duration_since(last_tick))));
                last_tick = now;
                if !batch.is_empty() {
                    emit(Event::LoadRequests(LoadRequests { step: info.step, rows: std::mem::take(&mut batch) }));
                }
            }
            _ = stop.cancelled() => break,
        }
    }
    if !batch.is_empty() {
        emit(Event::LoadRequests(LoadRequests { step: info.step, rows: batch }));
    }
    Collected { records, failure }
}

fn progress(counters: &Counters, info: &StepInfo, running: &mut Running, since_tick: Duration) -> LoadProgress {
    let now = Instant::now();
    let window = counters.window_elapsed(now);
    let phase = if counters.all_sent.load(Ordering::Acquire) {
        LoadPhase::Drain
    } else if window.is_some() {
        LoadPhase::Measure
    } else {
        LoadPhase::Warmup
    };
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then(|| percentile_sorted(v, p))
    };
    let measured_sent = counters.measured_sent.load(Ordering::Acquire);
    let throughput_rps = running.ended_since_tick as f64 / since_tick.as_secs_f64().max(1e-3);
    running.ended_since_tick = 0;
    LoadProgress {
        step: info.label.map(|_| info.step),
        level: info.label,
        phase,
        elapsed_s: now.saturating_duration_since(counters.t0).as_secs_f64(),
        target_rps: info.level.rate_rps,
        concurrency: info.level.concurrency,
        in_flight: counters.in_flight.load(Ordering::Acquire),
        sent: counters.sent.load(Ordering::Acquire),
        completed: running.completed,
        errors: running.errors,
        // Over less than a second the count of sends says more about rounding than about rate.
        achieved_rps: window.filter(|w| *w >= 1.0 && phase == LoadPhase::Measure).map(|w| measured_sent as f64 / w),
        throughput_rps,
        ttft_p50_ms: pct(&mut running.ttft, 50.0),
        ttft_p99_ms: pct(&mut running.ttft, 99.0),
        e2e_p99_ms: pct(&mut running.e2e, 99.0),
    }
}
