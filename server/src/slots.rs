//! Bounded slots whose idle holders make room for newcomers, oldest first.
//!
//! A cap that simply refuses newcomers (503) bounds memory but hands the server to whoever holds
//! the slots: 3,000 connections that never finish their request headers lock every real client
//! out until the header timeout fires, which is exactly what a slow-headers attack wants. Here a
//! slot is either **idle** (a connection waiting for request headers, a TLS handshake in
//! progress) or **busy** (a request whose headers arrived, being answered). At the cap a newcomer
//! takes the slot of the *oldest idle* holder, which is told to close; only when every slot is
//! busy is the newcomer refused. A request that arrives complete is read at once, becomes busy,
//! and is served; a flood of idle connections only ever evicts itself.
//!
//! Idle holders are kept in a `BTreeMap` ordered by when they became idle, so finding the oldest
//! is `O(log n)`; every operation is one short critical section.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// A bounded set of slots (see the module docs).
#[derive(Debug)]
pub struct Slots {
    cap: usize,
    inner: Mutex<Inner>,
    evicted: AtomicU64,
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Next id and next idle-order key (one counter serves both).
    counter: u64,
    /// Live slots by id.
    live: HashMap<u64, Holder>,
    /// Idle slots by the order they became idle (oldest first) → id.
    idle: BTreeMap<u64, u64>,
}

#[derive(Debug)]
struct Holder {
    /// `Some(key in idle)` while idle.
    idle_key: Option<u64>,
    /// Requests being answered (busy while > 0).
    busy: u32,
    evict: Arc<Notify>,
}

/// What [`Slots::admit`] decided.
#[derive(Debug)]
pub enum Admission {
    /// A slot (possibly taken from an idle holder, which was told to close).
    Admitted(Slot),
    /// Every slot is busy.
    Refused,
}

/// Counters of one [`Slots`] since it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotStats {
    /// Slots held now.
    pub open: usize,
    /// Of which idle.
    pub idle: usize,
    /// Idle holders closed to make room.
    pub evicted: u64,
    /// Newcomers refused because every slot was busy.
    pub refused: u64,
}

impl Slots {
    pub fn new(cap: usize) -> Arc<Slots> {
        Arc::new(Slots {
            cap: cap.max(1),
            inner: Mutex::new(Inner::default()),
            evicted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// A slot for a newcomer, which starts idle. At the cap the oldest idle holder is evicted
    /// (its [`Slot::evicted`] completes) and its slot given to the newcomer.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut inner = self.lock();
        if inner.live.len() >= self.cap {
            let Some((_, victim)) = inner.idle.pop_first() else {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Admission::Refused;
            };
            if let Some(h) = inner.live.remove(&victim) {
                // `notify_one` keeps a permit: the holder sees it even if not waiting yet.
                h.evict.notify_one();
            }
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        inner.counter += 1;
        let id = inner.counter;
        inner.idle.insert(id, id);
        let evict = Arc::new(Notify::new());
        inner.live.insert(id, Holder { idle_key: Some(id), busy: 0, evict: evict.clone() });
        Admission::Admitted(Slot { slots: self.clone(), id, evict })
    }

    pub fn stats(&self) -> SlotStats {
        let inner = self.lock();
        SlotStats {
            open: inner.live.len(),
            idle: inner.idle.len(),
            evicted: self.evicted.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the maps half-updated in a way that
        // matters more than refusing service would: keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn busy(&self, id: u64) {
        let mut inner = self.lock();
        let Some(h) = inner.live.get_mut(&id) else { return };
        h.busy += 1;
        if let Some(key) = h.idle_key.take() {
            inner.idle.remove(&key);
        }
    }

    fn done(&self, id: u64) {
        let mut inner = self.lock();
        inner.counter += 1;
        let key = inner.counter;
        let Some(h) = inner.live.get_mut(&id) else { return };
        h.busy = h.busy.saturating_sub(1);
        if h.busy == 0 && h.idle_key.is_none() {
            h.idle_key = Some(key);
            inner.idle.insert(key, id);
        }
    }

    fn release(&self, id: u64) {
        let mut inner = self.lock();
        if let Some(h) = inner.live.remove(&id)
            && let Some(key) = h.idle_key
        {
            inner.idle.remove(&key);
        }
    }
}

/// One held slot; released when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    evict: Arc<Notify>,
}

impl Slot {
    /// Completes when the slot was given to a newcomer: the holder must close now.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// Marks the slot busy until the returned guard is dropped (a request being answered).
    pub fn busy(&self) -> BusyGuard {
        self.slots.busy(self.id);
        BusyGuard { slots: self.slots.clone(), id: self.id }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.release(self.id);
    }
}

/// Keeps a slot busy while alive (see [`Slot::busy`]).
#[derive(Debug)]
pub struct BusyGuard {
    slots: Arc<Slots>,
    id: u64,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.slots.done(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(s: &Arc<Slots>) -> Slot {
        match s.admit() {
            Admission::Admitted(slot) => slot,
            Admission::Refused => panic!("refused"),
        }
    }

    fn is_evicted(slot: &Slot) -> bool {
        let fut = slot.evicted();
        let mut fut = std::pin::pin!(fut);
        let waker = std::task::Waker::noop();
        fut.as_mut().poll(&mut std::task::Context::from_waker(waker)).is_ready()
    }

    use std::future::Future;

    #[test]
    fn the_oldest_idle_holder_makes_room_and_busy_ones_are_kept() {
        let s = Slots::new(3);
        let a = admit(&s);
        let b = admit(&s);
        let c = admit(&s);
        let _busy_a = a.busy();
        // At the cap: a is busy, so b (the oldest idle) is evicted.
        let d = admit(&s);
        assert!(is_evicted(&b) && !is_evicted(&a) && !is_evicted(&c) && !is_evicted(&d));
        assert_eq!(s.stats(), SlotStats { open: 3, idle: 2, evicted: 1, refused: 0 });
        // b closing after its eviction frees nothing twice.
        drop(b);
        assert_eq!(s.stats().open, 3);
        // c became busy, then idle again: it is now younger than d, so d goes first.
        drop(c.busy());
        let e = admit(&s);
        assert!(is_evicted(&d) && !is_evicted(&c));
        let (_busy_c, _busy_e) = (c.busy(), e.busy());
        assert!(matches!(s.admit(), Admission::Refused), "every slot busy: refused");
        assert_eq!(s.stats(), SlotStats { open: 3, idle: 0, evicted: 2, refused: 1 });
        drop(a);
        drop(_busy_a);
        assert_eq!(s.stats().open, 2);
        let _f = admit(&s);
    }
}
