//! `Pool`, `Lease` and `Leased` (issue 16, §1): leases reuse idle arenas,
//! go back reset, report escapes by the arena's policy, keep the number of
//! idle arenas bounded, work across threads, and tie a value to its arena
//! (also through `bytes::Bytes::from_owner`).

use std::sync::Barrier;

use bumper::{EscapePolicy, LockedArena, Pool, is_arena_pointer, measure, with_bumper};

#[global_allocator]
static GLOBAL: bumper::Bumper = bumper::Bumper::system();

/// Held by every test: one of them counts the process's memory system
/// calls, which the others would add to.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn keep_policy_pool() -> Pool {
    Pool::with_builder(LockedArena::builder().escape_policy(EscapePolicy::Keep)).unwrap()
}

#[test]
fn a_lease_comes_back_reset_and_is_reused() {
    let _serial = serial();
    let pool = Pool::new();
    let first_id = {
        let lease = pool.take();
        let v = with_bumper(&*lease, || vec![1u64; 1000]);
        assert!(is_arena_pointer(v.as_ptr()));
        assert_eq!(lease.stats().live_blocks, 1);
        drop(v);
        lease.id()
    };
    for _ in 0..100 {
        let lease = pool.take();
        assert_eq!(lease.id(), first_id, "the idle arena is handed out again");
        assert_eq!(lease.stats().bytes_in_use, 0, "it came back reset");
        lease.scoped(|| drop(format!("{}", 12345)));
    }
    let s = pool.stats();
    assert_eq!(s.leases, 101);
    assert_eq!(s.arenas_created, 1);
    assert_eq!(s.resets, 101);
    assert_eq!((s.unclean_resets, s.discarded), (0, 0));
    assert_eq!(s.idle, 1);
}

#[test]
fn leases_taken_at_once_get_distinct_arenas() {
    let _serial = serial();
    let pool = Pool::new();
    let leases: Vec<_> = (0..10).map(|_| pool.take()).collect();
    let mut ids: Vec<u64> = leases.iter().map(|l| l.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 10);
    drop(leases);
    let s = pool.stats();
    assert_eq!((s.arenas_created, s.idle, s.resets), (10, 10, 10));
}

#[test]
fn idle_arenas_are_bounded() {
    let _serial = serial();
    let pool = Pool::builder().max_idle(3).build().unwrap();
    let leases: Vec<_> = (0..20).map(|_| pool.take()).collect();
    drop(leases);
    let s = pool.stats();
    // At most 3 (split between the pool's shards; an arena goes back to
    // the shard it was made in), the rest dropped.
    assert!((1..=3).contains(&s.idle), "{s}");
    assert_eq!(s.idle + s.discarded, 20, "{s}");
    assert_eq!(pool.idle_arena_stats().len() as u64, s.idle);
}

#[test]
fn an_escape_is_counted_and_the_arena_is_not_handed_out_again() {
    let _serial = serial();
    let pool = keep_policy_pool();
    let lease = pool.take();
    let id = lease.id();
    let kept = with_bumper(&*lease, || vec![9u8; 100]);
    drop(lease);
    assert_eq!(kept, vec![9u8; 100], "escaped memory stays valid");
    let s = pool.stats();
    assert_eq!((s.resets, s.unclean_resets, s.escaped_blocks), (1, 1, 1));
    assert_eq!(s.discarded, 1);
    let next = pool.take();
    assert_ne!(next.id(), id);
    drop(next);
    drop(kept);
}

#[test]
fn under_the_panic_policy_dropping_a_lease_panics_after_giving_the_arena_back() {
    let _serial = serial();
    let pool =
        Pool::with_builder(LockedArena::builder().escape_policy(EscapePolicy::Panic)).unwrap();
    let lease = pool.take();
    let kept = with_bumper(&*lease, || vec![1u8; 10]);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(lease)));
    let msg = caught.expect_err("the escape panics");
    let msg = msg.downcast_ref::<String>().expect("a message");
    assert!(msg.contains("memory escaped"), "{msg}");
    assert_eq!(kept, vec![1u8; 10]);
    let s = pool.stats();
    assert_eq!((s.resets, s.unclean_resets, s.discarded), (1, 1, 1));
    drop(kept);
}

#[test]
fn leased_drops_the_value_first_then_resets() {
    let _serial = serial();
    let pool = Pool::new();
    let lease = pool.take();
    let body = with_bumper(&*lease, || {
        let mut s = String::new();
        for i in 0..100 {
            s.push_str(&i.to_string());
        }
        s
    });
    let leased = lease.attach(body);
    assert!(is_arena_pointer(leased.as_ptr()));
    assert_eq!(leased.len(), 190);
    assert_eq!(leased.lease().stats().live_blocks, 1);
    // Sent to another thread and dropped there.
    std::thread::spawn(move || drop(leased)).join().unwrap();
    let s = pool.stats();
    assert_eq!((s.resets, s.unclean_resets), (1, 0));
    assert_eq!(pool.idle_arena_stats()[0].live_blocks, 0);
}

