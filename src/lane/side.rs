//! Large blocks in chunks of their own, outside the lane's bump chain.
//!
//! A block of at least a quarter of the arena's chunk size gets a *side
//! chunk* that holds nothing else. So a small block that escapes next to a
//! big buffer does not pin the buffer: the buffer's chunk goes back to the
//! lane's spares the moment the buffer is freed, whatever the resets find.
//! And a big buffer that escapes pins only its own chunk, never the small
//! blocks around it.
//!
//! Side blocks are in no piece of the chain. Each side chunk records (in its
//! `seq`) the newest checkpoint serial the lane knew when the block was
//! allocated, so a reset of checkpoint `s` counts the live side blocks with
//! a serial at least `s` as escaped (and they stay valid), without moving
//! the bump pointer because of them. Their live count and bytes are kept per
//! lane.
//!
//! Every function here is owner only.

use core::ptr;

use super::{Lane, granule};
use crate::chunk::{ChunkHeader, HEADER, SLAB};
use crate::guard_mode;
use crate::space;

/// A large block that is moved because it grew gets a chunk with room for
/// this many times its new size (see [`Lane::alloc_side`]).
const GROWTH_ROOM: usize = 4;
/// Sizes above this get room for only this much more per extra factor, so
/// a huge buffer does not take several times its size of address space
/// (chunks are powers of two: from 64 MiB on, the room fits in what the
/// rounding up to a chunk size gives anyway).
const GROWTH_ROOM_CAP: usize = 16 << 20;
/// A growing block may take a spare chunk up to this many times the size of
/// the chunk it asked for.
const GROWTH_SPARE: usize = 8;
/// A block that shrinks in place moves instead if its chunk is more than
/// this many times the size of the chunk its new size needs.
const SHRINK_MOVES: usize = 8;

impl Lane {
    /// Whether a request of `size` bytes gets a chunk of its own.
    #[inline]
    pub(super) fn is_large(&self, size: usize) -> bool {
        size >= self.large_from
    }

    /// Allocates a large block in a side chunk: a spare one that fits, or a
    /// new one from the space. Returns null if neither can be had (the
    /// caller spills). Zeroes the block if asked, as far as the chunk's
    /// memory may be dirty.
    ///
    /// `grows`: the block is the new place of one that is moved because it
    /// grew. It then gets a chunk with room for [`GROWTH_ROOM`] times its
    /// size, so that the next growths (a `Vec` doubling) happen in place
    /// instead of copying, and the spare with the most room (up to
    /// [`GROWTH_SPARE`] times what it asks) is preferred, so a loop that
    /// grows the same buffer every iteration reuses last iteration's final
    /// chunk and copies once. The room is address space only: pages are
    /// committed when carved, but nothing is resident until it is written.
    /// An arena with a capacity limit gets no room (it would count against
    /// the limit), and neither does a request when no such chunk can be had.
    pub(super) fn alloc_side(
        &self,
        size: usize,
        align: usize,
        zeroed: bool,
        grows: bool,
    ) -> *mut u8 {
        let rounded = granule(size);
        if grows && !self.core().is_capped() {
            let extra = rounded.min(GROWTH_ROOM_CAP).saturating_mul(GROWTH_ROOM - 1);
            let p = self.alloc_side_room(size, align, zeroed, rounded.saturating_add(extra), true);
            if !p.is_null() {
                return p;
            }
        }
        self.alloc_side_room(size, align, zeroed, rounded, false)
    }

