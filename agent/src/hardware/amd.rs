//! AMD GPUs: `amd-smi static --json` for names and drivers, the amdgpu sysfs files
//! (`/sys/class/drm/card*/device`) for memory, utilisation, power and temperature.

use std::path::{Path, PathBuf};

use bench_shared::hardware::GpuInfo;
use bench_shared::runtime::GpuSample;
use serde_json::Value;

use super::run_tool;

const AMD_PCI_VENDOR: &str = "0x1002";
const DRM: &str = "/sys/class/drm";

/// AMD GPUs: from `amd-smi` when installed, else from sysfs.
pub fn discover() -> Vec<GpuInfo> {
    let from_smi = run_tool("amd-smi", &["static", "--json"])
        .and_then(|out| serde_json::from_str::<Value>(&out).ok())
        .map(|v| parse_amd_smi_static(&v))
        .unwrap_or_default();
    if from_smi.is_empty() { discover_sysfs(Path::new(DRM)) } else { from_smi }
}

/// One sample of every amdgpu card in sysfs.
pub fn sample() -> Vec<GpuSample> {
    sample_sysfs(Path::new(DRM))
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn read_u64(path: &Path) -> Option<u64> {
    read(path)?.parse().ok()
}

/// `cardN/device` directories of AMD GPUs under a DRM root, in card order.
fn amd_devices(drm: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(drm) else { return Vec::new() };
    let mut cards: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n: u32 = name.strip_prefix("card")?.parse().ok()?;
            let dev = e.path().join("device");
            (read(&dev.join("vendor")).as_deref() == Some(AMD_PCI_VENDOR)).then_some((n, dev))
        })
        .collect();
    cards.sort();
    cards.into_iter().map(|(_, d)| d).collect()
}

fn hwmon(dev: &Path, file: &str) -> Option<u64> {
    let dir = std::fs::read_dir(dev.join("hwmon")).ok()?;
    dir.flatten().find_map(|e| read_u64(&e.path().join(file)))
}

pub fn discover_sysfs(drm: &Path) -> Vec<GpuInfo> {
    amd_devices(drm)
        .iter()
        .map(|dev| GpuInfo {
            name: read(&dev.join("product_name")).unwrap_or_else(|| {
                format!("AMD GPU (PCI device {})", read(&dev.join("device")).unwrap_or_else(|| "unknown".into()))
            }),
            vendor: Some("AMD".into()),
            memory_total_bytes: read_u64(&dev.join("mem_info_vram_total")),
            unified_memory: false,
            source: Some("sysfs".into()),
            ..Default::default()
        })
        .collect()
}

pub fn sample_sysfs(drm: &Path) -> Vec<GpuSample> {
    amd_devices(drm)
        .iter()
        .enumerate()
        .map(|(i, dev)| GpuSample {
            index: i as u32,
            util_pct: read_u64(&dev.join("gpu_busy_percent")).map(|p| p as f64),
            vram_used_bytes: read_u64(&dev.join("mem_info_vram_used")),
            vram_total_bytes: read_u64(&dev.join("mem_info_vram_total")),
            // hwmon: temperature in millidegrees, power in microwatts.
            temperature_c: hwmon(dev, "temp1_input").map(|m| m as f64 / 1000.0),
            power_w: hwmon(dev, "power1_average").or_else(|| hwmon(dev, "power1_input")).map(|u| u as f64 / 1e6),
            ..Default::default()
        })
        .collect()
}

/// A size as amd-smi writes it across versions: `{"value": 196592, "unit": "MB"}`, a number of
/// MB, or `"196592 MB"`.
fn size_bytes(v: &Value) -> Option<u64> {
    let (n, unit) = match v {
        Value::Object(o) => {
            (o.get("value")?.as_f64()?, o.get("unit").and_then(Value::as_str).unwrap_or("MB").to_owned())
        }
        Value::Number(n) => (n.as_f64()?, "MB".to_owned()),
        Value::String(s) => {
            let mut parts = s.split_whitespace();
            (parts.next()?.parse().ok()?, parts.next().unwrap_or("MB").to_owned())
        }
        _ => return None,
    };
    let scale = match unit.to_ascii_uppercase().as_str() {
        "B" => 1.0,
        "KB" => 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => 1024.0 * 1024.0,
    };
    Some((n * scale) as u64)
}

