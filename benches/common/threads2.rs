//! Workload `threads2`: two threads, each running one iteration of
//! [`small`](super::small), joined before the iteration ends.
//!
//! Under the peers and bumper's no-region setting they are plain std scoped
//! threads ([`Spawn::Std`]). In bumper's region setting the spawning thread
//! is inside a region of one shared `LockedArena` and spawns them with
//! `bumper::thread::scope` ([`Spawn::Bumper`]): each child inherits the
//! region (on a lane of its own), and the spawns' own bookkeeping (the
//! scope's data, thread handles, result packets) comes from the arena too.
//! The spawning thread resets the arena after the joins (see
//! [`super::RegionArena::run`]).

use super::small::Small;
use super::{Enter, Spawn, Workload, direct};

/// The workload type registered in [`super::for_each_workload`].
pub struct Threads2;

impl Workload for Threads2 {
    const NAME: &'static str = "threads2";
    const SPAWNS_THREADS: bool = true;

    type Input = ();

    fn input() {}

    fn run(input: &()) -> u64 {
        Self::run_threads(input, &direct, Spawn::Std)
    }

    fn run_threads(_: &(), enter: Enter<'_>, spawn: Spawn) -> u64 {
        let body = || enter(&|| Small::run(&()));
        // `bumper::thread::ScopedJoinHandle` is std's.
        let join = |a: std::thread::ScopedJoinHandle<'_, u64>,
                    b: std::thread::ScopedJoinHandle<'_, u64>| {
            // Joined explicitly: a join waits until the thread has exited,
            // thread-local destructors included, so everything it allocated
            // is freed before the region's reset.
            let a = a.join().expect("thread a panicked");
            let b = b.join().expect("thread b panicked");
            a.wrapping_add(b)
        };
        match spawn {
            Spawn::Std => std::thread::scope(|s| join(s.spawn(body), s.spawn(body))),
            Spawn::Bumper => bumper::thread::scope(|s| join(s.spawn(body), s.spawn(body))),
        }
    }
}
