//! Arrival schedules of open-loop loads, precomputed from the seed.
//!
//! Gaps are drawn with mean 1 and divided by the rate (so a step at twice the rate has the same
//! shape, twice as dense): constant = exactly 1, Poisson = exponential, gamma = Gamma(k, 1/k)
//! with k = `burstiness` (vLLM's `gamma(shape=b, scale=1/(rate·b))`). As in vLLM, the gaps are
//! then rescaled so that the measured requests span exactly `n / rate` seconds (the warm-up
//! requests before them likewise): the offered rate of the window is then exactly the target,
//! and what the agent achieves is compared with it, not with a random draw.

use super::rng::{Purpose, Stream};
use super::spec::{Arrival, Length, Warmup, Workload};

/// The requests of one open-loop load, in send order.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Send offsets from the load's start, seconds (the first is 0).
    pub offsets_s: Vec<f64>,
    /// The first `warmup` requests are warm-up.
    pub warmup: usize,
    /// Offset where the measured window begins (the first measured request's), seconds.
    pub window_start_s: f64,
    /// The measured window's nominal length, `measured / rate`, seconds.
    pub window_s: f64,
}

impl Schedule {
    pub fn measured(&self) -> usize {
        self.offsets_s.len() - self.warmup
    }
}

/// Gaps with mean 1 (before scaling by the rate).
pub fn unit_gaps(arrival: Arrival, burstiness: f64, n: usize, stream: &mut Stream) -> Vec<f64> {
    (0..n)
        .map(|_| match arrival {
            Arrival::Constant => 1.0,
            Arrival::Poisson => stream.exponential(),
            Arrival::Gamma => stream.gamma(burstiness) / burstiness,
        })
        .collect()
}

/// Requests a measured window of this length holds at `rate` (at least 1).
pub fn measured_count(length: Length, rate: f64) -> usize {
    match length {
        Length::Requests(n) => n as usize,
        Length::Seconds(s) => ((s * rate).round() as usize).max(1),
    }
}

/// Warm-up requests before the window at `rate`.
pub fn warmup_count(warmup: Warmup, rate: f64) -> usize {
    match warmup {
        Warmup::None => 0,
        Warmup::Requests(n) => n as usize,
        Warmup::Seconds(s) => (s * rate).round() as usize,
    }
}

/// The schedule of `w` at `rate` requests per second.
pub fn open_loop(w: &Workload, rate: f64) -> Schedule {
    let warmup = warmup_count(w.warmup, rate);
    let measured = measured_count(w.length, rate);
    let mut stream = Stream::new(w.seed, Purpose::Arrivals);
    let mut gaps = unit_gaps(w.arrival, w.burstiness, warmup + measured, &mut stream);
    // Each part spans exactly its count ÷ rate.
    for part in [0..warmup, warmup..warmup + measured] {
        let n = part.len();
        let sum: f64 = gaps[part.clone()].iter().sum();
        if n > 0 && sum > 0.0 {
            let scale = n as f64 / sum / rate;
            gaps[part].iter_mut().for_each(|g| *g *= scale);
        }
    }
    let mut offsets_s = Vec::with_capacity(gaps.len());
    let mut t = 0.0;
    for g in &gaps {
        offsets_s.push(t);
        t += g;
    }
    Schedule {
        window_start_s: offsets_s.get(warmup).copied().unwrap_or(0.0),
        window_s: measured as f64 / rate,
        offsets_s,
        warmup,
    }
}

