//! The `GlobalAlloc` shim.
//!
//! # How the allocation path stays safe to run under any code
//!
//! * It never allocates: arena memory comes from the address space
//!   (`mmap`), and bookkeeping lives inside arena chunks.
//! * It never unwinds: there is no `panic!`, no indexing that can fail, and
//!   arithmetic that could overflow in a debug build is written with
//!   `wrapping_*`. Internal invariant failures call `sys::fatal`, which
//!   writes a message and aborts.
//! * It takes no `std::sync` lock. The fast path touches only the current
//!   thread's lane. Slow paths may take an arena's spin lock, which is only
//!   ever held inside bumper's own short critical sections that neither
//!   allocate nor call user code, so it cannot be held by code running under
//!   the allocator.
//! * Routing of `dealloc` and `realloc` is by *ownership of the pointer*
//!   ([`space::owns`]), never by which region is active.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;
use std::alloc::System;

use crate::lane::Lane;
use crate::scope;
use crate::space;
use crate::sys;

/// The global allocator shim.
///
/// Outside any region every call goes to the inner allocator `A`. Inside
/// [`with_bumper`](crate::with_bumper), the current thread's allocations are
/// bump-allocated from the region's arena. Frees and reallocations are routed
/// by who owns the pointer, whatever region is active.
///
/// ```
/// use bumper::Bumper;
///
/// #[global_allocator]
/// static GLOBAL: Bumper = Bumper::system();
///
/// let v = vec![1, 2, 3]; // no region: served by the system allocator
/// assert_eq!(v.len(), 3);
/// ```
///
/// Any other `GlobalAlloc` can be the inner allocator:
///
/// ```
/// use bumper::Bumper;
/// use std::alloc::System;
///
/// static SHIM: Bumper<System> = Bumper::new(System);
/// # let _ = &SHIM;
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Bumper<A = System> {
    inner: A,
}

impl Bumper<System> {
    /// A shim over the system allocator.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: bumper::Bumper = bumper::Bumper::system();
    /// ```
    pub const fn system() -> Self {
        Bumper { inner: System }
    }
}

impl<A> Bumper<A> {
    /// A shim over `inner`, which serves everything outside regions and
    /// whatever an arena cannot hold.
    ///
    /// ```
    /// use bumper::Bumper;
    /// use std::alloc::System;
    ///
    /// #[global_allocator]
    /// static GLOBAL: Bumper<System> = Bumper::new(System);
    /// ```
    pub const fn new(inner: A) -> Self {
        Bumper { inner }
    }

    /// The inner allocator.
    ///
    /// ```
    /// use bumper::Bumper;
    ///
    /// let shim = Bumper::system();
    /// let _system: &std::alloc::System = shim.inner();
    /// ```
    #[must_use]
    pub const fn inner(&self) -> &A {
        &self.inner
    }
}

impl<A: GlobalAlloc> Bumper<A> {
    /// Everything a region's allocation needs beyond a bump in the current
    /// chunk: a new chunk, or a spill to the inner allocator. Out of line, so
    /// that the paths calling it stay free of register saves.
    #[inline(never)]
    unsafe fn alloc_slow(&self, route: *const Lane, layout: Layout, zeroed: bool) -> *mut u8 {
        let size = layout.size();
        // SAFETY: a route lane is claimed by this thread for the region (or
        // is a spill-only lane, which is never written).
        let lane = unsafe { &*route };
        let p = lane.alloc_slow(size, layout.align());
        if !p.is_null() {
            if zeroed {
                lane.zero_fresh(p, size);
            }
            return p;
        }
        scope::count_inner(size);
        // SAFETY: the caller's layout contract carries over.
        let p = unsafe {
            if zeroed {
                self.inner.alloc_zeroed(layout)
            } else {
                self.inner.alloc(layout)
            }
        };
        if let Some(core) = lane.core_opt() {
            core.record_spill(size, !p.is_null());
        }
        p
    }
}

