//! Run bundles: one run's folder as a `.tar.gz` with a manifest of SHA-256s, and the import of
//! such a bundle into another central's store.
//!
//! A bundle holds `<run_id>/manifest.json` ([`BundleManifest`]) and every file of the run folder
//! as `<run_id>/<name>`. Import reads it whole, checks every entry (plain files only, every path
//! exactly `<run_id>/<plain name>`, nothing outside the run folder), the manifest (each file
//! listed once with its size and SHA-256, nothing missing, nothing extra), the run's own files
//! (`metadata.json` for this run id, not running; `summary.json` readable), refuses a run id that
//! exists, and only then writes the folder — into a temporary folder renamed into place, so a
//! half-imported run is never listed.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};

use bench_shared::run::{RunMetadata, RunStatus, RunSummary};
use bench_shared::share::{BUNDLE_FORMAT, BUNDLE_VERSION, BundleFile, BundleManifest, Imported, MANIFEST};
use sha2::{Digest, Sha256};

use super::{METADATA, SUMMARY, Store, StoreError, io, plain_name, valid_run_id};

/// Most bytes a bundle may unpack to (a gzip bomb stops here).
pub const MAX_UNPACKED_BYTES: u64 = 1 << 30;
/// Most files a bundle may hold.
pub const MAX_FILES: usize = 10_000;

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The bundle is malformed, tampered with or unsafe; `what` names the part.
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
    /// This store already has the run.
    #[error("run {0} already exists here; delete it first to import it again")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(what: impl Into<String>, message: impl Into<String>) -> ImportError {
    ImportError::Invalid { what: what.into(), message: message.into() }
}

/// An archive error as printable text (a damaged header's bytes can end up in it), cut short.
fn printable(e: &std::io::Error) -> String {
    let text: String = e.to_string().chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
    if text.len() > 160 { format!("{}…", &text[..160]) } else { text }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The files of a run folder, by name (plain files only; temporary files of atomic writes are
/// left out).
fn run_files(store: &Store, run_id: &str) -> Result<BTreeMap<String, Vec<u8>>, StoreError> {
    let dir = store.existing_dir(run_id)?;
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(&dir).map_err(io(&dir))? {
        let entry = entry.map_err(io(&dir))?;
        let path = entry.path();
        let Ok(name) = entry.file_name().into_string() else { continue };
        if !plain_name(&name) || !entry.file_type().map_err(io(&path))?.is_file() {
            tracing::debug!(run_id, name, "not bundled: not a plain file of the run");
            continue;
        }
        files.insert(name, fs::read(&path).map_err(io(&path))?);
    }
    Ok(files)
}

/// The bundle of a stored run: `<run_id>/manifest.json` first, then every file by name.
pub fn export(store: &Store, run_id: &str, origin: Option<String>, now: &str) -> Result<Vec<u8>, StoreError> {
    let files = run_files(store, run_id)?;
    let manifest = BundleManifest {
        format: BUNDLE_FORMAT.into(),
        version: BUNDLE_VERSION,
        run_id: run_id.to_owned(),
        origin,
        exported_at: now.to_owned(),
        exported_by: format!("bench-central {}", env!("CARGO_PKG_VERSION")),
        files: files
            .iter()
            .map(|(name, bytes)| BundleFile {
                path: name.clone(),
                bytes: bytes.len() as u64,
                sha256: sha256_hex(bytes),
            })
            .collect(),
    };
    let manifest =
        serde_json::to_vec_pretty(&manifest).map_err(|source| StoreError::Json { path: MANIFEST.into(), source })?;
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mtime = bench_shared::time::now_s() as u64;
    let mut add = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, format!("{run_id}/{name}"), bytes)
    };
    let failed = |e: std::io::Error| StoreError::Io { path: format!("{run_id}.tar.gz").into(), source: e };
    add(MANIFEST, &manifest).map_err(failed)?;
    for (name, bytes) in &files {
        add(name, bytes).map_err(failed)?;
    }
    let gz = tar.into_inner().map_err(failed)?;
    gz.finish().map_err(failed)
}

/// What a bundle holds once read and checked.
struct Unpacked {
    manifest: BundleManifest,
    manifest_sha256: String,
    files: BTreeMap<String, Vec<u8>>,
}

