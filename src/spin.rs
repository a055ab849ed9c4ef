//! A minimal spin lock for arena bookkeeping (checkpoint lists, lane
//! creation).
//!
//! It exists because the allocator path must not use `std::sync::Mutex`
//! (which may allocate or be held by code running under the allocator). The
//! lock is only ever held inside bumper's own short critical sections, which
//! never allocate, never call user code, and never wait for anything else, so
//! a thread spinning on it always makes progress.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

use crossbeam_utils::Backoff;

pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one thread at a time
// (acquire/release on `locked`), so sharing the lock is sound whenever the
// value may be sent between threads.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        let backoff = Backoff::new();
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            backoff.snooze();
        }
        SpinGuard { lock: self }
    }
}

impl<T> SpinLock<T> {
    /// Takes the lock without a guard, for the fork handlers, which hold
    /// locks across the `fork()` call. Pair it with [`SpinLock::force_unlock`].
    pub(crate) fn lock_raw(&self) {
        core::mem::forget(self.lock());
    }

    /// Releases a lock taken with [`SpinLock::lock_raw`].
    ///
    /// # Safety
    /// The calling thread must hold the lock through `lock_raw` (in a child
    /// process after `fork`, the forking thread counts as that thread), and
    /// no reference obtained under the lock may be used afterwards.
    pub(crate) unsafe fn force_unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }

    /// The protected value, for a thread that holds the lock through
    /// [`SpinLock::lock_raw`].
    pub(crate) fn data_ptr(&self) -> *mut T {
        self.value.get()
    }
}

pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the borrow unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}
