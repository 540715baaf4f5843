//! Jobs on the built-in mock engine, and the explicit fallback to it.

use bench_agent::engine::Fallback;
use serde_json::json;

use crate::support::{TestAgent, mock_config, of_type, ollama_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_job_streams_tokens_and_finishes_labelled_mock() {
    let agent = TestAgent::spawn(mock_config()).await;
    let id = agent
        .post_job_ok(
            json!({"test_type": "llm_generate", "model": "mock-llm", "prompt": "hello", "max_tokens": 20, "repeat": 2}),
        )
        .await;
    let events = agent.wait_for_terminal(&id).await;
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>(), "seq counts from 1 without gaps");
    assert_eq!(events[0]["type"], "job_queued");
    assert_eq!(events[1]["type"], "job_started");
    assert!(events.iter().all(|e| e["job_id"] == id.as_str() && e["machine_id"] == "test-machine"));
    let done = events.last().unwrap();
    assert_eq!(done["type"], "job_done", "{done}");
    assert_eq!(done["payload"]["engine"], "mock");
    assert_eq!(done["payload"]["gen_tokens"], 20);
    assert_eq!(done["payload"]["repeats"], 2);
    assert_eq!(of_type(&events, "request_done").len(), 2);
    let streamed: String = of_type(&events, "llm_token")
        .iter()
        .filter(|t| t["payload"]["repeat_index"] == 0)
        .map(|t| t["payload"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, done["payload"]["output_text"].as_str().unwrap());
    assert!(events.iter().all(|e| e.get("fallback_reason").is_none()));

    let job = agent.get_json(&format!("/jobs/{id}")).await;
    assert_eq!(job["status"], "done");
    assert_eq!(job["requests"].as_array().unwrap().len(), 2);
    assert_eq!(job["aggregate"]["requests"], 2);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_engine_with_fallback_runs_on_mock_and_says_so_in_every_event() {
    // Port 9 (discard) on loopback: nothing listens there, so connections are refused.
    let mut cfg = ollama_config("http://127.0.0.1:9");
    cfg.engine.fallback = Fallback::Mock;
    let agent = TestAgent::spawn(cfg).await;
    let id = agent.post_job_ok(json!({"model": "llama3.1:8b", "prompt": "hi", "max_tokens": 8})).await;
    let events = agent.wait_for_terminal(&id).await;
    assert_eq!(events.last().unwrap()["type"], "job_done", "{events:?}");
    for e in &events {
        let reason = e["fallback_reason"].as_str().unwrap_or_else(|| panic!("no fallback_reason on {e}"));
        assert!(reason.contains("mock"), "{reason}");
    }
    assert_eq!(of_type(&events, "job_started")[0]["payload"]["engine"], "mock");
    assert!(of_type(&events, "request_done").iter().all(|r| r["payload"]["engine"] == "mock"));
    let done = &events.last().unwrap()["payload"];
    assert_eq!(done["engine"], "mock");
    assert!(done["fallback_reason"].is_string());
    let caps = agent.get_json("/capabilities").await;
    assert_eq!(caps["engine"]["reachable"], false);
    assert!(caps["engine"]["fallback_reason"].is_string());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_engine_without_fallback_is_a_job_error_not_mock_output() {
    let agent = TestAgent::spawn(ollama_config("http://127.0.0.1:9")).await;
    let health = agent.get_json("/health").await;
    assert_eq!(health["engine"]["reachable"], false);
    let id = agent.post_job_ok(json!({"model": "llama3.1:8b", "prompt": "hi"})).await;
    let events = agent.wait_for_terminal(&id).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "job_error", "{last}");
    assert_eq!(last["payload"]["kind"], "engine_unreachable");
    assert!(of_type(&events, "llm_token").is_empty());
    assert!(events.iter().all(|e| e.get("fallback_reason").is_none()));
    let job = agent.get_json(&format!("/jobs/{id}")).await;
    assert_eq!(job["status"], "error");
    assert_eq!(job["error"]["kind"], "engine_unreachable");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_models_limits_what_the_agent_offers() {
    let mut cfg = mock_config();
    cfg.engine.mock.models = vec!["mock-llm".into(), "hidden".into()];
    cfg.llm_models = vec!["mock-llm".into()];
    let agent = TestAgent::spawn(cfg).await;
    let resp = agent.post_job(json!({"model": "hidden", "prompt": "x"})).await;
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["available"], json!(["mock-llm"]), "{body}");
    let caps = agent.get_json("/capabilities").await;
    assert_eq!(caps["llm_models"], json!(["mock-llm"]));
    let names: Vec<&str> = caps["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["mock-llm"]);
    agent.post_job_ok(json!({"model": "mock-llm", "prompt": "x", "max_tokens": 1})).await;
    agent.shutdown().await;
}
