//! Races over real in-process agents: mock engine and the real local llama.cpp engine.

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::support::*;

/// Every file of a finished run is right: metadata, events (every token, contiguous seq),
/// summary (ranks by decode_tok_s, the default `rank_by`), exports.
fn check_finished_run(central: &TestCentral, run_id: &str, events: &[Value], machines: &[&str]) {
    let meta = central.read_json(run_id, "metadata.json");
    assert_eq!(meta["status"], "complete", "{meta}");
    assert!(meta["ended_at"].is_string());
    let summary = central.read_json(run_id, "summary.json");
    assert_eq!(summary["rank_by"], "decode_tok_s");
    assert_eq!(summary["comparison"]["rank_by"], "decode_tok_s");
    // One repeat: ranked, but no winner named.
    assert!(summary["comparison"]["winner"]["machine_id"].is_null(), "{summary}");
    assert!(summary["winner"].is_null());
    assert_eq!(summary["status"], "complete");
    let mut ranks: Vec<u64> =
        summary["machines"].as_array().unwrap().iter().map(|m| m["rank"].as_u64().unwrap()).collect();
    ranks.sort();
    assert_eq!(ranks, (1..=machines.len() as u64).collect::<Vec<_>>());
    for id in machines {
        let rec = meta["machines"].as_array().unwrap().iter().find(|m| m["machine_id"] == *id).unwrap();
        assert_eq!(rec["status"], "complete", "{rec}");
        assert!(rec["job_id"].is_string() && rec["engine"]["kind"].is_string() && rec["hardware"].is_object());
        assert!(!rec["models"].as_array().unwrap().is_empty(), "model details recorded: {rec}");
        let n = assert_contiguous(events, id);
        let done = of(events, id, "job_done");
        assert_eq!(done.len(), 1);
        let text = text_of(events, id);
        assert!(!text.is_empty());
        assert_eq!(text, done[0]["payload"]["output_text"].as_str().unwrap(), "every token of {id} was stored");
        assert!(events.iter().all(|e| e["run_id"] == run_id), "every line carries the run id");
        let s = summary["machines"].as_array().unwrap().iter().find(|m| m["machine_id"] == *id).unwrap();
        assert_eq!(s["status"], "complete");
        assert_eq!(s["events"].as_u64().unwrap() as usize, n);
        for k in ["ttft_ms", "gen_tokens", "gen_tokens_per_s", "total_ms", "decode_tok_s"] {
            assert!(s[k].is_number(), "{k} in {s}");
        }
        assert_eq!(s["gen_tokens"], done[0]["payload"]["gen_tokens"]);
    }
    assert_eq!(events.first().unwrap()["type"], "run_start");
    assert_eq!(events.last().unwrap()["type"], "run_end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_over_three_mock_agents_completes_with_files_and_synchronized_start() {
    let agents = [
        RealAgent::mock("fast", &["mock-llm"], 30.0, 400.0).await,
        RealAgent::mock("mid", &["mock-llm"], 60.0, 250.0).await,
        RealAgent::mock("slow", &["mock-llm"], 90.0, 150.0).await,
    ];
    let ids = ["fast", "mid", "slow"];
    let machines = ids.iter().zip(&agents).map(|(id, a)| machine(id, &a.base_url)).collect();
    let central = TestCentral::spawn(machines, temp_results_dir()).await;
    central.wait_online(&ids).await;

    // A browser watching the race.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/ws", central.addr)).await.unwrap();
    let hello: Value = match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["machines"].as_array().unwrap().len(), 3);

    let run_id = central.start_run(generate_body("mock-llm", 24)).await;
    let mut relayed = Vec::new();
    let read = async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).unwrap();
                let end = v["type"] == "run_end" && v["run_id"] == run_id;
                relayed.push(v);
                if end {
                    return;
                }
            }
        }
        panic!("browser socket ended before run_end");
    };
    tokio::time::timeout(WAIT_LIMIT, read).await.expect("run_end relayed in time");
    let detail = central.wait_run_end(&run_id).await;
    let events = central.events(&run_id).await;
    check_finished_run(&central, &run_id, &events, &ids);
    // All mock (a demo, compared like for like), one repeat each: no verdict, and it says why.
    let w = &central.read_json(&run_id, "summary.json")["comparison"]["winner"];
    assert_eq!(w["status"], "undecided", "{w}");
    assert!(w["reason"].as_str().unwrap().contains("run ≥ 3"), "{w}");

    // The browser got the same stream, with machine and run ids on every agent event.
    let relayed_runs: Vec<&Value> = relayed.iter().filter(|e| e["run_id"] == run_id).collect();
    assert_eq!(relayed_runs.first().unwrap()["type"], "run_start");
    let tokens = relayed_runs.iter().filter(|e| e["type"] == "llm_token").count();
    assert_eq!(tokens, events.iter().filter(|e| e["type"] == "llm_token").count());
    assert!(
        relayed_runs
            .iter()
            .filter(|e| e.get("seq").is_some())
            .all(|e| ids.contains(&e["machine_id"].as_str().unwrap()))
    );
    assert_eq!(relayed.last().unwrap()["summary"]["run_id"], run_id);

    // Synchronized start: one start_at for all (on each agent's clock), and the agents' first
    // requests within 100 ms.
    let started: Vec<&Value> = events.iter().filter(|e| e["type"] == "job_started").collect();
    assert_eq!(started.len(), 3);
    let clock = &detail["metadata"]["clock"];
    let start_at = clock["start_at_ms"].as_u64().unwrap();
    assert_eq!(detail["metadata"]["spec"]["start_at"], start_at);
    for e in &started {
        let m = &clock["machines"][e["machine_id"].as_str().unwrap()];
        assert_eq!(e["payload"]["start_at"], m["agent_start_at_ms"], "{m}");
    }
    assert_eq!(clock["skew_machines"], 3, "{clock}");
    assert!(clock["achieved_skew_ms"].as_f64().is_some(), "{clock}");
    let times: Vec<f64> = started.iter().map(|e| e["payload"]["started_at_s"].as_f64().unwrap()).collect();
    let spread_ms =
        (times.iter().cloned().fold(f64::MIN, f64::max) - times.iter().cloned().fold(f64::MAX, f64::min)) * 1000.0;
    assert!(spread_ms < 100.0, "first requests {spread_ms:.1} ms apart");
    assert!(
        started.iter().all(|e| e["payload"]["started_at_s"].as_f64().unwrap() * 1000.0
            >= e["payload"]["start_at"].as_f64().unwrap() - 5.0),
        "no agent started before its start_at"
    );

    // The API view of the finished run has each machine's text.
    for id in ids {
        assert_eq!(detail["machines"][id]["output_text"].as_str().unwrap(), text_of(&events, id));
    }
    // Exports: one row per machine.
    let csv = central.get(&format!("/api/runs/{run_id}/export.csv")).await.text().await.unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("run_id,timestamp,model,machine_id,label,status,engine,ttft_ms"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.contains(",complete,mock,")), "{csv}");
    let exported = central.get_json(&format!("/api/runs/{run_id}/export.json")).await;
    assert_eq!(exported["summary"]["machines"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn machine_without_the_model_is_skipped_with_reason() {
    let a = RealAgent::mock("has", &["mock-llm"], 20.0, 400.0).await;
    let b = RealAgent::mock("lacks", &["other-model"], 20.0, 400.0).await;
    let central =
        TestCentral::spawn(vec![machine("has", &a.base_url), machine("lacks", &b.base_url)], temp_results_dir()).await;
    central.wait_online(&["has", "lacks"]).await;
    let (status, created) = central.post_run(generate_body("mock-llm", 8)).await;
    assert_eq!(status, 201, "{created}");
    let lacks = created["machines"].as_array().unwrap().iter().find(|m| m["machine_id"] == "lacks").unwrap().clone();
    assert_eq!(lacks["status"], "skipped");
    assert!(lacks["reason"].as_str().unwrap().contains("mock-llm not available"), "{lacks}");
    let run_id = created["run_id"].as_str().unwrap();
    let detail = central.wait_run_end(run_id).await;
    assert_eq!(detail["metadata"]["status"], "partial");
    let summary = central.read_json(run_id, "summary.json");
    let s = summary["machines"].as_array().unwrap().iter().find(|m| m["machine_id"] == "lacks").unwrap().clone();
    assert_eq!(s["status"], "skipped");
    assert!(s["reason"].as_str().unwrap().contains("other-model"), "{s}");
    assert!(summary["winner"].is_null(), "one finisher: no winner");
    assert!(summary["comparison"]["winner"]["reason"].as_str().unwrap().contains("only has"), "{summary}");

    // Only machines without the model: 409 with reasons, and the attempt is kept as `failed`.
    let (status, body) =
        central.post_run(json!({"model": "missing-model", "prompt": "x", "machine_ids": ["has", "lacks"]})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("missing-model"), "{body}");
    let failed_id = body["detail"]["run_id"].as_str().unwrap();
    assert_eq!(central.read_json(failed_id, "metadata.json")["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn race_over_the_real_local_engine() {
    let a = RealAgent::local_engine("llama-a").await;
    let b = RealAgent::local_engine("llama-b").await;
    let central =
        TestCentral::spawn(vec![machine("llama-a", &a.base_url), machine("llama-b", &b.base_url)], temp_results_dir())
            .await;
    central.wait_online(&["llama-a", "llama-b"]).await;
    let model = bench_agent::testkit::LOCAL_MODEL;
    let run_id = central.start_run(generate_body(model, 24)).await;
    // The engine is shared with other tests on a 2-core machine: allow minutes, not seconds.
    central.wait_run_end_within(&run_id, std::time::Duration::from_secs(400)).await;
    let events = central.events(&run_id).await;
    check_finished_run(&central, &run_id, &events, &["llama-a", "llama-b"]);
    let summary = central.read_json(&run_id, "summary.json");
    // Both agents drive the one local engine: an engine raced against itself compares nothing.
    let c = &summary["comparison"];
    assert_eq!(c["winner"]["status"], "unfair", "{c}");
    let shared = c["fairness"]["warnings"].as_array().unwrap().iter().filter(|w| w["kind"] == "shared_host");
    assert!(
        shared.clone().count() == 2
            && shared.into_iter().all(|w| {
                let affects = w["affects"].as_array().unwrap();
                ["decode_tok_s", "ttft_ms", "total_ms", "gen_tokens_per_s", "prefill_tok_s"]
                    .iter()
                    .all(|m| affects.iter().any(|a| a == m))
            }),
        "{c}"
    );
    for m in summary["machines"].as_array().unwrap() {
        assert_eq!(m["engine"], "openai", "{m}");
        assert_eq!(m["token_source"], "engine", "{m}");
        assert!(m["gen_tokens"].as_u64().unwrap() > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agent_token_from_machines_yaml_is_used_for_http_and_websocket() {
    let agent = RealAgent::mock_with_token("locked", &["mock-llm"], 20.0, 400.0, Some("s3cret")).await;
    let wrong = RealAgent::mock_with_token("wrong", &["mock-llm"], 20.0, 400.0, Some("other")).await;
    let mut locked = machine("locked", &agent.base_url);
    locked.token = Some("s3cret".into());
    let mut bad = machine("wrong", &wrong.base_url);
    bad.token = Some("s3cret".into());
    let central = TestCentral::spawn(vec![locked, bad], temp_results_dir()).await;
    central.wait_online(&["locked"]).await;
    let (status, created) = central.post_run(generate_body("mock-llm", 8)).await;
    assert_eq!(status, 201, "{created}");
    let wrong_m = created["machines"].as_array().unwrap().iter().find(|m| m["machine_id"] == "wrong").unwrap().clone();
    assert_eq!(wrong_m["status"], "skipped", "{wrong_m}");
    let run_id = created["run_id"].as_str().unwrap();
    let detail = central.wait_run_end(run_id).await;
    assert_eq!(detail["metadata"]["status"], "partial");
    let events = central.events(run_id).await;
    assert!(!text_of(&events, "locked").is_empty());
    assert_contiguous(&events, "locked");
    let machines = central.get_json("/api/machines").await;
    let w = machines.as_array().unwrap().iter().find(|m| m["machine_id"] == "wrong").unwrap().clone();
    assert!(w["last_error"].as_str().unwrap().contains("401"), "{w}");
    assert!(w.get("token").is_none(), "tokens are never served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn preflight_asks_again_when_the_cached_view_says_no() {
    let fake = super::fake_agent::FakeAgent::spawn("puller", &["old-model"]).await;
    // Health refreshes rarely: the cached view goes stale.
    let settings =
        bench_central::config::Settings { health_interval: std::time::Duration::from_secs(3600), ..test_settings() };
    let central = TestCentral::spawn_with(vec![machine("puller", &fake.base_url)], temp_results_dir(), settings).await;
    central.wait_online(&["puller"]).await;
    fake.set_models(&["old-model", "mock-llm"]);
    let (status, created) = central.post_run(generate_body("mock-llm", 8)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["machines"][0]["status"], "running", "{created}");
    let job = fake.wait_jobs(1).await.remove(0);
    // The common start on the agent's clock (same host: within a round trip of central's).
    let shift = job.body["start_at"].as_f64().unwrap() - created["start_at"].as_f64().unwrap();
    assert!(shift.abs() <= 1000.0, "start_at moved by {shift} ms");
    fake.started(&job.job_id);
    fake.done(&job.job_id, "", 3.0);
    assert_eq!(central.wait_run_end(created["run_id"].as_str().unwrap()).await["metadata"]["status"], "complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_records_each_machines_client_ceiling_and_summary_its_ceiling_ratio() {
    let agent = RealAgent::mock("m1", &["mock-llm"], 20.0, 400.0).await;
    let central = TestCentral::spawn(vec![machine("m1", &agent.base_url)], temp_results_dir()).await;
    central.wait_online(&["m1"]).await;
    // The agent's start-up calibration runs in the background; central picks it up on a refresh.
    let ceiling = central
        .wait_for("m1's client ceiling", || async {
            let ms = central.get_json("/api/machines").await;
            let m = ms.as_array()?.iter().find(|m| m["machine_id"] == "m1")?;
            m["capabilities"]["client_ceiling"].is_object().then(|| m["capabilities"]["client_ceiling"].clone())
        })
        .await;
    let run_id = central.start_run(generate_body("mock-llm", 16)).await;
    central.wait_run_end(&run_id).await;
    let meta = central.read_json(&run_id, "metadata.json");
    let rec = &meta["machines"][0];
    assert_eq!(rec["client_ceiling"], ceiling, "{rec}");
    assert_eq!(rec["client_ceiling"]["kind"], "quick");
    let events = central.events(&run_id).await;
    let done = &of(&events, "m1", "job_done")[0]["payload"];
    let ratio = done["ceiling_ratio"].as_f64().unwrap_or_else(|| panic!("ceiling_ratio in {done}"));
    let expected = done["decode_tok_s"].as_f64().unwrap() / ceiling["tok_s"].as_f64().unwrap();
    assert!((ratio - expected).abs() <= 1e-9 * expected.max(1.0), "{ratio} vs {expected}");
    let summary = central.read_json(&run_id, "summary.json");
    assert_eq!(summary["machines"][0]["ceiling_ratio"].as_f64(), Some(ratio), "{summary}");
    central.stop().await;
}
