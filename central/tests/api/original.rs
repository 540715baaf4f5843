//! An original bench-race agent races beside one of ours (a protocol-faithful fake of it; the
//! real one was checked by hand, see the issue note).

use std::time::Duration;

use bench_shared::api::Protocol;
use serde_json::Value;

use super::fake_original::FakeOriginal;
use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_original_agent_races_beside_ours_and_the_verdict_says_what_compares() {
    let old = FakeOriginal::spawn("old", &["mock-llm"], Duration::from_millis(30), Duration::from_millis(4)).await;
    let new = RealAgent::mock("new", &["mock-llm"], 20.0, 400.0).await;
    // No `protocol:` for "old": central tells from its /health.
    let central =
        TestCentral::spawn(vec![machine("old", &old.base_url), machine("new", &new.base_url)], temp_results_dir())
            .await;
    central.wait_online(&["old", "new"]).await;
    let machines = central.get_json("/api/machines").await;
    let view = machines.as_array().unwrap().iter().find(|m| m["machine_id"] == "old").unwrap().clone();
    assert_eq!(view["protocol"], "original", "{view}");
    assert_eq!(view["models"], serde_json::json!(["mock-llm"]), "{view}");
    assert_eq!(view["capabilities"]["cpu_cores"], 8, "what it sent is kept");
    // An event of a job that is not central's (another client's) is ignored.
    old.broadcast(serde_json::json!({"job_id": "someone-else", "type": "image_progress", "payload": {"step": 1}}));

    let mut body = generate_body("mock-llm", 12);
    body["repeat"] = 3.into();
    let run_id = central.start_run(body).await;
    let detail = central.wait_run_end(&run_id).await;
    let meta = &detail["metadata"];
    assert_eq!(meta["status"], "complete", "{detail}");

    // It got one original job per repeat, each `repeat: 1`, with its cache-busting prompt.
    let jobs = old.jobs();
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    assert!(jobs.iter().all(|j| j["repeat"] == 1 && j["test_type"] == "llm_generate" && j["stream"] == true));
    let prompts: Vec<&str> = jobs.iter().map(|j| j["prompt"].as_str().unwrap()).collect();
    assert!(prompts[0] != prompts[1] && prompts.iter().all(|p| p.ends_with("Race: count to ten.")), "{prompts:?}");

    // Its events are stored like any agent's: in order, typed, labelled.
    let events = central.events(&run_id).await;
    assert!(assert_contiguous(&events, "old") >= 3 * 12 + 5);
    let kinds: Vec<&str> = events
        .iter()
        .filter(|e| e["machine_id"] == "old" && e["type"] != "llm_token")
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["machine_status", "job_started", "request_done", "request_done", "request_done", "job_done"]);
    let done = &of(&events, "old", "job_done")[0]["payload"];
    assert_eq!((done["repeats"].as_u64(), done["token_source"].as_str()), (Some(3), Some("words")), "{done}");
    assert_eq!(done["gen_tokens"], 12, "words, as it counts them");
    assert!(done["notes"][0].as_str().unwrap().contains("words, not tokens"), "{done}");
    assert!(done["output_text"].as_str().unwrap().starts_with("word0 word1"), "{done}");

    let rec = &meta["machines"].as_array().unwrap().iter().find(|m| m["machine_id"] == "old").unwrap().clone();
    assert_eq!(rec["protocol"], "original");
    assert!(rec["reason"].is_null());
    // Its clock could not be measured: it started on central's own post, and the record says so.
    let clock = &meta["clock"]["machines"]["old"];
    assert!(clock["offset_ms"].is_null() && clock["reason"].as_str().unwrap().contains("no GET /time"), "{clock}");

    // The verdict: token rates are not compared between it and ours; times are, with the warning.
    let summary = central.read_json(&run_id, "summary.json");
    let comparison = &summary["comparison"];
    let warnings = comparison["fairness"]["warnings"].as_array().unwrap();
    let mismatch = warnings.iter().find(|w| w["kind"] == "measurement_mismatch").expect("measurement_mismatch");
    assert_eq!(mismatch["machine_id"], "old");
    let affects: Vec<&str> = mismatch["affects"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert!(affects.contains(&"decode_tok_s") && !affects.contains(&"ttft_ms"), "{mismatch}");
    let verdict = |metric: &str| {
        comparison["verdicts"].as_array().unwrap().iter().find(|v| v["metric"] == metric).cloned().unwrap()
    };
    let decode = verdict("decode_tok_s");
    assert!(
        decode["significant"] == false && decode["text"].as_str().unwrap().contains("measurement_mismatch"),
        "{decode}"
    );
    for metric in ["ttft_ms", "total_ms"] {
        let v = verdict(metric);
        assert!(!v["text"].as_str().unwrap().contains("measurement_mismatch"), "{metric} compares: {v}");
    }
    assert_eq!(comparison["winner"]["status"], "unfair", "ranked on decode_tok_s: {}", comparison["winner"]);
    let machines = summary["machines"].as_array().unwrap();
    assert!(machines.iter().all(|m| m["status"] == "complete"), "{machines:?}");
    central.stop().await;
    old.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_original_agent_whose_stream_drops_ends_in_error_with_the_reason() {
    let old = FakeOriginal::spawn("old", &["mock-llm"], Duration::from_millis(20), Duration::from_millis(100)).await;
    let mut m = machine("old", &old.base_url);
    m.protocol = Some(Protocol::Original);
    let central = TestCentral::spawn(vec![m], temp_results_dir()).await;
    central.wait_online(&["old"]).await;
    let run_id = central.start_run(generate_body("mock-llm", 40)).await;
    // Once its first token is stored, the agent goes away mid-generation.
    central
        .wait_for("a first token from old", || async {
            let events = central.events(&run_id).await;
            (!of(&events, "old", "llm_token").is_empty()).then_some(())
        })
        .await;
    old.stop();
    let detail = central.wait_run_end(&run_id).await;
    let rec: &Value = &detail["metadata"]["machines"][0];
    assert_eq!(rec["status"], "error", "{detail}");
    let reason = rec["reason"].as_str().unwrap();
    assert!(reason.contains("event stream dropped") || reason.contains("agent lost"), "{reason}");
    central.stop().await;
}
