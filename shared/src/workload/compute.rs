//! `compute`: the CPU race. The agent counts the primes up to `n` with a segmented sieve of
//! Eratosthenes on `threads` threads; the answer is π(n), the same on every machine and for every
//! thread count, so a wrong result is an error, never a number.
//!
//! `ops_per_s` is `n ÷ wall seconds`: integers sieved per second (the original reported primes
//! found per second, `primes_per_sec`, kept beside it).

use serde::{Deserialize, Serialize};

use super::{check_start_at, per_second};
use crate::job::{FieldError, Rule, Spec, TestType};
use crate::metrics::Summary;

/// Largest `n`.
pub const MAX_N: u64 = 100_000_000_000;
/// Most threads.
pub const MAX_THREADS: u32 = 1024;
/// Integers per sieve segment: 256 Ki bytes, a typical L2 cache.
pub const SEGMENT: u64 = 1 << 18;

/// The counting method (one today; the field exists so the original's `algorithm` is accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    #[default]
    SegmentedSieve,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::SegmentedSieve => "segmented_sieve",
        }
    }
}

/// A `compute` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeSpec {
    /// Count the primes up to and including `n`.
    #[serde(default = "default_n")]
    pub n: u64,
    #[serde(default = "one")]
    pub threads: u32,
    #[serde(default = "one")]
    pub repeat: u32,
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Epoch ms before which the first repeat must not start.
    #[serde(default)]
    pub start_at: Option<u64>,
}

fn default_n() -> u64 {
    10_000_000
}

fn one() -> u32 {
    1
}

impl Spec for ComputeSpec {
    const RULES: &'static [(&'static str, Rule)] = &[
        ("n", Rule::UInt { min: 2, max: MAX_N }),
        ("threads", Rule::UInt { min: 1, max: MAX_THREADS as u64 }),
        ("repeat", Rule::UInt { min: 1, max: crate::job::MAX_REPEAT }),
        ("algorithm", Rule::OneOf(&["segmented_sieve"])),
        ("start_at", Rule::StartAt),
    ];

    fn validate(&mut self, now_ms: u64) -> Result<(), FieldError> {
        Self::check_uint("n", self.n)?;
        Self::check_uint("threads", self.threads.into())?;
        Self::check_uint("repeat", self.repeat.into())?;
        check_start_at(self.start_at, now_ms)
    }
}

/// The primes up to `limit` (a plain sieve; the segments' base primes).
pub fn base_primes(limit: u64) -> Vec<u64> {
    let limit = limit as usize;
    let mut composite = vec![false; limit + 1];
    let mut primes = Vec::new();
    for i in 2..=limit {
        if !composite[i] {
            primes.push(i as u64);
            let mut j = i * i;
            while j <= limit {
                composite[j] = true;
                j += i;
            }
        }
    }
    primes
}

/// ⌊√n⌋, exactly.
pub fn isqrt(n: u64) -> u64 {
    let mut r = (n as f64).sqrt() as u64;
    while r * r > n {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= n {
        r += 1;
    }
    r
}

/// The number of segments `[2, n]` is cut into.
pub fn segments(n: u64) -> u64 {
    (n.saturating_sub(1)).div_ceil(SEGMENT)
}

/// Primes in segment `index` of `[2, n]` (`base` = [`base_primes`]`(`[`isqrt`]`(n))`). `sieve` is
/// scratch space, reused between calls.
pub fn count_segment(index: u64, n: u64, base: &[u64], sieve: &mut Vec<bool>) -> u64 {
    let lo = 2 + index * SEGMENT;
    let hi = (lo + SEGMENT - 1).min(n);
    if lo > hi {
        return 0;
    }
    let len = (hi - lo + 1) as usize;
    sieve.clear();
    sieve.resize(len, true);
    for &p in base {
        if p * p > hi {
            break;
        }
        let mut m = (p * p).max(lo.div_ceil(p) * p);
        while m <= hi {
            sieve[(m - lo) as usize] = false;
            m += p;
        }
    }
    sieve.iter().filter(|&&b| b).count() as u64
}

/// π(n), single-threaded (the reference the threaded run must equal).
pub fn count_primes(n: u64) -> u64 {
    let base = base_primes(isqrt(n));
    let mut scratch = Vec::new();
    (0..segments(n)).map(|i| count_segment(i, n, &base, &mut scratch)).sum()
}

/// `compute_line`: one line of the agent's console output (progress, the result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeLine {
    pub line: String,
    #[serde(default)]
    pub repeat_index: u32,
}

