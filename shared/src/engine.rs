//! Engine kinds and model details as agents report them.

use serde::{Deserialize, Serialize};

/// The protocol an agent uses to drive its engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// Ollama's native API (`/api/generate`, `/api/tags`, …).
    Ollama,
    /// Any OpenAI-compatible server (llama.cpp, vLLM, SGLang, LM Studio, LiteLLM).
    Openai,
    /// The built-in deterministic mock engine (demos, fallback). Never a real measurement.
    Mock,
    /// ComfyUI (image jobs only: `image_engine.kind`).
    Comfyui,
    /// The agent itself (the compute race: no engine in between).
    Agent,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Ollama => "ollama",
            EngineKind::Openai => "openai",
            EngineKind::Mock => "mock",
            EngineKind::Comfyui => "comfyui",
            EngineKind::Agent => "agent",
        }
    }

    /// Whether this kind can be an LLM engine (`engine.kind` in agent.yaml).
    pub fn is_llm(self) -> bool {
        matches!(self, EngineKind::Ollama | EngineKind::Openai | EngineKind::Mock)
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model an engine serves, with whatever details the engine gives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// KV cache bytes per context token (f16 K and V), from the model's own layer and head counts
    /// (Ollama `/api/show` `model_info`); `None` when the engine does not give them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_bytes_per_token: Option<u64>,
}

/// What the engine reports about its build and settings (`/capabilities` `engine_fingerprint`).
/// Sources: Ollama `/api/version` and `/api/ps`; llama.cpp `/props`; vLLM `/version`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineFingerprint {
    pub kind: Option<EngineKind>,
    pub version: Option<String>,
    /// Build identifier where the engine gives one apart from its version (llama.cpp `build_info`).
    #[serde(default)]
    pub build: Option<String>,
    /// Context size the engine serves with (llama.cpp per-slot `n_ctx`).
    #[serde(default)]
    pub context_size: Option<u64>,
    /// Parallel slots (llama.cpp `total_slots`).
    #[serde(default)]
    pub slots: Option<u64>,
    /// Models loaded now, with their GPU offload (Ollama `/api/ps`).
    #[serde(default)]
    pub loaded: Vec<LoadedModel>,
    /// Where each figure came from, e.g. `["/props"]`.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Why the engine gave no fingerprint, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A model the engine holds in memory now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadedModel {
    pub name: String,
    pub size_bytes: Option<u64>,
    pub size_vram_bytes: Option<u64>,
    /// `size_vram / size × 100`: below 100 the model runs partly on the CPU.
    pub gpu_offload_pct: Option<f64>,
    pub context_length: Option<u64>,
}

/// The engine as `/capabilities` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineInfo {
    pub kind: EngineKind,
    pub base_url: String,
    pub version: Option<String>,
    pub reachable: bool,
    /// Set when the agent is configured to fall back to the mock engine and has done so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

/// True when `name` is the model `wanted` (Ollama also serves `llama3` as `llama3:latest`).
pub fn same_model(name: &str, wanted: &str) -> bool {
    name == wanted || name.strip_suffix(":latest") == Some(wanted) || wanted.strip_suffix(":latest") == Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_tag_is_the_same_model() {
        assert!(same_model("llama3:latest", "llama3") && same_model("llama3", "llama3:latest"));
        assert!(same_model("a:7b", "a:7b") && !same_model("a:7b", "a") && !same_model("a:latest", "b"));
    }
}
