use super::*;
use crate::metrics::TokenSource;

fn req(decode: f64) -> RequestMetrics {
    RequestMetrics {
        ttft_ms: Some(100.0),
        ttfc_ms: Some(100.0),
        total_ms: 100.0 + 1000.0 * 20.0 / decode,
        gen_tokens: 21,
        token_source: TokenSource::Engine,
        chunks: 21,
        decode_tok_s: Some(decode),
        gen_tokens_per_s: Some(21.0 / (20.0 / decode)),
        engine_decode_tok_s: Some(decode),
        prompt_tokens: Some(30),
        cached_prompt_tokens: None,
        reasoning_tokens: None,
        engine_prefill_tok_s: Some(300.0),
        client_prefill_tok_s: Some(300.0),
        load_ms: None,
        load_source: None,
        engine_total_ms: None,
        engine_prompt_eval_ms: None,
        engine_eval_ms: None,
        itl_ms: None,
        done_reason: Some("length".into()),
        energy_j: None,
        tokens_per_j: None,
        energy_source: None,
        energy_unavailable: None,
        throttled: None,
    }
}

fn machine(id: &str, decodes: &[f64]) -> MachineInput {
    MachineInput {
        machine_id: id.into(),
        label: id.into(),
        engine: Some(EngineKind::Ollama),
        model: Some("m".into()),
        hostname: Some(format!("host-{id}")),
        requests: decodes.iter().map(|d| req(*d)).collect(),
        output_text: Some("same".into()),
        ..Default::default()
    }
}

fn settings() -> Settings {
    Settings { rank_by: Metric::DecodeTokS, min_effect_pct: 2.0, temperature: 0.0 }
}

fn kinds(c: &Comparison) -> Vec<WarningKind> {
    c.fairness.warnings.iter().map(|w| w.kind).collect()
}

fn rank_verdict(c: &Comparison) -> &Verdict {
    c.verdicts.iter().find(|v| v.metric == c.rank_by).unwrap()
}

#[test]
fn ten_percent_faster_is_decided_with_the_hand_computed_interval() {
    // fast: mean 110, var 2.5; slow: mean 100, var 2.5 → diff 10 ± 2.306 (Welch df 8), i.e.
    // 10% of the slow mean with a 95% CI of 7.694–12.306%.
    let c = compare(
        &[machine("fast", &[110.0, 112.0, 108.0, 111.0, 109.0]), machine("slow", &[100.0, 101.0, 99.0, 102.0, 98.0])],
        settings(),
    );
    let v = rank_verdict(&c);
    assert_eq!((v.better.as_str(), v.worse.as_str(), v.n), ("fast", "slow", [5, 5]));
    assert!((v.diff_pct - 10.0).abs() < 1e-9);
    let [lo, hi] = v.ci95_pct.unwrap();
    assert!((lo - 7.694).abs() < 1e-3 && (hi - 12.306).abs() < 1e-3, "{lo} {hi}");
    assert!(v.significant);
    assert_eq!(v.text, "fast decodes 10.0% faster than slow (95% CI 7.7–12.3%, 5 repeats each)");
    assert_eq!(c.winner.status, WinnerStatus::Decided);
    assert_eq!(c.winner.machine_id.as_deref(), Some("fast"));
    assert!(c.fairness.fair && c.fairness.warnings.is_empty(), "{:?}", c.fairness);
    let stats = c.metrics.iter().find(|m| m.metric == Metric::DecodeTokS).unwrap();
    assert_eq!(stats.leader.as_deref(), Some("fast"));
    assert_eq!(stats.source, Some(Source::Client));
    assert_eq!(stats.machines[0].n, 5);
    // Lower is better for times: slow's total time is longer, and fast "finishes sooner".
    let t = c.verdicts.iter().find(|v| v.metric == Metric::TotalMs).unwrap();
    assert_eq!(t.better, "fast");
    assert!(t.diff_pct > 0.0 && t.text.contains("finishes"), "{}", t.text);
    assert!(c.outputs.compared && c.outputs.identical_groups.len() == 1);
}

