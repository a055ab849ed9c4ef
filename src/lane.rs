//! A lane: the bump allocator of one thread inside an arena, with exact
//! live-block accounting.
//!
//! An [`Arena`](crate::Arena) has one lane; a [`LockedArena`](crate::LockedArena)
//! has one per thread that is inside a region of it at the same time, so that
//! threads never write to a shared cache line while they allocate.
//!
//! # Ownership protocol
//!
//! A lane is *claimed* by at most one thread at a time (`owner` holds its
//! thread id; see [`Lane::try_claim`]). Only the claiming thread reads or
//! writes the owner-only fields (the `Cell`s and the segment stack). The claim
//! is taken with an acquire CAS and given back with a release store, so each
//! claimant sees everything its predecessor wrote.
//!
//! Any thread may free a block of a lane it does not own: the block is pushed
//! onto the lane's lock-free *remote list* (the link is written into the freed
//! block itself) and the owner accounts for it later ([`Lane::drain`]).
//!
//! # Positions and segments
//!
//! Every byte a lane hands out has a *logical position*: chunks are chained,
//! and a chunk's first data byte sits at the position where its predecessor's
//! used part ended. Positions only grow while blocks are live, so a checkpoint
//! is a position, and "allocated after the checkpoint" means "at or above that
//! position".
//!
//! The lane keeps a stack of *segments*. Each starts at a position and counts
//! the blocks (and bytes) allocated at or above it and below the next
//! segment that are still live. A user checkpoint pushes a segment tagged with
//! its serial; resetting it reclaims memory only if every segment above it has
//! no live block. Otherwise the live ones are kept in place (an *escape*) and
//! only the dead tail above the highest live segment is reused.

use core::cell::{Cell, UnsafeCell};
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::arena_core::{ArenaCore, Control};
use crate::guard;
use crate::space::{self, ChunkHeader, HEADER};

/// Segments a lane can track at once (user checkpoints plus escape splits).
pub(crate) const MAX_SEGS: usize = 64;
/// Largest alignment served from an arena; larger requests spill.
pub(crate) const MAX_ALIGN: usize = space::SLAB;
/// Growth of a lane's chunks stops doubling at this size.
const MAX_CHUNK: usize = 64 << 20;
/// Bit set in `owner` for a short claim by a reset, a snapshot or a drop
/// (thread ids stay far below it).
const SERVICE: u64 = 1 << 63;
/// Value of `remote` once the arena has been dropped.
const CLOSED: *mut u8 = ptr::without_provenance_mut(1);

/// Rounds a block size up to the 8-byte granule every block occupies.
#[inline(always)]
pub(crate) fn round8(n: usize) -> usize {
    n.wrapping_add(7) & !7
}

#[derive(Clone, Copy, Default)]
struct Segment {
    /// Logical position of the segment's first byte.
    start: u64,
    /// Live blocks in the segment.
    live: u64,
    /// Bytes (rounded) of those blocks.
    bytes: u64,
    /// Serial of the user checkpoint that opened it; 0 for the root segment
    /// and for segments opened by an escape.
    serial: u64,
}

/// Outcome of resetting one lane.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct LaneReset {
    pub(crate) reclaimed: u64,
    pub(crate) escaped_blocks: u64,
    pub(crate) escaped_bytes: u64,
    /// The lane held no boundary for the checkpoint (too many nested).
    pub(crate) untracked: bool,
}

/// A snapshot of one lane's figures, taken by a thread that holds it.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct LaneStats {
    pub(crate) allocs: u64,
    pub(crate) bytes: u64,
    pub(crate) in_use: u64,
    pub(crate) peak: u64,
    pub(crate) live_blocks: u64,
    pub(crate) live_bytes: u64,
    pub(crate) chunk_bytes: u64,
    pub(crate) chunks: u64,
}

/// Result of [`Lane::try_claim`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Claim {
    /// The calling thread already held the lane.
    Already,
    /// The calling thread took the lane and must release it.
    Taken,
    /// Another thread holds the lane.
    Busy,
}

#[repr(C, align(128))]
pub(crate) struct Lane {
    // ---- hot: touched by every allocation or free (owner only) ----
    /// Next free byte; null when the lane has no chunk.
    bump: Cell<*mut u8>,
    /// End of the current chunk; 0 when there is none.
    limit: Cell<usize>,
    /// Blocks in the current chunk at or above this address belong to the
    /// top segment.
    top_floor: Cell<usize>,
    top_live: Cell<u64>,
    top_bytes: Cell<u64>,
    /// Allocation requests served (allocations and reallocations).
    allocs: Cell<u64>,
    /// Bytes requested by those calls.
    bytes: Cell<u64>,
    /// Highest value `bump` had before it last moved down in this chunk.
    hw: Cell<usize>,
    /// First data byte of the current chunk if a free there should move the
    /// lane back to the previous chunk (see [`Lane::retreat`]); else 0.
    retreat_at: Cell<usize>,

