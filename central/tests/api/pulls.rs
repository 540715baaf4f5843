//! Fleet model management through central: which machine has which model, and a pull of a model
//! onto the machines that lack it, followed live. Three agents: one whose (fake) Ollama pulls the
//! model, one whose Ollama fails mid-way, one on the mock engine that cannot pull. The failures
//! say why and leave the successful pull going.

use std::collections::HashMap;

use bench_agent::testkit::fake_ollama::{FakeOllama, FakePull, FakeScript};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::support::*;

const MODEL: &str = "smollm2:135m";

fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array().unwrap().iter().find(|e| e[key] == value).unwrap_or_else(|| panic!("no {key}={value} in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_pull_reaches_the_machines_that_lack_the_model_and_failures_say_why() {
    let good = FakeOllama::spawn(FakeScript::default()).await;
    let failing = FakeOllama::spawn(FakeScript {
        pull: FakePull { fail_after_bytes: Some(200_000), ..FakePull::default() },
        ..FakeScript::default()
    })
    .await;
    let a = RealAgent::ollama("puller", &good.base_url).await;
    let b = RealAgent::ollama("failer", &failing.base_url).await;
    let c = RealAgent::mock("mocky", &["mock-llm"], 5.0, 400.0).await;
    let machines = vec![machine("puller", &a.base_url), machine("failer", &b.base_url), machine("mocky", &c.base_url)];
    let central = TestCentral::spawn(machines, temp_results_dir()).await;
    central.wait_online(&["puller", "failer", "mocky"]).await;

    let models = central.get_json("/api/models").await;
    let llama = find(&models["models"], "model", "llama3.2:1b");
    assert_eq!(llama["present_on"], json!(["puller", "failer"]));
    assert_eq!(llama["missing_on"], json!(["mocky"]));
    assert!(models["models"].as_array().unwrap().iter().all(|m| m["model"] != MODEL));
    assert_eq!(find(&models["machines"], "machine_id", "mocky")["can_pull"], false);
    assert_eq!(find(&models["machines"], "machine_id", "puller")["can_pull"], true);

    let (mut browser, _) = tokio_tungstenite::connect_async(format!("ws://{}/api/ws", central.addr)).await.unwrap();
    let resp =
        central.client.post(central.url("/api/models/pull")).json(&json!({"model": MODEL})).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let started: Value = resp.json().await.unwrap();
    assert_eq!(started["model"], MODEL);
    let pull_id = started["pull_id"].as_str().unwrap().to_owned();
    assert_eq!(find(&started["machines"], "machine_id", "puller")["state"], "running");
    assert_eq!(find(&started["machines"], "machine_id", "failer")["state"], "running");
    let mock = find(&started["machines"], "machine_id", "mocky");
    assert_eq!(mock["state"], "failed", "{mock}");
    assert!(mock["error"].as_str().unwrap().contains("engine kind mock cannot pull"), "{mock}");

    // Live: model_pull events until both real pulls ended.
    let mut last: HashMap<String, Value> = HashMap::new();
    let mut progress_seen = 0;
    let read = async {
        while let Some(Ok(msg)) = browser.next().await {
            let Message::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] != "model_pull" || v["pull_id"] != pull_id.as_str() {
                continue;
            }
            if v["state"] == "running" && v["completed_bytes"].as_u64().is_some_and(|c| c > 0) {
                progress_seen += 1;
            }
            last.insert(v["machine_id"].as_str().unwrap().to_owned(), v);
            let ended = |id: &str| last.get(id).is_some_and(|e| e["state"] == "done" || e["state"] == "failed");
            if ended("puller") && ended("failer") {
                return;
            }
        }
        panic!("browser socket ended early");
    };
    tokio::time::timeout(WAIT_LIMIT, read).await.expect("both pulls end in time");
    assert!(progress_seen >= 2, "progress relayed live ({progress_seen} events with bytes)");
    let done = &last["puller"];
    assert_eq!((done["state"].as_str(), done["total_bytes"].as_u64()), (Some("done"), Some(1_001_700)), "{done}");
    let failed = &last["failer"];
    assert_eq!(failed["state"], "failed");
    assert!(failed["error"].as_str().unwrap().contains("max retries exceeded"), "{failed}");

    // The model list follows: the puller has it now, the others still lack it.
    let models = central.get_json("/api/models").await;
    let smol = find(&models["models"], "model", MODEL);
    assert_eq!(smol["present_on"], json!(["puller"]));
    assert_eq!(smol["missing_on"], json!(["failer", "mocky"]));
    assert_eq!(models["pulls"].as_array().unwrap().iter().filter(|p| p["pull_id"] == pull_id.as_str()).count(), 3);

    // A race on the pulled model runs where it is, and says why the others are skipped.
    let run_id = central.start_run(generate_body(MODEL, 8)).await;
    let detail = central.wait_run_end(&run_id).await;
    let ms = &detail["metadata"]["machines"];
    assert_eq!(find(ms, "machine_id", "puller")["status"], "complete", "{detail}");
    assert_eq!(find(ms, "machine_id", "failer")["status"], "skipped");

    // Bad requests name the field.
    for (body, field) in
        [(json!({"model": "a b"}), "model"), (json!({"model": MODEL, "machine_ids": ["nope"]}), "machine_ids")]
    {
        let resp = central.client.post(central.url("/api/models/pull")).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["field"], field, "{err}");
    }
    // Asking again skips the machine that has it now.
    let again: Value = central
        .client
        .post(central.url("/api/models/pull"))
        .json(&json!({"model": MODEL, "machine_ids": ["puller"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["machines"], json!([]));
    assert_eq!(find(&again["skipped"], "machine_id", "puller")["reason"], "already has the model");
    central.stop().await;
}
