//! What an original (Python) bench-race agent sends and takes, and how central reads it as its
//! own types.
//!
//! Its API, as its `agent_app.py` and `shared/schemas.py` define it: `GET /health` →
//! `{ok, machine_id, label}`; `GET /capabilities` → flat fields (`llm_models`, `ollama_models`,
//! `gpu_name`, `cpu_cores`, …); `POST /jobs` with `{test_type, model, prompt, max_tokens,
//! temperature, num_ctx, repeat, stream}` → `{job_id}`, running one generation whatever `repeat`
//! says; `/ws` broadcasts `{job_id, type, payload}` to every client: `llm_token {text,
//! timestamp_s}` (its `time.perf_counter()`, not a wall clock) and `job_done {ttft_ms, gen_tokens,
//! gen_tokens_per_s, total_ms, model, engine, fallback_reason?}` where `gen_tokens` counts words.

use bench_shared::api::{Capabilities, EngineHealth, Health};
use bench_shared::engine::{EngineInfo, EngineKind};
use bench_shared::hardware::{GpuInfo, Hardware};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OriginalHealth {
    pub ok: bool,
    #[serde(default)]
    pub machine_id: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
}

/// `GET /capabilities` (the fields central uses; every field it sent is kept in `extra`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct OriginalCapabilities {
    #[serde(default)]
    pub machine_id: Option<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub tests: Vec<String>,
    #[serde(default)]
    pub llm_models: Vec<String>,
    #[serde(default)]
    pub whisper_models: Vec<String>,
    #[serde(default)]
    pub sdxl_profiles: Vec<String>,
    #[serde(default)]
    pub gpu_name: Option<String>,
    #[serde(default)]
    pub gpu_vram_bytes: Option<u64>,
    #[serde(default)]
    pub gpu_type: Option<String>,
    #[serde(default)]
    pub cuda_compute: Option<Vec<u32>>,
    #[serde(default)]
    pub cpu_cores: Option<usize>,
    #[serde(default)]
    pub cpu_physical_cores: Option<usize>,
    #[serde(default)]
    pub total_system_ram_bytes: Option<u64>,
    #[serde(default)]
    pub ollama_reachable: Option<bool>,
    #[serde(default)]
    pub ollama_models: Vec<String>,
    #[serde(default)]
    pub vllm_reachable: Option<bool>,
    #[serde(default)]
    pub vllm_models: Vec<String>,
    #[serde(default)]
    pub active_backend: Option<String>,
}

/// The `POST /jobs` body it takes (its `LLMRequest`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OriginalJob<'a> {
    pub test_type: &'static str,
    pub model: &'a str,
    pub prompt: &'a str,
    pub max_tokens: u32,
    pub temperature: f64,
    pub num_ctx: u32,
    /// Always 1: it runs one generation per job (central posts one job per repeat).
    pub repeat: u32,
    pub stream: bool,
}

/// The answer to `POST /jobs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OriginalAccepted {
    pub job_id: String,
}

/// `llm_token`'s payload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OriginalToken {
    pub text: String,
}

/// `job_done`'s payload (its `LLMResult`): figures from its own client.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct OriginalDone {
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    /// Whitespace-separated words of the text, not tokens.
    #[serde(default)]
    pub gen_tokens: Option<u64>,
    /// `gen_tokens / (t_end − t_first)`: words per second.
    #[serde(default)]
    pub gen_tokens_per_s: Option<f64>,
    #[serde(default)]
    pub total_ms: Option<f64>,
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub model: Option<String>,
    /// `ollama`, `vllm` or `mock`.
    #[serde(default)]
    pub engine: Option<String>,
    /// Why it ran on its mock stream (`ollama_unreachable`, `missing_model`, `stream_error`).
    #[serde(default)]
    pub fallback_reason: Option<String>,
}

impl OriginalDone {
    /// The engine it names (`vllm` is OpenAI-compatible; an unknown name counts as Ollama, its default).
    pub fn engine_kind(&self) -> EngineKind {
        match self.engine.as_deref() {
            Some("mock") => EngineKind::Mock,
            Some("vllm") => EngineKind::Openai,
            _ => EngineKind::Ollama,
        }
    }
}

/// Where its engine is, as central can say it (it does not report the engine's URL).
pub fn engine_label(agent_base_url: &str) -> String {
    format!("{agent_base_url} (original bench-race agent's engine)")
}

/// Its `/health` as central's [`Health`]: it says nothing about its engine or queue, so the
/// engine is not "checked" (preflight then relies on the models it lists).
pub fn health(h: OriginalHealth, machine_id: &str, agent_base_url: &str) -> Health {
    Health {
        ok: h.ok,
        machine_id: h.machine_id.unwrap_or_else(|| machine_id.to_owned()),
        label: h.label.unwrap_or_else(|| machine_id.to_owned()),
        engine: EngineHealth {
            kind: EngineKind::Ollama,
            base_url: engine_label(agent_base_url),
            reachable: true,
            checked_age_s: None,
            error: None,
        },
        busy: false,
        queue_len: 0,
        ws_slow_disconnects: 0,
    }
}

/// `Capabilities` fields (flattened `extra` must not repeat them).
const OWN_KEYS: &[&str] = &[
    "machine_id",
    "label",
    "tests",
    "llm_models",
    "whisper_models",
    "sdxl_profiles",
    "engine",
    "models",
    "hardware",
    "queue_limit",
    "engine_fingerprint",
    "client_ceiling",
    "client_ceiling_unavailable",
    "image_engine",
    "speech_engine",
];

