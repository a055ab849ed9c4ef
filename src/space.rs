//! The address space: one large reservation made once per process, carved
//! into power-of-two *chunks* that arenas bump-allocate from.
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

use core::cell::Cell;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering};

use crate::sys;

/// log2 of the slab size.
pub(crate) const SLAB_SHIFT: u32 = 16;
/// Slab size: the granularity of ownership lookups and the smallest chunk.
pub(crate) const SLAB: usize = 1 << SLAB_SHIFT;
/// Bytes at the start of every chunk reserved for its [`ChunkHeader`].
pub(crate) const HEADER: usize = 128;
/// Number of chunk size classes (`SLAB << 0` .. `SLAB << (CLASSES - 1)`).
const CLASSES: usize = 40;
/// Chunks at least this large give their memory back to the OS when released.
const DECOMMIT_MIN: usize = 1 << 20;

/// Default reservation: 64 GiB of address space (no memory is committed until
/// a chunk is used). Under Miri, a small heap allocation stands in for it.
#[cfg(not(miri))]
const DEFAULT_RESERVE: usize = 64 << 30;
#[cfg(miri)]
const DEFAULT_RESERVE: usize = 16 << 20;

/// Metadata at the start of every chunk.
///
/// `lane` and `free_next` are shared between threads. The `Cell` fields are
/// owned by whichever thread currently holds the chunk's lane (see the claim
/// protocol in `lane.rs`) or, while the chunk is free, by the space.
#[repr(C)]
pub(crate) struct ChunkHeader {
    /// The lane this chunk belongs to; null while the chunk is free.
    pub(crate) lane: AtomicPtr<crate::lane::Lane>,
    /// Free-list link: slab index + 1 of the next free chunk, 0 for none.
    free_next: AtomicU64,
    /// Total size of the chunk in bytes, header included.
    pub(crate) size: usize,
    /// Size class: `size == SLAB << class`.
    class: u8,
    /// Offset from the chunk start from which the memory is known to be zero.
    pub(crate) clean_from: Cell<usize>,
    /// Offset of the first byte available for blocks (`HEADER`, or more for a
    /// chunk that also hosts an arena's own bookkeeping).
    pub(crate) start: Cell<usize>,
    /// Offset from which the pages are protected by guard mode; `size` when
    /// none are.
    pub(crate) guarded_from: Cell<usize>,
    /// Logical position (in its lane) of the first data byte.
    pub(crate) base_pos: Cell<u64>,
    /// Previous chunk in the lane's chain.
    pub(crate) prev: Cell<*mut ChunkHeader>,
    /// End offset of the used part while the chunk is not the lane's current one.
    pub(crate) fill: Cell<usize>,
}

const _: () = assert!(core::mem::size_of::<ChunkHeader>() <= HEADER);

impl ChunkHeader {
    /// First byte available for blocks.
    #[inline]
    pub(crate) fn data(this: *mut ChunkHeader) -> usize {
        // SAFETY: callers pass a live chunk header.
        this as usize + unsafe { (*this).start.get() }
    }
    /// One past the last byte.
    #[inline]
    pub(crate) fn end(this: *mut ChunkHeader) -> usize {
        // SAFETY: callers pass a live chunk header.
        this as usize + unsafe { (*this).size }
    }
}

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
    /// Bytes of chunks waiting on free lists.
    retained: AtomicUsize,
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
};

/// Error returned by [`configure_address_space`](crate::configure_address_space).
///
/// ```
/// use bumper::SpaceError;
///
/// let err = bumper::configure_address_space(1024).unwrap_err();
/// assert_eq!(err, SpaceError::TooSmall { requested: 1024 });
/// println!("{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpaceError {
    /// The reservation was already made (an arena exists or existed).
    AlreadyInitialized,
    /// The requested size is smaller than one slab (64 KiB).
    TooSmall {
        /// The size that was asked for, in bytes.
        requested: u64,
    },
}

impl core::fmt::Display for SpaceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpaceError::AlreadyInitialized => f.write_str(
                "bumper: the address space is already reserved; call \
                 configure_address_space before creating the first arena",
            ),
            SpaceError::TooSmall { requested } => write!(
                f,
                "bumper: an address-space reservation of {requested} bytes is too small; \
                 the minimum is {SLAB} bytes"
            ),
        }
    }
}

impl std::error::Error for SpaceError {}

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

#[cfg(not(miri))]
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

