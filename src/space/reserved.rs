//! The address space's backend outside Miri: one large reservation made
//! once per process, carved into power-of-two *chunks* that arenas
//! bump-allocate from.
//!
//! * [`owns`] is the constant-time ownership test that routes every `dealloc`
//!   and `realloc`: a pointer inside the reservation belongs to an arena, any
//!   other pointer to the inner allocator.
//! * The reservation is divided into 64 KiB *slabs*. A table with one entry per
//!   slab maps any address to the header of the chunk that contains it
//!   ([`chunk_of`]).
//! * Chunks come in size classes `SLAB << k`. Released chunks wait on a
//!   lock-free per-class free list (a Treiber stack whose head carries an ABA
//!   tag) and are reused without a system call; fresh chunks are carved from
//!   the end of the used part of the reservation and committed with
//!   `mprotect`.
//!
//! Nothing here allocates through the global allocator, takes a lock, or
//! panics: every function may run inside the allocator shim.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use super::{CLASSES, class_for, parse_size};
use crate::chunk::{self, ChunkHeader, HEADER, Owner, SLAB, SLAB_SHIFT};
use crate::error::SpaceError;
use crate::stats::SpaceStats;
use crate::sys;

/// Chunks at least this large give their memory back to the OS when released.
const DECOMMIT_MIN: usize = 1 << 20;
/// Free chunks smaller than [`DECOMMIT_MIN`] stay committed for quick reuse
/// by any arena, up to this many bytes in the whole process; beyond it, they
/// too are given back to the OS when released.
pub(crate) const RETAIN_CAP: usize = 64 << 20;

/// Default reservation: 64 GiB of address space (no memory is committed until
/// a chunk is used).
const DEFAULT_RESERVE: usize = 64 << 30;

