//! The capacity search as a state machine: [`Search::next_level`] says which load level to run
//! next, [`Search::record`] takes whether it met the SLO. No I/O, no clock.
//!
//! Bracket, then bisect (vLLM's SLA search does the same): from `start`, double while steps
//! pass (up to `max`) or halve while they fail (down to the mode's floor); once a passing and
//! a failing level are known, try their midpoint until they are within the resolution
//! (`resolution_pct` of the passing level; for concurrency also 1 apart at most). The capacity is
//! the highest passing level below the lowest failing one.

use serde::{Deserialize, Serialize};

/// What the search varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// The open-loop request rate (req/s).
    #[default]
    Rate,
    /// The closed-loop concurrency (requests in flight).
    Concurrency,
}

impl SearchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::Rate => "rate",
            SearchMode::Concurrency => "concurrency",
        }
    }

    /// The accepted range of levels.
    pub fn bounds(self) -> (f64, f64) {
        match self {
            SearchMode::Rate => (super::spec::MIN_RATE_RPS, super::spec::MAX_RATE_RPS),
            SearchMode::Concurrency => (1.0, super::spec::MAX_CONCURRENCY as f64),
        }
    }

    pub fn default_max(self) -> f64 {
        match self {
            SearchMode::Rate => 1000.0,
            SearchMode::Concurrency => 256.0,
        }
    }

    /// The unit of a level, for sentences: "req/s" or "concurrent requests".
    pub fn unit(self) -> &'static str {
        match self {
            SearchMode::Rate => "req/s",
            SearchMode::Concurrency => "concurrent requests",
        }
    }
}

/// Why a search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A passing and a failing level within the resolution.
    Converged,
    /// `max` passed: the capacity is at least `max`.
    ReachedMax,
    /// The lowest level failed: nothing meets the SLO.
    NothingPasses,
    /// `max_steps` ran out before convergence.
    MaxSteps,
}

/// A capacity search in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    mode: SearchMode,
    max: f64,
    resolution: f64,
    max_steps: u32,
    steps: u32,
    /// Every passing level so far.
    passes: Vec<f64>,
    lowest_fail: Option<f64>,
    next: Option<f64>,
    stopped: Option<StopReason>,
}

impl Search {
    /// A search from `start` up to `max` (both within the mode's bounds).
    pub fn new(mode: SearchMode, start: f64, max: f64, resolution_pct: f64, max_steps: u32) -> Search {
        let start = Search::level(mode, start.min(max));
        Search {
            mode,
            max,
            resolution: resolution_pct / 100.0,
            max_steps,
            steps: 0,
            passes: Vec::new(),
            lowest_fail: None,
            next: Some(start),
            stopped: None,
        }
    }

    /// A level as the mode runs it: concurrency is a whole number ≥ 1; rates are kept to 4
    /// significant digits so that every machine runs the same steps.
    fn level(mode: SearchMode, v: f64) -> f64 {
        match mode {
            SearchMode::Concurrency => v.round().max(1.0),
            SearchMode::Rate => {
                let (lo, _) = mode.bounds();
                let v = v.max(lo);
                let digits = 3 - v.log10().floor() as i32;
                let f = 10f64.powi(digits);
                (v * f).round() / f
            }
        }
    }

    /// The level to run next; `None` once the search is over.
    pub fn next_level(&self) -> Option<f64> {
        self.next
    }

    pub fn stopped(&self) -> Option<StopReason> {
        self.stopped
    }

    /// The highest passing level below the lowest failing one (a noisy pass above a failure
    /// is no capacity).
    pub fn capacity(&self) -> Option<f64> {
        self.passes.iter().copied().filter(|p| self.lowest_fail.is_none_or(|f| *p < f)).reduce(f64::max)
    }

    /// The lowest failing level.
    pub fn first_failing(&self) -> Option<f64> {
        self.lowest_fail
    }

    pub fn steps(&self) -> u32 {
        self.steps
    }

    fn converged(&self, pass: f64, fail: f64) -> bool {
        let gap = fail - pass;
        match self.mode {
            SearchMode::Concurrency => gap <= (pass * self.resolution).floor().max(1.0),
            SearchMode::Rate => gap <= pass * self.resolution,
        }
    }