#[cfg(miri)]
fn env_reserve() -> Option<usize> {
    None
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
        (slabs * core::mem::size_of::<AtomicPtr<ChunkHeader>>()).next_multiple_of(sys::PAGE);
    let table = sys::map(table_bytes);
    if table.is_null() {
        return false;
    }
    let base = sys::reserve(len, SLAB);
    if base.is_null() {
        sys::unmap(table, table_bytes);
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

/// The chunk containing address `addr`, which must satisfy [`owns`]. Null if
/// the slab is not part of a live chunk (only possible for an address that
/// was never handed out, i.e. caller error).
#[inline(always)]
pub(crate) fn chunk_of<T>(addr: *const T) -> *mut ChunkHeader {
    let idx = (addr.addr() - SPACE.base.load(Ordering::Relaxed)) >> SLAB_SHIFT;
    let table = SPACE.table.load(Ordering::Relaxed);
    // SAFETY: `owns(ptr)` holds, so `idx` is below the slab count and the
    // table (mapped at init with one entry per slab) covers it.
    unsafe { (*table.add(idx)).load(Ordering::Acquire) }
}

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
///     "address space: 0 bytes reserved, 0 bytes in use by arenas, 0 bytes retained for reuse"
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
    /// Bytes of released chunks kept committed for reuse.
    pub retained: u64,
}

pub(crate) fn stats() -> SpaceStats {
    SpaceStats {
        reserved: SPACE.len.load(Ordering::Relaxed) as u64,
        in_use: SPACE.in_use.load(Ordering::Relaxed) as u64,
        retained: SPACE.retained.load(Ordering::Relaxed) as u64,
    }
}

/// The size class that holds at least `bytes`, if any.
pub(crate) fn class_for(bytes: usize) -> Option<u8> {
    if bytes <= SLAB {
        return Some(0);
    }
    let slabs = bytes.checked_next_power_of_two()? >> SLAB_SHIFT;
    let class = slabs.trailing_zeros() as usize;
    (class < CLASSES).then_some(class as u8)
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

fn push_free(chunk: *mut ChunkHeader, class: usize) {
    let list = &SPACE.free[class];
    let idx1 = (((chunk as usize) - SPACE.base.load(Ordering::Relaxed)) >> SLAB_SHIFT) as u64 + 1;
    let mut head = list.load(Ordering::Relaxed);
    loop {
        // SAFETY: the caller owns the free chunk; its header is writable.
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
                let ok = sys::commit(chunk.cast(), SLAB << class);
                // Slabs skipped for alignment go to the smaller free lists.
                let mut gap = cur;
                while gap < start {
                    let k = (gap.trailing_zeros() as usize)
                        .min(class)
                        .min((start - gap).ilog2() as usize);
                    let g = header_at(gap);
                    if sys::commit(g.cast(), SLAB << k) {
                        init_header(g, k, HEADER);
                        release_raw(g, k, false);
                    }
                    gap += 1 << k;
                }
                if !ok {
                    // The OS refused: leave these slabs unused; the caller
                    // spills.
                    return ptr::null_mut();
                }
                init_header(chunk, class, HEADER);
                return chunk;
            }
            Err(c) => cur = c,
        }
    }
}

fn init_header(chunk: *mut ChunkHeader, class: usize, clean_from: usize) {
    // SAFETY: `chunk` is committed, writable, and owned by the caller; the
    // header fits in the first `HEADER` bytes.
    unsafe {
        chunk.write(ChunkHeader {
            lane: AtomicPtr::new(ptr::null_mut()),
            free_next: AtomicU64::new(0),
            size: SLAB << class,
            class: class as u8,
            clean_from: Cell::new(clean_from),
            start: Cell::new(HEADER),
            guarded_from: Cell::new(SLAB << class),
            base_pos: Cell::new(0),
            prev: Cell::new(ptr::null_mut()),
            fill: Cell::new(HEADER),
        })
    };
}

fn set_table(chunk: *mut ChunkHeader, value: *mut ChunkHeader) {
    let base = SPACE.base.load(Ordering::Relaxed);
    let table = SPACE.table.load(Ordering::Relaxed);
    // SAFETY: `chunk` is a live chunk header inside the reservation.
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
pub(crate) fn acquire(bytes: usize, lane: *mut crate::lane::Lane) -> *mut ChunkHeader {
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
    let size = unsafe { (*chunk).size };
    if from_free_list {
        SPACE.retained.fetch_sub(size, Ordering::Relaxed);
    }
    SPACE.in_use.fetch_add(size, Ordering::Relaxed);
    // SAFETY: as above.
    unsafe {
        (*chunk).lane.store(lane, Ordering::Relaxed);
        (*chunk).prev.set(ptr::null_mut());
        (*chunk).fill.set(HEADER);
        (*chunk).start.set(HEADER);
        (*chunk).base_pos.set(0);
    }
    set_table(chunk, chunk);
    chunk
}

fn release_raw(chunk: *mut ChunkHeader, class: usize, was_in_use: bool) {
    let size = SLAB << class;
    if was_in_use {
        SPACE.in_use.fetch_sub(size, Ordering::Relaxed);
    }
    SPACE.retained.fetch_add(size, Ordering::Relaxed);
    push_free(chunk, class);
}

/// Returns a chunk to the space. No block in it may be live.
pub(crate) fn release(chunk: *mut ChunkHeader) {
    // SAFETY: the caller owned the chunk and gives it up; nothing else refers
    // to its memory.
    let (size, class, guarded) = unsafe {
        (
            (*chunk).size,
            (*chunk).class as usize,
            (*chunk).guarded_from.get(),
        )
    };
    set_table(chunk, ptr::null_mut());
    if guarded < size {
        // Guard mode protected part of it. The next owner needs it writable;
        // if the OS refuses, the chunk is never reused (leaked, not unsafe).
        if !sys::commit(chunk.cast::<u8>().wrapping_add(guarded), size - guarded) {
            SPACE.in_use.fetch_sub(size, Ordering::Relaxed);
            return;
        }
        // SAFETY: as above.
        unsafe { (*chunk).guarded_from.set(size) };
    }
    if size >= DECOMMIT_MIN {
        sys::decommit(chunk.cast(), size);
        init_header(chunk, class, HEADER);
    } else {
        // SAFETY: as above. The lane recorded in `clean_from` how far the
        // memory may be dirty; that mark travels with the chunk.
        unsafe { (*chunk).lane.store(ptr::null_mut(), Ordering::Relaxed) };
    }
    release_raw(chunk, class, true);
}

#[cfg(test)]
mod tests {
    use super::*;

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
