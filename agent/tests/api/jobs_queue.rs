//! The FIFO queue (positions, 429, cancellation), `start_at`, cold start on an engine that
//! cannot unload, and graceful shutdown.

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{TestAgent, WAIT_LIMIT, Ws, mock_config, of_type};

/// A job on the mock engine that runs for minutes unless cancelled (20 tok/s, 100000 tokens).
fn long_job() -> Value {
    json!({"model": "slow-llm", "prompt": "long", "max_tokens": 100000})
}

/// Reads frames until an event of `kind` arrives; returns it.
async fn next_of_type(ws: &mut Ws, kind: &str) -> Value {
    let read = async {
        while let Some(msg) = ws.next().await {
            if let Message::Text(t) = msg.unwrap() {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == kind {
                    return v;
                }
            }
        }
        panic!("stream ended before {kind}");
    };
    tokio::time::timeout(WAIT_LIMIT, read).await.expect("event in time")
}

fn slow_mock_config(queue_limit: usize) -> bench_agent::AgentConfig {
    let mut cfg = mock_config();
    cfg.engine.mock.models = vec!["mock-llm".into(), "slow-llm".into()];
    cfg.engine.mock.tokens_per_s = 20.0;
    cfg.queue_limit = queue_limit;
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_positions_limit_and_cancellation() {
    let agent = TestAgent::spawn(slow_mock_config(1)).await;
    let first = agent.post_job_ok(long_job()).await;
    let mut ws_first = agent.ws_connect(&format!("job_id={first}")).await;
    next_of_type(&mut ws_first, "job_started").await;

    let resp = agent.post_job(json!({"model": "mock-llm", "prompt": "second"})).await;
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().await.unwrap();
    assert_eq!(accepted["position"], 1, "one job (the running one) is ahead");
    let second = accepted["job_id"].as_str().unwrap().to_owned();
    let view = agent.get_json(&format!("/jobs/{second}")).await;
    assert_eq!((view["status"].as_str(), view["position"].as_u64()), (Some("queued"), Some(1)));
    assert_eq!(agent.events(&second).await[0]["payload"]["position"], 1);

    let resp = agent.post_job(json!({"model": "mock-llm", "prompt": "third"})).await;
    assert_eq!(resp.status(), 429);
    let err: Value = resp.json().await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("queue is full"), "{err}");
    let health = agent.get_json("/health").await;
    assert_eq!((health["busy"].as_bool(), health["queue_len"].as_u64()), (Some(true), Some(1)));

    // Cancel the running job: it ends with job_cancelled and the queued one runs.
    let resp = agent.delete(&format!("/jobs/{first}")).await;
    assert_eq!(resp.status(), 200);
    let cancelled = next_of_type(&mut ws_first, "job_cancelled").await;
    assert!(cancelled["payload"]["reason"].as_str().unwrap().contains("DELETE"), "{cancelled}");
    assert_eq!(agent.get_json(&format!("/jobs/{first}")).await["status"], "cancelled");
    let events = agent.wait_for_terminal(&second).await;
    assert_eq!(events.last().unwrap()["type"], "job_done");
    assert!(agent.get_json(&format!("/jobs/{second}")).await.get("position").is_none());

    assert_eq!(agent.delete(&format!("/jobs/{first}")).await.status(), 409, "already finished");
    assert_eq!(agent.delete("/jobs/nope").await.status(), 404);
    let list = agent.get_json("/jobs").await;
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|j| j["job_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![first.as_str(), second.as_str()]);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_can_be_cancelled_before_it_runs() {
    let agent = TestAgent::spawn(slow_mock_config(4)).await;
    let first = agent.post_job_ok(long_job()).await;
    let queued = agent.post_job_ok(json!({"model": "mock-llm", "prompt": "never runs"})).await;
    let resp = agent.delete(&format!("/jobs/{queued}")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "cancelled");
    let events = agent.wait_for_terminal(&queued).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["job_queued", "job_cancelled"]);
    assert_eq!(agent.delete(&format!("/jobs/{first}")).await.status(), 200);
    agent.wait_for_terminal(&first).await;
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_at_is_respected() {
    let agent = TestAgent::spawn(mock_config()).await;
    let start_at_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64 + 1500;
    let id = agent
        .post_job_ok(json!({"model": "mock-llm", "prompt": "sync", "max_tokens": 3, "start_at": start_at_ms}))
        .await;
    let events = agent.wait_for_terminal(&id).await;
    let started = &of_type(&events, "job_started")[0]["payload"];
    assert_eq!(started["start_at"], start_at_ms);
    let started_at_s = started["started_at_s"].as_f64().unwrap();
    assert!(started_at_s * 1000.0 >= start_at_ms as f64, "first request at {started_at_s}, start_at {start_at_ms}");
    assert!(started_at_s * 1000.0 < start_at_ms as f64 + 5000.0, "and not long after");
    let first_token = of_type(&events, "llm_token")[0]["payload"]["timestamp_s"].as_f64().unwrap();
    assert!(first_token * 1000.0 >= start_at_ms as f64);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_on_an_engine_that_cannot_unload_says_load_time_not_measured() {
    let agent = TestAgent::spawn(mock_config()).await;
    let id = agent.post_job_ok(json!({"model": "mock-llm", "prompt": "cold", "max_tokens": 3, "cold": true})).await;
    let events = agent.wait_for_terminal(&id).await;
    let started = &of_type(&events, "job_started")[0]["payload"];
    assert!(started["notes"][0].as_str().unwrap().contains("load time not measured"), "{started}");
    let done = &events.last().unwrap()["payload"];
    assert!(done["load_ms"].is_null());
    assert_eq!(done["notes"], started["notes"]);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_the_running_job_and_closes_websockets_after_its_last_event() {
    let agent = TestAgent::spawn(slow_mock_config(4)).await;
    let id = agent.post_job_ok(long_job()).await;
    let mut ws = agent.ws_connect("").await;
    let mut ws_job = agent.ws_connect(&format!("job_id={id}")).await;
    next_of_type(&mut ws_job, "job_started").await;
    agent.shutdown().await;
    let cancelled = next_of_type(&mut ws, "job_cancelled").await;
    assert_eq!(cancelled["job_id"], id.as_str());
    assert!(cancelled["payload"]["reason"].as_str().unwrap().contains("shutting down"), "{cancelled}");
    let close = tokio::time::timeout(WAIT_LIMIT, async {
        while let Some(m) = ws.next().await {
            if let Ok(Message::Close(frame)) = m {
                return frame;
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001), "going away");
}
