//! A batch job under rayon (issue 16, §3): 600 JSON documents (about
//! 100 KB each) made, parsed into `serde_json::Value`, transformed and
//! serialised again, in `par_iter().map(..)`, three ways:
//!
//! - `heap`: no region (the system allocator behind the shim);
//! - `locked-region`: one `LockedArena`, `region.enter(|| work(doc))` per
//!   item, one reset after the batch (the pattern the guide gave before
//!   `scratch`);
//! - `scratch`: `bumper::scratch(|| work(doc))` per item: each worker's own
//!   arena, reset after every item.
//!
//! Each mode runs in a child process of this example, 3 interleaved rounds,
//! so that each peak RSS (`VmHWM`) is that mode's alone; the table shows
//! medians. The outputs are checked to be equal to the heap's byte for byte
//! (by their total length and a checksum).
//!
//! Run it with `cargo run --release --example scratch`.

use std::time::{Duration, Instant};

use bumper::{Bumper, Bytes, LockedArena};
use rayon::prelude::*;
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

const DOCS: usize = 600;
const RECORDS: usize = 800;
const ROUNDS: usize = 3;
const THREADS: usize = 2;

/// Document `i`: an array of `RECORDS` records.
fn document(i: usize) -> String {
    let records: Vec<Value> = (0..RECORDS)
        .map(|k| {
            json!({
                "id": i * RECORDS + k,
                "name": format!("record {k} of document {i}"),
                "tags": ["alpha", "beta", format!("t{}", k % 7)],
                "score": (k * 37 % 101) as f64 / 7.0,
            })
        })
        .collect();
    serde_json::to_string(&records).expect("serialise")
}

/// The work on document `i`, which it makes first (as a job that reads its
/// input would): knows nothing about bumper. Returns the
/// output's length and a checksum, plain values (nothing allocated inside
/// escapes).
fn work(i: usize) -> (usize, u64) {
    let doc = document(i);
    let mut v: Value = serde_json::from_str(&doc).expect("valid JSON");
    for r in v.as_array_mut().expect("an array") {
        let name = r["name"].as_str().unwrap_or("").to_uppercase();
        r["name"] = Value::String(name);
        r["seen"] = Value::Bool(true);
    }
    let out = serde_json::to_string(&v).expect("serialise");
    let sum = out
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    (out.len(), sum)
}

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Runs the batch in `mode`; prints `nanos total_len checksum peak_rss`.
fn child(mode: &str) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .expect("a rayon pool");
    let docs: Vec<usize> = (0..DOCS).collect();
    let locked = LockedArena::new();
    let region = locked.region();
    let start = Instant::now();
    let results: Vec<(usize, u64)> = pool.install(|| match mode {
        "heap" => docs.par_iter().map(|&d| work(d)).collect(),
        "locked-region" => {
            let r = docs.par_iter().map(|&d| region.enter(|| work(d))).collect();
            assert!(locked.reset().is_clean());
            r
        }
        "scratch" => docs
            .par_iter()
            .map(|&d| bumper::scratch(|| work(d)))
            .collect(),
        _ => panic!("unknown mode {mode}"),
    });
    let elapsed = start.elapsed();
    let len: usize = results.iter().map(|r| r.0).sum();
    let sum = results.iter().fold(0u64, |h, r| h.wrapping_add(r.1));
    println!("{} {len} {sum} {}", elapsed.as_nanos(), peak_rss());
}

fn main() {
    if let Some(mode) = std::env::args().nth(1) {
        return child(&mode);
    }
    const MODES: [&str; 3] = ["heap", "locked-region", "scratch"];
    let mut rows: Vec<Vec<[u64; 4]>> = vec![Vec::new(); MODES.len()];
    for _ in 0..ROUNDS {
        for (m, row) in MODES.iter().zip(rows.iter_mut()) {
            let out = std::process::Command::new(std::env::current_exe().expect("own path"))
                .arg(m)
                .output()
                .expect("run a child");
            assert!(
                out.status.success(),
                "{m}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: Vec<u64> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(|w| w.parse().expect("a number"))
                .collect();
            row.push(v.try_into().expect("four figures"));
        }
    }
    let median = |mut v: Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    println!(
        "{DOCS} JSON documents of {RECORDS} records (parse, transform, serialise) over \
         {THREADS} rayon threads; {ROUNDS} interleaved child processes per mode, medians\n"
    );
    println!("| mode | time | peak RSS | output |");
    println!("|---|---:|---:|---|");
    let heap = (rows[0][0][1], rows[0][0][2]);
    for (m, row) in MODES.iter().zip(&rows) {
        for r in row {
            assert_eq!(
                (r[1], r[2]),
                heap,
                "{m}: the output differs from the heap's"
            );
        }
        let t = Duration::from_nanos(median(row.iter().map(|r| r[0]).collect()));
        let peak = median(row.iter().map(|r| r[3]).collect());
        println!(
            "| {m} | {:.1} ms | {} | equal to the heap's |",
            t.as_secs_f64() * 1e3,
            Bytes(peak)
        );
    }
}
