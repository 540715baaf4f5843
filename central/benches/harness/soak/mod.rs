//! `soak`: races back to back on four agents (release binaries, each on a controllable engine)
//! through one central for `minutes`, while an injector kills, stops and restarts agents, stalls
//! and kills engines, restarts and crashes central and fills its (small, tmpfs) disk, in turn.
//! Goal: every run terminal, 0 events lost, every line of every file parses, RSS flat.
//!
//! `results.json` gets `soak: {races_started, races_ended, faults_injected: {kind: count},
//! events_lost, unparsable_lines, runs_non_terminal, rss_growth_mb_per_h: {process: MB}}` beside
//! the usual `metrics` rows and `details`.

mod check;
mod disk;
mod engine;
mod faults;
mod procs;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::Args;
use crate::report::{Row, median};
use faults::Fault;
use procs::{Proc, RssSample};

const AGENTS: usize = 4;
/// Seconds after each (re)start left out of the RSS slope: caches and pools fill then.
const WARMUP_S: f64 = 30.0;
/// Central's warm-up, left out of its judged slope. Measured with heaptrack over an 8-minute soak
/// without faults: central's live heap grew 0.4 MB in the first 3 minutes while its RSS grew
/// 6.4 MB (the allocator's per-thread arenas filling), then RSS followed the heap (the run index).
const CENTRAL_WARMUP_S: f64 = 120.0;
/// Longest wait for one race to end (central restarts and stopped agents included).
const RACE_LIMIT: Duration = Duration::from_secs(120);

/// The soak's length and pace.
pub struct Plan {
    pub minutes: f64,
    /// Pause between two faults.
    pub fault_gap: Duration,
    /// Least time between two faults of central (restart or crash): central is one process, and
    /// its memory can only be judged over a stretch between restarts.
    pub central_gap: Duration,
    /// False with `--no-faults`: races only (memory per race, apart from recovery).
    pub faults: bool,
    /// Central's faults happen in this first share of the soak; central then runs undisturbed,
    /// so its memory is judged over one long stretch past its warm-up.
    pub central_share: f64,
}

impl Plan {
    pub fn new(minutes: f64, faults: bool) -> Plan {
        // Short soaks inject faster, so every kind occurs at least twice in 2 minutes.
        let gap = if minutes <= 5.0 { Duration::from_secs(3) } else { Duration::from_secs(8) };
        // Soaks long enough to judge memory (>= 10 min) keep the second half free of central faults.
        let central_share = if minutes >= 10.0 { 0.5 } else { 1.0 };
        // At most about 8 central faults (restarts and crashes in turn) over their share of the soak.
        let central_gap = Duration::from_secs_f64((minutes * 60.0 * central_share / 8.0).clamp(5.0, 300.0));
        Plan { minutes, fault_gap: gap, central_gap, faults, central_share }
    }
}

/// Everything the injector acts on.
pub struct World {
    pub agents: Vec<Proc>,
    pub engines: Vec<engine::SoakEngine>,
    pub central: Proc,
    pub disk: Option<disk::SmallDisk>,
}

#[derive(Debug, Default)]
struct Tally {
    races_started: u64,
    races_ended: u64,
    refused: BTreeMap<String, u64>,
    statuses: BTreeMap<String, u64>,
    events_lost: u64,
    lost_examples: Vec<String>,
    after_give_up: u64,
    unverifiable: u64,
    stuck: Vec<String>,
}

