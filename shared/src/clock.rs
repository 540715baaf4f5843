//! Clock offsets between central and its agents, as a run records them (`metadata.json` →
//! `clock`). Central measures each agent's wall clock before a run (NTP-style round trips to
//! `GET /time`), sends each agent the common start instant on that agent's own clock, and
//! converts each agent's reported start back to its own clock to report the skew achieved.
//!
//! Sign convention everywhere: `offset_ms` = agent clock − central clock, so an instant `t` on
//! central's clock is `t + offset_ms` on the agent's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `metadata.json` → `clock`: the synchronized start of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunClock {
    /// The common start instant on central's clock, epoch ms (`POST /api/runs` `start_at`).
    pub start_at_ms: u64,
    /// Every dispatched machine, by machine id.
    pub machines: BTreeMap<String, MachineClock>,
    /// Latest − earliest first request over the machines whose start is known on central's
    /// clock (measured offset and a `job_started` event), ms; `None` with fewer than two.
    #[serde(default)]
    pub achieved_skew_ms: Option<f64>,
    /// Machines `achieved_skew_ms` covers.
    #[serde(default)]
    pub skew_machines: u32,
}

/// One machine's clock in a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineClock {
    /// Agent clock − central clock, ms, from the round trip with the smallest `rtt_ms`; `None`
    /// when it could not be measured (then `reason` says why and the machine started uncorrected).
    #[serde(default)]
    pub offset_ms: Option<f64>,
    /// Round trip of the sample `offset_ms` came from, ms: the offset is exact within ± half of it.
    #[serde(default)]
    pub rtt_ms: Option<f64>,
    /// Round trips that answered.
    #[serde(default)]
    pub samples: u32,
    /// Why `offset_ms` is `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The `start_at` this agent received: the common instant on its own clock, epoch ms.
    pub agent_start_at_ms: u64,
    /// When the agent sent its first request (`job_started.started_at_s`), converted to central's
    /// clock, epoch ms; `None` before it started or without an offset.
    #[serde(default)]
    pub started_at_ms: Option<f64>,
    /// `started_at_ms` − the common `start_at_ms`, ms (positive: late).
    #[serde(default)]
    pub start_error_ms: Option<f64>,
}

impl RunClock {
    /// Records that `machine_id` sent its first request at `agent_started_at_s` (epoch s on the
    /// agent's clock) and recomputes the achieved skew.
    pub fn record_start(&mut self, machine_id: &str, agent_started_at_s: f64) {
        let Some(m) = self.machines.get_mut(machine_id) else { return };
        if let Some(offset) = m.offset_ms {
            let at = agent_started_at_s * 1000.0 - offset;
            m.started_at_ms = Some(at);
            m.start_error_ms = Some(at - self.start_at_ms as f64);
        }
        let starts: Vec<f64> = self.machines.values().filter_map(|m| m.started_at_ms).collect();
        self.skew_machines = starts.len() as u32;
        self.achieved_skew_ms = (starts.len() >= 2).then(|| {
            starts.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                - starts.iter().copied().fold(f64::INFINITY, f64::min)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(offset_ms: Option<f64>) -> MachineClock {
        MachineClock { offset_ms, agent_start_at_ms: 0, ..Default::default() }
    }

    #[test]
    fn starts_convert_to_central_clock_and_give_the_skew() {
        let mut c = RunClock { start_at_ms: 10_000, ..Default::default() };
        c.machines.insert("fast".into(), machine(Some(5000.0)));
        c.machines.insert("slow".into(), machine(Some(-3000.0)));
        c.machines.insert("unknown".into(), machine(None));
        // 2 ms late on a clock 5 s ahead.
        c.record_start("fast", 15.002);
        assert_eq!(c.achieved_skew_ms, None, "one start is no skew");
        assert!((c.machines["fast"].start_error_ms.unwrap() - 2.0).abs() < 1e-6);
        // 1 ms early on a clock 3 s behind.
        c.record_start("slow", 6.999);
        c.record_start("unknown", 10.0);
        assert!((c.machines["slow"].start_error_ms.unwrap() + 1.0).abs() < 1e-6);
        assert!((c.achieved_skew_ms.unwrap() - 3.0).abs() < 1e-6, "{c:?}");
        assert_eq!(c.skew_machines, 2, "a machine without an offset is not counted");
        assert_eq!(c.machines["unknown"].started_at_ms, None);
        c.record_start("not in the run", 1.0);
        assert_eq!(c.skew_machines, 2);
    }
}
