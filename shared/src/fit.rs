//! Model fit: does a model, with the KV cache of the requested context, fit the memory it would
//! run from (the GPUs' VRAM, unified memory, or RAM)?
//!
//! Only real figures count: the weights' size as the engine reports it and the KV cache from the
//! model's own layer and head counts. A model whose size the engine does not report gets no
//! verdict (`model_fit: null` with the reason), never a size guessed from its name.

use serde::{Deserialize, Serialize};

use crate::engine::ModelInfo;
use crate::hardware::Hardware;

/// The verdict, in the original bench-race's spirit (`good | marginal | no`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitLabel {
    /// Needs at most [`GOOD_SHARE`] of the memory: room for the runtime and other processes.
    Good,
    /// Fits, but with little headroom: expect pressure, swapping or partial offload.
    Marginal,
    /// Needs more than the memory has.
    No,
}

/// Which memory the model would run from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitMemory {
    /// The discrete GPUs' VRAM, summed (engines split layers across GPUs).
    Vram,
    /// Apple unified memory: the share the GPU may wire ([`UNIFIED_GPU_SHARE`] of RAM).
    Unified,
    /// No GPU: system RAM.
    Ram,
}

/// A model needing at most this share of the memory fits well.
pub const GOOD_SHARE: f64 = 0.8;
/// macOS lets the GPU wire about three quarters of unified memory by default.
pub const UNIFIED_GPU_SHARE: f64 = 0.75;
/// KV cache element size: engines keep K and V in f16 by default.
pub const KV_BYTES_PER_ELEMENT: u64 = 2;

/// One model on one machine, with the numbers behind the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFit {
    pub model: String,
    /// `None` when the figures needed are unknown (see `reason`).
    pub model_fit: Option<FitLabel>,
    pub num_ctx: u64,
    /// The model's size as the engine reports it.
    pub weights_bytes: Option<u64>,
    /// `kv_bytes_per_token × num_ctx`; `None` when the engine gives no layer/head counts.
    pub kv_cache_bytes: Option<u64>,
    /// Weights plus KV cache (weights alone when the KV cache is unknown, as `reason` says).
    pub required_bytes: Option<u64>,
    pub memory: FitMemory,
    pub available_bytes: u64,
    /// The verdict in words, with the numbers.
    pub reason: String,
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
}

/// The memory `hw` would run a model from, and how much of it is usable.
pub fn fit_memory(hw: &Hardware) -> (FitMemory, u64) {
    let unified = hw.unified_memory || hw.gpus.iter().any(|g| g.unified_memory);
    let vram: u64 = hw.gpus.iter().filter(|g| !g.unified_memory).filter_map(|g| g.memory_total_bytes).sum();
    if unified {
        (FitMemory::Unified, (hw.memory_total_bytes as f64 * UNIFIED_GPU_SHARE) as u64)
    } else if vram > 0 {
        (FitMemory::Vram, vram)
    } else {
        (FitMemory::Ram, hw.memory_total_bytes)
    }
}

