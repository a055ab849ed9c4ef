//! The shared state behind an [`Arena`](crate::Arena) or
//! [`LockedArena`](crate::LockedArena): its lanes, its list of active
//! checkpoints, its counters, and its life cycle (creation, drop, and the
//! *orphan* state in which a dropped arena waits for its last live blocks).
//!
//! The core lives inside the arena's first chunk (or, if the address space
//! cannot provide one, in a small separate mapping), never in memory from the
//! global allocator: it must outlive the `Arena` handle for as long as any of
//! its blocks is live, and it is freed from inside `dealloc`.

use core::mem::size_of;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use crate::ResetError;
use crate::lane::{Claim, Lane, LaneStats};
use crate::report::{EscapePolicy, ResetReport};
use crate::space::{self, ChunkHeader, HEADER, SLAB};
use crate::spin::SpinLock;
use crate::stats::ArenaStats;
use crate::sys;

/// Active checkpoints an arena tracks at once; deeper ones are untracked
/// (their reset reclaims nothing).
pub(crate) const MAX_CPS: usize = 64;
/// Lanes (threads inside a region at once) a locked arena can have.
pub(crate) const MAX_LANES: usize = 256;

#[derive(Clone, Copy, Default)]
struct CpRecord {
    serial: u64,
    /// Thread that took it (to tell an out-of-order reset from a concurrent one).
    tid: u64,
}

/// The arena's list of active checkpoints, oldest first. Guarded by the
/// core's spin lock.
pub(crate) struct Control {
    cps: [CpRecord; MAX_CPS],
    n: usize,
    next_serial: u64,
}

impl Control {
    pub(crate) fn is_active(&self, serial: u64) -> bool {
        self.cps[..self.n].iter().any(|c| c.serial == serial)
    }

    pub(crate) fn serials(&self) -> impl Iterator<Item = u64> + '_ {
        self.cps[..self.n].iter().map(|c| c.serial)
    }

    pub(crate) fn last_serial(&self) -> u64 {
        self.next_serial - 1
    }

    fn position(&self, serial: u64) -> Option<usize> {
        self.cps[..self.n].iter().position(|c| c.serial == serial)
    }

    fn remove(&mut self, idx: usize) {
        self.cps.copy_within(idx + 1..self.n, idx);
        self.n -= 1;
    }
}

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
    },
    &raw const FALLBACK,
    ptr::null_mut(),
    0,
);

/// Every live core, linked through `ArenaCore::registry_next`, so that the
/// fork handlers can hold every core's lock across `fork()` (see
/// `crate::fork`). The lock also covers the space's initialisation.
static REGISTRY: SpinLock<Registry> = SpinLock::new(Registry(ptr::null()));

struct Registry(*const ArenaCore);
// SAFETY: the pointer is only followed under the registry lock, and the cores
// it reaches are `Sync`.
unsafe impl Send for Registry {}

