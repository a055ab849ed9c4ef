//! The **floor**: an UNSAFE global bump allocator, for benchmarks only.
//!
//! It is what no sound allocator can beat by much on unmodified code, so
//! the benches state every time as a ratio to it:
//!
//! * a thread-local cursor in one reserved range (a slice of 1 GiB of it
//!   per thread, taken at the thread's first allocation and handed to the
//!   next new thread when the thread exits);
//! * a free moves the cursor back only if the block is the last one
//!   allocated (bumpalo's rule); any other free does nothing;
//! * a block grows or shrinks in place only at the tip;
//! * [`scope`] is the reset: it moves the cursor back to where it was;
//! * no accounting, no ownership test beyond one range compare, no escape
//!   detection.
//!
//! # Safety
//!
//! **Unsound by design.** A reset reuses whatever was allocated since its
//! mark, live or not; a thread's slice is handed to another thread when it
//! exits, whatever still points into it; a free from another thread is
//! ignored. It is correct only for code that frees everything it allocates
//! inside a [`scope`] before the scope ends, and sends no memory it
//! allocated to a thread that outlives it: the bench workloads. Never use it
//! anywhere else. Past the end of a thread's slice, and if the OS refuses
//! the reservation, allocations go to the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Bytes of address space per thread.
const SLICE: usize = 1 << 30;
/// At most this many slices (threads alive at once that allocate).
const SLICES: usize = 64;
/// `BASE` before the reservation exists, or if the OS refused it: no
/// user-space address `p` has `p - NONE < LEN`.
const NONE: usize = 1 << 63;

/// Start of the reservation, or [`NONE`].
static BASE: AtomicUsize = AtomicUsize::new(NONE);
/// Its length: 64 GiB of address space, committed as it is touched, or
/// less if the OS refuses that much (valgrind takes 1 GiB).
static LEN: AtomicUsize = AtomicUsize::new(0);
/// Slices never handed out start at this index.
static NEXT: AtomicUsize = AtomicUsize::new(0);
/// Bit `i`: slice `i` belonged to a thread that exited and is free again.
static RECYCLED: AtomicU64 = AtomicU64::new(0);
/// Per slice, how far its memory may be dirty (for `alloc_zeroed`).
static DIRTY: [AtomicUsize; SLICES] = [const { AtomicUsize::new(0) }; SLICES];
/// The pthread key whose destructor gives a thread's slice back.
static KEY: AtomicUsize = AtomicUsize::new(usize::MAX);

struct Local {
    /// Next free byte; 0 before the thread has a slice.
    cur: Cell<usize>,
    /// End of the thread's slice; 0 before it has one.
    end: Cell<usize>,
    /// Memory of the slice below this address may be dirty.
    dirty: Cell<usize>,
    /// 0: no slice yet; 1: has one; 2: gave it back (exiting) or none to
    /// be had: everything goes to the system allocator.
    state: Cell<u8>,
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            cur: Cell::new(0),
            end: Cell::new(0),
            dirty: Cell::new(0),
            state: Cell::new(0),
        }
    };
}

/// The floor allocator. See the module docs: unsound outside the benches.
pub struct Floor;

#[inline(always)]
fn round8(n: usize) -> usize {
    n.wrapping_add(7) & !7
}

#[inline(always)]
fn owned(p: usize) -> bool {
    p.wrapping_sub(BASE.load(Ordering::Relaxed)) < LEN.load(Ordering::Relaxed)
}

