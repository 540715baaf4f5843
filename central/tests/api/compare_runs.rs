//! `GET /api/compare` and the history page's "run against baseline", over two real runs: real
//! in-process agents on scripted engines (the fake Ollama writes tokens on a schedule, so a
//! machine's decode rate is what the test says). Run A and run B come from two centrals on one
//! results folder, one after the other, so that machine `mac` can be slower in run B.

use anyhow::{Context, Result, ensure};
use bench_agent::testkit::fake_ollama::{FakeOllama, FakeScript};
use serde_json::{Value, json};

use super::support::*;
use super::webdriver::Browser;

const MODEL: &str = "llama3.2:1b";

fn script(tokens_per_s: f64) -> FakeScript {
    FakeScript {
        ttft_ms: 20.0,
        tokens_per_s,
        tokens: (0..20).map(|i| format!(" w{i}")).collect(),
        ..Default::default()
    }
}

/// Engines, agents and a central over `results` for `(machine id, label, decode rate)`.
async fn central_over(
    machines: &[(&str, &str, f64)],
    results: ResultsDir,
) -> (Vec<FakeOllama>, Vec<RealAgent>, TestCentral) {
    let (mut fakes, mut agents, mut configs) = (Vec::new(), Vec::new(), Vec::new());
    for (id, label, rate) in machines {
        let fake = FakeOllama::spawn(script(*rate)).await;
        let agent = RealAgent::ollama(id, &fake.base_url).await;
        let mut config = machine(id, &agent.base_url);
        config.label = Some((*label).to_owned());
        configs.push(config);
        fakes.push(fake);
        agents.push(agent);
    }
    let central = TestCentral::spawn(configs, results).await;
    central.wait_online(&machines.iter().map(|m| m.0).collect::<Vec<_>>()).await;
    (fakes, agents, central)
}

async fn race(central: &TestCentral) -> String {
    let body = json!({"model": MODEL, "prompt": "Race: count to ten.", "max_tokens": 64, "temperature": 0.0,
                      "repeat": 5});
    let run_id = central.start_run(body).await;
    let detail = central.wait_run_end(&run_id).await;
    assert_eq!(detail["metadata"]["status"], "complete", "{detail}");
    run_id
}

/// Two stored runs: `mac` decodes at 22 tok/s in run A and 20 in run B (9.1% slower), `steady`
/// at 20 in both; `old` ran in A only, `new` in B only. Returns the central of run B.
struct TwoRuns {
    central: TestCentral,
    a: String,
    b: String,
    _engines: Vec<FakeOllama>,
    _agents: Vec<RealAgent>,
}

async fn two_runs(mac_label: &str) -> TwoRuns {
    let results = temp_results_dir();
    let (f1, a1, first) = central_over(
        &[("mac", mac_label, 22.0), ("steady", "steady label", 20.0), ("old", "old label", 20.0)],
        results.clone(),
    )
    .await;
    let a = race(&first).await;
    first.stop().await;
    drop((f1, a1));
    let (f2, a2, central) = central_over(
        &[("mac", mac_label, 20.0), ("steady", "steady label", 20.0), ("new", "new label", 20.0)],
        results,
    )
    .await;
    let b = race(&central).await;
    TwoRuns { central, a, b, _engines: f2, _agents: a2 }
}

