//! Apple Silicon: `sysctl` for the CPU and memory, `system_profiler SPDisplaysDataType -json`
//! for the GPU (name and core count). GPU memory is the unified system memory.

use bench_shared::hardware::{GpuInfo, Hardware};
use serde_json::Value;

use super::run_tool;

/// Fills in what macOS tells through `sysctl` and `system_profiler` (called on macOS only).
pub fn complete(hw: &mut Hardware) {
    let sysctl = |key: &str| run_tool("sysctl", &["-n", key]).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if let Some(brand) = sysctl("machdep.cpu.brand_string") {
        hw.cpu_brand = Some(brand);
    }
    if let Some(mem) = sysctl("hw.memsize").and_then(|m| m.parse().ok()) {
        hw.memory_total_bytes = mem;
    }
    if let Some(p) = sysctl("hw.physicalcpu").and_then(|m| m.parse().ok()) {
        hw.cpu_physical_cores = Some(p);
    }
    let gpus = run_tool("system_profiler", &["SPDisplaysDataType", "-json"])
        .and_then(|out| serde_json::from_str::<Value>(&out).ok())
        .map(|v| parse_system_profiler(&v))
        .unwrap_or_default();
    if gpus.iter().any(|g| g.unified_memory) {
        hw.unified_memory = true;
    }
    hw.gpus.extend(gpus);
}

/// GPUs of `system_profiler SPDisplaysDataType -json`. Apple GPUs (`sppci_vendor_Apple`, or a
/// model named "Apple …") are unified-memory GPUs; `sppci_cores` is a string.
pub fn parse_system_profiler(v: &Value) -> Vec<GpuInfo> {
    let list = v.get("SPDisplaysDataType").and_then(Value::as_array).cloned().unwrap_or_default();
    list.iter()
        .filter_map(|d| {
            let name = d.get("sppci_model").or_else(|| d.get("_name")).and_then(Value::as_str)?.to_owned();
            let vendor_raw = d.get("spdisplays_vendor").or_else(|| d.get("sppci_vendor")).and_then(Value::as_str);
            let apple = vendor_raw.is_some_and(|v| v.contains("Apple")) || name.starts_with("Apple ");
            let vendor = if apple {
                Some("Apple".to_owned())
            } else {
                vendor_raw.map(|v| v.trim_start_matches("sppci_vendor_").to_owned())
            };
            Some(GpuInfo {
                name,
                vendor,
                memory_total_bytes: None,
                unified_memory: apple,
                gpu_cores: d.get("sppci_cores").and_then(Value::as_str).and_then(|c| c.trim().parse().ok()),
                source: Some("system_profiler".into()),
                ..Default::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apple_silicon_gpu_is_unified_with_its_core_count() {
        // As `system_profiler SPDisplaysDataType -json` prints it on an M2 Max (trimmed).
        let v: Value = serde_json::from_str(r#"{"SPDisplaysDataType":[{"_name":"Apple M2 Max","spdisplays_mtlgpufamilysupport":"spdisplays_metal3",
            "spdisplays_ndrvs":[{"_name":"Color LCD","spdisplays_main":"spdisplays_yes"}],"spdisplays_vendor":"sppci_vendor_Apple",
            "sppci_bus":"spdisplays_builtin","sppci_cores":"38","sppci_device_type":"spdisplays_gpu","sppci_model":"Apple M2 Max"}]}"#).unwrap();
        let gpus = parse_system_profiler(&v);
        assert_eq!(gpus.len(), 1);
        assert_eq!((gpus[0].name.as_str(), gpus[0].vendor.as_deref()), ("Apple M2 Max", Some("Apple")));
        assert!(gpus[0].unified_memory);
        assert_eq!(gpus[0].gpu_cores, Some(38));
        // An Intel Mac with a discrete AMD GPU: not unified.
        let intel: Value = serde_json::from_str(
            r#"{"SPDisplaysDataType":[{"_name":"AMD Radeon Pro 5500M","sppci_model":"AMD Radeon Pro 5500M",
            "spdisplays_vendor":"sppci_vendor_amd","spdisplays_vram":"8 GB"}]}"#,
        )
        .unwrap();
        let g = parse_system_profiler(&intel);
        assert!(!g[0].unified_memory && g[0].vendor.as_deref() == Some("amd"));
        assert!(parse_system_profiler(&serde_json::json!({})).is_empty());
    }
}
