//! Counters: per arena ([`ArenaStats`]) and for the address space
//! ([`SpaceStats`]), and [`Bytes`] to print them. Plain data, in the bottom
//! layer: every other module may use these types.

use core::fmt;

/// A byte count that prints in binary units (`1.50 KiB`).
///
/// ```
/// assert_eq!(bumper::Bytes(1536).to_string(), "1.50 KiB");
/// assert_eq!(bumper::Bytes(800).to_string(), "800 bytes");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        let n = self.0;
        if n < 1024 {
            return write!(f, "{n} bytes");
        }
        let mut v = n as f64 / 1024.0;
        let mut unit = 0;
        while v >= 1024.0 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        write!(f, "{v:.2} {}", UNITS[unit])
    }
}

// Here rather than in `space`, next to `Bytes`, so that the address-space
// module does not depend on this one.
/// Process-wide figures about the address space, from
/// [`space_stats`](crate::space_stats).
///
/// ```
/// let arena = bumper::Arena::new();
/// let s: bumper::SpaceStats = bumper::space_stats();
/// assert!(s.reserved >= s.in_use);
/// # drop(arena);
/// ```
///
/// It prints on one line, in binary units (see [`Bytes`](crate::Bytes)):
///
/// ```
/// let none = bumper::SpaceStats::default();
/// assert_eq!(
///     none.to_string(),
///     "address space: 0 bytes reserved, 0 bytes in use by arenas, 0 bytes retained for reuse, \
///      0 bytes given back to the OS; 0 memory system calls"
/// );
/// let arena = bumper::Arena::new();
/// println!("{}", bumper::space_stats()); // address space: 64.00 GiB reserved, 64.00 KiB in use by arenas, ...
/// # drop(arena);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpaceStats {
    /// Bytes of address space reserved (0 before the first arena).
    pub reserved: u64,
    /// Bytes of chunks held by arenas right now.
    pub in_use: u64,
    /// Bytes of free chunks kept committed for quick reuse by any arena (at
    /// most 64 MiB of chunks under 1 MiB; larger chunks are never kept).
    pub retained: u64,
    /// Bytes of free chunks whose memory was given back to the OS (their
    /// address space stays reserved for reuse).
    pub decommitted: u64,
    /// Memory system calls bumper made (`mmap`, `munmap`, `mprotect`,
    /// `madvise`), in total. A steady loop makes none after its warm-up.
    pub os_calls: u64,
    /// Of `os_calls`, the `mmap` calls.
    pub mmap_calls: u64,
    /// Of `os_calls`, the `munmap` calls.
    pub munmap_calls: u64,
    /// Of `os_calls`, the `mprotect` calls (committing chunks, guard mode).
    pub mprotect_calls: u64,
    /// Of `os_calls`, the `madvise` calls (giving memory back).
    pub madvise_calls: u64,
}

impl fmt::Display for SpaceStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "address space: {} reserved, {} in use by arenas, {} retained for reuse, \
             {} given back to the OS; {} memory system calls",
            Bytes(self.reserved),
            Bytes(self.in_use),
            Bytes(self.retained),
            Bytes(self.decommitted),
            self.os_calls
        )
    }
}

/// A snapshot of what an arena has done, from
/// [`Arena::stats`](crate::Arena::stats) or
/// [`LockedArena::stats`](crate::LockedArena::stats).
///
/// Counts are exact for every lane not in use by another thread at the time
/// of the snapshot; `busy_lanes` says how many were skipped (their per-lane
/// figures are not included; the arena-wide counters such as `resets`,
/// `spills` and `chunk_bytes` always are).
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use bumper::{with_bumper, Arena};
///
/// let arena = Arena::new();
/// let v = with_bumper(&arena, || vec![0u8; 1000]);
/// let s = arena.stats();
/// assert_eq!(s.live_blocks, 1);
/// assert_eq!(s.live_bytes, 1000);
/// drop(v);
/// assert_eq!(arena.stats().live_blocks, 0);
/// println!("{}", arena.stats());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArenaStats {
    /// The arena's id, as in messages: see [`Arena::id`](crate::Arena::id).
    /// Ids count every arena the process made, so the first arena a
    /// program makes need not be #1.
    pub arena_id: u64,
    /// Allocation requests the arena served (allocations and reallocations).
    pub allocations: u64,
    /// Bytes requested by those calls.
    pub bytes_allocated: u64,
    /// Bytes of arena memory in use now: everything below the bump pointers
    /// of the chunks that hold blocks, padding and dead blocks that share a
    /// chunk with live ones included, plus the live large blocks
    /// (`large_bytes`). A reset that reclaims everything brings the part
    /// below the bump pointers (`bytes_in_use - large_bytes`) back to at most
    /// its value at the checkpoint: exactly that value unless small blocks
    /// freed earlier left dead memory that went back while the checkpoint was
    /// open (SAFETY.md, R6). Large blocks go back when they are freed.
    pub bytes_in_use: u64,
    /// Highest `bytes_in_use` seen (summed over lanes).
    pub peak_bytes_in_use: u64,
    /// Blocks handed out and not yet freed.
    pub live_blocks: u64,
    /// Bytes (rounded up to 8) of those blocks.
    pub live_bytes: u64,
    /// Of the live blocks, the large ones (at least a quarter of the chunk
    /// size, 64 KiB by default), which get a chunk of their own so that they
    /// never pin, or are pinned by, the small blocks around them. They are
    /// counted in `bytes_in_use` too.
    pub large_blocks: u64,
    /// Bytes (rounded up to 8) of those large blocks.
    pub large_bytes: u64,
    /// Requests made inside a region of this arena that the inner allocator
    /// served: past the capacity limit, when the address space ran out, for
    /// alignments above 64 KiB, or when every lane was taken.
    pub spills: u64,
    /// Bytes requested by those spills.
    pub spilled_bytes: u64,
    /// Requests that went to the inner allocator the same way but failed
    /// (it returned null, which was passed on to the caller). Not included in
    /// `spills` or `spilled_bytes`.
    pub failed_spills: u64,
    /// Resets performed (explicit, `no_escape`, and checkpoint resets).
    pub resets: u64,
    /// Bytes the resets moved the bump pointers back over: dead blocks that
    /// frees could not hand back. Most memory goes back at the free itself
    /// and is not counted here: freeing the newest block of a lane moves its
    /// bump pointer back, and a chunk leaves the lane when its last block is
    /// freed. So a clean reset may reclaim little or nothing (0 when every
    /// block was freed newest first), and that is not a failure:
    /// [`bytes_in_use`](Self::bytes_in_use) says what is still held.
    pub bytes_reclaimed: u64,
    /// Resets (and drops) that found memory still in use and kept it.
    pub escapes: u64,
    /// Blocks kept by those resets.
    pub escaped_blocks: u64,
    /// Bytes of those blocks.
    pub escaped_bytes: u64,
    /// Of the `escapes`, those caused by other threads rather than by live
    /// blocks: lanes in use inside another thread's region, or newer
    /// checkpoints of other threads (a `LockedArena` reset while other
    /// threads still use it).
    pub contended_resets: u64,
    /// Checkpoints that could not be recorded (the OS refused the memory
    /// for their records), whose resets reclaim nothing.
    pub untracked_checkpoints: u64,
    /// Bytes of chunk memory the arena holds (its retained capacity).
    pub chunk_bytes: u64,
    /// Chunk memory given back so far by resets that kept only what recent
    /// resets needed, and by [`trim`](crate::Arena::trim).
    pub trimmed_bytes: u64,
    /// Number of chunks held.
    pub chunks: u64,
    /// The capacity limit, if any.
    pub capacity_limit: Option<u64>,
    /// Lanes (one per thread using the arena at once).
    pub lanes: u32,
    /// Lanes skipped because another thread was using them.
    pub busy_lanes: u32,
    /// Regions that found every lane taken and spilled everything.
    pub lanes_exhausted: u64,
    /// Checkpoints active right now.
    pub active_checkpoints: u32,
}

