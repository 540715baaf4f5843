//! OpenAI-compatible wire shapes: chat-completion chunks and answers, `usage`, llama.cpp's
//! `timings`, and `/v1/models` entries.

use bench_shared::engine::{EngineFingerprint, EngineKind, ModelInfo};
use bench_shared::metrics::EngineStats;
use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::EngineError;
use super::ollama_wire::clip;
use super::wire_text::opt_text;

/// A `chat.completion.chunk` (streamed) or a `chat.completion` (non-streamed): the choice carries
/// `delta` in the first case and `message` in the second. Text borrows from the payload where it
/// has no escapes (most tokens), so a chunk costs no allocation for its text.
#[derive(Debug, Default, Deserialize)]
pub struct Completion<'a> {
    #[serde(default, borrow)]
    pub choices: Vec<Choice<'a>>,
    #[serde(default)]
    pub usage: Option<Usage>,
    #[serde(default)]
    pub timings: Option<Timings>,
    /// The server's failure report inside a 200 stream (`null` is none).
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Choice<'a> {
    #[serde(default, borrow)]
    pub delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    pub message: Option<Delta<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    pub finish_reason: Option<Cow<'a, str>>,
}

/// Text of a delta or message. `content` is often `null` (role-only first chunk, reasoning
/// chunks); reasoning is `reasoning_content` (llama.cpp, DeepSeek, SGLang) or `reasoning`
/// (vLLM, Ollama's /v1).
#[derive(Debug, Default, Deserialize)]
pub struct Delta<'a> {
    #[serde(default, borrow, deserialize_with = "opt_text")]
    pub content: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    pub reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    pub reasoning: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

/// llama.cpp's own figures for the request.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Timings {
    #[serde(default)]
    pub cache_n: Option<u64>,
    #[serde(default)]
    pub prompt_n: Option<u64>,
    #[serde(default)]
    pub prompt_ms: Option<f64>,
    #[serde(default)]
    pub prompt_per_second: Option<f64>,
    #[serde(default)]
    pub predicted_n: Option<u64>,
    #[serde(default)]
    pub predicted_ms: Option<f64>,
    #[serde(default)]
    pub predicted_per_second: Option<f64>,
}

impl<'a> Completion<'a> {
    /// Visible text of the first choice (empty for `null`).
    pub fn content(&self) -> &str {
        self.text(|d| d.content.as_deref())
    }

    /// Reasoning text of the first choice, under either field name.
    pub fn reasoning(&self) -> &str {
        self.text(|d| d.reasoning_content.as_deref().or(d.reasoning.as_deref()))
    }

    fn text<'s>(&'s self, f: impl Fn(&'s Delta<'a>) -> Option<&'s str>) -> &'s str {
        self.choices.first().and_then(|c| c.delta.as_ref().or(c.message.as_ref())).and_then(f).unwrap_or("")
    }

    pub fn finish_reason(&self) -> Option<&str> {
        self.choices.iter().find_map(|c| c.finish_reason.as_deref())
    }

    /// The same completion owning its text.
    fn into_owned(self) -> Completion<'static> {
        let own = |s: Option<Cow<'_, str>>| s.map(|s| Cow::Owned(s.into_owned()));
        let delta = |d: Option<Delta<'_>>| {
            d.map(|d| Delta {
                content: own(d.content),
                reasoning_content: own(d.reasoning_content),
                reasoning: own(d.reasoning),
            })
        };
        Completion {
            choices: self
                .choices
                .into_iter()
                .map(|c| Choice {
                    delta: delta(c.delta),
                    message: delta(c.message),
                    finish_reason: own(c.finish_reason),
                })
                .collect(),
            usage: self.usage,
            timings: self.timings,
            error: self.error,
        }
    }
}

/// Parses one SSE `data:` payload or a non-streamed body; an `{"error": …}` payload is the
/// server's failure report inside a 200 stream.
///
/// Straight into the typed shape (no `Value` tree: this runs once per token). A payload that
/// shape refuses is read again as a `Value`, so its error report, if any, still wins, and a
/// payload only the typed reader refuses (a repeated key: the last one counts) still parses.
pub fn parse_completion(data: &str) -> Result<Completion<'_>, EngineError> {
    match serde_json::from_str::<Completion<'_>>(data) {
        Ok(mut c) => match c.error.take() {
            Some(err) => Err(stream_error(&err)),
            None => Ok(c),
        },
        Err(_) => parse_completion_value(data),
    }
}

/// [`parse_completion`] through a `Value` (the slow path).
fn parse_completion_value(data: &str) -> Result<Completion<'static>, EngineError> {
    let value: Value = serde_json::from_str(data)
        .map_err(|e| EngineError::Protocol(format!("invalid JSON from the engine ({e}): {}", clip(data))))?;
    if let Some(err) = value.get("error").filter(|e| !e.is_null()) {
        return Err(stream_error(err));
    }
    Completion::deserialize(&value)
        .map(Completion::into_owned)
        .map_err(|e| EngineError::Protocol(format!("unexpected chunk from the engine ({e}): {}", clip(data))))
}