#[repr(C, align(128))]
pub(crate) struct ArenaCore {
    pub(crate) id: u64,
    /// Bumped whenever the checkpoint list changes; lanes compare it with the
    /// generation they last synced with.
    generation: AtomicU64,
    control: SpinLock<Control>,
    lanes: [AtomicPtr<Lane>; MAX_LANES],
    nlanes: AtomicUsize,
    max_lanes: usize,
    pub(crate) policy: EscapePolicy,
    /// Guard mode: poison and protect what resets reclaim.
    pub(crate) guard: bool,
    capacity: usize,
    /// Bytes of chunks this arena holds (checked against `capacity`).
    held: AtomicUsize,
    chunk_size: usize,
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
const LANE_MAP_LEN: usize = size_of::<Lane>().next_multiple_of(sys::PAGE);

impl ArenaCore {
    /// Creates an arena core. Called from `Arena::new` and friends, never
    /// from the allocator path.
    pub(crate) fn create(cfg: &Config) -> NonNull<ArenaCore> {
        {
            // Under the registry lock, so that `fork()` never happens halfway
            // through the space's initialisation.
            let _registry = REGISTRY.lock();
            space::init();
            crate::fork::install_handlers();
        }
        if cfg.guard {
            crate::guard::install_handler();
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
            let len = (core_size + lane_size).next_multiple_of(sys::PAGE);
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
            control: SpinLock::new(Control {
                cps: [CpRecord { serial: 0, tid: 0 }; MAX_CPS],
                n: 0,
                next_serial: 1,
            }),
            lanes: [const { AtomicPtr::new(ptr::null_mut()) }; MAX_LANES],
            nlanes: AtomicUsize::new(0),
            max_lanes: cfg.max_lanes,
            policy: cfg.policy,
            guard: cfg.guard,
            capacity: cfg.capacity,
            held: AtomicUsize::new(0),
            chunk_size: cfg.chunk_size,
            orphan_live: AtomicI64::new(0),
            home,
            map_len,
            counters: Counters::new(),
            spill_lane: Lane::new(this, 0, true),
            spill_regions: AtomicUsize::new(0),
            registry_prev: AtomicPtr::new(ptr::null_mut()),
            registry_next: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Whether this is the shared core of degraded arenas (see [`FALLBACK`]).
    #[inline]
    pub(crate) fn is_fallback(&self) -> bool {
        ptr::eq(self, &FALLBACK)
    }

    /// Adds a fully built core to the registry.
    fn register(this: *mut ArenaCore) {
        let mut reg = REGISTRY.lock();
        let head = reg.0.cast_mut();
        // SAFETY: `this` is a live core not yet in the registry; `head`, if
        // any, is a live core in it; both links are only used under the lock.
        unsafe {
            (*this).registry_next.store(head, Ordering::Relaxed);
            if !head.is_null() {
                (*head).registry_prev.store(this, Ordering::Relaxed);
            }
        }
        reg.0 = this;
    }

    /// Removes a core from the registry, before it is destroyed.
    fn unregister(this: *const ArenaCore) {
        let mut reg = REGISTRY.lock();
        // SAFETY: `this` is in the registry, so it and its neighbours are
        // live cores; the links are only used under the lock.
        unsafe {
            let prev = (*this).registry_prev.load(Ordering::Relaxed);
            let next = (*this).registry_next.load(Ordering::Relaxed);
            if prev.is_null() {
                reg.0 = next;
            } else {
                (*prev).registry_next.store(next, Ordering::Relaxed);
            }
            if !next.is_null() {
                (*next).registry_prev.store(prev, Ordering::Relaxed);
            }
        }
    }

    /// Before `fork()`: takes the registry lock and then every live core's
    /// lock, and keeps them, so that no thread is inside one of bumper's
    /// critical sections (checkpoint list, lane creation, a reset's or a
    /// snapshot's short lane claims, the space's initialisation) while the
    /// process is copied. A critical section never takes a second lock, so
    /// waiting for each in turn cannot deadlock.
    pub(crate) fn lock_all_for_fork() {
        REGISTRY.lock_raw();
        // SAFETY: this thread holds the registry lock until `unlock_all_after_fork`.
        let mut c = unsafe { (*REGISTRY.data_ptr()).0 };
        while !c.is_null() {
            // SAFETY: cores in the registry are live, and none can be
            // destroyed while the registry lock is held.
            unsafe {
                (*c).control.lock_raw();
                c = (*c).registry_next.load(Ordering::Relaxed);
            }
        }
    }

    /// After `fork()`, in the parent and in the child: releases what
    /// [`ArenaCore::lock_all_for_fork`] took. In the child, the forking thread
    /// is the only thread, and it holds every one of these locks.
    ///
    /// # Safety
    /// The calling thread must have called `lock_all_for_fork` (or be the
    /// child-process copy of the thread that did), with no call in between.
    pub(crate) unsafe fn unlock_all_after_fork() {
        // SAFETY: this thread holds the registry lock (caller contract).
        let mut c = unsafe { (*REGISTRY.data_ptr()).0 };
        while !c.is_null() {
            // SAFETY: as in `lock_all_for_fork`; this thread holds the lock.
            unsafe {
                (*c).control.force_unlock();
                c = (*c).registry_next.load(Ordering::Relaxed);
            }
        }
        // SAFETY: as above.
        unsafe { REGISTRY.force_unlock() };
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

    /// Brings `lane`'s boundaries up to date. Called by the lane's owner.
    pub(crate) fn sync_lane(&self, lane: &Lane) {
        let ctl = self.control.lock();
        lane.sync(&ctl, self.generation());
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
        let chunk = space::acquire(size, lane);
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

    // ------------------------------------------------------------------
    // regions
    // ------------------------------------------------------------------

    /// Gives thread `tid` a lane for a region: the one it already holds, a
    /// free one, a new one, or (all taken) the spill lane.
    pub(crate) fn enter(&self, tid: u64) -> *const Lane {
        let n = self.lane_count();
        for i in 0..n {
            let lane = self.lane(i);
            if lane.owner() == tid {
                lane.depth().set(lane.depth().get() + 1);
                return lane;
            }
        }
        let backoff = crossbeam_utils::Backoff::new();
        loop {
            let n = self.lane_count();
            let mut serviced = false;
            for j in 0..n {
                let lane = self.lane((tid as usize).wrapping_add(j) % n);
                match lane.try_claim(tid) {
                    Claim::Taken => return self.entered(lane),
                    // Held by a service claim, or given back just now.
                    _ => serviced |= lane.is_service_claimed() || lane.owner() == 0,
                }
            }
            if n < self.max_lanes
                && let Some(lane) = self.new_lane(tid)
            {
                return self.entered(lane);
            }
            // A lane held only briefly by a reset or a snapshot is worth
            // waiting for: those never allocate, call user code or wait for
            // another lane, so they end soon. A lane held by another
            // region is not.
            if !serviced {
                break;
            }
            backoff.snooze();
        }
        self.counters
            .lanes_exhausted
            .fetch_add(1, Ordering::Relaxed);
        self.spill_regions.fetch_add(1, Ordering::AcqRel);
        &self.spill_lane
    }

    fn entered<'a>(&self, lane: &'a Lane) -> &'a Lane {
        lane.depth().set(1);
        if lane.seen_gen() != self.generation() {
            self.sync_lane(lane);
        }
        lane
    }

    /// Creates a lane already claimed by `tid`.
    fn new_lane(&self, tid: u64) -> Option<&Lane> {
        let _ctl = self.control.lock();
        let n = self.lane_count();
        if n >= self.max_lanes {
            return None;
        }
        let lane_size = size_of::<Lane>();
        let home = self.acquire_chunk(HEADER + lane_size + 1024, ptr::null_mut());
        let place = if !home.is_null() {
            // SAFETY: a fresh chunk owned by this function.
            unsafe {
                let start = HEADER + lane_size;
                (*home).start.set(start);
                let clean = (*home).clean_from.get().max(start);
                (*home).clean_from.set(clean);
            }
            home.cast::<u8>().wrapping_add(HEADER).cast::<Lane>()
        } else {
            let m = sys::map(LANE_MAP_LEN);
            if m.is_null() {
                return None;
            }
            m.cast::<Lane>()
        };
        // SAFETY: `place` is fresh, aligned, writable memory that lives until
        // `destroy`; `home` (if any) was acquired for this lane.
        unsafe {
            Lane::init(place, self, home, self.chunk_size, false);
            let lane = &*place;
            assert_eq!(lane.try_claim(tid), Claim::Taken);
            self.lanes[n].store(place, Ordering::Release);
            self.nlanes.store(n + 1, Ordering::Release);
            Some(lane)
        }
    }

    /// Ends a region on `lane`.
    pub(crate) fn exit(&self, lane: &Lane) {
        if lane.is_spill_only() {
            self.spill_regions.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let d = lane.depth().get() - 1;
        lane.depth().set(d);
        if d == 0 {
            lane.release_claim();
        }
    }

    // ------------------------------------------------------------------
    // checkpoints
    // ------------------------------------------------------------------

    /// Records a checkpoint for thread `tid`. Returns its serial, or 0 if too
    /// many are active (an untracked checkpoint).
    pub(crate) fn checkpoint(&self, tid: u64) -> u64 {
        if self.is_fallback() {
            // Shared by unrelated arenas: their checkpoints must not order
            // each other. Nothing is ever bumped there, so nothing is lost.
            self.counters.untracked.fetch_add(1, Ordering::Relaxed);
            return 0;
        }
        let mut ctl = self.control.lock();
        if ctl.n == MAX_CPS {
            self.counters.untracked.fetch_add(1, Ordering::Relaxed);
            return 0;
        }
        let serial = ctl.next_serial;
        ctl.next_serial += 1;
        let n = ctl.n;
        ctl.cps[n] = CpRecord { serial, tid };
        ctl.n += 1;
        self.bump_generation();
        // The caller's own lane gets its boundary now; other lanes when they
        // next sync (they cannot have allocated in between without syncing
        // unless they were busy, which only makes their boundary later).
        for i in 0..self.lane_count() {
            let lane = self.lane(i);
            if lane.owner() == tid {
                lane.sync(&ctl, self.generation());
            }
        }
        serial
    }

    /// Forgets a checkpoint without resetting (its token was dropped).
    pub(crate) fn discard(&self, serial: u64) {
        if serial == 0 {
            return;
        }
        let mut ctl = self.control.lock();
        if let Some(idx) = ctl.position(serial) {
            ctl.remove(idx);
            self.bump_generation();
        }
    }

    /// Resets to checkpoint `serial` (`None`: to the start of the arena).
    pub(crate) fn reset(&self, serial: Option<u64>, tid: u64) -> Result<ResetReport, ResetError> {
        let mut ctl = self.control.lock();
        let mut report = ResetReport::default();
        let newer = match serial {
            Some(0) => {
                report.untracked = true;
                return Ok(report);
            }
            Some(s) => {
                let idx = ctl.position(s).ok_or(ResetError::Stale)?;
                idx + 1..ctl.n
            }
            None => 0..ctl.n,
        };
        if !newer.is_empty() {
            let mine = ctl.cps[newer.clone()]
                .iter()
                .filter(|c| c.tid == tid)
                .count();
            let others = newer.len() - mine;
            if let Some(s) = serial {
                let idx = newer.start - 1;
                debug_assert_eq!(ctl.cps[idx].serial, s);
                ctl.remove(idx);
                self.bump_generation();
            }
            if mine > 0 {
                return Err(ResetError::OutOfOrder { newer: mine });
            }
            report.concurrent_checkpoints = others as u32;
            self.record(&report);
            return Ok(report);
        }
        let generation = self.generation();
        report.busy_lanes = self.for_each_claimable_lane(tid, OwnRegions::Include, |lane| {
            if lane.seen_gen() != generation {
                lane.sync(&ctl, generation);
            }
            let r = lane.reset(serial);
            report.reclaimed_bytes += r.reclaimed;
            report.escaped_blocks += r.escaped_blocks;
            report.escaped_bytes += r.escaped_bytes;
            report.untracked |= r.untracked;
        });
        if let Some(idx) = serial.and_then(|s| ctl.position(s)) {
            ctl.remove(idx);
            self.bump_generation();
        }
        drop(ctl);
        self.record(&report);
        Ok(report)
    }

    fn record(&self, r: &ResetReport) {
        let c = &self.counters;
        c.resets.fetch_add(1, Ordering::Relaxed);
        c.reclaimed.fetch_add(r.reclaimed_bytes, Ordering::Relaxed);
        if r.escaped() {
            c.escapes.fetch_add(1, Ordering::Relaxed);
            c.escaped_blocks
                .fetch_add(r.escaped_blocks, Ordering::Relaxed);
            c.escaped_bytes
                .fetch_add(r.escaped_bytes, Ordering::Relaxed);
            if r.busy_lanes > 0 || r.concurrent_checkpoints > 0 {
                c.contended.fetch_add(1, Ordering::Relaxed);
            }
        }
        if r.untracked {
            c.untracked.fetch_add(1, Ordering::Relaxed);
        }
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
                lane.release_claim();
            }
        }
        busy
    }

    // ------------------------------------------------------------------
    // statistics
    // ------------------------------------------------------------------

    pub(crate) fn stats(&self, tid: u64) -> ArenaStats {
        let ctl = self.control.lock();
        let mut sum = LaneStats::default();
        let n = self.lane_count();
        let busy = self.for_each_claimable_lane(tid, OwnRegions::Include, |lane| {
            let s = lane.stats();
            sum.allocs += s.allocs;
            sum.bytes += s.bytes;
            sum.in_use += s.in_use;
            sum.peak += s.peak;
            sum.live_blocks += s.live_blocks;
            sum.live_bytes += s.live_bytes;
            sum.chunk_bytes += s.chunk_bytes;
            sum.chunks += s.chunks;
        });
        let active = ctl.n as u32;
        drop(ctl);
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ArenaStats {
            arena_id: self.id,
            allocations: sum.allocs,
            bytes_allocated: sum.bytes,
            bytes_in_use: sum.in_use,
            peak_bytes_in_use: sum.peak,
            live_blocks: sum.live_blocks,
            live_bytes: sum.live_bytes,
            spills: load(&c.spills),
            spilled_bytes: load(&c.spilled_bytes),
            failed_spills: load(&c.failed_spills),
            resets: load(&c.resets),
            bytes_reclaimed: load(&c.reclaimed),
            escapes: load(&c.escapes),
            escaped_blocks: load(&c.escaped_blocks),
            escaped_bytes: load(&c.escaped_bytes),
            contended_resets: load(&c.contended),
            untracked_checkpoints: load(&c.untracked),
            chunk_bytes: self.held.load(Ordering::Relaxed) as u64,
            chunks: sum.chunks,
            capacity_limit: (self.capacity != usize::MAX).then_some(self.capacity as u64),
            lanes: n as u32,
            busy_lanes: busy,
            lanes_exhausted: load(&c.lanes_exhausted),
            active_checkpoints: active,
        }
    }

    // ------------------------------------------------------------------
    // life cycle
    // ------------------------------------------------------------------

    /// Called when the arena handle is dropped. Resets every lane and frees
    /// everything if no block is live. Otherwise the core becomes an
    /// *orphan*: the chunks holding live blocks stay mapped, later frees
    /// count down `orphan_live`, and the last one destroys the core. Returns
    /// what was still live.
    ///
    /// A region of the arena still active on another thread (possible only
    /// through `exit()` running thread-local destructors, or a thread that
    /// died inside a region) makes the core stay for good instead.
    ///
    /// # Safety
    /// `this` must be a live core whose handle is being dropped, and the
    /// calling thread must have ended its own regions of it
    /// (`scope::detach_arena`).
    pub(crate) unsafe fn close(this: *const ArenaCore, tid: u64) -> ResetReport {
        let mut report = ResetReport::default();
        let stuck;
        let live;
        {
            // SAFETY: the core is live (caller contract).
            let core = unsafe { &*this };
            let ctl = core.control.lock();
            let generation = core.generation();
            let mut blocks = 0i64;
            // A lane this thread still holds for a region counts as busy: the
            // arena's handle drops `detach_arena` this thread's regions first,
            // so one left here can only be a bug, and keeping the arena is
            // the safe answer to it.
            let busy = core.for_each_claimable_lane(tid, OwnRegions::Busy, |lane| {
                lane.sync(&ctl, generation);
                let r = lane.reset(None);
                // Close the remote list only now: later frees of this
                // arena's blocks count down `orphan_live`. Frees that
                // arrived since the reset are drained by `close`, so the
                // live count below is exact.
                lane.close();
                let (live_blocks, live_bytes) = lane.live();
                report.reclaimed_bytes += r.reclaimed;
                report.escaped_blocks += live_blocks;
                report.escaped_bytes += live_bytes;
                blocks += live_blocks as i64;
                let freed = lane.release_spares();
                core.held.fetch_sub(freed, Ordering::Relaxed);
            });
            // A busy lane, or a region running on the spill lane, means a
            // region of this arena is still active on some thread. Safe code
            // gets here only when that region can never end normally: the
            // arena was dropped by a thread-local destructor that `exit()`
            // ran while another thread was inside a region, or a thread died
            // inside one. The route of that thread still names this core, so
            // the core and every chunk it holds are kept for good.
            stuck = busy > 0 || core.spill_regions.load(Ordering::Acquire) > 0;
            drop(ctl);
            live = blocks;
        }
        if stuck {
            return report;
        }
        if live == 0 {
            // SAFETY: no block is live and the handle is gone.
            unsafe { Self::destroy(this) };
            return report;
        }
        // SAFETY: the core stays live until `orphan_live` reaches zero, which
        // needs this addition.
        let prev = unsafe { (*this).orphan_live.fetch_add(live, Ordering::AcqRel) };
        if prev + live == 0 {
            // SAFETY: every live block was freed meanwhile.
            unsafe { Self::destroy(this) };
        }
        report
    }

    /// A block of a dropped arena was freed.
    ///
    /// # Safety
    /// `this` must be an orphaned core, and the block must have been live.
    pub(crate) unsafe fn orphan_free(this: *const ArenaCore) {
        // SAFETY: the core is live while one of its blocks is.
        let prev = unsafe { (*this).orphan_live.fetch_sub(1, Ordering::AcqRel) };
        if prev == 1 {
            // SAFETY: that was the last live block.
            unsafe { Self::destroy(this) };
        }
    }

    /// Gives every chunk and mapping of the arena back.
    ///
    /// # Safety
    /// No block of the arena may be live and no handle may exist.
    unsafe fn destroy(this: *const ArenaCore) {
        Self::unregister(this);
        // SAFETY: the core is live until the very end of this function; each
        // lane's memory is released only after its last use.
        unsafe {
            let n = (*this).lane_count();
            let home = (*this).home;
            let map_len = (*this).map_len;
            for i in (0..n).rev() {
                let lane = (*this).lanes[i].load(Ordering::Acquire);
                (*lane).release_chunks();
                if i > 0 {
                    let lane_home = (*lane).home();
                    if lane_home.is_null() {
                        sys::unmap(lane.cast(), LANE_MAP_LEN);
                    } else {
                        space::release(lane_home);
                    }
                }
            }
            if home.is_null() {
                sys::unmap(this as *mut u8, map_len);
            } else {
                space::release(home);
            }
        }
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
            lane.release_claim();
            h.join().unwrap()
        });
        assert_eq!(
            got, lane as *const Lane as usize,
            "the region spilled instead of waiting"
        );
        assert_eq!(lane.owner(), 2000);
        core.exit(lane);
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
        lane.release_claim();
        // SAFETY: as above.
        unsafe { ArenaCore::close(core_ptr.as_ptr(), 1) };
    }
}
