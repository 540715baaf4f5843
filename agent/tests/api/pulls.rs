//! `POST /api/models/pull` against the protocol-faithful fake Ollama's `/api/pull` stream: a pull
//! that succeeds (progress, done, the model listed after), one that fails mid-way (the engine's
//! error line), one whose connection is cut, and the refusals (engines that cannot pull, bad
//! names, no token).

use bench_agent::testkit::fake_ollama::{FakeOllama, FakePull, FakeScript};
use serde_json::{Value, json};

use super::support::*;

/// Sum of the default fake registry's layers for `smollm2:135m`.
const MODEL_BYTES: u64 = 1_000_000 + 1_400 + 300;

async fn pull_agent(pull: FakePull) -> (FakeOllama, TestAgent) {
    let fake = FakeOllama::spawn(FakeScript { pull, ..FakeScript::default() }).await;
    let agent = TestAgent::spawn(ollama_config(&fake.base_url)).await;
    (fake, agent)
}

async fn post_pull(agent: &TestAgent, body: Value) -> (u16, Value) {
    let resp = agent.post("/api/models/pull", body).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON answer"))
}

/// Starts a pull (202) and follows it to its terminal event.
async fn pull_to_end(agent: &TestAgent, model: &str) -> Vec<Value> {
    let (status, accepted) = post_pull(agent, json!({"model": model})).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!((accepted["model"].as_str(), accepted["already_running"].as_bool()), (Some(model), Some(false)));
    let job_id = accepted["job_id"].as_str().unwrap();
    let events = agent.wait_for_terminal(job_id).await;
    assert!(events.iter().all(|e| e["job_id"] == job_id), "every event carries the pull's job_id");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>(), "seq counts up from 1 without gaps");
    events
}

