//! Workload `json`: parse a generated document of about 1 MiB into a
//! `serde_json::Value`, walk the whole tree, and drop it.
//!
//! The document is made once, outside the timing, from a fixed seed: an
//! object holding an array of records with numbers, strings, booleans,
//! nulls, a nested object and a small array of objects each, so the parse
//! allocates many small strings, vectors and maps of mixed sizes.

use std::fmt::Write;

use serde_json::Value;

use super::Workload;
use super::rng::XorShift;

/// The generated document's minimum length in bytes.
pub const DOC_BYTES: usize = 1 << 20;
const SEED: u64 = 0x6A09_E667_F3BC_C908;

/// The workload type registered in [`super::for_each_workload`].
pub struct Json;

impl Workload for Json {
    const NAME: &'static str = "json";

    /// The document's text.
    type Input = String;

    fn input() -> String {
        document(DOC_BYTES)
    }

    fn run(doc: &String) -> u64 {
        let v: Value = serde_json::from_str(doc).expect("the generated document parses");
        walk(&v)
    }
}

/// A checksum over every node of `v`.
fn walk(v: &Value) -> u64 {
    match v {
        Value::Null => 1,
        Value::Bool(b) => 2 + *b as u64,
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_i64().map(|i| i as u64))
            .unwrap_or_else(|| n.as_f64().map_or(0, f64::to_bits)),
        Value::String(s) => s.len() as u64,
        Value::Array(a) => a.iter().fold(a.len() as u64, |acc, x| {
            acc.wrapping_mul(3).wrapping_add(walk(x))
        }),
        Value::Object(o) => o.iter().fold(o.len() as u64, |acc, (k, x)| {
            acc.wrapping_mul(5)
                .wrapping_add(k.len() as u64)
                .wrapping_add(walk(x))
        }),
    }
}

/// A JSON document of at least `min_len` bytes, the same every time.
pub fn document(min_len: usize) -> String {
    const WORDS: [&str; 12] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliett", "kilo", "lima",
    ];
    let mut rng = XorShift::new(SEED);
    let mut doc = String::with_capacity(min_len + 1024);
    doc.push_str(r#"{"generator":"bumper-benches","version":1,"records":["#);
    let mut id = 0u64;
    while doc.len() < min_len {
        if id > 0 {
            doc.push(',');
        }
        let w = |r: &mut XorShift| WORDS[r.below(WORDS.len() as u64) as usize];
        let _ = write!(
            doc,
            r#"{{"id":{id},"name":"{}-{}-{:x}","active":{},"score":{:.4},"parent":{},"#,
            w(&mut rng),
            w(&mut rng),
            rng.next_u64() >> 40,
            rng.below(2) == 1,
            rng.unit() * 1000.0,
            if rng.below(4) == 0 {
                "null".to_string()
            } else {
                rng.below(id + 1).to_string()
            },
        );
        doc.push_str(r#""tags":["#);
        for t in 0..rng.below(6) {
            if t > 0 {
                doc.push(',');
            }
            let _ = write!(doc, r#""{}""#, w(&mut rng));
        }
        let _ = write!(
            doc,
            r#"],"location":{{"city":"{}","zip":"{:05}","geo":[{:.6},{:.6}]}},"history":["#,
            w(&mut rng),
            rng.below(100_000),
            rng.unit() * 90.0,
            rng.unit() * 180.0,
        );
        for h in 0..rng.below(5) {
            if h > 0 {
                doc.push(',');
            }
            let _ = write!(
                doc,
                r#"{{"t":{},"event":"{}","delta":{}}}"#,
                1_700_000_000 + rng.below(100_000_000),
                w(&mut rng),
                rng.below(2001) as i64 - 1000,
            );
        }
        doc.push_str("]}");
        id += 1;
    }
    doc.push_str("]}");
    doc
}
