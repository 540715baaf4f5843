//! NVIDIA GPUs through `nvidia-smi` CSV queries (`--format=csv,noheader,nounits`: MiB, %, °C,
//! W, MHz; a figure the GPU does not report reads `[N/A]` or `[Not Supported]`).
//!
//! `nvidia-smi` is NVML's own front-end, so the figures are NVML's; the agent uses it where the
//! NVML library itself cannot be loaded ([`super::nvml`]).

use bench_shared::hardware::GpuInfo;
use bench_shared::runtime::GpuSample;

use super::run_tool;

/// Discovery query; `compute_cap` needs a driver from 2022 on, hence the fallback query.
const DISCOVER: &str = "--query-gpu=index,name,memory.total,driver_version,compute_cap";
const DISCOVER_OLD: &str = "--query-gpu=index,name,memory.total,driver_version";
/// Sample query: utilisation, memory, temperature, power, clocks, and the throttle reasons
/// that mean thermal or power limits.
pub const SAMPLE: &str = "--query-gpu=index,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw,\
clocks.sm,clocks.mem,clocks_throttle_reasons.hw_thermal_slowdown,clocks_throttle_reasons.sw_thermal_slowdown,\
clocks_throttle_reasons.sw_power_cap,clocks_throttle_reasons.hw_power_brake_slowdown";
const THROTTLE_REASONS: [&str; 4] =
    ["hw_thermal_slowdown", "sw_thermal_slowdown", "sw_power_cap", "hw_power_brake_slowdown"];
const FORMAT: &str = "--format=csv,noheader,nounits";
const MIB: u64 = 1024 * 1024;

/// Every NVIDIA GPU `nvidia-smi` lists (none when the tool is absent or fails).
pub fn discover() -> Vec<GpuInfo> {
    run_tool("nvidia-smi", &[DISCOVER, FORMAT])
        .or_else(|| run_tool("nvidia-smi", &[DISCOVER_OLD, FORMAT]))
        .map(|out| parse_discovery(&out))
        .unwrap_or_default()
}

/// One sample of every NVIDIA GPU; empty when `nvidia-smi` is absent or fails.
pub fn sample() -> Vec<GpuSample> {
    run_tool("nvidia-smi", &[SAMPLE, FORMAT]).map(|out| parse_samples(&out)).unwrap_or_default()
}

fn fields(line: &str) -> Vec<&str> {
    line.split(',').map(str::trim).collect()
}

fn known(v: &str) -> Option<&str> {
    (!v.is_empty() && !v.starts_with('[') && v != "N/A").then_some(v)
}

fn num<T: std::str::FromStr>(v: Option<&&str>) -> Option<T> {
    v.and_then(|v| known(v)).and_then(|v| v.parse().ok())
}

/// Parses `index, name, memory.total[, driver_version[, compute_cap]]` lines. GPU names never
/// contain commas in nvidia-smi output, so a plain split is exact.
pub fn parse_discovery(text: &str) -> Vec<GpuInfo> {
    text.lines()
        .map(fields)
        .filter(|f| f.len() >= 3 && !f[1].is_empty())
        .map(|f| GpuInfo {
            name: f[1].to_owned(),
            vendor: Some("NVIDIA".into()),
            memory_total_bytes: num::<u64>(f.get(2)).map(|mib| mib * MIB),
            unified_memory: false,
            driver: f.get(3).and_then(|v| known(v)).map(str::to_owned),
            cuda_compute: f.get(4).and_then(|v| known(v)).and_then(|cc| {
                let (maj, min) = cc.split_once('.')?;
                Some([maj.parse().ok()?, min.parse().ok()?])
            }),
            gpu_cores: None,
            source: Some("nvidia-smi".into()),
        })
        .collect()
}

/// Parses lines of the [`SAMPLE`] query.
pub fn parse_samples(text: &str) -> Vec<GpuSample> {
    text.lines()
        .map(fields)
        .filter(|f| f.len() >= 8)
        .map(|f| {
            let flags: Vec<Option<bool>> = (8..12)
                .map(|i| match f.get(i).copied() {
                    Some("Active") => Some(true),
                    Some("Not Active") => Some(false),
                    _ => None,
                })
                .collect();
            let reported = flags.iter().any(Option::is_some);
            GpuSample {
                index: num(f.first()).unwrap_or(0),
                util_pct: num(f.get(1)),
                vram_used_bytes: num::<u64>(f.get(2)).map(|m| m * MIB),
                vram_total_bytes: num::<u64>(f.get(3)).map(|m| m * MIB),
                temperature_c: num(f.get(4)),
                power_w: num(f.get(5)),
                sm_clock_mhz: num(f.get(6)),
                mem_clock_mhz: num(f.get(7)),
                throttled: reported.then(|| flags.contains(&Some(true))),
                throttle_reasons: THROTTLE_REASONS
                    .iter()
                    .zip(&flags)
                    .filter(|(_, f)| **f == Some(true))
                    .map(|(r, _)| (*r).to_owned())
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_with_driver_and_compute_capability() {
        // As nvidia-smi prints the DISCOVER query (two GPUs; the second an older board).
        let gpus = parse_discovery(
            "0, NVIDIA H100 80GB HBM3, 81559, 550.54.15, 9.0\n1, NVIDIA GeForce RTX 4090, [N/A], 550.54.15, 8.9\n\n",
        );
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpus[0].memory_total_bytes, Some(81559 * MIB));
        assert_eq!((gpus[0].driver.as_deref(), gpus[0].cuda_compute), (Some("550.54.15"), Some([9, 0])));
        assert_eq!((gpus[1].memory_total_bytes, gpus[1].cuda_compute), (None, Some([8, 9])));
        // The fallback query without compute_cap.
        let old = parse_discovery("0, Tesla V100-SXM2-16GB, 16160, 470.82.01\n");
        assert_eq!((old[0].cuda_compute, old[0].driver.as_deref()), (None, Some("470.82.01")));
    }

    #[test]
    fn samples_with_throttling_and_missing_figures() {
        let text = "0, 97, 70123, 81559, 83, 698.52, 1980, 2619, Not Active, Not Active, Active, Not Active\n\
                    1, [N/A], 10, 24564, 40, [N/A], 210, 405, [Not Supported], [Not Supported], [Not Supported], [Not Supported]\n";
        let s = parse_samples(text);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].util_pct, s[0].power_w, s[0].temperature_c), (Some(97.0), Some(698.52), Some(83.0)));
        assert_eq!((s[0].vram_used_bytes, s[0].sm_clock_mhz), (Some(70123 * MIB), Some(1980)));
        assert_eq!((s[0].throttled, s[0].throttle_reasons.clone()), (Some(true), vec!["sw_power_cap".to_owned()]));
        assert_eq!((s[1].index, s[1].util_pct, s[1].power_w, s[1].throttled), (1, None, None, None));
        assert!(parse_samples("").is_empty());
    }
}
