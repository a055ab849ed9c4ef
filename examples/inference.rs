//! Model inference through a library that knows nothing about bumper: the
//! Rust form of AllocArrays.jl's digits-model test.
//!
//! A small convolutional network, written with ndarray's allocating
//! operations (every layer returns a fresh array; the convolutions are
//! im2col with `concatenate` and a matrix product), runs over 1,000
//! deterministic pseudo-random 28x28 images in batches of 32:
//!
//! ```text
//! 28x28x1 -> conv 3x3, 1->32, relu  -> 26x26x32 -> max-pool 2x2 -> 13x13x32
//!         -> conv 3x3, 32->16, relu -> 11x11x16 -> max-pool 2x2 -> 5x5x16
//!         -> conv 3x3, 16->10, relu -> 3x3x10 -> flatten -> 90
//!         -> dense 90->10, relu -> dense 10->10, relu -> dense 10->10 -> softmax
//! ```
//!
//! Three runs write their class probabilities into an output allocated
//! before any region:
//!
//! 1. the heap: no region, every allocation goes to the system allocator;
//! 2. an `Arena`: one region around the loop, `arena.reset()` after each
//!    batch (the original's `reset!(b)`);
//! 3. a `LockedArena`: the batches spread over threads with
//!    `bumper::thread::scope` inside the region, so each child allocates
//!    from the arena on a lane of its own; one round of batches (one per
//!    thread) at a time, and `arena.reset()` after each round, once the
//!    threads have been joined.
//!
//! The three outputs are compared bit for bit. The table shows wall time
//! (the median of 5 interleaved runs after a warm-up) and what
//! `bumper::measure` saw: calls and bytes that reached the inner (system)
//! allocator, and calls and bytes served by arenas. `measure` counts the
//! calling thread only, so the threaded row adds up the figures each child
//! measured around its own work to the spawning thread's. The latter covers
//! the spawns' own bookkeeping, which `bumper::thread` keeps on the heap
//! even inside a region: the threaded row's few inner-allocator calls, a
//! handful per spawn. The arena's own `stats()` counters agree with the
//! arena columns (checked in `tests/inference.rs`). The last column counts
//! the memory system calls bumper made during the run (`space_stats()`,
//! process-wide).
//!
//! Run it with `cargo run --release --example inference`.

use std::time::Duration;

use bumper::{Arena, Bumper, Bytes, LockedArena, Measurement, measure, space_stats, with_bumper};
use ndarray::{
    Array1, Array2, Array4, ArrayView4, ArrayViewMut2, Axis, Order, Zip, concatenate, s,
};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

/// Images in the example's run.
pub const IMAGES: usize = 1000;
/// Images per batch.
pub const BATCH: usize = 32;
/// Image side, in pixels.
pub const SIDE: usize = 28;
/// Output classes.
pub const CLASSES: usize = 10;
const SEED: u64 = 0x6A09_E667_F3BC_C908;

/// xorshift64: deterministic weights and images.
struct XorShift(u64);

impl XorShift {
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in `[-scale, scale)`.
    fn symmetric(&mut self, scale: f32) -> f32 {
        (2.0 * self.unit() - 1.0) * scale
    }
}

/// A 3x3 "valid" convolution, its weights laid out for im2col: one row per
/// (kernel row, kernel column, input channel), one column per output channel.
struct Conv {
    w: Array2<f32>,
    b: Array1<f32>,
    k: usize,
}

/// A dense layer: `x.dot(w) + b`.
struct Dense {
    w: Array2<f32>,
    b: Array1<f32>,
}

/// The digits model of the original's test, with made-up weights.
pub struct Model {
    conv1: Conv,
    conv2: Conv,
    conv3: Conv,
    dense1: Dense,
    dense2: Dense,
    dense3: Dense,
}

fn relu(v: f32) -> f32 {
    v.max(0.0)
}

