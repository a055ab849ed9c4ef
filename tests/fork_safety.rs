//! `fork()` while other threads are inside bumper's critical sections
//! (SAFETY.md §12): bumper's `pthread_atfork` handlers hold every arena's
//! lock across the call, so the child never inherits a lock or a short lane
//! claim taken by a thread that does not exist in it. Without them, children
//! hung in their first region or reset.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bumper::{Bumper, LockedArena, is_arena_pointer, with_bumper};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

/// What a child does: use the arena the way any program would, then exit
/// with a code that says what went wrong.
fn child_work(arena: &LockedArena) -> i32 {
    let v = with_bumper(arena, || {
        let v = vec![0x5Au8; 1000];
        let w: Vec<u32> = (0..1000).collect();
        drop(w);
        v
    });
    if !is_arena_pointer(v.as_ptr()) || v.iter().any(|&b| b != 0x5A) {
        return 2;
    }
    let cp = arena.checkpoint();
    with_bumper(arena, || drop(vec![1u8; 5000]));
    if arena.try_reset_to(cp).is_err() {
        return 3;
    }
    drop(v);
    let s = arena.stats();
    if s.busy_lanes > 2 {
        // Only the lanes of the two threads that may have been inside a
        // region at the fork can be held (by threads that do not exist in
        // the child).
        return 4;
    }
    0
}

#[test]
fn children_forked_during_checkpoints_resets_and_stats_never_hang() {
    const FORKS: usize = 150;
    let arena = LockedArena::new();
    let stop = AtomicBool::new(false);
    let rounds = AtomicU64::new(0);
    let (mut hung, mut failed) = (0, Vec::new());
    std::thread::scope(|s| {
        // Two threads that spend their time in the arena's critical sections.
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let cp = arena.checkpoint();
                    with_bumper(&arena, || drop(vec![7u8; 300]));
                    let _ = arena.try_reset_to(cp);
                    let _ = arena.stats();
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        while rounds.load(Ordering::Relaxed) < 100 {
            std::thread::yield_now();
        }
        for _ in 0..FORKS {
            // SAFETY: the child only runs `child_work` (allocation through
            // bumper and glibc, which are fork-safe) and then `_exit`.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                let code = child_work(&arena);
                // SAFETY: ends the child at once, running nothing else.
                unsafe { libc::_exit(code) };
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let mut status = 0;
                // SAFETY: `pid` is our child; `status` is a valid out-pointer.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r == pid {
                    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
                        failed.push(status);
                    }
                    break;
                }
                if Instant::now() > deadline {
                    hung += 1;
                    // SAFETY: kills and reaps our own child.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                        libc::waitpid(pid, &mut status, 0);
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(hung, 0, "{hung} of {FORKS} children hung");
    assert!(
        failed.is_empty(),
        "children failed with statuses {failed:?}"
    );
    assert_eq!(arena.stats().live_blocks, 0);
}
