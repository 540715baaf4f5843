use super::*;
use crate::metrics::TokenSource;
use stats::Sample;

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
fn ten_percent_faster_is_decided_with_the_hand_computed_ratio_interval() {
    // On the log scale (computed apart with mpmath): ln fast − ln slow = ln 1.100019, Welch
    // df 7.928, t(0.975) 2.30964 → ratio 1.100019 with a 95% CI of 1.076003–1.124571.
    let c = compare(
        &[machine("fast", &[110.0, 112.0, 108.0, 111.0, 109.0]), machine("slow", &[100.0, 101.0, 99.0, 102.0, 98.0])],
        settings(),
    );
    let v = rank_verdict(&c);
    assert_eq!((v.better.as_str(), v.worse.as_str(), v.n), ("fast", "slow", [5, 5]));
    assert!((v.ratio.unwrap() - 1.100_019_097).abs() < 1e-8, "{v:?}");
    let [lo, hi] = v.ratio_ci.unwrap();
    assert!((lo - 1.076_003_140).abs() < 1e-6 && (hi - 1.124_571_081).abs() < 1e-6, "{lo} {hi}");
    // The percent fields say the same: 100·(ratio − 1).
    assert!((v.diff_pct - 10.001_909_7).abs() < 1e-6);
    let [plo, phi] = v.ci95_pct.unwrap();
    assert!((plo - 7.600_314).abs() < 1e-4 && (phi - 12.457_108).abs() < 1e-4, "{plo} {phi}");
    assert!(v.significant);
    assert_eq!(v.repeats_needed, None, "a settled verdict needs no more repeats");
    assert_eq!(v.text, "fast decodes 1.10× as fast as slow (95% CI 1.08–1.12×, 5 repeats each)");
    assert_eq!(c.winner.status, WinnerStatus::Decided);
    assert_eq!(c.winner.machine_id.as_deref(), Some("fast"));
    assert_eq!(c.winner.repeats_needed, None);
    assert!(c.fairness.fair && c.fairness.warnings.is_empty(), "{:?}", c.fairness);
    let stats = c.metrics.iter().find(|m| m.metric == Metric::DecodeTokS).unwrap();
    assert_eq!(stats.leader.as_deref(), Some("fast"));
    assert_eq!(stats.source, Some(Source::Client));
    assert_eq!(stats.machines[0].n, 5);
    // Lower is better for times: slow's total time is longer, and fast "finishes" faster, with
    // the ratio still ≥ 1 (worse time ÷ better time).
    let t = c.verdicts.iter().find(|v| v.metric == Metric::TotalMs).unwrap();
    assert_eq!(t.better, "fast");
    assert!(t.ratio.unwrap() > 1.0 && t.diff_pct > 0.0 && t.text.contains("finishes"), "{}", t.text);
    assert!(c.outputs.compared && c.outputs.identical_groups.len() == 1);
}

#[test]
fn three_noisy_repeats_keep_every_bound_positive() {
    // n = 3 with a large spread (values computed apart with mpmath): Welch on the raw values
    // would say −3397.7–5664.3% of the worse mean; on the log scale: ratio 3.466806, df 2.0914,
    // t 4.127310, 95% CI 0.013487–891.1087×.
    let c = compare(&[machine("wild", &[10.0, 100.0, 1000.0]), machine("calm", &[20.0, 30.0, 40.0])], settings());
    let v = rank_verdict(&c);
    assert_eq!((v.better.as_str(), v.worse.as_str()), ("wild", "calm"));
    assert!((v.ratio.unwrap() - 3.466_806_37).abs() < 1e-6, "{v:?}");
    let [lo, hi] = v.ratio_ci.unwrap();
    assert!((lo - 0.013_487_407).abs() < 1e-7 && (hi - 891.108_747).abs() < 1e-3, "{lo} {hi}");
    let [plo, _] = v.ci95_pct.unwrap();
    assert!(plo > -100.0 && (plo - (100.0 * (lo - 1.0))).abs() < 1e-9, "{plo}");
    assert!(!v.significant);
    assert!(
        v.text.starts_with(
            "wild decodes 3.47× as fast as calm (95% CI 0.0135–891×, 3 repeats each): no significant difference"
        ),
        "{}",
        v.text
    );
    // Each machine's interval of its (geometric) mean stays above 0 too: 10, 100, 1000 has a
    // geometric mean of 100 and a t interval of ln x of ±4.303·2.3026/√3.
    let stats = c.metrics.iter().find(|m| m.metric == Metric::DecodeTokS).unwrap();
    let wild = &stats.machines[0];
    assert!((wild.geomean.unwrap() - 100.0).abs() < 1e-9 && (wild.mean.unwrap() - 370.0).abs() < 1e-9);
    let [glo, ghi] = wild.ci95.unwrap();
    // sd of (ln 10, ln 100, ln 1000) is ln 10; t(0.975, 2) = 4.30265273.
    let half = 4.302_652_73 * 10f64.ln() / 3f64.sqrt();
    let (want_lo, want_hi) = ((100f64.ln() - half).exp(), (100f64.ln() + half).exp());
    assert!((glo / want_lo - 1.0).abs() < 1e-7 && (ghi / want_hi - 1.0).abs() < 1e-7, "{glo} {ghi}");
    assert!(glo > 0.0);
    // The card example of the issue: 10, 60, 130 tok/s — arithmetic 66.7 (95% CI −83.1–216.4),
    // on the log scale 42.73 (95% CI 1.626–1122.5).
    let c = compare(&[machine("a", &[10.0, 60.0, 130.0]), machine("b", &[40.0, 41.0, 42.0])], settings());
    let a = &c.metrics.iter().find(|m| m.metric == Metric::DecodeTokS).unwrap().machines[0];
    let [lo, hi] = a.ci95.unwrap();
    assert!((a.geomean.unwrap() - 42.726_587).abs() < 1e-5, "{a:?}");
    assert!((lo - 1.626_315).abs() < 1e-5 && (hi - 1_122.513_659).abs() < 1e-3, "{a:?}");
}