#[test]
fn identical_machines_tie_and_tiny_consistent_differences_are_below_the_minimum_effect() {
    let c = compare(&[machine("a", &[50.0, 51.0, 49.0]), machine("b", &[50.0, 49.0, 51.0])], settings());
    assert_eq!(c.winner.status, WinnerStatus::Tie, "{:?}", c.winner);
    assert!(c.winner.machine_id.is_none());
    assert!(c.winner.reason.contains("no significant difference"), "{}", c.winner.reason);
    // 1% apart with no noise: the interval excludes 0, but 1% < 2% minimum effect.
    let c = compare(&[machine("a", &[101.0, 101.0, 101.0]), machine("b", &[100.0, 100.0, 100.0])], settings());
    let v = rank_verdict(&c);
    assert_eq!(v.ci95_pct, Some([1.0, 1.0]));
    assert!(!v.significant && v.text.contains("below the 2% minimum effect"), "{}", v.text);
    assert_eq!(c.winner.status, WinnerStatus::Tie);
}

#[test]
fn too_few_repeats_or_one_finisher_is_undecided() {
    let c = compare(&[machine("a", &[70.0]), machine("b", &[66.7])], settings());
    assert_eq!(c.winner.status, WinnerStatus::Undecided);
    assert!(
        c.winner.reason.contains("a has 1 warm repeat") && c.winner.reason.contains("run ≥ 3"),
        "{}",
        c.winner.reason
    );
    let v = rank_verdict(&c);
    assert!(!v.significant && v.ci95_pct.is_none() && v.text.contains("too few repeats"), "{}", v.text);
    let c = compare(&[machine("a", &[70.0, 71.0, 72.0])], settings());
    assert_eq!(c.winner.status, WinnerStatus::Undecided);
    assert!(c.winner.reason.contains("only a finished"));
}

#[test]
fn three_machines_use_bonferroni() {
    let c = compare(
        &[machine("a", &[110.0, 112.0, 108.0]), machine("b", &[100.0, 101.0, 99.0]), machine("c", &[90.0, 91.0, 89.0])],
        settings(),
    );
    assert!((c.confidence - 0.975).abs() < 1e-12);
    let v = rank_verdict(&c);
    assert!(v.text.contains("97.5% CI"), "{}", v.text);
    assert_eq!(c.verdicts.iter().filter(|v| v.metric == Metric::DecodeTokS).count(), 2);
    assert_eq!(c.winner.machine_id.as_deref(), Some("a"));
}

#[test]
fn rank_by_a_time_metric_picks_the_lowest() {
    let mut fast = machine("fast", &[100.0; 3]);
    let mut slow = machine("slow", &[100.0; 3]);
    for (r, t) in fast.requests.iter_mut().zip([50.0, 52.0, 48.0]) {
        r.ttft_ms = Some(t);
    }
    for (r, t) in slow.requests.iter_mut().zip([100.0, 102.0, 98.0]) {
        r.ttft_ms = Some(t);
    }
    let c = compare(&[slow, fast], Settings { rank_by: Metric::TtftMs, ..settings() });
    assert_eq!(c.winner.machine_id.as_deref(), Some("fast"));
    assert!((rank_verdict(&c).diff_pct - 50.0).abs() < 1e-9);
}

#[test]
fn non_streamed_races_use_engine_rates() {
    let mut a = machine("a", &[110.0, 111.0, 109.0]);
    let mut b = machine("b", &[100.0, 101.0, 99.0]);
    for r in a.requests.iter_mut().chain(b.requests.iter_mut()) {
        r.decode_tok_s = None;
        r.ttft_ms = None;
    }
    let c = compare(&[a, b], settings());
    let stats = c.metrics.iter().find(|m| m.metric == Metric::DecodeTokS).unwrap();
    assert_eq!(stats.source, Some(Source::Engine));
    assert_eq!(c.winner.machine_id.as_deref(), Some("a"));
}

// ---- each warning kind: raised by its condition, and not otherwise ----

fn base() -> [MachineInput; 2] {
    [machine("a", &[110.0, 111.0, 109.0]), machine("b", &[100.0, 101.0, 99.0])]
}

fn only(c: &Comparison, kind: WarningKind) -> &Warning {
    assert_eq!(kinds(c), vec![kind], "{:?}", c.fairness.warnings);
    &c.fairness.warnings[0]
}

#[test]
fn no_warning_on_a_clean_race() {
    assert!(kinds(&compare(&base(), settings())).is_empty());
}

