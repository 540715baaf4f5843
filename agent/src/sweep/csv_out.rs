//! The three CSV files, written row by row and flushed after each row, so Ctrl-C (or a crash)
//! keeps everything measured so far. Each file holds one row type ([`CsvRow`]). The sweep (async)
//! uses [`CsvFile::open_async`] and [`CsvFile::write_async`], which do the file work on the
//! blocking pool: a row is serialized in memory, then appended off the async runtime.
//!
//! An existing file is appended to only when its header is exactly the current one: LLMBench's
//! schema changed several times, and mixing schemas in one file silently corrupts every later
//! analysis. A different header is an error that names the file.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use bench_shared::sweep::CsvRow;

/// A CSV file could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} has a different header ({found}); move it away or choose another output path")]
    HeaderMismatch { path: PathBuf, found: String },
    #[error("cannot write a row to {path}: {source}")]
    Row { path: PathBuf, source: csv::Error },
    #[error("the CSV writer task for {path} failed: {reason}")]
    Task { path: PathBuf, reason: String },
}

/// One CSV file of `T` rows.
#[derive(Debug)]
pub struct CsvFile<T> {
    path: PathBuf,
    /// `None` only while a row is being written on the blocking pool.
    file: Option<File>,
    rows: PhantomData<fn(&T)>,
}

impl<T: CsvRow> CsvFile<T> {
    /// Opens `path` for appending rows under `T`'s header ([`CsvRow::HEADER`], tested to equal
    /// what `csv::Writer::serialize` makes of the struct), creating it and its folder if needed.
    pub fn open(path: &Path) -> Result<Self, CsvError> {
        let header = T::HEADER;
        let io = |source| CsvError::Io { path: path.to_owned(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let existing_header = match File::open(path) {
            Ok(f) => {
                let mut line = String::new();
                BufReader::new(f).read_line(&mut line).map_err(io)?;
                Some(line.trim_end().to_owned()).filter(|l| !l.is_empty())
            }
            Err(_) => None,
        };
        let expected = header.join(",");
        if let Some(found) = &existing_header
            && *found != expected
        {
            return Err(CsvError::HeaderMismatch { path: path.to_owned(), found: found.clone() });
        }
        let mut file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        if existing_header.is_none() {
            // An empty file still names its columns (a sweep stopped before its first row).
            let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
            w.write_record(header).map_err(|source| CsvError::Row { path: path.to_owned(), source })?;
            let bytes = w.into_inner().map_err(|e| io(e.into_error()))?;
            file.write_all(&bytes).and_then(|()| file.flush()).map_err(io)?;
        }
        Ok(CsvFile { path: path.to_owned(), file: Some(file), rows: PhantomData })
    }

    /// [`open`](Self::open) on the blocking pool.
    pub async fn open_async(path: &Path) -> Result<Self, CsvError>
    where
        T: 'static,
    {
        let p = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open(&p))
            .await
            .map_err(|e| CsvError::Task { path: path.to_owned(), reason: e.to_string() })?
    }

    /// One row as CSV bytes (in memory).
    fn encode(&self, row: &T) -> Result<Vec<u8>, CsvError> {
        let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
        w.serialize(row).map_err(|source| CsvError::Row { path: self.path.clone(), source })?;
        w.into_inner().map_err(|e| CsvError::Io { path: self.path.clone(), source: e.into_error() })
    }

    /// Appends one row and flushes it to the OS.
    pub fn write(&mut self, row: &T) -> Result<(), CsvError> {
        let bytes = self.encode(row)?;
        let busy = self.busy();
        let path = self.path.clone();
        let file = self.file.as_mut().ok_or(busy)?;
        file.write_all(&bytes).and_then(|()| file.flush()).map_err(|source| CsvError::Io { path, source })
    }

    /// [`write`](Self::write) with the file work on the blocking pool.
    pub async fn write_async(&mut self, row: &T) -> Result<(), CsvError> {
        let bytes = self.encode(row)?;
        let mut file = self.file.take().ok_or_else(|| self.busy())?;
        let done = tokio::task::spawn_blocking(move || {
            let result = file.write_all(&bytes).and_then(|()| file.flush());
            (file, result)
        })
        .await;
        match done {
            Ok((file, result)) => {
                self.file = Some(file);
                result.map_err(|source| CsvError::Io { path: self.path.clone(), source })
            }
            Err(e) => Err(CsvError::Task { path: self.path.clone(), reason: e.to_string() }),
        }
    }

    fn busy(&self) -> CsvError {
        CsvError::Task { path: self.path.clone(), reason: "a previous write did not finish".into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The three CSV paths of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvPaths {
    pub requests: PathBuf,
    pub summary: PathBuf,
    pub load_times: PathBuf,
}

impl CsvPaths {
    /// `requests.csv`, `summary.csv`, `load_times.csv` in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        CsvPaths {
            requests: dir.join("requests.csv"),
            summary: dir.join("summary.csv"),
            load_times: dir.join("load_times.csv"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct R {
        a: u32,
        b: Option<f64>,
        c: String,
    }

    impl CsvRow for R {
        const HEADER: &'static [&'static str] = &["a", "b", "c"];
    }

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Other {
        a: u32,
        b: u32,
    }

    impl CsvRow for Other {
        const HEADER: &'static [&'static str] = &["a", "b"];
    }

    #[test]
    fn appends_under_the_same_header_and_refuses_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x/requests.csv");
        let mut f = CsvFile::<R>::open(&path).unwrap();
        f.write(&R { a: 1, b: None, c: "x, y".into() }).unwrap();
        // Flushed: readable before the writer is dropped.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b,c\n1,,\"x, y\"\n");
        drop(f);
        let mut f = CsvFile::<R>::open(&path).unwrap();
        f.write(&R { a: 2, b: Some(0.5), c: String::new() }).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b,c\n1,,\"x, y\"\n2,0.5,\n");
        let err = CsvFile::<Other>::open(&path).unwrap_err();
        assert!(err.to_string().contains("different header"), "{err}");
    }

    #[tokio::test]
    async fn async_writes_land_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        let mut f = CsvFile::<R>::open_async(&path).await.unwrap();
        for a in 0..3 {
            f.write_async(&R { a, b: None, c: "z".into() }).await.unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b,c\n0,,z\n1,,z\n2,,z\n");
    }
}
