//! Against the real local engine (llama.cpp serving SmolLM2-135M, OpenAI-compatible API).

use bench_agent::testkit::{LOCAL_MODEL, local_engine_url};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{TestAgent, WAIT_LIMIT, of_type, openai_config};

/// Token count of `text` by the engine's own tokenizer (llama.cpp `POST /tokenize`).
async fn engine_token_count(client: &reqwest::Client, url: &str, text: &str) -> usize {
    let resp: Value = client
        .post(format!("{url}/tokenize"))
        .json(&json!({"content": text}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["tokens"].as_array().expect("tokens").len()
}

/// Collects the live events of `job_id` from an unfiltered `/ws` until its terminal event.
async fn collect_live(ws: &mut crate::support::Ws, job_id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let read = async {
        while let Some(msg) = ws.next().await {
            if let Message::Text(t) = msg.unwrap() {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["job_id"] != job_id {
                    continue;
                }
                let terminal = bench_shared::event::is_terminal_type(v["type"].as_str().unwrap());
                out.push(v);
                if terminal {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(WAIT_LIMIT, read).await.expect("terminal event in time");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_engine_three_repeats_stream_real_tokens_with_engine_counts() {
    let url = local_engine_url();
    let agent = TestAgent::spawn(openai_config(&url)).await;
    let mut live = agent.ws_connect("").await;
    let max_tokens = 12;
    let id = agent
        .post_job_ok(json!({
            "test_type": "llm_generate", "model": LOCAL_MODEL, "prompt": "Write a long story about a dragon.",
            "max_tokens": max_tokens, "temperature": 0, "num_ctx": 1024, "repeat": 3, "seed": 7, "stream": true
        }))
        .await;
    let ws_events = collect_live(&mut live, &id).await;
    let ndjson = agent.events(&id).await;
    assert_eq!(ws_events, ndjson, "WebSocket and /jobs/{{id}}/events carry the same events");
    assert_eq!(agent.wait_for_terminal(&id).await, ndjson, "a late filtered WebSocket replays everything");

    let done = &ndjson.last().unwrap()["payload"];
    assert_eq!(ndjson.last().unwrap()["type"], "job_done", "{done}");
    assert_eq!(done["engine"], "openai");
    assert_eq!(done["model"], LOCAL_MODEL);
    let requests = of_type(&ndjson, "request_done");
    assert_eq!(requests.len(), 3);
    let client = crate::support::http_client();
    for (i, r) in requests.iter().enumerate() {
        let m = &r["payload"];
        assert_eq!((m["repeat_index"].as_u64(), m["warmup"].as_bool()), (Some(i as u64), Some(false)));
        assert_eq!(m["token_source"], "engine", "{m}");
        assert_eq!(m["done_reason"], "length", "{m}");
        assert_eq!(m["gen_tokens"], max_tokens, "usage.completion_tokens is the cap when the engine stops at it");
        let text: String = of_type(&ndjson, "llm_token")
            .iter()
            .filter(|t| t["payload"]["repeat_index"] == i as u64 && t["payload"]["warmup"] == false)
            .map(|t| t["payload"]["text"].as_str().unwrap())
            .collect();
        assert!(!text.trim().is_empty(), "real text was streamed");
        assert_eq!(
            engine_token_count(&client, &url, &text).await as u64,
            m["gen_tokens"].as_u64().unwrap(),
            "the streamed text is exactly the tokens the engine counted: {text:?}"
        );
        let (ttft, total) = (m["ttft_ms"].as_f64().unwrap(), m["total_ms"].as_f64().unwrap());
        assert!(ttft > 0.0 && ttft < total, "ttft {ttft} total {total}");
        assert!(m["engine_decode_tok_s"].as_f64().unwrap() > 0.0, "llama.cpp timings are reported");
        assert_eq!(m["prompt_tokens"], requests[0]["payload"]["prompt_tokens"]);
        if i == 0 {
            assert_eq!(done["output_text"].as_str().unwrap(), text);
        }
    }
    let agg = &done["aggregate"];
    assert_eq!(agg["requests"], 3);
    let ttfts: Vec<f64> = requests.iter().map(|r| r["payload"]["ttft_ms"].as_f64().unwrap()).collect();
    let mean = ttfts.iter().sum::<f64>() / 3.0;
    let close = |a: &Value, b: f64| (a.as_f64().unwrap() - b).abs() < 1e-6;
    assert!(close(&agg["ttft_ms"]["mean"], mean), "{agg}");
    assert!(close(&agg["ttft_ms"]["min"], ttfts.iter().copied().fold(f64::INFINITY, f64::min)));
    assert!(close(&agg["ttft_ms"]["max"], ttfts.iter().copied().fold(0.0, f64::max)));
    assert!(close(&done["ttft_ms"], mean));
    assert_eq!(done["gen_tokens"], max_tokens);
    assert_eq!(done["token_source"], "engine");
    let totals: Vec<f64> = requests.iter().map(|r| r["payload"]["total_ms"].as_f64().unwrap()).collect();
    assert!(close(&agg["total_ms"]["mean"], totals.iter().sum::<f64>() / 3.0));

    let job = agent.get_json(&format!("/jobs/{id}")).await;
    assert_eq!(job["status"], "done");
    assert_eq!(job["requests"].as_array().unwrap().len(), 3);
    if std::env::var_os("BENCH_PRINT_JOB_DONE").is_some() {
        println!("{}", serde_json::to_string_pretty(done).unwrap());
    }
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_model_on_the_real_engine_is_a_404_naming_the_available_ones() {
    let agent = TestAgent::spawn(openai_config(&local_engine_url())).await;
    let resp = agent.post_job(json!({"model": "llama-9000:70b", "prompt": "hi"})).await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["field"], "model");
    assert!(body["error"].as_str().unwrap().contains(LOCAL_MODEL), "{body}");
    assert_eq!(body["available"], json!([LOCAL_MODEL]));
    let caps = agent.get_json("/capabilities").await;
    assert_eq!(caps["engine"]["kind"], "openai");
    assert_eq!(caps["engine"]["reachable"], true);
    assert_eq!(caps["llm_models"], json!([LOCAL_MODEL]));
    // No image or speech server configured: only what this machine can run now.
    assert_eq!(caps["tests"], json!(["llm_generate", "llm_sweep", "llm_load", "llm_capacity", "compute"]));
    assert!(caps["hardware"]["cpu_logical_cores"].as_u64().unwrap() >= 1);
    let health = agent.get_json("/health").await;
    assert_eq!((health["ok"].as_bool(), health["engine"]["reachable"].as_bool()), (Some(true), Some(true)));
    agent.shutdown().await;
}
