//! One load (or one capacity step): send the requests, on time, and record each.
//!
//! Open loop: a dedicated OS thread (the pacer) sleeps until a lead time ([`lead`]) before each request's due
//! instant and hands the request to the runtime; the request task takes a slot under the cap (if
//! any) and calls the engine client with the due instant as [`GenRequest::send_at`]: the client
//! builds the request, waits out the rest on the CPU (yielding to other tasks) and sends at the
//! due instant. Its record goes to the one consumer ([`super::collect`]). A thread, not a timer
//! task: tokio's timers tick in whole milliseconds, and a busy runtime delays a due task further.
//! The hand-over comes early because waking a parked runtime worker takes hundreds of
//! microseconds on a virtual machine (the median send left 0.4 ms late at 10 req/s when the pacer
//! handed over at the due instant), and building the request (its JSON, the model check) happens
//! before the due instant rather than after it. The prompt of the next request is built while
//! the pacer waits.
//!
//! Closed loop: `concurrency` worker tasks, each sending its next request as soon as its last
//! one ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench_shared::load::prompt::{RequestPrompt, request_prompt};
use bench_shared::load::record::{RequestRecord, RequestStatus, itl_gaps_ms, tpot_ms};
use bench_shared::load::schedule;
use bench_shared::load::spec::{Length, MAX_CONCURRENCY, Warmup, Workload};
use bench_shared::load::{LoadLevel, LoadSummary, summarize};
use bench_shared::metrics::TokenSource;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::collect::{self, Collected, Counters};
use super::{Emit, LoadCtx, LoadError};
use crate::engine::{EngineError, GenOutcome, GenRequest};

/// A finished request on its way to the consumer.
pub struct Finished {
    pub record: RequestRecord,
    pub error: Option<EngineError>,
}

/// What every request of a step shares.
struct Shared {
    ctx: LoadCtx,
    workload: Workload,
    step: u32,
    /// The load's start: times in the records are offsets from it.
    t0: Instant,
    cap: Option<Arc<Semaphore>>,
    counters: Arc<Counters>,
    tx: mpsc::UnboundedSender<Finished>,
    stop: CancellationToken,
}

/// What a step produced.
#[derive(Debug)]
pub struct StepOutcome {
    pub records: Vec<RequestRecord>,
    pub summary: LoadSummary,
}

/// Runs one load of `workload` at `level`. `step`/`label` identify a capacity step in events.
pub async fn run(
    ctx: &LoadCtx,
    workload: &Workload,
    level: LoadLevel,
    step: u32,
    label: Option<f64>,
    emit: &Emit,
) -> Result<StepOutcome, LoadError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let stop = ctx.cancel.child_token();
    let t0 = Instant::now();
    let counters = Arc::new(Counters::new(t0));
    // An open loop without a cap is still bounded: beyond MAX_CONCURRENCY requests in flight it
    // waits (and says so: those requests are `capped`).
    let cap = match (level.rate_rps, level.concurrency) {
        (Some(_), c) => Some(Arc::new(Semaphore::new(c.unwrap_or(MAX_CONCURRENCY) as usize))),
        (None, _) => None,
    };
    let shared = Arc::new(Shared {
        ctx: ctx.clone(),
        workload: workload.clone(),
        step,
        t0,
        cap,
        counters: counters.clone(),
        tx,
        stop: stop.clone(),
    });
    let nominal_window_s = match level.rate_rps {
        Some(rate) => {
            let sched = schedule::open_loop(workload, rate);
            counters.open_window(t0 + Duration::from_secs_f64(sched.window_start_s));
            let window = sched.window_s;
            spawn_pacer(shared, sched.offsets_s, sched.warmup, lead(rate));
            Some(window)
        }
        None => {
            closed_loop(shared, level.concurrency.unwrap_or(1));
            None
        }
    };
    let info = collect::StepInfo { step, label, level };
    let Collected { records, failure } = collect::collect(rx, &counters, &info, emit, &stop).await;
    if ctx.cancel.is_cancelled() {
        return Err(LoadError::Cancelled);
    }
    if let Some(error) = failure {
        return Err(LoadError::Engine(error));
    }
    let summary = summarize(&records, level, nominal_window_s, ctx.slo.as_ref());
    Ok(StepOutcome { records, summary })
}

