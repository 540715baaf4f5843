//! The runtime sampler: every `interval_s` one [`RuntimeSample`] (CPU %, memory, GPUs, CPU
//! power) into a ring buffer of `buffer_len` samples (`GET /api/agent/runtime_metrics`), and
//! out to subscribers (the running job turns them into `runtime_metrics` events).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bench_shared::hardware::Hardware;
use bench_shared::runtime::{RuntimeBuffer, RuntimeSample};
use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
use tokio::sync::broadcast;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::energy::Rapl;

/// `runtime_sampler:` in agent.yaml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplerConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds between samples; at least [`MIN_INTERVAL_S`].
    #[serde(default = "one")]
    pub interval_s: f64,
    /// Samples kept (the newest).
    #[serde(default = "default_len")]
    pub buffer_len: usize,
}

pub const MIN_INTERVAL_S: f64 = 0.25;

fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}
fn default_len() -> usize {
    120
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig { enabled: true, interval_s: 1.0, buffer_len: 120 }
    }
}

impl SamplerConfig {
    /// `Err((key, message))` when a value is out of range.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(self.interval_s.is_finite() && self.interval_s >= MIN_INTERVAL_S) {
            return Err((
                "runtime_sampler.interval_s",
                format!("must be at least {MIN_INTERVAL_S} s, got {}", self.interval_s),
            ));
        }
        if self.buffer_len == 0 || self.buffer_len > 100_000 {
            return Err(("runtime_sampler.buffer_len", format!("must be 1 to 100000, got {}", self.buffer_len)));
        }
        Ok(())
    }
}

/// Takes one sample of the machine.
#[async_trait]
pub trait Probe: Send + 'static {
    async fn sample(&mut self) -> RuntimeSample;
}

/// The ring buffer and the fan-out of new samples.
#[derive(Debug)]
pub struct Sampler {
    pub config: SamplerConfig,
    ring: Mutex<VecDeque<RuntimeSample>>,
    tx: broadcast::Sender<RuntimeSample>,
}

impl Sampler {
    pub fn new(config: SamplerConfig) -> Self {
        let (tx, _) = broadcast::channel(16);
        Sampler { ring: Mutex::new(VecDeque::with_capacity(config.buffer_len)), config, tx }
    }

    /// Adds a sample, dropping the oldest beyond `buffer_len`.
    pub fn push(&self, sample: RuntimeSample) {
        {
            let mut ring = bench_shared::sync::lock(&self.ring);
            while ring.len() >= self.config.buffer_len.max(1) {
                ring.pop_front();
            }
            ring.push_back(sample.clone());
        }
        // No subscriber (no job running) is normal.
        let _ = self.tx.send(sample);
    }

    /// The samples held, oldest first.
    pub fn snapshot(&self) -> Vec<RuntimeSample> {
        bench_shared::sync::lock(&self.ring).iter().cloned().collect()
    }

    /// The buffer as `GET /api/agent/runtime_metrics` answers it.
    pub fn buffer(&self) -> RuntimeBuffer {
        RuntimeBuffer::from_samples(
            self.snapshot(),
            self.config.enabled,
            self.config.interval_s,
            self.config.buffer_len,
        )
    }

    /// New samples as they are taken.
    pub fn subscribe(&self) -> broadcast::Receiver<RuntimeSample> {
        self.tx.subscribe()
    }

    /// Samples every `interval_s` until `stop` fires. A slow probe delays the next tick rather
    /// than bunching samples up.
    pub async fn run(self: Arc<Self>, mut probe: impl Probe, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(self.config.interval_s.max(MIN_INTERVAL_S)));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let sample = probe.sample().await;
            self.push(sample);
        }
    }
}

/// The real machine: sysinfo for CPU and memory, `nvidia-smi` / amdgpu sysfs for GPUs (only
/// the vendors discovery found), RAPL for CPU package power.
pub struct SystemProbe {
    inner: Arc<Mutex<ProbeState>>,
}

struct ProbeState {
    /// `None` where sysinfo does not support the OS: CPU and memory unknown.
    sys: Option<System>,
    primed: bool,
    nvidia: bool,
    /// NVML when it loads, else `nvidia-smi` for NVIDIA GPUs.
    nvml: Option<Arc<nvml_wrapper::Nvml>>,
    amd: bool,
    rapl: Option<Rapl>,
    last_rapl: Option<(std::time::Instant, u64)>,
}

impl SystemProbe {
    pub fn new(hw: &Hardware) -> Self {
        let vendor =
            |v: &str| hw.gpus.iter().any(|g| g.vendor.as_deref() == Some(v) && g.source.as_deref() != Some("override"));
        let refresh = RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_usage())
            .with_memory(MemoryRefreshKind::nothing().with_ram());
        let sys = System::new_with_specifics(refresh).ok();
        let nvidia = vendor("NVIDIA");
        // Already loaded by discovery (process-wide), so this does not block.
        let nvml = if nvidia { super::nvml::handle().ok() } else { None };
        let state = ProbeState {
            sys,
            primed: false,
            nvidia,
            nvml,
            amd: vendor("AMD"),
            rapl: Rapl::open().ok(),
            last_rapl: None,
        };
        SystemProbe { inner: Arc::new(Mutex::new(state)) }
    }
}

