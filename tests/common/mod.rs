//! Shared test support, one file per helper:
//!
//! - [`child`]: run one test of this binary again, alone, in a child
//!   process, with a timeout, and check how it ended;
//! - [`counting`]: the counting inner allocator, which panics if it is ever
//!   handed an arena pointer, and `counting_shim!()`, which installs bumper
//!   over it;
//! - [`env`]: sizes and seeds from the environment;
//! - [`pattern`]: fill memory with a pattern derived from an id and check
//!   it, without allocating;
//! - [`rng`]: one small deterministic pseudo-random generator.
//!
//! Each test file is a crate of its own that includes this module and uses
//! only some of it.
#![allow(dead_code)]

pub mod child;
pub mod counting;
pub mod env;
pub mod pattern;
pub mod rng;

// The most used items, also at the top. A test file that uses none of them
// would otherwise warn.
#[allow(unused_imports)]
pub use child::{Child, Expect, is_child};
#[allow(unused_imports)]
pub use counting::{Counting, InnerCalls, count_inner, global_inner_frees, inner_calls};
#[allow(unused_imports)]
pub use env::env_or;
#[allow(unused_imports)]
pub use rng::Rng;
