//! The speech engine: `POST /v1/audio/transcriptions` (multipart: `file`, `model`,
//! `response_format=verbose_json`, `language`, `temperature`, and `stream=true` when the job
//! asks for streaming). A server that streams answers with server-sent events (OpenAI's
//! `transcript.text.delta` / `transcript.text.done`, or one JSON segment per event as speaches
//! sends); one that does not answers JSON (`{text, language, duration, segments}`) or plain
//! text. Instants are taken as each chunk arrives, before it is parsed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_shared::event::{ErrorKind, Event, JobError};
use bench_shared::workload::speech::{
    self, AudioSource, TranscribeDone, TranscribeJobDone, TranscribeSegment, TranscribeSpec,
};
use futures_util::StreamExt;
use reqwest::Method;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::config::SpeechEngineSettings;
use super::status::{Probe, StatusCache};
use crate::jobs::JobEvents;

/// Why a transcription job ended without a result.
#[derive(Debug)]
pub enum Failure {
    Cancelled,
    Error(JobError),
}

fn err(kind: ErrorKind, index: u32, message: impl Into<String>) -> Failure {
    Failure::Error(JobError { kind, message: message.into(), repeat_index: Some(index) })
}

fn http_err(e: &reqwest::Error, index: u32) -> Failure {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connect() {
        ErrorKind::EngineUnreachable
    } else {
        ErrorKind::EngineError
    };
    err(kind, index, format!("POST /v1/audio/transcriptions: {}", bench_shared::error_chain(e)))
}

/// The configured speech server.
#[derive(Debug)]
pub struct SpeechEngine {
    pub settings: SpeechEngineSettings,
    http: reqwest::Client,
    pub status: StatusCache,
}

#[derive(Debug, Deserialize)]
struct Models {
    data: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
struct ModelEntry {
    id: String,
}

/// A JSON answer, or one streamed event: whichever of these fields it has.
#[derive(Debug, Default, Deserialize)]
struct Piece {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    delta: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    duration: Option<f64>,
}

/// What one request returned.
#[derive(Debug, Default)]
struct Answer {
    text: String,
    language: Option<String>,
    duration: Option<f64>,
    first_text_ms: Option<f64>,
    streamed: bool,
    wall_ms: f64,
}

impl SpeechEngine {
    pub fn new(settings: SpeechEngineSettings) -> Arc<Self> {
        bench_shared::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs_f64(settings.connect_timeout_s))
            .build()
            .expect("a plain reqwest client builds");
        Arc::new(SpeechEngine { settings, http, status: StatusCache::default() })
    }

