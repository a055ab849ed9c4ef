//! A runnable tour of the AllocArrays.jl README's "Examples of improper
//! usage", ported to bumper.
//!
//! In Julia each of the `bad_function_*` examples is undefined behaviour or
//! runs out of memory. In bumper each one is safe: results stay correct,
//! memory that is still in use is never overwritten, and the misuse shows up
//! in the arena's statistics (escapes, spills), or as a panic under
//! [`EscapePolicy::Panic`]. The `good_function_*` versions show the
//! intended pattern and report zero escapes of their work's memory
//! (`good_function_2` could report a few bytes of a child thread's
//! thread-local bookkeeping; see there).
//!
//! Run it with `cargo run --release --example improper_usage`.
//! The same scenarios are checked with assertions in `tests/seed_examples.rs`.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Barrier, Mutex};
use std::thread;

use bumper::{Arena, ArenaStats, Bumper, Bytes, EscapePolicy, LockedArena, with_bumper};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

const N: usize = 100_000;
const THREADS: usize = 10;

/// The seed's `some_allocating_function`: two "similar + copy" arrays.
fn some_allocating_function(a: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut b = Vec::with_capacity(a.len());
    b.extend_from_slice(a);
    let mut c = Vec::with_capacity(a.len());
    c.extend_from_slice(a);
    (b, c)
}

/// The seed's `basic_reduction`: `sum(b .+ c)`, with its temporary.
fn basic_reduction(a: &[f64]) -> f64 {
    let (b, c) = some_allocating_function(a);
    let b_plus_c: Vec<f64> = b.iter().zip(&c).map(|(x, y)| x + y).collect();
    b_plus_c.iter().sum()
}

/// `basic_reduction` with its arrays freed in the order they were allocated,
/// as a garbage collector might free them. (Frees in reverse order are handed
/// back at the bump pointer at once, so the plain `basic_reduction` does not
/// pile up memory even without a reset.)
fn basic_reduction_fifo(a: &[f64]) -> f64 {
    let (b, c) = some_allocating_function(a);
    let b_plus_c: Vec<f64> = b.iter().zip(&c).map(|(x, y)| x + y).collect();
    drop(b);
    drop(c);
    b_plus_c.iter().sum()
}

/// One line of what the arena saw.
fn summary(s: &ArenaStats) -> String {
    format!(
        "resets {}, escapes {} ({} blocks, {}; {} caused by other threads), spills {} ({}), in use {}, live blocks {}",
        s.resets,
        s.escapes,
        s.escaped_blocks,
        Bytes(s.escaped_bytes),
        s.contended_resets,
        s.spills,
        Bytes(s.spilled_bytes),
        Bytes(s.bytes_in_use),
        s.live_blocks,
    )
}

fn header(title: &str) {
    println!("\n== {title} ==");
}

fn check(label: &str, got: f64, expected: f64) {
    let verdict = if got == expected { "correct" } else { "WRONG" };
    println!("  result      {got} ({verdict}; expected {expected})");
    assert_eq!(got, expected, "{label}: wrong result");
}

// ---------------------------------------------------------------------------
// Wrong: allowing escapes
// ---------------------------------------------------------------------------

/// `b` is pushed into a collection that outlives the `no_escape` block.
fn bad_function_1(a: &[f64], arena: &Arena) -> f64 {
    // Created outside the region with room for one element: a heap block that
    // `push` below does not need to grow.
    let mut output: Vec<Vec<f64>> = Vec::with_capacity(1);
    with_bumper(arena, || {
        arena.no_escape(|| {
            let (b, _c) = some_allocating_function(a);
            output.push(b); // wrong! `b` is escaping `no_escape`
        })
    });
    // Keep using the arena: the reset above must not hand `b`'s memory out
    // again, or these runs would overwrite it.
    with_bumper(arena, || {
        for _ in 0..10 {
            arena.no_escape(|| basic_reduction(a));
        }
    });
    output.iter().flatten().sum()
}

/// Copies arena memory into a heap buffer allocated before the region.
fn good_function_1(a: &[f64], arena: &Arena) -> f64 {
    // Not inside `with_bumper`: this is heap memory.
    let mut output = vec![0.0; a.len()];
    with_bumper(arena, || {
        arena.no_escape(|| {
            let (b, _c) = some_allocating_function(a);
            output.copy_from_slice(&b); // OK: copy arena memory into heap memory
        })
    });
    output.iter().sum()
}

