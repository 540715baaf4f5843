//! Results that leave one race: the leaderboard over every stored run (`GET /api/leaderboard`),
//! and the manifest of a run bundle (`GET /api/runs/{id}/bundle.tar.gz`, `POST /api/runs/import`).
//!
//! The leaderboard's statistics are pure functions over per-run figures ([`board_row`]), so the
//! ordering and the interval can be tested without a store.

use serde::{Deserialize, Serialize};

use crate::compare::stats::Sample;
use crate::compare::{CONFIDENCE, Metric};
use crate::engine::EngineKind;

/// One run's figure for one machine on the leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardRun {
    pub run_id: String,
    /// The machine's mean over that run's warm repeats.
    pub value: f64,
    /// Warm repeats behind it.
    pub n: usize,
    /// RFC 3339 UTC.
    pub started_at: String,
}

/// `GET /api/leaderboard` `rows[]`: one machine with one model on one engine and version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardRow {
    pub machine_id: String,
    /// The label of its newest run.
    pub label: String,
    pub model: String,
    pub engine: Option<EngineKind>,
    pub engine_version: Option<String>,
    /// The hardware fingerprint of its newest run, in one line.
    pub hardware: Option<String>,
    /// Complete runs counted.
    pub runs: usize,
    /// The best run's figure, and which run.
    pub best: f64,
    pub best_run_id: String,
    /// Arithmetic mean of the runs' figures.
    pub mean: f64,
    /// Geometric mean of the runs' figures (`None` when one is ≤ 0).
    pub geomean: Option<f64>,
    /// 95% interval of the geometric mean over runs (log scale: never below 0); two runs or more.
    pub ci95: Option<[f64; 2]>,
    /// Runs left out because a fairness warning on this machine made the metric incomparable
    /// there (a prompt served from cache, throttling, …).
    pub excluded_runs: usize,
    /// Every counted run, newest first.
    pub run_list: Vec<BoardRun>,
}

/// `GET /api/leaderboard`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    pub metric: Metric,
    pub unit: String,
    pub higher_is_better: bool,
    /// The filters applied (`None`: not filtered).
    pub model: Option<String>,
    pub engine: Option<String>,
    pub since_s: Option<f64>,
    /// Complete runs that passed the filters.
    pub runs_considered: usize,
    /// Best first (the highest rate, the shortest time).
    pub rows: Vec<BoardRow>,
}

/// The statistics of one leaderboard row from its runs (any order; kept newest first by run id).
/// `None` without a run.
pub fn board_stats(metric: Metric, runs: &mut [BoardRun]) -> Option<BoardStats> {
    if runs.is_empty() {
        return None;
    }
    runs.sort_by(|a, b| b.run_id.cmp(&a.run_id));
    let better = |a: f64, b: f64| if metric.higher_is_better() { a > b } else { a < b };
    let best = runs.iter().fold(&runs[0], |best, r| if better(r.value, best.value) { r } else { best });
    let values: Vec<f64> = runs.iter().map(|r| r.value).collect();
    let plain = Sample::of(&values)?;
    let logs = Sample::of_logs(&values);
    Some(BoardStats {
        best: best.value,
        best_run_id: best.run_id.clone(),
        mean: plain.mean,
        geomean: logs.map(|l| l.mean.exp()),
        ci95: logs.and_then(|l| l.mean_ci(CONFIDENCE)).map(|[lo, hi]| [lo.exp(), hi.exp()]),
    })
}

/// What [`board_stats`] computes.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardStats {
    pub best: f64,
    pub best_run_id: String,
    pub mean: f64,
    pub geomean: Option<f64>,
    pub ci95: Option<[f64; 2]>,
}

/// Orders rows best first on `metric` (ties: more runs first, then machine id).
pub fn sort_rows(metric: Metric, rows: &mut [BoardRow]) {
    rows.sort_by(|a, b| {
        let by_best = if metric.higher_is_better() { b.best.total_cmp(&a.best) } else { a.best.total_cmp(&b.best) };
        by_best.then(b.runs.cmp(&a.runs)).then(a.machine_id.cmp(&b.machine_id))
    });
}

/// The name of a bundle's manifest, next to the run's files in the bundle's `<run_id>/` folder.
pub const MANIFEST: &str = "manifest.json";
/// `manifest.json` `format`.
pub const BUNDLE_FORMAT: &str = "bench-race-run-bundle";
/// The bundle layout version this code writes and reads.
pub const BUNDLE_VERSION: u32 = 1;

/// One file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    /// The file's name in the run folder (a plain name: no folder, no `..`).
    pub path: String,
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
}

/// `<run_id>/manifest.json` of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    pub format: String,
    pub version: u32,
    pub run_id: String,
    /// Where it was exported from: the exporting central's address as its request named it.
    pub origin: Option<String>,
    /// RFC 3339 UTC.
    pub exported_at: String,
    /// bench-central's version that wrote it.
    pub exported_by: String,
    /// Every file of the run, by name.
    pub files: Vec<BundleFile>,
}

/// `metadata.json` `imported`: a run that came from another central in a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imported {
    /// The manifest's `origin`, or the `origin` the import request named.
    pub origin: Option<String>,
    /// When the exporting central wrote the bundle (RFC 3339 UTC).
    pub exported_at: String,
    /// When this central imported it (RFC 3339 UTC).
    pub imported_at: String,
    /// SHA-256 of the bundle's manifest as received.
    pub manifest_sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, value: f64) -> BoardRun {
        BoardRun { run_id: id.into(), value, n: 3, started_at: String::new() }
    }

    #[test]
    fn board_stats_by_hand() {
        // 40, 50, 62.5: mean 50.8333; on ln: mean ln 50 (40·62.5 = 50²), sd ln 1.25 = 0.223144,
        // t(0.975, 2) = 4.302653 → geometric mean 50, CI 50·exp(±0.554311) = 28.72–87.05.
        let mut runs = vec![
            run("2026-01-01_000002_aaaaaa", 50.0),
            run("2026-01-01_000001_aaaaaa", 62.5),
            run("2026-01-01_000003_aaaaaa", 40.0),
        ];
        let s = board_stats(Metric::DecodeTokS, &mut runs).unwrap();
        assert_eq!((s.best, s.best_run_id.as_str()), (62.5, "2026-01-01_000001_aaaaaa"));
        assert!((s.mean - 50.833_333).abs() < 1e-5 && (s.geomean.unwrap() - 50.0).abs() < 1e-9);
        let [lo, hi] = s.ci95.unwrap();
        let half = 4.302_652_73 * 1.25f64.ln() / 3f64.sqrt();
        assert!((lo - 50.0 * (-half).exp()).abs() < 1e-6 && (hi - 50.0 * half.exp()).abs() < 1e-6, "{lo} {hi}");
        assert_eq!(runs[0].run_id, "2026-01-01_000003_aaaaaa", "newest first");
        // A time: the best is the lowest.
        let s = board_stats(Metric::TtftMs, &mut runs).unwrap();
        assert_eq!(s.best, 40.0);
        // One run: no interval.
        let s = board_stats(Metric::DecodeTokS, &mut [run("r", 7.0)]).unwrap();
        assert_eq!((s.best, s.ci95), (7.0, None));
        assert!(board_stats(Metric::DecodeTokS, &mut []).is_none());
    }
}
