//! Each agent's clock offset, measured before a run so that every machine gets the common start
//! instant on its own clock.
//!
//! NTP-style: central notes `sent_ms` (t0), asks `GET /time`, and notes `received_ms` (t2); the
//! agent answered `agent_ms` (t1) somewhere in between. Then `offset = t1 − (t0 + t2) / 2` (agent
//! clock − central clock) is exact when the request and the answer took equally long, and off by
//! at most `rtt / 2` however the delay split, since t1 lies between t0 and t2 on the true
//! timeline. The sample with the smallest round trip is the tightest bound, so it is the one kept.
//!
//! [`estimate`] is the pure part; [`measure`] does the round trips. Central's side of each sample
//! is read from a monotonic clock anchored once to the wall clock, so a wall-clock step during the
//! measurement cannot skew it.

use std::time::{Duration, Instant};

use bench_shared::clock::MachineClock;

use crate::agent_client::AgentClient;

/// Round trips per agent (the smallest wins; the first also opens the connection).
pub const SAMPLES: usize = 5;

/// One round trip, every instant in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// t0: central sent the request (central's clock).
    pub sent_ms: f64,
    /// t1: the agent read its clock (the agent's clock).
    pub agent_ms: f64,
    /// t2: central had the answer (central's clock).
    pub received_ms: f64,
}

impl Sample {
    pub fn rtt_ms(&self) -> f64 {
        self.received_ms - self.sent_ms
    }

    pub fn offset_ms(&self) -> f64 {
        self.agent_ms - (self.sent_ms + self.received_ms) / 2.0
    }
}

/// The offset estimate from a set of round trips.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Agent clock − central clock, ms.
    pub offset_ms: f64,
    /// Round trip of the sample the offset came from, ms (the offset is within ± `rtt_ms / 2`).
    pub rtt_ms: f64,
    /// Samples considered.
    pub samples: u32,
}

/// The offset of the sample with the smallest round trip; `None` without a usable sample (a
/// negative or non-finite round trip is discarded).
pub fn estimate(samples: &[Sample]) -> Option<Estimate> {
    let usable: Vec<&Sample> =
        samples.iter().filter(|s| s.rtt_ms() >= 0.0 && s.rtt_ms().is_finite() && s.agent_ms.is_finite()).collect();
    let best = usable.iter().min_by(|a, b| a.rtt_ms().total_cmp(&b.rtt_ms()))?;
    Some(Estimate { offset_ms: best.offset_ms(), rtt_ms: best.rtt_ms(), samples: usable.len() as u32 })
}

/// Central's wall clock read through a monotonic one: epoch ms.
#[derive(Debug, Clone, Copy)]
pub struct Anchor {
    at: Instant,
    wall_ms: f64,
}

impl Anchor {
    pub fn now() -> Self {
        Anchor { at: Instant::now(), wall_ms: crate::store::now_s() * 1000.0 }
    }

    pub fn wall_ms(&self, at: Instant) -> f64 {
        self.wall_ms + at.saturating_duration_since(self.at).as_secs_f64() * 1000.0
    }
}

/// Measures one agent: up to [`SAMPLES`] round trips to `GET /time`, all within `budget`.
/// Returns the estimate, or why there is none (no answer, an error, an older agent without
/// `/time`).
pub async fn measure(client: &AgentClient, anchor: Anchor, budget: Duration) -> Result<Estimate, String> {
    let mut samples = Vec::new();
    let mut last_error = None;
    let rounds = async {
        for _ in 0..SAMPLES {
            let t0 = Instant::now();
            match client.time().await {
                Ok(t) => samples.push(Sample {
                    sent_ms: anchor.wall_ms(t0),
                    agent_ms: t.now_unix_ms,
                    received_ms: anchor.wall_ms(Instant::now()),
                }),
                Err(e) => {
                    last_error = Some(e.to_string());
                    break;
                }
            }
        }
    };
    let timed_out = tokio::time::timeout(budget, rounds).await.is_err();
    match estimate(&samples) {
        Some(e) => Ok(e),
        None => Err(match (last_error, timed_out) {
            (Some(e), _) => format!("clock offset not measured (GET /time): {e}"),
            (None, true) => format!("clock offset not measured: GET /time did not answer within {budget:?}"),
            (None, false) => "clock offset not measured: no usable round trip".to_owned(),
        }),
    }
}

