//! [`Pool`]: a pool of [`LockedArena`]s for units of work that come and go
//! (an arena per request), its builder and its counters. The leases it
//! hands out are in `lease.rs`.
//!
//! The idle arenas are kept in *shards*, one per CPU or so, each behind its
//! own short lock and on its own cache lines. A thread takes from the shard
//! its id maps to (and only when that one is empty or busy from the others),
//! and an arena goes back to the shard it was made in, so workers do not
//! serialise on one lock. A lease's slot (the arena, its count of holders
//! and its shard) is made once per arena, on the heap, and reused with it.

use core::cell::UnsafeCell;
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::AtomicUsize;
use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::arena::LockedArena;
use crate::builder::ArenaBuilder;
use crate::error::ConfigError;
use crate::lease::Lease;
use crate::region::outside_regions;
use crate::route;
use crate::stats::ArenaStats;

/// Idle arenas a pool keeps, by default.
const DEFAULT_MAX_IDLE: usize = 64;
/// The most shards a pool splits its idle arenas into.
const MAX_SHARDS: usize = 64;

/// A pool of [`LockedArena`]s, for an arena per unit of work (a request, a
/// job) without making one each time.
///
/// [`take`](Pool::take) hands out a [`Lease`]: an arena of the pool, or a
/// new one if none is idle (it never waits). Dropping the lease resets the
/// arena, reports what escaped by the arena's
/// [`EscapePolicy`](crate::EscapePolicy), and gives it back to the pool,
/// which keeps up to [`max_idle`](PoolBuilder::max_idle) idle arenas (64 by
/// default) and drops the rest. A `Pool` is a handle: clones share the same
/// arenas, and it is `Send + Sync`.
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use bumper::{is_arena_pointer, with_bumper, Pool};
///
/// let pool = Pool::new();
/// for request in 0..3 {
///     let lease = pool.take();
///     let body = with_bumper(&*lease, || format!("{{\"request\": {request}}}"));
///     assert!(is_arena_pointer(body.as_ptr()));
///     drop(body);
///     drop(lease); // resets the arena and puts it back
/// }
/// let s = pool.stats();
/// assert_eq!((s.leases, s.arenas_created, s.unclean_resets), (3, 1, 0));
/// ```
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

/// What the handles of one pool share.
struct Shared {
    shards: Box<[Arc<Shard>]>,
    /// `shards.len() - 1`; the length is a power of two.
    mask: usize,
}

/// A part of the pool's idle arenas, behind its own lock.
pub(crate) struct Shard {
    state: CachePadded<ShardLock>,
    builder: ArenaBuilder<LockedArena>,
    /// Idle arenas this shard keeps at most.
    pub(crate) cap: usize,
}

pub(crate) struct ShardState {
    /// Boxed: a lease points at its slot, which keeps its place while it is
    /// idle and leased.
    #[allow(clippy::vec_box)]
    pub(crate) idle: Vec<Box<Slot>>,
    /// The pool was dropped: arenas coming back are dropped too.
    pub(crate) closed: bool,
    pub(crate) counts: PoolStats,
}

/// One arena of the pool, with the count of the leases that hold it (a
/// [`Lease`] and, inside the crate, the shares the tower layer hands to
/// response chunks) and the shard it goes back to.
pub(crate) struct Slot {
    pub(crate) arena: LockedArena,
    pub(crate) holders: AtomicUsize,
    pub(crate) home: Arc<Shard>,
}

/// Counters of a [`Pool`], from [`Pool::stats`].
///
/// ```
/// let pool = bumper::Pool::new();
/// drop(pool.take());
/// let s = pool.stats();
/// assert_eq!((s.leases, s.resets, s.idle), (1, 1, 1));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Leases handed out by [`Pool::take`].
    pub leases: u64,
    /// Arenas made, because none was idle when a lease was taken (and the
    /// one made by the pool's builder to check its settings).
    pub arenas_created: u64,
    /// Arenas idle in the pool now.
    pub idle: u64,
    /// Resets of arenas coming back from their leases.
    pub resets: u64,
    /// Those resets that found memory still in use (an escape) or could
    /// not reset (a checkpoint of the dropping thread still active).
    pub unclean_resets: u64,
    /// Blocks and bytes those resets found still in use, in all.
    pub escaped_blocks: u64,
    /// See [`escaped_blocks`](Self::escaped_blocks).
    pub escaped_bytes: u64,
    /// Arenas dropped instead of kept: the pool already held as many idle
    /// arenas as it may, the reset was not clean (the arena is not handed
    /// out again), or the pool was gone.
    pub discarded: u64,
}

