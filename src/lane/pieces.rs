//! Live counts per piece: frees that the fast path does not take, shrinking
//! below the top piece, and the chunks that leave the chain when their last
//! block dies.
//!
//! A chunk of the chain is cut into pieces by the marks that lie in it
//! (`marks.rs`). Its first piece's counts are in its header (`live`,
//! `bytes`); each mark's piece's in the mark. The top piece (the current
//! chunk's last) is counted in the lane's hot cells instead: [`Lane::flush`]
//! writes them to where that piece is stored, [`Lane::load`] reads them
//! back after the pieces changed. Every function here that reads or changes
//! a piece's counts brackets its work with the two.
//!
//! Every function here is owner only.

use super::Lane;
use super::marks::{Counts, Piece};
use crate::chunk::ChunkHeader;
use crate::guard_mode;

/// The counts of a chunk's first piece.
///
/// # Safety
/// `c` is a chunk of the chain of a lane the calling thread holds.
pub(super) unsafe fn first_of(c: *mut ChunkHeader) -> Counts {
    // SAFETY: guaranteed by the caller.
    unsafe {
        Counts {
            live: (*c).live.get(),
            bytes: (*c).bytes.get(),
        }
    }
}

/// Stores the counts of a chunk's first piece.
///
/// # Safety
/// As for [`first_of`].
pub(super) unsafe fn set_first(c: *mut ChunkHeader, counts: Counts) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        (*c).live.set(counts.live);
        (*c).bytes.set(counts.bytes);
    }
}

/// Bytes used in a chunk that is not the current one: its `fill` past its
/// `start`.
///
/// # Safety
/// As for [`first_of`].
pub(super) unsafe fn used_of(c: *mut ChunkHeader) -> u64 {
    // SAFETY: guaranteed by the caller.
    unsafe { (*c).fill.get().saturating_sub((*c).start.get()) as u64 }
}

impl Lane {
    /// Writes the hot counts of the top piece to where the piece is stored.
    pub(super) fn flush(&self) {
        let c = self.chunk.get();
        if c.is_null() {
            return;
        }
        let counts = Counts {
            live: self.top_live.get(),
            bytes: self.top_bytes.get(),
        };
        // SAFETY: the current chunk is in this lane's chain.
        let seq = unsafe { (*c).seq.get() };
        let marks = self.marks();
        match marks.top() {
            Some(m) if m.seq == seq => {
                let i = marks.len() - 1;
                marks.get_mut(i).counts = counts;
            }
            // SAFETY: as above.
            _ => unsafe { set_first(c, counts) },
        }
    }

    /// Reads the top piece's counts into the hot cells, and its floor, after
    /// the pieces or the current chunk changed.
    pub(super) fn load(&self) {
        let c = self.chunk.get();
        if c.is_null() {
            self.top_live.set(0);
            self.top_bytes.set(0);
            self.floor.set(0);
            self.top_floor.set(0);
            return;
        }
        // SAFETY: the current chunk is in this lane's chain.
        let (seq, data) = unsafe { ((*c).seq.get(), ChunkHeader::data(c)) };
        let (counts, floor) = match self.marks().top() {
            Some(m) if m.seq == seq => (m.counts, m.addr),
            // SAFETY: as above.
            _ => (unsafe { first_of(c) }, data),
        };
        self.top_live.set(counts.live);
        self.top_bytes.set(counts.bytes);
        self.floor.set(floor);
        // Every free of a tracked block must mark its header: none takes the
        // fast path.
        self.top_floor
            .set(if self.tracking { usize::MAX } else { floor });
    }

    /// If the top piece holds no live block, the bump pointer goes back to
    /// its floor (P4 in SAFETY.md). Out of line: the fast path of a free calls
    /// it only when the free emptied the top piece.
    #[inline(never)]
    pub(super) fn rewind_empty_top(&self) {
        let bump = self.bump.get();
        if self.top_live.get() == 0 && bump.addr() > self.floor.get() {
            if bump.addr() > self.high_water.get() {
                self.high_water.set(bump.addr());
            }
            self.bump.set(bump.with_addr(self.floor.get()));
        }
    }

