use super::*;
use crate::engine::EngineKind;
use crate::metrics::{RequestMetrics, TokenSource};

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

fn machine(id: &str, decodes: &[f64]) -> RunMachine {
    RunMachine {
        machine_id: id.into(),
        label: format!("{id} box"),
        engine_version: Some("0.5.1".into()),
        input: Ok(MachineInput {
            machine_id: id.into(),
            label: format!("{id} box"),
            engine: Some(EngineKind::Ollama),
            model: Some("m".into()),
            // The same host in both runs: never a shared-host warning across runs.
            hostname: Some("host".into()),
            engine_base_url: Some("http://127.0.0.1:11434".into()),
            requests: decodes.iter().map(|d| req(*d)).collect(),
            output_text: Some("same".into()),
            ..Default::default()
        }),
    }
}

fn settings() -> RunSettings {
    RunSettings {
        model: Some("m".into()),
        prompt: Some("count".into()),
        max_tokens: Some(64),
        temperature: Some(0.0),
        num_ctx: Some(2048),
        stream: Some(true),
        cache_bust: Some(true),
        cold: Some(false),
    }
}

fn run(id: &str, machines: Vec<RunMachine>) -> RunInput {
    RunInput { run_id: id.into(), settings: settings(), machines }
}

fn on(metric: Metric) -> AcrossSettings {
    AcrossSettings { metric, min_effect_pct: 2.0 }
}

const A: [f64; 5] = [100.0, 101.0, 99.0, 100.5, 99.5];

#[test]
fn a_slower_run_b_is_slower_with_the_interval_on_the_slow_side() {
    // Run B decodes 10% slower: 90 ± 0.5.
    let b: Vec<f64> = A.iter().map(|x| x * 0.9).collect();
    let c = compare_runs(
        &run("ra", vec![machine("mac", &A)]),
        &run("rb", vec![machine("mac", &b)]),
        on(Metric::DecodeTokS),
    );
    assert_eq!(c.confidence, 0.95, "one machine: plain 95%");
    assert!(c.settings_match && c.warnings.is_empty(), "{c:?}");
    let m = &c.machines[0];
    assert_eq!(m.status, ChangeStatus::Slower, "{m:?}");
    assert_eq!((m.n_a, m.n_b), (5, 5));
    // Every value of B is 0.9× its A: the geometric means too, exactly.
    assert!((m.diff_pct.unwrap() + 10.0).abs() < 1e-9, "{m:?}");
    let (lo, hi) = (m.ci95_low_pct.unwrap(), m.ci95_high_pct.unwrap());
    assert!(lo < -10.0 && -10.0 < hi && hi < 0.0, "B − A below 0: {lo} {hi}");
    assert!(m.p_value.unwrap() < 0.001, "{m:?}");
    assert_eq!(m.unit, "tok/s");
    // The ratio favours run A, ≥ 1: 1/0.9, its interval the inverted percent interval's.
    assert_eq!(m.better_run, Some(RunSide::A));
    assert!((m.ratio.unwrap() - 1.0 / 0.9).abs() < 1e-9, "{m:?}");
    let [rlo, rhi] = m.ratio_ci.unwrap();
    assert!((rlo - 100.0 / (100.0 + hi)).abs() < 1e-9 && (rhi - 100.0 / (100.0 + lo)).abs() < 1e-9, "{m:?}");
    assert!(
        m.text.starts_with("on mac box, run A decodes 1.11× as fast as run B (95% CI ")
            && m.text.ends_with("×): slower in run B (decode_tok_s 10.0% lower)"),
        "{}",
        m.text
    );
    // And the other way round: faster.
    let c = compare_runs(
        &run("rb", vec![machine("mac", &b)]),
        &run("ra", vec![machine("mac", &A)]),
        on(Metric::DecodeTokS),
    );
    assert_eq!(c.machines[0].status, ChangeStatus::Faster);
    assert_eq!(c.machines[0].better_run, Some(RunSide::B));
    assert!(
        c.machines[0].text.starts_with("on mac box, run B decodes 1.11× as fast as run A (95% CI "),
        "{}",
        c.machines[0].text
    );
    assert!(c.machines[0].text.ends_with("faster in run B (decode_tok_s 11.1% higher)"), "{}", c.machines[0].text);
}

