use super::*;
use crate::load::events::{CapacityStep, SearchOutcome};
use crate::load::search::StopReason;
use crate::load::summary::{SloCheck, summarize};
use crate::load::{LoadLevel, RequestRecord};

fn slo() -> Slo {
    Slo { ttft_ms: Some(500.0), ..Default::default() }
}

fn step(level: f64, output_tok_s: f64) -> CapacityStep {
    let none: &[RequestRecord] = &[];
    let mut summary = summarize(none, LoadLevel { rate_rps: Some(level), concurrency: None }, Some(1.0), None);
    summary.output_tok_s = output_tok_s;
    CapacityStep {
        step: 0,
        repeat: 0,
        level,
        pass: true,
        slo: SloCheck { pass: true, values: vec![], reasons: vec![] },
        summary,
    }
}

fn machine(id: &str, caps: &[Option<f64>], mode: SearchMode) -> CapacityInput {
    let searches = caps
        .iter()
        .map(|c| SearchOutcome {
            capacity: *c,
            first_failing: c.map(|x| x * 1.05),
            stopped: StopReason::Converged,
            steps: 5,
        })
        .collect();
    CapacityInput {
        machine_id: id.into(),
        label: format!("{id} label"),
        engine: Some(EngineKind::Openai),
        fallback_reason: None,
        model: Some("m".into()),
        quantization: Some("Q4_K_M".into()),
        hostname: Some(format!("host-{id}")),
        engine_base_url: Some(format!("http://{id}:8091")),
        client_ceiling: None,
        result: CapacityResult::new(mode, slo(), 99.0, 5.0, searches, vec![step(1.0, 10.0)]),
    }
}

#[test]
fn identical_searches_decide_with_the_exact_ratio() {
    let a = machine("a", &[Some(4.0); 3], SearchMode::Concurrency);
    let b = machine("b", &[Some(2.0); 3], SearchMode::Concurrency);
    let c = compare_capacity(&[b, a], 2.0).unwrap();
    assert_eq!(c.winner.status, WinnerStatus::Decided, "{c:#?}");
    assert_eq!(c.winner.machine_id.as_deref(), Some("a"));
    let v = &c.verdicts[0];
    assert_eq!((v.ratio, v.ratio_ci, v.significant), (Some(2.0), Some([2.0, 2.0]), true));
    assert_eq!(
        v.text,
        "a label sustains 4 concurrent requests within p99 TTFT ≤ 500 ms, b label 2 concurrent requests: \
         a label serves 2.00× as much (95% CI 2.00–2.00×, 3 searches each)"
    );
    assert_eq!(c.min_effect_pct, 5.0, "the search resolution is the smallest effect that counts");
    assert_eq!(c.machines[0].geo_mean, Some(2.0));
    assert!(c.fairness.fair && c.fairness.warnings.iter().all(|w| !w.blocks));
}

#[test]
fn spread_gives_a_welch_interval_on_the_log_scale() {
    let a = machine("a", &[Some(3.0), Some(3.3), Some(3.2), Some(3.4)], SearchMode::Rate);
    let b = machine("b", &[Some(1.9), Some(2.0), Some(1.8), Some(1.95)], SearchMode::Rate);
    let c = compare_capacity(&[a.clone(), b.clone()], 2.0).unwrap();
    let v = &c.verdicts[0];
    let (la, lb): (Vec<f64>, Vec<f64>) = (a.logs().unwrap(), b.logs().unwrap());
    let (sa, sb) = (Sample::of(&la).unwrap(), Sample::of(&lb).unwrap());
    let w = welch(&sa, &sb, 0.95).unwrap();
    assert!((v.ratio.unwrap() - w.diff.exp()).abs() < 1e-12);
    let [lo, hi] = v.ratio_ci.unwrap();
    assert!((lo - w.lo.exp()).abs() < 1e-12 && (hi - w.hi.exp()).abs() < 1e-12);
    assert!(lo > 1.0 && v.significant, "{v:?}");
    assert!(v.text.contains("a label serves 1.") && v.text.contains("(95% CI "), "{}", v.text);
    // Three machines: Bonferroni.
    let c3 = compare_capacity(&[a, b.clone(), machine("c", &[Some(1.0); 3], SearchMode::Rate)], 2.0).unwrap();
    assert!((c3.confidence - 0.975).abs() < 1e-12);
    assert_eq!(c3.verdicts.len(), 2);
}

