//! Workload `mlp`: the forward pass of a small multilayer perceptron with
//! ndarray, written the obvious way with allocating operations
//! (`x.dot(&w) + &b`, `mapv`): 20 batches of 64x512 inputs through layers of
//! 512-512-512-10 (two hidden layers with ReLU, a linear output) per
//! iteration.
//!
//! Every batch allocates its activations (and the matrix kernel its packing
//! buffers), most of them 128 KiB, and frees them before the next: few, large
//! allocations, dominated by arithmetic. The weights and the inputs are made
//! once, outside the timing, from a fixed seed.

use ndarray::{Array1, Array2};

use super::Workload;
use super::rng::XorShift;

/// Batches per iteration.
pub const BATCHES: usize = 20;
/// Rows per batch.
pub const BATCH_ROWS: usize = 64;
/// Layer widths, input first.
pub const WIDTHS: [usize; 4] = [512, 512, 512, 10];
const SEED: u64 = 0xBB67_AE85_84CA_A73B;

/// The workload type registered in [`super::for_each_workload`].
pub struct Mlp;

/// The network and its inputs.
pub struct Input {
    layers: Vec<(Array2<f32>, Array1<f32>)>,
    batches: Vec<Array2<f32>>,
}

impl Workload for Mlp {
    const NAME: &'static str = "mlp";
    const LONG: bool = true;

    type Input = Input;

    fn input() -> Input {
        let mut rng = XorShift::new(SEED);
        let layers = WIDTHS
            .windows(2)
            .map(|w| {
                let (n_in, n_out) = (w[0], w[1]);
                // Glorot-uniform weights, small positive biases.
                let scale = (6.0 / (n_in + n_out) as f64).sqrt();
                let weights = Array2::from_shape_fn((n_in, n_out), |_| (rng.unit() * scale) as f32);
                let bias = Array1::from_shape_fn(n_out, |_| (0.01 + 0.01 * rng.unit()) as f32);
                (weights, bias)
            })
            .collect();
        let batches = (0..BATCHES)
            .map(|_| Array2::from_shape_fn((BATCH_ROWS, WIDTHS[0]), |_| rng.unit() as f32))
            .collect();
        Input { layers, batches }
    }

    fn run(input: &Input) -> u64 {
        let relu = |v: f32| v.max(0.0);
        let [(w1, b1), (w2, b2), (w3, b3)] = &input.layers[..] else {
            unreachable!("three layers")
        };
        let mut sum = 0u64;
        for x in &input.batches {
            let h = (x.dot(w1) + b1).mapv(relu);
            let h = (h.dot(w2) + b2).mapv(relu);
            let out = h.dot(w3) + b3;
            // The predicted class of each row, and the output's bits.
            for row in out.rows() {
                let best = row
                    .iter()
                    .enumerate()
                    .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
                sum = sum.wrapping_mul(11).wrapping_add(best.0 as u64);
            }
            sum = sum.wrapping_add(out.sum().to_bits() as u64);
        }
        sum
    }
}
