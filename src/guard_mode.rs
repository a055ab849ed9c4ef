//! Guard mode: memory handed back by a reset is poisoned and, for whole
//! pages, protected until it is handed out again, so that a raw pointer
//! kept past a reset (by unsafe code or FFI) faults loudly instead of
//! reading stale data. Plays the role of Bumper.jl's `CheckedAllocArray`.
//!
//! It is off by default and costs nothing then: the only hooks are on the
//! reset path and in the slow path that moves the bump limit.
//!
//! * [`reclaim`] poisons the reclaimed bytes of a chunk's first partial page
//!   with [`POISON`] and protects (`PROT_NONE`) every page from there to the
//!   end of the chunk. The chunk header records where protection starts, and
//!   the owning lane stops its bump limit there.
//! * [`unprotect_to`] makes pages usable again when the lane's bump pointer
//!   reaches them.
//! * A `SIGSEGV`/`SIGBUS` handler, installed when the first guarded arena is
//!   created, recognises faults inside the address space and says what
//!   happened before the process dies; other faults go to the previous
//!   handler (such as std's stack-overflow handler).

use crate::chunk::ChunkHeader;
use crate::sys;

/// The byte reclaimed memory is filled with.
pub(crate) const POISON: u8 = 0xBD;

fn page_up(addr: usize) -> usize {
    addr.next_multiple_of(sys::page_size())
}

/// Poisons and protects `chunk` from `from` (an address inside it at or
/// above its data start) to its end. `dirty_end` bounds the bytes that may
/// hold stale data. Returns the address where the usable part now ends.
///
/// # Safety
/// The caller owns `chunk` (it holds the chunk's lane), `from` lies inside
/// the chunk at or above its data start, and no block at or above `from` is
/// live.
pub(crate) unsafe fn reclaim(chunk: *mut ChunkHeader, from: *mut u8, dirty_end: usize) -> usize {
    let c = chunk.cast::<u8>();
    // SAFETY: guaranteed by the caller.
    let (size, guarded) = unsafe { ((*chunk).size, (*chunk).guarded_from.get()) };
    let end_of_guard = c.addr() + guarded;
    let page = page_up(from.addr()).min(end_of_guard);
    let poison_end = page.min(dirty_end.max(from.addr()));
    // SAFETY: `[from, poison_end)` lies inside the chunk, above every live
    // block, below the protected pages.
    unsafe { from.write_bytes(POISON, poison_end - from.addr()) };
    let protected = page < end_of_guard
        // SAFETY: whole pages of the caller's chunk above every live block,
        // and above the header (`from` is at or above the data start).
        && unsafe { sys::protect(c.wrapping_add(page - c.addr()), end_of_guard - page) };
    if protected {
        // SAFETY: as above.
        unsafe { (*chunk).guarded_from.set(page - c.addr()) };
        return page;
    }
    c.addr() + guarded.min(size)
}

/// Makes the pages of `chunk` up to `upto` (rounded up to a page, at most the
/// chunk's end) usable again. Returns the new end of the usable part, or
/// `None` if the OS refused.
///
/// # Safety
/// The caller owns `chunk` (it holds the chunk's lane).
pub(crate) unsafe fn unprotect_to(chunk: *mut ChunkHeader, upto: usize) -> Option<usize> {
    let c = chunk.cast::<u8>();
    // SAFETY: guaranteed by the caller.
    let (size, guarded) = unsafe { ((*chunk).size, (*chunk).guarded_from.get()) };
    let from = c.addr() + guarded;
    let to = page_up(upto).min(c.addr() + size);
    if to <= from {
        return Some(from);
    }
    // SAFETY: pages of the caller's chunk that guard mode protected.
    if !unsafe { sys::commit(c.wrapping_add(guarded), to - from) } {
        return None;
    }
    // SAFETY: as above.
    unsafe { (*chunk).guarded_from.set(to - c.addr()) };
    Some(to)
}

/// Installs the fault handler (once per process).
pub(crate) fn install_handler() {
    #[cfg(not(miri))]
    handler::install();
}

#[cfg(not(miri))]
mod handler {
    use core::cell::UnsafeCell;
    use core::mem::MaybeUninit;
    use core::sync::atomic::{AtomicBool, Ordering};

    use crate::sys;

    struct Previous(UnsafeCell<[MaybeUninit<libc::sigaction>; 2]>);
    // SAFETY: written once, before the handler that reads it is installed
    // (guarded by `INSTALLED`), and only read afterwards.
    unsafe impl Sync for Previous {}

    static INSTALLED: AtomicBool = AtomicBool::new(false);
    static PREVIOUS: Previous = Previous(UnsafeCell::new([MaybeUninit::uninit(); 2]));
    const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

    pub(super) fn install() {
        if INSTALLED.swap(true, Ordering::AcqRel) {
            return;
        }
        for (i, &sig) in SIGNALS.iter().enumerate() {
            // SAFETY: `sigaction` is given valid pointers; `PREVIOUS[i]` is
            // written before our handler, which reads it, is installed.
            unsafe {
                let prev = (*PREVIOUS.0.get())[i].as_mut_ptr();
                let mut action: libc::sigaction = core::mem::zeroed();
                action.sa_sigaction = on_fault as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, core::ptr::null(), prev);
                libc::sigaction(sig, &action, core::ptr::null_mut());
            }
        }
    }

    /// Writes `n` in hexadecimal into `buf`, returns the used tail.
    fn hex(mut n: usize, buf: &mut [u8; 18]) -> &[u8] {
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b"0123456789abcdef"[n & 15];
            n >>= 4;
            if n == 0 {
                break;
            }
        }
        i -= 1;
        buf[i] = b'x';
        i -= 1;
        buf[i] = b'0';
        &buf[i..]
    }

    extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid `siginfo_t` for SA_SIGINFO handlers.
        let addr = unsafe { (*info).si_addr() } as usize;
        let idx = if sig == libc::SIGSEGV { 0 } else { 1 };
        if crate::space::owns(core::ptr::without_provenance::<u8>(addr)) {
            let mut buf = [0u8; 18];
            sys::write_stderr(b"bumper: guard mode caught an access to arena memory at ");
            sys::write_stderr(hex(addr, &mut buf));
            sys::write_stderr(
                b" that a reset (reset, reset_to or the end of no_escape) or the free of a \
                  large block handed back: a pointer to it was used after that \
                  (use after reset or free)\n",
            );
            // Die with the original signal: restore the default action and
            // return, so the faulting access runs again.
            // SAFETY: plain signal-handling calls with valid arguments.
            unsafe {
                let mut dfl: libc::sigaction = core::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, core::ptr::null_mut());
            }
            return;
        }
        // Not ours: hand over to whoever was installed before.
        // SAFETY: written before this handler was installed, read-only since.
        let prev = unsafe { (*PREVIOUS.0.get())[idx].assume_init_ref() };
        if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                // SAFETY: with SA_SIGINFO, `sa_sigaction` is such a function.
                unsafe { core::mem::transmute(prev.sa_sigaction) };
            f(sig, info, ctx);
        } else if prev.sa_sigaction == libc::SIG_IGN {
            // Ignored before us: keep ignoring.
        } else if prev.sa_sigaction == libc::SIG_DFL {
            // SAFETY: as above.
            unsafe { libc::sigaction(sig, prev, core::ptr::null_mut()) };
        } else {
            let f: extern "C" fn(libc::c_int) =
                // SAFETY: without SA_SIGINFO, `sa_sigaction` holds a plain handler.
                unsafe { core::mem::transmute(prev.sa_sigaction) };
            f(sig);
        }
    }
}
