//! The capacity page in real headless Chromium: two agents over slot engines (4 and 2 slots),
//! a capacity race started from the form, live cards (achieved rps, in flight, TTFT), the curves
//! (uPlot) and the verdict; then the stored race re-opened from its address. A screenshot of the
//! finished page is kept as `target/capacity-race.png`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, ensure};
use serde_json::Value;

use crate::capacity::{capacity_body, engine_script, wait_calibrated};
use crate::support::{RealAgent, TestCentral, machine, temp_results_dir};
use crate::webdriver::Browser;

const PAGE_TIMEOUT: Duration = Duration::from_secs(20);
const RACE_TIMEOUT: Duration = Duration::from_secs(240);

fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capacity_page_races_two_machines_live_and_shows_curves_and_the_verdict() -> Result<()> {
    if std::env::var_os("BENCH_SKIP_BROWSER_TESTS").is_some() {
        eprintln!("BENCH_SKIP_BROWSER_TESTS is set: skipping the browser test");
        return Ok(());
    }
    ensure!(
        crate::webdriver::available(),
        "chromium/chromedriver not found: install the Debian packages chromium and chromium-driver"
    );
    let _turn = crate::capacity::ONE_AT_A_TIME.lock().await;
    let four = bench_agent::testkit::slot_engine::SlotEngine::spawn(engine_script(4));
    let two = bench_agent::testkit::slot_engine::SlotEngine::spawn(engine_script(2));
    let agents = [RealAgent::openai("four", &four.base_url).await, RealAgent::openai("two", &two.base_url).await];
    let mut m4 = machine("four", &agents[0].base_url);
    m4.label = Some("Four slots".into());
    let mut m2 = machine("two", &agents[1].base_url);
    m2.label = Some("Two slots".into());
    let central = TestCentral::spawn(vec![m4, m2], temp_results_dir()).await;
    central.wait_online(&["four", "two"]).await;
    wait_calibrated(&[&agents[0], &agents[1]]).await;
    let b = Browser::launch(1400, 1500).await?;
    let result = drive(&b, &central).await;
    if let Ok(png) = b.screenshot().await {
        let name = if result.is_ok() { "capacity-race.png" } else { "capacity-race-failed.png" };
        let _ = std::fs::write(target_dir().join(name), png);
    }
    b.close().await?;
    result
}

