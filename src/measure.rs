//! [`measure`]: what one closure allocated on the current thread, and where.

use core::fmt;
use std::time::{Duration, Instant};

use crate::route;
use crate::stats::Bytes;

/// What one closure allocated on the current thread: the Rust counterpart of
/// the line Julia's `@time` prints. Returned by [`measure`].
///
/// `inner_*` counts calls that reached the inner allocator (outside regions,
/// or spilled from an arena); `arena_*` counts calls served by arenas.
/// Allocations, zeroed allocations and reallocations each count as one call;
/// frees are not counted.
///
/// ```
/// use bumper::{measure, Bumper};
///
/// #[global_allocator]
/// static GLOBAL: Bumper = Bumper::system();
///
/// let (_, m) = measure(|| vec![0u8; 100]);
/// assert_eq!((m.inner_calls, m.inner_bytes, m.arena_calls), (1, 100, 0));
/// println!("{m}"); // 0.000002 seconds (inner allocator: 1 calls, 100 bytes; arena: 0 calls, 0 bytes)
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Measurement {
    /// Wall-clock time of the closure.
    pub elapsed: Duration,
    /// Calls that went to the inner allocator.
    pub inner_calls: u64,
    /// Bytes requested from the inner allocator.
    pub inner_bytes: u64,
    /// Calls served by arenas.
    pub arena_calls: u64,
    /// Bytes requested from arenas.
    pub arena_bytes: u64,
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.6} seconds (inner allocator: {} calls, {}; arena: {} calls, {})",
            self.elapsed.as_secs_f64(),
            self.inner_calls,
            Bytes(self.inner_bytes),
            self.arena_calls,
            Bytes(self.arena_bytes)
        )
    }
}

/// Runs `f` and reports what it allocated on this thread, and where.
///
/// Needs [`Bumper`](crate::Bumper) as the global allocator to see anything.
/// Measurements nest. Other threads are not counted.
///
/// ```
/// use bumper::{measure, with_bumper, Arena, Bumper};
///
/// #[global_allocator]
/// static GLOBAL: Bumper = Bumper::system();
///
/// let (_, plain) = measure(|| vec![0u8; 4096]);
/// assert_eq!(plain.inner_calls, 1);
///
/// let arena = Arena::new();
/// let (_, bumped) = measure(|| with_bumper(&arena, || arena.no_escape(|| vec![0u8; 4096].len())));
/// assert_eq!(bumped.inner_calls, 0);
/// assert_eq!(bumped.arena_calls, 1);
/// println!("{bumped}");
/// ```
#[must_use = "`measure` returns the closure's result and the measurement; use `let (r, m) = measure(..)`"]
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Measurement) {
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            route::end_measure();
        }
    }
    let before = route::totals();
    route::begin_measure();
    let guard = Guard;
    let start = Instant::now();
    let r = f();
    let elapsed = start.elapsed();
    drop(guard);
    let after = route::totals();
    let m = Measurement {
        elapsed,
        inner_calls: after.inner_calls.wrapping_sub(before.inner_calls),
        inner_bytes: after.inner_bytes.wrapping_sub(before.inner_bytes),
        arena_calls: after.arena_calls.wrapping_sub(before.arena_calls),
        arena_bytes: after.arena_bytes.wrapping_sub(before.arena_bytes),
    };
    (r, m)
}
