//! `allocator_api2` handles: `&Arena` and `&LockedArena` as explicit
//! allocators (as bumpalo's `&Bump` is), and [`Current`], which asks the
//! current scope, like AllocArrays.jl's `AllocArray`.
//!
//! They work with or without the [`Bumper`](crate::Bumper) shim installed.
//! Deallocation is routed by who owns the pointer, as in the shim: arena
//! blocks go back to their arena (from any thread), anything else to the
//! global allocator. Growth happens in place when the block is the newest
//! of its lane and at or after the innermost checkpoint.
//!
//! When an arena cannot serve a request (past its capacity limit, an
//! alignment above 64 KiB, the address space exhausted), the handles fall
//! back to the global allocator with no region active (as
//! [`outside_regions`](crate::outside_regions) does), so that no other
//! arena's region serves it, and count it as a spill of the arena
//! (`ArenaStats::spills`).

use core::alloc::Layout;
use core::ptr::{self, NonNull};

use allocator_api2::alloc::{AllocError, Allocator};

use crate::arena::sealed::Sealed;
use crate::arena::{Arena, LockedArena};
use crate::arena_core::ArenaCore;
use crate::lane::Lane;
use crate::region::outside_regions;
use crate::route;
use crate::shim::arena_free;
use crate::space;

/// A zero-sized allocator that asks the current scope: the newest active
/// region's arena on this thread, or the global allocator outside regions.
/// The direct analogue of AllocArrays.jl's `AllocArray`, for code that takes
/// an allocator parameter, and for binaries that do not install the shim.
///
/// ```
/// use allocator_api2::vec::Vec;
/// use bumper::{is_arena_pointer, with_bumper, Arena, Current};
///
/// let arena = Arena::new();
/// let inside: Vec<u32, Current> = with_bumper(&arena, || {
///     let mut v = Vec::new_in(Current);
///     v.extend(0..100);
///     v
/// });
/// assert!(is_arena_pointer(inside.as_ptr()));
/// let mut outside = Vec::new_in(Current);
/// outside.push(1u8);
/// assert!(!is_arena_pointer(outside.as_ptr()));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Current;

/// A pointer to an empty block aligned for `layout`.
fn dangling(layout: Layout) -> NonNull<[u8]> {
    let p = ptr::without_provenance_mut::<u8>(layout.align());
    // SAFETY: an alignment is never 0.
    NonNull::slice_from_raw_parts(unsafe { NonNull::new_unchecked(p) }, 0)
}

fn block(p: *mut u8, len: usize) -> Result<NonNull<[u8]>, AllocError> {
    NonNull::new(p)
        .map(|p| NonNull::slice_from_raw_parts(p, len))
        .ok_or(AllocError)
}

/// Bump-allocates from `lane`, or returns null. `grows`: the block is the
/// new place of one that `grow` moves (see [`Lane::alloc_slow`]).
///
/// # Safety
/// The calling thread holds `lane` (or it is spill-only); the size is not
/// zero.
unsafe fn bump(lane: &Lane, layout: Layout, grows: bool) -> *mut u8 {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let p = lane.try_alloc(layout.size(), layout.align());
        if !p.is_null() {
            return p;
        }
        lane.alloc_slow(layout.size(), layout.align(), false, grows)
    }
}

/// What `Current::allocate` does, for a block that is the new place of a
/// moved one if `grows`.
fn current_allocate(layout: Layout, grows: bool) -> Result<NonNull<[u8]>, AllocError> {
    if layout.size() == 0 {
        return Ok(dangling(layout));
    }
    let route = route::route();
    if !route.is_null() {
        // SAFETY: the route is held by this thread (or spill-only).
        let lane = unsafe { &*route };
        // SAFETY: as above; the size is not zero.
        let p = unsafe { bump(lane, layout, grows) };
        if !p.is_null() {
            return block(p, layout.size());
        }
        return spill(lane.core_opt(), layout);
    }
    global(layout)
}

