//! Byte patterns that prove memory was not reused while in use.
//!
//! Every block a test wants to watch is filled with the pattern of an id
//! and checked against it later: a reset, a move or another thread that
//! handed the memory out again would have overwritten it. The pattern is
//! addressable by offset (byte `i` of the pattern of `id` does not depend on
//! the bytes before it), so:
//!
//! - a prefix of a block keeps its pattern when the block is reallocated;
//! - [`fill_raw`] and [`check_raw`] work on any byte range;
//! - nothing here allocates, so checks can run inside a region without
//!   changing what the region allocates, in destructors and in exit
//!   handlers.
//!
//! Every word of a block differs from the others, and from the same word of
//! any other id, so a copy to the wrong offset or a block mistaken for
//! another is caught too.

use std::alloc::Layout;
use std::fmt;

/// Step between consecutive pattern words.
const STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// The first pattern word of id `id` (the splitmix64 finaliser).
#[inline]
fn base(id: u64) -> u64 {
    let mut z = id.wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Word `w` (bytes `8w..8w + 8`, little-endian) of the pattern of `id`.
///
/// The model test also uses this to spread its 64-bit generator seed over
/// the 32 bytes ChaCha takes; its `MIRI_SEED` was chosen for the cases that
/// expansion produces, so this function must not change.
#[inline]
pub fn word(id: u64, w: usize) -> u64 {
    base(id).wrapping_add((w as u64).wrapping_mul(STEP))
}

/// Byte `i` of the pattern of `id`.
#[inline]
pub fn byte(id: u64, i: usize) -> u8 {
    word(id, i / 8).to_le_bytes()[i % 8]
}

// ---------------------------------------------------------------------------
// slices
// ---------------------------------------------------------------------------

/// Fills `buf` with the pattern of `id`.
pub fn fill(buf: &mut [u8], id: u64) {
    // SAFETY: `buf` is valid for writes of its whole length.
    unsafe { fill_raw(buf.as_mut_ptr(), id, 0, buf.len()) }
}

/// A new `Vec` of `len` bytes holding the pattern of `id`. It is made with
/// one allocation of exactly `len` bytes (`alloc`, not `alloc_zeroed`).
pub fn filled(len: usize, id: u64) -> Vec<u8> {
    (0..len).map(|i| byte(id, i)).collect()
}

/// The first offset at which `buf` differs from the pattern of `id`, or
/// `None`.
pub fn first_mismatch(buf: &[u8], id: u64) -> Option<usize> {
    // SAFETY: `buf` is valid for reads of its whole length.
    unsafe { check_raw(buf.as_ptr(), id, 0, buf.len()) }
}

/// Whether `buf` holds the pattern of `id`.
pub fn holds(buf: &[u8], id: u64) -> bool {
    first_mismatch(buf, id).is_none()
}

/// Asserts that `buf` holds the pattern of `id`; the panic message names the
/// block (`what`), the first offset that differs, and both bytes.
#[track_caller]
pub fn check(buf: &[u8], id: u64, what: impl fmt::Display) {
    if let Some(off) = first_mismatch(buf, id) {
        panic!(
            "{what}: the {} bytes at {:p} lost the pattern of id {id}: offset {off} holds {:#04x}, expected {:#04x}",
            buf.len(),
            buf.as_ptr(),
            buf[off],
            byte(id, off)
        );
    }
}

// ---------------------------------------------------------------------------
// raw memory
// ---------------------------------------------------------------------------

/// Writes the pattern of `id` into bytes `from..to` of the block at `p`.
///
/// # Safety
/// `p..p + to` must be valid for writes.
pub unsafe fn fill_raw(p: *mut u8, id: u64, from: usize, to: usize) {
    let mut i = from;
    // Bytes up to the first whole word.
    while i < to && (!i.is_multiple_of(8) || i + 8 > to) {
        // SAFETY: `i < to` (caller contract).
        unsafe { p.add(i).write(byte(id, i)) };
        i += 1;
    }
    // Whole words (the loop above stops only at a word boundary).
    let words = (to - i) / 8;
    let mut expect = word(id, i / 8);
    for k in 0..words {
        // SAFETY: inside `from..to` (caller contract).
        unsafe {
            p.add(i + 8 * k)
                .cast::<u64>()
                .write_unaligned(expect.to_le())
        };
        expect = expect.wrapping_add(STEP);
    }
    i += 8 * words;
    while i < to {
        // SAFETY: `i < to` (caller contract).
        unsafe { p.add(i).write(byte(id, i)) };
        i += 1;
    }
}

/// The first offset in `from..to` at which the block at `p` differs from the
/// pattern of `id`, or `None`.
///
/// # Safety
/// `p..p + to` must be valid for reads.
pub unsafe fn check_raw(p: *const u8, id: u64, from: usize, to: usize) -> Option<usize> {
    let mut i = from;
    while i < to && (!i.is_multiple_of(8) || i + 8 > to) {
        // SAFETY: `i < to` (caller contract).
        if unsafe { p.add(i).read() } != byte(id, i) {
            return Some(i);
        }
        i += 1;
    }
    let words = (to - i) / 8;
    let mut expect = word(id, i / 8).to_le();
    let q = p.wrapping_add(i);
    // The first differing byte of the word at `at`.
    let first_bad_byte = |at: usize| {
        // SAFETY: `at..at + 8` lies inside `from..to` (caller contract).
        (at..at + 8).find(|&j| unsafe { p.add(j).read() } != byte(id, j))
    };
    if q.addr().is_multiple_of(8) {
        // SAFETY: aligned, inside `from..to` (caller contract).
        let ws = unsafe { core::slice::from_raw_parts(q.cast::<u64>(), words) };
        for (k, &x) in ws.iter().enumerate() {
            if x != expect {
                return first_bad_byte(i + 8 * k);
            }
            expect = u64::from_le(expect).wrapping_add(STEP).to_le();
        }
    } else {
        for k in 0..words {
            // SAFETY: inside `from..to` (caller contract).
            if unsafe { q.add(8 * k).cast::<u64>().read_unaligned() } != expect {
                return first_bad_byte(i + 8 * k);
            }
            expect = u64::from_le(expect).wrapping_add(STEP).to_le();
        }
    }
    i += 8 * words;
    while i < to {
        // SAFETY: `i < to` (caller contract).
        if unsafe { p.add(i).read() } != byte(id, i) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The first non-zero byte in the `len` bytes at `p`, or `None` (for
/// checking `alloc_zeroed`).
///
/// # Safety
/// `p..p + len` must be valid for reads.
pub unsafe fn first_nonzero(p: *const u8, len: usize) -> Option<usize> {
    let mut i = 0;
    while i + 8 <= len {
        // SAFETY: `i + 8 <= len` (caller contract).
        if unsafe { p.add(i).cast::<u64>().read_unaligned() } != 0 {
            break;
        }
        i += 8;
    }
    // SAFETY: `i..len` lies inside the range (caller contract).
    (i..len).find(|&k| unsafe { p.add(k).read() } != 0)
}

// ---------------------------------------------------------------------------
// raw blocks
// ---------------------------------------------------------------------------

/// A block obtained from the global allocator with an explicit layout, which
/// carries the pattern of `id`.
#[derive(Debug, Clone, Copy)]
pub struct Block {
    pub ptr: *mut u8,
    pub size: usize,
    pub align: usize,
    /// Pattern id.
    pub id: u64,
}

impl Block {
    /// Blocks up to this size are always checked in full.
    const FULL_CHECK_MAX: usize = 8192;

    pub fn layout(&self) -> Layout {
        Layout::from_size_align(self.size, self.align).unwrap()
    }

    /// The first offset at which the block lost its pattern, or `None`.
    /// With `sampled`, a block larger than 8 KiB is checked only at its
    /// first and last 2 KiB and one word every 4 KiB in between: a cheaper
    /// spot check, for tests that check every block in full before it is
    /// freed.
    ///
    /// # Safety
    /// The block must be live: `ptr..ptr + size` valid for reads.
    pub unsafe fn first_corruption(&self, sampled: bool) -> Option<usize> {
        let (p, id, n) = (self.ptr, self.id, self.size);
        if !sampled || n <= Self::FULL_CHECK_MAX {
            // SAFETY: a live block of `n` bytes (caller contract).
            return unsafe { check_raw(p, id, 0, n) };
        }
        // SAFETY: every range lies inside the live block (caller contract).
        unsafe {
            check_raw(p, id, 0, 2048)
                .or_else(|| check_raw(p, id, n - 2048, n))
                .or_else(|| {
                    (2048..n - 2048)
                        .step_by(4096)
                        .find_map(|o| check_raw(p, id, o, o + 8))
                })
        }
    }

    /// The byte at offset `off`.
    ///
    /// # Safety
    /// The block must be live and `off < size`.
    pub unsafe fn read(&self, off: usize) -> u8 {
        // SAFETY: inside the live block (caller contract).
        unsafe { self.ptr.add(off).read() }
    }
}