/// Whether `model` with a `num_ctx`-token KV cache fits `hw`.
pub fn model_fit(model: &ModelInfo, hw: &Hardware, num_ctx: u64) -> ModelFit {
    let (memory, available_bytes) = fit_memory(hw);
    let kv_cache_bytes = model.kv_bytes_per_token.map(|b| b.saturating_mul(num_ctx));
    let weights_bytes = model.size_bytes.filter(|s| *s > 0);
    let required_bytes = weights_bytes.map(|w| w.saturating_add(kv_cache_bytes.unwrap_or(0)));
    let memory_name = match memory {
        FitMemory::Vram => "VRAM",
        FitMemory::Unified => "GPU-usable unified memory",
        FitMemory::Ram => "RAM",
    };
    let (model_fit, reason) = match (required_bytes, available_bytes) {
        (None, _) => (None, "the engine does not report this model's size: fit not assessed".to_owned()),
        (Some(_), 0) => (None, format!("the machine's {memory_name} is unknown: fit not assessed")),
        (Some(need), have) => {
            let label = if need as f64 <= GOOD_SHARE * have as f64 {
                FitLabel::Good
            } else if need <= have {
                FitLabel::Marginal
            } else {
                FitLabel::No
            };
            let kv = match kv_cache_bytes {
                Some(kv) => format!(" + KV cache {} ({num_ctx} tokens)", gib(kv)),
                None => " (KV cache not estimated: the engine gives no layer/head counts)".to_owned(),
            };
            let weights = gib(weights_bytes.unwrap_or(0));
            let pct = need as f64 / have as f64 * 100.0;
            (Some(label), format!("weights {weights}{kv} = {:.0}% of {} {memory_name}", pct, gib(have)))
        }
    };
    ModelFit {
        model: model.name.clone(),
        model_fit,
        num_ctx,
        weights_bytes,
        kv_cache_bytes,
        required_bytes,
        memory,
        available_bytes,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::GpuInfo;

    const GIB: u64 = 1 << 30;

    fn model(size: Option<u64>, kv_per_token: Option<u64>) -> ModelInfo {
        ModelInfo { name: "m".into(), size_bytes: size, kv_bytes_per_token: kv_per_token, ..Default::default() }
    }

    fn gpu_box(vram: u64) -> Hardware {
        Hardware {
            memory_total_bytes: 128 * GIB,
            gpus: vec![GpuInfo { name: "g".into(), memory_total_bytes: Some(vram), ..Default::default() }],
            ..Default::default()
        }
    }

    #[test]
    fn verdicts_on_vram_with_kv_cache() {
        // 8 GiB of weights + 1 MiB/token × 4096 = 12 GiB against 24 GiB: good.
        let f = model_fit(&model(Some(8 * GIB), Some(1 << 20)), &gpu_box(24 * GIB), 4096);
        assert_eq!((f.model_fit, f.memory), (Some(FitLabel::Good), FitMemory::Vram));
        assert_eq!((f.kv_cache_bytes, f.required_bytes), (Some(4 * GIB), Some(12 * GIB)));
        assert!(f.reason.contains("50%"), "{}", f.reason);
        // The same against 14 GiB: fits without 20% headroom.
        assert_eq!(
            model_fit(&model(Some(8 * GIB), Some(1 << 20)), &gpu_box(14 * GIB), 4096).model_fit,
            Some(FitLabel::Marginal)
        );
        // A longer context no longer fits.
        assert_eq!(
            model_fit(&model(Some(8 * GIB), Some(1 << 20)), &gpu_box(14 * GIB), 8192).model_fit,
            Some(FitLabel::No)
        );
    }

    #[test]
    fn unified_and_ram_and_unknowns() {
        let mac = Hardware { memory_total_bytes: 32 * GIB, unified_memory: true, ..Default::default() };
        let f = model_fit(&model(Some(20 * GIB), None), &mac, 4096);
        assert_eq!((f.memory, f.available_bytes), (FitMemory::Unified, 24 * GIB));
        assert_eq!(f.model_fit, Some(FitLabel::Marginal));
        assert!(f.reason.contains("KV cache not estimated"), "{}", f.reason);
        let cpu = Hardware { memory_total_bytes: 8 * GIB, ..Default::default() };
        assert_eq!(model_fit(&model(Some(GIB), None), &cpu, 4096).memory, FitMemory::Ram);
        let unknown = model_fit(&model(None, Some(1)), &cpu, 4096);
        assert_eq!((unknown.model_fit, unknown.required_bytes), (None, None));
        assert!(unknown.reason.contains("does not report"), "{}", unknown.reason);
        let v = serde_json::to_value(model_fit(&model(Some(GIB), None), &cpu, 4096)).unwrap();
        assert_eq!((v["model_fit"].as_str(), v["memory"].as_str()), (Some("good"), Some("ram")));
    }
}
