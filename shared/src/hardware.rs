//! Machine fingerprint types (what hardware produced a result), and the flat fields the original
//! bench-race central reads from `/capabilities`.
//!
//! Every field the agent could not probe is `None`/empty, never a guess; a value taken from
//! `hardware_overrides` in agent.yaml is listed in [`Hardware::overridden`].

use serde::{Deserialize, Serialize};

/// One GPU as discovered on the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    pub name: String,
    /// `NVIDIA`, `AMD`, `Apple`, … as the probe names it.
    pub vendor: Option<String>,
    pub memory_total_bytes: Option<u64>,
    /// True for unified memory (Apple Silicon): GPU memory is system memory.
    pub unified_memory: bool,
    /// Driver version, where the probe reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// CUDA compute capability `[major, minor]` (NVIDIA only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_compute: Option<[u32; 2]>,
    /// GPU core count (Apple `sppci_cores`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_cores: Option<u32>,
    /// Which probe found it: `nvidia-smi`, `amd-smi`, `sysfs`, `system_profiler`, `override`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// What the agent knows about its machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    pub os: Option<String>,
    pub hostname: Option<String>,
    /// CPU model exactly as `/proc/cpuinfo` (`model name`) or `sysctl machdep.cpu.brand_string` names it.
    pub cpu_brand: Option<String>,
    pub cpu_logical_cores: usize,
    pub cpu_physical_cores: Option<usize>,
    pub memory_total_bytes: u64,
    pub gpus: Vec<GpuInfo>,
    /// Kernel release (`uname -r`).
    #[serde(default)]
    pub kernel: Option<String>,
    /// Machine architecture (`uname -m`: `x86_64`, `aarch64`, `arm64`).
    #[serde(default)]
    pub arch: Option<String>,
    /// GPU memory is system memory (Apple Silicon).
    #[serde(default)]
    pub unified_memory: bool,
    /// Fields set from `hardware_overrides` in agent.yaml rather than probed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<String>,
}

impl Hardware {
    /// The fingerprint in one line, for tables and reports: "AMD Ryzen 9 7950X (16 cores / 32
    /// threads) · 64 GiB RAM · NVIDIA GeForce RTX 4090 24 GiB · Linux x86_64". Parts the agent
    /// could not probe are left out, never guessed.
    pub fn one_line(&self) -> String {
        let mut parts = Vec::new();
        let cores = match (self.cpu_physical_cores, self.cpu_logical_cores) {
            (Some(p), l) if l > 0 && p != l => format!(" ({p} cores / {l} threads)"),
            (_, l) if l > 0 => format!(" ({l} threads)"),
            _ => String::new(),
        };
        match &self.cpu_brand {
            Some(b) => parts.push(format!("{}{cores}", b.trim())),
            None if !cores.is_empty() => parts.push(format!("CPU{cores}")),
            None => {}
        }
        if self.memory_total_bytes > 0 {
            let kind = if self.unified_memory { "unified memory" } else { "RAM" };
            parts.push(format!("{:.0} GiB {kind}", gib(self.memory_total_bytes)));
        }
        for g in &self.gpus {
            let mem = g.memory_total_bytes.filter(|_| !g.unified_memory).map(|m| format!(" {:.0} GiB", gib(m)));
            parts.push(format!("{}{}", g.name.trim(), mem.unwrap_or_default()));
        }
        let os: Vec<&str> = [self.os.as_deref(), self.arch.as_deref()].into_iter().flatten().collect();
        if !os.is_empty() {
            parts.push(os.join(" "));
        }
        parts.join(" · ")
    }
}

/// `hardware_overrides` in agent.yaml: what cannot be probed (a GPU behind a passthrough, a
/// marketing name). Each value given replaces the probed one and is listed in `overridden`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareOverrides {
    #[serde(default)]
    pub cpu_brand: Option<String>,
    #[serde(default)]
    pub memory_total_bytes: Option<u64>,
    /// Replaces every probed GPU.
    #[serde(default)]
    pub gpus: Option<Vec<GpuOverride>>,
    #[serde(default)]
    pub unified_memory: Option<bool>,
}

/// One GPU as written in `hardware_overrides.gpus`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuOverride {
    pub name: String,
    #[serde(default)]
    pub vendor: Option<String>,
    #[serde(default)]
    pub memory_total_bytes: Option<u64>,
    #[serde(default)]
    pub unified_memory: bool,
    #[serde(default)]
    pub cuda_compute: Option<[u32; 2]>,
}

impl HardwareOverrides {
    pub fn is_empty(&self) -> bool {
        *self == HardwareOverrides::default()
    }

