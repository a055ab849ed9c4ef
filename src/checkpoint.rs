//! [`Checkpoint`]: a position in an arena to reset to later.

use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;

use crate::arena_core::ArenaCore;
use crate::checkpoints::Held;
use crate::error::ResetError;

/// A position in an arena to [`reset_to`](crate::Arena::reset_to) later.
///
/// Taken with `checkpoint()` on [`Arena`](crate::Arena) or [`LockedArena`](crate::LockedArena). A reset
/// consumes it. Dropping it without a reset *discards* it: its allocations
/// are kept and belong to the enclosing checkpoint. Checkpoints of one thread
/// are reset innermost first.
///
/// A checkpoint is [`UnwindSafe`](std::panic::UnwindSafe) and
/// [`RefUnwindSafe`](std::panic::RefUnwindSafe) (see
/// [`Arena`'s unwind safety](crate::Arena#unwind-safety)), so it can be moved into
/// [`catch_unwind`](std::panic::catch_unwind), for example to catch the panic
/// of a reset under [`EscapePolicy::Panic`](crate::EscapePolicy::Panic).
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use bumper::{with_bumper, Arena};
///
/// let arena = Arena::new();
/// let cp = arena.checkpoint();
/// with_bumper(&arena, || drop(vec![0u8; 100]));
/// let report = arena.reset_to(cp);
/// assert!(report.is_clean());
/// ```
#[must_use = "a checkpoint does nothing unless passed to `reset_to`; dropping it discards it"]
pub struct Checkpoint<'a> {
    pub(crate) core: &'a ArenaCore,
    serial: u64,
    /// Checkpoints are per thread, like regions.
    _not_send: PhantomData<*const ()>,
}

// See `Arena`: a checkpoint is a serial number; a panic leaves the arena's
// checkpoint list consistent.
impl std::panic::UnwindSafe for Checkpoint<'_> {}
impl std::panic::RefUnwindSafe for Checkpoint<'_> {}

impl<'a> Checkpoint<'a> {
    /// Id of the arena this checkpoint belongs to.
    ///
    /// ```
    /// let arena = bumper::Arena::new();
    /// let cp = arena.checkpoint();
    /// assert_eq!(cp.arena_id(), arena.id());
    /// ```
    #[must_use]
    pub fn arena_id(&self) -> u64 {
        self.core.id
    }

    /// A checkpoint token for `serial`, just recorded on `core`.
    pub(crate) fn new(core: &'a ArenaCore, serial: u64) -> Self {
        Checkpoint {
            core,
            serial,
            _not_send: PhantomData,
        }
    }

    /// Consumes the token without discarding the checkpoint.
    pub(crate) fn into_serial(self) -> u64 {
        ManuallyDrop::new(self).serial
    }
}

impl Drop for Checkpoint<'_> {
    fn drop(&mut self) {
        self.core.discard(self.serial, crate::route::tid());
    }
}

impl fmt::Debug for Checkpoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkpoint")
            .field("arena", &self.core.id)
            .field("serial", &self.serial)
            .finish()
    }
}

/// The panic message of a full `reset()` that `err` refused: which of the
/// calling thread's checkpoints are still active (`held`), and how to get
/// out, a leaked checkpoint included.
pub(crate) fn full_reset_refused(err: &ResetError, arena: u64, held: Held) -> String {
    use core::fmt::Write as _;

    if !matches!(err, ResetError::OutOfOrder { .. }) || held == Held::default() {
        return err.to_string();
    }
    let mut msg = format!(
        "bumper: out-of-order reset: a full reset of arena #{arena} must come after every \
         checkpoint of this thread is reset or dropped, but "
    );
    if held.tokens > 0 {
        let _ = write!(
            msg,
            "{} `Checkpoint`(s) taken on this thread are still active (not yet reset or dropped, \
             or leaked with `mem::forget`, which keeps one active for good)",
            held.tokens
        );
    }
    if held.blocks > 0 {
        if held.tokens > 0 {
            msg.push_str(", and ");
        }
        let _ = write!(
            msg,
            "the reset runs inside {} `no_escape` or `scoped` block(s) of the arena",
            held.blocks
        );
    }
    msg.push_str(". Nothing was reset.");
    if held.tokens > 0 {
        msg.push_str(
            " Reset or drop those checkpoints first; if one was leaked, \
             `discard_checkpoints()` on the arena discards this thread's checkpoints \
             (their tokens become stale) and resets work again.",
        );
    }
    if held.blocks > 0 {
        msg.push_str(
            " Reset the whole arena after the block returns (the block hands back \
             its own allocations when it ends).",
        );
    }
    msg
}
