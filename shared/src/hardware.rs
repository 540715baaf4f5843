//! Machine fingerprint types (what hardware produced a result).

use serde::{Deserialize, Serialize};

/// One GPU as discovered on the machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuInfo {
    pub name: String,
    pub vendor: Option<String>,
    pub memory_total_bytes: Option<u64>,
    /// True for unified memory (Apple Silicon): GPU memory is system memory.
    pub unified_memory: bool,
}

/// What the agent knows about its machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    pub os: Option<String>,
    pub hostname: Option<String>,
    pub cpu_brand: Option<String>,
    pub cpu_logical_cores: usize,
    pub cpu_physical_cores: Option<usize>,
    pub memory_total_bytes: u64,
    pub gpus: Vec<GpuInfo>,
}