    /// Allocates a large block of `size` bytes in a side chunk with at least
    /// `room` (≥ its rounded size) bytes of data space. `roomiest`: take the
    /// spare with the most room that is not absurdly large rather than the
    /// tightest.
    fn alloc_side_room(
        &self,
        size: usize,
        align: usize,
        zeroed: bool,
        room: usize,
        roomiest: bool,
    ) -> *mut u8 {
        let rounded = granule(size);
        debug_assert!(room >= rounded);
        let pad = align.saturating_sub(HEADER);
        let Some(need) = HEADER.checked_add(pad).and_then(|n| n.checked_add(room)) else {
            return ptr::null_mut();
        };
        // A spare up to twice the size a fresh chunk would have (a large
        // block must not take, and then hold, a much larger chunk), or up to
        // `GROWTH_SPARE` times for the roomiest.
        let factor = if roomiest { GROWTH_SPARE } else { 2 };
        let max = space::class_for(need).map_or(usize::MAX, |c| (SLAB << c).saturating_mul(factor));
        let mut chunk = self.take_spare_within(need, max, roomiest);
        // Spares beyond the retained capacity go back now (invariant R2),
        // after this request had its pick and before it takes a new chunk.
        self.trim_spares(self.retained.get());
        if chunk.is_null() {
            chunk = self
                .core()
                .acquire_chunk(need, self as *const Lane as *mut Lane);
            if chunk.is_null() {
                return ptr::null_mut();
            }
        }
        let c = chunk as usize;
        // SAFETY: the chunk is this lane's.
        if unsafe { (*chunk).guarded_from.get() } < need
            // SAFETY: as above.
            && !matches!(unsafe { guard_mode::unprotect_to(chunk, c + need) }, Some(l) if l >= c + need)
        {
            // Guard mode protected it and the OS refuses to lift that.
            self.push_spare(chunk);
            return ptr::null_mut();
        }
        let offset = HEADER + pad;
        let p = chunk.cast::<u8>().wrapping_add(offset);
        // SAFETY: the chunk is this lane's and in no list; the block lies in
        // its data (`need` fits).
        unsafe {
            debug_assert!((*chunk).size >= need);
            debug_assert!(p.addr() & (align - 1) == 0);
            let dirty = c + (*chunk).clean_from.get();
            if zeroed && p.addr() < dirty {
                ptr::write_bytes(p, 0, (dirty - p.addr()).min(rounded));
            }
            let end = offset + rounded;
            if end > (*chunk).clean_from.get() {
                (*chunk).clean_from.set(end);
            }
            (*chunk).side.set(true);
            (*chunk).seq.set(self.seen_serial.get());
            (*chunk).side_site.set(if self.tracking {
                crate::sites::capture()
            } else {
                0
            });
            // The block's extent, for escape reports and resizing.
            (*chunk).start.set(offset);
            (*chunk).fill.set(offset + rounded);
            self.side_chunk_bytes
                .set(self.side_chunk_bytes.get() + (*chunk).size);
            (*chunk).prev.set(ptr::null_mut());
            let head = self.side.get();
            (*chunk).next.set(head);
            if !head.is_null() {
                (*head).prev.set(chunk);
            }
        }
        self.need_take(
            chunk,
            space::class_for(need).map_or(usize::MAX, |c| SLAB << c),
        );
        // The bytes in use go up by the block: note the peak before.
        self.note_peak();
        self.side.set(chunk);
        self.side_live.set(self.side_live.get() + 1);
        self.side_bytes.set(self.side_bytes.get() + rounded as u64);
        self.allocs.set(self.allocs.get().wrapping_add(1));
        self.bytes.set(self.bytes.get().wrapping_add(size as u64));
        p
    }

    /// Frees the block of side chunk `chunk`, of `rounded` bytes: the chunk
    /// leaves the side list and becomes a spare.
    pub(super) fn free_side(&self, chunk: *mut ChunkHeader, rounded: u64) {
        self.note_peak();
        // SAFETY: `chunk` is one of this lane's side chunks, in its list.
        unsafe {
            let prev = (*chunk).prev.get();
            let next = (*chunk).next.get();
            if prev.is_null() {
                self.side.set(next);
            } else {
                (*prev).next.set(next);
            }
            if !next.is_null() {
                (*next).prev.set(prev);
            }
            (*chunk).side.set(false);
            (*chunk).next.set(ptr::null_mut());
            (*chunk).start.set(HEADER);
            self.side_chunk_bytes
                .set(self.side_chunk_bytes.get() - (*chunk).size);
            self.need_leave(chunk);
            if self.core().guard {
                // As for memory a reset hands back: poison it and protect its
                // whole pages until it is used again.
                let dirty = chunk as usize + (*chunk).clean_from.get();
                guard_mode::reclaim(chunk, chunk.cast::<u8>().wrapping_add(HEADER), dirty);
            }
        }
        self.side_live.set(self.side_live.get() - 1);
        self.side_bytes.set(self.side_bytes.get() - rounded);
        self.spare_after_free(chunk);
    }

