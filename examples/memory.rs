//! Bounded memory, measured: resident memory (RSS) and memory system calls
//! for the loops a long-running program runs.
//!
//! 1. The rare-escape loop: each iteration uses 1 MiB of scratch inside
//!    `no_escape` and leaves one 16-byte block alive for good (pushed into a
//!    global list, like a cache entry or a log line).
//! 2. A spike, then a steady loop: one iteration needs 256 MiB, the next ones
//!    about 1 MiB.
//! 3. System calls per iteration of a steady loop.
//! 4. Peak RSS of a JSON parse loop, against the system allocator alone (in
//!    a child process, so that the two peaks are measured apart).
//!
//! Run it with `cargo run --release --example memory`.

use std::hint::black_box;
use std::sync::Mutex;

use bumper::{Arena, Bumper, Bytes, space_stats, with_bumper};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

/// The process's resident memory, from `/proc/self/statm` (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY: `sysconf` with a valid name has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page
}

/// The process's peak resident memory (`VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn signed(from: u64, to: u64) -> String {
    if to >= from {
        format!("+{}", Bytes(to - from))
    } else {
        format!("-{}", Bytes(from - to))
    }
}

static CACHE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn rare_escapes() {
    println!("1. rare escapes: 1 MiB of scratch and one 16 B block kept per iteration");
    // The global list itself lives on the heap.
    CACHE.lock().unwrap().reserve(1000);
    let arena = Arena::new();
    let start = rss();
    for i in 0..1000u32 {
        with_bumper(&arena, || {
            arena.no_escape(|| {
                let mut scratch = vec![0u8; 1 << 20];
                let at = (i as usize * 4099) % scratch.len();
                scratch[at] = i as u8;
                black_box(&scratch);
                CACHE.lock().unwrap().push(vec![i as u8; 16]); // escapes
            })
        });
        if (i + 1) % 250 == 0 {
            println!(
                "   after {:>4} iterations: RSS {} ({} since the start)",
                i + 1,
                Bytes(rss()),
                signed(start, rss())
            );
        }
    }
    let s = arena.stats();
    println!(
        "   kept {} escaped blocks ({}); the arena holds {} of chunks",
        s.live_blocks,
        Bytes(s.live_bytes),
        Bytes(s.chunk_bytes)
    );
    assert!(
        CACHE
            .lock()
            .unwrap()
            .iter()
            .enumerate()
            .all(|(i, v)| v == &vec![i as u8; 16])
    );
}

fn spike_then_steady() {
    println!("2. a spike of 256 MiB, then a steady loop of about 1 MiB per iteration");
    let arena = Arena::new();
    let iteration = |bytes: usize| {
        with_bumper(&arena, || {
            arena.no_escape(|| {
                let blocks: Vec<Vec<u8>> = (0..bytes / 4096).map(|i| vec![i as u8; 4096]).collect();
                black_box(blocks.len())
            })
        })
    };
    for _ in 0..5 {
        iteration(1 << 20);
    }
    let steady = rss();
    println!("   steady:                 RSS {}", Bytes(steady));
    iteration(256 << 20);
    println!("   after the spike:        RSS {}", Bytes(rss()));
    for i in 1..=10 {
        iteration(1 << 20);
        if i == 1 || i == 7 || i == 8 || i == 10 {
            println!(
                "   {i:>2} resets later:        RSS {} ({} against steady)",
                Bytes(rss()),
                signed(steady, rss())
            );
        }
    }
}

fn syscalls_in_a_steady_loop() {
    println!("3. memory system calls per iteration of a steady loop");
    let arena = Arena::new();
    let iteration = || {
        with_bumper(&arena, || {
            arena.no_escape(|| {
                let v: Vec<String> = (0..2000).map(|i| format!("item {i}")).collect();
                black_box(v.len())
            })
        })
    };
    for _ in 0..10 {
        iteration();
    }
    let before = space_stats().os_calls;
    for _ in 0..10_000 {
        iteration();
    }
    let calls = space_stats().os_calls - before;
    println!(
        "   {calls} calls in 10000 iterations after a warm-up of 10 ({} per iteration)",
        calls as f64 / 10_000.0
    );
}

/// A deterministic JSON document of about 1 MB.
fn document() -> String {
    let mut s = String::from("[");
    for i in 0..8000 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"id":{i},"name":"user-{i}","tags":["a","b","c"],"score":{}.5,"nested":{{"x":{i},"y":[1,2,3]}}}}"#,
            i % 97
        ));
    }
    s.push(']');
    s
}

fn json_loop(use_arena: bool) -> u64 {
    let doc = document();
    let arena = Arena::new();
    let mut total = 0u64;
    for _ in 0..50 {
        let parse = || {
            let v: serde_json::Value = serde_json::from_str(&doc).expect("valid JSON");
            v.as_array().map_or(0, |a| a.len() as u64)
        };
        total += if use_arena {
            with_bumper(&arena, || arena.no_escape(parse))
        } else {
            parse()
        };
    }
    total
}

fn json_peak() {
    println!("4. peak RSS of a JSON parse loop (50 parses of a ~1 MB document)");
    for (label, arg) in [
        ("system allocator", "json-heap"),
        ("bumper, a reset per document", "json-arena"),
    ] {
        let out = std::process::Command::new(std::env::current_exe().expect("own path"))
            .arg(arg)
            .output()
            .expect("run a child");
        println!(
            "   {label:<30} peak RSS {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("json-heap") => {
            black_box(json_loop(false));
            println!("{}", Bytes(peak_rss()));
            return;
        }
        Some("json-arena") => {
            black_box(json_loop(true));
            println!("{}", Bytes(peak_rss()));
            return;
        }
        _ => {}
    }
    rare_escapes();
    spike_then_steady();
    syscalls_in_a_steady_loop();
    json_peak();
}
