//! The client ceiling: how fast this agent's own measuring path can go, so that a result near
//! it can be read as "the tool, not the machine, may be the limit".
//!
//! Calibration starts a [`engine::ZeroLatencyEngine`] in this process and runs `llm_generate`
//! jobs against it through the real path: the OpenAI-compatible engine client (timing at the
//! socket), the coalescer, event publishing into a hub and the metrics arithmetic. The jobs go to
//! a private job list and hub, so they never show in `/jobs` or the journal.
//!
//! - quick ([`Plan::quick`]): at agent start-up, in the background after the port is bound,
//!   at most [`QUICK_BUDGET`] of requests. Until it finishes `/capabilities` has
//!   `client_ceiling: null` and `client_ceiling_unavailable` saying why.
//! - full ([`Plan::full`]): `bench-agent calibrate [--duration-s N]`, printed, not saved.
//!
//! Requests run one at a time, each under the agent's measuring gate (the lock a job holds
//! while it runs), so a calibration request never overlaps a job: a job waits at most for the one
//! request in flight, and calibration pauses while a job runs (that wait is not counted in the
//! budget).

pub mod engine;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_shared::api::{CeilingKind, ClientCeiling};
use bench_shared::job::{GenerateSpec, JobSpec};
use bench_shared::metrics::RequestMetrics;
use tokio_util::sync::CancellationToken;

use crate::bench::coalesce::FlushPolicy;
use crate::bench::generate::{self, Failure, GenerateJob};
use crate::engine::Engine;
use crate::engine::openai::OpenAiEngine;
use crate::hub::Hub;
use crate::jobs::{JobEvents, Jobs};

/// The start-up calibration's whole budget of request time.
pub const QUICK_BUDGET: Duration = Duration::from_secs(1);
/// What `/capabilities` says before the start-up calibration has finished.
pub const PENDING: &str = "the start-up calibration has not finished yet";
/// Tokens of the unrecorded first request (it opens the pooled connection, as a job's first
/// request to a long-running engine finds it open).
const WARMUP_TOKENS: u32 = 16;
/// A request is not started with less budget than this left.
const MIN_REQUEST: Duration = Duration::from_millis(20);

/// The agent's ceiling as `/capabilities` shows it: the figures, or why there are none.
pub type CeilingState = Result<ClientCeiling, String>;

/// The lock a job holds while it runs; calibration takes it for each of its requests.
pub type MeasuringGate = Arc<tokio::sync::Mutex<()>>;

/// How much to measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub kind: CeilingKind,
    /// Tokens each recorded request streams (its `max_tokens`; the engine sends exactly these).
    pub tokens_per_request: u32,
    /// Recorded requests at most.
    pub max_requests: u32,
    /// Request time at most (the warm-up included); the request in flight is bounded by what is
    /// left, so the calibration never runs past it.
    pub budget: Duration,
}

impl Plan {
    /// The start-up calibration: up to 6 × 2000 tokens within [`QUICK_BUDGET`].
    pub fn quick() -> Plan {
        Plan { kind: CeilingKind::Quick, tokens_per_request: 2000, max_requests: 6, budget: QUICK_BUDGET }
    }

    /// `bench-agent calibrate`: 20 000-token requests for `duration`.
    pub fn full(duration: Duration) -> Plan {
        Plan { kind: CeilingKind::Full, tokens_per_request: 20_000, max_requests: u32::MAX, budget: duration }
    }
}

/// Why a calibration gave no figures.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    #[error("the zero-latency engine could not start: {0}")]
    Engine(String),
    #[error("no calibration request finished within {budget_s} s{}", last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    NoResult { budget_s: f64, last_error: Option<String> },
    #[error("calibration cancelled")]
    Cancelled,
}

