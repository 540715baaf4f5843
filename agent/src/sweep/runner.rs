//! Runs one (model, ctx, par) cell: warm-up, calibration, recorded requests.

use std::sync::Arc;
use std::time::Duration;

use bench_shared::event::Event;
use bench_shared::sweep::{CellState, SweepProgress, SweepSpec};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::cache::{self, CachedCalibration, CalibrationCache};
use super::calibrate::{Calibrator, MAX_CALIBRATION_CALLS, Start};
use super::csv_out::CsvFile;
use super::json_map;
use super::progress::{Emitter, EtaBasis, Tracker};
use super::prompt::{self, NonceSource};
use super::retry::{Attempted, Backoff, with_retries};
use super::rows::{CallRecord, RequestRow, RowContext, RunMode, row_from_call};
use super::summary::{CellKey, LoadRow, SummaryRow, summary_row, warmup_fields};
use super::{SweepError, wall_now_s};
use crate::engine::{Engine, GenRequest, TextChunk, TokenSink};

/// The open CSV files of a sweep.
#[derive(Debug)]
pub struct Csvs {
    pub requests: CsvFile<RequestRow>,
    pub summary: CsvFile<SummaryRow>,
    pub load_times: CsvFile<LoadRow>,
}

/// One cell of the grid.
#[derive(Debug, Clone)]
pub struct Cell {
    pub model: String,
    pub ctx: u32,
    pub par: u32,
    pub index: usize,
    pub cells_total: usize,
    /// What the sweep ETA is projected from.
    pub eta: EtaBasis,
}

/// What the cells share.
#[derive(Debug)]
pub struct Runner {
    pub engine: Arc<dyn Engine>,
    pub spec: SweepSpec,
    pub backoff: Backoff,
    pub cancel: CancellationToken,
    pub emitter: Emitter,
    pub cache: CalibrationCache,
    pub nonces: NonceSource,
}

/// How often the live token rate is sampled while recorded requests run.
const LIVE_RATE_INTERVAL: Duration = Duration::from_secs(1);

/// Per-cell constants used by every call.
struct CallShape<'a> {
    model: &'a str,
    num_ctx: u32,
}

impl Runner {
    /// One call (streaming or not) with retries; `None` when the sweep was cancelled.
    async fn call(
        &self,
        tracker: &Tracker,
        shape: &CallShape<'_>,
        filler_chars: usize,
        mode: RunMode,
        max_tokens: u32,
        sink: Option<&TokenSink>,
    ) -> Option<CallRecord> {
        let make = || {
            let req = GenRequest {
                model: shape.model.to_owned(),
                // A fresh nonce per attempt: a retry must not hit the prompt cache either.
                prompt: prompt::prompt(self.nonces.next(), filler_chars),
                max_tokens,
                temperature: self.spec.temperature,
                num_ctx: shape.num_ctx,
                seed: None,
                stream: mode == RunMode::Stream,
                timeout: Duration::from_secs_f64(self.spec.timeout_s),
                send_at: None,
            };
            async move { self.engine.generate(&req, sink).await }
        };
        let result = match with_retries(&self.backoff, &self.cancel, make, |n| tracker.retrying(n)).await {
            Attempted::Succeeded { value, attempts } => (Ok(value), attempts),
            Attempted::Failed { error, attempts } => (Err(error), attempts),
            Attempted::Cancelled => return None,
        };
        Some(CallRecord { mode, result: result.0, attempts: result.1, timestamp: wall_now_s() })
    }

    async fn write_row(&self, csvs: &mut Csvs, row: &RequestRow) -> Result<(), SweepError> {
        csvs.requests.write_async(row).await?;
        self.emitter.emit(Event::SweepRow(json_map(row)));
        Ok(())
    }

