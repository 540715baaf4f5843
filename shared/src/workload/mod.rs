//! The races beyond text: image generation, speech to text and the CPU compute race.
//!
//! Each workload is a job spec (a serde struct with `deny_unknown_fields` and a `validate()` that
//! names the field and the accepted range), its event payloads, and the pure arithmetic of its
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

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::job::FieldError;

/// Decodes a job body (without its `test_type`) into a spec, turning serde's error into a
/// [`FieldError`] that names the field: `unknown field` and `missing field` name theirs, a value
/// of the wrong type names its path.
pub fn decode_spec<T: DeserializeOwned>(body: &serde_json::Map<String, Value>) -> Result<T, FieldError> {
    let mut obj = body.clone();
    obj.remove("test_type");
    serde_path_to_error::deserialize::<_, T>(Value::Object(obj)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let quoted = |prefix: &str| {
            inner.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('`')).and_then(|r| r.split('`').next())
        };
        if let Some(name) = quoted("unknown field ") {
            let accepted = inner.split_once(", expected ").map(|(_, a)| a).unwrap_or("");
            FieldError::new(
                name,
                format!("unknown field; expected {}", accepted.trim_end_matches(" at line 0 column 0")),
            )
        } else if let Some(name) = quoted("missing field ") {
            FieldError::new(name, "is required")
        } else {
            let field = if path == "." { "body".to_owned() } else { path };
            FieldError::new(field, inner)
        }
    })
}

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

/// `start_at` as [`crate::job`] checks it for text jobs.
pub(crate) fn check_start_at(start_at: Option<u64>, now_ms: u64) -> Result<(), FieldError> {
    let Some(t) = start_at else { return Ok(()) };
    let lo = now_ms.saturating_sub(crate::job::START_AT_PAST_MS);
    let hi = now_ms + crate::job::START_AT_FUTURE_MS;
    if (lo..=hi).contains(&t) {
        Ok(())
    } else {
        Err(FieldError::new(
            "start_at",
            format!(
                "must be an integer epoch time in milliseconds from {lo} to {hi} (now − {} s to now + {} s), got {t}",
                crate::job::START_AT_PAST_MS / 1000,
                crate::job::START_AT_FUTURE_MS / 1000
            ),
        ))
    }
}

/// A rate `count / (ms / 1000)`; `None` when the time is not positive or either is not finite.
pub fn per_second(count: f64, ms: f64) -> Option<f64> {
    (count.is_finite() && ms.is_finite() && ms > 0.0).then(|| count / (ms / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct S {
        name: String,
        #[serde(default)]
        steps: u32,
    }

    fn err(v: Value) -> FieldError {
        decode_spec::<S>(v.as_object().unwrap()).unwrap_err()
    }

    #[test]
    fn decode_errors_name_the_field() {
        let e = err(json!({"name": "x", "stpes": 3}));
        assert_eq!(e.field, "stpes");
        assert!(e.message.contains("name") && e.message.contains("steps"), "{e}");
        assert_eq!(err(json!({"steps": 3})).field, "name");
        let e = err(json!({"name": "x", "steps": "many"}));
        assert_eq!(e.field, "steps");
        assert!(e.message.contains("invalid type"), "{e}");
        assert_eq!(err(json!({"name": "x", "steps": -1})).field, "steps");
        assert!(decode_spec::<S>(json!({"test_type": "t", "name": "x"}).as_object().unwrap()).is_ok());
    }

    #[test]
    fn rates() {
        assert_eq!(per_second(10.0, 2000.0), Some(5.0));
        assert_eq!(per_second(10.0, 0.0), None);
        assert_eq!(per_second(f64::NAN, 10.0), None);
    }
}
