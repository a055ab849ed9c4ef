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
/// protocol in `lane/claim.rs`) or, while the chunk is free, by the space.
///
/// A chunk is in exactly one list at a time, linked through `prev` (and
/// `next` where the list is doubly linked): its lane's chain (oldest to
/// newest), its lane's spares, its lane's side chunks, or the space's free
/// list (`free_next`).
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
    /// While the chunk is free: whether its memory is still committed (kept
    /// for reuse) rather than given back to the OS.
    pub(crate) resident: Cell<bool>,
    /// The chunk holds one large block of its lane, outside the lane's bump
    /// chain (see `lane/side.rs`).
    pub(crate) side: Cell<bool>,
    /// Marks (checkpoints and escape floors, see `lane/marks.rs`) that lie
    /// in this chunk of a lane's chain.
    pub(crate) marks: Cell<u32>,
    /// Offset from the chunk start from which the memory is known to be zero.
    pub(crate) clean_from: Cell<usize>,
    /// Offset of the first byte available for blocks (`HEADER`, or more for a
    /// chunk that also hosts an arena's own bookkeeping).
    pub(crate) start: Cell<usize>,
    /// Offset from which the pages are protected by guard mode; `size` when
    /// none are.
    pub(crate) guarded_from: Cell<usize>,
    /// In a lane's chain: the chunk's sequence number there (chunks taken
    /// later have larger ones; never reused by the lane). For a side chunk:
    /// the newest checkpoint serial the lane knew when its block was
    /// allocated.
    pub(crate) seq: Cell<u64>,
    /// The older neighbour in the chunk's list (chain, spares, side chunks).
    pub(crate) prev: Cell<*mut ChunkHeader>,
    /// The newer neighbour in a lane's chain or side list.
    pub(crate) next: Cell<*mut ChunkHeader>,
    /// End offset of the used part while the chunk is not the lane's current
    /// one (for a side chunk: the end of its block).
    pub(crate) fill: Cell<usize>,
    /// Live blocks of the chunk's first *piece*: from its first data byte to
    /// its first mark (or its end). See `lane/pieces.rs`.
    pub(crate) live: Cell<u64>,
    /// Bytes (rounded to the 8-byte granule) of those blocks.
    pub(crate) bytes: Cell<u64>,
    /// The owning lane's reset epoch in which the chunk was last taken into
    /// use: trimming gives back the spares the last loop did not use first.
    pub(crate) used_in: Cell<u64>,
    /// For a side chunk of a tracking arena: the block's allocation site.
    pub(crate) side_site: Cell<u32>,
    /// While the chunk is in use (in its lane's chain or a side chunk): what
    /// it counts for in the lane's need (see `lane/spares.rs`).
    pub(crate) counted: Cell<usize>,
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
            resident: Cell::new(true),
            side: Cell::new(false),
            marks: Cell::new(0),
            clean_from: Cell::new(clean_from),
            start: Cell::new(HEADER),
            guarded_from: Cell::new(SLAB << class),
            seq: Cell::new(0),
            prev: Cell::new(ptr::null_mut()),
            next: Cell::new(ptr::null_mut()),
            fill: Cell::new(HEADER),
            live: Cell::new(0),
            bytes: Cell::new(0),
            used_in: Cell::new(0),
            side_site: Cell::new(0),
            counted: Cell::new(0),
        })
    };
}
