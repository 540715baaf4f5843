//! `history`: 10,000 stored runs (copies of one real race's folder, written with the real
//! `shared` types under fresh run ids), then `GET /api/runs`, `GET /history` and
//! `GET /api/leaderboard` latency from a central started on that folder.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use bench_agent::engine::mock::MockSettings;
use bench_central::store::{EVENTS, METADATA, SUMMARY, rfc3339};
use bench_shared::engine::EngineKind;
use bench_shared::run::{RunMetadata, RunSummary};
use serde_json::{Value, json};

use crate::agent::{self, Agent};
use crate::central::{self, Central};
use crate::report::{Row, median, percentile};

pub struct Plan {
    pub runs: usize,
    /// Timed requests per endpoint.
    pub requests: usize,
}

pub async fn run(plan: &Plan) -> Result<(Vec<Row>, Value)> {
    let results = agent::temp_dir("history");
    let template = {
        let mock = MockSettings { ttft_ms: 5.0, tokens_per_s: 2000.0, models: vec!["mock-llm".into()] };
        let a = Agent::spawn(agent::config("solo", EngineKind::Mock, "", mock)).await?;
        let central = Central::spawn(&[central::machine("solo", &a.base_url)], &results).await?;
        central.wait_online(&["solo".into()]).await?;
        let id = central.start_run(&central::generate_body("mock-llm", 16)).await?;
        central.wait_run_end(&id).await?;
        id
    };
    let runs = plan.runs;
    let dir = results.join("runs");
    let wrote = Instant::now();
    tokio::task::spawn_blocking(move || copy_runs(&dir, &template, runs)).await??;
    let write_s = wrote.elapsed().as_secs_f64();

    let central = Central::spawn(&[], &results).await?;
    let page = central.get_json("/api/runs").await?;
    ensure!(page["total"].as_u64() == Some(runs as u64), "GET /api/runs total {} of {runs}", page["total"]);
    let mut api_ms = Vec::new();
    let mut page_ms = Vec::new();
    let mut board_ms = Vec::new();
    for _ in 0..plan.requests {
        let t = Instant::now();
        let body = central.client.get(format!("{}/api/runs", central.base_url)).send().await?.bytes().await?;
        api_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        ensure!(!body.is_empty(), "empty /api/runs");
        let t = Instant::now();
        let resp = central.client.get(format!("{}/history", central.base_url)).send().await?;
        ensure!(resp.status().is_success(), "GET /history: {}", resp.status());
        resp.bytes().await?;
        page_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let resp = central.client.get(format!("{}/api/leaderboard", central.base_url)).send().await?;
        ensure!(resp.status().is_success(), "GET /api/leaderboard: {}", resp.status());
        let board: Value = resp.json().await?;
        board_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        ensure!(board["rows"].as_array().is_some_and(|r| !r.is_empty()), "an empty leaderboard over {runs} runs");
    }
    let (api, page, board) = (median(&api_ms), median(&page_ms), median(&board_ms));
    let rows = vec![
        Row::check(&format!("GET /api/runs, {runs} runs, median"), "<= 50 ms", api, "ms", api <= 50.0),
        Row::check(&format!("GET /history, {runs} runs, median"), "<= 50 ms", page, "ms", page <= 50.0),
        Row::check(&format!("GET /api/leaderboard, {runs} runs, median"), "<= 100 ms", board, "ms", board <= 100.0),
        Row::info("GET /api/runs p99", percentile(&api_ms, 99.0), "ms"),
        Row::info("GET /api/leaderboard p99", percentile(&board_ms, 99.0), "ms"),
        Row::info("GET /history p99", percentile(&page_ms, 99.0), "ms"),
    ];
    Ok((
        rows,
        json!({"runs": runs, "requests": plan.requests, "api_runs_ms": api_ms, "history_page_ms": page_ms,
                     "leaderboard_ms": board_ms, "write_s": write_s}),
    ))
}

/// Writes `count − 1` copies of run `template` (so `count` runs in all), one second apart.
fn copy_runs(runs_dir: &Path, template: &str, count: usize) -> Result<()> {
    let src = runs_dir.join(template);
    let meta: RunMetadata = serde_json::from_slice(&std::fs::read(src.join(METADATA))?).context("template metadata")?;
    let summary: Option<RunSummary> = match std::fs::read(src.join(SUMMARY)) {
        Ok(b) => Some(serde_json::from_slice(&b).context("template summary")?),
        Err(_) => None,
    };
    let events = std::fs::read(src.join(EVENTS))?;
    for i in 1..count {
        let at = meta.started_at_s - i as f64;
        let id = format!("{}_{i:06x}", &bench_central::store::new_run_id(at)[..17]);
        let dir = runs_dir.join(&id);
        std::fs::create_dir_all(&dir)?;
        let mut m = meta.clone();
        m.run_id = id.clone();
        m.started_at_s = at;
        m.started_at = rfc3339(at);
        std::fs::write(dir.join(METADATA), serde_json::to_vec_pretty(&m)?)?;
        if let Some(s) = &summary {
            let mut s = s.clone();
            s.run_id = id.clone();
            std::fs::write(dir.join(SUMMARY), serde_json::to_vec_pretty(&s)?)?;
        }
        std::fs::write(dir.join(EVENTS), &events)?;
    }
    Ok(())
}
