//! The benchmark harness for the benchmarker: measures the tool's own overhead and ceilings.
//! Run through `scripts/bench [--quick]` (release build); see README "Benchmarking the
//! benchmarker". Every figure is a ratio or a difference measured in the same run, since the
//! machines it runs on are shared and absolute times drift.
//!
//! Arguments: `--quick`, `--out PATH` (default `target/bench/results.json`), `--only a,b`
//! (scenario names), `--agent-bin PATH` / `--central-bin PATH` (the release binaries the
//! footprint and relay scenarios start as processes).

mod agent;
mod central;
mod engine;
mod footprint;
mod history;
mod ingest;
mod load;
mod process;
mod procfs;
mod raw;
mod real_engine;
mod relay;
mod report;
mod skew;
mod soak;
mod ttft;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::json;

use report::{Report, Row};

/// Every scenario, in run order (the keys of `results.json`). `soak` runs only when asked
/// (`--soak MINUTES`, or named in `--only`).
pub const SCENARIOS: [&str; 10] = [
    "ttft_accuracy",
    "ingest_ceiling",
    "relay",
    "footprint",
    "sync_skew",
    "history",
    "real_engine_overhead",
    "load_pacing",
    "load_streams",
    "soak",
];

pub struct Args {
    pub quick: bool,
    pub out: PathBuf,
    pub only: Vec<String>,
    pub agent_bin: PathBuf,
    pub central_bin: PathBuf,
    /// `--soak MINUTES`: run the soak (alone) this long.
    pub soak_minutes: Option<f64>,
    /// `--no-faults`: the soak races without injecting faults (to tell growth per race from
    /// growth per fault).
    pub soak_no_faults: bool,
}

fn parse_args() -> Result<Args> {
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target");
    // Default binaries: those of the harness's own profile (it runs as target/PROFILE/deps/harness-…).
    let bins = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| target.join("quickstart"));
    let mut args = Args {
        quick: false,
        out: target.join("bench/results.json"),
        only: Vec::new(),
        agent_bin: bins.join("bench-agent"),
        central_bin: bins.join("bench-central"),
        soak_minutes: None,
        soak_no_faults: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => args.quick = true,
            // cargo bench passes --bench to harness = false targets.
            "--bench" => {}
            "--out" => args.out = it.next().context("--out needs a path")?.into(),
            "--agent-bin" => args.agent_bin = it.next().context("--agent-bin needs a path")?.into(),
            "--central-bin" => args.central_bin = it.next().context("--central-bin needs a path")?.into(),
            "--soak" => {
                let m: f64 = it.next().context("--soak needs minutes")?.parse().context("--soak: minutes")?;
                if !(m.is_finite() && m > 0.0 && m <= 24.0 * 60.0) {
                    bail!("--soak: minutes must be more than 0 and at most 1440, got {m}");
                }
                args.soak_minutes = Some(m);
                args.only = vec!["soak".into()];
            }
            "--no-faults" => args.soak_no_faults = true,
            "--only" => {
                args.only = it.next().context("--only needs scenario names")?.split(',').map(str::to_owned).collect();
                if let Some(bad) = args.only.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
                    bail!("--only: unknown scenario {bad:?}; known: {}", SCENARIOS.join(", "));
                }
            }
            other => bail!(
                "unknown argument {other:?} (accepted: --quick, --out PATH, --only LIST, --soak MINUTES, --no-faults, --agent-bin PATH, --central-bin PATH)"
            ),
        }
    }
    Ok(args)
}

async fn scenario(name: &str, args: &Args) -> Result<(Vec<Row>, serde_json::Value)> {
    let q = args.quick;
    match name {
        "ttft_accuracy" => {
            let plan = ttft::Plan {
                rounds: if q { 3 } else { 6 },
                repeat: if q { 4 } else { 8 },
                tokens: if q { 250 } else { 500 },
                concurrent: 64,
                concurrent_repeat: if q { 2 } else { 4 },
            };
            ttft::run(&plan).await
        }
        "ingest_ceiling" => {
            ingest::run(&ingest::Plan { rounds: if q { 2 } else { 4 }, tokens: if q { 100_000 } else { 300_000 } })
                .await
        }
        "relay" => relay::run(&relay::Plan::new(q), args).await,
        "footprint" => footprint::run(q, args).await,
        "sync_skew" => skew::run(&skew::Plan { agents: 8, races: if q { 5 } else { 20 } }).await,
        "history" => history::run(&history::Plan { runs: 10_000, requests: if q { 5 } else { 20 } }).await,
        "real_engine_overhead" => real_engine::run(q).await,
        "load_pacing" => {
            load::pacing(&load::Pacing { rates: vec![10.0, 100.0, 500.0], duration_s: if q { 5.0 } else { 20.0 } })
                .await
        }
        "load_streams" => {
            let plan = load::Streams { streams: 1000, tokens: 100, gap: std::time::Duration::from_millis(50) };
            load::streams(&plan, args).await
        }
        "soak" => soak::run(&soak::Plan::new(args.soak_minutes.unwrap_or(2.0), !args.soak_no_faults), args).await,
        _ => bail!("unknown scenario {name}"),
    }
}

fn main() -> Result<()> {
    let args = parse_args()?;
    bench_shared::tls::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut report = Report::default();
    for name in SCENARIOS {
        let chosen = if args.only.is_empty() { name != "soak" } else { args.only.iter().any(|o| o == name) };
        if !chosen {
            continue;
        }
        eprintln!("bench: {name} …");
        let started = std::time::Instant::now();
        let (rows, mut details) = match rt.block_on(scenario(name, &args)) {
            Ok(found) => found,
            Err(e) => (vec![Row::failed("scenario", &format!("error: {e:#}"))], json!({"error": format!("{e:#}")})),
        };
        if let Some(d) = details.as_object_mut() {
            d.insert("elapsed_s".into(), json!(started.elapsed().as_secs_f64()));
        }
        report.add(name, rows, details);
    }
    print!("{}", report.table());
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report.json(args.quick))?)
        .with_context(|| format!("write {}", args.out.display()))?;
    println!("results: {}", args.out.display());
    if !report.all_met() {
        println!("some targets were missed (verdict fail): see the rows above");
    }
    Ok(())
}
