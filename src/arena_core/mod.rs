//! The shared state behind an [`Arena`](crate::Arena) or
//! [`LockedArena`](crate::LockedArena): its lanes, its list of active
//! checkpoints, its counters, and its life cycle (creation, drop, and the
//! *orphan* state in which a dropped arena waits for its last live blocks).
//!
//! The core lives inside the arena's first chunk (or, if the address space
//! cannot provide one, in a small separate mapping), never in memory from the
//! global allocator: it must outlive the `Arena` handle for as long as any of
//! its blocks is live, and it is freed from inside `dealloc`.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | the core's state, creation, chunk accounting, lane iteration |
//! | `regions.rs` | region entry and exit: finding, creating and giving back lanes |
//! | `resets.rs` | checkpoints, resets and snapshots across lanes |
//! | `lifecycle.rs` | drop, the orphan state and destruction |
//! | `registry.rs` | the list of live cores and the `fork()` handlers that use it |

use core::mem::size_of;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use crate::checkpoints::CheckpointList;
use crate::chunk::{ChunkHeader, HEADER, SLAB};
use crate::lane::{Claim, Lane};
use crate::report::EscapePolicy;
use crate::space;
use crate::spin::SpinLock;
use crate::sys;

mod lifecycle;
mod regions;
mod registry;
mod resets;

/// Lanes (threads inside a region at once) a locked arena can have.
pub(crate) const MAX_LANES: usize = 256;

/// Whether [`ArenaCore::for_each_claimable_lane`] visits the lanes the
/// calling thread holds for its own regions, or counts them as busy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OwnRegions {
    Include,
    Busy,
}

/// Settings fixed at creation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) capacity: usize,
    pub(crate) chunk_size: usize,
    pub(crate) policy: EscapePolicy,
    pub(crate) max_lanes: usize,
    pub(crate) guard: bool,
    /// How much chunk memory each lane keeps after a reset (see
    /// `Lane::retain_target`).
    pub(crate) retain: Retain,
    /// Chunk memory taken at creation, and never trimmed below.
    pub(crate) initial_capacity: usize,
    /// Record the allocation site of every block, for escape reports.
    pub(crate) track_sites: bool,
    /// Several threads may use the arena at once (a `LockedArena`). An
    /// unshared one (an `Arena`, `!Sync`) is only ever claimed by the one
    /// thread that holds it, so a region claims its lane with a plain store.
    pub(crate) shared: bool,
}

/// The retained-capacity policy of an arena's lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retain {
    /// Keep about 1.1 times the largest need of the last resets, at most
    /// this many bytes per lane.
    Auto { max: usize },
    /// Keep every chunk until `trim` or the arena's drop.
    All,
}

pub(crate) struct Counters {
    pub(crate) spills: AtomicU64,
    pub(crate) spilled_bytes: AtomicU64,
    failed_spills: AtomicU64,
    resets: AtomicU64,
    reclaimed: AtomicU64,
    escapes: AtomicU64,
    escaped_blocks: AtomicU64,
    escaped_bytes: AtomicU64,
    contended: AtomicU64,
    untracked: AtomicU64,
    lanes_exhausted: AtomicU64,
    /// Chunk bytes given back by retained-capacity trimming and `trim`.
    trimmed: AtomicU64,
}