#[test]
fn cold_start_is_reported_apart() {
    let mut m = base();
    m[1].requests[0].load_ms = Some(300.0);
    m[0].requests[0].load_ms = Some(1.0);
    let c = compare(&m, settings());
    let w = only(&c, WarningKind::ColdStart);
    assert_eq!(w.machine_id.as_deref(), Some("b"));
    assert!(w.affects.is_empty());
    assert_eq!(c.cold.len(), 1);
    assert_eq!(c.cold[0].load_ms, Some(300.0));
    assert_eq!(rank_verdict(&c).n, [3, 2], "the cold repeat is out of the warm statistics");
    // Every machine cold: nobody was favoured, no warning (cold repeats still apart).
    m[0].requests[0].load_ms = Some(250.0);
    let c = compare(&m, settings());
    assert!(kinds(&c).is_empty());
    assert_eq!(c.cold.len(), 2);
}

#[test]
fn prompt_cache_beyond_the_shared_prefix() {
    let mut m = base();
    // A fresh engine caches nothing on its first request, then the 20-token template prefix.
    for r in m.iter_mut().flat_map(|m| m.requests.iter_mut()) {
        r.cached_prompt_tokens = Some(20);
    }
    m[1].requests[0].cached_prompt_tokens = Some(0);
    assert!(kinds(&compare(&m, settings())).is_empty());
    m[1].requests[2].cached_prompt_tokens = Some(26); // 86.7%: not the whole prompt
    assert!(kinds(&compare(&m, settings())).is_empty());
    m[1].requests[2].cached_prompt_tokens = Some(29);
    let c = compare(&m, settings());
    let w = only(&c, WarningKind::PromptCache);
    assert_eq!(w.machine_id.as_deref(), Some("b"));
    assert!(w.detail.contains("29 of 30"), "{}", w.detail);
    assert!(w.affects.contains(&Metric::TtftMs) && !w.affects.contains(&Metric::DecodeTokS));
    assert!(!c.fairness.fair);
    assert_eq!(c.winner.status, WinnerStatus::Decided, "decode rate is not affected");
    let ttft = c.verdicts.iter().find(|v| v.metric == Metric::TtftMs).unwrap();
    assert!(!ttft.significant && ttft.text.contains("prompt_cache on b"), "{}", ttft.text);
}

#[test]
fn output_length_and_stop_reason() {
    let mut m = base();
    for r in &mut m[1].requests {
        r.gen_tokens = 19; // 9.5% shorter: within 10%
    }
    assert!(kinds(&compare(&m, settings())).is_empty());
    for r in &mut m[1].requests {
        r.gen_tokens = 18;
    }
    let c = compare(&m, settings());
    assert_eq!(only(&c, WarningKind::OutputLength).affects, vec![Metric::TotalMs]);
    let mut m = base();
    for r in &mut m[0].requests {
        r.done_reason = Some("stop".into());
    }
    let m3 = [m[0].clone(), m[1].clone(), machine("c", &[90.0, 91.0, 89.0])];
    let c = compare(&m3, settings());
    assert_eq!(only(&c, WarningKind::OutputLength).machine_id.as_deref(), Some("a"));
}

#[test]
fn prompt_mismatch_for_the_same_model() {
    let mut m = base();
    m[1].model = Some("other".into());
    m[1].requests.iter_mut().for_each(|r| r.prompt_tokens = Some(40));
    assert!(kinds(&compare(&m, settings())).is_empty(), "different models count differently");
    m[1].model = Some("m".into());
    let c = compare(&m, settings());
    assert_eq!(only(&c, WarningKind::PromptMismatch).machine_id.as_deref(), Some("b"), "tie: first seen is usual");
}

#[test]
fn settings_mismatch_on_context_length() {
    let mut m = base();
    m[0].context_length = Some(4096);
    m[1].context_length = Some(4096);
    assert!(kinds(&compare(&m, settings())).is_empty());
    m[1].context_length = Some(2048);
    let c = compare(&m, settings());
    assert_eq!(only(&c, WarningKind::SettingsMismatch).affects, Metric::ALL.to_vec());
    assert_eq!(c.winner.status, WinnerStatus::Unfair);
    assert!(c.winner.reason.contains("settings_mismatch"), "{}", c.winner.reason);
}

#[test]
fn start_lag_over_fifty_ms() {
    let mut m = base();
    m[0].start_lag_ms = Some(49.0);
    assert!(kinds(&compare(&m, settings())).is_empty());
    m[0].start_lag_ms = Some(400.0);
    let c = compare(&m, settings());
    assert!(only(&c, WarningKind::StartLag).detail.contains("400 ms"));
}