/// Runs the calibration `plan` describes. `flush` is the agent's coalescing policy (part of the
/// path); `gate` is the agent's measuring gate (`None` in `bench-agent calibrate`, where no job
/// can run).
pub async fn calibrate(
    plan: &Plan,
    flush: FlushPolicy,
    gate: Option<&MeasuringGate>,
    cancel: &CancellationToken,
) -> Result<ClientCeiling, CalibrationError> {
    let begun = Instant::now();
    let server = engine::ZeroLatencyEngine::start().await.map_err(|e| CalibrationError::Engine(e.to_string()))?;
    let client: Arc<dyn Engine> = Arc::new(OpenAiEngine::new(&server.base_url, None));
    let jobs = Arc::new(Jobs::new(Arc::new(Hub::new("calibration", 64)), 1));
    // Time of the calibration's own work: waits for a running job are not counted.
    let mut spent = begun.elapsed();
    let mut recorded: Vec<RequestMetrics> = Vec::new();
    let mut last_error = None;
    let mut last_request: Option<Duration> = None;
    while recorded.len() < plan.max_requests as usize {
        let left = plan.budget.saturating_sub(spent);
        // A request that would not fit is not started.
        if left < MIN_REQUEST || last_request.is_some_and(|d| left < d.mul_f64(1.25)) {
            break;
        }
        let _turn = match gate {
            Some(g) => Some(tokio::select! {
                turn = g.lock() => turn,
                _ = cancel.cancelled() => return Err(CalibrationError::Cancelled),
            }),
            None => None,
        };
        let warmed = last_request.is_some();
        let tokens = if warmed { plan.tokens_per_request } else { WARMUP_TOKENS };
        let started = Instant::now();
        // The request and the job's bookkeeping around it, cut off when the budget runs out.
        let result = tokio::time::timeout(left, one_job(&client, &jobs, tokens, left, flush, cancel)).await;
        let took = started.elapsed();
        spent += took;
        match result {
            Ok(Ok(m)) => {
                if warmed {
                    recorded.push(m);
                }
                last_request = Some(took);
            }
            Ok(Err(Failure::Cancelled)) => return Err(CalibrationError::Cancelled),
            Ok(Err(Failure::Engine { error, .. })) => {
                last_error = Some(error.to_string());
                break;
            }
            Err(_) => {
                last_error =
                    Some(format!("a request did not finish within the {} s budget", plan.budget.as_secs_f64()));
                break;
            }
        }
    }
    let tokens = recorded.iter().map(|m| m.gen_tokens).sum();
    let Some((tok_s, events_per_s, ttft_floor_ms)) = figures(&recorded) else {
        return Err(CalibrationError::NoResult { budget_s: plan.budget.as_secs_f64(), last_error });
    };
    Ok(ClientCeiling {
        tok_s,
        events_per_s,
        ttft_floor_ms,
        measured_at: bench_shared::time::rfc3339_now(),
        kind: plan.kind,
        requests: recorded.len() as u32,
        tokens,
        duration_s: spent.as_secs_f64(),
    })
}

/// One `llm_generate` job of one request streaming `tokens` tokens, on the job path.
async fn one_job(
    client: &Arc<dyn Engine>,
    jobs: &Arc<Jobs>,
    tokens: u32,
    timeout: Duration,
    flush: FlushPolicy,
    cancel: &CancellationToken,
) -> Result<RequestMetrics, Failure> {
    let mut spec = GenerateSpec::new(engine::MODEL, "calibration");
    spec.max_tokens = tokens;
    let (job_id, _) =
        jobs.submit(JobSpec::LlmGenerate(spec.clone()), None).expect("the private queue holds one job at a time");
    // Marks it running (it is the only one queued).
    let _ = jobs.next(&CancellationToken::new()).await;
    let job = GenerateJob {
        engine: client.clone(),
        spec,
        flush,
        request_timeout: timeout,
        cancel: cancel.child_token(),
        fallback_reason: None,
        energy: None,
    };
    let events = JobEvents::new(jobs.clone(), job_id.clone());
    let result = generate::run(job, &events).await;
    if let Ok(done) = &result {
        events.emit(bench_shared::event::Event::JobDone(Box::new(done.clone().into())));
    }
    jobs.finish_running(&job_id);
    let done = result?;
    done.requests.into_iter().next().ok_or(Failure::Cancelled)
}

