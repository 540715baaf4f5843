//! `relay`: N in-process agents (mock engine at 100 tok/s, one `llm_token` event per token) in
//! one central started as the release binary, with 5 browser WebSocket clients on `/api/ws`.
//! Latency is the browser's arrival time minus the event's own `emitted_at_s` (same host, same
//! clock); events lost are gaps in each machine's `seq` at each browser; central's CPU and RSS
//! come from `/proc/PID`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bench_agent::engine::mock::MockSettings;
use bench_shared::engine::EngineKind;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::Args;
use crate::agent::{self, Agent};
use crate::central;
use crate::process;
use crate::report::{Row, median, percentile};

/// Central's RSS under the relay load, for the footprint scenario (bytes, max over the race).
pub static UNDER_LOAD_RSS: Mutex<Option<u64>> = Mutex::new(None);

const BROWSERS: usize = 5;
const TOKENS_PER_S: f64 = 100.0;
/// Longest wait for the race at a browser (a guard).
const LIMIT: Duration = Duration::from_secs(300);

pub struct Plan {
    pub agents: usize,
    pub tokens: u32,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        if quick { Plan { agents: 10, tokens: 300 } } else { Plan { agents: 50, tokens: 1000 } }
    }
}

/// What one browser saw: latencies (ms) and, per machine, the seqs received and the terminal seq.
#[derive(Default)]
struct Seen {
    latency_ms: Vec<f64>,
    /// Arrival (epoch s) of each latency sample, in the same order.
    arrived_s: Vec<f64>,
    seqs: HashMap<String, BTreeSet<u64>>,
    last_seq: HashMap<String, u64>,
}

async fn browser(
    url: String,
    ready: tokio::sync::oneshot::Sender<()>,
    run_started: tokio::sync::watch::Receiver<Option<String>>,
) -> Result<Seen> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    // The first frame is the hello: from then on this client is subscribed.
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.contains("\"hello\"") => {}
        other => bail!("expected the hello frame, got {other:?}"),
    }
    let _ = ready.send(());
    let mut seen = Seen::default();
    let read = async {
        while let Some(msg) = ws.next().await {
            let Message::Text(t) = msg? else { continue };
            let now = bench_central::store::now_s();
            let v: Value = serde_json::from_str(&t)?;
            let run_id = run_started.borrow().clone();
            let kind = v["type"].as_str().unwrap_or("");
            if kind == "run_end" && run_id.is_some() && v["run_id"].as_str() == run_id.as_deref() {
                return Ok(());
            }
            let Some(machine) = v["machine_id"].as_str() else { continue };
            let Some(seq) = v["seq"].as_u64() else { continue };
            seen.seqs.entry(machine.to_owned()).or_default().insert(seq);
            if kind == "llm_token"
                && let Some(at) = v["emitted_at_s"].as_f64()
            {
                seen.latency_ms.push((now - at) * 1000.0);
                seen.arrived_s.push(now);
            }
            if bench_shared::event::is_terminal_type(kind) {
                seen.last_seq.insert(machine.to_owned(), seq);
            }
        }
        bail!("central closed a browser WebSocket during the race")
    };
    tokio::time::timeout(LIMIT, read).await.context("run_end in time")??;
    Ok(seen)
}