    /// Accounts for the free of a block at `addr` in chunk `c` of the chain
    /// that the fast path did not take: below the top piece, in an older
    /// chunk, or any block of a tracking lane. An emptied piece lets go of
    /// the floors above it; an emptied chunk leaves the chain; an emptied top
    /// piece rewinds the bump pointer.
    ///
    /// # Safety
    /// `c` is the chain chunk holding the live block at `addr`, of `rounded`
    /// bytes, which the caller gives up.
    pub(super) unsafe fn account_free(&self, c: *mut ChunkHeader, addr: usize, rounded: u64) {
        // SAFETY: a chain chunk of this lane (caller contract).
        let (seq, nmarks) = unsafe { ((*c).seq.get(), (*c).marks.get()) };
        let current = c == self.chunk.get();
        if !current && nmarks == 0 {
            // The common case off the fast path: an older chunk with one
            // piece, whose header holds its counts.
            // SAFETY: as above.
            let mut first = unsafe { first_of(c) };
            first.sub_block(rounded);
            // SAFETY: as above.
            unsafe { set_first(c, first) };
            if first.live == 0 {
                self.release_chunk(c);
            }
            return;
        }
        self.flush();
        let marks = self.marks();
        let piece = if nmarks == 0 {
            Piece::First
        } else {
            marks.piece_of(seq, addr)
        };
        // SAFETY: as above.
        let mut first = unsafe { first_of(c) };
        match piece {
            Piece::First => first.sub_block(rounded),
            Piece::Mark(i) => marks.get_mut(i).counts.sub_block(rounded),
        }
        let removed = marks.settle(seq, piece, &mut first);
        // SAFETY: as above.
        unsafe {
            set_first(c, first);
            (*c).marks.set(nmarks - removed);
        }
        let dead = !current && marks.chunk_is_empty(seq, first);
        self.load();
        if dead {
            self.release_chunk(c);
        } else if current {
            self.rewind_empty_top();
        }
    }

    /// Accounts for a block at `addr` in chain chunk `c`, not in the top
    /// piece, that shrank in place by `by` bytes.
    ///
    /// # Safety
    /// `c` is the chain chunk holding the live block at `addr`.
    pub(super) unsafe fn account_shrink(&self, c: *mut ChunkHeader, addr: usize, by: u64) {
        self.flush();
        // SAFETY: a chain chunk of this lane (caller contract).
        let seq = unsafe { (*c).seq.get() };
        match self.marks().piece_of(seq, addr) {
            Piece::Mark(i) => {
                let m = self.marks().get_mut(i);
                m.counts.bytes = m.counts.bytes.wrapping_sub(by);
            }
            // SAFETY: as above.
            Piece::First => unsafe { (*c).bytes.set((*c).bytes.get().wrapping_sub(by)) },
        }
        self.load();
    }

    /// Whether chain chunk `c` holds no live block (its top piece's hot
    /// counts flushed, if it is the current chunk).
    pub(super) fn chunk_is_dead(&self, c: *mut ChunkHeader) -> bool {
        // SAFETY: a chain chunk of this lane.
        let (seq, first, nmarks) = unsafe { ((*c).seq.get(), first_of(c), (*c).marks.get()) };
        first.live == 0 && (nmarks == 0 || self.marks().chunk_is_empty(seq, first))
    }

