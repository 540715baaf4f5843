//! `transcribe`: speech to text through an OpenAI-compatible transcription server.
//!
//! Figures (all client-measured at the agent, monotonic clock):
//! - `wall_ms`: request sent → whole answer read.
//! - `audio_s`: the audio's duration, from the file's own header (WAV, FLAC) or, where the
//!   header does not say (MP3), the engine's `duration` (`verbose_json`); `audio_s_source` says which.
//! - `rtfx = audio_s ÷ (wall_ms / 1000)` (vLLM's definition): 10 means ten seconds of audio per second.
//! - `time_to_first_segment_ms`: request sent → first streamed text, only when the server streamed.
//! - `wer`: word error rate against the reference, after [`normalize`] (case and punctuation):
//!   (substitutions + deletions + insertions) ÷ reference words, by word-level edit distance.

use serde::{Deserialize, Serialize};

use super::{check_range, check_start_at, check_text, per_second};
use crate::job::{FieldError, Rule, Spec, TestType};
use crate::metrics::Summary;

/// Largest audio file, bytes (the OpenAI API's limit).
pub const MAX_AUDIO_BYTES: usize = 25 * 1024 * 1024;
/// Longest reference text, bytes.
pub const MAX_REFERENCE_BYTES: usize = 256 * 1024;

/// A `transcribe` job as the agent runs it. Central accepts `audio` (an asset id of its
/// `GET /api/assets/audio`) and sends every machine the file itself as `audio_b64`, with the
/// asset's reference text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscribeSpec {
    pub model: String,
    /// The asset id the audio came from (a label on the agent, which never looks it up).
    #[serde(default)]
    pub audio: Option<String>,
    /// The audio file (WAV, MP3 or FLAC), base64. Agents get it; central's stored spec has
    /// it taken out (the file is stored once, see `audio_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_b64: Option<String>,
    /// Central's stored spec only: the run's audio file, relative to the run folder
    /// (`audio/<sha256>.<ext>`), stored once instead of as base64 in every JSON file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_file: Option<String>,
    /// Central's stored spec only: lower-case hex SHA-256 of the audio file's bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_sha256: Option<String>,
    /// Central's stored spec only: the audio's duration in seconds from its header (absent
    /// where the header does not say, as in MP3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_s: Option<f64>,
    /// ISO-639-1 language hint (`en`); absent: the engine detects it.
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default = "one")]
    pub repeat: u32,
    /// What was said: with it every repeat reports its `wer`.
    #[serde(default)]
    pub reference_text: Option<String>,
    /// Ask the server to stream its text (server-sent events) where it can; a server that
    /// answers in one piece still works, with `time_to_first_segment_ms` null.
    #[serde(default = "yes")]
    pub stream: bool,
    #[serde(default)]
    pub temperature: f64,
    #[serde(default)]
    pub start_at: Option<u64>,
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

impl Spec for TranscribeSpec {
    const RULES: &'static [(&'static str, Rule)] = &[
        ("model", Rule::Model),
        ("audio", Rule::Text),
        ("audio_b64", Rule::Text),
        ("audio_file", Rule::Text),
        ("audio_sha256", Rule::Text),
        ("audio_s", Rule::Float { min: 0.0, max: f64::MAX }),
        ("language", Rule::Text),
        ("repeat", Rule::UInt { min: 1, max: crate::job::MAX_REPEAT }),
        ("reference_text", Rule::Text),
        ("stream", Rule::Bool),
        ("temperature", Rule::Float { min: 0.0, max: 1.0 }),
        ("start_at", Rule::StartAt),
    ];

    /// As the agent takes it: the audio itself (`audio_b64`) must be there.
    fn validate(&mut self, now_ms: u64) -> Result<(), FieldError> {
        self.check(now_ms, true)
    }
}

