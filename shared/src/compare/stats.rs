//! The statistics behind a verdict: Student's t distribution for any (fractional) degrees of
//! freedom, confidence intervals of a mean, Welch's interval for a difference of means, the same
//! on the log scale (a ratio of geometric means and its interval, which can never reach below
//! zero), and the repeats an interval needs to be narrow enough.
//!
//! The t quantile is computed, not looked up: the CDF comes from the regularized incomplete beta
//! function (continued fraction, modified Lentz), and the quantile from bisection on the CDF, so
//! Welch–Satterthwaite's fractional df and Bonferroni-corrected levels need no table.

/// Mean, sample standard deviation (n − 1) and size of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
}

impl Sample {
    /// `None` for an empty sample; non-finite values are left out.
    pub fn of(values: &[f64]) -> Option<Sample> {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
        Some(Sample { n, mean, sd })
    }

    /// The sample of `ln x`: `None` when empty or when a value is ≤ 0 (no logarithm); non-finite
    /// values are left out. Rates and times are positive, so their ratios are compared here.
    pub fn of_logs(values: &[f64]) -> Option<Sample> {
        let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.iter().any(|x| *x <= 0.0) {
            return None;
        }
        Sample::of(&v.iter().map(|x| x.ln()).collect::<Vec<_>>())
    }

    /// The two-sided `level` (e.g. 0.95) confidence interval of the mean; `None` below n = 2.
    pub fn mean_ci(&self, level: f64) -> Option<[f64; 2]> {
        if self.n < 2 {
            return None;
        }
        let half = t_quantile(1.0 - (1.0 - level) / 2.0, (self.n - 1) as f64) * self.sd / (self.n as f64).sqrt();
        Some([self.mean - half, self.mean + half])
    }
}

/// Welch's interval for `a.mean − b.mean`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WelchDiff {
    pub diff: f64,
    /// Standard error of the difference.
    pub se: f64,
    /// Welch–Satterthwaite degrees of freedom; `None` when both samples have no spread.
    pub df: Option<f64>,
    pub lo: f64,
    pub hi: f64,
}

/// Welch's two-sided `level` interval of `a.mean − b.mean` (unequal variances); `None` unless
/// both samples have n ≥ 2. With no spread on either side the interval collapses to the difference.
pub fn welch(a: &Sample, b: &Sample, level: f64) -> Option<WelchDiff> {
    if a.n < 2 || b.n < 2 {
        return None;
    }
    let va = a.sd * a.sd / a.n as f64;
    let vb = b.sd * b.sd / b.n as f64;
    let se = (va + vb).sqrt();
    let diff = a.mean - b.mean;
    if se == 0.0 {
        return Some(WelchDiff { diff, se, df: None, lo: diff, hi: diff });
    }
    let df = (va + vb).powi(2) / (va * va / (a.n - 1) as f64 + vb * vb / (b.n - 1) as f64);
    let half = t_quantile(1.0 - (1.0 - level) / 2.0, df) * se;
    Some(WelchDiff { diff, se, df: Some(df), lo: diff - half, hi: diff + half })
}

/// The ratio of the geometric means of two samples given on the log scale (`exp(a.mean −
/// b.mean)`), with Welch's two-sided `level` interval of the difference of log means,
/// exponentiated: both bounds are > 0 whatever the spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogRatio {
    pub ratio: f64,
    /// `None` unless both samples have n ≥ 2.
    pub ci: Option<[f64; 2]>,
}

/// [`LogRatio`] of `a` over `b`, both samples of logarithms ([`Sample::of_logs`]).
pub fn log_ratio(a: &Sample, b: &Sample, level: f64) -> LogRatio {
    let ratio = (a.mean - b.mean).exp();
    let ci = welch(a, b, level).map(|w| [w.lo.exp(), w.hi.exp()]);
    LogRatio { ratio, ci }
}

/// Half-width of Welch's `level` interval of a difference of means with `n` values on each side
/// and standard deviations `sd_a`, `sd_b` (Welch–Satterthwaite df; 0 with no spread at all).
pub fn welch_half_width(sd_a: f64, sd_b: f64, n: usize, level: f64) -> f64 {
    let (va, vb) = (sd_a * sd_a, sd_b * sd_b);
    if n < 2 || va + vb == 0.0 {
        return if va + vb == 0.0 { 0.0 } else { f64::INFINITY };
    }
    let df = (va + vb).powi(2) * (n - 1) as f64 / (va * va + vb * vb);
    t_quantile(1.0 - (1.0 - level) / 2.0, df) * ((va + vb) / n as f64).sqrt()
}

/// Most repeats [`repeats_for_half_width`] looks for.
pub const MAX_REPEATS_ESTIMATE: usize = 10_000_000;