    /// Resizes the block of side chunk `chunk` in place if the chunk has
    /// room for `new` bytes (the block is alone in it). Returns false if it
    /// must move.
    pub(super) fn realloc_side(
        &self,
        chunk: *mut ChunkHeader,
        p: usize,
        old: usize,
        new: usize,
    ) -> bool {
        if new < self.large_from {
            // A block that shrinks below the threshold moves into the bump
            // chain: side chunks only ever hold large blocks.
            return false;
        }
        let (old_rounded, new_rounded) = (granule(old), granule(new));
        // SAFETY: `chunk` is one of this lane's side chunks.
        let (c, size, clean) =
            unsafe { (chunk as usize, (*chunk).size, (*chunk).clean_from.get()) };
        let end = p.wrapping_add(new_rounded);
        if end > c + size || end < p {
            return false;
        }
        // A block that shrinks to a small part of its chunk moves to a chunk
        // its size, so that the chunk's memory does not stay held for it
        // (memory held follows live memory, R2). Growth room is at most
        // `GROWTH_ROOM` times, a chunk at most twice its need: a chunk more
        // than `SHRINK_MOVES` times the new need is never room to grow.
        if new_rounded < old_rounded
            && space::class_for(end - c)
                .is_some_and(|k| (SLAB << k).saturating_mul(SHRINK_MOVES) < size)
        {
            return false;
        }
        // SAFETY: as above.
        if unsafe { (*chunk).guarded_from.get() } < end - c
            // SAFETY: as above; the pages up to `end` hold no live block.
            && !matches!(unsafe { guard_mode::unprotect_to(chunk, end) }, Some(l) if l >= end)
        {
            // Guard mode protected the pages the block would grow into and
            // the OS refuses to lift that: move instead.
            return false;
        }
        // The bytes in use change: note the peak before.
        self.note_peak();
        // SAFETY: as above.
        unsafe {
            if end - c > clean {
                (*chunk).clean_from.set(end - c);
            }
            (*chunk).fill.set(end - c);
        }
        self.side_bytes.set(
            self.side_bytes
                .get()
                .wrapping_add(new_rounded as u64)
                .wrapping_sub(old_rounded as u64),
        );
        self.allocs.set(self.allocs.get().wrapping_add(1));
        self.bytes.set(self.bytes.get().wrapping_add(new as u64));
        if new_rounded > old_rounded {
            // The block uses more of its chunk: it counts in the need as
            // much as a new chunk for it, with room to grow, would.
            let room = new_rounded.min(GROWTH_ROOM_CAP) * (GROWTH_ROOM - 1);
            let fresh = (end - c)
                .checked_add(room)
                .and_then(space::class_for)
                .map_or(usize::MAX, |k| SLAB << k);
            self.need_grow(chunk, fresh);
        }
        true
    }

    /// Live side blocks allocated after checkpoint `serial` (all of them for
    /// `None`): `(blocks, bytes)`.
    pub(super) fn side_escapes(&self, serial: Option<u64>) -> (u64, u64) {
        let (mut blocks, mut bytes) = (0, 0);
        let mut c = self.side.get();
        while !c.is_null() {
            // SAFETY: side chunks of this lane, each holding one live block
            // that starts at its data offset.
            unsafe {
                if serial.is_none_or(|s| (*c).seq.get() >= s) {
                    blocks += 1;
                    bytes += ((*c).fill.get() - (*c).start.get()) as u64;
                }
                c = (*c).next.get();
            }
        }
        (blocks, bytes)
    }

    /// Calls `f` on every side chunk.
    pub(super) fn for_each_side(&self, mut f: impl FnMut(*mut ChunkHeader)) {
        let mut c = self.side.get();
        while !c.is_null() {
            // SAFETY: side chunks of this lane.
            let next = unsafe { (*c).next.get() };
            f(c);
            c = next;
        }
    }
}