impl TranscribeSpec {
    /// Checks every field; `need_audio` (on the agent) wants the audio itself, where central
    /// also takes an asset id (`audio`) it then turns into `audio_b64`.
    pub fn check(&self, now_ms: u64, need_audio: bool) -> Result<(), FieldError> {
        check_text("model", &self.model, 256, false)?;
        check_range("repeat", self.repeat, 1, crate::job::MAX_REPEAT as u32, "an integer")?;
        check_range("temperature", self.temperature, 0.0, 1.0, "a number")?;
        if let Some(l) = &self.language
            && !(2..=8).contains(&l.len())
        {
            return Err(FieldError::new("language", format!("must be a language code such as \"en\", got {l:?}")));
        }
        if let Some(r) = &self.reference_text {
            check_text("reference_text", r, MAX_REFERENCE_BYTES, true)?;
        }
        if let Some(a) = &self.audio {
            check_asset_id("audio", a)?;
        }
        match &self.audio_b64 {
            Some(_) => {
                self.audio_bytes()?;
            }
            None if need_audio => {
                return Err(FieldError::new(
                    "audio_b64",
                    "is required: the audio file (WAV, MP3 or FLAC, at most 25 MB) in base64",
                ));
            }
            None if self.audio.is_none() && self.audio_file.is_none() => {
                return Err(FieldError::new(
                    "audio",
                    "is required: an asset id from GET /api/assets/audio, or audio_b64",
                ));
            }
            None => {}
        }
        check_start_at(self.start_at, now_ms)
    }

    /// The decoded audio, with its format; an error names `audio_b64`.
    pub fn audio_bytes(&self) -> Result<(Vec<u8>, AudioFormat), FieldError> {
        use base64::Engine as _;
        let b64 = self.audio_b64.as_deref().unwrap_or("");
        if b64.len() / 4 * 3 > MAX_AUDIO_BYTES + 3 {
            return Err(FieldError::new("audio_b64", format!("is over the limit of {MAX_AUDIO_BYTES} bytes of audio")));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| FieldError::new("audio_b64", format!("is not valid base64: {e}")))?;
        if bytes.len() > MAX_AUDIO_BYTES {
            return Err(FieldError::new("audio_b64", format!("is over the limit of {MAX_AUDIO_BYTES} bytes of audio")));
        }
        let format = AudioFormat::sniff(&bytes)
            .ok_or_else(|| FieldError::new("audio_b64", "is not a WAV, MP3 or FLAC file (its first bytes say so)"))?;
        Ok((bytes, format))
    }
}

/// An asset id: 1 to 64 ASCII letters, digits, `-`, `_` or `.` (never a path).
pub fn check_asset_id(field: &str, id: &str) -> Result<(), FieldError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("must be an asset id (letters, digits, '-', '_', '.'), got {id:?}")))
    }
}

/// The audio container, from the file's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioFormat {
    Wav,
    Flac,
    Mp3,
}

impl AudioFormat {
    pub fn sniff(b: &[u8]) -> Option<AudioFormat> {
        if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WAVE" {
            Some(AudioFormat::Wav)
        } else if b.starts_with(b"fLaC") {
            Some(AudioFormat::Flac)
        } else if b.starts_with(b"ID3") || (b.len() >= 2 && b[0] == 0xFF && b[1] & 0xE0 == 0xE0) {
            Some(AudioFormat::Mp3)
        } else {
            None
        }
    }

    /// File name and MIME type for the multipart upload.
    pub fn file_name(self) -> (&'static str, &'static str) {
        match self {
            AudioFormat::Wav => ("audio.wav", "audio/wav"),
            AudioFormat::Flac => ("audio.flac", "audio/flac"),
            AudioFormat::Mp3 => ("audio.mp3", "audio/mpeg"),
        }
    }
}

