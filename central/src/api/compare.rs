//! `GET /api/compare?a=RUN&b=RUN[&metric=&machine=&min_effect_pct=]`: each machine of both runs,
//! run B against run A, with the race verdict's statistics ([`bench_shared::compare::compare_runs`])
//! over the warm figures stored in each run's events. Two `llm_capacity` runs compare their
//! machines' capacities instead ([`bench_shared::compare::capacity_across`]; `metric` does not
//! apply), and two image, speech or compute runs of one kind compare each machine by that race's
//! own figures and verdict ([`bench_shared::compare::workload::compare_workload_runs`]).

use axum::Json;
use axum::extract::State;
use bench_shared::compare::capacity_across::{CapacityRun, CapacityRunsComparison, compare_capacity_runs};
use bench_shared::compare::workload::{WorkloadRun, WorkloadRunsComparison, compare_workload_runs};
use bench_shared::compare::{self, AcrossSettings, DEFAULT_MIN_EFFECT_PCT, Metric, RunInput, RunsComparison};
use bench_shared::job::MAX_MIN_EFFECT_PCT;
use bench_shared::run::RunStatus;
use serde::Serialize;

use super::ApiError;
use super::params::Params;
use crate::AppState;
use crate::runs::summary::{capacity_run, outcomes_from_events, run_input, workload_run};
use crate::store::{Store, valid_run_id};

const KNOWN: [&str; 5] = ["a", "b", "metric", "machine", "min_effect_pct"];

/// The parsed query.
#[derive(Debug, Clone, PartialEq)]
struct CompareQuery {
    a: String,
    b: String,
    settings: AcrossSettings,
    machine: Option<String>,
}

fn parse(q: &Params) -> Result<CompareQuery, ApiError> {
    q.only(&KNOWN)?;
    let run = |k: &str| -> Result<String, ApiError> {
        let v = q.text(k);
        let v = v.ok_or_else(|| ApiError::bad(k, "required: a run id (YYYY-MM-DD_HHMMSS_xxxxxx)"))?;
        if !valid_run_id(v) {
            return Err(ApiError::bad(k, format!("invalid run id {v:?}: expected YYYY-MM-DD_HHMMSS_xxxxxx")));
        }
        Ok(v.to_owned())
    };
    let (a, b) = (run("a")?, run("b")?);
    if a == b {
        return Err(ApiError::bad("b", "must differ from a: compare two runs"));
    }
    let metric = match q.text("metric") {
        None => Metric::default(),
        Some(v) => Metric::parse(v).ok_or_else(|| {
            let names: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
            ApiError::bad("metric", format!("must be one of {}, got {v:?}", names.join(", ")))
        })?,
    };
    let min_effect_pct = match q.text("min_effect_pct") {
        None => DEFAULT_MIN_EFFECT_PCT,
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && (0.0..=MAX_MIN_EFFECT_PCT).contains(x))
            .ok_or_else(|| {
                ApiError::bad("min_effect_pct", format!("must be a number from 0 to {MAX_MIN_EFFECT_PCT}, got {v:?}"))
            })?,
    };
    let machine = q.text("machine").map(str::to_owned);
    Ok(CompareQuery { a, b, settings: AcrossSettings { metric, min_effect_pct }, machine })
}

/// What a stored run contributes to a comparison.
enum Loaded {
    Text(RunInput),
    Capacity(CapacityRun),
    Workload(WorkloadRun),
}

/// The answer: a text race's comparison, or two capacity races'.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum CompareAnswer {
    Text(Box<RunsComparison>),
    Capacity(Box<CapacityRunsComparison>),
    Workload(Box<WorkloadRunsComparison>),
}

/// A stored run's comparison input; `field` names the query parameter for errors.
fn load(store: &Store, run_id: &str, field: &str) -> Result<Loaded, ApiError> {
    let meta = store.metadata(run_id).map_err(|e| match e {
        crate::store::StoreError::NotFound(_) => ApiError::NotFound(format!("{field}: no run {run_id}")),
        other => other.into(),
    })?;
    if meta.status == RunStatus::Running {
        let message = format!("{field}: run {run_id} is still running; compare it once it has ended");
        return Err(ApiError::still_running(message, Some(field), run_id));
    }
    let outcomes = outcomes_from_events(&store.events(run_id)?);
    if let Some(c) = capacity_run(&meta, &outcomes) {
        return Ok(Loaded::Capacity(c));
    }
    if let Some(w) = workload_run(&meta, &outcomes) {
        return Ok(Loaded::Workload(w));
    }
    run_input(&meta, &outcomes).map(Loaded::Text).ok_or_else(|| {
        ApiError::bad(
            field,
            format!(
                "run {run_id} is an {} run; llm_generate runs compare, and llm_capacity, image_generate, transcribe and compute runs each with their own kind",
                meta.spec.test_type().as_str()
            ),
        )
    })
}

