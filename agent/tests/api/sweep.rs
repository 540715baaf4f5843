//! Sweeps against the real local engine (llama.cpp serving SmolLM2-135M): directly through
//! `sweep::run_job`, through `POST /jobs` on a running agent, and through the terminal command.
//!
//! The engine's per-slot context is 1024 tokens (n_ctx 4096 / 4 slots), so the grid is ctx 256
//! and 512 with 16 output tokens.

use std::path::Path;

use bench_agent::engine::{self, EngineSettings, Fallback};
use bench_agent::sweep::cli::{EngineArg, SweepArgs};
use bench_agent::sweep::{SweepJob, run_job};
use bench_agent::testkit::{LOCAL_MODEL, local_engine_url};
use bench_shared::engine::EngineKind;
use bench_shared::event::Event;
use bench_shared::job::JobSpec;
use bench_shared::sweep::{LOAD_TIMES_CSV_HEADER, REQUESTS_CSV_HEADER, SUMMARY_CSV_HEADER, SweepSpec};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::support::{TestAgent, of_type, openai_config, temp_results_dir};

/// A parsed CSV: header and rows as column → value maps.
struct Csv {
    header: Vec<String>,
    rows: Vec<std::collections::HashMap<String, String>>,
}

impl Csv {
    fn read(path: &Path) -> Csv {
        let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
        let rows = r
            .records()
            .map(|rec| header.iter().cloned().zip(rec.unwrap().iter().map(str::to_owned)).collect())
            .collect();
        Csv { header, rows }
    }
}

fn num(row: &std::collections::HashMap<String, String>, col: &str) -> f64 {
    row[col].parse().unwrap_or_else(|_| panic!("{col} = {:?} is not a number in {row:?}", row[col]))
}

fn spec(body: serde_json::Value) -> SweepSpec {
    match JobSpec::from_json(&body, 0).unwrap() {
        JobSpec::LlmSweep(s) => s,
        other => panic!("{other:?}"),
    }
}

fn grid() -> SweepSpec {
    spec(json!({
        "test_type": "llm_sweep", "models": [LOCAL_MODEL], "ctx": 512, "sweep_count": 2, "parallel": [1, 2],
        "runs": 1, "warmup": 3, "out_tokens": 16, "timeout_s": 120
    }))
}