/// The duration a WAV or FLAC header states, seconds; `None` for MP3 (no such header) or a
/// header that does not add up.
pub fn audio_duration_s(b: &[u8]) -> Option<f64> {
    match AudioFormat::sniff(b)? {
        AudioFormat::Wav => wav_duration_s(b),
        AudioFormat::Flac => flac_duration_s(b),
        AudioFormat::Mp3 => None,
    }
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn wav_duration_s(b: &[u8]) -> Option<f64> {
    let (mut at, mut byte_rate, mut data) = (12usize, None, None);
    while at + 8 <= b.len() {
        let id = &b[at..at + 4];
        let size = le_u32(b, at + 4)? as usize;
        if id == b"fmt " {
            byte_rate = le_u32(b, at + 16).filter(|r| *r > 0);
            let _channels = le_u16(b, at + 10)?;
        } else if id == b"data" {
            // A streamed WAV may say 0 or 0xFFFFFFFF: then the data runs to the end of the file.
            let rest = b.len() - (at + 8);
            data = Some(if size == 0 || size == u32::MAX as usize { rest } else { size.min(rest) });
            break;
        }
        at += 8 + size + (size & 1);
    }
    Some(data? as f64 / f64::from(byte_rate?))
}

fn flac_duration_s(b: &[u8]) -> Option<f64> {
    // STREAMINFO is the first metadata block: 4-byte marker, 4-byte block header, then at byte
    // 10 of the block the 20-bit sample rate and 36-bit total sample count.
    let info = b.get(8..8 + 34)?;
    let rate = (u32::from(info[10]) << 12) | (u32::from(info[11]) << 4) | (u32::from(info[12]) >> 4);
    let total = (u64::from(info[13] & 0x0F) << 32) | u64::from(u32::from_be_bytes(info[14..18].try_into().ok()?));
    (rate > 0 && total > 0).then(|| total as f64 / f64::from(rate))
}

/// Lower case, punctuation dropped (apostrophes inside words too: "Don't" = "dont"), hyphens and
/// other separators as spaces, then the words. Numbers are left as written ("20" ≠ "twenty").
pub fn normalize(text: &str) -> Vec<String> {
    let mut cleaned = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_alphanumeric() {
            cleaned.extend(c.to_lowercase());
        } else if matches!(c, '\'' | '’' | '‘') {
            // dropped: joins the word
        } else {
            cleaned.push(' ');
        }
    }
    cleaned.split_whitespace().map(str::to_owned).collect()
}

/// A word error rate and its parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wer {
    pub wer: f64,
    pub substitutions: u32,
    pub deletions: u32,
    pub insertions: u32,
    pub reference_words: u32,
}

/// WER of `hypothesis` against `reference`, both normalised; `None` when the reference has no
/// words (the rate is undefined).
pub fn wer(reference: &str, hypothesis: &str) -> Option<Wer> {
    let r = normalize(reference);
    let h = normalize(hypothesis);
    if r.is_empty() {
        return None;
    }
    // dp[i][j] = (cost, subs, dels, ins) aligning r[..i] with h[..j].
    let mut prev: Vec<(u32, u32, u32, u32)> = (0..=h.len() as u32).map(|j| (j, 0, 0, j)).collect();
    for i in 1..=r.len() {
        let mut cur = vec![(i as u32, 0, i as u32, 0); h.len() + 1];
        for j in 1..=h.len() {
            let same = r[i - 1] == h[j - 1];
            let diag = prev[j - 1];
            let sub = if same { diag } else { (diag.0 + 1, diag.1 + 1, diag.2, diag.3) };
            let up = prev[j];
            let del = (up.0 + 1, up.1, up.2 + 1, up.3);
            let left = cur[j - 1];
            let ins = (left.0 + 1, left.1, left.2, left.3 + 1);
            cur[j] = [sub, del, ins].into_iter().min_by_key(|c| c.0).expect("three candidates");
        }
        prev = cur;
    }
    let (cost, s, d, i) = prev[h.len()];
    Some(Wer {
        wer: f64::from(cost) / r.len() as f64,
        substitutions: s,
        deletions: d,
        insertions: i,
        reference_words: r.len() as u32,
    })
}

