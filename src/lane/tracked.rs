//! Tracked blocks, for escape reports that say where: in an arena built with
//! `track_sites(true)`, every block of the bump chain is preceded by a
//! header that records its allocation site and whether it is live, and the
//! headers form a list, newest first. A reset that finds escapes walks the
//! list down to its checkpoint and tallies the live blocks by site. Large
//! blocks record their site in their chunk's header.
//!
//! Tracking lanes take the slow path for every allocation and every free,
//! and grow no block in place; arenas that do not track pay nothing.

use core::ptr;

use super::{Lane, granule};
use crate::sites;

/// The header in front of every tracked block.
#[repr(C)]
pub(crate) struct Tracked {
    /// The next older tracked block's header, or null.
    prev: *mut Tracked,
    site: u32,
    live: u32,
    /// Bytes the block occupies in the bump chain, header and padding
    /// included.
    footprint: u64,
    /// Bytes of the block (rounded to 8), for reports.
    size: u64,
}

/// Bytes in front of every tracked block.
pub(super) const TRACKED: usize = core::mem::size_of::<Tracked>();
const _: () = assert!(TRACKED == 32);

/// Sites a reset tallies on one lane; the rest go to site 0.
pub(crate) const TALLY: usize = 8;

/// Escaped blocks by allocation site: `(site, blocks, bytes)`, largest
/// first once sorted; unused entries have 0 blocks.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SiteTally(pub(crate) [(u32, u64, u64); TALLY]);

impl SiteTally {
    /// Adds one block of `bytes` bytes made at `site`.
    pub(crate) fn add(&mut self, site: u32, blocks: u64, bytes: u64) {
        let entries = &mut self.0;
        if let Some(e) = entries.iter_mut().find(|e| e.1 > 0 && e.0 == site) {
            e.1 += blocks;
            e.2 += bytes;
            return;
        }
        if let Some(e) = entries.iter_mut().find(|e| e.1 == 0) {
            *e = (site, blocks, bytes);
            return;
        }
        // Full: the smallest entry becomes "other sites" (site 0).
        let smallest = entries
            .iter_mut()
            .min_by_key(|e| e.2)
            .expect("the tally is not empty");
        if smallest.0 != 0 {
            smallest.0 = 0;
        }
        smallest.1 += blocks;
        smallest.2 += bytes;
    }

    /// Adds another tally.
    pub(crate) fn merge(&mut self, other: &SiteTally) {
        for &(site, blocks, bytes) in &other.0 {
            if blocks > 0 {
                self.add(site, blocks, bytes);
            }
        }
    }

    /// The entries, largest first.
    pub(crate) fn sorted(&self) -> [(u32, u64, u64); TALLY] {
        let mut e = self.0;
        e.sort_by_key(|x| core::cmp::Reverse(x.2));
        e
    }
}

impl Lane {
    /// Allocates a tracked block: its header, then the block, from the bump
    /// chain. Returns null if the caller must spill.
    pub(super) fn alloc_tracked(&self, size: usize, align: usize, zeroed: bool) -> *mut u8 {
        let site = sites::capture();
        let rounded = granule(size);
        for attempt in 0..2 {
            let bump = self.bump.get();
            if !bump.is_null() {
                let start = bump.addr();
                let block = (start + TRACKED).next_multiple_of(align.max(8));
                let end = block.wrapping_add(rounded);
                if end <= self.limit.get() && end >= block {
                    let p = bump.wrapping_add(block - start);
                    let header = p.wrapping_sub(TRACKED).cast::<Tracked>();
                    self.bump.set(bump.wrapping_add(end - start));
                    // Live and escaped bytes count the block, not its header.
                    self.count_alloc(size, rounded);
                    // SAFETY: `[header, end)` was just bumped for this block.
                    unsafe {
                        header.write(Tracked {
                            prev: self.tracked.get(),
                            site,
                            live: 1,
                            footprint: (end - start) as u64,
                            size: rounded as u64,
                        });
                    }
                    self.tracked.set(header);
                    if zeroed {
                        // SAFETY: `p` is the block of `size` bytes just bumped.
                        unsafe { self.zero_fresh(p, size) };
                    }
                    return p;
                }
            }
            if attempt == 0 && !self.refill(size.saturating_add(TRACKED + align), align) {
                break;
            }
        }
        ptr::null_mut()
    }

    /// Marks the tracked block at `block` freed. Returns the bytes its
    /// allocation counted (the block's, rounded; not the header's).
    ///
    /// # Safety
    /// `block` is a live tracked block of this lane's chain.
    pub(super) unsafe fn untrack(&self, block: *mut u8) -> u64 {
        let header = block.wrapping_sub(TRACKED).cast::<Tracked>();
        // SAFETY: guaranteed by the caller: the header precedes the block,
        // in the memory the block's pointer was derived from.
        unsafe {
            (*header).live = 0;
            (*header).size
        }
    }

    /// Tallies the live tracked blocks at or above position `start`, and
    /// the live large blocks allocated after checkpoint `serial`.
    pub(super) fn tally_escapes(&self, start: u64, serial: Option<u64>) -> SiteTally {
        let mut tally = SiteTally::default();
        let mut h = self.tracked.get();
        while !h.is_null() {
            // SAFETY: headers in the list precede blocks of this lane's chain.
            let (prev, live, site, size, pos) = unsafe {
                (
                    (*h).prev,
                    (*h).live,
                    (*h).site,
                    (*h).size,
                    self.pos_of(h.addr() + TRACKED),
                )
            };
            if pos < start {
                break;
            }
            if live != 0 {
                tally.add(site, 1, size);
            }
            h = prev;
        }
        self.for_each_side(|c| {
            // SAFETY: a side chunk of this lane.
            let (s, site, bytes) = unsafe {
                (
                    (*c).side_serial.get(),
                    (*c).side_site.get(),
                    ((*c).fill.get() - (*c).start.get()) as u64,
                )
            };
            if serial.is_none_or(|cp| s >= cp) {
                tally.add(site, 1, bytes);
            }
        });
        tally
    }

    /// Drops the headers of blocks at or above position `target` from the
    /// list: a reset to `target` found them all dead.
    pub(super) fn cut_tracked(&self, target: u64) {
        let mut h = self.tracked.get();
        // SAFETY: as in `tally_escapes`.
        while !h.is_null() && unsafe { self.pos_of(h.addr() + TRACKED) } >= target {
            // SAFETY: as above.
            h = unsafe { (*h).prev };
        }
        self.tracked.set(h);
    }
}
