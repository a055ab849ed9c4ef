//! A lane: the bump allocator of one thread inside an arena, with exact
//! live-block accounting.
//!
//! An [`Arena`](crate::Arena) has one lane; a [`LockedArena`](crate::LockedArena)
//! has one per thread that is inside a region of it at the same time, so that
//! threads never write to a shared cache line while they allocate.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | the lane's state; bumping, local frees and growth in place (the hot paths) |
//! | `claim.rs` | the owner claim: which thread may touch the owner-only state |
//! | `marks.rs` | the marks (checkpoints and floors) that cut chunks into pieces: pure bookkeeping |
//! | `pieces.rs` | live counts per piece: frees off the fast path, and giving back chunks that die |
//! | `chain.rs` | the chunk chain: moving to a new or spare chunk |
//! | `spares.rs` | the spare chunks and the retained capacity |
//! | `remote.rs` | frees from other threads: the lock-free remote list |
//! | `resets.rs` | checkpoints on this lane, resets and snapshots |
//! | `side.rs` | large blocks in chunks of their own |
//! | `tracked.rs` | allocation sites of blocks, for escape reports |
//!
//! # Ownership
//!
//! Only the thread holding the lane's claim (see `claim.rs`) reads or writes
//! the owner-only state: every `Cell`, the marks, and the `Cell`s of the
//! lane's chunk headers. Every method that touches it and is visible outside
//! this module is an `unsafe fn` whose safety contract is "owner only"; the
//! private helpers are called only from those. The fields other threads
//! touch (`owner`, `remote`) are atomics.
//!
//! # Liveness (SAFETY.md, "Reclamation")
//!
//! The lane's *chain* is the list of chunks it bumps through, oldest first;
//! the newest is the *current* chunk, where the bump pointer is. Marks
//! (`marks.rs`) cut each chunk into *pieces*, and every piece counts its live
//! blocks exactly; the *top piece* (the current chunk's last) keeps its
//! counts in the hot cells `top_live`/`top_bytes`. From those counts alone:
//!
//! - when the top piece holds no live block, the bump pointer goes back to
//!   where it starts (`floor`), at the free that emptied it;
//! - when any other chunk of the chain holds no live block, it leaves the
//!   chain at once (`pieces.rs`);
//! - a reset reclaims everything above its checkpoint's mark if nothing there
//!   is live, and otherwise everything above the highest live piece.
//!
//! A free finds its piece from the block's address alone (the chunk table,
//! then the chunk's marks), so nothing moves under a free from any thread.

use core::cell::{Cell, UnsafeCell};
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::arena_core::ArenaCore;
use crate::chunk::{ChunkHeader, SLAB};
use crate::space;

mod chain;
mod claim;
mod marks;
mod pieces;
mod remote;
mod resets;
mod side;
mod spares;
mod tracked;

pub(crate) use claim::Claim;
use marks::Marks;
pub(crate) use resets::LaneStats;
#[cfg(feature = "fault-injection")]
pub use resets::{ChunkInfo, ChunkKind};
pub(crate) use tracked::SiteTally;

/// Largest alignment served from an arena; larger requests spill.
pub(crate) const MAX_ALIGN: usize = SLAB;
/// Growth of a lane's chunks stops doubling at this size.
const MAX_CHUNK: usize = 64 << 20;
/// Resets whose needs decide the retained capacity (AutoscalingAllocBuffer's
/// window): a one-off spike is forgotten after this many resets.
const NEEDS: usize = 8;

/// Rounds a block size up to the 8-byte granule every block occupies.
#[inline(always)]
pub(crate) fn granule(n: usize) -> usize {
    n.wrapping_add(7) & !7
}