/// `audio_s ÷ wall seconds`.
pub fn rtfx(audio_s: f64, wall_ms: f64) -> Option<f64> {
    per_second(audio_s, wall_ms)
}

/// Where `audio_s` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AudioSource {
    /// The file's own header (WAV, FLAC), read by the agent.
    Header,
    /// The engine's `duration` (`verbose_json`).
    Engine,
}

/// `transcribe_segment`: text the server streamed (only when it streams).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscribeSegment {
    pub repeat_index: u32,
    pub text: String,
    /// Request sent → this text read, ms.
    pub at_ms: f64,
}

/// `transcribe_done`: one repeat finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscribeDone {
    pub repeat_index: u32,
    pub model: String,
    pub audio_s: Option<f64>,
    pub audio_s_source: Option<AudioSource>,
    pub wall_ms: f64,
    pub rtfx: Option<f64>,
    pub time_to_first_segment_ms: Option<f64>,
    /// Whether the server streamed its answer.
    pub streamed: bool,
    pub wer: Option<f64>,
    #[serde(default)]
    pub wer_detail: Option<Wer>,
    pub text: String,
    /// The language the engine reports (`verbose_json`).
    #[serde(default)]
    pub language: Option<String>,
    /// Why a figure is null.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One repeat's figures, as `job_done` lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscribeRun {
    pub wall_ms: f64,
    pub rtfx: Option<f64>,
    pub time_to_first_segment_ms: Option<f64>,
    pub wer: Option<f64>,
}

/// `job_done` of a `transcribe` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscribeJobDone {
    pub test_type: TestType,
    pub model: String,
    pub repeats: u32,
    pub audio_s: Option<f64>,
    /// Means over the repeats.
    pub wall_ms: f64,
    pub rtfx: Option<f64>,
    pub time_to_first_segment_ms: Option<f64>,
    pub wer: Option<f64>,
    pub rtfx_summary: Option<Summary>,
    /// The first repeat's text.
    pub text: String,
    pub runs: Vec<TranscribeRun>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

impl TranscribeJobDone {
    pub fn from_repeats(model: &str, done: &[TranscribeDone]) -> Self {
        let pick = |f: fn(&TranscribeDone) -> Option<f64>| done.iter().filter_map(f).collect::<Vec<f64>>();
        let rtfx = pick(|d| d.rtfx);
        let mut notes: Vec<String> = Vec::new();
        for n in done.iter().flat_map(|d| d.notes.iter()) {
            if !notes.contains(n) {
                notes.push(n.clone());
            }
        }
        TranscribeJobDone {
            test_type: TestType::Transcribe,
            model: model.to_owned(),
            repeats: done.len() as u32,
            audio_s: done.first().and_then(|d| d.audio_s),
            wall_ms: mean(&done.iter().map(|d| d.wall_ms).collect::<Vec<_>>()).unwrap_or(0.0),
            rtfx: mean(&rtfx),
            time_to_first_segment_ms: mean(&pick(|d| d.time_to_first_segment_ms)),
            wer: mean(&pick(|d| d.wer)),
            rtfx_summary: crate::metrics::summarize(&rtfx),
            text: done.first().map(|d| d.text.clone()).unwrap_or_default(),
            runs: done
                .iter()
                .map(|d| TranscribeRun {
                    wall_ms: d.wall_ms,
                    rtfx: d.rtfx,
                    time_to_first_segment_ms: d.time_to_first_segment_ms,
                    wer: d.wer,
                })
                .collect(),
            notes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_ignores_case_and_punctuation() {
        assert_eq!(normalize("Hello, World!  It's a test-case."), ["hello", "world", "its", "a", "test", "case"]);
        assert_eq!(normalize("Ünïcode ÉTÉ"), ["ünïcode", "été"]);
        assert!(normalize(" ... ").is_empty());
    }

    #[test]
    fn wer_counts_each_kind_of_error() {
        let w = wer("the cat sat on the mat", "The cat sat on the mat.").unwrap();
        assert_eq!((w.wer, w.reference_words), (0.0, 6));
        // One substitution (sat → sit), one deletion (the), one insertion (big).
        let w = wer("the cat sat on the mat", "the cat sit on big mat big").unwrap();
        assert_eq!(w.substitutions + w.deletions + w.insertions, 3, "{w:?}");
        assert!((w.wer - 0.5).abs() < 1e-12);
        let w = wer("a b c", "").unwrap();
        assert_eq!((w.deletions, w.wer), (3, 1.0));
        let w = wer("a", "x y z").unwrap();
        assert_eq!(w.wer, 3.0, "insertions can push WER above 1");
        assert_eq!(wer("", "anything"), None);
        assert_eq!(wer("...", "x"), None);
    }

    #[test]
    fn rtfx_is_audio_over_wall() {
        assert_eq!(rtfx(10.0, 2000.0), Some(5.0));
        assert_eq!(rtfx(3.0, 0.0), None);
    }

    fn wav(sample_rate: u32, channels: u16, bits: u16, samples: u32) -> Vec<u8> {
        let block = u32::from(channels) * u32::from(bits) / 8;
        let data_len = samples * block;
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36 + data_len).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&sample_rate.to_le_bytes());
        b.extend_from_slice(&(sample_rate * block).to_le_bytes());
        b.extend_from_slice(&(block as u16).to_le_bytes());
        b.extend_from_slice(&bits.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&data_len.to_le_bytes());
        b.resize(b.len() + data_len as usize, 0);
        b
    }

