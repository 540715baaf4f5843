//! Machine fingerprint for `/capabilities`: OS, host, CPU, memory, GPUs.
//!
//! Detection runs once (it reads /proc and may spawn `nvidia-smi`), off the async threads.
//! A missing piece is `None`/empty, never a guess.

use std::process::Command;

use bench_shared::hardware::{GpuInfo, Hardware};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

/// Detects the machine's hardware. Blocking: call it from `spawn_blocking`.
pub fn detect() -> Hardware {
    let refresh =
        RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()).with_memory(MemoryRefreshKind::nothing().with_ram());
    let sys = System::new_with_specifics(refresh).ok();
    let cpus = sys.as_ref().map(|s| s.cpus()).unwrap_or_default();
    Hardware {
        os: System::long_os_version().ok().or_else(|| System::name().ok()),
        hostname: System::host_name().ok(),
        cpu_brand: cpus.first().map(|c| c.brand().trim().to_owned()).filter(|b| !b.is_empty()),
        cpu_logical_cores: if cpus.is_empty() {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        } else {
            cpus.len()
        },
        cpu_physical_cores: System::physical_core_count().ok(),
        memory_total_bytes: sys.as_ref().map(|s| s.total_memory()).unwrap_or(0),
        gpus: nvidia_gpus(),
    }
}

/// NVIDIA GPUs via `nvidia-smi` (absent command or failure: no GPUs listed).
fn nvidia_gpus() -> Vec<GpuInfo> {
    let out =
        Command::new("nvidia-smi").args(["--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]).output();
    match out {
        Ok(o) if o.status.success() => parse_nvidia_smi(&String::from_utf8_lossy(&o.stdout)),
        _ => Vec::new(),
    }
}

/// Parses `name, memory.total` lines (MiB; `[N/A]` when unknown).
fn parse_nvidia_smi(text: &str) -> Vec<GpuInfo> {
    text.lines()
        .filter_map(|line| {
            let (name, mem) = line.rsplit_once(',')?;
            let name = name.trim();
            (!name.is_empty()).then(|| GpuInfo {
                name: name.to_owned(),
                vendor: Some("NVIDIA".into()),
                memory_total_bytes: mem.trim().parse::<u64>().ok().map(|mib| mib * 1024 * 1024),
                unified_memory: false,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nvidia_smi_csv() {
        let gpus = parse_nvidia_smi("NVIDIA H100 80GB HBM3, 81559\nNVIDIA GeForce RTX 4090, [N/A]\n\n");
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpus[0].memory_total_bytes, Some(81559 * 1024 * 1024));
        assert_eq!(gpus[1].memory_total_bytes, None);
    }

    #[test]
    fn detects_this_machine() {
        let hw = detect();
        assert!(hw.cpu_logical_cores >= 1);
        assert!(hw.memory_total_bytes > 0);
    }
}
