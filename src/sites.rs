//! Allocation sites, for escape reports: the return addresses of the code
//! that allocated a block, captured without allocating, kept in a
//! process-wide table, and turned into function names and source lines only
//! when a report is printed (see `escape.rs`).
//!
//! Only arenas built with `ArenaBuilder::track_sites(true)` capture sites.
//! Capturing uses glibc's `backtrace()`, which walks the stack with the
//! system unwinder and allocates, if at all, with the C allocator, never
//! through bumper; elsewhere no site is captured.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use crate::spin::SpinLock;
use crate::sys;

/// Return addresses kept per site.
pub(crate) const FRAMES: usize = 24;
/// Distinct sites the table holds; later ones share the id 0 ("unknown").
const CAPACITY: usize = 4096;

#[derive(Clone, Copy)]
#[repr(C)]
struct Entry {
    hash: u64,
    len: usize,
    frames: [usize; FRAMES],
}

/// The table, mapped on first use; entry `i` is site `i + 1`.
static TABLE: AtomicPtr<Entry> = AtomicPtr::new(ptr::null_mut());
static LEN: AtomicUsize = AtomicUsize::new(0);
static LOCK: SpinLock<()> = SpinLock::new(());

fn table_bytes() -> usize {
    (CAPACITY * core::mem::size_of::<Entry>()).next_multiple_of(sys::page_size())
}

/// Maps the table, if that has not happened yet. Called when a tracking
/// arena is created, outside the allocator.
pub(crate) fn prepare() {
    let _g = LOCK.lock();
    if TABLE.load(Ordering::Acquire).is_null() {
        let t = sys::map(table_bytes());
        TABLE.store(t.cast(), Ordering::Release);
    }
    // glibc loads its unwinder on the first call; do that here, not inside
    // an allocation.
    let mut frames = [0usize; FRAMES];
    let _ = raw_capture(&mut frames);
}

#[cfg(all(target_os = "linux", target_env = "gnu", not(miri)))]
fn raw_capture(frames: &mut [usize; FRAMES]) -> usize {
    let mut raw = [ptr::null_mut::<libc::c_void>(); FRAMES];
    // SAFETY: `raw` has room for `FRAMES` pointers, the count passed.
    let n = unsafe { libc::backtrace(raw.as_mut_ptr(), FRAMES as libc::c_int) };
    let n = usize::try_from(n).unwrap_or(0).min(FRAMES);
    for (f, r) in frames.iter_mut().zip(&raw[..n]) {
        *f = r.addr();
    }
    n
}

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(miri))))]
fn raw_capture(_frames: &mut [usize; FRAMES]) -> usize {
    0
}

/// Captures the current call stack and returns its site id (0 if none could
/// be captured or the table is full). Allocates nothing.
pub(crate) fn capture() -> u32 {
    let mut frames = [0usize; FRAMES];
    let len = raw_capture(&mut frames);
    if len == 0 {
        return 0;
    }
    let hash = frames[..len]
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &f| {
            (h ^ f as u64).wrapping_mul(0x0100_0000_01b3)
        });
    let table = TABLE.load(Ordering::Acquire);
    if table.is_null() {
        return 0;
    }
    let _g = LOCK.lock();
    let n = LEN.load(Ordering::Relaxed);
    for i in 0..n {
        // SAFETY: entries below `LEN` are initialised; the lock is held.
        let e = unsafe { &*table.add(i) };
        if e.hash == hash && e.len == len && e.frames[..len] == frames[..len] {
            return i as u32 + 1;
        }
    }
    if n == CAPACITY {
        return 0;
    }
    // SAFETY: `n < CAPACITY`, inside the mapping; the lock is held.
    unsafe { table.add(n).write(Entry { hash, len, frames }) };
    LEN.store(n + 1, Ordering::Release);
    n as u32 + 1
}

/// Takes the table's lock before `fork()` (see `arena_core/registry.rs`).
pub(crate) fn lock_for_fork() {
    LOCK.lock_raw();
}

/// Releases it after `fork()`, in the parent and the child.
///
/// # Safety
/// The calling thread called [`lock_for_fork`] just before (or is the
/// child-process copy of the thread that did).
pub(crate) unsafe fn unlock_after_fork() {
    // SAFETY: guaranteed by the caller.
    unsafe { LOCK.force_unlock() };
}

/// The return addresses of site `id`, innermost first (empty for 0).
pub(crate) fn frames(id: u32) -> ([usize; FRAMES], usize) {
    let table = TABLE.load(Ordering::Acquire);
    let i = id as usize;
    if id == 0 || table.is_null() || i > LEN.load(Ordering::Acquire) {
        return ([0; FRAMES], 0);
    }
    // SAFETY: entry `i - 1` is below `LEN`, initialised and never changed.
    let e = unsafe { &*table.add(i - 1) };
    (e.frames, e.len)
}
