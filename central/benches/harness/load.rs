//! `load_pacing` and `load_streams`: the load generator must not be the bottleneck.
//!
//! - `load_pacing`: an in-process agent runs `llm_load` jobs (Poisson arrivals at 10, 100 and
//!   500 req/s) against the in-process zero-latency engine: what it achieved ÷ the target
//!   (within 1%), and the send lateness p99 (≤ 1 ms).
//! - `load_streams`: the release agent (a process) holds 1,000 concurrent streams from the
//!   scripted engine (20 tok/s each): its CPU per token and its resident memory.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bench_agent::calibrate::engine::{MODEL as ZERO_MODEL, ZeroLatencyEngine};
use bench_shared::engine::EngineKind;
use serde_json::{Value, json};

use crate::Args;
use crate::agent::{self, Agent};
use crate::engine::{MODEL, Script, ScriptedEngine};
use crate::process::Process;
use crate::report::Row;

const MIB: f64 = 1024.0 * 1024.0;

/// The `load_done` payload of a job's events.
fn load_done(events: &[Value]) -> Result<Value> {
    let last = events.last().context("no event")?;
    if last["type"] != "load_done" {
        bail!("the load ended with {}: {}", last["type"], last["payload"]);
    }
    Ok(last["payload"].clone())
}

pub struct Pacing {
    pub rates: Vec<f64>,
    pub duration_s: f64,
}

pub async fn pacing(plan: &Pacing) -> Result<(Vec<Row>, Value)> {
    let engine = ZeroLatencyEngine::start().await?;
    let agent =
        Agent::spawn(agent::config("pacing", EngineKind::Openai, &engine.base_url, agent::unused_mock())).await?;
    let mut rows = Vec::new();
    let mut details = serde_json::Map::new();
    for &rate in &plan.rates {
        let body = json!({"test_type": "llm_load", "model": ZERO_MODEL, "rate_rps": rate, "arrival": "poisson",
            "duration_s": plan.duration_s, "warmup_s": 1, "max_tokens": 16, "input_tokens": 16});
        let done = load_done(&agent.run_job(&body).await?)?;
        let achieved = done["achieved_rps"].as_f64().context("achieved_rps")?;
        let ratio = achieved / rate;
        let late_p99 = done["send_lateness_ms"]["p99"].as_f64().unwrap_or(f64::NAN);
        let late_p50 = done["send_lateness_ms"]["p50"].as_f64().unwrap_or(f64::NAN);
        rows.push(Row::check(
            &format!("achieved ÷ target, Poisson {rate} req/s"),
            "0.99–1.01",
            ratio,
            "x",
            (0.99..=1.01).contains(&ratio),
        ));
        rows.push(Row::check(&format!("send lateness p99, {rate} req/s"), "<= 1 ms", late_p99, "ms", late_p99 <= 1.0));
        rows.push(Row::info(&format!("send lateness p50, {rate} req/s"), late_p50, "ms"));
        details.insert(
            format!("{rate}"),
            json!({"target_rps": rate, "achieved_rps": achieved, "ratio": ratio, "requests": done["requests_completed"],
                   "failed": done["requests_failed"], "send_lateness_ms": done["send_lateness_ms"],
                   "max_in_flight": done["max_in_flight"], "under_delivered": done["under_delivered"]}),
        );
    }
    details.insert("duration_s".into(), json!(plan.duration_s));
    details.insert(
        "engine".into(),
        json!("the agent's in-process zero-latency engine (first token at once, 16 tokens as fast as read)"),
    );
    Ok((rows, Value::Object(details)))
}

pub struct Streams {
    pub streams: u32,
    pub tokens: u64,
    pub gap: Duration,
}

/// Writes an agent config for an OpenAI-compatible engine at `url`; returns its path.
fn openai_agent_config(dir: &std::path::Path, url: &str) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("agent.yaml");
    let yaml = format!(
        "machine_id: \"streams\"\nbind_host: \"127.0.0.1\"\nbind_port: 0\nresults_dir: \"{}\"\n\
         engine:\n  kind: openai\n  base_url: \"{url}\"\n",
        dir.join("results").display()
    );
    std::fs::write(&path, yaml)?;
    Ok(path)
}

