//! The image engine: one client for ComfyUI or an OpenAI-style images server, its status probe
//! (reachable? which checkpoints?) and the `image_generate` job loop over the repeats.

use std::sync::Arc;
use std::time::Duration;

use bench_shared::event::{ErrorKind, Event, JobError};
use bench_shared::workload::image::{
    ImageComplete, ImageEngineKind, ImageError, ImageErrorCategory, ImageJobDone, ImageSpec,
};
use tokio_util::sync::CancellationToken;

use super::config::ImageEngineSettings;
use super::status::{Probe, StatusCache};
use super::store::ImageStore;
use crate::jobs::JobEvents;

/// Why an image job ended without a result.
#[derive(Debug)]
pub enum Failure {
    Cancelled,
    /// The `image_error` to publish and the `job_error` kind that follows it.
    Error {
        kind: ErrorKind,
        error: ImageError,
    },
}

impl Failure {
    pub fn new(kind: ErrorKind, category: ImageErrorCategory, index: u32, message: impl Into<String>) -> Self {
        Failure::Error {
            kind,
            error: ImageError {
                repeat_index: index,
                message: message.into(),
                category,
                node_id: None,
                node_type: None,
                run_id: None,
            },
        }
    }

    /// An error reaching the server.
    pub fn http(e: &reqwest::Error, index: u32, what: &str) -> Self {
        let msg = format!("{what}: {}", bench_shared::error_chain(e));
        if e.is_timeout() {
            Failure::new(ErrorKind::Timeout, ImageErrorCategory::Timeout, index, msg)
        } else if e.is_connect() {
            Failure::new(ErrorKind::EngineUnreachable, ImageErrorCategory::Unreachable, index, msg)
        } else {
            Failure::new(ErrorKind::EngineError, ImageErrorCategory::Engine, index, msg)
        }
    }
}

/// The configured image server.
#[derive(Debug)]
pub struct ImageEngine {
    pub settings: ImageEngineSettings,
    pub http: reqwest::Client,
    pub store: ImageStore,
    pub status: StatusCache,
}

impl ImageEngine {
    pub fn new(settings: ImageEngineSettings, store: ImageStore) -> Arc<Self> {
        bench_shared::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs_f64(settings.connect_timeout_s))
            .build()
            .expect("a plain reqwest client builds");
        Arc::new(ImageEngine { settings, http, store, status: StatusCache::default() })
    }

    pub fn kind(&self) -> ImageEngineKind {
        self.settings.kind
    }

    pub fn base_url(&self) -> &str {
        self.settings.base_url.trim_end_matches('/')
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// A request with the bearer token, when one is configured.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, self.url(path));
        match &self.settings.api_key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }

    /// Asks the server whether it answers, its version and its checkpoints (bounded by `limit`).
    pub async fn probe(&self, limit: Duration) -> Probe {
        let work = async {
            match self.kind() {
                ImageEngineKind::Comfyui => super::comfy::probe(self).await,
                ImageEngineKind::Openai => super::openai_images::probe(self).await,
            }
        };
        tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Probe::unreachable(format!(
                "image engine at {} did not answer within {:.0} s",
                self.base_url(),
                limit.as_secs_f64()
            ))
        })
    }

    /// The cached status, refreshed when older than the cache's bound (or when `force`).
    pub async fn status(&self, force: bool) -> Arc<Probe> {
        self.status.get(force, || self.probe(bench_shared::timeouts::AGENT_ENGINE_PROBE)).await
    }

    /// Runs every repeat of `spec`, publishing the image events; the result is the job's
    /// `job_done`, or the failure (its `image_error` not yet published).
    pub async fn run(
        &self,
        spec: &ImageSpec,
        events: &JobEvents,
        cancel: &CancellationToken,
    ) -> Result<ImageJobDone, Failure> {
        let mut done: Vec<ImageComplete> = Vec::new();
        for index in 0..spec.repeat {
            let one = match self.kind() {
                ImageEngineKind::Comfyui => {
                    let Some(ckpt) = spec.checkpoint_name() else {
                        return Err(Failure::new(
                            ErrorKind::ModelNotFound,
                            ImageErrorCategory::Validation,
                            index,
                            "ComfyUI needs a checkpoint: give `checkpoint` (or `model`)",
                        ));
                    };
                    super::comfy::run_prompt(self, spec, index, ckpt, events, cancel).await?
                }
                ImageEngineKind::Openai => super::openai_images::generate(self, spec, index, events, cancel).await?,
            };
            events.emit(Event::ImageComplete(Box::new(one.clone())));
            done.push(one);
        }
        Ok(ImageJobDone::from_repeats(self.kind(), spec, &done))
    }
}

/// The terminal event of a failed image job, after publishing its `image_error`.
pub fn fail(failure: Failure, spec: &ImageSpec, events: &JobEvents) -> Option<Event> {
    match failure {
        Failure::Cancelled => None,
        Failure::Error { kind, mut error } => {
            error.run_id = spec.run_id.clone();
            let job_error = JobError { kind, message: error.message.clone(), repeat_index: Some(error.repeat_index) };
            events.emit(Event::ImageError(error));
            Some(Event::JobError(job_error))
        }
    }
}
