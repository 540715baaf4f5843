//! The Ollama client against the protocol-faithful fake (no real Ollama can run here).

use std::time::Duration;

use bench_shared::metrics::{TokenChannel, request_metrics};

use super::ollama::OllamaEngine;
use super::{Engine, EngineError, GenRequest};
use crate::testkit::fake_ollama::{FakeOllama, FakeScript, WARM_LOAD_MS};

fn req(model: &str, max_tokens: u32, stream: bool) -> GenRequest {
    GenRequest {
        model: model.into(),
        prompt: "Why is the sky blue?".into(),
        max_tokens,
        temperature: 0.2,
        num_ctx: 8192,
        seed: Some(7),
        stream,
        timeout: Duration::from_secs(30),
        send_at: None,
    }
}

#[tokio::test]
async fn measured_ttft_and_rate_match_the_script_and_final_stats_are_parsed() {
    let fake = FakeOllama::spawn(FakeScript { ttft_ms: 200.0, tokens_per_s: 50.0, ..Default::default() }).await;
    let engine = OllamaEngine::new(&fake.base_url);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let out = engine.generate(&req("llama3.2:1b", 20, true), Some(&tx)).await.unwrap();

    let expected: String = (0..20).map(|i| format!(" word{i}")).collect();
    assert_eq!(out.text, expected);
    let mut live = String::new();
    while let Ok(c) = rx.try_recv() {
        live.push_str(&c.text);
    }
    assert_eq!(live, expected, "the sink saw every chunk");
    assert_eq!(out.trace.chunks.len(), 20);
    assert!(out.trace.streamed);

    let m = request_metrics(&out.trace, &out.stats);
    let ttft = m.ttft_ms.unwrap();
    // Never earlier than scripted; later only by scheduling delay on a loaded machine (well
    // before the 580 ms the whole answer takes: a TTFT taken at the end would fail).
    assert!((160.0..=450.0).contains(&ttft), "ttft {ttft} ms, scripted 200");
    let rate = m.decode_tok_s.unwrap();
    assert!((30.0..=57.5).contains(&rate), "decode {rate} tok/s, scripted 50");
    assert!(m.total_ms >= ttft + 19.0 * 20.0 * 0.8, "total {} ms", m.total_ms);

    assert_eq!(out.stats.completion_tokens, Some(20));
    assert_eq!(out.stats.prompt_tokens, Some(26));
    // Warm (the fake's models start loaded): load ~1 ms, the rest of the TTFT is prompt eval.
    assert_eq!(out.stats.load_ms, Some(WARM_LOAD_MS));
    assert_eq!(out.stats.prompt_eval_ms, Some(200.0 - WARM_LOAD_MS));
    assert_eq!(out.stats.eval_ms, Some(400.0));
    assert_eq!(out.stats.done_reason.as_deref(), Some("stop"));
    assert!((m.engine_decode_tok_s.unwrap() - 50.0).abs() < 1e-9);

    let body = &fake.bodies("/api/chat")[0];
    assert_eq!(body["messages"][0]["content"], "Why is the sky blue?");
    assert_eq!(body["stream"], true);
    let o = &body["options"];
    assert_eq!((o["num_ctx"].as_u64(), o["num_predict"].as_u64(), o["seed"].as_i64()), (Some(8192), Some(20), Some(7)));
    assert_eq!(o["temperature"].as_f64(), Some(0.2));
}

#[tokio::test]
async fn default_seed_is_sent_and_num_predict_caps_the_stream() {
    let fake = FakeOllama::spawn(FakeScript { ttft_ms: 5.0, tokens_per_s: 1000.0, ..Default::default() }).await;
    let engine = OllamaEngine::new(&fake.base_url);
    let out = engine.generate(&GenRequest { seed: None, ..req("llama3.2:1b", 5, true) }, None).await.unwrap();
    assert_eq!(out.trace.chunks.len(), 5);
    assert_eq!(out.stats.done_reason.as_deref(), Some("length"));
    assert_eq!(fake.bodies("/api/chat")[0]["options"]["seed"].as_i64(), Some(super::DEFAULT_SEED));
}

#[tokio::test]
async fn thinking_is_the_reasoning_channel() {
    let script = FakeScript {
        ttft_ms: 20.0,
        tokens_per_s: 200.0,
        thinking: vec!["Let".into(), " me".into(), " think".into()],
        tokens: vec!["Blue".into(), ".".into()],
        ..Default::default()
    };
    let fake = FakeOllama::spawn(script).await;
    let out = OllamaEngine::new(&fake.base_url).generate(&req("qwen3:0.6b", 100, true), None).await.unwrap();
    assert_eq!((out.reasoning_text.as_str(), out.text.as_str()), ("Let me think", "Blue."));
    let channels: Vec<_> = out.trace.chunks.iter().map(|c| c.channel).collect();
    assert_eq!(channels[..3], [TokenChannel::Reasoning; 3]);
    assert_eq!(channels[3..], [TokenChannel::Content; 2]);
    let m = request_metrics(&out.trace, &out.stats);
    assert!(m.ttfc_ms.unwrap() > m.ttft_ms.unwrap());
    assert_eq!(out.stats.completion_tokens, Some(5), "eval_count includes thinking tokens");
    assert_eq!(m.reasoning_tokens, Some(3), "the thinking lines are counted as reasoning tokens");
}

