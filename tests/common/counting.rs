//! The counting inner allocator: `System`, counting the calls it serves, per
//! thread and process-wide, and panicking if it is ever handed an arena
//! pointer (SAFETY.md §1: frees and reallocations are routed by who owns the
//! pointer). `counting_shim!()` installs bumper over it as the test binary's
//! global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static FREES: Cell<u64> = const { Cell::new(0) };
    static REALLOCS: Cell<u64> = const { Cell::new(0) };
}

static GLOBAL_ALLOCS: AtomicU64 = AtomicU64::new(0);
static GLOBAL_FREES: AtomicU64 = AtomicU64::new(0);
/// `realloc` calls with a new size of 0, which `GlobalAlloc::realloc`'s
/// contract forbids (they must never come).
static ZERO_REALLOCS: AtomicU64 = AtomicU64::new(0);

/// `System`, counting every call it serves.
pub struct Counting;

fn bump(c: &'static std::thread::LocalKey<Cell<u64>>) {
    c.with(|v| v.set(v.get() + 1));
}

// SAFETY: every method forwards to the wrapped allocator with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS);
        GLOBAL_ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS);
        GLOBAL_ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        assert!(
            !bumper::is_arena_pointer(ptr),
            "the inner allocator was asked to free an arena pointer"
        );
        bump(&FREES);
        GLOBAL_FREES.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        assert!(
            !bumper::is_arena_pointer(ptr),
            "the inner allocator was asked to realloc an arena pointer"
        );
        bump(&REALLOCS);
        if new_size == 0 {
            ZERO_REALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Calls the inner allocator got on this thread: (allocs, frees, reallocs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InnerCalls {
    pub allocs: u64,
    pub frees: u64,
    pub reallocs: u64,
}

pub fn inner_calls() -> InnerCalls {
    InnerCalls {
        allocs: ALLOCS.with(|c| c.get()),
        frees: FREES.with(|c| c.get()),
        reallocs: REALLOCS.with(|c| c.get()),
    }
}

/// Inner-allocator calls made on this thread while `f` runs.
pub fn count_inner<R>(f: impl FnOnce() -> R) -> (R, InnerCalls) {
    let before = inner_calls();
    let r = f();
    let after = inner_calls();
    (
        r,
        InnerCalls {
            allocs: after.allocs - before.allocs,
            frees: after.frees - before.frees,
            reallocs: after.reallocs - before.reallocs,
        },
    )
}

pub fn global_inner_frees() -> u64 {
    GLOBAL_FREES.load(Ordering::Relaxed)
}

/// `realloc` calls with a new size of 0 the inner allocator got (any thread).
pub fn zero_size_reallocs() -> u64 {
    ZERO_REALLOCS.load(Ordering::Relaxed)
}

/// Installs the shim over the counting allocator in a test binary.
#[macro_export]
macro_rules! counting_shim {
    () => {
        #[global_allocator]
        static GLOBAL: bumper::Bumper<$crate::common::counting::Counting> =
            bumper::Bumper::new($crate::common::counting::Counting);
    };
}
