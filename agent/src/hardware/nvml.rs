//! NVIDIA GPUs through NVML (`nvml-wrapper` loads `libnvidia-ml` at run time: no build-time
//! dependency; where the library is absent, [`handle`] fails and callers use `nvidia-smi`).
//!
//! Readings are first taken into [`NvmlReading`], in NVML's own units (bytes, mW, mJ, °C, MHz,
//! the `nvmlClocksThrottleReason*` bitmask), then converted by pure functions that tests drive
//! with readings written from NVML's documentation.

use std::sync::{Arc, OnceLock};

use bench_shared::hardware::GpuInfo;
use bench_shared::runtime::GpuSample;
use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};

/// NVML's throttle reasons that mean thermal or power limits, with the names `nvidia-smi` uses.
pub const THERMAL_OR_POWER: [(u64, &str); 4] = [
    (0x04, "sw_power_cap"),            // nvmlClocksThrottleReasonSwPowerCap
    (0x20, "sw_thermal_slowdown"),     // nvmlClocksThrottleReasonSwThermalSlowdown
    (0x40, "hw_thermal_slowdown"),     // nvmlClocksThrottleReasonHwThermalSlowdown
    (0x80, "hw_power_brake_slowdown"), // nvmlClocksThrottleReasonHwPowerBrakeSlowdown
];

/// One GPU as NVML reports it (`None`: the call is not supported on this GPU).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NvmlReading {
    pub index: u32,
    pub name: String,
    pub driver: Option<String>,
    pub cuda_compute: Option<(i32, i32)>,
    pub memory_total_bytes: Option<u64>,
    pub memory_used_bytes: Option<u64>,
    pub util_gpu_pct: Option<u32>,
    pub power_mw: Option<u32>,
    /// Energy since the driver loaded (Volta and newer).
    pub total_energy_mj: Option<u64>,
    pub temperature_c: Option<u32>,
    pub sm_clock_mhz: Option<u32>,
    pub mem_clock_mhz: Option<u32>,
    pub throttle_reasons: Option<u64>,
}

/// The NVML library, loaded once per process (NVML is itself process-global; `Nvml` is
/// `Send + Sync`). Blocking: call from a blocking context.
pub fn handle() -> Result<Arc<Nvml>, String> {
    static NVML: OnceLock<Result<Arc<Nvml>, String>> = OnceLock::new();
    NVML.get_or_init(|| Nvml::init().map(Arc::new).map_err(|e| format!("NVML unavailable: {e}"))).clone()
}

/// Reads every GPU NVML sees.
pub fn read_all(nvml: &Nvml) -> Vec<NvmlReading> {
    let driver = nvml.sys_driver_version().ok();
    let count = nvml.device_count().unwrap_or(0);
    (0..count)
        .filter_map(|i| {
            let d = nvml.device_by_index(i).ok()?;
            let mem = d.memory_info().ok();
            Some(NvmlReading {
                index: i,
                name: d.name().ok()?,
                driver: driver.clone(),
                cuda_compute: d.cuda_compute_capability().ok().map(|c| (c.major, c.minor)),
                memory_total_bytes: mem.as_ref().map(|m| m.total),
                memory_used_bytes: mem.as_ref().map(|m| m.used),
                util_gpu_pct: d.utilization_rates().ok().map(|u| u.gpu),
                power_mw: d.power_usage().ok(),
                total_energy_mj: d.total_energy_consumption().ok(),
                temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
                sm_clock_mhz: d.clock_info(Clock::SM).ok(),
                mem_clock_mhz: d.clock_info(Clock::Memory).ok(),
                throttle_reasons: d.current_throttle_reasons().ok().map(|r| r.bits()),
            })
        })
        .collect()
}

/// Total GPU energy counter over every GPU, millijoules; `Err` when a GPU cannot report it.
pub fn total_energy_mj(nvml: &Nvml) -> Result<u64, String> {
    let count = nvml.device_count().map_err(|e| e.to_string())?;
    if count == 0 {
        return Err("NVML lists no GPU".into());
    }
    (0..count).try_fold(0u64, |sum, i| {
        let d = nvml.device_by_index(i).map_err(|e| e.to_string())?;
        let mj = d.total_energy_consumption().map_err(|e| format!("GPU {i} has no energy counter: {e}"))?;
        Ok(sum.saturating_add(mj))
    })
}

