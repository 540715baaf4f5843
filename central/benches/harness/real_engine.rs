//! `real_engine_overhead`: the local llama.cpp engine (`BENCH_TEST_ENGINE_URL`) asked directly by
//! the raw client and through the agent, interleaved: the agent's client decode rate ÷ the raw
//! client's, and the TTFT difference. Skipped (not a failure) without an engine.

use anyhow::Result;
use bench_shared::engine::EngineKind;
use serde_json::{Value, json};

use crate::agent::{self, Agent};
use crate::raw::{self, Protocol};
use crate::report::{Row, median};

const MODEL: &str = "smollm2:135m";

pub async fn run(quick: bool) -> Result<(Vec<Row>, Value)> {
    let Some(url) = std::env::var("BENCH_TEST_ENGINE_URL").ok().filter(|u| !u.is_empty()) else {
        return Ok((
            vec![
                Row::gap("tok/s through agent ÷ direct", ">= 0.99", "skipped: no engine"),
                Row::gap("TTFT through agent − direct", "<= 1 ms", "skipped: no engine"),
            ],
            json!({"skipped": "BENCH_TEST_ENGINE_URL is not set"}),
        ));
    };
    let addr = url.trim_start_matches("http://").trim_end_matches('/').trim_end_matches("/v1");
    let addr: std::net::SocketAddr =
        tokio::net::lookup_host(addr).await?.next().ok_or_else(|| anyhow::anyhow!("no address for {url}"))?;
    let agent = Agent::spawn(agent::config("real", EngineKind::Openai, &url, agent::unused_mock())).await?;
    let (rounds, tokens) = if quick { (6, 32) } else { (12, 64) };
    agent.job_done(&agent::generate(MODEL, 8, 1)).await?;
    raw::generate_marked(addr, Protocol::OpenAi, MODEL, 8, raw::OPENAI_MARKER).await?;
    let (mut a_rate, mut r_rate, mut a_ttft, mut r_ttft) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let done = agent.job_done(&agent::generate(MODEL, tokens, 1)).await?;
        a_rate.push(done["decode_tok_s"].as_f64().unwrap_or(f64::NAN));
        a_ttft.push(done["ttft_ms"].as_f64().unwrap_or(f64::NAN));
        let trace = raw::generate_marked(addr, Protocol::OpenAi, MODEL, tokens, raw::OPENAI_MARKER).await?;
        r_rate.push(trace.decode_tok_s());
        r_ttft.push(trace.ttft_ms());
    }
    let ratio = median(&a_rate) / median(&r_rate);
    let diff = median(&a_ttft) - median(&r_ttft);
    Ok((
        vec![
            Row::check("tok/s through agent ÷ direct", ">= 0.99", ratio, "x", ratio >= 0.99),
            Row::check("TTFT through agent − direct", "<= 1 ms", diff, "ms", diff.abs() <= 1.0),
        ],
        json!({"engine": url, "rounds": rounds, "tokens": tokens, "agent_tok_s": a_rate, "raw_tok_s": r_rate,
               "agent_ttft_ms": a_ttft, "raw_ttft_ms": r_ttft}),
    ))
}
