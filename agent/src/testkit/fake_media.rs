//! Fakes of an OpenAI-style images server and of a streaming OpenAI-compatible transcription
//! server, written from their public APIs. The transcription fake exists for the streamed path
//! only: the non-streamed path is tested against a real server (faster-whisper-server serving
//! Whisper tiny.en, installed by `scripts/test`).
//!
//! Images (`POST /v1/images/generations {prompt, n, size, response_format: b64_json, seed?}` →
//! `{created, data: [{b64_json}]}`; `GET /v1/models`; `GET /metrics` JSON with
//! `avg_seconds_per_image`, as stable-diffusion.cpp's server with `--metrics`). A prompt
//! containing `FAIL` is answered 500 `{error: {message}}`.
//!
//! Transcription (`POST /v1/audio/transcriptions`, multipart): with `stream=true` it answers
//! server-sent events `transcript.text.delta` per word then `transcript.text.done`; without, JSON
//! `{text, language, duration}`. It "hears" the text set in its script.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};

async fn serve(app: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

/// A running fake images server; stops when dropped.
pub struct FakeImages {
    pub base_url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeImages {
    /// `gen_ms`: time per image.
    pub async fn spawn(model: &str, gen_ms: u64) -> FakeImages {
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let state = (bodies.clone(), gen_ms, model.to_owned());
        let app = Router::new()
            .route("/v1/images/generations", post(generate))
            .route("/v1/models", get(models))
            .route("/metrics", get(metrics))
            .with_state(state);
        let (base_url, task) = serve(app).await;
        FakeImages { base_url, bodies, task }
    }

    /// Every generation request body, in order.
    pub fn bodies(&self) -> Vec<Value> {
        bench_shared::sync::lock(&self.bodies).clone()
    }
}

impl Drop for FakeImages {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type ImgState = (Arc<Mutex<Vec<Value>>>, u64, String);

async fn generate(State((bodies, gen_ms, _)): State<ImgState>, Json(body): Json<Value>) -> Response {
    bench_shared::sync::lock(&bodies).push(body.clone());
    if body["prompt"].as_str().unwrap_or("").contains("FAIL") {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "sampling failed: out of memory"}})),
        )
            .into_response();
    }
    let n = body["n"].as_u64().unwrap_or(1);
    let (w, h) = body["size"]
        .as_str()
        .and_then(|s| s.split_once('x'))
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .unwrap_or((64, 64));
    let seed = body["seed"].as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(gen_ms * n)).await;
    let data: Vec<Value> = (0..n)
        .map(|i| {
            let png = crate::testkit::png::seeded_png(seed.wrapping_mul(1000).wrapping_add(i), w, h);
            json!({"b64_json": base64::engine::general_purpose::STANDARD.encode(png)})
        })
        .collect();
    Json(json!({"created": 1_800_000_000u64, "data": data})).into_response()
}

async fn models(State((_, _, model)): State<ImgState>) -> Json<Value> {
    Json(json!({"object": "list", "data": [{"id": model, "object": "model"}]}))
}

async fn metrics(State((_, gen_ms, _)): State<ImgState>) -> Json<Value> {
    Json(json!({"avg_seconds_per_image": gen_ms as f64 / 1000.0, "images_per_second": 1000.0 / gen_ms.max(1) as f64}))
}

/// A running fake streaming transcription server; stops when dropped.
pub struct FakeSpeech {
    pub base_url: String,
    task: tokio::task::JoinHandle<()>,
}

impl FakeSpeech {
    /// Answers every request with `heard`, one word every `word_ms` when streaming.
    pub async fn spawn(heard: &str, word_ms: u64) -> FakeSpeech {
        let app = Router::new()
            .route("/v1/audio/transcriptions", post(transcribe))
            .route("/v1/models", get(|| async { Json(json!({"data": [{"id": "whisper-fake"}]})) }))
            .with_state((heard.to_owned(), word_ms));
        let (base_url, task) = serve(app).await;
        FakeSpeech { base_url, task }
    }
}

impl Drop for FakeSpeech {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The text fields of a multipart body (`name` → value); files are skipped.
fn form_fields(headers: &HeaderMap, body: &[u8]) -> Vec<(String, String)> {
    let Some(boundary) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("boundary=").nth(1))
        .map(|b| format!("--{}", b.trim_matches('"')))
    else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(body);
    text.split(boundary.as_str())
        .filter_map(|part| {
            let (head, value) = part.split_once("\r\n\r\n")?;
            if head.contains("filename=") {
                return None;
            }
            let name = head.split("name=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), value.trim_end_matches("\r\n").to_owned()))
        })
        .collect()
}

async fn transcribe(State((heard, word_ms)): State<(String, u64)>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = form_fields(&headers, &body);
    let field = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    if field("model").is_none() || !String::from_utf8_lossy(&body).contains("name=\"file\"") {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": {"message": "file and model are required"}})))
            .into_response();
    }
    if field("stream").as_deref() != Some("true") {
        return Json(json!({"text": heard, "language": "en", "duration": 1.0})).into_response();
    }
    let words: Vec<String> = heard.split_whitespace().map(|w| format!("{w} ")).collect();
    let stream = async_stream(words, heard, word_ms);
    ([(header::CONTENT_TYPE, "text/event-stream")], axum::body::Body::from_stream(stream)).into_response()
}

fn async_stream(
    words: Vec<String>,
    heard: String,
    word_ms: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let done = json!({"type": "transcript.text.done", "text": heard});
    let mut events: Vec<String> =
        words.into_iter().map(|w| json!({"type": "transcript.text.delta", "delta": w}).to_string()).collect();
    events.push(done.to_string());
    futures_util::stream::unfold(events.into_iter(), move |mut it| async move {
        let e = it.next()?;
        tokio::time::sleep(Duration::from_millis(word_ms)).await;
        Some((Ok(Bytes::from(format!("data: {e}\n\n"))), it))
    })
}
