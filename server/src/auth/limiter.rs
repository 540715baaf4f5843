//! Failed logins limited per client address: after [`LoginLimiter::MAX_FAILURES`] wrong tokens
//! within [`LoginLimiter::WINDOW`], every further token from that address is answered 429 with
//! `Retry-After` (without being compared) until the oldest of those failures leaves the window.
//! Sans-I/O: the caller passes the instant, so tests need no clock.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong tokens per client address in a sliding window (see the module docs).
#[derive(Debug)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter { failures: Mutex::new(HashMap::new()) }
    }
}

impl LoginLimiter {
    /// Wrong tokens allowed per address within [`Self::WINDOW`].
    pub const MAX_FAILURES: usize = 5;
    pub const WINDOW: Duration = Duration::from_secs(60);
    /// Addresses tracked at most; beyond, those whose last failure is oldest are forgotten (a
    /// spoofing-free TCP peer needs a real address per entry, so this bounds memory, not safety).
    const MAX_CLIENTS: usize = 4096;

    /// `Err(retry_after)` while `ip` is limited.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut map = self.lock();
        let Some(times) = map.get_mut(&ip) else { return Ok(()) };
        prune(times, now);
        if times.len() >= Self::MAX_FAILURES {
            let oldest = times[times.len() - Self::MAX_FAILURES];
            return Err((oldest + Self::WINDOW).saturating_duration_since(now).max(Duration::from_secs(1)));
        }
        if times.is_empty() {
            map.remove(&ip);
        }
        Ok(())
    }

    /// Records a wrong token from `ip`.
    pub fn fail(&self, ip: IpAddr, now: Instant) {
        let mut map = self.lock();
        if map.len() >= Self::MAX_CLIENTS && !map.contains_key(&ip) {
            map.retain(|_, t| {
                prune(t, now);
                !t.is_empty()
            });
            if map.len() >= Self::MAX_CLIENTS
                && let Some(stalest) = map.iter().min_by_key(|(_, t)| t.back().copied()).map(|(k, _)| *k)
            {
                map.remove(&stalest);
            }
        }
        let times = map.entry(ip).or_default();
        prune(times, now);
        times.push_back(now);
        while times.len() > Self::MAX_FAILURES {
            times.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, VecDeque<Instant>>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn prune(times: &mut VecDeque<Instant>, now: Instant) {
    while times.front().is_some_and(|t| now.saturating_duration_since(*t) >= LoginLimiter::WINDOW) {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_a_minute_then_limited_until_the_oldest_expires() {
        let l = LoginLimiter::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(l.check(a, t0 + Duration::from_secs(i)), Ok(()), "attempt {i}");
            l.fail(a, t0 + Duration::from_secs(i));
        }
        // The 6th attempt, 10 s after the first failure: 50 s to wait.
        assert_eq!(l.check(a, t0 + Duration::from_secs(10)), Err(Duration::from_secs(50)));
        assert_eq!(l.check(b, t0 + Duration::from_secs(10)), Ok(()), "other addresses are not limited");
        // The first failure leaves the window at 60 s: one more attempt allowed.
        assert_eq!(l.check(a, t0 + Duration::from_secs(60)), Ok(()));
        l.fail(a, t0 + Duration::from_secs(60));
        assert_eq!(l.check(a, t0 + Duration::from_secs(60)), Err(Duration::from_secs(1)));
        assert_eq!(l.check(a, t0 + Duration::from_secs(200)), Ok(()));
    }

    #[test]
    fn memory_is_bounded() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..(LoginLimiter::MAX_CLIENTS as u32 + 100) {
            l.fail(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(l.lock().len() <= LoginLimiter::MAX_CLIENTS);
    }
}