impl PoolStats {
    fn add(&mut self, o: &PoolStats) {
        self.leases += o.leases;
        self.arenas_created += o.arenas_created;
        self.idle += o.idle;
        self.resets += o.resets;
        self.unclean_resets += o.unclean_resets;
        self.escaped_blocks += o.escaped_blocks;
        self.escaped_bytes += o.escaped_bytes;
        self.discarded += o.discarded;
    }
}

impl fmt::Display for PoolStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} leases, {} arenas made, {} idle, {} resets ({} unclean: {} blocks, {} escaped), {} discarded",
            self.leases,
            self.arenas_created,
            self.idle,
            self.resets,
            self.unclean_resets,
            self.escaped_blocks,
            crate::stats::Bytes(self.escaped_bytes),
            self.discarded
        )
    }
}

/// Configures a [`Pool`]: the settings of its arenas and how many idle ones
/// it keeps.
///
/// ```
/// use bumper::{EscapePolicy, LockedArena, Pool};
///
/// let pool = Pool::builder()
///     .arenas(LockedArena::builder().max_threads(8).escape_policy(EscapePolicy::Panic))
///     .max_idle(16)
///     .build()
///     .unwrap();
/// assert_eq!(pool.take().escape_policy(), EscapePolicy::Panic);
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder {
    arenas: ArenaBuilder<LockedArena>,
    max_idle: usize,
}

impl PoolBuilder {
    /// The settings of every arena of the pool (default:
    /// `LockedArena::builder()` as it comes).
    ///
    /// ```
    /// let pool = bumper::Pool::builder()
    ///     .arenas(bumper::LockedArena::builder().chunk_size(1 << 20))
    ///     .build()
    ///     .unwrap();
    /// # drop(pool);
    /// ```
    pub fn arenas(mut self, builder: ArenaBuilder<LockedArena>) -> Self {
        self.arenas = builder;
        self
    }

    /// The most idle arenas the pool keeps (default 64); arenas given back
    /// beyond that are dropped. 0 keeps none: every lease makes an arena.
    /// The bound is split between the pool's shards (one per CPU, rounded
    /// up to a power of two), and an arena goes back to the shard it was
    /// made in, so a pool used by one thread keeps at most its shard's part.
    ///
    /// ```
    /// let pool = bumper::Pool::builder().max_idle(0).build().unwrap();
    /// drop(pool.take());
    /// assert_eq!(pool.stats().idle, 0);
    /// ```
    pub fn max_idle(mut self, n: usize) -> Self {
        self.max_idle = n;
        self
    }

    /// Makes the pool, with one idle arena (if it may keep one) made with
    /// the settings to check them.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] of [`ArenaBuilder::build`] if the arena settings
    /// are wrong.
    ///
    /// ```
    /// let bad = bumper::LockedArena::builder().chunk_size(1000);
    /// assert!(bumper::Pool::builder().arenas(bad).build().is_err());
    /// ```
    pub fn build(self) -> Result<Pool, ConfigError> {
        // Pools are long-lived: their bookkeeping goes on the heap even if
        // the pool is made inside a region.
        outside_regions(|| {
            let first = self.arenas.build()?;
            let n = std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .next_power_of_two()
                .min(MAX_SHARDS);
            let shards: Box<[Arc<Shard>]> = (0..n)
                .map(|i| {
                    let cap = self.max_idle / n + usize::from(i < self.max_idle % n);
                    Arc::new(Shard {
                        state: CachePadded::new(ShardLock::new(ShardState {
                            idle: Vec::with_capacity(cap),
                            closed: false,
                            counts: PoolStats::default(),
                        })),
                        builder: self.arenas,
                        cap,
                    })
                })
                .collect();
            let home = &shards[0];
            let mut st = lock(home);
            st.counts.arenas_created += 1;
            if home.cap > 0 {
                st.idle.push(Box::new(Slot {
                    arena: first,
                    holders: AtomicUsize::new(0),
                    home: Arc::clone(home),
                }));
                st.counts.idle += 1;
            } else {
                st.counts.discarded += 1;
            }
            drop(st);
            Ok(Pool {
                shared: Arc::new(Shared {
                    mask: n - 1,
                    shards,
                }),
            })
        })
    }
}

