//! The `GlobalAlloc` shim.
//!
//! # How the allocation path stays safe to run under any code
//!
//! * It never allocates: arena memory comes from the address space
//!   (`mmap`), and bookkeeping lives inside arena chunks.
//! * It never unwinds: there is no `panic!`, and arithmetic that could
//!   overflow in a debug build is written with `wrapping_*`. The fast paths
//!   index nothing. The slow paths index only fixed-size arrays (an arena's
//!   lanes, a lane's segment stack, the checkpoint list) below a length that
//!   never exceeds the array's size, so those bounds checks cannot fail.
//!   Internal invariant failures call `sys::fatal`, which writes a message
//!   and aborts; in debug builds, `debug_assert!`s on the bump invariants
//!   abort the same way (a panic cannot unwind out of an allocator).
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
use crate::route;
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
    unsafe fn alloc_slow(
        &self,
        route: *const Lane,
        layout: Layout,
        zeroed: bool,
        grows: bool,
    ) -> *mut u8 {
        let size = layout.size();
        // SAFETY: the route is the lane of this thread's newest region, which
        // this thread holds (or a spill-only lane, which is never written).
        let lane = unsafe { &*route };
        // SAFETY: as above; the lane zeroes the block if asked.
        let p = unsafe { lane.alloc_slow(size, layout.align(), zeroed, grows) };
        if !p.is_null() {
            return p;
        }
        route::count_inner(size);
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

/// Frees an arena block that is not in the top segment of the current
/// route's chunk.
///
/// # Safety
/// `ptr` is a live arena block of `size` bytes (`space::owns(ptr)` holds),
/// which the caller gives up.
#[inline(never)]
unsafe fn arena_free_slow(ptr: *mut u8, size: usize) {
    // SAFETY: `owns(ptr)` holds (caller contract).
    let chunk = unsafe { space::chunk_of(ptr) };
    if chunk.is_null() {
        sys::fatal("dealloc of an arena address that is not part of a live chunk (double free?)");
    }
    // SAFETY: a non-null table entry is a live chunk; its lane outlives its
    // live blocks.
    let lane = unsafe { (*chunk).owner.load(core::sync::atomic::Ordering::Acquire) }.cast::<Lane>();
    if lane.is_null() {
        sys::fatal("dealloc of an arena address in a free chunk (double free?)");
    }
    // SAFETY: as above.
    if unsafe { (*lane).owner() } == route::tid() {
        // SAFETY: this thread holds the lane's claim.
        unsafe { (*lane).free_local(ptr, size) };
    } else {
        // The block becomes a node of the lane's list, which holds it by the
        // chunk's pointer: the caller's covers only the block's own bytes.
        let node = chunk.cast::<u8>().with_addr(ptr.addr());
        // SAFETY: the block at `ptr` is a live block of `lane`, in `chunk`.
        unsafe { Lane::free_remote(lane, ptr, node, size) };
    }
}

/// Frees an arena block.
///
/// # Safety
/// As for [`arena_free_slow`].
#[inline(always)]
pub(crate) unsafe fn arena_free(ptr: *mut u8, size: usize) {
    let route = route::route();
    // SAFETY: the route lane is held by this thread (or spill-only, with an
    // empty range); `ptr` is a live arena block (caller contract).
    if !route.is_null() && unsafe { (*route).try_free_fast(ptr, size) } {
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
        let route = route::route();
        if route.is_null() {
            // SAFETY: forwarded caller contract.
            return unsafe { self.inner.alloc(layout) };
        }
        // SAFETY: the route lane is held by this thread (or spill-only, with
        // a null bump pointer, so nothing is written).
        let p = unsafe { (*route).try_alloc(layout.size(), layout.align()) };
        if !p.is_null() {
            return p;
        }
        // SAFETY: forwarded caller contract.
        unsafe { self.alloc_slow(route, layout, false, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let route = route::route();
        if route.is_null() {
            // SAFETY: forwarded caller contract.
            return unsafe { self.inner.alloc_zeroed(layout) };
        }
        // SAFETY: as in `alloc`.
        let lane = unsafe { &*route };
        // SAFETY: as in `alloc`.
        let p = unsafe { lane.try_alloc(layout.size(), layout.align()) };
        if !p.is_null() {
            // SAFETY: `p` is the block just allocated from this lane.
            unsafe { lane.zero_fresh(p, layout.size()) };
            return p;
        }
        // SAFETY: forwarded caller contract.
        unsafe { self.alloc_slow(route, layout, true, false) }
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
        let route = route::route();
        if !space::owns(ptr) {
            // A heap block stays on the heap, whatever region is active.
            if !route.is_null() {
                route::count_inner(new_size);
            }
            // SAFETY: not an arena address, so the inner allocator made it.
            return unsafe { self.inner.realloc(ptr, layout, new_size) };
        }
        if !route.is_null() {
            // SAFETY: the route lane is held by this thread (or spill-only,
            // which owns no block); `ptr` is a live arena block.
            let resized = unsafe {
                let lane = &*route;
                // In place only inside a region of the block's own lane.
                if lane.owns_block(ptr.addr()) {
                    lane.realloc_in_place(ptr, layout.size(), new_size)
                } else {
                    ptr::null_mut()
                }
            };
            if !resized.is_null() {
                return resized;
            }
        }
        // Move to wherever the current context allocates: a large block that
        // grows gets a chunk with room to grow in place next time.
        // SAFETY: `new_size` does not overflow when rounded to `layout.align()`
        // (GlobalAlloc::realloc contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = if !route.is_null() && new_size > layout.size() {
            // Straight to the slow path, which bumps as the fast one would
            // and gives a large block room (it never fits the fast path).
            // SAFETY: the route lane is held by this thread (or spill-only);
            // non-zero size (realloc contract).
            unsafe { self.alloc_slow(route, new_layout, false, true) }
        } else {
            // SAFETY: non-zero size (realloc contract).
            unsafe { self.alloc(new_layout) }
        };
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