    /// Runs the cell and writes its rows; returns its summary and load-time rows.
    pub async fn run_cell(&self, csvs: &mut Csvs, cell: &Cell) -> Result<(SummaryRow, LoadRow), SweepError> {
        let spec = &self.spec;
        let target = spec.prompt_target(cell.ctx);
        let shape = CallShape { model: &cell.model, num_ctx: spec.num_ctx(cell.ctx) };
        let row_ctx = RowContext {
            engine: self.engine.kind(),
            model: cell.model.clone(),
            ctx: cell.ctx,
            par: cell.par,
            target_prompt_tokens: target,
        };
        let key = CellKey {
            engine: self.engine.kind(),
            model: cell.model.clone(),
            ctx: cell.ctx,
            par: cell.par,
            runs: spec.runs,
            target_prompt_tokens: target,
        };
        let basis = cell.eta;
        let tracker = Tracker::with_basis(
            SweepProgress {
                model: cell.model.clone(),
                ctx: cell.ctx,
                par: cell.par,
                cell_index: cell.index,
                cells_total: cell.cells_total,
                state: CellState::WarmingUp,
                warmup_total: spec.warmup,
                requests_total: spec.runs * cell.par,
                ..Default::default()
            },
            self.emitter.clone(),
            basis,
        );
        let result = self.measure(csvs, &tracker, &shape, &row_ctx, &key).await;
        if matches!(result, Err(SweepError::Cancelled)) {
            tracker.phase(CellState::Cancelled);
        }
        result
    }

    async fn measure(
        &self,
        csvs: &mut Csvs,
        tracker: &Tracker,
        shape: &CallShape<'_>,
        row_ctx: &RowContext,
        key: &CellKey,
    ) -> Result<(SummaryRow, LoadRow), SweepError> {
        let spec = &self.spec;
        let target = key.target_prompt_tokens;
        tracker.phase(CellState::WarmingUp);

        // Warm-up: sequential streaming calls at the cached (or estimated) prompt size.
        let cache_key = cache::key(self.engine.kind(), self.engine.base_url(), &key.model, target);
        let cached = self.cache.get_async(&cache_key).await;
        let start = match &cached {
            Some(c) => Start::Cached { filler_chars: c.filler_chars },
            None => Start::Estimate { chars_per_token: spec.chars_per_token_est },
        };
        let mut cal = Calibrator::new(target, spec.calibration_tolerance, start, prompt::prefix_len());
        let warm_chars = cal.filler_chars();
        let mut ttfts = Vec::new();
        let mut warm_prompt_tokens = None;
        for i in 0..spec.warmup {
            let rec = self
                .call(tracker, shape, warm_chars, RunMode::Stream, spec.out_tokens, None)
                .await
                .ok_or(SweepError::Cancelled)?;
            let row = row_from_call(row_ctx, i, 0, true, &rec, None);
            self.write_row(csvs, &row).await?;
            ttfts.extend(row.ttft_s.filter(|_| row.ok()));
            warm_prompt_tokens = warm_prompt_tokens.or(row.prompt_tokens);
            tracker.update(|p| p.warmup_done = i + 1);
        }

        // Calibration: seeded from the warm-ups; extra non-streaming calls only when they missed.
        tracker.phase(CellState::Calibrating);
        let mut within = warm_prompt_tokens.is_some_and(|t| cal.observe(warm_chars, t));
        let mut calls = 0;
        while !within && !cal.unreachable() && calls < MAX_CALIBRATION_CALLS {
            let chars = cal.filler_chars();
            let rec =
                self.call(tracker, shape, chars, RunMode::Nonstream, 1, None).await.ok_or(SweepError::Cancelled)?;
            calls += 1;
            match rec.result.ok().and_then(|o| o.stats.prompt_tokens) {
                Some(tokens) => within = cal.observe(chars, tokens),
                // The engine reports no prompt tokens (or keeps failing): nothing to calibrate on.
                None => break,
            }
            tracker.update(|p| p.detail = Some(format!("calibration call {calls}")));
        }
        // The observation closest to the target (the one within tolerance when there is one).
        let (filler_chars, achieved) = match cal.best() {
            Some((chars, tokens)) => (chars, Some(tokens)),
            None => (cal.filler_chars(), None),
        };
        let prompt_chars = prompt::prefix_len() + filler_chars;
        let chars_per_token = achieved.filter(|t| *t > 0).map(|t| prompt_chars as f64 / t as f64);
        if within && cached.as_ref().map(|c| c.filler_chars) != Some(filler_chars) {
            let entry = CachedCalibration {
                filler_chars,
                prompt_tokens: achieved.unwrap_or(0),
                chars_per_token: chars_per_token.unwrap_or(spec.chars_per_token_est),
                updated_at_s: wall_now_s(),
            };
            if let Err(e) = self.cache.put_async(&cache_key, entry).await {
                tracing::warn!(path = %self.cache.path().display(), error = %e, "cannot store calibration");
            }
        }
        let mut load = LoadRow {
            engine: Some(key.engine),
            model: key.model.clone(),
            ctx: key.ctx,
            par: key.par,
            target_prompt_tokens: target,
            calibrated_prompt_tokens: achieved,
            calibration_within_tolerance: within,
            chars_per_token,
            prompt_chars,
            calibration_calls: calls,
            calibration_cache_hit: cached.is_some(),
            ..Default::default()
        };
        warmup_fields(&mut load, &ttfts);
        let (load_est_s, clamped) = (load.warmup_load_est_s, load.warmup_load_est_clamped);
        tracker.update(|p| {
            p.warmup_load_est_s = load_est_s;
            p.warmup_load_est_clamped = clamped;
        });

        // Recorded requests: per run, `par` concurrent logical requests (stream, then non-stream).
        tracker.phase(CellState::Running);
        let rows = self.recorded(csvs, tracker, shape, row_ctx, key, filler_chars).await?;
        let summary = summary_row(key, &rows, tracker.recorded_elapsed_s());
        csvs.summary.write_async(&summary).await?;
        csvs.load_times.write_async(&load).await?;
        tracker.phase(CellState::Done);
        Ok((summary, load))
    }