/// The open loop's pacer thread: `lead` before a due instant → a request task on the runtime.
fn spawn_pacer(shared: Arc<Shared>, offsets_s: Vec<f64>, warmup: usize, lead: Duration) {
    let handle = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new().name("load-pacer".into()).spawn(move || {
        for (i, offset) in offsets_s.iter().enumerate() {
            let prompt = request_prompt(&shared.workload, i as u64);
            let due = shared.t0 + Duration::from_secs_f64(*offset);
            if !sleep_until(due.checked_sub(lead).unwrap_or(due), &shared.stop) {
                break;
            }
            handle.spawn(request(shared.clone(), i as u64, i < warmup, Some(due), prompt));
        }
        shared.counters.all_sent.store(true, Ordering::Release);
        // Dropping `shared` here drops the pacer's sender: the consumer ends once every
        // request task has ended too.
    });
    if let Err(e) = spawned {
        // Without a thread nothing is sent; the consumer sees the channel close at once.
        tracing::error!(error = %e, "the load pacer thread could not start");
    }
}

/// How long before its due instant a request is handed to the runtime: a tenth of the mean gap
/// between arrivals, within 0.5–2 ms (2 ms up to 50 req/s, 1 ms at 100, 0.5 ms from 200). Long
/// enough for a parked worker to wake (hundreds of microseconds on a virtual machine, now and then
/// more), the pacer's own sleep to overshoot and the request to be built; short enough that the
/// wait on the CPU it buys stays small (at most a tenth of one core up to 200 req/s, a quarter at
/// 500). At high rates the workers are awake anyway, and a longer wait only adds CPU pressure.
pub fn lead(rate_rps: f64) -> Duration {
    let tenth_gap_s = 0.1 / rate_rps.max(f64::MIN_POSITIVE);
    Duration::from_secs_f64(tenth_gap_s.clamp(0.000_5, 0.002))
}

/// Sleeps until `due` (in slices, so a cancellation is seen within 50 ms); `false` if stopped.
fn sleep_until(due: Instant, stop: &CancellationToken) -> bool {
    loop {
        if stop.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        std::thread::sleep((due - now).min(Duration::from_millis(50)));
    }
}

/// The closed loop's workers.
fn closed_loop(shared: Arc<Shared>, workers: u32) {
    let next = Arc::new(AtomicU64::new(0));
    let measured = Arc::new(AtomicU64::new(0));
    let done_workers = Arc::new(AtomicU32::new(0));
    for _ in 0..workers {
        let (shared, next, measured, done_workers) =
            (shared.clone(), next.clone(), measured.clone(), done_workers.clone());
        tokio::spawn(async move {
            worker(&shared, &next, &measured).await;
            if done_workers.fetch_add(1, Ordering::AcqRel) + 1 == workers {
                shared.counters.all_sent.store(true, Ordering::Release);
            }
        });
    }
}

/// One closed-loop worker: its next request as soon as its last one ended, until the load's
/// length is reached. Warm-up is the first `warmup_requests` requests, or those sent in the first
/// `warmup_s`; the window opens with the first measured send.
async fn worker(shared: &Arc<Shared>, next: &AtomicU64, measured: &AtomicU64) {
    let w = &shared.workload;
    let counters = &shared.counters;
    loop {
        if shared.stop.is_cancelled() {
            return;
        }
        let now = Instant::now();
        let i = next.fetch_add(1, Ordering::AcqRel);
        let warmup = match w.warmup {
            Warmup::Seconds(s) => secs(shared.t0, now) < s,
            Warmup::Requests(k) => i < u64::from(k),
            Warmup::None => false,
        };
        if !warmup {
            counters.open_window(now);
            let over = match w.length {
                Length::Seconds(d) => counters.window_elapsed(now).is_some_and(|e| e >= d),
                Length::Requests(n) => measured.fetch_add(1, Ordering::AcqRel) >= u64::from(n),
            };
            if over {
                return;
            }
        }
        let prompt = request_prompt(w, i);
        request(shared.clone(), i, warmup, None, prompt).await;
    }
}