/// A shard's lock: a flag and the state. Its critical sections are a few
/// instructions (a push or a pop on a list with room, counters): they never
/// panic, call user code or allocate. So a thread that finds it held spins
/// (with `Backoff`) for a moment, and `take` can look elsewhere first.
pub(crate) struct ShardLock {
    locked: AtomicBool,
    state: UnsafeCell<ShardState>,
}

// SAFETY: the lock hands out the state to one thread at a time (acquire on
// taking the flag, release on giving it back), and the state is `Send`.
unsafe impl Sync for ShardLock {}

impl ShardLock {
    fn new(state: ShardState) -> ShardLock {
        ShardLock {
            locked: AtomicBool::new(false),
            state: UnsafeCell::new(state),
        }
    }

    #[inline]
    fn try_lock(&self) -> Option<ShardGuard<'_>> {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| ShardGuard { lock: self })
    }

    fn lock(&self) -> ShardGuard<'_> {
        let backoff = crossbeam_utils::Backoff::new();
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
            backoff.snooze();
        }
    }
}

/// The state of a locked shard; unlocks when dropped.
pub(crate) struct ShardGuard<'a> {
    lock: &'a ShardLock,
}

impl Deref for ShardGuard<'_> {
    type Target = ShardState;

    fn deref(&self) -> &ShardState {
        // SAFETY: this guard holds the lock, so no other reference to the
        // state exists.
        unsafe { &*self.lock.state.get() }
    }
}

impl DerefMut for ShardGuard<'_> {
    fn deref_mut(&mut self) -> &mut ShardState {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access
        // through the guard.
        unsafe { &mut *self.lock.state.get() }
    }
}

impl Drop for ShardGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

/// Locks a shard, waiting for a moment if another thread holds it.
pub(crate) fn lock(shard: &Shard) -> ShardGuard<'_> {
    shard.state.lock()
}

/// Locks a shard, or `None` if another thread holds it now.
fn try_lock(shard: &Shard) -> Option<ShardGuard<'_>> {
    shard.state.try_lock()
}

impl Pool {
    /// A pool of arenas with default settings (`LockedArena::new()`'s),
    /// keeping up to 64 idle ones.
    ///
    /// ```
    /// let pool = bumper::Pool::new();
    /// assert_eq!(pool.stats().idle, 1); // one arena made up front
    /// ```
    pub fn new() -> Pool {
        Pool::builder()
            .build()
            .expect("the default arena settings are valid")
    }

