//! Checkpoints on one lane: their marks, resets and snapshots.
//!
//! A reset to a checkpoint looks at the pieces from the checkpoint's mark
//! up (the rest of that chunk, then every newer chunk of the chain). If none
//! holds a live block, the bump pointer goes back to the mark and every newer
//! chunk leaves the chain. Otherwise the live blocks are an escape: they stay
//! where they are, every chunk above the highest live piece leaves the
//! chain, and the lane goes on right above that piece, behind a *floor*
//! mark that keeps what comes next apart from the escaped blocks.

use super::marks::{Counts, Mark, Piece};
use super::pieces::{first_of, used_of};
use super::{Lane, SiteTally};
use crate::checkpoints::CheckpointList;
use crate::chunk::ChunkHeader;
use crate::guard_mode;

/// Outcome of resetting one lane.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct LaneReset {
    pub(crate) reclaimed: u64,
    pub(crate) escaped_blocks: u64,
    pub(crate) escaped_bytes: u64,
    /// The lane held no mark for the checkpoint.
    pub(crate) untracked: bool,
    /// Chunk bytes given back to the space beyond the retained capacity.
    pub(crate) trimmed: u64,
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
    pub(crate) large_blocks: u64,
    pub(crate) large_bytes: u64,
    pub(crate) chunk_bytes: u64,
    pub(crate) chunks: u64,
}

/// Where a reset starts: a checkpoint's mark, or the very start of the
/// chain.
#[derive(Clone, Copy)]
struct From {
    chunk: *mut ChunkHeader,
    addr: usize,
    /// The index of the first mark at or above the start.
    mark: usize,
    /// The start chunk's first piece lies above the start (a full reset).
    whole_chunk: bool,
}

impl Lane {
    /// Brings the lane's marks in line with the arena's checkpoint list: the
    /// marks of checkpoints that are gone are removed (their pieces join the
    /// pieces below them), and checkpoints taken since the last sync get a
    /// mark at the bump pointer.
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim.
    pub(crate) unsafe fn sync(&self, checkpoints: &CheckpointList, generation: u64) {
        // Take in other threads' frees first, so that a new mark is not
        // placed above memory that is already dead.
        // SAFETY: owner only, as the caller.
        unsafe { self.drain() };
        self.flush();
        let mut removed = false;
        let mut i = self.marks().len();
        while i > 0 {
            i -= 1;
            let m = self.marks().all()[i];
            if m.serial != 0 && !checkpoints.is_active(m.serial) {
                self.remove_mark(i);
                removed = true;
            }
        }
        if removed {
            // The removals may have emptied the top piece down to a lower
            // floor: rewind before placing new marks, so that they sit as
            // low as they can (P4 in SAFETY.md).
            self.load();
            self.rewind_empty_top();
        }
        let c = self.chunk.get();
        // A lane with no chunk has no block: marks would have nothing to
        // tell apart, and a reset of a checkpoint it has no mark for changes
        // nothing on it.
        if !c.is_null() {
            // SAFETY: the current chunk is in the chain.
            let seq = unsafe { (*c).seq.get() };
            let mut pushed = 0;
            for serial in checkpoints.serials_after(self.seen_serial.get()) {
                let mark = Mark {
                    serial,
                    seq,
                    chunk: c,
                    addr: self.bump.get().addr(),
                    counts: Counts::default(),
                };
                // Without memory for the mark, the checkpoint is untracked
                // on this lane: its reset reclaims nothing here, and its
                // blocks count as the enclosing piece's.
                if self.marks().push(mark) {
                    pushed += 1;
                }
            }
            if pushed > 0 {
                // SAFETY: as above.
                unsafe { (*c).marks.set((*c).marks.get() + pushed) };
                // The top piece is the newest mark's: empty, at the bump.
                self.load();
            }
        }
        self.seen_serial.set(checkpoints.last_serial());
        self.seen_gen.set(generation);
    }

    /// Removes mark `i`; its piece joins the piece below it in its chunk.
    fn remove_mark(&self, i: usize) {
        let m = self.marks().all()[i];
        let c = m.chunk;
        // SAFETY: every mark lies in a chain chunk of this lane.
        unsafe {
            let mut first = first_of(c);
            self.marks().remove_into_lower(i, &mut first);
            super::pieces::set_first(c, first);
            (*c).marks.set((*c).marks.get() - 1);
        }
    }

    /// The generation of the checkpoint list this lane last synced with.
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim.
    pub(crate) unsafe fn seen_gen(&self) -> u64 {
        self.seen_gen.get()
    }