#[repr(C, align(128))]
pub(crate) struct Lane {
    // ---- hot: touched by every allocation or free (owner only) ----
    // The counters alternate with the other fields on purpose: adjacent, the
    // compiler packs their updates into vector adds, which take three times
    // the instructions of four plain adds to memory (callgrind, `small`).
    /// Next free byte; null when the lane has no chunk.
    bump: Cell<*mut u8>,
    /// Live blocks of the top piece (the current chunk from `floor` up).
    top_live: Cell<u64>,
    /// End of the usable part of the current chunk; 0 when there is none.
    limit: Cell<usize>,
    /// Bytes of those blocks.
    top_bytes: Cell<u64>,
    /// Blocks in the current chunk at or above this address belong to the
    /// top piece and are freed on the fast path: `floor`, or `usize::MAX` in
    /// a lane that records allocation sites (every free then marks a header).
    top_floor: Cell<usize>,
    /// Allocation requests served (allocations and reallocations).
    allocs: Cell<u64>,
    /// Highest value `bump` had since the peak was last noted (see
    /// [`Lane::note_peak`]): the memory below it may be dirty.
    high_water: Cell<usize>,
    /// Bytes requested by those calls.
    bytes: Cell<u64>,
    /// Requests of at least this many bytes get a chunk of their own (see
    /// `side.rs`): a quarter of the arena's chunk size. Immutable.
    large_from: usize,
    /// The fast path bumps only requests below this size: `large_from`, or
    /// 0 when the lane records allocation sites (every request then takes
    /// the slow path, see `tracked.rs`). Immutable.
    bump_max: usize,

    // ---- warm: slow paths (owner only) ----
    chunk: Cell<*mut ChunkHeader>,
    /// Address from which the current chunk was known to be zero.
    entry_clean: Cell<usize>,
    /// Where the top piece starts: the newest mark, if it lies in the current
    /// chunk, or the current chunk's first data byte.
    floor: Cell<usize>,
    /// Nesting depth of regions of the owning thread on this lane.
    depth: Cell<u32>,
    /// Highest checkpoint serial this lane has taken into account.
    seen_serial: Cell<u64>,
    /// Generation of the checkpoint list last synced with.
    seen_gen: Cell<u64>,
    /// The sequence number the next chunk to join the chain gets.
    next_seq: Cell<u64>,
    /// Chunks kept for reuse, holding no block (linked by `prev`), sorted
    /// by size (see `spares.rs`).
    spare: Cell<*mut ChunkHeader>,
    /// Their bytes.
    spare_bytes: Cell<usize>,
    /// The retained capacity (see `spares.rs`), set at each reset.
    retained: Cell<usize>,
    peak: Cell<u64>,
    /// Side chunks holding one live large block each (see `side.rs`),
    /// linked through `next`/`prev`.
    side: Cell<*mut ChunkHeader>,
    side_live: Cell<u64>,
    side_bytes: Cell<u64>,
    side_chunk_bytes: Cell<usize>,
    /// Bytes of the chunks in the chain.
    chain_bytes: Cell<usize>,
    /// Bytes used in the chunks of the chain below the current one (their
    /// `fill` past their `start`).
    below_used: Cell<u64>,
    /// The chunk memory in use now (chain and side chunks), each chunk
    /// counted as `ChunkHeader::counted` says.
    in_use: Cell<usize>,
    /// The chunk memory the loop since the last reset used: what was in use
    /// at that reset, plus each chunk taken into use since, once (see
    /// `spares.rs`): the need recorded at the next reset.
    touched: Cell<usize>,
    /// Resets so far, plus one: the loop a chunk was last used in
    /// (`used_in`; a new chunk's 0 is no loop's).
    epoch: Cell<u64>,
    /// The arena's chunk size: the smallest chunk a refill takes.
    base_chunk: usize,
    /// The needs of the last [`NEEDS`] resets (a ring), for the retained
    /// capacity.
    needs: [Cell<usize>; NEEDS],
    needs_next: Cell<usize>,
    marks: UnsafeCell<Marks>,

    // ---- shared ----
    owner: CachePadded<AtomicU64>,
    /// Blocks freed by other threads, linked through their own memory.
    remote: CachePadded<AtomicPtr<u8>>,

    // ---- immutable after construction ----
    core: *const ArenaCore,
    /// The chunk that hosts this lane's own memory (never given back to the
    /// space before the arena is destroyed); null when the lane lives in
    /// mapped memory.
    home: *mut ChunkHeader,
    /// A stand-in lane with no memory: every request spills.
    spill_only: bool,
    /// Records the allocation site of every block (`track_sites`).
    tracking: bool,
}

// The claim is transferred with acquire/release operations on `owner`; the
// spill-only lanes several threads use at once are never written through
// their `Cell`s.
// SAFETY: the owner-only fields (every `Cell`, the marks) are used only
// by the claim's holder (module docs); others touch only atomics.
unsafe impl Sync for Lane {}
// SAFETY: as above; a lane has no thread affinity beyond its claim.
unsafe impl Send for Lane {}

