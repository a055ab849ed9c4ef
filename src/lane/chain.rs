//! The chunk chain of a lane: moving to a new or spare chunk, the spare
//! chunks and the retained capacity, and giving chunks back to the space.
//!
//! A lane's chunks form a chain through `ChunkHeader::prev`/`next`, oldest
//! first; each gets a sequence number (`seq`) when it joins, larger than
//! every earlier one, so that positions in the chain compare as
//! `(seq, address)`. Chunks that hold no block wait on the lane's spare
//! list (linked through `prev`), smallest first.
//!
//! Every function here is owner only: it is called only from the lane's
//! owner-only methods, whose callers hold the claim.

use core::ptr;
use core::sync::atomic::Ordering;

use super::marks::Counts;
use super::pieces::{set_first, used_of};
use super::{Lane, MAX_CHUNK, granule};
use crate::chunk::{ChunkHeader, HEADER, SLAB};
use crate::guard_mode;
use crate::space;

impl Lane {
    /// Guard mode: if the request would fit in the current chunk but runs
    /// into pages a reset protected, makes them usable again.
    pub(super) fn extend_limit(&self, size: usize, align: usize) -> bool {
        let chunk = self.chunk.get();
        if chunk.is_null() {
            return false;
        }
        // SAFETY: the current chunk is live and this lane's.
        let end = unsafe { ChunkHeader::end(chunk) };
        if self.limit.get() >= end {
            return false;
        }
        let bump = self.bump.get().addr();
        let p = bump.wrapping_add(bump.wrapping_neg() & (align - 1));
        let needed = p.wrapping_add(granule(size));
        if needed > end || needed < p {
            return false;
        }
        // SAFETY: the lane owns its current chunk.
        match unsafe { guard_mode::unprotect_to(chunk, needed) } {
            Some(limit) if limit >= needed => {
                self.limit.set(limit);
                true
            }
            _ => false,
        }
    }

    /// Moves to a chunk with room for the request: a spare one if one fits
    /// and is not much larger than a new chunk would be, else a new one from
    /// the space (within the arena's capacity).
    pub(super) fn refill(&self, size: usize, align: usize) -> bool {
        let pad = if align > HEADER { align } else { 0 };
        let Some(data) = granule(size).checked_add(pad) else {
            return false;
        };
        let Some(need) = data.checked_add(HEADER) else {
            return false;
        };
        let want = need.max(self.next_chunk_size());
        // A spare much larger than what is wanted (a spike's) would stay the
        // working chunk for good: at most twice the size of a new chunk, or
        // the capacity the arena was built to start with.
        let max = space::class_for(want)
            .map_or(usize::MAX, |c| (SLAB << c).saturating_mul(2))
            .max(self.core().initial_capacity);
        let fresh = space::class_for(want).map_or(usize::MAX, |c| SLAB << c);
        let spare = self.take_spare_within(need, max, false);
        if !spare.is_null() {
            // SAFETY: a spare chunk is this lane's and not in the chain.
            unsafe { self.switch_to(spare, fresh) };
            self.trim_spares(self.retained.get());
            return true;
        }
        // Chunks that died since the last refill wait as spares for it:
        // what it did not reuse goes back now (invariant R2).
        self.trim_spares(self.retained.get());
        let chunk = self
            .core()
            .acquire_chunk(want, self as *const Lane as *mut Lane);
        if chunk.is_null() {
            return false;
        }
        // SAFETY: the chunk was just acquired for this lane.
        unsafe { self.switch_to(chunk, fresh) };
        true
    }

    /// The size of the next new chunk: twice the bytes of the live blocks
    /// in the chain (rounded up to a power of two), from the arena's chunk
    /// size to [`MAX_CHUNK`]. A lane whose blocks stay live takes chunks
    /// about twice as large each time (few refills for a large live set);
    /// one whose blocks die keeps taking chunks of the arena's chunk size,
    /// even when a few of them live long enough to keep older chunks in the
    /// chain. Walks the chain's pieces: refills are rare.
    fn next_chunk_size(&self) -> usize {
        self.flush();
        let live = usize::try_from(self.chain_counts().bytes).unwrap_or(usize::MAX);
        live.saturating_mul(2)
            .checked_next_power_of_two()
            .unwrap_or(MAX_CHUNK)
            .clamp(self.base_chunk, MAX_CHUNK.max(self.base_chunk))
    }

