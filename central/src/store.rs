//! Runs on disk: `results/runs/<run_id>/{metadata.json, events.ndjson, summary.json}`.
//!
//! JSON files are written atomically (temp file + rename) so a crash never leaves half a file;
//! `events.ndjson` is appended and flushed line by line as events arrive. Run ids from requests are
//! checked against a strict pattern before they touch a path. The files are the record: what a run
//! list needs is also kept in memory ([`index`], built from the files when the store opens and
//! updated on every write and delete made through it), so listing reads no file; a restart loses
//! nothing that finished. Run folders added under `results/runs/` by hand are listed after the
//! next start.

pub mod bundle;
mod index;
pub mod leaderboard;

pub use index::{EngineFacts, MachineFacts, RunFacts};

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bench_shared::run::{RunMetadata, RunPage, RunStatus, RunSummary};
use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub const METADATA: &str = "metadata.json";
pub const EVENTS: &str = "events.ndjson";
pub const SUMMARY: &str = "summary.json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid run id {0:?}: expected YYYY-MM-DD_HHMMSS_xxxxxx")]
    InvalidId(String),
    #[error("invalid file name {0:?}")]
    InvalidName(String),
    #[error("run {0} not found")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    /// The results directory cannot be written (full disk, permissions): 507 for a new run.
    #[error("cannot write the results directory: {0}")]
    Unwritable(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_owned(), source }
}

pub use bench_shared::time::{now_ms, now_s, rfc3339};

use bench_shared::ids::RunId;

/// A new run id `YYYY-MM-DD_HHMMSS_<6 hex>` (UTC); sorts chronologically.
pub fn new_run_id(epoch_s: f64) -> String {
    RunId::new_at(epoch_s, rand::rng().random_range(0..0x100_0000)).into_string()
}

/// True for ids shaped exactly like [`new_run_id`]'s (so never `..`, `/` or anything else).
pub fn valid_run_id(id: &str) -> bool {
    RunId::parse(id).is_some()
}

/// The `results/runs` directory (and the index of its runs; clones share it).
#[derive(Debug, Clone)]
pub struct Store {
    runs_dir: PathBuf,
    index: Arc<RwLock<index::RunIndex>>,
}

impl Store {
    /// Opens (creating) `results_dir/runs` and indexes every run in it: each run's
    /// `metadata.json` and `summary.json` are read once here (an unreadable run is left out of
    /// the index, with a warning).
    pub fn open(results_dir: &Path) -> Result<Store, StoreError> {
        let runs_dir = results_dir.join("runs");
        fs::create_dir_all(&runs_dir).map_err(io(&runs_dir))?;
        let store = Store { runs_dir, index: Default::default() };
        let mut index = index::RunIndex::default();
        for id in store.scan_ids()? {
            match store.metadata(&id) {
                Ok(meta) => index.insert(&meta, store.summary(&id).ok().flatten().as_ref()),
                Err(e) => tracing::warn!(run_id = %id, "run left out of the list (unreadable): {e}"),
            }
        }
        *store.index_mut() = index;
        Ok(store)
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, index::RunIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn index_mut(&self) -> std::sync::RwLockWriteGuard<'_, index::RunIndex> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn runs_dir(&self) -> &Path {
        &self.runs_dir
    }

    /// The folder of a run; fails on an invalid id.
    pub fn run_dir(&self, run_id: &str) -> Result<PathBuf, StoreError> {
        if !valid_run_id(run_id) {
            return Err(StoreError::InvalidId(run_id.chars().take(64).collect()));
        }
        Ok(self.runs_dir.join(run_id))
    }

    fn existing_dir(&self, run_id: &str) -> Result<PathBuf, StoreError> {
        let dir = self.run_dir(run_id)?;
        if dir.join(METADATA).is_file() { Ok(dir) } else { Err(StoreError::NotFound(run_id.to_owned())) }
    }

    pub fn create_run(&self, run_id: &str) -> Result<PathBuf, StoreError> {
        let dir = self.run_dir(run_id)?;
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(dir)
    }

    pub fn write_metadata(&self, meta: &RunMetadata) -> Result<(), StoreError> {
        self.write_json(&meta.run_id, METADATA, meta)?;
        self.index_mut().put_metadata(meta);
        Ok(())
    }

    pub fn write_summary(&self, summary: &RunSummary) -> Result<(), StoreError> {
        self.write_json(&summary.run_id, SUMMARY, summary)?;
        self.index_mut().put_summary(summary);
        Ok(())
    }

    pub fn metadata(&self, run_id: &str) -> Result<RunMetadata, StoreError> {
        read_json(&self.existing_dir(run_id)?.join(METADATA))
    }

