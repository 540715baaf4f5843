//! `ingest_ceiling`: an engine writing tokens as fast as loopback takes them. The agent's own
//! client decode rate (the reader paces the writer through TCP flow control) against the raw
//! reader's on the same stream, interleaved; CPU per million tokens from `/proc/self/stat`.

use std::time::Duration;

use anyhow::{Result, ensure};
use bench_shared::engine::EngineKind;
use serde_json::{Value, json};

use crate::agent::{self, Agent};
use crate::engine::{MODEL, Script, ScriptedEngine};
use crate::procfs::cpu_s;
use crate::raw::{self, Protocol};
use crate::report::{Row, median};

pub struct Plan {
    pub rounds: u32,
    pub tokens: u64,
}

pub async fn run(plan: &Plan) -> Result<(Vec<Row>, Value)> {
    let engine =
        ScriptedEngine::spawn(Script { ttft: Duration::from_millis(1), gap: Duration::ZERO, tokens: plan.tokens });
    let agent =
        Agent::spawn(agent::config("bench", EngineKind::Openai, &engine.base_url, agent::unused_mock())).await?;
    agent.job_done(&agent::generate(MODEL, 1000, 1)).await?;
    let (mut a_rate, mut r_rate, mut a_cpu, mut r_cpu) = (vec![], vec![], vec![], vec![]);
    for _ in 0..plan.rounds {
        let c0 = cpu_s("self").unwrap_or(f64::NAN);
        let done = agent.job_done(&agent::generate(MODEL, plan.tokens, 1)).await?;
        let c1 = cpu_s("self").unwrap_or(f64::NAN);
        let trace = raw::generate(engine.addr, Protocol::OpenAi, MODEL, plan.tokens).await?;
        let c2 = cpu_s("self").unwrap_or(f64::NAN);
        ensure!(
            done["gen_tokens"].as_u64() == Some(plan.tokens),
            "agent counted {} tokens of {}",
            done["gen_tokens"],
            plan.tokens
        );
        ensure!(
            trace.token_us.len() as u64 == plan.tokens,
            "raw reader saw {} tokens of {}",
            trace.token_us.len(),
            plan.tokens
        );
        a_rate.push(done["decode_tok_s"].as_f64().unwrap_or(f64::NAN));
        r_rate.push(trace.decode_tok_s());
        a_cpu.push((c1 - c0) / plan.tokens as f64 * 1e6);
        r_cpu.push((c2 - c1) / plan.tokens as f64 * 1e6);
    }
    let ratio = median(&a_rate) / median(&r_rate);
    let rows = vec![
        Row::check("agent tok/s ÷ raw reader tok/s", ">= 0.9", ratio, "x", ratio >= 0.9),
        Row::info("agent tok/s (client decode rate)", median(&a_rate), "tok/s"),
        Row::info("CPU per Mtok, whole process, agent run", median(&a_cpu), "s"),
        Row::info("CPU per Mtok, agent's share (minus raw run)", median(&a_cpu) - median(&r_cpu), "s"),
    ];
    let details = json!({"tokens_per_round": plan.tokens, "rounds": plan.rounds,
        "agent_tok_s": a_rate, "raw_tok_s": r_rate, "cpu_s_per_mtok_agent_run": a_cpu, "cpu_s_per_mtok_raw_run": r_cpu,
        "note": "the scripted engine runs in the same process: both CPU figures include it; the difference is the agent's share"});
    Ok((rows, details))
}