/// What an explicit handle's `allocate` does on `core`, for a block that is
/// the new place of a moved one if `grows`.
fn explicit_allocate(
    core: &ArenaCore,
    layout: Layout,
    grows: bool,
) -> Result<NonNull<[u8]>, AllocError> {
    if layout.size() == 0 {
        return Ok(dangling(layout));
    }
    let hold = Hold::new(core);
    // SAFETY: the lane is held by this thread; the size is not zero.
    let p = unsafe { bump(hold.lane, layout, grows) };
    drop(hold);
    if !p.is_null() {
        return block(p, layout.size());
    }
    spill(Some(core), layout)
}

/// The global allocator with no region active, for what no arena serves.
fn global(layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
    // SAFETY: the caller checked that the size is not zero.
    let p = outside_regions(|| unsafe { std::alloc::alloc(layout) });
    block(p, layout.size())
}

/// The fallback of a request `core` could not serve: counted as its spill.
fn spill(core: Option<&ArenaCore>, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
    let r = global(layout);
    if let Some(core) = core {
        core.record_spill(layout.size(), r.is_ok());
    }
    r
}

/// Frees a block that one of these handles returned.
///
/// # Safety
/// `ptr` was returned by a handle of this module with `layout`, and is given
/// up.
unsafe fn free(ptr: NonNull<u8>, layout: Layout) {
    if layout.size() == 0 {
        return;
    }
    let p = ptr.as_ptr();
    if space::owns(p) {
        // SAFETY: a live arena block of this size.
        unsafe { arena_free(p, layout.size()) }
    } else {
        // SAFETY: it came from `global` with this layout.
        unsafe { std::alloc::dealloc(p, layout) }
    }
}

/// Moves a block to a new one from `allocate`: the general case of growing
/// and shrinking.
///
/// # Safety
/// As for [`Allocator::grow`], with `new` at least as large as the bytes
/// kept.
unsafe fn moved(
    allocate: impl FnOnce(Layout) -> Result<NonNull<[u8]>, AllocError>,
    ptr: NonNull<u8>,
    old: Layout,
    new: Layout,
) -> Result<NonNull<[u8]>, AllocError> {
    let fresh = allocate(new)?;
    // SAFETY: both blocks are valid for the copied length and distinct; the
    // old one is given up afterwards (caller contract).
    unsafe {
        ptr::copy_nonoverlapping(
            ptr.as_ptr(),
            fresh.as_ptr().cast::<u8>(),
            old.size().min(new.size()),
        );
        free(ptr, old);
    }
    Ok(fresh)
}

/// `shrink` to zero bytes: frees the block and returns a dangling pointer,
/// as allocator_api2's `Global` does (a zero-size block is never memory).
/// Returns `None` for any other size.
///
/// # Safety
/// As for `Allocator::shrink`.
unsafe fn shrink_to_nothing(ptr: NonNull<u8>, old: Layout, new: Layout) -> Option<NonNull<[u8]>> {
    if new.size() != 0 {
        return None;
    }
    // SAFETY: the caller gives the block up (shrink contract).
    unsafe { free(ptr, old) };
    Some(dangling(new))
}

/// Resizes an arena block in place if `lane` owns it and allows it: the
/// resized block, with the provenance of its chunk (see
/// [`Lane::realloc_in_place`]).
///
/// # Safety
/// The calling thread holds `lane`; `ptr` is a live block of `old` bytes.
unsafe fn in_place(
    lane: &Lane,
    ptr: NonNull<u8>,
    old: Layout,
    new: Layout,
) -> Option<NonNull<[u8]>> {
    let p = ptr.as_ptr();
    if old.size() == 0 || new.align() > old.align() || !space::owns(p) {
        return None;
    }
    // SAFETY: guaranteed by the caller; `owns(p)` holds.
    let resized = unsafe {
        if !lane.owns_block(p.addr()) {
            return None;
        }
        lane.realloc_in_place(p, old.size(), new.size())
    };
    NonNull::new(resized).map(|r| NonNull::slice_from_raw_parts(r, new.size()))
}