struct Space {
    /// Address of the reservation (0 if none), for the ownership test.
    base: AtomicUsize,
    /// The reservation as a pointer: every chunk pointer is derived from it.
    base_ptr: AtomicPtr<u8>,
    len: AtomicUsize,
    /// 0 = not started, 1 = initialising, 2 = ready (possibly empty).
    state: AtomicU8,
    /// Requested reservation size, or 0 for the default.
    requested: AtomicUsize,
    table: AtomicPtr<AtomicPtr<ChunkHeader>>,
    /// Slabs handed out from the fresh end of the reservation.
    next_slab: AtomicUsize,
    free: [AtomicU64; CLASSES],
    /// Bytes of chunks currently handed out.
    in_use: AtomicUsize,
    /// Bytes of free chunks whose memory is still committed.
    retained: AtomicUsize,
    /// Bytes of free chunks whose memory was given back to the OS.
    decommitted: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_LIST: AtomicU64 = AtomicU64::new(0);

static SPACE: Space = Space {
    base: AtomicUsize::new(0),
    base_ptr: AtomicPtr::new(ptr::null_mut()),
    len: AtomicUsize::new(0),
    state: AtomicU8::new(0),
    requested: AtomicUsize::new(0),
    table: AtomicPtr::new(ptr::null_mut()),
    next_slab: AtomicUsize::new(0),
    free: [EMPTY_LIST; CLASSES],
    in_use: AtomicUsize::new(0),
    retained: AtomicUsize::new(0),
    decommitted: AtomicUsize::new(0),
};

/// Sets the size of the process-wide reservation. Must run before the first
/// arena is created.
pub(crate) fn configure(bytes: usize) -> Result<(), SpaceError> {
    if bytes < SLAB {
        return Err(SpaceError::TooSmall {
            requested: bytes as u64,
        });
    }
    if SPACE.state.load(Ordering::Acquire) != 0 {
        return Err(SpaceError::AlreadyInitialized);
    }
    SPACE.requested.store(bytes, Ordering::Release);
    if SPACE.state.load(Ordering::Acquire) != 0 {
        return Err(SpaceError::AlreadyInitialized);
    }
    Ok(())
}

/// The reservation size to use: `configure`, else `BUMPER_RESERVE` (bytes,
/// with an optional K/M/G/T suffix), else the default.
fn wanted_size() -> usize {
    let requested = SPACE.requested.load(Ordering::Acquire);
    if requested != 0 {
        return requested;
    }
    env_reserve().unwrap_or(DEFAULT_RESERVE)
}

fn env_reserve() -> Option<usize> {
    // SAFETY: the name is a NUL-terminated literal; `getenv` returns null or a
    // NUL-terminated string that we only read before returning. Reading it
    // here, outside any allocator call, avoids std's allocating `env::var`.
    let raw = unsafe { libc::getenv(c"BUMPER_RESERVE".as_ptr()) };
    if raw.is_null() {
        return None;
    }
    // SAFETY: `raw` is a valid NUL-terminated C string (see above).
    let bytes = unsafe { core::ffi::CStr::from_ptr(raw) }.to_bytes();
    parse_size(bytes)
}

/// Reservations smaller than this are not retried after a refusal.
const MIN_RETRY_RESERVE: usize = 64 << 20;

/// Set by the fault-injection hook: behave as if the OS refused every
/// reservation.
#[cfg(feature = "fault-injection")]
static REFUSE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Makes the process behave as if the OS refused the reservation, if it has
/// not been made yet. For tests.
#[cfg(feature = "fault-injection")]
pub(crate) fn refuse_reservation() {
    REFUSE.store(true, Ordering::Release);
}

/// Maps the slab table and reserves `len` bytes. Returns false (having
/// undone any partial work) if the OS refuses either.
fn reserve_exactly(len: usize) -> bool {
    let slabs = len >> SLAB_SHIFT;
    if slabs == 0 {
        return false;
    }
    let table_bytes =
        (slabs * core::mem::size_of::<AtomicPtr<ChunkHeader>>()).next_multiple_of(sys::page_size());
    let table = sys::map(table_bytes);
    if table.is_null() {
        return false;
    }
    let base = sys::reserve(len, SLAB);
    if base.is_null() {
        // SAFETY: `table` was mapped just above with this length, and
        // nothing refers to it yet.
        unsafe { sys::unmap(table, table_bytes) };
        return false;
    }
    SPACE.table.store(table.cast(), Ordering::Relaxed);
    SPACE.base_ptr.store(base, Ordering::Relaxed);
    SPACE.base.store(base as usize, Ordering::Relaxed);
    SPACE.len.store(len, Ordering::Relaxed);
    true
}

/// Makes the reservation if it has not been made. Called when arenas are
/// created, never from the allocator path, so spinning while another thread
/// initialises is allowed.
pub(crate) fn init() {
    if SPACE.state.load(Ordering::Acquire) == 2 {
        return;
    }
    if SPACE
        .state
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        let backoff = crossbeam_utils::Backoff::new();
        while SPACE.state.load(Ordering::Acquire) != 2 {
            backoff.snooze();
        }
        return;
    }
    #[cfg(feature = "fault-injection")]
    if REFUSE.load(Ordering::Acquire) {
        SPACE.state.store(2, Ordering::Release);
        return;
    }
    if sys::page_size() > SLAB {
        // Chunks are slab-aligned; pages larger than a slab cannot be
        // committed or protected chunk by chunk.
        sys::write_stderr(
            b"bumper: the OS page size is larger than 64 KiB; arenas will serve nothing \
              and every allocation in a region goes to the inner allocator\n",
        );
        SPACE.state.store(2, Ordering::Release);
        return;
    }
    // If the OS refuses the size asked for (a low `ulimit -v`, valgrind,
    // overcommit settings), try smaller reservations before giving up.
    let mut len = wanted_size() & !(SLAB - 1);
    let shrunk_floor = (MIN_RETRY_RESERVE).min(len);
    loop {
        if reserve_exactly(len) {
            break;
        }
        if len <= shrunk_floor {
            sys::write_stderr(
                b"bumper: the OS refused every address-space reservation; arenas will \
                  serve nothing and every allocation in a region goes to the inner allocator\n",
            );
            break;
        }
        len = (len / 2).max(shrunk_floor) & !(SLAB - 1);
    }
    // An empty space (reservation refused) is still "ready": every chunk
    // request fails and arenas spill to the inner allocator.
    SPACE.state.store(2, Ordering::Release);
}

