//! What a reset reports ([`ResetReport`]) and the escape policies
//! ([`EscapePolicy`]). Plain data; applying a policy is `escape.rs`.

use core::fmt;

use crate::stats::Bytes;

/// What an arena does when a reset (or the arena's drop) finds memory that
/// is still in use: an *escape*.
///
/// Whatever the policy, escaped memory is never overwritten: the live blocks
/// stay valid, are not reused, and are counted in [`ArenaStats`](crate::ArenaStats).
/// The policy only decides how loudly the escape is reported.
///
/// The default is [`Warn`](EscapePolicy::Warn) in debug builds (with
/// `debug_assertions`), so that an escape is noticed while the code is
/// written, and [`Keep`](EscapePolicy::Keep) in release builds.
///
/// ```
/// use bumper::{Arena, EscapePolicy};
///
/// let strict = Arena::builder().escape_policy(EscapePolicy::Panic).build().unwrap();
/// assert_eq!(strict.escape_policy(), EscapePolicy::Panic);
/// let expected = if cfg!(debug_assertions) { EscapePolicy::Warn } else { EscapePolicy::Keep };
/// assert_eq!(Arena::new().escape_policy(), expected);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EscapePolicy {
    /// Keep escaped memory valid and unused, count it, and carry on. The
    /// default in release builds.
    Keep,
    /// Like `Keep`, and print the escape message on stderr the first time
    /// an arena finds an escape (once per arena). The default in debug
    /// builds.
    Warn,
    /// Keep escaped memory valid, then panic with a message naming what
    /// escaped and how to fix it. Nothing panics while the thread is already
    /// panicking; the escape is then only counted.
    Panic,
    /// Keep escaped memory valid, print the message and abort the process.
    Abort,
}

impl Default for EscapePolicy {
    /// [`Warn`](EscapePolicy::Warn) in debug builds,
    /// [`Keep`](EscapePolicy::Keep) in release builds.
    fn default() -> Self {
        if cfg!(debug_assertions) {
            EscapePolicy::Warn
        } else {
            EscapePolicy::Keep
        }
    }
}

/// What a reset did: how many bytes it made reusable and what it had to
/// keep because it was still in use.
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use bumper::{with_bumper, Arena};
///
/// let arena = Arena::new();
/// let cp = arena.checkpoint();
/// let kept = with_bumper(&arena, || vec![1u8; 100]); // escapes the checkpoint
/// let report = arena.reset_to(cp);
/// assert_eq!(report.escaped_blocks, 1);
/// assert!(!report.is_clean());
/// assert_eq!(kept, vec![1u8; 100]); // still intact
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResetReport {
    /// Bytes made available for reuse.
    pub reclaimed_bytes: u64,
    /// Chunk memory the reset gave back to the OS (or to other arenas)
    /// because recent resets did not need it (see
    /// [`ArenaBuilder::autoscale`](crate::ArenaBuilder::autoscale)).
    pub trimmed_bytes: u64,
    /// Blocks allocated after the checkpoint that were still live.
    pub escaped_blocks: u64,
    /// Bytes (rounded to 8) of those blocks.
    pub escaped_bytes: u64,
    /// Lanes of a [`LockedArena`](crate::LockedArena) that another thread was
    /// using inside a region, and which were therefore not reset.
    pub busy_lanes: u32,
    /// Newer checkpoints of *other* threads that were still active, so
    /// nothing was reset (a locked arena reset while other threads run their
    /// own `no_escape` blocks).
    pub concurrent_checkpoints: u32,
    /// The checkpoint could not be recorded, so nothing was reclaimed: the
    /// OS refused the memory for its record (checkpoints nest to any depth
    /// otherwise), or the arena is one whose own memory was refused at
    /// creation, which spills everything to the inner allocator.
    pub untracked: bool,
    /// Where the escaped blocks were allocated, largest first, for arenas
    /// built with [`track_sites`](crate::ArenaBuilder::track_sites); unused
    /// entries have no blocks. See [`ResetReport::sites`].
    pub top_sites: [SiteCount; 4],
}

