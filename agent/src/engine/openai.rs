//! OpenAI-compatible API client (llama.cpp's llama-server, vLLM, SGLang, LM Studio, LiteLLM).
//!
//! Streams `POST /v1/chat/completions` as SSE with `stream_options.include_usage`, so the
//! engine's own token counts (and llama.cpp's `timings`) arrive in a last chunk before
//! `data: [DONE]`. Many such servers answer whatever model name a request gives (llama.cpp
//! with one model loaded does), so `generate` checks the name against `/v1/models` first: a
//! typo must be an error, not a benchmark of some other model.
//!
//! `num_ctx` cannot be set per request here (the server fixes its context at start-up); the
//! context really in use is reported by [`Engine::loaded_context_length`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bench_shared::engine::{EngineFingerprint, EngineKind, ModelInfo};
use bench_shared::metrics::TokenChannel;
use serde_json::{Value, json};

use super::h1::H1Client;
use super::http::{self, Answer, Bounds, JsonPost, TimedLines};
use super::lines::{SseLine, sse_line};
use super::openai_wire::{self as wire, Timings, Usage};
use super::record::{Recorder, non_streamed};
use super::{DEFAULT_SEED, Engine, EngineError, GenOutcome, GenRequest, Timeouts, TokenSink};

/// How long a `/v1/models` answer is trusted for the model check: long enough that a repeat
/// loop does not ask before every request, short enough to notice a model swap. An older list
/// that names the model still lets the request go at once while a fresh one is fetched in the
/// background, so a load's requests never wait for the listing.
const MODELS_TTL: Duration = Duration::from_secs(5);

/// The cached `/v1/models` answer and when it was fetched.
type ModelCache = Arc<Mutex<Option<(Instant, Vec<ModelInfo>)>>>;

/// Talks to one OpenAI-compatible server.
#[derive(Debug)]
pub struct OpenAiEngine {
    /// Server root, without `/v1` (llama.cpp's `/props` lives at the root).
    root: String,
    /// As configured, for display.
    base_url: String,
    api_key: Option<String>,
    client: reqwest::Client,
    /// Generation requests to an `http://` server (see [`super::h1`]).
    h1: H1Client,
    /// Connect, first-token and idle bounds of every request.
    timeouts: Timeouts,
    models: ModelCache,
    /// A background refresh of `models` is running.
    refreshing: Arc<AtomicBool>,
}

impl OpenAiEngine {
    /// `base_url` with or without a trailing `/v1`.
    pub fn new(base_url: &str, api_key: Option<String>) -> Self {
        let trimmed = base_url.trim_end_matches('/');
        let root = trimmed.strip_suffix("/v1").unwrap_or(trimmed).to_owned();
        OpenAiEngine {
            root,
            base_url: base_url.to_owned(),
            api_key: api_key.filter(|k| !k.is_empty()),
            client: http::client(Timeouts::default().connect),
            h1: H1Client::new(Timeouts::default().connect),
            timeouts: Timeouts::default(),
            models: Arc::default(),
            refreshing: Arc::default(),
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
        http::join(&self.root, path)
    }

    /// The body of a chat-completions request.
    pub fn chat_body(req: &GenRequest) -> Value {
        let mut body = json!({
            "model": req.model,
            "messages": [{"role": "user", "content": req.prompt}],
            "max_tokens": req.max_tokens,
            "temperature": req.temperature,
            "seed": req.seed.unwrap_or(DEFAULT_SEED),
            "stream": req.stream,
        });
        if req.stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }

    /// `/v1/models`, fetched afresh.
    async fn fetch_models(&self) -> Result<Vec<ModelInfo>, EngineError> {
        let lister = ModelLister {
            client: self.client.clone(),
            url: self.url("/v1/models"),
            api_key: self.api_key.clone(),
            timeouts: self.timeouts,
            cache: self.models.clone(),
        };
        lister.fetch().await
    }

    /// Fails with `ModelNotFound` unless the server lists `model`. A recent list is reused; an
    /// older one that names the model is trusted while a fresh one is fetched in the background;
    /// a model missing from it is looked up afresh (it may have just been loaded). A server
    /// without `/v1/models` (404) cannot be checked and is trusted.
    async fn check_model(&self, model: &str) -> Result<(), EngineError> {
        let cached = bench_shared::sync::lock(&self.models).clone();
        if let Some((at, models)) = cached
            && models.iter().any(|m| m.name == model)
        {
            if at.elapsed() >= MODELS_TTL && !self.refreshing.swap(true, Ordering::AcqRel) {
                let lister = ModelLister {
                    client: self.client.clone(),
                    url: self.url("/v1/models"),
                    api_key: self.api_key.clone(),
                    timeouts: self.timeouts,
                    cache: self.models.clone(),
                };
                let refreshing = self.refreshing.clone();
                tokio::spawn(async move {
                    if let Err(e) = lister.fetch().await {
                        tracing::debug!(error = %e, "background /v1/models refresh failed");
                    }
                    refreshing.store(false, Ordering::Release);
                });
            }
            return Ok(());
        }
        let models = match self.fetch_models().await {
            Ok(models) => models,
            Err(e) if http::is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e),
        };
        if models.iter().any(|m| m.name == model) {
            Ok(())
        } else {
            Err(EngineError::ModelNotFound {
                model: model.to_owned(),
                available: models.into_iter().map(|m| m.name).collect(),
            })
        }
    }

