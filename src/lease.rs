//! [`Lease`], an arena taken from a [`Pool`](crate::Pool) that goes back
//! reset when dropped, and [`Leased`], a value that keeps its lease.

use core::fmt;
use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::{Ordering, fence};
use std::sync::Arc;

use crate::arena::LockedArena;
use crate::arena::sealed::Sealed;
use crate::escape::{EscapeSite, handle_escape};
use crate::pool::{Slot, lock};

/// An arena taken from a [`Pool`](crate::Pool). Derefs to the [`LockedArena`]; dropping
/// the lease resets the arena, reports an escape by the arena's
/// [`EscapePolicy`](crate::EscapePolicy) (as [`LockedArena::reset`] does;
/// under `Panic` the drop panics after the arena is back in the pool), and
/// gives it back to the pool. A lease may be sent to and dropped on any
/// thread, and may outlive its pool.
///
/// Drop the lease outside the arena's regions and after everything
/// allocated in them: what is still in use then escapes the reset (it stays
/// valid, and is counted). [`Lease::attach`] ties a value to the lease so
/// that it goes first.
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use bumper::{in_region, Pool};
///
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let pool = Pool::new();
/// let lease = pool.take();
/// let len = rt.block_on(in_region(lease.region(), async { format!("{}", 1 << 20).len() }));
/// assert_eq!(len, 7);
/// drop(lease);
/// assert_eq!(pool.stats().unclean_resets, 0);
/// ```
pub struct Lease {
    slot: NonNull<Slot>,
}

// SAFETY: a lease is a counted reference to a heap `Slot` whose fields are
// all `Send + Sync` (a `LockedArena`, an atomic, an `Arc` of a shard behind a
// mutex); the slot is freed or reused only by the last holder.
unsafe impl Send for Lease {}
// SAFETY: as above; through `&Lease` only `&LockedArena` is reachable.
unsafe impl Sync for Lease {}

impl std::panic::UnwindSafe for Lease {}
impl std::panic::RefUnwindSafe for Lease {}

impl Lease {
    pub(crate) fn from_slot(slot: Box<Slot>) -> Lease {
        slot.holders.store(1, Ordering::Relaxed);
        Lease {
            slot: NonNull::from(Box::leak(slot)),
        }
    }

    fn slot(&self) -> &Slot {
        // SAFETY: the slot lives until its last holder is dropped, and this
        // lease is one.
        unsafe { self.slot.as_ref() }
    }

    /// Another holder of the same arena: the arena goes back to the pool
    /// when the last holder is dropped. For the tower layer's response
    /// chunks, which outlive the body that made them.
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn share(&self) -> Lease {
        self.slot().holders.fetch_add(1, Ordering::Relaxed);
        Lease { slot: self.slot }
    }

    /// Ties `value` to this lease: the [`Leased`] owns both, derefs to the
    /// value, and when dropped drops the value first, then the lease (which
    /// resets the arena and gives it back). For a response made in the
    /// arena that must live until it is sent: with the `bytes` crate,
    /// `Bytes::from_owner(leased)` sends it without a copy (call it outside
    /// the arena's regions, so that the `Bytes`' own box is on the heap).
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
    /// use bumper::{with_bumper, Pool};
    ///
    /// let pool = Pool::new();
    /// let lease = pool.take();
    /// let body = with_bumper(&*lease, || format!("{:?}", [1, 2, 3]));
    /// let response = lease.attach(body);
    /// assert_eq!(&*response, "[1, 2, 3]");
    /// assert_eq!(AsRef::<[u8]>::as_ref(&response), b"[1, 2, 3]");
    /// drop(response); // the string, then the lease: a clean reset
    /// assert_eq!(pool.stats().unclean_resets, 0);
    /// ```
    pub fn attach<T>(self, value: T) -> Leased<T> {
        Leased { value, lease: self }
    }
}

impl Deref for Lease {
    type Target = LockedArena;

    fn deref(&self) -> &LockedArena {
        &self.slot().arena
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("arena", &self.slot().arena.id())
            .finish()
    }
}