pub async fn run(plan: &Plan, args: &Args) -> Result<(Vec<Row>, Value)> {
    let mut agents = Vec::new();
    let mut machines = Vec::new();
    for i in 0..plan.agents {
        let id = format!("r{i}");
        let mock = MockSettings { ttft_ms: 5.0, tokens_per_s: TOKENS_PER_S, models: vec!["mock-llm".into()] };
        let mut cfg = agent::config(&id, EngineKind::Mock, "", mock);
        cfg.stream_flush_chars = 1; // one llm_token event per token
        let a = Agent::spawn(cfg).await?;
        machines.push((id, a.base_url.clone()));
        agents.push(a);
    }
    let ids: Vec<String> = machines.iter().map(|(id, _)| id.clone()).collect();
    let proc = process::central(&args.central_bin, &agent::temp_dir("relay"), &machines).await?;
    let client = reqwest::Client::new();
    central::wait_online(&client, &proc.base_url, &ids).await?;
    let ws_url = format!("{}/api/ws", proc.base_url.replace("http://", "ws://"));
    let (run_tx, run_rx) = tokio::sync::watch::channel(None);
    let mut browsers = Vec::new();
    for _ in 0..BROWSERS {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        browsers.push(tokio::spawn(browser(ws_url.clone(), ready_tx, run_rx.clone())));
        ready_rx.await.context("browser subscribed")?;
    }
    let (rss0, cpu0) = (proc.rss_bytes().unwrap_or(0), proc.cpu_s().unwrap_or(f64::NAN));
    let run_id = central::start_run(&client, &proc.base_url, &central::generate_body("mock-llm", plan.tokens)).await?;
    run_tx.send(Some(run_id.clone()))?;
    let stop_sampling = tokio_util::sync::CancellationToken::new();
    let sampler = {
        let pid = proc.pid.clone();
        let stop = stop_sampling.clone();
        tokio::spawn(async move {
            let mut max = 0;
            loop {
                max = max.max(crate::procfs::rss_bytes(&pid).unwrap_or(0));
                tokio::select! {
                    _ = stop.cancelled() => return max,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        })
    };
    // The harness's own runtime (agents and browsers run here): how late a 1 ms timer wakes,
    // so a stall of this process is told apart from one of central.
    let stall_probe = {
        let stop = stop_sampling.clone();
        tokio::spawn(async move {
            let mut stalls: Vec<(f64, f64)> = Vec::new();
            while !stop.is_cancelled() {
                let t = std::time::Instant::now();
                tokio::time::sleep(Duration::from_millis(1)).await;
                let late_ms = t.elapsed().as_secs_f64() * 1000.0 - 1.0;
                if late_ms > 10.0 {
                    stalls.push((bench_central::store::now_s(), late_ms));
                }
            }
            stalls
        })
    };
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    for b in browsers {
        seen.push(b.await??);
    }
    let race_s = started.elapsed().as_secs_f64();
    let cpu = proc.cpu_s().unwrap_or(f64::NAN) - cpu0;
    stop_sampling.cancel();
    let rss_max = sampler.await?;
    let stalls = stall_probe.await?;
    *UNDER_LOAD_RSS.lock().unwrap_or_else(|e| e.into_inner()) = Some(rss_max);
    let detail = central::wait_run_end(&client, &proc.base_url, &run_id).await?;
    proc.stop().await;

    let mut lost = 0u64;
    let mut events = 0u64;
    for s in &seen {
        for id in &ids {
            let got = s.seqs.get(id).map_or(0, |v| v.len() as u64);
            let last = s.last_seq.get(id).copied().unwrap_or(0);
            events += got;
            lost += last.saturating_sub(got) + u64::from(last == 0);
        }
    }
    let latency: Vec<f64> = seen.iter().flat_map(|s| s.latency_ms.iter().copied()).collect();
    let (p50, p99) = (median(&latency), percentile(&latency, 99.0));
    // Where the tail lies: the worst samples, by time since the first token arrived.
    let arrived: Vec<f64> = seen.iter().flat_map(|s| s.arrived_s.iter().copied()).collect();
    let first = arrived.iter().copied().fold(f64::INFINITY, f64::min);
    let mut worst: Vec<(f64, f64)> = latency.iter().copied().zip(arrived.iter().map(|a| a - first)).collect();
    worst.sort_by(|a, b| b.0.total_cmp(&a.0));
    worst.truncate(20);
    let stalls: Vec<(f64, f64)> = stalls.into_iter().map(|(at, ms)| (at - first, ms)).collect();
    let max_stall = stalls.iter().map(|s| s.1).fold(0.0, f64::max);

    let rows = vec![
        Row::check(
            &format!("emit → browser p99 ({} agents × 100 tok/s, {BROWSERS} browsers)", plan.agents),
            "<= 5 ms",
            p99,
            "ms",
            p99 <= 5.0,
        ),
        Row::info("emit → browser p50", p50, "ms"),
        Row::info("harness runtime stalls over 10 ms: longest (0 = none)", max_stall, "ms"),
        Row::check("events lost", "0", lost as f64, "events", lost == 0),
        Row::info("central CPU during the race", cpu / race_s * 100.0, "% of a core"),
        Row::info("central RSS max during the race", rss_max as f64 / 1048576.0, "MiB"),
    ];
    Ok((
        rows,
        json!({"agents": plan.agents, "tokens_per_agent": plan.tokens, "browsers": BROWSERS, "race_s": race_s,
        "events_received": events, "central_cpu_s": cpu, "central_rss_before_bytes": rss0, "central_rss_max_bytes": rss_max,
        "run_status": detail["metadata"]["status"],
        "worst_latency_ms_at_s": worst, "harness_stalls_over_10ms_at_s": stalls,
        "note": "the agents run in the harness process; central is the release binary"}),
    ))
}
