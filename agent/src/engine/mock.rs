//! The mock engine: deterministic text at a configured TTFT and rate.
//!
//! A product feature for demos and for the explicit `engine.fallback: mock` setting. Every
//! result it produces is labelled `engine: "mock"`.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bench_shared::engine::{EngineKind, ModelInfo};
use bench_shared::metrics::{ChunkArrival, EngineStats, RequestTrace, TokenChannel};
use serde::{Deserialize, Serialize};

use super::{Engine, EngineError, GenOutcome, GenRequest, TextChunk, TokenSink, offset_us, wall_now_s};

/// Settings of the mock engine (`engine: {kind: mock, mock: {...}}` in agent.yaml).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MockSettings {
    /// Delay before the first token.
    pub ttft_ms: f64,
    /// Token rate after the first token.
    pub tokens_per_s: f64,
    /// Models the mock engine claims to serve.
    pub models: Vec<String>,
}

impl Default for MockSettings {
    fn default() -> Self {
        MockSettings { ttft_ms: 120.0, tokens_per_s: 40.0, models: vec!["mock-llm".to_owned()] }
    }
}

/// The mock engine.
#[derive(Debug, Clone)]
pub struct MockEngine {
    settings: MockSettings,
}

const WORDS: &[&str] = &[
    "The",
    " quick",
    " mock",
    " engine",
    " streams",
    " tokens",
    " at",
    " a",
    " steady",
    " rate",
    ",",
    " so",
    " demos",
    " and",
    " fallbacks",
    " show",
    " a",
    " race",
    " without",
    " any",
    " model",
    ".",
    " It",
    " is",
    " labelled",
    " mock",
    " in",
    " every",
    " result",
    ".",
];

impl MockEngine {
    pub fn new(settings: MockSettings) -> Self {
        MockEngine { settings }
    }

    fn check_model(&self, model: &str) -> Result<(), EngineError> {
        if self.settings.models.iter().any(|m| m == model) {
            Ok(())
        } else {
            Err(EngineError::ModelNotFound { model: model.to_owned(), available: self.settings.models.clone() })
        }
    }

    /// The i-th token for a prompt: deterministic for a given prompt, seed and index.
    fn token(prompt: &str, seed: i64, i: usize) -> &'static str {
        let start = prompt.len().wrapping_add(seed as usize) % WORDS.len();
        WORDS[(start + i) % WORDS.len()]
    }
}

#[async_trait]
impl Engine for MockEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Mock
    }

    fn base_url(&self) -> &str {
        "mock://"
    }

    async fn version(&self) -> Result<Option<String>, EngineError> {
        Ok(Some(format!("bench-agent-mock {}", env!("CARGO_PKG_VERSION"))))
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, EngineError> {
        Ok(self
            .settings
            .models
            .iter()
            .map(|m| ModelInfo { name: m.clone(), family: Some("mock".into()), ..Default::default() })
            .collect())
    }

    async fn generate(&self, req: &GenRequest, tokens: Option<&TokenSink>) -> Result<GenOutcome, EngineError> {
        self.check_model(&req.model)?;
        super::wait_until(req.send_at).await;
        let start = Instant::now();
        let gap = Duration::from_secs_f64(1.0 / self.settings.tokens_per_s.max(0.001));
        let mut next = tokio::time::Instant::from_std(start) + Duration::from_secs_f64(self.settings.ttft_ms / 1000.0);
        let mut out = GenOutcome { sent_at: Some(start), ..GenOutcome::default() };
        let mut chunks = Vec::with_capacity(req.max_tokens as usize);
        for i in 0..req.max_tokens as usize {
            if start.elapsed() > req.timeout {
                return Err(EngineError::timeout(super::TimeoutBound::Request, req.timeout));
            }
            tokio::time::sleep_until(next).await;
            next += gap;
            let at = Instant::now();
            let text = Self::token(&req.prompt, req.seed.unwrap_or(0), i);
            out.text.push_str(text);
            chunks.push(ChunkArrival { offset_us: offset_us(start, at), channel: TokenChannel::Content });
            if let (Some(sink), true) = (tokens, req.stream) {
                // A closed receiver only means nobody watches live; the trace is complete anyway.
                let _ = sink.send(TextChunk {
                    at,
                    wall_s: wall_now_s(),
                    text: text.to_owned(),
                    channel: TokenChannel::Content,
                });
            }
        }
        let end_offset_us = offset_us(start, Instant::now());
        if !req.stream {
            // A non-streamed answer arrives all at once, at the end.
            for c in &mut chunks {
                c.offset_us = end_offset_us;
            }
        }
        out.trace = RequestTrace { chunks, end_offset_us, streamed: req.stream };
        out.stats = EngineStats {
            prompt_tokens: Some(req.prompt.split_whitespace().count() as u64),
            completion_tokens: Some(req.max_tokens as u64),
            done_reason: Some("length".into()),
            ..Default::default()
        };
        Ok(out)
    }

    async fn unload(&self, model: &str) -> Result<bool, EngineError> {
        self.check_model(model)?;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_shared::metrics::request_metrics;

    fn req(model: &str, n: u32) -> GenRequest {
        GenRequest {
            model: model.into(),
            prompt: "hello there".into(),
            max_tokens: n,
            temperature: 0.0,
            num_ctx: 2048,
            seed: Some(1),
            stream: true,
            timeout: Duration::from_secs(10),
            send_at: None,
        }
    }

    #[tokio::test]
    async fn mock_is_deterministic_and_timed() {
        // 20 tokens at 100 tok/s span 190 ms: wide enough that one late timer wake-up on a busy
        // machine moves the measured rate by a few percent, not by half.
        let engine = MockEngine::new(MockSettings { ttft_ms: 30.0, tokens_per_s: 100.0, models: vec!["m".into()] });
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let a = engine.generate(&req("m", 20), Some(&tx)).await.unwrap();
        let b = engine.generate(&req("m", 20), None).await.unwrap();
        assert_eq!(a.text, b.text);
        let mut live = String::new();
        while let Ok(c) = rx.try_recv() {
            live.push_str(&c.text);
        }
        assert_eq!(live, a.text);
        let m = request_metrics(&a.trace, &a.stats);
        assert_eq!(m.gen_tokens, 20);
        let ttft = m.ttft_ms.unwrap();
        assert!((30.0..80.0).contains(&ttft), "ttft {ttft}");
        let rate = m.decode_tok_s.unwrap();
        assert!((80.0..=125.0).contains(&rate), "rate {rate}");
    }

    #[tokio::test]
    async fn mock_rejects_unknown_model_naming_the_available_ones() {
        let engine = MockEngine::new(MockSettings::default());
        let err = engine.generate(&req("nope", 1), None).await.unwrap_err();
        assert!(err.to_string().contains("mock-llm"), "{err}");
    }
}
