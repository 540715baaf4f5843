//! The generation endpoints of the fake: `/api/chat` and `/api/generate`, streamed on the
//! scripted schedule or answered in one object; load and unload requests.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Fake, FakeScript, WARM_LOAD_MS, error};

#[derive(Clone, Copy)]
pub(super) enum Endpoint {
    Chat,
    Generate,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/api/chat",
            Endpoint::Generate => "/api/generate",
        }
    }

    /// A response line carrying `content` and `thinking` where this endpoint puts them
    /// (`message.content` / `message.thinking` for chat, `response` / `thinking` for generate).
    fn line(self, model: &str, done: bool, content: &str, thinking: &str) -> Value {
        // Ollama sends an RFC 3339 creation time; clients ignore it, so a fixed one will do.
        let mut line = json!({"model": model, "created_at": "2026-11-23T10:00:00.000000000Z", "done": done});
        let text = match self {
            Endpoint::Chat => {
                line["message"] = json!({"role": "assistant", "content": content});
                &mut line["message"]
            }
            Endpoint::Generate => {
                line["response"] = json!(content);
                &mut line
            }
        };
        if !thinking.is_empty() {
            text["thinking"] = json!(thinking);
        }
        line
    }
}

/// The scripted stream of one request: what to write, and when.
struct Plan {
    start: Instant,
    gap: Duration,
    /// Reported load time: the script's `load_ms` when cold, [`WARM_LOAD_MS`] when warm.
    load_ms: f64,
    /// Includes the load time when cold.
    ttft: Duration,
    /// (thinking?, text) in emission order.
    tokens: Vec<(bool, String)>,
    /// Whether `num_predict` cut the script short.
    truncated: bool,
    error_after: Option<usize>,
}

impl Plan {
    fn at(&self, i: usize) -> Instant {
        self.start + self.ttft + self.gap.mul_f64(i as f64)
    }

    fn text(&self, thinking: bool) -> String {
        self.tokens.iter().filter(|t| t.0 == thinking).map(|t| t.1.as_str()).collect()
    }
}

/// The final line: durations in ns, consistent with the script (`eval_count / eval_duration`
/// is the scripted rate; `load_duration + prompt_eval_duration` is the request's TTFT). A
/// non-streamed answer carries the whole text in it; a streamed one carries none.
fn final_line(endpoint: Endpoint, model: &str, script: &FakeScript, plan: &Plan, with_text: bool) -> Value {
    let ms_to_ns = |ms: f64| (ms.max(0.0) * 1e6).round() as u64;
    let n = plan.tokens.len();
    let (content, thinking) = if with_text { (plan.text(false), plan.text(true)) } else { Default::default() };
    let mut line = endpoint.line(model, true, &content, &thinking);
    line["done_reason"] = json!(if plan.truncated { "length" } else { "stop" });
    line["total_duration"] = json!(plan.start.elapsed().as_nanos() as u64);
    line["load_duration"] = json!(ms_to_ns(plan.load_ms));
    line["prompt_eval_count"] = json!(script.prompt_tokens);
    line["prompt_eval_duration"] = json!(ms_to_ns(plan.ttft.as_secs_f64() * 1000.0 - plan.load_ms));
    line["eval_count"] = json!(n);
    line["eval_duration"] = json!(ms_to_ns(n as f64 * 1000.0 / script.tokens_per_s));
    line
}

