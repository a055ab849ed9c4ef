//! SAFETY.md §14, regions that follow async tasks: futures wrapped with
//! `bumper::in_region` allocate from their region on whichever tokio worker
//! polls them, and only there; futures that are not wrapped, polled on the
//! same workers, allocate from the heap; an arena per request, reset after
//! each, serves 10,000 requests without losing one or growing; and
//! `tokio::spawn` inside a region does not carry the region into the
//! spawned task (only the spawn's own bookkeeping is allocated there). By
//! hand, without a runtime: a poll restores the route that was active
//! before it, also when it panics, and an unfinished future is dropped
//! inside its region, on whichever thread drops it.
//!
//! Why the runtime is warmed up first. tokio's `yield_now` does not wake
//! the task at once: it pushes the task's waker onto a list of its worker
//! (a `Vec<Waker>`, created empty when the worker starts), which the worker
//! drains, keeping its capacity, when it runs out of work. When a push finds
//! the list full, the `Vec` grows, and if that happens inside a wrapped
//! poll, the new buffer comes from the task's arena: a block of the
//! runtime's, not of the task's, which would spoil the exact counts below
//! (and would outlive the task's region, kept for good as any escape). So
//! before any wrapped task runs, [`warm_up`] grows every worker's list to
//! room for more wakers than the test has tasks: one unwrapped task per
//! worker pushes [`DEFER_ROOM`] distinct wakers onto its worker's list, and
//! the tasks meet at a barrier, which proves they ran on distinct workers,
//! hence on all of them. A task is on at most one such list at a time, so
//! no list grows again. Nothing else tokio does inside a poll here
//! (scheduling, wakers, timers) allocates; the exact counts below check
//! that too.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

#[global_allocator]
static GLOBAL: bumper::Bumper = bumper::Bumper::system();

mod common;

use bumper::{Arena, LockedArena, Region, in_arena, in_region, is_arena_pointer, with_bumper};
use common::Rng;
use common::pattern::{check, filled};
use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::task::{Context, Wake, Waker};
use std::thread::ThreadId;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::task::yield_now;
use tokio::time::sleep;

const WORKERS: usize = 4;

/// Room for wakers that [`warm_up`] makes on every worker's list of
/// deferred wakers: more than any test here has tasks alive at once.
const DEFER_ROOM: usize = 1024;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_time()
        .build()
        .expect("a tokio runtime")
}

/// A waker that does nothing, distinct from every other one (tokio skips a
/// waker equal to the last one on the list).
struct Nop;

impl Wake for Nop {
    fn wake(self: Arc<Self>) {}
}

/// Pushes `n` distinct wakers onto the deferred-waker list of the worker
/// that runs this, so that the list has room for at least `n` afterwards.
fn grow_defer_list(n: usize) {
    let wakers: Vec<Waker> = (0..n).map(|_| Waker::from(Arc::new(Nop))).collect();
    for w in &wakers {
        let mut yielded = pin!(yield_now());
        let mut cx = Context::from_waker(w);
        assert!(yielded.as_mut().poll(&mut cx).is_pending());
    }
}

/// Grows the deferred-waker list of every worker of `rt` (see the header).
fn warm_up(rt: &Runtime) {
    let met = Arc::new(Barrier::new(WORKERS));
    let ids: HashSet<ThreadId> = rt.block_on(async {
        let tasks: Vec<_> = (0..WORKERS)
            .map(|_| {
                let met = Arc::clone(&met);
                tokio::spawn(async move {
                    grow_defer_list(DEFER_ROOM);
                    // Blocks the worker: the others must each run one of
                    // these tasks for all of them to get past it.
                    met.wait();
                    std::thread::current().id()
                })
            })
            .collect();
        let mut ids = HashSet::new();
        for t in tasks {
            ids.insert(t.await.expect("a warm-up task failed"));
        }
        ids
    });
    assert_eq!(ids.len(), WORKERS, "the warm-up did not reach every worker");
}

fn round8(n: usize) -> u64 {
    n.next_multiple_of(8) as u64
}

/// The sizes of the blocks task `id` allocates.
fn block_lens(id: u64, steps: usize) -> Vec<usize> {
    let mut rng = Rng::new(id);
    (0..steps).map(|_| 1 + rng.below(3000)).collect()
}

/// The pattern id of block `step` of task `id`.
fn pattern_id(id: u64, step: usize) -> u64 {
    id << 16 | step as u64
}

