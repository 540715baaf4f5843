//! API manners: `GET /api/runs/{id}?wait=SECONDS` long-polls until the run ends, and every JSON
//! answer (success or error) ends with a newline.

use serde_json::Value;

use super::fake_agent::FakeAgent;
use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wait_returns_the_live_state_at_the_timeout_and_the_final_run_at_its_end() {
    let fake = FakeAgent::spawn("waiter", &["mock-llm"]).await;
    let central = TestCentral::spawn(vec![machine("waiter", &fake.base_url)], temp_results_dir()).await;
    central.wait_online(&["waiter"]).await;
    let run_id = central.start_run(generate_body("mock-llm", 8)).await;
    let job = fake.wait_jobs(1).await.remove(0);
    fake.started(&job.job_id);

    // The run cannot end on its own: a short wait answers with the live state when time is up.
    let live = central.get_json(&format!("/api/runs/{run_id}?wait=0.2")).await;
    assert_eq!(live["live"], true, "{live}");
    assert!(live["summary"].is_null(), "{live}");

    // A long wait is held until the run ends, then answers with the final summary.
    let before = central.state.hub.subscribers();
    let url = central.url(&format!("/api/runs/{run_id}?wait=120"));
    let client = central.client.clone();
    let waiting = tokio::spawn(async move { client.get(url).send().await.unwrap().json::<Value>().await.unwrap() });
    central
        .wait_for("the ?wait request to subscribe", || async {
            (central.state.hub.subscribers() > before).then_some(())
        })
        .await;
    assert!(!waiting.is_finished(), "?wait=120 answered while the run was still running");
    fake.done(&job.job_id, "done", 9.0);
    let detail = waiting.await.unwrap();
    assert_eq!(detail["live"], false, "{detail}");
    assert_eq!(detail["metadata"]["status"], "complete", "{detail}");
    assert_eq!(detail["summary"]["machines"][0]["machine_id"], "waiter", "{detail}");
    assert_eq!(detail["summary"]["machines"][0]["status"], "complete", "{detail}");

    // An ended run answers at once, whatever the wait.
    let again = central.get_json(&format!("/api/runs/{run_id}?wait=300")).await;
    assert_eq!(again["metadata"]["status"], "complete");

    for bad in ["-1", "301", "soon"] {
        let resp = central.get(&format!("/api/runs/{run_id}?wait={bad}")).await;
        assert_eq!(resp.status(), 400, "wait={bad}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["field"], "wait", "{body}");
        assert!(body["error"].as_str().unwrap().contains("from 0 to 300"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_json_answer_ends_with_a_newline() {
    let fake = FakeAgent::spawn("nl", &["mock-llm"]).await;
    let central = TestCentral::spawn(vec![machine("nl", &fake.base_url)], temp_results_dir()).await;
    for (path, status) in [
        ("/api/machines", 200),
        ("/api/runs", 200),
        ("/api/runs?limit=9999", 400),
        ("/api/runs/not-a-run-id", 400),
        ("/api/runs/2026-01-01_000000_abcdef", 404),
    ] {
        let resp = central.get(path).await;
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let text = resp.text().await.unwrap();
        assert!(ctype.starts_with("application/json"), "{path}: {ctype}");
        assert!(text.ends_with("}\n") || text.ends_with("]\n"), "{path}: {text:?}");
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    }
    // Refusals made before routing (the guard layer) end with a newline too.
    let plain = central.client.post(central.url("/api/runs")).header("content-type", "text/plain").body("{}");
    let put = central.client.put(central.url("/api/runs"));
    for (what, want, req) in [("text/plain POST", 415, plain), ("PUT", 405, put)] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{what}");
        let text = resp.text().await.unwrap();
        assert!(text.ends_with("}\n"), "{what}: {text:?}");
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
    }
}
