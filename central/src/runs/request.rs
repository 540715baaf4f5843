//! `POST /api/runs` body → the job every agent receives.
//!
//! Central adds only what is its own (`machine_ids` to choose machines, `start_at` for the
//! synchronized start) and validates the rest with the agents' own rules
//! (`bench_shared::job::JobSpec::from_json`), so a body central accepts is one every agent accepts,
//! and a bad field gets the same message from both.
//!
//! For `llm_generate`, `llm_load` and `llm_capacity` central also reads `cache_bust` (default
//! true: central draws a per-run `prompt_nonce` that every machine gets, so no engine answers from
//! its prompt cache — not even one warmed by an earlier run with the same seed — yet all run the
//! same prompts). The comparison fields `rank_by` / `min_effect_pct` stay in the typed spec
//! central stores and posts (agents accept and ignore them).

use bench_shared::job::{FieldError, JobSpec};
use serde_json::Value;

/// A validated run request.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The job every chosen agent gets (central sets `start_at` per agent when it posts it).
    pub spec: JobSpec,
    /// Machines the client chose; `None` = every configured machine.
    pub machine_ids: Option<Vec<String>>,
}

/// Validates a `POST /api/runs` body. `known` lists the configured machine ids.
pub fn parse(body: &Value, now_ms: u64, known: &[&str]) -> Result<RunRequest, FieldError> {
    let mut job = body.as_object().cloned().ok_or_else(|| FieldError::new("body", "must be a JSON object"))?;
    if job.contains_key("start_at") {
        return Err(FieldError::new("start_at", "is set by central (machines start together); leave it out"));
    }
    let machine_ids = match job.remove("machine_ids") {
        None | Some(Value::Null) => None,
        Some(v) => Some(machine_ids(&v, known)?),
    };
    let cache_bust = job.remove("cache_bust");
    resolve_audio(&mut job)?;
    let mut spec = JobSpec::from_json(&Value::Object(job), now_ms)?;
    let cache_bust = match (cache_bust, nonce_of(&mut spec).is_some()) {
        (None | Some(Value::Null), _) => true,
        (Some(Value::Bool(b)), true) => b,
        (Some(_), true) => {
            return Err(FieldError::new("cache_bust", "must be true or false (default true)"));
        }
        (Some(_), false) => {
            let t = spec.test_type().as_str();
            return Err(FieldError::new(
                "cache_bust",
                format!("is for llm_generate, llm_load and llm_capacity runs; a {t} run takes none"),
            ));
        }
    };
    if let Some(nonce) = nonce_of(&mut spec)
        && cache_bust
        && nonce.is_none()
    {
        *nonce = Some(uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
    }
    Ok(RunRequest { spec, machine_ids })
}

/// The spec's cache-busting nonce, for the test types that take one.
fn nonce_of(spec: &mut JobSpec) -> Option<&mut Option<String>> {
    match spec {
        JobSpec::LlmGenerate(g) => Some(&mut g.prompt_nonce),
        JobSpec::LlmLoad(l) => Some(&mut l.prompt_nonce),
        JobSpec::LlmCapacity(c) => Some(&mut c.prompt_nonce),
        JobSpec::LlmSweep(_) | JobSpec::ImageGenerate(_) | JobSpec::Transcribe(_) | JobSpec::Compute(_) => None,
    }
}

/// A `transcribe` run naming an audio asset (`audio`) without the file itself: central puts the
/// asset's file in as `audio_b64` (and its reference text, unless the run gives one), so every
/// machine gets the same bytes.
fn resolve_audio(job: &mut serde_json::Map<String, Value>) -> Result<(), FieldError> {
    if job.get("test_type").and_then(Value::as_str) != Some("transcribe") || job.contains_key("audio_b64") {
        return Ok(());
    }
    let Some(id) = job.get("audio").and_then(Value::as_str) else { return Ok(()) };
    bench_shared::workload::speech::check_asset_id("audio", id)?;
    let (asset, bytes) = crate::assets::audio_asset(id).ok_or_else(|| {
        let ids: Vec<String> = crate::assets::audio_assets().into_iter().map(|a| a.id).collect();
        FieldError::new("audio", format!("no audio asset {id:?}; GET /api/assets/audio lists: {}", ids.join(", ")))
    })?;
    use base64::Engine as _;
    job.insert("audio_b64".into(), Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)));
    if !job.contains_key("reference_text") {
        job.insert("reference_text".into(), Value::String(asset.reference_text));
    }
    Ok(())
}

