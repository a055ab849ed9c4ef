//! The registry of live cores, and the `fork()` handlers that use it.
//!
//! Without the handlers, a thread inside a checkpoint, a reset or `stats()`
//! at the moment another thread forks leaves a lock (or a short lane claim)
//! taken in the child by a thread that does not exist there, and the child
//! hangs in its next region or allocation that needs it. The handlers hold
//! every core's lock across `fork()`, as malloc implementations do with their
//! own locks, so the child starts with every lock free and every checkpoint
//! list and lane consistent. Lanes held by other threads' regions stay held
//! in the child; those threads do not exist there, so their lanes are simply
//! busy for good (regions take or create other lanes, resets skip them, and
//! dropping the arena keeps it), which is safe.

use core::ptr;
use core::sync::atomic::Ordering;

use super::ArenaCore;
use crate::spin::{SpinGuard, SpinLock};

/// Every live core, linked through `ArenaCore::registry_next`, so that the
/// fork handlers can hold every core's lock across `fork()` (see
/// `crate::fork`). The lock also covers the space's initialisation.
static REGISTRY: SpinLock<Registry> = SpinLock::new(Registry(ptr::null()));

pub(super) struct Registry(*const ArenaCore);
// SAFETY: the pointer is only followed under the registry lock, and the cores
// it reaches are `Sync`.
unsafe impl Send for Registry {}

impl ArenaCore {
    /// Adds a fully built core to the registry.
    pub(super) fn register(this: *mut ArenaCore) {
        let mut reg = REGISTRY.lock();
        let head = reg.0.cast_mut();
        // SAFETY: `this` is a live core not yet in the registry; `head`, if
        // any, is a live core in it; both links are only used under the lock.
        unsafe {
            (*this).registry_next.store(head, Ordering::Relaxed);
            if !head.is_null() {
                (*head).registry_prev.store(this, Ordering::Relaxed);
            }
        }
        reg.0 = this;
    }

    /// Removes a core from the registry, before it is destroyed.
    pub(super) fn unregister(this: *const ArenaCore) {
        let mut reg = REGISTRY.lock();
        // SAFETY: `this` is in the registry, so it and its neighbours are
        // live cores; the links are only used under the lock.
        unsafe {
            let prev = (*this).registry_prev.load(Ordering::Relaxed);
            let next = (*this).registry_next.load(Ordering::Relaxed);
            if prev.is_null() {
                reg.0 = next;
            } else {
                (*prev).registry_next.store(next, Ordering::Relaxed);
            }
            if !next.is_null() {
                (*next).registry_prev.store(prev, Ordering::Relaxed);
            }
        }
    }

    /// Before `fork()`: takes the registry lock and then every live core's
    /// lock, and keeps them, so that no thread is inside one of bumper's
    /// critical sections (checkpoint list, lane creation, a reset's or a
    /// snapshot's short lane claims, the space's initialisation) while the
    /// process is copied. A critical section never takes a second lock, so
    /// waiting for each in turn cannot deadlock.
    fn lock_all_for_fork() {
        REGISTRY.lock_raw();
        crate::sites::lock_for_fork();
        // SAFETY: this thread holds the registry lock until `unlock_all_after_fork`.
        let mut c = unsafe { (*REGISTRY.data_ptr()).0 };
        while !c.is_null() {
            // SAFETY: cores in the registry are live, and none can be
            // destroyed while the registry lock is held.
            unsafe {
                (*c).checkpoints.lock_raw();
                c = (*c).registry_next.load(Ordering::Relaxed);
            }
        }
    }

    /// After `fork()`, in the parent and in the child: releases what
    /// [`ArenaCore::lock_all_for_fork`] took. In the child, the forking thread
    /// is the only thread, and it holds every one of these locks.
    ///
    /// # Safety
    /// The calling thread must have called `lock_all_for_fork` (or be the
    /// child-process copy of the thread that did), with no call in between.
    unsafe fn unlock_all_after_fork() {
        // SAFETY: this thread holds the registry lock (caller contract).
        let mut c = unsafe { (*REGISTRY.data_ptr()).0 };
        while !c.is_null() {
            // SAFETY: as in `lock_all_for_fork`; this thread holds the lock.
            unsafe {
                (*c).checkpoints.force_unlock();
                c = (*c).registry_next.load(Ordering::Relaxed);
            }
        }
        // SAFETY: `lock_all_for_fork` took the sites lock too.
        unsafe { crate::sites::unlock_after_fork() };
        // SAFETY: as above.
        unsafe { REGISTRY.force_unlock() };
    }
}

/// Takes the registry lock, which also covers the space's initialisation.
pub(super) fn lock() -> SpinGuard<'static, Registry> {
    REGISTRY.lock()
}

/// Registers the `fork()` handlers, once per process. Called under the
/// registry lock when an arena is created.
pub(super) fn install_fork_handlers() {
    #[cfg(not(miri))]
    fork::install();
}

#[cfg(not(miri))]
mod fork {
    use core::sync::atomic::{AtomicBool, Ordering};

    use super::ArenaCore;

    static INSTALLED: AtomicBool = AtomicBool::new(false);

    pub(super) fn install() {
        if INSTALLED.swap(true, Ordering::AcqRel) {
            return;
        }
        // SAFETY: the handlers are `extern "C"` functions that live for the
        // whole process. A failure (ENOMEM) only leaves fork unprotected, as
        // it was before; it is not worth aborting for.
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(after), Some(after));
        }
    }

    extern "C" fn prepare() {
        ArenaCore::lock_all_for_fork();
    }

    extern "C" fn after() {
        // SAFETY: `prepare` ran on this thread just before `fork()` returned
        // here (in the parent, or in the child as its copy).
        unsafe { ArenaCore::unlock_all_after_fork() };
    }
}