#[tokio::test]
async fn error_line_mid_stream_is_a_stream_error() {
    let script = FakeScript { ttft_ms: 5.0, tokens_per_s: 500.0, error_after: Some(3), ..Default::default() };
    let fake = FakeOllama::spawn(script.clone()).await;
    let err = OllamaEngine::new(&fake.base_url).generate(&req("llama3.2:1b", 20, true), None).await.unwrap_err();
    assert_eq!(err, EngineError::Stream(script.error_message));
}

#[tokio::test]
async fn unknown_model_names_the_available_ones() {
    let fake = FakeOllama::spawn(FakeScript::default()).await;
    let engine = OllamaEngine::new(&fake.base_url);
    let err = engine.generate(&req("llama9:70b", 5, true), None).await.unwrap_err();
    assert_eq!(
        err,
        EngineError::ModelNotFound {
            model: "llama9:70b".into(),
            available: vec!["llama3.2:1b".into(), "qwen3:0.6b".into()]
        }
    );
    assert!(matches!(engine.unload("llama9:70b").await, Err(EngineError::ModelNotFound { .. })));
}

#[tokio::test]
async fn a_404_that_is_not_about_the_model_stays_an_http_error() {
    use axum::routing::get;
    // Not an Ollama at all: no /api/tags either.
    let app = axum::Router::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let err = OllamaEngine::new(&format!("http://{addr}")).generate(&req("m", 5, true), None).await.unwrap_err();
    assert!(matches!(err, EngineError::Http { status: 404, .. }), "{err:?}");
    server.abort();

    // An Ollama without /api/chat that does list the model.
    let tags = serde_json::json!({"models": [{"name": "m", "size": 1, "digest": "d", "details": {}}]});
    let app = axum::Router::new().route("/api/tags", get(move || async move { axum::Json(tags) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let err = OllamaEngine::new(&format!("http://{addr}")).generate(&req("m", 5, true), None).await.unwrap_err();
    assert!(matches!(err, EngineError::Http { status: 404, .. }), "{err:?}");
    server.abort();
}

#[tokio::test]
async fn unreachable_engine() {
    // A port that was just free: nothing listens there any more.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let engine = OllamaEngine::new(&format!("http://{addr}"));
    let err = engine.generate(&req("llama3.2:1b", 5, true), None).await.unwrap_err();
    assert!(matches!(&err, EngineError::Unreachable { url, .. } if url.contains(&addr.to_string())), "{err:?}");
    assert!(matches!(engine.list_models().await, Err(EngineError::Unreachable { .. })));
}

#[tokio::test]
async fn request_timeout() {
    let fake = FakeOllama::spawn(FakeScript { ttft_ms: 5_000.0, ..Default::default() }).await;
    let engine = OllamaEngine::new(&fake.base_url);
    let r = GenRequest { timeout: Duration::from_millis(300), ..req("llama3.2:1b", 5, true) };
    let expected =
        EngineError::Timeout { bound: super::TimeoutBound::Request, limit: Duration::from_millis(300), lines: 0 };
    assert_eq!(engine.generate(&r, None).await.unwrap_err(), expected);
}

#[tokio::test]
async fn cold_unload_sends_keep_alive_zero_and_the_next_request_pays_the_load() {
    let script = FakeScript { ttft_ms: 20.0, tokens_per_s: 1000.0, load_ms: 150.0, ..Default::default() };
    let fake = FakeOllama::spawn(script).await;
    let engine = OllamaEngine::new(&fake.base_url);
    let warm = engine.generate(&req("llama3.2:1b", 2, true), None).await.unwrap();
    assert_eq!(warm.stats.load_ms, Some(WARM_LOAD_MS));
    assert_eq!(engine.loaded_context_length("llama3.2:1b").await.unwrap(), Some(8192));

    assert!(engine.unload("llama3.2:1b").await.unwrap());
    let body = &fake.bodies("/api/generate")[0];
    assert_eq!((body["model"].as_str(), body["keep_alive"].as_i64()), (Some("llama3.2:1b"), Some(0)));
    assert!(!fake.loaded().contains(&"llama3.2:1b".to_string()));
    assert_eq!(engine.loaded_context_length("llama3.2:1b").await.unwrap(), None);

    let cold = engine.generate(&req("llama3.2:1b", 2, true), None).await.unwrap();
    assert_eq!(cold.stats.load_ms, Some(150.0));
    let ttft = request_metrics(&cold.trace, &cold.stats).ttft_ms.unwrap();
    assert!((150.0..=220.0).contains(&ttft), "cold ttft {ttft} ms = 20 warm + 150 load");
}

#[tokio::test]
async fn models_with_details_and_version() {
    let fake = FakeOllama::spawn(FakeScript::default()).await;
    let engine = OllamaEngine::new(&format!("{}/", fake.base_url));
    let models = engine.list_models().await.unwrap();
    assert_eq!(models.len(), 2);
    let m = &models[0];
    assert_eq!(m.name, "llama3.2:1b");
    assert_eq!((m.family.as_deref(), m.parameter_size.as_deref()), (Some("llama"), Some("1.2B")));
    assert_eq!((m.quantization.as_deref(), m.context_length), (Some("Q4_K_M"), Some(131_072)));
    assert_eq!(m.size_bytes, Some(807_694_464));
    assert_eq!(m.digest.as_ref().map(String::len), Some(64));
    assert_eq!(engine.version().await.unwrap().as_deref(), Some("0.33.0"));
    // Context lengths are cached per model digest: a second listing asks /api/tags only.
    assert_eq!(engine.list_models().await.unwrap(), models);
    assert_eq!(fake.bodies("/api/show").len(), 2);
}

#[tokio::test]
async fn non_streamed_answer() {
    let fake = FakeOllama::spawn(FakeScript { ttft_ms: 20.0, tokens_per_s: 500.0, ..Default::default() }).await;
    let out = OllamaEngine::new(&fake.base_url).generate(&req("llama3.2:1b", 4, false), None).await.unwrap();
    assert_eq!(out.text, " word0 word1 word2 word3");
    assert!(!out.trace.streamed);
    assert_eq!(out.trace.chunks.len(), 1);
    assert_eq!(out.trace.chunks[0].offset_us, out.trace.end_offset_us);
    assert_eq!(out.stats.completion_tokens, Some(4));
    assert_eq!(fake.bodies("/api/chat")[0]["stream"], false);
    assert_eq!(request_metrics(&out.trace, &out.stats).ttft_ms, None);
}

#[tokio::test]
async fn stream_without_final_stats_is_a_protocol_error() {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/api/chat",
        post(|| async { "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"done\":false}\n" }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let err = OllamaEngine::new(&format!("http://{addr}")).generate(&req("m", 5, true), None).await.unwrap_err();
    assert!(matches!(&err, EngineError::Protocol(m) if m.contains("before the final stats")), "{err:?}");
    server.abort();
}

#[tokio::test]
async fn final_line_without_trailing_newline_still_counts() {
    use axum::routing::post;
    let body = "{\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"done\":false}\n\
                {\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"eval_count\":1,\"eval_duration\":1000000}";
    let app = axum::Router::new().route("/api/chat", post(move || async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let out = OllamaEngine::new(&format!("http://{addr}")).generate(&req("m", 5, true), None).await.unwrap();
    assert_eq!((out.text.as_str(), out.stats.completion_tokens, out.stats.eval_ms), ("Hi", Some(1), Some(1.0)));
    assert!(out.trace.end_offset_us >= out.trace.chunks[0].offset_us);
    server.abort();
}

/// A stream that stops mid-answer ends at the idle bound, naming it, with what arrived kept.
#[tokio::test]
async fn stalled_stream_ends_at_the_idle_bound_keeping_what_arrived() {
    let script = FakeScript { ttft_ms: 5.0, tokens_per_s: 500.0, stall_after: Some(3), ..Default::default() };
    let fake = FakeOllama::spawn(script).await;
    let timeouts = super::Timeouts { idle: Duration::from_millis(300), ..Default::default() };
    let engine = OllamaEngine::new(&fake.base_url).with_timeouts(timeouts);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let err = engine.generate(&req("llama3.2:1b", 20, true), Some(&tx)).await.unwrap_err();
    let EngineError::Timeout { bound, limit, lines } = &err else { panic!("{err:?}") };
    assert_eq!((*bound, *limit, *lines), (super::TimeoutBound::Idle, Duration::from_millis(300), 3));
    assert_eq!(err.kind(), bench_shared::event::ErrorKind::Timeout);
    assert!(err.to_string().contains("engine.idle_timeout_s = 0.3 s"), "{err}");
    drop(tx);
    let mut pieces = 0;
    while rx.recv().await.is_some() {
        pieces += 1;
    }
    assert_eq!(pieces, 3, "the three tokens that arrived reach the token sink");
}

/// An engine that accepts and never answers ends at the first-token bound.
#[tokio::test]
async fn hung_engine_ends_at_the_first_token_bound() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and hold every connection without a byte of answer.
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            conns.push(s);
        }
    });
    let timeouts = super::Timeouts { first_token: Duration::from_millis(300), ..Default::default() };
    let engine = OllamaEngine::new(&format!("http://{addr}")).with_timeouts(timeouts);
    let started = std::time::Instant::now();
    let err = engine.generate(&req("llama3.2:1b", 5, true), None).await.unwrap_err();
    let expected =
        EngineError::Timeout { bound: super::TimeoutBound::FirstToken, limit: Duration::from_millis(300), lines: 0 };
    assert_eq!(err, expected);
    assert!(err.to_string().contains("engine.first_token_timeout_s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60), "ended by the bound, not the request total");
    held.abort();
}
