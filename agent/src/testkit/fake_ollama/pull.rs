//! `POST /api/pull` as Ollama streams it (server/routes.go `PullHandler`, server/images.go
//! `PullModel`): `{"status":"pulling manifest"}`; per layer `{"status":"pulling <digest[7:19]>",
//! "digest":"sha256:…","total":N}` then the same with a growing `"completed"`; then
//! `{"status":"verifying sha256 digest"}`, `{"status":"writing manifest"}`, `{"status":"success"}`.
//! A model the registry lacks gets `{"error":"pull model manifest: file does not exist"}` after
//! the manifest line, and a failure mid-download an `{"error"}` line, both with HTTP 200 (the
//! stream had started). A missing `model` is a 400. Scripted faults: an error line after some
//! bytes, or the connection cut after some bytes (no end of the chunked body).

use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Fake, FakeModel, error};

/// What `/api/pull` does.
#[derive(Debug, Clone, PartialEq)]
pub struct FakePull {
    /// Models the registry has: name → layer sizes in bytes.
    pub registry: Vec<(String, Vec<u64>)>,
    /// Bytes added per progress line.
    pub chunk_bytes: u64,
    /// Pause between two progress lines.
    pub line_gap: Duration,
    /// After this many bytes of the whole pull, an `{"error": fail_message}` line ends it.
    pub fail_after_bytes: Option<u64>,
    pub fail_message: String,
    /// After this many bytes of the whole pull, the connection is cut.
    pub disconnect_after_bytes: Option<u64>,
}

impl Default for FakePull {
    fn default() -> Self {
        FakePull {
            registry: vec![("smollm2:135m".into(), vec![1_000_000, 1_400, 300])],
            chunk_bytes: 100_000,
            line_gap: Duration::from_millis(2),
            fail_after_bytes: None,
            fail_message: "max retries exceeded: unexpected EOF".into(),
            disconnect_after_bytes: None,
        }
    }
}

/// A layer's digest, derived from the model name and the layer's place (stable across pulls).
fn layer_digest(model: &str, i: usize) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in model.bytes().chain([i as u8]) {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("sha256:{h:016x}{:016x}{h:016x}{:016x}", h.rotate_left(17), h.rotate_left(31))
}

enum Step {
    Line(Value),
    Pause,
    Cut,
    Done(FakeModel),
}

fn script(pull: &FakePull, name: &str) -> Vec<Step> {
    let mut steps = vec![Step::Line(json!({"status": "pulling manifest"}))];
    let Some((_, layers)) = pull.registry.iter().find(|(n, _)| n == name) else {
        steps.push(Step::Line(json!({"error": "pull model manifest: file does not exist"})));
        return steps;
    };
    let mut sent: u64 = 0;
    for (i, &size) in layers.iter().enumerate() {
        let digest = layer_digest(name, i);
        let status = format!("pulling {}", &digest[7..19]);
        steps.push(Step::Line(json!({"status": status, "digest": digest, "total": size})));
        let mut done = 0;
        while done < size {
            let step = pull.chunk_bytes.max(1).min(size - done);
            done += step;
            sent += step;
            steps.push(Step::Pause);
            if pull.disconnect_after_bytes.is_some_and(|n| sent >= n) {
                steps.push(Step::Cut);
                return steps;
            }
            if pull.fail_after_bytes.is_some_and(|n| sent >= n) {
                steps.push(Step::Line(json!({"error": pull.fail_message})));
                return steps;
            }
            steps.push(Step::Line(json!({"status": status, "digest": digest, "total": size, "completed": done})));
        }
    }
    for status in ["verifying sha256 digest", "writing manifest", "success"] {
        steps.push(Step::Line(json!({"status": status})));
    }
    let mut model = FakeModel::new(name);
    model.size_bytes = layers.iter().sum();
    steps.push(Step::Done(model));
    steps
}

pub(super) async fn pull(State(fake): State<Fake>, Json(body): Json<Value>) -> Response {
    fake.record("/api/pull", &body);
    // `model`, or the older `name`.
    let name = body.get("model").or_else(|| body.get("name")).and_then(Value::as_str).unwrap_or("").to_owned();
    if name.is_empty() {
        return error(StatusCode::BAD_REQUEST, "model is required");
    }
    let steps = script(&fake.script.pull, &name);
    let gap = fake.script.pull.line_gap;
    let stream = futures_util::stream::unfold((steps.into_iter(), fake), move |(mut steps, fake)| async move {
        loop {
            match steps.next()? {
                Step::Line(v) => return Some((Ok::<_, std::io::Error>(Bytes::from(format!("{v}\n"))), (steps, fake))),
                Step::Pause => tokio::time::sleep(gap).await,
                Step::Cut => {
                    let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "scripted disconnect");
                    return Some((Err(cut), (steps, fake)));
                }
                Step::Done(model) => fake.pulled(model),
            }
        }
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream)).into_response()
}
