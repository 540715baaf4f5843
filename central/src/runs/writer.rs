//! One writer per run: a blocking thread that owns the run's `events.ndjson` and does the run's
//! file writes, so no disk I/O runs on the async runtime's workers.
//!
//! Lines are queued without waiting ([`RunWriter::append`]) and written in batches: whatever
//! queued while the last batch was written goes out in one write, then is flushed. File work
//! that must follow the lines already queued (metadata, the final files, `run_end`) is sent as a
//! closure ([`RunWriter::submit`], [`RunWriter::call`]) that runs on the same thread, after them.
//! The first failed write is reported once through `on_error`; the run then ends `failed`.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::EventLog;

type Job = Box<dyn FnOnce(&mut EventLog) + Send>;

enum Cmd {
    Line(String),
    Job(Job),
}

/// The handle the run task uses; cheap to clone.
#[derive(Clone)]
pub struct RunWriter {
    tx: mpsc::UnboundedSender<Cmd>,
}

impl std::fmt::Debug for RunWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunWriter")
    }
}

impl RunWriter {
    /// Starts the writer thread for `log`. `on_error` is called (once) with the reason of the
    /// first failed write. The thread ends when every handle is dropped and the queue is written.
    pub fn spawn(log: EventLog, on_error: impl FnOnce(String) + Send + 'static) -> (RunWriter, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = tokio::task::spawn_blocking(move || write_loop(log, rx, on_error));
        (RunWriter { tx }, thread)
    }

    /// Queues one event line (no trailing newline).
    pub fn append(&self, line: String) {
        if self.tx.send(Cmd::Line(line)).is_err() {
            tracing::error!("run writer stopped: an event line was not stored");
        }
    }

    /// Runs `f` on the writer thread after every line queued before it is written; does not wait.
    pub fn submit(&self, f: impl FnOnce(&mut EventLog) + Send + 'static) {
        if self.tx.send(Cmd::Job(Box::new(f))).is_err() {
            tracing::error!("run writer stopped: a file write was not done");
        }
    }

    /// Like [`submit`](Self::submit), and waits for `f`'s result. `None` when the writer is gone.
    pub async fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut EventLog) -> R + Send + 'static) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.submit(move |log| {
            let _ = tx.send(f(log));
        });
        rx.await.ok()
    }
}

fn write_loop(mut log: EventLog, mut rx: mpsc::UnboundedReceiver<Cmd>, on_error: impl FnOnce(String)) {
    let mut on_error = Some(on_error);
    let mut report = |e: crate::store::StoreError| {
        tracing::error!("cannot write the run's events: {e}");
        if let Some(f) = on_error.take() {
            f(describe(&e));
        }
    };
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(cmd) = next.take().or_else(|| rx.try_recv().ok()) {
            match cmd {
                Cmd::Line(line) => log.push(&line),
                Cmd::Job(f) => {
                    if let Err(e) = log.flush() {
                        report(e);
                    }
                    f(&mut log);
                }
            }
        }
        if let Err(e) = log.flush() {
            report(e);
        }
    }
}

/// "no space left on device writing events.ndjson" from an I/O error on a path.
pub fn describe(e: &crate::store::StoreError) -> String {
    match e {
        crate::store::StoreError::Io { path, source } => {
            // An atomic write's temp file `.name.tmp` is reported as `name`.
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let file = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")).unwrap_or(&name).to_owned();
            let what = match source.raw_os_error() {
                Some(28) => "no space left on device".to_owned(),
                _ => source.to_string(),
            };
            format!("{what} writing {file}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lines_and_jobs_keep_their_order_and_every_line_is_on_disk_before_a_job_runs() {
        let dir = std::env::temp_dir().join(format!("central-writer-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.ndjson");
        let (writer, thread) = RunWriter::spawn(EventLog::open(path.clone()).unwrap(), |e| panic!("{e}"));
        for i in 0..1000 {
            writer.append(format!("{{\"i\":{i}}}"));
        }
        let p = path.clone();
        let seen = writer.call(move |_| std::fs::read_to_string(p).unwrap().lines().count()).await;
        assert_eq!(seen, Some(1000), "every queued line is written before a job runs");
        writer.call(|log| log.append("{\"end\":true}").unwrap()).await.unwrap();
        drop(writer);
        thread.await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1001);
        assert_eq!((lines[0], lines[999], lines[1000]), ("{\"i\":0}", "{\"i\":999}", "{\"end\":true}"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn full_disk_reason_names_the_file() {
        let e = crate::store::StoreError::Io {
            path: "/r/runs/x/events.ndjson".into(),
            source: std::io::Error::from_raw_os_error(28),
        };
        assert_eq!(describe(&e), "no space left on device writing events.ndjson");
        let e = crate::store::StoreError::Io {
            path: "/r/.summary.json.tmp".into(),
            source: std::io::Error::from_raw_os_error(28),
        };
        assert_eq!(describe(&e), "no space left on device writing summary.json");
    }
}
