//! Bad input: every refusal is a 4xx JSON error naming the field, and the agent keeps serving.

use serde_json::{Value, json};

use crate::support::{TestAgent, mock_config};

fn base() -> Value {
    json!({"test_type": "llm_generate", "model": "mock-llm", "prompt": "hi", "max_tokens": 4})
}

fn with(key: &str, value: Value) -> Value {
    let mut b = base();
    b[key] = value;
    b
}

fn without(key: &str) -> Value {
    let mut b = base();
    b.as_object_mut().unwrap().remove(key);
    b
}

async fn refused(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    assert!(ct.starts_with("application/json"), "error bodies are JSON, got {ct:?}");
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_field_is_a_400_naming_it_and_the_agent_keeps_serving() {
    let agent = TestAgent::spawn(mock_config()).await;
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let cases = [
        ("model", without("model")),
        ("max_tokens", with("max_tokens", json!(0))),
        ("max_tokens", with("max_tokens", json!(1_000_001))),
        ("temperature", with("temperature", json!(-0.5))),
        ("prompt", with("prompt", json!("x".repeat(10 * 1024 * 1024)))),
        ("test_type", with("test_type", json!("image_generation"))),
        ("start_at", with("start_at", json!("tomorrow"))),
        ("start_at", with("start_at", json!(now_ms + 3_600_000))),
        ("repeat", with("repeat", json!(0))),
        ("mdoel", with("mdoel", json!("typo"))),
        ("body", json!(["not", "an", "object"])),
    ];
    for (field, body) in cases {
        let (status, err) = refused(agent.post_job(body).await).await;
        assert_eq!(status, 400, "{field}: {err}");
        assert_eq!(err["field"], field, "{err}");
        assert!(err["error"].as_str().unwrap().contains(field), "the message names {field}: {err}");
    }
    let (status, err) = refused(agent.post_job(with("max_tokens", json!(1_000_001))).await).await;
    assert_eq!(status, 400);
    assert!(err["detail"].as_str().unwrap().contains("from 1 to 1000000"), "the accepted range is said: {err}");

    for raw in ["{\"model\": ", "not json at all", ""] {
        let (status, err) = refused(agent.post_raw(raw).await).await;
        assert_eq!(status, 400, "{raw:?}: {err}");
        assert_eq!(err["field"], "body", "{err}");
    }
    // A body over the limit is refused on its declared length, before it is read.
    let (status, err) = bench_agent::testkit::raw_http::post_declared_only(
        agent.addr,
        "/jobs",
        &[],
        bench_agent::api::extract::BODY_LIMIT_BYTES + 1024 * 1024,
    )
    .await;
    assert_eq!(status, 413, "{err}");
    assert!(err["error"].as_str().unwrap().contains("limit"), "{err}");

    let (status, err) = refused(agent.post_job(with("model", json!("no-such-model"))).await).await;
    assert_eq!(status, 404);
    assert_eq!(err["available"], json!(["mock-llm"]));

    let (status, _) = refused(agent.get("/jobs/does-not-exist").await).await;
    assert_eq!(status, 404);
    let (status, err) = refused(agent.get("/no/such/route").await).await;
    assert_eq!(status, 404, "{err}");
    let (status, err) = refused(agent.get("/jobs/x/events?after_seq=minus-one").await).await;
    assert_eq!((status, err["field"].as_str()), (400, Some("after_seq")));

    let health = agent.get_json("/health").await;
    assert_eq!(health["ok"], true);
    assert!(agent.get_json("/jobs").await.as_array().unwrap().is_empty(), "no refused job was queued");
    // And it still runs jobs.
    let id = agent.post_job_ok(base()).await;
    assert_eq!(agent.wait_for_terminal(&id).await.last().unwrap()["type"], "job_done");
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_answer_ends_with_a_newline() {
    let agent = TestAgent::spawn(mock_config()).await;
    let job_id = agent.post_job_ok(base()).await;
    agent.wait_for_terminal(&job_id).await;
    let bad = agent.post_job(with("max_tokens", json!(-1))).await;
    let mut answers = vec![("POST /jobs (bad)".to_owned(), bad)];
    for path in ["/health", "/capabilities", "/jobs", &format!("/jobs/{job_id}"), "/no-such-route"] {
        answers.push((format!("GET {path}"), agent.get(path).await));
    }
    // Refusals made before routing (the guard layer) end with a newline too.
    let plain = agent.client.post(agent.url("/jobs")).header("content-type", "text/plain").body("{}").send().await;
    answers.push(("POST /jobs text/plain (415)".to_owned(), plain.unwrap()));
    answers.push(("PUT /jobs (405)".to_owned(), agent.client.put(agent.url("/jobs")).send().await.unwrap()));
    for (what, resp) in answers {
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ctype.starts_with("application/json"), "{what}: {ctype}");
        let text = resp.text().await.unwrap();
        assert!(text.ends_with("}\n") || text.ends_with("]\n"), "{what}: {text:?}");
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
    }
}
