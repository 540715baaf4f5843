//! `llm_capacity`: fixed-length load steps chosen by the search state machine
//! ([`bench_shared::load::Search`]) until it converges, `repeat` times.
//!
//! Each step has its own seed (derived from the job's seed and the step number), so no step
//! resends an earlier step's prompts (an engine's prompt cache would serve them), while every
//! machine still gets the same schedule and prompts for a given step. Repeats after the first
//! start at the first search's capacity.

use bench_shared::event::Event;
use bench_shared::load::events::SearchOutcome;
use bench_shared::load::summary::check_slo;
use bench_shared::load::{CapacityResult, CapacitySpec, CapacityStep, Search, StopReason};

use super::{Emit, LoadCtx, LoadError, step};

/// The seed of step `n`: the job's own for the first step.
pub fn step_seed(seed: u64, n: u32) -> u64 {
    if n == 0 { seed } else { bench_shared::hash::mix(bench_shared::hash::fnv1a(format!("{seed}/step{n}").as_bytes())) }
}

/// Runs the searches; publishes a `load_step` per step.
pub async fn search(ctx: &LoadCtx, spec: &CapacitySpec, emit: &Emit) -> Result<CapacityResult, LoadError> {
    let base = spec.workload();
    let mut curve = Vec::new();
    let mut searches = Vec::new();
    let mut start = spec.start_level();
    let mut n = 0u32;
    for repeat in 0..spec.repeat {
        let mut search = Search::new(spec.search, start, spec.max_level(), spec.resolution_pct, spec.max_steps);
        while let Some(level) = search.next_level() {
            let mut workload = base.clone();
            workload.seed = step_seed(base.seed, n);
            let out = step::run(ctx, &workload, spec.level(level), n, Some(level), emit).await?;
            let slo = check_slo(&out.records, &out.summary, &spec.slo, spec.percentile, spec.max_error_pct);
            search.record(level, slo.pass);
            tracing::info!(step = n, repeat, level, pass = slo.pass, reasons = ?slo.reasons, "capacity step");
            let point = CapacityStep { step: n, repeat, level, pass: slo.pass, slo, summary: out.summary };
            emit(Event::LoadStep(Box::new(point.clone())));
            curve.push(point);
            n += 1;
        }
        searches.push(SearchOutcome {
            capacity: search.capacity(),
            first_failing: search.first_failing(),
            stopped: search.stopped().unwrap_or(StopReason::MaxSteps),
            steps: search.steps(),
        });
        if repeat == 0
            && let Some(c) = search.capacity()
        {
            start = c;
        }
    }
    Ok(CapacityResult::new(spec.search, spec.slo, spec.percentile, spec.resolution_pct, searches, curve))
}