    #[test]
    fn durations_from_headers() {
        assert_eq!(audio_duration_s(&wav(16_000, 1, 16, 24_000)), Some(1.5));
        assert_eq!(audio_duration_s(&wav(22_050, 2, 16, 22_050)), Some(1.0));
        // FLAC STREAMINFO: 16 kHz, 32000 samples = 2 s.
        let mut f = b"fLaC".to_vec();
        f.extend_from_slice(&[0x80, 0, 0, 34]);
        let mut info = [0u8; 34];
        let rate: u32 = 16_000;
        info[10] = (rate >> 12) as u8;
        info[11] = (rate >> 4) as u8;
        info[12] = ((rate & 0xF) << 4) as u8;
        info[14..18].copy_from_slice(&32_000u32.to_be_bytes());
        f.extend_from_slice(&info);
        assert_eq!(audio_duration_s(&f), Some(2.0));
        assert_eq!(AudioFormat::sniff(b"ID3\x04rest"), Some(AudioFormat::Mp3));
        assert_eq!(audio_duration_s(b"ID3\x04rest"), None);
        assert_eq!(AudioFormat::sniff(b"<html>"), None);
    }

    #[test]
    fn spec_needs_audio_on_the_agent() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(wav(16_000, 1, 16, 160));
        let spec: TranscribeSpec =
            serde_json::from_value(serde_json::json!({"model": "tiny.en", "audio_b64": b64})).unwrap();
        assert!(spec.stream && spec.repeat == 1);
        assert!(spec.check(0, true).is_ok());
        let no_audio = TranscribeSpec { audio_b64: None, audio: Some("fox".into()), ..spec.clone() };
        assert_eq!(no_audio.check(0, true).unwrap_err().field, "audio_b64");
        assert!(no_audio.check(0, false).is_ok(), "central resolves the asset id");
        let junk = TranscribeSpec { audio_b64: Some("PGh0bWw+".into()), ..spec.clone() };
        assert_eq!(junk.check(0, true).unwrap_err().field, "audio_b64");
        let traversal = TranscribeSpec { audio: Some("../etc/passwd".into()), ..spec.clone() };
        assert_eq!(traversal.check(0, true).unwrap_err().field, "audio");
    }
}
