//! Workload `syn`: parse about 400 KB of real Rust into a `syn::File` and
//! print it back with `prettyplease`, then drop both.
//!
//! The input is shipped in `benches/data/syn_corpus.rs.txt`: bumper's own
//! sources (src/ and examples/) at one commit, each file wrapped in a
//! module, so it stays the same whatever the sources become.

use super::Workload;

/// The corpus.
pub const CORPUS: &str = include_str!("../data/syn_corpus.rs.txt");

/// The workload type registered in [`super::for_each_workload`].
pub struct Syn;

impl Workload for Syn {
    const NAME: &'static str = "syn";

    type Input = &'static str;

    fn input() -> &'static str {
        CORPUS
    }

    fn run(src: &&'static str) -> u64 {
        let file = syn::parse_file(src).expect("the corpus parses");
        let printed = prettyplease::unparse(&file);
        let items = file.items.len() as u64;
        drop(file);
        (printed.len() as u64) << 16 | items
    }
}
