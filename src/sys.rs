//! Operating-system memory primitives: reserve, commit, decommit, and a
//! last-resort way to report a fatal error without allocating.
//!
//! Everything here is a thin wrapper around `mmap`/`mprotect`/`madvise`
//! (or, under Miri, around `std::alloc::System`, which Miri can model). None
//! of these functions allocate through the global allocator, panic, or
//! unwind, so they are safe to call from inside the allocator shim.

#[cfg(feature = "fault-injection")]
use core::sync::atomic::{AtomicUsize, Ordering};

/// Size of an OS page as assumed by the space layout. The layout only needs a
/// value that divides the slab size; 4 KiB pages are the smallest in practice.
pub(crate) const PAGE: usize = 4096;

/// Fault injection: the number of upcoming `reserve`/`commit`/`map` calls
/// that must fail as if the OS refused them. Zero in normal operation.
#[cfg(feature = "fault-injection")]
static FAIL_NEXT: AtomicUsize = AtomicUsize::new(0);

/// Makes the next `n` reservations, commits or mappings fail. Used by tests
/// to prove that a refused `mmap` turns into a spill to the inner allocator.
#[cfg(feature = "fault-injection")]
pub(crate) fn inject_failures(n: usize) {
    FAIL_NEXT.store(n, Ordering::SeqCst);
}

#[cfg(feature = "fault-injection")]
fn injected_failure() -> bool {
    FAIL_NEXT
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
fn injected_failure() -> bool {
    false
}

#[cfg(not(miri))]
mod imp {
    use core::ptr;

    /// Reserves `len` bytes of address space with no access and no backing.
    pub(super) fn reserve(len: usize, align: usize) -> *mut u8 {
        // Over-reserve so that an `align`-aligned range of `len` fits, then
        // trim the ends.
        let total = match len.checked_add(align) {
            Some(t) => t,
            None => return ptr::null_mut(),
        };
        // SAFETY: an anonymous private mapping with no address hint touches no
        // existing memory; the result is checked against MAP_FAILED.
        let raw = unsafe {
            libc::mmap(
                ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return ptr::null_mut();
        }
        let raw = raw.cast::<u8>();
        let head = raw.addr().wrapping_neg() & (align - 1);
        let aligned = raw.wrapping_add(head);
        let tail = total - head - len;
        // SAFETY: both ranges lie inside the mapping made just above and are
        // not referenced by anything else yet.
        unsafe {
            if head > 0 {
                libc::munmap(raw.cast(), head);
            }
            if tail > 0 {
                libc::munmap(aligned.wrapping_add(len).cast(), tail);
            }
        }
        aligned
    }

    /// Makes `[ptr, ptr + len)` readable and writable.
    pub(super) fn commit(ptr: *mut u8, len: usize) -> bool {
        // SAFETY: callers pass a page-aligned range inside the reservation,
        // which this process owns and nothing else maps.
        unsafe { libc::mprotect(ptr.cast(), len, libc::PROT_READ | libc::PROT_WRITE) == 0 }
    }

    /// Makes `[ptr, ptr + len)` inaccessible (guard mode).
    pub(super) fn protect(ptr: *mut u8, len: usize) -> bool {
        // SAFETY: callers pass a page-aligned range of a chunk that holds no
        // live data.
        unsafe { libc::mprotect(ptr.cast(), len, libc::PROT_NONE) == 0 }
    }

    /// Gives the physical pages of `[ptr, ptr + len)` back to the OS; the range
    /// stays mapped and reads as zero afterwards.
    pub(super) fn decommit(ptr: *mut u8, len: usize) {
        // SAFETY: callers pass a page-aligned range inside the reservation
        // that holds no live data.
        unsafe {
            libc::madvise(ptr.cast(), len, libc::MADV_DONTNEED);
        }
    }

    /// Maps `len` fresh zeroed read-write bytes outside the reservation.
    pub(super) fn map(len: usize) -> *mut u8 {
        // SAFETY: as in `reserve`; the result is checked.
        let raw = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            ptr::null_mut()
        } else {
            raw.cast()
        }
    }

    /// Unmaps a range returned by `map`.
    pub(super) fn unmap(ptr: *mut u8, len: usize) {
        // SAFETY: callers pass exactly a range returned by `map` that nothing
        // refers to any more.
        unsafe {
            libc::munmap(ptr.cast(), len);
        }
    }

    /// Writes `msg` to standard error without allocating.
    pub(super) fn write_stderr(msg: &[u8]) {
        // SAFETY: `msg` is a valid slice; a short or failed write is harmless.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
        }
    }
}