impl Lane {
    /// A lane with no memory yet. `chunk_size` is the arena's.
    pub(crate) const fn new(core: *const ArenaCore, chunk_size: usize, spill_only: bool) -> Lane {
        // A quarter of the chunk size and up is large (ArenaBuilder's docs).
        let large_from = if chunk_size / 4 > 8 {
            chunk_size / 4
        } else {
            8
        };
        Lane {
            bump: Cell::new(ptr::null_mut()),
            limit: Cell::new(0),
            top_floor: Cell::new(0),
            top_live: Cell::new(0),
            top_bytes: Cell::new(0),
            allocs: Cell::new(0),
            bytes: Cell::new(0),
            high_water: Cell::new(0),
            large_from,
            bump_max: large_from,
            chunk: Cell::new(ptr::null_mut()),
            entry_clean: Cell::new(0),
            floor: Cell::new(0),
            depth: Cell::new(0),
            seen_serial: Cell::new(0),
            seen_gen: Cell::new(0),
            next_seq: Cell::new(1),
            spare: Cell::new(ptr::null_mut()),
            spare_bytes: Cell::new(0),
            retained: Cell::new(0),
            peak: Cell::new(0),
            side: Cell::new(ptr::null_mut()),
            side_live: Cell::new(0),
            side_bytes: Cell::new(0),
            side_chunk_bytes: Cell::new(0),
            chain_bytes: Cell::new(0),
            below_used: Cell::new(0),
            in_use: Cell::new(0),
            touched: Cell::new(0),
            epoch: Cell::new(1),
            base_chunk: chunk_size,
            needs: [const { Cell::new(0) }; NEEDS],
            needs_next: Cell::new(0),
            marks: UnsafeCell::new(Marks::new()),
            owner: CachePadded::new(AtomicU64::new(0)),
            remote: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            core,
            home: ptr::null_mut(),
            spill_only,
            tracking: false,
        }
    }

    /// Writes a new lane at `place`. If `home` is not null, the lane starts
    /// bumping in it at `home.start`.
    ///
    /// # Safety
    /// `place` must be valid for writes of a `Lane` and suitably aligned, and
    /// stay valid until the arena is destroyed. `home`, if not null, must be a
    /// chunk acquired for this lane.
    pub(crate) unsafe fn init(
        place: *mut Lane,
        core: *const ArenaCore,
        home: *mut ChunkHeader,
        chunk_size: usize,
        spill_only: bool,
    ) {
        let mut lane = Lane::new(core, chunk_size, spill_only);
        lane.home = home;
        // SAFETY: the caller passes a fully written core.
        if !core.is_null() && unsafe { (*core).track_sites } {
            lane.tracking = true;
            lane.bump_max = 0;
        }
        // SAFETY: guaranteed by the caller.
        unsafe {
            place.write(lane);
            if !core.is_null() {
                (*place).retained.set((*place).retain_target());
            }
            if !home.is_null() {
                (*home).owner.store(place.cast(), Ordering::Release);
                (*place).join_chain(home, (*home).size);
            }
        }
    }

    #[inline(always)]
    pub(crate) fn core(&self) -> &ArenaCore {
        // SAFETY: the core outlives its lanes (it is destroyed last). Only
        // lanes of an arena call this; the measuring stand-in has no core.
        unsafe { &*self.core }
    }

    /// The arena this lane belongs to; `None` for the stand-in lane that
    /// routes counted calls to the inner allocator during `measure`.
    #[inline]
    pub(crate) fn core_opt(&self) -> Option<&ArenaCore> {
        // SAFETY: as in `core`.
        unsafe { self.core.as_ref() }
    }

    #[inline(always)]
    pub(crate) fn is_spill_only(&self) -> bool {
        self.spill_only
    }

    /// Region nesting on this lane.
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim.
    pub(crate) unsafe fn depth(&self) -> &Cell<u32> {
        &self.depth
    }

    /// Requests served so far.
    ///
    /// # Safety
    /// Owner only (or a spill-only lane, whose counters never change).
    pub(crate) unsafe fn allocs(&self) -> u64 {
        self.allocs.get()
    }

