//! Workload `threads2`: two threads, each running one iteration of
//! [`small`](super::small), joined before the iteration ends.
//!
//! Under the peers and bumper's no-region setting they are plain std scoped
//! threads. In bumper's region setting each thread runs its body inside a
//! region of one shared `LockedArena`, which the spawning thread resets
//! after joining them (see [`super::RegionArena::run`]).
//! TODO: bumper::thread::scope, once it exists, spawns them into the region
//! (and puts the spawns' own allocations there too).

use super::small::Small;
use super::{Enter, Workload, direct};

/// The workload type registered in [`super::for_each_workload`].
pub struct Threads2;

impl Workload for Threads2 {
    const NAME: &'static str = "threads2";
    const SPAWNS_THREADS: bool = true;

    type Input = ();

    fn input() {}

    fn run(input: &()) -> u64 {
        Self::run_threads(input, &direct)
    }

    fn run_threads(_: &(), enter: Enter<'_>) -> u64 {
        std::thread::scope(|s| {
            let body = || enter(&|| Small::run(&()));
            let a = s.spawn(body);
            let b = s.spawn(body);
            // Joined explicitly: a join waits until the thread has exited,
            // thread-local destructors included, so everything it allocated
            // is freed before the region's reset.
            let a = a.join().expect("thread a panicked");
            let b = b.join().expect("thread b panicked");
            a.wrapping_add(b)
        })
    }
}
