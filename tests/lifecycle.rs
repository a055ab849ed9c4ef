//! SAFETY.md §12, thread and process life cycle (and §8 and §9 where a
//! thread unwinds or an arena is dropped first). Threads that end inside or
//! through a region, thread-local destructors that free arena blocks after
//! the region (and after the arena) is gone, `std::process::exit` and
//! `fork()` with live arena memory, and allocation from a panic hook while a
//! region is active.
//!
//! Tests that need a process to themselves (process-wide figures, a panic
//! hook, `exit`, `fork`) run again in a child process (`common::child`):
//! the child runs the scenario and the parent checks how it ended.
//!
//! Waits are bounded by iteration counts, never by a timer (only a child
//! that hangs is killed after a timeout, which fails the test).

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;
counting_shim!();

use bumper::{Arena, LockedArena, is_arena_pointer, space_stats, with_bumper};
use common::pattern::{self, check, fill};
use common::{Child, Expect, is_child};
use std::any::Any;
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};

/// Calls `done` up to `rounds` times, yielding in between, until it holds.
/// Returns whether it held. Bounded by the number of rounds, not by time.
fn poll(rounds: usize, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..rounds {
        if done() {
            return true;
        }
        std::thread::yield_now();
    }
    done()
}

/// An arena-allocated buffer that checks, when dropped, that it still lives
/// in an arena and holds its pattern, and counts the outcome. The check
/// allocates nothing, so it can run in thread-local destructors.
struct Checked {
    data: Vec<u8>,
    seed: u64,
    ok: &'static AtomicUsize,
    bad: &'static AtomicUsize,
}

impl Checked {
    fn new(seed: u64, len: usize, ok: &'static AtomicUsize, bad: &'static AtomicUsize) -> Self {
        let data = pattern::filled(len, seed);
        Checked {
            data,
            seed,
            ok,
            bad,
        }
    }

    fn intact(&self) -> bool {
        is_arena_pointer(self.data.as_ptr()) && pattern::holds(&self.data, self.seed)
    }
}

impl Drop for Checked {
    fn drop(&mut self) {
        if self.intact() {
            self.ok.fetch_add(1, Ordering::SeqCst);
        } else {
            self.bad.fetch_add(1, Ordering::SeqCst);
        }
    }
}

// ---------------------------------------------------------------------------
// 1. A thread that ends inside or through a region
// ---------------------------------------------------------------------------

#[test]
fn a_thread_returns_arena_values_that_its_joiner_uses_and_frees() {
    let arena = Arc::new(LockedArena::new());
    let worker = {
        let arena = Arc::clone(&arena);
        std::thread::spawn(move || {
            with_bumper(&*arena, || {
                let words: Vec<String> = (0..100).map(|i| format!("word number {i}")).collect();
                let mut bytes = vec![0u8; 10_000];
                fill(&mut bytes, 3);
                let squares: Box<[u64]> = (0..500u64).map(|i| i * i).collect();
                (words, bytes, squares)
            })
        })
    };
    // `JoinHandle::join` returns once the thread has terminated, its
    // thread-local destructors included: the thread is gone.
    let (mut words, bytes, squares) = worker.join().unwrap();

    assert!(words.iter().all(|w| is_arena_pointer(w.as_ptr())));
    assert!(is_arena_pointer(words.as_ptr()));
    assert!(is_arena_pointer(bytes.as_ptr()));
    assert!(is_arena_pointer(squares.as_ptr()));
    assert!(
        words
            .iter()
            .enumerate()
            .all(|(i, w)| *w == format!("word number {i}"))
    );
    check(&bytes, 3, "the byte buffer the thread returned");
    assert!(
        squares
            .iter()
            .enumerate()
            .all(|(i, &x)| x == (i * i) as u64)
    );
    let s = arena.stats();
    // 100 strings, the Vec holding them, the byte buffer, the boxed slice.
    assert_eq!(s.live_blocks, 103, "{s}");
    assert_eq!(s.busy_lanes, 0, "the dead thread still holds its lane: {s}");
    assert_eq!(s.lanes, 1, "{s}");

    // Use them: write in place, and grow one outside any region, which
    // moves it to the heap.
    words[1].make_ascii_uppercase();
    assert_eq!(words[1], "WORD NUMBER 1");
    words[0].push_str(", grown by the joiner well past its capacity");
    assert!(!is_arena_pointer(words[0].as_ptr()));
    assert_eq!(
        words[0],
        "word number 0, grown by the joiner well past its capacity"
    );
    assert_eq!(arena.stats().live_blocks, 102);

    drop(words);
    assert_eq!(arena.stats().live_blocks, 2);
    drop(bytes);
    drop(squares);
    let s = arena.stats();
    assert_eq!((s.live_blocks, s.live_bytes), (0, 0), "{s}");
    let r = arena.reset();
    assert!(r.is_clean(), "{r}");
    assert_eq!(arena.stats().bytes_in_use, 0);

    // A later thread gets the dead thread's lane back.
    let again = {
        let arena = Arc::clone(&arena);
        std::thread::spawn(move || with_bumper(&*arena, || is_arena_pointer(&*Box::new(7u64))))
    };
    assert!(again.join().unwrap());
    let s = arena.stats();
    assert_eq!((s.lanes, s.spills, s.lanes_exhausted), (1, 0, 0), "{s}");
}

