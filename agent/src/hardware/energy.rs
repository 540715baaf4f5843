//! Energy per request and throttling.
//!
//! Two sources, each used only where it can be read:
//! - Linux RAPL counters (`/sys/class/powercap/intel-rapl:N/energy_uj`, the CPU packages; AMD
//!   CPUs expose the same interface): read at request start and end, exact to the counter.
//! - NVIDIA GPUs with NVML: the total energy counter (`nvmlDeviceGetTotalEnergyConsumption`, mJ,
//!   Volta and newer), read at request start and end like RAPL.
//! - Otherwise GPU power from the runtime sampler (`nvidia-smi power.draw`, amdgpu
//!   `power1_average`): integrated over the samples taken during the request (trapezoids; needs
//!   two samples).
//!
//! A machine with a GPU needs the GPU figure (CPU energy alone would flatter it). Where a figure
//! cannot be read, `energy_j` is null and `energy_unavailable` says why; nothing is estimated.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bench_shared::metrics::RequestMetrics;
use bench_shared::runtime::{RuntimeSample, integrate_power_j, throttled_during, tokens_per_j};

use super::sampler::Sampler;

const POWERCAP: &str = "/sys/class/powercap";

/// The CPU package energy counters.
#[derive(Debug, Clone)]
pub struct Rapl {
    /// `(energy_uj path, max_energy_range_uj)` per package.
    domains: Vec<(PathBuf, u64)>,
}

impl Rapl {
    /// Opens the package domains; `Err` says why energy cannot be read here.
    pub fn open() -> Result<Rapl, String> {
        Self::open_at(Path::new(POWERCAP))
    }

    pub fn open_at(root: &Path) -> Result<Rapl, String> {
        let entries = std::fs::read_dir(root).map_err(|_| {
            format!("no RAPL energy counters ({} absent: not Linux, a VM, or no driver)", root.display())
        })?;
        let mut domains: Vec<(PathBuf, u64)> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                // Top-level zones only (`intel-rapl:0`, not the sub-zone `intel-rapl:0:0`).
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("intel-rapl:") && n.matches(':').count() == 1)
            })
            .map(|p| {
                let max =
                    std::fs::read_to_string(p.join("max_energy_range_uj")).ok().and_then(|s| s.trim().parse().ok());
                (p.join("energy_uj"), max.unwrap_or(u64::MAX))
            })
            .collect();
        domains.sort();
        if domains.is_empty() {
            return Err(format!("no RAPL package domain under {}", root.display()));
        }
        let rapl = Rapl { domains };
        rapl.read_uj()?;
        Ok(rapl)
    }

    /// Sum of the package counters, microjoules.
    pub fn read_uj(&self) -> Result<u64, String> {
        self.domains.iter().try_fold(0u64, |sum, (path, _)| {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "RAPL counter {} not readable ({e}); since Linux 5.10 it is root-only: grant read access",
                    path.display()
                )
            })?;
            let v: u64 =
                text.trim().parse().map_err(|_| format!("RAPL counter {} unreadable: {text:?}", path.display()))?;
            Ok(sum.saturating_add(v))
        })
    }

    /// Counter difference, allowing one wrap of a single package counter.
    pub fn delta_uj(&self, start: u64, end: u64) -> u64 {
        if end >= start {
            end - start
        } else {
            let range = self.domains.first().map(|d| d.1).unwrap_or(u64::MAX);
            range.saturating_sub(start).saturating_add(end)
        }
    }
}

/// Reads energy around requests.
#[derive(Debug, Clone)]
pub struct EnergyMeter {
    rapl: Result<Rapl, String>,
    sampler: Option<Arc<Sampler>>,
}

/// What was read when a request started.
#[derive(Debug, Clone)]
pub struct Window {
    start_wall_s: f64,
    rapl_uj: Result<u64, String>,
    nvml_mj: Option<u64>,
}

/// The energy figures of one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnergyFigures {
    pub energy_j: Option<f64>,
    pub source: Option<String>,
    pub unavailable: Option<String>,
    pub throttled: Option<bool>,
}