async fn drive(b: &Browser, central: &TestCentral) -> Result<()> {
    b.goto(&central.url("/capacity")).await?;
    b.wait_for(
        "the model selector to offer the slot model",
        "return [...document.querySelectorAll('#capacity-model option')].some(o => o.value === 'slots')",
        PAGE_TIMEOUT,
    )
    .await?;
    // The form's fields, as a user types them.
    let body = capacity_body(3);
    let set = |id: &str, v: &Value| {
        format!(
            "document.getElementById('{id}').value = '{}';",
            v.as_f64().map_or_else(|| v.as_str().unwrap_or("").to_owned(), |x| x.to_string())
        )
    };
    let mut fill = String::new();
    for (id, key) in [
        ("percentile", "percentile"),
        ("start", "start"),
        ("max", "max"),
        ("duration_s", "duration_s"),
        ("input_tokens", "input_tokens"),
        ("max_tokens", "max_tokens"),
        ("repeat", "repeat"),
    ] {
        fill.push_str(&set(id, &body[key]));
    }
    fill.push_str(
        "document.getElementById('slo_ttft_ms').value = '350'; document.getElementById('warmup_s').value = '0.6';",
    );
    fill.push_str("document.getElementById('search').value = 'concurrency'; return null;");
    b.script(&fill, vec![]).await?;
    b.click(&b.find("#capacity-run").await?).await?;
    // Live: both cards show requests in flight and a TTFT while the steps run.
    b.wait_for(
        "the race to start",
        "const s = document.getElementById('capacity-status'); return s && s.textContent.includes('Capacity race') ? true : (s && s.textContent.includes('not started') ? s.textContent : null);",
        PAGE_TIMEOUT,
    )
    .await?;
    let started = b.script("return document.getElementById('capacity-status').textContent", vec![]).await?;
    ensure!(started.as_str().is_some_and(|t| t.starts_with("Capacity race")), "start: {started}");
    let live = b
        .wait_for(
            "live figures on both cards",
            "const v = (m, k) => { const c = document.querySelector(`.card[data-machine=${m}] .${k} .stat-value`); return c && c.textContent; };
             const ok = ['four', 'two'].every(m => v(m, 'in-flight') && v(m, 'in-flight') !== '–' && v(m, 'ttft-p99') !== '–');
             return ok ? ['four', 'two'].map(m => [v(m, 'in-flight'), v(m, 'ttft-p99')]) : null;",
            RACE_TIMEOUT,
        )
        .await?;
    eprintln!("live cards: {live}");
    let winner = b
        .wait_for(
            "the verdict",
            "const w = document.getElementById('capacity-winner'); return w && w.textContent.includes('serves more') ? w.textContent : null;",
            RACE_TIMEOUT,
        )
        .await?;
    ensure!(winner.as_str().is_some_and(|t| t.contains("decided") && t.contains("Four slots")), "winner: {winner}");
    // Every node of the panel is text meant for the reader (no stray "null" or "undefined").
    let panel = b.script("return document.getElementById('capacity-verdict').textContent", vec![]).await?;
    let panel = panel.as_str().unwrap_or_default().to_owned();
    ensure!(!panel.contains("null") && !panel.contains("undefined"), "verdict panel: {panel}");
    let spec = b
        .script(
            "const id = new URLSearchParams(location.search).get('run_id');
             return fetch(`/api/runs/${id}`).then(r => r.json()).then(d => d.metadata.spec);",
            vec![],
        )
        .await?;
    eprintln!("the race's spec: {spec}");
    let verdict = b.script("return document.getElementById('capacity-verdicts').textContent", vec![]).await?;
    let verdict = verdict.as_str().unwrap_or_default().to_owned();
    ensure!(
        verdict.contains(
            "Four slots sustains 4 concurrent requests within p90 TTFT ≤ 350 ms, Two slots 2 concurrent requests"
        ) && verdict.contains("2.00× as much"),
        "verdict: {verdict}"
    );
    eprintln!("verdict on the page: {verdict}");
    // The curves: one uPlot chart each, a series per machine.
    let charts = b
        .wait_for(
            "two charts with a line per machine",
            "const c = ['chart-latency', 'chart-goodput'].map(id => document.querySelector(`#${id} canvas`));
             const legend = [...document.querySelectorAll('#chart-goodput .u-legend .u-series')].map(s => s.textContent);
             return c.every(Boolean) && legend.length >= 3 ? legend : null;",
            PAGE_TIMEOUT,
        )
        .await?;
    ensure!(charts.to_string().contains("Four slots") && charts.to_string().contains("Two slots"), "legend: {charts}");
    let table = b.script("return document.getElementById('capacity-table').innerText", vec![]).await?;
    ensure!(
        table
            .as_str()
            .is_some_and(|t| t.contains("4 concurrent requests") && t.contains("4, 4, 4") && t.contains("2, 2, 2")),
        "table: {table}"
    );
    // The informational shared-host warning is shown as such.
    let warnings = b
        .script("return [...document.querySelectorAll('#capacity-warnings li')].map(l => l.dataset.kind)", vec![])
        .await?;
    ensure!(warnings.as_array().is_some_and(|w| w.iter().all(|k| k == "shared_host")), "warnings: {warnings}");
    // The curves, for the record.
    b.script("document.getElementById('capacity-charts').scrollIntoView(); return null", vec![]).await?;
    if let Ok(png) = b.screenshot().await {
        let _ = std::fs::write(target_dir().join("capacity-curves.png"), png);
    }
    // The stored race re-opened from its address says the same.
    let url: Value = b.script("return location.href", vec![]).await?;
    let url = url.as_str().unwrap_or_default().to_owned();
    ensure!(url.contains("/capacity?run_id="), "address: {url}");
    b.goto(&url).await?;
    let again = b
        .wait_for(
            "the stored verdict",
            "const v = document.getElementById('capacity-verdicts'); return v && v.textContent.includes('2.00× as much') ? v.textContent : null;",
            PAGE_TIMEOUT,
        )
        .await?;
    ensure!(again.as_str() == Some(verdict.as_str()), "stored: {again} vs live: {verdict}");
    Ok(())
}
