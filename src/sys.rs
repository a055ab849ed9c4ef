//! Operating-system memory primitives: reserve, commit, decommit, and a
//! last-resort way to report a fatal error without allocating.
//!
//! Everything here is a thin wrapper around `mmap`/`mprotect`/`madvise`
//! (or, under Miri, around `std::alloc::System`, which Miri can model). None
//! of these functions allocate through the global allocator, panic, or
//! unwind, so they are safe to call from inside the allocator shim.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The page size, read from the OS once (`sysconf(_SC_PAGESIZE)`); 0 until
/// then. 4 KiB on most machines, 16 KiB or 64 KiB on some aarch64 ones.
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The OS page size. Guard mode protects, and decommit releases, whole pages
/// of this size.
#[inline]
pub(crate) fn page_size() -> usize {
    let p = PAGE_SIZE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    let p = imp::page_size();
    PAGE_SIZE.store(p, Ordering::Relaxed);
    p
}

/// System calls made for memory, by kind: `mmap`, `munmap`, `mprotect`,
/// `madvise`. Counted so that tests and stats can show that a steady loop
/// makes none.
static OS_CALLS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Which counter of [`OS_CALLS`] a call adds to.
#[derive(Clone, Copy)]
enum Call {
    Mmap = 0,
    Munmap = 1,
    Mprotect = 2,
    Madvise = 3,
}

#[cfg_attr(miri, allow(dead_code))]
fn count(call: Call) {
    OS_CALLS[call as usize].fetch_add(1, Ordering::Relaxed);
}

/// Memory system calls made so far: `[mmap, munmap, mprotect, madvise]`.
pub(crate) fn os_calls() -> [u64; 4] {
    core::array::from_fn(|i| OS_CALLS[i].load(Ordering::Relaxed))
}

/// Whether pages given back with [`decommit`] read as zero when next touched.
/// True for private anonymous memory on Linux (`MADV_DONTNEED`) and in the
/// Miri backend; other systems make no such promise, so bumper zeroes such
/// memory again before `alloc_zeroed` hands it out.
pub(crate) const DECOMMIT_ZEROES: bool =
    cfg!(any(miri, target_os = "linux", target_os = "android"));

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
        super::count(super::Call::Mmap);
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
                super::count(super::Call::Munmap);
                libc::munmap(raw.cast(), head);
            }
            if tail > 0 {
                super::count(super::Call::Munmap);
                libc::munmap(aligned.wrapping_add(len).cast(), tail);
            }
        }
        aligned
    }

    /// Makes `[ptr, ptr + len)` readable and writable.
    pub(super) unsafe fn commit(ptr: *mut u8, len: usize) -> bool {
        super::count(super::Call::Mprotect);
        // SAFETY: the caller passes a page-aligned range of the reservation
        // that it owns (see `super::commit`).
        unsafe { libc::mprotect(ptr.cast(), len, libc::PROT_READ | libc::PROT_WRITE) == 0 }
    }

    /// Makes `[ptr, ptr + len)` inaccessible (guard mode).
    pub(super) unsafe fn protect(ptr: *mut u8, len: usize) -> bool {
        super::count(super::Call::Mprotect);
        // SAFETY: the caller passes a page-aligned range of a chunk that holds
        // no live data (see `super::protect`).
        unsafe { libc::mprotect(ptr.cast(), len, libc::PROT_NONE) == 0 }
    }

    /// Gives the physical pages of `[ptr, ptr + len)` back to the OS; the range
    /// stays mapped and reads as zero afterwards.
    pub(super) unsafe fn decommit(ptr: *mut u8, len: usize) {
        super::count(super::Call::Madvise);
        // SAFETY: the caller passes a page-aligned range of the reservation
        // that holds no live data (see `super::decommit`).
        unsafe {
            libc::madvise(ptr.cast(), len, libc::MADV_DONTNEED);
        }
    }

    /// Maps `len` fresh zeroed read-write bytes outside the reservation.
    pub(super) fn map(len: usize) -> *mut u8 {
        super::count(super::Call::Mmap);
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
    pub(super) unsafe fn unmap(ptr: *mut u8, len: usize) {
        super::count(super::Call::Munmap);
        // SAFETY: the caller passes exactly a range returned by `map` that
        // nothing refers to any more (see `super::unmap`).
        unsafe {
            libc::munmap(ptr.cast(), len);
        }
    }

    /// The OS page size.
    pub(super) fn page_size() -> usize {
        // SAFETY: `sysconf` with a valid name has no preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 { p as usize } else { 4096 }
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
    pub(super) unsafe fn commit(_ptr: *mut u8, _len: usize) -> bool {
        true
    }
    pub(super) unsafe fn protect(_ptr: *mut u8, _len: usize) -> bool {
        // Miri has no page protection; guard mode only poisons there.
        false
    }
    pub(super) unsafe fn decommit(ptr: *mut u8, len: usize) {
        // SAFETY: the range lies inside the reservation and holds no live data.
        unsafe { core::ptr::write_bytes(ptr, 0, len) }
    }
    pub(super) fn map(len: usize) -> *mut u8 {
        match Layout::from_size_align(len, super::page_size()) {
            // SAFETY: non-zero size, as above.
            Ok(l) => unsafe { System.alloc_zeroed(l) },
            Err(_) => core::ptr::null_mut(),
        }
    }
    pub(super) unsafe fn unmap(ptr: *mut u8, len: usize) {
        if let Ok(l) = Layout::from_size_align(len, super::page_size()) {
            // SAFETY: `ptr` came from `map` with this same layout.
            unsafe { System.dealloc(ptr, l) }
        }
    }
    pub(super) fn page_size() -> usize {
        4096
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
///
/// # Safety
/// `[ptr, ptr + len)` must be a page-aligned range inside the reservation
/// that the caller owns (a chunk it is carving, or pages of its own chunk).
pub(crate) unsafe fn commit(ptr: *mut u8, len: usize) -> bool {
    if injected_failure() {
        return false;
    }
    // SAFETY: forwarded from the caller.
    unsafe { imp::commit(ptr, len) }
}

/// Makes a page-aligned range inaccessible. Returns false if the OS refuses
/// (for example when the process ran out of memory mappings).
///
/// # Safety
/// `[ptr, ptr + len)` must be a page-aligned range of a chunk the caller
/// owns, holding no live data and not the chunk's header.
pub(crate) unsafe fn protect(ptr: *mut u8, len: usize) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe { imp::protect(ptr, len) }
}

/// Returns the physical memory behind a page-aligned range to the OS. The
/// range stays accessible; it reads as zero afterwards only where
/// [`DECOMMIT_ZEROES`] says so.
///
/// # Safety
/// `[ptr, ptr + len)` must be a page-aligned range inside the reservation
/// that the caller owns and that holds no live data.
pub(crate) unsafe fn decommit(ptr: *mut u8, len: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { imp::decommit(ptr, len) }
}

/// Maps `len` bytes (a multiple of [`page_size`]) of zeroed memory outside
/// the reservation. Returns null if the OS refuses.
pub(crate) fn map(len: usize) -> *mut u8 {
    if injected_failure() {
        return core::ptr::null_mut();
    }
    imp::map(len)
}

/// Unmaps a range obtained from [`map`].
///
/// # Safety
/// `ptr` and `len` must be exactly a range returned by [`map`], and nothing
/// may refer to its memory any more.
pub(crate) unsafe fn unmap(ptr: *mut u8, len: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { imp::unmap(ptr, len) }
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
