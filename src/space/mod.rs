//! The address space: where arena chunks come from, and the constant-time
//! test that tells an arena's pointer from the inner allocator's.
//!
//! Two backends, one interface:
//! - `reserved.rs` (everywhere but Miri): one large reservation per process,
//!   a slab table mapping addresses to chunks, lock-free free lists;
//! - `per_chunk.rs` (under Miri): every chunk is an allocation of its own,
//!   freed when the chunk is given back, so that Miri sees any use of a
//!   chunk's memory after it left its lane, and any block handed out again
//!   from a chunk that held a live one.
//!
//! Nothing here allocates through the global allocator, takes a lock, or
//! panics: every function may run inside the allocator shim.

use crate::chunk::{SLAB, SLAB_SHIFT};

#[cfg(not(miri))]
mod reserved;
#[cfg(not(miri))]
pub(crate) use reserved::*;

#[cfg(miri)]
mod per_chunk;
#[cfg(miri)]
pub(crate) use per_chunk::*;

/// Number of chunk size classes (`SLAB << 0` .. `SLAB << (CLASSES - 1)`).
const CLASSES: usize = 40;

/// The size class that holds at least `bytes`, if any.
pub(crate) fn class_for(bytes: usize) -> Option<u8> {
    if bytes <= SLAB {
        return Some(0);
    }
    let slabs = bytes.checked_next_power_of_two()? >> SLAB_SHIFT;
    let class = slabs.trailing_zeros() as usize;
    (class < CLASSES).then_some(class as u8)
}

/// Parses `123`, `64K`, `16M`, `64G`, `1T` (binary units).
#[cfg_attr(miri, allow(dead_code))]
pub(crate) fn parse_size(s: &[u8]) -> Option<usize> {
    let (digits, shift) = match s.last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 10),
        b'm' | b'M' => (&s[..s.len() - 1], 20),
        b'g' | b'G' => (&s[..s.len() - 1], 30),
        b't' | b'T' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: usize = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add((d - b'0') as usize)?;
    }
    n.checked_mul(1usize << shift)
}

#[cfg(test)]
mod tests {
    use super::{class_for, parse_size};
    use crate::chunk::SLAB;

    #[test]
    fn parse_sizes() {
        assert_eq!(parse_size(b"65536"), Some(65536));
        assert_eq!(parse_size(b"64K"), Some(64 << 10));
        assert_eq!(parse_size(b"2g"), Some(2 << 30));
        assert_eq!(parse_size(b"x"), None);
        assert_eq!(parse_size(b"G"), None);
        assert_eq!(parse_size(b""), None);
    }

    #[test]
    fn classes() {
        assert_eq!(class_for(1), Some(0));
        assert_eq!(class_for(SLAB), Some(0));
        assert_eq!(class_for(SLAB + 1), Some(1));
        assert_eq!(class_for(4 * SLAB), Some(2));
        assert_eq!(class_for(usize::MAX), None);
    }
}
