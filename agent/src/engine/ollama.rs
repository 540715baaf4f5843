//! Ollama native API client.
//!
//! Generation goes through `POST /api/chat`, not `/api/generate`: chat applies the model's chat
//! template exactly as the OpenAI-compatible client's `/v1/chat/completions` does, so the same
//! prompt produces the same token sequence on both engine kinds and their figures compare.
//!
//! Every request sends all four options that change what is measured — `num_ctx` (Ollama's
//! default depends on version and VRAM), `num_predict`, `temperature` and `seed` — so two
//! machines never run with different hidden defaults. Without a job seed, [`DEFAULT_SEED`] (42) is sent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;
use bench_shared::engine::{EngineFingerprint, EngineKind, ModelInfo};
use bench_shared::metrics::TokenChannel;
use futures_util::future::join_all;
use serde_json::{Value, json};

use super::h1::H1Client;
use super::http::{self, Answer, Bounds, JsonPost, TimedLines};
use super::ollama_wire::{self as wire, ChatLine, Tags};
use super::record::{Recorder, non_streamed};
use super::{DEFAULT_SEED, Engine, EngineError, GenOutcome, GenRequest, Timeouts, TokenSink};

/// From `/api/show`: (trained context length, KV cache bytes per token).
type ShowFacts = (Option<u64>, Option<u64>);

/// Talks to one Ollama server.
#[derive(Debug)]
pub struct OllamaEngine {
    base_url: String,
    client: reqwest::Client,
    /// Generation requests to an `http://` server (see [`super::h1`]).
    h1: H1Client,
    /// Connect, first-token and idle bounds of every request.
    timeouts: Timeouts,
    /// Context length per model digest: `/api/show` is asked once per model version, so
    /// `list_models` (also the agent's reachability probe) stays one request.
    /// Value: (context length, KV cache bytes per token).
    context_lengths: Mutex<HashMap<String, ShowFacts>>,
}

impl OllamaEngine {
    /// `base_url` like `http://127.0.0.1:11434` (a trailing slash is fine).
    pub fn new(base_url: &str) -> Self {
        OllamaEngine {
            base_url: base_url.trim_end_matches('/').to_owned(),
            client: http::client(Timeouts::default().connect),
            h1: H1Client::new(Timeouts::default().connect),
            timeouts: Timeouts::default(),
            context_lengths: Mutex::new(HashMap::new()),
        }
    }

    /// The same engine with other connect, first-token and idle bounds.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.client = http::client(timeouts.connect);
        self.h1 = H1Client::new(timeouts.connect);
        self.timeouts = timeouts;
        self
    }

    fn bounds(&self, req: &GenRequest) -> Bounds {
        Bounds::request(req.timeout, self.timeouts)
    }

    fn url(&self, path: &str) -> String {
        http::join(&self.base_url, path)
    }

    pub(super) fn url_of(&self, path: &str) -> String {
        self.url(path)
    }

    pub(super) fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    pub(super) fn http_client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The body of a `/api/chat` request.
    pub fn chat_body(req: &GenRequest) -> Value {
        json!({
            "model": req.model,
            "messages": [{"role": "user", "content": req.prompt}],
            "stream": req.stream,
            "options": {
                "num_ctx": req.num_ctx,
                "num_predict": req.max_tokens,
                "temperature": req.temperature,
                "seed": req.seed.unwrap_or(DEFAULT_SEED),
            },
        })
    }

    async fn tags(&self) -> Result<Tags, EngineError> {
        let url = self.url("/api/tags");
        let value = http::fetch_json(&self.client, &url, None, None, self.timeouts).await?;
        serde_json::from_value(value).map_err(|e| EngineError::Protocol(format!("{url}: {e}")))
    }

    /// A 404 from Ollama means the model is not pulled: name the ones that are. If the model
    /// list cannot be read, or lists the model after all, the 404 was about something else (a
    /// wrong URL, a proxy, an Ollama too old for `/api/chat`): report it as it is.
    async fn not_found(&self, model: &str, response: Answer, url: &str) -> EngineError {
        match self.tags().await {
            Ok(tags) if !tags.models.iter().any(|m| m.name == model) => EngineError::ModelNotFound {
                model: model.to_owned(),
                available: tags.models.into_iter().map(|m| m.name).collect(),
            },
            _ => http::http_error(response, url, Bounds::meta(self.timeouts)).await,
        }
    }

    /// Sends a request and maps error statuses (404 → model not found).
    async fn post(
        &self,
        path: &str,
        body: &Value,
        model: &str,
        bounds: Bounds,
        send_at: Option<Instant>,
    ) -> Result<(Answer, Instant), EngineError> {
        let url = self.url(path);
        let post = JsonPost { url: &url, body, bearer: None, bounds, send_at };
        let (response, t0) = http::post_json(&self.client, &self.h1, post).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND.as_u16() {
            return Err(self.not_found(model, response, &url).await);
        }
        if !response.is_success() {
            return Err(http::http_error(response, &url, bounds).await);
        }
        Ok((response, t0))
    }

    async fn stream(&self, req: &GenRequest, sink: Option<&TokenSink>) -> Result<GenOutcome, EngineError> {
        let (response, t0) =
            self.post("/api/chat", &Self::chat_body(req), &req.model, self.bounds(req), req.send_at).await?;
        let mut lines = TimedLines::new(response, &self.url("/api/chat"), self.bounds(req), t0);
        let mut rec = Recorder::new(t0, sink);
        while let Some((at, line)) = lines.next_line().await? {
            let chunk = wire::parse_line(&line)?;
            rec.text(at, TokenChannel::Reasoning, chunk.thinking());
            rec.text(at, TokenChannel::Content, chunk.content());
            if chunk.done {
                let mut out = rec.finish(at, true, chunk.stats());
                // `eval_count` includes thinking tokens without a split; Ollama streams one token
                // per line, so the thinking lines are the reasoning tokens.
                let thinking = out.trace.chunks.iter().filter(|c| c.channel == TokenChannel::Reasoning).count();
                if thinking > 0 {
                    out.stats.reasoning_tokens = Some(thinking as u64);
                }
                return Ok(out);
            }
        }
        Err(EngineError::Protocol("stream ended before the final stats (no done:true line)".into()))
    }

    async fn single(&self, req: &GenRequest) -> Result<GenOutcome, EngineError> {
        let url = self.url("/api/chat");
        let (response, t0) =
            self.post("/api/chat", &Self::chat_body(req), &req.model, self.bounds(req), req.send_at).await?;
        let bytes = response.bytes(&url, self.bounds(req)).await?;
        let end = Instant::now();
        let text = String::from_utf8_lossy(&bytes);
        let answer: ChatLine = wire::parse_line(text.trim())?;
        if !answer.done {
            return Err(EngineError::Protocol("non-streamed answer without done:true".into()));
        }
        Ok(non_streamed(t0, end, answer.content(), answer.thinking(), answer.stats()))
    }

    /// The trained context length of a model and its KV cache bytes per token (`/api/show`),
    /// `None` where Ollama does not say.
    async fn context_length(&self, model: &str, digest: Option<&str>) -> (Option<u64>, Option<u64>) {
        let key = format!("{model}@{}", digest.unwrap_or(""));
        if let Some(known) = bench_shared::sync::lock(&self.context_lengths).get(&key) {
            return *known;
        }
        let url = self.url("/api/show");
        let Ok(show) = http::fetch_json(&self.client, &url, Some(&json!({"model": model})), None, self.timeouts).await
        else {
            return (None, None);
        };
        let facts = (wire::show_context_length(&show), wire::show_kv_bytes_per_token(&show));
        bench_shared::sync::lock(&self.context_lengths).insert(key, facts);
        facts
    }
}