    /// Takes chunk `c`, which holds no live block and is not the current
    /// one, out of the chain (P5 in SAFETY.md). Its marks (checkpoints that
    /// lie in it) move to the start of the next chunk: nothing lies between
    /// them and it any more. The chunk becomes a spare. The home chunk
    /// (which holds the lane's own memory) stays in the chain.
    pub(super) fn release_chunk(&self, c: *mut ChunkHeader) {
        debug_assert!(c != self.chunk.get(), "the current chunk leaves the chain");
        if c == self.home {
            return;
        }
        self.note_peak();
        // SAFETY: `c` and its neighbours are chain chunks of this lane; `c`
        // is not the newest, so `next` is not null.
        unsafe {
            let (prev, next) = ((*c).prev.get(), (*c).next.get());
            if !prev.is_null() {
                (*prev).next.set(next);
            }
            (*next).prev.set(prev);
            let nmarks = (*c).marks.get();
            if nmarks > 0 {
                self.flush();
                let mut next_first = first_of(next);
                let moved = self.marks().move_to_next(
                    (*c).seq.get(),
                    (*next).seq.get(),
                    next,
                    ChunkHeader::data(next),
                    &mut next_first,
                );
                set_first(next, next_first);
                (*next).marks.set((*next).marks.get() + moved);
                (*c).marks.set(0);
                self.load();
            }
            self.below_used.set(self.below_used.get() - used_of(c));
            self.chain_bytes.set(self.chain_bytes.get() - (*c).size);
            self.need_leave(c);
            if self.core().guard {
                let data = ChunkHeader::data(c);
                let dirty = c as usize + (*c).clean_from.get();
                guard_mode::reclaim(c, c.cast::<u8>().wrapping_add(data - c as usize), dirty);
            }
        }
        self.spare_after_free(c);
    }

    /// Records, before `bytes_in_use` may go down (a chunk leaves the chain,
    /// a large block is freed, the bump pointer moves back other than by a
    /// free), the bytes in use at their highest since the last note, and
    /// how far the current chunk may be dirty. The fast path only moves
    /// `high_water` up, so the peak between two notes is the one computed
    /// here: exact.
    pub(super) fn note_peak(&self) {
        let chunk = self.chunk.get();
        if chunk.is_null() {
            let side = self.side_bytes.get();
            if side > self.peak.get() {
                self.peak.set(side);
            }
            return;
        }
        let bump = self.bump.get().addr();
        let high = self.high_water.get().max(bump);
        let c = chunk as usize;
        // SAFETY: `chunk` is this lane's current chunk.
        unsafe {
            let dirty = (high - c).max((*chunk).clean_from.get());
            (*chunk).clean_from.set(dirty);
            self.entry_clean.set(c + dirty);
            let top = self.below_used.get()
                + (high - ChunkHeader::data(chunk)) as u64
                + self.side_bytes.get();
            if top > self.peak.get() {
                self.peak.set(top);
            }
        }
        self.high_water.set(bump);
    }

    /// Bytes used in the chain: below the bump pointers, chunk by chunk.
    pub(super) fn used_bytes(&self) -> u64 {
        let used = self.below_used.get() + self.current_used();
        #[cfg(debug_assertions)]
        assert_eq!(
            used,
            self.walked_used_bytes(),
            "the used bytes below the current chunk are out of step"
        );
        used
    }

    /// [`Lane::used_bytes`], summed over the chain, to check the count.
    #[cfg(debug_assertions)]
    fn walked_used_bytes(&self) -> u64 {
        let mut total = 0u64;
        let cur = self.chunk.get();
        let mut c = cur;
        while !c.is_null() {
            // SAFETY: chain chunks of this lane.
            unsafe {
                total += if c == cur {
                    self.current_used()
                } else {
                    used_of(c)
                };
                c = (*c).prev.get();
            }
        }
        total
    }

    /// Bytes used in the current chunk (below the bump pointer).
    pub(super) fn current_used(&self) -> u64 {
        let c = self.chunk.get();
        if c.is_null() {
            return 0;
        }
        // SAFETY: the lane's current chunk.
        let data = unsafe { ChunkHeader::data(c) };
        self.bump.get().addr().saturating_sub(data) as u64
    }

    /// The oldest chunk of the chain, or null.
    pub(super) fn oldest(&self) -> *mut ChunkHeader {
        let mut c = self.chunk.get();
        // SAFETY: chain chunks of this lane.
        while !c.is_null() && unsafe { !(*c).prev.get().is_null() } {
            // SAFETY: as above.
            c = unsafe { (*c).prev.get() };
        }
        c
    }

    /// Live blocks and bytes of the chain's pieces (hot counts flushed).
    pub(super) fn chain_counts(&self) -> Counts {
        let mut total = self.marks().counts();
        let mut c = self.chunk.get();
        while !c.is_null() {
            // SAFETY: chain chunks of this lane.
            unsafe {
                total.add(first_of(c));
                c = (*c).prev.get();
            }
        }
        total
    }
}
