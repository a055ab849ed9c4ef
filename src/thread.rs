//! Threads that inherit the spawning thread's region: [`spawn`] and
//! [`scope`], with the signatures and behaviour of `std::thread`'s.
//!
//! A child spawned inside a region of a [`LockedArena`](crate::LockedArena)
//! runs inside that region (see [`Region::current`]): every allocation it
//! makes comes from the same arena, from a lane of its own, as in Julia's
//! task-scoped allocators. Outside any region these functions behave
//! exactly as std's. Inside a region of an unlocked
//! [`Arena`](crate::Arena), which must never be reached from a second
//! thread, the child runs outside any region, as a `std::thread` child
//! would.
//!
//! The child enters the region when it starts and leaves it when its closure
//! returns; its thread-local destructors run outside the region. Memory the
//! child allocated stays valid after it ends (frees are routed by who owns
//! the pointer) until the arena is reset, so results can be returned through
//! the join handle.
//!
//! ```
//! # #[global_allocator]
//! # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
//! use bumper::{is_arena_pointer, LockedArena};
//!
//! let arena = LockedArena::new();
//! let lens: Vec<usize> = arena.scoped(|| {
//!     bumper::thread::scope(|s| {
//!         let handles: Vec<_> = (0..4)
//!             .map(|i| s.spawn(move || {
//!                 let v = vec![i; 1000]; // from `arena`, on the child's own lane
//!                 assert!(is_arena_pointer(v.as_ptr()));
//!                 v.len()
//!             }))
//!             .collect();
//!         handles.into_iter().map(|h| h.join().unwrap()).collect()
//!     })
//! });
//! assert_eq!(lens, vec![1000; 4]);
//! ```
//!
//! Spawning a thread allocates (std's bookkeeping for the thread). Those
//! allocations go to the heap even inside a region: some of them are freed
//! only by the child's thread-local destructors, which may still be running
//! when `scope` returns, and a reset right then would otherwise find them
//! live.

use crate::region::{Region, outside_regions};

pub use std::thread::{JoinHandle, ScopedJoinHandle};

/// Runs `f` in `region` if there is one.
fn run_in<T>(region: Option<Region>, f: impl FnOnce() -> T) -> T {
    match region {
        Some(r) => r.enter(f),
        None => f(),
    }
}

/// Spawns a thread, like [`std::thread::spawn`], that runs inside the
/// current thread's shareable region, if any (see the [module docs](self)).
///
/// The child holds a [`Region`] handle, so the arena stays valid until the
/// child ends, even if the spawning thread drops its `LockedArena` first.
///
/// # Panics
///
/// As [`std::thread::spawn`]: if the OS fails to create a thread.
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// use bumper::{with_bumper, LockedArena};
///
/// let arena = LockedArena::new();
/// let child = with_bumper(&arena, || {
///     bumper::thread::spawn(|| (0..100u64).collect::<Vec<_>>()) // allocates from `arena`
/// });
/// let v = child.join().unwrap();
/// assert!(bumper::is_arena_pointer(v.as_ptr()));
/// ```
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let region = Region::current();
    // std's bookkeeping for the thread (its handle, the result packet, the
    // boxed closure) goes on the heap: parts of it are freed only by the
    // child's thread-local destructors, after a `join` or the end of a
    // `scope`, so in the arena they would show up as escapes of the next
    // reset.
    outside_regions(|| std::thread::spawn(move || run_in(region, f)))
}

/// Creates a scope for spawning scoped threads, like
/// [`std::thread::scope`]; threads spawned with [`Scope::spawn`] run inside
/// the spawning thread's shareable region at the time of the spawn, if any
/// (see the [module docs](self)).
///
/// All threads spawned in the scope are joined before `scope` returns.
///
/// # Panics
///
/// As [`std::thread::scope`]: if any spawned thread panicked and its handle
/// was not joined.
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// let arena = bumper::LockedArena::new();
/// let data = vec![1u64; 1000];
/// let sum: u64 = bumper::with_bumper(&arena, || {
///     bumper::thread::scope(|s| {
///         let (a, b) = data.split_at(500);
///         let left = s.spawn(|| a.iter().map(|x| x * 2).collect::<Vec<_>>().iter().sum::<u64>());
///         let right = s.spawn(|| b.iter().map(|x| x * 2).collect::<Vec<_>>().iter().sum::<u64>());
///         left.join().unwrap() + right.join().unwrap()
///     })
/// });
/// assert_eq!(sum, 2000);
/// // The children's Vecs (and whatever else the children allocate, such as
/// // std's list of their thread-local destructors); the spawns' own
/// // bookkeeping is on the heap.
/// assert!(arena.stats().allocations >= 2);
/// ```
pub fn scope<'env, F, T>(f: F) -> T
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> T,
{
    std::thread::scope(|s| f(Scope::from_std(s)))
}

/// A scope to spawn scoped threads in, from [`scope`]: the counterpart of
/// [`std::thread::Scope`] whose threads inherit the current region.
///
/// ```
/// # #[global_allocator]
/// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
/// fn fan_out<'scope>(s: &'scope bumper::thread::Scope<'scope, '_>) {
///     for i in 0..3 {
///         s.spawn(move || format!("worker {i}"));
///     }
/// }
/// bumper::thread::scope(fan_out);
/// ```
#[repr(transparent)]
pub struct Scope<'scope, 'env: 'scope> {
    inner: std::thread::Scope<'scope, 'env>,
}

impl<'scope, 'env> Scope<'scope, 'env> {
    fn from_std<'a>(s: &'a std::thread::Scope<'scope, 'env>) -> &'a Scope<'scope, 'env> {
        // SAFETY: `Scope` is a `repr(transparent)` wrapper of
        // `std::thread::Scope`, so the two references have the same layout
        // and validity; the lifetime is kept.
        unsafe { &*(s as *const std::thread::Scope<'scope, 'env>).cast::<Scope<'scope, 'env>>() }
    }

    /// Spawns a scoped thread, like [`std::thread::Scope::spawn`], that runs
    /// inside the spawning thread's current shareable region, if any.
    ///
    /// # Panics
    ///
    /// As [`std::thread::Scope::spawn`]: if the OS fails to create a thread.
    ///
    /// ```
    /// # #[global_allocator]
    /// # static GLOBAL: bumper::Bumper = bumper::Bumper::system();
    /// let arena = bumper::LockedArena::new();
    /// let v = bumper::with_bumper(&arena, || {
    ///     bumper::thread::scope(|s| s.spawn(|| vec![7u8; 32]).join().unwrap())
    /// });
    /// assert!(bumper::is_arena_pointer(v.as_ptr()));
    /// ```
    pub fn spawn<F, T>(&'scope self, f: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let region = Region::current();
        // As in `spawn`: std's bookkeeping on the heap.
        outside_regions(|| self.inner.spawn(move || run_in(region, f)))
    }
}

impl core::fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.inner.fmt(f)
    }
}
