//! Live state of the cell being measured, published as `sweep_progress` events.
//!
//! Concurrent requests of a cell report into one [`Tracker`]; each change is published as a
//! snapshot. The lock is a `std::sync::Mutex` held only to copy the snapshot, never across an
//! `.await`.

use std::sync::Mutex;

use bench_shared::event::Event;
use bench_shared::sweep::{CellState, SweepProgress};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::retry::RetryNotice;
use super::rows::RequestRow;
use super::summary::{CellKey, summary_row};

/// Sends events; a closed receiver only means nobody watches any more (the CSVs are still
/// written), so sending never fails the sweep.
#[derive(Debug, Clone)]
pub struct Emitter {
    tx: mpsc::UnboundedSender<Event>,
}

impl Emitter {
    pub fn new(tx: mpsc::UnboundedSender<Event>) -> Self {
        Emitter { tx }
    }

    pub fn emit(&self, event: Event) {
        if self.tx.send(event).is_err() {
            tracing::debug!("sweep event receiver closed; continuing to write CSVs");
        }
    }
}

#[derive(Debug)]
struct State {
    progress: SweepProgress,
    /// The phase the cell is in; `retrying` is shown over it until the next change.
    phase: CellState,
    recorded_started: Option<Instant>,
    /// A retry waiting to fire: shown (with the time left) on every update until it fires, so a
    /// live-rate sample does not hide the countdown.
    retry: Option<(Instant, String)>,
}

/// What the sweep ETA of a cell's updates is built from.
///
/// Cells differ in work: a cell runs `warmup + runs × par` requests, so a parallel-4 cell takes
/// about four times a parallel-1 cell. Time is therefore projected per request measured in the
/// cells finished so far, not per cell (a mean cell time made the last, biggest cell read
/// `~0m00s` while a whole cell was left).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EtaBasis {
    /// Wall seconds per request over the cells finished so far (`None` before the first one).
    pub s_per_request: Option<f64>,
    /// Requests this cell runs (warm-ups included).
    pub requests_here: u32,
    /// Requests of the cells still to run after this one.
    pub requests_after: u32,
}

impl EtaBasis {
    /// The basis of cell `index` of a sweep whose cells run `requests[i]` requests each, after
    /// `done_s` wall seconds spent on the cells before it.
    pub fn for_cell(requests: &[u32], index: usize, done_s: f64) -> EtaBasis {
        let before: u32 = requests[..index].iter().sum();
        EtaBasis {
            s_per_request: (before > 0).then(|| done_s / f64::from(before)),
            requests_here: requests[index],
            requests_after: requests[index + 1..].iter().sum(),
        }
    }

    /// Seconds until the sweep is done, given this cell's elapsed time and its own ETA.
    ///
    /// This cell's remaining time is its per-request ETA when there is one, else its requests ×
    /// the measured seconds per request minus what it has used — never less than one request's
    /// time while the cell is not done (it is late, not finished). Later cells count their
    /// requests × seconds per request, or, before any cell finished, at this cell's projected
    /// rate ((elapsed + remaining) ÷ its requests).
    pub fn sweep_eta_s(&self, elapsed_s: f64, cell_eta_s: Option<f64>, done: bool) -> Option<f64> {
        let remaining = if done {
            0.0
        } else {
            match (cell_eta_s, self.s_per_request) {
                (Some(eta), _) => eta,
                (None, Some(per)) => (per * f64::from(self.requests_here) - elapsed_s).max(per),
                (None, None) => return None,
            }
        };
        let per_request = match self.s_per_request {
            Some(per) => per,
            None => (elapsed_s + remaining) / f64::from(self.requests_here.max(1)),
        };
        Some(remaining + per_request * f64::from(self.requests_after))
    }
}

/// The progress of one cell.
#[derive(Debug)]
pub struct Tracker {
    state: Mutex<State>,
    started: Instant,
    emitter: Emitter,
    basis: EtaBasis,
}

impl Tracker {
    pub fn new(progress: SweepProgress, emitter: Emitter) -> Self {
        Self::with_basis(progress, emitter, EtaBasis::default())
    }

