//! The CPU race: π(n) by a segmented sieve on `threads` OS threads, each taking the next segment
//! from a shared counter, so fast cores do more and the answer does not depend on scheduling.
//!
//! The counting runs on blocking threads (never on the async runtime); the job's task reports
//! progress once a second as `compute_line` events and checks the answer against the
//! single-threaded reference for small `n` (tests) and against itself across repeats.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bench_shared::event::{ErrorKind, Event, JobError};
use bench_shared::workload::compute::{self, ComputeDone, ComputeJobDone, ComputeLine, ComputeSpec};
use tokio_util::sync::CancellationToken;

use crate::jobs::JobEvents;

/// How often a progress line is published.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Why a compute job ended without a result.
#[derive(Debug)]
pub enum Failure {
    Cancelled,
    Error(JobError),
}

struct Shared {
    next: AtomicU64,
    done: AtomicU64,
    primes: AtomicU64,
    stop: AtomicBool,
}

/// Counts π(n) on `threads` threads; `None` when `stop` was raised. Returns the count and the
/// monotonic time it took, ms.
fn count_threaded(n: u64, threads: u32, shared: &Shared) -> Option<(u64, f64)> {
    let t0 = Instant::now();
    let base = compute::base_primes(compute::isqrt(n));
    let segments = compute::segments(n);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut scratch = Vec::with_capacity(compute::SEGMENT as usize);
                let mut local = 0;
                loop {
                    if shared.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = shared.next.fetch_add(1, Ordering::Relaxed);
                    if i >= segments {
                        break;
                    }
                    local += compute::count_segment(i, n, &base, &mut scratch);
                    shared.done.fetch_add(1, Ordering::Relaxed);
                }
                shared.primes.fetch_add(local, Ordering::Relaxed);
            });
        }
    });
    let wall_ms = t0.elapsed().as_secs_f64() * 1000.0;
    (!shared.stop.load(Ordering::Relaxed)).then(|| (shared.primes.load(Ordering::Relaxed), wall_ms))
}

/// Runs every repeat of `spec`, publishing `compute_line` and `compute_done`.
pub async fn run(spec: ComputeSpec, events: &JobEvents, cancel: &CancellationToken) -> Result<ComputeJobDone, Failure> {
    let line = |repeat_index: u32, line: String| events.emit(Event::ComputeLine(ComputeLine { line, repeat_index }));
    let mut done: Vec<ComputeDone> = Vec::new();
    for r in 0..spec.repeat {
        line(
            r,
            format!(
                "Compute: count primes ≤ {} on {} thread(s), repeat {}/{}",
                spec.n,
                spec.threads,
                r + 1,
                spec.repeat
            ),
        );
        let shared = Arc::new(Shared {
            next: AtomicU64::new(0),
            done: AtomicU64::new(0),
            primes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let (n, threads) = (spec.n, spec.threads);
        let worker = {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || count_threaded(n, threads, &shared))
        };
        tokio::pin!(worker);
        let total = compute::segments(n).max(1);
        let started = Instant::now();
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
        let outcome = loop {
            tokio::select! {
                res = &mut worker => break res,
                _ = cancel.cancelled() => {
                    shared.stop.store(true, Ordering::Relaxed);
                    let _ = (&mut worker).await;
                    return Err(Failure::Cancelled);
                }
                _ = tick.tick() => {
                    let pct = 100.0 * shared.done.load(Ordering::Relaxed) as f64 / total as f64;
                    line(r, format!("Progress: {pct:.0}% | elapsed: {:.1} s", started.elapsed().as_secs_f64()));
                }
            }
        };
        let (result, wall_ms) = match outcome {
            Ok(Some(v)) => v,
            Ok(None) => return Err(Failure::Cancelled),
            Err(e) => {
                return Err(Failure::Error(JobError {
                    kind: ErrorKind::Internal,
                    message: format!("the counting threads failed: {e}"),
                    repeat_index: Some(r),
                }));
            }
        };
        if let Some(first) = done.first()
            && first.result != result
        {
            return Err(Failure::Error(JobError {
                kind: ErrorKind::Internal,
                message: format!(
                    "repeat {r} counted {result} primes, repeat 0 counted {}: this machine computes wrongly",
                    first.result
                ),
                repeat_index: Some(r),
            }));
        }
        let d = ComputeDone::new(r, n, threads, result, wall_ms);
        line(
            r,
            format!(
                "Primes: {result} | elapsed: {:.3} s | {:.3e} integers/s",
                wall_ms / 1000.0,
                d.ops_per_s.unwrap_or(0.0)
            ),
        );
        events.emit(Event::ComputeDone(d.clone()));
        done.push(d);
    }
    Ok(ComputeJobDone::from_repeats(&spec, &done))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_agree_with_the_reference() {
        for threads in [1, 3, 8] {
            let shared = Shared {
                next: AtomicU64::new(0),
                done: AtomicU64::new(0),
                primes: AtomicU64::new(0),
                stop: AtomicBool::new(false),
            };
            let (count, wall_ms) = count_threaded(2_000_003, threads, &shared).unwrap();
            assert_eq!(count, compute::count_primes(2_000_003), "{threads} threads");
            assert!(wall_ms > 0.0);
        }
    }

    #[test]
    fn a_raised_stop_gives_no_result() {
        let shared = Shared {
            next: AtomicU64::new(0),
            done: AtomicU64::new(0),
            primes: AtomicU64::new(0),
            stop: AtomicBool::new(true),
        };
        assert!(count_threaded(1_000_000, 2, &shared).is_none());
    }
}
