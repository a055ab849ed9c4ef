//! Checkpoints on one lane: boundaries, resets and snapshots. The decisions
//! are made by the pure segment stack (`segments.rs`); this file moves the
//! bump pointer to match them.

use core::cell::Cell;

use super::segments::ResetPlan;
use super::{Lane, SiteTally};
use crate::arena_core::Retain;
use crate::checkpoints::CheckpointList;

/// Outcome of resetting one lane.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct LaneReset {
    pub(crate) reclaimed: u64,
    pub(crate) escaped_blocks: u64,
    pub(crate) escaped_bytes: u64,
    /// The lane held no boundary for the checkpoint (too many nested).
    pub(crate) untracked: bool,
    /// Chunk bytes given back to the space beyond the retained capacity.
    pub(crate) trimmed: u64,
    /// The escaped blocks by allocation site (tracking arenas only).
    pub(crate) sites: SiteTally,
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

impl Lane {
    /// Writes the hot top-segment counts into the stack.
    pub(super) fn flush_top(&self) {
        self.segments()
            .set_top(self.top_live.get(), self.top_bytes.get());
    }

    /// Reloads the hot top-segment counts from the stack.
    pub(super) fn load_top(&self) {
        let top = self.segments().top();
        self.top_live.set(top.live);
        self.top_bytes.set(top.bytes);
        self.top_start.set(top.start);
        self.refresh_floor();
    }

    /// Brings the lane's boundaries in line with the arena's checkpoint list:
    /// boundaries of checkpoints that are gone lose their tag, and checkpoints
    /// taken since the last sync get a boundary at the current position.
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim.
    pub(crate) unsafe fn sync(&self, checkpoints: &CheckpointList, generation: u64) {
        self.flush_top();
        self.segments()
            .untag_inactive(|serial| checkpoints.is_active(serial));
        let seen = self.seen_serial.get();
        let pos = self.pos();
        for serial in checkpoints.serials() {
            if serial > seen {
                // A full stack leaves this checkpoint untracked on this lane.
                let _ = self.segments().push(pos, serial, self.chunk.get() as usize);
            }
        }
        self.seen_serial.set(checkpoints.last_serial());
        self.seen_gen.set(generation);
        self.load_top();
    }

    /// The generation of the checkpoint list this lane last synced with.
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim.
    pub(crate) unsafe fn seen_gen(&self) -> u64 {
        self.seen_gen.get()
    }

    /// Resets to the boundary of checkpoint `serial`, or to the very start
    /// for `None`. Reclaims everything above it if no block there is live;
    /// otherwise keeps the live segments in place and reclaims only the dead
    /// tail above the highest live one.
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim.
    pub(crate) unsafe fn reset(&self, serial: Option<u64>) -> LaneReset {
        if self.spill_only {
            return LaneReset::default();
        }
        // SAFETY: owner only, as the caller.
        unsafe { self.drain() };
        self.flush_top();
        let need = self.touched.get();
        let cur = self.pos();
        // What the chain holds now: positions may have gaps where chunks
        // left it, so the reclaimed bytes are the difference in use, not in
        // position.
        let used_before = self.used_bytes();
        let (start, target, escaped_blocks, escaped_bytes, escaped) =
            match self.segments().plan_reset(serial, cur) {
                ResetPlan::Untracked => {
                    return LaneReset {
                        untracked: true,
                        ..LaneReset::default()
                    };
                }
                ResetPlan::Clean { target } => (target, target, 0, 0, false),
                ResetPlan::Escaped {
                    start,
                    target,
                    live,
                    bytes,
                } => (start, target, live, bytes, true),
            };
        debug_assert!(target <= cur, "a reset never moves the bump pointer up");
        // Large blocks in chunks of their own that are still live escape
        // too, but pin only their own chunks.
        let (side_blocks, side_bytes) = self.side_escapes(serial);
        let escaped_blocks = escaped_blocks + side_blocks;
        let escaped_bytes = escaped_bytes + side_bytes;
        let mut sites = SiteTally::default();
        if self.tracking {
            if escaped_blocks > 0 {
                sites = self.tally_escapes(start, serial);
            }
            self.cut_tracked(target);
        }
        // After an escape, the top segment opened at `target` may start
        // lower, at the end of the chunk below a gap (see `rewind`): the
        // escaped blocks all lie below that. A clean reset goes back to a
        // checkpoint, which lies in a chunk of the chain, so exactly there.
        let reached = self.rewind(target, escaped);
        if !self.segments().lower_top_start(reached) {
            // Escaped blocks lie below `reached`, so the segment under the
            // top one, which holds the highest of them, starts below it.
            crate::sys::fatal(
                "bumper: a reset went below the highest escaped block (internal error)",
            );
        }
        self.load_top();
        self.segments().set_top_chunk(self.chunk.get() as usize);
        self.release_dead_chunks();
        self.record_need(need);
        self.touched
            .set(self.chain_bytes.get() + self.side_chunk_bytes.get());
        let trimmed = self.trim_spares(self.retain_target()) as u64;
        self.epoch.set(self.epoch.get().wrapping_add(1));
        LaneReset {
            reclaimed: used_before.saturating_sub(self.used_bytes()),
            escaped_blocks,
            escaped_bytes,
            untracked: false,
            trimmed,
            sites,
        }
    }

    /// Remembers what the loop before this reset needed.
    fn record_need(&self, need: usize) {
        let i = self.needs_next.get();
        self.needs[i].set(need);
        self.needs_next.set((i + 1) % self.needs.len());
    }

    /// The chunk memory this lane keeps after a reset: about 1.1 times the
    /// largest need of the last resets (as AutoscalingAllocBuffer.jl does),
    /// at least the arena's initial capacity, at most its bound.
    fn retain_target(&self) -> usize {
        let core = self.core();
        match core.retain {
            Retain::All => usize::MAX,
            Retain::Auto { max } => {
                let need = self.needs.iter().map(Cell::get).max().unwrap_or(0);
                let target = need.saturating_add(need / 10);
                target.max(core.initial_capacity).min(max)
            }
        }
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

    /// Live blocks and bytes in all segments (after [`Lane::drain`]).
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim.
    pub(crate) unsafe fn live(&self) -> (u64, u64) {
        self.flush_top();
        let (blocks, bytes) = self.segments().live();
        (blocks + self.side_live.get(), bytes + self.side_bytes.get())
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
        self.note_high_water();
        let (mut chunk_bytes, mut chunks) = (0u64, 0u64);
        self.for_each_chunk(|c| {
            // SAFETY: chunks of a lane we hold.
            chunk_bytes += unsafe { (*c).size } as u64;
            chunks += 1;
        });
        LaneStats {
            allocs: self.allocs.get(),
            bytes: self.bytes.get(),
            in_use: self.used_bytes() + self.side_bytes.get(),
            peak: self
                .peak
                .get()
                .max(self.used_bytes() + self.side_bytes.get()),
            live_blocks,
            live_bytes,
            large_blocks: self.side_live.get(),
            large_bytes: self.side_bytes.get(),
            chunk_bytes,
            chunks,
        }
    }
}