    /// A tracker whose updates also carry the sweep ETA (`sweep_eta_s`).
    pub fn with_basis(progress: SweepProgress, emitter: Emitter, basis: EtaBasis) -> Self {
        let phase = progress.state;
        Tracker {
            state: Mutex::new(State { progress, phase, recorded_started: None, retry: None }),
            started: Instant::now(),
            emitter,
            basis,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock cannot leave the counters half-updated in a
        // way that matters for display, so a poisoned lock is used as is.
        bench_shared::sync::lock(&self.state)
    }

    /// Applies `f` to the progress (state reset to the current phase first) and publishes it.
    pub fn update(&self, f: impl FnOnce(&mut SweepProgress)) {
        let snapshot = {
            let mut s = self.lock();
            let phase = s.phase;
            let recorded_started = s.recorded_started;
            let now = Instant::now();
            s.retry = s.retry.take().filter(|(at, _)| *at > now);
            let retry = s.retry.clone();
            let p = &mut s.progress;
            p.state = phase;
            p.retry_delay_s = None;
            p.detail = None;
            if let Some((at, detail)) = retry.filter(|_| phase != CellState::Cancelled) {
                p.state = CellState::Retrying;
                p.retry_delay_s = Some((at - now).as_secs_f64());
                p.detail = Some(detail);
            }
            f(p);
            p.elapsed_s = self.started.elapsed().as_secs_f64();
            p.eta_s = match (recorded_started, p.requests_done) {
                (Some(t0), done) if done > 0 && p.state != CellState::Done => {
                    let per_request = t0.elapsed().as_secs_f64() / done as f64;
                    Some(per_request * p.requests_total.saturating_sub(done) as f64)
                }
                _ => p.eta_s.filter(|_| p.state != CellState::Done),
            };
            p.sweep_eta_s = self.basis.sweep_eta_s(p.elapsed_s, p.eta_s, p.state == CellState::Done);
            p.clone()
        };
        self.emitter.emit(Event::SweepProgress(Box::new(snapshot)));
    }

    /// Enters a phase and publishes it.
    pub fn phase(&self, phase: CellState) {
        {
            let mut s = self.lock();
            s.phase = phase;
            if phase == CellState::Running {
                s.recorded_started = Some(Instant::now());
            }
        }
        self.update(|_| {});
    }

    /// Publishes a retry (state `retrying`, with the delay and the error); later updates keep
    /// showing it until the retry fires.
    pub fn retrying(&self, notice: &RetryNotice<'_>) {
        self.lock().retry = Some((Instant::now() + notice.delay, notice.describe()));
        self.update(|_| {});
    }

    /// Seconds since the recorded phase began (0 before it).
    pub fn recorded_elapsed_s(&self) -> f64 {
        self.lock().recorded_started.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0)
    }

    /// Recomputes the live aggregates from the cell's rows so far and publishes them.
    pub fn rows_changed(
        &self,
        key: &CellKey,
        rows: &[RequestRow],
        errors: u32,
        extra: impl FnOnce(&mut SweepProgress),
    ) {
        let s = summary_row(key, rows, 0.0);
        self.update(|p| {
            p.stream_tok_s = s.stream_toks_per_s_total;
            p.total_tok_s = s.completion_toks_per_s_total;
            p.prefill_tok_s = s.prefill_toks_per_s_mean;
            p.ttft_s = s.ttft_s_mean;
            p.errors = errors;
            extra(p);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::EtaBasis;

    #[test]
    fn sweep_eta_counts_the_requests_left_even_before_this_cell_has_an_eta() {
        // Cells of 5, 5, 10 requests; the first two took 40 s (4 s per request); the last is
        // warming up (no own ETA yet) after 10 s: 10 × 4 − 10 = 30 s left.
        let last = EtaBasis::for_cell(&[5, 5, 10], 2, 40.0);
        assert_eq!(last, EtaBasis { s_per_request: Some(4.0), requests_here: 10, requests_after: 0 });
        assert_eq!(last.sweep_eta_s(10.0, None, false), Some(30.0));
        // A parallel cell after this one counts its own requests: 10 × 4 − 10 + 10 × 4.
        let mid = EtaBasis::for_cell(&[5, 10, 10], 1, 20.0);
        assert_eq!(mid.sweep_eta_s(10.0, None, false), Some(70.0));
        // The cell's own per-request ETA wins over the projection.
        assert_eq!(mid.sweep_eta_s(10.0, Some(5.0), false), Some(45.0));
        // A finished cell leaves only the later ones.
        assert_eq!(mid.sweep_eta_s(45.0, None, true), Some(40.0));
    }

    #[test]
    fn a_late_cell_never_reads_as_finished() {
        // Projected 40 s, already 55 s in, no own ETA: at least one request (4 s) is left, not 0.
        let last = EtaBasis::for_cell(&[5, 10], 1, 20.0);
        assert_eq!(last.sweep_eta_s(55.0, None, false), Some(4.0));
    }

    #[test]
    fn before_any_cell_finished_this_cells_projection_sets_the_rate() {
        let first = EtaBasis::for_cell(&[5, 5, 10, 10], 0, 0.0);
        assert_eq!(first.sweep_eta_s(10.0, None, false), None, "nothing measured yet");
        // 10 s used + 20 s left for 5 requests = 6 s per request; 25 requests after this cell.
        assert_eq!(first.sweep_eta_s(10.0, Some(20.0), false), Some(20.0 + 6.0 * 25.0));
    }
}