/// Where a block was allocated: a call stack recorded by an arena built with
/// [`track_sites`](crate::ArenaBuilder::track_sites). Print it (with `{}`)
/// to see the functions and source lines that made the block.
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use bumper::{with_bumper, Arena, EscapePolicy};
///
/// let arena = Arena::builder().track_sites(true).escape_policy(EscapePolicy::Keep).build().unwrap();
/// let cp = arena.checkpoint();
/// let kept = with_bumper(&arena, || vec![1u8; 100]);
/// let report = arena.reset_to(cp);
/// for s in report.sites() {
///     println!("{} block(s), {} bytes, allocated at\n{}", s.blocks, s.bytes, s.site);
/// }
/// # drop(kept);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AllocSite(pub(crate) u32);

/// Escaped blocks that one [`AllocSite`] made, in a [`ResetReport`].
///
/// ```
/// let none = bumper::SiteCount::default();
/// assert_eq!((none.blocks, none.bytes), (0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SiteCount {
    /// Where the blocks were allocated. The id 0 stands for "unknown or
    /// other sites".
    pub site: AllocSite,
    /// Escaped blocks from that site.
    pub blocks: u64,
    /// Bytes (rounded up to 8) of those blocks.
    pub bytes: u64,
}

/// Lists only the sites that made escaped blocks (as
/// [`ResetReport::sites`] does), not the unused entries.
///
/// ```
/// let arena = bumper::Arena::new();
/// let text = format!("{:?}", arena.reset());
/// assert!(text.contains("escaped_blocks: 0") && text.contains("top_sites: []"), "{text}");
/// ```
impl core::fmt::Debug for ResetReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        struct Sites<'a>(&'a ResetReport);
        impl core::fmt::Debug for Sites<'_> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_list().entries(self.0.sites()).finish()
            }
        }
        f.debug_struct("ResetReport")
            .field("reclaimed_bytes", &self.reclaimed_bytes)
            .field("trimmed_bytes", &self.trimmed_bytes)
            .field("escaped_blocks", &self.escaped_blocks)
            .field("escaped_bytes", &self.escaped_bytes)
            .field("busy_lanes", &self.busy_lanes)
            .field("concurrent_checkpoints", &self.concurrent_checkpoints)
            .field("untracked", &self.untracked)
            .field("top_sites", &Sites(self))
            .finish()
    }
}

impl ResetReport {
    /// True if everything since the checkpoint was reclaimed.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        !self.escaped() && !self.untracked
    }

    /// The allocation sites of the escaped blocks, largest first (empty
    /// unless the arena was built with
    /// [`track_sites`](crate::ArenaBuilder::track_sites)).
    ///
    /// ```
    /// let arena = bumper::Arena::new();
    /// assert_eq!(arena.reset().sites().count(), 0);
    /// ```
    pub fn sites(&self) -> impl Iterator<Item = &SiteCount> {
        self.top_sites.iter().filter(|s| s.blocks > 0)
    }

    /// True if memory that was still in use had to be kept.
    #[must_use]
    pub fn escaped(&self) -> bool {
        self.escaped_blocks > 0 || self.busy_lanes > 0 || self.concurrent_checkpoints > 0
    }
}

impl fmt::Display for ResetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reclaimed {}", Bytes(self.reclaimed_bytes))?;
        if self.escaped_blocks > 0 {
            write!(
                f,
                ", kept {} escaped block(s) ({})",
                self.escaped_blocks,
                Bytes(self.escaped_bytes)
            )?;
        }
        if self.busy_lanes > 0 {
            write!(
                f,
                ", skipped {} lane(s) in use by other threads",
                self.busy_lanes
            )?;
        }
        if self.concurrent_checkpoints > 0 {
            write!(
                f,
                ", reset nothing: {} newer checkpoint(s) of other threads active",
                self.concurrent_checkpoints
            )?;
        }
        if self.untracked {
            f.write_str(", reset nothing: the checkpoint could not be recorded (memory refused)")?;
        }
        Ok(())
    }
}