fn listed(caps: &Value, model: &str) -> bool {
    caps["llm_models"].as_array().is_some_and(|ms| ms.iter().any(|m| m == model))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_streams_progress_then_done_and_the_model_is_listed() {
    let (fake, agent) = pull_agent(FakePull::default()).await;
    assert!(!listed(&agent.get_json("/capabilities?refresh=1").await, "smollm2:135m"));
    let events = pull_to_end(&agent, "smollm2:135m").await;
    assert_eq!(fake.bodies("/api/pull"), vec![json!({"model": "smollm2:135m", "stream": true})]);
    let progress = of_type(&events, "model_pull_progress");
    assert_eq!(progress[0]["payload"]["status"], "starting");
    assert!(progress.iter().any(|p| p["payload"]["status"] == "pulling manifest"), "{progress:#?}");
    assert!(progress.iter().any(|p| p["payload"]["status"] == "verifying sha256 digest"));
    // Bytes never go backwards, and reach the whole model.
    let completed: Vec<u64> = progress.iter().filter_map(|p| p["payload"]["completed_bytes"].as_u64()).collect();
    assert!(completed.windows(2).all(|w| w[0] <= w[1]), "{completed:?}");
    assert!(completed.len() >= 3, "several progress events: {completed:?}");
    let last = progress.last().unwrap();
    assert_eq!(last["payload"]["status"], "success");
    assert_eq!(
        (last["payload"]["completed_bytes"].as_u64(), last["payload"]["total_bytes"].as_u64()),
        (Some(MODEL_BYTES), Some(MODEL_BYTES))
    );
    let done = events.last().unwrap();
    assert_eq!(done["type"], "model_pull_done", "{done}");
    assert_eq!(done["payload"]["model"], "smollm2:135m");
    assert_eq!(done["payload"]["total_bytes"], MODEL_BYTES);
    assert!(done["payload"]["duration_s"].as_f64().unwrap() > 0.0);
    assert!(listed(&agent.get_json("/capabilities").await, "smollm2:135m"), "listed right after model_pull_done");
    // The same events later from the journal / replay log.
    assert_eq!(agent.events(done["job_id"].as_str().unwrap()).await.len(), events.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_that_fails_mid_way_ends_in_job_error_with_the_engines_reason() {
    let (_fake, agent) = pull_agent(FakePull { fail_after_bytes: Some(300_000), ..FakePull::default() }).await;
    let events = pull_to_end(&agent, "smollm2:135m").await;
    let end = events.last().unwrap();
    assert_eq!(end["type"], "job_error", "{end}");
    assert_eq!(end["payload"]["kind"], "engine_error");
    let msg = end["payload"]["message"].as_str().unwrap();
    assert!(msg.contains("max retries exceeded") && msg.contains("smollm2:135m"), "{msg}");
    let got = of_type(&events, "model_pull_progress");
    assert!(
        got.iter().any(|p| p["payload"]["completed_bytes"].as_u64().is_some_and(|c| c > 0)),
        "progress before the failure"
    );
    assert!(of_type(&events, "model_pull_done").is_empty());
    assert!(!listed(&agent.get_json("/capabilities?refresh=1").await, "smollm2:135m"));
    // A model the registry lacks: Ollama's manifest error line, with HTTP 200.
    let events = pull_to_end(&agent, "no-such-model:1b").await;
    let end = events.last().unwrap();
    assert_eq!(end["type"], "job_error");
    assert!(end["payload"]["message"].as_str().unwrap().contains("file does not exist"), "{end}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_whose_connection_is_cut_ends_in_job_error_never_done() {
    let (_fake, agent) = pull_agent(FakePull { disconnect_after_bytes: Some(500_000), ..FakePull::default() }).await;
    let events = pull_to_end(&agent, "smollm2:135m").await;
    let end = events.last().unwrap();
    assert_eq!(end["type"], "job_error", "{end}");
    assert!(of_type(&events, "model_pull_done").is_empty());
    let msg = end["payload"]["message"].as_str().unwrap();
    assert!(!msg.is_empty(), "{end}");
    // The agent goes on: a second pull (the fake cuts it again) is accepted.
    let (status, _) = post_pull(&agent, json!({"model": "smollm2:135m"})).await;
    assert_eq!(status, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_are_refused_with_reasons() {
    // The mock engine cannot pull: 501 naming the kind.
    let agent = TestAgent::spawn(mock_config()).await;
    let (status, body) = post_pull(&agent, json!({"model": "llama3.2:1b"})).await;
    assert_eq!(
        (status, body["field"].as_str(), body["detail"]["engine"].as_str()),
        (501, Some("engine"), Some("mock")),
        "{body}"
    );
    assert!(body["error"].as_str().unwrap().contains("engine kind mock cannot pull"), "{body}");
    for (bad, field) in [
        (json!({"model": ""}), "model"),
        (json!({"model": "a b"}), "model"),
        (json!({"model": "../x"}), "model"),
        (json!({"name": "x"}), "body"),
    ] {
        let (status, body) = post_pull(&agent, bad.clone()).await;
        assert_eq!((status, body["field"].as_str()), (400, Some(field)), "{bad}: {body}");
    }
    // Token-protected like every job route.
    let fake = FakeOllama::spawn(FakeScript {
        pull: FakePull { line_gap: std::time::Duration::from_millis(20), ..FakePull::default() },
        ..FakeScript::default()
    })
    .await;
    let mut cfg = ollama_config(&fake.base_url);
    cfg.auth_token = Some("tok".into());
    let agent = TestAgent::spawn(cfg).await;
    let anonymous = reqwest::Client::new()
        .post(agent.url("/api/models/pull"))
        .json(&json!({"model": "smollm2:135m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // A second request for a model being pulled joins that pull.
    let (s1, a) = post_pull(&agent, json!({"model": "smollm2:135m"})).await;
    let (s2, b) = post_pull(&agent, json!({"model": "smollm2:135m"})).await;
    assert_eq!((s1, s2, b["already_running"].as_bool()), (202, 202, Some(true)));
    assert_eq!(a["job_id"], b["job_id"]);
    let events = agent.wait_for_terminal(a["job_id"].as_str().unwrap()).await;
    assert_eq!(events.last().unwrap()["type"], "model_pull_done");
}
