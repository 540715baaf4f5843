//! Each job's events on disk: `results_dir/jobs/<job_id>.ndjson`, one event per line, written by
//! one blocking thread (never on the async runtime). Memory keeps only a window of each job's
//! events ([`crate::hub::Hub`]); anything older, and the events of jobs from before a restart,
//! are read back from here, so a central that reconnects late (or restarts) loses nothing.
//!
//! Bounded by count and age: when a job ends, the files beyond the newest [`KEEP_JOBS`] and those
//! older than [`MAX_AGE`] are removed.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

/// Job files kept (newest first).
pub const KEEP_JOBS: usize = 256;
/// Job files older than this are removed.
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

enum Cmd {
    Line { job_id: Arc<str>, json: Arc<str> },
    Finished { job_id: Arc<str> },
    Flush(std::sync::mpsc::Sender<()>),
}

/// The job journal of one agent.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    tx: mpsc::UnboundedSender<Cmd>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("journal command")
    }
}

impl Journal {
    /// A journal in `dir` (created on first write), written by a thread of its own.
    pub fn open(dir: PathBuf) -> Journal {
        let (tx, rx) = mpsc::unbounded_channel();
        let d = dir.clone();
        let spawned = std::thread::Builder::new().name("job-journal".into()).spawn(move || write_loop(&d, rx));
        if let Err(e) = spawned {
            tracing::error!("cannot start the job journal thread: {e}");
        }
        Journal { dir, tx }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Queues one event line of `job_id` (cheap: the line is shared, not copied).
    pub fn append(&self, job_id: &Arc<str>, json: &Arc<str>) {
        let _ = self.tx.send(Cmd::Line { job_id: job_id.clone(), json: json.clone() });
    }

    /// The job ended: close its file and prune old ones.
    pub fn finished(&self, job_id: &Arc<str>) {
        let _ = self.tx.send(Cmd::Finished { job_id: job_id.clone() });
    }

    /// Blocks until every line queued so far is on disk (blocking code and tests only).
    pub fn flush_blocking(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.tx.send(Cmd::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// The stored events of `job_id` with `seq > after_seq`, as `(seq, json)`; `None` when the
    /// journal has no file for the job. Blocking: call from `spawn_blocking`.
    pub fn read(&self, job_id: &str, after_seq: u64) -> Option<Vec<(u64, String)>> {
        if !valid_job_id(job_id) {
            return None;
        }
        self.flush_blocking();
        let file = File::open(self.dir.join(format!("{job_id}.ndjson"))).ok()?;
        let mut out = Vec::new();
        for line in BufReader::new(file).lines().map_while(Result::ok) {
            let Some(seq) = seq_of(&line) else { continue }; // a torn last line
            if seq > after_seq {
                out.push((seq, line));
            }
        }
        Some(out)
    }
}

/// Job ids are the agent's own (uuid simple form); anything else never reaches a path.
fn valid_job_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn seq_of(line: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get("seq")?.as_u64()
}

/// Writes what is queued. Lines go through a buffer per job file that is flushed whenever the
/// queue is empty (before the thread waits again), on `Flush` and when the job ends: a burst of
/// events (a fast stream's `llm_token`s) costs one write per burst, not one per event, and a line
/// is never held back once the queue is drained.
fn write_loop(dir: &Path, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut w = Writer { dir, open: HashMap::new(), failed: false };
    while let Some(cmd) = rx.blocking_recv() {
        w.handle(cmd);
        while let Ok(cmd) = rx.try_recv() {
            w.handle(cmd);
        }
        w.flush_all();
    }
}

/// The journal thread's open files.
struct Writer<'a> {
    dir: &'a Path,
    open: HashMap<Arc<str>, BufWriter<File>>,
    /// A failure to open a file was logged (once).
    failed: bool,
}

impl Writer<'_> {
    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Line { job_id, json } => {
                let file = match self.open.get_mut(&job_id) {
                    Some(f) => f,
                    None => match open_job(self.dir, &job_id) {
                        Ok(f) => self.open.entry(job_id.clone()).or_insert(BufWriter::with_capacity(BUFFER, f)),
                        Err(e) => {
                            if !self.failed {
                                tracing::error!(dir = %self.dir.display(), "cannot write the job journal: {e}");
                                self.failed = true;
                            }
                            return;
                        }
                    },
                };
                if let Err(e) = file.write_all(json.as_bytes()).and_then(|()| file.write_all(b"\n")) {
                    tracing::error!(job_id = %job_id, "cannot write the job journal: {e}");
                }
            }
            Cmd::Finished { job_id } => {
                if let Some(mut file) = self.open.remove(&job_id) {
                    flush(&job_id, &mut file);
                }
                prune(self.dir, KEEP_JOBS, MAX_AGE);
            }
            Cmd::Flush(done) => {
                self.flush_all();
                let _ = done.send(());
            }
        }
    }

    fn flush_all(&mut self) {
        for (job_id, file) in &mut self.open {
            if !file.buffer().is_empty() {
                flush(job_id, file);
            }
        }
    }
}

