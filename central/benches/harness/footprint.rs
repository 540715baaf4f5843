//! `footprint`: resident memory of the release binaries started as processes: idle, central
//! under the relay load (from the relay scenario), and per WebSocket subscriber (N extra
//! subscribers opened, the RSS delta divided by N).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::Args;
use crate::agent;
use crate::central;
use crate::process::{self, Process};
use crate::relay::UNDER_LOAD_RSS;
use crate::report::{Row, median};

const MIB: f64 = 1024.0 * 1024.0;

/// RSS over a one-second window after start-up work settled (median of 10 samples).
async fn settled_rss(p: &Process) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..10 {
        samples.push(p.rss_bytes().unwrap_or(0) as f64);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    median(&samples)
}

/// Opens `n` WebSocket subscribers at `url`, each past its handshake (and its first frame when
/// `first_frame`); returns them open, and the RSS delta of `p` per subscriber.
async fn per_subscriber(p: &Process, url: &str, n: usize, first_frame: bool) -> Result<f64> {
    let before = settled_rss(p).await;
    let mut open = Vec::new();
    for _ in 0..n {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.with_context(|| format!("connect {url}"))?;
        if first_frame && ws.next().await.is_none() {
            bail!("{url} closed before its first frame");
        }
        open.push(ws);
    }
    let after = settled_rss(p).await;
    drop(open);
    Ok((after - before) / n as f64)
}

pub async fn run(quick: bool, args: &Args) -> Result<(Vec<Row>, Value)> {
    let n = if quick { 100 } else { 500 };
    let dir = agent::temp_dir("footprint");
    let cfg = process::agent_config(&dir.join("agent"), "fp")?;
    let agent = Process::start(&args.agent_bin, &["serve", "--config", &cfg.display().to_string()]).await?;
    let client = reqwest::Client::new();
    central::http_json(&client, &format!("{}/health", agent.base_url)).await?;
    // Idle means after the start-up calibration (≤ 1 s of work), not during it.
    for _ in 0..50 {
        let caps = central::http_json(&client, &format!("{}/capabilities", agent.base_url)).await?;
        if !caps["client_ceiling"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let agent_idle = settled_rss(&agent).await;
    let agent_idle_anon = agent.rss_anon_bytes().unwrap_or(0) as f64;
    let central =
        process::central(&args.central_bin, &dir.join("central"), &[("fp".into(), agent.base_url.clone())]).await?;
    central::wait_online(&client, &central.base_url, &["fp".into()]).await?;
    let central_idle = settled_rss(&central).await;
    let central_ws = format!("{}/api/ws", central.base_url.replace("http://", "ws://"));
    let per_browser = per_subscriber(&central, &central_ws, n, true).await?;
    let agent_ws = format!("{}/ws", agent.base_url.replace("http://", "ws://"));
    let per_agent_sub = per_subscriber(&agent, &agent_ws, n, false).await?;
    central.stop().await;
    agent.stop().await;

    let mut rows = vec![
        Row::check("agent RSS idle", "<= 10 MB", agent_idle / MIB, "MiB", agent_idle <= 10.0 * MIB),
        Row::info("agent RSS idle, anonymous part (RssAnon)", agent_idle_anon / MIB, "MiB"),
        Row::check("central RSS idle", "<= 16 MB", central_idle / MIB, "MiB", central_idle <= 16.0 * MIB),
        Row::check(
            &format!("central RSS per browser subscriber ({n})"),
            "<= 64 KB",
            per_browser / 1024.0,
            "KiB",
            per_browser <= 64.0 * 1024.0,
        ),
        Row::check(
            &format!("agent RSS per /ws subscriber ({n})"),
            "<= 64 KB",
            per_agent_sub / 1024.0,
            "KiB",
            per_agent_sub <= 64.0 * 1024.0,
        ),
    ];
    let loaded = *UNDER_LOAD_RSS.lock().unwrap_or_else(|e| e.into_inner());
    match loaded {
        Some(b) => rows.push(Row::info("central RSS under the relay load (max)", b as f64 / MIB, "MiB")),
        None => rows.push(Row::gap("central RSS under the relay load", "-", "relay scenario not run")),
    }
    Ok((
        rows,
        json!({"subscribers": n, "agent_idle_bytes": agent_idle, "agent_idle_anon_bytes": agent_idle_anon, "central_idle_bytes": central_idle,
        "central_bytes_per_browser": per_browser, "agent_bytes_per_ws": per_agent_sub, "central_under_load_bytes": loaded}),
    ))
}