/// The message of an `error` payload: a string, or an object's `message`, else its JSON.
fn stream_error(err: &Value) -> EngineError {
    let message = err
        .as_str()
        .or_else(|| err.get("message").and_then(Value::as_str))
        .map(str::to_owned)
        .unwrap_or_else(|| err.to_string());
    EngineError::Stream(message)
}

/// Merges `usage` and llama.cpp `timings` into engine stats. `usage` wins where both count the
/// same thing; `timings` fills what `usage` lacks.
pub fn stats(usage: Option<&Usage>, timings: Option<&Timings>, finish_reason: Option<&str>) -> EngineStats {
    let t = timings.cloned().unwrap_or_default();
    let u = usage.cloned().unwrap_or_default();
    let timing_prompt = t.prompt_n.map(|n| n + t.cache_n.unwrap_or(0));
    EngineStats {
        prompt_tokens: u.prompt_tokens.or(timing_prompt),
        completion_tokens: u.completion_tokens.or(t.predicted_n),
        reasoning_tokens: u.completion_tokens_details.and_then(|d| d.reasoning_tokens),
        cached_prompt_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens).or(t.cache_n),
        load_ms: None,
        prompt_eval_ms: t.prompt_ms,
        eval_ms: t.predicted_ms,
        total_ms: None,
        decode_tok_s: t.predicted_per_second,
        prefill_tok_s: t.prompt_per_second,
        done_reason: finish_reason.map(str::to_owned),
    }
}

/// One `/v1/models` entry; llama.cpp adds `meta` (`n_ctx` per slot, `n_ctx_train`, `n_params`,
/// `size`, `ftype`).
pub fn model_info(entry: &Value) -> Option<ModelInfo> {
    let name = entry.get("id")?.as_str()?.to_owned();
    let meta = entry.get("meta");
    let num = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_u64);
    Some(ModelInfo {
        name,
        family: None,
        parameter_size: num("n_params").map(format_params),
        quantization: meta.and_then(|m| m.get("ftype")).and_then(Value::as_str).map(str::to_owned),
        // The context a request can use is the serving one (per slot), not the trained one.
        context_length: num("n_ctx").or(num("n_ctx_train")),
        size_bytes: num("size"),
        digest: None,
        kv_bytes_per_token: None,
    })
}

/// `134515008` → `"135M"`, `7615616512` → `"7.6B"` (Ollama's style).
pub fn format_params(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.0}M", n / 1e6)
    } else {
        format!("{:.0}K", n / 1e3)
    }
}

