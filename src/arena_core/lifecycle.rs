//! Drop, the orphan state and destruction of an arena's core.

use core::sync::atomic::Ordering;

use super::{ArenaCore, OwnRegions, lane_map_len};
use crate::lane::SiteTally;
use crate::report::ResetReport;
use crate::space;
use crate::sys;

impl ArenaCore {
    /// Called when the arena handle is dropped. Resets every lane and frees
    /// everything if no block is live. Otherwise the core becomes an
    /// *orphan*: the chunks holding live blocks stay mapped, later frees
    /// count down `orphan_live`, and the last one destroys the core. Returns
    /// what was still live.
    ///
    /// A region of the arena still active on another thread (possible only
    /// through `exit()` running thread-local destructors, or a thread that
    /// died inside a region) makes the core stay for good instead.
    ///
    /// # Safety
    /// `this` must be a live core whose handle is being dropped, and the
    /// calling thread must have ended its own regions of it
    /// (`route::detach_arena`).
    pub(crate) unsafe fn close(this: *const ArenaCore, tid: u64) -> ResetReport {
        let mut report = ResetReport::default();
        let stuck;
        let live;
        {
            // SAFETY: the core is live (caller contract).
            let core = unsafe { &*this };
            let checkpoints = core.checkpoints.lock();
            let generation = core.generation();
            let mut blocks = 0i64;
            let mut sites = SiteTally::default();
            // A lane this thread still holds for a region counts as busy:
            // the arena's handle ends this thread's regions of it first
            // (`route::detach_arena`), so one left here would be a bug, and
            // keeping the arena is the safe answer to it.
            let busy = core.for_each_claimable_lane(tid, OwnRegions::Busy, |lane| {
                // SAFETY: `for_each_claimable_lane` holds the lane's claim for
                // us.
                let (r, live_blocks, live_bytes) = unsafe {
                    lane.sync(&checkpoints, generation);
                    let r = lane.reset(None, Some(&mut sites));
                    // Close the remote list only now: later frees of this
                    // arena's blocks count down `orphan_live`. Frees that
                    // arrived since the reset are drained by `close`, so the
                    // live count below is exact.
                    lane.close();
                    let (live_blocks, live_bytes) = lane.live();
                    lane.release_spares();
                    (r, live_blocks, live_bytes)
                };
                report.reclaimed_bytes += r.reclaimed;
                report.escaped_blocks += live_blocks;
                report.escaped_bytes += live_bytes;
                blocks += live_blocks as i64;
            });
            // A busy lane, or a region running on the spill lane, means a
            // region of this arena is still active on some thread. Safe code
            // gets here only when that region can never end normally: the
            // arena was dropped by a thread-local destructor that `exit()`
            // ran while another thread was inside a region, or a thread died
            // inside one. The route of that thread still names this core, so
            // the core and every chunk it holds are kept for good.
            stuck = busy > 0 || core.spill_regions.load(Ordering::Acquire) > 0;
            report.top_sites = super::resets::top_sites(&sites);
            drop(checkpoints);
            live = blocks;
        }
        if stuck {
            return report;
        }
        if live == 0 {
            // SAFETY: no block is live and the handle is gone.
            unsafe { Self::destroy(this) };
            return report;
        }
        // SAFETY: the core stays live until `orphan_live` reaches zero, which
        // needs this addition.
        let prev = unsafe { (*this).orphan_live.fetch_add(live, Ordering::AcqRel) };
        if prev + live == 0 {
            // SAFETY: every live block was freed meanwhile.
            unsafe { Self::destroy(this) };
        }
        report
    }

    /// A block of a dropped arena was freed.
    ///
    /// # Safety
    /// `this` must be an orphaned core, and the block must have been live.
    pub(crate) unsafe fn orphan_free(this: *const ArenaCore) {
        // SAFETY: the core is live while one of its blocks is.
        let prev = unsafe { (*this).orphan_live.fetch_sub(1, Ordering::AcqRel) };
        if prev == 1 {
            // SAFETY: that was the last live block.
            unsafe { Self::destroy(this) };
        }
    }

    /// Gives every chunk and mapping of the arena back.
    ///
    /// # Safety
    /// No block of the arena may be live and no handle may exist.
    unsafe fn destroy(this: *const ArenaCore) {
        Self::unregister(this);
        // SAFETY: the core is live until the very end of this function; each
        // lane's memory is released only after its last use.
        unsafe {
            let n = (*this).lane_count();
            let home = (*this).home;
            let map_len = (*this).map_len;
            // No handle and no lane use the list any more.
            (*(*this).checkpoints.data_ptr()).free();
            for i in (0..n).rev() {
                let lane = (*this).lanes[i].load(Ordering::Acquire);
                (*lane).release_chunks();
                if i > 0 {
                    let lane_home = (*lane).home();
                    if lane_home.is_null() {
                        sys::unmap(lane.cast(), lane_map_len());
                    } else {
                        space::release(lane_home);
                    }
                }
            }
            if home.is_null() {
                sys::unmap(this as *mut u8, map_len);
            } else {
                space::release(home);
            }
        }
    }
}
