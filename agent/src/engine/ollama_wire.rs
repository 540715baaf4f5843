//! Ollama's wire shapes (docs/api.md, api/types.go) and their translation into engine terms.
//!
//! Durations on the wire are nanoseconds; [`EngineStats`] holds milliseconds.

use bench_shared::engine::{LoadedModel, ModelInfo};
use bench_shared::metrics::EngineStats;
use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::EngineError;
use super::wire_text::opt_text;

/// One NDJSON line of `/api/chat` (and of `/api/generate`, whose text sits in `response` /
/// `thinking` at the top level), or the single object of a non-streamed answer. Text borrows
/// from the line where it has no escapes (see [`opt_text`]).
#[derive(Debug, Default, Deserialize)]
pub struct ChatLine<'a> {
    #[serde(default, borrow)]
    pub message: Option<ChatMessage<'a>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    pub response: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    pub thinking: Option<Cow<'a, str>>,
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub done_reason: Option<String>,
    #[serde(default)]
    pub total_duration: Option<u64>,
    #[serde(default)]
    pub load_duration: Option<u64>,
    #[serde(default)]
    pub prompt_eval_count: Option<u64>,
    #[serde(default)]
    pub prompt_eval_duration: Option<u64>,
    #[serde(default)]
    pub eval_count: Option<u64>,
    #[serde(default)]
    pub eval_duration: Option<u64>,
    /// Ollama's mid-stream failure report: present at all (even `null`) means an error line.
    #[serde(default, deserialize_with = "present")]
    error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ChatMessage<'a> {
    #[serde(default, borrow, deserialize_with = "opt_text")]
    pub content: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_text")]
    pub thinking: Option<Cow<'a, str>>,
}

/// `deserialize_with` for a field whose presence matters: `null` is `Some(Value::Null)`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn ns_to_ms(ns: Option<u64>) -> Option<f64> {
    ns.map(|n| n as f64 / 1e6)
}

impl<'a> ChatLine<'a> {
    /// Visible text this line carries (possibly empty).
    pub fn content(&self) -> &str {
        self.message.as_ref().and_then(|m| m.content.as_deref()).or(self.response.as_deref()).unwrap_or("")
    }

    /// Thinking text this line carries (possibly empty).
    pub fn thinking(&self) -> &str {
        self.message.as_ref().and_then(|m| m.thinking.as_deref()).or(self.thinking.as_deref()).unwrap_or("")
    }

    /// The same line owning its text.
    fn into_owned(self) -> ChatLine<'static> {
        let own = |s: Option<Cow<'_, str>>| s.map(|s| Cow::Owned(s.into_owned()));
        ChatLine {
            message: self.message.map(|m| ChatMessage { content: own(m.content), thinking: own(m.thinking) }),
            response: own(self.response),
            thinking: own(self.thinking),
            done: self.done,
            done_reason: self.done_reason,
            total_duration: self.total_duration,
            load_duration: self.load_duration,
            prompt_eval_count: self.prompt_eval_count,
            prompt_eval_duration: self.prompt_eval_duration,
            eval_count: self.eval_count,
            eval_duration: self.eval_duration,
            error: self.error,
        }
    }

    /// The final stats (meaningful on the `done: true` line).
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            prompt_tokens: self.prompt_eval_count,
            completion_tokens: self.eval_count,
            load_ms: ns_to_ms(self.load_duration),
            prompt_eval_ms: ns_to_ms(self.prompt_eval_duration),
            eval_ms: ns_to_ms(self.eval_duration),
            total_ms: ns_to_ms(self.total_duration),
            done_reason: self.done_reason.clone(),
            ..Default::default()
        }
    }
}

/// Parses one line. An `{"error": …}` line is the engine's mid-stream failure report (the HTTP
/// status stays 200), so it becomes [`EngineError::Stream`] wherever it appears.
///
/// Straight into the typed shape (no `Value` tree: this runs once per token); a line that shape
/// refuses is read again as a `Value`, so an error report still wins and a line only the typed
/// reader refuses (a repeated key: the last one counts) still parses.
pub fn parse_line(line: &str) -> Result<ChatLine<'_>, EngineError> {
    match serde_json::from_str::<ChatLine<'_>>(line) {
        Ok(mut chat) => match chat.error.take() {
            Some(err) => Err(stream_error(&err)),
            None => Ok(chat),
        },
        Err(_) => parse_line_value(line),
    }
}

