//! The verdict through central over real in-process agents on scripted engines: the fake Ollama
//! writes tokens on a schedule, so a machine's decode rate is what the test says it is.

use bench_agent::testkit::fake_ollama::{FakeOllama, FakeScript};
use serde_json::{Value, json};

use super::support::*;

const MODEL: &str = "llama3.2:1b";

fn script(tokens_per_s: f64) -> FakeScript {
    FakeScript {
        ttft_ms: 20.0,
        tokens_per_s,
        tokens: (0..20).map(|i| format!(" w{i}")).collect(),
        ..Default::default()
    }
}

/// Fakes and agents for `(machine id, script)`, and a central over them.
async fn race_setup(machines: Vec<(&str, FakeScript)>) -> (Vec<FakeOllama>, Vec<RealAgent>, TestCentral) {
    let mut fakes = Vec::new();
    let mut agents = Vec::new();
    let mut configs = Vec::new();
    for (id, s) in machines {
        let fake = FakeOllama::spawn(s).await;
        let agent = RealAgent::ollama(id, &fake.base_url).await;
        configs.push(machine(id, &agent.base_url));
        fakes.push(fake);
        agents.push(agent);
    }
    let ids: Vec<String> = configs.iter().map(|c| c.machine_id.clone()).collect();
    let central = TestCentral::spawn(configs, temp_results_dir()).await;
    central.wait_online(&ids.iter().map(String::as_str).collect::<Vec<_>>()).await;
    (fakes, agents, central)
}