pub async fn streams(plan: &Streams, args: &Args) -> Result<(Vec<Row>, Value)> {
    let engine = ScriptedEngine::spawn(Script { ttft: Duration::from_millis(10), gap: plan.gap, tokens: plan.tokens });
    let dir = agent::temp_dir("streams");
    let cfg = openai_agent_config(&dir, &engine.base_url)?;
    let proc = Process::start(&args.agent_bin, &["serve", "--config", &cfg.display().to_string()]).await?;
    let client = reqwest::Client::new();
    // Idle means after the start-up calibration.
    for _ in 0..50 {
        let caps: Value = client.get(format!("{}/capabilities", proc.base_url)).send().await?.json().await?;
        if !caps["client_ceiling"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle_rss = proc.rss_bytes().unwrap_or(0) as f64;
    let body = json!({"test_type": "llm_load", "model": MODEL, "concurrency": plan.streams,
        "requests": plan.streams, "max_tokens": plan.tokens, "input_tokens": 8});
    let resp = client.post(format!("{}/jobs", proc.base_url)).json(&body).send().await?;
    let answer: Value = resp.json().await?;
    let job_id = answer["job_id"].as_str().context("job_id")?.to_owned();
    let cpu0 = proc.cpu_s().unwrap_or(f64::NAN);
    let started = Instant::now();
    let mut peak_rss = idle_rss;
    let done = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_rss = peak_rss.max(proc.rss_bytes().unwrap_or(0) as f64);
        let view: Value = client.get(format!("{}/jobs/{job_id}", proc.base_url)).send().await?.json().await?;
        match view["status"].as_str() {
            Some("done") => break true,
            Some("error" | "cancelled") => bail!("the load ended {}: {}", view["status"], view["error"]),
            _ if started.elapsed() > Duration::from_secs(300) => bail!("the load did not end within 300 s"),
            _ => {}
        }
    };
    let cpu1 = proc.cpu_s().unwrap_or(f64::NAN);
    debug_assert!(done);
    let events: Vec<Value> = client
        .get(format!("{}/jobs/{job_id}/events", proc.base_url))
        .send()
        .await?
        .text()
        .await?
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let d = load_done(&events)?;
    let completed = d["requests_completed"].as_f64().unwrap_or(0.0);
    let tokens = completed * d["output_tokens_mean"].as_f64().unwrap_or(0.0);
    let cpu_us_per_token = (cpu1 - cpu0) / tokens * 1e6;
    proc.stop().await;
    let rows = vec![
        Row::check(
            "streams completed",
            &format!("{}", plan.streams),
            completed,
            "",
            completed == f64::from(plan.streams),
        ),
        Row::info("agent CPU per token, 1,000 streams", cpu_us_per_token, "µs"),
        Row::info("agent peak RSS, 1,000 streams", peak_rss / MIB, "MiB"),
        Row::info(
            "agent RSS per stream (peak − idle)",
            (peak_rss - idle_rss) / f64::from(plan.streams) / 1024.0,
            "KiB",
        ),
        Row::info("max in flight", d["max_in_flight"].as_f64().unwrap_or(f64::NAN), ""),
    ];
    let details = json!({"streams": plan.streams, "tokens_per_stream": plan.tokens, "gap_ms": plan.gap.as_millis() as u64,
        "tokens": tokens, "cpu_s": cpu1 - cpu0, "cpu_us_per_token": cpu_us_per_token, "idle_rss_mib": idle_rss / MIB,
        "peak_rss_mib": peak_rss / MIB, "max_in_flight": d["max_in_flight"], "ttft_ms": d["ttft_ms"], "itl_ms": d["itl_ms"],
        "failed": d["requests_failed"], "errors": d["errors"],
        "note": "CPU is the agent process's own (utime + stime from /proc), the engine runs in the harness"});
    Ok((rows, details))
}