    async fn recorded(
        &self,
        csvs: &mut Csvs,
        tracker: &Tracker,
        shape: &CallShape<'_>,
        row_ctx: &RowContext,
        key: &CellKey,
        filler_chars: usize,
    ) -> Result<Vec<RequestRow>, SweepError> {
        let (sink, mut live_rx) = mpsc::unbounded_channel::<TextChunk>();
        let mut rows = Vec::new();
        let mut done = 0;
        let mut errors = 0;
        let mut tick = tokio::time::interval(LIVE_RATE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut last_tick = tokio::time::Instant::now();
        for run in 0..self.spec.runs {
            let mut slots: FuturesUnordered<_> = (0..key.par)
                .map(|slot| {
                    self.logical_request(tracker, shape, row_ctx, run * key.par + slot, slot, filler_chars, &sink)
                })
                .collect();
            loop {
                tokio::select! {
                    next = slots.next() => {
                        let Some(pair) = next else { break };
                        let (stream_row, nonstream_row) = pair.ok_or(SweepError::Cancelled)?;
                        self.write_row(csvs, &stream_row).await?;
                        self.write_row(csvs, &nonstream_row).await?;
                        done += 1;
                        errors += u32::from(!(stream_row.ok() && nonstream_row.ok()));
                        rows.push(stream_row);
                        rows.push(nonstream_row);
                        tracker.rows_changed(key, &rows, errors, |p| p.requests_done = done);
                    }
                    _ = tick.tick() => {
                        let mut chunks = 0u32;
                        while live_rx.try_recv().is_ok() {
                            chunks += 1;
                        }
                        let secs = last_tick.elapsed().as_secs_f64();
                        last_tick = tokio::time::Instant::now();
                        if secs > 0.0 {
                            tracker.update(|p| p.live_tok_s = Some(chunks as f64 / secs));
                        }
                    }
                }
            }
        }
        Ok(rows)
    }

    /// One logical request: a streaming call then a non-streaming call. `None` when cancelled.
    #[allow(clippy::too_many_arguments)]
    async fn logical_request(
        &self,
        tracker: &Tracker,
        shape: &CallShape<'_>,
        row_ctx: &RowContext,
        idx: u32,
        slot: u32,
        filler_chars: usize,
        sink: &TokenSink,
    ) -> Option<(RequestRow, RequestRow)> {
        let out_tokens = self.spec.out_tokens;
        let stream = self.call(tracker, shape, filler_chars, RunMode::Stream, out_tokens, Some(sink)).await?;
        let nonstream = self.call(tracker, shape, filler_chars, RunMode::Nonstream, out_tokens, None).await?;
        let usage = nonstream.result.as_ref().ok().map(|o| &o.stats);
        let stream_row = row_from_call(row_ctx, idx, slot, false, &stream, usage);
        let nonstream_row = row_from_call(row_ctx, idx, slot, false, &nonstream, None);
        Some((stream_row, nonstream_row))
    }
}