fn body(repeat: u32, extra: Value) -> Value {
    let mut b = json!({"model": MODEL, "prompt": "Race: count to ten.", "max_tokens": 64, "temperature": 0.0,
                       "repeat": repeat});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

async fn run(central: &TestCentral, body: Value) -> (Value, Vec<Value>) {
    let run_id = central.start_run(body).await;
    let detail = central.wait_run_end(&run_id).await;
    assert_eq!(detail["metadata"]["status"], "complete", "{detail}");
    let summary = central.read_json(&run_id, "summary.json");
    (summary, central.events(&run_id).await)
}

fn kinds(c: &Value) -> Vec<&str> {
    c["fairness"]["warnings"].as_array().unwrap().iter().map(|w| w["kind"].as_str().unwrap()).collect()
}

/// Warnings other than `shared_host` (every in-process agent shares this host).
fn blocking_kinds(c: &Value) -> Vec<&str> {
    kinds(c).into_iter().filter(|k| *k != "shared_host").collect()
}

fn rank_verdict(c: &Value) -> &Value {
    c["verdicts"].as_array().unwrap().iter().find(|v| v["metric"] == c["rank_by"]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_percent_faster_decode_over_five_repeats_is_decided() {
    let (_f, _a, central) = race_setup(vec![("fast", script(22.0)), ("slow", script(20.0))]).await;
    let (summary, _) = run(&central, body(5, json!({}))).await;
    let c = &summary["comparison"];
    assert_eq!(summary["rank_by"], "decode_tok_s");
    assert_eq!(c["winner"]["status"], "decided", "{c:#}");
    assert_eq!(c["winner"]["machine_id"], "fast");
    assert_eq!(summary["winner"], "fast", "the legacy winner is the comparison's");
    let v = rank_verdict(c);
    assert_eq!((v["better"].as_str(), v["worse"].as_str()), (Some("fast"), Some("slow")));
    assert_eq!(v["n"], json!([5, 5]));
    assert_eq!(v["significant"], true);
    let [lo, hi] = [v["ci95_pct"][0].as_f64().unwrap(), v["ci95_pct"][1].as_f64().unwrap()];
    // The scripted difference is 10%: the interval holds it (half a point of slack for timers).
    assert!(lo - 0.5 <= 10.0 && 10.0 <= hi + 0.5, "CI {lo}–{hi} misses 10%: {v}");
    // The ratio 22/20 = 1.1, its interval on the log scale: both bounds above 0, around 1.1.
    let [rlo, rhi] = [v["ratio_ci"][0].as_f64().unwrap(), v["ratio_ci"][1].as_f64().unwrap()];
    assert!(rlo > 0.0 && rlo - 0.005 <= 1.1 && 1.1 <= rhi + 0.005, "ratio CI {rlo}–{rhi}: {v}");
    assert!((v["ratio"].as_f64().unwrap() - 1.1).abs() < 0.01, "{v}");
    let text = v["text"].as_str().unwrap();
    assert!(text.starts_with("fast label decodes 1.1") && text.contains("× as fast as slow label (95% CI "), "{v}");
    assert!(blocking_kinds(c).is_empty(), "{c:#}");
    assert_eq!(c["fairness"]["fair"], true);
    let fast = summary["machines"].as_array().unwrap().iter().find(|m| m["machine_id"] == "fast").unwrap();
    assert_eq!(fast["rank"], 1);
    // The same prompt, busted per repeat, reached both engines.
    assert_eq!(c["outputs"]["compared"], true);
    assert_eq!(c["outputs"]["identical_groups"].as_array().unwrap().len(), 1, "{c:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identical_machines_tie_and_one_repeat_is_undecided() {
    let (fakes, _a, central) = race_setup(vec![("a", script(20.0)), ("b", script(20.0))]).await;
    let (summary, _) = run(&central, body(5, json!({}))).await;
    let c = &summary["comparison"];
    assert_eq!(c["winner"]["status"], "tie", "{c:#}");
    assert!(c["winner"]["machine_id"].is_null() && summary["winner"].is_null());
    assert_eq!(rank_verdict(c)["significant"], false);
    // Every request carried the run's nonce, the same on both machines, fresh per repeat.
    let prompts = |f: &FakeOllama| -> Vec<String> {
        f.bodies("/api/chat").iter().map(|b| b["messages"][0]["content"].as_str().unwrap().to_owned()).collect()
    };
    let (pa, pb) = (prompts(&fakes[0]), prompts(&fakes[1]));
    assert_eq!(pa, pb);
    assert_eq!(pa.len(), 5);
    assert!(pa.iter().all(|p| p.starts_with('[') && p.ends_with("] Race: count to ten.")), "{pa:?}");
    let distinct: std::collections::BTreeSet<&String> = pa.iter().collect();
    assert_eq!(distinct.len(), 5, "a fresh tag per repeat: {pa:?}");

    let (summary, _) = run(&central, body(1, json!({}))).await;
    let w = &summary["comparison"]["winner"];
    assert_eq!(w["status"], "undecided", "{w}");
    assert!(w["reason"].as_str().unwrap().contains("run ≥ 3"), "{w}");
    assert!(summary["winner"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rank_by_is_per_run_and_validated() {
    // "eager" answers first but decodes slower; "steady" answers late but decodes faster.
    let eager = FakeScript { ttft_ms: 20.0, ..script(20.0) };
    let steady = FakeScript { ttft_ms: 300.0, ..script(22.0) };
    let (_f, _a, central) = race_setup(vec![("eager", eager), ("steady", steady)]).await;
    let (status, err) = central.post_run(body(3, json!({"rank_by": "speed"}))).await;
    assert_eq!(status, 400, "{err}");
    assert!(err.to_string().contains("rank_by") && err.to_string().contains("ttft_ms"), "{err}");
    let (status, err) = central.post_run(body(3, json!({"min_effect_pct": -1}))).await;
    assert_eq!(status, 400, "{err}");
    assert!(err.to_string().contains("min_effect_pct"), "{err}");
    let (summary, _) = run(&central, body(3, json!({"rank_by": "ttft_ms"}))).await;
    assert_eq!(summary["rank_by"], "ttft_ms");
    let c = &summary["comparison"];
    assert_eq!(c["rank_by"], "ttft_ms");
    assert_eq!(
        (c["winner"]["status"].as_str(), c["winner"]["machine_id"].as_str()),
        (Some("decided"), Some("eager")),
        "{c:#}"
    );
    let decode = c["verdicts"].as_array().unwrap().iter().find(|v| v["metric"] == "decode_tok_s").unwrap();
    assert_eq!(decode["better"], "steady", "the other metrics keep their own leader: {decode}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cold_race_starts_together_whatever_the_unload_time() {
    let quick = FakeScript { unload_ms: 0.0, ..script(20.0) };
    let sluggish = FakeScript { unload_ms: 400.0, ..script(20.0) };
    let (_f, _a, central) = race_setup(vec![("quick", quick), ("sluggish", sluggish)]).await;
    let (summary, events) = run(&central, body(3, json!({"cold": true}))).await;
    let started: Vec<f64> = events
        .iter()
        .filter(|e| e["type"] == "job_started")
        .map(|e| e["payload"]["started_at_s"].as_f64().unwrap())
        .collect();
    assert_eq!(started.len(), 2);
    let skew_ms = (started[0] - started[1]).abs() * 1000.0;
    assert!(skew_ms < 100.0, "first requests {skew_ms:.0} ms apart with a 400 ms unload on one machine");
    let c = &summary["comparison"];
    // Both machines were cold: their first repeats are reported apart, and nobody was favoured.
    assert_eq!(c["cold"].as_array().unwrap().len(), 2, "{c:#}");
    assert!(!kinds(c).contains(&"cold_start") && !kinds(c).contains(&"start_lag"), "{c:#}");
    assert_eq!(rank_verdict(c)["n"], json!([2, 2]), "cold repeats are out of the warm statistics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_cold_machine_among_warm_ones_is_flagged_and_set_apart() {
    let cold = FakeScript { preloaded: false, load_ms: 300.0, ..script(20.0) };
    let (_f, _a, central) = race_setup(vec![("warm", script(20.0)), ("cold", cold)]).await;
    let (summary, _) = run(&central, body(4, json!({}))).await;
    let c = &summary["comparison"];
    assert_eq!(blocking_kinds(c), vec!["cold_start"], "{c:#}");
    let w = &c["fairness"]["warnings"][0];
    assert_eq!(w["machine_id"], "cold");
    assert_eq!(c["cold"].as_array().unwrap().len(), 1);
    assert_eq!(c["cold"][0]["machine_id"], "cold");
    let ttft = c["verdicts"].as_array().unwrap().iter().find(|v| v["metric"] == "ttft_ms").unwrap();
    let n = if ttft["better"] == "cold" { ttft["n"][0].clone() } else { ttft["n"][1].clone() };
    assert_eq!(n, 3, "3 warm repeats of 4: {ttft}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_machine_queued_behind_another_job_starts_late() {
    let (_f, agents, central) = race_setup(vec![("idle", script(20.0)), ("queued", script(20.0))]).await;
    // A job posted straight to one agent keeps it busy for ~2 s, past the race's shared start.
    let busy = json!({"model": MODEL, "prompt": "busy", "max_tokens": 40, "repeat": 1, "temperature": 0.0});
    let r = reqwest::Client::new().post(format!("{}/jobs", agents[1].base_url)).json(&busy).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let (summary, _) = run(&central, body(3, json!({}))).await;
    let c = &summary["comparison"];
    assert_eq!(blocking_kinds(c), vec!["start_lag"], "{c:#}");
    assert_eq!(
        c["fairness"]["warnings"].as_array().unwrap().iter().find(|w| w["kind"] == "start_lag").unwrap()["machine_id"],
        "queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mock_engine_against_a_real_one_is_unfair() {
    let fake = FakeOllama::spawn(script(20.0)).await;
    let real = RealAgent::ollama("real", &fake.base_url).await;
    let mock = RealAgent::mock("mock", &[MODEL], 20.0, 22.0).await;
    let central =
        TestCentral::spawn(vec![machine("real", &real.base_url), machine("mock", &mock.base_url)], temp_results_dir())
            .await;
    central.wait_online(&["real", "mock"]).await;
    let (summary, _) = run(&central, body(3, json!({}))).await;
    let c = &summary["comparison"];
    assert!(blocking_kinds(c).contains(&"mock_engine"), "{c:#}");
    let w = c["fairness"]["warnings"].as_array().unwrap().iter().find(|w| w["kind"] == "mock_engine").unwrap();
    assert_eq!(w["machine_id"], "mock");
    assert_eq!(c["winner"]["status"], "unfair", "{c:#}");
    assert_eq!(c["fairness"]["fair"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prompt_cache_on_the_real_engine_is_flagged_unless_busted() {
    let agent = RealAgent::local_engine("llama").await;
    let central = TestCentral::spawn(vec![machine("llama", &agent.base_url)], temp_results_dir()).await;
    central.wait_online(&["llama"]).await;
    let model = bench_agent::testkit::LOCAL_MODEL;
    // A prompt no earlier run sent, so only this run's own repeats can be in the cache.
    let prompt = format!("Cache check {}: count to ten.", uuid::Uuid::new_v4().simple());
    let body = |bust: bool| json!({"model": model, "prompt": prompt, "max_tokens": 4, "temperature": 0.0, "repeat": 3, "cache_bust": bust});
    let limit = std::time::Duration::from_secs(400);
    let run_id = central.start_run(body(false)).await;
    central.wait_run_end_within(&run_id, limit).await;
    let c = central.read_json(&run_id, "summary.json")["comparison"].clone();
    assert!(kinds(&c).contains(&"prompt_cache"), "{c:#}");
    let run_id = central.start_run(body(true)).await;
    central.wait_run_end_within(&run_id, limit).await;
    let c = central.read_json(&run_id, "summary.json")["comparison"].clone();
    assert!(!kinds(&c).contains(&"prompt_cache"), "{c:#}");
}