    /// A builder for a configured pool.
    ///
    /// ```
    /// let pool = bumper::Pool::builder().max_idle(4).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            arenas: LockedArena::builder(),
            max_idle: DEFAULT_MAX_IDLE,
        }
    }

    /// A pool whose arenas are made with `builder`, keeping up to 64 idle
    /// ones: `Pool::builder().arenas(builder).build()`.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] of [`ArenaBuilder::build`] if the settings are
    /// wrong.
    ///
    /// ```
    /// use bumper::{EscapePolicy, LockedArena, Pool};
    ///
    /// let pool = Pool::with_builder(LockedArena::builder().escape_policy(EscapePolicy::Keep))
    ///     .unwrap();
    /// assert_eq!(pool.take().escape_policy(), EscapePolicy::Keep);
    /// ```
    pub fn with_builder(builder: ArenaBuilder<LockedArena>) -> Result<Pool, ConfigError> {
        Pool::builder().arenas(builder).build()
    }

    /// Takes an arena from the pool: an idle one, or a new one if none is
    /// idle. Never waits for an arena to come back: it looks in the calling
    /// thread's shard and then in the others (first without waiting for
    /// their locks, which are held for a few instructions at a time, then
    /// waiting for them if one was busy), and makes an arena if all are
    /// empty. The [`Lease`] derefs to the
    /// [`LockedArena`]; dropping it resets the arena and gives it back.
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
    /// let pool = bumper::Pool::new();
    /// let lease = pool.take();
    /// let n = lease.scoped(|| vec![1u8; 100].len()); // `LockedArena::scoped`
    /// assert_eq!(n, 100);
    /// ```
    pub fn take(&self) -> Lease {
        let shards = &self.shared.shards;
        let mask = self.shared.mask;
        let home = (route::tid() as usize) & mask;
        // First without waiting for any lock: the thread's own shard, then
        // the others.
        let mut busy = false;
        for k in 0..=mask {
            let shard = &shards[(home + k) & mask];
            let Some(mut st) = try_lock(shard) else {
                busy = true;
                continue;
            };
            if let Some(slot) = st.idle.pop() {
                st.counts.leases += 1;
                st.counts.idle -= 1;
                drop(st);
                return Lease::from_slot(slot);
            }
        }
        // A shard was busy for a moment (its lock is held for a few
        // instructions at a time): look there again rather than make an
        // arena for nothing.
        if busy {
            for k in 0..=mask {
                let mut st = lock(&shards[(home + k) & mask]);
                if let Some(slot) = st.idle.pop() {
                    st.counts.leases += 1;
                    st.counts.idle -= 1;
                    drop(st);
                    return Lease::from_slot(slot);
                }
            }
        }
        let shard = &shards[home];
        let slot = outside_regions(|| {
            Box::new(Slot {
                arena: shard
                    .builder
                    .build()
                    .expect("the pool's builder checked the settings"),
                holders: AtomicUsize::new(0),
                home: Arc::clone(shard),
            })
        });
        let mut st = lock(shard);
        st.counts.arenas_created += 1;
        st.counts.leases += 1;
        drop(st);
        Lease::from_slot(slot)
    }

    /// The pool's counters, summed over its shards.
    ///
    /// ```
    /// let pool = bumper::Pool::new();
    /// let (a, b) = (pool.take(), pool.take()); // the second one is new
    /// drop((a, b));
    /// let s = pool.stats();
    /// assert_eq!((s.leases, s.arenas_created, s.idle), (2, 2, 2));
    /// ```
    #[must_use = "`stats` only takes a snapshot; it has no effect"]
    pub fn stats(&self) -> PoolStats {
        let mut total = PoolStats::default();
        for shard in &self.shared.shards {
            total.add(&lock(shard).counts);
        }
        total
    }

    /// The stats of every idle arena of the pool (leased ones are not
    /// counted), for checking that they came back clean.
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
    /// let pool = bumper::Pool::new();
    /// pool.take().scoped(|| drop(vec![0u8; 1000]));
    /// for s in pool.idle_arena_stats() {
    ///     assert_eq!((s.live_blocks, s.escapes), (0, 0));
    /// }
    /// ```
    #[must_use = "`idle_arena_stats` only takes a snapshot; it has no effect"]
    pub fn idle_arena_stats(&self) -> Vec<ArenaStats> {
        let mut out = outside_regions(Vec::new);
        for shard in &self.shared.shards {
            let st = lock(shard);
            // Outside the lock it could be leased and dropped meanwhile; the
            // snapshot is quick and allocates nothing but `out`'s growth.
            outside_regions(|| out.extend(st.idle.iter().map(|s| s.arena.stats())));
        }
        out
    }
}

impl Default for Pool {
    fn default() -> Self {
        Pool::new()
    }
}

impl From<&Pool> for Pool {
    /// Another handle to the same pool.
    fn from(pool: &Pool) -> Pool {
        pool.clone()
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("shards", &self.shared.shards.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for Shared {
    /// The last handle of the pool: its idle arenas are dropped, and arenas
    /// still leased are dropped when their leases end.
    fn drop(&mut self) {
        for shard in &self.shards {
            let mut st = lock(shard);
            st.closed = true;
            let idle = core::mem::take(&mut st.idle);
            drop(st);
            drop(idle);
        }
    }
}
