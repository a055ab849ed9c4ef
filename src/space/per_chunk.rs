//! The address space's backend under Miri: every chunk is an allocation of
//! its own, made when the chunk is taken and freed when it is given back.
//!
//! The reservation backend hands out chunks from one big mapping, so Miri
//! would see two blocks that overlap as parts of one valid allocation. Here
//! a chunk that goes back to the space is freed: a block of it that were
//! still in use would be a use after free for Miri, and a new chunk is a new
//! allocation (lanes keep no spare chunks under Miri, see `lane/spares.rs`).
//!
//! The ownership test scans a table of the live chunks: slow, and only for
//! Miri's small runs.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::alloc::System;

use super::class_for;
use crate::chunk::{self, ChunkHeader, HEADER, Owner, SLAB};
use crate::error::SpaceError;
use crate::stats::SpaceStats;

/// Live chunks at once.
const SLOTS: usize = 1024;

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: AtomicPtr<ChunkHeader> = AtomicPtr::new(ptr::null_mut());
#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicUsize = AtomicUsize::new(0);

/// The live chunks (null: a free slot), and their sizes: a lookup never
/// reads a header, which another thread may be freeing.
static CHUNKS: [AtomicPtr<ChunkHeader>; SLOTS] = [EMPTY; SLOTS];
static SIZES: [AtomicUsize; SLOTS] = [ZERO; SLOTS];
/// One more than the highest slot ever used.
static USED: AtomicUsize = AtomicUsize::new(0);
static IN_USE: AtomicUsize = AtomicUsize::new(0);

#[cfg(feature = "fault-injection")]
static REFUSE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Makes every later chunk request fail. For tests.
#[cfg(feature = "fault-injection")]
pub(crate) fn refuse_reservation() {
    REFUSE.store(true, Ordering::Release);
}

/// Accepted and ignored: chunks are allocations of their own.
pub(crate) fn configure(bytes: usize) -> Result<(), SpaceError> {
    if bytes < SLAB {
        return Err(SpaceError::TooSmall {
            requested: bytes as u64,
        });
    }
    Ok(())
}

/// Nothing to set up.
pub(crate) fn init() {}

/// The live chunk holding address `addr`, or null.
fn find(addr: usize) -> *mut ChunkHeader {
    let used = USED.load(Ordering::Acquire);
    for (slot, size) in CHUNKS[..used].iter().zip(&SIZES) {
        let c = slot.load(Ordering::Acquire);
        // Null: a free slot; 1: a slot being filled.
        if c.addr() > 1 && addr >= c.addr() && addr < c.addr() + size.load(Ordering::Relaxed) {
            return c;
        }
    }
    ptr::null_mut()
}

/// Whether `ptr` lies in a live chunk.
pub(crate) fn owns(ptr: *const u8) -> bool {
    !find(ptr.addr()).is_null()
}

/// The chunk containing `addr`, or null.
///
/// # Safety
/// None beyond the reservation backend's contract (`owns(addr)` holds).
pub(crate) unsafe fn chunk_of<T>(addr: *const T) -> *mut ChunkHeader {
    find(addr.addr())
}

pub(crate) fn stats() -> SpaceStats {
    SpaceStats {
        reserved: 0,
        in_use: IN_USE.load(Ordering::Relaxed) as u64,
        retained: 0,
        decommitted: 0,
        os_calls: 0,
        mmap_calls: 0,
        munmap_calls: 0,
        mprotect_calls: 0,
        madvise_calls: 0,
    }
}

/// Takes a chunk of at least `bytes` bytes for `owner`: a new allocation.
pub(crate) fn acquire(bytes: usize, owner: *mut Owner) -> *mut ChunkHeader {
    #[cfg(feature = "fault-injection")]
    if REFUSE.load(Ordering::Acquire) {
        return ptr::null_mut();
    }
    let Some(class) = class_for(bytes) else {
        return ptr::null_mut();
    };
    let size = SLAB << class as usize;
    let Ok(layout) = Layout::from_size_align(size, SLAB) else {
        return ptr::null_mut();
    };
    // SAFETY: a non-zero size.
    let chunk = unsafe { System.alloc_zeroed(layout) }.cast::<ChunkHeader>();
    if chunk.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: a fresh, zeroed allocation of `size` bytes that nothing else
    // refers to.
    unsafe {
        chunk::init_header(chunk, class as usize, HEADER);
        (*chunk).owner.store(owner, Ordering::Relaxed);
    }
    for (i, slot) in CHUNKS.iter().enumerate() {
        // Claim the slot with a dangling non-null marker, then publish the
        // size and the chunk.
        let claim = ptr::without_provenance_mut(1);
        if slot
            .compare_exchange(ptr::null_mut(), claim, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            SIZES[i].store(size, Ordering::Relaxed);
            slot.store(chunk, Ordering::Release);
            USED.fetch_max(i + 1, Ordering::AcqRel);
            IN_USE.fetch_add(size, Ordering::Relaxed);
            return chunk;
        }
    }
    // The table is full: no chunk (the caller spills).
    // SAFETY: the allocation made above, unused.
    unsafe { System.dealloc(chunk.cast(), layout) };
    ptr::null_mut()
}

/// Gives a chunk back: frees its allocation.
///
/// # Safety
/// `chunk` was acquired and is owned by the caller, which gives it up: no
/// block in it is live and nothing refers to its memory any more.
pub(crate) unsafe fn release(chunk: *mut ChunkHeader) {
    // SAFETY: guaranteed by the caller.
    let size = unsafe { (*chunk).size };
    for slot in &CHUNKS {
        if slot
            .compare_exchange(chunk, ptr::null_mut(), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            IN_USE.fetch_sub(size, Ordering::Relaxed);
            // SAFETY: allocated in `acquire` with this layout; the caller
            // gives it up.
            unsafe { System.dealloc(chunk.cast(), Layout::from_size_align_unchecked(size, SLAB)) };
            return;
        }
    }
    crate::sys::fatal("a chunk given back twice (internal error)");
}
