//! What `bench-agent load` / `capacity` print: the live line (one per second) and the final
//! table, 80 columns at most. Pure functions of the events' payloads.

use bench_shared::load::events::{LoadPhase, LoadProgress};
use bench_shared::load::summary::percentile_label;
use bench_shared::load::{CapacityResult, Dist, LoadDone, LoadSummary};

/// Widest line the table prints.
pub const WIDTH: usize = 80;

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".to_owned(), |x| format!("{x:.digits$}"))
}

/// `3.2 req/s` or `4 concurrent requests` for a level.
pub fn level_text(level: f64, unit: &str) -> String {
    if unit == "req/s" { format!("{} req/s", trim(level)) } else { format!("{} {unit}", trim(level)) }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The live line: where the load is, once a second.
pub fn progress_line(p: &LoadProgress) -> String {
    let phase = match p.phase {
        LoadPhase::Warmup => "warm-up",
        LoadPhase::Measure => "measure",
        LoadPhase::Drain => "drain",
    };
    let head = match (p.step, p.level) {
        (Some(s), Some(l)) => format!("step {s} @{} ", trim(l)),
        _ => String::new(),
    };
    let line = format!(
        "{head}{phase} {:.0}s sent {} in {} ok {} err {} | {} rps | TTFT p50/99 {}/{} ms",
        p.elapsed_s,
        p.sent,
        p.in_flight,
        p.completed,
        p.errors,
        opt(p.achieved_rps.or(Some(p.throughput_rps)), 1),
        opt(p.ttft_p50_ms, 0),
        opt(p.ttft_p99_ms, 0)
    );
    line.chars().take(WIDTH).collect()
}

fn dist_row(name: &str, d: Option<&Dist>) -> String {
    match d {
        Some(d) => format!(
            "{name:<8}{:>10.1}{:>10.1}{:>10.1}{:>10.1}{:>10.1}{:>10.1}",
            d.p50, d.p90, d.p95, d.p99, d.max, d.mean
        ),
        None => format!("{name:<8}{:>10}", "—"),
    }
}

/// The figures of one load (or of the step at capacity).
pub fn summary_lines(s: &LoadSummary) -> Vec<String> {
    let mut out = vec![format!(
        "requests   {} completed, {} failed, {} warm-up excluded; window {:.1} s",
        s.requests_completed, s.requests_failed, s.warmup_requests, s.duration_s
    )];
    let offered = match (s.target_rps, s.concurrency) {
        (Some(t), Some(c)) => format!("target {t:.2} req/s (cap {c})"),
        (Some(t), None) => format!("target {t:.2} req/s"),
        (None, Some(c)) => format!("closed loop, {c} concurrent"),
        (None, None) => String::new(),
    };
    let under = match (s.under_delivered, s.under_delivered_reason) {
        (true, Some(r)) => {
            format!(" UNDER-DELIVERED ({})", serde_json::to_value(r).unwrap_or_default().as_str().unwrap_or(""))
        }
        _ => String::new(),
    };
    out.push(format!("load       {offered}, achieved {:.2} req/s{under}", s.achieved_rps));
    out.push(format!(
        "throughput {:.2} req/s, {:.1} output tok/s, {} total tok/s",
        s.request_throughput_rps,
        s.output_tok_s,
        opt(s.total_tok_s, 1)
    ));
    if s.goodput_rps.is_some() {
        out.push(format!(
            "goodput    {} req/s, SLO attainment {}%",
            opt(s.goodput_rps, 2),
            opt(s.slo_attainment_pct, 1)
        ));
    }
    let lateness = s
        .send_lateness_ms
        .map_or_else(String::new, |l| format!(", send lateness p50 {:.2} p99 {:.2} ms", l.p50, l.p99));
    out.push(format!("in flight  max {}{lateness}", s.max_in_flight));
    out.push(format!("{:<8}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}", "ms", "p50", "p90", "p95", "p99", "max", "mean"));
    out.push(dist_row("TTFT", s.ttft_ms.as_ref()));
    out.push(dist_row("TPOT", s.tpot_ms.as_ref()));
    out.push(dist_row("ITL", s.itl_ms.as_ref()));
    out.push(dist_row("E2E", s.e2e_ms.as_ref()));
    for e in &s.errors {
        out.push(format!("error ×{}: {}", e.count, e.message));
    }
    out
}

/// The curve of a capacity search, and its result.
pub fn capacity_lines(c: &CapacityResult) -> Vec<String> {
    let p = percentile_label(c.percentile);
    let mut out = vec![format!(
        "{:>4} {:>9} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "step",
        "level",
        "pass",
        "achieved",
        "req/s",
        "goodput",
        format!("{p} TTFT"),
        format!("{p} TPOT")
    )];
    for s in &c.curve {
        let at = |m: &str| s.slo.values.iter().find(|v| v.metric == m).and_then(|v| v.value_ms);
        let ttft = at("ttft_ms").or(s.summary.ttft_ms.map(|d| d.p99));
        let tpot = at("tpot_ms").or(s.summary.tpot_ms.map(|d| d.p99));
        out.push(format!(
            "{:>4} {:>9} {:>5} {:>9.2} {:>9.2} {:>9} {:>9} {:>9}",
            s.step,
            trim(s.level),
            if s.pass { "yes" } else { "no" },
            s.summary.achieved_rps,
            s.summary.request_throughput_rps,
            opt(s.summary.goodput_rps, 2),
            opt(ttft, 1),
            opt(tpot, 1)
        ));
    }
    let slo = c.slo.describe(c.percentile);
    out.push(match c.capacity {
        Some(cap) => format!("capacity   {} within {slo}", level_text(cap, &c.unit)),
        None => format!("capacity   none: no level met {slo}"),
    });
    if let Some(f) = c.first_failing {
        out.push(format!("first fail {}", level_text(f, &c.unit)));
    }
    if c.searches.len() > 1 {
        let each: Vec<String> = c.searches.iter().map(|s| opt(s.capacity, 2)).collect();
        out.push(format!("searches   {} (median above)", each.join(", ")));
    }
    out
}

/// The final table of a `load_done`.
pub fn done_table(d: &LoadDone) -> String {
    let mut lines = vec![format!("{} {} on {} (seed {})", d.test_type.as_str(), d.model, d.engine, d.seed)];
    if let Some(c) = &d.capacity {
        lines.extend(capacity_lines(c));
        if let Some(step) = d.summary_step {
            lines.push(format!("figures of step {step}:"));
        }
    }
    lines.extend(summary_lines(&d.summary));
    for n in &d.notes {
        lines.push(format!("note: {n}"));
    }
    lines.iter().flat_map(|l| wrap(l)).collect::<Vec<_>>().join("\n")
}

/// Splits a line longer than [`WIDTH`] at spaces.
fn wrap(line: &str) -> Vec<String> {
    if line.chars().count() <= WIDTH {
        return vec![line.to_owned()];
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    for word in line.split(' ') {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push(std::mem::take(&mut cur));
            cur.push_str("  ");
        } else if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_shared::engine::EngineKind;
    use bench_shared::job::TestType;
    use bench_shared::load::events::{CapacityStep, SearchOutcome};
    use bench_shared::load::summary::{SloCheck, SloValue};
    use bench_shared::load::{LoadLevel, SearchMode, Slo, StopReason, summarize};

    fn summary() -> LoadSummary {
        let mut s = summarize(&[], LoadLevel { rate_rps: Some(10.0), concurrency: Some(8) }, Some(1.0), None);
        let d = Dist { p50: 123.4, p90: 234.5, p95: 345.6, p99: 12345.6, max: 99999.9, mean: 150.0 };
        (s.ttft_ms, s.tpot_ms, s.e2e_ms, s.itl_ms) = (Some(d), Some(d), Some(d), None);
        s.goodput_rps = Some(9.5);
        s.slo_attainment_pct = Some(97.5);
        s.errors = vec![bench_shared::load::summary::ErrorCount {
            message: "engine answered HTTP 503: the server is busy, try again later; queue full".repeat(2),
            count: 3,
        }];
        s
    }

    #[test]
    fn every_line_fits_80_columns() {
        let step = CapacityStep {
            step: 11,
            repeat: 0,
            level: 1234.5,
            pass: false,
            slo: SloCheck {
                pass: false,
                values: vec![SloValue {
                    metric: "ttft_ms".into(),
                    bound_ms: 500.0,
                    value_ms: Some(123456.7),
                    met: false,
                }],
                reasons: vec![],
            },
            summary: summary(),
        };
        let slo = Slo { ttft_ms: Some(500.0), tpot_ms: Some(50.0), e2e_ms: Some(10_000.0) };
        let o = SearchOutcome {
            capacity: Some(1000.0),
            first_failing: Some(1234.5),
            stopped: StopReason::Converged,
            steps: 12,
        };
        let cap = CapacityResult::new(SearchMode::Rate, slo, 99.9, 5.0, vec![o.clone(), o], vec![step]);
        let done = LoadDone {
            test_type: TestType::LlmCapacity,
            model: "a-rather-long-model-name:70b-instruct-q4_K_M".into(),
            engine: EngineKind::Openai,
            seed: 42,
            summary: summary(),
            summary_step: Some(11),
            capacity: Some(cap),
            ceiling_ratio: None,
            notes: vec!["mock engine: these figures describe the mock, not a model".into()],
        };
        let table = done_table(&done);
        for line in table.lines() {
            assert!(line.chars().count() <= WIDTH, "{} columns: {line}", line.chars().count());
        }
        assert!(table.contains("capacity   1000 req/s within p99.9 TTFT ≤ 500 ms"), "{table}");
        assert!(table.contains("TTFT         123.4"), "{table}");
        assert!(table.contains("\n  11    1234.5    no"), "columns keep their alignment: {table}");
        assert!(table.contains("UNDER-DELIVERED") || !done.summary.under_delivered);
    }

    #[test]
    fn the_live_line_names_step_phase_and_latency() {
        let p = LoadProgress {
            step: Some(2),
            level: Some(4.0),
            phase: LoadPhase::Measure,
            elapsed_s: 3.2,
            target_rps: None,
            concurrency: Some(4),
            in_flight: 4,
            sent: 41,
            completed: 37,
            errors: 0,
            achieved_rps: Some(12.34),
            throughput_rps: 12.0,
            ttft_p50_ms: Some(31.2),
            ttft_p99_ms: Some(88.0),
            e2e_p99_ms: None,
        };
        let line = progress_line(&p);
        assert_eq!(line, "step 2 @4 measure 3s sent 41 in 4 ok 37 err 0 | 12.3 rps | TTFT p50/99 31/88 ms");
        assert!(line.chars().count() <= WIDTH);
    }
}