// Every block is either arena memory (valid and not handed out again while
// live, exactly as for the shim) or from the global allocator.
// SAFETY: `deallocate`, `grow` and `shrink` route by who owns the pointer, so
// each block goes back where it came from; `Current` has no state.
unsafe impl Allocator for Current {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        current_allocate(layout, false)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: forwarded caller contract.
        unsafe { free(ptr, layout) }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if old.size() != 0 && !space::owns(ptr.as_ptr()) {
            // A heap block stays on the heap, whatever region is active (as
            // the shim's `realloc` does).
            if new.align() == old.align() {
                // SAFETY: a block of the global allocator with layout `old`
                // (it came from `global`); `new.size()` is not zero.
                let p = outside_regions(|| unsafe {
                    std::alloc::realloc(ptr.as_ptr(), old, new.size())
                });
                return block(p, new.size());
            }
            // SAFETY: forwarded caller contract.
            return unsafe { moved(global, ptr, old, new) };
        }
        let route = route::route();
        if !route.is_null()
            // SAFETY: the route is held by this thread; `ptr` is live.
            && let Some(r) = unsafe { in_place(&*route, ptr, old, new) }
        {
            return Ok(r);
        }
        let grows = new.size() > old.size();
        // SAFETY: forwarded caller contract.
        unsafe { moved(|l| current_allocate(l, grows), ptr, old, new) }
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded caller contract.
        if let Some(p) = unsafe { shrink_to_nothing(ptr, old, new) } {
            return Ok(p);
        }
        // SAFETY: the same contract as `grow`, with a smaller, non-zero
        // size.
        unsafe { self.grow(ptr, old, new) }
    }
}

macro_rules! explicit_allocator {
    ($ty:ident) => {
        // SAFETY: as for `Current`: arena blocks come from this arena's
        // lanes (held by the calling thread for the call), everything else
        // from the global allocator, and frees route by ownership. Copies of
        // the reference are the same allocator.
        unsafe impl Allocator for &$ty {
            fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
                explicit_allocate(self.core_ref().0, layout, false)
            }

            unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
                // SAFETY: forwarded caller contract.
                unsafe { explicit_free(self.core_ref().0, ptr, layout) }
            }

            unsafe fn grow(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, AllocError> {
                // SAFETY: forwarded caller contract.
                unsafe { explicit_resize(self.core_ref().0, ptr, old, new) }
            }

            unsafe fn shrink(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, AllocError> {
                // SAFETY: forwarded caller contract.
                if let Some(p) = unsafe { shrink_to_nothing(ptr, old, new) } {
                    return Ok(p);
                }
                // SAFETY: the same contract as `grow`, with a smaller,
                // non-zero size.
                unsafe { explicit_resize(self.core_ref().0, ptr, old, new) }
            }
        }
    };
}

/// What an explicit handle's `deallocate` does: an arena block is freed on
/// a lane of `core` held for the call (so that, outside a region too, a
/// block at the tip is handed back at once rather than queued as a free
/// from another thread), anything else goes to the global allocator.
///
/// # Safety
/// As for [`Allocator::deallocate`] on a handle of `core`.
unsafe fn explicit_free(core: &ArenaCore, ptr: NonNull<u8>, layout: Layout) {
    if layout.size() == 0 {
        return;
    }
    let p = ptr.as_ptr();
    if !space::owns(p) {
        // SAFETY: it came from `global` with this layout.
        unsafe { std::alloc::dealloc(p, layout) };
        return;
    }
    let route = route::route();
    // SAFETY: the route lane is held by this thread (or spill-only, with an
    // empty range); `p` is a live arena block (caller contract).
    if !route.is_null() && unsafe { (*route).try_free_fast(p, layout.size()) } {
        return;
    }
    // The route's lane did not take it: the arena's lane for this thread
    // (found again by `enter_for_call` if a region of this thread holds it).
    let hold = Hold::claim(core);
    // SAFETY: the lane is held by this thread; `p` is a live arena block of
    // this size, given up (caller contract).
    unsafe { free_on(hold.lane, p, layout.size()) };
}

