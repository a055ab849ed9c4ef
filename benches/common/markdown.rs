//! Workload `markdown`: render a generated Markdown document of about
//! 256 KiB to HTML with `pulldown-cmark`, then drop the HTML.
//!
//! The document is made once, outside the timing, from a fixed seed:
//! headings, paragraphs with emphasis, code spans, links and footnote-free
//! references, nested lists, block quotes, fenced code and tables.

use std::fmt::Write;

use pulldown_cmark::{Options, Parser, html};

use super::Workload;
use super::rng::XorShift;

/// The document's minimum length in bytes.
pub const DOC_BYTES: usize = 256 << 10;
const SEED: u64 = 0xA54F_F53A_5F1D_36F1;

/// The workload type registered in [`super::for_each_workload`].
pub struct Markdown;

impl Workload for Markdown {
    const NAME: &'static str = "markdown";

    /// The document.
    type Input = String;

    fn input() -> String {
        document(DOC_BYTES)
    }

    fn run(doc: &String) -> u64 {
        let parser = Parser::new_ext(doc, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH);
        let mut out = String::new();
        html::push_html(&mut out, parser);
        out.len() as u64
    }
}

/// A Markdown document of at least `min_len` bytes, the same every time.
pub fn document(min_len: usize) -> String {
    const WORDS: [&str; 16] = [
        "arena",
        "bump",
        "region",
        "reset",
        "checkpoint",
        "lane",
        "chunk",
        "escape",
        "thread",
        "allocator",
        "pointer",
        "free",
        "grow",
        "scope",
        "spill",
        "space",
    ];
    let mut rng = XorShift::new(SEED);
    let mut s = String::with_capacity(min_len + 1024);
    let mut section = 0u64;
    let sentence = |rng: &mut XorShift, s: &mut String| {
        for i in 0..5 + rng.below(10) {
            let w = WORDS[rng.below(16) as usize];
            if i > 0 {
                s.push(' ');
            }
            let _ = match rng.below(10) {
                0 => write!(s, "*{w}*"),
                1 => write!(s, "**{w}**"),
                2 => write!(s, "`{w}()`"),
                3 => write!(s, "[{w}](https://example.com/{w}/{})", rng.below(1000)),
                4 => write!(s, "~~{w}~~"),
                _ => write!(s, "{w}"),
            };
        }
        s.push_str(". ");
    };
    while s.len() < min_len {
        section += 1;
        let _ = writeln!(
            s,
            "{} Section {section}\n",
            "#".repeat(1 + rng.below(3) as usize)
        );
        for _ in 0..1 + rng.below(3) {
            for _ in 0..2 + rng.below(4) {
                sentence(&mut rng, &mut s);
            }
            s.push_str("\n\n");
        }
        match rng.below(4) {
            0 => {
                for i in 0..2 + rng.below(5) {
                    let _ = write!(s, "{}- ", "  ".repeat((i % 3) as usize));
                    sentence(&mut rng, &mut s);
                    s.push('\n');
                }
                s.push('\n');
            }
            1 => {
                s.push_str("```rust\n");
                for i in 0..3 + rng.below(6) {
                    let _ = writeln!(
                        s,
                        "let x{i} = {}::new({});",
                        WORDS[rng.below(16) as usize],
                        rng.below(100)
                    );
                }
                s.push_str("```\n\n");
            }
            2 => {
                s.push_str("| name | calls | bytes |\n|---|---:|---:|\n");
                for _ in 0..2 + rng.below(6) {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} |",
                        WORDS[rng.below(16) as usize],
                        rng.below(10_000),
                        rng.below(1 << 20)
                    );
                }
                s.push('\n');
            }
            _ => {
                s.push_str("> ");
                sentence(&mut rng, &mut s);
                s.push_str("\n\n");
            }
        }
    }
    s
}