async fn sweep_real(out_dir: &Path, cache: &Path) -> Vec<Event> {
    let engine = engine::build(&EngineSettings {
        kind: EngineKind::Openai,
        base_url: local_engine_url(),
        api_key: None,
        fallback: Fallback::None,
        request_timeout_s: 120.0,
        mock: Default::default(),
        ..bench_agent::engine::EngineSettings::defaults(bench_shared::engine::EngineKind::Mock)
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let job = SweepJob {
        engine,
        spec: grid(),
        out_dir: out_dir.to_owned(),
        calibration_cache: cache.to_owned(),
        cancel: CancellationToken::new(),
    };
    let done = run_job(job, tx).await.expect("sweep against the real engine");
    assert_eq!(done.summary_rows.len(), 4);
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    events
}

/// Checks the three CSVs of a ctx {256, 512} × par {1, 2} sweep with one run.
fn check_csvs(dir: &Path) -> (Csv, Csv, Csv) {
    let requests = Csv::read(&dir.join("requests.csv"));
    let summary = Csv::read(&dir.join("summary.csv"));
    let loads = Csv::read(&dir.join("load_times.csv"));
    assert_eq!(requests.header, REQUESTS_CSV_HEADER);
    assert_eq!(summary.header, SUMMARY_CSV_HEADER);
    assert_eq!(loads.header, LOAD_TIMES_CSV_HEADER);

    // 4 cells × 3 warm-ups, and two rows per logical request (1 + 2 per ctx point).
    let warm: Vec<_> = requests.rows.iter().filter(|r| r["warmup_run"] == "true").collect();
    let recorded: Vec<_> = requests.rows.iter().filter(|r| r["warmup_run"] == "false").collect();
    assert_eq!(warm.len(), 12);
    assert_eq!(recorded.len(), 2 * 2 * 3);
    for r in requests.rows.iter() {
        assert_eq!(r["error"], "", "no call failed: {r:?}");
        assert_eq!(r["engine"], "openai");
        assert!(num(r, "wall_s") > 0.0);
        assert!(num(r, "completion_toks_per_s") > 0.0, "{r:?}");
        assert!(num(r, "completion_tokens") > 0.0);
    }
    for cell in recorded.chunks(2) {
        let (s, n) = (cell[0], cell[1]);
        assert_eq!((s["run_mode"].as_str(), n["run_mode"].as_str()), ("stream", "nonstream"));
        assert_eq!(s["idx"], n["idx"]);
        let (ttft, wall) = (num(s, "ttft_s"), num(s, "wall_s"));
        assert!(ttft > 0.0 && ttft < wall, "ttft {ttft} < wall {wall}");
        assert!(num(s, "prefill_toks_per_s") > 0.0 && num(s, "decode_toks_per_s") > 0.0);
        assert_eq!(n["ttft_s"], "");
        assert_eq!(n["prefill_toks_per_s"], "");
        // Every call started with its own nonce: nothing of the prompt came from the cache
        // beyond the shared chat-template prefix.
        let prompt = num(n, "prompt_tokens");
        let cached = n["cached_prompt_tokens"].parse::<f64>().unwrap_or(0.0);
        assert!(cached < prompt / 4.0, "prompt cache hit {cached} of {prompt}");
    }

    assert_eq!(summary.rows.len(), 4);
    for s in &summary.rows {
        let par = num(s, "par");
        assert_eq!(num(s, "request_count"), par);
        assert_eq!(num(s, "success_count"), par);
        assert_eq!(num(s, "error_count"), 0.0);
        for col in ["stream_toks_per_s_total", "nonstream_toks_per_s_total", "completion_toks_per_s_total"] {
            assert!(num(s, col) > 0.0, "{col}");
        }
        let total = num(s, "completion_toks_per_s_total");
        let mean = (num(s, "stream_toks_per_s_total") + num(s, "nonstream_toks_per_s_total")) / 2.0;
        assert!((total - mean).abs() < 1e-6 * mean.max(1.0));
        assert!(num(s, "ttft_s_p50") > 0.0 && num(s, "ttft_s_p99") >= num(s, "ttft_s_p50"));
        // The recorded prompts hit the calibration target (ctx − 16) within 5 %.
        let target = num(s, "target_prompt_tokens");
        assert_eq!(target, num(s, "ctx") - 16.0);
        assert!((num(s, "prompt_tokens_mean") - target).abs() <= 0.05 * target, "{s:?}");
    }

    assert_eq!(loads.rows.len(), 4);
    for l in &loads.rows {
        assert_eq!(l["calibration_within_tolerance"], "true", "{l:?}");
        let target = num(l, "target_prompt_tokens");
        assert!((num(l, "calibrated_prompt_tokens") - target).abs() <= 0.05 * target);
        assert!(num(l, "warmup_ttft_first_s") > 0.0 && num(l, "warmup_ttft_rest_mean_s") > 0.0);
        assert_eq!(l["warmup_count"], "3");
        l["warmup_load_est_s"].parse::<f64>().expect("a load estimate");
        assert!(num(l, "chars_per_token") > 1.0 && num(l, "chars_per_token") < 10.0);
    }
    (requests, summary, loads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_engine_sweep_writes_csvs_and_reuses_the_calibration_cache() {
    let dir = temp_results_dir();
    let cache = dir.join("calibration_cache.json");
    let events = sweep_real(&dir.join("first"), &cache).await;
    let rows = events.iter().filter(|e| matches!(e, Event::SweepRow(_))).count();
    assert_eq!(rows, 24, "one sweep_row per requests.csv row");
    let (_, _, loads) = check_csvs(&dir.join("first"));
    // Fresh cache: the first cell of each ctx calibrates (unless the 4.0 chars/token estimate
    // was already within tolerance); its par-2 sibling then starts from the cache.
    assert_eq!(loads.rows[0]["calibration_cache_hit"], "false");
    assert_eq!(loads.rows[1]["calibration_cache_hit"], "true");
    let first_calls: f64 = loads.rows.iter().map(|l| num(l, "calibration_calls")).sum();
    println!("summary.csv (real engine):\n{}", std::fs::read_to_string(dir.join("first/summary.csv")).unwrap());
    println!("load_times.csv (real engine):\n{}", std::fs::read_to_string(dir.join("first/load_times.csv")).unwrap());

    // Second sweep with the same cache: every cell starts calibrated.
    sweep_real(&dir.join("second"), &cache).await;
    let (_, _, loads) = check_csvs(&dir.join("second"));
    for l in &loads.rows {
        assert_eq!(l["calibration_cache_hit"], "true", "{l:?}");
        assert_eq!(l["calibration_calls"], "0", "{l:?}");
    }
    let second_calls: f64 = loads.rows.iter().map(|l| num(l, "calibration_calls")).sum();
    assert!(second_calls <= first_calls);
}

/// Follows a job over `/ws` until its terminal event. A sweep makes dozens of calls, and on a
/// busy 2-core machine the real engine can take seconds per call, so the failure guard is
/// longer than the harness's per-job one.
async fn follow_long(agent: &TestAgent, job_id: &str) -> Vec<serde_json::Value> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = agent.ws_connect(&format!("job_id={job_id}")).await;
    let mut events = Vec::new();
    let read = async {
        while let Some(msg) = ws.next().await {
            if let Message::Text(t) = msg.expect("WebSocket frame") {
                let v: serde_json::Value = serde_json::from_str(&t).expect("one JSON object per frame");
                let terminal = bench_shared::event::is_terminal_type(v["type"].as_str().unwrap_or(""));
                events.push(v);
                if terminal {
                    return;
                }
            }
        }
        panic!("stream ended before the terminal event");
    };
    tokio::time::timeout(std::time::Duration::from_secs(900), read).await.expect("sweep finished in time");
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_job_over_http_streams_events_and_writes_csvs_in_the_results_dir() {
    let results = temp_results_dir();
    let mut config = openai_config(&local_engine_url());
    config.results_dir = results.to_path_buf();
    let agent = TestAgent::spawn(config).await;
    let results_dir = agent.state.config.results_dir.clone();
    let job_id = agent
        .post_job_ok(json!({
            "test_type": "llm_sweep", "models": [LOCAL_MODEL], "ctx": 128, "sweep_count": 1, "parallel": [1, 2],
            "runs": 1, "warmup": 3, "out_tokens": 8
        }))
        .await;
    let events = follow_long(&agent, &job_id).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "sweep_done", "{last}");

    let started = of_type(&events, "sweep_started");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0]["payload"]["cells_total"], 2);
    assert_eq!(started[0]["payload"]["ctx_points"], json!([128]));
    let progress = of_type(&events, "sweep_progress");
    let states: Vec<&str> = progress.iter().map(|p| p["payload"]["state"].as_str().unwrap()).collect();
    for s in ["warming_up", "calibrating", "running", "done"] {
        assert!(states.contains(&s), "state {s} missing from {states:?}");
    }
    let final_par2 = progress.iter().rev().find(|p| p["payload"]["par"] == 2).unwrap();
    assert_eq!(final_par2["payload"]["requests_done"], 2);
    assert_eq!(final_par2["payload"]["requests_total"], 2);
    assert_eq!(final_par2["payload"]["warmup_done"], 3);
    assert!(final_par2["payload"]["stream_tok_s"].as_f64().unwrap() > 0.0);

    // One sweep_row per requests.csv row, keyed by the header.
    let rows = of_type(&events, "sweep_row");
    assert_eq!(rows.len(), 2 * 3 + 2 * (1 + 2));
    let keys: Vec<&str> = rows[0]["payload"].as_object().unwrap().keys().map(String::as_str).collect();
    let mut header: Vec<&str> = REQUESTS_CSV_HEADER.to_vec();
    header.sort();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, header);

    let dir = results_dir.join("sweeps").join(&job_id);
    let done = &last["payload"];
    assert_eq!(done["summary_rows"].as_array().unwrap().len(), 2);
    assert_eq!(done["requests_csv"], dir.join("requests.csv").display().to_string());
    let requests = Csv::read(&dir.join("requests.csv"));
    assert_eq!(requests.rows.len(), rows.len());
    assert_eq!(Csv::read(&dir.join("summary.csv")).rows.len(), 2);
    assert_eq!(Csv::read(&dir.join("load_times.csv")).rows.len(), 2);
    assert!(results_dir.join("calibration_cache.json").exists());
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_sweep_without_a_tty_prints_lines_and_writes_the_csvs() {
    let dir = temp_results_dir();
    let args = SweepArgs {
        base_url: local_engine_url(),
        engine: EngineArg::Openai,
        api_key: None,
        models: vec![LOCAL_MODEL.into()],
        parallel: vec![1],
        ctx: Some(128),
        target_prompt_tokens: None,
        sweep_count: 1,
        runs: 1,
        warmup: 3,
        out_tokens: 8,
        timeout_s: 120.0,
        chars_per_token_est: 4.0,
        calibration_tolerance: 0.05,
        temperature: 0.0,
        out_dir: dir.to_path_buf(),
        requests_csv: None,
        summary_csv: Some(dir.join("custom/summary.csv")),
        load_times_csv: None,
        calibration_cache: None,
        plain: true,
    };
    bench_agent::sweep::cli::run_terminal(args.clone()).await.expect("terminal sweep");
    assert_eq!(Csv::read(&dir.join("requests.csv")).rows.len(), 3 + 2);
    assert_eq!(Csv::read(&dir.join("custom/summary.csv")).rows.len(), 1);
    assert_eq!(Csv::read(&dir.join("load_times.csv")).rows.len(), 1);
    assert!(dir.join("calibration_cache.json").exists());

    // An unknown model is fatal before anything is measured, with the available models named.
    let err = bench_agent::sweep::cli::run_terminal(SweepArgs { models: vec!["no-such-model".into()], ..args })
        .await
        .unwrap_err();
    assert!(err.to_string().contains(LOCAL_MODEL), "{err}");
    assert_eq!(Csv::read(&dir.join("requests.csv")).rows.len(), 5, "nothing appended");
}
