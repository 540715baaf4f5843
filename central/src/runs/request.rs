//! `POST /api/runs` body → the job every agent receives.
//!
//! Central adds only what is its own (`machine_ids` to choose machines, `start_at` for the
//! synchronized start) and validates the rest with the agents' own rules
//! (`bench_shared::job::JobSpec::from_json`), so a body central accepts is one every agent accepts,
//! and a bad field gets the same message from both.
//!
//! For `llm_generate` central also reads its own comparison fields: `cache_bust` (default true:
//! central draws a per-run `prompt_nonce` that every machine gets, so no engine answers from its
//! prompt cache yet all run the same prompt), and `rank_by` / `min_effect_pct`, which stay in the
//! run's stored spec for the summary but are not sent to agents.

use bench_shared::job::{FieldError, JobSpec};
use serde_json::Value;

/// A validated run request.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The job body posted to every chosen agent (the client's fields plus `start_at`).
    pub job: Value,
    pub spec: JobSpec,
    /// Machines the client chose; `None` = every configured machine.
    pub machine_ids: Option<Vec<String>>,
}

/// Validates a `POST /api/runs` body. `known` lists the configured machine ids.
pub fn parse(body: &Value, start_at_ms: u64, now_ms: u64, known: &[&str]) -> Result<RunRequest, FieldError> {
    let mut job = body.as_object().cloned().ok_or_else(|| FieldError::new("body", "must be a JSON object"))?;
    if job.contains_key("start_at") {
        return Err(FieldError::new("start_at", "is set by central (machines start together); leave it out"));
    }
    let machine_ids = match job.remove("machine_ids") {
        None | Some(Value::Null) => None,
        Some(v) => Some(machine_ids(&v, known)?),
    };
    job.entry("test_type").or_insert_with(|| Value::from("llm_generate"));
    job.insert("start_at".into(), Value::from(start_at_ms));
    if job.get("test_type").and_then(Value::as_str) == Some("llm_generate") {
        let cache_bust = match job.remove("cache_bust") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(FieldError::new("cache_bust", "must be true or false (default true)")),
        };
        if cache_bust && !job.contains_key("prompt_nonce") {
            job.insert("prompt_nonce".into(), Value::from(uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()));
        }
    }
    let spec = JobSpec::from_json(&Value::Object(job.clone()), now_ms)?;
    // Comparison settings are central's: kept in the spec, not sent to agents.
    job.remove("rank_by");
    job.remove("min_effect_pct");
    Ok(RunRequest { job: Value::Object(job), spec, machine_ids })
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
    fn adds_start_at_and_keeps_client_fields() {
        let r = parse(
            &json!({"model": "m", "prompt": "p", "repeat": 2, "machine_ids": ["a"]}),
            NOW + 1500,
            NOW,
            &["a", "b"],
        )
        .unwrap();
        assert_eq!(r.job["start_at"], NOW + 1500);
        assert_eq!(r.job["test_type"], "llm_generate");
        assert!(r.job.get("machine_ids").is_none());
        assert_eq!(r.machine_ids, Some(vec!["a".to_string()]));
        assert_eq!(r.spec.start_at_ms(), Some(NOW + 1500));
    }

    #[test]
    fn comparison_fields_stay_in_the_spec_and_the_nonce_goes_to_agents() {
        let r = parse(&json!({"model": "m", "prompt": "p", "rank_by": "ttft_ms", "min_effect_pct": 5}), NOW, NOW, &[])
            .unwrap();
        let JobSpec::LlmGenerate(g) = &r.spec else { panic!() };
        assert_eq!((g.rank_by.as_str(), g.min_effect_pct), ("ttft_ms", 5.0));
        assert!(r.job.get("rank_by").is_none() && r.job.get("min_effect_pct").is_none(), "{}", r.job);
        let nonce = r.job["prompt_nonce"].as_str().unwrap();
        assert_eq!(g.prompt_nonce.as_deref(), Some(nonce));
        assert_eq!(nonce.len(), 12);
        let other = parse(&json!({"model": "m", "prompt": "p"}), NOW, NOW, &[]).unwrap();
        assert_ne!(other.job["prompt_nonce"], r.job["prompt_nonce"], "a fresh nonce per run");
        let off = parse(&json!({"model": "m", "prompt": "p", "cache_bust": false}), NOW, NOW, &[]).unwrap();
        assert!(off.job.get("prompt_nonce").is_none() && off.job.get("cache_bust").is_none());
    }

    #[test]
    fn errors_name_the_field() {
        let p = |b: Value| parse(&b, NOW + 1500, NOW, &["a"]).unwrap_err().field;
        assert_eq!(p(json!({"model": "m", "prompt": "p", "machine_ids": ["zz"]})), "machine_ids");
        assert_eq!(p(json!({"model": "m", "prompt": "p", "machine_ids": []})), "machine_ids");
        assert_eq!(p(json!({"model": "m", "prompt": "p", "start_at": 5})), "start_at");
        assert_eq!(p(json!({"model": "m", "prompt": "p", "max_tokens": 0})), "max_tokens");
        assert_eq!(p(json!({"prompt": "p"})), "model");
        assert_eq!(p(json!({"model": "m", "prompt": "p", "temprature": 1})), "temprature");
        assert_eq!(p(json!("x")), "body");
        assert_eq!(p(json!({"test_type": "llm_sweep", "models": ["m"]})), "ctx");
        assert_eq!(p(json!({"model": "m", "prompt": "p", "cache_bust": "yes"})), "cache_bust");
        assert_eq!(p(json!({"model": "m", "prompt": "p", "rank_by": "speed"})), "rank_by");
        assert_eq!(p(json!({"model": "m", "prompt": "p", "min_effect_pct": 101})), "min_effect_pct");
    }
}
