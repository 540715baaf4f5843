//! Knowing the machine, seen from central: `runtime_metrics` events stored with the run, the
//! fingerprint in `metadata.json`, model fit in `/api/machines`, Prometheus `/metrics`.

use bench_agent::engine::mock::MockSettings;
use bench_agent::engine::{EngineSettings, Fallback};
use bench_agent::testkit::prometheus::parse_exposition;
use bench_shared::engine::EngineKind;
use tokio::sync::oneshot;

use super::support::*;

/// A mock agent sampling every 0.25 s, generating at 20 tok/s (a 40-token job runs ~2 s).
async fn sampling_agent(machine_id: &str) -> (String, oneshot::Sender<()>, ResultsDir) {
    let engine = EngineSettings {
        kind: EngineKind::Mock,
        base_url: String::new(),
        api_key: None,
        fallback: Fallback::None,
        request_timeout_s: 60.0,
        mock: MockSettings { ttft_ms: 20.0, tokens_per_s: 20.0, models: vec!["mock-llm".into()] },
        ..bench_agent::engine::EngineSettings::defaults(bench_shared::engine::EngineKind::Mock)
    };
    let mut config = bench_agent::AgentConfig::new(machine_id, engine);
    let results = temp_results_dir();
    config.results_dir = results.to_path_buf();
    config.runtime_sampler.interval_s = 0.25;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(bench_agent::serve(listener, bench_agent::AppState::new(config), async move {
        let _ = rx.await;
    }));
    (format!("http://{addr}"), tx, results)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_metrics_land_in_the_stored_run_and_metrics_move() {
    let (url, _stop, _results) = sampling_agent("box").await;
    let central = TestCentral::spawn(vec![machine("box", &url)], temp_results_dir()).await;
    central.wait_online(&["box"]).await;
    let scrape = |c: &TestCentral| {
        let url = c.url("/metrics");
        async move {
            let resp = http_client().get(url).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            parse_exposition(&resp.text().await.unwrap())
        }
    };
    let before = scrape(&central).await;
    assert_eq!(before["bench_central_machines{state=\"online\"}"], 1.0, "{before:?}");
    assert_eq!(before.get("bench_central_runs{status=\"complete\"}"), None);

    let run_id = central.start_run(generate_body("mock-llm", 40)).await;
    central.wait_run_end(&run_id).await;
    let events = central.events(&run_id).await;
    let samples = of(&events, "box", "runtime_metrics");
    assert!(!samples.is_empty(), "runtime_metrics events are stored with the run");
    for s in &samples {
        assert!(s["payload"]["system_mem_total_bytes"].as_u64().unwrap() > 0, "{s}");
        assert_eq!(s["run_id"], run_id.as_str());
    }
    assert_contiguous(&events, "box");
    let done_at = events.iter().position(|e| e["type"] == "job_done").unwrap();
    assert!(events.iter().rposition(|e| e["type"] == "runtime_metrics").unwrap() < done_at, "none after job_done");

    let meta = central.read_json(&run_id, "metadata.json");
    let rec = &meta["machines"][0];
    assert!(rec["hardware"]["kernel"].is_string() && rec["hardware"]["arch"].is_string(), "{rec}");
    assert!(rec["capabilities"]["total_system_ram_bytes"].as_u64().unwrap() > 0, "{rec}");

    let after = scrape(&central).await;
    assert_eq!(after["bench_central_runs{status=\"complete\"}"], 1.0, "{after:?}");
    assert!(after["bench_central_relayed_messages_total{type=\"runtime_metrics\"}"] >= samples.len() as f64);
    assert!(after["bench_central_relayed_messages_total{type=\"job_done\"}"] >= 1.0);
    assert_eq!(after["bench_central_browser_clients"], 0.0);
    central.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn machines_show_model_fit_from_the_engine_size_only() {
    let agents = [RealAgent::local_engine("real").await, RealAgent::mock("mock", &["mock-llm"], 5.0, 500.0).await];
    let central = TestCentral::spawn(
        vec![machine("real", &agents[0].base_url), machine("mock", &agents[1].base_url)],
        temp_results_dir(),
    )
    .await;
    central.wait_online(&["real", "mock"]).await;
    let machines = central.get_json("/api/machines?num_ctx=1024").await;
    let by_id = |id: &str| machines.as_array().unwrap().iter().find(|m| m["machine_id"] == id).unwrap().clone();
    let real = by_id("real");
    let fit = &real["model_fit"][0];
    assert_eq!(fit["model"], bench_agent::testkit::LOCAL_MODEL);
    assert_eq!((fit["model_fit"].as_str(), fit["memory"].as_str()), (Some("good"), Some("ram")), "{fit}");
    assert_eq!(fit["num_ctx"], 1024);
    assert!(fit["weights_bytes"].as_u64().unwrap() > 0 && fit["kv_cache_bytes"].is_null(), "{fit}");
    assert!(fit["reason"].as_str().unwrap().contains("KV cache not estimated"), "{fit}");
    // The mock engine reports no size: no verdict, never a guess from the name.
    let mock = by_id("mock");
    let mfit = &mock["model_fit"][0];
    assert!(mfit["model_fit"].is_null() && mfit["reason"].as_str().unwrap().contains("size"), "{mfit}");
    let resp = http_client().get(central.url("/api/machines?num_ctx=0")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let err: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(err["field"], "num_ctx", "{err}");
    central.stop().await;
}
