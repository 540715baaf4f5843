//! Every job's events are kept on disk (`results_dir/jobs/`): an agent that restarts still
//! answers `GET /jobs/{id}/events` and `/ws?job_id=` for jobs it ran before.

use serde_json::json;

use crate::support::{TestAgent, mock_config, read_until_terminal};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_still_serves_the_events_of_earlier_jobs() {
    let config = mock_config();
    let agent = TestAgent::spawn(config.clone()).await;
    let id = agent.post_job_ok(json!({"model": "mock-llm", "prompt": "hi", "max_tokens": 16, "repeat": 2})).await;
    let live = agent.wait_for_terminal(&id).await;
    assert_eq!(live.last().unwrap()["type"], "job_done");
    agent.shutdown().await;
    let journal = config.results_dir.join("jobs").join(format!("{id}.ndjson"));
    assert!(journal.is_file(), "{} missing", journal.display());

    let restarted = TestAgent::spawn(config).await;
    // The job record is gone with the old process: the events are not.
    assert_eq!(restarted.get(&format!("/jobs/{id}")).await.status(), 404);
    let stored = restarted.events(&id).await;
    assert_eq!(stored, live, "the same events, in order, after a restart");
    let after: Vec<u64> = restarted
        .events(&id)
        .await
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap() > 3)
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    let resp = restarted.get(&format!("/jobs/{id}/events?after_seq=3")).await;
    let text = resp.text().await.unwrap();
    let seqs: Vec<u64> =
        text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, after);
    // The WebSocket replays it too, then closes after the terminal event.
    let replayed = read_until_terminal(restarted.ws_connect(&format!("job_id={id}")).await).await;
    assert_eq!(replayed, live);
    // Unknown jobs are still 404.
    assert_eq!(restarted.get("/jobs/0123456789abcdef/events").await.status(), 404);
}
