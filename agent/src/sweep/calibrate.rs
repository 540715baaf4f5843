//! Prompt calibration: find the filler length whose engine-reported prompt tokens hit a target.
//!
//! The engine's count is `overhead + filler_chars / chars_per_token`, where the overhead is the
//! chat template, the nonce line and the instruction. The first correction is proportional
//! (`chars · target / tokens`, which converges because the overhead is small next to the target);
//! once two different lengths have been measured the next guess comes from the line through them
//! (secant), which absorbs the overhead exactly. This is pure arithmetic; the runner makes the
//! calls and feeds the observed counts in.

/// The most extra calibration calls one cell makes before it settles for the closest prompt.
pub const MAX_CALIBRATION_CALLS: u32 = 8;

/// Tracks observations for one target.
#[derive(Debug, Clone)]
pub struct Calibrator {
    target_tokens: u32,
    tolerance: f64,
    /// (filler chars, engine prompt tokens), in observation order.
    points: Vec<(usize, u64)>,
    filler_chars: usize,
    /// The shortest filler already gives too many tokens (the target is below the template).
    unreachable: bool,
}

impl Calibrator {
    /// Starts from a known filler length (from the cache) or from the chars-per-token estimate.
    pub fn new(target_tokens: u32, tolerance: f64, start: Start, prefix_chars: usize) -> Self {
        let filler_chars = match start {
            Start::Cached { filler_chars } => filler_chars,
            Start::Estimate { chars_per_token } => {
                ((target_tokens as f64 * chars_per_token).round() as usize).saturating_sub(prefix_chars).max(1)
            }
        };
        Calibrator { target_tokens, tolerance, points: Vec::new(), filler_chars, unreachable: false }
    }

    /// The filler length to use for the next call.
    pub fn filler_chars(&self) -> usize {
        self.filler_chars
    }

    pub fn target_tokens(&self) -> u32 {
        self.target_tokens
    }

    /// True when `tokens` is within the tolerance of the target (at least ±1 token, so small
    /// targets are reachable).
    pub fn within(&self, tokens: u64) -> bool {
        let allowed = (self.tolerance * self.target_tokens as f64).max(1.0);
        (tokens as f64 - self.target_tokens as f64).abs() <= allowed
    }

    /// Records the engine's count for `filler_chars` and moves the next guess toward the target.
    /// Returns true when the observation was within tolerance (the guess then stays put).
    pub fn observe(&mut self, filler_chars: usize, tokens: u64) -> bool {
        self.points.push((filler_chars, tokens));
        if self.within(tokens) {
            self.filler_chars = filler_chars;
            return true;
        }
        self.unreachable = filler_chars <= 1 && tokens > self.target_tokens as u64;
        self.filler_chars = self.next_guess(filler_chars, tokens);
        false
    }

    /// True when no filler length can reach the target: the prompt's fixed part (chat template,
    /// nonce, instruction) alone is larger. Calibrating further would be wasted calls.
    pub fn unreachable(&self) -> bool {
        self.unreachable
    }

    fn next_guess(&self, chars: usize, tokens: u64) -> usize {
        let target = self.target_tokens as f64;
        let secant =
            self.points.iter().rev().skip(1).find(|(c, t)| *c != chars && *t != tokens).and_then(|&(c0, t0)| {
                let slope = (tokens as f64 - t0 as f64) / (chars as f64 - c0 as f64);
                (slope > 0.0).then(|| chars as f64 + (target - tokens as f64) / slope)
            });
        let guess = secant.unwrap_or_else(|| chars.max(1) as f64 * target / tokens.max(1) as f64);
        // Never jump by more than 4× either way: one odd count must not derail the search.
        let guess = guess.clamp(chars as f64 / 4.0, chars.max(1) as f64 * 4.0);
        let next = guess.round().max(1.0) as usize;
        if next == chars {
            // Rounding stalled the search: nudge one character toward the target.
            if (tokens as f64) < target { chars + 1 } else { chars.saturating_sub(1).max(1) }
        } else {
            next
        }
    }

    /// The observed filler length closest to the target, with its token count.
    pub fn best(&self) -> Option<(usize, u64)> {
        let target = self.target_tokens as i64;
        self.points.iter().copied().min_by_key(|(_, t)| (*t as i64 - target).abs())
    }
}

/// Where a calibration starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Start {
    /// A filler length that hit this target before (calibration cache).
    Cached { filler_chars: usize },
    /// The chars-per-token estimate (`chars_per_token_est`).
    Estimate { chars_per_token: f64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tokenizer stand-in: 40 tokens of template, 3.7 chars per token.
    fn count(chars: usize) -> u64 {
        40 + (chars as f64 / 3.7).round() as u64
    }

    #[test]
    fn converges_within_tolerance_from_a_wrong_estimate() {
        for target in [60u32, 100, 240, 496, 4000, 30_000] {
            let mut cal = Calibrator::new(target, 0.05, Start::Estimate { chars_per_token: 6.0 }, 80);
            let mut calls = 0;
            loop {
                let chars = cal.filler_chars();
                calls += 1;
                if cal.observe(chars, count(chars)) {
                    break;
                }
                assert!(calls < MAX_CALIBRATION_CALLS, "target {target}: no convergence, points {:?}", cal.points);
            }
            let (chars, tokens) = cal.best().unwrap();
            assert_eq!(chars, cal.filler_chars());
            assert!(cal.within(tokens), "target {target}: {tokens}");
        }
    }

    #[test]
    fn a_target_below_the_template_is_reported_unreachable() {
        let mut cal = Calibrator::new(16, 0.05, Start::Estimate { chars_per_token: 4.0 }, 0);
        let mut calls = 0;
        while !cal.unreachable() {
            let chars = cal.filler_chars();
            assert!(!cal.observe(chars, count(chars)));
            calls += 1;
            assert!(calls < MAX_CALIBRATION_CALLS);
        }
        assert_eq!(cal.best(), Some((1, 40)));
    }

    #[test]
    fn cached_start_is_used_as_is() {
        let cal = Calibrator::new(500, 0.05, Start::Cached { filler_chars: 1234 }, 80);
        assert_eq!(cal.filler_chars(), 1234);
        let est = Calibrator::new(500, 0.05, Start::Estimate { chars_per_token: 4.0 }, 80);
        assert_eq!(est.filler_chars(), 1920);
    }

    #[test]
    fn tolerance_is_at_least_one_token() {
        let cal = Calibrator::new(16, 0.01, Start::Estimate { chars_per_token: 4.0 }, 0);
        assert!(cal.within(17) && cal.within(15) && !cal.within(18));
        let cal = Calibrator::new(1000, 0.05, Start::Estimate { chars_per_token: 4.0 }, 0);
        assert!(cal.within(1050) && !cal.within(1051));
    }
}
