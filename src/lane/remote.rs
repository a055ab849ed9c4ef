//! Frees from threads that do not own the lane: a lock-free list through the
//! freed blocks themselves, drained by the owner.
//!
//! Any thread may free a block of a lane it does not hold: the block is
//! pushed onto the lane's *remote list* (the link, and the block's rounded
//! size, are written into the freed block) and the owner accounts for it
//! later ([`Lane::drain`]). When the arena is dropped, the list is *closed*:
//! later remote frees count down the orphaned arena's live blocks instead,
//! and the last one destroys it.

use core::ptr;
use core::sync::atomic::Ordering;

use super::{Lane, granule};
use crate::arena_core::ArenaCore;

/// Low bits of a node's link word: the block's granule is 8 bytes.
const TAG_8: usize = 1;
/// Low bits of a node's link word: the block's granule is 16 bytes.
const TAG_16: usize = 2;
/// The tag bits (nodes are 8-aligned).
const TAGS: usize = 7;

/// Value of `remote` once the arena has been dropped.
pub(super) const CLOSED: *mut u8 = ptr::without_provenance_mut(1);

impl Lane {
    /// Frees a block of lane `this` from a thread that does not own it.
    ///
    /// Takes a raw pointer because, if the arena was dropped, this free may be
    /// the last one and destroy the arena, lane included.
    ///
    /// The block becomes a node of the lane's list: a link word, tagged in
    /// its low bits with the block's granule when that is 8 or 16 bytes,
    /// else followed by the granule. The node's bytes that are the caller's
    /// block are written through `ptr` (the caller's pointer, which may be
    /// protected for the call, as a `Box` being dropped is); those beyond it,
    /// up to the granule, through `node`, which carries the chunk's
    /// provenance and is what the list holds and the owner reads.
    ///
    /// # Safety
    /// `this` must be the lane of the live block at `ptr`, of `size` bytes,
    /// which the caller gives up; `node` is the same address with the
    /// provenance of the block's chunk.
    #[inline]
    pub(crate) unsafe fn free_remote(this: *const Lane, ptr: *mut u8, node: *mut u8, size: usize) {
        debug_assert_eq!(ptr.addr(), node.addr());
        let rounded = granule(size);
        // SAFETY: the lane is alive while one of its blocks is.
        let (remote, core) = unsafe { (&(*this).remote, (*this).core) };
        let mut head = remote.load(Ordering::Relaxed);
        loop {
            if head == CLOSED {
                // SAFETY: the arena was dropped and this block was live; the
                // lane is not touched after this call.
                unsafe { ArenaCore::orphan_free(core) };
                return;
            }
            let (link, len) = match rounded {
                8 => (head.map_addr(|a| a | TAG_8), 8),
                16 => (head.map_addr(|a| a | TAG_16), 8),
                _ => (head, 16),
            };
            // The node lies in the caller's block but for a block under 8
            // bytes, whose link word runs into the granule's padding: that
            // part is written through `node`, byte by byte (which keeps the
            // link's provenance).
            // SAFETY: the block's granule is at least `len` bytes (8, or 24
            // and up when the granule is stored) and 8-aligned, and the
            // caller gives it up: its memory is ours to use as a list node.
            unsafe {
                if size >= len {
                    ptr.cast::<*mut u8>().write(link);
                    if len == 16 {
                        ptr.cast::<usize>().add(1).write(rounded);
                    }
                } else {
                    let bytes = (&raw const link).cast::<u8>();
                    ptr::copy_nonoverlapping(bytes, ptr, size);
                    ptr::copy_nonoverlapping(bytes.add(size), node.add(size), len - size);
                }
            }
            match remote.compare_exchange_weak(head, node, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Accounts for the blocks other threads freed. Returns whether there
    /// were any.
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim.
    #[inline]
    pub(crate) unsafe fn drain(&self) -> bool {
        if self.remote.load(Ordering::Relaxed).is_null() {
            return false;
        }
        // SAFETY: owner only, as the caller.
        unsafe { self.drain_list_now() }
    }

    /// [`Lane::drain`] once the list is seen to be non-empty.
    ///
    /// # Safety
    /// As for [`Lane::drain`].
    #[inline(never)]
    unsafe fn drain_list_now(&self) -> bool {
        let mut head = self.remote.load(Ordering::Relaxed);
        // Take the list, but never reopen a closed one: frees of a dropped
        // arena's blocks must keep taking the orphan path.
        while !head.is_null() && head != CLOSED {
            match self.remote.compare_exchange_weak(
                head,
                ptr::null_mut(),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // SAFETY: owner only (caller contract); the list was just
                    // taken.
                    unsafe { self.drain_list(head) };
                    return true;
                }
                Err(h) => head = h,
            }
        }
        false
    }

    /// Drains the remote list and closes it: later remote frees take the
    /// orphan path. Used when the arena is dropped.
    ///
    /// # Safety
    /// Owner only: the calling thread holds the lane's claim.
    pub(crate) unsafe fn close(&self) {
        let head = self.remote.swap(CLOSED, Ordering::AcqRel);
        // SAFETY: owner only (caller contract); the list was just taken.
        unsafe { self.drain_list(head) };
    }

    /// Frees every block of the list at `head`.
    ///
    /// # Safety
    /// Owner only, and the list is one taken off `remote`.
    unsafe fn drain_list(&self, mut head: *mut u8) {
        while !head.is_null() && head != CLOSED {
            // SAFETY: every node was written by `free_remote` before the
            // release CAS that published it; our acquire swap synchronises.
            let (next, rounded) = unsafe {
                let link = head.cast::<*mut u8>().read();
                let next = link.map_addr(|a| a & !TAGS);
                match link.addr() & TAGS {
                    TAG_8 => (next, 8),
                    TAG_16 => (next, 16),
                    _ => (next, head.cast::<usize>().add(1).read()),
                }
            };
            // SAFETY: the node was a live block of this lane, and this thread
            // holds the lane (caller contract of `drain` and `close`).
            unsafe { self.free_elsewhere(head, rounded as u64) };
            head = next;
        }
    }
}