#[test]
fn a_thread_that_dies_unwinding_through_a_region_releases_its_lane() {
    const MAX: usize = 2;
    const ROUNDS: usize = 5;
    let arena = LockedArena::builder().max_threads(MAX).build().unwrap();
    // Heap storage with room for everything, so pushing never reallocates.
    let kept: Mutex<Vec<Box<[u64; 16]>>> = Mutex::new(Vec::with_capacity(MAX * ROUNDS));
    for round in 0..ROUNDS {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..MAX)
                .map(|t| {
                    let (arena, kept) = (&arena, &kept);
                    s.spawn(move || {
                        let id = round * MAX + t;
                        // Made outside the region; `resume_unwind` skips the
                        // panic hook, so what the region allocates is exact.
                        let payload: Box<dyn Any + Send> = Box::new(id);
                        with_bumper(arena, || {
                            let scratch = vec![0xCDu8; 4096]; // freed while unwinding
                            kept.lock().unwrap().push(Box::new([id as u64; 16]));
                            assert!(is_arena_pointer(scratch.as_ptr()));
                            std::panic::resume_unwind(payload);
                        })
                    })
                })
                .collect();
            for (t, h) in handles.into_iter().enumerate() {
                let payload = h.join().unwrap_err();
                assert_eq!(*payload.downcast::<usize>().unwrap(), round * MAX + t);
            }
        });
    }
    let s = arena.stats();
    assert_eq!(s.busy_lanes, 0, "a dead thread still holds a lane: {s}");
    assert_eq!(s.lanes_exhausted, 0, "{s}");
    assert_eq!(s.spills, 0, "{s}");
    assert!(s.lanes as usize <= MAX, "{s}");
    // Exactly the kept boxes are live: the scratch buffers were freed by
    // unwinding (and whatever the unwinder itself allocated was freed too).
    assert_eq!(s.live_blocks, (MAX * ROUNDS) as u64, "{s}");
    assert_eq!(s.live_bytes, (MAX * ROUNDS * 128) as u64, "{s}");

    // All MAX lanes are free: MAX threads can be inside a region at the same
    // moment, each with its own lane.
    let barrier = Barrier::new(MAX);
    std::thread::scope(|s| {
        for _ in 0..MAX {
            let (arena, barrier) = (&arena, &barrier);
            s.spawn(move || {
                with_bumper(arena, || {
                    let b = Box::new(99u64);
                    barrier.wait(); // every thread holds a lane now
                    assert!(is_arena_pointer(&*b), "a region spilled");
                })
            });
        }
    });
    let s = arena.stats();
    assert_eq!(
        (s.lanes as usize, s.lanes_exhausted, s.spills),
        (MAX, 0, 0),
        "{s}"
    );

    let kept = kept.into_inner().unwrap();
    assert!(kept.iter().all(|b| is_arena_pointer(&**b)));
    let mut ids: Vec<u64> = kept.iter().map(|b| b[0]).collect();
    assert!(kept.iter().all(|b| b.iter().all(|&x| x == b[0])));
    ids.sort();
    assert!(ids.iter().copied().eq(0..(MAX * ROUNDS) as u64));
    drop(kept);
    assert_eq!(arena.stats().live_blocks, 0);
    let r = arena.reset();
    assert!(r.is_clean(), "{r}");
    assert_eq!(arena.stats().bytes_in_use, 0);
}

