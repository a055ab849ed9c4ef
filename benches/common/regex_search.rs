//! Workload `regex`: compile 16 regular expressions and count the matches
//! of each in a generated text of 64 KiB, then drop them.
//!
//! The text is made once, outside the timing, from a fixed seed: lines of
//! words, numbers, dates, e-mail and IP addresses, identifiers and
//! key=value pairs. Compiling allocates most (the parsers, the NFA, the
//! meta engine's caches); the searches fill the lazy DFA's cache.

use std::fmt::Write;

use super::Workload;
use super::rng::XorShift;

/// The text's minimum length in bytes.
pub const TEXT_BYTES: usize = 64 << 10;
const SEED: u64 = 0x3C6E_F372_FE94_F82B;

/// The patterns compiled per iteration.
pub const PATTERNS: [&str; 16] = [
    r"\b\w+@\w+\.(?:com|org|net)\b",
    r"\b\d{4}-\d{2}-\d{2}\b",
    r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
    r"(?i)\b(?:error|warning|fatal)\b",
    r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)+\b",
    r"\b[a-z]+_[a-z_]+\b",
    r"(\w+)=(\d+)",
    r"\b0x[0-9a-fA-F]+\b",
    r"[aeiou]{3,}",
    r"\b\p{Lu}\p{Ll}*\b",
    r"(?m)^\s*#.*$",
    r"\b(?:alpha|bravo|charlie|delta|echo|foxtrot)\w*\b",
    r"\b\d+\.\d+\b",
    r#""[^"]*""#,
    r"\b\w{12,}\b",
    r"[^\x00-\x7F]+",
];

/// The workload type registered in [`super::for_each_workload`].
pub struct RegexSearch;

impl Workload for RegexSearch {
    const NAME: &'static str = "regex";

    /// The text.
    type Input = String;

    fn input() -> String {
        text(TEXT_BYTES)
    }

    fn run(text: &String) -> u64 {
        let mut sum = 0u64;
        for (i, p) in PATTERNS.iter().enumerate() {
            let re = regex::Regex::new(p).expect("the patterns compile");
            let n = re.find_iter(text).count() as u64;
            sum = sum.wrapping_mul(31).wrapping_add(n << 4 | i as u64);
        }
        sum
    }
}

/// A text of at least `min_len` bytes, the same every time.
pub fn text(min_len: usize) -> String {
    const WORDS: [&str; 16] = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "error",
        "Warning",
        "queue",
        "HashMap",
        "BTreeMap",
        "read_line",
        "to_string",
        "naïve",
        "café",
        "ERROR",
    ];
    let mut rng = XorShift::new(SEED);
    let mut s = String::with_capacity(min_len + 256);
    let mut line = 0u64;
    while s.len() < min_len {
        if rng.below(8) == 0 {
            let _ = write!(s, "# comment {line}");
        }
        for _ in 0..4 + rng.below(8) {
            let _ = match rng.below(8) {
                0 => write!(
                    s,
                    " {}@{}.com",
                    WORDS[rng.below(6) as usize],
                    WORDS[rng.below(16) as usize]
                ),
                1 => write!(s, " 2026-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28)),
                2 => write!(
                    s,
                    " 10.{}.{}.{}",
                    rng.below(256),
                    rng.below(256),
                    rng.below(256)
                ),
                3 => write!(
                    s,
                    " {}={}",
                    WORDS[rng.below(16) as usize],
                    rng.below(100_000)
                ),
                4 => write!(s, " 0x{:x}", rng.next_u64() >> 32),
                5 => write!(
                    s,
                    " \"{} {}\"",
                    WORDS[rng.below(16) as usize],
                    rng.below(100)
                ),
                6 => write!(s, " {}.{}", rng.below(1000), rng.below(1000)),
                _ => write!(s, " {}", WORDS[rng.below(16) as usize]),
            };
        }
        s.push('\n');
        line += 1;
    }
    s
}
