//! Checkpoints, resets and snapshots across an arena's lanes.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{ArenaCore, OwnRegions};
use crate::checkpoints::{CheckpointList, Held, ResetOrder};
use crate::error::ResetError;
use crate::lane::{LaneStats, SiteTally};
use crate::report::{AllocSite, ResetReport, SiteCount};
use crate::stats::ArenaStats;

impl ArenaCore {
    /// Records a checkpoint for thread `tid`, for a `no_escape` block if
    /// `block`. Returns its serial, or 0 if the OS refused the memory to
    /// record it (an untracked checkpoint).
    pub(crate) fn checkpoint(&self, tid: u64, block: bool) -> u64 {
        if self.is_fallback() {
            // Shared by unrelated arenas: their checkpoints must not order
            // each other. Nothing is ever bumped there, so nothing is lost.
            self.counters.untracked.fetch_add(1, Ordering::Relaxed);
            return 0;
        }
        let mut checkpoints = self.checkpoints.lock();
        let Some(serial) = checkpoints.record(tid, block) else {
            self.counters.untracked.fetch_add(1, Ordering::Relaxed);
            return 0;
        };
        self.bump_generation();
        // The caller's own lane gets its mark now; other lanes when they
        // next sync (they cannot have allocated in between without syncing
        // unless they were busy, which only makes their mark later).
        self.sync_own_lanes(&checkpoints, tid);
        serial
    }

    /// Forgets a checkpoint without resetting (its token was dropped). The
    /// lanes of thread `tid`'s regions drop its mark now (its blocks join the
    /// enclosing piece, which may then be empty and rewind); other lanes
    /// when they next sync.
    pub(crate) fn discard(&self, serial: u64, tid: u64) {
        if serial == 0 {
            return;
        }
        let mut checkpoints = self.checkpoints.lock();
        if checkpoints.remove(serial) {
            self.bump_generation();
            self.sync_own_lanes(&checkpoints, tid);
        }
    }

    /// Forgets every checkpoint token thread `tid` holds on the arena (not
    /// those of its running `no_escape` blocks), as if each were dropped;
    /// tokens still held become stale. Returns how many were discarded.
    pub(crate) fn discard_tokens(&self, tid: u64) -> usize {
        let mut checkpoints = self.checkpoints.lock();
        let n = checkpoints.discard_tokens(tid);
        if n > 0 {
            self.bump_generation();
            self.sync_own_lanes(&checkpoints, tid);
        }
        n
    }

    /// The active checkpoints of thread `tid`, for the message of a failed
    /// full reset.
    pub(crate) fn held_by(&self, tid: u64) -> Held {
        self.checkpoints.lock().held_by(tid)
    }

    /// Syncs the lanes thread `tid` holds for its regions with the list.
    fn sync_own_lanes(&self, checkpoints: &CheckpointList, tid: u64) {
        for i in 0..self.lane_count() {
            let lane = self.lane(i);
            if lane.owner() == tid {
                // SAFETY: this thread holds the lane for one of its regions.
                unsafe { lane.sync(checkpoints, self.generation()) };
            }
        }
    }

    /// Resets to checkpoint `serial` (`None`: to the start of the arena).
    pub(crate) fn reset(&self, serial: Option<u64>, tid: u64) -> Result<ResetReport, ResetError> {
        let mut checkpoints = self.checkpoints.lock();
        let mut report = ResetReport::default();
        let before = checkpoints.len();
        let order = checkpoints.plan_reset(serial, tid);
        if checkpoints.len() != before {
            self.bump_generation();
        }
        match order? {
            ResetOrder::Untracked => {
                report.untracked = true;
                return Ok(report);
            }
            ResetOrder::Concurrent { others } => {
                report.concurrent_checkpoints = others;
                self.record(&report, &checkpoints);
                return Ok(report);
            }
            ResetOrder::Proceed => {}
        }
        let generation = self.generation();
        let mut sites = self.track_sites.then(SiteTally::default);
        report.busy_lanes = self.for_each_claimable_lane(tid, OwnRegions::Include, |lane| {
            // SAFETY: `for_each_claimable_lane` holds the lane's claim for us.
            let r = unsafe {
                if lane.seen_gen() != generation {
                    lane.sync(&checkpoints, generation);
                }
                lane.reset(serial, sites.as_mut())
            };
            report.reclaimed_bytes += r.reclaimed;
            report.trimmed_bytes += r.trimmed;
            report.escaped_blocks += r.escaped_blocks;
            report.escaped_bytes += r.escaped_bytes;
            report.untracked |= r.untracked;
        });
        if let Some(s) = serial
            && checkpoints.remove(s)
        {
            self.bump_generation();
        }
        if let Some(sites) = &sites {
            report.top_sites = top_sites(sites);
        }
        self.record(&report, &checkpoints);
        Ok(report)
    }

