//! The segment stack of a lane: pure bookkeeping, no memory access.
//!
//! Every byte a lane hands out has a logical *position* (see `lane/mod.rs`).
//! The stack cuts positions into *segments*: each starts at a position and
//! counts the blocks (and their bytes) allocated at or above it, and below
//! the next segment, that are still live. A user checkpoint pushes a segment
//! tagged with its serial. Resetting a checkpoint reclaims everything above
//! its segment's start only if no segment from there up has a live block;
//! otherwise the live blocks are kept in place (an *escape*) and only the
//! dead tail above the highest live segment is reclaimed.
//!
//! The lane keeps the top segment's counts in hot cells while it allocates
//! and writes them here ([`SegmentStack::set_top`]) before any operation
//! that reads the stack.
#![forbid(unsafe_code)]

/// Segments a lane can track at once (user checkpoints plus escape splits).
pub(crate) const MAX_SEGS: usize = 64;

/// One segment: a stretch of positions and the live blocks in it.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Logical position of the segment's first byte.
    pub(crate) start: u64,
    /// Live blocks in the segment.
    pub(crate) live: u64,
    /// Bytes (rounded to the 8-byte granule) of those blocks.
    pub(crate) bytes: u64,
    /// Serial of the user checkpoint that opened it; 0 for the root segment
    /// and for segments opened by an escape, at a chunk's start, or left by
    /// a checkpoint that is gone.
    pub(crate) serial: u64,
    /// The chunk the segment starts in (an opaque id; 0 if unknown).
    pub(crate) chunk: usize,
}

/// What [`SegmentStack::plan_reset`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResetPlan {
    /// The stack holds no segment for the checkpoint (too many were nested):
    /// nothing changes.
    Untracked,
    /// Nothing from the checkpoint up is live: the bump position moves back
    /// to `target`, the checkpoint's start.
    Clean { target: u64 },
    /// `live` blocks (`bytes` bytes) from the checkpoint (at position
    /// `start`) up are still live. They are kept; the bump position moves
    /// back to `target`, the end of the highest segment holding one of them.
    Escaped {
        start: u64,
        target: u64,
        live: u64,
        bytes: u64,
    },
}

/// A lane's segments, oldest first. Never empty: the root segment starts at
/// position 0.
#[derive(Clone, Debug)]
pub(crate) struct SegmentStack {
    segs: [Segment; MAX_SEGS],
    len: usize,
}

impl SegmentStack {
    /// A stack holding only the root segment.
    pub(crate) const fn new() -> Self {
        SegmentStack {
            segs: [Segment {
                start: 0,
                live: 0,
                bytes: 0,
                serial: 0,
                chunk: 0,
            }; MAX_SEGS],
            len: 1,
        }
    }

    /// Number of segments.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The newest segment.
    pub(crate) fn top(&self) -> Segment {
        self.segs[self.len - 1]
    }

    /// Stores the top segment's counts (kept in the lane's hot cells).
    pub(crate) fn set_top(&mut self, live: u64, bytes: u64) {
        let top = &mut self.segs[self.len - 1];
        top.live = live;
        top.bytes = bytes;
    }

    /// The segment below the top one that holds position `pos`.
    fn below_top(&mut self, pos: u64) -> Option<&mut Segment> {
        let n = self.len;
        self.segs[..n - 1].iter_mut().rev().find(|s| s.start <= pos)
    }

    /// Accounts for a freed block at `pos`, below the top segment's start.
    /// Returns whether that emptied a segment that no checkpoint opened and
    /// that starts in a known chunk: that chunk may now hold no live block
    /// (see [`dead_chunks`](Self::dead_chunks)).
    pub(crate) fn account_free(&mut self, pos: u64, bytes: u64) -> bool {
        if let Some(seg) = self.below_top(pos) {
            seg.live = seg.live.wrapping_sub(1);
            seg.bytes = seg.bytes.wrapping_sub(bytes);
            return seg.live == 0 && seg.serial == 0 && seg.chunk != 0;
        }
        false
    }

    /// Accounts for a block at `pos`, below the top segment's start, that
    /// shrank in place by `by` bytes.
    pub(crate) fn account_shrink(&mut self, pos: u64, by: u64) {
        if let Some(seg) = self.below_top(pos) {
            seg.bytes = seg.bytes.wrapping_sub(by);
        }
    }