/// The clock record of one machine before its start: the measured offset (or why none) and the
/// `start_at` it is sent, on its own clock (uncorrected without an offset).
pub fn machine_clock(measured: &Result<Estimate, String>, start_at_ms: u64) -> MachineClock {
    match measured {
        Ok(e) => MachineClock {
            offset_ms: Some(e.offset_ms),
            rtt_ms: Some(e.rtt_ms),
            samples: e.samples,
            reason: None,
            agent_start_at_ms: agent_instant(start_at_ms, e.offset_ms),
            ..Default::default()
        },
        Err(why) => MachineClock { reason: Some(why.clone()), agent_start_at_ms: start_at_ms, ..Default::default() },
    }
}

/// `at_ms` on central's clock as the agent's clock shows it, to the millisecond (`start_at` is
/// whole ms on the wire; rounding adds at most ± 0.5 ms).
pub fn agent_instant(at_ms: u64, offset_ms: f64) -> u64 {
    (at_ms as f64 + offset_ms).round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(sent_ms: f64, agent_ms: f64, received_ms: f64) -> Sample {
        Sample { sent_ms, agent_ms, received_ms }
    }

    #[test]
    fn symmetric_delays_give_the_exact_offset() {
        // Agent 5 s ahead; 3 ms each way.
        let e = estimate(&[s(1000.0, 6003.0, 1006.0)]).unwrap();
        assert_eq!((e.offset_ms, e.rtt_ms, e.samples), (5000.0, 6.0, 1));
    }

    #[test]
    fn asymmetric_delays_stay_within_half_the_round_trip() {
        // True offset −3000 ms; the request takes 9 ms, the answer 1 ms (and the reverse).
        for (out, back) in [(9.0, 1.0), (1.0, 9.0), (10.0, 0.0), (0.0, 10.0)] {
            let t0 = 2000.0;
            let e = estimate(&[s(t0, t0 + out - 3000.0, t0 + out + back)]).unwrap();
            assert!((e.offset_ms - -3000.0).abs() <= e.rtt_ms / 2.0, "{out}/{back}: {e:?}");
            assert!((e.offset_ms - -3000.0).abs() > 0.0, "an asymmetric path is not exact");
        }
    }

    #[test]
    fn the_smallest_round_trip_wins() {
        let samples = [
            s(0.0, 120.0, 40.0),     // 40 ms round trip (connection set-up), skewed
            s(50.0, 151.0, 52.0),    // 2 ms: offset 100
            s(60.0, 170.0, 70.0),    // 10 ms
            s(80.0, 100.0, 79.0),    // negative round trip: discarded
            s(90.0, f64::NAN, 91.0), // no reading: discarded
        ];
        let e = estimate(&samples).unwrap();
        assert_eq!((e.offset_ms, e.rtt_ms, e.samples), (100.0, 2.0, 3));
        assert_eq!(estimate(&[]), None);
        assert_eq!(estimate(&samples[3..]), None);
    }

    #[test]
    fn start_at_moves_by_the_offset_or_stays_without_one() {
        let ok = machine_clock(&Ok(Estimate { offset_ms: -2999.6, rtt_ms: 0.4, samples: 5 }), 10_000);
        assert_eq!((ok.agent_start_at_ms, ok.offset_ms, ok.reason), (7000, Some(-2999.6), None));
        let failed = machine_clock(&Err("clock offset not measured: x".into()), 10_000);
        assert_eq!((failed.agent_start_at_ms, failed.offset_ms, failed.samples), (10_000, None, 0));
        assert!(failed.reason.unwrap().contains("not measured"));
    }
}
