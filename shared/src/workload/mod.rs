//! The races beyond text: image generation, speech to text and the CPU compute race.
//!
//! Each workload is a job spec (a serde struct with `deny_unknown_fields` implementing
//! [`crate::job::Spec`]: every error names the field and the accepted range), its event payloads, and the pure arithmetic of its
//! figures, so that the agent, central and the browser compute the same numbers.
//!
//! # Layout
//! - [`image`]: `image_generate` (ComfyUI or an OpenAI-style images server): spec, events,
//!   `steps_per_s` / `s_per_image`.
//! - [`speech`]: `transcribe` (OpenAI-compatible transcription servers): spec, events, WER, RTFx.
//! - [`compute`]: `compute` (prime counting on N threads, run by the agent itself): spec, events,
//!   the counting itself (deterministic: π(n) on any machine and thread count).

pub mod compute;
pub mod image;
pub mod speech;

use crate::job::FieldError;

/// `Err` naming `field` unless `value` lies in `lo..=hi`.
pub(crate) fn check_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    value: T,
    lo: T,
    hi: T,
    what: &str,
) -> Result<(), FieldError> {
    if value >= lo && value <= hi {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("must be {what} from {lo} to {hi}, got {value}")))
    }
}

/// Rejects an empty or over-long text field.
pub(crate) fn check_text(field: &str, value: &str, max_bytes: usize, allow_empty: bool) -> Result<(), FieldError> {
    if !allow_empty && value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.len() > max_bytes {
        return Err(FieldError::new(field, format!("is {} bytes; the limit is {max_bytes} bytes", value.len())));
    }
    Ok(())
}

pub(crate) use crate::job::check_start_at;

/// Hex SHA-256 of `bytes` (image hashes: the agent reports them, central checks what it stores).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A rate `count / (ms / 1000)`; `None` when the time is not positive or either is not finite.
pub fn per_second(count: f64, ms: f64) -> Option<f64> {
    (count.is_finite() && ms.is_finite() && ms > 0.0).then(|| count / (ms / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn rates() {
        assert_eq!(per_second(10.0, 2000.0), Some(5.0));
        assert_eq!(per_second(10.0, 0.0), None);
        assert_eq!(per_second(f64::NAN, 10.0), None);
    }
}