    pub fn base_url(&self) -> &str {
        self.settings.base_url.trim_end_matches('/')
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base_url()));
        match &self.settings.api_key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }

    /// Reachable? and the models: `GET /v1/models` where the server lists them, else the
    /// configured `speech_engine.models` (a server without the route is still reachable).
    pub async fn probe(&self, limit: Duration) -> Probe {
        let work = async {
            match self.request(Method::GET, "/v1/models").send().await {
                Err(e) => Probe::unreachable(format!(
                    "speech engine unreachable at {}: {}",
                    self.base_url(),
                    bench_shared::error_chain(&e)
                )),
                Ok(r) if r.status().is_success() => match r.json::<Models>().await {
                    Ok(m) if !m.data.is_empty() => Probe {
                        reachable: true,
                        version: None,
                        models: m.data.into_iter().map(|d| d.id).collect(),
                        error: None,
                    },
                    _ => self.configured(Some("GET /v1/models listed no models".into())),
                },
                Ok(r) => self.configured(Some(format!("GET /v1/models answered {}", r.status()))),
            }
        };
        tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Probe::unreachable(format!(
                "speech engine at {} did not answer within {:.0} s",
                self.base_url(),
                limit.as_secs_f64()
            ))
        })
    }

    fn configured(&self, why: Option<String>) -> Probe {
        let error = if self.settings.models.is_empty() {
            why.map(|w| format!("{w}, and speech_engine.models is empty: no Whisper model to offer"))
        } else {
            None
        };
        Probe { reachable: true, version: None, models: self.settings.models.clone(), error }
    }

    pub async fn status(&self, force: bool) -> Arc<Probe> {
        self.status.get(force, || self.probe(bench_shared::timeouts::AGENT_ENGINE_PROBE)).await
    }

    /// Runs every repeat, publishing `transcribe_segment` (streamed text) and `transcribe_done`.
    pub async fn run(
        &self,
        spec: &TranscribeSpec,
        events: &JobEvents,
        cancel: &CancellationToken,
    ) -> Result<TranscribeJobDone, Failure> {
        let (audio, format) = spec.audio_bytes().map_err(|e| err(ErrorKind::Internal, 0, e.to_string()))?;
        let header_s = speech::audio_duration_s(&audio);
        let mut done = Vec::new();
        for index in 0..spec.repeat {
            let limit = Duration::from_secs_f64(self.settings.request_timeout_s);
            let answer = tokio::select! {
                _ = cancel.cancelled() => return Err(Failure::Cancelled),
                r = tokio::time::timeout(limit, self.transcribe_once(spec, index, &audio, format, events)) => match r {
                    Ok(a) => a?,
                    Err(_) => return Err(err(ErrorKind::Timeout, index, format!(
                        "the speech server did not answer within {:.0} s (speech_engine.request_timeout_s)", limit.as_secs_f64()))),
                },
            };
            let mut notes = Vec::new();
            let (audio_s, audio_s_source) = match (header_s, answer.duration) {
                (Some(s), _) => (Some(s), Some(AudioSource::Header)),
                (None, Some(d)) => (Some(d), Some(AudioSource::Engine)),
                (None, None) => {
                    notes.push(
                        "audio_s unknown: an MP3 states no duration and the server reported none (rtfx null)"
                            .to_owned(),
                    );
                    (None, None)
                }
            };
            if !answer.streamed {
                notes.push("the server did not stream: time_to_first_segment_ms null".to_owned());
            }
            let w = spec.reference_text.as_deref().and_then(|r| speech::wer(r, &answer.text));
            let d = TranscribeDone {
                repeat_index: index,
                model: spec.model.clone(),
                audio_s,
                audio_s_source,
                wall_ms: answer.wall_ms,
                rtfx: audio_s.and_then(|a| speech::rtfx(a, answer.wall_ms)),
                time_to_first_segment_ms: answer.first_text_ms,
                streamed: answer.streamed,
                wer: w.as_ref().map(|w| w.wer),
                wer_detail: w,
                text: answer.text,
                language: answer.language,
                notes,
            };
            events.emit(Event::TranscribeDone(Box::new(d.clone())));
            done.push(d);
        }
        Ok(TranscribeJobDone::from_repeats(&spec.model, &done))
    }

    async fn transcribe_once(
        &self,
        spec: &TranscribeSpec,
        index: u32,
        audio: &[u8],
        format: speech::AudioFormat,
        events: &JobEvents,
    ) -> Result<Answer, Failure> {
        let (file_name, mime) = format.file_name();
        let part = reqwest::multipart::Part::bytes(audio.to_vec())
            .file_name(file_name)
            .mime_str(mime)
            .expect("a static MIME type parses");
        let mut form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("model", spec.model.clone())
            .text("response_format", "verbose_json")
            .text("temperature", spec.temperature.to_string());
        if let Some(l) = &spec.language {
            form = form.text("language", l.clone());
        }
        if spec.stream {
            form = form.text("stream", "true");
        }
        let t0 = Instant::now();
        let resp = self
            .request(Method::POST, "/v1/audio/transcriptions")
            .multipart(form)
            .send()
            .await
            .map_err(|e| http_err(&e, index))?;
        let status = resp.status();
        let sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let json_ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            let kind = if status == reqwest::StatusCode::NOT_FOUND {
                ErrorKind::ModelNotFound
            } else {
                ErrorKind::EngineError
            };
            return Err(err(
                kind,
                index,
                format!(
                    "POST /v1/audio/transcriptions answered {status}: {}",
                    body.chars().take(300).collect::<String>()
                ),
            ));
        }
        if sse {
            return read_stream(resp, t0, index, events).await;
        }
        let body = resp.bytes().await.map_err(|e| http_err(&e, index))?;
        let wall_ms = t0.elapsed().as_secs_f64() * 1000.0;
        let text = String::from_utf8_lossy(&body);
        let piece = if json_ct || text.trim_start().starts_with('{') {
            serde_json::from_str::<Piece>(&text)
                .map_err(|e| err(ErrorKind::Protocol, index, format!("unreadable transcription answer: {e}")))?
        } else {
            Piece { text: Some(text.trim().to_owned()), ..Piece::default() }
        };
        Ok(Answer {
            text: piece.text.unwrap_or_default().trim().to_owned(),
            language: piece.language,
            duration: piece.duration,
            first_text_ms: None,
            streamed: false,
            wall_ms,
        })
    }
}

/// Reads a server-sent-events answer to its end.
async fn read_stream(resp: reqwest::Response, t0: Instant, index: u32, events: &JobEvents) -> Result<Answer, Failure> {
    let mut answer = Answer { streamed: true, ..Answer::default() };
    let mut pending = String::new();
    let mut pieces = String::new();
    let mut final_text: Option<String> = None;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let at = Instant::now();
        let chunk = chunk.map_err(|e| http_err(&e, index))?;
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(nl) = pending.find('\n') {
            let line: String = pending.drain(..=nl).collect();
            let Some(data) = line.trim().strip_prefix("data:") else { continue };
            let data = data.trim();
            if data.is_empty() || data == "[DONE]" {
                continue;
            }
            let p: Piece = serde_json::from_str(data)
                .map_err(|e| err(ErrorKind::Protocol, index, format!("unreadable streamed event ({e}): {data}")))?;
            let done_event = p.kind.as_deref().is_some_and(|k| k.ends_with(".done"));
            if p.language.is_some() {
                answer.language = p.language.clone();
            }
            if p.duration.is_some() {
                answer.duration = p.duration;
            }
            if done_event {
                final_text = p.text;
                continue;
            }
            let Some(t) = p.delta.or(p.text).filter(|t| !t.is_empty()) else { continue };
            let at_ms = at.duration_since(t0).as_secs_f64() * 1000.0;
            answer.first_text_ms.get_or_insert(at_ms);
            pieces.push_str(&t);
            events.emit(Event::TranscribeSegment(TranscribeSegment { repeat_index: index, text: t, at_ms }));
        }
    }
    answer.wall_ms = t0.elapsed().as_secs_f64() * 1000.0;
    answer.text = final_text.unwrap_or(pieces).trim().to_owned();
    Ok(answer)
}
