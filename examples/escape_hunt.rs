//! Hunting an escape: a library call keeps memory alive across resets, and
//! the escape report names it.
//!
//! A request loop resets its arena after every request. One call deep in a
//! "library" memoises its results in a global cache, so the cache entries it
//! allocates inside the region outlive every reset: each reset reports an
//! escape and keeps that memory. With `track_sites(true)`, the report says
//! which code allocated the escaped blocks; the fix is then to allocate the
//! cache entries outside the region.
//!
//! Run it with `cargo run --release --example escape_hunt --features symbolize`
//! to see function names and source lines (without the feature, the report
//! gives addresses).

use std::collections::HashMap;
use std::sync::Mutex;

use bumper::{Arena, Bumper, EscapePolicy, with_bumper};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

/// The "library": formats a price, and memoises the result.
mod pricing {
    use super::*;

    static CACHE: Mutex<Option<HashMap<u32, String>>> = Mutex::new(None);

    /// The bug: the cache entry is allocated wherever the caller is, so
    /// inside a region it lives in the arena, for good.
    #[inline(never)]
    pub fn format_price(cents: u32) -> String {
        let mut cache = CACHE.lock().unwrap();
        let cache = cache.get_or_insert_with(HashMap::new);
        cache
            .entry(cents)
            .or_insert_with(|| format!("${}.{:02}", cents / 100, cents % 100))
            .clone()
    }

    /// The fix: build the cache's own memory outside any region.
    #[inline(never)]
    pub fn format_price_fixed(cents: u32) -> String {
        let mut cache = CACHE.lock().unwrap();
        let cache = bumper::outside_regions(|| cache.get_or_insert_with(HashMap::new));
        if let Some(s) = cache.get(&cents) {
            return s.clone();
        }
        // The cache's copy is allocated outside any region: on the heap.
        let entry = bumper::outside_regions(|| format!("${}.{:02}", cents / 100, cents % 100));
        let out = entry.clone();
        // Growing the map allocates too: outside any region as well.
        bumper::outside_regions(|| cache.insert(cents, entry));
        out
    }

    /// Clears the cache (and frees its entries) between the two runs.
    pub fn reset_cache() {
        *CACHE.lock().unwrap() = None;
    }
}

/// One "request": builds a receipt, using the library.
fn handle(request: u32, price: fn(u32) -> String) -> usize {
    let lines: Vec<String> = (0..20)
        .map(|i| format!("item {i}: {}", price((request * 7 + i) % 500)))
        .collect();
    lines.iter().map(String::len).sum()
}

fn run(label: &str, price: fn(u32) -> String) {
    let arena = Arena::builder()
        .track_sites(true)
        .escape_policy(EscapePolicy::Keep)
        .build()
        .expect("valid configuration");
    let mut total = 0;
    let mut first_report = None;
    for request in 0..200 {
        total += with_bumper(&arena, || handle(request, price));
        let report = arena.reset();
        if report.escaped() && first_report.is_none() {
            first_report = Some(report);
        }
    }
    let s = arena.stats();
    println!("== {label} ==");
    println!(
        "   200 requests ({total} bytes of receipts): {} resets with escapes, {} blocks ({}) kept",
        s.escapes,
        s.live_blocks,
        bumper::Bytes(s.live_bytes)
    );
    if let Some(r) = first_report {
        println!("   the first escaped reset: {r}");
        for site in r.sites() {
            println!(
                "   {} block(s), {} allocated at:\n{:#}",
                site.blocks,
                bumper::Bytes(site.bytes),
                site.site
            );
        }
    } else {
        println!("   no reset found an escape");
    }
    pricing::reset_cache();
}

fn main() {
    run("with the memoising library call", pricing::format_price);
    run("with the fix", pricing::format_price_fixed);
}
