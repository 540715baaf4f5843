//! Central's audio assets for the speech race: a few sentences written for this project, spoken
//! by espeak-ng (`assets/audio/`, made by `scripts/make-audio-assets`; licence-clean), embedded in
//! the executable. `GET /api/assets/audio` lists them (`[{id, audio_s, reference_text}]`),
//! `GET /api/assets/audio/{id}` serves the WAV, and a `transcribe` run that names one as `audio`
//! sends every machine the file (`audio_b64`) with its reference text.

use axum::Json;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use serde::{Deserialize, Serialize};

use crate::api::ApiError;

#[derive(RustEmbed)]
#[folder = "../assets/audio/"]
struct Audio;

/// One asset, as `GET /api/assets/audio` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioAsset {
    pub id: String,
    pub audio_s: f64,
    pub reference_text: String,
    /// File name inside the set (not a path anyone may give).
    #[serde(skip_serializing, default)]
    pub file: String,
}

/// Every asset of the embedded set.
pub fn audio_assets() -> Vec<AudioAsset> {
    Audio::get("index.json").and_then(|f| serde_json::from_slice(&f.data).ok()).unwrap_or_default()
}

/// The asset `id` and its bytes.
pub fn audio_asset(id: &str) -> Option<(AudioAsset, Vec<u8>)> {
    let asset = audio_assets().into_iter().find(|a| a.id == id)?;
    let bytes = Audio::get(&asset.file)?.data.into_owned();
    Some((asset, bytes))
}

/// `GET /api/assets/audio`.
pub async fn list() -> Json<Vec<AudioAsset>> {
    Json(audio_assets())
}

/// `GET /api/assets/audio/{id}`: the WAV.
pub async fn get(Path(id): Path<String>) -> Result<Response, ApiError> {
    let (_, bytes) = audio_asset(&id).ok_or_else(|| ApiError::NotFound(format!("no audio asset {id:?}")))?;
    Ok(([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_set_is_complete() {
        let all = super::audio_assets();
        assert!(all.len() >= 3, "{all:?}");
        for a in &all {
            let (asset, bytes) = super::audio_asset(&a.id).unwrap();
            let audio_s = bench_shared::workload::speech::audio_duration_s(&bytes).unwrap();
            assert!((audio_s - asset.audio_s).abs() < 1e-3, "{}: header says {audio_s}", a.id);
            assert!(!asset.reference_text.is_empty());
        }
        assert!(super::audio_asset("../index").is_none());
    }
}
