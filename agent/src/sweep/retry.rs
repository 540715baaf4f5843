//! Per-request retries with the LLMBench backoff (1 s, 5 s, 15 s, 30 s).
//!
//! Waiting uses `tokio::time`, so tests run the whole schedule instantly under a paused clock.
//! Every retry is reported through a callback before the wait, so the sweep can show it as a
//! `sweep_progress` event with the delay (the terminal table counts it down).

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::EngineError;

/// The delays between attempts; `delays.len() + 1` attempts in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    pub delays: Vec<Duration>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { delays: [1, 5, 15, 30].map(Duration::from_secs).to_vec() }
    }
}

impl Backoff {
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }
}

/// A failed attempt that will be retried.
#[derive(Debug, Clone)]
pub struct RetryNotice<'a> {
    /// The attempt that failed (1-based).
    pub failed_attempt: u32,
    pub max_attempts: u32,
    pub delay: Duration,
    pub error: &'a EngineError,
}

impl RetryNotice<'_> {
    /// A one-line description for progress events.
    pub fn describe(&self) -> String {
        format!(
            "attempt {}/{} failed ({}); retrying in {} s",
            self.failed_attempt,
            self.max_attempts,
            self.error,
            self.delay.as_secs_f64()
        )
    }
}

/// How a retried call ended.
#[derive(Debug)]
pub enum Attempted<T> {
    Succeeded {
        value: T,
        attempts: u32,
    },
    /// Every attempt failed (or the error cannot be cured by retrying); the last error.
    Failed {
        error: EngineError,
        attempts: u32,
    },
    Cancelled,
}

/// Errors that another attempt cannot fix.
fn is_permanent(e: &EngineError) -> bool {
    matches!(e, EngineError::ModelNotFound { .. })
}

/// Runs `call` until it succeeds, the schedule is spent, or `cancel` fires.
pub async fn with_retries<T, F, Fut>(
    backoff: &Backoff,
    cancel: &CancellationToken,
    mut call: F,
    mut on_retry: impl FnMut(&RetryNotice<'_>),
) -> Attempted<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, EngineError>>,
{
    let max_attempts = backoff.max_attempts();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = tokio::select! {
            r = call() => r,
            _ = cancel.cancelled() => return Attempted::Cancelled,
        };
        let error = match result {
            Ok(value) => return Attempted::Succeeded { value, attempts: attempt },
            Err(e) => e,
        };
        let Some(&delay) = backoff.delays.get(attempt as usize - 1).filter(|_| !is_permanent(&error)) else {
            return Attempted::Failed { error, attempts: attempt };
        };
        on_retry(&RetryNotice { failed_attempt: attempt, max_attempts, delay, error: &error });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return Attempted::Cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn failing_until(n: u32, calls: &AtomicU32) -> impl Future<Output = Result<u32, EngineError>> + '_ {
        let i = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move { if i <= n { Err(EngineError::Http { status: 503, message: "busy".into() }) } else { Ok(i) } }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_on_the_schedule_then_succeeds() {
        let calls = AtomicU32::new(0);
        let mut delays = Vec::new();
        let start = tokio::time::Instant::now();
        let r = with_retries(
            &Backoff::default(),
            &CancellationToken::new(),
            || failing_until(3, &calls),
            |n| delays.push((n.failed_attempt, n.delay.as_secs())),
        )
        .await;
        assert!(matches!(r, Attempted::Succeeded { value: 4, attempts: 4 }), "{r:?}");
        assert_eq!(delays, vec![(1, 1), (2, 5), (3, 15)]);
        assert_eq!(start.elapsed(), Duration::from_secs(21));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_fourth_retry() {
        let calls = AtomicU32::new(0);
        let mut notices = 0;
        let start = tokio::time::Instant::now();
        let r = with_retries(
            &Backoff::default(),
            &CancellationToken::new(),
            || failing_until(99, &calls),
            |_| notices += 1,
        )
        .await;
        let Attempted::Failed { error, attempts } = r else { panic!("{r:?}") };
        assert_eq!(attempts, 5);
        assert_eq!(notices, 4);
        assert!(error.to_string().contains("503"));
        assert_eq!(start.elapsed(), Duration::from_secs(51));
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_model_is_not_retried_and_cancel_stops_the_wait() {
        let r: Attempted<()> = with_retries(
            &Backoff::default(),
            &CancellationToken::new(),
            || async { Err(EngineError::ModelNotFound { model: "x".into(), available: vec![] }) },
            |_| panic!("no retry expected"),
        )
        .await;
        assert!(matches!(r, Attempted::Failed { attempts: 1, .. }));
        let cancel = CancellationToken::new();
        let calls = AtomicU32::new(0);
        let r = with_retries(&Backoff::default(), &cancel, || failing_until(99, &calls), |_| cancel.cancel()).await;
        assert!(matches!(r, Attempted::Cancelled));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
