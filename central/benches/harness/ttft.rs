//! `ttft_accuracy`: the scripted engine (exact TTFT and token schedule) measured by the agent
//! and by the raw-socket client in the same run, interleaved. Reported: the TTFT the agent adds
//! over the raw client (median, 1 stream; p99, 64 concurrent streams: one in-process agent per
//! stream, since an agent runs one job at a time) and the error of the agent's client decode rate
//! against the scripted rate.

use std::time::Duration;

use anyhow::{Context, Result};
use bench_shared::engine::EngineKind;
use serde_json::{Value, json};

use crate::agent::{self, Agent};
use crate::engine::{MODEL, Script, ScriptedEngine};
use crate::raw::{self, Protocol};
use crate::report::{Row, median, percentile};

pub struct Plan {
    /// Rounds of (one agent job of `repeat` requests, then `repeat` raw requests).
    pub rounds: u32,
    pub repeat: u32,
    /// Tokens per request of the 1-stream phase (the decode-rate sample).
    pub tokens: u64,
    pub concurrent: usize,
    /// Requests per stream in the concurrent phase.
    pub concurrent_repeat: u32,
}

const TTFT: Duration = Duration::from_millis(20);
const GAP: Duration = Duration::from_millis(2);

fn kind(p: Protocol) -> EngineKind {
    match p {
        Protocol::OpenAi => EngineKind::Openai,
        Protocol::Ollama => EngineKind::Ollama,
    }
}

/// Per-request TTFTs and client decode rates of a `job_done` payload.
fn requests(done: &Value) -> Result<Vec<(f64, f64)>> {
    done["requests"]
        .as_array()
        .context("requests")?
        .iter()
        .map(|r| Ok((r["ttft_ms"].as_f64().context("ttft_ms")?, r["decode_tok_s"].as_f64().context("decode_tok_s")?)))
        .collect()
}

pub async fn run(plan: &Plan) -> Result<(Vec<Row>, Value)> {
    let engine = ScriptedEngine::spawn(Script { ttft: TTFT, gap: GAP, tokens: plan.tokens });
    let scripted_rate = 1.0 / GAP.as_secs_f64();
    let mut rows = Vec::new();
    let mut details = json!({"scripted_ttft_ms": TTFT.as_secs_f64() * 1000.0, "scripted_tok_s": scripted_rate,
                             "tokens": plan.tokens, "rounds": plan.rounds, "repeat": plan.repeat});
    for protocol in [Protocol::OpenAi, Protocol::Ollama] {
        let name = protocol.name();
        let agent =
            Agent::spawn(agent::config("bench", kind(protocol), &engine.base_url, agent::unused_mock())).await?;
        agent.job_done(&agent::generate(MODEL, 4, 1)).await?; // warm: model check, connection pool
        raw::generate(engine.addr, protocol, MODEL, 4).await?;
        let (mut a_ttft, mut a_rate, mut r_ttft, mut r_rate) = (vec![], vec![], vec![], vec![]);
        for _ in 0..plan.rounds {
            for (t, r) in requests(&agent.job_done(&agent::generate(MODEL, plan.tokens, plan.repeat)).await?)? {
                a_ttft.push(t);
                a_rate.push(r);
            }
            for _ in 0..plan.repeat {
                let trace = raw::generate(engine.addr, protocol, MODEL, plan.tokens).await?;
                r_ttft.push(trace.ttft_ms());
                r_rate.push(trace.decode_tok_s());
            }
        }
        let added = median(&a_ttft) - median(&r_ttft);
        rows.push(Row::check(&format!("{name}: TTFT added, median, 1 stream"), "<= 0.3 ms", added, "ms", added <= 0.3));
        let a_err = (median(&a_rate) / scripted_rate - 1.0).abs() * 100.0;
        let r_err = (median(&r_rate) / scripted_rate - 1.0).abs() * 100.0;
        rows.push(Row::check(&format!("{name}: decode rate error (agent)"), "<= 0.1 %", a_err, "%", a_err <= 0.1));
        rows.push(Row::info(&format!("{name}: decode rate error (raw client)"), r_err, "%"));

        let (a64, r64) = concurrent(plan, &engine, protocol).await?;
        let added64 = percentile(&a64, 99.0) - percentile(&r64, 99.0);
        rows.push(Row::check(
            &format!("{name}: TTFT added, p99, {} streams", plan.concurrent),
            "<= 3 ms",
            added64,
            "ms",
            added64 <= 3.0,
        ));
        details[name] = json!({
            "agent_ttft_ms_median": median(&a_ttft), "raw_ttft_ms_median": median(&r_ttft),
            "agent_decode_tok_s_median": median(&a_rate), "raw_decode_tok_s_median": median(&r_rate),
            "agent_ttft_ms_p99_concurrent": percentile(&a64, 99.0), "raw_ttft_ms_p99_concurrent": percentile(&r64, 99.0),
            "agent_ttft_ms_median_concurrent": median(&a64), "raw_ttft_ms_median_concurrent": median(&r64),
            "samples_1_stream": a_ttft.len(), "samples_concurrent": a64.len(),
        });
    }
    Ok((rows, details))
}

/// TTFTs with `plan.concurrent` streams at once: first through one agent per stream, then raw.
async fn concurrent(plan: &Plan, engine: &ScriptedEngine, protocol: Protocol) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut agents = Vec::new();
    for i in 0..plan.concurrent {
        let a =
            Agent::spawn(agent::config(&format!("bench-{i}"), kind(protocol), &engine.base_url, agent::unused_mock()))
                .await?;
        a.job_done(&agent::generate(MODEL, 2, 1)).await?;
        agents.push(a);
    }
    let tokens = 16;
    let jobs = agents.iter().map(|a| a.job_done_owned(agent::generate(MODEL, tokens, plan.concurrent_repeat)));
    let mut through_agent = Vec::new();
    for done in futures_util::future::join_all(jobs).await {
        through_agent.extend(requests(&done?)?.into_iter().map(|(t, _)| t));
    }
    let addr = engine.addr;
    let repeat = plan.concurrent_repeat;
    let raws = (0..plan.concurrent).map(|_| async move {
        let mut out = Vec::new();
        for _ in 0..repeat {
            out.push(raw::generate(addr, protocol, MODEL, tokens).await?.ttft_ms());
        }
        Ok::<_, std::io::Error>(out)
    });
    let mut direct = Vec::new();
    for r in futures_util::future::join_all(raws).await {
        direct.extend(r?);
    }
    Ok((through_agent, direct))
}
