//! `fork()` safety: `pthread_atfork` handlers that hold every arena's lock
//! across the call, as malloc implementations do with their own locks.
//!
//! Without them, a thread inside a checkpoint, a reset or `stats()` at the
//! moment another thread forks leaves a lock (or a short lane claim) taken
//! in the child by a thread that does not exist there, and the child hangs
//! in its next region or allocation that needs it. With them, the child
//! starts with every lock free and every checkpoint list and lane consistent.
//! Lanes held by other threads' regions stay held in the child; those
//! threads do not exist there, so their lanes are simply busy for good
//! (regions take or create other lanes, resets skip them, and dropping the
//! arena keeps it), which is safe.

use crate::arena_core::ArenaCore;

/// Registers the handlers, once per process. Called under the registry lock
/// when an arena is created.
pub(crate) fn install_handlers() {
    #[cfg(not(miri))]
    imp::install();
}

#[cfg(not(miri))]
mod imp {
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
