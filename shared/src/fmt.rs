//! Number formatting shared by verdict sentences, the CLI and reports.

/// A percentage with one decimal and a true minus sign: `-3.25` → `"−3.2"`.
pub fn pct(x: f64) -> String {
    format!("{x:.1}").replace('-', "−")
}

/// At most two decimals, trailing zeros dropped: 95 → "95", 97.5 → "97.5", 98.3333 → "98.33".
pub fn trim_number(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// 35456 → "35,456".
pub fn count_text(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One ratio as text: three decimals when every figure shown is within 10% of 1 (1.017 and 1.012
/// differ), else about three significant digits (3.47, 12.5, 891, 0.0135).
fn ratio_number(x: f64, near_one: bool) -> String {
    if near_one {
        format!("{x:.3}")
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else if x >= 0.1 {
        format!("{x:.2}")
    } else {
        let d = (-x.log10().floor()) as usize + 2;
        format!("{x:.d$}")
    }
}

/// "1.23×" and "95% CI 1.05–1.44×": a ratio and its interval at `level`, formatted alike.
pub fn ratio_text(ratio: f64, ci: Option<[f64; 2]>, level: f64) -> (String, Option<String>) {
    let mut all = vec![ratio];
    all.extend(ci.iter().flatten());
    let near = all.iter().all(|v| (v - 1.0).abs() < 0.1);
    let r = format!("{}×", ratio_number(ratio, near));
    let ci = ci.map(|[lo, hi]| {
        format!("{}% CI {}–{}×", trim_number(100.0 * level), ratio_number(lo, near), ratio_number(hi, near))
    });
    (r, ci)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(pct(-3.25), "−3.2");
        assert_eq!(pct(10.0), "10.0");
        assert_eq!(
            (trim_number(95.0), trim_number(97.5), trim_number(98.3333)),
            ("95".into(), "97.5".into(), "98.33".into())
        );
        assert_eq!(
            (count_text(35_456), count_text(999), count_text(1_000_000)),
            ("35,456".into(), "999".into(), "1,000,000".into())
        );
        let r = |x: f64, ci: [f64; 2]| {
            let (r, ci) = ratio_text(x, Some(ci), 0.95);
            format!("{r} ({})", ci.unwrap())
        };
        assert_eq!(r(1.017, [1.012, 1.022]), "1.017× (95% CI 1.012–1.022×)");
        assert_eq!(r(3.4668, [0.013487, 891.1]), "3.47× (95% CI 0.0135–891×)");
        assert_eq!(r(11.9, [5.21, 27.04]), "11.9× (95% CI 5.21–27.0×)");
    }
}