/// Resumes `await` number `step` with a yield or a timer, both of which
/// let the task move to another worker.
async fn pause(step: usize) {
    if step % 3 == 2 {
        sleep(Duration::from_millis(1)).await;
    } else {
        yield_now().await;
    }
}

/// The work of a wrapped task: keeps every block it allocates and checks,
/// after each await, on whichever worker it is on now, that it is still in
/// its arena's region and that the arena holds exactly its blocks. Pushes
/// the thread of each resumption onto `threads` (made outside the region
/// with room for all of them, so pushing allocates nothing).
async fn wrapped_work(
    id: u64,
    arena_id: u64,
    steps: usize,
    mut threads: Vec<ThreadId>,
) -> Vec<ThreadId> {
    let lens = block_lens(id, steps); // arena: 1 block
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(steps); // arena: 1 block
    let mut want_bytes =
        round8(lens.len() * size_of::<usize>()) + round8(steps * size_of::<Vec<u8>>());
    threads.push(std::thread::current().id());
    for (step, &len) in lens.iter().enumerate() {
        let b = filled(len, pattern_id(id, step));
        assert!(
            is_arena_pointer(b.as_ptr()),
            "task {id}: block {step} on the heap"
        );
        blocks.push(b);
        want_bytes += round8(len);
        pause(step).await;
        threads.push(std::thread::current().id());
        let region = Region::current().expect("a wrapped task outside its region after an await");
        assert_eq!(
            region.arena_id(),
            arena_id,
            "task {id}: in another task's region"
        );
        let s = region.stats();
        assert_eq!(
            s.live_blocks,
            2 + blocks.len() as u64,
            "task {id}, step {step}: {s}"
        );
        assert_eq!(s.live_bytes, want_bytes, "task {id}, step {step}: {s}");
        for (k, b) in blocks.iter().enumerate() {
            assert!(is_arena_pointer(b.as_ptr()));
            check(b, pattern_id(id, k), format_args!("task {id}, block {k}"));
        }
    }
    drop(blocks);
    drop(lens);
    let s = Region::current().expect("in the region").stats();
    assert_eq!((s.live_blocks, s.live_bytes), (0, 0), "task {id}: {s}");
    threads
}

/// The work of a task that is not wrapped: the same awaits, and every
/// allocation on the heap. Pushes the thread of each resumption onto
/// `threads`.
async fn plain_work(id: u64, steps: usize, mut threads: Vec<ThreadId>) -> Vec<ThreadId> {
    threads.push(std::thread::current().id());
    let mut blocks = Vec::with_capacity(steps);
    for step in 0..steps {
        let b = filled(1 + step * 7, pattern_id(id, step));
        assert!(
            !is_arena_pointer(b.as_ptr()),
            "plain task {id}: block {step} in an arena"
        );
        blocks.push(b);
        pause(step).await;
        threads.push(std::thread::current().id());
        assert!(
            Region::current().is_none(),
            "plain task {id}: inside a region"
        );
        for (k, b) in blocks.iter().enumerate() {
            check(
                b,
                pattern_id(id, k),
                format_args!("plain task {id}, block {k}"),
            );
        }
    }
    threads
}

/// How many times consecutive resumptions ran on different threads.
fn migrations(threads: &[ThreadId]) -> usize {
    threads.windows(2).filter(|w| w[0] != w[1]).count()
}

