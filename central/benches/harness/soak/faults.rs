//! The fault injector: one fault at a time, the kinds in turn, each on the next agent or engine,
//! with a pause between. Every fault ends with the system whole again (process restarted,
//! continued, engine back, disk freed), so what the soak checks is recovery, not a slow death.

use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::Mutex;

use super::World;

/// What the injector does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL an agent, restart it a second later.
    AgentKill,
    /// SIGSTOP an agent for 4 s (it answers nothing, not even pings), then SIGCONT.
    AgentStop,
    /// SIGTERM an agent (graceful: its job ends `job_cancelled`), restart it.
    AgentRestart,
    /// The engine stops sending mid-stream for 4 s (the agent's 2 s idle bound fires).
    EngineStall,
    /// The engine dies (streams cut, port refused) for 3 s, then comes back.
    EngineKill,
    /// SIGTERM central (runs in progress end `interrupted`), restart it.
    CentralRestart,
    /// SIGKILL central (a crash mid-write), restart it.
    CentralKill,
    /// Central's results disk fills up for 4 s, then is freed.
    DiskFull,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::AgentKill,
        Fault::EngineStall,
        Fault::AgentStop,
        Fault::DiskFull,
        Fault::EngineKill,
        Fault::CentralRestart,
        Fault::AgentRestart,
        Fault::CentralKill,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::AgentKill => "agent_kill",
            Fault::AgentStop => "agent_stop",
            Fault::AgentRestart => "agent_restart",
            Fault::EngineStall => "engine_stall",
            Fault::EngineKill => "engine_kill",
            Fault::CentralRestart => "central_restart",
            Fault::CentralKill => "central_kill",
            Fault::DiskFull => "disk_full",
        }
    }
}

/// What one injection observed.
#[derive(Debug, Default)]
pub struct Injected {
    /// For an agent restart: seconds from the agent listening again to central connected to it.
    pub reconnect_s: Option<f64>,
    /// The fault could not be injected here (why).
    pub skipped: Option<String>,
}

/// Injects `fault` on target `i` (an agent / engine index).
pub async fn inject(world: &Mutex<World>, fault: Fault, i: usize, http: &reqwest::Client) -> Result<Injected> {
    let mut out = Injected::default();
    let n = world.lock().await.agents.len();
    let i = i % n;
    match fault {
        Fault::AgentKill | Fault::AgentRestart => {
            {
                let mut w = world.lock().await;
                if fault == Fault::AgentKill {
                    w.agents[i].kill().await;
                } else {
                    w.agents[i].terminate(Duration::from_secs(15)).await?;
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (central, id) = {
                let mut w = world.lock().await;
                w.agents[i].restart().await?;
                (w.central.base_url(), w.agents[i].name.clone())
            };
            out.reconnect_s = reconnected(http, &central, &id).await;
        }
        Fault::AgentStop => {
            world.lock().await.agents[i].signal("STOP")?;
            tokio::time::sleep(Duration::from_secs(4)).await;
            world.lock().await.agents[i].signal("CONT")?;
        }
        Fault::EngineStall => {
            world.lock().await.engines[i].stall();
            tokio::time::sleep(Duration::from_secs(4)).await;
            world.lock().await.engines[i].release();
        }
        Fault::EngineKill => {
            world.lock().await.engines[i].kill();
            tokio::time::sleep(Duration::from_secs(3)).await;
            world.lock().await.engines[i].revive().await?;
        }
        Fault::CentralRestart | Fault::CentralKill => {
            let mut w = world.lock().await;
            if fault == Fault::CentralKill {
                w.central.kill().await;
            } else {
                w.central.terminate(Duration::from_secs(20)).await?;
            }
            w.central.restart().await?;
        }
        Fault::DiskFull => {
            let w = world.lock().await;
            match &w.disk {
                None => out.skipped = Some("no small disk (mounting a tmpfs needs root)".into()),
                Some(d) => {
                    let dir = d.dir.clone();
                    drop(w);
                    let filled = tokio::task::spawn_blocking(move || super::disk::SmallDisk::fill_at(&dir)).await?;
                    let _ = filled;
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    if let Some(d) = &world.lock().await.disk {
                        d.free();
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Seconds until central shows machine `id` connected again (`None` after 30 s).
async fn reconnected(http: &reqwest::Client, central: &str, id: &str) -> Option<f64> {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if let Ok(resp) = http.get(format!("{central}/api/machines")).send().await
            && let Ok(list) = resp.json::<serde_json::Value>().await
            && list.as_array().is_some_and(|l| l.iter().any(|m| m["machine_id"] == id && m["ws_connected"] == true))
        {
            return Some(t0.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}