/// Frees an arena block (`space::owns(ptr)` holds) that is not in the top
/// segment of the current route's chunk.
#[inline(never)]
unsafe fn arena_free_slow(ptr: *mut u8, size: usize) {
    let chunk = space::chunk_of(ptr);
    if chunk.is_null() {
        sys::fatal("dealloc of an arena address that is not part of a live chunk (double free?)");
    }
    // SAFETY: a non-null table entry is a live chunk; its lane outlives its
    // live blocks.
    let lane = unsafe { (*chunk).lane.load(core::sync::atomic::Ordering::Acquire) };
    if lane.is_null() {
        sys::fatal("dealloc of an arena address in a free chunk (double free?)");
    }
    // SAFETY: as above.
    if unsafe { (*lane).owner() } == scope::tid() {
        // SAFETY: this thread holds the lane's claim.
        unsafe { (*lane).free_local(ptr, size) };
    } else {
        // SAFETY: the block at `ptr` is a live block of `lane`.
        unsafe { Lane::free_remote(lane, ptr, size) };
    }
}

/// Frees an arena block (`space::owns(ptr)` holds).
#[inline(always)]
unsafe fn arena_free(ptr: *mut u8, size: usize) {
    let route = scope::route();
    // SAFETY: a route lane is claimed by this thread for the region.
    if !route.is_null() && unsafe { &*route }.try_free_fast(ptr, size) {
        return;
    }
    // SAFETY: forwarded caller contract.
    unsafe { arena_free_slow(ptr, size) }
}

// Every method either forwards to the inner allocator with the caller's
// arguments, or serves the request from an arena chunk: memory in the
// reserved space that is committed, aligned as asked (bump pointers are
// aligned up to `layout.align()`, at most `MAX_ALIGN`, and chunks are aligned
// to it) and at least `layout.size()` bytes long.
// SAFETY: arena memory is not handed out again while live (a reset reclaims
// it only once every block above the checkpoint is freed), and
// `dealloc`/`realloc` decide by address which allocator owns a pointer, so
// each block goes back to the allocator that produced it.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Bumper<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let route = scope::route();
        if route.is_null() {
            // SAFETY: forwarded caller contract.
            return unsafe { self.inner.alloc(layout) };
        }
        // SAFETY: a route lane is claimed by this thread for the region.
        let p = unsafe { &*route }.try_alloc(layout.size(), layout.align());
        if !p.is_null() {
            return p;
        }
        // SAFETY: forwarded caller contract.
        unsafe { self.alloc_slow(route, layout, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let route = scope::route();
        if route.is_null() {
            // SAFETY: forwarded caller contract.
            return unsafe { self.inner.alloc_zeroed(layout) };
        }
        // SAFETY: a route lane is claimed by this thread for the region.
        let lane = unsafe { &*route };
        let p = lane.try_alloc(layout.size(), layout.align());
        if !p.is_null() {
            lane.zero_fresh(p, layout.size());
            return p;
        }
        // SAFETY: forwarded caller contract.
        unsafe { self.alloc_slow(route, layout, true) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !space::owns(ptr) {
            // SAFETY: not an arena address, so the inner allocator made it.
            unsafe { self.inner.dealloc(ptr, layout) };
            return;
        }
        // SAFETY: an arena address handed out by this shim.
        unsafe { arena_free(ptr, layout.size()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let route = scope::route();
        if !space::owns(ptr) {
            // A heap block stays on the heap, whatever region is active.
            if !route.is_null() {
                scope::count_inner(new_size);
            }
            // SAFETY: not an arena address, so the inner allocator made it.
            return unsafe { self.inner.realloc(ptr, layout, new_size) };
        }
        if !route.is_null() {
            // SAFETY: a route lane is claimed by this thread.
            let lane = unsafe { &*route };
            // In place only inside a region of the block's own lane.
            if lane.owns_block(ptr.addr()) && lane.realloc_in_place(ptr, layout.size(), new_size) {
                return ptr;
            }
        }
        // Move to wherever the current context allocates.
        // SAFETY: `new_size` does not overflow when rounded to `layout.align()`
        // (GlobalAlloc::realloc contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: non-zero size (realloc contract).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the copied length and distinct.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                arena_free(ptr, layout.size());
            }
        }
        new
    }
}