/// Whether `ptr` lies inside the reservation, i.e. belongs to some arena.
/// One subtraction and one comparison.
#[inline(always)]
pub(crate) fn owns(ptr: *const u8) -> bool {
    (ptr as usize).wrapping_sub(SPACE.base.load(Ordering::Relaxed))
        < SPACE.len.load(Ordering::Relaxed)
}

/// The chunk containing address `addr`. Null if the slab is not part of a
/// live chunk (only possible for an address that was never handed out, or
/// was freed twice).
///
/// # Safety
/// `owns(addr)` must hold.
#[inline(always)]
pub(crate) unsafe fn chunk_of<T>(addr: *const T) -> *mut ChunkHeader {
    let idx = (addr.addr() - SPACE.base.load(Ordering::Relaxed)) >> SLAB_SHIFT;
    let table = SPACE.table.load(Ordering::Relaxed);
    debug_assert!(idx < SPACE.len.load(Ordering::Relaxed) >> SLAB_SHIFT);
    // SAFETY: `owns(addr)` holds, so `idx` is below the slab count and the
    // table (mapped at init with one entry per slab) covers it.
    unsafe { (*table.add(idx)).load(Ordering::Acquire) }
}

pub(crate) fn stats() -> SpaceStats {
    let os = sys::os_calls();
    SpaceStats {
        reserved: SPACE.len.load(Ordering::Relaxed) as u64,
        in_use: SPACE.in_use.load(Ordering::Relaxed) as u64,
        retained: SPACE.retained.load(Ordering::Relaxed) as u64,
        decommitted: SPACE.decommitted.load(Ordering::Relaxed) as u64,
        os_calls: os.iter().sum(),
        mmap_calls: os[0],
        munmap_calls: os[1],
        mprotect_calls: os[2],
        madvise_calls: os[3],
    }
}

#[inline]
fn header_at(slab_idx: usize) -> *mut ChunkHeader {
    SPACE
        .base_ptr
        .load(Ordering::Relaxed)
        .wrapping_add(slab_idx << SLAB_SHIFT)
        .cast()
}

fn pop_free(class: usize) -> *mut ChunkHeader {
    let list = &SPACE.free[class];
    let mut head = list.load(Ordering::Acquire);
    loop {
        let idx1 = (head & 0xffff_ffff) as usize;
        if idx1 == 0 {
            return ptr::null_mut();
        }
        let chunk = header_at(idx1 - 1);
        // SAFETY: a chunk's header stays mapped and readable forever once it
        // has been on a free list (the reservation is never unmapped and the
        // header page is never protected). If the chunk was popped and reused
        // meanwhile, the value read is stale and the tagged CAS below fails.
        let next = unsafe { (*chunk).free_next.load(Ordering::Relaxed) };
        let tag = (head >> 32).wrapping_add(1);
        let new = (tag << 32) | (next & 0xffff_ffff);
        match list.compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return chunk,
            Err(h) => head = h,
        }
    }
}

/// Puts a free chunk on its class's free list.
///
/// # Safety
/// The caller owns `chunk`, a chunk of size class `class` that holds no live
/// block and is in no list.
unsafe fn push_free(chunk: *mut ChunkHeader, class: usize) {
    let list = &SPACE.free[class];
    let idx1 = (((chunk as usize) - SPACE.base.load(Ordering::Relaxed)) >> SLAB_SHIFT) as u64 + 1;
    let mut head = list.load(Ordering::Relaxed);
    loop {
        // SAFETY: the caller owns the free chunk; its header is writable
        // (headers are never protected).
        unsafe {
            (*chunk)
                .free_next
                .store(head & 0xffff_ffff, Ordering::Relaxed)
        };
        let tag = (head >> 32).wrapping_add(1);
        let new = (tag << 32) | idx1;
        match list.compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return,
            Err(h) => head = h,
        }
    }
}