/// A generous bound on how long a load of `w` at `level` takes, seconds: its schedule (or, for a
/// closed loop of `requests`, that many rounds of `per_request_s`), plus one `per_request_s` to
/// drain. Central derives each machine's deadline from it.
pub fn budget_s(w: &Workload, level: super::spec::LoadLevel, per_request_s: f64) -> f64 {
    let warm_s = |rate: f64| warmup_count(w.warmup, rate) as f64 / rate;
    let sending = match (level.rate_rps, w.length) {
        (Some(rate), length) => warm_s(rate) + measured_count(length, rate) as f64 / rate,
        (None, Length::Seconds(d)) => {
            let warm = match w.warmup {
                Warmup::Seconds(s) => s,
                Warmup::Requests(n) => f64::from(n) * per_request_s,
                Warmup::None => 0.0,
            };
            warm + d
        }
        (None, Length::Requests(n)) => {
            let c = f64::from(level.concurrency.unwrap_or(1).max(1));
            let warm = match w.warmup {
                Warmup::Requests(k) => f64::from(k),
                _ => 0.0,
            };
            ((f64::from(n) + warm) / c).ceil() * per_request_s + if let Warmup::Seconds(s) = w.warmup { s } else { 0.0 }
        }
    };
    sending + per_request_s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::spec::TokenCount;

    fn workload(arrival: Arrival, burstiness: f64, length: Length, warmup: Warmup, seed: u64) -> Workload {
        Workload {
            model: "m".into(),
            arrival,
            burstiness,
            input_tokens: TokenCount::Fixed(8),
            max_tokens: 8,
            shared_prefix: None,
            seed,
            temperature: 0.0,
            num_ctx: 512,
            prompt_nonce: None,
            length,
            warmup,
        }
    }

    fn moments(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        (mean, xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0))
    }

    #[test]
    fn same_seed_same_arrivals_other_seed_other_arrivals() {
        let w = workload(Arrival::Poisson, 1.0, Length::Seconds(20.0), Warmup::Seconds(2.0), 7);
        let a = open_loop(&w, 10.0);
        assert_eq!(a, open_loop(&w, 10.0));
        let b = open_loop(&workload(Arrival::Poisson, 1.0, Length::Seconds(20.0), Warmup::Seconds(2.0), 8), 10.0);
        assert_ne!(a.offsets_s, b.offsets_s);
        assert_eq!((a.warmup, a.measured()), (20, 200));
    }

    #[test]
    fn constant_is_exact() {
        let w = workload(Arrival::Constant, 1.0, Length::Requests(5), Warmup::Requests(2), 1);
        let s = open_loop(&w, 4.0);
        assert_eq!(s.offsets_s, vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]);
        assert_eq!((s.window_start_s, s.window_s), (0.5, 1.25));
    }

    #[test]
    fn the_window_offers_exactly_the_rate() {
        for arrival in [Arrival::Poisson, Arrival::Gamma] {
            let w = workload(arrival, 0.5, Length::Seconds(3.0), Warmup::Seconds(1.0), 3);
            let s = open_loop(&w, 50.0);
            assert_eq!(s.measured(), 150);
            // The next request after the window would land exactly at its nominal end.
            let last_gap_end = s.window_start_s + s.window_s;
            assert!((s.window_start_s - 1.0).abs() < 1e-9, "{}", s.window_start_s);
            assert!(s.offsets_s.last().unwrap() < &last_gap_end);
            assert!(s.offsets_s.windows(2).all(|w| w[1] >= w[0]));
        }
    }

    #[test]
    fn budgets_cover_the_schedule_and_one_answer() {
        use crate::load::spec::LoadLevel;
        let open = LoadLevel { rate_rps: Some(10.0), concurrency: None };
        let w = workload(Arrival::Poisson, 1.0, Length::Seconds(20.0), Warmup::Seconds(2.0), 1);
        assert_eq!(budget_s(&w, open, 5.0), 2.0 + 20.0 + 5.0);
        let closed = LoadLevel { rate_rps: None, concurrency: Some(4) };
        let w = workload(Arrival::Poisson, 1.0, Length::Requests(10), Warmup::Requests(2), 1);
        assert_eq!(budget_s(&w, closed, 5.0), 3.0 * 5.0 + 5.0, "12 requests over 4 workers: 3 rounds");
    }

    #[test]
    fn poisson_and_gamma_gaps_have_their_moments_over_10000_draws() {
        let n = 10_000;
        let mut s = Stream::new(11, Purpose::Arrivals);
        // Poisson at rate r: mean 1/r, variance 1/r²; in unit gaps 1 and 1.
        let (m, v) = moments(&unit_gaps(Arrival::Poisson, 1.0, n, &mut s));
        assert!((m - 1.0).abs() < 0.03 && (v - 1.0).abs() < 0.08, "poisson {m} {v}");
        // Gamma with burstiness b: mean 1, variance 1/b.
        for b in [0.25, 1.0, 4.0] {
            let (m, v) = moments(&unit_gaps(Arrival::Gamma, b, n, &mut s));
            assert!((m - 1.0).abs() < 0.04, "gamma b={b} mean {m}");
            assert!((v - 1.0 / b).abs() < 0.12 / b, "gamma b={b} var {v}");
        }
        let (m, v) = moments(&unit_gaps(Arrival::Constant, 1.0, n, &mut s));
        assert_eq!((m, v), (1.0, 0.0));
        // A whole schedule at 100 req/s: gaps of mean 10 ms.
        let w = workload(Arrival::Poisson, 1.0, Length::Requests(n as u32), Warmup::None, 5);
        let sched = open_loop(&w, 100.0);
        let gaps: Vec<f64> = sched.offsets_s.windows(2).map(|p| p[1] - p[0]).collect();
        let (m, v) = moments(&gaps);
        assert!((m - 0.01).abs() < 0.0003 && (v - 1e-4).abs() < 1e-5, "schedule {m} {v}");
    }
}
