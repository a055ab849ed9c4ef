//! Not timed: for every workload and allocator setting, the calls that reach
//! the inner allocator per iteration, and the process's peak RSS. Prints one
//! JSON document on stdout for `scripts/bench_report.py`.
//!
//! ```sh
//! cargo bench -p bumper-benches --bench alloc_count -- [--iters N] [WORKLOAD...] > counts.json
//! ```
//!
//! The global allocator is `Bumper<Counting>`: `Counting` counts every call
//! (on all threads) and passes it to the inner allocator named by the
//! environment variable `BENCH_INNER` (`system`, `mimalloc` or `jemalloc`),
//! read once at the first allocation. The driver runs each (workload,
//! setting) pair in a fresh process of this binary (`--one WORKLOAD
//! SETTING`), so that each peak RSS (`VmHWM` of `/proc/self/status`) is that
//! pair's alone. Settings:
//!
//! | setting | inner | how an iteration runs |
//! |---|---|---|
//! | `glibc`, `mimalloc`, `jemalloc` | that allocator | bare, outside any region |
//! | `floor` | the floor (`common::floor`) | bare, in a `floor::scope` (its reset) |
//! | `bumpalo` | system | bumpalo's explicit API, `Bump` reset per iteration |
//! | `bumper-region` | system | in a region, checkpoint and reset per iteration |
//! | `bumper-mimalloc-region` | mimalloc | the same |
//!
//! The peers run under the shim too, outside any region, where it passes
//! every call on, so their counts are the calls the workload makes of its
//! allocator. `bumper-no-region` and `bumper-mimalloc-no-region` are exactly
//! that, so they are not run again: their counts are glibc's and mimalloc's.
//!
//! Per iteration, the first iteration (cold: the arena grows) is reported
//! apart from the mean of the others (steady state), and calls made while a
//! thread was inside a region are counted apart (`in_region`).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};

use bumpalo::Bump;
use common::{RegionArena, Visitor, Workload};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: bumper::Bumper<Counting> = bumper::Bumper::new(Counting);

/// The settings run, with their inner allocator and mode.
const SETTINGS: [(&str, Inner, Mode); 7] = [
    ("glibc", Inner::System, Mode::Bare),
    ("mimalloc", Inner::Mimalloc, Mode::Bare),
    ("jemalloc", Inner::Jemalloc, Mode::Bare),
    ("floor", Inner::Floor, Mode::Floor),
    ("bumpalo", Inner::System, Mode::Bumpalo),
    ("bumper-region", Inner::System, Mode::Region),
    ("bumper-mimalloc-region", Inner::Mimalloc, Mode::Region),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bare,
    Bumpalo,
    Region,
    /// In a `floor::scope` (the inner allocator is the floor).
    Floor,
}

#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Inner {
    System = 1,
    Mimalloc = 2,
    Jemalloc = 3,
    Floor = 4,
}

impl Inner {
    fn env_name(self) -> &'static str {
        match self {
            Inner::System => "system",
            Inner::Mimalloc => "mimalloc",
            Inner::Jemalloc => "jemalloc",
            Inner::Floor => "floor",
        }
    }
}

/// 0 until the first allocation has read `BENCH_INNER`.
static INNER: AtomicU8 = AtomicU8::new(0);

fn inner() -> Inner {
    match INNER.load(Relaxed) {
        1 => Inner::System,
        2 => Inner::Mimalloc,
        3 => Inner::Jemalloc,
        4 => Inner::Floor,
        _ => {
            // The first allocation happens before `main`, on the only
            // thread. `getenv` does not allocate.
            // SAFETY: the argument is a NUL-terminated string; the result is
            // null or a NUL-terminated string that lives as long as the
            // environment is not changed, and this program never changes it.
            let v = unsafe { libc::getenv(c"BENCH_INNER".as_ptr()) };
            let name = if v.is_null() {
                &b"system"[..]
            } else {
                // SAFETY: see above.
                unsafe { std::ffi::CStr::from_ptr(v) }.to_bytes()
            };
            let i = match name {
                b"mimalloc" => Inner::Mimalloc,
                b"jemalloc" => Inner::Jemalloc,
                b"floor" => Inner::Floor,
                _ => Inner::System,
            };
            INNER.store(i as u8, Relaxed);
            i
        }
    }
}

/// Counts every call, then passes it to the inner allocator.
struct Counting;

/// Calls by kind: alloc, alloc_zeroed, realloc, dealloc; then bytes
/// requested (alloc, alloc_zeroed and realloc's new size); then calls made
/// by a thread inside a region.
static COUNTS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
const ALLOC: usize = 0;
const ZEROED: usize = 1;
const REALLOC: usize = 2;
const DEALLOC: usize = 3;
const BYTES: usize = 4;
const IN_REGION: usize = 5;

