//! The OpenAI-compatible client against the real local llama.cpp engine (SmolLM2-135M).
//! Integration tests (not unit tests) so that `cargo test --lib` needs no running engine.

use std::time::Duration;

use bench_agent::engine::openai::OpenAiEngine;
use bench_agent::engine::{Engine, EngineError, GenRequest};
use bench_agent::testkit::{LOCAL_MODEL, local_engine_url};
use bench_shared::metrics::{TokenChannel, request_metrics};

fn req(model: &str, max_tokens: u32, stream: bool) -> GenRequest {
    GenRequest {
        model: model.into(),
        prompt: "Write one sentence about the sea.".into(),
        max_tokens,
        temperature: 0.0,
        num_ctx: 1024,
        seed: Some(1),
        stream,
        timeout: Duration::from_secs(120),
        send_at: None,
    }
}

#[tokio::test]
async fn real_engine_streams_text_with_usage_matching_the_chunks() {
    let engine = OpenAiEngine::new(&local_engine_url(), None);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let out = engine.generate(&req(LOCAL_MODEL, 24, true), Some(&tx)).await.unwrap();

    assert!(!out.text.trim().is_empty(), "real text: {:?}", out.text);
    let mut live = String::new();
    while let Ok(c) = rx.try_recv() {
        assert_eq!(c.channel, TokenChannel::Content);
        live.push_str(&c.text);
    }
    assert_eq!(live, out.text);

    // llama.cpp sends one token per chunk: usage, timings and the chunk count agree.
    let chunks = out.trace.chunks.len() as u64;
    assert_eq!(out.stats.completion_tokens, Some(chunks), "usage.completion_tokens vs content chunks");
    assert!((1..=24).contains(&chunks));
    assert!(out.stats.prompt_tokens.unwrap() > 5);
    // llama.cpp's rate excludes the first token (sampled at the end of prompt processing):
    // predicted_per_second = (predicted_n − 1) / predicted_ms, like our client-side decode rate.
    // So the engine's own count predicted_n agrees too.
    let predicted_n = out.stats.decode_tok_s.unwrap() * out.stats.eval_ms.unwrap() / 1000.0 + 1.0;
    assert_eq!(predicted_n.round() as u64, chunks, "timings.predicted_n");
    assert!(out.stats.done_reason.is_some());

    let m = request_metrics(&out.trace, &out.stats);
    let ttft = m.ttft_ms.unwrap();
    assert!(ttft > 0.0 && ttft < m.total_ms, "ttft {ttft} total {}", m.total_ms);
    assert_eq!(m.gen_tokens, chunks);
    eprintln!(
        "real engine: client ttft {ttft:.1} ms, decode {:?} tok/s, total {:.1} ms, {} tokens, prompt {:?}; \
         engine prompt_eval {:?} ms ({:?} tok/s), decode {:?} tok/s, eval {:?} ms, predicted_n {:?}",
        m.decode_tok_s,
        m.total_ms,
        m.gen_tokens,
        m.prompt_tokens,
        out.stats.prompt_eval_ms,
        out.stats.prefill_tok_s,
        out.stats.decode_tok_s,
        out.stats.eval_ms,
        out.stats.completion_tokens,
    );
}

#[tokio::test]
async fn real_engine_non_streamed_call_returns_usage() {
    // With or without /v1 in the base URL.
    let engine = OpenAiEngine::new(&format!("{}/v1/", local_engine_url()), None);
    let out = engine.generate(&req(LOCAL_MODEL, 8, false), None).await.unwrap();
    assert!(!out.text.is_empty());
    assert!(!out.trace.streamed);
    assert_eq!(out.trace.chunks.len(), 1);
    let n = out.stats.completion_tokens.unwrap();
    assert!((1..=8).contains(&n), "completion_tokens {n}");
    assert!(out.trace.end_offset_us > 0);
    assert_eq!(request_metrics(&out.trace, &out.stats).ttft_ms, None);
}

#[tokio::test]
async fn real_engine_unknown_model_lists_the_served_one() {
    let engine = OpenAiEngine::new(&local_engine_url(), None);
    let err = engine.generate(&req("llama9:70b", 4, true), None).await.unwrap_err();
    assert_eq!(err, EngineError::ModelNotFound { model: "llama9:70b".into(), available: vec![LOCAL_MODEL.into()] });
    assert!(err.to_string().contains(LOCAL_MODEL));
}

#[tokio::test]
async fn real_engine_models_version_and_no_unload() {
    let engine = OpenAiEngine::new(&local_engine_url(), None);
    let models = engine.list_models().await.unwrap();
    let m = models.iter().find(|m| m.name == LOCAL_MODEL).expect("the local model is listed");
    assert!(m.context_length.unwrap() >= 512, "{m:?}");
    assert_eq!(m.quantization.as_deref(), Some("Q4_1"));
    // The per-slot context (n_ctx / n_parallel), not the trained 8192.
    let serving = engine.loaded_context_length(LOCAL_MODEL).await.unwrap().unwrap();
    assert!((512..8192).contains(&serving), "serving context {serving}");
    assert!(engine.version().await.unwrap().is_some_and(|v| !v.is_empty()));
    assert!(!engine.unload(LOCAL_MODEL).await.unwrap());
}
