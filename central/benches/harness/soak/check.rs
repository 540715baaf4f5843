//! What the soak checks: each race's stored events against what its agents journaled (events
//! lost), and at the end every line of every file (unparsable lines) and every run (terminal).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The comparison of one race with its agents' journals.
#[derive(Debug, Default, Clone)]
pub struct RaceCheck {
    /// What was lost, for the report: `run machine job status: seqs`.
    pub lost_examples: Vec<String>,
    /// Agent events with a seq central stored past, that central does not have (a gap).
    pub lost: u64,
    /// Agent events after the last one central took, for a machine central ended in error
    /// (central gave up on it: an agent lost or stopped); not counted as lost.
    pub after_give_up: u64,
    /// Jobs whose agent could not be asked (down for longer than the check waits).
    pub unverifiable: u64,
}

/// Seqs per job of central's stored events of a run, and the run's machines' job ids and status.
pub async fn check_race(
    http: &reqwest::Client,
    central: &str,
    agents: &BTreeMap<String, String>,
    run_id: &str,
) -> RaceCheck {
    let mut out = RaceCheck::default();
    let Some(detail) = get_json(http, &format!("{central}/api/runs/{run_id}")).await else {
        out.unverifiable += 1;
        return out;
    };
    let Some(text) = get_text(http, &format!("{central}/api/runs/{run_id}/events")).await else {
        out.unverifiable += 1;
        return out;
    };
    let mut stored: BTreeMap<(String, String), BTreeSet<u64>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        if let (Some(m), Some(j), Some(seq)) = (v["machine_id"].as_str(), v["job_id"].as_str(), v["seq"].as_u64())
            && seq > 0
        {
            stored.entry((m.to_owned(), j.to_owned())).or_default().insert(seq);
        }
    }
    for m in detail["metadata"]["machines"].as_array().into_iter().flatten() {
        let (Some(id), Some(job)) = (m["machine_id"].as_str(), m["job_id"].as_str()) else { continue };
        let Some(agent) = agents.get(id) else { continue };
        let Some(agent_seqs) = agent_seqs(http, agent, job).await else {
            out.unverifiable += 1;
            continue;
        };
        let have = stored.get(&(id.to_owned(), job.to_owned())).cloned().unwrap_or_default();
        let max_central = have.iter().next_back().copied().unwrap_or(0);
        let ok = matches!(m["status"].as_str(), Some("complete" | "done"));
        let mut missing = Vec::new();
        for s in &agent_seqs {
            if have.contains(s) {
                continue;
            }
            if *s <= max_central || ok {
                out.lost += 1;
                missing.push(*s);
            } else {
                out.after_give_up += 1;
            }
        }
        if !missing.is_empty() {
            out.lost_examples.push(format!(
                "run {run_id} ({}) machine {id} job {job} ({}: {}): central lacks seqs {missing:?} of {} (central has {} up to {max_central})",
                detail["metadata"]["status"].as_str().unwrap_or("?"),
                m["status"].as_str().unwrap_or("?"),
                m["reason"].as_str().unwrap_or(""),
                agent_seqs.len(),
                have.len(),
            ));
        }
    }
    out
}

/// The seqs the agent journaled for `job` (retrying for 15 s while the agent is down).
async fn agent_seqs(http: &reqwest::Client, agent: &str, job: &str) -> Option<BTreeSet<u64>> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(15) {
        match http.get(format!("{agent}/jobs/{job}/events")).send().await {
            Ok(r) if r.status().is_success() => {
                let text = r.text().await.ok()?;
                return Some(
                    text.lines()
                        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                        .filter_map(|v| v["seq"].as_u64())
                        .collect(),
                );
            }
            // The agent does not know the job (killed before its journal had it): nothing to compare.
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => return Some(BTreeSet::new()),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    None
}

async fn get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    for _ in 0..60 {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
            && let Ok(v) = r.json::<Value>().await
        {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

async fn get_text(http: &reqwest::Client, url: &str) -> Option<String> {
    for _ in 0..60 {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
            && let Ok(t) = r.text().await
        {
            return Some(t);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// Every file under `dir`: lines of `.ndjson` files and whole `.json` files that do not parse
/// (a torn line counts once), and how many lines and files were read. Blocking.
pub fn unparsable(dir: &Path) -> (u64, u64, Vec<String>) {
    let (mut bad, mut read, mut examples) = (0u64, 0u64, Vec::new());
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let name = p.to_string_lossy().to_string();
            if name.ends_with(".ndjson") {
                let Ok(text) = std::fs::read_to_string(&p) else { continue };
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    read += 1;
                    if serde_json::from_str::<Value>(line).is_err() {
                        bad += 1;
                        if examples.len() < 5 {
                            examples.push(format!("{name}: {}", line.chars().take(120).collect::<String>()));
                        }
                    }
                }
            } else if name.ends_with(".json") {
                read += 1;
                let ok = std::fs::read_to_string(&p).is_ok_and(|t| serde_json::from_str::<Value>(&t).is_ok());
                if !ok {
                    bad += 1;
                    if examples.len() < 5 {
                        examples.push(format!("{name}: not JSON"));
                    }
                }
            }
        }
    }
    (bad, read, examples)
}

/// Runs whose stored status is still `running`, and every run's status counted. Blocking.
pub fn run_statuses(results: &Path) -> (Vec<String>, BTreeMap<String, u64>) {
    let mut running = Vec::new();
    let mut counts = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(results.join("runs")) else { return (running, counts) };
    for e in entries.flatten() {
        let meta = e.path().join("metadata.json");
        let status = std::fs::read_to_string(&meta)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v["status"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "unreadable".into());
        if status == "running" {
            running.push(e.file_name().to_string_lossy().to_string());
        }
        *counts.entry(status).or_insert(0) += 1;
    }
    (running, counts)
}