/// `GET /api/compare`.
pub async fn runs(State(state): State<AppState>, q: Params) -> Result<Json<CompareAnswer>, ApiError> {
    let query = parse(&q)?;
    let store = state.store.clone();
    let CompareQuery { a, b, settings, machine } = query;
    let (la, lb) = super::blocking(move || Ok((load(&store, &a, "a")?, load(&store, &b, "b")?))).await?;
    let (mut ra, mut rb) = match (la, lb) {
        (Loaded::Text(ra), Loaded::Text(rb)) => (ra, rb),
        (Loaded::Capacity(mut ca), Loaded::Capacity(mut cb)) => {
            if let Some(id) = &machine {
                if !ca.machines.iter().chain(&cb.machines).any(|m| &m.machine_id == id) {
                    return Err(ApiError::bad("machine", format!("{id:?} is in neither run")));
                }
                ca.machines.retain(|m| &m.machine_id == id);
                cb.machines.retain(|m| &m.machine_id == id);
            }
            let c = compare_capacity_runs(&ca, &cb, settings.min_effect_pct);
            return Ok(Json(CompareAnswer::Capacity(Box::new(c))));
        }
        (Loaded::Workload(mut wa), Loaded::Workload(mut wb)) => {
            if wa.test_type != wb.test_type {
                let (ta, tb) = (wa.test_type.as_str(), wb.test_type.as_str());
                return Err(ApiError::bad(
                    "b",
                    format!("run a is a {ta} run and run b a {tb} run: compare runs of one kind"),
                ));
            }
            if let Some(id) = &machine {
                if !wa.machines.iter().chain(&wb.machines).any(|m| &m.machine_id == id) {
                    return Err(ApiError::bad("machine", format!("{id:?} is in neither run")));
                }
                wa.machines.retain(|m| &m.machine_id == id);
                wb.machines.retain(|m| &m.machine_id == id);
            }
            let c = compare_workload_runs(&wa, &wb, settings.min_effect_pct);
            return Ok(Json(CompareAnswer::Workload(Box::new(c))));
        }
        (Loaded::Workload(w), _) | (_, Loaded::Workload(w)) => {
            let t = w.test_type.as_str();
            return Err(ApiError::bad("b", format!("a {t} run compares only with another {t} run")));
        }
        (Loaded::Capacity(_), _) => {
            return Err(ApiError::bad("b", "run a is an llm_capacity run: compare it with another llm_capacity run"));
        }
        (_, Loaded::Capacity(_)) => {
            return Err(ApiError::bad("b", "run b is an llm_capacity run: compare it with another llm_capacity run"));
        }
    };
    if let Some(id) = machine {
        let known = ra.machines.iter().chain(&rb.machines).any(|m| m.machine_id == id);
        if !known {
            return Err(ApiError::bad("machine", format!("{id:?} is in neither run")));
        }
        ra.machines.retain(|m| m.machine_id == id);
        rb.machines.retain(|m| m.machine_id == id);
    }
    Ok(Json(CompareAnswer::Text(Box::new(compare::compare_runs(&ra, &rb, settings)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs.iter().copied())
    }

    fn field(r: Result<CompareQuery, ApiError>) -> String {
        match r {
            Err(ApiError::BadRequest { field, .. }) => field.unwrap_or_default(),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    const A: &str = "2026-01-02_030405_abcdef";
    const B: &str = "2026-01-02_030406_abcdef";

    #[test]
    fn query_fields_are_named_when_wrong() {
        assert_eq!(field(parse(&q(&[("b", B)]))), "a");
        assert_eq!(field(parse(&q(&[("a", A)]))), "b");
        assert_eq!(field(parse(&q(&[("a", "../etc"), ("b", B)]))), "a");
        assert_eq!(field(parse(&q(&[("a", A), ("b", A)]))), "b");
        assert_eq!(field(parse(&q(&[("a", A), ("b", B), ("metric", "speed")]))), "metric");
        assert_eq!(field(parse(&q(&[("a", A), ("b", B), ("min_effect_pct", "-1")]))), "min_effect_pct");
        assert_eq!(field(parse(&q(&[("a", A), ("b", B), ("min_effect_pct", "NaN")]))), "min_effect_pct");
        assert_eq!(field(parse(&q(&[("a", A), ("b", B), ("baseline", A)]))), "baseline");
        let ok = parse(&q(&[("a", A), ("b", B), ("metric", "ttft_ms"), ("min_effect_pct", "5"), ("machine", "mac")]))
            .unwrap();
        assert_eq!(ok.settings, AcrossSettings { metric: Metric::TtftMs, min_effect_pct: 5.0 });
        assert_eq!(ok.machine.as_deref(), Some("mac"));
        let default = parse(&q(&[("a", A), ("b", B)])).unwrap();
        assert_eq!(default.settings, AcrossSettings { metric: Metric::DecodeTokS, min_effect_pct: 2.0 });
    }
}
