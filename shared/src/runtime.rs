//! Live telemetry: one [`RuntimeSample`] per sampler tick (the `runtime_metrics` event's payload),
//! the original bench-race's buffer shape ([`RuntimeBuffer`]), and pure arithmetic over samples
//! (energy from power samples, throttling over a window).

use serde::{Deserialize, Serialize};

/// One GPU at one instant. `None` where the probe could not read the figure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuSample {
    pub index: u32,
    pub util_pct: Option<f64>,
    pub vram_used_bytes: Option<u64>,
    pub vram_total_bytes: Option<u64>,
    pub temperature_c: Option<f64>,
    pub power_w: Option<f64>,
    pub sm_clock_mhz: Option<u32>,
    pub mem_clock_mhz: Option<u32>,
    /// The GPU reported thermal or power clock limits at this instant (`None`: not reported).
    pub throttled: Option<bool>,
    /// Active throttle reasons as the probe names them (`hw_thermal_slowdown`, `sw_power_cap`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throttle_reasons: Vec<String>,
}

/// The machine at one instant (`runtime_metrics` event payload, one entry of the ring buffer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeSample {
    /// Wall-clock epoch seconds of the sample.
    pub timestamp_s: f64,
    /// Whole-machine CPU utilisation since the previous sample, 0–100.
    pub cpu_pct: Option<f64>,
    pub system_mem_used_bytes: u64,
    pub system_mem_total_bytes: u64,
    pub gpus: Vec<GpuSample>,
    /// CPU package power from RAPL energy counters over the last interval, watts.
    #[serde(default)]
    pub cpu_power_w: Option<f64>,
}