    // ---- warm: slow paths (owner only) ----
    chunk: Cell<*mut ChunkHeader>,
    /// Address from which the current chunk was known to be zero on entry.
    entry_clean: Cell<usize>,
    /// Logical start of the top segment.
    top_start: Cell<u64>,
    nsegs: Cell<usize>,
    /// Nesting depth of regions of the owning thread on this lane.
    depth: Cell<u32>,
    /// Highest checkpoint serial this lane has taken into account.
    seen_serial: Cell<u64>,
    /// Generation of the checkpoint list last synced with.
    seen_gen: Cell<u64>,
    /// Chunks above the bump position, kept for reuse (linked by `prev`).
    spare: Cell<*mut ChunkHeader>,
    /// Size of the next chunk to ask the space for.
    next_chunk: Cell<usize>,
    peak: Cell<u64>,
    segs: UnsafeCell<[Segment; MAX_SEGS]>,

    // ---- shared ----
    owner: CachePadded<AtomicU64>,
    /// Blocks freed by other threads, linked through their own memory.
    remote: CachePadded<AtomicPtr<u8>>,

    // ---- immutable after construction ----
    core: *const ArenaCore,
    /// The chunk that hosts this lane's own memory (never released before the
    /// arena is destroyed); null when the lane lives in mapped memory.
    home: *mut ChunkHeader,
    /// A stand-in lane with no memory: every request spills.
    spill_only: bool,
}

// The owner-only fields (every `Cell` and the segment stack) are accessed
// only by the thread that holds the claim (see the module docs); the claim is
// transferred with acquire/release operations on `owner`.
// SAFETY: as just said; the fields other threads touch (`owner`, `remote`)
// are atomics, and the spill-only lanes that several threads may use at once
// are never written through their `Cell`s.
unsafe impl Sync for Lane {}
// SAFETY: as above; a lane has no thread affinity beyond its claim.
unsafe impl Send for Lane {}