pub(super) async fn generation(State(fake): State<Fake>, Json(body): Json<Value>, endpoint: Endpoint) -> Response {
    let start = Instant::now();
    fake.record(endpoint.path(), &body);
    let model = match fake.model(&body) {
        Ok(m) => m,
        Err(resp) => return *resp,
    };
    let options = body.get("options").cloned().unwrap_or(json!({}));
    let num_ctx = options.get("num_ctx").and_then(Value::as_u64).unwrap_or(4096);
    let has_input = match endpoint {
        Endpoint::Chat => body.get("messages").and_then(Value::as_array).is_some_and(|m| !m.is_empty()),
        Endpoint::Generate => body.get("prompt").and_then(Value::as_str).is_some_and(|p| !p.is_empty()),
    };
    let unload = body.get("keep_alive").and_then(Value::as_f64) == Some(0.0);
    let cold = {
        let mut recorded = fake.recorded.lock().expect("fake lock");
        let cold = !recorded.loaded.contains_key(&model.name);
        if unload && !has_input {
            recorded.loaded.remove(&model.name);
        } else {
            recorded.loaded.insert(model.name.clone(), num_ctx);
        }
        cold
    };
    if !has_input {
        // Load / unload requests carry no text and are answered at once.
        if unload && fake.script.unload_ms > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(fake.script.unload_ms / 1000.0)).await;
        }
        let mut line = endpoint.line(&model.name, true, "", "");
        line["done_reason"] = json!(if unload { "unload" } else { "load" });
        return Json(line).into_response();
    }
    let script = fake.script.clone();
    let limit = match options.get("num_predict").and_then(Value::as_i64) {
        Some(n) if n >= 0 => n as usize,
        _ => usize::MAX,
    };
    let all = script.thinking.iter().map(|t| (true, t.clone())).chain(script.tokens.iter().map(|t| (false, t.clone())));
    let tokens: Vec<(bool, String)> = all.take(limit).collect();
    let plan = Plan {
        start,
        gap: Duration::from_secs_f64(1.0 / script.tokens_per_s.max(0.001)),
        load_ms: if cold { script.load_ms.max(0.0) } else { WARM_LOAD_MS },
        ttft: Duration::from_secs_f64((script.ttft_ms + if cold { script.load_ms } else { 0.0 }).max(0.0) / 1000.0),
        truncated: tokens.len() < script.thinking.len() + script.tokens.len() || tokens.is_empty(),
        tokens,
        error_after: script.error_after,
    };
    if body.get("stream").and_then(Value::as_bool).unwrap_or(true) {
        streamed(endpoint, model.name, script, plan)
    } else {
        single(endpoint, model.name, script, plan).await
    }
}

/// Writes the NDJSON stream from a task on the scripted schedule.
fn streamed(endpoint: Endpoint, model: String, script: Arc<FakeScript>, plan: Plan) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    tokio::spawn(async move {
        let error_line = format!("{}\n", json!({"error": script.error_message}));
        for (i, (thinking, text)) in plan.tokens.iter().enumerate() {
            tokio::time::sleep_until(plan.at(i)).await;
            if plan.error_after == Some(i) {
                let _ = tx.send(Ok(error_line)).await;
                return;
            }
            if script.stall_after == Some(i) {
                // Hold the stream open, silent, until the client gives up.
                tx.closed().await;
                return;
            }
            let (content, thinking) = if *thinking { ("", text.as_str()) } else { (text.as_str(), "") };
            let line = endpoint.line(&model, false, content, thinking);
            if tx.send(Ok(format!("{line}\n"))).await.is_err() {
                return; // the client went away
            }
        }
        if plan.error_after.is_some_and(|n| n >= plan.tokens.len()) {
            let _ = tx.send(Ok(error_line)).await;
            return;
        }
        let last = final_line(endpoint, &model, &script, &plan, false);
        let _ = tx.send(Ok(format!("{last}\n"))).await;
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

/// A non-streamed answer: one object once every token would have been generated; a scripted
/// error becomes an HTTP 500 with `{"error"}` (there is no stream to put it in).
async fn single(endpoint: Endpoint, model: String, script: Arc<FakeScript>, plan: Plan) -> Response {
    tokio::time::sleep_until(plan.at(plan.tokens.len().saturating_sub(1))).await;
    if plan.error_after.is_some_and(|k| k <= plan.tokens.len()) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, &script.error_message);
    }
    Json(final_line(endpoint, &model, &script, &plan, true)).into_response()
}