fn machine_ids(v: &Value, known: &[&str]) -> Result<Vec<String>, FieldError> {
    let list = v.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
        FieldError::new("machine_ids", "must be a non-empty list of machine ids (or left out for all)")
    })?;
    let mut ids: Vec<String> = Vec::new();
    for id in list {
        let Some(id) = id.as_str() else {
            return Err(FieldError::new("machine_ids", "every entry must be a machine id string"));
        };
        if !known.contains(&id) {
            return Err(FieldError::new(
                "machine_ids",
                format!("unknown machine {id:?}; configured machines: {}", known.join(", ")),
            ));
        }
        if !ids.iter().any(|x| x == id) {
            ids.push(id.to_owned());
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn chooses_machines_and_leaves_start_at_to_central() {
        let r = parse(&json!({"model": "m", "prompt": "p", "repeat": 2, "machine_ids": ["a", "a"]}), NOW, &["a", "b"])
            .unwrap();
        assert_eq!(r.machine_ids, Some(vec!["a".to_string()]));
        assert_eq!(r.spec.test_type(), bench_shared::job::TestType::LlmGenerate);
        assert_eq!(r.spec.start_at_ms(), None);
        let all = parse(&json!({"model": "m", "prompt": "p"}), NOW, &["a"]).unwrap();
        assert_eq!(all.machine_ids, None);
    }

    #[test]
    fn comparison_fields_stay_in_the_spec_and_a_fresh_nonce_is_drawn() {
        let r =
            parse(&json!({"model": "m", "prompt": "p", "rank_by": "ttft_ms", "min_effect_pct": 5}), NOW, &[]).unwrap();
        let JobSpec::LlmGenerate(g) = &r.spec else { panic!() };
        assert_eq!((g.rank_by.as_str(), g.min_effect_pct), ("ttft_ms", 5.0));
        let nonce = g.prompt_nonce.clone().unwrap();
        assert_eq!(nonce.len(), 12);
        let other = parse(&json!({"model": "m", "prompt": "p"}), NOW, &[]).unwrap();
        let JobSpec::LlmGenerate(o) = &other.spec else { panic!() };
        assert_ne!(o.prompt_nonce.as_deref(), Some(nonce.as_str()), "a fresh nonce per run");
        let off = parse(&json!({"model": "m", "prompt": "p", "cache_bust": false}), NOW, &[]).unwrap();
        let JobSpec::LlmGenerate(off) = &off.spec else { panic!() };
        assert_eq!(off.prompt_nonce, None);
        let posted = serde_json::to_value(&r.spec).unwrap();
        assert!(posted.get("cache_bust").is_none() && posted["prompt_nonce"] == nonce.as_str(), "{posted}");
    }

    #[test]
    fn an_audio_asset_becomes_the_file_and_its_reference() {
        let r =
            parse(&json!({"test_type": "transcribe", "model": "w", "audio": "fox", "repeat": 3}), NOW, &[]).unwrap();
        let JobSpec::Transcribe(t) = &r.spec else { panic!() };
        assert_eq!(t.reference_text.as_deref(), Some("The quick brown fox jumps over the lazy dog."));
        let (bytes, _) = t.audio_bytes().unwrap();
        assert_eq!(bytes, crate::assets::audio_asset("fox").unwrap().1);
        let e = parse(&json!({"test_type": "transcribe", "model": "w", "audio": "nope"}), NOW, &[]).unwrap_err();
        assert!(e.field == "audio" && e.message.contains("fox"), "{e}");
        let e = parse(&json!({"test_type": "transcribe", "model": "w", "audio": "../x"}), NOW, &[]).unwrap_err();
        assert_eq!(e.field, "audio");
    }

    #[test]
    fn every_bad_field_is_named() {
        let p = |b: Value| parse(&b, NOW, &["a"]).unwrap_err().field;
        assert_eq!(p(json!({"model": "m", "prompt": "p", "machine_ids": ["zz"]})), "machine_ids");
        assert_eq!(p(json!({"model": "m", "prompt": "p", "machine_ids": []})), "machine_ids");
        assert_eq!(p(json!({"model": "m", "prompt": "p", "start_at": 5})), "start_at");
        assert_eq!(p(json!({"model": "m", "prompt": "p", "max_tokens": 0})), "max_tokens");
        assert_eq!(p(json!({"prompt": "p"})), "model");
        assert_eq!(p(json!({"model": "m", "prompt": "p", "temprature": 1})), "temprature");
        assert_eq!(p(json!("x")), "body");
        assert_eq!(p(json!({"test_type": "llm_sweep", "models": ["m"]})), "ctx");
        assert_eq!(p(json!({"test_type": "llm_sweep", "models": ["m"], "ctx": 512, "cache_bust": true})), "cache_bust");
        assert_eq!(p(json!({"model": "m", "prompt": "p", "cache_bust": "yes"})), "cache_bust");
        assert_eq!(p(json!({"model": "m", "prompt": "p", "rank_by": "speed"})), "rank_by");
        assert_eq!(p(json!({"model": "m", "prompt": "p", "min_effect_pct": 101})), "min_effect_pct");
    }
}
