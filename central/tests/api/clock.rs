//! Clock offsets across hosts: central measures each agent's clock before a run, sends each the
//! common start instant on its own clock, and reports the skew achieved.

use serde_json::Value;

use super::fake_agent::FakeAgent;
use super::support::*;

/// Agents 5 s ahead, 3 s behind, and one without `GET /time` (an older agent).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_at_is_sent_on_each_agents_clock_and_the_run_reports_the_skew() {
    let ahead = FakeAgent::spawn("ahead", &["mock-llm"]).await;
    let behind = FakeAgent::spawn("behind", &["mock-llm"]).await;
    let old = FakeAgent::spawn("old", &["mock-llm"]).await;
    ahead.set_clock_offset_ms(Some(5000));
    behind.set_clock_offset_ms(Some(-3000));
    old.set_clock_offset_ms(None);
    let ids = ["ahead", "behind", "old"];
    let fakes = [&ahead, &behind, &old];
    let machines = ids.iter().zip(fakes).map(|(id, f)| machine(id, &f.base_url)).collect();
    let central = TestCentral::spawn(machines, temp_results_dir()).await;
    central.wait_online(&ids).await;
    let (status, created) = central.post_run(generate_body("mock-llm", 8)).await;
    assert_eq!(status, 201, "{created}");
    let run_id = created["run_id"].as_str().unwrap().to_owned();
    let start_at = created["start_at"].as_u64().unwrap();

    // The live run already shows the measured offsets.
    let live = central.get_json(&format!("/api/runs/{run_id}")).await;
    let clock = &live["metadata"]["clock"];
    assert_eq!(clock["start_at_ms"], start_at, "{clock:#}");
    for (id, injected) in [("ahead", 5000.0), ("behind", -3000.0)] {
        let m = &clock["machines"][id];
        let (offset, rtt) = (m["offset_ms"].as_f64().unwrap(), m["rtt_ms"].as_f64().unwrap());
        // The fake reads its clock to the microsecond: the estimate is within half the round trip.
        assert!((offset - injected).abs() <= rtt / 2.0 + 0.01, "{id}: {m}");
        assert!(m["samples"].as_u64().unwrap() >= 1, "{m}");
        assert!(m.get("reason").is_none(), "{m}");
        assert_eq!(m["agent_start_at_ms"], (start_at as f64 + offset).round() as u64, "{m}");
    }
    let unmeasured = &clock["machines"]["old"];
    assert_eq!(unmeasured["offset_ms"], Value::Null, "{unmeasured}");
    assert!(unmeasured["reason"].as_str().unwrap().contains("GET /time"), "{unmeasured}");
    assert_eq!(unmeasured["agent_start_at_ms"], start_at, "started uncorrected");

    // Each agent received the common instant on its own clock.
    let jobs: Vec<_> = {
        let mut v = Vec::new();
        for f in fakes {
            v.push(f.wait_jobs(1).await.remove(0));
        }
        v
    };
    for (id, job) in ids.iter().zip(&jobs) {
        assert_eq!(job.body["start_at"], clock["machines"][id]["agent_start_at_ms"], "{id}");
    }
    let shift = jobs[0].body["start_at"].as_i64().unwrap() - jobs[1].body["start_at"].as_i64().unwrap();
    let bound = clock["machines"]["ahead"]["rtt_ms"].as_f64().unwrap() / 2.0
        + clock["machines"]["behind"]["rtt_ms"].as_f64().unwrap() / 2.0
        + 1.0;
    assert!((shift as f64 - 8000.0).abs() <= bound, "start_at differs by {shift} ms, clocks by 8000 ms");

    // Every agent starts exactly at its start_at on its own clock: converted back, the corrected
    // starts coincide (within the whole-millisecond rounding of start_at).
    for (f, job) in fakes.iter().zip(&jobs) {
        f.started_on_time(job);
        f.done(&job.job_id, "", 10.0);
    }
    let detail = central.wait_run_end(&run_id).await;
    assert_eq!(detail["metadata"]["status"], "complete");
    let stored = central.read_json(&run_id, "metadata.json");
    let clock = &stored["clock"];
    assert_eq!(&detail["metadata"]["clock"], clock, "the API answers what metadata.json holds");
    assert_eq!(clock["skew_machines"], 2, "{clock:#}");
    let skew = clock["achieved_skew_ms"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&skew), "{clock:#}");
    for id in ["ahead", "behind"] {
        let m = &clock["machines"][id];
        let error = m["start_error_ms"].as_f64().unwrap();
        assert!(error.abs() <= 0.5 + 1e-3, "{id}: {m}");
        assert!((m["started_at_ms"].as_f64().unwrap() - start_at as f64 - error).abs() < 1e-3, "{m}");
    }
    assert_eq!(
        clock["machines"]["old"]["started_at_ms"],
        Value::Null,
        "no offset: its start is not on central's clock"
    );
}

/// Real agents on this host: offsets near zero, and the run's skew from their real first requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_agents_report_offsets_and_achieved_skew() {
    let a = RealAgent::mock("a", &["mock-llm"], 5.0, 500.0).await;
    let b = RealAgent::mock("b", &["mock-llm"], 5.0, 500.0).await;
    let central =
        TestCentral::spawn(vec![machine("a", &a.base_url), machine("b", &b.base_url)], temp_results_dir()).await;
    central.wait_online(&["a", "b"]).await;
    let run_id = central.start_run(generate_body("mock-llm", 4)).await;
    let detail = central.wait_run_end(&run_id).await;
    assert_eq!(detail["metadata"]["status"], "complete", "{detail}");
    let clock = &central.read_json(&run_id, "metadata.json")["clock"];
    let events = central.events(&run_id).await;
    for id in ["a", "b"] {
        let m = &clock["machines"][id];
        // One host, one clock: the offset is within half its round trip of zero.
        let (offset, rtt) = (m["offset_ms"].as_f64().unwrap(), m["rtt_ms"].as_f64().unwrap());
        assert!(offset.abs() <= rtt / 2.0 + 0.01, "{id}: {m}");
        let started = of(&events, id, "job_started")[0]["payload"].clone();
        assert_eq!(started["start_at"], m["agent_start_at_ms"], "{id}");
        let at = started["started_at_s"].as_f64().unwrap() * 1000.0 - offset;
        assert!((m["started_at_ms"].as_f64().unwrap() - at).abs() < 1e-3, "{id}: {m}");
    }
    let starts: Vec<f64> =
        ["a", "b"].iter().map(|id| clock["machines"][id]["started_at_ms"].as_f64().unwrap()).collect();
    // Equal to the microsecond: the stored starts are rounded, the skew computed before rounding.
    let skew = clock["achieved_skew_ms"].as_f64().unwrap();
    assert!((skew - (starts[0] - starts[1]).abs()).abs() < 1e-2, "{clock:#}");
}
