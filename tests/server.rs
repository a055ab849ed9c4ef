//! `examples/server.rs` (issue 11, item 3): the tokio TCP server with an
//! arena per request answers every request correctly under concurrency, on
//! the heap and with its arena pool, and the pool's arenas end with no live
//! blocks and only clean resets. Bounded by counts (and the example's
//! deadline); no timing is asserted.
//!
//! The test runs the example's own code (its counting global allocator
//! included): 32 connections x 63 requests (2,016), after the example's
//! warm-up round of 10 requests per connection.

#[allow(dead_code)]
#[path = "../examples/server.rs"]
mod example;

use std::sync::atomic::Ordering::Relaxed;

use example::{POOL, Pool, handle, request_line, run};

const CONNS: usize = 32;
const REQS: usize = 63;
const WARM_UP_REQS: u64 = 10;

#[test]
fn the_handler_answers_requests_and_rejects_garbage() {
    let mut req = String::new();
    request_line(3, 7, &mut req);
    let resp: serde_json::Value = serde_json::from_str(&handle(&req)).unwrap();
    let sent: serde_json::Value = serde_json::from_str(&req).unwrap();
    let values: Vec<i64> = sent["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(resp["id"], 3_000_007);
    assert_eq!(resp["user"], "USER-3");
    assert_eq!(resp["count"], 16);
    assert_eq!(resp["sum"], values.iter().sum::<i64>());
    assert_eq!(resp["min"], *values.iter().min().unwrap());
    assert_eq!(resp["max"], *values.iter().max().unwrap());
    assert!(
        handle(&req).len() > 200,
        "a response of a few hundred bytes"
    );
    assert!(handle("not json\n").starts_with(r#"{"error":"#));
}

#[test]
fn every_response_is_correct_and_every_arena_ends_clean() {
    let total = (CONNS * REQS) as u64;

    // The heap: the same server with no region.
    let heap = run(CONNS, REQS, None);
    assert_eq!(heap.requests, total);
    assert_eq!(heap.responses, total, "the heap server lost responses");
    assert_eq!(heap.wrong, 0, "the heap server answered wrongly");
    assert_eq!(heap.served, total);

    // The arena pool.
    let pool: &'static Pool = Box::leak(Box::new(Pool::new(POOL)));
    let bumped = run(CONNS, REQS, Some(pool));
    assert_eq!(bumped.requests, total);
    assert_eq!(bumped.responses, total, "responses lost");
    assert_eq!(bumped.wrong, 0, "wrong responses under concurrency");
    assert_eq!(bumped.served, total);

    // One reset per request, the warm-up round's included, all clean.
    let resets = total + CONNS as u64 * WARM_UP_REQS;
    assert_eq!(pool.resets.load(Relaxed), resets);
    assert_eq!(pool.unclean_resets.load(Relaxed), 0, "unclean resets");

    // Every arena is back in the pool, with nothing live and nothing kept.
    let stats = pool.stats();
    assert_eq!(stats.len(), POOL, "an arena was not returned");
    for s in &stats {
        assert_eq!(s.live_blocks, 0, "{s}");
        assert_eq!(s.live_bytes, 0, "{s}");
        assert_eq!(s.bytes_in_use, 0, "{s}");
        assert_eq!(s.escapes, 0, "{s}");
        assert_eq!(s.spills, 0, "{s}");
    }
    assert_eq!(stats.iter().map(|s| s.resets).sum::<u64>(), resets);
    // The handling really ran in the arenas: each request's parse, labels
    // and response are dozens of allocations.
    let allocations: u64 = stats.iter().map(|s| s.allocations).sum();
    assert!(
        allocations >= 20 * resets,
        "{allocations} arena allocations for {resets} requests"
    );
}