impl EnergyMeter {
    pub fn new(rapl: Result<Rapl, String>, sampler: Option<Arc<Sampler>>) -> Self {
        EnergyMeter { rapl, sampler }
    }

    fn read_rapl(&self) -> Result<u64, String> {
        self.rapl.as_ref().map_err(Clone::clone).and_then(Rapl::read_uj)
    }

    /// Both counters: RAPL, and the NVML GPU energy counter where NVML loads and every GPU has one.
    fn read_counters(&self) -> (Result<u64, String>, Option<u64>) {
        let nvml = super::nvml::handle().ok().and_then(|n| super::nvml::total_energy_mj(&n).ok());
        (self.read_rapl(), nvml)
    }

    pub async fn start(&self) -> Window {
        let me = self.clone();
        let (rapl_uj, nvml_mj) = tokio::task::spawn_blocking(move || me.read_counters())
            .await
            .unwrap_or_else(|e| (Err(e.to_string()), None));
        Window { start_wall_s: crate::engine::wall_now_s(), rapl_uj, nvml_mj }
    }

    pub async fn finish(&self, w: Window) -> EnergyFigures {
        let me = self.clone();
        let (end_uj, end_mj) = tokio::task::spawn_blocking(move || me.read_counters())
            .await
            .unwrap_or_else(|e| (Err(e.to_string()), None));
        let gpu_counter_j = w.nvml_mj.zip(end_mj).map(|(a, b)| b.saturating_sub(a) as f64 / 1000.0);
        let end_s = crate::engine::wall_now_s();
        let cpu = match (&self.rapl, w.rapl_uj, end_uj) {
            (Ok(r), Ok(a), Ok(b)) => Ok(r.delta_uj(a, b) as f64 / 1e6),
            (Err(e), _, _) => Err(e.clone()),
            (_, Err(e), _) | (_, _, Err(e)) => Err(e),
        };
        let samples = self.sampler.as_ref().map(|s| s.snapshot()).unwrap_or_default();
        let margin = self.sampler.as_ref().map(|s| s.config.interval_s).unwrap_or(0.0);
        let during: Vec<RuntimeSample> = samples
            .into_iter()
            .filter(|s| s.timestamp_s >= w.start_wall_s - margin && s.timestamp_s <= end_s)
            .collect();
        combine(cpu, gpu_counter_j, &during, w.start_wall_s, end_s)
    }
}

/// Puts CPU and GPU energy together (see the module doc for the rules).
pub fn combine(
    cpu: Result<f64, String>,
    gpu_counter_j: Option<f64>,
    during: &[RuntimeSample],
    from_s: f64,
    to_s: f64,
) -> EnergyFigures {
    let throttled = throttled_during(during);
    if let Some(g) = gpu_counter_j {
        let (energy_j, source) = match &cpu {
            Ok(c) => (c + g, "rapl+nvml_energy_counter"),
            Err(_) => (g, "nvml_energy_counter"),
        };
        return EnergyFigures { energy_j: Some(energy_j), source: Some(source.into()), unavailable: None, throttled };
    }
    let has_gpu = during.iter().any(|s| !s.gpus.is_empty());
    let gpu: Option<Result<f64, String>> = has_gpu.then(|| {
        let points: Vec<(f64, f64)> = during
            .iter()
            .filter_map(|s| {
                let watts: Option<Vec<f64>> = s.gpus.iter().map(|g| g.power_w).collect();
                watts.map(|w| (s.timestamp_s, w.iter().sum()))
            })
            .collect();
        if points.is_empty() {
            return Err("the GPU does not report its power draw".to_owned());
        }
        integrate_power_j(&points, from_s, to_s)
            .ok_or_else(|| "request shorter than two GPU power samples (see runtime_sampler.interval_s)".to_owned())
    });
    let (energy_j, source, unavailable) = match (cpu, gpu) {
        (Ok(c), None) => (Some(c), Some("rapl"), None),
        (Ok(c), Some(Ok(g))) => (Some(c + g), Some("rapl+gpu_power_samples"), None),
        (Err(_), Some(Ok(g))) => (Some(g), Some("gpu_power_samples"), None),
        (_, Some(Err(e))) => (None, None, Some(format!("GPU energy: {e}"))),
        (Err(e), None) => (None, None, Some(format!("CPU energy: {e}"))),
    };
    EnergyFigures { energy_j, source: source.map(str::to_owned), unavailable, throttled }
}

