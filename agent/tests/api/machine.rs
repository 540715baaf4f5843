//! The machine: fingerprint and the original's flat fields in `/capabilities`, the runtime
//! buffer, `runtime_metrics` events during a job, Prometheus `/metrics`, energy fields.

use std::collections::BTreeMap;

use bench_agent::testkit::prometheus::parse_exposition;
use bench_agent::testkit::{LOCAL_MODEL, local_engine_url};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{TestAgent, WAIT_LIMIT, mock_config, of_type, openai_config};

async fn scrape(agent: &TestAgent) -> BTreeMap<String, f64> {
    let resp = agent.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    parse_exposition(&resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_a_job() {
    let agent = TestAgent::spawn(mock_config()).await;
    let before = scrape(&agent).await;
    assert_eq!(before.get("bench_agent_jobs_total{status=\"done\"}"), None, "{before:?}");
    assert_eq!(before.get("bench_agent_generated_tokens_total"), Some(&0.0));
    assert_eq!(before.get("bench_agent_engine_reachable"), Some(&1.0), "the mock engine is always there");

    let id = agent
        .post_job_ok(json!({"model": "mock-llm", "prompt": "hi", "max_tokens": 12, "repeat": 2, "warmup": 1}))
        .await;
    let events = agent.wait_for_terminal(&id).await;
    assert_eq!(events.last().unwrap()["type"], "job_done");
    let tokens: u64 =
        of_type(&events, "request_done").iter().map(|e| e["payload"]["gen_tokens"].as_u64().unwrap()).sum();
    let after = scrape(&agent).await;
    assert_eq!(after["bench_agent_jobs_total{status=\"done\"}"], 1.0);
    assert_eq!(after["bench_agent_requests_total{status=\"recorded\"}"], 2.0);
    assert_eq!(after["bench_agent_requests_total{status=\"warmup\"}"], 1.0);
    assert_eq!(after["bench_agent_generated_tokens_total"], tokens as f64);
    assert_eq!(after["bench_agent_ttft_seconds_count"], 3.0);
    assert_eq!(after["bench_agent_request_duration_seconds_count"], 3.0);
    assert!(after.contains_key("bench_agent_memory_total_bytes"), "runtime gauges are exported: {after:?}");
    // Energy is never made up: the mock engine does no real work.
    let done = of_type(&events, "request_done")[0]["payload"].clone();
    assert!(done["energy_j"].is_null() && done["tokens_per_j"].is_null(), "{done}");
    assert!(done["energy_unavailable"].as_str().unwrap().contains("mock"), "{done}");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_runtime_buffer_follow_the_auth_rule() {
    let mut cfg = mock_config();
    cfg.auth_token = Some("s3cret".into());
    let agent = TestAgent::spawn(cfg).await;
    for path in ["/metrics", "/api/agent/runtime_metrics"] {
        let resp = agent.client.get(agent.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        assert_eq!(agent.get(path).await.status(), 200, "{path} with the token");
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_metrics_stream_during_a_job_and_fill_the_buffer() {
    let mut cfg = mock_config();
    cfg.engine.mock.tokens_per_s = 20.0;
    cfg.runtime_sampler.interval_s = 0.25;
    cfg.runtime_sampler.buffer_len = 3;
    let agent = TestAgent::spawn(cfg).await;
    let id = agent.post_job_ok(json!({"model": "mock-llm", "prompt": "long", "max_tokens": 100000})).await;
    let mut ws = agent.ws_connect(&format!("job_id={id}")).await;
    let sample = tokio::time::timeout(WAIT_LIMIT, async {
        while let Some(msg) = ws.next().await {
            if let Message::Text(t) = msg.unwrap() {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "runtime_metrics" {
                    return v;
                }
            }
        }
        panic!("no runtime_metrics event");
    })
    .await
    .expect("a runtime_metrics event while the job runs");
    assert_eq!(sample["job_id"], id.as_str());
    let p = &sample["payload"];
    assert!(p["system_mem_total_bytes"].as_u64().unwrap() > 0 && p["timestamp_s"].as_f64().unwrap() > 0.0, "{p}");
    assert!(p["gpus"].as_array().unwrap().is_empty(), "no GPU on this machine, none reported");
    assert!(agent.delete(&format!("/jobs/{id}")).await.status().is_success());
    let events = agent.wait_for_terminal(&id).await;
    let last_sample = events.iter().rposition(|e| e["type"] == "runtime_metrics").unwrap();
    let started = events.iter().position(|e| e["type"] == "job_started").unwrap();
    assert!(started < last_sample && last_sample < events.len() - 1, "samples between start and the terminal event");

    let buf = agent.get_json("/api/agent/runtime_metrics").await;
    for key in ["cpu_pct", "gpu_pct", "vram_used_mib", "vram_total_mib", "system_mem_used_mib", "timestamps"] {
        let n = buf[key].as_array().unwrap_or_else(|| panic!("{key}: {buf}")).len();
        assert!((1..=3).contains(&n), "{key} holds at most buffer_len samples: {n}");
    }
    assert_eq!(buf["gpu_metrics_available"], false);
    assert_eq!((buf["interval_s"].as_f64(), buf["buffer_len"].as_u64()), (Some(0.25), Some(3)));
    agent.shutdown().await;
}

/// The real engine: `/capabilities` carries the fingerprint, llama.cpp's `/props` and the
/// original's flat fields; a real request reports energy or why not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_engine_capabilities_and_energy_fields() {
    let agent = TestAgent::spawn(openai_config(&local_engine_url())).await;
    let caps = agent.get_json("/capabilities").await;
    let hw = &caps["hardware"];
    assert!(hw["kernel"].is_string() && hw["arch"].is_string() && hw["cpu_logical_cores"].as_u64() >= Some(1), "{hw}");
    let fp = &caps["engine_fingerprint"];
    assert_eq!(fp["sources"], json!(["/props"]), "{fp}");
    assert!(
        fp["build"].is_string() && fp["slots"].as_u64() >= Some(1) && fp["context_size"].as_u64() > Some(0),
        "{fp}"
    );
    assert_eq!(caps["total_system_ram_bytes"], hw["memory_total_bytes"]);
    assert_eq!(caps["cpu_cores"], hw["cpu_logical_cores"]);
    assert_eq!(caps["ollama_reachable"], true);
    assert!(caps["ollama_models"].as_array().unwrap().iter().any(|m| m == LOCAL_MODEL), "{caps}");
    for key in ["accelerator_type", "gpu_name", "gpu_vram_bytes", "gpu_type", "cuda_compute"] {
        assert!(caps[key].is_null(), "no GPU here: {key} is null, not guessed: {caps}");
    }
    assert!(caps["system_memory_gb"].as_f64().unwrap() > 0.0);

    let id = agent.post_job_ok(json!({"model": LOCAL_MODEL, "prompt": "Say hi.", "max_tokens": 8})).await;
    let events = agent.wait_for_terminal(&id).await;
    assert_eq!(events.last().unwrap()["type"], "job_done", "{events:?}");
    let done = &of_type(&events, "request_done")[0]["payload"];
    match done["energy_j"].as_f64() {
        Some(j) => assert!(j > 0.0 && done["energy_source"].is_string(), "{done}"),
        None => assert!(done["energy_unavailable"].as_str().is_some_and(|r| !r.is_empty()), "a reason: {done}"),
    }
    agent.shutdown().await;
}

/// Ollama (the protocol-faithful fake): the KV cache size per token from `/api/show`, and the
/// engine fingerprint from `/api/version` + `/api/ps` (models loaded, their GPU offload).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_fingerprint_and_kv_cache_facts() {
    use bench_agent::testkit::fake_ollama::{FakeOllama, FakeScript};
    let fake = FakeOllama::spawn(FakeScript { ttft_ms: 5.0, tokens_per_s: 500.0, ..Default::default() }).await;
    let agent = TestAgent::spawn(crate::support::ollama_config(&fake.base_url)).await;
    let caps = agent.get_json("/capabilities").await;
    let model = caps["models"].as_array().unwrap().iter().find(|m| m["name"] == "llama3.2:1b").unwrap().clone();
    // 16 layers × 8 KV heads × (64 + 64) × 2 bytes.
    assert_eq!(model["kv_bytes_per_token"], 16 * 8 * 128 * 2, "{model}");
    let fp = &caps["engine_fingerprint"];
    assert_eq!(fp["sources"], json!(["/api/version", "/api/ps"]), "{fp}");
    let id = agent.post_job_ok(json!({"model": "llama3.2:1b", "prompt": "hi", "max_tokens": 4})).await;
    assert_eq!(agent.wait_for_terminal(&id).await.last().unwrap()["type"], "job_done");
    let caps = agent.get_json("/capabilities").await;
    let loaded = caps["engine_fingerprint"]["loaded"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "llama3.2:1b")
        .cloned()
        .unwrap_or_else(|| panic!("the job's model is loaded: {caps}"));
    assert_eq!(
        (loaded["name"].as_str(), loaded["gpu_offload_pct"].as_f64()),
        (Some("llama3.2:1b"), Some(100.0)),
        "{caps}"
    );
    assert_eq!(caps["engine_fingerprint"]["version"], caps["engine"]["version"]);
    agent.shutdown().await;
}
