//! The binaries started as processes on 127.0.0.1:0 with a temp config: their address
//! read from the log line `listening on http://…`, their memory and CPU read from `/proc`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Longest wait for the listening line (a guard).
const START_LIMIT: Duration = Duration::from_secs(60);

pub struct Process {
    pub child: Child,
    pub pid: String,
    pub base_url: String,
}

impl Process {
    /// Starts `bin args…` and waits for its `listening on http://ADDR` log line.
    pub async fn start(bin: &Path, args: &[&str]) -> Result<Process> {
        if !bin.is_file() {
            bail!("{} not found: build it with cargo build --profile quickstart", bin.display());
        }
        let mut child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let pid = child.id().context("pid")?.to_string();
        let mut lines = BufReader::new(child.stderr.take().context("stderr")?).lines();
        let find = async {
            while let Some(line) = lines.next_line().await? {
                if let Some(i) = line.find("listening on http://") {
                    let rest = &line[i + "listening on ".len()..];
                    let url: String = rest.chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
                    return Ok(url);
                }
            }
            bail!("{} exited before listening", bin.display())
        };
        let base_url = tokio::time::timeout(START_LIMIT, find).await.context("listening line in time")??;
        // Keep draining the log so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Process { child, pid, base_url })
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        crate::procfs::rss_bytes(&self.pid)
    }

    pub fn rss_anon_bytes(&self) -> Option<u64> {
        crate::procfs::rss_anon_bytes(&self.pid)
    }

    pub fn cpu_s(&self) -> Option<f64> {
        crate::procfs::cpu_s(&self.pid)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Writes an agent config (mock engine) for the binary; returns its path.
pub fn agent_config(dir: &Path, machine_id: &str) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("agent.yaml");
    let yaml = format!(
        "machine_id: \"{machine_id}\"\nbind_host: \"127.0.0.1\"\nbind_port: 0\nresults_dir: \"{}\"\n\
         ws_max_subscribers: {WS_SUBSCRIBERS}\n\
         engine:\n  kind: mock\n  mock:\n    ttft_ms: 5\n    tokens_per_s: 100\n    models: [\"mock-llm\"]\n",
        dir.join("results").display()
    );
    std::fs::write(&path, yaml)?;
    Ok(path)
}

/// The WebSocket subscriber cap of the processes started here: above the 500 subscribers the
/// full `footprint` scenario opens (the default cap, 256, would refuse the rest with 503).
const WS_SUBSCRIBERS: usize = 1024;

/// Writes a machines.yaml for central; returns its path.
pub fn machines_config(dir: &Path, machines: &[(String, String)]) -> Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("machines.yaml");
    let mut yaml = format!("central:\n  ws_max_subscribers: {WS_SUBSCRIBERS}\nmachines:\n");
    for (id, url) in machines {
        yaml.push_str(&format!("  - machine_id: \"{id}\"\n    agent_base_url: \"{url}\"\n"));
    }
    std::fs::write(&path, yaml)?;
    Ok(path)
}

/// Starts the central binary on `machines` with results under `dir`.
pub async fn central(bin: &Path, dir: &Path, machines: &[(String, String)]) -> Result<Process> {
    let config = machines_config(dir, machines)?;
    let results = dir.join("results");
    let (c, r) = (config.display().to_string(), results.display().to_string());
    Process::start(bin, &["--config", &c, "--results-dir", &r, "--host", "127.0.0.1", "--port", "0"]).await
}