#[test]
fn tasks_in_their_own_locked_arenas_allocate_only_from_them_on_every_worker() {
    const TASKS: usize = 64;
    const PLAIN: usize = 32;
    const STEPS: usize = 12;
    let rt = runtime();
    warm_up(&rt);
    let arenas: Vec<LockedArena> = (0..TASKS).map(|_| LockedArena::new()).collect();
    let (wrapped, plain) = rt.block_on(async {
        let mut wrapped = Vec::with_capacity(TASKS);
        let mut plain = Vec::with_capacity(PLAIN);
        for (i, arena) in arenas.iter().enumerate() {
            let work = wrapped_work(i as u64, arena.id(), STEPS, Vec::with_capacity(STEPS + 1));
            wrapped.push(tokio::spawn(in_region(arena.region(), work)));
            if i % 2 == 0 {
                let work = plain_work(1000 + i as u64, STEPS, Vec::with_capacity(STEPS + 1));
                plain.push(tokio::spawn(work));
            }
        }
        let mut w = Vec::with_capacity(TASKS);
        for t in wrapped {
            w.push(t.await.expect("a wrapped task failed"));
        }
        let mut p = Vec::with_capacity(PLAIN);
        for t in plain {
            p.push(t.await.expect("a plain task failed"));
        }
        (w, p)
    });
    // Every arena's counters are exact after its task ended: the task's
    // blocks, its vector of them and its list of sizes, all freed; one lane,
    // since one thread at a time polls the task, whichever it is.
    for (i, arena) in arenas.iter().enumerate() {
        let lens = block_lens(i as u64, STEPS);
        let bytes =
            lens.iter().sum::<usize>() + STEPS * (size_of::<usize>() + size_of::<Vec<u8>>());
        let s = arena.stats();
        assert_eq!(s.allocations, STEPS as u64 + 2, "task {i}: {s}");
        assert_eq!(s.bytes_allocated, bytes as u64, "task {i}: {s}");
        assert_eq!(
            (s.live_blocks, s.live_bytes, s.spills),
            (0, 0, 0),
            "task {i}: {s}"
        );
        assert_eq!(s.lanes, 1, "task {i}: {s}");
        assert!(arena.reset().is_clean());
    }
    let wrapped_threads: HashSet<ThreadId> = wrapped.iter().flatten().copied().collect();
    let plain_threads: HashSet<ThreadId> = plain.iter().flatten().copied().collect();
    let moves: usize = wrapped.iter().map(|t| migrations(t)).sum();
    let moved_tasks = wrapped.iter().filter(|t| migrations(t) > 0).count();
    let resumptions = TASKS * STEPS;
    // Reported, not asserted: how often tasks moved depends on scheduling.
    println!(
        "wrapped tasks: {moves} migrations in {resumptions} resumptions, {moved_tasks} of \
         {TASKS} tasks moved at least once, polled on {} workers; plain tasks on {} workers, \
         {} shared with wrapped ones",
        wrapped_threads.len(),
        plain_threads.len(),
        wrapped_threads.intersection(&plain_threads).count()
    );
    assert!(wrapped_threads.len() <= WORKERS && plain_threads.len() <= WORKERS);
}

#[test]
fn a_wrapped_and_a_plain_future_polled_in_the_same_task_keep_their_routes() {
    // `tokio::join!` polls both futures in every poll of one task, one right
    // after the other on the same thread: if the wrapped one left its region
    // active, the plain one would allocate from it.
    const TASKS: usize = 16;
    const STEPS: usize = 9;
    let rt = runtime();
    warm_up(&rt);
    let arenas: Vec<LockedArena> = (0..TASKS).map(|_| LockedArena::new()).collect();
    let results = rt.block_on(async {
        let tasks: Vec<_> = arenas
            .iter()
            .enumerate()
            .map(|(i, arena)| {
                let wrapped = in_region(
                    arena.region(),
                    wrapped_work(i as u64, arena.id(), STEPS, Vec::with_capacity(STEPS + 1)),
                );
                let plain = plain_work(500 + i as u64, STEPS, Vec::with_capacity(STEPS + 1));
                tokio::spawn(async move { tokio::join!(wrapped, plain) })
            })
            .collect();
        let mut out = Vec::with_capacity(TASKS);
        for t in tasks {
            out.push(t.await.expect("a task failed"));
        }
        out
    });
    for (i, ((wrapped, plain), arena)) in results.iter().zip(&arenas).enumerate() {
        assert_eq!(wrapped.len(), STEPS + 1);
        assert_eq!(plain.len(), STEPS + 1);
        let s = arena.stats();
        assert_eq!(s.allocations, STEPS as u64 + 2, "task {i}: {s}");
        assert_eq!(s.live_blocks, 0, "task {i}: {s}");
    }
}

/// Set once by `Flag::set`, waited for by `Flag::wait`; neither allocates.
#[derive(Default)]
struct Flag {
    set: Mutex<bool>,
    cv: Condvar,
}

impl Flag {
    fn set(&self) {
        *self.set.lock().unwrap() = true;
        self.cv.notify_all();
    }
    fn wait(&self) {
        let mut set = self.set.lock().unwrap();
        while !*set {
            set = self.cv.wait(set).unwrap();
        }
    }
}

