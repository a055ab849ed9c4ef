//! Shared test support: an inner allocator that counts the calls it gets,
//! per thread and process-wide.
#![allow(dead_code)]

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

/// `System`, counting every call it serves.
pub struct Counting;

fn bump(c: &'static std::thread::LocalKey<Cell<u64>>) {
    c.with(|v| v.set(v.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS);
        GLOBAL_ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS);
        GLOBAL_ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        assert!(
            !bumper::is_arena_pointer(ptr),
            "the inner allocator was asked to free an arena pointer"
        );
        bump(&FREES);
        GLOBAL_FREES.fetch_add(1, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        assert!(
            !bumper::is_arena_pointer(ptr),
            "the inner allocator was asked to realloc an arena pointer"
        );
        bump(&REALLOCS);
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

/// Fills `buf` with a pattern derived from `seed`.
pub fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

/// Checks that `buf` still holds the pattern of `seed`.
pub fn check(buf: &[u8], seed: u64) -> bool {
    let mut expect = vec![0u8; buf.len()];
    fill(&mut expect, seed);
    expect == buf
}

/// Installs the shim over the counting allocator in a test binary.
#[macro_export]
macro_rules! counting_shim {
    () => {
        #[global_allocator]
        static GLOBAL: bumper::Bumper<common::Counting> = bumper::Bumper::new(common::Counting);
    };
}
