//! SAFETY.md §15: large blocks (a quarter of the chunk size and up, 64 KiB
//! with the default chunk size) get chunks of their own. They never pin, and
//! are never pinned by, the small blocks around them; freed, their chunk goes
//! back at once; they resize in place inside their chunk.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

use bumper::{Arena, Bumper, EscapePolicy, LockedArena, is_arena_pointer, with_bumper};

#[global_allocator]
static GLOBAL: Bumper = Bumper::system();

const LARGE: usize = 64 << 10;

#[test]
fn a_small_escape_next_to_a_big_buffer_does_not_pin_the_buffer() {
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let mut kept = Vec::new();
    for i in 0..50u8 {
        let small = with_bumper(&arena, || {
            arena.no_escape(|| {
                let big = vec![i; 1 << 20];
                assert!(is_arena_pointer(big.as_ptr()));
                vec![big[7]; 16] // escapes
            })
        });
        kept.push(small);
    }
    let s = arena.stats();
    assert_eq!((s.live_blocks, s.large_blocks), (50, 0), "{s}");
    assert_eq!(s.escapes, 50);
    // 50 MiB of buffers went through the arena; one buffer's chunk (and the
    // small chunks holding the escapes) is all it holds.
    assert!(s.chunk_bytes <= 4 << 20, "{s}");
    assert!(
        kept.iter()
            .enumerate()
            .all(|(i, v)| v == &vec![i as u8; 16])
    );
}

#[test]
fn an_escaped_big_buffer_pins_only_its_own_chunk() {
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .build()
        .unwrap();
    let big = with_bumper(&arena, || {
        arena.no_escape(|| {
            let small: Vec<String> = (0..1000).map(|i| format!("scratch {i}")).collect();
            assert_eq!(small.len(), 1000);
            vec![9u8; 1 << 20] // escapes
        })
    });
    let s = arena.stats();
    assert_eq!(
        (s.live_blocks, s.large_blocks, s.large_bytes),
        (1, 1, 1 << 20)
    );
    assert_eq!(s.escaped_blocks, 1);
    // The small scratch around it was reclaimed: the bump part is empty.
    assert_eq!(s.bytes_in_use - s.large_bytes, 0, "{s}");
    assert!(big.iter().all(|&b| b == 9));
    drop(big);
    let s = arena.stats();
    assert_eq!((s.live_blocks, s.large_blocks, s.bytes_in_use), (0, 0, 0));
}

#[test]
fn big_buffers_freed_in_any_order_go_back_without_a_reset() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        for _ in 0..20 {
            let bufs: Vec<Vec<u8>> = (0..8).map(|i| vec![i; 256 << 10]).collect();
            // Drop the oldest first: the bump allocator could not hand these
            // back at the tip, chunks of their own can.
            for (i, b) in bufs.into_iter().enumerate() {
                assert!(b.iter().all(|&x| x == i as u8));
            }
        }
    });
    let s = arena.stats();
    assert_eq!((s.resets, s.live_blocks), (0, 0));
    assert!(
        s.chunk_bytes <= 8 << 20,
        "the buffers' chunks were not reused: {s}"
    );
}

#[test]
fn a_big_block_grows_and_shrinks_in_place_in_its_chunk_and_moves_across_the_threshold() {
    let arena = Arena::new();
    with_bumper(&arena, || {
        let mut v: Vec<u8> = Vec::with_capacity(100 << 10); // 128 KiB class chunk
        v.resize(100 << 10, 1);
        let p = v.as_ptr();
        v.reserve_exact(20 << 10); // still fits in its chunk
        assert_eq!(v.as_ptr(), p, "growth inside its chunk moved");
        v.truncate(70 << 10);
        v.shrink_to_fit(); // still large: in place
        assert_eq!(v.as_ptr(), p, "a shrink that stays large moved");
        v.truncate(1000);
        v.shrink_to_fit(); // below the threshold: back into the bump chain
        assert_ne!(v.as_ptr(), p);
        assert!(v.iter().all(|&b| b == 1));
        assert_eq!(arena.stats().large_blocks, 0);
        let mut w: Vec<u8> = Vec::with_capacity(LARGE / 2);
        w.resize(LARGE / 2, 2);
        w.reserve_exact(LARGE); // grows past the threshold: moves out
        assert_eq!(arena.stats().large_blocks, 1);
        assert!(w.iter().all(|&b| b == 2));
    });
    assert_eq!(arena.stats().live_blocks, 0);
}

#[test]
fn a_chunk_released_by_an_orphan_that_held_a_big_block_serves_small_blocks_again() {
    // An arena dropped while a big block is live becomes an orphan; the block
    // is freed on another thread, which destroys the arena. Its chunk goes
    // back to the space still marked as holding a big block, and must serve
    // as an ordinary chunk to the next arena.
    for _ in 0..20 {
        let arena = LockedArena::builder()
            .escape_policy(EscapePolicy::Keep)
            .build()
            .unwrap();
        let big = with_bumper(&arena, || vec![5u8; 300 << 10]);
        drop(arena);
        std::thread::spawn(move || drop(big)).join().unwrap();
        // Chunks of the big block's size class (512 KiB), so that the next
        // arena's second chunk is the one the orphan gave back.
        let next = Arena::builder().chunk_size(512 << 10).build().unwrap();
        with_bumper(&next, || {
            // Enough to fill that chunk and move on: its blocks are then freed
            // from an older chunk, on the slow path that reads its marks.
            let blocks: Vec<Vec<u8>> = (0..1200).map(|i| vec![i as u8; 1000]).collect();
            // Free the oldest first: these frees take the slow path.
            for (i, b) in blocks.into_iter().enumerate() {
                assert!(b.iter().all(|&x| x == i as u8));
            }
        });
        let s = next.stats();
        assert_eq!((s.live_blocks, s.large_blocks), (0, 0), "{s}");
    }
}