#[test]
fn times_read_sooner_and_later_with_the_sign_of_the_change() {
    let b: Vec<f64> = A.iter().map(|x| x * 0.9).collect();
    let c =
        compare_runs(&run("ra", vec![machine("mac", &A)]), &run("rb", vec![machine("mac", &b)]), on(Metric::TotalMs));
    let m = &c.machines[0];
    // Slower decoding: longer total time, a positive diff, worse.
    assert!(m.diff_pct.unwrap() > 2.0 && m.ci95_low_pct.unwrap() > 0.0, "{m:?}");
    assert_eq!(m.status, ChangeStatus::Slower);
    assert!(
        m.text.starts_with("on mac box, run A finishes ") && m.text.contains("× as fast as run B (95% CI"),
        "{}",
        m.text
    );
    assert!(m.text.contains("slower in run B (total_ms ") && m.text.ends_with("% longer)"), "{}", m.text);
    assert_eq!((m.unit.as_str(), m.higher_is_better), ("ms", false));
}

#[test]
fn identical_runs_tie_and_a_wide_interval_is_undecided() {
    let c = compare_runs(
        &run("ra", vec![machine("mac", &A)]),
        &run("rb", vec![machine("mac", &A)]),
        on(Metric::DecodeTokS),
    );
    let m = &c.machines[0];
    assert_eq!(m.status, ChangeStatus::Tie, "{m:?}");
    assert_eq!(m.diff_pct, Some(0.0));
    assert!(m.text.contains("a tie"), "{}", m.text);
    // Noisy repeats: a 1% mean change whose interval reaches far past ±2%.
    let noisy_a = [80.0, 120.0, 100.0, 90.0, 110.0];
    let noisy_b: Vec<f64> = noisy_a.iter().map(|x| x * 0.99).collect();
    let c = compare_runs(
        &run("ra", vec![machine("mac", &noisy_a)]),
        &run("rb", vec![machine("mac", &noisy_b)]),
        on(Metric::DecodeTokS),
    );
    let m = &c.machines[0];
    assert_eq!(m.status, ChangeStatus::Undecided, "{m:?}");
    assert!(m.reason.contains("minimum effect") && m.text.contains("undecided"), "{m:?}");
    assert_eq!(m.undecided, Some(Undecided::WideInterval));
    let k = m.repeats_needed.expect("a wide interval says how many repeats would settle it");
    assert!(k > 5 && m.reason.contains(&format!("about {} repeats per run", crate::fmt::count_text(k))), "{m:?}");
    // Significant but below the minimum effect, the interval inside ±2%: a tie.
    let b: Vec<f64> = A.iter().map(|x| x * 0.995).collect();
    let c = compare_runs(
        &run("ra", vec![machine("mac", &A)]),
        &run("rb", vec![machine("mac", &b)]),
        on(Metric::DecodeTokS),
    );
    assert_eq!(c.machines[0].status, ChangeStatus::Tie, "{:?}", c.machines[0]);
}

#[test]
fn too_few_repeats_and_missing_figures_are_undecided_with_the_reason() {
    let c = compare_runs(
        &run("ra", vec![machine("mac", &[100.0, 101.0])]),
        &run("rb", vec![machine("mac", &[80.0, 81.0, 79.0])]),
        on(Metric::DecodeTokS),
    );
    let m = &c.machines[0];
    assert_eq!((m.status, m.undecided), (ChangeStatus::Undecided, Some(Undecided::TooFewRepeats)));
    assert!(m.reason.contains("2 in run A, 3 in run B") && m.reason.contains("run ≥ 3"), "{m:?}");
    let c = compare_runs(
        &run("ra", vec![machine("mac", &[100.0])]),
        &run("rb", vec![machine("mac", &[80.0])]),
        on(Metric::DecodeTokS),
    );
    let m = &c.machines[0];
    assert!(m.ci95_low_pct.is_none() && m.p_value.is_none(), "one repeat: no interval");
    assert!(m.text.contains("(1 and 1 repeats)"), "{}", m.text);
    // A machine that did not finish in run B.
    let mut failed = machine("mac", &A);
    failed.input = Err("error: engine unreachable".into());
    let c = compare_runs(&run("ra", vec![machine("mac", &A)]), &run("rb", vec![failed]), on(Metric::DecodeTokS));
    let m = &c.machines[0];
    assert_eq!((m.status, m.n_a, m.n_b), (ChangeStatus::Undecided, 0, 0));
    assert_eq!(m.undecided, Some(Undecided::NoFigures));
    assert!(m.reason.contains("run B: error: engine unreachable"), "{m:?}");
    // No energy figures on either side: null, with why.
    let c = compare_runs(
        &run("ra", vec![machine("mac", &A)]),
        &run("rb", vec![machine("mac", &A)]),
        on(Metric::TokensPerJ),
    );
    let m = &c.machines[0];
    assert!(m.mean_a.is_none() && m.diff_pct.is_none() && m.status == ChangeStatus::Undecided, "{m:?}");
    assert!(m.reason.contains("no tokens_per_j figure in run A or run B"), "{m:?}");
}

