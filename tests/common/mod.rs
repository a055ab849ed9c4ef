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

/// Step between consecutive pattern words.
const PATTERN_STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// The first pattern word of block `seed`.
#[inline]
fn pattern_base(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Word `w` (bytes `8w..8w + 8`, little-endian) of the pattern of block
/// `seed`. The pattern is addressable by offset, so a prefix of a block
/// keeps its pattern when the block is reallocated, and [`fill_raw`] and
/// [`check_raw`] work on any byte range without allocating. Every word of a
/// block differs, so a copy to the wrong offset is caught too.
#[inline]
pub fn pattern_word(seed: u64, w: usize) -> u64 {
    pattern_base(seed).wrapping_add((w as u64).wrapping_mul(PATTERN_STEP))
}

/// Writes the pattern of `seed` into bytes `from..to` of the block at `p`.
/// Never allocates.
///
/// # Safety
/// `p..p + to` must be valid for writes.
pub unsafe fn fill_raw(p: *mut u8, seed: u64, from: usize, to: usize) {
    let mut i = from;
    // Bytes up to the first whole word.
    while i < to && (!i.is_multiple_of(8) || i + 8 > to) {
        let byte = pattern_word(seed, i / 8).to_le_bytes()[i % 8];
        // SAFETY: `i < to` (caller contract).
        unsafe { p.add(i).write(byte) };
        i += 1;
    }
    // Whole words (the loop above stops only at a word boundary).
    let words = (to - i) / 8;
    let mut expect = pattern_word(seed, i / 8);
    for k in 0..words {
        // SAFETY: inside `from..to` (caller contract).
        unsafe {
            p.add(i + 8 * k)
                .cast::<u64>()
                .write_unaligned(expect.to_le())
        };
        expect = expect.wrapping_add(PATTERN_STEP);
    }
    i += 8 * words;
    while i < to {
        let byte = pattern_word(seed, i / 8).to_le_bytes()[i % 8];
        // SAFETY: `i < to` (caller contract).
        unsafe { p.add(i).write(byte) };
        i += 1;
    }
}

/// The first offset in `from..to` at which the block at `p` differs from the
/// pattern of `seed`, or `None`. Never allocates.
///
/// # Safety
/// `p..p + to` must be valid for reads.
pub unsafe fn check_raw(p: *const u8, seed: u64, from: usize, to: usize) -> Option<usize> {
    let byte_at = |i: usize| pattern_word(seed, i / 8).to_le_bytes()[i % 8];
    let mut i = from;
    while i < to && (!i.is_multiple_of(8) || i + 8 > to) {
        // SAFETY: `i < to` (caller contract).
        if unsafe { p.add(i).read() } != byte_at(i) {
            return Some(i);
        }
        i += 1;
    }
    let words = (to - i) / 8;
    let mut expect = pattern_word(seed, i / 8).to_le();
    let step = PATTERN_STEP;
    let q = p.wrapping_add(i);
    if q.addr().is_multiple_of(8) {
        // SAFETY: aligned, inside `from..to` (caller contract).
        let ws = unsafe { core::slice::from_raw_parts(q.cast::<u64>(), words) };
        for (k, &x) in ws.iter().enumerate() {
            if x != expect {
                let at = i + 8 * k;
                // SAFETY: `j` is inside the checked range (caller contract).
                return (at..at + 8).find(|&j| unsafe { p.add(j).read() } != byte_at(j));
            }
            expect = u64::from_le(expect).wrapping_add(step).to_le();
        }
    } else {
        for k in 0..words {
            // SAFETY: inside `from..to` (caller contract).
            if unsafe { q.add(8 * k).cast::<u64>().read_unaligned() } != expect {
                let at = i + 8 * k;
                return (at..at + 8).find(|&j| unsafe { p.add(j).read() } != byte_at(j));
            }
            expect = u64::from_le(expect).wrapping_add(step).to_le();
        }
    }
    i += 8 * words;
    while i < to {
        // SAFETY: `i < to` (caller contract).
        if unsafe { p.add(i).read() } != byte_at(i) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The first non-zero byte in the `len` bytes at `p`, or `None`. Never
/// allocates.
///
/// # Safety
/// `p..p + len` must be valid for reads.
pub unsafe fn first_nonzero(p: *const u8, len: usize) -> Option<usize> {
    let mut i = 0;
    while i + 8 <= len {
        // SAFETY: `i + 8 <= len` (caller contract).
        if unsafe { p.add(i).cast::<u64>().read_unaligned() } != 0 {
            break;
        }
        i += 8;
    }
    // SAFETY: `i..len` lies inside the range (caller contract).
    (i..len).find(|&k| unsafe { p.add(k).read() } != 0)
}
