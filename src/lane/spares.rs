//! A lane's spare chunks and its retained capacity.
//!
//! Chunks that hold no block wait on the spare list (linked through `prev`,
//! smallest first) for the next refill or large block. How much the lane
//! keeps is its *retained capacity*: about 1.1 times the largest *need* of
//! the loops before its last 8 resets (AutoscalingAllocBuffer.jl's rule),
//! at least the arena's initial capacity, at most its `max_retained`.
//!
//! A loop's need is the chunk memory it used: what was in use at the reset
//! before it, plus every chunk it took into use, each *once* (a chunk's
//! `used_in` says whether this loop took it already): a loop that takes and
//! frees the same spare a hundred times needs one chunk, and one that uses
//! large blocks of four sizes one after the other needs the four. A chunk
//! counts at its size, or at twice the size of a new chunk for what it
//! serves if that is smaller: a spare much larger than the request wanted (a
//! spike's, taken by a block that grows) does not make itself needed, so once the
//! spike is out of the window the retained capacity is the loop's own again
//! and the large spare goes.
//!
//! Spares never go beyond it for longer than one operation (invariant R2,
//! SAFETY.md): a free that makes a spare, a refill or a large block's
//! allocation (after they had their pick of the spares) and a reset trim the
//! spares to it at once. The first loop of an arena, with no reset behind it
//! yet, retains nothing beyond its initial capacity: its freed chunks go
//! back to the space (which keeps chunks under 1 MiB committed for any
//! arena, up to 64 MiB per process).
//!
//! Every function here is owner only.

use core::ptr;

use super::Lane;
use crate::arena_core::Retain;
use crate::chunk::ChunkHeader;
use crate::space;

impl Lane {
    /// The chunk memory this lane keeps after a reset: about 1.1 times the
    /// largest need of the last resets (as AutoscalingAllocBuffer.jl does),
    /// at least the arena's initial capacity, at most its bound.
    pub(super) fn retain_target(&self) -> usize {
        let core = self.core();
        match core.retain {
            Retain::All => usize::MAX,
            Retain::Auto { max } => {
                let need = self
                    .needs
                    .iter()
                    .map(core::cell::Cell::get)
                    .max()
                    .unwrap_or(0);
                let target = need.saturating_add(need / 10);
                target.max(core.initial_capacity).min(max)
            }
        }
    }

    /// Recomputes the retained capacity (the arena's initial capacity was
    /// just settled).
    ///
    /// # Safety
    /// Owner only (or the lane is not reachable by any other thread yet).
    pub(crate) unsafe fn update_retained(&self) {
        self.retained.set(self.retain_target());
    }

    /// Counts chunk `c`, just taken into use, in the need (once per loop):
    /// at its size, or at twice `fresh` (the size of a new chunk for the
    /// request; a refill takes any spare up to that) if smaller.
    pub(super) fn need_take(&self, c: *mut ChunkHeader, fresh: usize) {
        let epoch = self.epoch.get();
        // SAFETY: `c` is a chunk of this lane, taken into use by the caller.
        let (counted, first) = unsafe {
            let counted = (*c).size.min(fresh.saturating_mul(2));
            (*c).counted.set(counted);
            let first = (*c).used_in.get() != epoch;
            (*c).used_in.set(epoch);
            (counted, first)
        };
        self.in_use.set(self.in_use.get() + counted);
        if first {
            self.touched.set(self.touched.get().saturating_add(counted));
        }
    }

    /// Raises what chunk `c`, in use, counts for in the need to twice
    /// `fresh` (the size of a new chunk for what it holds now), within its
    /// size.
    pub(super) fn need_grow(&self, c: *mut ChunkHeader, fresh: usize) {
        // SAFETY: `c` is a chunk of this lane, in use.
        let (size, counted) = unsafe { ((*c).size, (*c).counted.get()) };
        let raised = size.min(fresh.saturating_mul(2));
        if raised > counted {
            // SAFETY: as above.
            unsafe { (*c).counted.set(raised) };
            self.in_use.set(self.in_use.get() + (raised - counted));
            self.touched
                .set(self.touched.get().saturating_add(raised - counted));
        }
    }

    /// Takes chunk `c`, which leaves use (the chain or the side chunks),
    /// out of the need.
    pub(super) fn need_leave(&self, c: *mut ChunkHeader) {
        // SAFETY: `c` is a chunk of this lane that was in use.
        let counted = unsafe { (*c).counted.get() };
        self.in_use.set(self.in_use.get() - counted);
    }

    /// Makes `c`, whose last block a free just released, a spare, and
    /// trims the spares to the retained capacity.
    pub(super) fn spare_after_free(&self, c: *mut ChunkHeader) {
        self.push_spare(c);
        self.trim_spares(self.retained.get());
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
    #[inline]
    pub(super) fn trim_spares(&self, target: usize) -> usize {
        // Live large blocks' chunks count as held too.
        let base = self.chain_bytes.get() + self.side_chunk_bytes.get();
        // Everything fits: both passes would keep every spare, in order.
        if base.saturating_add(self.spare_bytes.get()) <= target {
            return 0;
        }
        self.trim_spares_over(base, target)
    }

    /// [`Lane::trim_spares`] when the chunks add up to more than `target`;
    /// `base` is what the chain and the large blocks hold.
    #[inline(never)]
    fn trim_spares_over(&self, base: usize, target: usize) -> usize {
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
        self.spare_bytes.set(self.spare_bytes.get() - released);
        if released > 0 && !self.core.is_null() {
            self.core().chunks_released(released);
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
        // Under Miri, chunks are allocations of their own (see
        // `space/per_chunk.rs`) and a lane keeps none: a chunk that leaves
        // use is freed, so that a block still in use in it, or a block handed
        // out again from it, is an error Miri reports.
        #[cfg(miri)]
        {
            // SAFETY: the chunk holds no live block and is in no list.
            let size = unsafe { (*chunk).size };
            // SAFETY: as above; this lane owns it.
            unsafe { space::release(chunk) };
            if !self.core.is_null() {
                self.core().chunks_released(size);
            }
            return;
        }
        #[allow(unreachable_code)]
        // SAFETY: `chunk` and every spare chunk belong to this lane; the
        // chunk is in no list.
        unsafe {
            (*chunk).fill.set((*chunk).start.get());
            let size = (*chunk).size;
            self.spare_bytes.set(self.spare_bytes.get() + size);
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
                self.spare_bytes.set(self.spare_bytes.get() - (*best).size);
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
}