// ---------------------------------------------------------------------------
// 2. Thread-local destructors that free arena blocks
// ---------------------------------------------------------------------------

thread_local! {
    static STASH: RefCell<Vec<Checked>> = const { RefCell::new(Vec::new()) };
}

/// Fills this thread's `STASH` from inside a region of `arena`: `n` checked
/// buffers, and the stash's own Vec buffer, all in the arena.
fn stash_in_region<A: bumper::BumpArena>(arena: &A, seed: u64, n: usize, counters: Counters) {
    with_bumper(arena, || {
        STASH.with(|st| {
            let mut st = st.borrow_mut();
            for i in 0..n {
                st.push(Checked::new(
                    seed * 1000 + i as u64,
                    64 + i,
                    counters.0,
                    counters.1,
                ));
            }
        })
    });
    STASH.with(|st| {
        let st = st.borrow();
        assert!(is_arena_pointer(st.as_ptr()));
        assert!(st.iter().all(Checked::intact));
    });
}

type Counters = (&'static AtomicUsize, &'static AtomicUsize);

#[test]
fn thread_local_destructors_free_blocks_of_a_locked_arena_after_the_region() {
    static OK: AtomicUsize = AtomicUsize::new(0);
    static BAD: AtomicUsize = AtomicUsize::new(0);
    const THREADS: usize = 4;
    const PER: usize = 50;
    let arena = LockedArena::new();
    let regions_done = Barrier::new(THREADS + 1);
    let checked = Barrier::new(THREADS + 1);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (arena, regions_done, checked) = (&arena, &regions_done, &checked);
            s.spawn(move || {
                stash_in_region(arena, t as u64, PER, (&OK, &BAD));
                regions_done.wait();
                checked.wait();
                // The thread exits; its thread-local destructor frees the
                // blocks, outside any region, possibly after the join.
            });
        }
        regions_done.wait();
        // Every region has ended and nothing was freed yet.
        let s = arena.stats();
        assert_eq!(s.live_blocks, (THREADS * (PER + 1)) as u64, "{s}");
        assert_eq!(s.busy_lanes, 0, "{s}");
        checked.wait();
    });
    assert!(
        poll(1_000_000, || arena.stats().live_blocks == 0),
        "thread-local destructors never freed their blocks: {}",
        arena.stats()
    );
    assert_eq!(OK.load(Ordering::SeqCst), THREADS * PER);
    assert_eq!(BAD.load(Ordering::SeqCst), 0);
    let s = arena.stats();
    assert_eq!(s.live_bytes, 0, "{s}");
    let r = arena.reset();
    assert!(r.is_clean(), "{r}");
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn thread_local_destructors_free_blocks_of_an_arena_returned_by_the_thread() {
    static OK: AtomicUsize = AtomicUsize::new(0);
    static BAD: AtomicUsize = AtomicUsize::new(0);
    const PER: usize = 40;
    // The thread owns the arena, stashes region values in a thread-local and
    // hands the arena back; the stash is freed when the thread is torn down,
    // which `thread::scope` does not wait for.
    let arena = std::thread::scope(|s| {
        s.spawn(|| {
            let arena = Arena::new();
            stash_in_region(&arena, 77, PER, (&OK, &BAD));
            arena
        })
        .join()
        .unwrap()
    });
    assert!(
        poll(1_000_000, || arena.stats().live_blocks == 0),
        "thread-local destructors never freed their blocks: {}",
        arena.stats()
    );
    assert_eq!(OK.load(Ordering::SeqCst), PER);
    assert_eq!(BAD.load(Ordering::SeqCst), 0);
    let s = arena.stats();
    assert_eq!((s.live_bytes, s.busy_lanes), (0, 0), "{s}");
    let r = arena.reset();
    assert!(r.is_clean(), "{r}");
    assert_eq!(arena.stats().bytes_in_use, 0);
    // The arena still works on this thread.
    let v = with_bumper(&arena, || vec![1u32; 100]);
    assert!(is_arena_pointer(v.as_ptr()));
}

