//! `std::process::exit` inside a region of a thread-local arena (SAFETY.md
//! §13). On glibc, `exit()` runs the calling thread's thread-local
//! destructors while the frames below it stay suspended for ever
//! (rust-lang/rust#127637), so a thread-local arena is dropped while its own
//! region is still active. Dropping it must end that region, so that later
//! allocations (in thread-local destructors that run after it) never go to a
//! destroyed arena, and an arena whose region is active on *another* thread
//! must be kept.
//!
//! Each scenario runs in a child process (it ends the process); the parent
//! checks the child's exit status and what it printed.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use bumper::{Arena, Bumper, LockedArena, is_arena_pointer, with_bumper};
use common::{Child, Expect, is_child};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

/// Runs test `name` in a child process, which must exit with status 0, and
/// checks that the thread-local destructor that runs after the arenas'
/// destructors found no corrupted memory and ran to its end.
#[track_caller]
fn run_child(name: &str) {
    let out = Child::new(name).run(Expect::Success);
    assert!(out.stderr.contains("corrupted bytes of x: 0"), "{out}");
    assert!(out.stderr.contains("later: done"), "{out}");
}

/// Fails the child from a thread-local destructor, where panicking or
/// calling `exit` again is not an option.
fn fail(msg: &str) -> ! {
    eprintln!("FAILED: {msg}");
    // SAFETY: `_exit` ends the process at once; nothing runs after it.
    unsafe { libc::_exit(3) }
}

/// The checks of the original reproducer, run in a thread-local destructor
/// after the region's arena was dropped: allocations outside any region
/// stay on the heap, and new arenas never hand out memory still in use.
fn check_after_drop() {
    let d = Arena::new();
    let y = vec![1u8; 64];
    if is_arena_pointer(y.as_ptr()) {
        fail("an allocation outside any region came from an arena");
    }
    drop(d);
    let x = vec![0xAAu8; 1000];
    drop(y);
    let e = Arena::new();
    let z = with_bumper(&e, || vec![0x55u8; 1000]);
    if !is_arena_pointer(z.as_ptr()) {
        fail("a region of a new arena did not allocate from it");
    }
    let bad = x.iter().filter(|&&b| b != 0xAA).count();
    eprintln!("corrupted bytes of x: {bad}");
    if bad != 0 {
        fail("memory in use was handed out again");
    }
    std::mem::forget((x, z, e));
}

/// Runs `check_after_drop` when it is dropped; registered first, so that
/// thread-local destructors run it after the arenas' destructors.
struct Later;
impl Drop for Later {
    fn drop(&mut self) {
        check_after_drop();
        eprintln!("later: done");
    }
}

thread_local! {
    static LATER: Later = const { Later };
    static A: Arena = Arena::new();
    static B: Arena = Arena::new();
    static SHARED: LockedArena = LockedArena::new();
}

#[test]
fn exit_inside_a_region_of_a_thread_local_arena() {
    const NAME: &str = "exit_inside_a_region_of_a_thread_local_arena";
    if is_child(NAME) {
        std::thread::spawn(|| {
            LATER.with(|_| {});
            A.with(|a| {
                with_bumper(a, || {
                    let live = vec![0x11u8; 500]; // still in use at exit
                    assert!(is_arena_pointer(live.as_ptr()));
                    std::process::exit(0)
                })
            });
        })
        .join()
        .unwrap();
        unreachable!();
    }
    run_child(NAME);
}

#[test]
fn exit_inside_nested_regions_of_two_thread_local_arenas() {
    const NAME: &str = "exit_inside_nested_regions_of_two_thread_local_arenas";
    if is_child(NAME) {
        std::thread::spawn(|| {
            LATER.with(|_| {});
            A.with(|a| {
                B.with(|b| {
                    with_bumper(a, || {
                        let in_a = vec![0x22u8; 300];
                        with_bumper(b, || {
                            let in_b = vec![0x33u8; 300];
                            // Re-enter `a` inside `b`: three regions, two arenas.
                            with_bumper(a, || {
                                let again = vec![0x44u8; 300];
                                assert!(is_arena_pointer(again.as_ptr()));
                                assert!(is_arena_pointer(in_a.as_ptr()));
                                assert!(is_arena_pointer(in_b.as_ptr()));
                                std::process::exit(0)
                            })
                        })
                    })
                })
            });
        })
        .join()
        .unwrap();
        unreachable!();
    }
    run_child(NAME);
}

#[test]
fn exit_drops_a_locked_arena_while_another_thread_is_in_its_region() {
    const NAME: &str = "exit_drops_a_locked_arena_while_another_thread_is_in_its_region";
    if is_child(NAME) {
        static READY: AtomicBool = AtomicBool::new(false);
        std::thread::spawn(|| {
            LATER.with(|_| {});
            SHARED.with(|shared| {
                std::thread::scope(|s| {
                    s.spawn(|| {
                        with_bumper(shared, || {
                            // Keeps allocating in its lane, and checks a block
                            // of its own, until the process ends.
                            let mine = vec![0x66u8; 4096];
                            READY.store(true, Ordering::SeqCst);
                            loop {
                                let scratch = vec![0x99u8; 256];
                                if !is_arena_pointer(scratch.as_ptr()) {
                                    fail("the other thread's region stopped allocating from its arena");
                                }
                                if mine.iter().any(|&b| b != 0x66) || scratch.iter().any(|&b| b != 0x99) {
                                    fail("the other thread's memory was handed out again");
                                }
                                drop(scratch);
                                std::thread::yield_now();
                            }
                        })
                    });
                    while !READY.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                    // Drops `SHARED` (a thread-local destructor) while the
                    // scoped thread is inside its region.
                    std::process::exit(0)
                })
            });
        })
        .join()
        .unwrap();
        unreachable!();
    }
    run_child(NAME);
}