/// `amd-smi static --json`: a list of GPUs (or `{"gpu_data": [...]}` in newer releases).
pub fn parse_amd_smi_static(v: &Value) -> Vec<GpuInfo> {
    let list = v.as_array().or_else(|| v.get("gpu_data").and_then(Value::as_array));
    list.into_iter()
        .flatten()
        .filter_map(|g| {
            let name =
                g.pointer("/asic/market_name").and_then(Value::as_str).filter(|n| !n.is_empty() && *n != "N/A")?;
            let vram = g.get("vram");
            let memory = vram.and_then(|v| v.get("size").or_else(|| v.get("vram_size_mb"))).and_then(size_bytes);
            Some(GpuInfo {
                name: name.to_owned(),
                vendor: Some("AMD".into()),
                memory_total_bytes: memory,
                unified_memory: false,
                driver: g.pointer("/driver/version").and_then(Value::as_str).map(str::to_owned),
                source: Some("amd-smi".into()),
                ..Default::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amd_smi_static_json_of_two_releases() {
        // ROCm 6.2-style output (fields as in amd-smi's documented JSON).
        let v: Value = serde_json::from_str(
            r#"[{"gpu":0,"asic":{"market_name":"AMD Instinct MI300X","vendor_id":"0x1002",
            "vendor_name":"Advanced Micro Devices Inc. [AMD/ATI]","device_id":"0x74a1"},
            "vram":{"type":"HBM","vendor":"N/A","size":{"value":196592,"unit":"MB"}},
            "driver":{"name":"amdgpu","version":"6.7.0"}}]"#,
        )
        .unwrap();
        let gpus = parse_amd_smi_static(&v);
        assert_eq!(gpus[0].name, "AMD Instinct MI300X");
        assert_eq!(gpus[0].memory_total_bytes, Some(196592 << 20));
        assert_eq!((gpus[0].driver.as_deref(), gpus[0].source.as_deref()), (Some("6.7.0"), Some("amd-smi")));
        let newer: Value = serde_json::from_str(
            r#"{"gpu_data":[{"gpu":0,"asic":{"market_name":"Radeon RX 7900 XTX"},
            "vram":{"size":"24576 MB"}}]}"#,
        )
        .unwrap();
        assert_eq!(parse_amd_smi_static(&newer)[0].memory_total_bytes, Some(24576 << 20));
        assert!(parse_amd_smi_static(&serde_json::json!({"error": "no GPU"})).is_empty());
    }

    #[test]
    fn sysfs_tree_and_no_gpu() {
        let root = std::env::temp_dir().join(format!("amd-sysfs-{}", std::process::id()));
        let dev = root.join("card1/device");
        std::fs::create_dir_all(dev.join("hwmon/hwmon3")).unwrap();
        std::fs::create_dir_all(root.join("card0/device")).unwrap();
        std::fs::write(root.join("card0/device/vendor"), "0x8086\n").unwrap();
        for (f, v) in [
            ("vendor", "0x1002"),
            ("device", "0x744c"),
            ("mem_info_vram_total", "25753026560"),
            ("mem_info_vram_used", "1073741824"),
            ("gpu_busy_percent", "42"),
            ("hwmon/hwmon3/power1_average", "250000000"),
            ("hwmon/hwmon3/temp1_input", "61000"),
        ] {
            std::fs::write(dev.join(f), format!("{v}\n")).unwrap();
        }
        let gpus = discover_sysfs(&root);
        assert_eq!(gpus.len(), 1, "the Intel card is not listed");
        assert_eq!(
            (gpus[0].name.as_str(), gpus[0].memory_total_bytes),
            ("AMD GPU (PCI device 0x744c)", Some(25753026560))
        );
        let s = sample_sysfs(&root);
        assert_eq!((s[0].util_pct, s[0].power_w, s[0].temperature_c), (Some(42.0), Some(250.0), Some(61.0)));
        assert_eq!(s[0].vram_used_bytes, Some(1 << 30));
        std::fs::remove_dir_all(&root).unwrap();
        assert!(discover_sysfs(&root).is_empty() && sample_sysfs(&root).is_empty());
    }
}