/// Reads every entry of the gzip'd tar, refusing anything that is not a plain file at
/// `<run_id>/<plain name>`.
fn unpack(gz: &[u8]) -> Result<(String, BTreeMap<String, Vec<u8>>), ImportError> {
    let decoder = flate2::read::GzDecoder::new(gz).take(MAX_UNPACKED_BYTES + 1);
    let mut archive = tar::Archive::new(decoder);
    let mut folder: Option<String> = None;
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    let entries =
        archive.entries().map_err(|e| invalid("bundle", format!("not a gzip'd tar archive: {}", printable(&e))))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            invalid("bundle", format!("not a bundle (a gzip'd tar archive of one run): {}", printable(&e)))
        })?;
        let raw = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| invalid("bundle", "an entry's path is not UTF-8"))?;
        let path = raw.trim_end_matches('/');
        let parts: Vec<&str> = path.split('/').collect();
        let escapes = raw.starts_with('/') || parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..");
        if escapes || parts.len() > 2 || raw.contains('\\') {
            return Err(invalid(
                format!("entry {raw:?}"),
                "path leaves the run folder: every entry must be <run_id>/<file name>",
            ));
        }
        match folder.as_deref() {
            None => folder = Some(parts[0].to_owned()),
            Some(f) if f != parts[0] => {
                return Err(invalid(format!("entry {raw:?}"), format!("outside the run folder {f}/")));
            }
            Some(_) => {}
        }
        let kind = entry.header().entry_type();
        if parts.len() == 1 {
            if kind.is_dir() {
                continue;
            }
            return Err(invalid(format!("entry {raw:?}"), "a file outside the run folder"));
        }
        if !(kind.is_file()) {
            return Err(invalid(format!("entry {raw:?}"), "not a plain file (links, devices and folders are refused)"));
        }
        let name = parts[1];
        if !plain_name(name) {
            return Err(invalid(format!("entry {raw:?}"), "not a plain file name (letters, digits, . _ -)"));
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| invalid(format!("entry {raw:?}"), format!("unreadable: {}", printable(&e))))?;
        total += bytes.len() as u64;
        if total > MAX_UNPACKED_BYTES {
            return Err(invalid("bundle", format!("unpacks to more than {MAX_UNPACKED_BYTES} bytes")));
        }
        if files.insert(name.to_owned(), bytes).is_some() {
            return Err(invalid(format!("entry {raw:?}"), "listed twice"));
        }
        if files.len() > MAX_FILES {
            return Err(invalid("bundle", format!("more than {MAX_FILES} files")));
        }
    }
    let folder = folder.ok_or_else(|| invalid("bundle", "empty archive"))?;
    Ok((folder, files))
}

/// Checks the manifest against the files.
fn verify(folder: &str, mut files: BTreeMap<String, Vec<u8>>) -> Result<Unpacked, ImportError> {
    let raw = files
        .remove(MANIFEST)
        .ok_or_else(|| invalid(MANIFEST, format!("missing: a bundle holds {folder}/{MANIFEST}")))?;
    let manifest: BundleManifest =
        serde_json::from_slice(&raw).map_err(|e| invalid(MANIFEST, format!("not readable: {e}")))?;
    if manifest.format != BUNDLE_FORMAT || manifest.version != BUNDLE_VERSION {
        return Err(invalid(
            MANIFEST,
            format!(
                "format {:?} version {} is not {BUNDLE_FORMAT:?} version {BUNDLE_VERSION}",
                manifest.format, manifest.version
            ),
        ));
    }
    if !valid_run_id(&manifest.run_id) || manifest.run_id != folder {
        return Err(invalid(
            MANIFEST,
            format!("run_id {:?} must be a run id and the bundle's folder ({folder:?})", manifest.run_id),
        ));
    }
    let mut listed = BTreeMap::new();
    for f in &manifest.files {
        if listed.insert(f.path.as_str(), f).is_some() {
            return Err(invalid(MANIFEST, format!("{} is listed twice", f.path)));
        }
    }
    for (name, bytes) in &files {
        let Some(f) = listed.get(name.as_str()) else {
            return Err(invalid(format!("file {name}"), "in the bundle but not in its manifest"));
        };
        let sha = sha256_hex(bytes);
        if f.bytes != bytes.len() as u64 || !f.sha256.eq_ignore_ascii_case(&sha) {
            return Err(invalid(
                format!("file {name}"),
                format!(
                    "does not match the manifest ({} bytes, sha256 {sha}; the manifest says {} bytes, sha256 {}): changed after export",
                    bytes.len(),
                    f.bytes,
                    f.sha256
                ),
            ));
        }
    }
    if let Some(missing) = listed.keys().find(|name| !files.contains_key(**name)) {
        return Err(invalid(format!("file {missing}"), "in the manifest but not in the bundle"));
    }
    Ok(Unpacked { manifest, manifest_sha256: sha256_hex(&raw), files })
}