/// Frees arena block `p` of `size` bytes while the calling thread holds
/// `lane`: at the tip if it is the lane's, by its owner's rules otherwise.
///
/// # Safety
/// The calling thread holds `lane`; `p` is a live arena block of `size`
/// bytes, given up.
#[inline(always)]
unsafe fn free_on(lane: &Lane, p: *mut u8, size: usize) {
    // SAFETY: guaranteed by the caller (`try_free_fast` only takes a block
    // of `lane`'s top piece; any other goes by its chunk's owner).
    unsafe {
        if !lane.try_free_fast(p, size) {
            arena_free(p, size);
        }
    }
}

/// What an explicit handle's `grow` and `shrink` do, under one hold of a
/// lane of `core`: in place if the block allows it, else a new block (a
/// bump, or a spill), a copy, and the old block's free.
///
/// # Safety
/// As for [`Allocator::grow`] (or `shrink` to a non-zero size) on a handle
/// of `core`.
unsafe fn explicit_resize(
    core: &ArenaCore,
    ptr: NonNull<u8>,
    old: Layout,
    new: Layout,
) -> Result<NonNull<[u8]>, AllocError> {
    let hold = Hold::new(core);
    let lane = hold.lane;
    // SAFETY: the lane is held by this thread; `ptr` is live.
    if let Some(r) = unsafe { in_place(lane, ptr, old, new) } {
        return Ok(r);
    }
    let fresh = if new.size() == 0 {
        dangling(new)
    } else {
        // SAFETY: the lane is held; the size is not zero.
        let p = unsafe { bump(lane, new, new.size() > old.size()) };
        match NonNull::new(p) {
            Some(p) => NonNull::slice_from_raw_parts(p, new.size()),
            None => spill(Some(core), new)?,
        }
    };
    // SAFETY: both blocks are valid for the copied length and distinct; the
    // old one is given up (caller contract).
    unsafe {
        ptr::copy_nonoverlapping(
            ptr.as_ptr(),
            fresh.as_ptr().cast::<u8>(),
            old.size().min(new.size()),
        );
        if old.size() != 0 {
            if space::owns(ptr.as_ptr()) {
                free_on(lane, ptr.as_ptr(), old.size());
            } else {
                std::alloc::dealloc(ptr.as_ptr(), old);
            }
        }
    }
    Ok(fresh)
}

/// A lane of an arena held by the calling thread for one call of an
/// explicit handle: the lane of the thread's newest region if that is a
/// region of the arena, or one claimed for the call (given back on drop).
struct Hold<'a> {
    core: &'a ArenaCore,
    lane: &'a Lane,
    claimed: bool,
}

impl<'a> Hold<'a> {
    #[inline(always)]
    fn new(core: &'a ArenaCore) -> Hold<'a> {
        if let Some(lane) = held_lane(core) {
            return Hold {
                core,
                lane,
                claimed: false,
            };
        }
        Hold::claim(core)
    }

    /// As [`Hold::new`], without looking at the route first.
    #[inline(always)]
    fn claim(core: &'a ArenaCore) -> Hold<'a> {
        let lane = core.enter_for_call(route::tid());
        Hold {
            core,
            // SAFETY: `enter_for_call` returned a lane of `core` (or its
            // spill lane), held by this thread until `exit`.
            lane: unsafe { &*lane },
            claimed: true,
        }
    }
}

impl Drop for Hold<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.claimed {
            // SAFETY: ends the use begun by `enter_for_call` in `new`, on
            // the same thread.
            unsafe { self.core.exit(self.lane) };
        }
    }
}

/// The lane of `core` that the current route holds, if the thread's newest
/// region is one of `core`'s: explicit calls inside it use it directly.
#[inline(always)]
fn held_lane(core: &ArenaCore) -> Option<&Lane> {
    let route = route::route();
    if route.is_null() {
        return None;
    }
    // SAFETY: the route is held by this thread (or spill-only, whose core
    // is none) for as long as its region, which outlasts this call.
    let lane = unsafe { &*route };
    lane.core_opt()
        .is_some_and(|c| ptr::eq(c, core))
        .then_some(lane)
}

explicit_allocator!(Arena);
explicit_allocator!(LockedArena);