    /// Opens a segment at position `start` for checkpoint `serial`. When the
    /// stack is full, first merges the lowest segment that no checkpoint
    /// opened into the one below it (losing precision, never safety).
    /// Returns false if the stack is full of checkpoints' segments.
    pub(crate) fn push(&mut self, start: u64, serial: u64, chunk: usize) -> bool {
        if self.len == MAX_SEGS && !self.compact() {
            return false;
        }
        self.segs[self.len] = Segment {
            start,
            live: 0,
            bytes: 0,
            serial,
            chunk,
        };
        self.len += 1;
        true
    }

    fn compact(&mut self) -> bool {
        let n = self.len;
        let Some(i) = (1..n).find(|&i| self.segs[i].serial == 0) else {
            return false;
        };
        let merged = self.segs[i];
        let below = &mut self.segs[i - 1];
        below.live = below.live.wrapping_add(merged.live);
        below.bytes = below.bytes.wrapping_add(merged.bytes);
        self.segs.copy_within(i + 1..n, i);
        self.len = n - 1;
        true
    }

    /// Untags the segments of checkpoints that are no longer active.
    pub(crate) fn untag_inactive(&mut self, is_active: impl Fn(u64) -> bool) {
        let n = self.len;
        for seg in &mut self.segs[1..n] {
            if seg.serial != 0 && !is_active(seg.serial) {
                seg.serial = 0;
            }
        }
    }

    /// Pops the top segment if it is empty, untagged and starts in `chunk`
    /// at position `at`: the implicit segment of a chunk the lane leaves
    /// backwards (see `Lane::retreat`). Returns whether it did.
    pub(crate) fn pop_chunk_top(&mut self, chunk: usize, at: u64) -> bool {
        let top = self.top();
        if self.len > 1 && top.serial == 0 && top.live == 0 && top.chunk == chunk && top.start == at
        {
            self.len -= 1;
            return true;
        }
        false
    }

    /// Moves the top segment's start down to `pos` if it is above: the bump
    /// position a reset reached, below its target where positions have a
    /// gap (no block lies between `pos` and the old start). Never below the
    /// segment under it: returns false, changing nothing, if `pos` is below
    /// that one's start.
    #[must_use]
    pub(crate) fn lower_top_start(&mut self, pos: u64) -> bool {
        let n = self.len;
        let floor = if n > 1 { self.segs[n - 2].start } else { 0 };
        let top = &mut self.segs[n - 1];
        if pos < top.start {
            if pos < floor {
                return false;
            }
            top.start = pos;
        }
        true
    }

    /// Sets the chunk id of the top segment.
    pub(crate) fn set_top_chunk(&mut self, chunk: usize) {
        self.segs[self.len - 1].chunk = chunk;
    }

    /// Chunks (below the top segment's) all of whose segments are dead and
    /// untagged, with the start of their first segment: candidates to give
    /// back. The lane checks that the first segment starts at the chunk's
    /// own start, so that no older segment reaches into it.
    pub(crate) fn dead_chunks(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        let n = self.len;
        let top_chunk = self.top().chunk;
        let mut i = 1;
        core::iter::from_fn(move || {
            while i < n.saturating_sub(1) {
                let first = i;
                let c = self.segs[i].chunk;
                let mut dead = c != 0 && c != top_chunk;
                while i < n - 1 && self.segs[i].chunk == c {
                    let s = self.segs[i];
                    dead &= s.live == 0 && s.serial == 0;
                    i += 1;
                }
                if dead {
                    return Some((c, self.segs[first].start));
                }
            }
            None
        })
    }

    /// Whether [`dead_chunks`](Self::dead_chunks) can find anything: it
    /// looks only at segments between the root and the top one.
    #[inline]
    pub(crate) fn may_hold_dead_chunks(&self) -> bool {
        self.len > 2
    }

    /// Removes the segments of chunk `chunk` (all dead, see
    /// [`dead_chunks`](Self::dead_chunks)): its positions hold no block.
    pub(crate) fn drop_chunk(&mut self, chunk: usize) {
        let n = self.len;
        let mut m = 1;
        for i in 1..n {
            if self.segs[i].chunk != chunk || i == n - 1 {
                self.segs[m] = self.segs[i];
                m += 1;
            }
        }
        self.len = m;
    }

    /// Live blocks and bytes in all segments.
    pub(crate) fn live(&self) -> (u64, u64) {
        self.segs[..self.len].iter().fold((0, 0), |(l, b), s| {
            (l.wrapping_add(s.live), b.wrapping_add(s.bytes))
        })
    }

