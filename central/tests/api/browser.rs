//! Browser tests in real headless Chromium (through chromedriver): two real agents over the mock
//! engine with different speeds, one machine that is offline, and central, all in-process on
//! port 0. The race page must stream tokens into both cards, render the comparison with the
//! faster machine as winner, and the history page must re-render the stored run with its text,
//! metrics and baseline deltas.
//!
//! Needs the Debian packages `chromium` and `chromium-driver` (`scripts/test` installs them).
//! Set `BENCH_SKIP_BROWSER_TESTS=1` to skip on a machine without them; otherwise their absence
//! fails the test with that hint rather than passing silently.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use crate::support::{RealAgent, TestCentral, http_client, machine, of, temp_results_dir};
use crate::webdriver::Browser;

const MODEL: &str = "mock-llm";
/// Up to this long for anything a run does (it takes ~3 s; CI machines are slow and shared).
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

fn labelled(id: &str, label: &str, url: &str) -> bench_central::config::MachineConfig {
    let mut m = machine(id, url);
    m.label = Some(label.into());
    m
}

/// The workspace `target/` directory (screenshots land there).
fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// A JS expression's value on the page.
async fn js(b: &Browser, script: &str) -> Result<Value> {
    b.script(script, vec![]).await
}

/// The text of the first element matching `css`, read in one script (re-rendered parts of the
/// page would make a found element stale between two WebDriver calls).
async fn text_of(b: &Browser, css: &str) -> Result<String> {
    let v = b
        .script("const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", vec![json!(css)])
        .await?;
    v.as_str().map(str::to_owned).with_context(|| format!("no element {css}"))
}

/// A card's field text (`.status`, `.output.content`, `[data-metric=toks]` …).
async fn card_text(b: &Browser, machine_id: &str, sel: &str) -> Result<String> {
    let v = b
        .script(
            "const c = document.querySelector(`.card[data-machine=\"${arguments[0]}\"]`);
             const e = c && c.querySelector(arguments[1]);
             return e ? e.textContent : null;",
            vec![json!(machine_id), json!(sel)],
        )
        .await?;
    v.as_str().map(str::to_owned).with_context(|| format!("no {sel} in the card of {machine_id}"))
}

fn number(text: &str) -> Option<f64> {
    let cleaned: String = text.chars().filter(|c| c.is_ascii_digit() || *c == '.').collect();
    cleaned.parse().ok()
}

/// Two mock agents (fast: 60 tok/s, slow: 20 tok/s), an offline machine, central, and a browser.
struct Bench {
    central: TestCentral,
    browser: Browser,
    _agents: [RealAgent; 2],
}

/// A label with markup: it must be shown as text, never parsed as HTML.
const FAST_LABEL: &str = "Fast <b>box</b>";

impl Bench {
    /// `None` when `BENCH_SKIP_BROWSER_TESTS` is set; an error when Chromium is missing.
    async fn start() -> Result<Option<Bench>> {
        if std::env::var_os("BENCH_SKIP_BROWSER_TESTS").is_some() {
            eprintln!("BENCH_SKIP_BROWSER_TESTS is set: skipping the browser test");
            return Ok(None);
        }
        ensure!(
            crate::webdriver::available(),
            "chromium/chromedriver not found: install the Debian packages chromium and chromium-driver \
             (scripts/test does), or set CHROME_BIN/CHROMEDRIVER"
        );
        let fast = RealAgent::mock("fast", &[MODEL], 60.0, 60.0).await;
        let slow = RealAgent::mock("slow", &[MODEL], 250.0, 20.0).await;
        // An address nobody listens on: the machine is offline and must be shown as skipped.
        let gone_url = format!("http://{}", std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?);
        let machines = vec![
            labelled("fast", FAST_LABEL, &fast.base_url),
            labelled("slow", "Slow box", &slow.base_url),
            labelled("gone", "Gone box", &gone_url),
        ];
        let central = TestCentral::spawn(machines, temp_results_dir()).await;
        central.wait_online(&["fast", "slow"]).await;
        let browser = Browser::launch(1400, 1100).await?;
        Ok(Some(Bench { central, browser, _agents: [fast, slow] }))
    }

    fn url(&self, path: &str) -> String {
        self.central.url(path)
    }