impl ProbeState {
    fn sample(&mut self) -> RuntimeSample {
        if let Some(sys) = self.sys.as_mut() {
            sys.refresh_cpu_usage();
            sys.refresh_memory();
        }
        // The first refresh has nothing to compare with: CPU % is unknown, not 0.
        let cpu_pct = self.sys.as_ref().filter(|_| self.primed).map(|s| s.global_cpu_usage() as f64);
        self.primed = true;
        let mut gpus = Vec::new();
        match (&self.nvml, self.nvidia) {
            (Some(n), _) => gpus.extend(super::nvml::read_all(n).iter().map(super::nvml::to_sample)),
            (None, true) => gpus.extend(super::nvidia::sample()),
            (None, false) => {}
        }
        if self.amd {
            gpus.extend(super::amd::sample());
        }
        let now = std::time::Instant::now();
        let energy = self.rapl.as_ref().and_then(|r| r.read_uj().ok());
        let cpu_power_w = match (self.last_rapl, energy, self.rapl.as_ref()) {
            (Some((t0, e0)), Some(e1), Some(r)) => {
                let dt = now.duration_since(t0).as_secs_f64();
                (dt > 0.0).then(|| r.delta_uj(e0, e1) as f64 / 1e6 / dt)
            }
            _ => None,
        };
        self.last_rapl = energy.map(|e| (now, e));
        RuntimeSample {
            timestamp_s: crate::engine::wall_now_s(),
            cpu_pct,
            system_mem_used_bytes: self.sys.as_ref().map(System::used_memory).unwrap_or(0),
            system_mem_total_bytes: self.sys.as_ref().map(System::total_memory).unwrap_or(0),
            gpus,
            cpu_power_w,
        }
    }
}

#[async_trait]
impl Probe for SystemProbe {
    async fn sample(&mut self) -> RuntimeSample {
        let inner = self.inner.clone();
        // Reading /proc and spawning nvidia-smi block: keep them off the async threads.
        tokio::task::spawn_blocking(move || bench_shared::sync::lock(&inner).sample()).await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the (paused) clock at every sample.
    struct ClockProbe(Arc<Mutex<Vec<tokio::time::Instant>>>);

    #[async_trait]
    impl Probe for ClockProbe {
        async fn sample(&mut self) -> RuntimeSample {
            let mut seen = self.0.lock().unwrap();
            seen.push(tokio::time::Instant::now());
            RuntimeSample { timestamp_s: seen.len() as f64, ..Default::default() }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_its_interval_and_its_bound() {
        let sampler = Arc::new(Sampler::new(SamplerConfig { enabled: true, interval_s: 0.25, buffer_len: 5 }));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let mut rx = sampler.subscribe();
        let task = tokio::spawn(sampler.clone().run(ClockProbe(seen.clone()), stop.clone()));
        // Twelve samples arrive (the paused clock advances exactly to each tick).
        for _ in 0..12 {
            rx.recv().await.unwrap();
        }
        stop.cancel();
        task.await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() >= 12);
        for pair in seen.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(250), "one sample per interval");
        }
        let kept: Vec<f64> = sampler.snapshot().iter().map(|s| s.timestamp_s).collect();
        let n = seen.len() as f64;
        assert_eq!(kept, vec![n - 4.0, n - 3.0, n - 2.0, n - 1.0, n], "the newest buffer_len samples, oldest first");
        assert_eq!(sampler.buffer().timestamps.len(), 5);
    }

    #[test]
    fn config_bounds() {
        assert!(SamplerConfig::default().check().is_ok());
        let low = SamplerConfig { interval_s: 0.1, ..Default::default() };
        assert_eq!(low.check().unwrap_err().0, "runtime_sampler.interval_s");
        let empty = SamplerConfig { buffer_len: 0, ..Default::default() };
        assert_eq!(empty.check().unwrap_err().0, "runtime_sampler.buffer_len");
    }

    #[tokio::test]
    async fn the_real_probe_reads_this_machine() {
        let mut probe = SystemProbe::new(&Hardware::default());
        let first = probe.sample().await;
        let second = probe.sample().await;
        assert_eq!(first.cpu_pct, None, "no previous reading: unknown, not 0");
        assert!(second.cpu_pct.is_some_and(|p| (0.0..=100.0).contains(&p)), "{second:?}");
        assert!(second.system_mem_used_bytes > 0 && second.system_mem_used_bytes <= second.system_mem_total_bytes);
        assert!(second.gpus.is_empty(), "no GPU discovered, none sampled");
    }
}
