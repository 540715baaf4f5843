//! The OpenAI-compatible client on the failure shapes llama.cpp cannot be made to produce on
//! demand, served by a tiny in-test server. The same client against the real local engine is
//! tested in the integration target (`tests/api/openai_engine.rs`): unit tests need no engine.

use std::time::Duration;

use bench_shared::metrics::TokenChannel;

use super::openai::OpenAiEngine;
use super::{Engine, EngineError, GenRequest};

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

/// Serves fixed SSE bodies for chat completions and a one-model `/v1/models`; records the
/// `Authorization` headers it saw.
async fn scripted(
    sse: &'static str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    use axum::http::HeaderMap;
    use axum::routing::{get, post};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let auth = seen.clone();
    let app = axum::Router::new()
        .route("/v1/models", get(|| async { axum::Json(serde_json::json!({"object": "list", "data": [{"id": "m"}]})) }))
        .route(
            "/v1/chat/completions",
            post(move |headers: HeaderMap| async move {
                let value = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
                auth.lock().unwrap().push(value.to_owned());
                ([("content-type", "text/event-stream")], sse)
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen, task)
}

#[tokio::test]
async fn error_payload_mid_stream_and_missing_done() {
    let (url, seen, task) = scripted(
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\
         data: {\"error\":{\"code\":500,\"message\":\"slot crashed\",\"type\":\"server_error\"}}\n\n",
    )
    .await;
    let engine = OpenAiEngine::new(&url, Some("sk-test".into()));
    assert_eq!(
        engine.generate(&req("m", 4, true), None).await.unwrap_err(),
        EngineError::Stream("slot crashed".into())
    );
    assert_eq!(seen.lock().unwrap().as_slice(), ["Bearer sk-test"]);
    task.abort();

    let (url, _, task) = scripted("data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n").await;
    let err = OpenAiEngine::new(&url, None).generate(&req("m", 4, true), None).await.unwrap_err();
    assert!(matches!(&err, EngineError::Protocol(m) if m.contains("[DONE]")), "{err:?}");
    task.abort();
}

#[tokio::test]
async fn reasoning_deltas_count_as_text_and_keepalives_are_ignored() {
    let (url, _, task) = scripted(
        ": keep-alive\n\n\
         data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\n\n\
         data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"Think\"}}]}\n\n\
         data: {\"choices\":[{\"delta\":{\"reasoning\":\"ing\"}}]}\n\n\
         data: {\"choices\":[{\"delta\":{\"content\":\"Yes\"}}]}\n\n\
         data: {\"choices\":[{\"delta\":{\"content\":\"\"},\"finish_reason\":\"stop\"}]}\n\n\
         data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"completion_tokens_details\":{\"reasoning_tokens\":2}}}\n\n\
         data: [DONE]\n\n",
    )
    .await;
    let out = OpenAiEngine::new(&url, None).generate(&req("m", 4, true), None).await.unwrap();
    assert_eq!((out.reasoning_text.as_str(), out.text.as_str()), ("Thinking", "Yes"));
    let channels: Vec<_> = out.trace.chunks.iter().map(|c| c.channel).collect();
    assert_eq!(channels, [TokenChannel::Reasoning, TokenChannel::Reasoning, TokenChannel::Content]);
    assert_eq!((out.stats.completion_tokens, out.stats.reasoning_tokens), (Some(3), Some(2)));
    assert_eq!(out.stats.done_reason.as_deref(), Some("stop"));
    task.abort();
}

#[tokio::test]
async fn version_from_vllm_style_endpoint_or_none() {
    use axum::routing::get;
    let app =
        axum::Router::new().route("/version", get(|| async { axum::Json(serde_json::json!({"version": "0.11.0"})) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    assert_eq!(OpenAiEngine::new(&url, None).version().await.unwrap().as_deref(), Some("0.11.0"));
    server.abort();

    let (url, _, task) = scripted("data: [DONE]\n\n").await;
    assert_eq!(OpenAiEngine::new(&url, None).version().await.unwrap(), None);
    task.abort();
}