// ---------------------------------------------------------------------------
// Wrong: resetting a buffer in active use
// ---------------------------------------------------------------------------

/// Every thread runs its own `no_escape` on the shared arena, so each reset
/// happens while other threads are still allocating from it.
fn bad_function_2(a: &[f64], arena: &LockedArena) -> f64 {
    let output = Mutex::new(Vec::with_capacity(THREADS)); // outside the region
    let barrier = Barrier::new(THREADS);
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                with_bumper(arena, || {
                    arena.no_escape(|| {
                        // Every thread has taken its checkpoint before any resets.
                        barrier.wait();
                        let scalar = basic_reduction(a);
                        output.lock().unwrap().push(scalar);
                    }) // wrong! other threads are still using `arena`
                })
            });
        }
    });
    output.into_inner().unwrap().iter().sum()
}

/// One `no_escape` around the whole threaded part. The threads are spawned
/// with `bumper::thread::scope`, so they inherit the region, as the seed's
/// tasks inherit its scoped allocator: none of them enters it by hand.
/// (`bumper::thread` keeps std's bookkeeping for the spawns on the heap; a
/// child that needs a list of thread-local destructors allocates it in the
/// region, and its teardown may free it just after the scope returns, in
/// which case the reset keeps those few bytes and counts an escape.)
fn good_function_2(a: &[f64], arena: &LockedArena) -> f64 {
    let output = Mutex::new(Vec::with_capacity(THREADS)); // outside the region
    let barrier = Barrier::new(THREADS);
    with_bumper(arena, || {
        arena.no_escape(|| {
            bumper::thread::scope(|s| {
                for _ in 0..THREADS {
                    s.spawn(|| {
                        barrier.wait();
                        let scalar = basic_reduction(a);
                        output.lock().unwrap().push(scalar);
                    });
                }
            })
        }) // OK: reset once no thread needs the allocations
    });
    output.into_inner().unwrap().iter().sum()
}

/// `good_function_2` with std's threads, each entering the region itself,
/// and the spawning thread outside it: std's per-thread bookkeeping is then
/// on the heap, so the reset finds exactly nothing in use (zero escapes,
/// always), at the cost of entering by hand.
fn good_function_2_entered_by_hand(a: &[f64], arena: &LockedArena) -> f64 {
    let output = Mutex::new(Vec::with_capacity(THREADS));
    let barrier = Barrier::new(THREADS);
    arena.no_escape(|| {
        thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    with_bumper(arena, || {
                        barrier.wait();
                        let scalar = basic_reduction(a);
                        output.lock().unwrap().push(scalar);
                    })
                });
            }
        })
    });
    output.into_inner().unwrap().iter().sum()
}

/// The serial version: reset after every iteration. A serial loop needs no
/// lock, so a plain `Arena` does.
fn good_function_2b(a: &[f64], arena: &Arena) -> f64 {
    let mut output = Vec::with_capacity(THREADS);
    with_bumper(arena, || {
        for _ in 0..THREADS {
            arena.no_escape(|| {
                let scalar = basic_reduction(a);
                output.push(scalar);
            }) // OK: nothing allocated in the block is still in use
        }
    });
    output.iter().sum()
}

// ---------------------------------------------------------------------------
// Wrong: neglecting to reset the buffer
// ---------------------------------------------------------------------------

/// Allocates `n` times without ever resetting.
fn bad_function_3(a: &[f64], n: usize, arena: &Arena) -> f64 {
    let mut output = Vec::with_capacity(n);
    with_bumper(arena, || {
        for _ in 0..n {
            // bad! dead arrays pile up: nothing resets the arena
            output.push(basic_reduction_fifo(a));
        }
    });
    output.iter().sum()
}

/// The fix: the same loop with a `no_escape` per iteration.
fn good_function_3(a: &[f64], n: usize, arena: &Arena) -> f64 {
    let mut output = Vec::with_capacity(n);
    with_bumper(arena, || {
        for _ in 0..n {
            arena.no_escape(|| output.push(basic_reduction_fifo(a)));
        }
    });
    output.iter().sum()
}