    async fn send(&self, req: &GenRequest) -> Result<(Answer, Instant, String), EngineError> {
        let url = self.url("/v1/chat/completions");
        let body = Self::chat_body(req);
        let post = JsonPost {
            url: &url,
            body: &body,
            bearer: self.api_key.as_deref(),
            bounds: self.bounds(req),
            send_at: req.send_at,
        };
        let (response, t0) = http::post_json(&self.client, &self.h1, post).await?;
        if !response.is_success() {
            return Err(http::http_error(response, &url, self.bounds(req)).await);
        }
        Ok((response, t0, url))
    }

    async fn stream(&self, req: &GenRequest, sink: Option<&TokenSink>) -> Result<GenOutcome, EngineError> {
        let (response, t0, url) = self.send(req).await?;
        let mut lines = TimedLines::new(response, &url, self.bounds(req), t0);
        let mut rec = Recorder::new(t0, sink);
        let mut usage: Option<Usage> = None;
        let mut timings: Option<Timings> = None;
        let mut finish: Option<String> = None;
        while let Some((at, line)) = lines.next_line().await? {
            let data = match sse_line(&line) {
                SseLine::Data(data) => data,
                SseLine::Done => {
                    let stats = wire::stats(usage.as_ref(), timings.as_ref(), finish.as_deref());
                    return Ok(rec.finish(at, true, stats));
                }
                SseLine::Other => continue,
            };
            let chunk = wire::parse_completion(data)?;
            rec.text(at, TokenChannel::Reasoning, chunk.reasoning());
            rec.text(at, TokenChannel::Content, chunk.content());
            if let Some(reason) = chunk.finish_reason() {
                finish = Some(reason.to_owned());
            }
            usage = chunk.usage.or(usage);
            timings = chunk.timings.or(timings);
        }
        Err(EngineError::Protocol("stream ended before data: [DONE]".into()))
    }

    async fn single(&self, req: &GenRequest) -> Result<GenOutcome, EngineError> {
        let (response, t0, url) = self.send(req).await?;
        let bytes = response.bytes(&url, self.bounds(req)).await?;
        let end = Instant::now();
        let text = String::from_utf8_lossy(&bytes);
        let answer = wire::parse_completion(&text)?;
        let stats = wire::stats(answer.usage.as_ref(), answer.timings.as_ref(), answer.finish_reason());
        Ok(non_streamed(t0, end, answer.content(), answer.reasoning(), stats))
    }
}

/// What a `/v1/models` fetch needs, owned (so a refresh can run in the background).
struct ModelLister {
    client: reqwest::Client,
    url: String,
    api_key: Option<String>,
    timeouts: Timeouts,
    cache: ModelCache,
}

impl ModelLister {
    async fn fetch(&self) -> Result<Vec<ModelInfo>, EngineError> {
        let url = &self.url;
        let value = http::fetch_json(&self.client, url, None, self.api_key.as_deref(), self.timeouts).await?;
        let data = value
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| EngineError::Protocol(format!("{url} answered without a data array")))?;
        let models: Vec<ModelInfo> = data.iter().filter_map(wire::model_info).collect();
        *bench_shared::sync::lock(&self.cache) = Some((Instant::now(), models.clone()));
        Ok(models)
    }
}

#[async_trait]
impl Engine for OpenAiEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Openai
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    /// llama.cpp's `/props` `build_info`, else vLLM's `/version`; other servers have no
    /// standard version endpoint (`None`).
    async fn version(&self) -> Result<Option<String>, EngineError> {
        for (path, field) in [("/props", "build_info"), ("/version", "version")] {
            match http::fetch_json(&self.client, &self.url(path), None, self.api_key.as_deref(), self.timeouts).await {
                Ok(v) => {
                    if let Some(version) = v.get(field).and_then(Value::as_str) {
                        return Ok(Some(version.to_owned()));
                    }
                }
                Err(e @ (EngineError::Unreachable { .. } | EngineError::Timeout { .. })) => return Err(e),
                Err(_) => {}
            }
        }
        Ok(None)
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, EngineError> {
        self.fetch_models().await
    }

    /// llama.cpp `/props` (build, per-slot context, slots), else vLLM `/version`.
    async fn fingerprint(&self) -> Result<EngineFingerprint, EngineError> {
        match http::fetch_json(&self.client, &self.url("/props"), None, self.api_key.as_deref(), self.timeouts).await {
            Ok(props) if props.get("build_info").is_some() => return Ok(wire::props_fingerprint(&props)),
            Err(e @ (EngineError::Unreachable { .. } | EngineError::Timeout { .. })) => return Err(e),
            _ => {}
        }
        let version = self.version().await?;
        let sources = if version.is_some() { vec!["/version".to_owned()] } else { Vec::new() };
        Ok(EngineFingerprint { kind: Some(EngineKind::Openai), version, sources, ..Default::default() })
    }

    async fn generate(&self, req: &GenRequest, tokens: Option<&TokenSink>) -> Result<GenOutcome, EngineError> {
        self.check_model(&req.model).await?;
        if req.stream { self.stream(req, tokens).await } else { self.single(req).await }
    }

    /// The serving context from `/v1/models` (llama.cpp's per-slot `meta.n_ctx`), if listed.
    async fn loaded_context_length(&self, model: &str) -> Result<Option<u64>, EngineError> {
        let models = self.fetch_models().await?;
        Ok(models.into_iter().find(|m| m.name == model).and_then(|m| m.context_length))
    }

    /// OpenAI-compatible servers have no unload call.
    async fn unload(&self, _model: &str) -> Result<bool, EngineError> {
        Ok(false)
    }
}
