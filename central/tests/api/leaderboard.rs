//! `GET /api/leaderboard` and the `/leaderboard` page over 300 stored runs: copies of one real
//! race's files (two mock agents) with known figures, engine versions, models, statuses and
//! warnings, so that ordering, filters, exclusions and the interval can be checked by hand.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bench_central::store::{METADATA, SUMMARY, new_run_id, rfc3339};
use bench_shared::compare::stats::{Sample, t_quantile};
use serde_json::{Value, json};

use super::support::*;
use super::webdriver::Browser;

const RUNS: usize = 300;
const FIRST_S: f64 = 1_790_000_000.0;

/// The figures run `i` gets: (model, fast's engine version, fast decode, slow decode, status,
/// slow throttled).
struct Plan {
    model: &'static str,
    fast_version: &'static str,
    fast: f64,
    slow: f64,
    complete: bool,
    slow_throttled: bool,
}

fn plan(i: usize) -> Plan {
    let other = i.is_multiple_of(3);
    let v2 = i >= RUNS / 2;
    let base = match (other, v2) {
        (false, true) => 110.0,
        (false, false) => 100.0,
        (true, true) => 90.0,
        (true, false) => 80.0,
    };
    Plan {
        model: if other { "other-llm" } else { "mock-llm" },
        fast_version: if v2 { "2.0" } else { "1.0" },
        fast: base + (i % 5) as f64,
        slow: if other { 30.0 } else { 50.0 } + (i % 3) as f64 * 1.5,
        complete: !i.is_multiple_of(7),
        slow_throttled: i.is_multiple_of(10),
    }
}

fn started_s(i: usize) -> f64 {
    FIRST_S + i as f64 * 60.0
}

/// Sets `machines[].mean` of `metric` in a summary's comparison.
fn set_mean(summary: &mut Value, metric: &str, id: &str, v: f64) {
    let stats =
        summary["comparison"]["metrics"].as_array_mut().unwrap().iter_mut().find(|m| m["metric"] == metric).unwrap();
    let m = stats["machines"].as_array_mut().unwrap().iter_mut().find(|m| m["machine_id"] == id).unwrap();
    m["mean"] = json!(v);
}

/// Writes `RUNS` runs into `runs_dir` from the template run's metadata and summary.
fn write_runs(runs_dir: &Path, meta: &Value, summary: &Value) -> Vec<String> {
    (0..RUNS)
        .map(|i| {
            let p = plan(i);
            let id = new_run_id(started_s(i));
            let (mut meta, mut summary) = (meta.clone(), summary.clone());
            meta["run_id"] = json!(id);
            meta["started_at"] = json!(rfc3339(started_s(i)));
            meta["started_at_s"] = json!(started_s(i));
            meta["status"] = json!(if p.complete { "complete" } else { "partial" });
            meta["models"] = json!([p.model]);
            for m in meta["machines"].as_array_mut().unwrap() {
                let version = if m["machine_id"] == "fast" { p.fast_version } else { "0.9" };
                m["engine"]["version"] = json!(version);
            }
            summary["run_id"] = json!(id);
            summary["models"] = json!([p.model]);
            for m in summary["machines"].as_array_mut().unwrap() {
                m["model"] = json!(p.model);
            }
            set_mean(&mut summary, "decode_tok_s", "fast", p.fast);
            set_mean(&mut summary, "decode_tok_s", "slow", p.slow);
            // Times: the slow machine answers sooner (lower is better on ttft_ms).
            set_mean(&mut summary, "ttft_ms", "fast", 300.0 + i as f64 % 4.0);
            set_mean(&mut summary, "ttft_ms", "slow", 100.0 + i as f64 % 4.0);
            // Only the warnings this plan sets (the template's own, e.g. a mock near the client
            // ceiling, would flag figures at random).
            let warnings = summary["comparison"]["fairness"]["warnings"].as_array_mut().unwrap();
            warnings.clear();
            if p.slow_throttled {
                warnings.push(json!({"kind": "throttled", "machine_id": "slow", "detail": "GPU throttled",
                                     "affects": ["decode_tok_s", "ttft_ms", "total_ms", "gen_tokens_per_s", "prefill_tok_s", "tokens_per_j"]}));
            }
            let dir = runs_dir.join(&id);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(METADATA), serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
            std::fs::write(dir.join(SUMMARY), serde_json::to_vec_pretty(&summary).unwrap()).unwrap();
            id
        })
        .collect()
}

