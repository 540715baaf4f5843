//! Linux `/proc` parsers (pure: they take the file's text).

/// What `/proc/cpuinfo` says about the CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    /// `model name` of the first processor, exactly as written (ARM kernels may omit it).
    pub model_name: Option<String>,
    pub logical_cores: usize,
    /// Distinct `(physical id, core id)` pairs; `None` when the kernel does not list them.
    pub physical_cores: Option<usize>,
}

fn value(line: &str) -> Option<(&str, &str)> {
    let (k, v) = line.split_once(':')?;
    Some((k.trim(), v.trim()))
}

pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut model_name = None;
    let mut logical_cores = 0;
    let mut cores = std::collections::BTreeSet::new();
    let (mut package, mut core) = (None, None);
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if let Some(c) = core.take() {
                cores.insert((package.take().unwrap_or(0u32), c));
            }
            continue;
        }
        match value(line) {
            Some(("processor", _)) => logical_cores += 1,
            Some(("model name", v)) if model_name.is_none() && !v.is_empty() => model_name = Some(v.to_owned()),
            Some(("physical id", v)) => package = v.parse().ok(),
            Some(("core id", v)) => core = v.parse::<u32>().ok(),
            _ => {}
        }
    }
    CpuInfo { model_name, logical_cores, physical_cores: (!cores.is_empty()).then_some(cores.len()) }
}

/// `/proc/meminfo` totals, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub total_bytes: u64,
    pub available_bytes: Option<u64>,
}

pub fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let kib = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = value(l)?;
            (k == key).then(|| v.trim_end_matches("kB").trim().parse::<u64>().ok()).flatten().map(|n| n * 1024)
        })
    };
    Some(MemInfo { total_bytes: kib("MemTotal")?, available_bytes: kib("MemAvailable") })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two-socket x86 layout with hyper-threading: 4 logical, 2 physical cores per … as the kernel writes it.
    const XEON: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\nphysical id\t: 0\ncore id\t\t: 0\n\n\
processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\nphysical id\t: 0\ncore id\t\t: 0\n\n\
processor\t: 2\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\nphysical id\t: 1\ncore id\t\t: 0\n\n\
processor\t: 3\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\nphysical id\t: 1\ncore id\t\t: 1\n\n";

    #[test]
    fn cpuinfo_counts_cores_and_keeps_the_model_name() {
        let c = parse_cpuinfo(XEON);
        assert_eq!(c.model_name.as_deref(), Some("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"));
        assert_eq!((c.logical_cores, c.physical_cores), (4, Some(3)));
        // An ARM kernel: no model name, no core ids.
        let arm = parse_cpuinfo("processor\t: 0\nBogoMIPS\t: 48.00\nCPU part\t: 0xd0c\n\nprocessor\t: 1\n");
        assert_eq!((arm.model_name, arm.logical_cores, arm.physical_cores), (None, 2, None));
    }

    #[test]
    fn meminfo_in_bytes() {
        let m =
            parse_meminfo("MemTotal:       24683792 kB\nMemFree:        15891576 kB\nMemAvailable:   22918024 kB\n");
        assert_eq!(m, Some(MemInfo { total_bytes: 24683792 * 1024, available_bytes: Some(22918024 * 1024) }));
        assert_eq!(parse_meminfo("garbage"), None);
    }
}
