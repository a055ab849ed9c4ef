//! An arena's list of active checkpoints and the ordering rules of resets:
//! pure bookkeeping, no memory access. The arena keeps it behind its spin
//! lock.
//!
//! Checkpoints of one thread are reset innermost first. A reset of a
//! checkpoint while newer checkpoints *of the same thread* are active is an
//! out-of-order reset (an error: the checkpoint is discarded, nothing is
//! reclaimed). While newer checkpoints of *other* threads are active (a
//! `LockedArena` shared by threads that each run `no_escape`), the reset
//! reclaims nothing and reports them. A checkpoint that is no longer in the
//! list is stale: only [`CheckpointList::discard_tokens`] (the arena's
//! `discard_checkpoints`, the way out of a leaked checkpoint) removes a
//! checkpoint whose token may still be held.
//!
//! The list has no fixed capacity: it lives in mapped memory that grows. A
//! checkpoint is untracked (its reset reclaims nothing) only if the OS
//! refuses that memory.
#![forbid(unsafe_code)]

use crate::error::ResetError;
use crate::mapvec::MapVec;

#[derive(Clone, Copy)]
struct Record {
    serial: u64,
    /// Thread that took it (to tell an out-of-order reset from a concurrent one).
    tid: u64,
    /// Taken by a `no_escape` block, which resets it itself, rather than
    /// handed out as a `Checkpoint` token (which can be leaked).
    block: bool,
}

/// The active checkpoints one thread holds on an arena, from
/// [`CheckpointList::held_by`]: what a failed full reset names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Held {
    /// `Checkpoint` tokens not yet reset or dropped (or leaked).
    pub(crate) tokens: usize,
    /// Checkpoints of `no_escape` blocks still running.
    pub(crate) blocks: usize,
}

/// What a reset may do, from [`CheckpointList::plan_reset`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResetOrder {
    /// The checkpoint was never tracked (serial 0): nothing to do.
    Untracked,
    /// Newer checkpoints of other threads are active: the checkpoint was
    /// removed, and nothing may be reclaimed.
    Concurrent { others: u32 },
    /// Reset the lanes. A checkpoint, if one was named, is still in the list:
    /// remove it with [`CheckpointList::remove`] once the lanes are reset.
    Proceed,
}

/// The active checkpoints, oldest first.
pub(crate) struct CheckpointList {
    records: MapVec<Record>,
    next_serial: u64,
}

impl CheckpointList {
    pub(crate) const fn new() -> Self {
        CheckpointList {
            records: MapVec::new(),
            next_serial: 1,
        }
    }

    /// Number of active checkpoints.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Records a checkpoint of thread `tid`, for a `no_escape` block if
    /// `block`. Returns its serial (never 0), or `None` if the OS refuses the
    /// memory to record it.
    pub(crate) fn record(&mut self, tid: u64, block: bool) -> Option<u64> {
        let serial = self.next_serial;
        if !self.records.push(Record { serial, tid, block }) {
            return None;
        }
        self.next_serial += 1;
        Some(serial)
    }

    /// Gives the list's memory back (the arena is being destroyed).
    pub(crate) fn free(&mut self) {
        self.records.free();
    }

    pub(crate) fn is_active(&self, serial: u64) -> bool {
        self.position(serial).is_some()
    }

