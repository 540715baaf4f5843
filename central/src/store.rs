//! Runs on disk: `results/runs/<run_id>/{metadata.json, events.ndjson, summary.json}`.
//!
//! JSON files are written atomically (temp file + rename) so a crash never leaves half a file;
//! `events.ndjson` is appended and flushed line by line as events arrive. Run ids from requests are
//! checked against a strict pattern before they touch a path. Nothing here is cached in memory: the
//! history is what is on disk, so a restart loses nothing that finished.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use bench_shared::run::{MachineLabel, RunListEntry, RunMetadata, RunPage, RunSummary};
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

/// Wall-clock epoch seconds.
pub fn now_s() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Wall-clock epoch milliseconds.
pub fn now_ms() -> u64 {
    (now_s() * 1000.0) as u64
}

/// RFC 3339 UTC rendering of epoch seconds.
pub fn rfc3339(epoch_s: f64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos((epoch_s * 1e9) as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// A new run id `YYYY-MM-DD_HHMMSS_<6 hex>` (UTC); sorts chronologically.
pub fn new_run_id(epoch_s: f64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch_s as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!("[year]-[month]-[day]_[hour][minute][second]");
    let suffix: u32 = rand::rng().random_range(0..0x100_0000);
    format!("{}_{suffix:06x}", t.format(&fmt).unwrap_or_default())
}

/// True for ids shaped exactly like [`new_run_id`]'s (so never `..`, `/` or anything else).
pub fn valid_run_id(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 | 17 => *c == b'_',
            18..=23 => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
            _ => c.is_ascii_digit(),
        })
}

/// The `results/runs` directory.
#[derive(Debug, Clone)]
pub struct Store {
    runs_dir: PathBuf,
}

impl Store {
    pub fn open(results_dir: &Path) -> Result<Store, StoreError> {
        let runs_dir = results_dir.join("runs");
        fs::create_dir_all(&runs_dir).map_err(io(&runs_dir))?;
        Ok(Store { runs_dir })
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
        self.write_json(&meta.run_id, METADATA, meta)
    }

    pub fn write_summary(&self, summary: &RunSummary) -> Result<(), StoreError> {
        self.write_json(&summary.run_id, SUMMARY, summary)
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
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !plain {
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

    /// Ids of every stored run, newest first.
    pub fn run_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> = fs::read_dir(&self.runs_dir)
            .map_err(io(&self.runs_dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| valid_run_id(n) && self.runs_dir.join(n).join(METADATA).is_file())
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    /// One page of runs, newest first. Unreadable runs are listed with what the id tells.
    pub fn list(&self, limit: usize, offset: usize) -> Result<RunPage, StoreError> {
        let ids = self.run_ids()?;
        let runs = ids
            .iter()
            .skip(offset)
            .take(limit)
            .filter_map(|id| match self.metadata(id) {
                Ok(m) => Some(list_entry(&m, self.summary(id).ok().flatten().as_ref())),
                Err(e) => {
                    tracing::warn!(run_id = %id, "skipping unreadable run: {e}");
                    None
                }
            })
            .collect();
        Ok(RunPage { runs, total: ids.len(), limit, offset })
    }

    /// [`Store::list`] over the runs whose metadata passes `keep` (every run's metadata is read;
    /// `total` counts the matches).
    pub fn list_where(
        &self,
        keep: impl Fn(&RunMetadata) -> bool,
        limit: usize,
        offset: usize,
    ) -> Result<RunPage, StoreError> {
        let mut matched = Vec::new();
        for id in self.run_ids()? {
            match self.metadata(&id) {
                Ok(m) if keep(&m) => matched.push(m),
                Ok(_) => {}
                Err(e) => tracing::warn!(run_id = %id, "skipping unreadable run: {e}"),
            }
        }
        let runs = matched
            .iter()
            .skip(offset)
            .take(limit)
            .map(|m| list_entry(m, self.summary(&m.run_id).ok().flatten().as_ref()))
            .collect();
        Ok(RunPage { runs, total: matched.len(), limit, offset })
    }

    pub fn delete(&self, run_id: &str) -> Result<(), StoreError> {
        let dir = self.existing_dir(run_id)?;
        fs::remove_dir_all(&dir).map_err(io(&dir))
    }
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let file = File::open(path).map_err(io(path))?;
    serde_json::from_reader(BufReader::new(file)).map_err(|source| StoreError::Json { path: path.to_owned(), source })
}

fn list_entry(m: &RunMetadata, summary: Option<&RunSummary>) -> RunListEntry {
    let prompt_preview = m.prompt.as_ref().map(|p| {
        let mut s: String = p.chars().take(120).collect();
        if s.len() < p.len() {
            s.push('…');
        }
        s
    });
    RunListEntry {
        run_id: m.run_id.clone(),
        test_type: m.spec.test_type(),
        models: m.models.clone(),
        status: m.status,
        started_at: m.started_at.clone(),
        ended_at: m.ended_at.clone(),
        machines: m.machines.len(),
        prompt_preview,
        winner: summary.and_then(|s| s.winner.clone()),
        machine_labels: m
            .machines
            .iter()
            .map(|r| MachineLabel { machine_id: r.machine_id.clone(), label: r.label.clone() })
            .collect(),
    }
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
    /// truncated away) and the buffer is dropped: the caller reports the error.
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
                Err(StoreError::Io { path: self.path.clone(), source: e })
            }
        }
    }

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

    fn tempdir_for_test(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("central-store-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