/// [`parse_line`] through a `Value` (the slow path).
fn parse_line_value(line: &str) -> Result<ChatLine<'static>, EngineError> {
    let value: Value = serde_json::from_str(line)
        .map_err(|e| EngineError::Protocol(format!("invalid JSON line from Ollama ({e}): {}", clip(line))))?;
    if let Some(err) = value.get("error") {
        return Err(stream_error(err));
    }
    ChatLine::deserialize(&value)
        .map(ChatLine::into_owned)
        .map_err(|e| EngineError::Protocol(format!("unexpected line from Ollama ({e}): {}", clip(line))))
}

fn stream_error(err: &Value) -> EngineError {
    EngineError::Stream(err.as_str().map(str::to_owned).unwrap_or_else(|| err.to_string()))
}

/// The first 200 characters of a line, for error messages.
pub fn clip(line: &str) -> String {
    line.chars().take(200).collect()
}

/// `GET /api/tags`.
#[derive(Debug, Deserialize)]
pub struct Tags {
    #[serde(default)]
    pub models: Vec<TagModel>,
}

#[derive(Debug, Deserialize)]
pub struct TagModel {
    pub name: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub details: Option<TagDetails>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TagDetails {
    #[serde(default)]
    pub family: Option<String>,
    #[serde(default)]
    pub parameter_size: Option<String>,
    #[serde(default)]
    pub quantization_level: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_ref().filter(|s| !s.is_empty()).cloned()
}

impl TagModel {
    pub fn info(&self) -> ModelInfo {
        let d = self.details.as_ref();
        ModelInfo {
            name: self.name.clone(),
            family: d.and_then(|d| non_empty(&d.family)),
            parameter_size: d.and_then(|d| non_empty(&d.parameter_size)),
            quantization: d.and_then(|d| non_empty(&d.quantization_level)),
            context_length: None,
            size_bytes: self.size,
            digest: non_empty(&self.digest),
            kv_bytes_per_token: None,
        }
    }
}

/// The trained context length from a `POST /api/show` answer: `model_info["<arch>.context_length"]`.
pub fn show_context_length(show: &Value) -> Option<u64> {
    let info = show.get("model_info")?;
    let arch = info.get("general.architecture")?.as_str()?;
    info.get(format!("{arch}.context_length"))?.as_u64()
}

/// The loaded models of a `GET /api/ps` answer; `size_vram < size` means partly on the CPU.
pub fn ps_loaded(ps: &Value) -> Vec<LoadedModel> {
    let models = ps.get("models").and_then(Value::as_array).cloned().unwrap_or_default();
    models
        .iter()
        .map(|m| {
            let num = |k: &str| m.get(k).and_then(Value::as_u64);
            let (size, vram) = (num("size"), num("size_vram"));
            LoadedModel {
                name: m.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
                size_bytes: size,
                size_vram_bytes: vram,
                gpu_offload_pct: size.zip(vram).filter(|(s, _)| *s > 0).map(|(s, v)| v as f64 / s as f64 * 100.0),
                context_length: num("context_length"),
            }
        })
        .collect()
}

/// KV cache bytes per context token from `/api/show` `model_info`: layers × KV heads ×
/// (key + value length) × 2 bytes (f16). Key/value lengths default to `embedding_length /
/// head_count`, as llama.cpp computes them when the GGUF omits them.
pub fn show_kv_bytes_per_token(show: &Value) -> Option<u64> {
    let info = show.get("model_info")?;
    let arch = info.get("general.architecture")?.as_str()?;
    let num = |k: &str| info.get(format!("{arch}.{k}")).and_then(Value::as_u64);
    let layers = num("block_count")?;
    let heads = num("attention.head_count").filter(|h| *h > 0)?;
    let kv_heads = num("attention.head_count_kv").unwrap_or(heads);
    let head_dim = num("embedding_length").map(|e| e / heads);
    let key = num("attention.key_length").or(head_dim)?;
    let value = num("attention.value_length").or(head_dim)?;
    Some(layers * kv_heads * (key + value) * 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shapes as documented in ollama/ollama docs/api.md (chat, streaming).
    const CHUNK: &str = r#"{"model":"llama3.2","created_at":"2023-08-04T08:52:19.385406455-07:00","message":{"role":"assistant","content":"The"},"done":false}"#;
    const THINKING: &str = r#"{"model":"qwen3","created_at":"2025-05-29T09:35:56.8Z","message":{"role":"assistant","content":"","thinking":"Let me"},"done":false}"#;
    const FINAL: &str = r#"{"model":"llama3.2","created_at":"2023-08-04T19:22:45.499127Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":26,"prompt_eval_duration":342546000,"eval_count":282,"eval_duration":4535599000}"#;

    #[test]
    fn content_and_thinking_chunks() {
        let c = parse_line(CHUNK).unwrap();
        assert_eq!((c.content(), c.thinking(), c.done), ("The", "", false));
        let t = parse_line(THINKING).unwrap();
        assert_eq!((t.content(), t.thinking()), ("", "Let me"));
        let g = parse_line(r#"{"model":"m","response":"Hi","done":false}"#).unwrap();
        assert_eq!(g.content(), "Hi");
    }

    #[test]
    fn final_stats_are_converted_from_nanoseconds() {
        let f = parse_line(FINAL).unwrap();
        assert!(f.done);
        let s = f.stats();
        assert_eq!(s.prompt_tokens, Some(26));
        assert_eq!(s.completion_tokens, Some(282));
        assert_eq!(s.load_ms, Some(1.334875));
        assert_eq!(s.prompt_eval_ms, Some(342.546));
        assert_eq!(s.eval_ms, Some(4535.599));
        assert_eq!(s.total_ms, Some(4883.583458));
        assert_eq!(s.done_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn error_line_is_a_stream_error_and_garbage_a_protocol_error() {
        let e =
            parse_line(r#"{"error":"an error was encountered while running the model: unexpected EOF"}"#).unwrap_err();
        assert_eq!(e, EngineError::Stream("an error was encountered while running the model: unexpected EOF".into()));
        assert!(matches!(parse_line("{\"message\":"), Err(EngineError::Protocol(_))));
        assert!(matches!(parse_line(r#"{"done":"yes"}"#), Err(EngineError::Protocol(_))));
    }

    #[test]
    fn tags_and_show() {
        let tags: Tags = serde_json::from_str(
            r#"{"models":[{"name":"deepseek-r1:latest","model":"deepseek-r1:latest","modified_at":"2025-05-10T08:06:48.639712648-07:00","size":4683075271,"digest":"0a8c266910232fd3291e71e5ba1e058cc5af9d411192cf88b6d30e92b6e73163","details":{"parent_model":"","format":"gguf","family":"qwen2","families":["qwen2"],"parameter_size":"7.6B","quantization_level":"Q4_K_M"}}]}"#,
        )
        .unwrap();
        let info = tags.models[0].info();
        assert_eq!(info.name, "deepseek-r1:latest");
        assert_eq!(info.family.as_deref(), Some("qwen2"));
        assert_eq!(info.parameter_size.as_deref(), Some("7.6B"));
        assert_eq!(info.quantization.as_deref(), Some("Q4_K_M"));
        assert_eq!(info.size_bytes, Some(4683075271));
        let show = serde_json::json!({"model_info": {"general.architecture": "llama", "llama.context_length": 131072}});
        assert_eq!(show_kv_bytes_per_token(&show), None, "no layer/head counts: unknown, not guessed");
        // Llama 3.1 8B as /api/show reports it: 32 layers, 8 KV heads of 128 → 128 KiB per token.
        let l31 = serde_json::json!({"model_info": {"general.architecture": "llama", "llama.block_count": 32,
            "llama.attention.head_count": 32, "llama.attention.head_count_kv": 8, "llama.embedding_length": 4096}});
        assert_eq!(show_kv_bytes_per_token(&l31), Some(32 * 8 * 256 * 2));
        // /api/ps as documented: a model half on the GPU.
        let ps = serde_json::json!({"models": [{"name": "mistral:latest", "model": "mistral:latest", "size": 5137025024u64,
            "digest": "2ae6", "expires_at": "2024-06-04T14:38:31.83753-07:00", "size_vram": 2568512512u64, "context_length": 4096}]});
        let loaded = ps_loaded(&ps);
        assert_eq!((loaded[0].gpu_offload_pct, loaded[0].context_length), (Some(50.0), Some(4096)));
        assert_eq!(show_context_length(&show), Some(131072));
        assert_eq!(show_context_length(&serde_json::json!({})), None);
    }
}

/// The body of `POST /api/pull` (streamed, the default, said explicitly).
#[derive(Debug, Serialize)]
pub struct PullBody<'a> {
    pub model: &'a str,
    pub stream: bool,
}

/// One NDJSON line of `/api/pull`: `{"status"}`, `{"status", "digest", "total", "completed"}`,
/// or `{"error"}` (with HTTP 200: the stream had started).
#[derive(Debug, Default, Deserialize)]
pub struct PullWireLine {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    #[serde(default)]
    pub total: Option<u64>,
    #[serde(default)]
    pub completed: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
}
