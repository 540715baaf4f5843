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
}

impl Plan {
    pub fn new(minutes: f64) -> Plan {
        // Short soaks inject faster, so every kind occurs at least twice in 2 minutes.
        let gap = if minutes <= 5.0 { Duration::from_secs(3) } else { Duration::from_secs(8) };
        // About 8 central faults per soak, whatever its length (4 restarts, 4 crashes).
        let central_gap = Duration::from_secs_f64((minutes * 60.0 / 8.0).clamp(5.0, 300.0));
        Plan { minutes, fault_gap: gap, central_gap }
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
    let sampler = tokio::spawn(sample_rss(world.clone(), rss.clone(), deadline));
    let injector = tokio::spawn(inject_faults(world.clone(), http.clone(), deadline, plan.fault_gap, plan.central_gap));
    let mut tally = Tally::default();
    race_until(&http, &central_url, &agent_urls, deadline, &mut tally).await;
    let (faults, reconnects, fault_errors, fault_skips) = injector.await?;
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
    let growth: BTreeMap<String, Option<f64>> =
        rss.iter().map(|(name, samples)| (name.clone(), procs::growth_mb_per_h(samples, WARMUP_S))).collect();
    // Every 5th sample (10 s apart): [seconds into the soak, incarnation, MB].
    let rss_series: BTreeMap<String, Vec<(f64, u32, f64)>> = rss
        .iter()
        .map(|(name, s)| (name.clone(), s.iter().step_by(5).map(|x| (x.at_s, x.incarnation, x.rss_mb)).collect()))
        .collect();
    let peak_mb: BTreeMap<String, f64> =
        rss.iter().map(|(name, s)| (name.clone(), s.iter().map(|x| x.rss_mb).fold(0.0, f64::max))).collect();
    {
        let mut w = world.lock().await;
        for a in &mut w.agents {
            a.stop().await;
        }
        w.central.stop().await;
        w.disk = None;
    }
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
    for (name, g) in &growth {
        let metric = format!("RSS growth {name}");
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
    });
    let details = json!({
        "soak": soak,
        "minutes": elapsed_min,
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

async fn inject_faults(
    world: Arc<Mutex<World>>,
    http: reqwest::Client,
    deadline: Instant,
    gap: Duration,
    central_gap: Duration,
) -> FaultReport {
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
            if last_central.is_some_and(|t| t.elapsed() < central_gap) {
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
) {
    let soak_start = Instant::now();
    while Instant::now() < deadline {
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
            let sample = RssSample { incarnation, age_s, at_s, rss_mb: bytes as f64 / 1e6 };
            out.lock().unwrap_or_else(|p| p.into_inner()).entry(name).or_default().push(sample);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
