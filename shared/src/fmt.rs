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
    }
}
