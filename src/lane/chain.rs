//! The chunk chain of a lane: moving to a new or spare chunk, moving back
//! (after tip frees or a reset), logical positions, and giving chunks back
//! to the space.
//!
//! A lane's chunks form a chain through `ChunkHeader::prev`, newest first.
//! A chunk's first data byte sits at the logical position where its
//! predecessor's used part ended (`base_pos`). Chunks above the bump
//! position wait on the lane's spare list (linked through `prev` too).
//!
//! Every function here is owner only: it is called only from the lane's
//! owner-only methods, whose callers hold the claim.

use core::ptr;
use core::sync::atomic::Ordering;

use super::{Lane, MAX_CHUNK, granule};
use crate::chunk::{ChunkHeader, HEADER};
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

    /// Moves to a chunk with room for the request: a spare one if it fits,
    /// else a new one from the space (within the arena's capacity).
    pub(super) fn refill(&self, size: usize, align: usize) -> bool {
        let pad = if align > HEADER { align } else { 0 };
        let need = match HEADER
            .checked_add(granule(size))
            .and_then(|n| n.checked_add(pad))
        {
            Some(n) => n,
            None => return false,
        };
        let spare = self.take_spare(need);
        if !spare.is_null() {
            // SAFETY: a spare chunk is this lane's and not in the chain.
            unsafe { self.switch_to(spare) };
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
        // SAFETY: the chunk was just acquired for this lane.
        unsafe { self.switch_to(chunk) };
        true
    }

    /// Appends `chunk` to the chain and makes it current.
    ///
    /// # Safety
    /// `chunk` belongs to this lane and is not in its chain.
    unsafe fn switch_to(&self, chunk: *mut ChunkHeader) {
        let pos = self.pos();
        let old = self.chunk.get();
        if !old.is_null() {
            self.leave_chunk(old);
            // SAFETY: the lane's current chunk, which just left that role.
            self.below_used
                .set(self.below_used.get() + unsafe { used_of(old) });
        }
        // SAFETY: guaranteed by the caller.
        let size = unsafe {
            (*chunk).prev.set(old);
            (*chunk).base_pos.set(pos);
            let start = (*chunk).start.get();
            self.enter_chunk(chunk, start);
            (*chunk).size
        };
        // Every chunk starts a segment of its own, so that a reset can tell
        // which chunks hold no live block and give them back.
        self.flush_top();
        let _ = self.segments().push(pos, 0, chunk as usize);
        self.load_top();
        self.chain_bytes.set(self.chain_bytes.get() + size);
        self.touched.set(self.touched.get().saturating_add(size));
        // SAFETY: as above.
        unsafe { (*chunk).used_in.set(self.epoch.get()) };
    }

    /// Makes `chunk` current with the bump at offset `offset`.
    ///
    /// # Safety
    /// `chunk` belongs to this lane and `offset` lies within its data.
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
    pub(super) fn note_high_water(&self) {
        let chunk = self.chunk.get();
        if chunk.is_null() {
            return;
        }
        let bump = self.bump.get().addr();
        let high = self.high_water.get().max(bump);
        self.high_water.set(high);
        let c = chunk as usize;
        // SAFETY: `chunk` is this lane's current chunk.
        unsafe {
            let dirty = (high - c).max((*chunk).clean_from.get());
            (*chunk).clean_from.set(dirty);
            let top = self.below_used.get()
                + (high - ChunkHeader::data(chunk)) as u64
                + self.side_bytes.get();
            if top > self.peak.get() {
                self.peak.set(top);
            }
        }
    }

    /// Logical position of the bump pointer (bytes in use by this lane).
    pub(super) fn pos(&self) -> u64 {
        let chunk = self.chunk.get();
        if chunk.is_null() {
            return 0;
        }
        let bump = self.bump.get().addr();
        // SAFETY: `chunk` is this lane's current chunk.
        unsafe { (*chunk).base_pos.get() + (bump - ChunkHeader::data(chunk)) as u64 }
    }

    /// Logical position of an address inside one of this lane's chained
    /// chunks.
    ///
    /// # Safety
    /// `addr` lies in the data of a chunk of this lane's chain (for example,
    /// it is a live block of this lane).
    pub(super) unsafe fn pos_of(&self, addr: usize) -> u64 {
        let cur = self.chunk.get();
        let chunk = if !cur.is_null() && addr >= cur as usize && addr < self.limit.get() {
            cur
        } else {
            // SAFETY: the address is in one of this lane's chunks, so inside
            // the space.
            unsafe { space::chunk_of(ptr::without_provenance::<u8>(addr)) }
        };
        debug_assert!(!chunk.is_null(), "a live block's chunk is live");
        // SAFETY: the block is live, so its chunk is live and in this lane's chain.
        unsafe { (*chunk).base_pos.get() + (addr - ChunkHeader::data(chunk)) as u64 }
    }

    /// Recomputes `top_floor` and `retreat_at` after the current chunk or
    /// the top segment changed.
    pub(super) fn refresh_floor(&self) {
        let chunk = self.chunk.get();
        if self.tracking {
            // Every free of a tracked block must mark its header: no block
            // is freed on the fast path, and none at the tip.
            self.top_floor.set(usize::MAX);
            self.retreat_at.set(0);
            return;
        }
        if chunk.is_null() {
            self.top_floor.set(0);
            self.retreat_at.set(0);
            return;
        }
        // SAFETY: `chunk` is this lane's current chunk.
        let (data, base, prev) = unsafe {
            (
                ChunkHeader::data(chunk),
                (*chunk).base_pos.get(),
                (*chunk).prev.get(),
            )
        };
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

    /// The current chunk became empty through frees at the tip, and the top
    /// segment reaches into the previous chunk: continue there, and keep this
    /// chunk as a spare. Without this, a loop that frees everything it
    /// allocates but never resets would take a new chunk every time it
    /// crossed a chunk boundary.
    #[cold]
    pub(super) fn retreat(&self) {
        let chunk = self.chunk.get();
        self.note_high_water();
        self.flush_top();
        // SAFETY: the current chunk belongs to this lane.
        let base = unsafe { (*chunk).base_pos.get() };
        // The chunk's own segment is empty (its first block was freed at the
        // tip): drop it, or the lane cannot go back.
        if !self.segments().pop_chunk_top(chunk as usize, base) {
            self.load_top();
            return;
        }
        // SAFETY: the current chunk and its predecessor (non-null, or
        // `retreat_at` would be 0) belong to this lane.
        unsafe {
            let prev = (*chunk).prev.get();
            self.chain_bytes.set(self.chain_bytes.get() - (*chunk).size);
            self.push_spare(chunk);
            self.below_used.set(self.below_used.get() - used_of(prev));
            self.enter_chunk(prev, (*prev).fill.get());
        }
        self.load_top();
    }

    /// Bytes used in the chain: what lies below the bump pointers, chunk by
    /// chunk (positions may have gaps where chunks were given back), kept as
    /// `below_used` plus the current chunk's part.
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
                let end = if c == cur {
                    self.bump.get().addr() - c as usize
                } else {
                    (*c).fill.get()
                };
                total += end.saturating_sub((*c).start.get()) as u64;
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

    /// Takes the chunks that hold no live block, as the segment stack tells,
    /// out of the chain and makes them spares.
    pub(super) fn release_dead_chunks(&self) {
        // A tracking lane's list of block headers runs through every chunk
        // of its chain, dead blocks included, down to the oldest: a chunk
        // taken out of the middle and reused would put other data in that
        // list. Its dead chunks wait for a reset to rewind over them.
        if self.tracking || !self.segments().may_hold_dead_chunks() {
            return;
        }
        let cur = self.chunk.get();
        let mut found = [(0usize, 0u64); 16];
        let mut n = 0;
        for d in self.segments().dead_chunks() {
            if n == found.len() {
                break;
            }
            found[n] = d;
            n += 1;
        }
        for &(id, first_start) in &found[..n] {
            // Find the chunk in the chain, and the chunk above it.
            let mut above: *mut ChunkHeader = ptr::null_mut();
            let mut c = cur;
            while !c.is_null() && c as usize != id {
                above = c;
                // SAFETY: chain chunks of this lane.
                c = unsafe { (*c).prev.get() };
            }
            if c.is_null() || above.is_null() || c == self.home {
                continue;
            }
            // SAFETY: `c` and `above` are chain chunks of this lane; `c` is
            // not the current chunk (`above` is not null).
            unsafe {
                let prev = (*c).prev.get();
                // Only a chunk whose first segment starts at its own start:
                // no older segment reaches into it. And never the first chunk.
                if prev.is_null() || (*c).base_pos.get() != first_start {
                    continue;
                }
                (*above).prev.set(prev);
                self.below_used.set(self.below_used.get() - used_of(c));
                if self.core().guard {
                    let data = ChunkHeader::data(c);
                    let dirty = c as usize + (*c).clean_from.get();
                    guard_mode::reclaim(c, c.cast::<u8>().wrapping_add(data - c as usize), dirty);
                }
                self.chain_bytes.set(self.chain_bytes.get() - (*c).size);
                self.push_spare(c);
            }
            self.segments().drop_chunk(id);
        }
    }

    /// Moves the bump pointer back to logical position `pos`, parking the
    /// chunks above it on the spare list, and returns the position it
    /// reached. In guard mode, everything above the new bump pointer is
    /// poisoned and protected. No block at or above `pos` may be live.
    ///
    /// Positions have a gap wherever chunks left the chain (dead chunks go
    /// back as soon as their last block is freed). If `pos` lies in such a
    /// gap, or starts the chunk right above one, the bump pointer goes to the
    /// end of the chunk below the gap when `lower` allows it (the caller
    /// then starts the top segment there: nothing lives in the gap), and
    /// otherwise to the start of the chunk above it.
    pub(super) fn rewind(&self, pos: u64, lower: bool) -> u64 {
        let mut chunk = self.chunk.get();
        if chunk.is_null() {
            return pos;
        }
        self.note_high_water();
        let guarded = self.core().guard;
        let original = chunk;
        // SAFETY: every chunk in the chain belongs to this lane; the chain
        // ends at the home chunk (or the first chunk), whose base is 0; no
        // block above `pos` is live (the reset that calls this checked).
        unsafe {
            // `>=`: a chunk that starts exactly at `pos` holds nothing below
            // it, so the lane goes back to the end of the previous one, and a
            // big chunk taken at the very start does not stay current.
            while (*chunk).base_pos.get() >= pos {
                let prev = (*chunk).prev.get();
                if prev.is_null() || (!lower && (*prev).base_pos.get() + used_of(prev) < pos) {
                    break;
                }
                if guarded {
                    let data = ChunkHeader::data(chunk);
                    let dirty = chunk as usize + (*chunk).clean_from.get();
                    guard_mode::reclaim(
                        chunk,
                        chunk.cast::<u8>().wrapping_add(data - chunk as usize),
                        dirty,
                    );
                }
                self.chain_bytes.set(self.chain_bytes.get() - (*chunk).size);
                if chunk != original {
                    self.below_used.set(self.below_used.get() - used_of(chunk));
                }
                self.push_spare(chunk);
                chunk = prev;
            }
            let base = (*chunk).base_pos.get();
            // Where the chunk's content ends: a chunk below the current one
            // ends at its fill, the current one at the bump pointer.
            let used = if chunk == original {
                self.current_used()
            } else {
                used_of(chunk)
            };
            // At most the chunk's end (the gap case with `lower`), at least
            // its start (the gap case without).
            let reached = pos.clamp(base, base + used);
            debug_assert!(lower || reached >= pos, "a rewind went below its target");
            let offset = (*chunk).start.get() + (reached - base) as usize;
            if chunk != original {
                self.below_used.set(self.below_used.get() - used_of(chunk));
                self.enter_chunk(chunk, offset);
            } else {
                self.bump.set(chunk.cast::<u8>().wrapping_add(offset));
            }
            if guarded {
                let dirty = (chunk as usize + (*chunk).clean_from.get()).max(self.high_water.get());
                let usable = guard_mode::reclaim(chunk, self.bump.get(), dirty);
                self.limit.set(usable);
            }
            reached
        }
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

    /// Gives the spare chunks back to the space. Returns their total size.
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim.
    pub(crate) unsafe fn release_spares(&self) -> usize {
        self.trim_spares(0)
    }

    /// Keeps spare chunks while the lane's chunks add up to at most `target`
    /// bytes, and gives the others back to the space: first those the loop
    /// since the last reset used, smallest first, then the others, smallest
    /// first. Returns the bytes given back.
    pub(super) fn trim_spares(&self, target: usize) -> usize {
        // Live large blocks' chunks count as held too.
        let base = self.chain_bytes.get() + self.side_chunk_bytes.get();
        let epoch = self.epoch.get();
        // Pass 1: what the spares the last loop used take of the budget.
        let mut used_total = base;
        let mut s = self.spare.get();
        while !s.is_null() {
            // SAFETY: spare chunks belong to this lane.
            unsafe {
                let size = (*s).size;
                if (*s).used_in.get() == epoch && used_total.saturating_add(size) <= target {
                    used_total += size;
                }
                s = (*s).prev.get();
            }
        }
        // Pass 2, in one walk so that the kept list stays sorted: the used
        // spares decided as in pass 1, the others from what it left.
        let mut used_held = base;
        let mut other_held = used_total;
        let mut kept_head: *mut ChunkHeader = ptr::null_mut();
        let mut kept_tail: *mut ChunkHeader = ptr::null_mut();
        let mut released = 0;
        let mut s = self.spare.get();
        while !s.is_null() {
            // SAFETY: spare chunks hold no live block and belong to this lane.
            unsafe {
                let next = (*s).prev.get();
                let size = (*s).size;
                let held = if (*s).used_in.get() == epoch {
                    &mut used_held
                } else {
                    &mut other_held
                };
                if held.saturating_add(size) <= target {
                    *held += size;
                    (*s).prev.set(ptr::null_mut());
                    if kept_tail.is_null() {
                        kept_head = s;
                    } else {
                        (*kept_tail).prev.set(s);
                    }
                    kept_tail = s;
                } else {
                    released += size;
                    space::release(s);
                }
                s = next;
            }
        }
        self.spare.set(kept_head);
        if released > 0 && !self.core.is_null() {
            self.core().chunks_released(released);
            // Chunks taken from now on start again at the arena's chunk
            // size: after a spike, a loop that needs a little more than it
            // kept must not take (and then give back) a spike-sized chunk.
            self.next_chunk.set(self.base_chunk);
        }
        released
    }

    /// Adds a chunk acquired for this lane to its spares (an arena's initial
    /// capacity).
    ///
    /// # Safety
    /// Owner only (or the lane is not reachable by any other thread yet);
    /// `chunk` was acquired for this lane and is in no list.
    pub(crate) unsafe fn add_spare(&self, chunk: *mut ChunkHeader) {
        self.push_spare(chunk);
    }

    /// Puts a chunk that left the chain on the spare list, which is kept
    /// sorted by size, smallest first: a refill then takes the smallest
    /// spare that fits, and trimming keeps the smallest of those the last
    /// loop used, so that a steady loop settles on chunks its size after a
    /// spike.
    pub(super) fn push_spare(&self, chunk: *mut ChunkHeader) {
        // SAFETY: `chunk` and every spare chunk belong to this lane; the
        // chunk is in no list.
        unsafe {
            (*chunk).fill.set((*chunk).start.get());
            let size = (*chunk).size;
            let mut prev: *mut ChunkHeader = ptr::null_mut();
            let mut cur = self.spare.get();
            while !cur.is_null() && (*cur).size < size {
                prev = cur;
                cur = (*cur).prev.get();
            }
            (*chunk).prev.set(cur);
            if prev.is_null() {
                self.spare.set(chunk);
            } else {
                (*prev).prev.set(chunk);
            }
        }
    }

    /// Takes the smallest spare chunk of at least `need` bytes off the spare
    /// list, or returns null.
    pub(super) fn take_spare(&self, need: usize) -> *mut ChunkHeader {
        self.take_spare_within(need, usize::MAX, false)
    }

    /// Takes a spare chunk of `need` to `max` bytes off the spare list, the
    /// smallest one or, if `largest`, the largest one; or returns null.
    pub(super) fn take_spare_within(
        &self,
        need: usize,
        max: usize,
        largest: bool,
    ) -> *mut ChunkHeader {
        // The list is sorted by size, smallest first.
        let mut best: *mut ChunkHeader = ptr::null_mut();
        let mut best_prev: *mut ChunkHeader = ptr::null_mut();
        let mut prev: *mut ChunkHeader = ptr::null_mut();
        let mut cur = self.spare.get();
        // SAFETY: spare chunks belong to this lane.
        unsafe {
            while !cur.is_null() && (*cur).size <= max {
                if (*cur).size >= need {
                    best = cur;
                    best_prev = prev;
                    if !largest {
                        break;
                    }
                }
                prev = cur;
                cur = (*cur).prev.get();
            }
            if !best.is_null() {
                let next = (*best).prev.get();
                if best_prev.is_null() {
                    self.spare.set(next);
                } else {
                    (*best_prev).prev.set(next);
                }
            }
        }
        best
    }

    /// Gives every chunk except the home chunk back to the space. Returns
    /// their total size.
    ///
    /// # Safety
    /// Only for arena destruction: the arena's handle is gone, no block of
    /// the lane is live, and no thread can reach the lane any more.
    pub(crate) unsafe fn release_chunks(&self) -> usize {
        self.note_high_water();
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

/// Bytes used in a chunk that is not the current one: its `fill` past its
/// `start`.
///
/// # Safety
/// `c` is a chunk of a lane the calling thread holds.
unsafe fn used_of(c: *mut ChunkHeader) -> u64 {
    // SAFETY: guaranteed by the caller.
    unsafe { (*c).fill.get().saturating_sub((*c).start.get()) as u64 }
}