impl RuntimeSample {
    /// True when any GPU reports throttling now; `None` when no GPU reports it at all.
    pub fn throttled(&self) -> Option<bool> {
        let flags: Vec<bool> = self.gpus.iter().filter_map(|g| g.throttled).collect();
        (!flags.is_empty()).then(|| flags.iter().any(|t| *t))
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// `GET /api/agent/runtime_metrics`: the ring buffer in the original bench-race's shape (parallel
/// arrays, GPU 0 only, MiB), plus the samples themselves with every GPU and figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeBuffer {
    pub cpu_pct: Vec<Option<f64>>,
    pub gpu_pct: Vec<Option<f64>>,
    pub vram_used_mib: Vec<Option<f64>>,
    pub vram_total_mib: Vec<Option<f64>>,
    pub system_mem_used_mib: Vec<f64>,
    pub timestamps: Vec<f64>,
    /// Whether GPU utilisation could be read on this machine at all.
    pub gpu_metrics_available: bool,
    pub enabled: bool,
    pub interval_s: f64,
    pub buffer_len: usize,
    pub samples: Vec<RuntimeSample>,
}

impl RuntimeBuffer {
    pub fn from_samples(samples: Vec<RuntimeSample>, enabled: bool, interval_s: f64, buffer_len: usize) -> Self {
        let gpu0 = |s: &RuntimeSample| s.gpus.first().cloned().unwrap_or_default();
        let mib = |b: Option<u64>| b.map(|b| (b as f64 / MIB).round());
        RuntimeBuffer {
            cpu_pct: samples.iter().map(|s| s.cpu_pct).collect(),
            gpu_pct: samples.iter().map(|s| gpu0(s).util_pct).collect(),
            vram_used_mib: samples.iter().map(|s| mib(gpu0(s).vram_used_bytes)).collect(),
            vram_total_mib: samples.iter().map(|s| mib(gpu0(s).vram_total_bytes)).collect(),
            system_mem_used_mib: samples.iter().map(|s| (s.system_mem_used_bytes as f64 / MIB).round()).collect(),
            timestamps: samples.iter().map(|s| s.timestamp_s).collect(),
            gpu_metrics_available: samples.iter().any(|s| s.gpus.iter().any(|g| g.util_pct.is_some())),
            enabled,
            interval_s,
            buffer_len,
            samples,
        }
    }
}

/// Energy of a window from power samples: trapezoids between consecutive samples inside
/// `[from_s, to_s]`, in joules. `None` when fewer than two samples with power fall in the window
/// (too short to integrate honestly).
pub fn integrate_power_j(points: &[(f64, f64)], from_s: f64, to_s: f64) -> Option<f64> {
    let inside: Vec<&(f64, f64)> = points.iter().filter(|(t, w)| *t >= from_s && *t <= to_s && w.is_finite()).collect();
    if inside.len() < 2 {
        return None;
    }
    Some(inside.windows(2).map(|p| (p[1].0 - p[0].0) * (p[0].1 + p[1].1) / 2.0).sum())
}

/// Tokens per joule, where both figures are usable.
pub fn tokens_per_j(tokens: u64, energy_j: Option<f64>) -> Option<f64> {
    energy_j.filter(|e| *e > 0.0 && e.is_finite()).map(|e| tokens as f64 / e)
}

/// Whether the GPU throttled during a window of samples: `Some(true)` if any sample says so,
/// `Some(false)` if samples report it and none did, `None` when no sample reports it.
pub fn throttled_during(samples: &[RuntimeSample]) -> Option<bool> {
    samples.iter().filter_map(RuntimeSample::throttled).reduce(|a, b| a || b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, util: Option<f64>, throttled: Option<bool>) -> RuntimeSample {
        RuntimeSample {
            timestamp_s: t,
            cpu_pct: Some(50.0),
            system_mem_used_bytes: 2 << 20,
            system_mem_total_bytes: 8 << 20,
            gpus: vec![GpuSample {
                util_pct: util,
                vram_used_bytes: Some(3 << 20),
                vram_total_bytes: Some(24 << 20),
                throttled,
                ..Default::default()
            }],
            cpu_power_w: None,
        }
    }

    #[test]
    fn buffer_has_the_original_parallel_arrays() {
        let b =
            RuntimeBuffer::from_samples(vec![sample(1.0, Some(90.0), None), sample(2.0, None, None)], true, 1.0, 120);
        let v = serde_json::to_value(&b).unwrap();
        for key in ["cpu_pct", "gpu_pct", "vram_used_mib", "vram_total_mib", "system_mem_used_mib", "timestamps"] {
            assert_eq!(v[key].as_array().map(Vec::len), Some(2), "{key}: {v}");
        }
        assert_eq!(v["gpu_pct"], serde_json::json!([90.0, null]));
        assert_eq!((v["vram_used_mib"][0].as_f64(), v["system_mem_used_mib"][0].as_f64()), (Some(3.0), Some(2.0)));
        assert_eq!(v["gpu_metrics_available"], true);
        let none = RuntimeBuffer::from_samples(vec![RuntimeSample::default()], true, 1.0, 120);
        assert!(!none.gpu_metrics_available && none.gpu_pct == vec![None]);
    }

    #[test]
    fn energy_integrates_power_inside_the_window_only() {
        let pts = [(0.0, 100.0), (1.0, 100.0), (2.0, 200.0), (3.0, 200.0), (9.0, 1000.0)];
        assert_eq!(integrate_power_j(&pts, 0.0, 3.0), Some(100.0 + 150.0 + 200.0));
        assert_eq!(integrate_power_j(&pts, 0.5, 1.5), None, "one sample cannot be integrated");
        assert_eq!(tokens_per_j(90, Some(450.0)), Some(0.2));
        assert_eq!(tokens_per_j(90, Some(0.0)), None);
        assert_eq!(tokens_per_j(90, None), None);
    }

    #[test]
    fn throttling_over_a_window() {
        assert_eq!(throttled_during(&[sample(0.0, None, None)]), None);
        assert_eq!(throttled_during(&[sample(0.0, None, Some(false)), sample(1.0, None, None)]), Some(false));
        assert_eq!(throttled_during(&[sample(0.0, None, Some(false)), sample(1.0, None, Some(true))]), Some(true));
    }
}
