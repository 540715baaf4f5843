//! The one lock-poisoning policy of the project.
//!
//! A `std::sync::Mutex` is poisoned when a thread panicked while holding it. Everything we guard
//! is plain bookkeeping (queues, tables, the last status) that stays consistent at every `await`-
//! free step, so a panic elsewhere must not take the whole server down with it: the lock is
//! recovered and the panic itself is reported where it happened.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the guard from a poisoned lock.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_recovered() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
