//! Machine fingerprint for `/capabilities` (OS, kernel, host, CPU, memory, GPUs) and live
//! telemetry (the runtime sampler, energy per request).
//!
//! Discovery runs once (it reads /proc and may spawn `nvidia-smi`, `amd-smi`, `sysctl` or
//! `system_profiler`), off the async threads. A missing piece is `None`/empty, never a guess.
//!
//! # Layout
//! - [`linux`]: `/proc/cpuinfo`, `/proc/meminfo`.
//! - [`nvml`]: NVIDIA through NVML, loaded at run time (first choice).
//! - [`nvidia`]: `nvidia-smi` CSV (discovery and samples) where NVML cannot be loaded.
//! - [`amd`]: `amd-smi static --json` and sysfs (`/sys/class/drm/card*/device`).
//! - [`apple`]: `sysctl` and `system_profiler SPDisplaysDataType -json`.
//! - [`sampler`]: the runtime sampler task and its ring buffer.
//! - [`energy`]: RAPL energy counters and per-request energy / throttling.

pub mod amd;
pub mod apple;
pub mod energy;
pub mod linux;
pub mod nvidia;
pub mod nvml;
pub mod sampler;

use std::process::Command;

use bench_shared::hardware::{Hardware, HardwareOverrides};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

/// Detects the machine's hardware and applies `overrides`. Blocking: call it from `spawn_blocking`.
pub fn detect(overrides: &HardwareOverrides) -> Hardware {
    overrides.apply(probe())
}

fn probe() -> Hardware {
    let refresh =
        RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()).with_memory(MemoryRefreshKind::nothing().with_ram());
    let sys = System::new_with_specifics(refresh).ok();
    let cpus = sys.as_ref().map(|s| s.cpus()).unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok().map(|t| linux::parse_cpuinfo(&t));
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| linux::parse_meminfo(&t));
    let mut hw = Hardware {
        os: System::long_os_version().ok().or_else(|| System::name().ok()),
        hostname: System::host_name().ok(),
        cpu_brand: cpuinfo
            .as_ref()
            .and_then(|c| c.model_name.clone())
            .or_else(|| cpus.first().map(|c| c.brand().trim().to_owned()).filter(|b| !b.is_empty())),
        cpu_logical_cores: if cpus.is_empty() {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        } else {
            cpus.len()
        },
        cpu_physical_cores: cpuinfo
            .as_ref()
            .and_then(|c| c.physical_cores)
            .or_else(|| System::physical_core_count().ok()),
        memory_total_bytes: meminfo
            .map(|m| m.total_bytes)
            .unwrap_or_else(|| sys.as_ref().map(|s| s.total_memory()).unwrap_or(0)),
        gpus: Vec::new(),
        kernel: System::kernel_version().ok(),
        arch: Some(System::cpu_arch()).filter(|a| !a.is_empty()),
        unified_memory: false,
        overridden: Vec::new(),
    };
    match nvml::handle() {
        Ok(n) => hw.gpus.extend(nvml::read_all(&n).iter().map(nvml::to_info)),
        Err(_) => hw.gpus.extend(nvidia::discover()),
    }
    hw.gpus.extend(amd::discover());
    if cfg!(target_os = "macos") {
        apple::complete(&mut hw);
    }
    hw
}

/// Runs a probe command; its stdout when it exists and succeeds (a missing tool means "none").
pub(crate) fn run_tool(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uname(flag: &str) -> String {
        run_tool("uname", &[flag]).expect("uname runs").trim().to_owned()
    }

    /// The fingerprint agrees with what /proc and uname say on this (Linux) machine.
    #[test]
    #[cfg(target_os = "linux")]
    fn fingerprint_matches_proc_and_uname() {
        let hw = detect(&HardwareOverrides::default());
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let first_model = cpuinfo.lines().find_map(|l| {
            l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        });
        assert_eq!(hw.cpu_brand, first_model, "CPU model exactly as /proc/cpuinfo names it");
        let processors = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
        assert_eq!(hw.cpu_logical_cores, processors);
        let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        assert_eq!(hw.memory_total_bytes, mem_kb * 1024);
        assert_eq!(hw.kernel.as_deref(), Some(uname("-r").as_str()));
        assert_eq!(hw.arch.as_deref(), Some(uname("-m").as_str()));
        assert_eq!(hw.hostname.as_deref(), Some(uname("-n").as_str()));
        // No GPU tool answers here: no GPU, and nothing made up.
        if run_tool("nvidia-smi", &["-L"]).is_none() && amd::discover().is_empty() {
            assert!(hw.gpus.is_empty() && !hw.unified_memory, "{:?}", hw.gpus);
        }
        assert!(hw.overridden.is_empty());
    }
}