#[cfg(miri)]
mod imp {
    //! Miri cannot model `mmap`, so the address space is carved from one large
    //! `System` allocation. Commit is a no-op, decommit zeroes the range.
    use std::alloc::{GlobalAlloc, Layout, System};

    pub(super) fn reserve(len: usize, align: usize) -> *mut u8 {
        match Layout::from_size_align(len, align) {
            // SAFETY: the layout has a non-zero size (callers reserve at least a slab).
            Ok(l) => unsafe { System.alloc_zeroed(l) },
            Err(_) => core::ptr::null_mut(),
        }
    }
    pub(super) fn commit(_ptr: *mut u8, _len: usize) -> bool {
        true
    }
    pub(super) fn protect(_ptr: *mut u8, _len: usize) -> bool {
        // Miri has no page protection; guard mode only poisons there.
        false
    }
    pub(super) fn decommit(ptr: *mut u8, len: usize) {
        // SAFETY: the range lies inside the reservation and holds no live data.
        unsafe { core::ptr::write_bytes(ptr, 0, len) }
    }
    pub(super) fn map(len: usize) -> *mut u8 {
        match Layout::from_size_align(len, super::PAGE) {
            // SAFETY: non-zero size, as above.
            Ok(l) => unsafe { System.alloc_zeroed(l) },
            Err(_) => core::ptr::null_mut(),
        }
    }
    pub(super) fn unmap(ptr: *mut u8, len: usize) {
        if let Ok(l) = Layout::from_size_align(len, super::PAGE) {
            // SAFETY: `ptr` came from `map` with this same layout.
            unsafe { System.dealloc(ptr, l) }
        }
    }
    pub(super) fn write_stderr(msg: &[u8]) {
        use std::io::Write;
        let _ = std::io::stderr().write_all(msg);
    }
}

/// Reserves `len` bytes of inaccessible address space aligned to `align` (a
/// power of two). Returns null if the OS refuses.
pub(crate) fn reserve(len: usize, align: usize) -> *mut u8 {
    if injected_failure() {
        return core::ptr::null_mut();
    }
    imp::reserve(len, align)
}

/// Makes a page-aligned range of the reservation readable and writable.
/// Returns false if the OS refuses.
pub(crate) fn commit(ptr: *mut u8, len: usize) -> bool {
    if injected_failure() {
        return false;
    }
    imp::commit(ptr, len)
}

/// Makes a page-aligned range inaccessible. Returns false if the OS refuses
/// (for example when the process ran out of memory mappings).
pub(crate) fn protect(ptr: *mut u8, len: usize) -> bool {
    imp::protect(ptr, len)
}

/// Returns the physical memory behind a page-aligned range to the OS. The
/// range stays accessible and reads as zero.
pub(crate) fn decommit(ptr: *mut u8, len: usize) {
    imp::decommit(ptr, len)
}

/// Maps `len` bytes (a multiple of `PAGE`) of zeroed memory outside the
/// reservation. Returns null if the OS refuses.
pub(crate) fn map(len: usize) -> *mut u8 {
    if injected_failure() {
        return core::ptr::null_mut();
    }
    imp::map(len)
}

/// Unmaps a range obtained from [`map`].
pub(crate) fn unmap(ptr: *mut u8, len: usize) {
    imp::unmap(ptr, len)
}

/// Writes a message to standard error without allocating.
pub(crate) fn write_stderr(msg: &[u8]) {
    imp::write_stderr(msg)
}

/// Reports an internal invariant violation and aborts. Used on the allocator
/// path, where panicking would be undefined behaviour.
#[cold]
pub(crate) fn fatal(msg: &str) -> ! {
    write_stderr(b"bumper: fatal: ");
    write_stderr(msg.as_bytes());
    write_stderr(b"\n");
    std::process::abort()
}