impl Lane {
    /// A lane with no memory yet.
    pub(crate) const fn new(core: *const ArenaCore, first_chunk: usize, spill_only: bool) -> Lane {
        Lane {
            bump: Cell::new(ptr::null_mut()),
            limit: Cell::new(0),
            top_floor: Cell::new(0),
            top_live: Cell::new(0),
            top_bytes: Cell::new(0),
            allocs: Cell::new(0),
            bytes: Cell::new(0),
            hw: Cell::new(0),
            retreat_at: Cell::new(0),
            chunk: Cell::new(ptr::null_mut()),
            entry_clean: Cell::new(0),
            top_start: Cell::new(0),
            nsegs: Cell::new(1),
            depth: Cell::new(0),
            seen_serial: Cell::new(0),
            seen_gen: Cell::new(0),
            spare: Cell::new(ptr::null_mut()),
            next_chunk: Cell::new(first_chunk),
            peak: Cell::new(0),
            segs: UnsafeCell::new(
                [Segment {
                    start: 0,
                    live: 0,
                    bytes: 0,
                    serial: 0,
                }; MAX_SEGS],
            ),
            owner: CachePadded::new(AtomicU64::new(0)),
            remote: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            core,
            home: ptr::null_mut(),
            spill_only,
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
        first_chunk: usize,
        spill_only: bool,
    ) {
        let mut lane = Lane::new(core, first_chunk, spill_only);
        lane.home = home;
        // SAFETY: guaranteed by the caller.
        unsafe {
            place.write(lane);
            if !home.is_null() {
                (*home).lane.store(place, Ordering::Release);
                (*place).enter_chunk(home, (*home).start.get());
                (*place).refresh_floor();
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

    // ------------------------------------------------------------------
    // claim protocol
    // ------------------------------------------------------------------

    /// Tries to make thread `tid` (never 0) the owner, for a region.
    #[inline]
    pub(crate) fn try_claim(&self, tid: u64) -> Claim {
        self.claim_as(tid, tid)
    }

    /// Tries to take the lane briefly on behalf of thread `tid`, for a reset,
    /// a snapshot or a drop. Such a claim is marked, so that a thread looking
    /// for a lane knows it will be given back shortly.
    #[inline]
    pub(crate) fn try_service_claim(&self, tid: u64) -> Claim {
        self.claim_as(tid, tid | SERVICE)
    }

    fn claim_as(&self, tid: u64, value: u64) -> Claim {
        let cur = self.owner.load(Ordering::Relaxed);
        if cur == tid {
            return Claim::Already;
        }
        if cur != 0 {
            return Claim::Busy;
        }
        match self
            .owner
            .compare_exchange(0, value, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Claim::Taken,
            Err(_) => Claim::Busy,
        }
    }

    /// Whether the lane is held by a short service claim.
    pub(crate) fn is_service_claimed(&self) -> bool {
        self.owner.load(Ordering::Relaxed) & SERVICE != 0
    }

    /// Gives up a claim taken with [`Claim::Taken`].
    #[inline]
    pub(crate) fn release_claim(&self) {
        self.owner.store(0, Ordering::Release);
    }

    #[inline(always)]
    pub(crate) fn owner(&self) -> u64 {
        self.owner.load(Ordering::Relaxed)
    }

    /// Region nesting on this lane (owner only).
    pub(crate) fn depth(&self) -> &Cell<u32> {
        &self.depth
    }

    /// Requests served so far. Owner only.
    pub(crate) fn allocs(&self) -> u64 {
        self.allocs.get()
    }

    /// Bytes requested so far. Owner only.
    pub(crate) fn bytes_requested(&self) -> u64 {
        self.bytes.get()
    }

    // ------------------------------------------------------------------
    // allocation (owner only)
    // ------------------------------------------------------------------

    /// Bump-allocates `size` bytes aligned to `align` (a power of two) from
    /// the current chunk. Returns null if they do not fit, or if `align` is
    /// above [`MAX_ALIGN`]; the caller then takes [`Lane::alloc_slow`]
    /// (which spills the latter). Owner only.
    #[inline(always)]
    pub(crate) fn try_alloc(&self, size: usize, align: usize) -> *mut u8 {
        let bump = self.bump.get();
        // The bump pointer is always 8-aligned: smaller alignments need no
        // padding. `bump` is a user-space address (< 2^57) and `size` at most
        // `isize::MAX`, so none of the sums below can wrap.
        let p = if align <= 8 {
            bump
        } else if align <= MAX_ALIGN {
            bump.wrapping_add(bump.addr().wrapping_neg() & (align - 1))
        } else {
            return ptr::null_mut();
        };
        let rs = round8(size);
        let end = p.wrapping_add(rs);
        if end.addr() <= self.limit.get() && !bump.is_null() {
            self.bump.set(end);
            self.count_alloc(size, rs);
            return p;
        }
        ptr::null_mut()
    }

    #[inline(always)]
    fn count_alloc(&self, size: usize, rs: usize) {
        self.top_live.set(self.top_live.get().wrapping_add(1));
        self.top_bytes
            .set(self.top_bytes.get().wrapping_add(rs as u64));
        self.allocs.set(self.allocs.get().wrapping_add(1));
        self.bytes.set(self.bytes.get().wrapping_add(size as u64));
    }

    /// The slow path of [`Lane::alloc`]: catches up with checkpoints taken by
    /// other threads, moves to a spare or new chunk, and allocates there.
    #[inline(never)]
    pub(crate) fn alloc_slow(&self, size: usize, align: usize) -> *mut u8 {
        if self.spill_only || align > MAX_ALIGN {
            return ptr::null_mut();
        }
        let core = self.core();
        if self.seen_gen.get() != core.generation() {
            core.sync_lane(self);
        }
        let p = self.try_alloc(size, align);
        if !p.is_null() {
            return p;
        }
        if self.extend_limit(size, align) {
            return self.try_alloc(size, align);
        }
        if !self.refill(size, align) {
            return ptr::null_mut();
        }
        // `refill` sized the chunk for this request, but guard mode may have
        // protected part of it.
        let p = self.try_alloc(size, align);
        if p.is_null() && self.extend_limit(size, align) {
            return self.try_alloc(size, align);
        }
        p
    }

    /// Guard mode: if the request would fit in the current chunk but runs
    /// into pages a reset protected, makes them usable again.
    fn extend_limit(&self, size: usize, align: usize) -> bool {
        let chunk = self.chunk.get();
        if chunk.is_null() || self.limit.get() >= ChunkHeader::end(chunk) {
            return false;
        }
        let bump = self.bump.get().addr();
        let p = bump.wrapping_add(bump.wrapping_neg() & (align - 1));
        let needed = p.wrapping_add(round8(size));
        if needed > ChunkHeader::end(chunk) || needed < p {
            return false;
        }
        match guard::unprotect_to(chunk, needed) {
            Some(limit) if limit >= needed => {
                self.limit.set(limit);
                true
            }
            _ => false,
        }
    }

    /// Moves to a chunk with room for the request: a spare one if it fits,
    /// else a new one from the space (within the arena's capacity).
    fn refill(&self, size: usize, align: usize) -> bool {
        let pad = if align > HEADER { align } else { 0 };
        let need = match HEADER
            .checked_add(round8(size))
            .and_then(|n| n.checked_add(pad))
        {
            Some(n) => n,
            None => return false,
        };
        let spare = self.spare.get();
        // SAFETY: spare chunks belong to this lane, which the caller owns.
        if !spare.is_null() && unsafe { (*spare).size } >= need {
            // SAFETY: as above.
            self.spare.set(unsafe { (*spare).prev.get() });
            self.switch_to(spare);
            return true;
        }
        let want = need.max(self.next_chunk.get());
        let chunk = self
            .core()
            .acquire_chunk(want, self as *const Lane as *mut Lane);
        if chunk.is_null() {
            return false;
        }
        self.next_chunk
            .set((self.next_chunk.get().saturating_mul(2)).min(MAX_CHUNK));
        self.switch_to(chunk);
        true
    }

    /// Appends `chunk` to the chain and makes it current.
    fn switch_to(&self, chunk: *mut ChunkHeader) {
        let pos = self.pos();
        let old = self.chunk.get();
        if !old.is_null() {
            self.leave_chunk(old);
        }
        // SAFETY: `chunk` is owned by this lane and not in the chain.
        unsafe {
            (*chunk).prev.set(old);
            (*chunk).base_pos.set(pos);
            let start = (*chunk).start.get();
            self.enter_chunk(chunk, start);
        }
        self.refresh_floor();
    }

    /// Makes `chunk` current with the bump at offset `offset`.
    fn enter_chunk(&self, chunk: *mut ChunkHeader, offset: usize) {
        let c = chunk as usize;
        self.chunk.set(chunk);
        self.bump.set(chunk.cast::<u8>().wrapping_add(offset));
        // SAFETY: `chunk` is owned by this lane.
        let (clean, usable) = unsafe {
            (
                (*chunk).clean_from.get(),
                (*chunk).guarded_from.get().min((*chunk).size),
            )
        };
        self.limit.set(c + usable);
        self.entry_clean.set(c + clean);
        self.hw.set(c + offset);
    }

    /// Records, before the current chunk stops being current, how far it is
    /// used and how far it may be dirty.
    fn leave_chunk(&self, chunk: *mut ChunkHeader) {
        self.note_high_water();
        let c = chunk as usize;
        let bump = self.bump.get().addr();
        // SAFETY: `chunk` is this lane's current chunk.
        unsafe {
            (*chunk).fill.set(bump - c);
        }
    }

    /// Folds the current bump into the high-water mark, the chunk's dirty
    /// mark and the peak.
    fn note_high_water(&self) {
        let chunk = self.chunk.get();
        if chunk.is_null() {
            return;
        }
        let bump = self.bump.get().addr();
        let hw = self.hw.get().max(bump);
        self.hw.set(hw);
        let c = chunk as usize;
        // SAFETY: `chunk` is this lane's current chunk.
        unsafe {
            let dirty = (hw - c).max((*chunk).clean_from.get());
            (*chunk).clean_from.set(dirty);
            let top = (*chunk).base_pos.get() + (hw - ChunkHeader::data(chunk)) as u64;
            if top > self.peak.get() {
                self.peak.set(top);
            }
        }
    }

    /// Zeroes the part of a block just allocated at `p` that may hold stale
    /// data. Memory above the chunk's dirty mark is known to be zero.
    #[inline]
    pub(crate) fn zero_fresh(&self, p: *mut u8, size: usize) {
        let dirty_end = self.entry_clean.get().max(self.hw.get());
        let start = p as usize;
        if start < dirty_end {
            let n = (dirty_end - start).min(size);
            // SAFETY: `[p, p + n)` lies inside the block just allocated.
            unsafe { ptr::write_bytes(p, 0, n) };
        }
    }

    /// Logical position of the bump pointer (bytes in use by this lane).
    fn pos(&self) -> u64 {
        let chunk = self.chunk.get();
        if chunk.is_null() {
            return 0;
        }
        let bump = self.bump.get().addr();
        // SAFETY: `chunk` is this lane's current chunk.
        unsafe { (*chunk).base_pos.get() + (bump - ChunkHeader::data(chunk)) as u64 }
    }

    /// Logical position of an address inside one of this lane's chained chunks.
    fn pos_of(&self, addr: usize) -> u64 {
        let cur = self.chunk.get();
        let chunk = if !cur.is_null() && addr >= cur as usize && addr < self.limit.get() {
            cur
        } else {
            space::chunk_of(ptr::without_provenance::<u8>(addr))
        };
        // SAFETY: the block is live, so its chunk is live and in this lane's chain.
        unsafe { (*chunk).base_pos.get() + (addr - ChunkHeader::data(chunk)) as u64 }
    }

    /// Recomputes `top_floor` and `retreat_at` after the current chunk or
    /// the top segment changed.
    fn refresh_floor(&self) {
        let chunk = self.chunk.get();
        if chunk.is_null() {
            self.top_floor.set(0);
            self.retreat_at.set(0);
            return;
        }
        let data = ChunkHeader::data(chunk);
        // SAFETY: `chunk` is this lane's current chunk.
        let (base, prev) = unsafe { ((*chunk).base_pos.get(), (*chunk).prev.get()) };
        let start = self.top_start.get();
        let floor = if start > base {
            data + (start - base) as usize
        } else {
            data
        };
        self.top_floor.set(floor);
        // Moving back to the previous chunk is possible only if the top
        // segment reaches into it.
        self.retreat_at.set(if !prev.is_null() && start <= base {
            data
        } else {
            0
        });
    }

    // ------------------------------------------------------------------
    // freeing
    // ------------------------------------------------------------------

    /// Frees a block in the top segment of the current chunk, if it is one
    /// (and not the first block of a chunk the lane may move back from).
    /// Rewinds the bump pointer when the block is the last one allocated.
    /// Returns false if the caller must take [`Lane::free_local`]. Owner only.
    #[inline(always)]
    pub(crate) fn try_free_fast(&self, ptr: *mut u8, size: usize) -> bool {
        let a = ptr.addr();
        if a >= self.top_floor.get() && a < self.limit.get() && a != self.retreat_at.get() {
            self.free_top(ptr, size);
            return true;
        }
        false
    }

    #[inline(always)]
    fn free_top(&self, ptr: *mut u8, size: usize) {
        let rs = round8(size);
        self.top_live.set(self.top_live.get().wrapping_sub(1));
        self.top_bytes
            .set(self.top_bytes.get().wrapping_sub(rs as u64));
        let bump = self.bump.get().addr();
        if ptr.addr().wrapping_add(rs) == bump {
            if bump > self.hw.get() {
                self.hw.set(bump);
            }
            self.bump.set(ptr);
        }
    }

    /// Frees a block of this lane from the owning thread.
    pub(crate) fn free_local(&self, ptr: *mut u8, size: usize) {
        let a = ptr.addr();
        if a >= self.top_floor.get() && a < self.limit.get() {
            self.free_top(ptr, size);
            if self.bump.get().addr() == self.retreat_at.get() {
                self.retreat();
            }
        } else {
            self.account_free(self.pos_of(a), round8(size) as u64);
        }
    }

    /// The current chunk became empty through frees at the tip, and the top
    /// segment reaches into the previous chunk: continue there, and keep this
    /// chunk as a spare. Without this, a loop that frees everything it
    /// allocates but never resets would take a new chunk every time it
    /// crossed a chunk boundary.
    #[cold]
    fn retreat(&self) {
        let chunk = self.chunk.get();
        self.note_high_water();
        // SAFETY: the current chunk and its predecessor (non-null, or
        // `retreat_at` would be 0) belong to this lane.
        unsafe {
            let prev = (*chunk).prev.get();
            (*chunk).fill.set((*chunk).start.get());
            (*chunk).prev.set(self.spare.get());
            self.spare.set(chunk);
            self.enter_chunk(prev, (*prev).fill.get());
        }
        self.refresh_floor();
    }

    /// Frees a block of lane `this` from a thread that does not own it.
    ///
    /// Takes a raw pointer because, if the arena was dropped, this free may be
    /// the last one and destroy the arena, lane included.
    ///
    /// # Safety
    /// `this` must be the lane of the live block at `ptr`, of `size` bytes.
    pub(crate) unsafe fn free_remote(this: *const Lane, ptr: *mut u8, size: usize) {
        let rs = round8(size);
        // SAFETY: the lane is alive while one of its blocks is.
        let (remote, core) = unsafe { (&(*this).remote, (*this).core) };
        let mut head = remote.load(Ordering::Relaxed);
        loop {
            if head == CLOSED {
                // SAFETY: the arena was dropped and this block was live; the
                // lane is not touched after this call.
                unsafe { ArenaCore::orphan_free(core) };
                return;
            }
            // SAFETY: the block is at least 8 bytes and 8-aligned (every arena
            // block is), 16 bytes if `rs != 8`; the caller gives it up, so its
            // memory is ours to use as a list node: the link (tagged in bit 0
            // when the block is 8 bytes), then the size.
            unsafe {
                if rs == 8 {
                    ptr.cast::<*mut u8>().write(head.map_addr(|a| a | 1));
                } else {
                    ptr.cast::<*mut u8>().write(head);
                    ptr.cast::<usize>().add(1).write(rs);
                }
            }
            match remote.compare_exchange_weak(head, ptr, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Whether the block at `addr` (an address inside the space) belongs to
    /// this lane.
    #[inline]
    pub(crate) fn owns_block(&self, addr: usize) -> bool {
        let cur = self.chunk.get();
        if !cur.is_null() && addr >= cur as usize && addr < self.limit.get() {
            return true;
        }
        let chunk = space::chunk_of(ptr::without_provenance::<u8>(addr));
        // SAFETY: a non-null table entry is a live chunk header.
        !chunk.is_null() && ptr::eq(unsafe { (*chunk).lane.load(Ordering::Relaxed) }, self)
    }

    /// Accounts for the blocks other threads freed. Owner only.
    pub(crate) fn drain(&self) {
        let mut head = self.remote.load(Ordering::Relaxed);
        // Take the list, but never reopen a closed one: frees of a dropped
        // arena's blocks must keep taking the orphan path.
        while !head.is_null() && head != CLOSED {
            match self.remote.compare_exchange_weak(
                head,
                ptr::null_mut(),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.drain_list(head);
                    return;
                }
                Err(h) => head = h,
            }
        }
    }

    /// Drains the remote list and closes it: later remote frees take the
    /// orphan path. Owner only; used when the arena is dropped.
    pub(crate) fn close(&self) {
        let head = self.remote.swap(CLOSED, Ordering::AcqRel);
        self.drain_list(head);
    }

    fn drain_list(&self, mut head: *mut u8) {
        while !head.is_null() && head != CLOSED {
            // SAFETY: every node was written by `free_remote` before the
            // release CAS that published it; our acquire swap synchronises.
            let (next, rs) = unsafe {
                let link = head.cast::<*mut u8>().read();
                if link.addr() & 1 == 1 {
                    (link.map_addr(|a| a & !1), 8)
                } else {
                    (link, head.cast::<usize>().add(1).read())
                }
            };
            self.account_free(self.pos_of(head.addr()), rs as u64);
            head = next;
        }
    }

    /// Decrements the counters of the segment holding position `pos`.
    fn account_free(&self, pos: u64, rs: u64) {
        if pos >= self.top_start.get() {
            self.top_live.set(self.top_live.get().wrapping_sub(1));
            self.top_bytes.set(self.top_bytes.get().wrapping_sub(rs));
            return;
        }
        let n = self.nsegs.get();
        let segs = self.segs_mut();
        for i in (0..n.saturating_sub(1)).rev() {
            if segs[i].start <= pos {
                segs[i].live = segs[i].live.wrapping_sub(1);
                segs[i].bytes = segs[i].bytes.wrapping_sub(rs);
                return;
            }
        }
    }

    /// Tries to resize a block of this lane in place. Growth is allowed only
    /// for the last block, and only if it lies in the top segment (at or
    /// above the innermost checkpoint); shrinking always succeeds. Owner only.
    pub(crate) fn realloc_in_place(&self, ptr: *mut u8, old: usize, new: usize) -> bool {
        let ors = round8(old);
        let nrs = round8(new);
        let a = ptr.addr();
        if a >= self.top_floor.get() && a < self.limit.get() {
            let bump = self.bump.get().addr();
            if a.wrapping_add(ors) == bump {
                let end = a.wrapping_add(nrs);
                if end > self.limit.get() || end < a {
                    return false;
                }
                if end < bump && bump > self.hw.get() {
                    self.hw.set(bump);
                }
                self.bump.set(ptr.wrapping_add(nrs));
            } else if nrs > ors {
                return false;
            }
            self.top_bytes.set(
                self.top_bytes
                    .get()
                    .wrapping_add(nrs as u64)
                    .wrapping_sub(ors as u64),
            );
        } else {
            if nrs > ors {
                return false;
            }
            self.account_shrink(self.pos_of(a), (ors - nrs) as u64);
        }
        self.allocs.set(self.allocs.get().wrapping_add(1));
        self.bytes.set(self.bytes.get().wrapping_add(new as u64));
        true
    }

    fn account_shrink(&self, pos: u64, by: u64) {
        if pos >= self.top_start.get() {
            self.top_bytes.set(self.top_bytes.get().wrapping_sub(by));
            return;
        }
        let n = self.nsegs.get();
        let segs = self.segs_mut();
        for i in (0..n.saturating_sub(1)).rev() {
            if segs[i].start <= pos {
                segs[i].bytes = segs[i].bytes.wrapping_sub(by);
                return;
            }
        }
    }

    // ------------------------------------------------------------------
    // segments, checkpoints and resets (owner only)
    // ------------------------------------------------------------------

    #[allow(clippy::mut_from_ref)]
    fn segs_mut(&self) -> &mut [Segment; MAX_SEGS] {
        // SAFETY: only the owner calls this, and no caller keeps the
        // reference across another call that takes it.
        unsafe { &mut *self.segs.get() }
    }

    fn flush_top(&self) {
        let n = self.nsegs.get();
        let top = &mut self.segs_mut()[n - 1];
        top.live = self.top_live.get();
        top.bytes = self.top_bytes.get();
    }

    fn load_top(&self) {
        let n = self.nsegs.get();
        let top = self.segs_mut()[n - 1];
        self.top_live.set(top.live);
        self.top_bytes.set(top.bytes);
        self.top_start.set(top.start);
        self.refresh_floor();
    }

    /// Merges the lowest segment not opened by a user checkpoint into the one
    /// below it. Loses precision, never safety.
    fn compact(&self) -> bool {
        let n = self.nsegs.get();
        let segs = self.segs_mut();
        for i in 1..n {
            if segs[i].serial == 0 {
                segs[i - 1].live = segs[i - 1].live.wrapping_add(segs[i].live);
                segs[i - 1].bytes = segs[i - 1].bytes.wrapping_add(segs[i].bytes);
                segs.copy_within(i + 1..n, i);
                self.nsegs.set(n - 1);
                return true;
            }
        }
        false
    }

    /// Opens a segment at the current position. Returns false if the stack is
    /// full of user checkpoints.
    fn push_segment(&self, serial: u64) -> bool {
        self.flush_top();
        if self.nsegs.get() == MAX_SEGS && !self.compact() {
            self.load_top();
            return false;
        }
        let n = self.nsegs.get();
        self.segs_mut()[n] = Segment {
            start: self.pos(),
            live: 0,
            bytes: 0,
            serial,
        };
        self.nsegs.set(n + 1);
        self.load_top();
        true
    }

    /// Brings the lane's boundaries in line with the arena's checkpoint list:
    /// boundaries of checkpoints that are gone lose their tag, and checkpoints
    /// taken since the last sync get a boundary at the current position.
    pub(crate) fn sync(&self, ctl: &Control, generation: u64) {
        self.flush_top();
        let n = self.nsegs.get();
        {
            let segs = self.segs_mut();
            for seg in segs.iter_mut().take(n).skip(1) {
                if seg.serial != 0 && !ctl.is_active(seg.serial) {
                    seg.serial = 0;
                }
            }
        }
        let seen = self.seen_serial.get();
        for serial in ctl.serials() {
            if serial > seen {
                self.push_segment(serial);
            }
        }
        self.seen_serial.set(ctl.last_serial());
        self.seen_gen.set(generation);
        self.load_top();
    }

    pub(crate) fn seen_gen(&self) -> u64 {
        self.seen_gen.get()
    }

    /// Resets to the boundary of checkpoint `serial`, or to the very start
    /// for `None`. Reclaims everything above it if no block there is live;
    /// otherwise keeps the live segments in place and reclaims only the dead
    /// tail above the highest live one.
    pub(crate) fn reset(&self, serial: Option<u64>) -> LaneReset {
        if self.spill_only {
            return LaneReset::default();
        }
        self.drain();
        self.flush_top();
        let n = self.nsegs.get();
        let k = match serial {
            None => 0,
            Some(s) => match (1..n).find(|&i| self.segs_mut()[i].serial == s) {
                Some(i) => i,
                None => {
                    return LaneReset {
                        untracked: true,
                        ..LaneReset::default()
                    };
                }
            },
        };
        let cur = self.pos();
        let (mut live, mut bytes, mut highest) = (0u64, 0u64, None);
        for i in k..n {
            let seg = self.segs_mut()[i];
            live = live.wrapping_add(seg.live);
            bytes = bytes.wrapping_add(seg.bytes);
            if seg.live != 0 {
                highest = Some(i);
            }
        }
        let segs = self.segs_mut();
        let target = match highest {
            None => {
                let start = segs[k].start;
                if k == 0 {
                    segs[0] = Segment::default();
                    self.nsegs.set(1);
                } else {
                    self.nsegs.set(k);
                }
                start
            }
            Some(h) => {
                let end = if h + 1 < n { segs[h + 1].start } else { cur };
                segs[k] = Segment {
                    start: segs[k].start,
                    live,
                    bytes,
                    serial: 0,
                };
                let mut m = k + 1;
                if m < MAX_SEGS {
                    segs[m] = Segment {
                        start: end,
                        live: 0,
                        bytes: 0,
                        serial: 0,
                    };
                    m += 1;
                }
                self.nsegs.set(m);
                end
            }
        };
        self.rewind(target);
        self.load_top();
        LaneReset {
            reclaimed: cur - target,
            escaped_blocks: if highest.is_some() { live } else { 0 },
            escaped_bytes: if highest.is_some() { bytes } else { 0 },
            untracked: false,
        }
    }

    /// Moves the bump pointer back to logical position `pos`, parking the
    /// chunks above it on the spare list. In guard mode, everything above the
    /// new bump pointer is poisoned and protected.
    fn rewind(&self, pos: u64) {
        let mut chunk = self.chunk.get();
        if chunk.is_null() {
            return;
        }
        self.note_high_water();
        let guarded = self.core().guard;
        let original = chunk;
        // SAFETY: every chunk in the chain belongs to this lane; the chain
        // ends at the home chunk (or the first chunk), whose base is 0.
        unsafe {
            while (*chunk).base_pos.get() > pos {
                let prev = (*chunk).prev.get();
                if prev.is_null() {
                    break;
                }
                if guarded {
                    let data = ChunkHeader::data(chunk);
                    let dirty = chunk as usize + (*chunk).clean_from.get();
                    guard::reclaim(
                        chunk,
                        chunk.cast::<u8>().wrapping_add(data - chunk as usize),
                        dirty,
                    );
                }
                (*chunk).fill.set((*chunk).start.get());
                (*chunk).prev.set(self.spare.get());
                self.spare.set(chunk);
                chunk = prev;
            }
            let offset = (*chunk).start.get() + (pos - (*chunk).base_pos.get()) as usize;
            if chunk != original {
                self.enter_chunk(chunk, offset);
            } else {
                self.bump.set(chunk.cast::<u8>().wrapping_add(offset));
            }
            if guarded {
                let dirty = (chunk as usize + (*chunk).clean_from.get()).max(self.hw.get());
                let usable = guard::reclaim(chunk, self.bump.get(), dirty);
                self.limit.set(usable);
            }
        }
    }

    /// Live blocks and bytes in all segments. Owner only, after [`Lane::drain`].
    pub(crate) fn live(&self) -> (u64, u64) {
        self.flush_top();
        let n = self.nsegs.get();
        self.segs_mut()[..n].iter().fold((0u64, 0u64), |(l, b), s| {
            (l.wrapping_add(s.live), b.wrapping_add(s.bytes))
        })
    }

    /// A full snapshot. Owner only.
    pub(crate) fn stats(&self) -> LaneStats {
        self.drain();
        self.note_high_water();
        let (live_blocks, live_bytes) = self.live();
        let (mut chunk_bytes, mut chunks) = (0u64, 0u64);
        self.for_each_chunk(|c| {
            // SAFETY: chunks of a lane we hold.
            chunk_bytes += unsafe { (*c).size } as u64;
            chunks += 1;
        });
        LaneStats {
            allocs: self.allocs(),
            bytes: self.bytes_requested(),
            in_use: self.pos(),
            peak: self.peak.get().max(self.pos()),
            live_blocks,
            live_bytes,
            chunk_bytes,
            chunks,
        }
    }

    /// Calls `f` on every chunk of the lane: the chain and the spares.
    fn for_each_chunk(&self, mut f: impl FnMut(*mut ChunkHeader)) {
        let mut c = self.chunk.get();
        while !c.is_null() {
            f(c);
            // SAFETY: chain links of chunks owned by this lane.
            c = unsafe { (*c).prev.get() };
        }
        let mut s = self.spare.get();
        while !s.is_null() {
            f(s);
            // SAFETY: spare links of chunks owned by this lane.
            s = unsafe { (*s).prev.get() };
        }
    }

    /// Gives the spare chunks back to the space. Returns their total size.
    pub(crate) fn release_spares(&self) -> usize {
        let mut total = 0;
        let mut s = self.spare.get();
        while !s.is_null() {
            // SAFETY: spare chunks hold no live block and belong to this lane.
            let next = unsafe { (*s).prev.get() };
            total += unsafe { (*s).size };
            space::release(s);
            s = next;
        }
        self.spare.set(ptr::null_mut());
        total
    }

    /// Gives every chunk except the home chunk back to the space. Returns
    /// their total size. Only for arena destruction: no block may be live.
    pub(crate) fn release_chunks(&self) -> usize {
        self.note_high_water();
        let mut total = self.release_spares();
        let mut c = self.chunk.get();
        while !c.is_null() {
            // SAFETY: chain chunks of this lane; none holds a live block.
            let prev = unsafe { (*c).prev.get() };
            if c != self.home {
                total += unsafe { (*c).size };
                space::release(c);
            }
            c = prev;
        }
        self.chunk.set(ptr::null_mut());
        self.limit.set(0);
        total
    }

    pub(crate) fn home(&self) -> *mut ChunkHeader {
        self.home
    }
}