/// The fewest values per side (≥ 2) for Welch's `level` interval to be no wider than
/// ± `half_width` at the spreads observed (`sd_a`, `sd_b`); `None` beyond
/// [`MAX_REPEATS_ESTIMATE`] or for a half-width that is not > 0.
pub fn repeats_for_half_width(sd_a: f64, sd_b: f64, half_width: f64, level: f64) -> Option<usize> {
    if half_width.is_nan() || half_width <= 0.0 || !sd_a.is_finite() || !sd_b.is_finite() {
        return None;
    }
    let fits = |n: usize| welch_half_width(sd_a, sd_b, n, level) <= half_width;
    // The half-width falls with n: double until it fits, then bisect.
    let mut hi = 2;
    while !fits(hi) {
        if hi >= MAX_REPEATS_ESTIMATE {
            return None;
        }
        hi = (hi * 2).min(MAX_REPEATS_ESTIMATE);
    }
    let mut lo = hi / 2; // does not fit (or is below 2)
    if lo < 2 {
        return Some(hi);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid) { hi = mid } else { lo = mid }
    }
    Some(hi)
}

/// ln Γ(x) for x > 0 (Lanczos approximation, g = 7, 9 terms; ~15 significant digits).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularized incomplete beta function I_x(a, b).
pub fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) { front * beta_cf(a, b, x) / a } else { 1.0 - front * beta_cf(b, a, 1.0 - x) / b }
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-15;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / guard(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=500 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / guard(1.0 + aa * d);
        c = guard(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / guard(1.0 + aa * d);
        c = guard(1.0 + aa / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// P(T ≤ t) for Student's t with `df` degrees of freedom (df > 0, fractional allowed).
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * inc_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// The `p` quantile of Student's t with `df` degrees of freedom (0 < p < 1, df > 0), by
/// bisection on [`t_cdf`] to 1e-12.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    let valid = p > 0.0 && p < 1.0 && df > 0.0;
    if !valid {
        return f64::NAN;
    }
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let mut hi = 2.0;
    while t_cdf(hi, df) < p && hi < 1e12 {
        hi *= 2.0;
    }
    let mut lo = 0.0;
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 {
            break;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_table() {
        // Two-sided 95%: t(0.975, df) from statistics tables.
        let table = [
            (1.0, 12.706),
            (2.0, 4.303),
            (3.0, 3.182),
            (4.0, 2.776),
            (5.0, 2.571),
            (6.0, 2.447),
            (7.0, 2.365),
            (8.0, 2.306),
            (9.0, 2.262),
            (10.0, 2.228),
            (15.0, 2.131),
            (20.0, 2.086),
            (30.0, 2.042),
            (60.0, 2.000),
            (1e7, 1.960),
        ];
        for (df, want) in table {
            let got = t_quantile(0.975, df);
            assert!((got - want).abs() < 0.0006, "df {df}: {got} vs {want}");
        }
        // One-sided tables: t(0.99, 4) = 3.747, t(0.995, 4) = 4.604.
        assert!((t_quantile(0.99, 4.0) - 3.747).abs() < 0.001);
        assert!((t_quantile(0.995, 4.0) - 4.604).abs() < 0.001);
        // 99%: t(0.995, 10) = 3.169.
        assert!((t_quantile(0.995, 10.0) - 3.169).abs() < 0.001);
        assert!((t_quantile(0.025, 5.0) + 2.571).abs() < 0.001, "lower tail is symmetric");
        assert!(t_quantile(1.0, 5.0).is_nan() && t_quantile(0.9, 0.0).is_nan());
    }

    #[test]
    fn t_cdf_known_values() {
        assert!((t_cdf(0.0, 3.0) - 0.5).abs() < 1e-12);
        // df = 1 is the Cauchy distribution: P(T ≤ 1) = 3/4.
        assert!((t_cdf(1.0, 1.0) - 0.75).abs() < 1e-12);
        // df = 2 has a closed form: P(T ≤ t) = 1/2 + t / (2√(2 + t²)); t = 2 → 0.908248…
        assert!((t_cdf(2.0, 2.0) - (0.5 + 2.0 / (2.0 * 6f64.sqrt()))).abs() < 1e-12);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    #[test]
    fn mean_ci_by_hand() {
        // 10, 12, 14: mean 12, sd 2, se 2/√3 = 1.1547; t(0.975, 2) = 4.3027 → ±4.9683.
        let s = Sample::of(&[10.0, 12.0, 14.0]).unwrap();
        assert_eq!((s.n, s.mean, s.sd), (3, 12.0, 2.0));
        let [lo, hi] = s.mean_ci(0.95).unwrap();
        assert!((lo - 7.0317).abs() < 1e-3 && (hi - 16.9683).abs() < 1e-3, "{lo} {hi}");
        assert!(Sample::of(&[5.0]).unwrap().mean_ci(0.95).is_none());
        assert!(Sample::of(&[]).is_none());
    }

    #[test]
    fn welch_by_hand() {
        // a = 110, 112, 108, 111, 109 (mean 110, var 2.5); b = 100, 101, 99, 102, 98 (mean 100, var 2.5).
        // se = √(2.5/5 + 2.5/5) = 1; df = 1 / (2 · 0.25/4) = 8; t(0.975, 8) = 2.306 → 10 ± 2.306.
        let a = Sample::of(&[110.0, 112.0, 108.0, 111.0, 109.0]).unwrap();
        let b = Sample::of(&[100.0, 101.0, 99.0, 102.0, 98.0]).unwrap();
        let w = welch(&a, &b, 0.95).unwrap();
        assert!((w.diff - 10.0).abs() < 1e-12);
        assert!((w.se - 1.0).abs() < 1e-12);
        assert!((w.df.unwrap() - 8.0).abs() < 1e-9);
        assert!((w.lo - 7.694).abs() < 1e-3 && (w.hi - 12.306).abs() < 1e-3, "{w:?}");
        // Unequal variances: a var 4 (n 3), b var 1 (n 5): va = 4/3, vb = 0.2, se = √1.5333 = 1.2383;
        // df = 1.5333² / ((4/3)²/2 + 0.2²/4) = 2.35111 / 0.89889 = 2.6156.
        let a = Sample::of(&[8.0, 10.0, 12.0]).unwrap();
        let b = Sample::of(&[5.0, 6.0, 7.0, 5.0, 7.0]).unwrap();
        let w = welch(&a, &b, 0.95).unwrap();
        assert!((w.se - 1.5333f64.sqrt()).abs() < 1e-3);
        assert!((w.df.unwrap() - 2.6156).abs() < 1e-3, "{w:?}");
        // No spread at all: the interval is the difference itself.
        let same = Sample::of(&[3.0, 3.0, 3.0]).unwrap();
        let w = welch(&same, &same, 0.95).unwrap();
        assert_eq!((w.diff, w.lo, w.hi, w.df), (0.0, 0.0, 0.0, None));
        assert!(welch(&Sample::of(&[1.0]).unwrap(), &same, 0.95).is_none());
    }

    #[test]
    fn log_ratio_by_hand() {
        // ln values 0, 0.1, 0.2 above ln 200 and above ln 100: ratio exactly 2, sd 0.1 each,
        // se = √(0.01/3 + 0.01/3) = 0.0816497, df = 4, t(0.975, 4) = 2.776445 → ±0.226695.
        let a: Vec<f64> = [0.0, 0.1, 0.2].iter().map(|x: &f64| 200.0 * x.exp()).collect();
        let b: Vec<f64> = [0.0, 0.1, 0.2].iter().map(|x: &f64| 100.0 * x.exp()).collect();
        let (la, lb) = (Sample::of_logs(&a).unwrap(), Sample::of_logs(&b).unwrap());
        assert!((la.sd - 0.1).abs() < 1e-12);
        let r = log_ratio(&la, &lb, 0.95);
        assert!((r.ratio - 2.0).abs() < 1e-12);
        let [lo, hi] = r.ci.unwrap();
        assert!(
            (lo - 2.0 * (-0.226_695f64).exp()).abs() < 1e-5 && (hi - 2.0 * 0.226_695f64.exp()).abs() < 1e-5,
            "{lo} {hi}"
        );
        assert!(Sample::of_logs(&[1.0, 0.0]).is_none(), "no logarithm of 0");
        assert!(Sample::of_logs(&[1.0, -2.0]).is_none());
        assert!(log_ratio(&Sample::of_logs(&[2.0]).unwrap(), &lb, 0.95).ci.is_none(), "n = 1: no interval");
    }

    #[test]
    fn repeats_for_a_half_width_by_hand() {
        // sd 1 on both sides, n each: df = 2(n − 1), half-width t(0.975, df)·√(2/n):
        // n = 4 → 2.447·0.7071 = 1.7302; n = 5 → 2.306·0.6325 = 1.4584.
        assert!((welch_half_width(1.0, 1.0, 4, 0.95) - 1.730_228).abs() < 1e-5);
        assert!((welch_half_width(1.0, 1.0, 5, 0.95) - 1.458_445).abs() < 1e-5);
        assert_eq!(repeats_for_half_width(1.0, 1.0, 1.6, 0.95), Some(5));
        assert_eq!(repeats_for_half_width(1.0, 1.0, 1.731, 0.95), Some(4));
        // Large n: t → 1.96, n ≈ 1.96²·(0.05² + 0.05²)/0.01² = 192.08, a little more for t(df).
        let n = repeats_for_half_width(0.05, 0.05, 0.01, 0.95).unwrap();
        assert!(welch_half_width(0.05, 0.05, n, 0.95) <= 0.01 && welch_half_width(0.05, 0.05, n - 1, 0.95) > 0.01);
        assert!((193..=195).contains(&n), "{n}");
        assert_eq!(repeats_for_half_width(0.0, 0.0, 0.01, 0.95), Some(2), "no spread: any interval fits");
        assert_eq!(repeats_for_half_width(1.0, 1.0, 0.0, 0.95), None);
        assert_eq!(repeats_for_half_width(1e6, 1e6, 1e-9, 0.95), None, "beyond ten million repeats");
    }
}
