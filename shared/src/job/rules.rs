//! What each field of a job spec accepts, written once: [`Rule`]s per spec ([`Spec::RULES`]) serve
//! both the message for a value of the wrong type (met while deserializing) and the range checks
//! of [`Spec::validate`] (for specs built in code too), so both say the same accepted range.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::compare::Metric;

/// A validation error that names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }
}

/// Largest prompt, in bytes (UTF-8).
pub const MAX_PROMPT_BYTES: usize = 2 * 1024 * 1024;
/// Longest model name, in bytes.
pub const MAX_MODEL_BYTES: usize = 256;
/// Most models a job may name.
pub const MAX_MODELS: usize = 64;
/// Longest `prompt_nonce`.
pub const MAX_NONCE_CHARS: usize = 64;
/// How far in the past a `start_at` may lie (it then starts at once).
pub const START_AT_PAST_MS: u64 = 60_000;
/// How far in the future a `start_at` may lie.
pub const START_AT_FUTURE_MS: u64 = 300_000;

/// What one field accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// An integer in `min..=max`.
    UInt {
        min: u64,
        max: u64,
    },
    /// A list of 1 to 64 integers, each in `min..=max`.
    UIntList {
        min: u64,
        max: u64,
    },
    /// A finite number in `min..=max`.
    Float {
        min: f64,
        max: f64,
    },
    /// Any integer (e.g. a seed).
    Int,
    Bool,
    /// A string of any length.
    Text,
    /// A non-empty model name of at most [`MAX_MODEL_BYTES`] bytes (trimmed).
    Model,
    /// 1 to [`MAX_MODELS`] model names.
    Models,
    /// A prompt of at most [`MAX_PROMPT_BYTES`] bytes.
    Prompt,
    /// 1 to [`MAX_NONCE_CHARS`] ASCII letters, digits, `-` or `_`.
    Nonce,
    /// One of [`Metric::ALL`].
    Metric,
    /// Epoch milliseconds within [`START_AT_PAST_MS`] before and [`START_AT_FUTURE_MS`] after now.
    StartAt,
    /// One of the listed words.
    OneOf(&'static [&'static str]),
}

impl Rule {
    /// What the field accepts, as the start of an error message ("must be …").
    pub fn describe(&self) -> String {
        match self {
            Rule::UInt { min, max } => format!("must be an integer from {min} to {max}"),
            Rule::UIntList { min, max } => format!("must be a non-empty list of integers from {min} to {max}"),
            Rule::Float { min, max } => format!("must be a number from {min} to {max}"),
            Rule::Int => "must be an integer".into(),
            Rule::Bool => "must be true or false".into(),
            Rule::Text => "must be a string".into(),
            Rule::Model => format!("must be a non-empty model name of at most {MAX_MODEL_BYTES} bytes"),
            Rule::Models => format!("must list from 1 to {MAX_MODELS} model names"),
            Rule::Prompt => format!("must be a string of at most {MAX_PROMPT_BYTES} bytes"),
            Rule::Nonce => format!("must be 1 to {MAX_NONCE_CHARS} letters, digits, '-' or '_'"),
            Rule::Metric => format!("must be a metric name ({})", metric_names()),
            Rule::StartAt => format!(
                "must be an integer epoch time in milliseconds (now − {} s to now + {} s)",
                START_AT_PAST_MS / 1000,
                START_AT_FUTURE_MS / 1000
            ),
            Rule::OneOf(words) => format!("must be one of {}", words.join(", ")),
        }
    }
}

fn metric_names() -> String {
    Metric::ALL.map(Metric::as_str).join(", ")
}

/// A job spec: deserialized with serde (`deny_unknown_fields`, defaults), then validated.
pub trait Spec: DeserializeOwned + Serialize {
    /// Every field with a rule, by its wire name.
    const RULES: &'static [(&'static str, Rule)];

    /// Checks ranges and the rules that involve several fields or the time (`now_ms`, epoch
    /// ms); normalizes what has a canonical form (trimmed model names, clamped minimums).
    fn validate(&mut self, now_ms: u64) -> Result<(), FieldError>;

    /// The rule of a field (a spec's `validate` only asks for fields it lists).
    fn rule(field: &'static str) -> Rule {
        Self::RULES.iter().find(|(f, _)| *f == field).map(|(_, r)| *r).unwrap_or(Rule::Text)
    }

    /// `field` must lie in its [`Rule::UInt`] range.
    fn check_uint(field: &'static str, value: u64) -> Result<(), FieldError> {
        match Self::rule(field) {
            Rule::UInt { min, max } | Rule::UIntList { min, max } if !(min..=max).contains(&value) => {
                Err(FieldError::new(field, format!("{}, got {value}", Self::rule(field).describe())))
            }
            _ => Ok(()),
        }
    }

    /// Every entry of `field` must lie in its [`Rule::UIntList`] range; the list holds 1 to 64.
    fn check_uint_list(field: &'static str, values: &[u32]) -> Result<(), FieldError> {
        let rule = Self::rule(field);
        let Rule::UIntList { min, max } = rule else { return Ok(()) };
        if values.is_empty() || values.len() > 64 || values.iter().any(|v| !(min..=max).contains(&u64::from(*v))) {
            return Err(FieldError::new(field, format!("{}, got {values:?}", rule.describe())));
        }
        Ok(())
    }

    /// `field` must be finite and lie in its [`Rule::Float`] range.
    fn check_float(field: &'static str, value: f64) -> Result<(), FieldError> {
        match Self::rule(field) {
            Rule::Float { min, max } if !(value.is_finite() && value >= min && value <= max) => {
                Err(FieldError::new(field, format!("{}, got {value}", Self::rule(field).describe())))
            }
            _ => Ok(()),
        }
    }
}