    /// `summary.json`, or `None` while the run has none (running, interrupted before the end).
    pub fn summary(&self, run_id: &str) -> Result<Option<RunSummary>, StoreError> {
        let path = self.existing_dir(run_id)?.join(SUMMARY);
        if path.is_file() { read_json(&path).map(Some) } else { Ok(None) }
    }

    /// The raw `events.ndjson` bytes.
    pub fn events(&self, run_id: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.existing_dir(run_id)?.join(EVENTS);
        match fs::read(&path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Opens `events.ndjson` for appending.
    pub fn event_log(&self, run_id: &str) -> Result<EventLog, StoreError> {
        EventLog::open(self.run_dir(run_id)?.join(EVENTS))
    }

    pub fn write_json<T: Serialize>(&self, run_id: &str, name: &str, value: &T) -> Result<(), StoreError> {
        let bytes =
            serde_json::to_vec_pretty(value).map_err(|source| StoreError::Json { path: name.into(), source })?;
        self.write_file(run_id, name, &bytes)
    }

    /// Writes `<run>/<name>` atomically. `name` must be a plain file name.
    pub fn write_file(&self, run_id: &str, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        if !plain_name(name) {
            return Err(StoreError::InvalidName(name.to_owned()));
        }
        let dir = self.run_dir(run_id)?;
        let tmp = dir.join(format!(".{name}.tmp"));
        let path = dir.join(name);
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Writes `<run>/images/<name>` atomically (a generated image). `name` must be a plain file name.
    pub fn write_image(&self, run_id: &str, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.write_in(run_id, "images", name, bytes)
    }

    /// Writes `<run>/audio/<name>` atomically (a transcription's audio, stored once).
    pub fn write_audio(&self, run_id: &str, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.write_in(run_id, "audio", name, bytes)
    }

    /// Writes `<run>/<folder>/<name>` atomically. `name` must be a plain file name.
    fn write_in(&self, run_id: &str, folder: &str, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !plain {
            return Err(StoreError::InvalidName(name.to_owned()));
        }
        let dir = self.run_dir(run_id)?.join(folder);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let tmp = dir.join(format!(".{name}.tmp"));
        let path = dir.join(name);
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// `<run>/images/<name>`: the bytes of a stored image (`None` for a name that is not a plain
    /// file name, or no such image).
    pub fn image(&self, run_id: &str, name: &str) -> Option<Vec<u8>> {
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !plain {
            return None;
        }
        fs::read(self.run_dir(run_id).ok()?.join("images").join(name)).ok()
    }

    /// Ids of every stored run, newest first (from the index).
    pub fn run_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.index().ids())
    }

    /// Ids of every run folder with a `metadata.json`, newest first (from the directory).
    fn scan_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> = fs::read_dir(&self.runs_dir)
            .map_err(io(&self.runs_dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| valid_run_id(n) && self.runs_dir.join(n).join(METADATA).is_file())
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    /// Stored runs by status (from the index).
    pub fn status_counts(&self) -> Vec<(RunStatus, usize)> {
        self.index().status_counts()
    }

    /// One page of runs, newest first (from the index: no file is read).
    pub fn list(&self, limit: usize, offset: usize) -> Result<RunPage, StoreError> {
        Ok(self.index().page(|_| true, limit, offset))
    }

    /// [`Store::list`] over the runs whose [`RunFacts`] (what the filters read of `metadata.json`)
    /// pass `keep`; `total` counts the matches.
    pub fn list_where(
        &self,
        keep: impl Fn(&RunFacts) -> bool,
        limit: usize,
        offset: usize,
    ) -> Result<RunPage, StoreError> {
        Ok(self.index().page(keep, limit, offset))
    }

    /// The leaderboard over the indexed runs (no file is read).
    pub fn leaderboard(&self, query: &leaderboard::BoardQuery) -> bench_shared::share::Leaderboard {
        leaderboard::build(&self.index(), query)
    }

    pub fn delete(&self, run_id: &str) -> Result<(), StoreError> {
        let dir = self.existing_dir(run_id)?;
        let removed = fs::remove_dir_all(&dir).map_err(io(&dir));
        // A removal that failed part-way may still have taken the metadata with it.
        if removed.is_ok() || !dir.join(METADATA).is_file() {
            self.index_mut().remove(run_id);
        }
        removed
    }
}

/// A file name a run folder may hold: letters, digits, `.`, `_`, `-`, not starting with `.`
/// (so never a path, `..` or a temporary file of an atomic write).
pub fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let file = File::open(path).map_err(io(path))?;
    serde_json::from_reader(BufReader::new(file)).map_err(|source| StoreError::Json { path: path.to_owned(), source })
}

/// `events.ndjson`, appended in whole lines: lines are buffered with [`EventLog::push`] and
/// written with [`EventLog::flush`]; a write that fails part-way is cut back to the last whole
/// line, so the file never holds a torn line.
#[derive(Debug)]
pub struct EventLog {
    file: File,
    path: PathBuf,
    /// Whole lines not written yet.
    pending: Vec<u8>,
    /// File length after the last successful flush (a failed write is truncated back to it).
    committed_len: u64,
}

impl EventLog {
    /// Opens (or creates) the log for appending. A torn last line left by a crash or a full disk
    /// is cut off first, so the next line does not append onto its fragment.
    pub fn open(path: PathBuf) -> Result<EventLog, StoreError> {
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(io(&path))?;
        let len = file.metadata().map_err(io(&path))?.len();
        let keep = whole_lines_len(&mut file, len).map_err(io(&path))?;
        if keep < len {
            tracing::warn!(path = %path.display(), torn_bytes = len - keep, "cutting a torn last line");
            file.set_len(keep).map_err(io(&path))?;
        }
        Ok(EventLog { file, path, pending: Vec::new(), committed_len: keep })
    }

    /// Buffers one compact JSON object as one line.
    pub fn push(&mut self, line: &str) {
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
    }

    /// Writes the buffered lines. On failure nothing of them stays in the file (a partial write is
    /// truncated away) and they stay buffered, so the next flush writes them again before anything
    /// newer: a disk that was full for a while leaves no gap in the file once it has space again
    /// (up to [`EventLog::MAX_PENDING`] bytes; beyond, the buffer is dropped and that is logged).
    /// The caller reports the error.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.pending);
        match self.file.write_all(&bytes).and_then(|()| self.file.flush()) {
            Ok(()) => {
                self.committed_len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                if let Err(cut) = self.file.set_len(self.committed_len) {
                    tracing::error!(path = %self.path.display(), "cannot cut a failed write back: {cut}");
                }
                if bytes.len() <= Self::MAX_PENDING {
                    self.pending = bytes;
                } else {
                    tracing::error!(path = %self.path.display(), bytes = bytes.len(), "dropping event lines that could not be written");
                }
                Err(StoreError::Io { path: self.path.clone(), source: e })
            }
        }
    }

    /// Most bytes of unwritten lines kept for another try.
    pub const MAX_PENDING: usize = 16 * 1024 * 1024;

    /// Appends one line and writes it at once.
    pub fn append(&mut self, line: &str) -> Result<(), StoreError> {
        self.push(line);
        self.flush()
    }
}

/// Length of `file` up to and including its last newline (`len` when it ends with one or is empty).
fn whole_lines_len(file: &mut File, len: u64) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut end = len;
    let mut buf = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Reads `events.ndjson` bytes as JSON values, skipping a torn last line.
pub fn parse_events(bytes: &[u8]) -> Vec<serde_json::Value> {
    BufReader::new(bytes).lines().map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_strict() {
        let id = new_run_id(1_795_000_000.0);
        assert!(valid_run_id(&id), "{id}");
        assert!(id.starts_with("2026-"), "{id}");
        for bad in
            ["../../etc/passwd", "2026-11-23_143022_ab12c", "2026-11-23_143022_AB12CD", "2026-11-23/143022_ab12cd", ""]
        {
            assert!(!valid_run_id(bad), "{bad}");
        }
        assert!(valid_run_id("2026-11-23_143022_ab12cd"));
    }

    #[test]
    fn atomic_write_rejects_path_names() {
        let dir = std::env::temp_dir().join(format!("central-store-{}", uuid::Uuid::new_v4()));
        let store = Store::open(&dir).unwrap();
        let id = new_run_id(now_s());
        store.create_run(&id).unwrap();
        assert!(matches!(store.write_file(&id, "../x", b"1"), Err(StoreError::InvalidName(_))));
        store.write_file(&id, "a.csv", b"1").unwrap();
        assert_eq!(fs::read(store.run_dir(&id).unwrap().join("a.csv")).unwrap(), b"1");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_cut_before_appending() {
        let dir = tempdir_for_test("torn");
        let path = dir.join(EVENTS);
        std::fs::write(&path, b"{\"a\":1}\n{\"b\":2}\n{\"torn\":").unwrap();
        let mut log = EventLog::open(path.clone()).unwrap();
        log.push("{\"c\":3}");
        log.push("{\"d\":4}");
        log.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n{\"d\":4}\n");
        // No newline at all: the whole fragment goes.
        std::fs::write(&path, b"{\"half").unwrap();
        EventLog::open(path.clone()).unwrap().append("{}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn meta(run_id: &str, model: &str, status: bench_shared::run::RunStatus) -> RunMetadata {
        let machine = serde_json::json!({
            "machine_id": "m1", "label": "Box One", "agent_base_url": "http://a", "status": "complete"});
        meta_of(run_id, model, status, machine)
    }

    /// A run's metadata with one machine (`machine`: a `MachineRecord` as JSON); the index's
    /// tests use it too.
    pub(in crate::store) fn meta_of(
        run_id: &str,
        model: &str,
        status: bench_shared::run::RunStatus,
        machine: serde_json::Value,
    ) -> RunMetadata {
        let spec =
            bench_shared::job::JobSpec::from_json(&serde_json::json!({"model": model, "prompt": "p"}), 0).unwrap();
        let machine: bench_shared::run::MachineRecord = serde_json::from_value(machine).unwrap();
        RunMetadata {
            run_id: run_id.into(),
            test_type: spec.test_type(),
            models: vec![model.into()],
            prompt: Some("a prompt".into()),
            spec,
            status,
            reason: None,
            started_at: "2026-01-01T00:00:00Z".into(),
            started_at_s: 1.0,
            ended_at: None,
            ended_at_s: None,
            machines: vec![machine],
            clock: None,
            imported: None,
        }
    }

    fn summary(run_id: &str, winner: &str) -> RunSummary {
        serde_json::from_value(serde_json::json!({"run_id": run_id, "test_type": "llm_generate", "models": ["m"],
            "status": "complete", "rank_by": "ttft_ms", "winner": winner, "machines": []}))
        .unwrap()
    }

    fn listed(store: &Store) -> Vec<(String, String, Option<String>)> {
        let page = store.list(100, 0).unwrap();
        assert_eq!(page.total, page.runs.len());
        page.runs.iter().map(|r| (r.run_id.clone(), r.status.as_str().to_owned(), r.winner.clone())).collect()
    }

    #[test]
    fn the_run_list_follows_writes_and_deletes_and_is_rebuilt_from_the_files() {
        use bench_shared::run::RunStatus::{Complete, Running};
        let dir = tempdir_for_test("index");
        let store = Store::open(&dir).unwrap();
        let (a, b, c) = ("2026-01-01_000001_aaaaaa", "2026-01-01_000002_bbbbbb", "2026-01-01_000003_cccccc");
        for (id, model) in [(a, "llama"), (b, "qwen"), (c, "llama")] {
            store.create_run(id).unwrap();
            store.write_metadata(&meta(id, model, Running)).unwrap();
        }
        let running = |id: &str| (id.to_owned(), "running".to_owned(), None);
        assert_eq!(listed(&store), vec![running(c), running(b), running(a)], "newest first");
        // The run ends: summary first, then metadata (as finish writes them); the winner stays.
        store.write_summary(&summary(b, "m1")).unwrap();
        store.write_metadata(&meta(b, "qwen", Complete)).unwrap();
        let b_done = (b.to_owned(), "complete".to_owned(), Some("m1".to_owned()));
        assert_eq!(listed(&store)[1], b_done);
        // A clone (another handle of the same central) sees the same index.
        store.clone().delete(c).unwrap();
        assert_eq!(listed(&store), vec![b_done.clone(), running(a)]);
        assert_eq!(store.run_ids().unwrap(), vec![b.to_owned(), a.to_owned()]);
        assert_eq!(store.status_counts(), vec![(Running, 1), (Complete, 1)], "a is older than b");
        // Filters and pages read the index.
        let page = store.list_where(|f| f.models.iter().any(|m| &**m == "llama"), 10, 0).unwrap();
        assert_eq!((page.total, page.runs[0].run_id.as_str()), (1, a));
        let page = store.list(1, 1).unwrap();
        assert_eq!((page.total, page.runs.len(), page.runs[0].run_id.as_str()), (2, 1, a));
        assert_eq!(page.runs[0].prompt_preview.as_deref(), Some("a prompt"));
        assert_eq!(page.runs[0].machine_labels[0].label, "Box One");

        // A run written by someone else and an unreadable one: a fresh store indexes the files.
        let other = Store { runs_dir: store.runs_dir.clone(), index: Default::default() };
        let d = "2026-01-01_000004_dddddd";
        other.create_run(d).unwrap();
        other.write_metadata(&meta(d, "phi", Complete)).unwrap();
        assert_eq!(listed(&store).len(), 2, "not this store's write: listed after a restart");
        let broken = "2026-01-01_000005_eeeeee";
        store.create_run(broken).unwrap();
        std::fs::write(store.run_dir(broken).unwrap().join(METADATA), b"{not json").unwrap();
        let reopened = Store::open(&dir).unwrap();
        assert_eq!(listed(&reopened), vec![(d.to_owned(), "complete".to_owned(), None), b_done, running(a)]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempdir_for_test(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("central-store-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
