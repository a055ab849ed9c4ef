//! `examples/json.rs` (issue 11, item 2): a serde_json parse, transform and
//! serialise loop gives the same bytes inside an `Arena` (a reset per
//! document) as on the heap, while the calls that reach the inner allocator
//! fall by at least 100x. No timing is asserted.
//!
//! The test runs the example's own code (its global allocator included) on
//! 150 documents, keeping every output.

#[allow(dead_code)]
#[path = "../examples/json.rs"]
mod example;

use bumper::Arena;
use example::{DOCS as EXAMPLE_DOCS, MAX_DOC_BYTES, generate, run};

const DOCS: usize = 150;

#[test]
fn arena_outputs_are_identical_with_100x_fewer_inner_calls() {
    let heap = run(DOCS, None, true);
    let arena = Arena::new();
    let bumped = run(DOCS, Some(&arena), true);

    assert!(heap.output_bytes > 0);
    assert_eq!(heap.outputs.len() as u64, heap.output_bytes);
    assert_eq!(heap.outputs, bumped.outputs, "the outputs differ");
    assert_eq!(heap.digests, bumped.digests);
    assert_eq!(heap.digests.len(), DOCS);
    // The outputs are valid JSON with the transformation's shape.
    let first: serde_json::Value = serde_json::Deserializer::from_slice(&heap.outputs)
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(first["id"], 0);
    assert!(first["summary"]["total"].as_f64().unwrap() > 0.0);
    // The output buffer reserved before the loop was large enough: it never
    // grew (growing would have doubled its capacity).
    assert_eq!(heap.outputs.capacity(), DOCS * MAX_DOC_BYTES);

    assert!(
        heap.m.inner_calls > 10_000,
        "{} inner calls",
        heap.m.inner_calls
    );
    assert!(
        bumped.m.inner_calls.saturating_mul(100) <= heap.m.inner_calls,
        "inner calls fell only from {} to {}",
        heap.m.inner_calls,
        bumped.m.inner_calls
    );
    assert!(bumped.m.inner_bytes.saturating_mul(100) <= heap.m.inner_bytes);
    // The arena served what the heap did.
    assert_eq!(bumped.m.arena_calls, heap.m.inner_calls);
    assert_eq!(bumped.m.arena_bytes, heap.m.inner_bytes);

    // One clean reset per document; nothing left behind.
    assert_eq!((bumped.resets, bumped.clean_resets), (DOCS, DOCS));
    let s = arena.stats();
    assert_eq!((s.live_blocks, s.escapes, s.spills), (0, 0, 0));
    assert_eq!(s.allocations, bumped.m.arena_calls);
}

#[test]
fn every_document_of_the_example_fits_the_buffers_reserved_before_the_loop() {
    let mut doc = String::with_capacity(MAX_DOC_BYTES);
    let mut largest = 0;
    for i in 0..EXAMPLE_DOCS {
        generate(i, &mut doc);
        largest = largest.max(doc.len());
    }
    assert_eq!(doc.capacity(), MAX_DOC_BYTES, "the input buffer grew");
    // Outputs are about as large as inputs (see the example's table).
    assert!(
        largest * 2 < MAX_DOC_BYTES,
        "largest document {largest} bytes"
    );
}