    /// Resets to the mark of checkpoint `serial`, or to the very start for
    /// `None`: reclaims everything above it if no block there is live;
    /// otherwise keeps the live blocks in place and reclaims what lies above
    /// the highest piece holding one. The escaped blocks of a lane that
    /// records allocation sites are added to `sites` (if given) by site.
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim.
    pub(crate) unsafe fn reset(
        &self,
        serial: Option<u64>,
        sites: Option<&mut SiteTally>,
    ) -> LaneReset {
        if self.spill_only {
            return LaneReset::default();
        }
        // SAFETY: owner only, as the caller.
        unsafe { self.drain() };
        self.flush();
        self.note_peak();
        let need = self.touched.get();
        let used_before = self.used_bytes();
        let from = match serial {
            Some(s) => match self.marks().find(s) {
                Some(k) => {
                    let m = self.marks().all()[k];
                    From {
                        chunk: m.chunk,
                        addr: m.addr,
                        mark: k,
                        whole_chunk: false,
                    }
                }
                None => {
                    return LaneReset {
                        untracked: true,
                        ..LaneReset::default()
                    };
                }
            },
            None => {
                let c = self.oldest();
                let addr = if c.is_null() {
                    0
                } else {
                    // SAFETY: a chain chunk of this lane.
                    unsafe { ChunkHeader::data(c) }
                };
                From {
                    chunk: c,
                    addr,
                    mark: 0,
                    whole_chunk: true,
                }
            }
        };
        let (escaped, high) = if from.chunk.is_null() {
            (Counts::default(), None)
        } else {
            self.pieces_above(from)
        };
        // Large blocks in chunks of their own that are still live escape
        // too, but pin only their own chunks.
        let (side_blocks, side_bytes) = self.side_escapes(serial);
        if let Some(sites) = sites
            && self.tracking
            && escaped.live + side_blocks > 0
        {
            self.tally_escapes(from.chunk, from.addr, serial, sites);
        }
        if !from.chunk.is_null() {
            match high {
                None => self.rewind_clean(from),
                Some((x, piece)) => self.rewind_escaped(from, x, piece),
            }
        }
        self.record_need(need);
        self.retained.set(self.retain_target());
        debug_assert!(
            self.in_use.get() <= self.chain_bytes.get() + self.side_chunk_bytes.get(),
            "in use {} > chain {} + side {}",
            self.in_use.get(),
            self.chain_bytes.get(),
            self.side_chunk_bytes.get()
        );
        self.touched.set(self.in_use.get());
        let trimmed = self.trim_spares(self.retained.get()) as u64;
        self.epoch.set(self.epoch.get().wrapping_add(1));
        LaneReset {
            reclaimed: used_before.saturating_sub(self.used_bytes()),
            escaped_blocks: escaped.live + side_blocks,
            escaped_bytes: escaped.bytes + side_bytes,
            untracked: false,
            trimmed,
        }
    }

    /// The live blocks in the pieces at or above `from`, and the highest
    /// piece holding one (its chunk and the piece), if any.
    fn pieces_above(&self, from: From) -> (Counts, Option<(*mut ChunkHeader, Piece)>) {
        let marks = self.marks().all();
        let cur = self.chunk.get();
        let mut total = Counts::default();
        let mut high = None;
        let mut i = from.mark;
        let mut c = from.chunk;
        loop {
            // SAFETY: chain chunks of this lane, from `from.chunk` up.
            let (seq, first) = unsafe { ((*c).seq.get(), first_of(c)) };
            if c != from.chunk || from.whole_chunk {
                total.add(first);
                if first.live != 0 {
                    high = Some((c, Piece::First));
                }
            }
            while i < marks.len() && marks[i].seq == seq {
                total.add(marks[i].counts);
                if marks[i].counts.live != 0 {
                    high = Some((c, Piece::Mark(i)));
                }
                i += 1;
            }
            if c == cur {
                return (total, high);
            }
            // SAFETY: as above; `c` is not the newest.
            c = unsafe { (*c).next.get() };
        }
    }

    /// A reset that found nothing live above `from`: the marks from there
    /// up go, every newer chunk leaves the chain, and the bump pointer goes
    /// back to `from`.
    fn rewind_clean(&self, from: From) {
        let marks = self.marks();
        for m in &marks.all()[from.mark..] {
            let c = m.chunk;
            // SAFETY: every mark lies in a chain chunk; its piece is empty.
            unsafe { (*c).marks.set((*c).marks.get() - 1) };
        }
        marks.truncate(from.mark);
        self.drop_chunks_above(from.chunk);
        // SAFETY: a chain chunk of this lane; `from.addr` lies in its data.
        self.resume(from.chunk, from.addr - from.chunk as usize);
    }

