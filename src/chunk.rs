//! The chunk header: the metadata at the start of every chunk of the address
//! space, and the sizes the space is cut into. The chunk's owner (a lane) is
//! opaque here, so that the space does not depend on the layers above it.

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64};

/// log2 of the slab size.
pub(crate) const SLAB_SHIFT: u32 = 16;
/// Slab size: the granularity of ownership lookups and the smallest chunk.
pub(crate) const SLAB: usize = 1 << SLAB_SHIFT;
/// Bytes at the start of every chunk reserved for its [`ChunkHeader`].
pub(crate) const HEADER: usize = 128;
/// What a chunk header's `owner` points to: a lane, which this layer does not
/// know. The lane layer casts.
pub(crate) enum Owner {}

/// Metadata at the start of every chunk.
///
/// `owner` and `free_next` are shared between threads. The `Cell` fields are
/// owned by whichever thread currently holds the chunk's lane (see the claim
/// protocol in `lane.rs`) or, while the chunk is free, by the space.
#[repr(C)]
pub(crate) struct ChunkHeader {
    /// The lane this chunk belongs to, opaque at this layer; null while the
    /// chunk is free.
    pub(crate) owner: AtomicPtr<Owner>,
    /// Free-list link: slab index + 1 of the next free chunk, 0 for none.
    pub(crate) free_next: AtomicU64,
    /// Total size of the chunk in bytes, header included.
    pub(crate) size: usize,
    /// Size class: `size == SLAB << class`.
    pub(crate) class: u8,
    /// Offset from the chunk start from which the memory is known to be zero.
    pub(crate) clean_from: Cell<usize>,
    /// Offset of the first byte available for blocks (`HEADER`, or more for a
    /// chunk that also hosts an arena's own bookkeeping).
    pub(crate) start: Cell<usize>,
    /// Offset from which the pages are protected by guard mode; `size` when
    /// none are.
    pub(crate) guarded_from: Cell<usize>,
    /// Logical position (in its lane) of the first data byte.
    pub(crate) base_pos: Cell<u64>,
    /// Previous chunk in the lane's chain.
    pub(crate) prev: Cell<*mut ChunkHeader>,
    /// End offset of the used part while the chunk is not the lane's current one.
    pub(crate) fill: Cell<usize>,
    /// While the chunk is free: whether its memory is still committed (kept
    /// for reuse) rather than given back to the OS.
    pub(crate) resident: Cell<bool>,
    /// The chunk holds one large block of its lane, outside the lane's bump
    /// chain (see `lane/side.rs`).
    pub(crate) side: Cell<bool>,
    /// For a side chunk: the lane's list of side chunks (`prev` is the other
    /// link), and the newest checkpoint serial the lane knew when the block
    /// was allocated.
    pub(crate) side_next: Cell<*mut ChunkHeader>,
    pub(crate) side_serial: Cell<u64>,
    /// For a side chunk of a tracking arena: the block's allocation site.
    pub(crate) side_site: Cell<u32>,
    /// The owning lane's reset epoch in which the chunk was last taken into
    /// use: trimming gives back the spares the last loop did not use first.
    pub(crate) used_in: Cell<u64>,
}

const _: () = assert!(core::mem::size_of::<ChunkHeader>() <= HEADER);

impl ChunkHeader {
    /// Address of the first byte available for blocks.
    ///
    /// # Safety
    /// `this` must point to a live chunk header.
    #[inline]
    pub(crate) unsafe fn data(this: *mut ChunkHeader) -> usize {
        // SAFETY: guaranteed by the caller.
        this as usize + unsafe { (*this).start.get() }
    }

    /// Address one past the chunk's last byte.
    ///
    /// # Safety
    /// `this` must point to a live chunk header.
    #[inline]
    pub(crate) unsafe fn end(this: *mut ChunkHeader) -> usize {
        // SAFETY: guaranteed by the caller.
        this as usize + unsafe { (*this).size }
    }
}

/// Writes a fresh header for a free chunk of size class `class`, whose
/// memory is known to be zero from offset `clean_from`.
///
/// # Safety
/// `chunk` must be the start of `SLAB << class` committed, writable bytes
/// of the reservation that nothing else refers to.
pub(crate) unsafe fn init_header(chunk: *mut ChunkHeader, class: usize, clean_from: usize) {
    // SAFETY: guaranteed by the caller; the header fits in the first
    // `HEADER` bytes.
    unsafe {
        chunk.write(ChunkHeader {
            owner: AtomicPtr::new(ptr::null_mut()),
            free_next: AtomicU64::new(0),
            size: SLAB << class,
            class: class as u8,
            clean_from: Cell::new(clean_from),
            start: Cell::new(HEADER),
            guarded_from: Cell::new(SLAB << class),
            base_pos: Cell::new(0),
            prev: Cell::new(ptr::null_mut()),
            fill: Cell::new(HEADER),
            resident: Cell::new(true),
            side: Cell::new(false),
            side_next: Cell::new(ptr::null_mut()),
            side_serial: Cell::new(0),
            side_site: Cell::new(0),
            used_in: Cell::new(0),
        })
    };
}
