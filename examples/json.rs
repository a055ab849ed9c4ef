//! A JSON pipeline through serde_json, which knows nothing about bumper:
//! parse, transform and serialise many documents in a loop, with a reset
//! per document.
//!
//! Each document is an order with 20 to 200 line items, generated
//! deterministically into a buffer allocated before the loop (so generating
//! it allocates nothing). Per document the pipeline parses it into a
//! `serde_json::Value`, builds a new `Value` from it (upper-cased strings,
//! items with no quantity dropped, per-item totals, sorted and counted tags,
//! a summary; the metadata dropped) and serialises that into an output
//! buffer, also allocated before the loop. The heap run does this with no
//! region; the arena run inside `with_bumper(&arena, ..)`, with
//! `arena.reset()` after each document.
//!
//! The table shows wall time (the median of 5 interleaved runs after a
//! warm-up); what `bumper::measure` saw (calls and bytes that reached the
//! inner allocator, calls and bytes served by the arena); the memory system
//! calls bumper made during the loop (`space_stats()`); and the peak
//! resident memory (`VmHWM`) of the same loop run alone in a child process
//! of this example, once on the heap and once in the arena. The two runs'
//! outputs are compared by digest here and byte for byte in
//! `tests/json.rs`.
//!
//! Run it with `cargo run --release --example json`.

use std::fmt::Write as _;
use std::time::Duration;

use bumper::{Arena, Bumper, Bytes, Measurement, measure, space_stats, with_bumper};
use serde_json::{Map, Value};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

/// Documents in the example's run.
pub const DOCS: usize = 2000;
/// The most line items a document has.
const MAX_ITEMS: u64 = 200;
/// An upper bound on a document's size, and on its output's.
pub const MAX_DOC_BYTES: usize = 64 << 10;

const TAGS: [&str; 8] = [
    "fragile", "gift", "bulk", "express", "refurb", "eco", "sale", "import",
];
const TIERS: [&str; 3] = ["gold", "silver", "bronze"];