    /// Records the outcome of the step at `level` and decides the next one.
    pub fn record(&mut self, level: f64, passed: bool) {
        self.steps += 1;
        if passed {
            self.passes.push(level);
        } else {
            self.lowest_fail = Some(self.lowest_fail.map_or(level, |f| f.min(level)));
        }
        let (floor, _) = self.mode.bounds();
        let (next, stop) = match (self.capacity(), self.lowest_fail) {
            (Some(p), None) if p >= self.max => (None, Some(StopReason::ReachedMax)),
            (Some(p), None) => (Some(Search::level(self.mode, (2.0 * p).min(self.max))), None),
            (None, Some(f)) if f <= floor => (None, Some(StopReason::NothingPasses)),
            (None, Some(f)) => (Some(Search::level(self.mode, (f / 2.0).max(floor))), None),
            (Some(p), Some(f)) if self.converged(p, f) => (None, Some(StopReason::Converged)),
            (Some(p), Some(f)) => {
                let mid = Search::level(self.mode, (p + f) / 2.0);
                if mid > p && mid < f { (Some(mid), None) } else { (None, Some(StopReason::Converged)) }
            }
            (None, None) => (self.next, None),
        };
        self.next = next;
        self.stopped = stop;
        if self.stopped.is_none() && self.steps >= self.max_steps {
            self.next = None;
            self.stopped = Some(StopReason::MaxSteps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against "passes iff level ≤ knee".
    fn run(mode: SearchMode, start: f64, max: f64, knee: f64) -> (Search, Vec<f64>) {
        let mut s = Search::new(mode, start, max, 5.0, 40);
        let mut tried = Vec::new();
        while let Some(level) = s.next_level() {
            tried.push(level);
            s.record(level, level <= knee);
        }
        (s, tried)
    }

    #[test]
    fn rate_search_finds_the_knee_within_the_resolution() {
        for knee in [0.37, 3.2, 17.0, 40.0, 123.4, 999.0] {
            let (s, tried) = run(SearchMode::Rate, 1.0, 1000.0, knee);
            let (c, f) = (s.capacity().unwrap(), s.first_failing().unwrap());
            assert_eq!(s.stopped(), Some(StopReason::Converged), "{knee}: {tried:?}");
            assert!(c <= knee && f > knee, "{knee}: {c} {f}");
            assert!((f - c) / c <= 0.05 + 1e-9, "{knee}: {c} {f}");
            assert!(c >= knee * 0.95 - 1e-9, "{knee}: capacity {c}");
            assert!(tried.len() <= 20, "{knee}: {} steps", tried.len());
        }
    }

    #[test]
    fn concurrency_search_lands_on_the_limit() {
        for limit in [1.0, 2.0, 4.0, 7.0, 33.0] {
            let (s, tried) = run(SearchMode::Concurrency, 1.0, 256.0, limit);
            assert_eq!((s.capacity(), s.first_failing()), (Some(limit), Some(limit + 1.0)), "{tried:?}");
            assert!(tried.iter().all(|l| l.fract() == 0.0));
        }
        // From 2 with a limit of 4: 2, 4, 8, 6, 5.
        assert_eq!(run(SearchMode::Concurrency, 2.0, 64.0, 4.0).1, vec![2.0, 4.0, 8.0, 6.0, 5.0]);
    }

    #[test]
    fn edges_max_nothing_and_step_budget() {
        let (s, _) = run(SearchMode::Rate, 1.0, 50.0, 1e9);
        assert_eq!((s.capacity(), s.first_failing(), s.stopped()), (Some(50.0), None, Some(StopReason::ReachedMax)));
        let (s, tried) = run(SearchMode::Concurrency, 4.0, 64.0, 0.0);
        assert_eq!((s.capacity(), s.stopped()), (None, Some(StopReason::NothingPasses)));
        assert_eq!(tried, vec![4.0, 2.0, 1.0]);
        let mut s = Search::new(SearchMode::Rate, 1.0, 1000.0, 5.0, 3);
        for _ in 0..3 {
            let l = s.next_level().unwrap();
            s.record(l, true);
        }
        assert_eq!((s.next_level(), s.stopped(), s.capacity()), (None, Some(StopReason::MaxSteps), Some(4.0)));
    }

    #[test]
    fn a_noisy_pass_above_a_failure_is_not_the_capacity() {
        let mut s = Search::new(SearchMode::Rate, 8.0, 1000.0, 5.0, 20);
        s.record(8.0, true);
        s.record(16.0, false);
        s.record(12.0, true);
        s.record(14.0, false);
        // A later failure at or below a pass (noise) withdraws the passes above it.
        s.record(13.0, true);
        s.record(12.0, false);
        assert_eq!((s.capacity(), s.first_failing()), (Some(8.0), Some(12.0)));
        assert_eq!(s.next_level(), Some(10.0));
    }
}
