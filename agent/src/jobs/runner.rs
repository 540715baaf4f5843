//! The worker: takes the next queued job, waits for its `start_at`, picks the engine (the
//! configured one, or the mock on an explicit fallback), runs it, and publishes its terminal event.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bench_shared::engine::EngineKind;
use bench_shared::event::{Event, JobError, JobResult, JobStarted};
use bench_shared::job::JobSpec;
use futures_util::FutureExt as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{JobEvents, Jobs, NextJob};
use crate::bench::coalesce::FlushPolicy;
use crate::bench::generate::{self, Failure, GenerateJob};
use crate::engine::mock::MockEngine;
use crate::engine::{Engine, EngineError, EngineSettings, Fallback, wall_now_s};
use crate::hardware::energy::EnergyMeter;
use crate::hardware::sampler::Sampler;
use crate::sweep::{self, SweepJob};

/// What the worker needs from the agent's state.
#[derive(Debug, Clone)]
pub struct Runner {
    pub jobs: Arc<Jobs>,
    pub engine: Arc<dyn Engine>,
    pub settings: EngineSettings,
    pub flush: FlushPolicy,
    pub results_dir: PathBuf,
    /// The runtime sampler, when enabled: its samples become the job's `runtime_metrics` events.
    pub sampler: Option<Arc<Sampler>>,
    /// Energy per request.
    pub energy: Arc<EnergyMeter>,
    /// The client ceiling, for `job_done.ceiling_ratio`.
    pub ceiling: Arc<tokio::sync::watch::Sender<crate::calibrate::CeilingState>>,
    /// Held while a job runs (calibration requests wait for it).
    pub measuring: crate::calibrate::MeasuringGate,
    /// The image and speech servers, when configured.
    pub image: Option<Arc<crate::workload::image::ImageEngine>>,
    pub speech: Option<Arc<crate::workload::speech::SpeechEngine>>,
}

/// How long the fallback check waits for the engine's model list.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

impl Runner {
    /// Runs queued jobs one at a time until `shutdown` fires. A running job is never abandoned:
    /// shutdown cancels it through its token and it still publishes `job_cancelled`.
    pub async fn run(self, shutdown: CancellationToken) {
        while let Some(job) = self.jobs.next(&shutdown).await {
            let id = job.job_id.clone();
            let span = tracing::info_span!("job", job_id = %id);
            let turn = self.measuring.lock().await;
            let terminal = self.run_one(job).instrument(span).await;
            drop(turn);
            tracing::info!(job_id = %id, outcome = terminal.type_name(), "job finished");
            self.jobs.publish(&id, terminal);
            self.jobs.finish_running(&id);
        }
    }