impl OriginalCapabilities {
    /// The engine it would use now (its active backend, else Ollama).
    pub fn engine_kind(&self) -> EngineKind {
        if self.active_backend.as_deref() == Some("vllm") { EngineKind::Openai } else { EngineKind::Ollama }
    }

    /// As central's [`Capabilities`]: the models its engines really have (`ollama_models`,
    /// `vllm_models`) and its configured `llm_models`; only `llm_generate` (the one job central
    /// drives on it); the hardware it reports. `raw` (everything it sent) is kept in `extra`.
    pub fn into_capabilities(
        self,
        machine_id: &str,
        agent_base_url: &str,
        mut raw: Map<String, Value>,
    ) -> Capabilities {
        // Keys central's type has itself are read above; the rest (its flat hardware fields,
        // reachability, backends) stay as it sent them.
        for key in OWN_KEYS {
            raw.remove(*key);
        }
        let kind = self.engine_kind();
        let reachable = match kind {
            EngineKind::Openai => self.vllm_reachable,
            _ => self.ollama_reachable,
        };
        let mut models: Vec<String> = Vec::new();
        for m in self.ollama_models.iter().chain(&self.vllm_models).chain(&self.llm_models) {
            if !models.contains(m) {
                models.push(m.clone());
            }
        }
        let gpus = self
            .gpu_name
            .iter()
            .map(|name| GpuInfo {
                name: name.clone(),
                memory_total_bytes: self.gpu_vram_bytes,
                unified_memory: self.gpu_type.as_deref() == Some("unified"),
                cuda_compute: match self.cuda_compute.as_deref() {
                    Some([major, minor, ..]) => Some([*major, *minor]),
                    _ => None,
                },
                source: Some("original agent".into()),
                ..Default::default()
            })
            .collect();
        let hardware = Hardware {
            cpu_logical_cores: self.cpu_cores.unwrap_or(0),
            cpu_physical_cores: self.cpu_physical_cores,
            memory_total_bytes: self.total_system_ram_bytes.unwrap_or(0),
            unified_memory: self.gpu_type.as_deref() == Some("unified"),
            gpus,
            ..Default::default()
        };
        Capabilities {
            machine_id: self.machine_id.unwrap_or_else(|| machine_id.to_owned()),
            label: self.label.unwrap_or_else(|| machine_id.to_owned()),
            tests: self.tests.into_iter().filter(|t| t == "llm_generate").collect(),
            llm_models: models,
            whisper_models: self.whisper_models,
            sdxl_profiles: self.sdxl_profiles,
            engine: EngineInfo {
                kind,
                base_url: engine_label(agent_base_url),
                version: None,
                reachable: reachable.unwrap_or(false),
                fallback_reason: None,
            },
            models: Vec::new(),
            hardware,
            queue_limit: None,
            engine_fingerprint: None,
            client_ceiling: None,
            client_ceiling_unavailable: Some("an original bench-race agent does not measure its client ceiling".into()),
            image_engine: None,
            speech_engine: None,
            legacy: None,
            extra: raw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn its_capabilities_read_as_ours() {
        let raw = json!({"machine_id": "old", "label": "Old box", "tests": ["llm_generate", "whisper_transcribe"],
            "llm_models": ["llama3"], "whisper_models": [], "sdxl_profiles": [], "accelerator_type": "cuda",
            "gpu_name": "RTX 4090", "gpu_vram_bytes": 25_769_803_776u64, "gpu_type": "discrete", "cuda_compute": [8, 9],
            "cpu_cores": 32, "cpu_physical_cores": 16, "total_system_ram_bytes": 68_719_476_736u64,
            "ollama_reachable": true, "ollama_models": ["qwen2.5:7b", "llama3"], "vllm_reachable": false,
            "vllm_models": [], "active_backend": null, "comfyui_gpu_ok": null});
        let map = raw.as_object().cloned().unwrap();
        let caps: OriginalCapabilities = serde_json::from_value(raw).unwrap();
        let c = caps.into_capabilities("old", "http://old:9001", map);
        assert_eq!(c.tests, ["llm_generate"]);
        assert_eq!(c.llm_models, ["qwen2.5:7b", "llama3"]);
        assert_eq!((c.engine.kind, c.engine.reachable), (EngineKind::Ollama, true));
        assert_eq!(c.hardware.gpus[0].cuda_compute, Some([8, 9]));
        assert_eq!((c.hardware.cpu_logical_cores, c.hardware.memory_total_bytes), (32, 68_719_476_736));
        assert_eq!(c.extra["accelerator_type"], "cuda", "what it sent is kept");
        assert!(!c.extra.contains_key("tests"), "but not twice");
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!((v["tests"].clone(), v["cpu_cores"].clone()), (json!(["llm_generate"]), json!(32)));
        let h = health(OriginalHealth { ok: true, machine_id: None, label: None }, "old", "http://old:9001");
        assert_eq!((h.machine_id.as_str(), h.engine.checked_age_s), ("old", None));
        let done: OriginalDone =
            serde_json::from_value(json!({"ttft_ms": 12.5, "gen_tokens": 7, "gen_tokens_per_s": 30.0,
                "total_ms": 250.0, "model": "m", "engine": "mock", "fallback_reason": "ollama_unreachable"}))
            .unwrap();
        assert_eq!(done.engine_kind(), EngineKind::Mock);
    }
}