#[test]
fn machines_in_one_run_are_listed_apart_and_intervals_are_bonferroni() {
    let a = run("ra", vec![machine("mac", &A), machine("pc", &A), machine("old", &A)]);
    let b = run("rb", vec![machine("new", &A), machine("pc", &A), machine("mac", &A)]);
    let c = compare_runs(&a, &b, on(Metric::DecodeTokS));
    let ids: Vec<&str> = c.machines.iter().map(|m| m.machine_id.as_str()).collect();
    assert_eq!(ids, ["mac", "pc"], "run A's order");
    assert_eq!(c.only_in_a, vec![MachineRef { machine_id: "old".into(), label: "old box".into() }]);
    assert_eq!(c.only_in_b, vec![MachineRef { machine_id: "new".into(), label: "new box".into() }]);
    assert!((c.confidence - 0.975).abs() < 1e-12);
    assert!(c.machines[0].text.contains("97.5% CI"), "{}", c.machines[0].text);
}

#[test]
fn different_settings_make_figures_incomparable() {
    let b: Vec<f64> = A.iter().map(|x| x * 0.9).collect();
    let mut rb = run("rb", vec![machine("mac", &b)]);
    rb.settings.model = Some("other".into());
    rb.settings.max_tokens = Some(32);
    let c = compare_runs(&run("ra", vec![machine("mac", &A)]), &rb, on(Metric::DecodeTokS));
    assert!(!c.settings_match);
    let kinds: Vec<(WarningKind, bool)> = c.warnings.iter().map(|w| (w.kind, w.affects.is_empty())).collect();
    assert_eq!(kinds, [(WarningKind::SettingsMismatch, false), (WarningKind::SettingsMismatch, false)]);
    assert!(c.warnings[0].detail.contains("\"m\" in run A, \"other\" in run B"), "{:?}", c.warnings);
    let m = &c.machines[0];
    assert_eq!((m.status, m.undecided), (ChangeStatus::Undecided, Some(Undecided::NotComparable)));
    assert!(m.reason.contains("not comparable") && m.reason.contains("settings_mismatch"), "{m:?}");
    // max_tokens alone leaves the decode rate comparable, not the total time.
    let mut rb = run("rb", vec![machine("mac", &b)]);
    rb.settings.max_tokens = Some(32);
    let ra = run("ra", vec![machine("mac", &A)]);
    assert_eq!(compare_runs(&ra, &rb, on(Metric::DecodeTokS)).machines[0].status, ChangeStatus::Slower);
    assert_eq!(compare_runs(&ra, &rb, on(Metric::TotalMs)).machines[0].status, ChangeStatus::Undecided);
    // A different prompt is named by its hash, never repeated.
    let mut rb = run("rb", vec![machine("mac", &A)]);
    rb.settings.prompt = Some("secret prompt text".into());
    let c = compare_runs(&ra, &rb, on(Metric::DecodeTokS));
    assert_eq!(c.warnings[0].kind, WarningKind::PromptMismatch);
    assert!(!c.warnings[0].detail.contains("secret"), "{:?}", c.warnings);
}

