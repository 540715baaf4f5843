//! `/health`, `/capabilities` and `POST /jobs` answer from the cached engine status: a slow model
//! listing never delays them, and probes never load the engine while a job generates.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bench_agent::AppState;
use bench_agent::engine::{Engine, EngineError, GenOutcome, GenRequest, TokenSink};
use bench_agent::testkit::fake_ollama::{FakeOllama, FakeScript};
use bench_shared::api::Health;
use bench_shared::engine::{EngineKind, ModelInfo};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{TestAgent, WAIT_LIMIT, mock_config, ollama_config};

/// An engine whose model listing takes `delay`.
#[derive(Debug)]
struct SlowListing {
    delay: Duration,
    listings: AtomicU64,
}

#[async_trait]
impl Engine for SlowListing {
    fn kind(&self) -> EngineKind {
        EngineKind::Openai
    }
    fn base_url(&self) -> &str {
        "http://slow-listing.invalid"
    }
    async fn version(&self) -> Result<Option<String>, EngineError> {
        Ok(Some("slow-1".into()))
    }
    async fn list_models(&self) -> Result<Vec<ModelInfo>, EngineError> {
        self.listings.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        Ok(vec![ModelInfo { name: "slow-model".into(), ..Default::default() }])
    }
    async fn generate(&self, _: &GenRequest, _: Option<&TokenSink>) -> Result<GenOutcome, EngineError> {
        Err(EngineError::Protocol("this test engine does not generate".into()))
    }
    async fn unload(&self, _: &str) -> Result<bool, EngineError> {
        Ok(false)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_at_once_while_the_model_listing_takes_5_s() {
    let engine = Arc::new(SlowListing { delay: Duration::from_secs(5), listings: AtomicU64::new(0) });
    let agent = TestAgent::spawn_state(AppState::with_engine(mock_config(), engine.clone())).await;

    // The background probe is listing (5 s); /health does not wait for it.
    let t0 = Instant::now();
    let health: Health = agent.get("/health").await.json().await.unwrap();
    let first = t0.elapsed();
    assert!(first < Duration::from_secs(1), "/health took {first:?} while the listing takes 5 s");
    assert!(!health.engine.reachable && health.engine.checked_age_s.is_none(), "{health:?}");
    assert_eq!(health.engine.error.as_deref(), Some("first engine check in progress"));

    // /capabilities waits for the first probe only (it needs the model list), then answers from it.
    let caps = agent.get_json("/capabilities").await;
    assert_eq!(caps["llm_models"], json!(["slow-model"]), "{caps}");
    assert_eq!(caps["engine"]["version"], "slow-1");
    let listings = engine.listings.load(Ordering::SeqCst);
    for _ in 0..5 {
        let t = Instant::now();
        let h: Health = agent.get("/health").await.json().await.unwrap();
        assert!(h.engine.reachable && h.engine.checked_age_s.is_some(), "{h:?}");
        agent.get_json("/capabilities").await;
        assert!(t.elapsed() < Duration::from_secs(1), "cached answers took {:?}", t.elapsed());
    }
    assert_eq!(engine.listings.load(Ordering::SeqCst), listings, "cached answers must not list models");

    // A job for a model the cache lacks refreshes once, bounded to 1 s: the listing (5 s) cannot
    // finish, so the cached list stands and the job is refused with the models the agent has.
    let t = Instant::now();
    let resp = agent.post_job(json!({"model": "just-pulled", "prompt": "hi"})).await;
    let took = t.elapsed();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("just-pulled"), "{body}");
    assert!(took < Duration::from_secs(3), "POST /jobs took {took:?}; its refresh is bounded to 1 s");
    assert_eq!(engine.listings.load(Ordering::SeqCst), listings + 1, "exactly one refresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_send_no_model_list_call_while_a_job_generates() {
    // 20 tokens at 10 tok/s: about 2 s of generation.
    let fake = FakeOllama::spawn(FakeScript { ttft_ms: 100.0, tokens_per_s: 10.0, ..Default::default() }).await;
    let mut state = AppState::new(ollama_config(&fake.base_url));
    // Background probes every 50 ms: without the busy rule, dozens would land during the job.
    state.engine_status_interval = Duration::from_millis(50);
    let agent = TestAgent::spawn_state(state).await;
    let tags = || fake.requests().iter().filter(|r| r.path == "/api/tags").count();

    let id = agent.post_job_ok(json!({"model": "llama3.2:1b", "prompt": "hi", "max_tokens": 20})).await;
    let mut ws = agent.ws_connect(&format!("job_id={id}")).await;
    let (mut at_first_token, mut probes_answered) = (None, 0);
    let read = async {
        while let Some(msg) = ws.next().await {
            let Message::Text(t) = msg.expect("frame") else { continue };
            let e: Value = serde_json::from_str(&t).unwrap();
            match e["type"].as_str().unwrap() {
                "llm_token" => {
                    at_first_token.get_or_insert_with(tags);
                    // Central polls like this during a race.
                    let h: Health = agent.get("/health").await.json().await.unwrap();
                    agent.get_json("/capabilities").await;
                    probes_answered += usize::from(h.busy);
                }
                "job_done" => return tags(),
                "job_error" | "job_cancelled" => panic!("job failed: {e}"),
                _ => {}
            }
        }
        panic!("stream ended before job_done")
    };
    let at_done = tokio::time::timeout(WAIT_LIMIT, read).await.expect("job finished in time");
    let at_first_token = at_first_token.expect("tokens streamed");
    assert!(probes_answered >= 3, "{probes_answered} probes answered while the job ran");
    assert_eq!(at_done, at_first_token, "model-list calls reached the engine while it generated");
    // Once idle, the background refresh resumes (so the cache does not go stale forever).
    let mut probes = agent.state.engine_status.watch_probes();
    let before = *probes.borrow_and_update();
    tokio::time::timeout(WAIT_LIMIT, probes.wait_for(|n| *n > before))
        .await
        .expect("background refresh resumed after the job")
        .unwrap();
}
