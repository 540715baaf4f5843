//! Fault cases with fake agents: an agent that dies mid-run, central restarting mid-run, a
//! WebSocket dropping mid-job (events recovered from the agent), and the synchronized start.

use super::fake_agent::FakeAgent;
use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_agent_ends_in_error_and_run_is_partial_with_its_events_kept() {
    let real = RealAgent::mock("steady", &["mock-llm"], 20.0, 200.0).await;
    let fake = FakeAgent::spawn("doomed", &["mock-llm"]).await;
    let central = TestCentral::spawn(
        vec![machine("steady", &real.base_url), machine("doomed", &fake.base_url)],
        temp_results_dir(),
    )
    .await;
    central.wait_online(&["steady", "doomed"]).await;
    let run_id = central.start_run(generate_body("mock-llm", 16)).await;
    let job = fake.wait_jobs(1).await.remove(0);
    fake.started(&job.job_id);
    for piece in ["Once ", "upon ", "a "] {
        fake.token(&job.job_id, piece);
    }
    // Every event sent before the kill reached central's file.
    central.wait_seq(&run_id, "doomed", 4).await;
    fake.kill().await;

    let detail = central.wait_run_end(&run_id).await;
    assert_eq!(detail["metadata"]["status"], "partial", "{detail}");
    let meta = central.read_json(&run_id, "metadata.json");
    let doomed = meta["machines"].as_array().unwrap().iter().find(|m| m["machine_id"] == "doomed").unwrap().clone();
    assert_eq!(doomed["status"], "error");
    assert!(doomed["reason"].as_str().unwrap().contains("agent lost"), "{doomed}");
    let steady = meta["machines"].as_array().unwrap().iter().find(|m| m["machine_id"] == "steady").unwrap().clone();
    assert_eq!(steady["status"], "complete");

    let events = central.events(&run_id).await;
    assert_eq!(assert_contiguous(&events, "doomed"), 4);
    assert_eq!(text_of(&events, "doomed"), "Once upon a ");
    let summary = central.read_json(&run_id, "summary.json");
    // One finisher: ranked, but no winner to name.
    assert!(summary["winner"].is_null());
    assert_eq!(summary["comparison"]["winner"]["status"], "undecided");
    let s = summary["machines"].as_array().unwrap().iter().find(|m| m["machine_id"] == "doomed").unwrap().clone();
    assert_eq!((s["status"].as_str(), s["rank"].is_null()), (Some("error"), true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn central_stopped_mid_run_marks_the_run_interrupted_and_a_restart_keeps_it() {
    let fake = FakeAgent::spawn("slowpoke", &["mock-llm"]).await;
    let results = temp_results_dir();
    let central = TestCentral::spawn(vec![machine("slowpoke", &fake.base_url)], results.clone()).await;
    central.wait_online(&["slowpoke"]).await;
    let run_id = central.start_run(generate_body("mock-llm", 16)).await;
    let job = fake.wait_jobs(1).await.remove(0);
    fake.started(&job.job_id);
    fake.token(&job.job_id, "half a sen");
    central.wait_seq(&run_id, "slowpoke", 2).await;
    central.stop().await;
    // A graceful stop ends the run `interrupted` at once, keeping what was streamed.
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.join("runs").join(&run_id).join("metadata.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["status"], "interrupted", "{meta}");
    assert!(meta["reason"].as_str().unwrap().contains("shut down"), "{meta}");
    assert_eq!(fake.cancels(), vec![job.job_id.clone()], "the job nobody follows any more is cancelled");

    let central = TestCentral::spawn(vec![machine("slowpoke", &fake.base_url)], results).await;
    let detail = central.get_json(&format!("/api/runs/{run_id}")).await;
    assert_eq!(detail["metadata"]["status"], "interrupted", "{detail}");
    assert_eq!(detail["metadata"]["machines"][0]["status"], "interrupted");
    assert!(detail["metadata"]["ended_at"].is_string());
    assert_eq!(detail["summary"]["status"], "interrupted");
    assert_eq!(detail["machines"]["slowpoke"]["output_text"], "half a sen");
    let list = central.get_json("/api/runs").await;
    assert_eq!(list["runs"][0]["status"], "interrupted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn websocket_drop_mid_job_is_recovered_from_the_agent_without_gaps() {
    let fake = FakeAgent::spawn("flaky", &["mock-llm"]).await;
    let central = TestCentral::spawn(vec![machine("flaky", &fake.base_url)], temp_results_dir()).await;
    central.wait_online(&["flaky"]).await;
    let run_id = central.start_run(generate_body("mock-llm", 16)).await;
    let job = fake.wait_jobs(1).await.remove(0);
    let id = job.job_id.as_str();
    fake.started(id);
    fake.token(id, "one ");
    central.wait_seq(&run_id, "flaky", 2).await;

    // The WebSocket drops and the agent refuses new ones while it keeps producing events.
    fake.drop_ws(true).await;
    for piece in ["two ", "three ", "four "] {
        fake.token(id, piece);
    }
    fake.accept_ws();
    // Central reconnects and fetches seq 3..5 with after_seq=2.
    fake.wait_subscribers(|n| n >= 1).await;
    central.wait_seq(&run_id, "flaky", 5).await;
    fake.token(id, "five");
    fake.done(id, "one two three four five", 80.0);

    let detail = central.wait_run_end(&run_id).await;
    assert_eq!(detail["metadata"]["status"], "complete");
    let events = central.events(&run_id).await;
    assert_eq!(assert_contiguous(&events, "flaky"), 7);
    assert_eq!(text_of(&events, "flaky"), "one two three four five");
    assert!(fake.backfills().contains(&2), "central asked for events after seq 2: {:?}", fake.backfills());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_receive_the_job_together_with_one_start_at_on_their_clocks() {
    let fakes = [
        FakeAgent::spawn("f1", &["mock-llm"]).await,
        FakeAgent::spawn("f2", &["mock-llm"]).await,
        FakeAgent::spawn("f3", &["mock-llm"]).await,
    ];
    let machines = ["f1", "f2", "f3"].iter().zip(&fakes).map(|(id, f)| machine(id, &f.base_url)).collect();
    let central = TestCentral::spawn(machines, temp_results_dir()).await;
    central.wait_online(&["f1", "f2", "f3"]).await;
    let before = now_ms();
    let (status, created) = central.post_run(generate_body("mock-llm", 8)).await;
    assert_eq!(status, 201, "{created}");
    let start_at = created["start_at"].as_u64().unwrap();
    let jobs: Vec<_> = {
        let mut v = Vec::new();
        for f in &fakes {
            v.push(f.wait_jobs(1).await.remove(0));
        }
        v
    };
    let received: Vec<f64> = jobs.iter().map(|j| j.received_at_ms).collect();
    let spread = received.iter().cloned().fold(f64::MIN, f64::max) - received.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 100.0, "jobs arrived {spread:.1} ms apart");
    // One common instant, on each agent's clock (same host: offsets within half a round trip of 0).
    let live = central.get_json(&format!("/api/runs/{}", created["run_id"].as_str().unwrap())).await;
    for (id, j) in ["f1", "f2", "f3"].iter().zip(&jobs) {
        let m = &live["metadata"]["clock"]["machines"][id];
        assert_eq!(j.body["start_at"], m["agent_start_at_ms"], "{id}: {m}");
        let shift = j.body["start_at"].as_f64().unwrap() - start_at as f64;
        assert!(shift.abs() <= m["rtt_ms"].as_f64().unwrap() / 2.0 + 1.0, "{id}: start_at moved {shift} ms");
    }
    for j in &jobs {
        assert_eq!(j.body["model"], "mock-llm");
        assert!(j.body.get("machine_ids").is_none());
        assert!(j.received_at_ms < j.body["start_at"].as_f64().unwrap(), "every agent has the job before start_at");
    }
    let lead = start_at as f64 - before;
    assert!((700.0..=2000.0).contains(&lead), "start_at {lead:.0} ms ahead");
    for (f, j) in fakes.iter().zip(&jobs) {
        f.started(&j.job_id);
        f.done(&j.job_id, "", 10.0);
    }
    let detail = central.wait_run_end(created["run_id"].as_str().unwrap()).await;
    assert_eq!(detail["metadata"]["status"], "complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_job_and_missed_deadline_end_in_error_with_reasons() {
    let refuser = FakeAgent::spawn("refuser", &["mock-llm"]).await;
    refuser.refuse_jobs(429, serde_json::json!({"error": "queue full (16 jobs)"}));
    let stuck = FakeAgent::spawn("stuck", &["mock-llm"]).await;
    let settings = bench_central::config::Settings {
        deadline_base: std::time::Duration::from_millis(1500),
        deadline_per_token: std::time::Duration::ZERO,
        ..test_settings()
    };
    let central = TestCentral::spawn_with(
        vec![machine("refuser", &refuser.base_url), machine("stuck", &stuck.base_url)],
        temp_results_dir(),
        settings,
    )
    .await;
    central.wait_online(&["refuser", "stuck"]).await;
    let (status, created) = central.post_run(generate_body("mock-llm", 8)).await;
    assert_eq!(status, 201, "{created}");
    let run_id = created["run_id"].as_str().unwrap();
    // The stuck agent accepts the job, starts it, and then never finishes (but answers probes).
    let job = stuck.wait_jobs(1).await.remove(0);
    stuck.started(&job.job_id);

    let detail = central.wait_run_end(run_id).await;
    assert_eq!(detail["metadata"]["status"], "failed");
    let machines = detail["metadata"]["machines"].as_array().unwrap();
    let reason =
        |id: &str| machines.iter().find(|m| m["machine_id"] == id).unwrap()["reason"].as_str().unwrap().to_owned();
    assert!(reason("refuser").contains("429") && reason("refuser").contains("queue full"), "{}", reason("refuser"));
    assert!(reason("stuck").contains("timed out"), "{}", reason("stuck"));
    assert!(machines.iter().all(|m| m["status"] == "error"));
    assert!(detail["metadata"]["reason"].as_str().unwrap().contains("no machine finished"));
    // The timed-out job is cancelled on its agent.
    central.wait_for("cancel sent", || async { stuck.cancels().contains(&job.job_id).then_some(()) }).await;
    // Central's own status changes are events too.
    let events = central.events(run_id).await;
    let statuses: Vec<&serde_json::Value> = events.iter().filter(|e| e["type"] == "machine_status").collect();
    assert!(statuses.iter().any(|e| e["machine_id"] == "stuck" && e["status"] == "error"));
    assert!(statuses.iter().any(|e| e["machine_id"] == "refuser" && e["status"] == "error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_browser_is_disconnected_and_the_run_goes_on() {
    use futures_util::StreamExt;
    let fake = FakeAgent::spawn("chatty", &["mock-llm"]).await;
    let settings = bench_central::config::Settings { browser_buffer: 16, ..test_settings() };
    let central = TestCentral::spawn_with(vec![machine("chatty", &fake.base_url)], temp_results_dir(), settings).await;
    central.wait_online(&["chatty"]).await;
    // A browser that connects and then never reads.
    let (mut slow, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/ws", central.addr)).await.unwrap();
    let run_id = central.start_run(generate_body("mock-llm", 8)).await;
    let job = fake.wait_jobs(1).await.remove(0);
    fake.started(&job.job_id);
    let chunk = "x".repeat(4096);
    for _ in 0..3000 {
        fake.token(&job.job_id, &chunk);
    }
    fake.done(&job.job_id, "", 1.0);
    let detail = central.wait_run_end(&run_id).await;
    assert_eq!(detail["metadata"]["status"], "complete");
    assert_eq!(assert_contiguous(&central.events(&run_id).await, "chatty"), 3002);
    // Reading now: what was buffered, then a close frame that says why.
    let close = async {
        while let Some(msg) = slow.next().await {
            match msg {
                Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame))) => return frame.reason.to_string(),
                Ok(_) => {}
                Err(e) => return format!("error: {e}"),
            }
        }
        "ended".to_owned()
    };
    let reason = tokio::time::timeout(WAIT_LIMIT, close).await.expect("slow client closed");
    assert!(reason.contains("too slow"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn central_crashed_mid_run_resumes_at_restart_and_finishes_the_run() {
    let fake = FakeAgent::spawn("survivor", &["mock-llm"]).await;
    let lost = FakeAgent::spawn("amnesiac", &["mock-llm"]).await;
    let results = temp_results_dir();
    let machines = vec![machine("survivor", &fake.base_url), machine("amnesiac", &lost.base_url)];
    let crashing = CrashableCentral::spawn(machines.clone(), results.clone());
    let client = http_client();
    let url = |p: &str| format!("{}{p}", crashing.base_url);
    // Bounded poll until the fleet sees both agents, then start a run.
    let start = std::time::Instant::now();
    let run_id = loop {
        let resp = client.post(url("/api/runs")).json(&generate_body("mock-llm", 8)).send().await.unwrap();
        if resp.status() == 201 {
            let v: serde_json::Value = resp.json().await.unwrap();
            if v["machines"].as_array().unwrap().iter().all(|m| m["status"] == "running") {
                break v["run_id"].as_str().unwrap().to_owned();
            }
        }
        assert!(start.elapsed() < WAIT_LIMIT, "central never saw both agents");
        tokio::time::sleep(POLL).await;
    };
    let job = fake.wait_jobs(1).await.into_iter().last().unwrap();
    let gone = lost.wait_jobs(1).await.into_iter().last().unwrap();
    fake.started(&job.job_id);
    fake.token(&job.job_id, "cut ");
    lost.started(&gone.job_id);
    let start = std::time::Instant::now();
    loop {
        let d: serde_json::Value =
            client.get(url(&format!("/api/runs/{run_id}"))).send().await.unwrap().json().await.unwrap();
        if d["machines"]["survivor"]["last_seq"] == 2 && d["machines"]["amnesiac"]["last_seq"] == 1 {
            break;
        }
        assert!(start.elapsed() < WAIT_LIMIT, "events never stored: {d}");
        tokio::time::sleep(POLL).await;
    }
    tokio::task::spawn_blocking(move || crashing.crash()).await.unwrap();
    let meta_path = results.join("runs").join(&run_id).join("metadata.json");
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    assert_eq!(meta["status"], "running", "a crash leaves the run as it was");

    // While central is down, the survivor's job goes on and finishes; the other agent restarts
    // and forgets its job.
    fake.token(&job.job_id, "short, then finished");
    fake.done(&job.job_id, "cut short, then finished", 50.0);
    lost.forget_jobs();

    let central = TestCentral::spawn(machines, results).await;
    let detail = central.wait_run_end(&run_id).await;
    assert_eq!(detail["metadata"]["status"], "partial", "{detail}");
    // The run list (an index built at start-up, updated as the resumed run ends) agrees.
    let list = central.get_json("/api/runs").await;
    assert_eq!((list["total"].as_u64(), list["runs"][0]["run_id"].as_str()), (Some(1), Some(run_id.as_str())));
    assert_eq!(list["runs"][0]["status"], "partial", "{list}");
    let machines = detail["metadata"]["machines"].as_array().unwrap();
    let by_id = |id: &str| machines.iter().find(|m| m["machine_id"] == id).unwrap().clone();
    assert_eq!(by_id("survivor")["status"], "complete", "{detail}");
    let amnesiac = by_id("amnesiac");
    assert_eq!(amnesiac["status"], "interrupted", "{amnesiac}");
    assert!(amnesiac["reason"].as_str().unwrap().contains("no longer has the job"), "{amnesiac}");
    assert_eq!(detail["summary"]["status"], "partial");
    assert_eq!(detail["machines"]["survivor"]["output_text"], "cut short, then finished");
    // The stored stream has no gap and no duplicate: what was missed was fetched after seq 2.
    let events = central.events(&run_id).await;
    assert_eq!(assert_contiguous(&events, "survivor"), 4);
    assert!(fake.backfills().contains(&2), "backfills: {:?}", fake.backfills());
    assert_eq!(events.last().unwrap()["type"], "run_end");
}
