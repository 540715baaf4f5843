//! `llm_generate`: one prompt, `warmup` unrecorded requests, then `repeat` recorded ones.
//!
//! Requests run strictly one after another (never overlapping), so each measures the engine
//! alone. Text is streamed live as coalesced `llm_token` events; every request ends with a
//! `request_done`, and the job's result is a [`JobDone`] built from the recorded repeats only.

use std::sync::Arc;
use std::time::Duration;

use bench_shared::event::{Event, JobDone, JobStarted, LlmToken, RequestDone};
use bench_shared::job::{GenerateSpec, TestType};
use bench_shared::metrics::{LoadSource, RequestMetrics, load_estimate_ms, request_metrics};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::coalesce::{FlushPolicy, coalesce};
use crate::engine::{Engine, EngineError, GenOutcome, GenRequest, wall_now_s};
use crate::hardware::energy::{EnergyFigures, EnergyMeter};
use crate::jobs::JobEvents;

/// Everything an `llm_generate` job needs.
#[derive(Debug)]
pub struct GenerateJob {
    pub engine: Arc<dyn Engine>,
    pub spec: GenerateSpec,
    pub flush: FlushPolicy,
    pub request_timeout: Duration,
    pub cancel: CancellationToken,
    /// Set when the job runs on the mock engine in place of the configured one.
    pub fallback_reason: Option<String>,
    /// Reads energy around each request (`None`: energy not measured).
    pub energy: Option<Arc<EnergyMeter>>,
}

/// How a job ended without a result.
#[derive(Debug)]
pub enum Failure {
    Engine { error: EngineError, repeat_index: Option<u32> },
    Cancelled,
}

/// Runs the job, publishing `job_started`, `llm_token` and `request_done` events. The caller
/// publishes the terminal event from the returned value.
pub async fn run(job: GenerateJob, events: &JobEvents) -> Result<JobDone, Failure> {
    let spec = &job.spec;
    let engine = job.engine.clone();
    let mut notes = Vec::new();
    let mut unloaded = false;
    // A cold job unloads *before* the shared start, so an engine that is slow to unload does
    // not start late: every machine's first request still leaves at `start_at`.
    if spec.cold {
        let unload = cancellable(&job.cancel, engine.unload(&spec.model)).await?;
        match unload.map_err(|error| Failure::Engine { error, repeat_index: None })? {
            true => unloaded = true,
            false => notes.push(format!(
                "cold start requested, but the {} engine cannot unload models: load time not measured",
                engine.kind()
            )),
        }
    }
    if let Some(at) = spec.start_at
        && !crate::bench::wait_until_epoch_ms(at, &job.cancel).await
    {
        return Err(Failure::Cancelled);
    }
    events.emit(Event::JobStarted(JobStarted {
        test_type: TestType::LlmGenerate,
        models: vec![spec.model.clone()],
        engine: engine.kind(),
        engine_base_url: engine.base_url().to_owned(),
        start_at: spec.start_at,
        started_at_s: wall_now_s(),
        notes: notes.clone(),
    }));
    let mut first_load_ms = None;
    let mut warmup_ttfts = Vec::new();
    for i in 0..spec.warmup {
        let m = one_request(&job, events, i, true).await?;
        if i == 0 {
            first_load_ms = m.load_ms;
        }
        warmup_ttfts.extend(m.ttft_ms);
    }
    let mut recorded: Vec<RequestMetrics> = Vec::with_capacity(spec.repeat as usize);
    let mut output_text = String::new();
    for i in 0..spec.repeat {
        let (m, outcome) = one_request_with_outcome(&job, events, i, false).await?;
        if i == 0 {
            output_text = outcome.text;
            if spec.warmup == 0 {
                first_load_ms = m.load_ms;
            }
        }
        recorded.push(m);
    }
    let mut load = if unloaded { first_load_ms.map(|l| (l, LoadSource::Engine)) } else { None };
    if load.is_none() && warmup_ttfts.len() == spec.warmup as usize {
        // The documented estimate: first warm-up TTFT − mean TTFT of the later warm-ups.
        load = load_estimate_ms(&warmup_ttfts).map(|l| (l, LoadSource::WarmupEstimate));
    }
    if unloaded && load.is_none() {
        notes.push("the engine unloaded the model but reported no load time".into());
    }
    // What the engine really ran with (engines may cap num_ctx silently): for settings_mismatch.
    let context_length = match tokio::time::timeout(CONTEXT_PROBE, engine.loaded_context_length(&spec.model)).await {
        Ok(Ok(c)) => c,
        _ => None,
    };
    let mut done = JobDone::from_requests(
        &spec.model,
        engine.kind(),
        job.fallback_reason.clone(),
        recorded,
        output_text,
        load,
        notes,
    );
    done.context_length = context_length;
    Ok(done)
}

/// Limit for asking the engine its loaded context length after the job.
const CONTEXT_PROBE: Duration = Duration::from_secs(5);

async fn one_request(
    job: &GenerateJob,
    events: &JobEvents,
    index: u32,
    warmup: bool,
) -> Result<RequestMetrics, Failure> {
    one_request_with_outcome(job, events, index, warmup).await.map(|(m, _)| m)
}

/// Sends one request, streams its text as `llm_token` events, publishes its `request_done`.
async fn one_request_with_outcome(
    job: &GenerateJob,
    events: &JobEvents,
    index: u32,
    warmup: bool,
) -> Result<(RequestMetrics, GenOutcome), Failure> {
    let spec = &job.spec;
    let req = GenRequest {
        model: spec.model.clone(),
        prompt: spec.request_prompt(index, warmup),
        max_tokens: spec.max_tokens,
        temperature: spec.temperature,
        num_ctx: spec.num_ctx,
        seed: spec.seed,
        stream: spec.stream,
        timeout: job.request_timeout,
        send_at: None,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let engine = job.engine.clone();
    let generate = async move {
        let result = engine.generate(&req, Some(&tx)).await;
        // Dropping the sender ends the coalescer once it has flushed the last piece.
        drop(tx);
        result
    };
    let stream = coalesce(rx, job.flush, |p| {
        events.emit(Event::LlmToken(LlmToken {
            text: p.text,
            timestamp_s: p.timestamp_s,
            repeat_index: index,
            channel: p.channel,
            warmup,
            tokens: p.chunks,
        }))
    });
    let mock = job.engine.kind() == bench_shared::engine::EngineKind::Mock;
    let window = match &job.energy {
        Some(meter) if !mock => Some(meter.start().await),
        _ => None,
    };
    let (result, ()) = cancellable(&job.cancel, async { tokio::join!(generate, stream) }).await?;
    let outcome = result.map_err(|error| Failure::Engine { error, repeat_index: Some(index) })?;
    let mut metrics = request_metrics(&outcome.trace, &outcome.stats);
    let energy = match (&job.energy, window) {
        (Some(meter), Some(w)) => meter.finish(w).await,
        _ if mock => {
            EnergyFigures { unavailable: Some("mock engine: no real work to measure".into()), ..Default::default() }
        }
        _ => EnergyFigures { unavailable: Some("energy not measured by this agent".into()), ..Default::default() },
    };
    energy.apply(&mut metrics);
    events.emit(Event::RequestDone(Box::new(RequestDone {
        repeat_index: index,
        warmup,
        model: spec.model.clone(),
        engine: job.engine.kind(),
        metrics: metrics.clone(),
    })));
    Ok((metrics, outcome))
}

async fn cancellable<T>(cancel: &CancellationToken, fut: impl Future<Output = T>) -> Result<T, Failure> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Failure::Cancelled),
        v = fut => Ok(v),
    }
}