    /// Bytes requested so far.
    ///
    /// # Safety
    /// As for [`Lane::allocs`].
    pub(crate) unsafe fn bytes_requested(&self) -> u64 {
        self.bytes.get()
    }

    // ------------------------------------------------------------------
    // allocation
    // ------------------------------------------------------------------

    /// Bump-allocates `size` bytes aligned to `align` (a power of two) from
    /// the current chunk. Returns null if they do not fit, or if `align` is
    /// above [`MAX_ALIGN`]; the caller then takes [`Lane::alloc_slow`]
    /// (which spills the latter).
    ///
    /// # Safety
    /// `size` is not zero. Owner only (or a spill-only lane, whose bump
    /// pointer is null and limit 0, so that no request of a non-zero size
    /// fits and nothing is written).
    #[inline(always)]
    pub(crate) unsafe fn try_alloc(&self, size: usize, align: usize) -> *mut u8 {
        let bump = self.bump.get();
        // The bump pointer is always 8-aligned: smaller alignments need no
        // padding. `bump` is a user-space address (< 2^57) and `size` at most
        // `isize::MAX`, so none of the sums below can wrap. A lane without a
        // chunk has a null bump pointer and a limit of 0: `end` is then at
        // least `rounded`, at least 8, so the request does not fit.
        debug_assert!(size != 0, "a zero-size request reached the bump path");
        debug_assert!(bump.addr() & 7 == 0, "the bump pointer is 8-aligned");
        debug_assert!(!bump.is_null() || self.limit.get() == 0);
        debug_assert!(align.is_power_of_two());
        let p = if align <= 8 {
            bump
        } else if align <= MAX_ALIGN {
            bump.wrapping_add(bump.addr().wrapping_neg() & (align - 1))
        } else {
            return ptr::null_mut();
        };
        let rounded = granule(size);
        let end = p.wrapping_add(rounded);
        if end.addr() <= self.limit.get() && size < self.bump_max {
            debug_assert!(
                p.addr() >= self.top_floor.get(),
                "bumping below the top floor"
            );
            debug_assert!(p.addr() & (align - 1) == 0);
            self.bump.set(end);
            self.count_alloc(size, rounded);
            // SAFETY: `p` is not null: a lane without a chunk (null bump
            // pointer) never fits a request (see above), and a chunk's data
            // lies above address 0. Telling the compiler spares the callers'
            // null test on the fast path.
            unsafe { core::hint::assert_unchecked(!p.is_null()) };
            return p;
        }
        ptr::null_mut()
    }

    #[inline(always)]
    fn count_alloc(&self, size: usize, rounded: usize) {
        self.top_live.set(self.top_live.get().wrapping_add(1));
        self.top_bytes
            .set(self.top_bytes.get().wrapping_add(rounded as u64));
        self.allocs.set(self.allocs.get().wrapping_add(1));
        self.bytes.set(self.bytes.get().wrapping_add(size as u64));
    }

    /// The slow path of [`Lane::try_alloc`]: catches up with checkpoints
    /// taken by other threads, gives a large block a chunk of its own, takes
    /// in the blocks other threads freed (which may empty the top piece),
    /// moves to a spare or new chunk, and allocates there; zeroes the block
    /// if `zeroed`. `grows`: the block is the new place of one that `realloc`
    /// (or an allocator handle's `grow`) moves because it grew, so a large
    /// one gets room to grow again in place (see `side.rs`). Returns null if
    /// the caller must spill.
    ///
    /// # Safety
    /// As for [`Lane::try_alloc`].
    #[inline(never)]
    pub(crate) unsafe fn alloc_slow(
        &self,
        size: usize,
        align: usize,
        zeroed: bool,
        grows: bool,
    ) -> *mut u8 {
        if self.spill_only || align > MAX_ALIGN {
            return ptr::null_mut();
        }
        let core = self.core();
        if self.seen_gen.get() != core.generation() {
            // SAFETY: this thread holds the claim (caller contract).
            unsafe { core.sync_lane(self) };
        }
        // Frees from other threads count as live until they are taken in:
        // take them in before any new chunk, small or large (invariant R3).
        // They may empty the top piece, which then rewinds.
        // SAFETY: as above.
        unsafe { self.drain() };
        if self.is_large(size) {
            return self.alloc_side(size, align, zeroed, grows);
        }
        if self.tracking {
            return self.alloc_tracked(size, align, zeroed);
        }
        // SAFETY: owner only, as the caller.
        let mut p = unsafe { self.try_alloc(size, align) };
        if p.is_null() && self.extend_limit(size, align) {
            // SAFETY: as above.
            p = unsafe { self.try_alloc(size, align) };
        }
        if p.is_null() && self.refill(size, align) {
            // `refill` sized the chunk for this request, but guard mode may
            // have protected part of it.
            // SAFETY: as above.
            p = unsafe { self.try_alloc(size, align) };
            if p.is_null() && self.extend_limit(size, align) {
                // SAFETY: as above.
                p = unsafe { self.try_alloc(size, align) };
            }
        }
        if zeroed && !p.is_null() {
            // SAFETY: `p` is the block of `size` bytes just bumped.
            unsafe { self.zero_fresh(p, size) };
        }
        p
    }

