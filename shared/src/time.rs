//! Wall-clock helpers, one of each: epoch seconds and milliseconds, RFC 3339 text.
//!
//! For humans and for `start_at` only: metric arithmetic uses monotonic instants.

/// Wall-clock now, epoch seconds (0 on a clock set before 1970).
pub fn now_s() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Wall-clock now, epoch milliseconds.
pub fn now_ms() -> u64 {
    (now_s() * 1000.0) as u64
}

/// RFC 3339 UTC rendering of epoch seconds (`2026-11-23T14:30:22.5Z`).
pub fn rfc3339(epoch_s: f64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos((epoch_s * 1e9) as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Now, RFC 3339 UTC.
pub fn rfc3339_now() -> String {
    rfc3339(now_s())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_utc_and_counts_from_the_epoch() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000.5), "2026-11-18T11:06:40.5Z");
        let (s, ms) = (now_s(), now_ms());
        assert!(s > 1.7e9 && (ms as f64 / 1000.0 - s).abs() < 5.0);
        assert!(rfc3339_now().ends_with('Z'));
    }
}
