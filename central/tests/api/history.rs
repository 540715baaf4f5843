//! The stored history over the API: listing, pagination, delete, validation of ids and bodies.

use serde_json::json;

use super::fake_agent::FakeAgent;
use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_are_listed_newest_first_paginated_and_deletable() {
    let fake = FakeAgent::spawn("solo", &["mock-llm"]).await;
    let central = TestCentral::spawn(vec![machine("solo", &fake.base_url)], temp_results_dir()).await;
    central.wait_online(&["solo"]).await;
    let mut ids = Vec::new();
    for i in 0..2 {
        let id = central.start_run(generate_body("mock-llm", 8)).await;
        let job = fake.wait_jobs(i + 1).await.remove(i);
        if i == 0 {
            fake.started(&job.job_id);
            fake.done(&job.job_id, "", 5.0);
            central.wait_run_end(&id).await;
        } else {
            // Still running: cannot be deleted.
            let resp = central.client.delete(central.url(&format!("/api/runs/{id}"))).send().await.unwrap();
            assert_eq!(resp.status(), 409);
            let body: serde_json::Value = resp.json().await.unwrap();
            assert!(body["error"].as_str().unwrap().contains("still running"), "{body}");
            fake.started(&job.job_id);
            fake.done(&job.job_id, "", 5.0);
            central.wait_run_end(&id).await;
        }
        ids.push(id);
    }
    let page = central.get_json("/api/runs?limit=1&offset=0").await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["runs"].as_array().unwrap().len(), 1);
    let newest = if ids[0] > ids[1] { &ids[0] } else { &ids[1] };
    assert_eq!(page["runs"][0]["run_id"], newest.as_str());
    let page2 = central.get_json("/api/runs?limit=1&offset=1").await;
    assert_ne!(page2["runs"][0]["run_id"], page["runs"][0]["run_id"]);
    assert_eq!(page2["runs"][0]["status"], "complete");
    assert_eq!(page2["runs"][0]["prompt_preview"], "Race: count to ten.");

    let resp = central.client.delete(central.url(&format!("/api/runs/{}", ids[0]))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!central.run_file(&ids[0], "metadata.json").exists());
    assert_eq!(central.get(&format!("/api/runs/{}", ids[0])).await.status(), 404);
    assert_eq!(central.get_json("/api/runs").await["total"], 1);

    let bad = central.get("/api/runs?limit=lots").await;
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<serde_json::Value>().await.unwrap()["field"], "limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_ids_are_validated_and_traversal_is_rejected() {
    let central = TestCentral::spawn(vec![machine("nobody", "http://127.0.0.1:9")], temp_results_dir()).await;
    // A file outside the runs folder that a traversal would reach.
    std::fs::create_dir_all(&central.results_dir).unwrap();
    std::fs::write(central.results_dir.join("metadata.json"), "{}").unwrap();
    for path in [
        // (literal and %2E-encoded `..` segments are normalized away by the HTTP client itself)
        "/api/runs/..%2F..%2Fetc%2Fpasswd",
        "/api/runs/2026-11-23_143022_ab12cd%2F..%2F..",
        "/api/runs/2026-11-23_143022_AB12CD/export.csv",
        "/api/runs/not-a-run/export.json",
    ] {
        let resp = central.get(path).await;
        assert_eq!(resp.status(), 400, "{path}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["field"], "run_id", "{path}: {body}");
    }
    let resp = central.client.delete(central.url("/api/runs/..%2F..")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(central.results_dir.join("metadata.json").exists());
    assert_eq!(central.get("/api/runs/2026-11-23_143022_ab12cd").await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_run_bodies_are_400_naming_the_field() {
    let central = TestCentral::spawn(vec![machine("m1", "http://127.0.0.1:9")], temp_results_dir()).await;
    let cases = [
        (json!({"prompt": "p"}), "model"),
        (json!({"model": "m", "prompt": "p", "max_tokens": 0}), "max_tokens"),
        (json!({"model": "m", "prompt": "p", "temperature": 9}), "temperature"),
        (json!({"model": "m", "prompt": "p", "repeat": "x"}), "repeat"),
        (json!({"model": "m", "prompt": "p", "machine_ids": ["ghost"]}), "machine_ids"),
        (json!({"model": "m", "prompt": "p", "start_at": 1}), "start_at"),
        (json!({"model": "m", "prompt": "p", "modle": "typo"}), "modle"),
        (json!({"test_type": "image", "model": "m", "prompt": "p"}), "test_type"),
    ];
    for (body, field) in cases {
        let (status, resp) = central.post_run(body.clone()).await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert_eq!(resp["field"], field, "{body}: {resp}");
        assert!(resp["error"].as_str().unwrap().starts_with(field), "{resp}");
    }
    let resp = central
        .client
        .post(central.url("/api/runs"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["field"], "body");
    // The machine is offline: preflight skips it, 409 with the reason.
    let (status, resp) = central.post_run(generate_body("m", 4)).await;
    assert_eq!(status, 409, "{resp}");
    assert_eq!(resp["detail"]["machines"][0]["status"], "skipped");
    assert!(resp["detail"]["machines"][0]["reason"].as_str().unwrap().contains("offline"), "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_list_shows_labels_and_filters_by_model_machine_status_and_date() {
    let fake = FakeAgent::spawn("solo", &["mock-llm"]).await;
    let central = TestCentral::spawn(vec![machine("solo", &fake.base_url)], temp_results_dir()).await;
    central.wait_online(&["solo"]).await;
    let id = central.start_run(generate_body("mock-llm", 8)).await;
    let job = fake.wait_jobs(1).await.remove(0);
    fake.started(&job.job_id);
    fake.done(&job.job_id, "", 5.0);
    central.wait_run_end(&id).await;

    let all = central.get_json("/api/runs").await;
    assert_eq!(all["total"], 1);
    assert_eq!(all["runs"][0]["machine_labels"], json!([{"machine_id": "solo", "label": "solo label"}]));

    let total = |q: &'static str| {
        let central = &central;
        async move { central.get_json(&format!("/api/runs?{q}")).await["total"].as_u64().unwrap() }
    };
    for (q, want) in [
        ("model=MOCK", 1),
        ("model=other-model", 0),
        ("machine=solo", 1),
        ("machine=Solo%20Label", 1),
        ("machine=elsewhere", 0),
        ("status=complete", 1),
        ("status=failed", 0),
        ("since=2000-01-01", 1),
        ("since=2999-01-01T00:00Z", 0),
        ("engine_version=no-such-version", 0),
        ("model=mock&machine=solo&status=complete&since=2000-01-01", 1),
    ] {
        assert_eq!(total(q).await, want, "{q}");
    }
    for (q, field) in [("status=done", "status"), ("since=yesterday", "since")] {
        let resp = central.get(&format!("/api/runs?{q}")).await;
        assert_eq!(resp.status(), 400, "{q}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["field"], field, "{body}");
    }
}