    /// Makes `chunk` the newest chunk of the chain and the current one. The
    /// chunk that was current stays in the chain, unless it holds no live
    /// block any more. `fresh`: the size of a new chunk for the request.
    ///
    /// # Safety
    /// `chunk` belongs to this lane and is in no list.
    unsafe fn switch_to(&self, chunk: *mut ChunkHeader, fresh: usize) {
        let old = self.chunk.get();
        if !old.is_null() {
            self.flush();
            self.note_peak();
            // SAFETY: the lane's current chunk, which leaves that role.
            unsafe {
                (*old).fill.set(self.bump.get().addr() - old as usize);
                self.below_used.set(self.below_used.get() + used_of(old));
            }
        }
        // SAFETY: guaranteed by the caller.
        unsafe { self.join_chain(chunk, fresh) };
        if !old.is_null() && self.chunk_is_dead(old) {
            // Everything in it died while it was current.
            self.release_chunk(old);
        }
    }

    /// Appends `chunk` to the chain and makes it current, with an empty top
    /// piece at its first data byte. `fresh`: the size of a new chunk for
    /// the request it serves (what it counts for in the need, at most).
    ///
    /// # Safety
    /// `chunk` belongs to this lane and is in no list; the hot counts of the
    /// old current chunk, if any, were flushed and its `fill` recorded.
    pub(super) unsafe fn join_chain(&self, chunk: *mut ChunkHeader, fresh: usize) {
        let old = self.chunk.get();
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        // SAFETY: guaranteed by the caller.
        unsafe {
            (*chunk).prev.set(old);
            (*chunk).next.set(ptr::null_mut());
            if !old.is_null() {
                (*old).next.set(chunk);
            }
            (*chunk).seq.set(seq);
            (*chunk).marks.set(0);
            set_first(chunk, Counts::default());
            self.chain_bytes.set(self.chain_bytes.get() + (*chunk).size);
            self.need_take(chunk, fresh);
            self.enter_chunk(chunk, (*chunk).start.get());
        }
        self.load();
    }

    /// Makes `chunk` current with the bump at offset `offset`.
    ///
    /// # Safety
    /// `chunk` is in this lane's chain and `offset` lies within its data.
    pub(super) unsafe fn enter_chunk(&self, chunk: *mut ChunkHeader, offset: usize) {
        let c = chunk as usize;
        self.chunk.set(chunk);
        self.bump.set(chunk.cast::<u8>().wrapping_add(offset));
        // SAFETY: guaranteed by the caller.
        let (clean, usable) = unsafe {
            (
                (*chunk).clean_from.get(),
                (*chunk).guarded_from.get().min((*chunk).size),
            )
        };
        self.limit.set(c + usable);
        self.entry_clean.set(c + clean);
        self.high_water.set(c + offset);
    }

    /// Calls `f` on every chunk of the lane: the chain and the spares.
    pub(super) fn for_each_chunk(&self, mut f: impl FnMut(*mut ChunkHeader)) {
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
        self.for_each_side(f);
    }

    /// Gives every chunk except the home chunk back to the space. Returns
    /// their total size.
    ///
    /// # Safety
    /// Only for arena destruction: the arena's handle is gone, no block of
    /// the lane is live, and no thread can reach the lane any more.
    pub(crate) unsafe fn release_chunks(&self) -> usize {
        self.note_peak();
        self.marks().free();
        // SAFETY: nothing else can use the lane (caller contract).
        let mut total = unsafe { self.release_spares() };
        self.for_each_side(|c| {
            // SAFETY: no block of the lane is live any more, so neither is
            // the side chunk's (caller contract).
            unsafe {
                total += (*c).size;
                space::release(c);
            }
        });
        self.side.set(ptr::null_mut());
        let mut c = self.chunk.get();
        while !c.is_null() {
            // SAFETY: chain chunks of this lane; none holds a live block.
            unsafe {
                let prev = (*c).prev.get();
                if c != self.home {
                    total += (*c).size;
                    space::release(c);
                }
                c = prev;
            }
        }
        self.chunk.set(ptr::null_mut());
        self.limit.set(0);
        self.chain_bytes.set(0);
        self.in_use.set(0);
        self.below_used.set(0);
        total
    }

    /// The chunk that hosts this lane's own memory, or null.
    pub(crate) fn home(&self) -> *mut ChunkHeader {
        self.home
    }

    /// Whether the block at `addr` belongs to this lane.
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim. `addr` is a
    /// live block inside the space (`space::owns` holds).
    #[inline]
    pub(crate) unsafe fn owns_block(&self, addr: usize) -> bool {
        let cur = self.chunk.get();
        if !cur.is_null() && addr >= cur as usize && addr < self.limit.get() {
            return true;
        }
        // SAFETY: `owns(addr)` holds (caller contract).
        let chunk = unsafe { space::chunk_of(ptr::without_provenance::<u8>(addr)) };
        if chunk.is_null() {
            return false;
        }
        // SAFETY: a non-null table entry is a live chunk header.
        let owner = unsafe { (*chunk).owner.load(Ordering::Relaxed) };
        ptr::eq(owner.cast::<Lane>(), self)
    }
}