/// Imports a bundle (the gzip'd bytes) as a new run of `store`, marked `imported`. `origin`
/// (from the request) names where it came from when given; else the manifest's origin.
pub fn import(store: &Store, gz: &[u8], origin: Option<String>, now: &str) -> Result<RunMetadata, ImportError> {
    let (folder, files) = unpack(gz)?;
    let Unpacked { manifest, manifest_sha256, mut files } = verify(&folder, files)?;
    let run_id = manifest.run_id.clone();
    let meta_bytes = files.get(METADATA).ok_or_else(|| invalid(format!("file {METADATA}"), "missing"))?;
    let mut meta: RunMetadata = serde_json::from_slice(meta_bytes)
        .map_err(|e| invalid(format!("file {METADATA}"), format!("not readable: {e}")))?;
    if meta.run_id != run_id {
        return Err(invalid(
            format!("file {METADATA}"),
            format!("is run {:?}, the bundle is run {run_id}", meta.run_id),
        ));
    }
    if meta.status == RunStatus::Running {
        return Err(invalid(
            format!("file {METADATA}"),
            "the run was still running when exported: export it once it has ended",
        ));
    }
    let summary: Option<RunSummary> = match files.get(SUMMARY) {
        None => None,
        Some(b) => {
            let s: RunSummary = serde_json::from_slice(b)
                .map_err(|e| invalid(format!("file {SUMMARY}"), format!("not readable: {e}")))?;
            if s.run_id != run_id {
                return Err(invalid(
                    format!("file {SUMMARY}"),
                    format!("is run {:?}, the bundle is run {run_id}", s.run_id),
                ));
            }
            Some(s)
        }
    };
    let target = store.run_dir(&run_id)?;
    if target.exists() {
        return Err(ImportError::Exists(run_id));
    }
    meta.imported = Some(Imported {
        origin: origin.or(manifest.origin.clone()),
        exported_at: manifest.exported_at.clone(),
        imported_at: now.to_owned(),
        manifest_sha256,
    });
    let meta_json =
        serde_json::to_vec_pretty(&meta).map_err(|source| StoreError::Json { path: METADATA.into(), source })?;
    files.insert(METADATA.to_owned(), meta_json);
    // Written beside the runs under a name no run id has, then renamed into place.
    let staging = store.runs_dir.join(format!(".import-{}", uuid::Uuid::new_v4().simple()));
    let written = (|| -> Result<(), StoreError> {
        fs::create_dir(&staging).map_err(io(&staging))?;
        for (name, bytes) in &files {
            let path = staging.join(name);
            let mut f = fs::File::create(&path).map_err(io(&path))?;
            f.write_all(bytes).map_err(io(&path))?;
            f.sync_all().map_err(io(&path))?;
        }
        Ok(())
    })();
    let placed = written.and_then(|()| {
        if target.exists() {
            return Err(StoreError::Io {
                path: target.clone(),
                source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "appeared during the import"),
            });
        }
        fs::rename(&staging, &target).map_err(io(&target))
    });
    if let Err(e) = placed {
        if let Err(cleanup) = fs::remove_dir_all(&staging) {
            tracing::warn!(path = %staging.display(), "cannot remove a failed import: {cleanup}");
        }
        return Err(match e {
            StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                ImportError::Exists(run_id)
            }
            other => other.into(),
        });
    }
    store.index_mut().insert(&meta, summary.as_ref());
    Ok(meta)
}