    /// Decides a reset to checkpoint `serial` (`None`: to position 0) with
    /// the bump position at `cur`, and updates the stack to match: the
    /// checkpoint's segment and those above it are removed, or, if some of
    /// them hold live blocks, merged into one escape segment followed by a
    /// fresh segment at the new bump position.
    pub(crate) fn plan_reset(&mut self, serial: Option<u64>, cur: u64) -> ResetPlan {
        let n = self.len;
        let k = match serial {
            None => 0,
            Some(s) => match (1..n).find(|&i| self.segs[i].serial == s) {
                Some(i) => i,
                None => return ResetPlan::Untracked,
            },
        };
        let (mut live, mut bytes, mut highest) = (0u64, 0u64, None);
        for (i, seg) in self.segs[k..n].iter().enumerate() {
            live = live.wrapping_add(seg.live);
            bytes = bytes.wrapping_add(seg.bytes);
            if seg.live != 0 {
                highest = Some(k + i);
            }
        }
        match highest {
            None => {
                let target = self.segs[k].start;
                if k == 0 {
                    self.segs[0] = Segment::default();
                    self.len = 1;
                } else {
                    self.len = k;
                }
                ResetPlan::Clean { target }
            }
            Some(h) => {
                let target = if h + 1 < n {
                    self.segs[h + 1].start
                } else {
                    cur
                };
                let start = self.segs[k].start;
                // Keep the segments up to the highest live one, each on its
                // own and untagged: the lane then gives back the chunks all
                // of whose segments are dead (`dead_chunks`), and a chunk
                // whose blocks are freed later can still be told apart.
                for seg in &mut self.segs[k..=h] {
                    seg.serial = 0;
                }
                let mut m = h + 1;
                if m < MAX_SEGS {
                    self.segs[m] = Segment {
                        start: target,
                        ..Segment::default()
                    };
                    m += 1;
                }
                self.len = m;
                ResetPlan::Escaped {
                    start,
                    target,
                    live,
                    bytes,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stack with the top counts flushed, as the lane does before reads.
    fn with(live_per_seg: &[(u64, u64, u64)]) -> SegmentStack {
        let mut s = SegmentStack::new();
        for (i, &(start, live, serial)) in live_per_seg.iter().enumerate() {
            if i > 0 {
                assert!(s.push(start, serial, 0));
            }
            s.set_top(live, live * 8);
        }
        s
    }

    #[test]
    fn a_clean_reset_removes_the_checkpoint_and_everything_above() {
        let mut s = with(&[(0, 1, 0), (100, 0, 7), (200, 0, 8)]);
        assert_eq!(s.plan_reset(Some(7), 300), ResetPlan::Clean { target: 100 });
        assert_eq!(s.len(), 1);
        assert_eq!(s.live(), (1, 8)); // the root's block is untouched
    }

    #[test]
    fn an_escape_keeps_live_segments_and_reclaims_the_dead_tail() {
        let mut s = with(&[
            (0, 0, 0),
            (100, 2, 7),
            (200, 0, 8),
            (250, 1, 9),
            (300, 0, 10),
        ]);
        let plan = s.plan_reset(Some(7), 400);
        // The highest live segment starts at 250 and ends where the next
        // (dead) one starts: 300.
        assert_eq!(
            plan,
            ResetPlan::Escaped {
                start: 100,
                target: 300,
                live: 3,
                bytes: 24
            }
        );
        // The segments up to the highest live one are kept apart, untagged;
        // a fresh segment starts at the target.
        assert_eq!(s.len(), 5);
        assert_eq!(
            (s.segs[1].start, s.segs[1].live, s.segs[1].serial),
            (100, 2, 0)
        );
        assert_eq!(
            (s.segs[2].start, s.segs[2].live, s.segs[2].serial),
            (200, 0, 0)
        );
        assert_eq!(
            (s.segs[3].start, s.segs[3].live, s.segs[3].serial),
            (250, 1, 0)
        );
        assert_eq!(
            s.top(),
            Segment {
                start: 300,
                ..Segment::default()
            }
        );
        assert_eq!(s.live(), (3, 24));
    }

    #[test]
    fn an_escape_in_the_top_segment_keeps_everything_up_to_the_bump() {
        let mut s = with(&[(0, 0, 0), (100, 1, 7)]);
        assert_eq!(
            s.plan_reset(Some(7), 180),
            ResetPlan::Escaped {
                start: 100,
                target: 180,
                live: 1,
                bytes: 8
            }
        );
    }

    #[test]
    fn a_reset_of_an_untracked_checkpoint_changes_nothing() {
        let mut s = with(&[(0, 1, 0), (100, 1, 7)]);
        assert_eq!(s.plan_reset(Some(99), 200), ResetPlan::Untracked);
        assert_eq!(s.len(), 2);
        assert_eq!(s.live(), (2, 16));
    }

    #[test]
    fn a_full_reset_of_an_empty_stack_returns_to_zero() {
        let mut s = with(&[(0, 0, 0), (64, 0, 3)]);
        assert_eq!(s.plan_reset(None, 128), ResetPlan::Clean { target: 0 });
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_free_reports_an_emptied_chunk_segment_but_not_a_checkpoints() {
        let mut s = with(&[(0, 1, 0)]);
        assert!(s.push(100, 0, 0xa000)); // a chunk's own segment
        s.set_top(2, 16);
        assert!(s.push(200, 5, 0xb000)); // a checkpoint's
        s.set_top(1, 8);
        assert!(s.push(300, 0, 0xc000)); // the top
        assert!(!s.account_free(150, 8), "one block is still live");
        assert!(s.account_free(160, 8), "the chunk's segment is empty");
        assert_eq!(s.dead_chunks().collect::<Vec<_>>(), [(0xa000, 100)]);
        assert!(!s.account_free(250, 8), "a checkpoint's segment stays");
        assert!(!s.account_free(50, 8), "the root segment has no chunk");
    }

    #[test]
    fn the_top_start_moves_down_but_not_below_the_segment_under_it() {
        let mut s = with(&[(0, 1, 0), (100, 1, 7), (300, 0, 0)]);
        assert!(s.lower_top_start(400), "a higher position changes nothing");
        assert_eq!(s.top().start, 300);
        assert!(s.lower_top_start(200));
        assert_eq!(s.top().start, 200);
        assert!(!s.lower_top_start(50));
        assert_eq!(s.top().start, 200);
    }

    #[test]
    fn frees_below_the_top_find_their_segment() {
        let mut s = with(&[(0, 2, 0), (100, 3, 7), (200, 0, 8)]);
        s.account_free(150, 8);
        s.account_free(10, 8);
        s.account_shrink(120, 4);
        assert_eq!(s.live(), (3, 24 - 4 + 8 - 8));
        assert_eq!(
            s.plan_reset(Some(7), 300),
            ResetPlan::Escaped {
                start: 100,
                target: 200,
                live: 2,
                bytes: 12
            }
        );
    }

    #[test]
    fn a_full_stack_merges_escape_segments_but_never_checkpoints() {
        let mut s = SegmentStack::new();
        for i in 1..MAX_SEGS as u64 {
            assert!(s.push(i * 10, i, 0));
        }
        assert!(!s.push(1000, 999, 0), "full of checkpoints");
        s.untag_inactive(|serial| serial != 5);
        // Segment 5 lost its tag: pushing merges it into segment 4.
        s.set_top(1, 8);
        assert!(s.push(1000, 1000, 0));
        assert_eq!(s.len(), MAX_SEGS);
        assert_eq!(s.live(), (1, 8));
        assert_eq!(
            s.plan_reset(Some(4), 2000),
            ResetPlan::Escaped {
                start: 40,
                target: 1000,
                live: 1,
                bytes: 8
            }
        );
    }

    #[test]
    fn dead_chunks_are_those_whose_segments_are_all_dead() {
        let mut s = SegmentStack::new();
        s.set_top_chunk(1);
        // Chunk 2: two segments, both dead; chunk 3: one live; chunk 4: the
        // top (never a candidate); a checkpoint's segment in chunk 5.
        assert!(s.push(100, 0, 2));
        assert!(s.push(150, 0, 2));
        assert!(s.push(200, 0, 3));
        s.set_top(1, 8);
        assert!(s.push(300, 0, 5));
        assert!(s.push(350, 9, 5));
        assert!(s.push(400, 0, 4));
        let dead: Vec<_> = s.dead_chunks().collect();
        assert_eq!(dead, vec![(2, 100)]);
        s.drop_chunk(2);
        assert_eq!(s.len(), 5);
        assert_eq!(s.live(), (1, 8));
        assert_eq!(s.dead_chunks().count(), 0);
        // Popping the top only if it is the empty, untagged segment at a
        // chunk's start.
        assert!(!s.pop_chunk_top(4, 399));
        assert!(s.pop_chunk_top(4, 400));
        assert!(!s.pop_chunk_top(5, 350), "a checkpoint's segment stays");
    }
}