async fn compare(central: &TestCentral, query: &str) -> (u16, Value) {
    let resp = central.get(&format!("/api/compare?{query}")).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

fn row<'a>(c: &'a Value, id: &str) -> &'a Value {
    c["machines"].as_array().unwrap().iter().find(|m| m["machine_id"] == id).unwrap_or_else(|| panic!("no {id}: {c:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slower_machine_in_run_b_is_slower_with_its_interval_below_zero() {
    let runs = two_runs("mac label").await;
    let (central, a, b) = (&runs.central, &runs.a, &runs.b);
    let (status, c) = compare(central, &format!("a={a}&b={b}")).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!((c["a"].as_str(), c["b"].as_str()), (Some(a.as_str()), Some(b.as_str())));
    assert_eq!((c["metric"].as_str(), c["unit"].as_str()), (Some("decode_tok_s"), Some("tok/s")));
    assert_eq!(c["settings_match"], true, "{c:#}");
    assert_eq!(c["confidence"], 0.975, "two machines in both runs: Bonferroni");
    assert_eq!(c["only_in_a"], json!([{"machine_id": "old", "label": "old label"}]));
    assert_eq!(c["only_in_b"], json!([{"machine_id": "new", "label": "new label"}]));
    let ids: Vec<&str> = c["machines"].as_array().unwrap().iter().map(|m| m["machine_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["mac", "steady"]);

    let mac = row(&c, "mac");
    assert_eq!(mac["status"], "slower", "{mac:#}");
    assert_eq!((mac["n_a"].as_u64(), mac["n_b"].as_u64()), (Some(5), Some(5)));
    let f = |k: &str| mac[k].as_f64().unwrap_or_else(|| panic!("{k}: {mac}"));
    // 20 against 22 tok/s is −9.1%: the interval holds it (half a point of slack for timers)
    // and lies wholly below 0.
    let (lo, hi) = (f("ci95_low_pct"), f("ci95_high_pct"));
    assert!(lo - 0.5 <= -9.09 && -9.09 <= hi + 0.5 && hi < 0.0, "CI {lo}–{hi}: {mac}");
    assert!(f("diff_pct") < -2.0 && f("mean_b") < f("mean_a"), "{mac}");
    assert!(f("p_value") < 0.025, "{mac}");
    // Run A is the better one: 22/20 = 1.1×, both bounds of the ratio's interval above 1.
    assert_eq!(mac["better_run"], "a", "{mac}");
    let (rlo, rhi) = (mac["ratio_ci"][0].as_f64().unwrap(), mac["ratio_ci"][1].as_f64().unwrap());
    assert!(rlo > 1.0 && rlo - 0.005 <= 1.1 && 1.1 <= rhi + 0.005, "ratio CI {rlo}–{rhi}: {mac}");
    let text = mac["text"].as_str().unwrap();
    assert!(
        text.starts_with("on mac label, run A decodes 1.") && text.contains("× as fast as run B (97.5% CI "),
        "{text}"
    );
    assert!(text.contains("slower in run B (decode_tok_s ") && text.ends_with("% lower)"), "{text}");

    let steady = row(&c, "steady");
    assert!(["tie", "undecided"].contains(&steady["status"].as_str().unwrap()), "the same engine speed: {steady:#}");
    assert!(steady["ci95_low_pct"].as_f64().unwrap() <= 0.5 && steady["ci95_high_pct"].as_f64().unwrap() >= -0.5);

    // Swapped: run B is now the faster one; one machine and another metric on request.
    let (status, c) = compare(central, &format!("a={b}&b={a}&machine=mac")).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["machines"].as_array().unwrap().len(), 1);
    assert_eq!(row(&c, "mac")["status"], "faster", "{c:#}");
    assert!(c["only_in_a"].as_array().unwrap().is_empty() && c["confidence"] == 0.95, "{c:#}");
    let (status, c) = compare(central, &format!("a={a}&b={b}&metric=total_ms")).await;
    assert_eq!(status, 200, "{c}");
    let mac = row(&c, "mac");
    assert_eq!((mac["unit"].as_str(), mac["higher_is_better"].as_bool()), (Some("ms"), Some(false)));
    assert!(mac["diff_pct"].as_f64().unwrap() > 0.0, "slower decoding takes longer: {mac}");

    // The regression gate on the same two runs, from the results folder and from the central.
    let dir = central.results_dir.to_str().unwrap().to_owned();
    let (code, out) =
        gate(&["--baseline", a, "--candidate", b, "--results-dir", &dir, "--fail-on-regression", "5"]).await;
    assert_eq!(code, 1, "9.1% slower fails a 5% gate:\n{out}");
    assert!(out.contains("REGRESSION   on mac label, run A decodes 1.") && out.contains("result: FAIL"), "{out}");
    assert!(out.contains("only in the baseline (not checked): old label"), "{out}");
    let (code, out) =
        gate(&["--baseline", a, "--candidate", b, "--central", &central.base_url, "--fail-on-regression", "5"]).await;
    assert_eq!(code, 1, "the same verdict through the central:\n{out}");
    let (code, out) =
        gate(&["--baseline", a, "--candidate", b, "--results-dir", &dir, "--fail-on-regression", "20"]).await;
    assert_eq!(code, 0, "9.1% is within a 20% gate:\n{out}");
    assert!(out.contains("result: PASS"), "{out}");
    // The other way round the candidate is faster: it passes at any threshold.
    let (code, out) =
        gate(&["--baseline", b, "--candidate", a, "--results-dir", &dir, "--fail-on-regression", "2"]).await;
    assert_eq!(code, 0, "{out}");
    // No energy figure on these machines: nothing to compare on, not a pass.
    let (code, out) =
        gate(&["--baseline", a, "--candidate", b, "--results-dir", &dir, "--metric", "tokens_per_j"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("result: NOT VALID"), "{out}");
}

/// Runs `bench-central compare ARGS`; returns its exit code and its output.
async fn gate(args: &[&str]) -> (i32, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bench-central"))
            .arg("compare")
            .args(&args)
            .env_remove("BENCH_CENTRAL_TOKEN")
            .output()
            .expect("run bench-central compare");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_compare_queries_name_the_field() {
    let agent = RealAgent::mock("m", &["mock-llm"], 5.0, 400.0).await;
    let central = TestCentral::spawn(vec![machine("m", &agent.base_url)], temp_results_dir()).await;
    central.wait_online(&["m"]).await;
    let body = json!({"model": "mock-llm", "prompt": "p", "max_tokens": 4, "repeat": 1});
    let run = central.start_run(body.clone()).await;
    central.wait_run_end(&run).await;
    let unknown = "2020-01-01_000000_abcdef";
    let cases = [
        (String::new(), 400, "a"),
        (format!("a={run}"), 400, "b"),
        (format!("a=nope&b={run}"), 400, "a"),
        (format!("a={run}&b=../x"), 400, "b"),
        (format!("a={run}&b={run}"), 400, "b"),
        (format!("a={run}&b={unknown}&metric=speed"), 400, "metric"),
        (format!("a={run}&b={unknown}&min_effect_pct=500"), 400, "min_effect_pct"),
        (format!("a={run}&b={unknown}&run=x"), 400, "run"),
    ];
    for (query, want, field) in cases {
        let (status, err) = compare(&central, &query).await;
        assert_eq!((status, err["field"].as_str()), (want, Some(field)), "{query}: {err}");
        assert!(err["error"].as_str().unwrap().starts_with(&format!("{field}: ")), "{err}");
    }
    let (status, err) = compare(&central, &format!("a={run}&b={unknown}")).await;
    assert_eq!(status, 404, "{err}");
    assert!(err["error"].as_str().unwrap().contains(&format!("b: no run {unknown}")), "{err}");
    let (status, err) = compare(&central, &format!("a={unknown}&b={run}")).await;
    assert_eq!(status, 404, "{err}");
    assert!(err["error"].as_str().unwrap().starts_with("a: "), "{err}");
    // A machine in neither run.
    let other = central.start_run(body).await;
    central.wait_run_end(&other).await;
    let (status, err) = compare(&central, &format!("a={run}&b={other}&machine=ghost")).await;
    assert_eq!((status, err["field"].as_str()), (400, Some("machine")), "{err}");
    // One repeat each: compared, but undecided and saying why. (On time to first token: the
    // mock's burst of 4 tokens can reach the client ceiling, which would block decode_tok_s.)
    let (status, c) = compare(&central, &format!("a={run}&b={other}&metric=ttft_ms")).await;
    assert_eq!(status, 200, "{c}");
    let m = row(&c, "m");
    assert_eq!((m["status"].as_str(), m["n_a"].as_u64()), (Some("undecided"), Some(1)), "{m:#}");
    assert!(m["reason"].as_str().unwrap().contains("run ≥ 3") && m["ci95_low_pct"].is_null(), "{m:#}");
    assert_eq!(m["undecided"], "too_few_repeats", "{m:#}");
    // The regression gate says so with its own exit code: too few repeats is not a pass.
    let (code, out) =
        gate(&["--baseline", &run, "--candidate", &other, "--central", &central.base_url, "--metric", "ttft_ms"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("NOT VALID") && out.contains("too few warm repeats"), "{out}");
    // A run that does not exist: not valid either, with the central's reason.
    let (code, out) = gate(&["--baseline", &run, "--candidate", unknown, "--central", &central.base_url]).await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("404") && out.contains(unknown), "{out}");
}

/// A label with markup: shown as text, never parsed.
const MAC: &str = "Mac <b>box</b>";

/// The history page shows the comparison named by its address, and the page's own button puts
/// both runs into the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_compares_a_run_with_the_baseline_from_a_shareable_link() -> Result<()> {
    if std::env::var_os("BENCH_SKIP_BROWSER_TESTS").is_some() {
        eprintln!("BENCH_SKIP_BROWSER_TESTS is set: skipping the browser test");
        return Ok(());
    }
    ensure!(
        crate::webdriver::available(),
        "chromium/chromedriver not found: install the Debian packages chromium and chromium-driver, \
         or set CHROME_BIN/CHROMEDRIVER"
    );
    let runs = two_runs(MAC).await;
    let browser = Browser::launch(1400, 1100).await?;
    let result = history_compare(&browser, &runs).await;
    if result.is_err()
        && let Ok(png) = browser.screenshot().await
    {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
        let _ = std::fs::write(dir.join("compare-failed.png"), png);
    }
    browser.close().await?;
    result
}

async fn history_compare(b: &Browser, runs: &TwoRuns) -> Result<()> {
    let timeout = std::time::Duration::from_secs(30);
    let (base, a, run_b) = (&runs.central.base_url, &runs.a, &runs.b);
    // The shared link alone: run B opens under the comparison.
    b.goto(&format!("{base}/history?baseline={a}&compare={run_b}")).await?;
    let rendered = b
        .wait_for(
            "the comparison of run B with the baseline",
            "const r = document.querySelector('#compare-table tr[data-machine=mac]');
             return r ? [r.dataset.status, r.querySelector('.change-text').textContent,
                         r.querySelectorAll('b').length, document.querySelector('#run-compare').textContent] : null;",
            timeout,
        )
        .await?;
    let parts = rendered.as_array().context("row")?;
    ensure!(parts[0] == "slower", "status {rendered}");
    let text = parts[1].as_str().context("text")?;
    ensure!(
        text.starts_with(&format!("on {MAC}, run A decodes 1.")) && text.contains("× as fast as run B (97.5% CI "),
        "{text}"
    );
    ensure!(parts[2] == 0, "the label's markup must be text: {rendered}");
    let panel = parts[3].as_str().context("panel")?;
    ensure!(panel.contains("Only in run A: old label") && panel.contains("Only in run B: new label"), "{panel}");
    ensure!(!panel.contains("null") && !panel.contains("undefined"), "{panel}");
    b.wait_for(
        "run B open",
        &format!("return document.querySelector('#run-head h2')?.textContent === 'Run {run_b}'"),
        timeout,
    )
    .await?;

    // From the page: baseline only, open run B, press "Compare with baseline".
    b.goto(&format!("{base}/history?baseline={a}")).await?;
    let selector = format!("#runs-list li[data-run-id=\"{run_b}\"]");
    b.wait_for("run B in the list", &format!("return !!document.querySelector('{selector}')"), timeout).await?;
    let li = b.find(&selector).await?;
    b.click(&li).await?;
    b.wait_for("the compare button", "return !!document.querySelector('#compare-baseline')", timeout).await?;
    ensure!(
        b.script("return document.querySelector('#run-compare').hidden", vec![]).await? == true,
        "no comparison before asking"
    );
    b.click(&b.find("#compare-baseline").await?).await?;
    let url = b
        .wait_for(
            "the comparison and its address",
            "return document.querySelector('#compare-table tr[data-machine=mac]') ? location.search : null",
            timeout,
        )
        .await?;
    let url = url.as_str().context("address")?;
    ensure!(url.contains(&format!("baseline={a}")) && url.contains(&format!("compare={run_b}")), "address {url}");
    let link = b.script("return document.querySelector('#compare-link').href", vec![]).await?;
    ensure!(link.as_str().is_some_and(|l| l.contains(&format!("compare={run_b}"))), "share link {link}");
    ensure!(
        b.script("return Object.keys(localStorage).length", vec![]).await? == json!(0),
        "the comparison must not live in localStorage"
    );
    Ok(())
}