#[async_trait]
impl Engine for OllamaEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Ollama
    }

    fn can_pull(&self) -> bool {
        true
    }

    async fn pull(&self, model: &str, progress: &super::PullSink) -> Result<(), EngineError> {
        self.pull_model(model, progress).await
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    async fn version(&self) -> Result<Option<String>, EngineError> {
        let v = http::fetch_json(&self.client, &self.url("/api/version"), None, None, self.timeouts).await?;
        Ok(v.get("version").and_then(Value::as_str).map(str::to_owned))
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, EngineError> {
        let tags = self.tags().await?;
        // One /api/show per new model, concurrently: the context length is otherwise unknown.
        let lengths = join_all(tags.models.iter().map(|m| self.context_length(&m.name, m.digest.as_deref()))).await;
        Ok(tags
            .models
            .iter()
            .zip(lengths)
            .map(|(m, (ctx, kv))| ModelInfo { context_length: ctx, kv_bytes_per_token: kv, ..m.info() })
            .collect())
    }

    async fn generate(&self, req: &GenRequest, tokens: Option<&TokenSink>) -> Result<GenOutcome, EngineError> {
        if req.stream { self.stream(req, tokens).await } else { self.single(req).await }
    }

    /// `/api/version` and the loaded models of `/api/ps` with their GPU offload.
    async fn fingerprint(&self) -> Result<EngineFingerprint, EngineError> {
        let version = self.version().await?;
        let ps = http::fetch_json(&self.client, &self.url("/api/ps"), None, None, self.timeouts).await?;
        Ok(EngineFingerprint {
            kind: Some(EngineKind::Ollama),
            version,
            loaded: wire::ps_loaded(&ps),
            sources: vec!["/api/version".into(), "/api/ps".into()],
            ..Default::default()
        })
    }

    /// `/api/ps` `context_length` of the loaded model (`None` when it is not loaded).
    async fn loaded_context_length(&self, model: &str) -> Result<Option<u64>, EngineError> {
        let ps = http::fetch_json(&self.client, &self.url("/api/ps"), None, None, self.timeouts).await?;
        let models = ps.get("models").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(models
            .iter()
            .find(|m| m.get("name").and_then(Value::as_str) == Some(model))
            .and_then(|m| m.get("context_length"))
            .and_then(Value::as_u64))
    }

    /// `POST /api/generate {"model", "keep_alive": 0}`: Ollama unloads the model and answers
    /// `done_reason: "unload"`.
    async fn unload(&self, model: &str) -> Result<bool, EngineError> {
        let body = json!({"model": model, "keep_alive": 0});
        let (response, _) = self.post("/api/generate", &body, model, Bounds::meta(self.timeouts), None).await?;
        let url = self.url("/api/generate");
        let bytes = response.bytes(&url, Bounds::meta(self.timeouts)).await?;
        let text = String::from_utf8_lossy(&bytes);
        // Ollama answers one object; check each line anyway so an error line is not missed.
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            wire::parse_line(line)?;
        }
        Ok(true)
    }
}