#[test]
fn mock_engine_blocks_only_against_a_real_engine() {
    let mut m = base();
    m[0].engine = Some(EngineKind::Mock);
    let c = compare(&m, settings());
    assert_eq!(only(&c, WarningKind::MockEngine).affects, Metric::ALL.to_vec());
    assert_eq!(c.winner.status, WinnerStatus::Unfair);
    m[1].engine = Some(EngineKind::Mock);
    let c = compare(&m, settings());
    assert!(c.fairness.warnings.iter().all(|w| w.kind == WarningKind::MockEngine && w.affects.is_empty()));
    assert_eq!(c.winner.status, WinnerStatus::Decided);
    let mut m = base();
    m[1].fallback_reason = Some("ollama down".into());
    assert!(only(&compare(&m, settings()), WarningKind::MockEngine).detail.contains("fallback"));
}

#[test]
fn engine_client_disagreement_over_five_percent() {
    let mut m = base();
    m[0].requests.iter_mut().for_each(|r| r.engine_decode_tok_s = r.decode_tok_s.map(|d| d * 1.04));
    assert!(kinds(&compare(&m, settings())).is_empty());
    m[0].requests.iter_mut().for_each(|r| r.engine_decode_tok_s = r.decode_tok_s.map(|d| d * 1.2));
    let c = compare(&m, settings());
    assert_eq!(only(&c, WarningKind::EngineClientDisagreement).affects, vec![Metric::DecodeTokS]);
    assert_eq!(c.winner.status, WinnerStatus::Unfair);
    // The same offset on every machine (an engine that times its loop differently): flagged,
    // but client figures still compare.
    m[1].requests.iter_mut().for_each(|r| r.engine_decode_tok_s = r.decode_tok_s.map(|d| d * 1.2));
    let c = compare(&m, settings());
    assert_eq!(kinds(&c), vec![WarningKind::EngineClientDisagreement; 2]);
    assert!(c.fairness.warnings.iter().all(|w| w.affects.is_empty()));
    assert_eq!(c.winner.status, WinnerStatus::Decided);
}

#[test]
fn shared_host_is_informational() {
    let mut m = base();
    m[1].hostname = Some("host-a".into());
    let c = compare(&m, settings());
    assert_eq!(kinds(&c), vec![WarningKind::SharedHost, WarningKind::SharedHost]);
    assert!(c.fairness.fair);
    assert_eq!(c.winner.status, WinnerStatus::Decided);
    // Different engines on one host compete for it; one engine shared by both agents is a
    // race of an engine against itself.
    m[0].engine_base_url = Some("http://127.0.0.1:11434".into());
    m[1].engine_base_url = Some("http://127.0.0.1:11435".into());
    assert!(compare(&m, settings()).fairness.fair);
    m[1].engine_base_url = Some("http://127.0.0.1:11434".into());
    let c = compare(&m, settings());
    assert!(c.fairness.warnings.iter().all(|w| w.kind == WarningKind::SharedHost && w.affects == Metric::ALL));
    assert_eq!(c.winner.status, WinnerStatus::Unfair);
    // The same URL on different hosts is two engines.
    m[1].hostname = Some("host-b".into());
    assert!(kinds(&compare(&m, settings())).is_empty());
}

#[test]
fn drift_over_ten_percent() {
    let mut m = base();
    m[0] = machine("a", &[110.0, 110.0, 105.0, 105.0, 100.0, 100.0]); // −9.1%
    assert!(kinds(&compare(&m, settings())).is_empty());
    m[0] = machine("a", &[120.0, 110.0, 100.0, 95.0, 90.0]); // falling, but fewer than 6 repeats
    assert!(kinds(&compare(&m, settings())).is_empty());
    m[0] = machine("a", &[120.0, 110.0, 100.0, 110.0, 105.0, 100.0]); // thirds 115 → 102.5: −10.9%
    let c = compare(&m, settings());
    assert_eq!(only(&c, WarningKind::Drift).machine_id.as_deref(), Some("a"));
}

#[test]
fn outputs_group_and_locate_the_divergence() {
    let mut m = [machine("a", &[1.0]), machine("b", &[1.0]), machine("c", &[1.0])];
    m[0].output_text = Some("One, two, three".into());
    m[1].output_text = Some("One, two, three".into());
    m[2].output_text = Some("One, two, four".into());
    let o = compare(&m, settings()).outputs;
    assert!(o.compared);
    assert_eq!(o.identical_groups, vec![vec!["a".to_string(), "b".into()], vec!["c".to_string()]]);
    let d = o.first_divergence.unwrap();
    assert_eq!(d.char_index, 10);
    assert_eq!(d.excerpts, ["three".to_string(), "four".into()]);
    let o = compare(&m, Settings { temperature: 0.7, ..settings() }).outputs;
    assert!(!o.compared && o.reason.is_some());
}

