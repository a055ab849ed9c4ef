//! Workload `btree`: 50 000 keys made with `format!` inserted into a
//! `BTreeMap<String, u64>`, walked once, and dropped: many small strings
//! (about 24 B each) plus the map's nodes, freed all at the end.

use std::collections::BTreeMap;

use super::Workload;
use super::rng::XorShift;

/// Keys inserted per iteration.
pub const KEYS: u64 = 50_000;
const SEED: u64 = 0x2545_F491_4F6C_DD1D;

/// The workload type registered in [`super::for_each_workload`].
pub struct Btree;

impl Workload for Btree {
    const NAME: &'static str = "btree";

    type Input = ();

    fn input() {}

    fn run(_: &()) -> u64 {
        let mut rng = XorShift::new(SEED);
        let mut map = BTreeMap::new();
        for i in 0..KEYS {
            // xorshift64 has no repeats this short: every key is new.
            map.insert(format!("key-{:x}-{i}", rng.next_u64() >> 16), i);
        }
        let mut sum = map.len() as u64;
        for (k, v) in map.iter().step_by(61) {
            sum = sum.wrapping_mul(31).wrapping_add(k.len() as u64 + v);
        }
        sum
    }
}
