//! Tracked blocks, for escape reports that say where: in an arena built with
//! `track_sites(true)`, every block of the bump chain is preceded by a
//! header that records its allocation site, whether it is live, and how far
//! the next header is. Headers follow each other without gaps from a chunk's
//! first data byte up to its used end, and every mark lies at a header
//! (marks are taken at the bump pointer, which moves by whole records), so a
//! reset that finds escapes walks the headers from its checkpoint's mark up
//! and tallies the live blocks by site. Large blocks record their site in
//! their chunk's header.
//!
//! Tracking lanes take the slow path for every allocation and every free,
//! and grow no block in place; arenas that do not track pay nothing.

use core::ptr;

use super::{Lane, granule};
use crate::chunk::ChunkHeader;
use crate::sites;

/// The header at the start of every tracked record: the header, padding for
/// the block's alignment, the distance back from the block to the header
/// (in the word right before the block), and the block.
#[repr(C)]
pub(crate) struct Tracked {
    site: u32,
    live: u32,
    /// Bytes the block occupies in the bump chain, header and padding
    /// included.
    footprint: u64,
    /// Bytes of the block (rounded to 8), for reports.
    size: u64,
}

/// Bytes in front of every tracked block, at least: the header and the
/// distance back to it.
pub(super) const TRACKED: usize = core::mem::size_of::<Tracked>() + 8;
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
        // Room for the header, the padding and the block, as one request.
        let record = size.saturating_add(TRACKED + align);
        let mut refilled = false;
        loop {
            let bump = self.bump.get();
            if !bump.is_null() {
                let start = bump.addr();
                let block = (start + TRACKED).next_multiple_of(align.max(8));
                let end = block.wrapping_add(rounded);
                if end <= self.limit.get() && end >= block {
                    let p = bump.wrapping_add(block - start);
                    let header = bump.cast::<Tracked>();
                    self.bump.set(bump.wrapping_add(end - start));
                    // Live and escaped bytes count the block, not its header.
                    self.count_alloc(size, rounded);
                    // SAFETY: `[header, end)` was just bumped for this block;
                    // the header and the word before the block do not
                    // overlap (`block >= start + TRACKED`).
                    unsafe {
                        header.write(Tracked {
                            site,
                            live: 1,
                            footprint: (end - start) as u64,
                            size: rounded as u64,
                        });
                        p.wrapping_sub(8).cast::<usize>().write(block - start);
                    }
                    if zeroed {
                        // SAFETY: `p` is the block of `size` bytes just bumped.
                        unsafe { self.zero_fresh(p, size) };
                    }
                    return p;
                }
            }
            // Guard mode may have protected the pages the record needs (each
            // call lifts the protection of at least one more page, or fails).
            if self.extend_limit(record, 8) {
                continue;
            }
            if refilled || !self.refill(record, align) {
                return ptr::null_mut();
            }
            refilled = true;
        }
    }

    /// Marks the tracked block at address `block` of chunk `chunk` freed.
    /// Returns the bytes its allocation counted (the block's, rounded; not
    /// the header's).
    ///
    /// The header is reached from the chunk's pointer, not from the block's:
    /// the caller's pointer only covers the block (a `Box`'s tag, say), and
    /// the header lies before it.
    ///
    /// # Safety
    /// `block` is the address of a live tracked block of this lane's chain,
    /// in chain chunk `chunk`.
    pub(super) unsafe fn untrack(&self, chunk: *mut ChunkHeader, block: usize) -> u64 {
        let base = chunk.cast::<u8>();
        // SAFETY: guaranteed by the caller: the word before the block holds
        // the distance back to its header, and both lie in `chunk`.
        unsafe {
            let back = base.with_addr(block - 8).cast::<usize>().read();
            let header = base.with_addr(block - back).cast::<Tracked>();
            (*header).live = 0;
            (*header).size
        }
    }

    /// Tallies the live tracked blocks from `addr` in chain chunk `from`
    /// up to the bump pointer, and the live large blocks allocated after
    /// checkpoint `serial`.
    pub(super) fn tally_escapes(
        &self,
        from: *mut ChunkHeader,
        addr: usize,
        serial: Option<u64>,
        tally: &mut SiteTally,
    ) {
        let cur = self.chunk.get();
        let mut c = from;
        let mut h = addr;
        while !c.is_null() {
            // SAFETY: chain chunks of this lane, from `from` up; the used part
            // of each is a run of tracked records starting at `h` (a mark or
            // the chunk's first data byte).
            unsafe {
                let end = if c == cur {
                    self.bump.get().addr()
                } else {
                    c as usize + (*c).fill.get()
                };
                while h < end {
                    let header = c
                        .cast::<u8>()
                        .wrapping_add(h - c as usize)
                        .cast::<Tracked>();
                    let (live, site, size, footprint) = (
                        (*header).live,
                        (*header).site,
                        (*header).size,
                        (*header).footprint,
                    );
                    if live != 0 {
                        tally.add(site, 1, size);
                    }
                    if footprint == 0 {
                        crate::sys::fatal("a tracked record of no size (internal error)");
                    }
                    h += footprint as usize;
                }
                if c == cur {
                    break;
                }
                c = (*c).next.get();
                if !c.is_null() {
                    h = ChunkHeader::data(c);
                }
            }
        }
        self.for_each_side(|c| {
            // SAFETY: a side chunk of this lane.
            let (s, site, bytes) = unsafe {
                (
                    (*c).seq.get(),
                    (*c).side_site.get(),
                    ((*c).fill.get() - (*c).start.get()) as u64,
                )
            };
            if serial.is_none_or(|cp| s >= cp) {
                tally.add(site, 1, bytes);
            }
        });
    }
}