    /// The probed fingerprint with these overrides applied and named in `overridden`.
    pub fn apply(&self, mut hw: Hardware) -> Hardware {
        if let Some(b) = &self.cpu_brand {
            hw.cpu_brand = Some(b.clone());
            hw.overridden.push("cpu_brand".into());
        }
        if let Some(m) = self.memory_total_bytes {
            hw.memory_total_bytes = m;
            hw.overridden.push("memory_total_bytes".into());
        }
        if let Some(gpus) = &self.gpus {
            hw.gpus = gpus
                .iter()
                .map(|g| GpuInfo {
                    name: g.name.clone(),
                    vendor: g.vendor.clone(),
                    memory_total_bytes: g.memory_total_bytes,
                    unified_memory: g.unified_memory,
                    cuda_compute: g.cuda_compute,
                    source: Some("override".into()),
                    ..Default::default()
                })
                .collect();
            hw.overridden.push("gpus".into());
        }
        if let Some(u) = self.unified_memory {
            hw.unified_memory = u;
            hw.overridden.push("unified_memory".into());
        }
        hw
    }
}

/// The original bench-race's accelerator kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AcceleratorType {
    Cuda,
    Metal,
    Rocm,
}

/// Discrete GPU with its own memory, or unified memory shared with the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuType {
    Discrete,
    Unified,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The flat `/capabilities` fields of the original bench-race agent, derived from the
/// fingerprint so its central shows hardware and model-fit badges for our agents too.
/// `*_gb` are GiB (bytes / 1024³) rounded to 0.1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegacyCapabilities {
    pub accelerator_type: Option<AcceleratorType>,
    pub accelerator_memory_gb: Option<f64>,
    pub system_memory_gb: f64,
    pub total_system_ram_bytes: u64,
    pub gpu_name: Option<String>,
    pub gpu_vram_bytes: Option<u64>,
    pub gpu_type: Option<GpuType>,
    pub cuda_compute: Option<[u32; 2]>,
    pub cpu_cores: usize,
    pub cpu_physical_cores: Option<usize>,
    /// Whether the engine this agent drives answered (the original only knew Ollama; its
    /// central reads this key for every agent). `engine.kind` says which engine it really is.
    pub ollama_reachable: bool,
    /// The models that engine serves.
    pub ollama_models: Vec<String>,
}

fn gib(bytes: u64) -> f64 {
    (bytes as f64 / GIB * 10.0).round() / 10.0
}

