//! The calibration cache: a JSON file remembering, per engine + model + target, the filler
//! length that hit the target, so the next sweep starts calibrated and its warm-ups already run
//! at the right prompt size.
//!
//! Keys carry a prompt-format version: when the filler or the prompt layout changes, old entries
//! no longer match instead of silently mis-sizing prompts. The file is rewritten atomically
//! (temp file + rename) so an interrupted sweep never leaves it half-written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bench_shared::engine::EngineKind;
use serde::{Deserialize, Serialize};

/// Bumped whenever `prompt.rs` changes the text that is calibrated.
const PROMPT_FORMAT: &str = "v1";

/// One remembered calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedCalibration {
    pub filler_chars: usize,
    /// The engine's prompt tokens when it was stored.
    pub prompt_tokens: u64,
    pub chars_per_token: f64,
    pub updated_at_s: f64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    entries: BTreeMap<String, CachedCalibration>,
}

/// The cache file.
#[derive(Debug, Clone)]
pub struct CalibrationCache {
    path: PathBuf,
}

/// The cache key: engine kind, base URL, model, target prompt tokens.
pub fn key(engine: EngineKind, base_url: &str, model: &str, target_tokens: u32) -> String {
    format!("{PROMPT_FORMAT}|{engine}|{}|{model}|{target_tokens}", base_url.trim_end_matches('/'))
}

impl CalibrationCache {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CalibrationCache { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file; a missing or unreadable file is an empty cache (it is only an optimisation,
    /// and a corrupt one is overwritten by the next store).
    fn load(&self) -> CacheFile {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %self.path.display(), error = %e, "ignoring unreadable calibration cache");
                CacheFile::default()
            }),
            Err(_) => CacheFile::default(),
        }
    }

    pub fn get(&self, key: &str) -> Option<CachedCalibration> {
        self.load().entries.remove(key)
    }

    /// [`get`](Self::get) on the blocking pool (the sweep is async).
    pub async fn get_async(&self, key: &str) -> Option<CachedCalibration> {
        let (cache, key) = (self.clone(), key.to_owned());
        tokio::task::spawn_blocking(move || cache.get(&key)).await.ok().flatten()
    }

    /// [`put`](Self::put) on the blocking pool.
    pub async fn put_async(&self, key: &str, entry: CachedCalibration) -> std::io::Result<()> {
        let (cache, key) = (self.clone(), key.to_owned());
        tokio::task::spawn_blocking(move || cache.put(&key, entry)).await.map_err(std::io::Error::other)?
    }

    /// Stores an entry (re-reading the file first, so entries written meanwhile are kept).
    pub fn put(&self, key: &str, entry: CachedCalibration) -> std::io::Result<()> {
        let mut file = self.load();
        file.entries.insert(key.to_owned(), entry);
        let json = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_atomic_rewrite() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let cache = CalibrationCache::new(dir.join("sub/cache.json"));
        let k = key(EngineKind::Openai, "http://127.0.0.1:1/", "m", 240);
        assert_eq!(k, "v1|openai|http://127.0.0.1:1|m|240");
        assert!(cache.get(&k).is_none());
        let e = CachedCalibration { filler_chars: 900, prompt_tokens: 241, chars_per_token: 3.9, updated_at_s: 1.0 };
        cache.put(&k, e.clone()).unwrap();
        cache.put("other", CachedCalibration { filler_chars: 1, ..e.clone() }).unwrap();
        assert_eq!(cache.get(&k), Some(e));
        let names: Vec<_> = std::fs::read_dir(dir.join("sub")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec!["cache.json"], "no temp files left behind");
        std::fs::write(cache.path(), b"{not json").unwrap();
        assert!(cache.get(&k).is_none());
    }
}