    /// Closes the browser; on failure first keeps a screenshot as `target/<name>-failed.png`.
    async fn finish(self, name: &str, result: Result<()>) -> Result<()> {
        if result.is_err()
            && let Ok(png) = self.browser.screenshot().await
        {
            let _ = std::fs::write(target_dir().join(format!("{name}-failed.png")), png);
        }
        self.browser.close().await?;
        result
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_streams_into_both_cards_crowns_the_faster_machine_and_history_replays_it() -> Result<()> {
    let Some(bench) = Bench::start().await? else { return Ok(()) };
    let result = race_and_history(&bench.browser, &bench.central.base_url, FAST_LABEL).await;
    bench.finish("race", result).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_page_shows_the_fleet_and_race_page_resyncs_after_a_websocket_drop() -> Result<()> {
    let Some(bench) = Bench::start().await? else { return Ok(()) };
    let result = websocket_drop(&bench).await;
    bench.finish("resync", result).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_page_runs_a_sweep_and_charts_one_line_per_machine() -> Result<()> {
    let Some(bench) = Bench::start().await? else { return Ok(()) };
    let result = sweep_page(&bench).await;
    bench.finish("sweep", result).await
}

async fn open_race_page(b: &Browser, url: &str) -> Result<()> {
    b.goto(url).await?;
    b.wait_for(
        "the model selector to offer the mock model",
        &format!("return [...document.querySelectorAll('#model option')].some(o => o.value === '{MODEL}')"),
        PAGE_TIMEOUT,
    )
    .await?;
    Ok(())
}

async fn websocket_drop(bench: &Bench) -> Result<()> {
    let b = &bench.browser;
    // The machines page first: state, engine and models of each machine.
    b.goto(&bench.url("/machines")).await?;
    let states = b
        .wait_for(
            "three machine cards",
            "const c = [...document.querySelectorAll('#machines .card')];
             return c.length === 3 ? c.map(x => [x.dataset.machine, x.querySelector('.status').textContent,
               [...x.querySelectorAll('.models .badge')].map(m => m.textContent).join(',')]) : null;",
            PAGE_TIMEOUT,
        )
        .await?;
    ensure!(
        states == json!([["fast", "online", MODEL], ["slow", "online", MODEL], ["gone", "offline", ""]]),
        "machines page: {states}"
    );
    // Model fit is shown, and never guessed: the mock engine reports no model size.
    let fit = text_of(b, ".card[data-machine=fast] .models .fit").await?;
    ensure!(fit == "fit unknown", "machines page fit: {fit:?}");
    open_race_page(b, &bench.url("/")).await?;
    let fit = b
        .wait_for(
            "the model fit of the fast machine",
            "const f = document.querySelector('#model-holders .fit[data-machine=fast]'); return f && f.textContent",
            PAGE_TIMEOUT,
        )
        .await?;
    ensure!(fit.as_str().is_some_and(|t| t.contains("fit unknown") && t.contains("size")), "race page fit: {fit}");
    b.fill(&b.find("#max_tokens").await?, "64").await?;
    // One repeat: the page shows each repeat's text, the store keeps the first.
    b.fill(&b.find("#repeat").await?, "1").await?;
    b.click(&b.find("#run").await?).await?;
    b.wait_for(
        "the slow machine streaming",
        "return document.querySelector('.card[data-machine=slow] .output.content').textContent.length > 0",
        RUN_TIMEOUT,
    )
    .await?;
    // Drop the live socket mid-run: events sent meanwhile are missed, then re-read from the store.
    js(b, "window.__dropped = BR.connections[0].socket; window.__dropped.close(); return null").await?;
    b.wait_for(
        "a new live socket",
        "const s = BR.connections[0].socket; return s !== window.__dropped && s.readyState === 1",
        PAGE_TIMEOUT,
    )
    .await?;
    // One repeat: no winner is named, and the verdict says what to do.
    let status = b
        .wait_for(
            "the verdict",
            "const v = document.querySelector('#verdict'); return v && v.dataset.status;",
            RUN_TIMEOUT,
        )
        .await?;
    ensure!(status == "undecided", "verdict after one repeat: {status}");
    ensure!(
        js(b, "return document.querySelector('#winner-name') === null").await? == true,
        "no winner after one repeat"
    );
    let few = text_of(b, "#verdict-few").await?;
    ensure!(few.contains("1 repeat: no verdict — run ≥ 3"), "verdict hint {few}");
    let run_id = text_of(b, "#run-link").await?;
    let detail = bench.central.get_json(&format!("/api/runs/{run_id}")).await;
    for id in ["fast", "slow"] {
        let shown = card_text(b, id, ".output.content").await?;
        let stored = detail["machines"][id]["output_text"].as_str().context("stored text")?;
        ensure!(shown == stored, "{id}: page shows {shown:?}, run stored {stored:?}");
        ensure!(card_text(b, id, "[data-metric=tokens]").await? == "64", "{id} token count after the re-sync");
    }
    // The slow machine ran for seconds: its card shows the runtime sampler's memory sparkline,
    // drawn from the runtime_metrics events of the run.
    let stored = bench.central.events(&run_id).await;
    ensure!(!of(&stored, "slow", "runtime_metrics").is_empty(), "a 3 s job has runtime samples");
    let line = card_text(b, "slow", ".telemetry [data-series=mem] .hint").await?;
    ensure!(line.starts_with("Mem ") && line.ends_with('%'), "telemetry line: {line:?}");
    // One click reruns the same race with 3 repeats.
    b.click(&b.find("#rerun-3").await?).await?;
    let js_new_run = format!(
        "const a = document.querySelector('#run-link'); return a && a.textContent !== '{run_id}' ? a.textContent : null;"
    );
    let rerun = b.wait_for("the rerun", &js_new_run, PAGE_TIMEOUT).await?;
    let rerun = rerun.as_str().context("rerun id")?;
    let spec = &bench.central.get_json(&format!("/api/runs/{rerun}")).await["metadata"]["spec"];
    ensure!(spec["repeat"] == 3 && spec["max_tokens"] == 64, "rerun spec {spec}");
    Ok(())
}

async fn sweep_page(bench: &Bench) -> Result<()> {
    let b = &bench.browser;
    b.goto(&bench.url("/sweep")).await?;
    b.wait_for(
        "the model checkbox",
        &format!("return !!document.querySelector('#sweep-models input[value=\"{MODEL}\"]:checked')"),
        PAGE_TIMEOUT,
    )
    .await?;
    let offline = js(b, "return document.querySelector('#sweep-machines input[value=gone]').disabled").await?;
    ensure!(offline == true, "the offline machine can be chosen");
    for (id, value) in [("ctx", "256"), ("sweep_count", "2"), ("parallel", "1,2"), ("runs", "1"), ("out_tokens", "8")] {
        b.fill(&b.find(&format!("#{id}")).await?, value).await?;
    }
    b.click(&b.find("#sweep-run").await?).await?;
    let states = b
        .wait_for(
            "both machines' sweeps done, with their total tok/s",
            // The last progress figures can render a frame after the row says done (a loaded
            // machine): the figure is waited for, not read at the first done.
            "const rows = [...document.querySelectorAll('#sweep-table tbody tr')];
             const st = rows.map(r => [r.dataset.machine, r.children[4].textContent, r.children[9].textContent]);
             return rows.length === 2 && st.every(s => s[1] === 'done' && /[0-9]/.test(s[2])) ? st : null;",
            RUN_TIMEOUT,
        )
        .await?;
    ensure!(states.to_string().contains("fast") && states.to_string().contains("slow"), "{states}");
    // Four charts (tok/s and TTFT against context and parallelism), each with one line per machine.
    let legends = b
        .wait_for(
            "the four sweep charts",
            "const charts = [...document.querySelectorAll('#sweep-charts .chart')];
             const names = charts.map(c => [...c.querySelectorAll('.u-legend .u-series')].slice(1)
               .map(s => s.querySelector('.u-label').textContent));
             return charts.length === 4 ? names : null;",
            RUN_TIMEOUT,
        )
        .await?;
    for names in legends.as_array().context("legends")? {
        ensure!(*names == json!([FAST_LABEL, "Slow box"]), "chart lines {names}");
    }
    // The figures follow the engines: the fast mock sustains about three times the slow one.
    let total = |id: &str| {
        format!("return document.querySelector('#sweep-table tr[data-machine={id}]').children[9].textContent")
    };
    let fast = number(js(b, &total("fast")).await?.as_str().unwrap_or_default()).context("fast total tok/s")?;
    let slow = number(js(b, &total("slow")).await?.as_str().unwrap_or_default()).context("slow total tok/s")?;
    ensure!(fast > slow * 1.5, "sweep total tok/s: fast {fast}, slow {slow}");

    // History shows the stored sweep: each machine's summary.csv rows (2 contexts × 2 parallel).
    let run_id = text_of(b, "#sweep-status a").await?;
    b.goto(&bench.url(&format!("/history?run_id={run_id}"))).await?;
    let rows = b
        .wait_for(
            "the stored sweep tables",
            "const t = [...document.querySelectorAll('#comparison table[data-machine]')];
             return t.length === 2 ? t.map(x => [x.dataset.machine, x.querySelectorAll('tbody tr').length]) : null;",
            PAGE_TIMEOUT,
        )
        .await?;
    ensure!(rows == json!([["fast", 4], ["slow", 4]]), "stored sweep rows {rows}");
    Ok(())
}

async fn race_and_history(b: &Browser, central: &str, fast_label: &str) -> Result<()> {
    // --- Race page: preflight before the run.
    open_race_page(b, &format!("{central}/")).await?;
    let preflight = text_of(b, "#preflight").await?;
    ensure!(preflight.contains("2 machines will race"), "preflight: {preflight}");
    ensure!(preflight.contains("Gone box"), "preflight does not name the offline machine: {preflight}");
    let label = js(b, "return document.querySelector('.card[data-machine=fast] h3').textContent").await?;
    ensure!(label == fast_label, "label shown as {label}");
    let injected = js(b, "return document.querySelectorAll('.card h3 b, #preflight b').length").await?;
    ensure!(injected == 0, "machine label markup was parsed as HTML");

    // --- Start the race.
    let prompt = "Race prompt: say something about lighthouses.";
    b.fill(&b.find("#prompt").await?, prompt).await?;
    b.fill(&b.find("#max_tokens").await?, "48").await?;
    b.click(&b.find("#run").await?).await?;

    // Tokens stream into both cards while the slow machine is still running.
    b.wait_for(
        "tokens in both cards while the slow machine runs",
        "const out = (id) => document.querySelector(`.card[data-machine=${id}] .output.content`).textContent;
         const st = document.querySelector('.card[data-machine=slow] .status').textContent;
         return out('fast').length > 0 && out('slow').length > 0 && st === 'running';",
        RUN_TIMEOUT,
    )
    .await?;
    let live_toks = card_text(b, "slow", "[data-metric=toks]").await?;
    ensure!(live_toks.starts_with('≈') || live_toks == "–", "live tok/s is marked as an estimate: {live_toks}");

    // The comparison renders once both machines are done.
    let winner = b
        .wait_for(
            "the winner",
            "const w = document.querySelector('#winner-name'); return w && w.textContent;",
            RUN_TIMEOUT,
        )
        .await?;
    ensure!(winner == fast_label, "winner is {winner}, expected the fast machine");
    let metric = text_of(b, "#winner-metric").await?;
    ensure!(metric.contains("Decided by"), "the page must say which metric decides: {metric}");
    let order =
        js(b, "return [...document.querySelectorAll('#finish-order li[data-machine]')].map(li => li.dataset.machine)")
            .await?;
    ensure!(order == json!(["fast", "slow"]), "finishing order {order}");
    let winner_card = js(b, "return document.querySelector('.card.winner').dataset.machine").await?;
    ensure!(winner_card == "fast", "winner card {winner_card}");
    ensure!(card_text(b, "gone", ".status").await? == "skipped", "the offline machine is not marked skipped");
    let bars = js(b, "return document.querySelectorAll('#comparison .bar-row').length").await?;
    ensure!(bars == 4, "expected 2 bar charts × 2 machines, got {bars}");
    // The verdict in words: decided (the form's default is 3 repeats), one sentence per metric,
    // each warning on the card of the machine it concerns, each card led by the rank_by figure.
    ensure!(js(b, "return document.querySelector('#repeat').value").await? == "3", "form defaults to 3 repeats");
    let status = js(b, "return document.querySelector('#verdict').dataset.status").await?;
    ensure!(status == "decided", "verdict {status}: {}", text_of(b, "#verdict").await?);
    ensure!(text_of(b, "#verdict-status").await?.eq_ignore_ascii_case("decided"), "verdict badge");
    let sentence = js(b, "return document.querySelector('#verdicts li[data-metric=decode_tok_s]').textContent").await?;
    ensure!(
        sentence.as_str().is_some_and(|t| t.contains(&format!("{fast_label} decodes")) && t.contains("95% CI")),
        "verdict sentence {sentence}"
    );
    let card_warnings = js(
        b,
        "return [...document.querySelectorAll('.card[data-machine=slow] .fairness-warning')].map(w => w.dataset.kind)",
    )
    .await?;
    ensure!(
        card_warnings.as_array().is_some_and(|k| k.contains(&json!("mock_engine"))),
        "warnings on the slow card: {card_warnings}"
    );
    let lead = card_text(b, "fast", "[data-metric=lead]").await?;
    ensure!(
        lead.contains("tok/s") && lead.contains("client-measured") && lead.contains("3 warm repeats"),
        "card lead {lead}"
    );
    // Its interval is the geometric mean's (log scale): both bounds above 0.
    ensure!(lead.contains("geometric mean") && lead.contains("95% CI"), "card lead {lead}");
    let bounds: Vec<f64> = lead
        .split("95% CI ")
        .nth(1)
        .and_then(|t| t.split(')').next())
        .map(|t| t.split('–').filter_map(|x| x.trim().replace(',', "").parse().ok()).collect())
        .unwrap_or_default();
    ensure!(bounds.len() == 2 && bounds[0] > 0.0 && bounds[0] <= bounds[1], "card interval {lead}");
    // The verdict leads with the ratio and says it once.
    ensure!(
        sentence.as_str().is_some_and(|t| t.contains("× as fast as Slow box") && t.matches("×").count() >= 2),
        "ratio sentence {sentence}"
    );
    // The synchronized start: every card's clock offset, the achieved skew in the result.
    let clock = b
        .wait_for(
            "the clock record",
            "const c = document.querySelector('#clock-info'); return c && c.textContent;",
            PAGE_TIMEOUT,
        )
        .await?;
    ensure!(
        clock.as_str().is_some_and(|t| t.contains("achieved start skew") && t.contains("Clock offsets")),
        "{clock}"
    );
    for id in ["fast", "slow"] {
        let line = card_text(b, id, "[data-metric=clock]").await?;
        ensure!(line.starts_with("clock ") && line.contains(" ms"), "{id} clock line {line:?}");
    }
    // One colour per machine: the card's edge is its bar's colour.
    let same = js(b, "const c = (id) => getComputedStyle(document.querySelector(`.card[data-machine=${id}]`)).borderTopColor;
                       const bar = (id) => getComputedStyle(document.querySelector(`#comparison .bar-row[data-machine=${id}] .bar-fill`)).backgroundColor;
                       return c('fast') === bar('fast') && c('slow') === bar('slow') && c('fast') !== c('slow');").await?;
    ensure!(same == true, "card and bar colours differ");

    let mut race_text = std::collections::HashMap::new();
    for id in ["fast", "slow"] {
        ensure!(card_text(b, id, ".status").await?.starts_with("done"), "{id} not done");
        let text = card_text(b, id, ".output.content").await?;
        ensure!(text.contains("mock"), "{id} output lacks the mock text: {text:?}");
        ensure!(card_text(b, id, "[data-metric=tokens]").await? == "48", "{id} token count");
        let ttft = card_text(b, id, "[data-metric=ttft]").await?;
        ensure!(!ttft.starts_with('≈') && ttft.ends_with("ms"), "{id} final TTFT shown as {ttft}");
        race_text.insert(id, text);
    }
    let fast_rate = number(&card_text(b, "fast", "[data-metric=toks]").await?).context("fast rate")?;
    let slow_rate = number(&card_text(b, "slow", "[data-metric=toks]").await?).context("slow rate")?;
    ensure!(fast_rate > slow_rate * 1.5, "fast {fast_rate} tok/s vs slow {slow_rate} tok/s");
    ensure!((40.0..80.0).contains(&fast_rate), "fast mock runs at 60 tok/s, page says {fast_rate}");

    // The client-ceiling warning: on exactly the cards whose ceiling_ratio is ≥ 0.5 (whatever the
    // mock's share of this machine's ceiling turned out to be), in the page's own words.
    let warning = js(b, "return RunView.ceilingWarning(0.8)").await?;
    ensure!(
        warning
            .as_str()
            .is_some_and(|t| t.contains("the tool, not the machine, may be the limit") && t.contains("80%")),
        "ceiling warning {warning}"
    );
    let below = js(b, "return [RunView.ceilingWarning(0.49), RunView.ceilingWarning(null)]").await?;
    ensure!(below == json!([null, null]), "no warning below 0.5 or when unknown: {below}");
    // A result card fed a job_done at 0.8 of the ceiling shows the warning; one at 0.2 does not.
    let cards = js(
        b,
        "const v = new RunView({ cardsEl: document.createElement('div'), comparisonEl: document.createElement('div') });
         const shown = (id, ratio) => {
           const st = v.addMachine({ id, label: id, accel: null });
           v.apply({ type: 'job_done', machine_id: id, job_id: id, seq: 1,
                     payload: { ceiling_ratio: ratio, decode_tok_s: 10, gen_tokens: 5, repeats: 1 } });
           return st.el.ceiling.hidden ? null : st.el.ceiling.textContent;
         };
         return [shown('near', 0.8), shown('far', 0.2)];",
    )
    .await?;
    ensure!(
        cards[0].as_str().is_some_and(|t| t.contains("the tool, not the machine, may be the limit"))
            && cards[1].is_null(),
        "ceiling warning on result cards: {cards}"
    );
    let run_id = text_of(b, "#run-link").await?;
    let detail: Value = http_client().get(format!("{central}/api/runs/{run_id}")).send().await?.json().await?;
    for id in ["fast", "slow"] {
        let s = detail["summary"]["machines"].as_array().into_iter().flatten().find(|m| m["machine_id"] == id);
        // Null when the agent's start-up calibration had not finished before the job did.
        let ratio = s.context("machine in the summary")?["ceiling_ratio"].as_f64();
        let shown =
            js(b, &format!("return !document.querySelector('.card[data-machine={id}] .ceiling-warning').hidden"))
                .await?;
        ensure!(
            shown == json!(ratio.is_some_and(|r| r >= 0.5)),
            "{id}: ceiling_ratio {ratio:?}, warning shown: {shown}"
        );
    }

    std::fs::create_dir_all(target_dir())?;
    // Frame the screenshot on what matters: skipped banner, result, and the cards.
    js(b, "document.getElementById('run-status').scrollIntoView(); return null").await?;
    let png = b.screenshot().await?;
    ensure!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
    std::fs::write(target_dir().join("race-finished.png"), &png)?;

    // --- History: the stored run, re-rendered from its files.
    let run_id = text_of(b, "#run-link").await?;
    b.goto(&format!("{central}/history?run_id={run_id}")).await?;
    b.wait_for(
        "the stored run",
        "const w = document.querySelector('#winner-name'); return w && w.textContent;",
        PAGE_TIMEOUT,
    )
    .await?;
    let listed = js(b, &format!("return !!document.querySelector('#runs-list li[data-run-id=\"{run_id}\"]')")).await?;
    ensure!(listed == true, "run {run_id} not in the runs list");
    let exports =
        js(b, "return [...document.querySelectorAll('.run-actions a[href*=export]')].map(a => a.href)").await?;
    for href in exports.as_array().into_iter().flatten().filter_map(Value::as_str) {
        let res = http_client().get(href).send().await?;
        ensure!(res.status() == 200 && res.text().await?.contains(&run_id), "export link {href}");
    }
    ensure!(exports.as_array().is_some_and(|a| a.len() == 2), "export links {exports}");
    ensure!(b.text(&b.find("#run-prompt").await?).await? == prompt, "stored prompt differs");
    for id in ["fast", "slow"] {
        let text = card_text(b, id, ".output.content").await?;
        ensure!(text == race_text[id], "{id}: history text {text:?} != race text {:?}", race_text[id]);
        ensure!(card_text(b, id, "[data-metric=tokens]").await? == "48", "{id} stored token count");
        ensure!(number(&card_text(b, id, "[data-metric=toks]").await?).is_some(), "{id} stored tok/s");
    }
    ensure!(js(b, "return document.querySelector('.card.winner').dataset.machine").await? == "fast");

    // Pin it as baseline, race again through the API, and see deltas on the new run.
    b.click(&b.find("#pin").await?).await?;
    b.wait_for(
        "the baseline mark",
        "return document.querySelector('#baseline-info').textContent.includes('Baseline')",
        PAGE_TIMEOUT,
    )
    .await?;
    // The baseline is a link, not browser state: the share link names it, and opening the
    // second run with `baseline=` shows the deltas.
    let link = js(b, "return document.querySelector('#baseline-link').href").await?;
    let link = link.as_str().context("share link")?.to_owned();
    ensure!(link.contains(&format!("baseline={run_id}")), "share link {link}");
    let stored = js(b, "return Object.keys(localStorage).filter(k => k.includes('baseline')).length").await?;
    ensure!(stored == json!(0), "the baseline must not live in localStorage");
    // The race page follows a race started elsewhere (here: the API) and shows its settings.
    b.goto(&format!("{central}/")).await?;
    b.wait_for("the live socket", "return document.querySelector('#conn.up') !== null", PAGE_TIMEOUT).await?;
    let http = http_client();
    let created: Value = http
        .post(format!("{central}/api/runs"))
        .json(&json!({"model": MODEL, "prompt": "A second, different prompt.", "max_tokens": 24, "repeat": 3}))
        .send()
        .await?
        .json()
        .await?;
    let second = created["run_id"].as_str().context("second run id")?.to_owned();
    let followed = b
        .wait_for(
            "the race page to follow the API's run and show its settings",
            &format!(
                "const a = document.querySelector('#run-link');
                 const p = document.querySelector('#prompt').value;
                 return a && a.textContent === '{second}' && p === 'A second, different prompt.'
                   ? [p, document.querySelector('#max_tokens').value] : null;"
            ),
            RUN_TIMEOUT,
        )
        .await?;
    ensure!(followed == json!(["A second, different prompt.", "24"]), "race page settings: {followed}");
    // The card's live chart: round, distinct y ticks whatever the rate.
    let ticks =
        js(b, "return [[0.8, 8.05, 76, 1234]].flatMap(maxes => maxes.map(m => Charts.niceTicks(0, m, 3)));").await?;
    for t in ticks.as_array().context("ticks")? {
        let t: Vec<f64> = t.as_array().context("ticks")?.iter().filter_map(Value::as_f64).collect();
        ensure!(t.len() >= 3 && t[0] == 0.0 && t.windows(2).all(|w| w[1] > w[0]), "ticks {t:?}");
    }
    let labels = b
        .wait_for(
            "a live chart's y labels",
            "if (!window.__chart) {
               const box = document.createElement('div'); box.style.width = '320px'; document.body.appendChild(box);
               window.__chart = Charts.liveLine(box, {}); window.__chart.set([0, 1, 2], [60, 61, 59]);
             }
             const v = window.__chart.plot.axes[1]._values; return v && v.length ? v : null;",
            PAGE_TIMEOUT,
        )
        .await?;
    let labels: Vec<&str> = labels.as_array().context("labels")?.iter().filter_map(Value::as_str).collect();
    ensure!(labels == ["0 tok/s", "20 tok/s", "40 tok/s", "60 tok/s"], "y ticks {labels:?}");
    // An open tie offers the rerun its repeats_needed asks for (at most a run's 1000).
    let offered = js(
        b,
        "const out = [];
         for (const needed of [12, 5000]) {
           const box = document.createElement('div');
           const c = { rank_by: 'decode_tok_s', min_effect_pct: 2, metrics: [], verdicts: [], fairness: { fair: true, warnings: [] },
                       outputs: { compared: false }, winner: { status: 'tie', reason: 'tie on decode_tok_s', repeats_needed: needed } };
           let asked = null;
           Verdict.render(box, c, { onRerun: (n) => { asked = n; } });
           box.querySelector('#rerun-needed').click();
           out.push([box.querySelector('#verdict-repeats').textContent, asked]);
         }
         return out;",
    )
    .await?;
    ensure!(
        offered[0][0]
            .as_str()
            .is_some_and(|t| t.starts_with("About 12 repeats per machine would settle a 2% difference"))
            && offered[0][1] == 12
            && offered[1][1] == 1000,
        "rerun offer {offered}"
    );
    // Chart ticks carry their unit and enough decimals to differ.
    let ticks =
        js(b, "return [Charts.tickLabels([3, 3.05, 3.1], 's'), Charts.tickLabels([0, 10, 20], ' tok/s')]").await?;
    ensure!(ticks == json!([["3.00s", "3.05s", "3.10s"], ["0 tok/s", "10 tok/s", "20 tok/s"]]), "chart ticks {ticks}");
    b.goto(&format!("{central}/history?run_id={second}&baseline={run_id}")).await?;
    let deltas = b
        .wait_for(
            "baseline deltas on the second run",
            "const d = document.querySelectorAll('.card[data-machine=fast] .deltas [data-delta]');
             const w = document.querySelector('#winner-name');
             return w && d.length === 3 ? [...d].map(x => x.className + ' ' + x.textContent) : null;",
            RUN_TIMEOUT,
        )
        .await?;
    // Half the tokens at the same rate: total time must be better (green) than the baseline's.
    let total = deltas.as_array().into_iter().flatten().filter_map(Value::as_str).find(|d| d.contains("total"));
    ensure!(total.is_some_and(|t| t.contains("better")), "total delta {deltas}");

    // Generated text is untrusted: the run view must show markup as text.
    let escaped = js(
        b,
        "const cards = document.createElement('div'), cmp = document.createElement('div');
         const v = new RunView({ cardsEl: cards, comparisonEl: cmp });
         v.reset('x', [BR.machine({ machine_id: 'm', label: 'm' })]);
         const evil = '<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>';
         v.apply({ type: 'job_started', machine_id: 'm', job_id: 'j', seq: 1, payload: { started_at_s: 1 } });
         v.apply({ type: 'llm_token', machine_id: 'm', job_id: 'j', seq: 2, payload: { text: evil, timestamp_s: 1.1 } });
         const out = cards.querySelector('.output.content');
         return [out.textContent === evil, cards.querySelectorAll('img, script').length];",
    )
    .await?;
    ensure!(escaped == json!([true, 0]), "generated text was not escaped: {escaped}");

    // Delete the second run from the page: it leaves the list and the API.
    b.click(&b.find("#delete").await?).await?;
    b.accept_alert(PAGE_TIMEOUT).await?;
    b.wait_for(
        "the deleted run to leave the list",
        &format!("return !document.querySelector('#runs-list li[data-run-id=\"{second}\"]') && !!document.querySelector('#runs-list li')"),
        PAGE_TIMEOUT,
    )
    .await?;
    let gone = http_client().get(format!("{central}/api/runs/{second}")).send().await?.status();
    ensure!(gone == 404, "deleted run answers {gone}");

    // Filters come from the address (a filtered list is a link); the list shows machine labels.
    b.goto(&format!("{central}/history?model=no-such-model")).await?;
    b.wait_for(
        "the filtered, empty list",
        "return document.querySelector('#runs-list').textContent.includes('No run matches')
            && document.querySelector('#filters [name=model]').value === 'no-such-model'",
        PAGE_TIMEOUT,
    )
    .await?;
    b.goto(&format!("{central}/history?model={MODEL}")).await?;
    let labels = b
        .wait_for(
            "machine labels in the runs list",
            "const l = document.querySelector('#runs-list li .run-machines'); return l ? l.textContent : null;",
            PAGE_TIMEOUT,
        )
        .await?;
    ensure!(labels.as_str().is_some_and(|t| t.contains(fast_label)), "runs list shows labels: {labels}");
    Ok(())
}

/// The image race page: two agents on protocol-faithful fake ComfyUIs (one slower), central and
/// a browser. Previews must appear while sampling, the final images must load from central, the
/// verdict must show, and the page must load nothing from outside central.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_race_page_shows_previews_then_images_and_the_verdict() -> Result<()> {
    use bench_agent::testkit::fake_comfy::{FakeComfy, FakeComfyScript};
    use bench_agent::workload::config::ImageEngineSettings;
    use bench_shared::workload::image::ImageEngineKind;
    if std::env::var_os("BENCH_SKIP_BROWSER_TESTS").is_some() {
        return Ok(());
    }
    ensure!(crate::webdriver::available(), "chromium/chromedriver not found (scripts/test installs them)");
    let fast = FakeComfy::spawn(FakeComfyScript { step_ms: 40, ..FakeComfyScript::default() }).await;
    let slow = FakeComfy::spawn(FakeComfyScript { step_ms: 90, ..FakeComfyScript::default() }).await;
    let a = RealAgent::with_config("fast", |c| {
        c.image_engine = Some(ImageEngineSettings::new(ImageEngineKind::Comfyui, &fast.base_url))
    })
    .await;
    let b = RealAgent::with_config("slow", |c| {
        c.image_engine = Some(ImageEngineSettings::new(ImageEngineKind::Comfyui, &slow.base_url))
    })
    .await;
    let central = TestCentral::spawn(
        vec![labelled("fast", "Fast GPU", &a.base_url), labelled("slow", "Slow GPU", &b.base_url)],
        temp_results_dir(),
    )
    .await;
    central.wait_online(&["fast", "slow"]).await;
    let browser = Browser::launch(1400, 1100).await?;
    let result = async {
        browser.goto(&central.url("/image")).await?;
        let deadline = std::time::Instant::now() + PAGE_TIMEOUT;
        while js(&browser, "return document.querySelectorAll('#checkpoint option').length").await?.as_u64() != Some(1) {
            ensure!(std::time::Instant::now() < deadline, "the checkpoint list never filled");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        js(&browser, "document.getElementById('steps').value = 12; document.getElementById('width').value = 96; \
                      document.getElementById('height').value = 96; document.getElementById('run').click(); return true").await?;
        // Previews appear while sampling.
        let deadline = std::time::Instant::now() + RUN_TIMEOUT;
        let mut saw_preview = false;
        loop {
            let previews = js(&browser, "return document.querySelectorAll('.card .preview img').length").await?.as_u64().unwrap_or(0);
            saw_preview |= previews > 0;
            let done = js(&browser, "const h = document.querySelector('#wl-verdict h2'); return h ? h.textContent : null").await?;
            if let Some(text) = done.as_str() {
                ensure!(saw_preview, "the run ended before any preview showed");
                ensure!(text.contains("win") || text.contains("no winner"), "verdict: {text}");
                break;
            }
            ensure!(std::time::Instant::now() < deadline, "the run did not end in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The final images load (decoded by the browser), from central.
        let deadline = std::time::Instant::now() + PAGE_TIMEOUT;
        loop {
            let loaded = js(&browser, "return [...document.querySelectorAll('.card .final img')].filter((i) => i.complete && i.naturalWidth === 96).length").await?;
            if loaded.as_u64() == Some(6) {
                break;
            }
            ensure!(std::time::Instant::now() < deadline, "final images did not load: {loaded}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stats = card_text(&browser, "fast", ".wl-stats").await?;
        ensure!(stats.contains("Queue") && stats.contains("Gen") && stats.contains("Total") && stats.contains("steps/s"), "{stats}");
        // Nothing from outside central: every script, style sheet and image is same-origin or data:.
        let external = js(&browser, "return [...document.querySelectorAll('script[src], link[href], img[src]')] \
            .map((e) => e.src || e.href).filter((u) => !u.startsWith(location.origin) && !u.startsWith('data:'))").await?;
        ensure!(external.as_array().is_some_and(Vec::is_empty), "external assets: {external}");
        let png = browser.screenshot().await?;
        std::fs::write(target_dir().join("image-race.png"), png)?;
        Ok(())
    }
    .await;
    if result.is_err()
        && let Ok(png) = browser.screenshot().await
    {
        let _ = std::fs::write(target_dir().join("image-race-failed.png"), png);
    }
    browser.close().await?;
    result
}

/// A mixed fleet in the browser: an original bench-race agent (a protocol-faithful fake) races
/// beside one of ours from the race form; both cards finish, the original one is badged and says
/// its figures are words timed by its own client, and the verdict blocks the token-rate claim
/// with `measurement_mismatch` while time to first token still compares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_race_with_an_original_agent_completes_in_the_browser() -> Result<()> {
    use crate::fake_original::FakeOriginal;
    if std::env::var_os("BENCH_SKIP_BROWSER_TESTS").is_some() {
        return Ok(());
    }
    ensure!(crate::webdriver::available(), "chromium/chromedriver not found (scripts/test installs them)");
    let old = FakeOriginal::spawn("old", &[MODEL], Duration::from_millis(30), Duration::from_millis(4)).await;
    let new = RealAgent::mock("new", &[MODEL], 20.0, 400.0).await;
    let central = TestCentral::spawn(
        vec![labelled("old", "Old box", &old.base_url), labelled("new", "New box", &new.base_url)],
        temp_results_dir(),
    )
    .await;
    central.wait_online(&["old", "new"]).await;
    let browser = Browser::launch(1400, 1100).await?;
    let b = &browser;
    let result = async {
        open_race_page(b, &central.url("/")).await?;
        let badge = js(
            b,
            "const x = document.querySelector('.card[data-machine=old] .badge.original'); return x && x.textContent",
        )
        .await?;
        ensure!(badge == "original agent", "the original agent's card badge: {badge}");
        b.fill(&b.find("#max_tokens").await?, "12").await?;
        b.click(&b.find("#run").await?).await?;
        let status = b
            .wait_for(
                "the verdict",
                "const v = document.querySelector('#verdict'); return v && v.dataset.status;",
                RUN_TIMEOUT,
            )
            .await?;
        for id in ["old", "new"] {
            ensure!(card_text(b, id, ".status").await?.starts_with("done"), "{id} not done");
            ensure!(!card_text(b, id, ".output.content").await?.is_empty(), "{id} shows no output");
        }
        let extra = card_text(b, "old", ".extra").await.unwrap_or_default();
        ensure!(extra.contains("words counted as tokens"), "the original card's figures line: {extra:?}");
        let kinds =
            js(b, "return [...document.querySelectorAll('.fairness-warning')].map(w => w.dataset.kind)").await?;
        ensure!(kinds.as_array().is_some_and(|k| k.contains(&json!("measurement_mismatch"))), "warnings {kinds}");
        let decode = js(
            b,
            "const li = document.querySelector('#verdicts li[data-metric=decode_tok_s]'); return li && li.textContent",
        )
        .await?;
        ensure!(decode.as_str().is_some_and(|t| t.contains("measurement_mismatch")), "decode sentence {decode}");
        let ttft = js(
            b,
            "const li = document.querySelector('#verdicts li[data-metric=ttft_ms]'); return li && li.textContent",
        )
        .await?;
        ensure!(ttft.as_str().is_some_and(|t| !t.contains("measurement_mismatch")), "TTFT sentence {ttft}");
        // Ranked on decode rate, which cannot be compared here: no winner is crowned.
        ensure!(status == "unfair", "verdict {status}: {}", text_of(b, "#verdict").await?);
        std::fs::write(target_dir().join("mixed-race.png"), b.screenshot().await?)?;
        Ok(())
    }
    .await;
    if result.is_err()
        && let Ok(png) = browser.screenshot().await
    {
        let _ = std::fs::write(target_dir().join("mixed-race-failed.png"), png);
    }
    browser.close().await?;
    central.stop().await;
    old.stop();
    result
}

/// The race form offers to pull the chosen model on the machines that lack it, shows a progress
/// bar per machine, and once the pull is done the machine joins the race; the machines page
/// shows which machine has which model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn race_form_pulls_a_missing_model_with_progress_and_the_machines_page_lists_models() -> Result<()> {
    use bench_agent::testkit::fake_ollama::{FakeModel, FakeOllama, FakeScript};
    if std::env::var_os("BENCH_SKIP_BROWSER_TESTS").is_some() {
        return Ok(());
    }
    ensure!(crate::webdriver::available(), "chromium/chromedriver not found (scripts/test installs them)");
    const PULLED: &str = "smollm2:135m";
    let with = FakeOllama::spawn(FakeScript {
        models: vec![FakeModel::new("llama3.2:1b"), FakeModel::new(PULLED)],
        ..FakeScript::default()
    })
    .await;
    let without = FakeOllama::spawn(FakeScript::default()).await;
    let has = RealAgent::ollama("has", &with.base_url).await;
    let lacks = RealAgent::ollama("lacks", &without.base_url).await;
    let central = TestCentral::spawn(
        vec![labelled("has", "Has it", &has.base_url), labelled("lacks", "Lacks it", &lacks.base_url)],
        temp_results_dir(),
    )
    .await;
    central.wait_online(&["has", "lacks"]).await;
    let browser = Browser::launch(1400, 1100).await?;
    let result = async {
        let b = &browser;
        b.goto(&central.url("/")).await?;
        b.wait_for(
            "the pulled model in the selector",
            &format!("return [...document.querySelectorAll('#model option')].some(o => o.value === '{PULLED}')"),
            PAGE_TIMEOUT,
        )
        .await?;
        js(b, &format!("const s = document.querySelector('#model'); s.value = '{PULLED}'; s.dispatchEvent(new Event('change')); return null")).await?;
        let offer = b
            .wait_for("the pull offer", "const e = document.querySelector('#pull-missing'); return e && e.textContent", PAGE_TIMEOUT)
            .await?;
        ensure!(offer == json!(format!("Pull {PULLED} on the 1 machine that lacks it")), "offer: {offer}");
        b.click(&b.find("#pull-missing").await?).await?;
        let row = b
            .wait_for(
                "the pull to finish on the machine that lacked it",
                "const r = document.querySelector('#pulls .pull-row[data-machine=lacks]');
                 return r && r.dataset.state === 'done' ? [r.querySelector('.pull-label').textContent,
                   r.querySelector('.pull-text').textContent, r.querySelector('progress').value] : null;",
                RUN_TIMEOUT,
            )
            .await?;
        ensure!(row[0] == "Lacks it" && row[1].as_str().is_some_and(|t| t.starts_with("done")), "pull row {row}");
        ensure!(row[2].as_f64() == Some(1_001_700.0), "the bar is full: {row}");
        let preflight = b
            .wait_for(
                "both machines to race",
                "const p = document.querySelector('#preflight'); return p && p.textContent.includes('2 machines will race') ? p.textContent : null",
                PAGE_TIMEOUT,
            )
            .await?;
        ensure!(preflight.as_str().is_some_and(|t| !t.contains("Pull ")), "no offer once every machine has it: {preflight}");
        // The machines page: models × machines.
        b.goto(&central.url("/machines")).await?;
        let cells = b
            .wait_for(
                "the model matrix",
                &format!("const r = document.querySelector('#model-matrix tr[data-model=\"{PULLED}\"]');
                 return r ? [...r.querySelectorAll('td')].map(td => td.textContent) : null;"),
                PAGE_TIMEOUT,
            )
            .await?;
        ensure!(cells == json!([PULLED, "✓", "✓", "everywhere"]), "matrix row {cells}");
        let llama = text_of(b, "#model-matrix tr[data-model=\"qwen3:0.6b\"]").await?;
        ensure!(llama.contains("qwen3:0.6b"), "{llama}");
        Ok(())
    }
    .await;
    if result.is_err()
        && let Ok(png) = browser.screenshot().await
    {
        let _ = std::fs::write(target_dir().join("pull-failed.png"), png);
    }
    browser.close().await?;
    result
}