#[test]
fn a_task_forced_onto_another_worker_keeps_its_region() {
    // The wrapped task T spawns a blocker B as its last act before it awaits
    // a timer. tokio runs a task spawned from a worker on that same worker
    // next (its LIFO slot, which other workers cannot steal from). If B
    // finds itself on T's worker, it blocks that worker until T has been
    // polled again, so T must resume on another worker: a migration, forced.
    // (B can, rarely, run elsewhere; that attempt forces nothing and another
    // is made.) T's timer is woken by whichever worker holds the timer
    // driver, never by the blocked one.
    const ATTEMPTS: u64 = 50;
    let rt = runtime();
    warm_up(&rt);
    let arena = LockedArena::new();
    let mut forced = 0;
    let mut attempts = 0;
    for attempt in 0..ATTEMPTS {
        attempts += 1;
        let resumed = Arc::new(Flag::default());
        let id = arena.id();
        let task = async move {
            let first = std::thread::current().id();
            let before = filled(1000, attempt);
            let b_resumed = Arc::clone(&resumed);
            let blocker = tokio::spawn(async move {
                let on_first = std::thread::current().id() == first;
                if on_first {
                    b_resumed.wait();
                }
                on_first
            });
            sleep(Duration::from_millis(1)).await;
            let second = std::thread::current().id();
            resumed.set();
            let region = Region::current().expect("outside the region after the move");
            assert_eq!(region.arena_id(), id);
            let after = filled(2000, attempt + 1000);
            assert!(is_arena_pointer(before.as_ptr()) && is_arena_pointer(after.as_ptr()));
            check(&before, attempt, "a block allocated before the move");
            let blocked_first = blocker.await.expect("the blocker failed");
            (first, second, blocked_first)
        };
        let (first, second, blocked_first) = rt.block_on(async {
            tokio::spawn(in_region(arena.region(), task))
                .await
                .expect("the task failed")
        });
        if blocked_first {
            assert_ne!(first, second, "T resumed on the worker that B blocked");
            forced += 1;
            break;
        }
    }
    println!("forced {forced} migration in {attempts} attempt(s) of at most {ATTEMPTS}");
    assert_eq!(
        forced, 1,
        "the blocker never ran on the task's worker in {ATTEMPTS} attempts"
    );
    // The blockers' task cells were allocated in the region (see
    // `tokio_spawn_inside_a_region_runs_the_task_outside_it`); the worker
    // that ran a blocker frees its cell, possibly just after the task read
    // its result. Dropping the runtime waits for the workers to stop.
    drop(rt);
    let s = arena.stats();
    assert_eq!(s.live_blocks, 0, "{s}");
    assert!(arena.reset().is_clean());
}

/// The sum `request(i)` must return.
fn expected_sum(i: u64) -> u64 {
    (0..ITEMS).map(|k| item(i, k)).sum()
}

const ITEMS: u64 = 256;

/// Item `k` of request `i`: always seven digits, so that every request
/// allocates the same sizes.
fn item(i: u64, k: u64) -> u64 {
    1_000_000 + (i * ITEMS + k) % 9_000_000
}

/// One request: builds its input, serialises it to JSON, parses it back
/// and sums it, awaiting a yield and sometimes a timer in between.
async fn request(i: u64) -> u64 {
    let items: Vec<u64> = (0..ITEMS).map(|k| item(i, k)).collect();
    assert!(
        is_arena_pointer(items.as_ptr()),
        "request {i}: input on the heap"
    );
    yield_now().await;
    let text = serde_json::to_string(&items).expect("serialise");
    assert!(
        is_arena_pointer(text.as_ptr()),
        "request {i}: JSON on the heap"
    );
    if i.is_multiple_of(8) {
        sleep(Duration::from_millis(1)).await;
    }
    let back: Vec<u64> = serde_json::from_str(&text).expect("parse");
    assert_eq!(back, items, "request {i}: JSON round trip");
    back.iter().sum()
}

