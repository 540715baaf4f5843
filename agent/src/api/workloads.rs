//! What the image and speech servers offer now, for `/capabilities` and `POST /jobs`: a test
//! type is listed only when the machine can run it (compute always; `image_generate` when the
//! image server answers and has a checkpoint, or is an images server using its loaded model;
//! `transcribe` when the speech server answers and offers a model).

use bench_shared::api::WorkloadEngine;
use bench_shared::engine::same_model;
use bench_shared::job::{JobSpec, TestType};
use bench_shared::workload::image::ImageEngineKind;

use super::error::ApiError;
use super::state::AppState;
use crate::config::AgentConfig;

/// Both servers as last probed (absent: not configured).
#[derive(Debug, Clone, Default)]
pub struct Workloads {
    pub image: Option<WorkloadEngine>,
    pub image_kind: Option<ImageEngineKind>,
    pub speech: Option<WorkloadEngine>,
}

/// Probes (or reads the cached probe of) both servers.
pub async fn probe_all(state: &AppState, force: bool) -> Workloads {
    let image = match &state.image {
        Some(e) => {
            let p = e.status(force).await;
            Some(WorkloadEngine {
                kind: e.kind().as_str().to_owned(),
                base_url: e.base_url().to_owned(),
                reachable: p.reachable,
                version: p.version.clone(),
                models: p.models.clone(),
                error: p.error.clone(),
            })
        }
        None => None,
    };
    let speech = match &state.speech {
        Some(e) => {
            let p = e.status(force).await;
            Some(WorkloadEngine {
                kind: "openai".into(),
                base_url: e.base_url().to_owned(),
                reachable: p.reachable,
                version: p.version.clone(),
                models: p.models.clone(),
                error: p.error.clone(),
            })
        }
        None => None,
    };
    Workloads { image, image_kind: state.image.as_ref().map(|e| e.kind()), speech }
}

/// `configured` (when not empty) filters `offered`.
fn filtered(offered: &[String], configured: &[String]) -> Vec<String> {
    offered.iter().filter(|m| configured.is_empty() || configured.iter().any(|c| same_model(c, m))).cloned().collect()
}

impl Workloads {
    /// Whether this machine can run `t` now.
    pub fn runs(&self, t: TestType) -> bool {
        match t {
            TestType::LlmGenerate
            | TestType::LlmSweep
            | TestType::LlmLoad
            | TestType::LlmCapacity
            | TestType::Compute => true,
            TestType::ImageGenerate => self.image.as_ref().is_some_and(|i| {
                i.reachable && (!i.models.is_empty() || self.image_kind == Some(ImageEngineKind::Openai))
            }),
            TestType::Transcribe => self.speech.as_ref().is_some_and(|s| s.reachable && !s.models.is_empty()),
        }
    }

    pub fn sdxl_profiles(&self, cfg: &AgentConfig) -> Vec<String> {
        self.image.as_ref().map(|i| filtered(&i.models, &cfg.sdxl_profiles)).unwrap_or_default()
    }

    pub fn whisper_models(&self, cfg: &AgentConfig) -> Vec<String> {
        self.speech.as_ref().map(|s| filtered(&s.models, &cfg.whisper_models)).unwrap_or_default()
    }
}

/// Refuses an image or speech job this agent cannot run: no server configured (409), a
/// ComfyUI job without a checkpoint (400), a checkpoint or model the server does not offer (404).
/// An unreachable server is not refused here: the job reports `job_error {kind:
/// engine_unreachable}`, as a racing central must record it.
pub async fn check(state: &AppState, spec: &JobSpec) -> Result<(), ApiError> {
    let cfg = &state.config;
    match spec {
        JobSpec::ImageGenerate(i) => {
            let Some(eng) = &state.image else {
                return Err(ApiError::Conflict("no image_engine is configured on this agent (agent.yaml)".into()));
            };
            if eng.kind() == ImageEngineKind::Comfyui && i.checkpoint_name().is_none() {
                return Err(ApiError::bad(
                    "checkpoint",
                    "is required for ComfyUI: a checkpoint file name (see sdxl_profiles in /capabilities)",
                ));
            }
            let probe = eng.status(false).await;
            if let Some(c) = i.checkpoint_name()
                && probe.reachable
                && !probe.models.is_empty()
            {
                let offered = filtered(&probe.models, &cfg.sdxl_profiles);
                if !offered.iter().any(|m| same_model(m, c)) {
                    return Err(ApiError::UnknownModel { model: c.to_owned(), available: offered });
                }
            }
            Ok(())
        }
        JobSpec::Transcribe(t) => {
            let Some(eng) = &state.speech else {
                return Err(ApiError::Conflict("no speech_engine is configured on this agent (agent.yaml)".into()));
            };
            let probe = eng.status(false).await;
            if probe.reachable && !probe.models.is_empty() {
                let offered = filtered(&probe.models, &cfg.whisper_models);
                if !offered.iter().any(|m| same_model(m, &t.model)) {
                    return Err(ApiError::UnknownModel { model: t.model.clone(), available: offered });
                }
            }
            Ok(())
        }
        JobSpec::Compute(_)
        | JobSpec::LlmGenerate(_)
        | JobSpec::LlmSweep(_)
        | JobSpec::LlmLoad(_)
        | JobSpec::LlmCapacity(_) => Ok(()),
    }
}
