//! Regions: [`with_bumper`] runs a closure with the current thread's
//! allocations served by an arena.

use crate::arena::BumpArena;
use crate::route::RegionEntry;

/// Runs `f` with every allocation of the current thread bump-allocated from
/// `arena`: `Box`, `Vec`, `String`, collections, and anything any library
/// allocates through the global allocator.
///
/// Requires [`Bumper`](crate::Bumper) to be the `#[global_allocator]`;
/// without it the region has no effect. Regions nest, also with different
/// arenas; the innermost wins. Frees are routed by who owns the pointer, so
/// values may outlive the region, move to other threads, or be dropped
/// anywhere. To hand memory back in bulk, use
/// [`Arena::no_escape`](crate::Arena::no_escape) or checkpoints.
///
/// What counts is where memory is *allocated*: a `Vec` created with capacity
/// before the region stays on the heap when it grows inside it, but an empty
/// `Vec::new()` has no allocation yet, so its first push inside the region
/// allocates in the arena.
///
/// Only the calling thread is affected: threads it spawns allocate from the
/// inner allocator unless they enter a region themselves (a
/// [`LockedArena`](crate::LockedArena) can be shared by many threads).
///
/// Works with both [`Arena`](crate::Arena) and
/// [`LockedArena`](crate::LockedArena).
///
/// ```
/// use bumper::{with_bumper, Arena, Bumper};
///
/// #[global_allocator]
/// static GLOBAL: Bumper = Bumper::system();
///
/// let arena = Arena::new();
/// let sum = with_bumper(&arena, || {
///     arena.no_escape(|| {
///         let v: Vec<u64> = (0..1000).collect(); // allocated in the arena
///         v.iter().sum::<u64>()
///     }) // ...and reclaimed here
/// });
/// assert_eq!(sum, 499_500);
/// assert_eq!(arena.stats().live_blocks, 0);
/// ```
pub fn with_bumper<A, R>(arena: &A, f: impl FnOnce() -> R) -> R
where
    A: BumpArena + ?Sized,
{
    let entry = RegionEntry::new();
    let _active = entry.activate(arena.core_ref().0);
    f()
}
