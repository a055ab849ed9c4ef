//! Region entry and exit: a thread entering a region gets the lane it
//! already holds, a free one, a new one, or (all taken) the spill lane.

use core::mem::size_of;
use core::ptr;
use core::sync::atomic::Ordering;

use super::{ArenaCore, lane_map_len};
use crate::chunk::HEADER;
use crate::lane::{Claim, Lane};
use crate::sys;

impl ArenaCore {
    /// Gives thread `tid` a lane for a region: the one it already holds, a
    /// free one, a new one, or (all taken) the spill lane.
    pub(crate) fn enter(&self, tid: u64) -> *const Lane {
        let n = self.lane_count();
        for i in 0..n {
            let lane = self.lane(i);
            if lane.owner() == tid {
                // SAFETY: this thread holds the lane for an enclosing region.
                let depth = unsafe { lane.depth() };
                depth.set(depth.get() + 1);
                return lane;
            }
        }
        let backoff = crossbeam_utils::Backoff::new();
        loop {
            let n = self.lane_count();
            let mut serviced = false;
            // Threads start their search at different lanes, each at the
            // same one every time: `tid` hashed (Fibonacci hashing spreads
            // consecutive ids) and scaled into `0..n` by a multiply and a
            // shift, not a division.
            let h = (tid as u32).wrapping_mul(0x9E37_79B9);
            let mut i = ((u64::from(h) * n as u64) >> 32) as usize;
            for _ in 0..n {
                let lane = self.lane(i);
                i = if i + 1 == n { 0 } else { i + 1 };
                let claim = if self.shared {
                    lane.try_claim(tid)
                } else {
                    // SAFETY: an unshared arena's lanes are claimed by the one
                    // thread that holds the arena (`Config::shared`).
                    unsafe { lane.claim_unshared(tid) }
                };
                match claim {
                    Claim::Taken => return self.entered(lane),
                    // Held by a service claim, or given back just now.
                    _ => serviced |= lane.is_service_claimed() || lane.owner() == 0,
                }
            }
            if n < self.max_lanes
                && let Some(lane) = self.new_lane(tid)
            {
                return self.entered(lane);
            }
            // A lane held only briefly by a reset or a snapshot is worth
            // waiting for: those never allocate, call user code or wait for
            // another lane, so they end soon. A lane held by another
            // region is not.
            if !serviced {
                break;
            }
            backoff.snooze();
        }
        self.counters
            .lanes_exhausted
            .fetch_add(1, Ordering::Relaxed);
        self.spill_regions.fetch_add(1, Ordering::AcqRel);
        &self.spill_lane
    }

    /// Gives thread `tid` a lane for one call of an explicit allocator handle
    /// (`&Arena`, `&LockedArena`), as [`ArenaCore::enter`] does; end the use
    /// with [`ArenaCore::exit`]. An unlocked arena has one lane, which only
    /// the thread holding the arena claims: it is taken with one load and a
    /// store, without `enter`'s search.
    #[inline]
    pub(crate) fn enter_for_call(&self, tid: u64) -> *const Lane {
        if !self.shared && self.lane_count() == 1 {
            let lane = self.lane(0);
            // SAFETY: an unshared arena's lanes are claimed by the one thread
            // that holds the arena (`Config::shared`).
            match unsafe { lane.claim_unshared(tid) } {
                Claim::Taken => return self.entered(lane),
                Claim::Already => {
                    // SAFETY: this thread holds the lane for an enclosing
                    // region.
                    let depth = unsafe { lane.depth() };
                    depth.set(depth.get() + 1);
                    return lane;
                }
                Claim::Busy => {}
            }
        }
        self.enter(tid)
    }

    /// Starts the first region of this thread on a lane it just claimed:
    /// catches up with the checkpoints, and takes in the blocks freed while
    /// no thread held the lane (a result dropped after its region ended
    /// takes the remote path).
    #[inline(always)]
    fn entered<'a>(&self, lane: &'a Lane) -> &'a Lane {
        // SAFETY: the calling thread just took the lane's claim.
        unsafe {
            lane.depth().set(1);
            // Before any new mark: a mark above dead blocks would keep their
            // memory until its checkpoint is reset.
            lane.drain();
            if lane.seen_gen() != self.generation() {
                self.sync_lane(lane);
            }
        }
        lane
    }

    /// Creates a lane already claimed by `tid`.
    fn new_lane(&self, tid: u64) -> Option<&Lane> {
        let _checkpoints = self.checkpoints.lock();
        let n = self.lane_count();
        if n >= self.max_lanes {
            return None;
        }
        let lane_size = size_of::<Lane>();
        let home = self.acquire_chunk(HEADER + lane_size + 1024, ptr::null_mut());
        let place = if !home.is_null() {
            // SAFETY: a fresh chunk owned by this function.
            unsafe {
                let start = HEADER + lane_size;
                (*home).start.set(start);
                let clean = (*home).clean_from.get().max(start);
                (*home).clean_from.set(clean);
            }
            home.cast::<u8>().wrapping_add(HEADER).cast::<Lane>()
        } else {
            let m = sys::map(lane_map_len());
            if m.is_null() {
                return None;
            }
            m.cast::<Lane>()
        };
        // SAFETY: `place` is fresh, aligned, writable memory that lives until
        // `destroy`; `home` (if any) was acquired for this lane.
        unsafe {
            Lane::init(place, self, home, self.chunk_size, false);
            let lane = &*place;
            assert_eq!(lane.try_claim(tid), Claim::Taken);
            self.lanes[n].store(place, Ordering::Release);
            self.nlanes.store(n + 1, Ordering::Release);
            Some(lane)
        }
    }

    /// Ends a region on `lane`.
    ///
    /// # Safety
    /// `lane` was returned by [`ArenaCore::enter`] on this core for a region
    /// of the calling thread that has not ended yet.
    pub(crate) unsafe fn exit(&self, lane: &Lane) {
        if lane.is_spill_only() {
            self.spill_regions.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        // SAFETY: the calling thread holds the lane for this region.
        unsafe {
            let depth = lane.depth();
            let d = depth.get() - 1;
            depth.set(d);
            if d == 0 {
                lane.release_claim();
            }
        }
    }
}
