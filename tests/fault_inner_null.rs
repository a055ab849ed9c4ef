//! SAFETY.md §10, running out never fails; a null from the inner allocator
//! is passed on: an inner allocator that returns null sees null
//! propagated, so std reports an allocation error instead of bumper hiding
//! or mishandling it.

// The shared helpers only: this file installs its own global allocator.
mod common;

use bumper::{Arena, Bumper, is_arena_pointer, with_bumper};
use common::{Child, Expect, is_child};
use std::alloc::{GlobalAlloc, Layout, System, alloc, dealloc, realloc};
use std::cell::Cell;

thread_local! {
    static FAIL: Cell<bool> = const { Cell::new(false) };
}

/// `System`, except that it returns null while `FAIL` is set on the thread.
struct Failing;

// SAFETY: every method forwards to the wrapped allocator with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Failing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if FAIL.with(Cell::get) {
            std::ptr::null_mut()
        } else {
            // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
            unsafe { System.alloc(layout) }
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if FAIL.with(Cell::get) {
            std::ptr::null_mut()
        } else {
            // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
            unsafe { System.alloc_zeroed(layout) }
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if FAIL.with(Cell::get) {
            std::ptr::null_mut()
        } else {
            // SAFETY: the caller's `GlobalAlloc` contract is forwarded unchanged.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

#[global_allocator]
static GLOBAL: Bumper<Failing> = Bumper::new(Failing);

fn failing<R>(f: impl FnOnce() -> R) -> R {
    FAIL.with(|c| c.set(true));
    let r = f();
    FAIL.with(|c| c.set(false));
    r
}

#[test]
fn null_from_the_inner_allocator_is_returned_outside_regions() {
    let layout = Layout::from_size_align(1000, 8).unwrap();
    // SAFETY: the layout has a non-zero size.
    let p = failing(|| unsafe { alloc(layout) });
    assert!(p.is_null());
    // SAFETY: the layout has a non-zero size.
    let q = unsafe { alloc(layout) };
    assert!(!q.is_null());
    // SAFETY: the block is live and was allocated with `layout`; the new size is non-zero.
    let r = failing(|| unsafe { realloc(q, layout, 5000) });
    assert!(r.is_null(), "a failed heap realloc was not reported");
    // SAFETY: the block was allocated with this layout and is not used afterwards.
    unsafe { dealloc(q, layout) }; // the original block is still valid
}

#[test]
fn null_from_a_spill_is_returned_inside_regions() {
    let arena = Arena::builder().capacity_limit(64 * 1024).build().unwrap();
    with_bumper(&arena, || {
        let layout = Layout::from_size_align(1 << 20, 8).unwrap(); // beyond the capacity: spills
        // SAFETY: the layout has a non-zero size.
        let p = failing(|| unsafe { alloc(layout) });
        assert!(p.is_null(), "a failed spill returned memory");
        // SAFETY: the layout has a non-zero size.
        let z = failing(|| unsafe { std::alloc::alloc_zeroed(layout) });
        assert!(z.is_null());
        // Large alignments go to the inner allocator too.
        let big_align = Layout::from_size_align(64, 1 << 20).unwrap();
        // SAFETY: the layout has a non-zero size.
        assert!(failing(|| unsafe { alloc(big_align) }).is_null());
        // A spill the inner allocator serves.
        let served = vec![5u8; 1 << 20];
        assert!(served.iter().all(|&b| b == 5));
    });
    let s = arena.stats();
    // Only what the inner allocator served counts as spilled; the three
    // nulls are failed spills.
    assert_eq!((s.spills, s.spilled_bytes), (1, 1 << 20));
    assert_eq!(s.failed_spills, 3);
}

#[test]
fn a_failed_move_out_of_the_arena_keeps_the_old_block() {
    let arena = Arena::new();
    let layout = Layout::from_size_align(100, 8).unwrap();
    // SAFETY: the layout has a non-zero size.
    let p = with_bumper(&arena, || unsafe { alloc(layout) });
    assert!(is_arena_pointer(p));
    // SAFETY: the pointer is to a live block at least that long.
    unsafe { p.write_bytes(0x5A, 100) };
    // Outside the region, growing moves the block to the inner allocator,
    // which fails: realloc must return null and leave the block untouched.
    // SAFETY: the block is live and was allocated with `layout`; the new size is non-zero.
    let r = failing(|| unsafe { realloc(p, layout, 10_000) });
    assert!(r.is_null());
    assert!(
        // SAFETY: the pointer is to a live block at least that long.
        unsafe { std::slice::from_raw_parts(p, 100) }
            .iter()
            .all(|&b| b == 0x5A)
    );
    assert_eq!(arena.stats().live_blocks, 1);
    // SAFETY: the block was allocated with this layout and is not used afterwards.
    unsafe { dealloc(p, layout) };
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn std_reports_the_allocation_error() {
    const NAME: &str = "std_reports_the_allocation_error";
    if is_child(NAME) {
        let arena = Arena::builder().capacity_limit(64 * 1024).build().unwrap();
        with_bumper(&arena, || {
            let v: Vec<u8> = failing(|| Vec::with_capacity(1 << 20));
            println!("unreachable: {}", v.capacity());
        });
        return;
    }
    let out = Child::new(NAME).run(Expect::Failure);
    assert!(
        out.stderr
            .contains("memory allocation of 1048576 bytes failed"),
        "{out}"
    );
    assert!(!out.stdout.contains("unreachable"), "{out}");
}