impl Counters {
    const fn new() -> Self {
        Counters {
            spills: AtomicU64::new(0),
            spilled_bytes: AtomicU64::new(0),
            failed_spills: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            reclaimed: AtomicU64::new(0),
            escapes: AtomicU64::new(0),
            escaped_blocks: AtomicU64::new(0),
            escaped_bytes: AtomicU64::new(0),
            contended: AtomicU64::new(0),
            untracked: AtomicU64::new(0),
            lanes_exhausted: AtomicU64::new(0),
            trimmed: AtomicU64::new(0),
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The core of every arena created when the OS refused even the memory for
/// an arena's own bookkeeping: it has no lanes and no memory, so each region
/// of such an arena runs on the spill lane and everything spills to the
/// inner allocator. Its checkpoints are untracked. It is never destroyed,
/// and it is shared by all such arenas (id 0).
static FALLBACK: ArenaCore = ArenaCore::blank(
    0,
    &Config {
        capacity: usize::MAX,
        chunk_size: SLAB,
        policy: EscapePolicy::Keep,
        max_lanes: 0,
        guard: false,
        retain: Retain::All,
        initial_capacity: 0,
        track_sites: false,
        shared: true,
    },
    &raw const FALLBACK,
    ptr::null_mut(),
    0,
);

#[repr(C, align(128))]
pub(crate) struct ArenaCore {
    pub(crate) id: u64,
    /// Bumped whenever the checkpoint list changes; lanes compare it with the
    /// generation they last synced with.
    generation: AtomicU64,
    /// The active checkpoints, behind the arena's one lock.
    checkpoints: SpinLock<CheckpointList>,
    lanes: [AtomicPtr<Lane>; MAX_LANES],
    nlanes: AtomicUsize,
    max_lanes: usize,
    pub(crate) policy: EscapePolicy,
    /// Set once an escape was reported under `EscapePolicy::Warn`.
    pub(crate) warned: AtomicBool,
    /// Guard mode: poison and protect what resets reclaim.
    pub(crate) guard: bool,
    capacity: usize,
    /// Bytes of chunks this arena holds (checked against `capacity`).
    held: AtomicUsize,
    chunk_size: usize,
    pub(crate) retain: Retain,
    pub(crate) initial_capacity: usize,
    /// Lanes record allocation sites (see `lane/tracked.rs`).
    pub(crate) track_sites: bool,
    /// See [`Config::shared`].
    shared: bool,
    /// Live blocks of a dropped arena (see `close`).
    orphan_live: AtomicI64,
    /// The chunk hosting this core, or null if it lives in a mapping.
    home: *mut ChunkHeader,
    map_len: usize,
    pub(crate) counters: Counters,
    /// Used when every lane is taken: all requests spill.
    spill_lane: Lane,
    /// Neighbours in the registry of live cores (under `REGISTRY`'s lock).
    registry_prev: AtomicPtr<ArenaCore>,
    registry_next: AtomicPtr<ArenaCore>,
    /// Handles keeping the core alive: the `Arena` or `LockedArena` value,
    /// plus every `Region` of a locked arena. The last one to go closes it.
    handles: AtomicUsize,
    /// Regions currently running on `spill_lane` (on any thread). The spill
    /// lane is never claimed, so this is how `close` knows a region still
    /// routes to this core through it.
    spill_regions: AtomicUsize,
}

// SAFETY: the fields written after creation are atomics, the spin-locked
// checkpoint list, or lanes (themselves `Sync` by their claim protocol); the
// raw pointers (`home`) and settings are only read after creation.
unsafe impl Sync for ArenaCore {}
// SAFETY: as above; nothing in the core is tied to a thread.
unsafe impl Send for ArenaCore {}

/// Size of the memory a lane that is not in a chunk is mapped in.
fn lane_map_len() -> usize {
    size_of::<Lane>().next_multiple_of(sys::page_size())
}

impl ArenaCore {
    /// Creates an arena core. Called from `Arena::new` and friends, never
    /// from the allocator path.
    pub(crate) fn create(cfg: &Config) -> NonNull<ArenaCore> {
        {
            // Under the registry lock, so that `fork()` never happens halfway
            // through the space's initialisation.
            let _registry = registry::lock();
            space::init();
            registry::install_fork_handlers();
        }
        if cfg.guard {
            crate::guard_mode::install_handler();
        }
        if cfg.track_sites {
            crate::sites::prepare();
        }
        let core_size = size_of::<ArenaCore>();
        let lane_size = size_of::<Lane>();
        let meta = HEADER + core_size + lane_size;
        let want = (meta + 1024).max(SLAB);
        let mut home = ptr::null_mut();
        let class_size = space::class_for(want)
            .map(|c| SLAB << c)
            .unwrap_or(usize::MAX);
        if class_size <= cfg.capacity {
            home = space::acquire(want, ptr::null_mut());
        }
        let (core_ptr, lane0, map_len) = if !home.is_null() {
            let base = home.cast::<u8>();
            // SAFETY: `home` is a fresh chunk owned by this function.
            unsafe {
                (*home).start.set(meta);
                let clean = (*home).clean_from.get().max(meta);
                (*home).clean_from.set(clean);
            }
            (
                base.wrapping_add(HEADER).cast::<ArenaCore>(),
                base.wrapping_add(HEADER + core_size).cast::<Lane>(),
                0,
            )
        } else {
            let len = (core_size + lane_size).next_multiple_of(sys::page_size());
            let m = sys::map(len);
            if m.is_null() {
                // Not even the bookkeeping fits: a degraded arena whose
                // regions spill everything, rather than an abort.
                return NonNull::from(&FALLBACK);
            }
            (
                m.cast::<ArenaCore>(),
                m.wrapping_add(core_size).cast::<Lane>(),
                len,
            )
        };
        // SAFETY: `core_ptr` and `lane0` point to fresh, suitably aligned,
        // writable memory (chunk data is 128-aligned, a mapping page-aligned;
        // `ArenaCore`'s size is a multiple of its 128-byte alignment), which
        // lives until `destroy`.
        unsafe {
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            core_ptr.write(ArenaCore::blank(id, cfg, core_ptr, home, map_len));
            if !home.is_null() {
                (*core_ptr).held.store((*home).size, Ordering::Relaxed);
            }
            Lane::init(lane0, core_ptr, home, cfg.chunk_size, false);
            if cfg.initial_capacity > 0 {
                let extra = cfg
                    .initial_capacity
                    .saturating_sub((*core_ptr).held.load(Ordering::Relaxed));
                if extra > 0 {
                    let chunk = (*core_ptr).acquire_chunk(extra, lane0);
                    if !chunk.is_null() {
                        // The lane is not reachable by any other thread yet.
                        (*lane0).add_spare(chunk);
                    }
                }
                // What was taken, chunk sizes rounded up, is the floor of
                // the retained capacity.
                let held = (*core_ptr).held.load(Ordering::Relaxed);
                (*core_ptr).initial_capacity = cfg.initial_capacity.max(held);
                (*lane0).update_retained();
            }
            (*core_ptr).lanes[0].store(lane0, Ordering::Relaxed);
            (*core_ptr).nlanes.store(1, Ordering::Release);
            Self::register(core_ptr);
            NonNull::new_unchecked(core_ptr)
        }
    }

    /// A core with no lane yet, for `create` (which adds lane 0) and for the
    /// static [`FALLBACK`].
    const fn blank(
        id: u64,
        cfg: &Config,
        this: *const ArenaCore,
        home: *mut ChunkHeader,
        map_len: usize,
    ) -> ArenaCore {
        ArenaCore {
            id,
            generation: AtomicU64::new(0),
            checkpoints: SpinLock::new(CheckpointList::new()),
            lanes: [const { AtomicPtr::new(ptr::null_mut()) }; MAX_LANES],
            nlanes: AtomicUsize::new(0),
            max_lanes: cfg.max_lanes,
            policy: cfg.policy,
            warned: AtomicBool::new(false),
            guard: cfg.guard,
            capacity: cfg.capacity,
            held: AtomicUsize::new(0),
            chunk_size: cfg.chunk_size,
            retain: cfg.retain,
            initial_capacity: cfg.initial_capacity,
            track_sites: cfg.track_sites,
            shared: cfg.shared,
            orphan_live: AtomicI64::new(0),
            home,
            map_len,
            counters: Counters::new(),
            spill_lane: Lane::new(this, 0, true),
            handles: AtomicUsize::new(1),
            spill_regions: AtomicUsize::new(0),
            registry_prev: AtomicPtr::new(ptr::null_mut()),
            registry_next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Counts one more handle (a new `Region`). The caller holds a handle or
    /// is inside a region of the core, so the core is alive.
    pub(crate) fn add_handle(&self) {
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one handle less. Returns true for the last one: the caller
    /// must then close the core.
    pub(crate) fn drop_handle(&self) -> bool {
        self.handles.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Whether this is the shared core of degraded arenas (see [`FALLBACK`]).
    #[inline]
    pub(crate) fn is_fallback(&self) -> bool {
        ptr::eq(self, &FALLBACK)
    }

    #[inline]
    fn lane(&self, i: usize) -> &Lane {
        // SAFETY: lanes below `nlanes` are initialised and live as long as
        // the core.
        unsafe { &*self.lanes[i].load(Ordering::Acquire) }
    }

    fn lane_count(&self) -> usize {
        self.nlanes.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn bump_generation(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Brings `lane`'s boundaries up to date.
    ///
    /// # Safety
    /// `lane` is one of this core's lanes and the calling thread holds its
    /// claim.
    pub(crate) unsafe fn sync_lane(&self, lane: &Lane) {
        let checkpoints = self.checkpoints.lock();
        // SAFETY: guaranteed by the caller.
        unsafe { lane.sync(&checkpoints, self.generation()) };
    }

    /// Whether the arena has a capacity limit
    /// ([`ArenaBuilder::capacity_limit`](crate::ArenaBuilder::capacity_limit)).
    #[inline]
    pub(crate) fn is_capped(&self) -> bool {
        self.capacity != usize::MAX
    }

    /// Takes a chunk of at least `want` bytes for `lane`, within capacity.
    pub(crate) fn acquire_chunk(&self, want: usize, lane: *mut Lane) -> *mut ChunkHeader {
        let Some(class) = space::class_for(want) else {
            return ptr::null_mut();
        };
        let size = SLAB << class;
        let mut held = self.held.load(Ordering::Relaxed);
        loop {
            match held.checked_add(size) {
                Some(n) if n <= self.capacity => {}
                _ => return ptr::null_mut(),
            }
            match self.held.compare_exchange_weak(
                held,
                held + size,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(h) => held = h,
            }
        }
        let chunk = space::acquire(size, lane.cast());
        if chunk.is_null() {
            self.held.fetch_sub(size, Ordering::Relaxed);
            return ptr::null_mut();
        }
        // SAFETY: the chunk was just acquired for `lane`.
        let actual = unsafe { (*chunk).size };
        if actual > size {
            self.held.fetch_add(actual - size, Ordering::Relaxed);
        }
        chunk
    }

    /// Accounts for chunks a lane gave back to the space (trimming).
    pub(crate) fn chunks_released(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::Relaxed);
        self.counters
            .trimmed
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts a request that went to the inner allocator: as a spill if it
    /// was served, as a failed spill if the inner allocator returned null.
    pub(crate) fn record_spill(&self, bytes: usize, served: bool) {
        if !served {
            self.counters.failed_spills.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.counters.spills.fetch_add(1, Ordering::Relaxed);
        self.counters
            .spilled_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Runs `f` on every lane that thread `tid` can claim for a moment (a
    /// service claim, given back afterwards) and, if `own` is
    /// [`OwnRegions::Include`], on the lanes `tid` holds for its own regions.
    /// Returns how many lanes were skipped because a region holds them.
    /// While `f` runs, the calling thread holds the lane's claim.
    fn for_each_claimable_lane(&self, tid: u64, own: OwnRegions, mut f: impl FnMut(&Lane)) -> u32 {
        let mut busy = 0;
        for i in 0..self.lane_count() {
            let lane = self.lane(i);
            let claim = lane.try_service_claim(tid);
            if claim == Claim::Busy || (claim == Claim::Already && own == OwnRegions::Busy) {
                busy += 1;
                continue;
            }
            f(lane);
            if claim == Claim::Taken {
                // SAFETY: this thread took the claim just above.
                unsafe { lane.release_claim() };
            }
        }
        busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn config(max_lanes: usize) -> Config {
        Config {
            capacity: usize::MAX,
            chunk_size: 256 << 10,
            policy: EscapePolicy::Keep,
            max_lanes,
            guard: false,
            retain: Retain::Auto { max: usize::MAX },
            initial_capacity: 0,
            track_sites: false,
            shared: true,
        }
    }

    #[test]
    fn a_region_waits_for_a_lane_held_by_a_snapshot_instead_of_spilling() {
        let core_ptr = ArenaCore::create(&config(1));
        // SAFETY: the core lives until `close` below.
        let core = unsafe { core_ptr.as_ref() };
        let lane = core.lane(0);
        assert_eq!(lane.try_service_claim(1000), Claim::Taken);
        let started = AtomicBool::new(false);
        let got = std::thread::scope(|s| {
            let h = s.spawn(|| {
                started.store(true, Ordering::SeqCst);
                core.enter(2000) as usize
            });
            while !started.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            // SAFETY: this thread took the service claim above.
            unsafe { lane.release_claim() };
            h.join().unwrap()
        });
        assert_eq!(
            got, lane as *const Lane as usize,
            "the region spilled instead of waiting"
        );
        assert_eq!(lane.owner(), 2000);
        // SAFETY: ends the region entered for "thread 2000" (a made-up id:
        // the spawned thread has finished and nothing else uses the lane).
        unsafe { core.exit(lane) };
        // SAFETY: no region is active and nothing was allocated.
        unsafe { ArenaCore::close(core_ptr.as_ptr(), 1) };
    }

    #[test]
    fn a_region_does_not_wait_for_a_lane_held_by_another_region() {
        let core_ptr = ArenaCore::create(&config(1));
        // SAFETY: the core lives until `close` below.
        let core = unsafe { core_ptr.as_ref() };
        let lane = core.lane(0);
        assert_eq!(lane.try_claim(1000), Claim::Taken);
        let got = core.enter(2000);
        assert!(ptr::eq(got, &core.spill_lane));
        // SAFETY: ends the spill region just entered, and gives back the
        // claim this thread took above.
        unsafe {
            core.exit(&*got);
            lane.release_claim();
        }
        // SAFETY: as above.
        unsafe { ArenaCore::close(core_ptr.as_ptr(), 1) };
    }
}