impl Drop for Lease {
    /// The last holder resets the arena, gives it back to the pool and
    /// applies the arena's escape policy.
    fn drop(&mut self) {
        // The only holder (the usual case) needs no read-modify-write: no
        // other holder exists to make a new one.
        let holders = &self.slot().holders;
        if holders.load(Ordering::Acquire) != 1 {
            if holders.fetch_sub(1, Ordering::Release) != 1 {
                return;
            }
            fence(Ordering::Acquire);
        }
        // SAFETY: this was the last holder: the slot is this code's alone,
        // and was made by `Box::new` (`from_slot` leaked it).
        let slot = unsafe { Box::from_raw(self.slot.as_ptr()) };
        give_back(slot);
    }
}

/// Resets a slot's arena, applies the arena's escape policy, and returns
/// the arena to its shard (or drops it), also when the policy panics.
fn give_back(slot: Box<Slot>) {
    let result = slot.arena.try_reset();
    let outcome = match &result {
        Ok(r) if r.is_clean() => Outcome::Clean,
        Ok(r) => Outcome::Escaped {
            blocks: r.escaped_blocks,
            bytes: r.escaped_bytes,
        },
        Err(_) => Outcome::Failed,
    };
    // Made before the policy runs: a panicking policy still returns the arena.
    let back = GiveBack {
        slot: Some(slot),
        outcome,
    };
    if let (Some(slot), Ok(r)) = (&back.slot, &result) {
        let core = slot.arena.core_ref().0;
        handle_escape(core.policy, &core.warned, EscapeSite::Reset, core.id, r);
    }
}

/// What a lease's reset found, for the pool's counts.
#[derive(Clone, Copy)]
enum Outcome {
    Clean,
    Escaped { blocks: u64, bytes: u64 },
    Failed,
}

/// Returns a reset slot to its shard when dropped.
struct GiveBack {
    slot: Option<Box<Slot>>,
    outcome: Outcome,
}

impl Drop for GiveBack {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        let home = Arc::clone(&slot.home);
        let mut st = lock(&home);
        st.counts.resets += 1;
        let keep = match self.outcome {
            // An arena that kept escaped memory is not handed out again: its
            // idle arenas stay clean, and the escaped blocks pin only their
            // own chunks until they are freed.
            Outcome::Clean => !st.closed && st.idle.len() < home.cap,
            Outcome::Escaped { blocks, bytes } => {
                st.counts.unclean_resets += 1;
                st.counts.escaped_blocks += blocks;
                st.counts.escaped_bytes += bytes;
                false
            }
            Outcome::Failed => {
                st.counts.unclean_resets += 1;
                false
            }
        };
        let dropped = if keep {
            st.idle.push(slot);
            st.counts.idle += 1;
            None
        } else {
            st.counts.discarded += 1;
            Some(slot)
        };
        drop(st);
        // Outside the lock: dropping an arena with blocks still in use
        // reports them by its policy.
        drop(dropped);
    }
}

/// A value tied to the [`Lease`] of the arena it was made in, from
/// [`Lease::attach`]. Derefs to the value; `AsRef<[u8]>` when the value is,
/// so that `bytes::Bytes::from_owner(leased)` hands it to an HTTP stack
/// without a copy. Dropping it drops the value, then the lease.
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use bumper::{is_arena_pointer, with_bumper, Leased, Pool};
///
/// let pool = Pool::new();
/// let lease = pool.take();
/// let v = with_bumper(&*lease, || vec![7u8; 64]);
/// let leased: Leased<Vec<u8>> = lease.attach(v);
/// assert!(is_arena_pointer(leased.as_ptr()));
/// let sent = std::thread::spawn(move || leased.len()).join().unwrap();
/// assert_eq!(sent, 64);
/// assert_eq!(pool.stats().unclean_resets, 0);
/// ```
pub struct Leased<T> {
    // Declared first: dropped before the lease.
    value: T,
    lease: Lease,
}

impl<T> Leased<T> {
    /// The lease that the value holds.
    ///
    /// ```
    /// let pool = bumper::Pool::new();
    /// let leased = pool.take().attach(());
    /// assert_eq!(leased.lease().stats().allocations, 0);
    /// ```
    pub fn lease(&self) -> &Lease {
        &self.lease
    }
}

impl<T> Deref for Leased<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> core::ops::DerefMut for Leased<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Leased<T> {
    fn as_ref(&self) -> &[u8] {
        self.value.as_ref()
    }
}

impl<T: fmt::Debug> fmt::Debug for Leased<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leased")
            .field("value", &self.value)
            .field("lease", &self.lease)
            .finish()
    }
}