impl fmt::Display for ArenaStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "arena #{}:", self.arena_id)?;
        writeln!(
            f,
            "  served     {} calls, {}",
            self.allocations,
            Bytes(self.bytes_allocated)
        )?;
        writeln!(
            f,
            "  in use     {} (peak {}), {} live blocks ({})",
            Bytes(self.bytes_in_use),
            Bytes(self.peak_bytes_in_use),
            self.live_blocks,
            Bytes(self.live_bytes)
        )?;
        writeln!(
            f,
            "  resets     {}, {} with escapes ({} blocks, {}; {} contended)",
            self.resets,
            self.escapes,
            self.escaped_blocks,
            Bytes(self.escaped_bytes),
            self.contended_resets
        )?;
        // Most memory goes back at the free itself (the newest block of a
        // lane rewinds its bump pointer, a chunk leaves when its last block
        // dies); a reset only reclaims dead blocks that were stuck under live
        // ones. Said so, so that a small figure does not read as a failure.
        writeln!(
            f,
            "  reclaimed  {} by resets, besides what frees gave back at once \
             (newest blocks, emptied chunks)",
            Bytes(self.bytes_reclaimed)
        )?;
        writeln!(
            f,
            "  spills     {} calls, {} to the inner allocator",
            self.spills,
            Bytes(self.spilled_bytes)
        )?;
        write!(
            f,
            "  capacity   {} in {} chunks ({} given back)",
            Bytes(self.chunk_bytes),
            self.chunks,
            Bytes(self.trimmed_bytes)
        )?;
        if let Some(limit) = self.capacity_limit {
            write!(f, " (limit {})", Bytes(limit))?;
        }
        if self.busy_lanes > 0 {
            write!(
                f,
                "\n  note       {} lane(s) busy: their figures are not included",
                self.busy_lanes
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{ArenaStats, SpaceStats};

    #[test]
    fn arena_stats_print_what_resets_reclaimed_beside_what_frees_gave_back() {
        let s = ArenaStats {
            arena_id: 3,
            allocations: 9,
            bytes_allocated: 7 << 20,
            peak_bytes_in_use: 2 << 20,
            resets: 3,
            chunk_bytes: 3 << 20,
            chunks: 4,
            ..ArenaStats::default()
        };
        assert_eq!(
            s.to_string(),
            "arena #3:\n\
             \x20 served     9 calls, 7.00 MiB\n\
             \x20 in use     0 bytes (peak 2.00 MiB), 0 live blocks (0 bytes)\n\
             \x20 resets     3, 0 with escapes (0 blocks, 0 bytes; 0 contended)\n\
             \x20 reclaimed  0 bytes by resets, besides what frees gave back at once \
             (newest blocks, emptied chunks)\n\
             \x20 spills     0 calls, 0 bytes to the inner allocator\n\
             \x20 capacity   3.00 MiB in 4 chunks (0 bytes given back)"
        );
    }

    #[test]
    fn space_stats_print_in_binary_units() {
        let s = SpaceStats {
            reserved: 64 << 30,
            in_use: 320 << 10,
            retained: 1536,
            decommitted: 2 << 20,
            os_calls: 7,
            ..SpaceStats::default()
        };
        assert_eq!(
            s.to_string(),
            "address space: 64.00 GiB reserved, 320.00 KiB in use by arenas, \
             1.50 KiB retained for reuse, 2.00 MiB given back to the OS; 7 memory system calls"
        );
    }
}
