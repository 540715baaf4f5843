//! The three CSV files, written row by row and flushed after each row, so Ctrl-C (or a crash)
//! keeps everything measured so far. Each file holds one row type ([`CsvRow`]).
//!
//! An existing file is appended to only when its header is exactly the current one: LLMBench's
//! schema changed several times, and mixing schemas in one file silently corrupts every later
//! analysis. A different header is an error that names the file.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
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
}

/// One CSV file of `T` rows.
#[derive(Debug)]
pub struct CsvFile<T> {
    path: PathBuf,
    writer: csv::Writer<File>,
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
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(file);
        if existing_header.is_none() {
            // An empty file still names its columns (a sweep stopped before its first row).
            writer.write_record(header).map_err(|source| CsvError::Row { path: path.to_owned(), source })?;
            writer.flush().map_err(io)?;
        }
        Ok(CsvFile { path: path.to_owned(), writer, rows: PhantomData })
    }

    /// Appends one row and flushes it to the OS.
    pub fn write(&mut self, row: &T) -> Result<(), CsvError> {
        self.writer.serialize(row).map_err(|source| CsvError::Row { path: self.path.clone(), source })?;
        self.writer.flush().map_err(|source| CsvError::Io { path: self.path.clone(), source })
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
}
