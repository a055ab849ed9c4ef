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

use example::{POOL, handle, pool, request_line, run};

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
    let pool = pool();
    let bumped = run(CONNS, REQS, Some(&pool));
    assert_eq!(bumped.requests, total);
    assert_eq!(bumped.responses, total, "responses lost");
    assert_eq!(bumped.wrong, 0, "wrong responses under concurrency");
    assert_eq!(bumped.served, total);

    // One lease and one reset per request, the warm-up round's included,
    // all clean.
    let resets = total + CONNS as u64 * WARM_UP_REQS;
    let p = pool.stats();
    assert_eq!(p.leases, resets, "{p}");
    assert_eq!(p.resets, resets, "{p}");
    assert_eq!(p.unclean_resets, 0, "unclean resets: {p}");
    // Every arena came back: idle in the pool (at most `POOL`), or dropped
    // because the pool held as many idle ones as it keeps.
    assert!(p.idle <= POOL as u64, "{p}");
    assert_eq!(p.idle + p.discarded, p.arenas_created, "{p}");

    // The idle arenas hold nothing live and kept nothing.
    let stats = pool.idle_arena_stats();
    for s in &stats {
        assert_eq!(s.live_blocks, 0, "{s}");
        assert_eq!(s.live_bytes, 0, "{s}");
        assert_eq!(s.bytes_in_use, 0, "{s}");
        assert_eq!(s.escapes, 0, "{s}");
        assert_eq!(s.spills, 0, "{s}");
    }
    // The handling really ran in the arenas: each request's parse, labels
    // and response are dozens of allocations.
    let (arena_resets, allocations) = stats
        .iter()
        .fold((0, 0), |(r, a), s| (r + s.resets, a + s.allocations));
    assert!(arena_resets > 0);
    assert!(
        allocations >= 20 * arena_resets,
        "{allocations} arena allocations for {arena_resets} requests"
    );
}