/// llama.cpp's `GET /props`: `build_info` (its version; `b0-unknown` for builds without git
/// metadata, reported as is), `total_slots`, and the per-slot `default_generation_settings.n_ctx`.
pub fn props_fingerprint(props: &Value) -> EngineFingerprint {
    let build = props.get("build_info").and_then(Value::as_str).map(str::to_owned);
    EngineFingerprint {
        kind: Some(EngineKind::Openai),
        version: build.clone(),
        build,
        context_size: props.pointer("/default_generation_settings/n_ctx").and_then(Value::as_u64),
        slots: props.get("total_slots").and_then(Value::as_u64),
        loaded: Vec::new(),
        sources: vec!["/props".into()],
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded from llama.cpp (xllamacpp 2026.10.11549) with SmolLM2-135M.
    const FIRST: &str = r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"created":1795417590,"id":"chatcmpl-Al2z","model":"smollm2:135m","system_fingerprint":"b0-unknown","object":"chat.completion.chunk"}"#;
    const TOKEN: &str = r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"'m"}}],"created":1795417591,"id":"chatcmpl-Al2z","model":"smollm2:135m","system_fingerprint":"b0-unknown","object":"chat.completion.chunk"}"#;
    const FINISH: &str = r#"{"choices":[{"finish_reason":"length","index":0,"delta":{}}],"created":1795417592,"id":"chatcmpl-Al2z","model":"smollm2:135m","system_fingerprint":"b0-unknown","object":"chat.completion.chunk"}"#;
    const USAGE: &str = r#"{"choices":[],"created":1795417592,"id":"chatcmpl-Al2z","model":"smollm2:135m","system_fingerprint":"b0-unknown","object":"chat.completion.chunk","usage":{"completion_tokens":5,"prompt_tokens":32,"total_tokens":37,"prompt_tokens_details":{"cached_tokens":0}},"timings":{"cache_n":0,"prompt_n":32,"prompt_ms":1924.727,"prompt_per_token_ms":60.14771875,"prompt_per_second":16.625734454808395,"predicted_n":5,"predicted_ms":2439.435,"predicted_per_token_ms":609.85875,"predicted_per_second":1.6397239524726013}}"#;
    const ANSWER: &str = r#"{"choices":[{"finish_reason":"length","index":0,"message":{"role":"assistant","content":"Hello. Welcome to our"}}],"created":1795417594,"model":"smollm2:135m","system_fingerprint":"b0-unknown","object":"chat.completion","usage":{"completion_tokens":5,"prompt_tokens":32,"total_tokens":37,"prompt_tokens_details":{"cached_tokens":31}},"id":"chatcmpl-GXmt","timings":{"cache_n":31,"prompt_n":1,"prompt_ms":505.544,"prompt_per_token_ms":505.544,"prompt_per_second":1.9780671909863434,"predicted_n":5,"predicted_ms":739.373,"predicted_per_token_ms":184.84325,"predicted_per_second":5.409989274696263}}"#;

    #[test]
    fn role_only_and_null_content_carry_no_text() {
        let c = parse_completion(FIRST).unwrap();
        assert_eq!((c.content(), c.reasoning()), ("", ""));
        assert_eq!(parse_completion(FINISH).unwrap().content(), "");
        assert_eq!(parse_completion(FINISH).unwrap().finish_reason(), Some("length"));
        assert_eq!(parse_completion(TOKEN).unwrap().content(), "'m");
    }

    #[test]
    fn reasoning_under_either_name() {
        let a = parse_completion(r#"{"choices":[{"delta":{"content":null,"reasoning_content":"Hmm"}}]}"#).unwrap();
        let b = parse_completion(r#"{"choices":[{"delta":{"reasoning":"Hmm"}}]}"#).unwrap();
        assert_eq!((a.reasoning(), a.content(), b.reasoning()), ("Hmm", "", "Hmm"));
    }

    #[test]
    fn usage_chunk_with_timings() {
        let c = parse_completion(USAGE).unwrap();
        assert!(c.choices.is_empty());
        let s = stats(c.usage.as_ref(), c.timings.as_ref(), Some("length"));
        assert_eq!((s.prompt_tokens, s.completion_tokens, s.cached_prompt_tokens), (Some(32), Some(5), Some(0)));
        assert_eq!((s.prompt_eval_ms, s.eval_ms), (Some(1924.727), Some(2439.435)));
        assert_eq!(s.decode_tok_s, Some(1.6397239524726013));
        assert_eq!(s.prefill_tok_s, Some(16.625734454808395));
        assert_eq!(s.done_reason.as_deref(), Some("length"));
    }

    #[test]
    fn non_streamed_answer_and_timings_without_usage() {
        let c = parse_completion(ANSWER).unwrap();
        assert_eq!(c.content(), "Hello. Welcome to our");
        let s = stats(None, c.timings.as_ref(), None);
        // prompt_n counts only the uncached tokens; the prompt had cache_n + prompt_n.
        assert_eq!((s.prompt_tokens, s.completion_tokens, s.cached_prompt_tokens), (Some(32), Some(5), Some(31)));
        let u = stats(c.usage.as_ref(), None, None);
        assert_eq!((u.cached_prompt_tokens, u.decode_tok_s), (Some(31), None));
    }

    #[test]
    fn error_payloads_are_stream_errors() {
        let e = parse_completion(r#"{"error":{"code":500,"message":"context size exceeded","type":"server_error"}}"#);
        assert_eq!(e.unwrap_err(), EngineError::Stream("context size exceeded".into()));
        assert!(matches!(parse_completion(r#"{"error":"boom"}"#), Err(EngineError::Stream(m)) if m == "boom"));
        assert!(matches!(parse_completion("not json"), Err(EngineError::Protocol(_))));
    }

    #[test]
    fn llama_cpp_model_entry() {
        let entry: Value = serde_json::from_str(r#"{"id":"smollm2:135m","aliases":["smollm2:135m"],"object":"model","owned_by":"llamacpp","meta":{"vocab_type":2,"n_vocab":49152,"n_ctx":1024,"n_ctx_train":8192,"n_params":134515008,"size":96576768,"ftype":"Q4_1"}}"#).unwrap();
        let m = model_info(&entry).unwrap();
        assert_eq!(m.name, "smollm2:135m");
        assert_eq!((m.context_length, m.size_bytes), (Some(1024), Some(96576768)));
        assert_eq!((m.parameter_size.as_deref(), m.quantization.as_deref()), (Some("135M"), Some("Q4_1")));
        let plain = model_info(&serde_json::json!({"id": "gpt-x", "object": "model"})).unwrap();
        assert_eq!((plain.name.as_str(), plain.context_length), ("gpt-x", None));
        assert_eq!(format_params(7_615_616_512), "7.6B");
    }

    #[test]
    fn props_of_the_local_engine() {
        // Recorded from the local xllamacpp engine (trimmed): its build carries no git tag.
        let props: Value = serde_json::from_str(r#"{"default_generation_settings":{"params":{"seed":4294967295},"n_ctx":1024},"total_slots":4,"model_alias":"smollm2:135m","model_ftype":"Q4_1","endpoint_slots":true,"endpoint_metrics":true,"build_info":"b0-unknown","is_sleeping":false}"#).unwrap();
        let f = props_fingerprint(&props);
        assert_eq!((f.build.as_deref(), f.context_size, f.slots), (Some("b0-unknown"), Some(1024), Some(4)));
        assert_eq!(f.sources, vec!["/props"]);
    }
}