impl Conv {
    fn new(rng: &mut XorShift, k: usize, c_in: usize, c_out: usize) -> Conv {
        let fan_in = k * k * c_in;
        let scale = (6.0 / fan_in as f32).sqrt(); // He-uniform
        Conv {
            w: Array2::from_shape_fn((fan_in, c_out), |_| rng.symmetric(scale)),
            b: Array1::from_shape_fn(c_out, |_| 0.01 * rng.unit()),
            k,
        }
    }

    /// `x` is (batch, height, width, channels); so is the result.
    fn forward(&self, x: ArrayView4<'_, f32>) -> Array4<f32> {
        let (n, h, w, c_in) = x.dim();
        let (oh, ow) = (h - self.k + 1, w - self.k + 1);
        // im2col: the k*k shifted windows side by side along the channels.
        let x = &x;
        let windows: Vec<ArrayView4<'_, f32>> = (0..self.k)
            .flat_map(|i| (0..self.k).map(move |j| x.slice(s![.., i..i + oh, j..j + ow, ..])))
            .collect();
        let cols = concatenate(Axis(3), &windows).expect("windows of one shape");
        // One row per output pixel (a copy: `concatenate` lays the new axis
        // out last in memory).
        let cols = cols
            .to_shape(((n * oh * ow, self.k * self.k * c_in), Order::RowMajor))
            .expect("as many values");
        let y = (cols.dot(&self.w) + &self.b).mapv(relu);
        y.into_shape_with_order((n, oh, ow, self.w.ncols()))
            .expect("dot returns a standard layout")
    }
}

/// 2x2 max-pooling with stride 2 (a trailing odd row or column is dropped).
fn max_pool(x: &Array4<f32>) -> Array4<f32> {
    let (_, h, w, _) = x.dim();
    let (h2, w2) = (h / 2 * 2, w / 2 * 2);
    let q = |i: usize, j: usize| x.slice(s![.., i..h2;2, j..w2;2, ..]);
    let top = Zip::from(q(0, 0))
        .and(q(0, 1))
        .map_collect(|a, b| a.max(*b));
    let bottom = Zip::from(q(1, 0))
        .and(q(1, 1))
        .map_collect(|a, b| a.max(*b));
    Zip::from(&top).and(&bottom).map_collect(|a, b| a.max(*b))
}

impl Dense {
    fn new(rng: &mut XorShift, n_in: usize, n_out: usize) -> Dense {
        let scale = (6.0 / (n_in + n_out) as f32).sqrt(); // Glorot-uniform
        Dense {
            w: Array2::from_shape_fn((n_in, n_out), |_| rng.symmetric(scale)),
            b: Array1::from_shape_fn(n_out, |_| 0.01 * rng.unit()),
        }
    }

    fn forward(&self, x: &Array2<f32>) -> Array2<f32> {
        x.dot(&self.w) + &self.b
    }
}

/// Row-wise softmax.
fn softmax(z: &Array2<f32>) -> Array2<f32> {
    let max = z.map_axis(Axis(1), |r| r.fold(f32::NEG_INFINITY, |a, &b| a.max(b)));
    let e = (z - &max.insert_axis(Axis(1))).mapv(f32::exp);
    let sum = e.sum_axis(Axis(1));
    e / &sum.insert_axis(Axis(1))
}

impl Model {
    /// The model with deterministic pseudo-random weights.
    pub fn new() -> Model {
        let mut rng = XorShift(SEED);
        Model {
            conv1: Conv::new(&mut rng, 3, 1, 32),
            conv2: Conv::new(&mut rng, 3, 32, 16),
            conv3: Conv::new(&mut rng, 3, 16, 10),
            dense1: Dense::new(&mut rng, 90, 10),
            dense2: Dense::new(&mut rng, 10, 10),
            dense3: Dense::new(&mut rng, 10, CLASSES),
        }
    }

