//! The compute race page in real headless Chromium: a race started from the form while the page
//! hears none of the live events, then its live socket dropped: on reconnect the page re-reads the
//! run (stored events, then the summary) and shows every machine's figures and the verdict. The
//! history page then shows the stored race with its own figures (not the text race's columns).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::json;

use crate::support::{RealAgent, TestCentral, machine, temp_results_dir};
use crate::webdriver::Browser;

const PAGE_TIMEOUT: Duration = Duration::from_secs(20);
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compute_page_resyncs_after_a_websocket_drop_and_history_shows_its_figures() -> Result<()> {
    if std::env::var_os("BENCH_SKIP_BROWSER_TESTS").is_some() {
        eprintln!("BENCH_SKIP_BROWSER_TESTS is set: skipping the browser test");
        return Ok(());
    }
    ensure!(
        crate::webdriver::available(),
        "chromium/chromedriver not found: install the Debian packages chromium and chromium-driver"
    );
    let a = RealAgent::with_config("a", |_| {}).await;
    let b = RealAgent::with_config("b", |_| {}).await;
    let central =
        TestCentral::spawn(vec![machine("a", &a.base_url), machine("b", &b.base_url)], temp_results_dir()).await;
    central.wait_online(&["a", "b"]).await;
    let browser = Browser::launch(1400, 1100).await?;
    let result = drive(&browser, &central).await;
    browser.close().await?;
    result
}

async fn drive(b: &Browser, central: &TestCentral) -> Result<()> {
    b.goto(&central.url("/compute")).await?;
    b.wait_for(
        "the live socket",
        "return BR.connections.length === 1 && BR.connections[0].socket.readyState === 1",
        PAGE_TIMEOUT,
    )
    .await?;
    // The page hears nothing live from here on: all it shows must come from re-reading the run.
    b.script("window.__dropped = BR.connections[0].socket; window.__dropped.onmessage = null; return null", vec![])
        .await?;
    b.script(
        "document.getElementById('n').value = '2000000'; document.getElementById('threads').value = '1';
         document.getElementById('repeat').value = '3'; return null",
        vec![],
    )
    .await?;
    b.click(&b.find("#run").await?).await?;
    let run_id = b
        .wait_for(
            "the run's address",
            "const q = new URLSearchParams(location.search); return q.get('run_id')",
            PAGE_TIMEOUT,
        )
        .await?;
    let run_id = run_id.as_str().context("run id")?.to_owned();
    central.wait_run_end_within(&run_id, RUN_TIMEOUT).await;
    // Whatever the page picked up right after starting the run is wiped, so only the re-sync
    // after the drop can bring the figures and the verdict back.
    b.script(
        "const v = document.getElementById('wl-verdict'); v.replaceChildren(); v.hidden = true;
         document.getElementById('wl-cards').replaceChildren(); return null",
        vec![],
    )
    .await?;
    b.script("window.__dropped.close(); return null", vec![]).await?;
    let shown = b
        .wait_for(
            "the verdict after the re-sync",
            "const v = document.querySelector('#wl-verdict .winner');
             const cards = [...document.querySelectorAll('#wl-cards .card')];
             return v && cards.length === 2 && cards.every(c => c.querySelector('.wl-stats').textContent.includes('π(n)'))
               ? { winner: v.textContent, stats: cards.map(c => [c.dataset.machine, c.querySelector('.wl-stats').textContent]) }
               : null",
            RUN_TIMEOUT,
        )
        .await?;
    ensure!(
        b.script("return BR.connections[0].socket !== window.__dropped", vec![]).await? == json!(true),
        "a new socket"
    );
    let summary = central.read_json(&run_id, "summary.json");
    ensure!(
        shown["winner"] == summary["workload_comparison"]["winner_text"],
        "verdict shown {shown}, stored {summary}"
    );
    for stat in shown["stats"].as_array().context("stats")? {
        let text = stat[1].as_str().unwrap_or_default();
        ensure!(text.contains("M integers/s") && text.contains("π(n) = 148933"), "card {stat}");
    }

    // The history page shows the stored compute race with its figures and verdict.
    b.goto(&central.url(&format!("/history?run_id={run_id}"))).await?;
    let rows = b
        .wait_for(
            "the compute figures",
            "const rows = [...document.querySelectorAll('#workload-table tbody tr')];
             return rows.length === 2 ? rows.map(r => [r.dataset.machine,
               r.querySelector('[data-metric=ops_per_s]').textContent.replace(/,/g, ''), r.querySelector('[data-metric=result]').textContent]) : null",
            PAGE_TIMEOUT,
        )
        .await?;
    for row in rows.as_array().context("rows")? {
        let id = row[0].as_str().unwrap_or_default();
        let m = summary["machines"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["machine_id"] == id))
            .context("machine")?;
        let ops = m["ops_per_s"].as_f64().context("ops_per_s")?;
        ensure!(row[1] == format!("{:.1}", ops / 1e6), "history row {row} for {m}");
        ensure!(row[2] == "148933", "history row {row}");
    }
    let winner = b.script("return document.getElementById('workload-winner').textContent", vec![]).await?;
    ensure!(winner == summary["workload_comparison"]["winner_text"], "history verdict {winner}");
    let title = b
        .script(
            "const li = document.querySelector(`#runs-list li[data-run-id=\"${arguments[0]}\"] strong`); return li && li.textContent",
            vec![json!(run_id)],
        )
        .await?;
    ensure!(title == "compute", "history list title {title}");
    Ok(())
}
