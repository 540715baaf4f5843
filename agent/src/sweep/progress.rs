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
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EtaBasis {
    /// Mean wall time of the cells finished so far (`None` before the first one).
    pub mean_done_cell_s: Option<f64>,
    /// Cells still to run after this one.
    pub cells_after: usize,
}

impl EtaBasis {
    /// Seconds until the sweep is done, given this cell's elapsed time and its own ETA.
    ///
    /// This cell's remaining time is its per-request ETA when there is one, else the mean cell
    /// time minus what it has used (never below 0); each later cell counts one mean cell time,
    /// or, before any cell finished, this cell's projected time (elapsed + remaining).
    pub fn sweep_eta_s(&self, elapsed_s: f64, cell_eta_s: Option<f64>, done: bool) -> Option<f64> {
        let remaining =
            if done { Some(0.0) } else { cell_eta_s.or(self.mean_done_cell_s.map(|m| (m - elapsed_s).max(0.0))) }?;
        let per_cell = self.mean_done_cell_s.unwrap_or(elapsed_s + remaining);
        Some(remaining + per_cell * self.cells_after as f64)
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
        self.emitter.emit(Event::SweepProgress(snapshot));
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
    fn sweep_eta_counts_the_cells_left_even_before_this_cell_has_an_eta() {
        // The case: one cell done in 40 s, the last cell warming up (no own ETA yet).
        let last = EtaBasis { mean_done_cell_s: Some(40.0), cells_after: 0 };
        assert_eq!(last.sweep_eta_s(10.0, None, false), Some(30.0));
        // Two more cells after this one: 30 s left here + 2 × 40 s.
        let mid = EtaBasis { mean_done_cell_s: Some(40.0), cells_after: 2 };
        assert_eq!(mid.sweep_eta_s(10.0, None, false), Some(110.0));
        // The cell's own per-request ETA wins over the mean.
        assert_eq!(mid.sweep_eta_s(10.0, Some(5.0), false), Some(85.0));
        // Over the mean and no own ETA yet: 0 for this cell, the later cells still count.
        assert_eq!(mid.sweep_eta_s(50.0, None, false), Some(80.0));
        // A finished cell leaves only the later ones.
        assert_eq!(mid.sweep_eta_s(45.0, None, true), Some(80.0));
    }

    #[test]
    fn before_any_cell_finished_this_cells_projection_is_the_cell_time() {
        let first = EtaBasis { mean_done_cell_s: None, cells_after: 3 };
        assert_eq!(first.sweep_eta_s(10.0, None, false), None, "nothing measured yet");
        assert_eq!(first.sweep_eta_s(10.0, Some(20.0), false), Some(20.0 + 30.0 * 3.0));
    }
}