    /// Class probabilities, (batch, classes), for `x`: (batch, 28, 28, 1).
    pub fn forward(&self, x: ArrayView4<'_, f32>) -> Array2<f32> {
        let n = x.dim().0;
        let h = max_pool(&self.conv1.forward(x));
        let h = max_pool(&self.conv2.forward(h.view()));
        let h = self.conv3.forward(h.view());
        let flat = h
            .into_shape_with_order((n, 90))
            .expect("3x3x10 values per image");
        let z = self.dense1.forward(&flat).mapv(relu);
        let z = self.dense2.forward(&z).mapv(relu);
        softmax(&self.dense3.forward(&z))
    }
}

impl Default for Model {
    fn default() -> Model {
        Model::new()
    }
}

/// `n` deterministic pseudo-random images, (n, 28, 28, 1), pixels in [0, 1).
pub fn images(n: usize) -> Array4<f32> {
    let mut rng = XorShift(SEED ^ 0x5555_5555_5555_5555);
    Array4::from_shape_fn((n, SIDE, SIDE, 1), |_| rng.unit())
}

/// What one run produced and what it cost.
pub struct Run {
    /// Class probabilities, one row per image.
    pub probs: Array2<f32>,
    /// Time and allocator calls (summed over the threads of a threaded run).
    pub m: Measurement,
    /// Arena resets, and how many of them reclaimed everything.
    pub resets: usize,
    /// Of the resets, those that reclaimed everything.
    pub clean_resets: usize,
    /// Memory system calls bumper made during the run (process-wide).
    pub os_calls: u64,
}

/// One batch into its rows of the output; allocates only inside `forward`.
fn batch(model: &Model, x: ArrayView4<'_, f32>, mut out: ArrayViewMut2<'_, f32>) {
    let p = model.forward(x);
    out.assign(&p);
}

/// The baseline: no region.
pub fn run_heap(model: &Model, images: &Array4<f32>) -> Run {
    let mut probs = Array2::zeros((images.dim().0, CLASSES));
    let os = space_stats().os_calls;
    let ((), m) = measure(|| {
        for (x, out) in images
            .axis_chunks_iter(Axis(0), BATCH)
            .zip(probs.axis_chunks_iter_mut(Axis(0), BATCH))
        {
            batch(model, x, out);
        }
    });
    Run {
        probs,
        m,
        resets: 0,
        clean_resets: 0,
        os_calls: space_stats().os_calls - os,
    }
}

/// One region around the loop, a reset per batch.
pub fn run_arena(model: &Model, images: &Array4<f32>, arena: &Arena) -> Run {
    let mut probs = Array2::zeros((images.dim().0, CLASSES));
    let (mut resets, mut clean_resets) = (0, 0);
    let os = space_stats().os_calls;
    let ((), m) = measure(|| {
        with_bumper(arena, || {
            for (x, out) in images
                .axis_chunks_iter(Axis(0), BATCH)
                .zip(probs.axis_chunks_iter_mut(Axis(0), BATCH))
            {
                batch(model, x, out);
                let report = arena.reset();
                resets += 1;
                clean_resets += usize::from(report.is_clean());
            }
        })
    });
    Run {
        probs,
        m,
        resets,
        clean_resets,
        os_calls: space_stats().os_calls - os,
    }
}

/// Rounds of `threads` batches, one per child of `bumper::thread::scope`
/// inside the arena's region; a reset after each round, after the joins.
pub fn run_locked(model: &Model, images: &Array4<f32>, arena: &LockedArena, threads: usize) -> Run {
    let mut probs = Array2::zeros((images.dim().0, CLASSES));
    let (mut resets, mut clean_resets) = (0, 0);
    let mut children = Measurement::default();
    let os = space_stats().os_calls;
    let ((), mut m) = measure(|| {
        let mut inputs = images.axis_chunks_iter(Axis(0), BATCH).peekable();
        let mut outputs = probs.axis_chunks_iter_mut(Axis(0), BATCH);
        while inputs.peek().is_some() {
            with_bumper(arena, || {
                bumper::thread::scope(|s| {
                    let handles: Vec<_> = inputs
                        .by_ref()
                        .take(threads)
                        .zip(outputs.by_ref())
                        .map(|(x, out)| s.spawn(move || measure(|| batch(model, x, out)).1))
                        .collect();
                    // Join every child explicitly: a join also waits for the
                    // child's thread-local destructors, which free what the
                    // spawn allocated in the arena.
                    for h in handles {
                        add_counts(&mut children, &h.join().expect("a batch panicked"));
                    }
                })
            });
            let report = arena.reset();
            resets += 1;
            clean_resets += usize::from(report.is_clean());
        }
    });
    add_counts(&mut m, &children); // the time stays the spawning thread's
    Run {
        probs,
        m,
        resets,
        clean_resets,
        os_calls: space_stats().os_calls - os,
    }
}

