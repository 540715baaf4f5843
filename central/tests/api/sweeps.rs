//! Sweeps started from central: the job is forwarded, the CSVs land in the run folder.

use bench_shared::engine::EngineKind;
use bench_shared::sweep::{
    LOAD_TIMES_CSV_HEADER, LoadRow, REQUESTS_CSV_HEADER, RequestRow, RunMode, SUMMARY_CSV_HEADER, SummaryRow,
};
use serde_json::{Value, json};

use super::fake_agent::FakeAgent;
use super::support::*;

/// A `requests.csv` row as an agent sends it in `sweep_row`.
fn request_row(run_mode: RunMode, idx: u32) -> Value {
    let nonstream = run_mode == RunMode::Nonstream;
    let row = RequestRow {
        run_mode,
        warmup_run: false,
        model: "mock-llm".into(),
        ctx: 256,
        par: 1,
        idx,
        slot: 0,
        wall_s: Some(1.5),
        ttft_s: (!nonstream).then_some(0.5),
        prompt_tokens: Some(200),
        completion_tokens: Some(16),
        completion_tokens_reasoning: None,
        completion_tokens_visible: Some(16),
        completion_toks_per_s: Some(16.0 / 1.5),
        completion_toks_per_s_reasoning: None,
        completion_toks_per_s_visible: Some(16.0 / 1.5),
        prefill_toks_per_s: (!nonstream).then_some(400.0),
        decode_toks_per_s: None,
        error: "ok, \"quoted\"".into(),
        timestamp: 1.5,
        engine: EngineKind::Mock,
        target_prompt_tokens: 240,
        cached_prompt_tokens: None,
        usage_source: None,
        attempts: 1,
    };
    serde_json::to_value(row).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweep_from_central_stores_csvs_per_machine() {
    let fake = FakeAgent::spawn("sweeper", &["mock-llm"]).await;
    let central = TestCentral::spawn(vec![machine("sweeper", &fake.base_url)], temp_results_dir()).await;
    central.wait_online(&["sweeper"]).await;
    let body = json!({"test_type": "llm_sweep", "models": ["mock-llm"], "ctx": 512, "sweep_count": 2,
                      "parallel": [1, 2], "runs": 1, "warmup": 3, "out_tokens": 16});
    let run_id = central.start_run(body).await;
    let job = fake.wait_jobs(1).await.remove(0);
    assert_eq!(job.body["test_type"], "llm_sweep");
    assert_eq!(job.body["parallel"], json!([1, 2]));
    assert!(job.body["start_at"].is_u64());
    let id = job.job_id.as_str();
    fake.emit(
        id,
        "sweep_started",
        json!({"models": ["mock-llm"], "ctx_points": [256, 512], "parallel": [1, 2], "cells_total": 4}),
    );
    for mode in [RunMode::Stream, RunMode::Nonstream] {
        fake.emit(id, "sweep_row", request_row(mode, 0));
    }
    let summary_row =
        SummaryRow { model: "mock-llm".into(), par: 2, aggregate_toks_per_s: Some(9.5), ..Default::default() };
    let load_row = LoadRow {
        model: "mock-llm".into(),
        warmup_load_est_s: Some(0.0),
        warmup_load_est_clamped: true,
        ..Default::default()
    };
    fake.emit(
        id,
        "sweep_done",
        json!({
        "summary_rows": [summary_row],
        "load_time_rows": [load_row],
        "requests_csv": null, "summary_csv": null, "load_times_csv": null}),
    );
    let detail = central.wait_run_end(&run_id).await;
    assert_eq!(detail["metadata"]["status"], "complete");
    assert_eq!(detail["metadata"]["test_type"], "llm_sweep");

    let read = |name: &str| std::fs::read_to_string(central.run_file(&run_id, name)).expect(name);
    let requests = read("sweeper.requests.csv");
    let mut lines = requests.lines();
    assert_eq!(lines.next().unwrap(), REQUESTS_CSV_HEADER.join(","));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].starts_with("stream,false,mock-llm,256,1,0,0,1.5,0.5,200,16,"), "{}", rows[0]);
    assert!(rows[1].starts_with("nonstream,false,mock-llm,256,1,0,0,1.5,,200,16,"), "{}", rows[1]);
    assert!(rows[1].contains("\"ok, \"\"quoted\"\"\""), "{}", rows[1]);
    // The files read back into the agent's own row types.
    let back: Vec<RequestRow> =
        csv::Reader::from_reader(requests.as_bytes()).deserialize().collect::<Result<_, _>>().unwrap();
    assert_eq!(serde_json::to_value(&back[1]).unwrap(), request_row(RunMode::Nonstream, 0));
    let summary = read("sweeper.summary.csv");
    assert_eq!(summary.lines().next().unwrap(), SUMMARY_CSV_HEADER.join(","));
    let back: Vec<SummaryRow> =
        csv::Reader::from_reader(summary.as_bytes()).deserialize().collect::<Result<_, _>>().unwrap();
    assert_eq!(back, vec![summary_row]);
    let load = read("sweeper.load_times.csv");
    assert_eq!(load.lines().next().unwrap(), LOAD_TIMES_CSV_HEADER.join(","));
    let back: Vec<LoadRow> = csv::Reader::from_reader(load.as_bytes()).deserialize().collect::<Result<_, _>>().unwrap();
    assert_eq!(back, vec![load_row]);
    let s = central.read_json(&run_id, "summary.json");
    assert_eq!(
        s["machines"][0]["files"],
        json!(["sweeper.requests.csv", "sweeper.summary.csv", "sweeper.load_times.csv"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sweep_over_a_real_agent_on_the_local_engine_stores_its_csvs() {
    let agent = RealAgent::local_engine("sweep-real").await;
    let central = TestCentral::spawn(vec![machine("sweep-real", &agent.base_url)], temp_results_dir()).await;
    central.wait_online(&["sweep-real"]).await;
    let model = bench_agent::testkit::LOCAL_MODEL;
    // The smallest grid: one context size, parallel 1 and 2, one recorded request per slot.
    let body = json!({"test_type": "llm_sweep", "models": [model], "ctx": 128, "sweep_count": 1,
                      "parallel": [1, 2], "runs": 1, "warmup": 3, "out_tokens": 4});
    let run_id = central.start_run(body).await;
    let detail = central.wait_run_end_within(&run_id, std::time::Duration::from_secs(400)).await;
    assert_eq!(detail["metadata"]["status"], "complete", "{detail}");
    let events = central.events(&run_id).await;
    assert_contiguous(&events, "sweep-real");
    let rows = of(&events, "sweep-real", "sweep_row").len();
    let requests = std::fs::read_to_string(central.run_file(&run_id, "sweep-real.requests.csv")).unwrap();
    assert_eq!(requests.lines().next().unwrap(), REQUESTS_CSV_HEADER.join(","), "no extra columns");
    assert_eq!(requests.lines().count(), rows + 1);
    // 2 cells × (3 warm-ups + par × runs × 2 calls) rows.
    assert_eq!(rows, 2 * 3 + (2 + 4), "{requests}");
    let summary = std::fs::read_to_string(central.run_file(&run_id, "sweep-real.summary.csv")).unwrap();
    assert_eq!(summary.lines().next().unwrap(), SUMMARY_CSV_HEADER.join(","));
    assert_eq!(summary.lines().count(), 3, "one row per (ctx, par): {summary}");
    let load = std::fs::read_to_string(central.run_file(&run_id, "sweep-real.load_times.csv")).unwrap();
    assert_eq!(load.lines().next().unwrap(), LOAD_TIMES_CSV_HEADER.join(","));
    assert_eq!(load.lines().count(), 3, "{load}");
}