#[test]
fn an_arena_per_request_pool_serves_10000_requests_without_loss_or_growth() {
    const POOL: usize = 8;
    const REQUESTS: u64 = 10_000;
    let rt = runtime();
    warm_up(&rt);
    struct Pool {
        arenas: Vec<LockedArena>,
        free: Mutex<Vec<usize>>,
        permits: tokio::sync::Semaphore,
        /// Per arena: its `chunk_bytes` after its first request, and the
        /// arena allocations of one request.
        first_chunk_bytes: Vec<AtomicU64>,
        per_request: AtomicU64,
        served: Vec<AtomicU64>,
    }
    let pool = Arc::new(Pool {
        arenas: (0..POOL).map(|_| LockedArena::new()).collect(),
        free: Mutex::new((0..POOL).collect()),
        permits: tokio::sync::Semaphore::new(POOL),
        first_chunk_bytes: (0..POOL).map(|_| AtomicU64::new(0)).collect(),
        per_request: AtomicU64::new(0),
        served: (0..POOL).map(|_| AtomicU64::new(0)).collect(),
    });
    let results: Vec<(u64, u64)> = rt.block_on(async {
        let tasks: Vec<_> = (0..REQUESTS)
            .map(|i| {
                let pool = Arc::clone(&pool);
                tokio::spawn(async move {
                    let _permit = pool.permits.acquire().await.expect("the pool is open");
                    let a = pool.free.lock().unwrap().pop().expect("a free arena");
                    let arena = &pool.arenas[a];
                    let before = arena.stats().allocations;
                    let sum = in_region(arena.region(), request(i)).await;
                    let report = arena.reset();
                    assert!(report.is_clean(), "request {i}: {report}");
                    let s = arena.stats();
                    assert_eq!((s.live_blocks, s.bytes_in_use, s.spills), (0, 0, 0), "{s}");
                    // Every request makes the same arena allocations: none of
                    // tokio's, none spilled.
                    let made = s.allocations - before;
                    let first = pool.per_request.compare_exchange(
                        0,
                        made,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    // `Ok`: this was the first request to finish.
                    let want = match first {
                        Ok(_) => made,
                        Err(earlier) => earlier,
                    };
                    assert_eq!(made, want, "request {i}");
                    let _ = pool.first_chunk_bytes[a].compare_exchange(
                        0,
                        s.chunk_bytes,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    pool.served[a].fetch_add(1, Ordering::Relaxed);
                    pool.free.lock().unwrap().push(a);
                    (i, sum)
                })
            })
            .collect();
        let mut out = Vec::with_capacity(REQUESTS as usize);
        for t in tasks {
            out.push(t.await.expect("a request failed"));
        }
        out
    });
    // Nothing lost: every request answered, correctly.
    assert_eq!(results.len(), REQUESTS as usize);
    for (n, &(i, sum)) in results.iter().enumerate() {
        assert_eq!(i, n as u64);
        assert_eq!(sum, expected_sum(i), "request {i}: wrong result");
    }
    // No growth: every arena holds what it held after its first request.
    let per_request = pool.per_request.load(Ordering::Relaxed);
    assert!(
        per_request >= 3,
        "{per_request} arena allocations per request"
    );
    let mut total = 0;
    for (a, arena) in pool.arenas.iter().enumerate() {
        let s = arena.stats();
        let served = pool.served[a].load(Ordering::Relaxed);
        let first = pool.first_chunk_bytes[a].load(Ordering::Relaxed);
        assert!(served > 0, "arena {a} served nothing");
        assert_eq!(s.chunk_bytes, first, "arena {a} grew: {s}");
        assert_eq!(s.allocations, served * per_request, "arena {a}: {s}");
        assert_eq!(
            (s.live_blocks, s.bytes_in_use, s.escapes),
            (0, 0, 0),
            "arena {a}: {s}"
        );
        assert_eq!(s.resets, served, "arena {a}: {s}");
        total += served;
    }
    assert_eq!(total, REQUESTS);
}

// ---------------------------------------------------------------------------
// tokio::spawn inside a region, and in_arena
// ---------------------------------------------------------------------------

/// What a spawned task reports about where it ran.
fn where_am_i() -> (Option<u64>, bool) {
    let v = vec![0u8; 100];
    (
        Region::current().map(|r| r.arena_id()),
        is_arena_pointer(v.as_ptr()),
    )
}

#[test]
fn tokio_spawn_inside_a_region_runs_the_task_outside_it() {
    // README: "`tokio::spawn` inside a region: the spawned task does not run
    // in the region; only the spawn's own bookkeeping is allocated there".
    let rt = runtime();
    warm_up(&rt);
    let arena = LockedArena::new();
    // From a thread outside the runtime (`Handle::spawn` inside
    // `with_bumper`), and from a wrapped task on a worker.
    let (outside, cell) = {
        let before = arena.stats();
        let handle = with_bumper(&arena, || rt.spawn(async { where_am_i() }));
        let s = arena.stats();
        // One allocation, alive while the task or its handle is: the task's
        // cell (header, future, scheduler hooks).
        assert_eq!(s.live_blocks, before.live_blocks + 1, "{s}");
        let cell = (
            s.allocations - before.allocations,
            s.bytes_allocated - before.bytes_allocated,
        );
        (rt.block_on(handle).expect("the spawned task failed"), cell)
    };
    assert_eq!(
        outside,
        (None, false),
        "the spawned task ran in the spawner's region"
    );
    assert_eq!(cell.0, 1, "{cell:?}");

    let id = arena.id();
    let (inside, spawn_allocs) = rt
        .block_on(rt.spawn(in_region(arena.region(), async move {
            let region = Region::current().expect("in the region");
            assert_eq!(region.arena_id(), id);
            let before = region.stats().allocations;
            let handle = tokio::spawn(async { where_am_i() });
            let spawn_allocs = region.stats().allocations - before;
            (handle.await.expect("the spawned task failed"), spawn_allocs)
        })))
        .expect("the wrapped task failed");
    assert_eq!(
        inside,
        (None, false),
        "the spawned task ran in the spawner's region"
    );
    assert_eq!(spawn_allocs, 1);
    // tokio frees a cell once the task has ended and its handle is gone, on
    // the worker that ran it, possibly just after the handle returned the
    // result. Dropping the runtime waits for the workers to stop.
    drop(rt);
    let s = arena.stats();
    assert_eq!(s.live_blocks, 0, "{s}");
    println!(
        "tokio::spawn inside a region: 1 arena allocation of {} bytes (the task cell)",
        cell.1
    );
}

#[test]
fn in_arena_futures_allocate_from_an_unlocked_arena_on_a_current_thread_runtime() {
    const STEPS: usize = 10;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let arena = Arena::new();
    let local = tokio::task::LocalSet::new();
    let (sum, plain) = local.block_on(&rt, async {
        // This runtime's deferred-waker list lives as long as this
        // `block_on`: grow it here (see the header).
        grow_defer_list(DEFER_ROOM);
        // A plain local task interleaved with the wrapped future.
        let plain = tokio::task::spawn_local(plain_work(7, STEPS, Vec::with_capacity(STEPS + 1)));
        let sum = in_arena(&arena, async {
            let mut blocks = Vec::with_capacity(STEPS);
            for step in 0..STEPS {
                blocks.push(filled(100 + step, step as u64));
                pause(step).await;
                assert!(
                    Region::current().is_none(),
                    "an Arena's region is not shareable"
                );
                assert_eq!(arena.stats().live_blocks, 1 + blocks.len() as u64);
                for (k, b) in blocks.iter().enumerate() {
                    assert!(is_arena_pointer(b.as_ptr()));
                    check(b, k as u64, "a block of an in_arena future");
                }
            }
            blocks.iter().map(|b| b.len()).sum::<usize>()
        })
        .await;
        (sum, plain.await.expect("the plain task failed"))
    });
    assert_eq!(sum, (0..STEPS).map(|s| 100 + s).sum::<usize>());
    assert_eq!(plain.len(), STEPS + 1);
    let s = arena.stats();
    assert_eq!((s.allocations, s.live_blocks), (STEPS as u64 + 1, 0), "{s}");
}

// ---------------------------------------------------------------------------
// InRegion by hand: the route around a poll, and the drop
// ---------------------------------------------------------------------------

/// Where a `Probe` was dropped: what `where_am_i` said then.
type DropSlot = Arc<Mutex<Option<(Option<u64>, bool)>>>;

/// A future that is pending once, then ready with where its allocations
/// went; its `Drop` records where an allocation made while it is dropped
/// goes.
struct Probe {
    polls: u32,
    dropped_in: DropSlot,
}

impl Future for Probe {
    type Output = (Option<u64>, bool);

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.polls += 1;
        if self.polls == 1 {
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(where_am_i())
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let here = where_am_i();
        *self.dropped_in.lock().unwrap() = Some(here);
    }
}

fn probe() -> (Probe, DropSlot) {
    let slot = Arc::new(Mutex::new(None));
    let p = Probe {
        polls: 0,
        dropped_in: Arc::clone(&slot),
    };
    (p, slot)
}

#[test]
fn an_in_region_poll_restores_the_route_that_was_active_before_it() {
    let arena = LockedArena::new();
    let outer = LockedArena::new();
    let (p, _slot) = probe();
    let mut fut = Box::pin(in_region(arena.region(), p));
    let mut cx = Context::from_waker(Waker::noop());
    with_bumper(&outer, || {
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        // Back in `outer`'s region, not in none and not in `arena`'s.
        assert_eq!(Region::current().map(|r| r.arena_id()), Some(outer.id()));
        let v = vec![0u8; 10];
        assert!(is_arena_pointer(v.as_ptr()));
        assert_eq!(outer.stats().live_blocks, 1, "{}", outer.stats()); // `v` alone
    });
    assert!(Region::current().is_none());
    let std::task::Poll::Ready(inside) = fut.as_mut().poll(&mut cx) else {
        panic!("the probe is ready on its second poll");
    };
    assert_eq!(inside, (Some(arena.id()), true));
    assert!(
        !is_arena_pointer(vec![0u8; 10].as_ptr()),
        "the region outlived the poll"
    );
    drop(fut);
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn an_in_region_future_is_dropped_inside_its_region_on_any_thread() {
    let arena = LockedArena::new();
    let (p, slot) = probe();
    let mut fut = Box::pin(in_region(arena.region(), p));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    // Dropped unfinished, on another thread outside any region.
    std::thread::spawn(move || {
        drop(fut);
        assert!(
            Region::current().is_none(),
            "the drop left the region active"
        );
    })
    .join()
    .unwrap();
    assert_eq!(
        *slot.lock().unwrap(),
        Some((Some(arena.id()), true)),
        "the inner future was not dropped inside the region"
    );
    assert_eq!(arena.stats().live_blocks, 0);
}

/// A future whose poll panics.
struct Bomb;

impl Future for Bomb {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> std::task::Poll<()> {
        std::panic::resume_unwind(Box::new(()))
    }
}

#[test]
fn a_panic_in_an_in_region_poll_restores_the_previous_route() {
    let arena = LockedArena::new();
    let outer = Arena::new();
    let mut fut = Box::pin(in_region(arena.region(), Bomb));
    let mut cx = Context::from_waker(Waker::noop());
    with_bumper(&outer, || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = fut.as_mut().poll(&mut cx);
        }));
        assert!(r.is_err());
        // `outer` is an unlocked arena: no shareable region, but its route.
        assert!(Region::current().is_none());
        let v = vec![0u8; 10];
        assert!(is_arena_pointer(v.as_ptr()));
        assert_eq!(outer.stats().live_blocks, 1);
    });
    drop(fut);
    assert!(!is_arena_pointer(vec![0u8; 10].as_ptr()));
}

