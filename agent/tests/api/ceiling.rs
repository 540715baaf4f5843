//! The client ceiling: the start-up calibration fills `/capabilities`' `client_ceiling`, and a
//! job's `job_done` carries `ceiling_ratio` (its `decode_tok_s` ÷ the ceiling's `tok_s`).

use serde_json::{Value, json};

use crate::support::{TestAgent, WAIT_LIMIT, mock_config};

/// Waits (bounded) until the agent's start-up calibration has produced its figures.
async fn calibrated(agent: &TestAgent) -> Value {
    let mut rx = agent.state.ceiling.subscribe();
    tokio::time::timeout(WAIT_LIMIT, rx.wait_for(|c| c.is_ok()))
        .await
        .expect("start-up calibration finished in time")
        .expect("ceiling channel open");
    let caps = agent.get_json("/capabilities").await;
    caps["client_ceiling"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_carry_the_client_ceiling_once_the_start_up_calibration_finished() {
    let agent = TestAgent::spawn(mock_config()).await;
    // Before or after the calibration, never a made-up figure: null with a reason, or figures.
    let early = agent.get_json("/capabilities").await;
    match &early["client_ceiling"] {
        Value::Null => assert!(early["client_ceiling_unavailable"].is_string(), "{early}"),
        c => assert!(c["tok_s"].is_number() && early.get("client_ceiling_unavailable").is_none(), "{early}"),
    }
    let c = calibrated(&agent).await;
    assert_eq!(c["kind"], "quick", "{c}");
    for k in ["tok_s", "events_per_s", "ttft_floor_ms", "duration_s"] {
        let v = c[k].as_f64().unwrap_or_else(|| panic!("{k} in {c}"));
        assert!(v.is_finite() && v > 0.0, "{k} = {v}");
    }
    assert!(c["duration_s"].as_f64().unwrap() <= 1.5, "the quick calibration is bounded by its 1 s budget: {c}");
    assert!(c["requests"].as_u64().unwrap() >= 1 && c["tokens"].as_u64().unwrap() >= 2, "{c}");
    assert!(c["measured_at"].as_str().unwrap().ends_with('Z'), "{c}");
    let caps = agent.get_json("/capabilities").await;
    assert!(caps.get("client_ceiling_unavailable").is_none(), "{caps}");
    // The calibration's jobs are private: none shows in the agent's job list.
    assert_eq!(agent.get_json("/jobs").await.as_array().map(Vec::len), Some(0));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_done_carries_ceiling_ratio_of_its_decode_rate() {
    let agent = TestAgent::spawn(mock_config()).await;
    let ceiling = calibrated(&agent).await;
    let id = agent.post_job_ok(json!({"model": "mock-llm", "prompt": "hello", "max_tokens": 24, "repeat": 2})).await;
    let events = agent.wait_for_terminal(&id).await;
    let done = &events.last().unwrap()["payload"];
    assert_eq!(events.last().unwrap()["type"], "job_done", "{done}");
    let decode = done["decode_tok_s"].as_f64().expect("decode_tok_s");
    let ratio = done["ceiling_ratio"].as_f64().unwrap_or_else(|| panic!("ceiling_ratio in {done}"));
    let expected = decode / ceiling["tok_s"].as_f64().unwrap();
    assert!((ratio - expected).abs() <= 1e-9 * expected.max(1.0), "{ratio} vs {expected}");
    agent.shutdown().await;
}