    /// A reset that found live blocks above `from`, the highest in piece
    /// `piece` of chunk `x`: the marks from `from` up go (their pieces join
    /// the pieces below them), except the mark right above that piece in
    /// `x`, which becomes a floor; chunks above `x`, and those between
    /// `from` and `x` that hold no live block, leave the chain; the lane
    /// goes on at the floor, or at the end of `x`'s used part behind a new
    /// floor.
    fn rewind_escaped(&self, from: From, x: *mut ChunkHeader, piece: Piece) {
        // SAFETY: a chain chunk of this lane.
        let x_seq = unsafe { (*x).seq.get() };
        let keep = self.marks().above(x_seq, piece);
        let mut i = self.marks().len();
        while i > from.mark {
            i -= 1;
            if Some(i) == keep {
                self.marks().get_mut(i).serial = 0;
            } else {
                self.remove_mark(i);
            }
        }
        self.drop_chunks_above(x);
        let resume_at = match keep {
            // Every mark from `from.mark` to `keep` was removed.
            Some(_) => self.marks().all()[from.mark].addr - x as usize,
            // SAFETY: a chain chunk of this lane.
            None if x == self.chunk.get() => self.bump.get().addr() - x as usize,
            // SAFETY: as above; not the current chunk.
            None => unsafe { (*x).fill.get() },
        };
        self.resume(x, resume_at);
        if keep.is_none() {
            // The top piece holds the escaped blocks: a floor at the bump
            // pointer keeps the next allocations apart from them. Without
            // memory for it, they share the piece (reclaimed once all die).
            let mark = Mark {
                serial: 0,
                seq: x_seq,
                chunk: x,
                addr: self.bump.get().addr(),
                counts: Counts::default(),
            };
            if self.marks().push(mark) {
                // SAFETY: as above.
                unsafe { (*x).marks.set((*x).marks.get() + 1) };
                self.load();
            }
        }
        // Chunks between `from` and `x` whose blocks are all dead leave the
        // chain, newest first, so that their marks move up to a chunk that
        // stays.
        if from.chunk != x {
            // SAFETY: chain chunks of this lane, from below `x` down to
            // `from.chunk`.
            let mut c = unsafe { (*x).prev.get() };
            loop {
                // SAFETY: as above.
                let prev = unsafe { (*c).prev.get() };
                if self.chunk_is_dead(c) {
                    self.release_chunk(c);
                }
                if c == from.chunk {
                    break;
                }
                c = prev;
            }
        }
    }

    /// Takes every chunk above `keep` out of the chain and makes it a spare
    /// (none holds a live block or a mark). The current chunk may be among
    /// them: the caller then makes `keep` current.
    #[inline(always)]
    fn drop_chunks_above(&self, keep: *mut ChunkHeader) {
        let cur = self.chunk.get();
        if cur != keep {
            self.drop_chunks_between(cur, keep);
        }
    }

    /// [`Lane::drop_chunks_above`] when `keep` is not the current chunk
    /// `cur`.
    #[inline(never)]
    fn drop_chunks_between(&self, cur: *mut ChunkHeader, keep: *mut ChunkHeader) {
        let guarded = self.core().guard;
        let mut c = cur;
        while c != keep {
            // SAFETY: chain chunks of this lane above `keep`, holding no
            // live block (the reset checked).
            unsafe {
                let prev = (*c).prev.get();
                debug_assert!((*c).marks.get() == 0, "a mark above the reset's target");
                if c == cur {
                    self.note_peak();
                } else {
                    self.below_used.set(self.below_used.get() - used_of(c));
                }
                if guarded {
                    let data = ChunkHeader::data(c);
                    let dirty = c as usize + (*c).clean_from.get();
                    guard_mode::reclaim(c, c.cast::<u8>().wrapping_add(data - c as usize), dirty);
                }
                self.chain_bytes.set(self.chain_bytes.get() - (*c).size);
                self.need_leave(c);
                (*prev).next.set(core::ptr::null_mut());
                self.push_spare(c);
                c = prev;
            }
        }
        // `keep` is the newest chunk now; `resume` makes it current.
        // SAFETY: as above.
        unsafe { (*keep).next.set(core::ptr::null_mut()) };
    }