/// A model name, trimmed; empty or too long → the [`Rule::Model`] error.
pub fn check_model(field: &'static str, model: &mut String) -> Result<(), FieldError> {
    let trimmed = model.trim();
    if trimmed.is_empty() || trimmed.len() > MAX_MODEL_BYTES {
        return Err(FieldError::new(field, Rule::Model.describe()));
    }
    if trimmed.len() != model.len() {
        *model = trimmed.to_owned();
    }
    Ok(())
}

/// 1 to [`MAX_MODELS`] model names, each trimmed and valid.
pub fn check_models(field: &'static str, models: &mut [String]) -> Result<(), FieldError> {
    if models.is_empty() || models.len() > MAX_MODELS {
        return Err(FieldError::new(field, Rule::Models.describe()));
    }
    for m in models.iter_mut() {
        check_model(field, m).map_err(|_| {
            FieldError::new(
                field,
                format!("every entry must be a non-empty model name of at most {MAX_MODEL_BYTES} bytes"),
            )
        })?;
    }
    Ok(())
}

/// A prompt of at most [`MAX_PROMPT_BYTES`].
pub fn check_prompt(field: &'static str, prompt: &str) -> Result<(), FieldError> {
    if prompt.len() > MAX_PROMPT_BYTES {
        return Err(FieldError::new(
            field,
            format!("is {} bytes; the limit is {} bytes", prompt.len(), MAX_PROMPT_BYTES),
        ));
    }
    Ok(())
}

/// An optional nonce: 1 to [`MAX_NONCE_CHARS`] ASCII letters, digits, `-` or `_`.
pub fn check_nonce(field: &'static str, nonce: Option<&str>) -> Result<(), FieldError> {
    match nonce {
        Some(s)
            if s.is_empty()
                || s.len() > MAX_NONCE_CHARS
                || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Err(FieldError::new(field, format!("{}, got {}", Rule::Nonce.describe(), short(&Value::from(s)))))
        }
        _ => Ok(()),
    }
}

/// `start_at` (epoch ms) must lie within [`START_AT_PAST_MS`] before and [`START_AT_FUTURE_MS`]
/// after `now_ms`.
pub fn check_start_at(start_at: Option<u64>, now_ms: u64) -> Result<(), FieldError> {
    let Some(t) = start_at else { return Ok(()) };
    let lo = now_ms.saturating_sub(START_AT_PAST_MS);
    let hi = now_ms + START_AT_FUTURE_MS;
    if (lo..=hi).contains(&t) {
        return Ok(());
    }
    Err(FieldError::new(
        "start_at",
        format!(
            "must be an integer epoch time in milliseconds from {lo} to {hi} (now − {} s to now + {} s), got {t}",
            START_AT_PAST_MS / 1000,
            START_AT_FUTURE_MS / 1000
        ),
    ))
}

/// Deserializes and validates a spec from the fields of a JSON object (without `test_type`).
/// `null` means "not given" (the default applies), as it always has for `POST /jobs`.
pub fn parse<S: Spec>(mut obj: Map<String, Value>, now_ms: u64) -> Result<S, FieldError> {
    obj.retain(|_, v| !v.is_null());
    let raw = Value::Object(obj);
    let mut spec: S = serde_path_to_error::deserialize(&raw).map_err(|e| serde_error::<S>(&e, &raw))?;
    spec.validate(now_ms)?;
    Ok(spec)
}

/// Turns serde's error into one naming the field and what it accepts.
fn serde_error<S: Spec>(e: &serde_path_to_error::Error<serde_json::Error>, raw: &Value) -> FieldError {
    let inner = e.inner().to_string();
    if let Some(name) = between(&inner, "unknown field `", "`") {
        let mut known: Vec<&str> = S::RULES.iter().map(|(f, _)| *f).collect();
        known.sort_unstable();
        return FieldError::new(name, format!("unknown field; accepted fields: {}", known.join(", ")));
    }
    if let Some(name) = between(&inner, "missing field `", "`") {
        let message = match S::RULES.iter().find(|(f, _)| *f == name) {
            Some((_, rule)) => format!("is required; it {}", rule.describe()),
            None => "is required".to_owned(),
        };
        return FieldError::new(name, message);
    }
    // A value of the wrong type (or out of the type's range): the path's first segment is the field.
    let field = e.path().iter().next().map(|s| s.to_string()).unwrap_or_else(|| "body".into());
    let got = raw.get(&field).map(short).unwrap_or_default();
    match S::RULES.iter().find(|(f, _)| *f == field) {
        Some((_, Rule::Metric)) if raw.get(&field).is_some_and(Value::is_string) => {
            FieldError::new(field, format!("unknown metric {got}; accepted: {}", metric_names()))
        }
        Some((_, Rule::OneOf(words))) if raw.get(&field).is_some_and(Value::is_string) => {
            FieldError::new(field, format!("unknown value {got}; accepted: {}", words.join(", ")))
        }
        Some((_, rule)) => FieldError::new(field, format!("{}, got {got}", rule.describe())),
        None => FieldError::new(field, inner),
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &s[s.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// A short rendering of a value for error messages (never echoes a huge input back).
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        let mut end = 40;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
    }
}