#[test]
fn a_completed_in_region_future_is_dropped_in_its_region_by_the_poll_that_completed_it() {
    let arena = LockedArena::new();
    let (p, slot) = probe();
    let mut fut = Box::pin(in_region(arena.region(), p));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert!(
        slot.lock().unwrap().is_none(),
        "dropped before it completed"
    );
    assert!(fut.as_mut().poll(&mut cx).is_ready());
    // Dropped by the completing poll, inside the region.
    assert_eq!(*slot.lock().unwrap(), Some((Some(arena.id()), true)));
    // The wrapper's own drop does not drop it a second time (a poll after
    // completion panics: tests/panic_locations.rs).
    *slot.lock().unwrap() = None;
    drop(fut);
    assert!(slot.lock().unwrap().is_none(), "dropped twice");
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn a_completed_in_arena_future_is_dropped_in_its_region_by_the_poll_that_completed_it() {
    let arena = Arena::new();
    // What the inner future's drop saw: an allocation made then, and whether
    // it came from the arena.
    let seen = Arc::new(Mutex::new(None));
    struct DropProbe(Arc<Mutex<Option<bool>>>);
    impl Drop for DropProbe {
        fn drop(&mut self) {
            let v = vec![1u8; 16];
            *self.0.lock().unwrap() = Some(is_arena_pointer(v.as_ptr()));
        }
    }
    let probe = DropProbe(Arc::clone(&seen));
    let mut fut = Box::pin(in_arena(&arena, async move {
        let _keep = &probe;
        7u32
    }));
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(fut.as_mut().poll(&mut cx), std::task::Poll::Ready(7));
    assert_eq!(
        *seen.lock().unwrap(),
        Some(true),
        "not dropped in the region"
    );
    drop(fut);
    assert_eq!(arena.stats().live_blocks, 0);
}