/// One real race of two mock agents, as the template of every stored run.
async fn template() -> (Value, Value) {
    let fast = RealAgent::mock("fast", &["mock-llm"], 5.0, 400.0).await;
    let slow = RealAgent::mock("slow", &["mock-llm"], 5.0, 200.0).await;
    let results = temp_results_dir();
    let central =
        TestCentral::spawn(vec![machine("fast", &fast.base_url), machine("slow", &slow.base_url)], results).await;
    central.wait_online(&["fast", "slow"]).await;
    let mut body = generate_body("mock-llm", 8);
    body["repeat"] = json!(3);
    let id = central.start_run(body).await;
    let detail = central.wait_run_end(&id).await;
    assert_eq!(detail["metadata"]["status"], "complete", "{detail}");
    (central.read_json(&id, METADATA), central.read_json(&id, SUMMARY))
}

fn rows(board: &Value) -> Vec<(String, String, String)> {
    board["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
            (s("machine_id"), s("model"), s("engine_version"))
        })
        .collect()
}

fn key(m: &str, model: &str, v: &str) -> (String, String, String) {
    (m.to_owned(), model.to_owned(), v.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leaderboard_ranks_hundreds_of_stored_runs() -> Result<()> {
    let (meta, summary) = template().await;
    let results = temp_results_dir();
    let runs_dir = results.join("runs");
    let ids = tokio::task::spawn_blocking(move || write_runs(&runs_dir, &meta, &summary)).await?;
    let central = TestCentral::spawn(vec![], results).await;

    // Every complete run, best first on decode_tok_s: one row per machine, model and version.
    let board = central.get_json("/api/leaderboard").await;
    assert_eq!((board["metric"].as_str(), board["unit"].as_str()), (Some("decode_tok_s"), Some("tok/s")));
    let complete = (0..RUNS).filter(|i| plan(*i).complete).count();
    assert_eq!(board["runs_considered"], complete as u64, "partial runs do not count");
    assert_eq!(
        rows(&board),
        vec![
            key("fast", "mock-llm", "2.0"),
            key("fast", "mock-llm", "1.0"),
            key("fast", "other-llm", "2.0"),
            key("fast", "other-llm", "1.0"),
            key("slow", "mock-llm", "0.9"),
            key("slow", "other-llm", "0.9"),
        ],
        "{board:#}"
    );
    // The top row by hand: its runs, best, mean and the 95% interval of the geometric mean.
    let want: Vec<(usize, f64)> = (0..RUNS)
        .filter(|i| plan(*i).complete && plan(*i).model == "mock-llm" && plan(*i).fast_version == "2.0")
        .map(|i| (i, plan(i).fast))
        .collect();
    let top = &board["rows"][0];
    assert_eq!(top["runs"], want.len() as u64);
    assert_eq!(top["best"], 114.0);
    let best_i = want.iter().filter(|(_, v)| *v == 114.0).map(|(i, _)| *i).min().unwrap();
    let best_ids: Vec<&str> = want.iter().filter(|(_, v)| *v == 114.0).map(|(i, _)| ids[*i].as_str()).collect();
    assert!(
        best_ids.contains(&top["best_run_id"].as_str().unwrap()),
        "best run {} (e.g. run {best_i})",
        top["best_run_id"]
    );
    let values: Vec<f64> = want.iter().map(|(_, v)| *v).collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    assert!((top["mean"].as_f64().unwrap() - mean).abs() < 1e-9);
    let logs = Sample::of_logs(&values).unwrap();
    let half = t_quantile(0.975, (logs.n - 1) as f64) * logs.sd / (logs.n as f64).sqrt();
    let (lo, hi) = (top["ci95"][0].as_f64().unwrap(), top["ci95"][1].as_f64().unwrap());
    assert!((lo - (logs.mean - half).exp()).abs() < 1e-9 && (hi - (logs.mean + half).exp()).abs() < 1e-9, "{top}");
    assert!(lo > 0.0 && lo < mean && mean < hi);
    assert_eq!(top["run_list"].as_array().unwrap().len(), want.len());
    assert_eq!(top["run_list"][0]["run_id"], ids[want.last().unwrap().0].as_str(), "newest run first");
    assert!(top["hardware"].as_str().is_some_and(|h| !h.is_empty()), "fingerprint in one line: {top}");
    // Runs where a warning made the figure incomparable are left out, and counted.
    let slow = &board["rows"][4];
    let throttled =
        (0..RUNS).filter(|i| plan(*i).complete && plan(*i).model == "mock-llm" && plan(*i).slow_throttled).count();
    assert_eq!(slow["excluded_runs"], throttled as u64, "{slow}");
    let slow_runs = (0..RUNS).filter(|i| plan(*i).complete && plan(*i).model == "mock-llm").count() - throttled;
    assert_eq!(slow["runs"], slow_runs as u64);

    // Filters.
    let other = central.get_json("/api/leaderboard?model=OTHER").await;
    assert_eq!(
        rows(&other),
        vec![key("fast", "other-llm", "2.0"), key("fast", "other-llm", "1.0"), key("slow", "other-llm", "0.9")]
    );
    let v2 = central.get_json("/api/leaderboard?engine=2.0").await;
    assert_eq!(rows(&v2), vec![key("fast", "mock-llm", "2.0"), key("fast", "other-llm", "2.0")]);
    assert_eq!(rows(&central.get_json("/api/leaderboard?engine=mock").await).len(), 6, "the engine kind matches too");
    let since = started_s(RUNS / 2) as u64;
    let late = central.get_json(&format!("/api/leaderboard?since={since}")).await;
    assert!(rows(&late).iter().all(|(m, _, v)| m != "fast" || v == "2.0"), "{late:#}");
    // A time: lower is better, so the slow decoder that answers sooner leads.
    let ttft = central.get_json("/api/leaderboard?metric=ttft_ms").await;
    assert_eq!(
        (ttft["higher_is_better"].as_bool(), ttft["rows"][0]["machine_id"].as_str()),
        (Some(false), Some("slow"))
    );
    assert!(ttft["rows"][0]["best"].as_f64() <= ttft["rows"][1]["best"].as_f64());
    // Bad input names the field.
    for (query, field) in [("metric=speed", "metric"), ("since=yesterday", "since"), ("machine=fast", "machine")] {
        let resp = central.get(&format!("/api/leaderboard?{query}")).await;
        assert_eq!(resp.status(), 400, "{query}");
        assert_eq!(resp.json::<Value>().await?["field"], field, "{query}");
    }

    leaderboard_page(&central).await
}

/// The page: the rows of the API, sorted on a click, filtered from its address; a screenshot
/// lands in `target/leaderboard.png`.
async fn leaderboard_page(central: &TestCentral) -> Result<()> {
    if std::env::var_os("BENCH_SKIP_BROWSER_TESTS").is_some() {
        eprintln!("BENCH_SKIP_BROWSER_TESTS is set: skipping the leaderboard page");
        return Ok(());
    }
    ensure!(super::webdriver::available(), "chromium/chromedriver not found: install chromium and chromium-driver");
    let b = Browser::launch(1400, 900).await?;
    let result = async {
        let timeout = Duration::from_secs(20);
        b.goto(&central.url("/leaderboard")).await?;
        let first = b
            .wait_for(
                "six rows",
                "const r = [...document.querySelectorAll('#board tbody tr[data-machine]')];
                 return r.length === 6 ? r.map(x => [x.dataset.machine, x.dataset.model, x.querySelector('.best').textContent]) : null;",
                timeout,
            )
            .await?;
        ensure!(first[0] == json!(["fast", "mock-llm", "114.0 tok/s"]), "first row {first}");
        let link = b.script("return document.querySelector('#board tbody tr .best a').getAttribute('href')", vec![]).await?;
        ensure!(link.as_str().is_some_and(|l| l.starts_with("/history?run_id=")), "best links to its run: {link}");
        let png = b.screenshot().await?;
        let target = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
        std::fs::create_dir_all(&target)?;
        std::fs::write(target.join("leaderboard.png"), png)?;
        // Sort by runs (most first), from the header.
        b.click(&b.find("#board .sort[data-sort=runs]").await?).await?;
        let runs = b
            .wait_for(
                "rows sorted by runs",
                "return location.search.includes('sort=runs')
                   ? [...document.querySelectorAll('#board tbody td.runs .run-count')].map(td => parseInt(td.textContent, 10)) : null;",
                timeout,
            )
            .await?;
        let runs: Vec<i64> = runs.as_array().context("runs")?.iter().filter_map(Value::as_i64).collect();
        ensure!(runs.windows(2).all(|w| w[0] >= w[1]) && runs.len() == 6, "sorted by runs: {runs:?}");
        // A filtered board is a link.
        b.goto(&central.url("/leaderboard?model=other&metric=ttft_ms")).await?;
        let filtered = b
            .wait_for(
                "the filtered board",
                "const r = [...document.querySelectorAll('#board tbody tr[data-machine]')];
                 return r.length === 3 && document.querySelector('#board-filters [name=metric]').value === 'ttft_ms'
                   ? r.map(x => x.dataset.machine) : null;",
                timeout,
            )
            .await?;
        ensure!(filtered == json!(["slow", "fast", "fast"]), "filtered rows {filtered}");
        Ok(())
    }
    .await;
    if result.is_err()
        && let Ok(png) = b.screenshot().await
    {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
        let _ = std::fs::write(dir.join("leaderboard-failed.png"), png);
    }
    b.close().await?;
    result
}
