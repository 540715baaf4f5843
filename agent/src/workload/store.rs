//! Generated images (and previews too large to travel inline) on the agent's disk, under
//! `results_dir/images/<image_id>.<ext>`, served by `GET /api/image/result/{image_id}`. Ids are
//! UUIDs the agent makes; a request's id is parsed as one before any path is built.

use std::path::{Path, PathBuf};

use bench_shared::workload::image::{ImageInfo, MAX_INLINE_BYTES};

/// Images kept; older ones are removed when a new one is stored.
pub const KEEP_IMAGES: usize = 512;

const EXTENSIONS: [(&str, &str); 3] = [("png", "image/png"), ("jpg", "image/jpeg"), ("webp", "image/webp")];

/// The folder of kept images.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
}

/// The content type of image bytes, from their magic number.
pub fn sniff_content_type(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

pub use bench_shared::workload::sha256_hex;

impl ImageStore {
    pub fn new(results_dir: &Path) -> Self {
        ImageStore { dir: results_dir.join("images") }
    }

    /// Stores `bytes` (of `content_type`) and describes them; `inline` also puts them in the
    /// description as base64 when small enough.
    pub async fn save(
        &self,
        filename: &str,
        bytes: Vec<u8>,
        content_type: &str,
        inline: bool,
    ) -> std::io::Result<ImageInfo> {
        use base64::Engine as _;
        let image_id = uuid::Uuid::new_v4().to_string();
        let ext = EXTENSIONS.iter().find(|(_, ct)| *ct == content_type).map_or("png", |(e, _)| *e);
        let path = self.dir.join(format!("{image_id}.{ext}"));
        let sha256 = sha256_hex(&bytes);
        let preview_b64 = (inline && bytes.len() <= MAX_INLINE_BYTES)
            .then(|| base64::engine::general_purpose::STANDARD.encode(&bytes));
        let size_bytes = bytes.len() as u64;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let tmp = path.with_extension("part");
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &path)?;
            prune(&dir, KEEP_IMAGES)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(ImageInfo {
            image_id,
            filename: filename.to_owned(),
            content_type: content_type.to_owned(),
            size_bytes,
            sha256,
            preview_b64,
        })
    }

    /// The file and content type of `image_id`; `None` for an id that is not a UUID or not kept.
    pub async fn find(&self, image_id: &str) -> Option<(PathBuf, &'static str)> {
        let id = uuid::Uuid::parse_str(image_id).ok()?.to_string();
        for (ext, ct) in EXTENSIONS {
            let p = self.dir.join(format!("{id}.{ext}"));
            if tokio::fs::try_exists(&p).await.unwrap_or(false) {
                return Some((p, ct));
            }
        }
        None
    }
}

/// Removes the oldest images beyond `keep`.
fn prune(dir: &Path, keep: usize) -> std::io::Result<()> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() <= keep {
        return Ok(());
    }
    files.sort();
    for (_, p) in &files[..files.len() - keep] {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saved_images_are_found_by_id_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        let png = b"\x89PNG\r\n\x1a\nrest".to_vec();
        assert_eq!(sniff_content_type(&png), Some("image/png"));
        let info = store.save("a.png", png.clone(), "image/png", true).await.unwrap();
        assert_eq!(info.sha256, sha256_hex(&png));
        assert!(info.preview_b64.is_some());
        let (path, ct) = store.find(&info.image_id).await.unwrap();
        assert_eq!((std::fs::read(path).unwrap(), ct), (png, "image/png"));
        assert!(store.find("../../etc/passwd").await.is_none());
        assert!(store.find(&uuid::Uuid::new_v4().to_string()).await.is_none());
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