/// One request: a slot under the cap, the send, the record to the consumer.
async fn request(shared: Arc<Shared>, index: u64, warmup: bool, due: Option<Instant>, prompt: RequestPrompt) {
    let (permit, capped) = match &shared.cap {
        None => (None, false),
        Some(sem) => match sem.clone().try_acquire_owned() {
            Ok(p) => (Some(p), false),
            Err(_) => {
                let p = tokio::select! {
                    _ = shared.stop.cancelled() => return,
                    p = sem.clone().acquire_owned() => p,
                };
                match p {
                    Ok(p) => (Some(p), true),
                    Err(_) => return,
                }
            }
        },
    };
    let w = &shared.workload;
    let req = GenRequest {
        model: w.model.clone(),
        prompt: prompt.text,
        max_tokens: w.max_tokens,
        temperature: w.temperature,
        num_ctx: w.num_ctx,
        seed: Some(w.seed as i64),
        stream: true,
        timeout: shared.ctx.request_timeout,
        send_at: due,
    };
    let counters = &shared.counters;
    let in_flight = counters.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
    counters.sent.fetch_add(1, Ordering::AcqRel);
    if !warmup {
        counters.measured_sent.fetch_add(1, Ordering::AcqRel);
    }
    let called = Instant::now();
    let result = tokio::select! {
        _ = shared.stop.cancelled() => {
            counters.in_flight.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        r = shared.ctx.engine.generate(&req, None) => r,
    };
    let ended = Instant::now();
    counters.in_flight.fetch_sub(1, Ordering::AcqRel);
    drop(permit);
    let head =
        Head { step: shared.step, index, warmup, t0: shared.t0, due, capped, in_flight, words: prompt.input_words };
    let finished = match result {
        Ok(outcome) => Finished { record: record_of(&head, &outcome, called), error: None },
        Err(error) => Finished { record: failed(&head, called, ended, &error), error: Some(error) },
    };
    // The consumer is gone only when the step was stopped.
    let _ = shared.tx.send(finished);
}

/// What is known of a request before its answer.
struct Head {
    step: u32,
    index: u64,
    warmup: bool,
    t0: Instant,
    due: Option<Instant>,
    capped: bool,
    in_flight: u32,
    words: u32,
}

fn secs(t0: Instant, at: Instant) -> f64 {
    at.saturating_duration_since(t0).as_secs_f64()
}

fn base(h: &Head, sent_at: Instant) -> RequestRecord {
    RequestRecord {
        step: h.step,
        index: h.index,
        warmup: h.warmup,
        scheduled_s: h.due.map(|d| secs(h.t0, d)),
        sent_s: secs(h.t0, sent_at),
        lateness_ms: h.due.map(|d| sent_at.saturating_duration_since(d).as_secs_f64() * 1000.0),
        capped: h.capped,
        in_flight: h.in_flight,
        ttft_ms: None,
        tpot_ms: None,
        e2e_ms: None,
        itl_ms: Vec::new(),
        prompt_words: h.words,
        input_tokens: None,
        cached_tokens: None,
        output_tokens: None,
        token_source: None,
        status: RequestStatus::Ok,
        error: String::new(),
    }
}

/// The record of a completed request (times from the engine client's own send instant).
fn record_of(h: &Head, o: &GenOutcome, called: Instant) -> RequestRecord {
    let mut r = base(h, o.sent_at.unwrap_or(called));
    let ms = |us: u64| us as f64 / 1000.0;
    let ttft = o.trace.chunks.first().map(|c| ms(c.offset_us));
    let e2e = ms(o.trace.end_offset_us);
    let (tokens, source) = match o.stats.completion_tokens {
        Some(n) => (n, TokenSource::Engine),
        None => (o.trace.chunks.len() as u64, TokenSource::Chunks),
    };
    r.ttft_ms = ttft;
    r.e2e_ms = Some(e2e);
    r.tpot_ms = ttft.and_then(|t| tpot_ms(e2e, t, tokens));
    r.itl_ms = itl_gaps_ms(o.trace.chunks.iter().map(|c| c.offset_us));
    r.input_tokens = o.stats.prompt_tokens;
    r.cached_tokens = o.stats.cached_prompt_tokens;
    r.output_tokens = Some(tokens);
    r.token_source = Some(source);
    r
}

fn failed(h: &Head, called: Instant, ended: Instant, error: &EngineError) -> RequestRecord {
    let mut r = base(h, called);
    r.e2e_ms = Some(ended.saturating_duration_since(called).as_secs_f64() * 1000.0);
    r.status = RequestStatus::Error;
    r.error = error.to_string();
    r
}