/// The write buffer of one job file.
const BUFFER: usize = 64 * 1024;

fn flush(job_id: &str, file: &mut BufWriter<File>) {
    if let Err(e) = file.flush() {
        tracing::error!(job_id, "cannot write the job journal: {e}");
    }
}

fn open_job(dir: &Path, job_id: &str) -> std::io::Result<File> {
    if !valid_job_id(job_id) {
        return Err(std::io::Error::other(format!("invalid job id {job_id:?}")));
    }
    fs::create_dir_all(dir)?;
    OpenOptions::new().create(true).append(true).open(dir.join(format!("{job_id}.ndjson")))
}

/// Removes job files beyond the newest `keep` and those older than `max_age`.
pub fn prune(dir: &Path, keep: usize, max_age: Duration) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut files: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "ndjson"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let now = SystemTime::now();
    for (i, (modified, path)) in files.iter().enumerate() {
        let old = now.duration_since(*modified).is_ok_and(|age| age > max_age);
        if (i >= keep || old)
            && let Err(e) = fs::remove_file(path)
        {
            tracing::warn!(path = %path.display(), "cannot prune a job journal file: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        std::env::temp_dir().join(format!("agent-journal-{}", uuid::Uuid::new_v4().simple()))
    }

    #[test]
    fn lines_are_read_back_after_a_seq_and_bad_ids_never_reach_a_path() {
        let d = dir();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _guard = rt.enter();
        let j = Journal::open(d.clone());
        let id: Arc<str> = Arc::from("abc123");
        for seq in 1..=5 {
            j.append(&id, &Arc::from(format!("{{\"job_id\":\"abc123\",\"seq\":{seq}}}")));
        }
        let got = j.read("abc123", 3).unwrap();
        assert_eq!(got.iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![4, 5]);
        assert!(j.read("unknown", 0).is_none());
        assert!(j.read("../etc/passwd", 0).is_none());
        // A reopened journal (agent restart) reads the same file.
        let again = Journal::open(d.clone());
        assert_eq!(again.read("abc123", 0).unwrap().len(), 5);
        fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn pruning_keeps_the_newest_files() {
        let d = dir();
        fs::create_dir_all(&d).unwrap();
        for i in 0..5 {
            fs::write(d.join(format!("j{i}.ndjson")), "{}\n").unwrap();
            let t = SystemTime::now() - Duration::from_secs(100 - i);
            File::options().write(true).open(d.join(format!("j{i}.ndjson"))).unwrap().set_modified(t).unwrap();
        }
        fs::write(d.join("keep.txt"), "not a journal").unwrap();
        prune(&d, 3, MAX_AGE);
        let mut left: Vec<String> =
            fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, vec!["j2.ndjson", "j3.ndjson", "j4.ndjson", "keep.txt"]);
        prune(&d, 10, Duration::from_millis(97_500));
        let n = fs::read_dir(&d).unwrap().count();
        assert_eq!(n, 3, "files older than the max age go too");
        fs::remove_dir_all(d).unwrap();
    }
}