fn carve_fresh(class: usize) -> *mut ChunkHeader {
    let len = SPACE.len.load(Ordering::Relaxed);
    let total_slabs = len >> SLAB_SHIFT;
    let n = 1usize << class;
    let mut cur = SPACE.next_slab.load(Ordering::Relaxed);
    loop {
        // Keep chunks naturally aligned to their size inside the space, which
        // keeps large classes from straddling odd offsets.
        let start = cur.next_multiple_of(n);
        let end = match start.checked_add(n) {
            Some(e) if e <= total_slabs => e,
            _ => return ptr::null_mut(),
        };
        match SPACE
            .next_slab
            .compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => {
                let chunk = header_at(start);
                // SAFETY: slabs `cur..end` of the reservation were just carved
                // by this thread's CAS: nothing else refers to them.
                let ok = unsafe { sys::commit(chunk.cast(), SLAB << class) };
                // Slabs skipped for alignment go to the smaller free lists.
                let mut gap = cur;
                while gap < start {
                    let k = (gap.trailing_zeros() as usize)
                        .min(class)
                        .min((start - gap).ilog2() as usize);
                    let g = header_at(gap);
                    // SAFETY: as for `chunk` above.
                    if unsafe { sys::commit(g.cast(), SLAB << k) } {
                        // SAFETY: the gap's slabs were carved by this thread's
                        // CAS and just committed; nothing else refers to them.
                        // Fresh mappings read as zero on every platform.
                        unsafe {
                            chunk::init_header(g, k, HEADER);
                            // Committed but never touched: no memory is
                            // resident behind it.
                            (*g).resident.set(false);
                            release_raw(g, k, false);
                        }
                    }
                    gap += 1 << k;
                }
                if !ok {
                    // The OS refused: leave these slabs unused; the caller
                    // spills.
                    return ptr::null_mut();
                }
                // SAFETY: as for the gap chunks above.
                unsafe { chunk::init_header(chunk, class, HEADER) };
                return chunk;
            }
            Err(c) => cur = c,
        }
    }
}

/// Points the table entries of every slab of `chunk` at `value`.
///
/// # Safety
/// `chunk` must be a chunk header inside the reservation that the caller
/// owns (acquiring or releasing it).
unsafe fn set_table(chunk: *mut ChunkHeader, value: *mut ChunkHeader) {
    let base = SPACE.base.load(Ordering::Relaxed);
    let table = SPACE.table.load(Ordering::Relaxed);
    // SAFETY: guaranteed by the caller.
    let slabs = unsafe { (*chunk).size } >> SLAB_SHIFT;
    let first = ((chunk as usize) - base) >> SLAB_SHIFT;
    for i in first..first + slabs {
        // SAFETY: the chunk lies inside the reservation, so every index is
        // covered by the table.
        unsafe { (*table.add(i)).store(value, Ordering::Release) };
    }
}