/// `compute_done`: one repeat finished. The first fields are this rewrite's; the rest are the
/// original bench-race's names for the same facts, so its central keeps reading them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeDone {
    pub repeat_index: u32,
    /// Monotonic time of the counting itself, ms.
    pub wall_ms: f64,
    /// `n ÷ wall seconds`.
    pub ops_per_s: Option<f64>,
    pub threads: u32,
    pub n: u64,
    /// π(n).
    pub result: u64,
    pub algorithm: Algorithm,
    pub ok: bool,
    pub primes_found: u64,
    pub elapsed_ms: u64,
    pub primes_per_sec: Option<f64>,
    pub threads_requested: u32,
    pub threads_used: u32,
}

impl ComputeDone {
    /// The event of one repeat that counted `result` primes up to `n` in `wall_ms`.
    pub fn new(repeat_index: u32, n: u64, threads: u32, result: u64, wall_ms: f64) -> Self {
        ComputeDone {
            repeat_index,
            wall_ms,
            ops_per_s: per_second(n as f64, wall_ms),
            threads,
            n,
            result,
            algorithm: Algorithm::SegmentedSieve,
            ok: true,
            primes_found: result,
            elapsed_ms: wall_ms as u64,
            primes_per_sec: per_second(result as f64, wall_ms),
            threads_requested: threads,
            threads_used: threads,
        }
    }
}

/// One repeat's figures, as `job_done` lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeRun {
    pub wall_ms: f64,
    pub ops_per_s: Option<f64>,
}

/// `job_done` of a `compute` job: the figures over the repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeJobDone {
    pub test_type: TestType,
    pub n: u64,
    pub threads: u32,
    pub algorithm: Algorithm,
    pub result: u64,
    pub repeats: u32,
    /// Means over the repeats.
    pub wall_ms: f64,
    pub ops_per_s: Option<f64>,
    pub ops_per_s_summary: Option<Summary>,
    pub runs: Vec<ComputeRun>,
}

impl ComputeJobDone {
    /// The job's result from its repeats (at least one).
    pub fn from_repeats(spec: &ComputeSpec, done: &[ComputeDone]) -> Self {
        let walls: Vec<f64> = done.iter().map(|d| d.wall_ms).collect();
        let rates: Vec<f64> = done.iter().filter_map(|d| d.ops_per_s).collect();
        let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        ComputeJobDone {
            test_type: TestType::Compute,
            n: spec.n,
            threads: spec.threads,
            algorithm: spec.algorithm,
            result: done.first().map_or(0, |d| d.result),
            repeats: done.len() as u32,
            wall_ms: mean(&walls).unwrap_or(0.0),
            ops_per_s: mean(&rates),
            ops_per_s_summary: crate::metrics::summarize(&rates),
            runs: done.iter().map(|d| ComputeRun { wall_ms: d.wall_ms, ops_per_s: d.ops_per_s }).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_prime_counts() {
        for (n, pi) in [(2, 1), (10, 4), (100, 25), (1000, 168), (10_000, 1229), (1_000_000, 78_498)] {
            assert_eq!(count_primes(n), pi, "π({n})");
        }
        // Segment boundaries: a prime just past a segment's end is counted once.
        let n = 2 + SEGMENT * 3 + 5;
        let slow = (2..=n).filter(|&k| (2..=isqrt(k)).all(|d| k % d != 0)).count() as u64;
        assert_eq!(count_primes(n), slow);
    }

    #[test]
    fn isqrt_is_exact() {
        for n in [0u64, 1, 3, 4, 15, 16, 17, 99_999_999, 10_000_000_000, MAX_N] {
            let r = isqrt(n);
            assert!(r * r <= n && (r + 1) * (r + 1) > n, "{n}");
        }
    }

    #[test]
    fn spec_defaults_and_ranges() {
        let mut s: ComputeSpec = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!((s.n, s.threads, s.repeat), (10_000_000, 1, 1));
        assert!(s.validate(0).is_ok());
        let mut bad = ComputeSpec { threads: 0, ..s.clone() };
        assert_eq!(bad.validate(0).unwrap_err().field, "threads");
        let mut bad = ComputeSpec { n: 1, ..s.clone() };
        let e = bad.validate(0).unwrap_err();
        assert!(e.field == "n" && e.message.contains("from 2 to 100000000000"), "{e}");
    }

    #[test]
    fn done_figures() {
        let d = ComputeDone::new(0, 1_000_000, 2, 78_498, 500.0);
        assert_eq!(d.ops_per_s, Some(2_000_000.0));
        assert_eq!(d.primes_per_sec, Some(156_996.0));
        let spec =
            ComputeSpec { n: 1_000_000, threads: 2, repeat: 2, algorithm: Algorithm::SegmentedSieve, start_at: None };
        let job = ComputeJobDone::from_repeats(&spec, &[d.clone(), ComputeDone::new(1, 1_000_000, 2, 78_498, 1000.0)]);
        assert_eq!(job.ops_per_s, Some(1_500_000.0));
        assert_eq!((job.wall_ms, job.result, job.repeats), (750.0, 78_498, 2));
    }
}
