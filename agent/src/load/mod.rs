//! `llm_load` and `llm_capacity`: many requests at once, on a seeded schedule, against the engine.
//!
//! The pure parts (spec, schedule, prompts, figures, the search) live in
//! `bench_shared::load`; this module does the sending and the recording.
//!
//! # Layout
//! - [`step`]: one load: the pacer thread (open loop) or the workers (closed loop), and each
//!   request's record.
//! - [`collect`]: the one consumer of the records; `load_progress` / `load_requests` events.
//! - [`capacity`]: the search loop of `llm_capacity` over [`step`]s.
//! - [`cli`], [`table`]: `bench-agent load` / `bench-agent capacity` (live line, final table).

pub mod capacity;
pub mod cli;
pub mod collect;
pub mod step;
pub mod table;

use std::sync::Arc;
use std::time::Duration;

use bench_shared::engine::{EngineKind, same_model};
use bench_shared::event::{ErrorKind, Event};
use bench_shared::job::TestType;
use bench_shared::load::{CapacitySpec, LoadDone, LoadSpec, Slo};
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineError};

/// Where a load's events go (the job's event stream, or the terminal).
pub type Emit = Arc<dyn Fn(Event) + Send + Sync>;

/// What a load needs from the agent.
#[derive(Debug, Clone)]
pub struct LoadCtx {
    pub engine: Arc<dyn Engine>,
    /// `engine.request_timeout_s`.
    pub request_timeout: Duration,
    pub cancel: CancellationToken,
    /// For the summaries' goodput (`llm_load`'s `slo`, `llm_capacity`'s).
    pub slo: Option<Slo>,
}

/// Why a load ended without a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl LoadError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            LoadError::Cancelled => ErrorKind::Internal,
            LoadError::Engine(e) => e.kind(),
        }
    }
}

/// Checks, before any load, that the engine answers and serves `model`.
pub async fn preflight(engine: &dyn Engine, model: &str) -> Result<(), EngineError> {
    let listed = engine.list_models().await?;
    if listed.is_empty() || listed.iter().any(|m| same_model(&m.name, model)) {
        // An engine that lists nothing cannot be checked; its first request will say.
        return Ok(());
    }
    Err(EngineError::ModelNotFound { model: model.to_owned(), available: listed.into_iter().map(|m| m.name).collect() })
}

/// Runs an `llm_load` job: `load_progress` / `load_requests` while it runs; the result.
pub async fn run_load(ctx: &LoadCtx, spec: &LoadSpec, emit: &Emit) -> Result<LoadDone, LoadError> {
    let workload = spec.workload();
    preflight(ctx.engine.as_ref(), &workload.model).await?;
    let out = step::run(ctx, &workload, spec.level(), 0, None, emit).await?;
    Ok(LoadDone {
        test_type: TestType::LlmLoad,
        model: workload.model.clone(),
        engine: ctx.engine.kind(),
        seed: workload.seed,
        notes: notes(&out.summary, ctx.engine.kind(), spec.slo.is_some()),
        summary: out.summary,
        summary_step: None,
        capacity: None,
        ceiling_ratio: None,
    })
}

/// Runs an `llm_capacity` job: every step's events, a `load_step` per step; the result.
pub async fn run_capacity(ctx: &LoadCtx, spec: &CapacitySpec, emit: &Emit) -> Result<LoadDone, LoadError> {
    let workload = spec.workload();
    preflight(ctx.engine.as_ref(), &workload.model).await?;
    let result = capacity::search(ctx, spec, emit).await?;
    let rep = result.representative().cloned();
    let summary = rep.as_ref().map(|s| s.summary.clone()).unwrap_or_else(|| {
        // No step ran at all (cannot happen with max_steps ≥ 1); an empty summary says so.
        bench_shared::load::summarize(&[], spec.level(spec.start_level()), None, None)
    });
    let mut notes = notes(&summary, ctx.engine.kind(), true);
    if result.capacity.is_none() {
        notes.push(format!(
            "no level met the SLO ({}); the figures are the lowest step's",
            spec.slo.describe(spec.percentile)
        ));
    }
    Ok(LoadDone {
        test_type: TestType::LlmCapacity,
        model: workload.model.clone(),
        engine: ctx.engine.kind(),
        seed: workload.seed,
        notes,
        summary,
        summary_step: rep.map(|s| s.step),
        capacity: Some(result),
        ceiling_ratio: None,
    })
}

/// Caveats about a summary's figures.
fn notes(s: &bench_shared::load::LoadSummary, engine: EngineKind, slo: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if engine == EngineKind::Mock {
        notes.push("mock engine: these figures describe the mock, not a model".into());
    }
    if !slo {
        notes.push("no slo given: goodput_rps and slo_attainment_pct are not computed".into());
    }
    if s.total_tok_s.is_none() && s.requests_completed > 0 {
        notes.push("the engine reported no prompt token counts: total_tok_s is unknown".into());
    }
    if s.cached_prompt_pct.is_some_and(|p| p >= 50.0) {
        notes.push(format!(
            "the engine served {:.0}% of prompt tokens from its cache: prompt processing cost less than the workload says",
            s.cached_prompt_pct.unwrap_or(0.0)
        ));
    }
    notes
}

#[cfg(test)]
mod tests;