/// Reserves the range (once; the first allocation of the process runs on
/// its only thread) and creates the key.
#[cold]
fn init() {
    if KEY.load(Ordering::Acquire) != usize::MAX {
        return;
    }
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid place for the key; the destructor has the
    // signature pthread expects.
    if unsafe { libc::pthread_key_create(&mut key, Some(give_back)) } != 0 {
        return;
    }
    KEY.store(key as usize, Ordering::Release);
    let mut slices = SLICES;
    while slices > 0 {
        // SAFETY: an anonymous private mapping with no hint touches no
        // existing memory; the result is checked.
        let raw = unsafe {
            libc::mmap(
                ptr::null_mut(),
                slices * SLICE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if raw != libc::MAP_FAILED {
            LEN.store(slices * SLICE, Ordering::Release);
            BASE.store(raw as usize, Ordering::Release);
            return;
        }
        slices /= 2;
    }
}

/// Takes a slice for the calling thread; false if there is none.
#[cold]
fn take_slice(l: &Local) -> bool {
    init();
    let base = BASE.load(Ordering::Acquire);
    if base == NONE {
        l.state.set(2);
        return false;
    }
    let mut idx = None;
    let mut bits = RECYCLED.load(Ordering::Acquire);
    while bits != 0 {
        let i = bits.trailing_zeros() as usize;
        match RECYCLED.compare_exchange_weak(
            bits,
            bits & !(1 << i),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                idx = Some(i);
                break;
            }
            Err(b) => bits = b,
        }
    }
    let i = match idx {
        Some(i) => i,
        None => {
            let i = NEXT.fetch_add(1, Ordering::Relaxed);
            if i >= LEN.load(Ordering::Acquire) / SLICE {
                l.state.set(2);
                return false;
            }
            i
        }
    };
    let start = base + i * SLICE;
    l.cur.set(start);
    l.end.set(start + SLICE);
    l.dirty.set(DIRTY[i].load(Ordering::Acquire).max(start));
    l.state.set(1);
    // SAFETY: the key was created in `init`; the value is not a pointer
    // pthread dereferences, only handed back to `give_back`.
    unsafe { libc::pthread_setspecific(KEY.load(Ordering::Acquire) as _, (i + 1) as *const _) };
    true
}

/// The key's destructor: the thread is exiting (its Rust thread-locals are
/// already gone), so its slice goes to the next new thread. `v` is the
/// slice's index plus one, as `take_slice` set it.
extern "C" fn give_back(v: *mut libc::c_void) {
    let i = v as usize - 1;
    let _ = LOCAL.try_with(|l| {
        DIRTY[i].store(l.dirty.get().max(l.cur.get()), Ordering::Release);
        l.state.set(2);
        l.cur.set(0);
        l.end.set(0);
    });
    RECYCLED.fetch_or(1 << i, Ordering::AcqRel);
}

/// Allocations that do not fit the fast path: the thread's first, an
/// alignment above 8, or the end of the slice.
///
/// # Safety
/// As for [`GlobalAlloc::alloc`]: `layout` has a non-zero size.
#[inline(never)]
unsafe fn alloc_slow(layout: Layout) -> *mut u8 {
    let p = LOCAL.with(|l| {
        if l.state.get() == 0 && !take_slice(l) {
            return 0;
        }
        let align = layout.align();
        let p = l.cur.get().wrapping_add(align - 1) & !(align - 1);
        let end = p.wrapping_add(round8(layout.size()));
        if l.state.get() == 1 && end <= l.end.get() && end > p {
            l.cur.set(end);
            p
        } else {
            0
        }
    });
    if p != 0 {
        return p as *mut u8;
    }
    // SAFETY: forwarded caller contract.
    unsafe { System.alloc(layout) }
}

/// Runs `f`, then moves the calling thread's cursor back to where it was:
/// the floor's reset. Everything `f` allocated on this thread is reused
/// afterwards, live or not (see the module docs).
pub fn scope<R>(f: impl FnOnce() -> R) -> R {
    LOCAL.with(|l| {
        if l.state.get() == 0 {
            take_slice(l);
        }
    });
    let mark = LOCAL.with(|l| l.cur.get());
    let r = f();
    LOCAL.with(|l| {
        if l.state.get() == 1 {
            l.dirty.set(l.dirty.get().max(l.cur.get()));
            l.cur.set(mark);
        }
    });
    r
}

// SAFETY: none; see the module docs. The floor is unsound by design and
// serves only the bench workloads, which free everything they allocate in a
// scope before it ends and share no floor memory with a thread that exits
// before they are done with it.
unsafe impl GlobalAlloc for Floor {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // The cursor stays 8-aligned; larger alignments take the slow path.
        // A thread without a slice has `cur == end == 0`, and no request
        // (of a non-zero size) fits. No sum can wrap: `cur` is a user-space
        // address and a size at most `isize::MAX`.
        if layout.align() <= 8 {
            let p = LOCAL.with(|l| {
                let cur = l.cur.get();
                let end = cur + round8(layout.size());
                if end <= l.end.get() {
                    l.cur.set(end);
                    cur
                } else {
                    0
                }
            });
            if p != 0 {
                return p as *mut u8;
            }
        }
        // SAFETY: forwarded caller contract.
        unsafe { alloc_slow(layout) }
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded caller contract.
        let p = unsafe { self.alloc(layout) };
        if p.is_null() {
            return p;
        }
        if !owned(p as usize) {
            // SAFETY: a block of `layout.size()` bytes just allocated.
            unsafe { ptr::write_bytes(p, 0, layout.size()) };
            return p;
        }
        let dirty = LOCAL.with(|l| l.dirty.get());
        if (p as usize) < dirty {
            let n = (dirty - p as usize).min(layout.size());
            // SAFETY: `[p, p + n)` lies in the block just allocated.
            unsafe { ptr::write_bytes(p, 0, n) };
        }
        p
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let a = ptr as usize;
        if owned(a) {
            LOCAL.with(|l| {
                let cur = l.cur.get();
                if a.wrapping_add(round8(layout.size())) == cur {
                    if cur > l.dirty.get() {
                        l.dirty.set(cur);
                    }
                    l.cur.set(a);
                }
            });
        } else {
            // SAFETY: not floor memory, so the system allocator made it.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let a = ptr as usize;
        let old = round8(layout.size());
        let new = round8(new_size);
        if owned(a) {
            let in_place = LOCAL.with(|l| {
                let cur = l.cur.get();
                if a.wrapping_add(old) == cur {
                    let end = a.wrapping_add(new);
                    if end <= l.end.get() {
                        if end < cur && cur > l.dirty.get() {
                            l.dirty.set(cur);
                        }
                        l.cur.set(end);
                        return true;
                    }
                    false
                } else {
                    new <= old
                }
            });
            if in_place {
                return ptr;
            }
        }
        // SAFETY: `new_size` rounded to the alignment does not overflow
        // (GlobalAlloc::realloc contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: non-zero size (realloc contract).
        let p = unsafe { self.alloc(new_layout) };
        if !p.is_null() {
            // SAFETY: both blocks are valid for the copied length and
            // distinct; the old one is given up.
            unsafe {
                ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        p
    }
}