    /// Zeroes the part of a block just allocated at `p` that may hold stale
    /// data. Memory above the chunk's dirty mark is known to be zero.
    ///
    /// # Safety
    /// Owner only; `p` is the block of `size` bytes this lane's last
    /// allocation returned.
    #[inline]
    pub(crate) unsafe fn zero_fresh(&self, p: *mut u8, size: usize) {
        let dirty_end = self.entry_clean.get().max(self.high_water.get());
        let start = p as usize;
        if start < dirty_end {
            let n = (dirty_end - start).min(size);
            // SAFETY: `[p, p + n)` lies inside the block just allocated.
            unsafe { ptr::write_bytes(p, 0, n) };
        }
    }

    // ------------------------------------------------------------------
    // freeing and resizing by the owner
    // ------------------------------------------------------------------

    /// Frees a block of the top piece, if it is one. Returns false if the
    /// caller must take [`Lane::free_local`] or [`Lane::free_remote`].
    ///
    /// # Safety
    /// Owner only (or a spill-only lane: its range is empty, so nothing is
    /// written). `ptr` is a live arena block of `size` bytes that the caller
    /// gives up.
    #[inline(always)]
    pub(crate) unsafe fn try_free_fast(&self, ptr: *mut u8, size: usize) -> bool {
        let a = ptr.addr();
        if a >= self.top_floor.get() && a < self.limit.get() {
            self.free_top(ptr, size);
            return true;
        }
        false
    }

    /// Frees a block of the top piece. The bump pointer moves back over the
    /// block if it was the last one allocated, and back to the piece's
    /// floor if the piece holds no live block any more (P4 in SAFETY.md).
    #[inline(always)]
    fn free_top(&self, ptr: *mut u8, size: usize) {
        let rounded = granule(size);
        debug_assert!(self.top_live.get() > 0, "a free in an empty top piece");
        let live = self.top_live.get().wrapping_sub(1);
        self.top_live.set(live);
        self.top_bytes
            .set(self.top_bytes.get().wrapping_sub(rounded as u64));
        if live == 0 {
            self.rewind_empty_top();
            return;
        }
        let bump = self.bump.get().addr();
        if ptr.addr().wrapping_add(rounded) == bump {
            if bump > self.high_water.get() {
                self.high_water.set(bump);
            }
            // The lane's own pointer at the block's address: the block's
            // pointer carries the caller's provenance (a `Box`'s tag, say),
            // which later writes by others may have invalidated, and the
            // next blocks are derived from the bump pointer.
            self.bump.set(self.bump.get().with_addr(ptr.addr()));
        }
    }

    /// Frees a block of this lane from the owning thread.
    ///
    /// # Safety
    /// Owner only; `ptr` is a live block of this lane, of `size` bytes, that
    /// the caller gives up.
    pub(crate) unsafe fn free_local(&self, ptr: *mut u8, size: usize) {
        // SAFETY: owner only, and a live block of this lane (caller contract).
        unsafe {
            if !self.try_free_fast(ptr, size) {
                self.free_elsewhere(ptr, granule(size) as u64);
            }
        }
    }