#[test]
fn ties_too_few_searches_and_nothing_passing() {
    let same = compare_capacity(
        &[
            machine("a", &[Some(4.0); 3], SearchMode::Concurrency),
            machine("b", &[Some(4.0); 3], SearchMode::Concurrency),
        ],
        2.0,
    )
    .unwrap();
    assert_eq!(same.winner.status, WinnerStatus::Tie, "{:?}", same.winner);
    // The reason quotes the verdict once, without saying "no significant difference" twice.
    let reason = &same.winner.reason;
    assert!(reason.starts_with("tie at the top: no significant difference in capacity between"), "{reason}");
    assert_eq!(reason.matches("no significant difference").count(), 1, "{reason}");
    let few = compare_capacity(
        &[machine("a", &[Some(4.0)], SearchMode::Concurrency), machine("b", &[Some(2.0)], SearchMode::Concurrency)],
        2.0,
    )
    .unwrap();
    assert_eq!(few.winner.status, WinnerStatus::Undecided);
    assert!(few.verdicts[0].text.ends_with("run repeat ≥ 3"), "{}", few.verdicts[0].text);
    let none = compare_capacity(
        &[machine("a", &[Some(2.0); 3], SearchMode::Rate), machine("b", &[None, None, None], SearchMode::Rate)],
        2.0,
    )
    .unwrap();
    assert_eq!(none.winner.status, WinnerStatus::Decided);
    assert!(none.verdicts[0].text.contains("b label met it at no level tried"), "{}", none.verdicts[0].text);
    let one = compare_capacity(&[machine("a", &[Some(2.0); 3], SearchMode::Rate)], 2.0).unwrap();
    assert_eq!(one.winner.status, WinnerStatus::Undecided);
    assert!(compare_capacity(&[], 2.0).is_none());
}

#[test]
fn fairness_warnings_block_or_inform() {
    let a = machine("a", &[Some(4.0); 3], SearchMode::Rate);
    let b = machine("b", &[Some(2.0); 3], SearchMode::Rate);
    let kinds = |ms: &[CapacityInput]| {
        let c = compare_capacity(ms, 2.0).unwrap();
        (c.winner.status, c.fairness.warnings.iter().map(|w| (w.kind, w.blocks)).collect::<Vec<_>>())
    };
    let mut mock = b.clone();
    mock.engine = Some(EngineKind::Mock);
    assert_eq!(kinds(&[a.clone(), mock]), (WinnerStatus::Unfair, vec![(CapacityWarningKind::MockEngine, true)]));
    let mut q8 = b.clone();
    q8.quantization = Some("Q8_0".into());
    assert_eq!(kinds(&[a.clone(), q8]), (WinnerStatus::Unfair, vec![(CapacityWarningKind::ModelMismatch, true)]));
    let (mut h1, mut h2) = (a.clone(), b.clone());
    h1.hostname = Some("box".into());
    h2.hostname = Some("box".into());
    let (status, w) = kinds(&[h1.clone(), h2.clone()]);
    assert_eq!(
        (status, w[0]),
        (WinnerStatus::Decided, (CapacityWarningKind::SharedHost, false)),
        "two engines on one host: told, not blocked"
    );
    h2.engine_base_url = h1.engine_base_url.clone();
    assert_eq!(kinds(&[h1, h2]).0, WinnerStatus::Unfair, "one engine served both");
    let mut late = b.clone();
    late.result.curve[0].summary.under_delivered = true;
    late.result.curve[0].summary.under_delivered_reason = Some(UnderDeliveredReason::SchedulerLateness);
    assert_eq!(
        kinds(&[a.clone(), late.clone()]),
        (WinnerStatus::Unfair, vec![(CapacityWarningKind::UnderDelivered, true)])
    );
    late.result.curve[0].summary.under_delivered_reason = Some(UnderDeliveredReason::ConcurrencyCap);
    assert_eq!(kinds(&[a.clone(), late]).1, vec![(CapacityWarningKind::UnderDelivered, false)]);
    let mut ceiling = b.clone();
    ceiling.client_ceiling = Some(ClientCeiling {
        tok_s: 15.0,
        events_per_s: 15.0,
        ttft_floor_ms: 0.1,
        measured_at: "t".into(),
        kind: crate::api::CeilingKind::Quick,
        requests: 1,
        tokens: 1,
        duration_s: 1.0,
    });
    assert_eq!(kinds(&[a.clone(), ceiling]), (WinnerStatus::Unfair, vec![(CapacityWarningKind::ClientCeiling, true)]));
    let mut cached = b;
    cached.result.curve[0].summary.cached_prompt_pct = Some(80.0);
    let mut plain = a;
    plain.result.curve[0].summary.cached_prompt_pct = Some(2.0);
    assert_eq!(kinds(&[plain, cached]).1, vec![(CapacityWarningKind::PromptCache, true)]);
}
