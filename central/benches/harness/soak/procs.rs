//! The soak's processes: four `bench-agent`s and one `bench-central`, each restartable on the
//! port it first got, with signals for the injector and resident memory sampled per incarnation.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::Process;

/// One restartable process.
pub struct Proc {
    pub name: String,
    bin: PathBuf,
    /// Arguments of every start; `--port P` is added after the first.
    args: Vec<String>,
    pub port: u16,
    pub current: Option<Process>,
    /// Bumped at every start (RSS samples are grouped by incarnation).
    pub incarnation: u32,
    pub started_at: Instant,
}

impl Proc {
    /// Starts `bin args…` on port 0 and remembers the port it got.
    pub async fn start(name: &str, bin: &Path, args: Vec<String>) -> Result<Proc> {
        let mut all = args.clone();
        all.extend(["--port".into(), "0".into()]);
        let p = Process::start(bin, &all.iter().map(String::as_str).collect::<Vec<_>>()).await?;
        let port = port_of(&p.base_url)?;
        Ok(Proc {
            name: name.into(),
            bin: bin.into(),
            args,
            port,
            current: Some(p),
            incarnation: 1,
            started_at: Instant::now(),
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<String> {
        self.current.as_ref().map(|p| p.pid.clone())
    }

    /// Sends a signal (`STOP`, `CONT`, `TERM`, `KILL`).
    pub fn signal(&self, sig: &str) -> Result<()> {
        let pid = self.pid().context("not running")?;
        let ok = Command::new("kill").args([&format!("-{sig}"), &pid]).status()?.success();
        if !ok {
            bail!("kill -{sig} {pid} failed");
        }
        Ok(())
    }

    /// SIGTERM and wait for the exit (SIGKILL after `grace`).
    pub async fn terminate(&mut self, grace: Duration) -> Result<()> {
        self.signal("TERM")?;
        if let Some(mut p) = self.current.take()
            && tokio::time::timeout(grace, p.child.wait()).await.is_err()
        {
            let _ = p.child.kill().await;
        }
        Ok(())
    }

    /// SIGKILL (a crash).
    pub async fn kill(&mut self) {
        if let Some(mut p) = self.current.take() {
            let _ = p.child.kill().await;
            let _ = p.child.wait().await;
        }
    }

    /// Starts again on the same port (retrying while the port is not free yet).
    pub async fn restart(&mut self) -> Result<()> {
        let mut all = self.args.clone();
        all.extend(["--port".into(), self.port.to_string()]);
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut last = None;
        for _ in 0..20 {
            match Process::start(&self.bin, &args).await {
                Ok(p) => {
                    self.current = Some(p);
                    self.incarnation += 1;
                    self.started_at = Instant::now();
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no start")).context(format!("restart {}", self.name)))
    }

    pub async fn stop(&mut self) {
        self.kill().await;
    }
}

fn port_of(base_url: &str) -> Result<u16> {
    base_url.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).context("port in the listening line")
}

/// The agent config of the soak: the controllable engine with short bounds, so a stalled or
/// killed engine ends a job in seconds.
pub fn agent_config(dir: &Path, machine_id: &str, engine_url: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("agent.yaml");
    let yaml = format!(
        "machine_id: \"{machine_id}\"\nbind_host: \"127.0.0.1\"\nresults_dir: \"{}\"\n\
         engine:\n  kind: openai\n  base_url: \"{engine_url}\"\n  request_timeout_s: 30\n  \
         connect_timeout_s: 2\n  first_token_timeout_s: 5\n  idle_timeout_s: 2\n",
        dir.join("results").display()
    );
    std::fs::write(&path, yaml)?;
    Ok(path)
}

/// One RSS sample of a process incarnation.
#[derive(Debug, Clone, Copy)]
pub struct RssSample {
    pub incarnation: u32,
    /// Seconds since the incarnation started.
    pub age_s: f64,
    /// Seconds since the soak started.
    pub at_s: f64,
    pub rss_mb: f64,
    /// Runs stored (folders under central's `results/runs`) at the sample.
    pub runs: u64,
}

/// MB per hour of resident memory growth: the least-squares slope shared by every incarnation
/// (each with its own intercept), over samples older than `warmup_s`; `None` with too few.
pub fn growth_mb_per_h(samples: &[RssSample], warmup_s: f64) -> Option<f64> {
    use std::collections::BTreeMap;
    let mut by: BTreeMap<u32, Vec<(f64, f64)>> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.age_s >= warmup_s) {
        by.entry(s.incarnation).or_default().push((s.age_s, s.rss_mb));
    }
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for pts in by.values().filter(|p| p.len() >= 3) {
        let n = pts.len() as f64;
        let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
        sxy += pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>();
        sxx += pts.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
    }
    (sxx > 0.0).then(|| sxy / sxx * 3600.0)
}