#[test]
fn per_machine_warnings_engine_and_context() {
    let ra = run("ra", vec![machine("mac", &A)]);
    // A new engine version: reported, still compared.
    let mut upgraded = machine("mac", &A);
    upgraded.engine_version = Some("0.6.0".into());
    let c = compare_runs(&ra, &run("rb", vec![upgraded]), on(Metric::DecodeTokS));
    let m = &c.machines[0];
    assert_eq!(m.status, ChangeStatus::Tie, "{m:?}");
    assert_eq!(m.warnings.len(), 1, "{m:?}");
    assert!(m.warnings[0].affects.is_empty() && m.warnings[0].detail.contains("0.5.1 in run A, 0.6.0 in run B"));
    assert_eq!(m.warnings[0].machine_id.as_deref(), Some("mac"));
    // Another context length in run B (the race's own check, on the pair): incomparable.
    let mut other_ctx = machine("mac", &A);
    if let Ok(i) = &mut other_ctx.input {
        i.context_length = Some(8192);
    }
    let mut base = machine("mac", &A);
    if let Ok(i) = &mut base.input {
        i.context_length = Some(2048);
    }
    let c = compare_runs(&run("ra", vec![base]), &run("rb", vec![other_ctx]), on(Metric::DecodeTokS));
    let m = &c.machines[0];
    assert_eq!(m.status, ChangeStatus::Undecided, "{m:?}");
    assert!(m.warnings.iter().any(|w| w.kind == WarningKind::SettingsMismatch && w.detail.contains("in run")), "{m:?}");
    // The same host on both sides is no warning (the runs did not compete).
    assert!(compare_runs(&ra, &ra, on(Metric::DecodeTokS)).machines[0].warnings.is_empty());
}

#[test]
fn a_prompt_token_difference_the_nonces_explain_is_informational_a_larger_one_blocks() {
    let with_prompt_tokens = |n: u64| {
        let mut m = machine("mac", &A);
        if let Ok(input) = &mut m.input {
            for r in &mut input.requests {
                r.prompt_tokens = Some(n);
            }
        }
        m
    };
    let compare_ttft = |nb: u64, cache_bust: bool| {
        let mut a = run("a", vec![with_prompt_tokens(30)]);
        let mut b = run("b", vec![with_prompt_tokens(nb)]);
        a.settings.cache_bust = Some(cache_bust);
        b.settings.cache_bust = Some(cache_bust);
        compare_runs(&a, &b, on(Metric::TtftMs)).machines.remove(0)
    };
    // One token apart, both runs cache-busted: said, with its size, but TTFT still compares.
    let near = compare_ttft(31, true);
    let w = near.warnings.iter().find(|w| w.kind == WarningKind::PromptMismatch).expect("the difference is said");
    assert!(w.affects.is_empty() && w.detail.contains("30 prompt tokens in run A and 31 in run B"), "{w:?}");
    assert!(w.detail.ends_with("within 1 token)"), "{w:?}");
    assert_eq!(near.status, ChangeStatus::Tie, "{}", near.reason);
    // Beyond what a nonce explains: not comparable.
    let far = compare_ttft(30 + NONCE_TOKENS_MAX + 1, true);
    assert_eq!(far.status, ChangeStatus::Undecided);
    assert!(far.reason.contains("prompt_mismatch"), "{}", far.reason);
    // Without cache busting the prompts were identical, so any difference blocks.
    let plain = compare_ttft(31, false);
    assert_eq!(plain.status, ChangeStatus::Undecided);
    assert!(plain.reason.contains("prompt_mismatch"), "{}", plain.reason);
}

#[test]
fn the_interval_never_says_more_than_100_percent_less() {
    // A noisy fall to a fifth (mean 20 against 100): Welch's interval on the raw values reaches to
    // −133%; on the log scale every bound stays above −100% and the ratio's above 0.
    let b = machine("mac", &[1.0, 1.0, 1.0, 1.0, 96.0]);
    let c = compare_runs(&run("a", vec![machine("mac", &A)]), &run("b", vec![b]), on(Metric::DecodeTokS));
    let m = &c.machines[0];
    let (lo, hi) = (m.ci95_low_pct.unwrap(), m.ci95_high_pct.unwrap());
    assert!(lo > -100.0 && hi < 0.0, "{m:?}");
    assert!(m.ratio_ci.unwrap().iter().all(|x| *x > 0.0), "{m:?}");
    assert_eq!(m.status, ChangeStatus::Slower, "{}", m.reason);
    assert!(m.text.starts_with("on mac box, run A decodes 40.1× as fast as run B (95% CI 3.18–506×)"), "{}", m.text);
}