    /// Serials of the active checkpoints, oldest first.
    #[cfg(test)]
    pub(crate) fn serials(&self) -> impl Iterator<Item = u64> + '_ {
        self.records.as_slice().iter().map(|r| r.serial)
    }

    /// Serials of the active checkpoints newer than `serial`, oldest first.
    pub(crate) fn serials_after(&self, serial: u64) -> impl Iterator<Item = u64> + '_ {
        let all = self.records.as_slice();
        let from = all.partition_point(|r| r.serial <= serial);
        all[from..].iter().map(|r| r.serial)
    }

    /// The newest serial ever handed out (0 before the first).
    pub(crate) fn last_serial(&self) -> u64 {
        self.next_serial - 1
    }

    fn position(&self, serial: u64) -> Option<usize> {
        // Serials are recorded in increasing order, and removals keep it.
        self.records
            .as_slice()
            .binary_search_by_key(&serial, |r| r.serial)
            .ok()
    }

    /// Forgets checkpoint `serial`. Returns whether it was active.
    pub(crate) fn remove(&mut self, serial: u64) -> bool {
        let Some(idx) = self.position(serial) else {
            return false;
        };
        self.records.remove(idx);
        true
    }

    /// The active checkpoints of thread `tid`.
    pub(crate) fn held_by(&self, tid: u64) -> Held {
        let mut held = Held::default();
        for r in self.records.as_slice().iter().filter(|r| r.tid == tid) {
            if r.block {
                held.blocks += 1;
            } else {
                held.tokens += 1;
            }
        }
        held
    }

    /// Forgets every active checkpoint token of thread `tid` (those of its
    /// running `no_escape` blocks stay): their tokens, if still held, are
    /// stale from now on. Returns how many were removed.
    pub(crate) fn discard_tokens(&mut self, tid: u64) -> usize {
        let all = self.records.as_mut_slice();
        let mut kept = 0;
        for i in 0..all.len() {
            let r = all[i];
            if r.tid != tid || r.block {
                all[kept] = r;
                kept += 1;
            }
        }
        let removed = all.len() - kept;
        self.records.truncate(kept);
        removed
    }

    /// Applies the ordering rules to a reset of `serial` (`None`: a reset of
    /// the whole arena) by thread `tid`. An out-of-order or concurrent reset
    /// removes the checkpoint at once, since it will never be reset.
    ///
    /// # Errors
    /// [`ResetError::Stale`] if `serial` is not active;
    /// [`ResetError::OutOfOrder`] if newer checkpoints of `tid` are.
    #[inline]
    pub(crate) fn plan_reset(
        &mut self,
        serial: Option<u64>,
        tid: u64,
    ) -> Result<ResetOrder, ResetError> {
        let newer = match serial {
            Some(0) => return Ok(ResetOrder::Untracked),
            Some(s) => match self.position(s) {
                Some(idx) => idx + 1..self.len(),
                None => return Err(ResetError::Stale),
            },
            None => 0..self.len(),
        };
        if newer.is_empty() {
            return Ok(ResetOrder::Proceed);
        }
        let mine = self.records.as_slice()[newer.clone()]
            .iter()
            .filter(|r| r.tid == tid)
            .count();
        let others = newer.len() - mine;
        if let Some(s) = serial {
            self.remove(s);
        }
        if mine > 0 {
            return Err(ResetError::OutOfOrder { newer: mine });
        }
        Ok(ResetOrder::Concurrent {
            others: others as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_of_one_thread_reset_innermost_first() {
        let mut l = CheckpointList::new();
        let outer = l.record(1, false).unwrap();
        let inner = l.record(1, false).unwrap();
        assert_eq!(
            l.plan_reset(Some(outer), 1),
            Err(ResetError::OutOfOrder { newer: 1 })
        );
        assert!(
            !l.is_active(outer),
            "an out-of-order checkpoint is discarded"
        );
        assert_eq!(l.plan_reset(Some(inner), 1), Ok(ResetOrder::Proceed));
        assert!(l.remove(inner));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn newer_checkpoints_of_other_threads_make_a_reset_concurrent() {
        let mut l = CheckpointList::new();
        let mine = l.record(1, false).unwrap();
        l.record(2, false).unwrap();
        l.record(3, false).unwrap();
        assert_eq!(
            l.plan_reset(Some(mine), 1),
            Ok(ResetOrder::Concurrent { others: 2 })
        );
        assert!(!l.is_active(mine));
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn a_reset_of_the_whole_arena_is_out_of_order_while_own_checkpoints_are_active() {
        let mut l = CheckpointList::new();
        l.record(1, false).unwrap();
        assert_eq!(
            l.plan_reset(None, 1),
            Err(ResetError::OutOfOrder { newer: 1 })
        );
        assert_eq!(l.len(), 1, "a whole-arena reset removes no checkpoint");
        assert_eq!(
            l.plan_reset(None, 2),
            Ok(ResetOrder::Concurrent { others: 1 })
        );
    }

    #[test]
    fn stale_and_untracked_checkpoints() {
        let mut l = CheckpointList::new();
        let s = l.record(1, false).unwrap();
        assert!(l.remove(s));
        assert_eq!(l.plan_reset(Some(s), 1), Err(ResetError::Stale));
        assert_eq!(l.plan_reset(Some(0), 1), Ok(ResetOrder::Untracked));
    }

    #[test]
    fn discarding_a_threads_tokens_keeps_its_blocks_and_other_threads() {
        let mut l = CheckpointList::new();
        let block = l.record(1, true).unwrap();
        let leaked = l.record(1, false).unwrap();
        let other = l.record(2, false).unwrap();
        let newer = l.record(1, false).unwrap();
        assert_eq!(
            l.held_by(1),
            Held {
                tokens: 2,
                blocks: 1
            }
        );
        assert_eq!(
            l.held_by(2),
            Held {
                tokens: 1,
                blocks: 0
            }
        );
        assert_eq!(
            l.plan_reset(None, 1),
            Err(ResetError::OutOfOrder { newer: 3 })
        );
        assert_eq!(l.discard_tokens(1), 2);
        assert_eq!(l.serials().collect::<Vec<_>>(), [block, other]);
        assert_eq!(
            l.held_by(1),
            Held {
                tokens: 0,
                blocks: 1
            }
        );
        // The discarded tokens are stale; the block's checkpoint still
        // orders resets, and resets in order once the other thread's is gone.
        assert_eq!(l.plan_reset(Some(leaked), 1), Err(ResetError::Stale));
        assert_eq!(l.plan_reset(Some(newer), 1), Err(ResetError::Stale));
        assert_eq!(l.discard_tokens(1), 0);
        assert!(l.remove(other));
        assert_eq!(l.plan_reset(Some(block), 1), Ok(ResetOrder::Proceed));
        assert!(l.remove(block));
        assert_eq!(l.plan_reset(None, 1), Ok(ResetOrder::Proceed));
    }

    #[test]
    fn any_number_of_checkpoints_is_tracked() {
        let mut l = CheckpointList::new();
        for _ in 0..10_000 {
            assert!(l.record(1, false).is_some());
        }
        assert_eq!(l.last_serial(), 10_000);
        let serials: Vec<u64> = l.serials().collect();
        assert_eq!(serials, (1..=10_000).collect::<Vec<_>>());
        assert_eq!(l.plan_reset(Some(10_000), 1), Ok(ResetOrder::Proceed));
        assert!(l.remove(10_000));
        assert_eq!(l.len(), 9_999);
    }
}
