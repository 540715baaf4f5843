//! The fleet capacity race: `llm_capacity` on every machine from the same instant, stored with a
//! verdict, per-machine `requests.csv` and `summary.json.capacity`; compared across runs.

use std::time::Duration;

use bench_agent::testkit::slot_engine::{SLOT_MODEL, SlotEngine, SlotScript};
use serde_json::{Value, json};

use super::support::*;

/// Slot engines answer in 540 ms (first token after 100 ms): a request that queues for a slot
/// waits a whole answer for its first token (≥ 640 ms), so p90 TTFT ≤ 350 ms holds exactly up to
/// the slot count, with 250 ms to spare either way for a busy machine.
pub fn engine_script(slots: usize) -> SlotScript {
    SlotScript::new(slots, Duration::from_millis(100), Duration::from_millis(40), 12)
}

fn engine(slots: usize) -> SlotEngine {
    SlotEngine::spawn(engine_script(slots))
}

/// The load tests measure latency on a shared 2-core machine: they take turns, so that two races
/// (and a browser) never compete with each other for it.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until each agent's start-up calibration (a second of busy CPU) has ended, so that it does
/// not slow the first steps of the race down.
pub async fn wait_calibrated(agents: &[&RealAgent]) {
    for a in agents {
        let url = format!("{}/capabilities", a.base_url);
        for _ in 0..300 {
            let caps: Value = http_client().get(&url).send().await.unwrap().json().await.unwrap();
            if !caps["client_ceiling"].is_null()
                || caps["client_ceiling_unavailable"].as_str().is_some_and(|w| w != bench_agent::calibrate::PENDING)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn capacity_body(repeat: u32) -> Value {
    json!({"test_type": "llm_capacity", "model": SLOT_MODEL, "search": "concurrency", "start": 2, "max": 5,
           "percentile": 90, "slo": {"ttft_ms": 350}, "duration_s": 2.5, "warmup_s": 0.6, "max_tokens": 12, "input_tokens": 8,
           "repeat": repeat})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_capacity_race_with_limits_4_and_2_decides_for_the_first_with_a_ratio_near_2() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (four, two) = (engine(4), engine(2));
    let agents = [RealAgent::openai("four", &four.base_url).await, RealAgent::openai("two", &two.base_url).await];
    let machines = vec![machine("four", &agents[0].base_url), machine("two", &agents[1].base_url)];
    let central = TestCentral::spawn(machines, temp_results_dir()).await;
    central.wait_online(&["four", "two"]).await;
    wait_calibrated(&[&agents[0], &agents[1]]).await;
    let run_id = central.start_run(capacity_body(3)).await;
    central.wait_run_end_within(&run_id, Duration::from_secs(240)).await;

    let meta = central.read_json(&run_id, "metadata.json");
    assert_eq!(meta["status"], "complete", "{meta}");
    let nonce = meta["spec"]["prompt_nonce"].as_str().expect("central drew a prompt nonce for the run");
    assert_eq!(nonce.len(), 12);
    let summary = central.read_json(&run_id, "summary.json");
    let cap = &summary["capacity"];
    assert_eq!((cap["search"].as_str(), cap["percentile"].as_f64()), (Some("concurrency"), Some(90.0)));
    assert_eq!(cap["slo"], json!({"ttft_ms": 350.0}));
    let curve = |id: &str| -> Vec<(f64, bool)> {
        cap["machines"][id]["curve"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["level"].as_f64().unwrap(), s["pass"] == true))
            .collect()
    };
    assert_eq!(cap["machines"]["four"]["capacity"], 4.0, "{:?}", curve("four"));
    assert_eq!(cap["machines"]["four"]["first_failing"], 5.0);
    assert_eq!(cap["machines"]["two"]["capacity"], 2.0, "{:?}", curve("two"));
    assert_eq!(cap["machines"]["two"]["first_failing"], 3.0);
    assert_eq!(cap["machines"]["four"]["searches"].as_array().unwrap().len(), 3);

    let c = &summary["comparison"];
    assert_eq!(c["kind"], "capacity");
    let reasons = |id: &str| -> Vec<String> {
        cap["machines"][id]["curve"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| format!("{} {} {}", s["level"], s["pass"], s["slo"]["reasons"]))
            .collect()
    };
    if c["winner"]["status"] != "decided" || std::env::var_os("DEBUG_CAPACITY").is_some() {
        let text = std::fs::read_to_string(central.run_file(&run_id, "four.requests.csv")).unwrap();
        for line in text.lines().take(25) {
            eprintln!("DEBUG {}", line.split(',').take(11).collect::<Vec<_>>().join(","));
        }
    }
    assert_eq!(c["winner"]["status"], "decided", "{:?} {:?} {}", reasons("four"), reasons("two"), c["verdicts"]);
    assert_eq!(c["winner"]["machine_id"], "four");
    assert_eq!(summary["winner"], "four");
    let v = &c["verdicts"][0];
    let ratio = v["ratio"].as_f64().unwrap();
    assert!((ratio - 2.0).abs() < 0.2, "ratio {ratio}");
    let [lo, hi] = [v["ratio_ci"][0].as_f64().unwrap(), v["ratio_ci"][1].as_f64().unwrap()];
    assert!(lo > 1.0 && lo <= ratio && ratio <= hi, "{v}");
    let text = v["text"].as_str().unwrap();
    assert!(
        text.contains("sustains 4 concurrent requests within p90 TTFT ≤ 350 ms")
            && text.contains("serves 2.00× as much (95% CI"),
        "{text}"
    );
    // Both engines ran in this process: the shared host is told, not held against the verdict.
    let kinds: Vec<&str> =
        c["fairness"]["warnings"].as_array().unwrap().iter().map(|w| w["kind"].as_str().unwrap()).collect();
    assert!(kinds.iter().all(|k| *k == "shared_host"), "{kinds:?}");
    let ranks: Vec<(String, u64)> = summary["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["machine_id"].as_str().unwrap().to_owned(), m["rank"].as_u64().unwrap()))
        .collect();
    assert!(ranks.contains(&("four".into(), 1)) && ranks.contains(&("two".into(), 2)), "{ranks:?}");

    // requests.csv per machine: one row per request of every step, the documented header.
    for id in ["four", "two"] {
        let text = std::fs::read_to_string(central.run_file(&run_id, &format!("{id}.requests.csv"))).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            <bench_shared::load::RequestRecord as bench_shared::sweep::CsvRow>::HEADER.join(",")
        );
        let rows: Vec<&str> = lines.collect();
        let served = if id == "four" { four.served() } else { two.served() };
        assert_eq!(rows.len() as u64, served, "{id}: every request the engine served is a row");
        let m = summary["machines"].as_array().unwrap().iter().find(|m| m["machine_id"] == id).unwrap();
        assert_eq!(m["files"], json!([format!("{id}.requests.csv")]));
    }
    // The one-file report carries the capacity verdict and each machine's searches.
    let report = central.get(&format!("/api/runs/{run_id}/report.html")).await.text().await.unwrap();
    assert!(report.contains("serves the most within p90 TTFT ≤ 350 ms"), "report headline");
    assert!(
        report.contains("Capacity within p90 TTFT ≤ 350 ms") && report.contains("<td>4, 4, 4</td>"),
        "report table"
    );
    assert!(report.contains("serves 2.00× as much"), "report verdict sentence");
    // The events carried the live figures the page shows.
    let events = central.events(&run_id).await;
    assert!(!of(&events, "four", "load_progress").is_empty());
    assert_eq!(of(&events, "two", "load_step").len(), cap["machines"]["two"]["curve"].as_array().unwrap().len());

    // A second race: /api/compare across the two, machine by machine.
    let second = central.start_run(capacity_body(3)).await;
    central.wait_run_end_within(&second, Duration::from_secs(240)).await;
    let across = central.get_json(&format!("/api/compare?a={run_id}&b={second}")).await;
    assert_eq!(across["kind"], "capacity");
    assert_eq!(across["settings_match"], true);
    assert_eq!(across["machines"].as_array().unwrap().len(), 2);
    for m in across["machines"].as_array().unwrap() {
        // The same engines: the same capacity, up to a busy machine's noise in one search.
        let r = m["ratio"].as_f64().unwrap();
        assert!((0.5..=2.0).contains(&r) && m["text"].as_str().is_some_and(|t| !t.is_empty()), "{m}");
        assert!(["tie", "more", "less", "undecided"].contains(&m["status"].as_str().unwrap()), "{m}");
    }
    let history = central.get_json("/api/runs").await;
    let listed: Vec<&Value> =
        history["runs"].as_array().unwrap().iter().filter(|r| r["run_id"] == run_id.as_str()).collect();
    assert_eq!(listed[0]["test_type"], "llm_capacity");
    assert_eq!(listed[0]["winner"], "four");
}

#[tokio::test]
async fn capacity_runs_compare_only_with_capacity_runs_and_bad_bodies_name_the_field() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let e = engine(2);
    let agent = RealAgent::openai("m", &e.base_url).await;
    let central = TestCentral::spawn(vec![machine("m", &agent.base_url)], temp_results_dir()).await;
    central.wait_online(&["m"]).await;
    let (status, body) = central.post_run(json!({"test_type": "llm_capacity", "model": SLOT_MODEL})).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("slo")), "{body}");
    let (status, body) = central
        .post_run(json!({"test_type": "llm_load", "model": SLOT_MODEL, "rate_rps": 2,
        "cache_bust": "no"}))
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("cache_bust")), "{body}");
    let load = central
        .start_run(
            json!({"test_type": "llm_load", "model": SLOT_MODEL, "concurrency": 2, "requests": 6, "max_tokens": 4}),
        )
        .await;
    let detail = central.wait_run_end(&load).await;
    assert_eq!(detail["metadata"]["status"], "complete", "{detail}");
    let summary = central.read_json(&load, "summary.json");
    assert_eq!(summary["load"]["m"]["requests_completed"], 6, "{summary}");
    assert!(central.run_file(&load, "m.requests.csv").exists());
    let cap = central.start_run(capacity_body(1)).await;
    central.wait_run_end_within(&cap, Duration::from_secs(120)).await;
    let resp = central.get(&format!("/api/compare?a={load}&b={cap}")).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("llm_capacity"), "{body}");
}