/// Takes a chunk of at least `bytes` bytes (header included) for `lane`.
/// Returns null if the space cannot provide one; the caller spills.
pub(crate) fn acquire(bytes: usize, owner: *mut Owner) -> *mut ChunkHeader {
    if SPACE.len.load(Ordering::Relaxed) == 0 {
        return ptr::null_mut();
    }
    let Some(class) = class_for(bytes) else {
        return ptr::null_mut();
    };
    let class = class as usize;
    let mut chunk = pop_free(class);
    let mut from_free_list = !chunk.is_null();
    if chunk.is_null() {
        chunk = carve_fresh(class);
    }
    if chunk.is_null() {
        // Fresh space is exhausted: a larger free chunk will do.
        for larger in class + 1..CLASSES {
            chunk = pop_free(larger);
            if !chunk.is_null() {
                from_free_list = true;
                break;
            }
        }
    }
    if chunk.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: the chunk was just taken off a free list or carved, so this
    // thread owns it exclusively.
    let (size, resident, guarded) = unsafe {
        (
            (*chunk).size,
            (*chunk).resident.get(),
            (*chunk).guarded_from.get(),
        )
    };
    if guarded < size {
        // Guard mode protected part of it when it was given back. The new
        // owner needs it writable; if the OS refuses, the chunk is never
        // reused (leaked, not unsafe) and the caller spills.
        // SAFETY: the chunk is ours and holds nothing live.
        if !unsafe { sys::commit(chunk.cast::<u8>().wrapping_add(guarded), size - guarded) } {
            if from_free_list {
                let list = if resident {
                    &SPACE.retained
                } else {
                    &SPACE.decommitted
                };
                list.fetch_sub(size, Ordering::Relaxed);
            }
            return ptr::null_mut();
        }
        // SAFETY: as above.
        unsafe { (*chunk).guarded_from.set(size) };
    }
    if from_free_list {
        if resident {
            SPACE.retained.fetch_sub(size, Ordering::Relaxed);
        } else {
            SPACE.decommitted.fetch_sub(size, Ordering::Relaxed);
        }
    }
    SPACE.in_use.fetch_add(size, Ordering::Relaxed);
    // SAFETY: as above.
    unsafe {
        (*chunk).resident.set(true);
        // A chunk released while it held a large block (an orphaned arena's
        // last frees) still has the marks of one: clear them.
        (*chunk).side.set(false);
        (*chunk).marks.set(0);
        (*chunk).owner.store(owner, Ordering::Relaxed);
        (*chunk).prev.set(ptr::null_mut());
        (*chunk).next.set(ptr::null_mut());
        (*chunk).fill.set(HEADER);
        (*chunk).start.set(HEADER);
        (*chunk).seq.set(0);
        (*chunk).live.set(0);
        (*chunk).bytes.set(0);
        // No loop of its new lane has used it yet (the old owner's epochs
        // mean nothing there).
        (*chunk).used_in.set(0);
        (*chunk).counted.set(0);
        (*chunk).side_site.set(0);
        set_table(chunk, chunk);
    }
    chunk
}

/// Accounts for a chunk becoming free and puts it on its free list.
///
/// # Safety
/// As for [`push_free`].
unsafe fn release_raw(chunk: *mut ChunkHeader, class: usize, was_in_use: bool) {
    let size = SLAB << class;
    if was_in_use {
        SPACE.in_use.fetch_sub(size, Ordering::Relaxed);
    }
    // SAFETY: the caller owns the chunk.
    if unsafe { (*chunk).resident.get() } {
        SPACE.retained.fetch_add(size, Ordering::Relaxed);
    } else {
        SPACE.decommitted.fetch_add(size, Ordering::Relaxed);
    }
    // SAFETY: forwarded from the caller.
    unsafe { push_free(chunk, class) };
}

/// Returns a chunk to the space.
///
/// # Safety
/// `chunk` must have been acquired from the space and be owned by the
/// caller, which gives it up: no block in it is live and nothing refers to
/// its memory any more.
pub(crate) unsafe fn release(chunk: *mut ChunkHeader) {
    // SAFETY: guaranteed by the caller.
    let (size, class, guarded) = unsafe {
        (
            (*chunk).size,
            (*chunk).class as usize,
            (*chunk).guarded_from.get(),
        )
    };
    // SAFETY: as above.
    unsafe { set_table(chunk, ptr::null_mut()) };
    // Pages guard mode protected stay protected while the chunk is free (a
    // stale pointer into it still faults); `acquire` lifts that.
    let keep_committed =
        size < DECOMMIT_MIN && SPACE.retained.load(Ordering::Relaxed) + size <= RETAIN_CAP;
    if !keep_committed {
        // SAFETY: the chunk is the caller's and holds nothing live.
        unsafe { sys::decommit(chunk.cast(), size) };
        // Only where decommitted pages are known to read as zero again
        // (Linux's MADV_DONTNEED on private anonymous memory) may the next
        // owner skip zeroing them; elsewhere the whole chunk counts as dirty.
        let clean_from = if sys::DECOMMIT_ZEROES { HEADER } else { size };
        // SAFETY: as above; the header page stays committed.
        unsafe {
            chunk::init_header(chunk, class, clean_from);
            (*chunk).guarded_from.set(guarded);
            (*chunk).resident.set(false);
        }
    } else {
        // SAFETY: as above. The lane recorded in `clean_from` how far the
        // memory may be dirty; that mark travels with the chunk.
        unsafe { (*chunk).owner.store(ptr::null_mut(), Ordering::Relaxed) };
    }
    // SAFETY: as above.
    unsafe { release_raw(chunk, class, true) };
}