thread_local! {
    /// Whether this thread is running a workload's body inside a region.
    static IN: Cell<bool> = const { Cell::new(false) };
}

fn count(kind: usize, bytes: usize) {
    COUNTS[kind].fetch_add(1, Relaxed);
    COUNTS[BYTES].fetch_add(bytes as u64, Relaxed);
    if IN.try_with(Cell::get).unwrap_or(false) {
        COUNTS[IN_REGION].fetch_add(1, Relaxed);
    }
}

// SAFETY: every call is passed on unchanged to one allocator, the same for
// the whole life of the process (chosen before the first allocation).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(ALLOC, layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe {
            match inner() {
                Inner::System => System.alloc(layout),
                Inner::Mimalloc => mimalloc::MiMalloc.alloc(layout),
                Inner::Jemalloc => tikv_jemallocator::Jemalloc.alloc(layout),
                Inner::Floor => common::floor::Floor.alloc(layout),
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(ZEROED, layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe {
            match inner() {
                Inner::System => System.alloc_zeroed(layout),
                Inner::Mimalloc => mimalloc::MiMalloc.alloc_zeroed(layout),
                Inner::Jemalloc => tikv_jemallocator::Jemalloc.alloc_zeroed(layout),
                Inner::Floor => common::floor::Floor.alloc_zeroed(layout),
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(REALLOC, new_size);
        // SAFETY: the caller's contract, passed on; `ptr` came from the same
        // allocator.
        unsafe {
            match inner() {
                Inner::System => System.realloc(ptr, layout, new_size),
                Inner::Mimalloc => mimalloc::MiMalloc.realloc(ptr, layout, new_size),
                Inner::Jemalloc => tikv_jemallocator::Jemalloc.realloc(ptr, layout, new_size),
                Inner::Floor => common::floor::Floor.realloc(ptr, layout, new_size),
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(DEALLOC, 0);
        // SAFETY: the caller's contract, passed on; `ptr` came from the same
        // allocator.
        unsafe {
            match inner() {
                Inner::System => System.dealloc(ptr, layout),
                Inner::Mimalloc => mimalloc::MiMalloc.dealloc(ptr, layout),
                Inner::Jemalloc => tikv_jemallocator::Jemalloc.dealloc(ptr, layout),
                Inner::Floor => common::floor::Floor.dealloc(ptr, layout),
            }
        }
    }
}

fn snapshot() -> [u64; 6] {
    std::array::from_fn(|i| COUNTS[i].load(Relaxed))
}

/// An `Enter` that marks the thread as inside a region while the body runs.
fn enter_marked(body: &dyn Fn() -> u64) -> u64 {
    struct Unmark;
    impl Drop for Unmark {
        fn drop(&mut self) {
            IN.with(|c| c.set(false));
        }
    }
    IN.with(|c| c.set(true));
    let _unmark = Unmark;
    body()
}

/// A field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Peak RSS in KiB: `VmHWM`, or `getrusage` where there is no `/proc`.
fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:").unwrap_or_else(|| {
        // SAFETY: `getrusage` fills the struct it is given.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above; RUSAGE_SELF is valid.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        ru.ru_maxrss as u64
    })
}

/// Per-iteration counts as JSON: calls by kind, their total, bytes, and
/// calls inside a region.
fn per_iter(d: [u64; 6], iters: u64) -> Value {
    let f = |x: u64| x as f64 / iters as f64;
    json!({
        "calls": f(d[ALLOC] + d[ZEROED] + d[REALLOC] + d[DEALLOC]),
        "alloc": f(d[ALLOC] + d[ZEROED]),
        "realloc": f(d[REALLOC]),
        "dealloc": f(d[DEALLOC]),
        "bytes": f(d[BYTES]),
        "in_region": f(d[IN_REGION]),
    })
}

fn diff(a: [u64; 6], b: [u64; 6]) -> [u64; 6] {
    std::array::from_fn(|i| b[i] - a[i])
}

/// Runs workload `W` `iters` times in `mode` and returns the JSON record.
fn measure_one<W: Workload>(setting: &str, mode: Mode, iters: u64) -> Value {
    let input = W::input();
    let rss_input = status_kib("VmRSS:").unwrap_or(0);
    let region = (mode == Mode::Region).then(RegionArena::for_workload::<W>);
    let mut bump = (mode == Mode::Bumpalo).then(Bump::new);
    let mut one = || -> u64 {
        match (mode, &region, &mut bump) {
            (Mode::Region, Some(r), _) => r.run::<W>(black_box(&input), &enter_marked),
            (Mode::Floor, ..) => common::floor::scope(|| W::run(black_box(&input))),
            (Mode::Bumpalo, _, Some(b)) => {
                common::run_bumpalo::<W>(black_box(&input), b).expect("a bumpalo version")
            }
            _ => W::run(black_box(&input)),
        }
    };

    let s0 = snapshot();
    let check = one();
    let s1 = snapshot();
    let stats_before = region.as_ref().map(RegionArena::stats);
    for _ in 1..iters {
        assert_eq!(one(), check, "{}: not deterministic", W::NAME);
    }
    let s2 = snapshot();
    let steady = iters.saturating_sub(1).max(1);
    let mut rec = json!({
        "workload": W::NAME,
        "setting": setting,
        "iters": iters,
        "checksum": format!("{check:016x}"),
        "first": per_iter(diff(s0, s1), 1),
        "steady": per_iter(diff(s1, s2), steady),
        "rss_input_kib": rss_input,
        "peak_rss_kib": peak_rss_kib(),
    });
    if let (Some(r), Some(before)) = (&region, stats_before) {
        let after = r.stats();
        rec["arena"] = json!({
            "allocations_per_iter": (after.allocations - before.allocations) as f64 / steady as f64,
            "bytes_per_iter": (after.bytes_allocated - before.bytes_allocated) as f64 / steady as f64,
            "escapes": after.escapes,
            "bytes_in_use_after": after.bytes_in_use,
            "chunk_bytes": after.chunk_bytes,
            "chunks": after.chunks,
            "peak_bytes_in_use": after.peak_bytes_in_use,
        });
    }
    rec
}

/// Runs one (workload, setting) pair in this process and prints its record.
fn child(workload: &str, setting: &str, iters: u64) {
    let &(_, inner_wanted, mode) = SETTINGS
        .iter()
        .find(|s| s.0 == setting)
        .unwrap_or_else(|| panic!("unknown setting {setting:?}"));
    assert!(
        inner() == inner_wanted,
        "{setting}: run with BENCH_INNER={}",
        inner_wanted.env_name()
    );
    struct One<'a> {
        workload: &'a str,
        setting: &'a str,
        mode: Mode,
        iters: u64,
        out: Option<Value>,
    }
    impl Visitor for One<'_> {
        fn visit<W: Workload>(&mut self) {
            if W::NAME != self.workload {
                return;
            }
            if self.mode == Mode::Bumpalo && W::EXPLICIT_BUMP.is_none() {
                self.out = Some(Value::Null);
                return;
            }
            self.out = Some(measure_one::<W>(self.setting, self.mode, self.iters));
        }
    }
    let mut v = One {
        workload,
        setting,
        mode,
        iters,
        out: None,
    };
    common::for_each_workload(&mut v);
    let out = v
        .out
        .unwrap_or_else(|| panic!("unknown workload {workload:?}"));
    println!("{out}");
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut iters = 5u64;
    let mut only = Vec::new();
    let mut one = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--iters" => {
                iters = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n >= 2)
                    .expect("--iters N, N >= 2")
            }
            "--one" => {
                one = Some((
                    args.next().expect("workload"),
                    args.next().expect("setting"),
                ))
            }
            // Passed by `cargo bench`.
            "--bench" => {}
            s if s.starts_with('-') => panic!("unknown option {s:?}"),
            _ => only.push(a),
        }
    }
    if let Some((w, s)) = one {
        return child(&w, &s, iters);
    }

    let exe = std::env::current_exe().expect("own path");
    let mut results = Vec::new();
    for w in common::workload_names() {
        if !only.is_empty() && !only.iter().any(|o| w.contains(o.as_str())) {
            continue;
        }
        for &(setting, inner, _) in &SETTINGS {
            eprintln!("alloc_count: {w} / {setting}");
            let out = Command::new(&exe)
                .args(["--one", w, setting, "--iters", &iters.to_string()])
                .env("BENCH_INNER", inner.env_name())
                .output()
                .expect("run alloc_count --one");
            assert!(
                out.status.success(),
                "{w} / {setting} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let rec: Value = serde_json::from_slice(&out.stdout).expect("a JSON record");
            if !rec.is_null() {
                results.push(rec);
            }
        }
    }
    let doc = json!({
        "tool": "alloc_count",
        "iters": iters,
        "note": "per-iteration means; 'first' is the first iteration, 'steady' the mean of the others",
        "results": results,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).expect("serialisable")
    );
}