    /// Makes chain chunk `c` (the newest) current with the bump pointer at
    /// `offset`, below where it was: in guard mode, what lies above is
    /// poisoned and protected.
    fn resume(&self, c: *mut ChunkHeader, offset: usize) {
        if c != self.chunk.get() {
            // SAFETY: a chain chunk of this lane, below the current one until
            // now, so counted in `below_used`; `offset` lies in its data.
            unsafe {
                self.below_used.set(self.below_used.get() - used_of(c));
                self.enter_chunk(c, offset);
            }
        } else {
            let bump = self.bump.get();
            if bump.addr() > self.high_water.get() {
                self.high_water.set(bump.addr());
            }
            self.bump.set(c.cast::<u8>().wrapping_add(offset));
        }
        if self.core().guard {
            // SAFETY: the lane's current chunk; nothing at or above the bump
            // pointer is live.
            unsafe {
                let dirty = (c as usize + (*c).clean_from.get()).max(self.high_water.get());
                let usable = guard_mode::reclaim(c, self.bump.get(), dirty);
                self.limit.set(usable);
            }
        }
        self.load();
        self.rewind_empty_top();
    }

    /// Remembers what the loop before this reset needed.
    fn record_need(&self, need: usize) {
        let i = self.needs_next.get();
        self.needs[i].set(need);
        self.needs_next.set((i + 1) % self.needs.len());
    }

    /// Gives every spare chunk back to the space now. Returns the bytes.
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim.
    pub(crate) unsafe fn trim(&self) -> usize {
        if self.spill_only {
            return 0;
        }
        self.trim_spares(0)
    }

    /// Live blocks and bytes (after [`Lane::drain`]).
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim.
    pub(crate) unsafe fn live(&self) -> (u64, u64) {
        self.flush();
        let c = self.chain_counts();
        (
            c.live + self.side_live.get(),
            c.bytes + self.side_bytes.get(),
        )
    }

    /// A full snapshot.
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim.
    pub(crate) unsafe fn stats(&self) -> LaneStats {
        // SAFETY: owner only, as the caller.
        let (live_blocks, live_bytes) = unsafe {
            self.drain();
            self.live()
        };
        self.note_peak();
        let (mut chunk_bytes, mut chunks) = (0u64, 0u64);
        self.for_each_chunk(|c| {
            // SAFETY: chunks of a lane we hold.
            chunk_bytes += unsafe { (*c).size } as u64;
            chunks += 1;
        });
        let in_use = self.used_bytes() + self.side_bytes.get();
        LaneStats {
            allocs: self.allocs.get(),
            bytes: self.bytes.get(),
            in_use,
            peak: self.peak.get().max(in_use),
            live_blocks,
            live_bytes,
            large_blocks: self.side_live.get(),
            large_bytes: self.side_bytes.get(),
            chunk_bytes,
            chunks,
        }
    }
}

/// What a chunk is to its lane (see [`Lane::chunk_infos`]).
#[cfg(feature = "fault-injection")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkKind {
    /// The current chunk of the chain.
    Current,
    /// The home chunk (it holds the lane's own memory), not current.
    Home,
    /// Another chunk of the chain.
    Chain,
    /// A spare chunk (no block).
    Spare,
    /// A side chunk holding one large block.
    Large,
}

/// A chunk a lane holds, for bumper's own tests.
#[cfg(feature = "fault-injection")]
#[derive(Clone, Copy, Debug)]
pub struct ChunkInfo {
    /// An id of the lane (its address).
    pub lane: usize,
    /// The chunk's first byte.
    pub base: usize,
    /// Its size in bytes.
    pub size: usize,
    /// What it is to the lane.
    pub kind: ChunkKind,
}

#[cfg(feature = "fault-injection")]
impl Lane {
    /// Calls `f` with every chunk of the lane. Returns the retained capacity
    /// it aims for.
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim.
    pub(crate) unsafe fn chunk_infos(&self, f: &mut dyn FnMut(ChunkInfo)) -> usize {
        if self.spill_only {
            return 0;
        }
        // SAFETY: owner only, as the caller.
        unsafe { self.drain() };
        let lane = self as *const Lane as usize;
        let cur = self.chunk.get();
        let info = |c: *mut ChunkHeader, kind| ChunkInfo {
            lane,
            base: c as usize,
            // SAFETY: chunks of this lane.
            size: unsafe { (*c).size },
            kind,
        };
        let mut c = cur;
        while !c.is_null() {
            let kind = if c == cur {
                ChunkKind::Current
            } else if c == self.home {
                ChunkKind::Home
            } else {
                ChunkKind::Chain
            };
            f(info(c, kind));
            // SAFETY: chain links of this lane.
            c = unsafe { (*c).prev.get() };
        }
        let mut s = self.spare.get();
        while !s.is_null() {
            f(info(s, ChunkKind::Spare));
            // SAFETY: spare links of this lane.
            s = unsafe { (*s).prev.get() };
        }
        self.for_each_side(|c| f(info(c, ChunkKind::Large)));
        self.retained.get()
    }
}
