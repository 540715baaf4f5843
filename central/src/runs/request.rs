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

use bench_shared::job::{FieldError, JobSpec, TestType};
use bench_shared::workload::speech::{AudioFormat, TranscribeSpec};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

/// A validated run request.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The job as central stores it (in `metadata.json`); central sets `start_at` per agent when
    /// it posts it, and puts a transcription's audio back in ([`RunAudio::job_for_agents`]).
    pub spec: JobSpec,
    /// Machines the client chose; `None` = every configured machine.
    pub machine_ids: Option<Vec<String>>,
    /// A `transcribe` run's audio, taken out of the stored spec.
    pub audio: Option<RunAudio>,
}

/// A transcription's audio file: stored once, as `audio/<sha256>.<ext>` in the run folder, and
/// sent to every agent as `audio_b64`; the stored spec keeps only the file's name, SHA-256 and
/// duration (so no JSON file or API answer carries up to 25 MB of base64).
#[derive(Debug, Clone)]
pub struct RunAudio {
    /// The file's name in the run's `audio/` folder.
    pub name: String,
    pub bytes: Vec<u8>,
    /// The base64 every agent gets.
    b64: String,
}

impl RunAudio {
    /// The job an agent gets: the stored spec with the audio itself back in, and without the
    /// fields only central's stored spec has.
    pub fn job_for_agents(&self, stored: &JobSpec) -> JobSpec {
        let mut job = stored.clone();
        if let JobSpec::Transcribe(t) = &mut job {
            t.audio_b64 = Some(self.b64.clone());
            (t.audio_file, t.audio_sha256, t.audio_s) = (None, None, None);
        }
        job
    }
}

/// Central's own fields of a `POST /api/runs` body, read before the rest goes to the agents'
/// rules.
#[derive(Deserialize)]
struct CentralFields {
    #[serde(default)]
    machine_ids: Option<Value>,
    #[serde(default)]
    cache_bust: Option<Value>,
}

/// The fields that say whether central fills in a transcription's audio from an asset (read
/// leniently: a field of the wrong type is left for the job's own rules to name).
#[derive(Deserialize)]
struct AudioRequest {
    test_type: TestType,
    #[serde(default)]
    audio: Option<String>,
    #[serde(default)]
    audio_b64: Option<IgnoredAny>,
    #[serde(default)]
    reference_text: Option<IgnoredAny>,
}

/// Fields only central writes into a stored `transcribe` spec.
const CENTRAL_AUDIO_FIELDS: [&str; 3] = ["audio_file", "audio_sha256", "audio_s"];

/// Validates a `POST /api/runs` body. `known` lists the configured machine ids.
pub fn parse(body: &Value, now_ms: u64, known: &[&str]) -> Result<RunRequest, FieldError> {
    let mut job = body.as_object().cloned().ok_or_else(|| FieldError::new("body", "must be a JSON object"))?;
    let own = CentralFields::deserialize(body).map_err(|e| FieldError::new("body", e.to_string()))?;
    if job.contains_key("start_at") {
        return Err(FieldError::new("start_at", "is set by central (machines start together); leave it out"));
    }
    if let Some(k) = CENTRAL_AUDIO_FIELDS.into_iter().find(|k| job.contains_key(*k)) {
        return Err(FieldError::new(k, "is set by central (from the audio it stores); leave it out"));
    }
    job.remove("machine_ids");
    job.remove("cache_bust");
    let machine_ids = match own.machine_ids {
        None | Some(Value::Null) => None,
        Some(v) => Some(machine_ids(&v, known)?),
    };
    if let Ok(asked) = AudioRequest::deserialize(body) {
        resolve_audio(&mut job, asked)?;
    }
    let mut spec = JobSpec::from_json(&Value::Object(job), now_ms)?;
    let cache_bust = match (own.cache_bust, nonce_of(&mut spec).is_some()) {
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
    let audio = match &mut spec {
        JobSpec::Transcribe(t) => take_audio(t)?,
        _ => None,
    };
    Ok(RunRequest { spec, machine_ids, audio })
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
fn resolve_audio(job: &mut serde_json::Map<String, Value>, asked: AudioRequest) -> Result<(), FieldError> {
    let (TestType::Transcribe, Some(id), None) = (asked.test_type, asked.audio, asked.audio_b64) else {
        return Ok(());
    };
    bench_shared::workload::speech::check_asset_id("audio", &id)?;
    let (asset, bytes) = crate::assets::audio_asset(&id).ok_or_else(|| {
        let ids: Vec<String> = crate::assets::audio_assets().into_iter().map(|a| a.id).collect();
        FieldError::new("audio", format!("no audio asset {id:?}; GET /api/assets/audio lists: {}", ids.join(", ")))
    })?;
    use base64::Engine as _;
    job.insert("audio_b64".into(), Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)));
    if asked.reference_text.is_none() {
        job.insert("reference_text".into(), Value::String(asset.reference_text));
    }
    Ok(())
}

/// Takes the (validated) audio out of a `transcribe` spec, leaving its file name, SHA-256 and
/// duration in its place.
fn take_audio(t: &mut TranscribeSpec) -> Result<Option<RunAudio>, FieldError> {
    if t.audio_b64.is_none() {
        return Ok(None);
    }
    let (bytes, format) = t.audio_bytes()?;
    let sha256 = crate::store::bundle::sha256_hex(&bytes);
    let ext = match format {
        AudioFormat::Wav => "wav",
        AudioFormat::Flac => "flac",
        AudioFormat::Mp3 => "mp3",
    };
    let name = format!("{sha256}.{ext}");
    t.audio_file = Some(format!("audio/{name}"));
    t.audio_s = bench_shared::workload::speech::audio_duration_s(&bytes);
    t.audio_sha256 = Some(sha256);
    let b64 = t.audio_b64.take().unwrap_or_default();
    Ok(Some(RunAudio { name, bytes, b64 }))
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
        let (asset, file) = crate::assets::audio_asset("fox").unwrap();
        let sha = crate::store::bundle::sha256_hex(&file);
        // The stored spec names the file; the agents' job carries it.
        assert_eq!(t.audio_b64, None);
        assert_eq!(t.audio_file.as_deref(), Some(format!("audio/{sha}.wav").as_str()));
        assert_eq!(t.audio_sha256.as_deref(), Some(sha.as_str()));
        assert!(t.audio_s.is_some_and(|s| (s - asset.audio_s).abs() < 1e-3), "{:?}", t.audio_s);
        let audio = r.audio.as_ref().unwrap();
        assert_eq!((audio.name.as_str(), &audio.bytes), (format!("{sha}.wav").as_str(), &file));
        let JobSpec::Transcribe(sent) = audio.job_for_agents(&r.spec) else { panic!() };
        assert_eq!(sent.audio_bytes().unwrap().0, file);
        assert_eq!((sent.audio_file, sent.audio_sha256, sent.audio_s), (None, None, None));
        assert_eq!((sent.audio.as_deref(), sent.repeat), (Some("fox"), 3));
        let e = parse(&json!({"test_type": "transcribe", "model": "w", "audio": "fox", "audio_sha256": "x"}), NOW, &[])
            .unwrap_err();
        assert_eq!(e.field, "audio_sha256");
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
