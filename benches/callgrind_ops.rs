//! Not timed: instructions per operation under callgrind, for the
//! region-API operations of `benches/api/mod.rs` (the ones
//! `region_speed` times) and per alloc+free pair of the `small` workload
//! (in a region, with bumpalo's explicit API, and through the shim outside
//! a region). Prints one JSON document on stdout for
//! `scripts/bench_report.py`.
//!
//! ```sh
//! cargo bench -p bumper-benches --bench callgrind_ops -- [FILTER...] > callgrind.json
//! ```
//!
//! The driver runs every operation in a fresh process of this binary under
//! `valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect=bumper_bench_measured` with `BUMPER_RESERVE=1G`
//! (valgrind refuses the default 64 GiB reservation). Only instructions
//! executed inside `bumper_bench_measured` are counted: the loop that calls
//! the operation `n` times, so the fixture and any setup are not. The
//! count per operation is the total over `n`; it includes the loop and an
//! indirect call (the `enter-empty/no-region` row is that alone).
//!
//! Group `workload` counts every workload (but `threads2`: callgrind
//! counts the measuring thread only; and `mlp`, minutes under valgrind for
//! 320 allocations per iteration) under every allocator setting, in the
//! criterion bench binaries themselves (`alloc_glibc`, ..., `alloc_floor`,
//! run as `BIN --measure WORKLOAD SETTING`, see
//! `common::measured_child`): instructions per iteration, after two
//! unmeasured ones. They are found next to this binary (the newest
//! `alloc_*-<hash>` of the same directory), so build them first
//! (`cargo bench -p bumper-benches --no-run`); missing ones are skipped.
//!
//! `FILTER`s are substrings of `group/name`; `--out-dir DIR` keeps the
//! callgrind output files (default `<target>/bench/callgrind`).

mod api;
mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use bumpalo::Bump;
use bumper::{Arena, BumpArena, with_bumper};
use common::small::{ALLOCS, Small};
use common::{RegionArena, Workload, bumper_bench_measured, direct};
use serde_json::{Value, json};

#[global_allocator]
static GLOBAL: bumper::Bumper = bumper::Bumper::system();

/// Calls per operation: the API operations are a few dozen instructions,
/// a reset's setup is up to a million allocations, an iteration of
/// `small` is 100 000 pairs.
fn calls(group: &str) -> u64 {
    match group {
        "reset-scale" => 10,
        "small" => 4,
        _ => 100_000,
    }
}

/// Runs the one operation `group/name` under `bumper_bench_measured`.
struct One {
    group: String,
    name: String,
    found: bool,
}

impl One {
    fn is(&self, group: &str, name: &str) -> bool {
        self.group == group && self.name == name
    }
}

impl api::Sink for One {
    fn wants(&self, group: &'static str, name: &'static str) -> bool {
        self.is(group, name)
    }

    fn op<F: FnMut()>(&mut self, group: &'static str, name: &'static str, mut f: F) {
        if self.is(group, name) {
            self.found = true;
            // Warm: the first call may find a lane or fault a page in.
            f();
            bumper_bench_measured(calls(group), &mut f);
        }
    }

    fn op_in<A: BumpArena, F: FnMut()>(
        &mut self,
        arena: &A,
        group: &'static str,
        name: &'static str,
        mut f: F,
    ) {
        if self.is(group, name) {
            self.found = true;
            with_bumper(arena, || {
                f();
                bumper_bench_measured(calls(group), &mut f);
            });
        }
    }

    fn with_setup<T, S, R>(
        &mut self,
        group: &'static str,
        name: &'static str,
        mut setup: S,
        mut run: R,
    ) where
        S: FnMut() -> T,
        R: FnMut(T),
    {
        if self.is(group, name) {
            self.found = true;
            for _ in 0..calls(group) {
                let mut x = Some(setup());
                bumper_bench_measured(1, &mut || run(x.take().expect("one call")));
            }
        }
    }
}