#[test]
fn throttling_is_raised_only_by_a_throttled_warm_repeat() {
    let mut a = machine("a", &[50.0, 50.0, 50.0]);
    let b = machine("b", &[40.0, 40.0, 40.0]);
    let c = compare(&[a.clone(), b.clone()], settings());
    assert!(c.fairness.warnings.iter().all(|w| w.kind != WarningKind::Throttled));
    a.requests[1].throttled = Some(true);
    let c = compare(&[a, b], settings());
    let w = only(&c, WarningKind::Throttled);
    assert_eq!((w.machine_id.as_deref(), w.affects.clone()), (Some("a"), Metric::ALL.to_vec()));
    assert!(!c.fairness.fair);
    assert_eq!(c.winner.status, WinnerStatus::Unfair);
}

#[test]
fn tokens_per_joule_is_compared_where_energy_was_measured() {
    let mut a = machine("a", &[50.0, 50.0, 50.0]);
    let mut b = machine("b", &[50.0, 50.0, 50.0]);
    for (r, j) in a.requests.iter_mut().zip([10.0, 10.2, 9.8]) {
        r.tokens_per_j = Some(j);
    }
    for (r, j) in b.requests.iter_mut().zip([5.0, 5.1, 4.9]) {
        r.tokens_per_j = Some(j);
    }
    let c = compare(&[a, b], settings());
    let v = c.verdicts.iter().find(|v| v.metric == Metric::TokensPerJ).expect("a tokens_per_j verdict");
    assert_eq!((v.better.as_str(), v.significant), ("a", true));
    assert!((v.diff_pct - 100.0).abs() < 1e-9, "{}", v.diff_pct);
    // Without energy readings there is no verdict on it, and no made-up value.
    let c = compare(&[machine("a", &[50.0; 3]), machine("b", &[40.0; 3])], settings());
    assert!(c.verdicts.iter().all(|v| v.metric != Metric::TokensPerJ));
}

#[test]
fn an_original_agent_beside_ours_blocks_token_rates_but_not_times() {
    let mut m = base();
    m[0].protocol = crate::api::Protocol::Original;
    // Its TTFT is clearly better: still decided on TTFT, with the warning shown.
    m[0].requests.iter_mut().for_each(|r| r.ttft_ms = Some(50.0));
    let c = compare(&m, Settings { rank_by: Metric::TtftMs, ..settings() });
    let w = only(&c, WarningKind::MeasurementMismatch);
    assert_eq!(w.affects, fairness::WORD_COUNTED.to_vec());
    assert!(w.detail.contains("counts words, not tokens"), "{}", w.detail);
    assert_eq!(c.winner.status, WinnerStatus::Decided, "{:?}", c.winner);
    // Ranked on decode rate, the pair is not comparable.
    let c = compare(&m, settings());
    assert_eq!(c.winner.status, WinnerStatus::Unfair);
    // Original agents among themselves: informational.
    m[1].protocol = crate::api::Protocol::Original;
    let c = compare(&m, settings());
    assert!(c.fairness.warnings.iter().all(|w| w.kind == WarningKind::MeasurementMismatch && w.affects.is_empty()));
    assert_eq!(c.winner.status, WinnerStatus::Decided);
}

#[test]
fn output_length_compares_like_counts_and_ignores_unknown_stop_reasons() {
    let mut m = base();
    // An original agent's 8 words beside 21 tokens: not an output-length difference.
    m[0].protocol = crate::api::Protocol::Original;
    m[0].requests.iter_mut().for_each(|r| {
        r.gen_tokens = 8;
        r.token_source = TokenSource::Words;
        r.done_reason = None;
    });
    let c = compare(&m, settings());
    assert!(!kinds(&c).contains(&WarningKind::OutputLength), "{:?}", c.fairness.warnings);
    // Among native machines a short answer still warns.
    let mut m = base();
    m[0].requests.iter_mut().for_each(|r| r.gen_tokens = 10);
    assert_eq!(only(&compare(&m, settings()), WarningKind::OutputLength).affects, vec![Metric::TotalMs]);
}
