//! Jobs on an Ollama engine, through the agent's HTTP + WebSocket API. No real Ollama can run
//! here, so the engine is the protocol-faithful fake with scripted timing: the figures the agent
//! reports must match the script.

use bench_agent::testkit::fake_ollama::{FakeOllama, FakeScript, WARM_LOAD_MS};
use serde_json::{Value, json};

use crate::support::{TestAgent, of_type, ollama_config};

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measured_figures_match_the_script_and_engine_stats_are_reported() {
    let fake = FakeOllama::spawn(FakeScript { ttft_ms: 200.0, tokens_per_s: 50.0, ..Default::default() }).await;
    let agent = TestAgent::spawn(ollama_config(&fake.base_url)).await;
    let id = agent
        .post_job_ok(json!({
            "test_type": "llm_generate", "model": "llama3.2:1b", "prompt": "Why is the sky blue?",
            "max_tokens": 20, "temperature": 0.1, "num_ctx": 4096, "repeat": 2, "seed": 5, "stream": true,
        }))
        .await;
    let events = agent.wait_for_terminal(&id).await;
    let done = events.last().unwrap();
    assert_eq!(done["type"], "job_done", "{done}");

    let requests = of_type(&events, "request_done");
    assert_eq!(requests.len(), 2);
    for r in &requests {
        let p = &r["payload"];
        assert_eq!(p["engine"], "ollama");
        let ttft = num(p, "ttft_ms");
        assert!((160.0..=240.0).contains(&ttft), "ttft {ttft} ms, scripted 200");
        let rate = num(p, "decode_tok_s");
        assert!((42.5..=57.5).contains(&rate), "decode {rate} tok/s, scripted 50");
        assert_eq!((p["gen_tokens"].as_u64(), p["token_source"].as_str()), (Some(20), Some("engine")));
        // The engine's own figures (final stats, ns on the wire) beside the client's.
        assert!((num(p, "engine_decode_tok_s") - 50.0).abs() < 1e-6, "{p}");
        // Warm model: Ollama's load_duration is ~1 ms; prompt eval is the rest of the TTFT.
        let prompt_eval_ms = 200.0 - WARM_LOAD_MS;
        assert_eq!((num(p, "load_ms"), num(p, "engine_eval_ms")), (WARM_LOAD_MS, 400.0));
        assert_eq!(num(p, "engine_prompt_eval_ms"), prompt_eval_ms);
        assert_eq!((p["prompt_tokens"].as_u64(), p["load_source"].as_str()), (Some(26), Some("engine")));
        assert!((num(p, "engine_prefill_tok_s") - 26.0 / (prompt_eval_ms / 1000.0)).abs() < 1e-6);
        assert_eq!(p["done_reason"], "stop");
    }

    let d = &done["payload"];
    assert_eq!((d["engine"].as_str(), d["model"].as_str()), (Some("ollama"), Some("llama3.2:1b")));
    assert_eq!((d["gen_tokens"].as_u64(), d["repeats"].as_u64()), (Some(20), Some(2)));
    assert!((num(d, "engine_decode_tok_s") - 50.0).abs() < 1e-6);
    // Not a cold job: the job does not claim to have measured a model load.
    assert!(d["load_ms"].is_null(), "{d}");
    let ttft = num(d, "ttft_ms");
    assert!((160.0..=240.0).contains(&ttft), "mean ttft {ttft}");
    let expected: String = (0..20).map(|i| format!(" word{i}")).collect();
    assert_eq!(d["output_text"], expected.as_str());
    let streamed: String = of_type(&events, "llm_token")
        .iter()
        .filter(|t| t["payload"]["repeat_index"] == 0)
        .map(|t| t["payload"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, expected);

    // What the agent asked Ollama for: every option, on /api/chat.
    let chats = fake.bodies("/api/chat");
    assert_eq!(chats.len(), 2);
    for body in &chats {
        let o = &body["options"];
        assert_eq!(
            (o["num_ctx"].as_u64(), o["num_predict"].as_u64(), o["seed"].as_i64()),
            (Some(4096), Some(20), Some(5))
        );
        assert_eq!(o["temperature"].as_f64(), Some(0.1));
        assert_eq!(body["messages"][0]["content"], "Why is the sky blue?");
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_line_mid_stream_is_a_job_error() {
    let script = FakeScript { ttft_ms: 10.0, tokens_per_s: 200.0, error_after: Some(3), ..Default::default() };
    let fake = FakeOllama::spawn(script.clone()).await;
    let agent = TestAgent::spawn(ollama_config(&fake.base_url)).await;
    let id = agent.post_job_ok(json!({"model": "llama3.2:1b", "prompt": "hi", "max_tokens": 20})).await;
    let events = agent.wait_for_terminal(&id).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "job_error", "{last}");
    assert_eq!(last["payload"]["kind"], "engine_error");
    let message = last["payload"]["message"].as_str().unwrap();
    assert!(message.contains(&script.error_message), "{message}");
    assert!(of_type(&events, "job_done").is_empty() && of_type(&events, "request_done").is_empty());
    let job = agent.get_json(&format!("/jobs/{id}")).await;
    assert_eq!(job["status"], "error");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_model_is_a_404_naming_the_available_models() {
    let fake = FakeOllama::spawn(FakeScript::default()).await;
    let agent = TestAgent::spawn(ollama_config(&fake.base_url)).await;
    let resp = agent.post_job(json!({"model": "llama9:70b", "prompt": "hi"})).await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["field"], "model");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("llama3.2:1b") && error.contains("qwen3:0.6b"), "{error}");
    assert_eq!(body["available"], json!(["llama3.2:1b", "qwen3:0.6b"]));
    assert!(fake.bodies("/api/chat").is_empty(), "nothing was generated");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_job_unloads_with_keep_alive_zero_and_reports_the_load() {
    let script = FakeScript { ttft_ms: 20.0, tokens_per_s: 500.0, load_ms: 300.0, ..Default::default() };
    let fake = FakeOllama::spawn(script).await;
    let agent = TestAgent::spawn(ollama_config(&fake.base_url)).await;
    let id = agent.post_job_ok(json!({"model": "qwen3:0.6b", "prompt": "hi", "max_tokens": 4, "cold": true})).await;
    let events = agent.wait_for_terminal(&id).await;
    let done = &events.last().unwrap()["payload"];
    assert_eq!(events.last().unwrap()["type"], "job_done", "{events:?}");
    let requests = fake.requests();
    let unload = requests.iter().position(|r| r.path == "/api/generate" && r.body["keep_alive"] == 0);
    let chat = requests.iter().position(|r| r.path == "/api/chat");
    assert!(unload.is_some() && unload < chat, "unload before the first chat: {requests:?}");
    assert_eq!(requests[unload.unwrap()].body["model"], "qwen3:0.6b");
    // The first request after the unload paid the load: Ollama's load_duration, and in the TTFT.
    assert_eq!(num(done, "load_ms"), 300.0);
    assert_eq!(done["load_source"], "engine");
    let ttft = num(done, "ttft_ms");
    assert!((300.0..=380.0).contains(&ttft), "cold ttft {ttft} ms = 20 warm + 300 load");
    // What the engine really ran with (Ollama /api/ps), for the settings check.
    assert_eq!(done["context_length"], 4096, "{done}");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmups_give_the_documented_load_estimate() {
    // Not loaded at first: the first warm-up pays 300 ms, the later ones are warm.
    let script =
        FakeScript { ttft_ms: 20.0, tokens_per_s: 500.0, load_ms: 300.0, preloaded: false, ..Default::default() };
    let fake = FakeOllama::spawn(script).await;
    let agent = TestAgent::spawn(ollama_config(&fake.base_url)).await;
    let id = agent.post_job_ok(json!({"model": "qwen3:0.6b", "prompt": "hi", "max_tokens": 4, "warmup": 3})).await;
    let events = agent.wait_for_terminal(&id).await;
    let done = &events.last().unwrap()["payload"];
    assert_eq!(events.last().unwrap()["type"], "job_done", "{events:?}");
    assert_eq!(done["load_source"], "warmup_estimate", "{done}");
    // First warm-up TTFT (~320 ms) − mean of the later ones (~20 ms) ≈ the scripted 300 ms load.
    let load = num(done, "load_ms");
    assert!((240.0..=360.0).contains(&load), "load estimate {load} ms for a scripted 300 ms load");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thinking_text_streams_on_the_reasoning_channel_and_separates_ttft_from_ttfc() {
    let script = FakeScript {
        ttft_ms: 50.0,
        tokens_per_s: 20.0,
        thinking: vec!["Let".into(), " me".into(), " see".into()],
        tokens: vec!["Rayleigh".into(), " scattering".into()],
        ..Default::default()
    };
    let fake = FakeOllama::spawn(script).await;
    let agent = TestAgent::spawn(ollama_config(&fake.base_url)).await;
    let id = agent.post_job_ok(json!({"model": "qwen3:0.6b", "prompt": "Why blue?", "max_tokens": 50})).await;
    let events = agent.wait_for_terminal(&id).await;
    let done = &events.last().unwrap()["payload"];
    assert_eq!(events.last().unwrap()["type"], "job_done", "{done}");
    assert_eq!(done["output_text"], "Rayleigh scattering");
    // Three thinking tokens at 20 tok/s come before the first visible one: ~150 ms later.
    let (ttft, ttfc) = (num(done, "ttft_ms"), num(done, "ttfc_ms"));
    assert!(ttfc - ttft >= 120.0, "ttft {ttft} ttfc {ttfc}");
    let reasoning: String = of_type(&events, "llm_token")
        .iter()
        .filter(|t| t["payload"]["channel"] == "reasoning")
        .map(|t| t["payload"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(reasoning, "Let me see");
    // Ollama's eval_count has no split: the three thinking lines are the reasoning tokens.
    let request = of_type(&events, "request_done")[0]["payload"].clone();
    assert_eq!(request["reasoning_tokens"], 3, "{request}");
    agent.shutdown().await;
}