    /// Runs one job and returns its terminal event; while it runs, every runtime sample is
    /// published as a `runtime_metrics` event of the job (stopped before the terminal event).
    async fn run_one(&self, job: NextJob) -> Event {
        let events = JobEvents::new(self.jobs.clone(), job.job_id.clone());
        let stop = CancellationToken::new();
        let forward =
            self.sampler.as_ref().map(|s| tokio::spawn(forward_samples(s.subscribe(), events.clone(), stop.clone())));
        // A bug that panics mid-job ends that job with an error instead of the worker (which
        // would leave the job running forever and the queue stuck).
        let terminal = AssertUnwindSafe(self.run_job(job, &events)).catch_unwind().await.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            tracing::error!(panic = %what, "the job panicked");
            Event::JobError(JobError {
                kind: bench_shared::event::ErrorKind::Internal,
                message: format!("the agent failed while running this job (a bug, please report it): {what}"),
                repeat_index: None,
            })
        });
        stop.cancel();
        if let Some(f) = forward {
            let _ = f.await;
        }
        terminal
    }

    async fn run_job(&self, job: NextJob, events: &JobEvents) -> Event {
        let events = events.clone();
        let cancelled = || self.jobs.cancelled_event(&job.job_id);
        // `llm_generate` waits for `start_at` itself, after its cold unload.
        if !matches!(job.spec, JobSpec::LlmGenerate(_))
            && let Some(at) = job.spec.start_at_ms()
            && !crate::bench::wait_until_epoch_ms(at, &job.cancel).await
        {
            return cancelled();
        }
        if !job.spec.test_type().uses_llm_engine() {
            return self.run_workload(&job, &events).await.unwrap_or_else(cancelled);
        }
        let mut fallback_reason = job.fallback_reason.clone();
        if fallback_reason.is_none() && self.settings.fallback == Fallback::Mock {
            fallback_reason = self.unreachable_reason().await;
            if let Some(r) = &fallback_reason {
                tracing::warn!(job_id = %job.job_id, reason = %r, "falling back to the mock engine");
                self.jobs.set_fallback(&job.job_id, r.clone());
            }
        }
        let engine: Arc<dyn Engine> = match &fallback_reason {
            Some(_) => Arc::new(self.fallback_engine(&job.spec)),
            None => self.engine.clone(),
        };
        let result = match job.spec.clone() {
            JobSpec::LlmGenerate(spec) => {
                let gen_job = GenerateJob {
                    engine,
                    spec,
                    flush: self.flush,
                    request_timeout: Duration::from_secs_f64(self.settings.request_timeout_s),
                    cancel: job.cancel.clone(),
                    fallback_reason,
                    energy: Some(self.energy.clone()),
                };
                generate::run(gen_job, &events).await.map(|mut done| {
                    done.ceiling_ratio = self.ceiling.borrow().as_ref().ok().and_then(|c| c.ratio(done.decode_tok_s));
                    Event::JobDone(Box::new(done.into()))
                })
            }
            JobSpec::LlmSweep(spec) => return self.run_sweep(&job, engine, spec, &events).await,
            spec @ (JobSpec::LlmLoad(_) | JobSpec::LlmCapacity(_)) => {
                return self.run_load(&job, engine, &spec, &events).await;
            }
            JobSpec::ImageGenerate(_) | JobSpec::Transcribe(_) | JobSpec::Compute(_) => {
                unreachable!("workload jobs return above")
            }
        };
        match result {
            Ok(done) => done,
            Err(Failure::Cancelled) => cancelled(),
            Err(Failure::Engine { error, repeat_index }) => {
                Event::JobError(JobError { kind: error.kind(), message: error.to_string(), repeat_index })
            }
        }
    }

    /// An image, speech or compute job (none uses the LLM engine); `None` when cancelled.
    async fn run_workload(&self, job: &NextJob, events: &JobEvents) -> Option<Event> {
        use crate::workload::{compute, image, speech};
        let started = |engine: EngineKind, url: String, notes: Vec<String>| {
            events.emit(Event::JobStarted(JobStarted {
                test_type: job.spec.test_type(),
                models: job.spec.models(),
                engine,
                engine_base_url: url,
                start_at: job.spec.start_at_ms(),
                started_at_s: wall_now_s(),
                notes,
            }));
        };
        let missing = |what: &str| {
            Some(Event::JobError(JobError {
                kind: bench_shared::event::ErrorKind::EngineUnreachable,
                message: format!("no {what} is configured on this agent (agent.yaml)"),
                repeat_index: None,
            }))
        };
        match &job.spec {
            JobSpec::Compute(spec) => {
                started(EngineKind::Agent, String::new(), Vec::new());
                match compute::run(spec.clone(), events, &job.cancel).await {
                    Ok(done) => Some(Event::JobDone(Box::new(JobResult::Compute(done)))),
                    Err(compute::Failure::Cancelled) => None,
                    Err(compute::Failure::Error(e)) => Some(Event::JobError(e)),
                }
            }
            JobSpec::ImageGenerate(spec) => {
                let Some(eng) = &self.image else { return missing("image_engine") };
                let kind = match eng.kind() {
                    bench_shared::workload::image::ImageEngineKind::Comfyui => EngineKind::Comfyui,
                    bench_shared::workload::image::ImageEngineKind::Openai => EngineKind::Openai,
                };
                started(kind, eng.base_url().to_owned(), Vec::new());
                match eng.run(spec, events, &job.cancel).await {
                    Ok(done) => Some(Event::JobDone(Box::new(JobResult::Image(done)))),
                    Err(f) => image::fail(f, spec, events),
                }
            }
            JobSpec::Transcribe(spec) => {
                let Some(eng) = &self.speech else { return missing("speech_engine") };
                started(EngineKind::Openai, eng.base_url().to_owned(), Vec::new());
                match eng.run(spec, events, &job.cancel).await {
                    Ok(done) => Some(Event::JobDone(Box::new(JobResult::Transcribe(done)))),
                    Err(speech::Failure::Cancelled) => None,
                    Err(speech::Failure::Error(e)) => Some(Event::JobError(e)),
                }
            }
            JobSpec::LlmGenerate(_) | JobSpec::LlmSweep(_) | JobSpec::LlmLoad(_) | JobSpec::LlmCapacity(_) => {
                unreachable!("LLM jobs are run by run_job")
            }
        }
    }

    async fn run_sweep(
        &self,
        job: &NextJob,
        engine: Arc<dyn Engine>,
        spec: bench_shared::sweep::SweepSpec,
        events: &JobEvents,
    ) -> Event {
        events.emit(Event::JobStarted(JobStarted {
            test_type: bench_shared::job::TestType::LlmSweep,
            models: spec.models.clone(),
            engine: engine.kind(),
            engine_base_url: engine.base_url().to_owned(),
            start_at: spec.start_at,
            started_at_s: wall_now_s(),
            notes: Vec::new(),
        }));
        let sweep_job = SweepJob {
            engine,
            spec,
            out_dir: self.results_dir.join("sweeps").join(&job.job_id),
            calibration_cache: self.results_dir.join("calibration_cache.json"),
            cancel: job.cancel.clone(),
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
        let forward = async {
            while let Some(e) = rx.recv().await {
                if e.is_terminal() {
                    // The runner owns the terminal event; a sweep never ends the job itself.
                    tracing::warn!(kind = e.type_name(), "terminal event from the sweep ignored");
                    continue;
                }
                events.emit(e);
            }
        };
        let (result, ()) = tokio::join!(sweep::run_job(sweep_job, tx), forward);
        match result {
            _ if job.cancel.is_cancelled() => self.jobs.cancelled_event(&job.job_id),
            Ok(done) => Event::SweepDone(Box::new(done)),
            Err(e) if e.is_cancelled() => self.jobs.cancelled_event(&job.job_id),
            Err(e) => Event::JobError(JobError { kind: e.kind(), message: e.to_string(), repeat_index: None }),
        }
    }

    /// `llm_load` / `llm_capacity`: `job_started`, the load's events, then `load_done` (with the
    /// client ceiling ratio) or `job_error`.
    async fn run_load(&self, job: &NextJob, engine: Arc<dyn Engine>, spec: &JobSpec, events: &JobEvents) -> Event {
        events.emit(Event::JobStarted(JobStarted {
            test_type: spec.test_type(),
            models: spec.models(),
            engine: engine.kind(),
            engine_base_url: engine.base_url().to_owned(),
            start_at: spec.start_at_ms(),
            started_at_s: wall_now_s(),
            notes: Vec::new(),
        }));
        let slo = match spec {
            JobSpec::LlmLoad(l) => l.slo,
            JobSpec::LlmCapacity(c) => Some(c.slo),
            _ => None,
        };
        let ctx = crate::load::LoadCtx {
            engine,
            request_timeout: Duration::from_secs_f64(self.settings.request_timeout_s),
            cancel: job.cancel.clone(),
            slo,
        };
        let sink = events.clone();
        let emit: crate::load::Emit = Arc::new(move |e| sink.emit(e));
        let result = match spec {
            JobSpec::LlmLoad(l) => crate::load::run_load(&ctx, l, &emit).await,
            JobSpec::LlmCapacity(c) => crate::load::run_capacity(&ctx, c, &emit).await,
            _ => unreachable!("run_load is called for load specs only"),
        };
        match result {
            _ if job.cancel.is_cancelled() => self.jobs.cancelled_event(&job.job_id),
            Ok(mut done) => {
                done.ceiling_ratio =
                    self.ceiling.borrow().as_ref().ok().and_then(|c| c.ratio(Some(done.summary.output_tok_s)));
                Event::LoadDone(Box::new(done))
            }
            Err(crate::load::LoadError::Cancelled) => self.jobs.cancelled_event(&job.job_id),
            Err(e) => Event::JobError(JobError { kind: e.kind(), message: e.to_string(), repeat_index: None }),
        }
    }

    /// `Some(reason)` when nothing listens at the configured engine's address now. A connected
    /// engine that is merely slow is not replaced: mock numbers must never stand in for a busy
    /// real engine.
    async fn unreachable_reason(&self) -> Option<String> {
        let error = match tokio::time::timeout(PROBE_TIMEOUT, self.engine.list_models()).await {
            Ok(Err(e @ EngineError::Unreachable { .. })) => e.to_string(),
            Ok(_) => return None,
            Err(_) => {
                tracing::warn!(url = self.engine.base_url(), "engine slow to list models; no fallback");
                return None;
            }
        };
        Some(format!(
            "{} engine unavailable ({error}); running on the mock engine because engine.fallback is mock",
            self.engine.kind()
        ))
    }

    /// The mock engine for a fallback job; it serves the job's models so the race can go on,
    /// every result labelled `engine: "mock"` with the reason.
    fn fallback_engine(&self, spec: &JobSpec) -> MockEngine {
        let mut settings = self.settings.mock.clone();
        for m in spec.models() {
            if !settings.models.contains(&m) {
                settings.models.push(m);
            }
        }
        MockEngine::new(settings)
    }
}

/// Publishes each new runtime sample as a `runtime_metrics` event until `stop` fires. A lagging
/// receiver skips samples rather than holding up the sampler.
async fn forward_samples(
    mut rx: tokio::sync::broadcast::Receiver<bench_shared::runtime::RuntimeSample>,
    events: JobEvents,
    stop: CancellationToken,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            r = rx.recv() => match r {
                Ok(sample) => events.emit(Event::RuntimeMetrics(Box::new(sample))),
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            },
        }
    }
}