/// The smallest orphan case, which the thread-local tests below build on:
/// an arena dropped with one live block is released by that block's free.
#[test]
fn an_orphaned_arena_is_released_by_its_last_free() {
    const NAME: &str = "an_orphaned_arena_is_released_by_its_last_free";
    if !is_child(NAME) {
        let out = Child::new(NAME).run(Expect::Success);
        assert!(out.stdout.contains("ORPHAN-MIN-DONE"), "{out}");
        return;
    }
    // Child: the only test in this process, so the address space figures
    // are ours alone.
    let base = space_stats().in_use;
    let arena = Arena::new();
    let v = with_bumper(&arena, || vec![1u8; 100]);
    let held = space_stats().in_use;
    assert!(held > base);
    drop(arena); // orphan: the block is live
    assert_eq!(
        space_stats().in_use,
        held,
        "the orphan gave back a live chunk"
    );
    assert!(v.iter().all(|&b| b == 1));
    drop(v); // the last live block: the orphan is destroyed here
    assert_eq!(
        space_stats().in_use,
        base,
        "the orphaned arena was not released by its last free"
    );
    println!("ORPHAN-MIN-DONE");
}

/// What the dying thread of the orphan test keeps in its thread-local: the
/// checked values, and a gate its destructor waits on before freeing them,
/// so that the arena is certainly dropped first.
struct GatedStash {
    gate: mpsc::Receiver<()>,
    /// Held only to be dropped, after the gate opened.
    _items: Vec<Checked>,
}

impl Drop for GatedStash {
    fn drop(&mut self) {
        // Runs before `items` is dropped.
        self.gate.recv().expect("the test sends the go-ahead");
    }
}

thread_local! {
    static GATED: RefCell<Option<GatedStash>> = const { RefCell::new(None) };
}