#[test]
fn big_blocks_freed_on_other_threads_are_accounted_exactly() {
    let arena = LockedArena::new();
    let bufs: Vec<Vec<u8>> = with_bumper(&arena, || (0..16).map(|i| vec![i; 128 << 10]).collect());
    assert_eq!(arena.stats().large_blocks, 16);
    std::thread::scope(|s| {
        for chunk in bufs.chunks(4).map(|c| c.to_vec()) {
            s.spawn(move || drop(chunk));
        }
    });
    drop(bufs);
    let s = arena.stats();
    assert_eq!(
        (s.live_blocks, s.large_blocks, s.large_bytes),
        (0, 0, 0),
        "{s}"
    );
}

#[test]
fn chunks_leave_the_chain_when_their_last_block_dies_and_an_escape_pins_only_its_chunk() {
    use bumper::__testing::{ChunkKind, for_each_chunk};
    // 40 blocks of 10 KiB span several 64 KiB-and-up chunks. Block 20 is
    // kept, the others freed oldest first: every chunk whose blocks all died
    // leaves the chain at once, the current one rewinds to its start, and
    // only the home chunk (which holds the arena's own bookkeeping and the
    // checkpoint), the kept block's chunk and the current one stay.
    let arena = Arena::builder()
        .chunk_size(64 << 10)
        .escape_policy(bumper::EscapePolicy::Keep)
        .build()
        .unwrap();
    let cp = arena.checkpoint();
    let kept = with_bumper(&arena, || {
        let mut blocks: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; 10 << 10]).collect();
        let kept = blocks.swap_remove(20);
        drop(blocks);
        kept
    });
    let k = kept.as_ptr() as usize;
    let mut chain = Vec::with_capacity(16);
    let mut pinned = 0;
    for_each_chunk(&arena, |c| {
        let holds_kept = k >= c.base && k < c.base + c.size;
        if holds_kept {
            pinned = c.size;
        }
        if matches!(c.kind, ChunkKind::Chain) {
            chain.push((c.base, c.size, holds_kept));
        }
    });
    // Besides home and current, only the kept block's chunk may stay.
    assert!(
        chain.iter().all(|c| c.2) && chain.len() <= 1,
        "{chain:x?} {k:#x}"
    );
    let before = arena.stats();
    let report = arena.reset_to(cp);
    assert_eq!((report.escaped_blocks, report.escaped_bytes), (1, 10 << 10));
    let after = arena.stats();
    // The escape pins its own chunk (to its end), no more.
    assert!(after.bytes_in_use <= (64 << 10) + pinned as u64, "{after}");
    assert_eq!(
        report.reclaimed_bytes,
        before.bytes_in_use - after.bytes_in_use
    );
    assert!(kept.iter().all(|&b| b == 20));
    // Once the kept block is freed, its chunk leaves the chain too.
    drop(kept);
    assert!(arena.reset().is_clean());
    assert_eq!(arena.stats().bytes_in_use, 0);
    // And the memory is used again: once a round has run with a reset
    // behind it (the first round's chunks went back as they died, before any
    // reset set a retained capacity), the next round makes no new chunk.
    let round = || {
        with_bumper(&arena, || {
            let blocks: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; 10 << 10]).collect();
            assert_eq!(blocks.len(), 40);
        });
        assert!(arena.reset().is_clean());
    };
    round();
    let held = arena.stats().chunk_bytes;
    let calls = bumper::space_stats().os_calls;
    for _ in 0..5 {
        round();
        assert_eq!(arena.stats().chunk_bytes, held);
    }
    assert_eq!(
        bumper::space_stats().os_calls,
        calls,
        "a chunk came from the OS"
    );
}

#[test]
fn a_loop_that_keeps_one_small_block_per_iteration_reuses_its_dead_chunks() {
    // Each iteration: a checkpoint, a first block kept for good, then 300 KiB
    // of small scratch over several chunks, all freed. Without chunk-level
    // reclaiming, every iteration would pin its scratch.
    let arena = Arena::builder()
        .escape_policy(EscapePolicy::Keep)
        .chunk_size(64 << 10)
        .build()
        .unwrap();
    let mut kept = Vec::with_capacity(200);
    for i in 0..200u32 {
        let k = with_bumper(&arena, || {
            arena.no_escape(|| {
                let k = vec![i as u8; 16];
                let scratch: Vec<Vec<u8>> = (0..300).map(|_| vec![0u8; 1000]).collect();
                assert_eq!(scratch.len(), 300);
                k
            })
        });
        kept.push(k);
    }
    let s = arena.stats();
    assert_eq!(s.live_blocks, 200);
    // 200 iterations of 300 KiB would pin 60 MiB; the kept blocks share a
    // few chunks with the scratch around them.
    assert!(s.chunk_bytes <= 24 << 20, "{s}");
    assert!(
        kept.iter()
            .enumerate()
            .all(|(i, v)| v == &vec![i as u8; 16])
    );
}