#[test]
fn an_open_tie_says_how_many_repeats_would_settle_it() {
    let c = compare(&[machine("a", &[50.0, 51.0, 49.0]), machine("b", &[50.0, 49.5, 50.5])], settings());
    assert_eq!(c.winner.status, WinnerStatus::Tie, "{:?}", c.winner);
    assert!(c.winner.machine_id.is_none());
    let v = rank_verdict(&c);
    let k = v.repeats_needed.expect("an open interval needs more repeats");
    // The advice is the fewest repeats each for Welch's interval of the log difference to be no
    // wider than ± half the minimum effect, at the spreads seen.
    let logs = |ms: &[f64]| Sample::of_logs(ms).unwrap();
    let (la, lb) = (logs(&[50.0, 51.0, 49.0]), logs(&[50.0, 49.5, 50.5]));
    let half = 1.02f64.ln() / 2.0;
    assert!(stats::welch_half_width(la.sd, lb.sd, k, c.confidence) <= half, "{k}");
    assert!(stats::welch_half_width(la.sd, lb.sd, k - 1, c.confidence) > half, "{k}");
    assert!(
        v.text.contains(&format!("about {} repeats each would settle a 2% difference", crate::fmt::count_text(k))),
        "{}",
        v.text
    );
    assert_eq!(c.winner.repeats_needed, Some(k));
    // The reason says it once: "tie on …: <the verdict>", not "no significant difference" twice.
    assert!(
        c.winner.reason.starts_with("tie on decode_tok_s: b decodes")
            || c.winner.reason.starts_with("tie on decode_tok_s: a decodes"),
        "{}",
        c.winner.reason
    );
    assert_eq!(c.winner.reason.matches("no significant difference").count(), 1, "{}", c.winner.reason);
}