    /// Accounts for a freed block of this lane that the fast path did not
    /// take: one in its chain (below the top piece, or in an older chunk)
    /// or a large block in a side chunk.
    ///
    /// # Safety
    /// Owner only; `block` is a live block of this lane, of `rounded` bytes.
    unsafe fn free_elsewhere(&self, block: *mut u8, rounded: u64) {
        // SAFETY: a live block lies in one of this lane's live chunks.
        let chunk = unsafe { self.chunk_of(block.addr()) };
        // SAFETY: as above.
        if unsafe { (*chunk).side.get() } {
            self.free_side(chunk, rounded);
            return;
        }
        let rounded = if self.tracking {
            // SAFETY: every block of a tracking lane's chain has a header,
            // in the block's chunk.
            unsafe { self.untrack(chunk, block.addr()) }
        } else {
            rounded
        };
        // SAFETY: a live block of this lane's chain, in `chunk`.
        unsafe { self.account_free(chunk, block.addr(), rounded) };
    }

    /// The chunk of one of this lane's live blocks.
    ///
    /// # Safety
    /// `addr` lies in a live chunk of this lane.
    #[inline]
    unsafe fn chunk_of(&self, addr: usize) -> *mut ChunkHeader {
        let cur = self.chunk.get();
        if !cur.is_null() && addr >= cur as usize && addr < self.limit.get() {
            return cur;
        }
        // SAFETY: the address is in a live chunk, so inside the space.
        let chunk = unsafe { space::chunk_of(ptr::without_provenance::<u8>(addr)) };
        if chunk.is_null() {
            crate::sys::fatal("a live block's chunk is not live (double free?)");
        }
        chunk
    }

    /// Tries to resize a block of this lane in place. Growth is allowed only
    /// for the last block, and only if it lies in the top piece (at or above
    /// the newest mark: the innermost checkpoint or a floor); shrinking
    /// always succeeds. Returns the resized block (at `ptr`'s address, with
    /// the provenance of its chunk, not the caller's: that covers only the
    /// old bytes), or null if it must move.
    ///
    /// # Safety
    /// Owner only; `ptr` is a live block of this lane of `old` bytes.
    pub(crate) unsafe fn realloc_in_place(&self, ptr: *mut u8, old: usize, new: usize) -> *mut u8 {
        let old_rounded = granule(old);
        let new_rounded = granule(new);
        let a = ptr.addr();
        let resized;
        if a >= self.top_floor.get() && a < self.limit.get() {
            let bump = self.bump.get().addr();
            if a.wrapping_add(old_rounded) == bump {
                let end = a.wrapping_add(new_rounded);
                // A block that grows large moves to a chunk of its own.
                if end > self.limit.get() || end < a || new >= self.large_from {
                    return ptr::null_mut();
                }
                if end < bump && bump > self.high_water.get() {
                    self.high_water.set(bump);
                }
                // Derived from the lane's bump pointer, not from `ptr` (see
                // `free_top`).
                self.bump.set(self.bump.get().with_addr(end));
            } else if new_rounded > old_rounded {
                return ptr::null_mut();
            }
            // The top piece lies in the current chunk, the bump pointer's.
            resized = self.bump.get().with_addr(a);
            self.top_bytes.set(
                self.top_bytes
                    .get()
                    .wrapping_add(new_rounded as u64)
                    .wrapping_sub(old_rounded as u64),
            );
        } else {
            // SAFETY: a live block lies in one of this lane's live chunks.
            let chunk = unsafe { self.chunk_of(a) };
            // SAFETY: as above.
            if unsafe { (*chunk).side.get() } {
                return if self.realloc_side(chunk, a, old, new) {
                    chunk.cast::<u8>().with_addr(a)
                } else {
                    ptr::null_mut()
                };
            }
            // A tracked block keeps its header's size: only large blocks,
            // which have none, resize in place.
            if self.tracking || new_rounded > old_rounded {
                return ptr::null_mut();
            }
            resized = chunk.cast::<u8>().with_addr(a);
            // SAFETY: a live block of this lane's chain, in `chunk`.
            unsafe { self.account_shrink(chunk, a, (old_rounded - new_rounded) as u64) };
        }
        self.allocs.set(self.allocs.get().wrapping_add(1));
        self.bytes.set(self.bytes.get().wrapping_add(new as u64));
        resized
    }

    /// The marks.
    #[allow(clippy::mut_from_ref)]
    fn marks(&self) -> &mut Marks {
        // SAFETY: only the owner reaches this (every caller is an owner-only
        // method), and no caller keeps the reference across another call
        // that takes it.
        unsafe { &mut *self.marks.get() }
    }
}