/// The names of all operations, in order: the API ones, then `small`'s.
fn all_ops() -> Vec<(String, String)> {
    struct Names(Vec<(String, String)>);
    impl api::Sink for Names {
        fn wants(&self, _: &'static str, _: &'static str) -> bool {
            false
        }
        fn op<F: FnMut()>(&mut self, group: &'static str, name: &'static str, _: F) {
            self.0.push((group.into(), name.into()));
        }
        fn op_in<A: BumpArena, F: FnMut()>(
            &mut self,
            _: &A,
            group: &'static str,
            name: &'static str,
            _: F,
        ) {
            self.0.push((group.into(), name.into()));
        }
        fn with_setup<T, S, R>(&mut self, _: &'static str, _: &'static str, _: S, _: R)
        where
            S: FnMut() -> T,
            R: FnMut(T),
        {
        }
    }
    let mut n = Names(Vec::new());
    api::for_each_op(&mut n);
    for (name, ..) in api::RESET_CASES {
        n.0.push(("reset-scale".into(), name.into()));
    }
    for s in SMALL {
        n.0.push(("small".into(), s.into()));
    }
    n.0
}

/// The bench binaries and their settings counted in group `workload`.
const BINARIES: [(&str, &[&str]); 6] = [
    ("alloc_glibc", &["glibc"]),
    ("alloc_mimalloc", &["mimalloc"]),
    ("alloc_jemalloc", &["jemalloc"]),
    ("alloc_floor", &["floor"]),
    (
        "alloc_bumper",
        &["bumper-region", "bumper-no-region", "bumpalo"],
    ),
    (
        "alloc_bumper_mimalloc",
        &["bumper-mimalloc-region", "bumper-mimalloc-no-region"],
    ),
];

/// Workloads with a bumpalo version.
const WITH_BUMPALO: [&str; 2] = ["small", "vecgrow"];

/// The newest executable `<name>-<hash>` in `dir`.
fn sibling(dir: &std::path::Path, name: &str) -> Option<PathBuf> {
    let prefix = format!("{name}-");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let f = e.file_name();
            let f = f.to_string_lossy();
            f.starts_with(&prefix) && !f.contains('.')
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, p)| p)
}

/// The operations of group `workload`: (id, binary, workload, setting).
fn workload_ops() -> Vec<(String, &'static str, &'static str, &'static str)> {
    let mut v = Vec::new();
    for w in common::workload_names() {
        // threads2: callgrind counts the measuring thread only. mlp: its
        // matrix kernels take minutes under valgrind, for 320 allocations
        // per iteration.
        if w == "threads2" || w == "mlp" {
            continue;
        }
        for (bin, settings) in BINARIES {
            for &s in settings {
                if s == "bumpalo" && !WITH_BUMPALO.contains(&w) {
                    continue;
                }
                v.push((format!("workload/{w}/{s}"), bin, w, s));
            }
        }
    }
    v
}

/// The settings of `small` counted here.
const SMALL: [&str; 3] = ["bumper-region", "bumpalo", "bumper-no-region"];

/// One iteration of `small` per call, as the criterion benches run it.
fn small(setting: &str) {
    let n = calls("small");
    match setting {
        "bumper-region" => {
            let arena = RegionArena::Plain(Arena::new());
            let mut f = || {
                black_box(arena.run::<Small>(black_box(&()), &direct));
            };
            f();
            f();
            bumper_bench_measured(n, &mut f);
        }
        "bumpalo" => {
            let mut bump = Bump::new();
            let mut f = || {
                black_box(common::run_bumpalo::<Small>(black_box(&()), &mut bump));
            };
            f();
            f();
            bumper_bench_measured(n, &mut f);
        }
        "bumper-no-region" => {
            let mut f = || {
                black_box(Small::run(black_box(&())));
            };
            f();
            f();
            bumper_bench_measured(n, &mut f);
        }
        _ => panic!("unknown setting {setting:?} of small"),
    }
}

/// Runs one operation in this process (under valgrind, from the driver).
fn child(group: &str, name: &str) {
    if group == "small" {
        return small(name);
    }
    let mut one = One {
        group: group.into(),
        name: name.into(),
        found: false,
    };
    api::for_each_op(&mut one);
    assert!(one.found, "unknown operation {group}/{name}");
}