    /// Counts a reset. The checkpoint list's lock (held, as `_held` shows)
    /// orders every reset of the arena, so the per-reset counters need no
    /// read-modify-write; readers load them.
    fn record(&self, r: &ResetReport, _held: &CheckpointList) {
        let c = &self.counters;
        let add = |a: &AtomicU64, n: u64| a.store(a.load(Ordering::Relaxed) + n, Ordering::Relaxed);
        add(&c.resets, 1);
        add(&c.reclaimed, r.reclaimed_bytes);
        if r.escaped() {
            c.escapes.fetch_add(1, Ordering::Relaxed);
            c.escaped_blocks
                .fetch_add(r.escaped_blocks, Ordering::Relaxed);
            c.escaped_bytes
                .fetch_add(r.escaped_bytes, Ordering::Relaxed);
            if r.busy_lanes > 0 || r.concurrent_checkpoints > 0 {
                c.contended.fetch_add(1, Ordering::Relaxed);
            }
        }
        if r.untracked {
            c.untracked.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Gives back every spare chunk of the lanes no other thread's region
    /// holds. Returns the bytes.
    pub(crate) fn trim(&self, tid: u64) -> u64 {
        let _checkpoints = self.checkpoints.lock();
        let mut total = 0u64;
        self.for_each_claimable_lane(tid, OwnRegions::Include, |lane| {
            // SAFETY: `for_each_claimable_lane` holds the lane's claim for us.
            total += unsafe { lane.trim() } as u64;
        });
        total
    }

    /// A snapshot of the arena's counters, exact for every lane no other
    /// thread's region holds.
    pub(crate) fn stats(&self, tid: u64) -> ArenaStats {
        let checkpoints = self.checkpoints.lock();
        let mut sum = LaneStats::default();
        let n = self.lane_count();
        let generation = self.generation();
        let busy = self.for_each_claimable_lane(tid, OwnRegions::Include, |lane| {
            // SAFETY: `for_each_claimable_lane` holds the lane's claim for us.
            let s = unsafe {
                // Discarded checkpoints' marks go first: they may hold up
                // memory that is dead already.
                if lane.seen_gen() != generation {
                    lane.sync(&checkpoints, generation);
                }
                lane.stats()
            };
            sum.allocs += s.allocs;
            sum.bytes += s.bytes;
            sum.in_use += s.in_use;
            sum.peak += s.peak;
            sum.live_blocks += s.live_blocks;
            sum.live_bytes += s.live_bytes;
            sum.large_blocks += s.large_blocks;
            sum.large_bytes += s.large_bytes;
            sum.chunk_bytes += s.chunk_bytes;
            sum.chunks += s.chunks;
        });
        let active = checkpoints.len() as u32;
        drop(checkpoints);
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ArenaStats {
            arena_id: self.id,
            allocations: sum.allocs,
            bytes_allocated: sum.bytes,
            bytes_in_use: sum.in_use,
            peak_bytes_in_use: sum.peak,
            live_blocks: sum.live_blocks,
            live_bytes: sum.live_bytes,
            large_blocks: sum.large_blocks,
            large_bytes: sum.large_bytes,
            spills: load(&c.spills),
            spilled_bytes: load(&c.spilled_bytes),
            failed_spills: load(&c.failed_spills),
            resets: load(&c.resets),
            bytes_reclaimed: load(&c.reclaimed),
            escapes: load(&c.escapes),
            escaped_blocks: load(&c.escaped_blocks),
            escaped_bytes: load(&c.escaped_bytes),
            contended_resets: load(&c.contended),
            untracked_checkpoints: load(&c.untracked),
            chunk_bytes: self.held.load(Ordering::Relaxed) as u64,
            chunks: sum.chunks,
            capacity_limit: (self.capacity != usize::MAX).then_some(self.capacity as u64),
            lanes: n as u32,
            busy_lanes: busy,
            lanes_exhausted: load(&c.lanes_exhausted),
            trimmed_bytes: load(&c.trimmed),
            active_checkpoints: active,
        }
    }
}

#[cfg(feature = "fault-injection")]
impl ArenaCore {
    /// Calls `f` with every chunk of the lanes thread `tid` can claim (see
    /// `bumper::__testing::for_each_chunk`). Returns the summed retained
    /// capacity of those lanes.
    pub(crate) fn for_each_chunk_info(
        &self,
        tid: u64,
        mut f: impl FnMut(crate::lane::ChunkInfo),
    ) -> usize {
        let _checkpoints = self.checkpoints.lock();
        let mut target = 0usize;
        self.for_each_claimable_lane(tid, OwnRegions::Include, |lane| {
            // SAFETY: `for_each_claimable_lane` holds the lane's claim for us.
            target = target.saturating_add(unsafe { lane.chunk_infos(&mut f) });
        });
        target
    }
}

/// The four largest entries of a tally, for a report.
pub(super) fn top_sites(tally: &SiteTally) -> [SiteCount; 4] {
    let sorted = tally.sorted();
    core::array::from_fn(|i| {
        let (site, blocks, bytes) = sorted[i];
        SiteCount {
            site: AllocSite(site),
            blocks,
            bytes,
        }
    })
}
