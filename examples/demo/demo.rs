//! The demo from the AllocArrays.jl README, in Rust.
//!
//! `some_allocating_function` and `basic_reduction` know nothing about
//! arenas: they allocate with plain `Vec`s. Run plainly, every allocation
//! goes to the system allocator. Run inside `with_bumper` + `no_escape`, the
//! same code bump-allocates from an arena and hands it all back at the end,
//! so nothing reaches the system allocator.
//!
//! Each line shows what `bumper::measure` saw for one run: wall time, calls
//! and bytes that reached the inner (system) allocator, and calls and bytes
//! served by an arena.
//!
//! Run it with `cargo run --release -p bumper-demo --example demo`. It is a
//! package of its own (`examples/demo/Cargo.toml`), so that its first build
//! compiles bumper alone, not bumper's dev-dependencies.

use bumper::{Arena, Bumper, Measurement, measure, with_bumper};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

/// Some function, possibly in some library, that doesn't know about bumper
/// but allocates: two "similar + copy" arrays.
fn some_allocating_function(a: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut b = Vec::with_capacity(a.len()); // similar(a)
    b.extend_from_slice(a); // b .= a
    let mut c = Vec::with_capacity(a.len()); // similar(a)
    c.extend_from_slice(a); // c .= a
    (b, c)
}

/// `sum(b .+ c)`: like Julia's broadcast, `b + c` allocates a temporary.
fn basic_reduction(a: &[f64]) -> f64 {
    let (b, c) = some_allocating_function(a);
    let b_plus_c: Vec<f64> = b.iter().zip(&c).map(|(x, y)| x + y).collect();
    b_plus_c.iter().sum()
}

/// The seed's `bumper_reduction`: a fresh arena per call, one region, and a
/// `no_escape` block that hands everything back when it ends.
fn bumper_reduction(a: &[f64]) -> f64 {
    let arena = Arena::new();
    with_bumper(&arena, || arena.no_escape(|| basic_reduction(a)))
}

fn report(label: &str, result: f64, m: &Measurement) {
    assert_eq!(result, 200_000.0, "{label} computed the wrong sum");
    println!("{label:<34} # {m}");
}

fn main() {
    let a = vec![1.0f64; 100_000];

    println!("Plain: every allocation goes to the system allocator");
    for _ in 0..2 {
        let (r, m) = measure(|| basic_reduction(&a));
        report("basic_reduction(&a)", r, &m);
    }

    println!("\nIn a region: the same code allocates from an arena");
    for _ in 0..2 {
        let (r, m) = measure(|| bumper_reduction(&a));
        report("bumper_reduction(&a)", r, &m);
    }

    // The common Rust pattern: create one arena and reuse it. After the first
    // run its chunks are already mapped, and each `no_escape` hands the same
    // memory to the next run.
    println!("\nOne arena reused across runs");
    let arena = Arena::new();
    for _ in 0..3 {
        let (r, m) = measure(|| with_bumper(&arena, || arena.no_escape(|| basic_reduction(&a))));
        report("with_bumper(&arena, no_escape(..))", r, &m);
    }

    // Arena ids count every arena the process made, not only this one: the
    // two `bumper_reduction` runs above made one each.
    println!(
        "\nThe reused arena afterwards (arena ids count every arena the process made; \
         `bumper_reduction` made {} before this one):\n{}",
        arena.id().saturating_sub(1),
        arena.stats()
    );
}