/// The total of callgrind's `Ir` in an output file.
fn callgrind_total(path: &PathBuf) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals: ")
                .or_else(|| l.strip_prefix("summary: "))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{}: no totals line", path.display()))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut only = Vec::new();
    let exe = std::env::current_exe().expect("own path");
    // `cargo bench` runs this in the package's directory: put the files
    // next to the build output instead, in `<target>/bench/callgrind`
    // (the executable is `<target>/release/deps/callgrind_ops-*`).
    let mut out_dir = exe
        .ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("bench")
        .join("callgrind");
    while let Some(a) = args.next() {
        match a.as_str() {
            "--one" => {
                let g = args.next().expect("group");
                let n = args.next().expect("name");
                return child(&g, &n);
            }
            "--out-dir" => out_dir = PathBuf::from(args.next().expect("a directory")),
            // Passed by `cargo bench`.
            "--bench" => {}
            s if s.starts_with('-') => panic!("unknown option {s:?}"),
            _ => only.push(a),
        }
    }

    let valgrind = Command::new("valgrind")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .expect("valgrind is not installed (it runs the counts)");
    std::fs::create_dir_all(&out_dir).expect("the output directory");
    let mut results = Vec::new();
    for (group, name) in all_ops() {
        let id = format!("{group}/{name}");
        if !only.is_empty() && !only.iter().any(|o| id.contains(o.as_str())) {
            continue;
        }
        eprintln!("callgrind_ops: {id}");
        let file = out_dir.join(format!("{group}.{name}.out"));
        let out = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg("--collect-atstart=no")
            .arg("--toggle-collect=bumper_bench_measured")
            .arg(format!("--callgrind-out-file={}", file.display()))
            .arg(&exe)
            .args(["--one", &group, &name])
            .env("BUMPER_RESERVE", "1G")
            .output()
            .expect("run valgrind");
        assert!(
            out.status.success(),
            "{id} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let n = calls(&group);
        let total = callgrind_total(&file);
        let mut rec = json!({
            "group": group,
            "name": name,
            "calls": n,
            "ir_total": total,
            "ir_per_call": total as f64 / n as f64,
        });
        if group == "small" {
            rec["pairs_per_call"] = json!(ALLOCS);
            rec["ir_per_pair"] = json!(total as f64 / (n as f64 * ALLOCS as f64));
        }
        results.push(rec);
    }
    let deps = exe
        .parent()
        .expect("the executable's directory")
        .to_path_buf();
    for (id, bin, w, setting) in workload_ops() {
        if !only.is_empty() && !only.iter().any(|o| id.contains(o.as_str())) {
            continue;
        }
        let Some(path) = sibling(&deps, bin) else {
            eprintln!("callgrind_ops: {id}: no {bin} binary next to this one (build it first)");
            continue;
        };
        eprintln!("callgrind_ops: {id}");
        let file = out_dir.join(format!("workload.{w}.{setting}.out"));
        let out = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg("--collect-atstart=no")
            .arg("--toggle-collect=bumper_bench_measured")
            .arg(format!("--callgrind-out-file={}", file.display()))
            .arg(&path)
            .args(["--measure", w, setting])
            .env("BUMPER_RESERVE", "1G")
            .output()
            .expect("run valgrind");
        assert!(
            out.status.success(),
            "{id} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let n = common::measured_iters(w);
        let total = callgrind_total(&file);
        results.push(json!({
            "group": "workload",
            "name": format!("{w}/{setting}"),
            "workload": w,
            "setting": setting,
            "calls": n,
            "ir_total": total,
            "ir_per_call": total as f64 / n as f64,
        }));
    }
    let doc: Value = json!({
        "tool": "callgrind_ops",
        "valgrind": valgrind,
        "env": "BUMPER_RESERVE=1G",
        "date_unix": SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "note": "instructions (Ir) executed inside bumper_bench_measured, per call of the operation",
        "results": results,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).expect("serialisable")
    );
}