pub async fn run(plan: &Plan, args: &Args) -> Result<(Vec<Row>, Value)> {
    let root = crate::agent::temp_dir("soak");
    let results = root.join("central-results");
    let disk = disk::SmallDisk::mount(&results, 256);
    let disk_gap = disk.as_ref().err().cloned();
    std::fs::create_dir_all(&results)?;
    let mut engines = Vec::new();
    let mut agents = Vec::new();
    for i in 1..=AGENTS {
        let e = engine::SoakEngine::start().await?;
        let id = format!("soak-{i}");
        let cfg = procs::agent_config(&root.join(&id), &id, &e.base_url())?;
        agents.push(Proc::start(&id, &args.agent_bin, vec!["--config".into(), cfg.display().to_string()]).await?);
        engines.push(e);
    }
    let machines: Vec<(String, String)> = agents.iter().map(|a| (a.name.clone(), a.base_url())).collect();
    let config = crate::process::machines_config(&root, &machines)?;
    let central_args = vec![
        "--config".into(),
        config.display().to_string(),
        "--results-dir".into(),
        results.display().to_string(),
        "--host".into(),
        "127.0.0.1".into(),
    ];
    let central = Proc::start("central", &args.central_bin, central_args).await?;
    let central_url = central.base_url();
    let agent_urls: BTreeMap<String, String> = agents.iter().map(|a| (a.name.clone(), a.base_url())).collect();
    let world = Arc::new(Mutex::new(World { agents, engines, central, disk: disk.ok() }));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
    let ids: Vec<String> = agent_urls.keys().cloned().collect();
    crate::central::wait_online(&http, &central_url, &ids).await.context("agents online before the soak")?;

    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(plan.minutes * 60.0);
    let rss: Arc<std::sync::Mutex<BTreeMap<String, Vec<RssSample>>>> = Arc::default();
    let sampler = tokio::spawn(sample_rss(world.clone(), rss.clone(), deadline, results.join("runs")));
    let central_until = started + Duration::from_secs_f64(plan.minutes * 60.0 * plan.central_share);
    let pace = Pace { deadline, gap: plan.fault_gap, central_gap: plan.central_gap, central_until };
    let injector = plan.faults.then(|| tokio::spawn(inject_faults(world.clone(), http.clone(), pace)));
    let mut tally = Tally::default();
    race_until(&http, &central_url, &agent_urls, deadline, &mut tally).await;
    let (faults, reconnects, fault_errors, fault_skips) = match injector {
        Some(injector) => injector.await?,
        None => Default::default(),
    };
    sampler.await?;

    // Everything whole again: runs still going end, then the files are read.
    let settle = Instant::now();
    loop {
        let (running, _) = check::run_statuses(&results);
        if running.is_empty() || settle.elapsed() > RACE_LIMIT {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (running, run_statuses) = check::run_statuses(&results);
    // The root holds central's results and every agent's (journals, calibration cache).
    let (central_bad, central_read, _) = check::unparsable(&results);
    let (unparsable_lines, all_read, bad_examples) = check::unparsable(&root);
    let rss = std::mem::take(&mut *rss.lock().unwrap_or_else(|p| p.into_inner()));
    // Agents: every incarnation, past WARMUP_S. Central: its last incarnation (undisturbed for the
    // soak's second half), past CENTRAL_WARMUP_S; the pooled figure over every incarnation is
    // kept in the details (it is mostly central's warm-up, which each restart begins again).
    let growth: BTreeMap<String, Option<f64>> = rss
        .iter()
        .map(|(name, samples)| {
            // (Short soaks fault central to the end: central is pooled like the agents.)
            let g = if name == "central" && plan.central_share < 1.0 {
                let last = samples.iter().map(|s| s.incarnation).max().unwrap_or(0);
                let stretch: Vec<RssSample> = samples.iter().filter(|s| s.incarnation == last).copied().collect();
                procs::growth_mb_per_h(&stretch, CENTRAL_WARMUP_S)
            } else {
                procs::growth_mb_per_h(samples, WARMUP_S)
            };
            (name.clone(), g)
        })
        .collect();
    let pooled: BTreeMap<String, Option<f64>> =
        rss.iter().map(|(name, samples)| (name.clone(), procs::growth_mb_per_h(samples, WARMUP_S))).collect();
    let central_stretch = central_stretch(&rss, CENTRAL_WARMUP_S);
    // Every 5th sample (10 s apart): [seconds into the soak, incarnation, MB].
    let rss_series: BTreeMap<String, Vec<(f64, u32, f64)>> = rss
        .iter()
        .map(|(name, s)| (name.clone(), s.iter().step_by(5).map(|x| (x.at_s, x.incarnation, x.rss_mb)).collect()))
        .collect();
    let peak_mb: BTreeMap<String, f64> =
        rss.iter().map(|(name, s)| (name.clone(), s.iter().map(|x| x.rss_mb).fold(0.0, f64::max))).collect();
    let per_run = {
        let mut w = world.lock().await;
        for a in &mut w.agents {
            a.stop().await;
        }
        w.central.stop().await;
        // Central's memory per stored run (its run index), apart from time: a fresh central on
        // the soak's results against one on half of them, both idle.
        let per_run = per_stored_run(args, &root, &config, &results).await;
        w.disk = None;
        per_run
    };
    let elapsed_min = started.elapsed().as_secs_f64() / 60.0;
    let faults_total: u64 = faults.values().sum();
    let mut rows = vec![
        Row::info("minutes", elapsed_min, "min"),
        Row::info("races started", tally.races_started as f64, "races"),
        Row::check(
            "races ended",
            "= started",
            tally.races_ended as f64,
            "races",
            tally.races_ended == tally.races_started,
        ),
        Row::info("faults injected", faults_total as f64, "faults"),
        Row::check("runs non-terminal", "0", running.len() as f64, "runs", running.is_empty()),
        Row::check("events lost", "0", tally.events_lost as f64, "events", tally.events_lost == 0),
        Row::check("unparsable lines", "0", unparsable_lines as f64, "lines", unparsable_lines == 0),
    ];
    if let Some(why) = &disk_gap {
        rows.push(Row::gap("disk_full faults", "> 0", why));
    }
    let reconnect_max = reconnects.iter().copied().fold(f64::NAN, f64::max);
    if !reconnects.is_empty() {
        rows.push(Row::check(
            "agent reconnect after restart (max)",
            "<= 2 s + start-up",
            reconnect_max,
            "s",
            reconnect_max <= 3.0,
        ));
    }
    // A slope over a few minutes is mostly start-up (caches, pools filling): judged from 10 minutes.
    let judged = elapsed_min >= 10.0;
    // What central keeps per stored run (the run index), and how much of its slope that explains:
    // that part grows with the runs stored, not with time (a soak stores ~1,500 runs an hour), so
    // central is judged on the rest, and the per-run cost is reported on its own row.
    let stored_share = match (&per_run, &central_stretch) {
        (Ok(p), Some(c)) => Some(p.kb_per_run * c.runs_per_h / 1000.0),
        _ => None,
    };
    match &per_run {
        Ok(p) => {
            rows.push(Row::info("central RSS per stored run", p.kb_per_run, "KB (fresh start, idle; all runs vs half)"))
        }
        Err(why) => rows.push(Row::gap("central RSS per stored run", "info", why)),
    }
    for (name, g) in &growth {
        let metric = format!("RSS growth {name}");
        if let (true, Some(share), Some(g)) = (name == "central" && plan.central_share < 1.0, stored_share, g) {
            rows.push(Row::info(&metric, *g, "MB/h (last stretch, all of it)"));
            rows.push(Row::info("RSS growth central from stored runs", share, "MB/h (KB per run x runs per hour)"));
            let rest = g - share;
            let metric = "RSS growth central beyond stored runs";
            match judged {
                true => rows.push(Row::check(metric, "< 10 MB/h", rest, "MB/h", rest < 10.0)),
                false => rows.push(Row::info(metric, rest, "MB/h (soak < 10 min: not judged)")),
            }
            continue;
        }
        match g {
            Some(g) if judged => rows.push(Row::check(&metric, "< 10 MB/h", *g, "MB/h", *g < 10.0)),
            Some(g) => rows.push(Row::info(&metric, *g, "MB/h (soak < 10 min: not judged)")),
            None => rows.push(Row::gap(&metric, "< 10 MB/h", "too few samples")),
        }
    }

    let soak = json!({
        "races_started": tally.races_started,
        "races_ended": tally.races_ended,
        "faults_injected": faults,
        "events_lost": tally.events_lost,
        "unparsable_lines": unparsable_lines,
        "runs_non_terminal": running.len(),
        "rss_growth_mb_per_h": growth,
        "central_kb_per_stored_run": per_run.as_ref().ok().map(|p| p.kb_per_run),
        "central_growth_beyond_stored_runs_mb_per_h":
            stored_share.zip(growth.get("central").copied().flatten()).map(|(share, g)| g - share),
    });
    let details = json!({
        "soak": soak,
        "minutes": elapsed_min,
        "faults": plan.faults,
        "run_statuses": run_statuses,
        "race_statuses": tally.statuses,
        "starts_refused": tally.refused,
        "events_lost_examples": tally.lost_examples,
        "events_after_central_gave_up": tally.after_give_up,
        "jobs_unverifiable": tally.unverifiable,
        "races_stuck": tally.stuck,
        "runs_left_running": running,
        "lines_read": {"central": central_read, "all": all_read, "central_unparsable": central_bad},
        "unparsable_examples": bad_examples,
        "rss_peak_mb": peak_mb,
        "rss_growth_pooled_mb_per_h": pooled,
        "central_judged_stretch": central_stretch.as_ref().map(|c| json!({
            "incarnation": c.incarnation, "from_age_s": CENTRAL_WARMUP_S, "seconds": c.seconds,
            "runs_stored": c.runs, "runs_per_h": c.runs_per_h,
        })),
        "central_stored_runs": per_run.as_ref().ok().map(|p| json!({
            "runs": p.runs, "rss_mb": p.rss_full_mb, "runs_half": p.runs_half, "rss_mb_half": p.rss_half_mb,
        })),
        "central_growth_from_stored_runs_mb_per_h": stored_share,
        "rss_samples": rss_series,
        "agent_reconnect_s": {"n": reconnects.len(), "median": median(&reconnects), "max": reconnect_max},
        "fault_errors": fault_errors,
        "fault_skips": fault_skips,
        "small_disk": disk_gap.unwrap_or_else(|| "tmpfs 256 MB".into()),
    });
    Ok((rows, details))
}

async fn race_until(
    http: &reqwest::Client,
    central: &str,
    agents: &BTreeMap<String, String>,
    deadline: Instant,
    tally: &mut Tally,
) {
    let body = json!({"model": engine::MODEL, "prompt": "Soak: count to twenty.", "max_tokens": 24,
                      "temperature": 0.0, "num_ctx": 1024, "repeat": 1});
    while Instant::now() < deadline {
        let run_id = match http.post(format!("{central}/api/runs")).json(&body).send().await {
            Ok(r) if r.status().as_u16() == 201 => match r.json::<Value>().await {
                Ok(v) => v["run_id"].as_str().unwrap_or_default().to_owned(),
                Err(_) => continue,
            },
            Ok(r) => {
                *tally.refused.entry(r.status().as_u16().to_string()).or_insert(0) += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
            Err(_) => {
                *tally.refused.entry("central unreachable".into()).or_insert(0) += 1;
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
        };
        tally.races_started += 1;
        match wait_end(http, central, &run_id).await {
            Some(status) => {
                tally.races_ended += 1;
                *tally.statuses.entry(status).or_insert(0) += 1;
            }
            None => tally.stuck.push(run_id.clone()),
        }
        let c = check::check_race(http, central, agents, &run_id).await;
        tally.events_lost += c.lost;
        if tally.lost_examples.len() < 20 {
            tally.lost_examples.extend(c.lost_examples);
        }
        tally.after_give_up += c.after_give_up;
        tally.unverifiable += c.unverifiable;
    }
}

/// The run's final status, or `None` if it is still running after [`RACE_LIMIT`].
async fn wait_end(http: &reqwest::Client, central: &str, run_id: &str) -> Option<String> {
    let t0 = Instant::now();
    while t0.elapsed() < RACE_LIMIT {
        if let Ok(r) = http.get(format!("{central}/api/runs/{run_id}")).send().await
            && let Ok(d) = r.json::<Value>().await
        {
            let status = d["metadata"]["status"].as_str().unwrap_or("running");
            if status != "running" && d["live"] == false {
                return Some(status.to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

type FaultReport = (BTreeMap<String, u64>, Vec<f64>, Vec<String>, BTreeMap<String, String>);

/// When faults happen.
struct Pace {
    deadline: Instant,
    /// Between two faults.
    gap: Duration,
    /// Least time between two faults of central.
    central_gap: Duration,
    /// No central fault after this.
    central_until: Instant,
}

async fn inject_faults(world: Arc<Mutex<World>>, http: reqwest::Client, pace: Pace) -> FaultReport {
    let Pace { deadline, gap, central_gap, central_until } = pace;
    let (mut counts, mut reconnects, mut errors, mut skips) =
        (BTreeMap::new(), Vec::new(), Vec::new(), BTreeMap::new());
    let mut n = 0usize;
    let mut last_central: Option<Instant> = None;
    let mut central_faults = 0u32;
    // The first fault once races are flowing.
    tokio::time::sleep(gap).await;
    while Instant::now() + gap < deadline {
        let mut fault = Fault::ALL[n % Fault::ALL.len()];
        let target = n / Fault::ALL.len() + n;
        n += 1;
        if matches!(fault, Fault::CentralRestart | Fault::CentralKill) {
            // Central's slots are spaced by `central_gap`; the ones taken alternate restart and crash.
            if last_central.is_some_and(|t| t.elapsed() < central_gap) || Instant::now() >= central_until {
                continue;
            }
            last_central = Some(Instant::now());
            fault = if central_faults.is_multiple_of(2) { Fault::CentralRestart } else { Fault::CentralKill };
            central_faults += 1;
        }
        match faults::inject(&world, fault, target, &http).await {
            Ok(i) => {
                if let Some(why) = i.skipped {
                    skips.insert(fault.name().to_owned(), why);
                } else {
                    *counts.entry(fault.name().to_owned()).or_insert(0u64) += 1;
                }
                reconnects.extend(i.reconnect_s);
            }
            Err(e) => errors.push(format!("{}: {e:#}", fault.name())),
        }
        tokio::time::sleep(gap).await;
    }
    (counts, reconnects, errors, skips)
}

async fn sample_rss(
    world: Arc<Mutex<World>>,
    out: Arc<std::sync::Mutex<BTreeMap<String, Vec<RssSample>>>>,
    deadline: Instant,
    runs_dir: std::path::PathBuf,
) {
    let soak_start = Instant::now();
    while Instant::now() < deadline {
        let runs = std::fs::read_dir(&runs_dir).map(|d| d.count() as u64).unwrap_or(0);
        let now: Vec<(String, Option<String>, u32, f64)> = {
            let w = world.lock().await;
            w.agents
                .iter()
                .chain(std::iter::once(&w.central))
                .map(|p| (p.name.clone(), p.pid(), p.incarnation, p.started_at.elapsed().as_secs_f64()))
                .collect()
        };
        for (name, pid, incarnation, age_s) in now {
            let Some(bytes) = pid.and_then(|pid| crate::procfs::rss_bytes(&pid)) else { continue };
            let at_s = soak_start.elapsed().as_secs_f64();
            let sample = RssSample { incarnation, age_s, at_s, rss_mb: bytes as f64 / 1e6, runs };
            out.lock().unwrap_or_else(|p| p.into_inner()).entry(name).or_default().push(sample);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Central's last incarnation past its warm-up: how long, and how many runs it stored meanwhile.
struct Stretch {
    incarnation: u32,
    seconds: f64,
    runs: u64,
    runs_per_h: f64,
}

fn central_stretch(rss: &BTreeMap<String, Vec<RssSample>>, warmup_s: f64) -> Option<Stretch> {
    let samples = rss.get("central")?;
    let last = samples.iter().map(|s| s.incarnation).max()?;
    let mut stretch = samples.iter().filter(|s| s.incarnation == last && s.age_s >= warmup_s);
    let first = stretch.next()?;
    let end = stretch.next_back()?;
    let seconds = end.age_s - first.age_s;
    let runs = end.runs.saturating_sub(first.runs);
    (seconds > 0.0).then(|| Stretch { incarnation: last, seconds, runs, runs_per_h: runs as f64 / seconds * 3600.0 })
}

/// Central's resident memory per stored run.
struct PerRun {
    runs: u64,
    rss_full_mb: f64,
    /// With every second run only.
    runs_half: u64,
    rss_half_mb: f64,
    kb_per_run: f64,
}

/// Starts central idle on the soak's results and on a copy of every second run of them (same
/// config), and divides the difference of their resident memory (after `IDLE`, each the median of
/// 5 readings) by the difference of their runs. Against half the runs rather than none, so what
/// reading the runs at start-up costs once (parse buffers the allocator keeps) cancels out.
async fn per_stored_run(
    args: &Args,
    root: &std::path::Path,
    config: &std::path::Path,
    results: &std::path::Path,
) -> Result<PerRun, String> {
    const IDLE: Duration = Duration::from_secs(5);
    let half = root.join("half-results");
    let (runs, runs_half) =
        copy_every_second_run(&results.join("runs"), &half.join("runs")).map_err(|e| e.to_string())?;
    if runs < 2 {
        return Err(format!("{runs} stored runs"));
    }
    let mut mb = Vec::new();
    for dir in [results, half.as_path()] {
        let (c, r) = (config.display().to_string(), dir.display().to_string());
        let p = crate::process::Process::start(
            &args.central_bin,
            &["--config", &c, "--results-dir", &r, "--host", "127.0.0.1", "--port", "0"],
        )
        .await
        .map_err(|e| format!("central did not start: {e:#}"))?;
        tokio::time::sleep(IDLE).await;
        let mut readings = Vec::new();
        for _ in 0..5 {
            readings.extend(p.rss_bytes().map(|b| b as f64 / 1e6));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        mb.push(median(&readings));
    }
    let (full, half_mb) = (mb[0], mb[1]);
    let kb_per_run = (full - half_mb) * 1000.0 / (runs - runs_half) as f64;
    Ok(PerRun { runs, rss_full_mb: full, runs_half, rss_half_mb: half_mb, kb_per_run })
}

/// Copies what central reads of every second run at start-up (`metadata.json`, `summary.json`);
/// returns the runs there are and the runs copied.
fn copy_every_second_run(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<(u64, u64)> {
    let mut ids: Vec<_> = std::fs::read_dir(from)?
        .flatten()
        .filter(|e| e.path().join("metadata.json").is_file())
        .map(|e| e.file_name())
        .collect();
    ids.sort();
    let mut copied = 0;
    for id in ids.iter().step_by(2) {
        let dir = to.join(id);
        std::fs::create_dir_all(&dir)?;
        for name in ["metadata.json", "summary.json"] {
            let src = from.join(id).join(name);
            if src.is_file() {
                std::fs::copy(&src, dir.join(name))?;
            }
        }
        copied += 1;
    }
    Ok((ids.len() as u64, copied))
}