impl EnergyFigures {
    /// Writes the figures into a request's metrics (`tokens_per_j` from its `gen_tokens`).
    pub fn apply(self, m: &mut RequestMetrics) {
        m.tokens_per_j = tokens_per_j(m.gen_tokens, self.energy_j);
        m.energy_j = self.energy_j;
        m.energy_source = self.source;
        m.energy_unavailable = self.unavailable;
        m.throttled = self.throttled;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_shared::runtime::GpuSample;

    fn gpu_sample(t: f64, power: Option<f64>, throttled: Option<bool>) -> RuntimeSample {
        RuntimeSample {
            timestamp_s: t,
            gpus: vec![GpuSample { power_w: power, throttled, ..Default::default() }],
            ..Default::default()
        }
    }

    #[test]
    fn rapl_from_a_powercap_tree_with_wrap() {
        let root = std::env::temp_dir().join(format!("rapl-{}", std::process::id()));
        for (zone, uj) in [("intel-rapl:0", "1000000"), ("intel-rapl:1", "500000"), ("intel-rapl:0:0", "7")] {
            std::fs::create_dir_all(root.join(zone)).unwrap();
            std::fs::write(root.join(zone).join("energy_uj"), uj).unwrap();
            std::fs::write(root.join(zone).join("max_energy_range_uj"), "262143328850").unwrap();
        }
        let r = Rapl::open_at(&root).unwrap();
        assert_eq!(r.read_uj(), Ok(1_500_000), "packages only, sub-zones are inside them");
        assert_eq!(r.delta_uj(262143328000, 150), 850 + 150);
        std::fs::remove_dir_all(&root).unwrap();
        assert!(Rapl::open_at(&root).unwrap_err().contains("absent"));
    }

    #[test]
    fn combining_sources_and_saying_why_not() {
        let cpu_only = combine(Ok(12.5), None, &[], 0.0, 1.0);
        assert_eq!((cpu_only.energy_j, cpu_only.source.as_deref()), (Some(12.5), Some("rapl")));
        let gpu = [gpu_sample(0.0, Some(300.0), Some(false)), gpu_sample(1.0, Some(300.0), Some(true))];
        let both = combine(Ok(10.0), None, &gpu, 0.0, 1.0);
        assert_eq!((both.energy_j, both.throttled), (Some(310.0), Some(true)));
        let gpu_alone = combine(Err("root only".into()), None, &gpu, 0.0, 1.0);
        assert_eq!(gpu_alone.source.as_deref(), Some("gpu_power_samples"));
        let short = combine(Ok(1.0), None, &gpu[..1], 0.0, 1.0);
        assert_eq!(short.energy_j, None, "CPU energy alone would flatter a GPU machine");
        assert!(short.unavailable.unwrap().contains("two GPU power samples"));
        let no_power = combine(Ok(1.0), None, &[gpu_sample(0.0, None, None), gpu_sample(1.0, None, None)], 0.0, 1.0);
        assert!(no_power.unavailable.unwrap().contains("does not report its power"));
        let none = combine(Err("no RAPL energy counters".into()), None, &[], 0.0, 1.0);
        assert_eq!((none.energy_j, none.unavailable.as_deref()), (None, Some("CPU energy: no RAPL energy counters")));
        // NVML's energy counter wins over power samples, even for a short request.
        let counted = combine(Ok(2.0), Some(40.5), &gpu[..1], 0.0, 1.0);
        assert_eq!((counted.energy_j, counted.source.as_deref()), (Some(42.5), Some("rapl+nvml_energy_counter")));
        assert_eq!(counted.throttled, Some(false));
    }
}