#[test]
fn thread_local_destructors_free_blocks_of_an_arena_dropped_before_them() {
    static OK: AtomicUsize = AtomicUsize::new(0);
    static BAD: AtomicUsize = AtomicUsize::new(0);
    const PER: usize = 60;
    const NAME: &str = "thread_local_destructors_free_blocks_of_an_arena_dropped_before_them";
    if !is_child(NAME) {
        let out = Child::new(NAME).run(Expect::Success);
        assert!(out.stdout.contains("ORPHAN-DONE"), "{out}");
        return;
    }
    // Child: the only test in this process, so the address space figures
    // are ours alone.
    let base = space_stats().in_use;
    let arena = Arc::new(LockedArena::new());
    let (region_done_tx, region_done_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let worker = {
        let arena = Arc::clone(&arena);
        std::thread::spawn(move || {
            with_bumper(&*arena, || {
                let items: Vec<Checked> = (0..PER)
                    .map(|i| Checked::new(500 + i as u64, 100 + 3 * i, &OK, &BAD))
                    .collect();
                GATED.with(|g| {
                    *g.borrow_mut() = Some(GatedStash {
                        gate: go_rx,
                        _items: items,
                    })
                });
            });
            drop(arena); // this thread's handle; the test holds the last one
            region_done_tx.send(()).unwrap();
        })
    };
    region_done_rx.recv().unwrap();
    let held = space_stats().in_use;
    assert!(held > base, "the arena holds no chunk? {held} vs {base}");
    let s = arena.stats();
    assert_eq!(s.live_blocks, (PER + 1) as u64, "{s}");
    // Drop the arena while its blocks are live in the other thread's
    // thread-local: it becomes an orphan and must keep their memory.
    drop(Arc::into_inner(arena).expect("the worker dropped its handle"));
    assert_eq!(
        space_stats().in_use,
        held,
        "the orphan gave back chunks with live blocks"
    );
    assert_eq!(OK.load(Ordering::SeqCst), 0);
    // Let the thread-local destructor free everything: the last free
    // destroys the orphan, from inside `dealloc`, on an exiting thread.
    go_tx.send(()).unwrap();
    worker.join().unwrap();
    assert!(
        poll(1_000_000, || space_stats().in_use == base),
        "the orphaned arena was not released: in use {} vs {base}",
        space_stats().in_use
    );
    assert_eq!(OK.load(Ordering::SeqCst), PER);
    assert_eq!(BAD.load(Ordering::SeqCst), 0);
    // The space is healthy: a new arena works and is released in turn.
    let fresh = Arena::new();
    let v = with_bumper(&fresh, || vec![3u64; 1000]);
    assert!(is_arena_pointer(v.as_ptr()) && v.iter().all(|&x| x == 3));
    drop(v);
    drop(fresh);
    assert_eq!(space_stats().in_use, base);
    println!("ORPHAN-DONE");
}

// ---------------------------------------------------------------------------
// 3. `std::process::exit` with live arena memory
// ---------------------------------------------------------------------------

static EXIT_DATA: AtomicPtr<u64> = AtomicPtr::new(std::ptr::null_mut());
static EXIT_LEN: AtomicUsize = AtomicUsize::new(0);

fn write_stdout(msg: &[u8]) {
    // SAFETY: writes a valid buffer to fd 1; no allocation.
    unsafe { libc::write(1, msg.as_ptr().cast(), msg.len()) };
}

/// Runs during `exit`, after Rust's own cleanup: the arena memory that was
/// live when `exit` was called must still be mapped and intact.
extern "C" fn check_arena_data_at_exit() {
    let p = EXIT_DATA.load(Ordering::SeqCst);
    let n = EXIT_LEN.load(Ordering::SeqCst);
    // SAFETY: the pointer and length describe a leaked Vec<u64>.
    let ok =
        !p.is_null() && is_arena_pointer(p) && (0..n).all(|i| unsafe { *p.add(i) } == 3 * i as u64);
    write_stdout(if ok {
        b"ATEXIT arena data intact\n"
    } else {
        b"ATEXIT arena data CORRUPT\n"
    });
}

#[test]
fn process_exit_inside_a_region_leaves_live_arena_memory_intact_for_exit_handlers() {
    static OK: AtomicUsize = AtomicUsize::new(0);
    static BAD: AtomicUsize = AtomicUsize::new(0);
    const NAME: &str =
        "process_exit_inside_a_region_leaves_live_arena_memory_intact_for_exit_handlers";
    const N: usize = 20_000;
    const OTHER_N: u64 = 10_000;
    if !is_child(NAME) {
        let out = Child::new(NAME).run(Expect::Code(7));
        let stdout = &out.stdout;
        let sum: u64 = (0..N as u64).map(|i| 3 * i).sum();
        let other: u64 = (0..OTHER_N).sum();
        assert!(
            stdout.contains(&format!("EXIT-MARKER sum={sum} other={other}")),
            "{out}"
        );
        assert!(stdout.contains("ATEXIT arena data intact"), "{out}");
        assert!(!stdout.contains("CORRUPT"), "{out}");
        assert!(!out.stderr.contains("bumper:"), "{out}");
        return;
    }
    let arena: &'static LockedArena = Box::leak(Box::new(LockedArena::new()));
    // Another thread sits inside a region of the same arena, holding live
    // memory, when the process exits.
    let (ready_tx, ready_rx) = mpsc::channel::<u64>();
    std::thread::spawn(move || {
        with_bumper(arena, || {
            let held: Vec<u64> = (0..OTHER_N).collect();
            assert!(is_arena_pointer(held.as_ptr()));
            ready_tx.send(held.iter().sum()).unwrap();
            loop {
                std::thread::park();
            }
        })
    });
    let other = ready_rx.recv().unwrap();
    with_bumper(arena, || {
        let data: Vec<u64> = (0..N as u64).map(|i| 3 * i).collect();
        assert!(is_arena_pointer(data.as_ptr()));
        let sum: u64 = data.iter().sum();
        let data = data.leak();
        EXIT_DATA.store(data.as_mut_ptr(), Ordering::SeqCst);
        EXIT_LEN.store(data.len(), Ordering::SeqCst);
        // SAFETY: registers a plain `extern "C"` function.
        assert_eq!(unsafe { libc::atexit(check_arena_data_at_exit) }, 0);
        // Values in a thread-local too: glibc's `exit` may run this thread's
        // thread-local destructors, which then free arena blocks while the
        // region is still active. If they run, they find the data intact.
        STASH.with(|st| {
            st.borrow_mut()
                .extend((0..10).map(|i| Checked::new(i, 200, &OK, &BAD)))
        });
        let words: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        assert!(is_arena_pointer(words[99].as_ptr()));
        println!("EXIT-MARKER sum={sum} other={other}");
        std::process::exit(7);
    })
}

// ---------------------------------------------------------------------------
// 4. `fork()` inside a region
// ---------------------------------------------------------------------------

/// Reports a failure in the forked child (no allocation) and returns its
/// exit code.
fn fork_fail(code: i32, what: &str) -> i32 {
    // SAFETY: valid buffers to fd 2.
    unsafe {
        let pre = b"forked child: ";
        libc::write(2, pre.as_ptr().cast(), pre.len());
        libc::write(2, what.as_ptr().cast(), what.len());
        libc::write(2, b"\n".as_ptr().cast(), 1);
    }
    code
}

/// The forked child's work, still inside the parent's region. Returns the
/// exit code: 0 if everything held.
fn forked_child(
    arena: &Arena,
    mut pre: Vec<u64>,
    pre_box: Box<[u8; 256]>,
    tip: Vec<u8>,
    live_at_fork: u64,
) -> i32 {
    // The inherited arena memory is readable and intact.
    if !pre.iter().copied().eq(0..1000) {
        return fork_fail(10, "pre-fork Vec corrupted");
    }
    if pre_box.iter().any(|&b| b != 0xAB) {
        return fork_fail(11, "pre-fork Box corrupted");
    }
    if tip.iter().any(|&b| b != 5) {
        return fork_fail(12, "pre-fork tip Vec corrupted");
    }
    if arena.stats().live_blocks != live_at_fork {
        return fork_fail(13, "live count differs from the parent's at fork");
    }
    // Write into the child's copy of data the parent still uses: a shared
    // mapping would corrupt the parent.
    pre.iter_mut().for_each(|x| *x = u64::MAX);
    // Free the block at the tip and reuse its memory.
    let tip_len = tip.len();
    drop(tip);
    let reuse = vec![0xEEu8; tip_len];
    if !is_arena_pointer(reuse.as_ptr()) || reuse.iter().any(|&b| b != 0xEE) {
        return fork_fail(20, "allocation after freeing the tip");
    }
    // Free a pre-fork block that is not at the tip.
    drop(pre_box);
    // New allocations of every kind come from the arena.
    let v: Vec<u32> = (0..2000).collect();
    let mut s = String::from("forked");
    s.push_str(" child");
    let b = Box::new([9u16; 300]);
    if !is_arena_pointer(v.as_ptr()) || !v.iter().copied().eq(0..2000) {
        return fork_fail(21, "Vec in the child");
    }
    if !is_arena_pointer(s.as_ptr()) || s != "forked child" {
        return fork_fail(22, "String in the child");
    }
    if !is_arena_pointer(&*b) || b.iter().any(|&x| x != 9) {
        return fork_fail(23, "Box in the child");
    }
    // A new chunk, and a reset.
    let big = vec![0x11u8; 2 << 20];
    if !is_arena_pointer(big.as_ptr()) || big.iter().any(|&x| x != 0x11) {
        return fork_fail(24, "large allocation in the child");
    }
    drop(big);
    let n = arena.no_escape(|| vec![1u8; 50_000].len());
    if n != 50_000 {
        return fork_fail(25, "no_escape in the child");
    }
    // pre_str, pre, reuse, v, s and b are live: two more than at the fork.
    let st = arena.stats();
    if st.live_blocks != live_at_fork + 2 || st.escapes != 0 {
        return fork_fail(26, "live count in the child");
    }
    drop((pre, reuse, v, s, b));
    if arena.stats().live_blocks != live_at_fork - 3 {
        return fork_fail(27, "live count after the child's frees");
    }
    0
}

#[test]
fn a_fork_inside_a_region_gives_the_child_a_private_working_copy_of_the_arena() {
    const NAME: &str = "a_fork_inside_a_region_gives_the_child_a_private_working_copy_of_the_arena";
    if !is_child(NAME) {
        let out = Child::new(NAME).run(Expect::Success);
        assert!(out.stdout.contains("FORK-PARENT-OK"), "{out}");
        return;
    }
    // Child test process: this is its only test, so no other test thread
    // exists when it forks.
    let arena = Arena::new();
    with_bumper(&arena, || {
        let pre: Vec<u64> = (0..1000).collect();
        let pre_box = Box::new([0xABu8; 256]);
        let pre_str = String::from("made before the fork");
        let tip = vec![5u8; 512]; // the most recent block: at the tip
        assert!(is_arena_pointer(pre.as_ptr()) && is_arena_pointer(tip.as_ptr()));
        let live_at_fork = arena.stats().live_blocks;
        assert_eq!(live_at_fork, 4);

        // SAFETY: the child only runs Rust code that this single-threaded
        // test process could run, and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = catch_unwind(AssertUnwindSafe(|| {
                forked_child(&arena, pre, pre_box, tip, live_at_fork)
            }))
            .unwrap_or_else(|_| fork_fail(99, "panicked"));
            // SAFETY: ends the forked child without running the parent's
            // exit handlers or flushing its buffers a second time.
            unsafe { libc::_exit(code) };
        }

        let mut status = 0;
        // SAFETY: waits for our own child.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(
            libc::WIFEXITED(status),
            "child did not exit normally: {status:#x}"
        );
        assert_eq!(libc::WEXITSTATUS(status), 0, "child failed (see stderr)");

        // The parent's data is untouched by what the child wrote and freed.
        assert!(pre.iter().copied().eq(0..1000));
        assert!(pre_box.iter().all(|&b| b == 0xAB));
        assert!(tip.iter().all(|&b| b == 5));
        assert_eq!(pre_str, "made before the fork");
        assert_eq!(arena.stats().live_blocks, live_at_fork);
        // ...and the parent carries on allocating in the region.
        let after: Vec<u64> = (0..5000).collect();
        assert!(is_arena_pointer(after.as_ptr()));
        assert!(after.iter().copied().eq(0..5000));
        drop((pre, pre_box, pre_str, tip, after));
    });
    let s = arena.stats();
    assert_eq!(s.live_blocks, 0, "{s}");
    assert!(arena.reset().is_clean());
    println!("FORK-PARENT-OK");
}

