//! The WebSocket stream: slow clients are cut off with a reason, auth applies to every route
//! but `/health`.

use bench_agent::AppState;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{TestAgent, WAIT_LIMIT, mock_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_disconnected_with_a_reason_and_the_job_is_unaffected() {
    // One llm_token per mock token (~200 bytes each): far more than the kernel's socket buffers
    // hold, so a client that does not read makes the agent's per-client buffer (4 events) overflow.
    let tokens = 150_000;
    let mut cfg = mock_config();
    cfg.stream_flush_chars = 1;
    cfg.engine.mock.ttft_ms = 0.0;
    cfg.engine.mock.tokens_per_s = 1e7;
    let state = AppState::new(cfg).with_ws_limits(tokens + 1000, 4);
    let agent = TestAgent::spawn_state(state).await;
    let mut hub = agent.state.hub.subscribe();
    let mut slow = agent.ws_connect("").await;

    let mut slow_disconnects = agent.state.ws_slow_disconnects.subscribe();

    let id = agent.post_job_ok(json!({"model": "mock-llm", "prompt": "flood", "max_tokens": tokens})).await;
    // Without reading the socket, wait until the agent has given up on this client.
    tokio::time::timeout(WAIT_LIMIT, slow_disconnects.wait_for(|n| *n >= 1)).await.unwrap().unwrap();
    let (frames, close) = tokio::time::timeout(WAIT_LIMIT, async {
        let mut frames = 0u64;
        while let Some(m) = slow.next().await {
            match m {
                Ok(Message::Text(_)) => frames += 1,
                Ok(Message::Close(frame)) => return (frames, frame),
                Ok(_) => {}
                Err(e) => panic!("connection dropped without a Close frame after {frames} frames: {e}"),
            }
        }
        panic!("stream ended without a Close frame after {frames} frames");
    })
    .await
    .unwrap();
    let close = close.expect("a close frame with a reason");
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.reason.contains("too slow"), "{}", close.reason);
    // The benchmark itself went on to the end.
    let last = tokio::time::timeout(WAIT_LIMIT, async {
        loop {
            let m = hub.recv().await.expect("the hub holds every event of this job");
            if &*m.job_id == id.as_str() && m.terminal {
                return m;
            }
        }
    })
    .await
    .unwrap();
    assert!(last.json.contains("\"job_done\""), "the benchmark finished normally");
    assert!(frames < last.seq, "the slow client got {frames} of {} events before being cut off", last.seq);
    assert_eq!(agent.get_json("/health").await["ws_slow_disconnects"], 1);
    // Nothing was lost for clients that catch up through the replay log.
    assert_eq!(agent.events(&id).await.len() as u64, last.seq);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_token_protects_everything_but_health() {
    let mut cfg = mock_config();
    cfg.auth_token = Some("s3cret".into());
    let agent = TestAgent::spawn(cfg).await;
    let anon = crate::support::http_client();
    let health = anon.get(agent.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    for path in ["/capabilities", "/jobs", "/jobs/x", "/jobs/x/events"] {
        let resp = anon.get(agent.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "{path}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
        let wrong = anon.get(agent.url(path)).bearer_auth("guess").send().await.unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
    }
    let post = anon.post(agent.url("/jobs")).json(&json!({"model": "mock-llm", "prompt": "x"})).send().await.unwrap();
    assert_eq!(post.status(), 401);

    let ws_url = format!("ws://{}/ws", agent.addr);
    assert!(tokio_tungstenite::connect_async(ws_url.as_str()).await.is_err(), "WebSocket without token refused");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{ws_url}?token=s3cret").into_client_request().unwrap())
        .await
        .expect("?token= accepted on /ws");

    // The harness sends the bearer token: the whole flow works.
    let id = agent.post_job_ok(json!({"model": "mock-llm", "prompt": "x", "max_tokens": 2})).await;
    let events = agent.wait_for_terminal(&id).await;
    assert_eq!(events.last().unwrap()["type"], "job_done");
    let first = tokio::time::timeout(WAIT_LIMIT, ws.next()).await.unwrap().unwrap().unwrap();
    assert!(first.to_text().unwrap().contains(&id));
    agent.shutdown().await;
}