/// Adds `b`'s calls and bytes to `a`'s.
pub fn add_counts(a: &mut Measurement, b: &Measurement) {
    a.inner_calls += b.inner_calls;
    a.inner_bytes += b.inner_bytes;
    a.arena_calls += b.arena_calls;
    a.arena_bytes += b.arena_bytes;
}

/// True if the two outputs are equal bit for bit.
pub fn same_bits(a: &Array2<f32>, b: &Array2<f32>) -> bool {
    a.dim() == b.dim() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Interleaved timed rounds of the runs in `main`.
const REPEATS: usize = 5;

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    let model = Model::new();
    let images = images(IMAGES);
    let arena = Arena::new();
    let locked = LockedArena::new();

    // A warm-up of each run (first-touch page faults, the arenas' first
    // chunks), then REPEATS interleaved rounds of the three. The counts are
    // the same in every round; the table shows the last round's counts and
    // the median time.
    let mut heap = run_heap(&model, &images);
    let mut bumped = run_arena(&model, &images, &arena);
    let mut parallel = run_locked(&model, &images, &locked, threads);
    let mut times: [Vec<Duration>; 3] = Default::default();
    for _ in 0..REPEATS {
        heap = run_heap(&model, &images);
        times[0].push(heap.m.elapsed);
        bumped = run_arena(&model, &images, &arena);
        times[1].push(bumped.m.elapsed);
        parallel = run_locked(&model, &images, &locked, threads);
        times[2].push(parallel.m.elapsed);
    }
    heap.m.elapsed = median(&mut times[0]);
    bumped.m.elapsed = median(&mut times[1]);
    parallel.m.elapsed = median(&mut times[2]);

    assert!(
        same_bits(&heap.probs, &bumped.probs),
        "Arena output differs"
    );
    assert!(
        same_bits(&heap.probs, &parallel.probs),
        "LockedArena output differs"
    );

    println!(
        "{IMAGES} images of {SIDE}x{SIDE}, batches of {BATCH}; outputs equal bit for bit: yes; \
         time: median of {REPEATS} interleaved runs after a warm-up\n"
    );
    println!(
        "| run | time | inner calls | inner bytes | arena calls | arena bytes | clean resets | memory system calls |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let rows = [
        ("heap (System)".to_string(), &heap),
        ("`Arena`, reset per batch".to_string(), &bumped),
        (
            format!("`LockedArena`, {threads} threads, reset per round"),
            &parallel,
        ),
    ];
    for (label, r) in rows {
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} |",
            ms(r.m.elapsed),
            r.m.inner_calls,
            Bytes(r.m.inner_bytes),
            r.m.arena_calls,
            Bytes(r.m.arena_bytes),
            if r.resets == 0 {
                "–".to_string()
            } else {
                format!("{}/{}", r.clean_resets, r.resets)
            },
            r.os_calls
        );
    }
    println!(
        "\nThe threaded row sums the spawning thread's `measure` and each child's; its \
         inner calls are std's bookkeeping for the spawns, which bumper::thread keeps on the heap."
    );
    println!("\n`Arena` afterwards:\n{}", arena.stats());
    println!("\n`LockedArena` afterwards:\n{}", locked.stats());
}