// ---------------------------------------------------------------------------
// 5. Allocation from inside a panic hook while a region is active
// ---------------------------------------------------------------------------

/// Where the hook leaves what it allocated. Its buffer is reserved before
/// the region, on the heap, so pushing does not allocate.
static HOOK_STASH: Mutex<Vec<String>> = Mutex::new(Vec::new());
static HOOK_RUNS: AtomicUsize = AtomicUsize::new(0);
static HOOK_SUM: AtomicU64 = AtomicU64::new(0);
static HOOK_VEC_IN_ARENA: AtomicBool = AtomicBool::new(false);

#[test]
fn a_panic_hook_inside_a_region_allocates_from_the_arena_and_its_values_stay_intact() {
    const NAME: &str =
        "a_panic_hook_inside_a_region_allocates_from_the_arena_and_its_values_stay_intact";
    if !is_child(NAME) {
        let out = Child::new(NAME).run(Expect::Success);
        assert!(out.stdout.contains("HOOK-OK"), "{out}");
        return;
    }
    // Child process: the hook is process-wide, and no other test runs here.
    HOOK_STASH.lock().unwrap().reserve(4);
    assert!(!is_arena_pointer(HOOK_STASH.lock().unwrap().as_ptr()));
    std::panic::set_hook(Box::new(|info| {
        HOOK_RUNS.fetch_add(1, Ordering::SeqCst);
        let msg = format!("hook saw: {}", info.payload_as_str().unwrap_or("?"));
        let v: Vec<u64> = (0..256).collect();
        HOOK_VEC_IN_ARENA.store(is_arena_pointer(v.as_ptr()), Ordering::SeqCst);
        HOOK_SUM.store(v.iter().sum(), Ordering::SeqCst);
        HOOK_STASH.lock().unwrap().push(msg);
    }));

    let arena = Arena::new();
    let data = with_bumper(&arena, || {
        let data: Vec<u64> = (0..1000).collect();
        let r = catch_unwind(AssertUnwindSafe(|| {
            arena.no_escape(|| {
                let tmp = vec![0u8; 512];
                panic!("boom {}", 40 + tmp.len() / 256);
            })
        }));
        let payload = r.unwrap_err();
        // The payload was built during the panic, inside the region.
        assert!(is_arena_pointer(&*payload as *const (dyn Any + Send)));
        assert_eq!(payload.downcast_ref::<String>().unwrap(), "boom 42");
        drop(payload);
        // Still in the region, and the arena still serves it.
        assert!(is_arena_pointer(&*Box::new(1u8)));
        assert!(data.iter().copied().eq(0..1000));
        data
    });
    drop(std::panic::take_hook());
    assert!(
        !is_arena_pointer(&*Box::new(2u8)),
        "the route was not restored"
    );

    assert_eq!(HOOK_RUNS.load(Ordering::SeqCst), 1);
    assert!(HOOK_VEC_IN_ARENA.load(Ordering::SeqCst));
    assert_eq!(HOOK_SUM.load(Ordering::SeqCst), 255 * 256 / 2);
    {
        let stash = HOOK_STASH.lock().unwrap();
        assert_eq!(stash.len(), 1);
        assert!(!is_arena_pointer(stash.as_ptr()), "the stash moved");
        assert!(
            is_arena_pointer(stash[0].as_ptr()),
            "the hook ran on the heap"
        );
        assert_eq!(stash[0], "hook saw: boom 42");
    }
    // The hook's message escaped the `no_escape` block, so that reset kept
    // it; much later allocation must not overwrite it.
    let s = arena.stats();
    assert_eq!(s.escapes, 1, "{s}");
    assert_eq!(s.live_blocks, 2, "data and the hook's message: {s}");
    with_bumper(&arena, || {
        for i in 0..50 {
            arena.no_escape(|| {
                let mut junk = vec![0u8; 8192 + i];
                fill(&mut junk, i as u64);
                check(&junk, i as u64, format_args!("junk block {i}"));
            });
        }
    });
    assert_eq!(HOOK_STASH.lock().unwrap()[0], "hook saw: boom 42");
    assert!(data.iter().copied().eq(0..1000));
    drop(data);
    HOOK_STASH.lock().unwrap().clear();
    let s = arena.stats();
    assert_eq!((s.live_blocks, s.live_bytes), (0, 0), "{s}");
    let r = arena.reset();
    assert!(r.is_clean(), "{r}");
    assert_eq!(arena.stats().bytes_in_use, 0);
    println!("HOOK-OK");
}