#[test]
fn identical_machines_tie_and_tiny_consistent_differences_are_below_the_minimum_effect() {
    let c = compare(&[machine("a", &[50.0, 50.0, 50.0]), machine("b", &[50.0, 50.0, 50.0])], settings());
    assert_eq!(c.winner.status, WinnerStatus::Tie, "{:?}", c.winner);
    assert_eq!(c.winner.repeats_needed, None, "no difference and no spread: settled");
    assert!(rank_verdict(&c).text.contains("within the ±2% minimum effect — a tie"), "{}", rank_verdict(&c).text);
    // 1% apart with no noise: the interval excludes 1, but 1% < 2% minimum effect.
    let c = compare(&[machine("a", &[101.0, 101.0, 101.0]), machine("b", &[100.0, 100.0, 100.0])], settings());
    let v = rank_verdict(&c);
    let [lo, hi] = v.ci95_pct.unwrap();
    assert!((lo - 1.0).abs() < 1e-9 && (hi - 1.0).abs() < 1e-9, "{lo} {hi}");
    assert_eq!(v.ratio_ci.map(|[lo, hi]| ((lo * 1e9).round(), (hi * 1e9).round())), Some((1.01e9, 1.01e9)));
    assert!(!v.significant && v.text.contains("below the 2% minimum effect, a tie"), "{}", v.text);
    assert_eq!(v.repeats_needed, None);
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
    assert!(v.ratio_ci.is_none() && v.ratio.is_some());
    assert_eq!((v.repeats_needed, c.winner.repeats_needed), (Some(MIN_REPEATS), Some(MIN_REPEATS)));
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
    // Worse ÷ better: the slow machine takes 2.0008× as long (geometric means).
    let v = rank_verdict(&c);
    assert!((v.ratio.unwrap() - 2.000_800_961).abs() < 1e-8, "{v:?}");
    assert!((v.diff_pct - 100.080_096).abs() < 1e-5);
    assert!(v.text.starts_with("fast answers 2.00× as fast as slow (95% CI "), "{}", v.text);
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

fn cached(m: &mut MachineInput, tokens: u64) {
    for r in &mut m.requests {
        r.cached_prompt_tokens = Some(tokens);
    }
}

#[test]
fn prompt_cache_at_half_the_prompt() {
    // Prompts of 30 tokens; 14 cached of 30 on every warm repeat (46.7%), the other machine 10.
    let mut m = base();
    cached(&mut m[0], 10);
    cached(&mut m[1], 14);
    assert!(kinds(&compare(&m, settings())).is_empty(), "46.7%, 13.3 points more: quiet");
    // 15 of 30 is 50%: served from the cache (and also 16.7 points more).
    cached(&mut m[1], 15);
    let c = compare(&m, settings());
    let w = only(&c, WarningKind::PromptCache);
    assert_eq!(w.machine_id.as_deref(), Some("b"));
    assert!(w.detail.contains("45 of 90 prompt tokens") && w.detail.contains("50%"), "{}", w.detail);
    assert!(w.affects.contains(&Metric::TtftMs) && !w.affects.contains(&Metric::DecodeTokS));
    assert!(!c.fairness.fair);
    assert_eq!(c.winner.status, WinnerStatus::Decided, "decode rate is not affected");
    let ttft = c.verdicts.iter().find(|v| v.metric == Metric::TtftMs).unwrap();
    assert!(!ttft.significant && ttft.text.contains("prompt_cache on b"), "{}", ttft.text);
    // The share is over all warm repeats: one fully cached repeat of three is 33%, quiet when
    // the other machine's engine cached as much of the prefix.
    let mut m = base();
    cached(&mut m[0], 10);
    cached(&mut m[1], 0);
    m[1].requests[0].cached_prompt_tokens = Some(30);
    assert!(kinds(&compare(&m, settings())).is_empty(), "33.3% vs 33.3%");
}

#[test]
fn prompt_cache_twenty_points_more_than_another_machine() {
    // 10 prompts of 100 tokens each side would be the same; 30-token prompts: 3 of 30 = 10%.
    let mut m = base();
    cached(&mut m[0], 3); // 10%
    cached(&mut m[1], 9); // 30%: 20 points more
    let c = compare(&m, settings());
    let w = only(&c, WarningKind::PromptCache);
    assert_eq!(w.machine_id.as_deref(), Some("b"));
    assert!(w.detail.contains("20 points more than a (10%)"), "{}", w.detail);
    // 19 points: 11 of 100-token prompts against 30 of 100.
    let mut m = base();
    for r in m.iter_mut().flat_map(|m| m.requests.iter_mut()) {
        r.prompt_tokens = Some(100);
    }
    cached(&mut m[0], 11);
    cached(&mut m[1], 30);
    assert!(kinds(&compare(&m, settings())).is_empty(), "19 points more: quiet");
    // A chat-template prefix cached alike on every machine stays quiet at any size below half.
    cached(&mut m[0], 45);
    cached(&mut m[1], 45);
    assert!(kinds(&compare(&m, settings())).is_empty());
    // A machine whose engine reports no cache figures is not a reference point.
    let mut m = base();
    cached(&mut m[1], 9);
    assert!(kinds(&compare(&m, settings())).is_empty(), "30% and nothing to compare with");
}

#[test]
fn client_ceiling_from_half_the_agents_ceiling() {
    let mut m = base();
    m[0].ceiling_ratio = Some(0.49);
    m[1].ceiling_ratio = None;
    assert!(kinds(&compare(&m, settings())).is_empty());
    m[0].ceiling_ratio = Some(0.5);
    let c = compare(&m, settings());
    let w = only(&c, WarningKind::ClientCeiling);
    assert_eq!(w.machine_id.as_deref(), Some("a"));
    assert_eq!(w.affects, vec![Metric::DecodeTokS, Metric::GenTokensPerS]);
    assert!(w.detail.contains("50% of its agent's client ceiling"), "{}", w.detail);
    assert_eq!(c.winner.status, WinnerStatus::Unfair, "decode_tok_s decides this race");
    assert!(c.verdicts.iter().find(|v| v.metric == Metric::TtftMs).is_some_and(|v| !v.text.contains("client_ceiling")));
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