pub fn to_info(r: &NvmlReading) -> GpuInfo {
    GpuInfo {
        name: r.name.clone(),
        vendor: Some("NVIDIA".into()),
        memory_total_bytes: r.memory_total_bytes,
        unified_memory: false,
        driver: r.driver.clone(),
        cuda_compute: r.cuda_compute.and_then(|(a, b)| Some([u32::try_from(a).ok()?, u32::try_from(b).ok()?])),
        gpu_cores: None,
        source: Some("nvml".into()),
    }
}

pub fn to_sample(r: &NvmlReading) -> GpuSample {
    GpuSample {
        index: r.index,
        util_pct: r.util_gpu_pct.map(f64::from),
        vram_used_bytes: r.memory_used_bytes,
        vram_total_bytes: r.memory_total_bytes,
        temperature_c: r.temperature_c.map(f64::from),
        power_w: r.power_mw.map(|mw| f64::from(mw) / 1000.0),
        sm_clock_mhz: r.sm_clock_mhz,
        mem_clock_mhz: r.mem_clock_mhz,
        throttled: r.throttle_reasons.map(|bits| THERMAL_OR_POWER.iter().any(|(b, _)| bits & b != 0)),
        throttle_reasons: r
            .throttle_reasons
            .map(|bits| THERMAL_OR_POWER.iter().filter(|(b, _)| bits & b != 0).map(|(_, n)| (*n).to_owned()).collect())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An H100 as NVML reports it under load (units as NVML documents them).
    fn h100() -> NvmlReading {
        NvmlReading {
            index: 0,
            name: "NVIDIA H100 80GB HBM3".into(),
            driver: Some("550.54.15".into()),
            cuda_compute: Some((9, 0)),
            memory_total_bytes: Some(85_520_809_984),
            memory_used_bytes: Some(73_530_212_352),
            util_gpu_pct: Some(97),
            power_mw: Some(698_520),
            total_energy_mj: Some(1_234_567_890),
            temperature_c: Some(83),
            sm_clock_mhz: Some(1980),
            mem_clock_mhz: Some(2619),
            // GpuIdle (0x1) is not a limit; SwPowerCap (0x4) is.
            throttle_reasons: Some(0x1 | 0x4),
        }
    }

    #[test]
    fn nvml_shaped_readings_convert_with_their_units() {
        let info = to_info(&h100());
        assert_eq!((info.cuda_compute, info.source.as_deref()), (Some([9, 0]), Some("nvml")));
        assert_eq!((info.memory_total_bytes, info.driver.as_deref()), (Some(85_520_809_984), Some("550.54.15")));
        let s = to_sample(&h100());
        assert_eq!((s.power_w, s.util_pct, s.temperature_c), (Some(698.52), Some(97.0), Some(83.0)));
        assert_eq!((s.throttled, s.throttle_reasons.clone()), (Some(true), vec!["sw_power_cap".to_owned()]));
        let idle = to_sample(&NvmlReading { throttle_reasons: Some(0x1), ..h100() });
        assert_eq!((idle.throttled, idle.throttle_reasons.len()), (Some(false), 0), "idle is not throttling");
        let old = to_sample(&NvmlReading { throttle_reasons: None, power_mw: None, ..h100() });
        assert_eq!((old.throttled, old.power_w), (None, None), "unsupported calls stay unknown");
    }

    #[test]
    fn without_the_library_nvml_is_unavailable_and_says_so() {
        // No NVIDIA driver on this machine: loading fails cleanly. Where it loads, it lists GPUs.
        match handle() {
            Err(e) => assert!(e.starts_with("NVML unavailable"), "{e}"),
            Ok(nvml) => assert!(read_all(&nvml).iter().all(|r| !r.name.is_empty())),
        }
    }
}