/// xorshift64 on a per-document seed, so any document can be made alone.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Writes document `i` into `out` (cleared first). `write!` into a `String`
/// with room to spare allocates nothing.
pub fn generate(i: usize, out: &mut String) {
    let mut rng = XorShift::new(i as u64 + 1);
    out.clear();
    let customer = rng.below(10_000);
    let tier = TIERS[rng.below(3) as usize];
    let _ = write!(
        out,
        r#"{{"id":{i},"customer":{{"name":"customer {customer}","email":"c{customer}@shop{}.example","tier":"{tier}"}},"created":"2026-{:02}-{:02}T{:02}:{:02}:00Z","items":["#,
        rng.below(50),
        1 + rng.below(12),
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
    );
    let items = 20 + rng.below(MAX_ITEMS - 19);
    for k in 0..items {
        if k > 0 {
            out.push(',');
        }
        let cents = 99 + rng.below(100_000);
        let _ = write!(
            out,
            r#"{{"sku":"sku-{:05}","qty":{},"price":{}.{:02},"tags":["#,
            rng.below(100_000),
            rng.below(6),
            cents / 100,
            cents % 100
        );
        for t in 0..rng.below(4) {
            if t > 0 {
                out.push(',');
            }
            let _ = write!(out, r#""{}""#, TAGS[rng.below(8) as usize]);
        }
        out.push(']');
        if rng.below(4) == 0 {
            let _ = write!(out, r#","note":"leave at door {}""#, rng.below(100));
        }
        out.push('}');
    }
    let _ = write!(
        out,
        r#"],"meta":{{"source":"api-v{}","retries":{},"flags":[true,false,null]}}}}"#,
        rng.below(4),
        rng.below(3)
    );
}

fn round_cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The transformation: a new document built from the parsed one.
pub fn transform(doc: &Value) -> Value {
    let customer = &doc["customer"];
    let name = customer["name"].as_str().unwrap_or_default();
    let email = customer["email"].as_str().unwrap_or_default();
    let mut by_tag: Map<String, Value> = Map::new();
    let mut items = Vec::new();
    let mut total = 0.0;
    for item in doc["items"].as_array().into_iter().flatten() {
        let qty = item["qty"].as_u64().unwrap_or(0);
        if qty == 0 {
            continue;
        }
        let price = item["price"].as_f64().unwrap_or(0.0);
        let line = round_cents(qty as f64 * price);
        total += line;
        let mut tags: Vec<String> = item["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
        tags.sort();
        tags.dedup();
        for t in &tags {
            let n = by_tag.entry(t.clone()).or_insert(Value::from(0u64));
            *n = Value::from(n.as_u64().unwrap_or(0) + qty);
        }
        let mut out = Map::new();
        out.insert(
            "sku".into(),
            item["sku"]
                .as_str()
                .unwrap_or_default()
                .to_uppercase()
                .into(),
        );
        out.insert("qty".into(), qty.into());
        out.insert("price".into(), price.into());
        out.insert("line_total".into(), line.into());
        out.insert("tags".into(), tags.join(",").into());
        if let Some(note) = item["note"].as_str() {
            out.insert("note".into(), format!("NOTE: {note}").into());
        }
        items.push(Value::Object(out));
    }
    let mut summary = Map::new();
    summary.insert("items".into(), items.len().into());
    summary.insert("total".into(), round_cents(total).into());
    summary.insert("by_tag".into(), Value::Object(by_tag));
    let mut out = Map::new();
    out.insert("id".into(), doc["id"].clone());
    out.insert("customer".into(), name.to_uppercase().into());
    out.insert(
        "domain".into(),
        email.split_once('@').map_or("", |(_, d)| d).into(),
    );
    out.insert("tier".into(), customer["tier"].clone());
    out.insert("created".into(), doc["created"].clone());
    out.insert("items".into(), Value::Array(items));
    out.insert("summary".into(), Value::Object(summary));
    Value::Object(out)
}

/// Parse, transform, serialise: appends document `input`'s output to `out`.
fn pipeline(input: &str, out: &mut Vec<u8>) {
    let doc: Value = serde_json::from_str(input).expect("a valid document");
    let result = transform(&doc);
    serde_json::to_writer(out, &result).expect("writing to a Vec");
}

/// FNV-1a: a digest of one document's output.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// What a run produced and what it cost.
pub struct JsonRun {
    /// Each document's output digest.
    pub digests: Vec<u64>,
    /// Every document's output, one after the other, if the run kept them.
    pub outputs: Vec<u8>,
    /// Bytes of JSON parsed.
    pub input_bytes: u64,
    /// Bytes of JSON written.
    pub output_bytes: u64,
    /// Time and allocator calls of the loop.
    pub m: Measurement,
    /// Arena resets.
    pub resets: usize,
    /// Of the resets, those that reclaimed everything.
    pub clean_resets: usize,
    /// Memory system calls bumper made during the loop (process-wide).
    pub os_calls: u64,
}

/// Runs the pipeline over `docs` documents, in `arena` with a reset per
/// document if given, on the heap otherwise. With `keep`, every output is
/// kept in `outputs` (room for them is reserved before the loop); without,
/// only digests.
pub fn run(docs: usize, arena: Option<&Arena>, keep: bool) -> JsonRun {
    // Everything the loop writes to is allocated before it.
    let mut input = String::with_capacity(MAX_DOC_BYTES);
    let mut outputs = Vec::with_capacity(MAX_DOC_BYTES * if keep { docs } else { 1 });
    let mut digests = Vec::with_capacity(docs);
    let (mut input_bytes, mut output_bytes) = (0u64, 0u64);
    let (mut resets, mut clean_resets) = (0, 0);
    let mut one = |i: usize| {
        generate(i, &mut input);
        if !keep {
            outputs.clear();
        }
        let start = outputs.len();
        pipeline(&input, &mut outputs);
        digests.push(fnv1a(&outputs[start..]));
        input_bytes += input.len() as u64;
        output_bytes += (outputs.len() - start) as u64;
    };
    let os = space_stats().os_calls;
    let ((), m) = measure(|| match arena {
        None => (0..docs).for_each(&mut one),
        Some(arena) => with_bumper(arena, || {
            for i in 0..docs {
                one(i);
                let report = arena.reset();
                resets += 1;
                clean_resets += usize::from(report.is_clean());
            }
        }),
    });
    JsonRun {
        digests,
        outputs,
        input_bytes,
        output_bytes,
        m,
        resets,
        clean_resets,
        os_calls: space_stats().os_calls - os,
    }
}

/// The process's peak resident memory (`VmHWM`, Linux), in bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Runs the loop once in a child process of this example and returns its
/// peak RSS.
fn peak_in_child(mode: &str) -> u64 {
    let out = std::process::Command::new(std::env::current_exe().expect("own path"))
        .arg(mode)
        .output()
        .expect("run a child");
    assert!(out.status.success(), "the {mode} child failed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("the child prints its peak RSS")
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
    match std::env::args().nth(1).as_deref() {
        Some("child-heap") => {
            std::hint::black_box(run(DOCS, None, false));
            println!("{}", peak_rss());
            return;
        }
        Some("child-arena") => {
            let arena = Arena::new();
            std::hint::black_box(run(DOCS, Some(&arena), false));
            println!("{}", peak_rss());
            return;
        }
        _ => {}
    }

    let arena = Arena::new();
    // A warm-up of each, then REPEATS interleaved rounds of the two. The
    // counts are the same in every round; the table shows the last round's
    // counts and the median time.
    let mut heap = run(DOCS, None, false);
    let mut bumped = run(DOCS, Some(&arena), false);
    let mut times: [Vec<Duration>; 2] = Default::default();
    for _ in 0..REPEATS {
        heap = run(DOCS, None, false);
        times[0].push(heap.m.elapsed);
        bumped = run(DOCS, Some(&arena), false);
        times[1].push(bumped.m.elapsed);
        assert_eq!(heap.digests, bumped.digests, "the outputs differ");
    }
    heap.m.elapsed = median(&mut times[0]);
    bumped.m.elapsed = median(&mut times[1]);
    let heap_peak = peak_in_child("child-heap");
    let arena_peak = peak_in_child("child-arena");

    println!(
        "{DOCS} documents, {} of JSON in, {} out; outputs identical: yes; \
         time: median of {REPEATS} interleaved runs after a warm-up\n",
        Bytes(heap.input_bytes),
        Bytes(heap.output_bytes)
    );
    println!(
        "| run | time | inner calls | inner bytes | arena calls | arena bytes | clean resets | memory system calls | peak RSS (own process) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, r, peak) in [
        ("heap (System)", &heap, heap_peak),
        ("`Arena`, reset per document", &bumped, arena_peak),
    ] {
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {} |",
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
            r.os_calls,
            Bytes(peak)
        );
    }
    println!("\n`Arena` afterwards:\n{}", arena.stats());
}
