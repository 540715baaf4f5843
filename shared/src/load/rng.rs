//! The seeded random stream of a load and the draws it needs.
//!
//! The stream is ChaCha8 (its output is specified, so a seed means the same numbers on every
//! machine and every version). The draws are written out here rather than taken from a
//! distributions crate, whose algorithms may change between versions: exponential by inversion,
//! gamma by Marsaglia and Tsang (2000), normal by Box–Muller.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Which draws a stream is for: each purpose gets its own stream from the seed, so adding
/// requests never shifts the prompts, and the prompts never shift the arrivals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Arrivals,
    /// The prompt of request `i`.
    Prompt(u64),
    /// The shared prefix of group `g`.
    Prefix(u32),
}

/// A random stream.
#[derive(Debug, Clone)]
pub struct Stream(ChaCha8Rng);

impl Stream {
    pub fn new(seed: u64, purpose: Purpose) -> Stream {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // ChaCha's 64-bit stream id keeps purposes apart without hashing seeds together.
        rng.set_stream(match purpose {
            Purpose::Arrivals => 0,
            Purpose::Prefix(g) => 1 + u64::from(g),
            Purpose::Prompt(i) => (1 << 40) + i,
        });
        Stream(rng)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in (0, 1): never 0, so `ln` is always finite.
    pub fn uniform(&mut self) -> f64 {
        loop {
            let u = (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            if u > 0.0 {
                return u;
            }
        }
    }

    /// Exponential with mean 1.
    pub fn exponential(&mut self) -> f64 {
        -self.uniform().ln()
    }

    /// Standard normal (Box–Muller; the second value is not kept, so each draw is independent
    /// of the call order).
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Gamma with `shape` k > 0 and scale 1 (mean k, variance k).
    pub fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            // Γ(k) = Γ(k + 1) · U^(1/k).
            let u = self.uniform();
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    /// An index below `n` (> 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        (mean, xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0))
    }

    #[test]
    fn same_seed_same_stream_and_purposes_apart() {
        let a: Vec<u64> = (0..5).map(|_| Stream::new(7, Purpose::Arrivals).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut x = Stream::new(7, Purpose::Arrivals);
        let mut y = Stream::new(7, Purpose::Prompt(0));
        let mut z = Stream::new(8, Purpose::Arrivals);
        let (xa, ya, za) = (x.next_u64(), y.next_u64(), z.next_u64());
        assert!(xa != ya && xa != za && ya != za);
    }

    #[test]
    fn draws_have_their_moments_over_10000() {
        let mut s = Stream::new(1, Purpose::Arrivals);
        let n = 10_000;
        let (m, v) = moments(&(0..n).map(|_| s.exponential()).collect::<Vec<_>>());
        assert!((m - 1.0).abs() < 0.05 && (v - 1.0).abs() < 0.1, "exp {m} {v}");
        let (m, v) = moments(&(0..n).map(|_| s.normal()).collect::<Vec<_>>());
        assert!(m.abs() < 0.05 && (v - 1.0).abs() < 0.06, "normal {m} {v}");
        for k in [0.3, 1.0, 4.0] {
            let (m, v) = moments(&(0..n).map(|_| s.gamma(k)).collect::<Vec<_>>());
            assert!((m - k).abs() < 0.05 * k.max(1.0), "gamma({k}) mean {m}");
            assert!((v - k).abs() < 0.12 * k.max(1.0), "gamma({k}) var {v}");
        }
    }
}