#[test]
fn bytes_from_owner_keeps_the_arena_until_the_last_clone_is_gone() {
    let _serial = serial();
    let pool = Pool::new();
    let lease = pool.take();
    let json = with_bumper(&*lease, || serde_json::to_vec(&vec![1, 2, 3]).unwrap());
    // Outside the region: the `Bytes`' own box goes on the heap.
    let bytes = bytes::Bytes::from_owner(lease.attach(json));
    let clone = bytes.slice(1..);
    drop(bytes);
    assert_eq!(pool.stats().resets, 0, "a clone still holds the arena");
    assert_eq!(&clone[..], b"1,2,3]");
    std::thread::spawn(move || drop(clone)).join().unwrap();
    let s = pool.stats();
    assert_eq!((s.resets, s.unclean_resets), (1, 0));
}

#[test]
fn a_lease_may_outlive_its_pool() {
    let _serial = serial();
    let pool = Pool::new();
    let lease = pool.take();
    let v = with_bumper(&*lease, || vec![3u8; 50]);
    drop(pool);
    assert_eq!(v[49], 3);
    drop(v);
    drop(lease); // the pool is gone: the arena is dropped
}

#[test]
fn taking_and_giving_back_inside_a_region_allocates_nothing_in_it() {
    let _serial = serial();
    let pool = Pool::new();
    let outer = LockedArena::new();
    with_bumper(&outer, || {
        for _ in 0..10 {
            let a = pool.take();
            let b = pool.take(); // a new arena: its slot is on the heap
            drop((a, b));
        }
    });
    assert_eq!(outer.stats().allocations, 0);
}

#[test]
fn threads_take_and_give_back_concurrently_and_every_arena_ends_clean() {
    let _serial = serial();
    const THREADS: usize = 4;
    const ROUNDS: usize = 5_000;
    let pool = Pool::new();
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (pool, barrier) = (&pool, &barrier);
            s.spawn(move || {
                barrier.wait();
                let mut handed_over = None;
                for i in 0..ROUNDS {
                    let lease = pool.take();
                    let v: Vec<String> = with_bumper(&*lease, || {
                        (0..10).map(|k| format!("{t}-{i}-{k}")).collect()
                    });
                    assert_eq!(v[9], format!("{t}-{i}-9"));
                    // Every eighth lease goes back from the next round's
                    // thread state, with its value dropped first.
                    if i % 8 == 0 {
                        handed_over = Some(lease.attach(v));
                    } else {
                        drop(v);
                        drop(lease);
                    }
                    if i % 8 == 4 {
                        drop(handed_over.take());
                    }
                }
            });
        }
    });
    let s = pool.stats();
    assert_eq!(s.leases, (THREADS * ROUNDS) as u64);
    assert_eq!(s.resets, s.leases);
    assert_eq!(s.unclean_resets, 0, "{s}");
    assert!(s.arenas_created <= 4 * THREADS as u64, "{s}");
    for a in pool.idle_arena_stats() {
        assert_eq!((a.live_blocks, a.bytes_in_use, a.escapes), (0, 0, 0), "{a}");
    }
}

#[test]
fn a_steady_loop_of_leases_makes_no_heap_calls() {
    let _serial = serial();
    let pool = Pool::new();
    let step = || {
        let lease = pool.take();
        let n = with_bumper(&*lease, || format!("{:?}", vec![1u32; 20]).len());
        drop(lease);
        n
    };
    step();
    let (_, m) = measure(|| {
        for _ in 0..1000 {
            assert_eq!(step(), 60);
        }
    });
    assert_eq!(m.inner_calls, 0, "{m}");
    assert!(m.arena_calls >= 2000, "{m}");
}

#[test]
fn a_steady_loop_of_leases_makes_no_memory_system_calls() {
    let _serial = serial();
    let pool = Pool::new();
    let step = || {
        let lease = pool.take();
        let fut = std::pin::pin!(bumper::in_region(lease.region(), async {
            let v: Vec<Box<u64>> = (0..50).map(Box::new).collect();
            v.len()
        }));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(std::future::Future::poll(fut, &mut cx).is_ready());
        drop(lease);
    };
    for _ in 0..10 {
        step();
    }
    let before = bumper::space_stats().os_calls;
    for _ in 0..1000 {
        step();
    }
    assert_eq!(bumper::space_stats().os_calls, before);
}