fn main() {
    let a = vec![1.0f64; N];
    let one = N as f64; // sum(a)
    let two = 2.0 * N as f64; // basic_reduction(a)
    let ten_runs = THREADS as f64 * two;

    header("bad_function_1: a value escapes `no_escape`");
    let arena = Arena::new();
    check("bad_function_1", bad_function_1(&a, &arena), one);
    println!("  arena       {}", summary(&arena.stats()));
    println!("  -> the escaped Vec stayed intact through 10 later runs; the escape was counted");
    println!(
        "  once it is dropped, a reset takes its memory back: {}",
        arena.reset()
    );

    // The same misuse under the panic policy: the reset panics and says why.
    let strict = Arena::builder()
        .escape_policy(EscapePolicy::Panic)
        .build()
        .expect("valid configuration");
    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {})); // print the message below instead
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| bad_function_1(&a, &strict)));
    panic::set_hook(previous_hook);
    let err = outcome.expect_err("EscapePolicy::Panic panics on an escape");
    let message = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .unwrap_or("(non-string panic payload)");
    println!("  with EscapePolicy::Panic the same code panics:\n    {message}");

    header("good_function_1: copy out into heap memory");
    let arena = Arena::new();
    check("good_function_1", good_function_1(&a, &arena), one);
    println!("  arena       {}", summary(&arena.stats()));

    header("bad_function_2: each of 10 threads resets a shared LockedArena");
    let arena = LockedArena::new();
    check("bad_function_2", bad_function_2(&a, &arena), ten_runs);
    let s = arena.stats();
    println!("  arena       {}", summary(&s));
    println!(
        "  -> {} of {} resets found other threads still using the arena and left their memory alone",
        s.escapes, s.resets
    );
    println!("  a reset after all threads finished: {}", arena.reset());

    header("good_function_2: one no_escape around threads that inherit the region");
    let arena = LockedArena::new();
    check("good_function_2", good_function_2(&a, &arena), ten_runs);
    println!("  arena       {}", summary(&arena.stats()));

    header("good_function_2, entered by hand: std threads, each enters the region");
    let arena = LockedArena::new();
    check(
        "good_function_2_entered_by_hand",
        good_function_2_entered_by_hand(&a, &arena),
        ten_runs,
    );
    println!("  arena       {}", summary(&arena.stats()));

    header("good_function_2b: serial loop, no_escape per iteration");
    let arena = Arena::new();
    check("good_function_2b", good_function_2b(&a, &arena), ten_runs);
    println!("  arena       {}", summary(&arena.stats()));

    const LIMIT: usize = 4 << 20;
    const ITERATIONS: usize = 100;
    let all_runs = ITERATIONS as f64 * two;
    header("bad_function_3: never resetting, under a 4 MiB capacity limit");
    let arena = Arena::builder()
        .capacity_limit(LIMIT)
        .build()
        .expect("valid configuration");
    check(
        "bad_function_3",
        bad_function_3(&a, ITERATIONS, &arena),
        all_runs,
    );
    println!("  arena       {}", summary(&arena.stats()));
    println!(
        "  -> the 800 KB arrays are large blocks with chunks of their own, which go back\n     \
         to the arena as soon as they are freed: without any reset, nothing grew"
    );
    println!("  the same with 4 MiB chunks (the arrays are then bump-allocated), same limit:");
    let arena = Arena::builder()
        .capacity_limit(LIMIT)
        .chunk_size(LIMIT)
        .build()
        .expect("valid configuration");
    check(
        "bad_function_3",
        bad_function_3(&a, ITERATIONS, &arena),
        all_runs,
    );
    println!("  arena       {}", summary(&arena.stats()));
    println!(
        "  -> past the limit, allocations spilled to the system allocator: counted, nothing failed"
    );

    println!("  the fix (no_escape per iteration), same limit:");
    let arena = Arena::builder()
        .capacity_limit(LIMIT)
        .build()
        .expect("valid configuration");
    check(
        "good_function_3",
        good_function_3(&a, ITERATIONS, &arena),
        all_runs,
    );
    println!("  arena       {}", summary(&arena.stats()));
}
