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
    // SAFETY: `with_lane` holds the lane for the call; the size is not zero.
    let p = with_lane(core, |lane| unsafe { bump(lane, layout, grows) });
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

/// Runs `f` with a lane of `core` held by the calling thread: the one an
/// active region of this thread holds, or one claimed for the call.
fn with_lane<R>(core: &ArenaCore, f: impl FnOnce(&Lane) -> R) -> R {
    let lane = core.enter(route::tid());
    // SAFETY: `enter` returned a lane of `core` for this thread.
    let lane = unsafe { &*lane };
    let r = f(lane);
    // SAFETY: ends the use begun by `enter` above, on the same thread.
    unsafe { core.exit(lane) };
    r
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

/// Resizes an arena block in place if `lane` owns it and allows it.
///
/// # Safety
/// The calling thread holds `lane`; `ptr` is a live block of `old` bytes.
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

unsafe fn in_place(lane: &Lane, ptr: NonNull<u8>, old: Layout, new: Layout) -> bool {
    let p = ptr.as_ptr();
    old.size() != 0
        && new.align() <= old.align()
        && space::owns(p)
        // SAFETY: guaranteed by the caller; `owns(p)` holds.
        && unsafe { lane.owns_block(p.addr()) && lane.realloc_in_place(p, old.size(), new.size()) }
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
        // SAFETY: the route is held by this thread; `ptr` is live.
        if !route.is_null() && unsafe { in_place(&*route, ptr, old, new) } {
            return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
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
                unsafe { free(ptr, layout) }
            }

            unsafe fn grow(
                &self,
                ptr: NonNull<u8>,
                old: Layout,
                new: Layout,
            ) -> Result<NonNull<[u8]>, AllocError> {
                // SAFETY: `with_lane` holds the lane; `ptr` is live.
                if with_lane(self.core_ref().0, |lane| unsafe {
                    in_place(lane, ptr, old, new)
                }) {
                    return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
                }
                let (core, grows) = (self.core_ref().0, new.size() > old.size());
                // SAFETY: forwarded caller contract.
                unsafe { moved(|l| explicit_allocate(core, l, grows), ptr, old, new) }
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
                unsafe { self.grow(ptr, old, new) }
            }
        }
    };
}

explicit_allocator!(Arena);
explicit_allocator!(LockedArena);