/// `(tok_s, events_per_s, ttft_floor_ms)`: medians over the requests that have all three.
pub fn figures(requests: &[RequestMetrics]) -> Option<(f64, f64, f64)> {
    let mut tok_s = Vec::new();
    let mut events_per_s = Vec::new();
    let mut ttft_ms = Vec::new();
    for m in requests {
        let (Some(rate), Some(ttft)) = (m.decode_tok_s, m.ttft_ms) else { continue };
        if m.gen_tokens < 2 || m.chunks < 2 {
            continue;
        }
        // decode_tok_s = (gen_tokens − 1) / window; the events in that window are chunks − 1.
        let window_s = (m.gen_tokens - 1) as f64 / rate;
        tok_s.push(rate);
        events_per_s.push((m.chunks - 1) as f64 / window_s);
        ttft_ms.push(ttft);
    }
    Some((median(tok_s)?, median(events_per_s)?, median(ttft_ms)?))
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[mid] } else { (values[mid - 1] + values[mid]) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_shared::metrics::{ChunkArrival, EngineStats, RequestTrace, TokenChannel, request_metrics};

    fn flush() -> FlushPolicy {
        FlushPolicy::new(64, 0.1)
    }

    /// A request whose `tokens` tokens arrive in `events` evenly spaced events, `gap_us` apart.
    fn request(ttft_us: u64, tokens: u64, events: u64, gap_us: u64) -> RequestMetrics {
        let chunks: Vec<ChunkArrival> = (0..events)
            .map(|i| ChunkArrival { offset_us: ttft_us + i * gap_us, channel: TokenChannel::Content })
            .collect();
        let end = chunks.last().unwrap().offset_us;
        let trace = RequestTrace { chunks, end_offset_us: end, streamed: true };
        request_metrics(&trace, &EngineStats { completion_tokens: Some(tokens), ..Default::default() })
    }

    #[test]
    fn figures_are_medians_of_rates_and_ttft() {
        // 1001 tokens, one per event, 10 µs apart: 1000 gaps in 10 ms = 100 000 tok/s.
        let fast = request(200, 1001, 1001, 10);
        let slow = request(400, 1001, 1001, 20);
        let mid = request(300, 1001, 1001, 15);
        let (tok_s, events_per_s, ttft_ms) = figures(&[fast, slow, mid.clone()]).unwrap();
        assert!((tok_s - mid.decode_tok_s.unwrap()).abs() < 1e-6, "{tok_s}");
        assert!((events_per_s - tok_s).abs() < 1e-6, "one token per event: {events_per_s}");
        assert!((ttft_ms - 0.3).abs() < 1e-9, "{ttft_ms}");
        // Two tokens per event: half the events per second of the token rate.
        let (tok_s, events_per_s, _) = figures(&[request(100, 2001, 1001, 10)]).unwrap();
        assert!((tok_s / events_per_s - 2.0).abs() < 1e-9, "{tok_s} {events_per_s}");
        // Nothing usable: no figures rather than made-up ones.
        assert_eq!(figures(&[]), None);
        assert_eq!(figures(&[request(100, 1, 1, 10)]), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calibration_runs_the_planned_requests_and_gives_finite_positive_figures() {
        let plan = Plan { kind: CeilingKind::Full, tokens_per_request: 300, max_requests: 3, budget: Duration::MAX };
        let c = calibrate(&plan, flush(), None, &CancellationToken::new()).await.unwrap();
        assert_eq!((c.requests, c.tokens, c.kind), (3, 900, CeilingKind::Full), "stops after the planned tokens");
        for (name, v) in [("tok_s", c.tok_s), ("events_per_s", c.events_per_s), ("ttft_floor_ms", c.ttft_floor_ms)] {
            assert!(v.is_finite() && v > 0.0, "{name} = {v}");
        }
        assert!(c.duration_s > 0.0);
        let at = &c.measured_at;
        assert!(at.len() >= 20 && at.as_bytes()[10] == b'T' && at.ends_with('Z'), "RFC 3339 UTC: {at}");
    }

    #[tokio::test]
    async fn no_budget_no_request_and_no_figures() {
        let plan = Plan { kind: CeilingKind::Quick, tokens_per_request: 300, max_requests: 3, budget: Duration::ZERO };
        let err = calibrate(&plan, flush(), None, &CancellationToken::new()).await.unwrap_err();
        assert!(matches!(err, CalibrationError::NoResult { last_error: None, .. }), "{err}");
        assert!(err.to_string().contains("no calibration request finished within 0 s"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calibration_measures_only_while_no_job_holds_the_gate() {
        let gate: MeasuringGate = Arc::new(tokio::sync::Mutex::new(()));
        let plan = Plan { kind: CeilingKind::Quick, tokens_per_request: 100, max_requests: 1, budget: Duration::MAX };
        let job = gate.clone().lock_owned().await;
        let mut run = tokio::spawn({
            let gate = gate.clone();
            async move { calibrate(&plan, flush(), Some(&gate), &CancellationToken::new()).await }
        });
        // While the "job" holds the gate the calibration cannot finish, however long it is given
        // (the window only bounds how long this test looks; it never decides a pass by speed).
        assert!(tokio::time::timeout(Duration::from_millis(300), &mut run).await.is_err(), "measured during a job");
        drop(job);
        let c = tokio::time::timeout(Duration::from_secs(120), run).await.expect("finished").unwrap().unwrap();
        assert_eq!(c.requests, 1);
    }

    #[tokio::test]
    async fn calibration_waiting_for_a_job_stops_when_cancelled() {
        let gate: MeasuringGate = Arc::new(tokio::sync::Mutex::new(()));
        let _job = gate.clone().lock_owned().await;
        let cancel = CancellationToken::new();
        let run = tokio::spawn({
            let (gate, cancel) = (gate.clone(), cancel.clone());
            async move { calibrate(&Plan::quick(), flush(), Some(&gate), &cancel).await }
        });
        // The gate stays held: cancelling is the only way out.
        cancel.cancel();
        assert_eq!(run.await.unwrap().unwrap_err(), CalibrationError::Cancelled);
    }
}