impl LegacyCapabilities {
    /// Derives the flat fields from `hw` (the first GPU is "the" GPU, as in the original) and
    /// the engine's reachability and model names.
    pub fn derive(hw: &Hardware, engine_reachable: bool, engine_models: Vec<String>) -> Self {
        let gpu = hw.gpus.first();
        let unified = hw.unified_memory || gpu.is_some_and(|g| g.unified_memory);
        let vendor = gpu.and_then(|g| g.vendor.as_deref()).unwrap_or("").to_ascii_lowercase();
        let accelerator_type = match gpu {
            Some(_) if unified && vendor.contains("apple") => Some(AcceleratorType::Metal),
            Some(_) if vendor.contains("nvidia") => Some(AcceleratorType::Cuda),
            Some(_) if vendor.contains("amd") => Some(AcceleratorType::Rocm),
            _ => None,
        };
        let gpu_vram_bytes = match gpu {
            Some(_) if unified => Some(hw.memory_total_bytes).filter(|b| *b > 0),
            Some(g) => g.memory_total_bytes,
            None => None,
        };
        LegacyCapabilities {
            accelerator_type,
            accelerator_memory_gb: accelerator_type.and(gpu_vram_bytes).map(gib),
            system_memory_gb: gib(hw.memory_total_bytes),
            total_system_ram_bytes: hw.memory_total_bytes,
            gpu_name: gpu.map(|g| g.name.clone()),
            gpu_vram_bytes,
            gpu_type: gpu.map(|_| if unified { GpuType::Unified } else { GpuType::Discrete }),
            cuda_compute: gpu.and_then(|g| g.cuda_compute),
            cpu_cores: hw.cpu_logical_cores,
            cpu_physical_cores: hw.cpu_physical_cores,
            ollama_reachable: engine_reachable,
            ollama_models: engine_models,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(name: &str, vendor: &str, mem: Option<u64>, unified: bool) -> GpuInfo {
        GpuInfo {
            name: name.into(),
            vendor: Some(vendor.into()),
            memory_total_bytes: mem,
            unified_memory: unified,
            ..Default::default()
        }
    }

    #[test]
    fn legacy_fields_for_cuda_metal_and_cpu_only() {
        let mut hw = Hardware { cpu_logical_cores: 32, memory_total_bytes: 64 << 30, ..Default::default() };
        let cpu = LegacyCapabilities::derive(&hw, false, vec![]);
        assert_eq!((cpu.accelerator_type, cpu.gpu_type, cpu.gpu_vram_bytes), (None, None, None));
        assert_eq!((cpu.system_memory_gb, cpu.cpu_cores), (64.0, 32));
        let v = serde_json::to_value(&cpu).unwrap();
        assert!(v["accelerator_type"].is_null() && v["gpu_name"].is_null(), "{v}");

        hw.gpus = vec![GpuInfo { cuda_compute: Some([8, 9]), ..gpu("RTX 4090", "NVIDIA", Some(24564 << 20), false) }];
        let cuda = LegacyCapabilities::derive(&hw, true, vec!["llama3".into()]);
        assert_eq!(cuda.accelerator_type, Some(AcceleratorType::Cuda));
        assert_eq!((cuda.gpu_type, cuda.cuda_compute), (Some(GpuType::Discrete), Some([8, 9])));
        assert_eq!((cuda.gpu_vram_bytes, cuda.accelerator_memory_gb), (Some(24564 << 20), Some(24.0)));
        let v = serde_json::to_value(&cuda).unwrap();
        assert_eq!((v["accelerator_type"].as_str(), v["gpu_type"].as_str()), (Some("cuda"), Some("discrete")));
        assert_eq!(v["cuda_compute"], serde_json::json!([8, 9]));

        hw.gpus = vec![gpu("Apple M2 Max", "Apple", None, true)];
        hw.unified_memory = true;
        let metal = LegacyCapabilities::derive(&hw, true, vec![]);
        assert_eq!((metal.accelerator_type, metal.gpu_type), (Some(AcceleratorType::Metal), Some(GpuType::Unified)));
        assert_eq!(metal.gpu_vram_bytes, Some(64 << 30), "unified: GPU memory is system memory");
        hw.gpus = vec![gpu("AMD Instinct MI300X", "AMD", Some(192 << 30), false)];
        hw.unified_memory = false;
        assert_eq!(LegacyCapabilities::derive(&hw, true, vec![]).accelerator_type, Some(AcceleratorType::Rocm));
    }

    #[test]
    fn one_line_fingerprint_leaves_out_what_is_unknown() {
        let hw = Hardware {
            os: Some("Linux".into()),
            cpu_brand: Some("AMD Ryzen 9 7950X ".into()),
            cpu_logical_cores: 32,
            cpu_physical_cores: Some(16),
            memory_total_bytes: 64 << 30,
            gpus: vec![gpu("NVIDIA GeForce RTX 4090", "NVIDIA", Some(24 << 30), false)],
            arch: Some("x86_64".into()),
            ..Default::default()
        };
        assert_eq!(
            hw.one_line(),
            "AMD Ryzen 9 7950X (16 cores / 32 threads) · 64 GiB RAM · NVIDIA GeForce RTX 4090 24 GiB · Linux x86_64"
        );
        let mac = Hardware {
            cpu_brand: Some("Apple M2 Max".into()),
            cpu_logical_cores: 12,
            memory_total_bytes: 32 << 30,
            unified_memory: true,
            gpus: vec![gpu("Apple M2 Max", "Apple", Some(32 << 30), true)],
            ..Default::default()
        };
        assert_eq!(mac.one_line(), "Apple M2 Max (12 threads) · 32 GiB unified memory · Apple M2 Max");
        assert_eq!(Hardware::default().one_line(), "");
    }

    #[test]
    fn overrides_replace_and_are_named() {
        let probed = Hardware { cpu_brand: Some("x".into()), memory_total_bytes: 1, ..Default::default() };
        let o: HardwareOverrides = serde_json::from_value(serde_json::json!({
            "memory_total_bytes": 1024, "gpus": [{"name": "A100 (passthrough)", "vendor": "NVIDIA", "memory_total_bytes": 42}]
        }))
        .unwrap();
        let hw = o.apply(probed);
        assert_eq!((hw.cpu_brand.as_deref(), hw.memory_total_bytes), (Some("x"), 1024));
        assert_eq!(hw.gpus[0].source.as_deref(), Some("override"));
        assert_eq!(hw.overridden, vec!["memory_total_bytes", "gpus"]);
        let err = serde_json::from_value::<HardwareOverrides>(serde_json::json!({"vram": 1})).unwrap_err();
        assert!(err.to_string().contains("vram"), "{err}");
    }

    #[test]
    fn older_fingerprints_still_parse() {
        let old = serde_json::json!({"os": "linux", "hostname": "h", "cpu_brand": "x", "cpu_logical_cores": 2,
            "cpu_physical_cores": 1, "memory_total_bytes": 10, "gpus": [{"name": "g", "vendor": null,
            "memory_total_bytes": null, "unified_memory": false}]});
        let hw: Hardware = serde_json::from_value(old).unwrap();
        assert_eq!((hw.kernel, hw.gpus[0].driver.clone()), (None, None));
    }
}
