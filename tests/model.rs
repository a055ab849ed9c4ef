//! The model-based test (SAFETY.md, "How the proofs are organised"; it
//! proves guarantees 1 to 4 and 11 there). Proptest generates sequences of
//! operations; an interpreter runs them against real arenas and against a
//! model that predicts, exactly, where every block lives and what every
//! arena's counters say. A failure shrinks to a minimal sequence of
//! operations, which the panic message prints.
//!
//! Operations: `alloc`/`alloc_zeroed`/`dealloc`/`realloc` (grow and shrink,
//! often of the most recent block, so tip frees and growth in place happen)
//! through the global allocator with explicit layouts (1 B to 300 KiB,
//! alignment 1 to 4096); freeing on a helper thread; nested regions of two
//! `Arena`s and a `LockedArena`; `no_escape` blocks and explicit
//! checkpoints, reset or dropped; full resets (which must fail while a
//! checkpoint of the arena is open); stats; dropping an arena, live blocks
//! and all, and replacing it with a fresh one; and regions that end out of
//! order: stackful coroutines (`corosensei`) that enter regions of the
//! model's arenas and suspend inside them, so that their regions stay in the
//! thread's list of active regions while the interpreter enters and leaves
//! its own, and that are later resumed to leave a region (possibly while
//! newer regions are active) or dropped while suspended (which unwinds them,
//! ending their regions). Coroutines hold their arenas through `Rc`s: an
//! arena the model drops while a coroutine holds it lives on until the
//! coroutine's last region of it ends, and is then dropped inside the
//! coroutine, often while other regions are active. Arenas that one of the
//! interpreter's own regions or checkpoints uses are never dropped.
//!
//! Where allocations go: to the arena of the newest region still in the
//! thread's list (the interpreter's or a suspended coroutine's, whichever
//! began last), or to the inner allocator when the list is empty.
//!
//! Predicted exactly: which side (arena or inner allocator) each block is on,
//! including after `realloc` (a heap block stays on the heap; an arena block
//! resized in place keeps its arena, shrinking in its own region is always in
//! place, a moved one goes to the current context); that growth in place
//! never happens for a block older than the innermost checkpoint; per arena,
//! `live_blocks`, `live_bytes`, `allocations`, `bytes_allocated`, `resets`,
//! `escapes`, `escaped_blocks`, `escaped_bytes`, `active_checkpoints`, zero
//! spills (also for arenas held only by coroutines), and how many `Rc`s
//! hold each arena (so an arena is alive exactly while the model says so);
//! at each reset, the blocks that escape (exactly the live blocks of the
//! arena allocated since the checkpoint) and, if none did, that
//! `bytes_in_use` is back at its value at the checkpoint; and every call the
//! inner allocator gets from this thread. Unwinding a coroutine allocates
//! (std boxes the panic payload and the exception) from the newest region,
//! before any region ends, and frees it all by the end; what it allocates is
//! measured once per run, in an arena of its own, and predicted from then
//! on. Every block carries a pattern derived from its id, checked before it
//! is freed or reallocated, after every reset, arena drop and coroutine
//! operation, and at the end; `alloc_zeroed` memory must read as zero. At
//! the end the coroutines still suspended are dropped, and every arena is
//! empty and resets cleanly to zero bytes in use.
//!
//! The interpreter never allocates while a region is active: all of its
//! structures are allocated, with their final capacity, before the first
//! operation runs (otherwise its own allocations would land in the arenas and
//! distort the counts it checks). Coroutines map their own stacks and do not
//! allocate.
//!
//! Environment: `BUMPER_MODEL_CASES` (number of cases, default 128; 4 under
//! Miri), `BUMPER_MODEL_OPS` (most operations per case, default 200; 40
//! under Miri) and `BUMPER_MODEL_SEED` (a fixed generator seed; default
//! random, and `MIRI_SEED` under Miri), and `BUMPER_MODEL_COROUTINES=0` to
//! leave the coroutine operations out. They are always left out under Miri,
//! which cannot run corosensei's stack switches (inline assembly), and
//! `scripts/sanitize.sh` leaves them out under the sanitizers, which need to
//! be told about stack switches (corosensei does that for AddressSanitizer
//! only with its `sanitizer` feature, for ThreadSanitizer not at all).
//! Without them the generator is the one from before they existed, so a
//! fixed seed still generates the same sequences. A long run:
//! `BUMPER_MODEL_CASES=100000 cargo test --release --test model`. Under Miri
//! the variables must be forwarded:
//! `MIRIFLAGS="-Zmiri-env-forward=BUMPER_MODEL_CASES" BUMPER_MODEL_CASES=8
//! cargo +nightly miri test --test model`.

mod common;
counting_shim!();

use std::alloc::{Layout, alloc, alloc_zeroed, dealloc, realloc};
use std::cell::Cell;
use std::rc::{Rc, Weak};
use std::sync::{Condvar, Mutex};

use bumper::__testing::{ChunkInfo, ChunkKind, for_each_chunk};
use bumper::{
    Arena, ArenaStats, EscapePolicy, LockedArena, ResetError, ResetReport, is_arena_pointer,
    with_bumper,
};
use common::pattern::{self, check_raw, fill_raw, first_nonzero};
use common::{InnerCalls, env_or, inner_calls};
use corosensei::{Coroutine, CoroutineResult, Yielder};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

/// Arena slots: 0 and 1 hold an `Arena` (1 with the smallest chunks, 64
/// KiB, so that chunks come and go often), 2 a `LockedArena`.
const SLOTS: usize = 3;
/// The chunk size of slot 1's arenas.
const SMALL_CHUNK: usize = 64 << 10;
/// Most frames (regions and `no_escape` blocks) open at once.
const MAX_FRAMES: usize = 160;
/// Most `no_escape` blocks and checkpoints open at once: past 64, which was
/// once a fixed limit (checkpoints are tracked at any depth now).
const MAX_NO_ESCAPE: usize = 120;
/// Every this many operations, and after every reset, the chunks every
/// arena holds are checked against the live blocks (SAFETY.md, R2).
const CHUNK_CHECK_EVERY: u64 = 16;
/// Most coroutines suspended at once.
const MAX_COROUTINES: usize = 6;
/// Most regions one coroutine holds at once.
const MAX_CO_REGIONS: usize = 4;
/// Bytes at the start of every chunk (bumper's `HEADER`): a large block
/// starts there, or further for alignments above it.
const CHUNK_HEADER: usize = 128;

/// Blocks of at least a quarter of the chunk size get a chunk of their own
/// (64 KiB with the default 256 KiB chunks): they never pin, and are never
/// pinned by, the bump part (`ArenaStats::large_bytes`).
fn large_from(slot: usize) -> usize {
    if slot == 1 { SMALL_CHUNK / 4 } else { 64 << 10 }
}

// ---------------------------------------------------------------------------
// operations
// ---------------------------------------------------------------------------

/// Which live block an operation acts on.
#[derive(Debug, Clone, Copy)]
struct Pick {
    /// The most recently (re)allocated block, so that tip frees and in-place
    /// growth are exercised.
    recent: bool,
    /// Otherwise this index, modulo the number of live blocks.
    index: u16,
}

#[derive(Debug, Clone, Copy)]
enum Resize {
    To(usize),
    GrowBy(u16),
    ShrinkBy(u16),
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Alloc {
        size: usize,
        align_log2: u8,
        zeroed: bool,
    },
    Free(Pick),
    Realloc(Pick, Resize),
    FreeOnOtherThread(Pick),
    EnterRegion(u8),
    LeaveRegion,
    NoEscapeBegin(u8),
    /// `checkpoint()`, ended by `NoEscapeEnd` like a `no_escape` block: then
    /// `reset_to(cp)`, or, if `discard`, dropping the checkpoint (its blocks
    /// then belong to the enclosing checkpoint).
    CheckpointBegin {
        arena: u8,
        discard: bool,
    },
    /// Ends the innermost `no_escape` block or checkpoint.
    NoEscapeEnd,
    Stats(u8),
    /// A full `reset()` (or, with `no_escape` blocks of the arena open, a
    /// `try_reset()` that must fail).
    Reset(u8),
    DropArena(u8),
    /// Starts a coroutine that enters a region of this arena and suspends
    /// inside it: the region stays in the thread's list of active regions
    /// until the coroutine leaves it or is dropped.
    CoStart(u8),
    /// Resumes a suspended coroutine (this index, modulo their number),
    /// which enters one more region, of this arena, and suspends inside it.
    CoEnter(u16, u8),
    /// Resumes a suspended coroutine, which leaves its newest region (out of
    /// order if newer regions are active) and suspends again, or returns if
    /// that was its last one.
    CoLeave(u16),
    /// Drops a suspended coroutine: unwinding its stack ends all of its
    /// regions, newest first.
    CoDrop(u16),
    /// `depth` explicit checkpoints of this arena at once, each ended by its
    /// own `NoEscapeEnd` (reset, or for every fifth dropped), so that
    /// checkpoints nest deeper than 64.
    Nest {
        arena: u8,
        depth: u8,
    },
    /// `count` allocations of `size` bytes in a row: enough to fill chunks,
    /// so that chains grow and their chunks die in any order.
    Burst {
        count: u8,
        size: u16,
    },
}

struct Params {
    /// A fixed seed for the case generator; `None`: a random one.
    seed: Option<u64>,
    cases: u32,
    max_ops: usize,
    small_max: usize,
    large_max: usize,
    /// Whether the coroutine operations are generated.
    coroutines: bool,
}

/// The generator seed under Miri, chosen so that its few cases include
/// escapes, arena drops with live blocks and frees of orphaned blocks.
const MIRI_SEED: u64 = 5;

fn params() -> Params {
    let seed: Option<u64> = common::env::parsed("BUMPER_MODEL_SEED");
    if cfg!(miri) {
        Params {
            seed: Some(seed.unwrap_or(MIRI_SEED)),
            cases: env_or("BUMPER_MODEL_CASES", 4usize) as u32,
            max_ops: env_or("BUMPER_MODEL_OPS", 40),
            small_max: 256,
            // Still crosses the 64 KiB first chunk.
            large_max: 70 << 10,
            // corosensei switches stacks with inline assembly, which Miri
            // cannot run.
            coroutines: false,
        }
    } else {
        Params {
            seed,
            cases: env_or("BUMPER_MODEL_CASES", 128usize) as u32,
            max_ops: env_or("BUMPER_MODEL_OPS", 200),
            small_max: 2048,
            // Larger than the 256 KiB second chunk.
            large_max: 300 << 10,
            coroutines: env_or("BUMPER_MODEL_COROUTINES", 1u8) != 0,
        }
    }
}

fn op_strategy(p: &Params) -> BoxedStrategy<Op> {
    let size = prop_oneof![
        24 => 1..=p.small_max,
        1 => p.small_max + 1..=p.large_max,
    ];
    let align_log2 = prop_oneof![6 => 0u8..=3, 1 => 4u8..=12];
    let pick = (prop::bool::weighted(0.5), any::<u16>())
        .prop_map(|(recent, index)| Pick { recent, index });
    let resize = prop_oneof![
        size.clone().prop_map(Resize::To),
        (1u16..=256).prop_map(Resize::GrowBy),
        (1u16..=256).prop_map(Resize::ShrinkBy),
    ];
    let slot = 0u8..SLOTS as u8;
    // Without the coroutine operations this is the whole strategy, so that a
    // fixed seed generates the same sequences as before they were added
    // (under Miri, `MIRI_SEED` was chosen for those).
    let base = prop_oneof![
        30 => (size, align_log2, prop::bool::weighted(0.2)).prop_map(|(size, align_log2, zeroed)| {
            Op::Alloc { size, align_log2, zeroed }
        }),
        14 => pick.clone().prop_map(Op::Free),
        14 => (pick.clone(), resize).prop_map(|(p, r)| Op::Realloc(p, r)),
        3 => pick.prop_map(Op::FreeOnOtherThread),
        8 => slot.clone().prop_map(Op::EnterRegion),
        6 => Just(Op::LeaveRegion),
        5 => slot.clone().prop_map(Op::NoEscapeBegin),
        2 => (slot.clone(), any::<bool>()).prop_map(|(arena, discard)| Op::CheckpointBegin { arena, discard }),
        6 => Just(Op::NoEscapeEnd),
        4 => slot.clone().prop_map(Op::Stats),
        2 => slot.clone().prop_map(Op::Reset),
        3 => slot.clone().prop_map(Op::DropArena),
    ];
    if !p.coroutines {
        return base.boxed();
    }
    let co = prop_oneof![
        5 => slot.clone().prop_map(Op::CoStart),
        2 => (any::<u16>(), slot.clone()).prop_map(|(co, arena)| Op::CoEnter(co, arena)),
        5 => any::<u16>().prop_map(Op::CoLeave),
        2 => any::<u16>().prop_map(Op::CoDrop),
    ];
    // Deep nesting, and spikes: blocks of a few MiB among the small ones.
    let extra = prop_oneof![
        1 => (slot, 2u8..=90).prop_map(|(arena, depth)| Op::Nest { arena, depth }),
        2 => ((1usize << 20)..=(4 << 20)).prop_map(|size| Op::Alloc { size, align_log2: 0, zeroed: false }),
        4 => (4u8..=40, 1000u16..=15000).prop_map(|(count, size)| Op::Burst { count, size }),
    ];
    // 97 is the total weight of `base`: its operations keep their weights,
    // and one operation in 8 is a coroutine operation.
    prop_oneof![97 => base, 14 => co, 3 => extra].boxed()
}

// ---------------------------------------------------------------------------
// the helper thread that frees blocks handed to it
// ---------------------------------------------------------------------------

enum Request {
    Idle,
    Free(*mut u8, Layout),
    Quit,
}

// SAFETY: the pointer is a block handed over for freeing; the interpreter
// does not touch it after the hand-off.
unsafe impl Send for Request {}

/// A thread that frees blocks for the interpreter. Created before any region:
/// std's channels allocate, a `Mutex` and a `Condvar` do not.
struct Helper {
    req: Mutex<Request>,
    cv: Condvar,
}

impl Helper {
    fn serve(&self) {
        let mut g = self.req.lock().unwrap();
        loop {
            match *g {
                Request::Idle => g = self.cv.wait(g).unwrap(),
                Request::Free(p, layout) => {
                    // SAFETY: a live block with this layout, given up by the
                    // interpreter.
                    unsafe { dealloc(p, layout) };
                    *g = Request::Idle;
                    self.cv.notify_all();
                }
                Request::Quit => return,
            }
        }
    }

    /// Frees the block on the helper thread and waits until it is done.
    fn free(&self, p: *mut u8, layout: Layout) {
        let mut g = self.req.lock().unwrap();
        *g = Request::Free(p, layout);
        self.cv.notify_all();
        while !matches!(*g, Request::Idle) {
            g = self.cv.wait(g).unwrap();
        }
    }

    fn quit(&self) {
        *self.req.lock().unwrap() = Request::Quit;
        self.cv.notify_all();
    }
}

// ---------------------------------------------------------------------------
// the model
// ---------------------------------------------------------------------------

/// Who serves a block: the inner allocator, or an arena instance (which may
/// have been dropped since: an orphan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Heap,
    Arena(u32),
}

/// A live block, as the model knows it.
#[derive(Debug, Clone, Copy)]
struct Block {
    /// Its memory, which carries the pattern of its id.
    mem: pattern::Block,
    /// Allocation sequence number (the model's position in the arena).
    seq: u64,
    owner: Owner,
}

#[derive(Clone)]
enum Handle {
    Plain(Rc<Arena>),
    Locked(Rc<LockedArena>),
}

/// The model's handle to an arena it dropped from its slot while coroutines
/// still held it: a `Weak`, which keeps only the `Rc`'s heap box, not the
/// arena, so the arena is dropped when the coroutines' last handle goes.
enum WeakHandle {
    Plain(Weak<Arena>),
    Locked(Weak<LockedArena>),
}

impl Handle {
    fn stats(&self) -> ArenaStats {
        match self {
            Handle::Plain(a) => a.stats(),
            Handle::Locked(a) => a.stats(),
        }
    }

    fn users(&self) -> usize {
        match self {
            Handle::Plain(a) => Rc::strong_count(a),
            Handle::Locked(a) => Rc::strong_count(a),
        }
    }

    fn downgrade(&self) -> WeakHandle {
        match self {
            Handle::Plain(a) => WeakHandle::Plain(Rc::downgrade(a)),
            Handle::Locked(a) => WeakHandle::Locked(Rc::downgrade(a)),
        }
    }
}

impl WeakHandle {
    /// The arena's stats, if it is still alive.
    fn stats(&self) -> Option<ArenaStats> {
        match self {
            WeakHandle::Plain(w) => w.upgrade().map(|a| a.stats()),
            WeakHandle::Locked(w) => w.upgrade().map(|a| a.stats()),
        }
    }

    fn users(&self) -> usize {
        match self {
            WeakHandle::Plain(w) => w.strong_count(),
            WeakHandle::Locked(w) => w.strong_count(),
        }
    }
}

/// The model of one arena instance: its predicted counters.
#[derive(Debug, Clone, Copy)]
struct Counts {
    inst: u32,
    /// Predicted `allocations` and `bytes_allocated`.
    allocs: u64,
    bytes: u64,
    /// Predicted `resets`, `escapes`, `escaped_blocks` and `escaped_bytes`.
    resets: u64,
    escapes: u64,
    escaped_blocks: u64,
    escaped_bytes: u64,
}

impl Counts {
    fn new(inst: u32) -> Counts {
        Counts {
            inst,
            allocs: 0,
            bytes: 0,
            resets: 0,
            escapes: 0,
            escaped_blocks: 0,
            escaped_bytes: 0,
        }
    }
}

struct Slot {
    handle: Handle,
    c: Counts,
}

impl Slot {
    fn new(handle: Handle, inst: u32) -> Slot {
        Slot {
            handle,
            c: Counts::new(inst),
        }
    }
}

/// An arena dropped from its slot while coroutines held it (see
/// [`WeakHandle`]). No frame of the interpreter can use it, so it never has
/// a checkpoint; allocations go to it while one of its regions is the
/// newest in the thread's list.
struct Retired {
    arena: WeakHandle,
    c: Counts,
}

/// Who holds an active region: the interpreter's own stack (a
/// `Frame::Region`), or a suspended coroutine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    Main,
    Co(u32),
}

/// One active region, as the model expects bumper's per-thread list to hold
/// it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    inst: u32,
    holder: Holder,
}

/// What the interpreter tells a coroutine when it resumes it.
enum Cmd {
    /// Enter a region of this arena and suspend inside it.
    Enter(Handle),
    /// Leave the newest region, then suspend (or return, if it was the last).
    Leave,
}

/// A coroutine that holds regions: it starts by entering one (the first
/// `resume` must pass `Cmd::Enter`) and returns when it has left all.
fn coroutine() -> Coroutine<Cmd, (), ()> {
    Coroutine::new(|y: &Yielder<Cmd, ()>, first: Cmd| {
        let Cmd::Enter(h) = first else {
            unreachable!("a coroutine starts by entering a region")
        };
        co_region(y, h);
    })
}

/// Inside a coroutine: enters a region of `h`'s arena, suspends inside it,
/// and serves commands (nested regions) until told to leave it.
fn co_region(y: &Yielder<Cmd, ()>, h: Handle) {
    let serve = || {
        while let Cmd::Enter(inner) = y.suspend(()) {
            co_region(y, inner);
        }
    };
    match &h {
        Handle::Plain(a) => with_bumper(&**a, serve),
        Handle::Locked(a) => with_bumper(&**a, serve),
    }
    // `h` goes here, after its region ended: if it was the last handle of
    // an arena the model dropped, the arena is dropped now, possibly while
    // newer regions (of the interpreter or of other coroutines) are active.
}

/// A suspended coroutine and what the model knows of it.
struct Co {
    id: u32,
    co: Coroutine<Cmd, (), ()>,
    /// Regions it holds (at least one while it is suspended).
    depth: usize,
}

/// What unwinding a suspended coroutine allocates (std boxes the panic
/// payload and the exception), all of it before the unwinding leaves any
/// region, so from the newest active region; all of it is freed by the end
/// of the unwinding. Measured once per run, see [`measure_unwind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct UnwindCost {
    allocs: u64,
    bytes: u64,
}

/// Drops a coroutine suspended in a region of a fresh arena, with no other
/// region active, and returns what the unwinding allocated there. Checks
/// that it freed all of it, and that nothing reached the inner allocator.
fn measure_unwind() -> UnwindCost {
    let arena = Rc::new(
        Arena::builder()
            .escape_policy(EscapePolicy::Keep)
            .build()
            .unwrap(),
    );
    let mut co = coroutine();
    let r = co.resume(Cmd::Enter(Handle::Plain(Rc::clone(&arena))));
    assert!(matches!(r, CoroutineResult::Yield(())));
    let before = arena.stats();
    let start = inner_calls();
    drop(co);
    let end = inner_calls();
    let after = arena.stats();
    assert_eq!(
        (end.allocs, end.frees, end.reallocs),
        (start.allocs, start.frees, start.reallocs),
        "unwinding a coroutine called the inner allocator"
    );
    assert_eq!(
        (after.live_blocks, Rc::strong_count(&arena)),
        (0, 1),
        "unwinding a coroutine left blocks or a handle behind\n{after}"
    );
    UnwindCost {
        allocs: after.allocations - before.allocations,
        bytes: after.bytes_allocated - before.bytes_allocated,
    }
}

#[derive(Clone, Copy)]
enum Frame {
    Region {
        slot: usize,
    },
    /// A `no_escape` block or an explicit checkpoint.
    NoEscape {
        slot: usize,
        /// The sequence counter when it began.
        seq: u64,
    },
}

/// How often interesting paths were taken, over all cases.
#[derive(Default, Debug)]
struct Coverage {
    ops: Cell<u64>,
    arena_allocs: Cell<u64>,
    heap_allocs: Cell<u64>,
    realloc_in_place: Cell<u64>,
    realloc_grow_in_place: Cell<u64>,
    realloc_moved: Cell<u64>,
    remote_frees: Cell<u64>,
    no_escape_clean: Cell<u64>,
    checkpoints_discarded: Cell<u64>,
    full_resets_clean: Cell<u64>,
    full_resets_escaped: Cell<u64>,
    no_escape_escaped: Cell<u64>,
    escaped_blocks: Cell<u64>,
    drops_with_live_blocks: Cell<u64>,
    orphan_frees: Cell<u64>,
    max_depth: Cell<u64>,
    co_starts: Cell<u64>,
    co_enters: Cell<u64>,
    co_leaves: Cell<u64>,
    co_unwinds: Cell<u64>,
    /// Of those, the ones still suspended at the end of a case.
    co_unwinds_at_end: Cell<u64>,
    /// Region exits (of the interpreter or of a coroutine) that removed an
    /// entry other than the newest.
    out_of_order_exits: Cell<u64>,
    /// Blocks served by a region that a coroutine holds.
    co_region_allocs: Cell<u64>,
    /// Arenas dropped by the model while a coroutine held them, and those
    /// of them whose last handle went in a coroutine, with regions active.
    arenas_retired: Cell<u64>,
    arenas_dropped_in_regions: Cell<u64>,
    max_coroutines: Cell<u64>,
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fields = [
            ("ops", &self.ops),
            ("arena allocs", &self.arena_allocs),
            ("heap allocs", &self.heap_allocs),
            ("reallocs in place", &self.realloc_in_place),
            ("of which growing", &self.realloc_grow_in_place),
            ("reallocs moved", &self.realloc_moved),
            ("remote frees", &self.remote_frees),
            ("clean no_escape", &self.no_escape_clean),
            ("checkpoints dropped", &self.checkpoints_discarded),
            ("no_escape with escapes", &self.no_escape_escaped),
            ("clean full resets", &self.full_resets_clean),
            ("full resets with escapes", &self.full_resets_escaped),
            ("escaped blocks", &self.escaped_blocks),
            ("arena drops with live blocks", &self.drops_with_live_blocks),
            ("orphan frees", &self.orphan_frees),
            ("deepest nesting", &self.max_depth),
            ("coroutine starts", &self.co_starts),
            ("nested coroutine regions", &self.co_enters),
            ("coroutine region exits", &self.co_leaves),
            ("coroutines unwound", &self.co_unwinds),
            ("of which at the end", &self.co_unwinds_at_end),
            ("out-of-order exits", &self.out_of_order_exits),
            ("allocs in coroutine regions", &self.co_region_allocs),
            (
                "arenas outliving their slot in coroutines",
                &self.arenas_retired,
            ),
            (
                "dropped in a coroutine amid other regions",
                &self.arenas_dropped_in_regions,
            ),
            ("most coroutines at once", &self.max_coroutines),
        ];
        for (i, (name, v)) in fields.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{name} {}", v.get())?;
        }
        Ok(())
    }
}

fn inc(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

struct State<'h> {
    slots: [Slot; SLOTS],
    /// Arenas made in advance to replace dropped ones, per slot.
    spares: [Vec<Handle>; SLOTS],
    /// The large-block threshold of every arena instance, by instance.
    large: Vec<usize>,
    /// By instance: whether a small block of the arena was freed since its
    /// last clean full reset (memory below a checkpoint may then be handed
    /// back while it is open, see `after_no_escape`).
    small_freed: Vec<bool>,
    /// Live blocks, oldest (re)allocation first.
    blocks: Vec<Block>,
    frames: Vec<Frame>,
    /// The thread's active regions, oldest first, as bumper's list must
    /// hold them: the interpreter's (`Frame::Region`) and the suspended
    /// coroutines'. The newest decides where allocations go.
    regions: Vec<Entry>,
    /// Suspended coroutines, oldest first.
    cos: Vec<Co>,
    /// Arenas dropped from their slot that coroutines still hold.
    retired: Vec<Retired>,
    next_id: u64,
    seq: u64,
    next_inst: u32,
    next_co: u32,
    /// What unwinding a coroutine allocates.
    unwind: UnwindCost,
    helper: &'h Helper,
    cov: &'h Coverage,
    /// Predicted calls to the inner allocator from this thread.
    inner: InnerCalls,
}

fn new_handle(slot: usize) -> Handle {
    match slot {
        // The model makes memory escape on purpose: `Keep` keeps the run
        // quiet.
        2 => Handle::Locked(Rc::new(
            LockedArena::builder()
                .escape_policy(EscapePolicy::Keep)
                .build()
                .unwrap(),
        )),
        1 => Handle::Plain(Rc::new(
            Arena::builder()
                .chunk_size(SMALL_CHUNK)
                .escape_policy(EscapePolicy::Keep)
                .build()
                .unwrap(),
        )),
        _ => Handle::Plain(Rc::new(
            Arena::builder()
                .escape_policy(EscapePolicy::Keep)
                .build()
                .unwrap(),
        )),
    }
}

impl<'h> State<'h> {
    fn new(ops: &[Op], unwind: UnwindCost, helper: &'h Helper, cov: &'h Coverage) -> Self {
        // Arenas that replace dropped ones are made now: `Rc::new` allocates.
        let drops = |slot: usize| {
            ops.iter()
                .filter(|op| matches!(op, Op::DropArena(a) if *a as usize % SLOTS == slot))
                .count()
        };
        let n_drops: usize = (0..SLOTS).map(drops).sum();
        let mut large = Vec::with_capacity(SLOTS + n_drops);
        large.extend((0..SLOTS).map(large_from));
        State {
            slots: std::array::from_fn(|i| Slot::new(new_handle(i), i as u32)),
            spares: std::array::from_fn(|s| (0..drops(s)).map(|_| new_handle(s)).collect()),
            small_freed: {
                let mut v = Vec::with_capacity(SLOTS + n_drops);
                v.resize(SLOTS, false);
                v
            },
            large,
            blocks: Vec::with_capacity(
                ops.iter()
                    .map(|op| match op {
                        Op::Burst { count, .. } => *count as usize,
                        _ => 1,
                    })
                    .sum::<usize>()
                    + 1,
            ),
            frames: Vec::with_capacity(MAX_FRAMES + 1),
            regions: Vec::with_capacity(MAX_FRAMES + MAX_COROUTINES * MAX_CO_REGIONS + 1),
            cos: Vec::with_capacity(MAX_COROUTINES + 1),
            retired: Vec::with_capacity(n_drops + 1),
            next_id: 1,
            seq: 0,
            next_inst: SLOTS as u32,
            next_co: 0,
            unwind,
            helper,
            cov,
            inner: InnerCalls {
                allocs: 0,
                frees: 0,
                reallocs: 0,
            },
        }
    }

    /// The arena instance of the newest active region (the interpreter's
    /// or a suspended coroutine's), if any: where allocations go.
    fn context(&self) -> Option<u32> {
        self.regions.last().map(|e| e.inst)
    }

    fn context_owner(&self) -> Owner {
        match self.context() {
            Some(inst) => Owner::Arena(inst),
            None => Owner::Heap,
        }
    }

    fn slot_of_inst(&self, inst: u32) -> Option<usize> {
        (0..SLOTS).find(|&s| self.slots[s].c.inst == inst)
    }

    /// Whether arena instance `inst` still exists (in a slot, or retired
    /// and held by a coroutine); its blocks are orphans otherwise.
    fn is_alive(&self, inst: u32) -> bool {
        self.slot_of_inst(inst).is_some() || self.retired.iter().any(|r| r.c.inst == inst)
    }

    fn counts_mut(&mut self, inst: u32) -> &mut Counts {
        if let Some(s) = self.slot_of_inst(inst) {
            return &mut self.slots[s].c;
        }
        match self.retired.iter_mut().find(|r| r.c.inst == inst) {
            Some(r) => &mut r.c,
            None => panic!("arena instance {inst} was served an allocation after it was dropped"),
        }
    }

    /// Removes `holder`'s newest entry from the list of active regions, as
    /// bumper does when that region ends, and returns it.
    fn end_region(&mut self, holder: Holder) -> Entry {
        let i = self
            .regions
            .iter()
            .rposition(|e| e.holder == holder)
            .expect("the region that ends is in the list");
        if i + 1 != self.regions.len() {
            inc(&self.cov.out_of_order_exits);
        }
        self.regions.remove(i)
    }

    /// Handles that coroutines hold for their regions of arena `inst`.
    fn co_users(&self, inst: u32) -> usize {
        self.regions
            .iter()
            .filter(|e| e.inst == inst && e.holder != Holder::Main)
            .count()
    }

    fn pick(&self, p: Pick) -> Option<usize> {
        let n = self.blocks.len();
        if n == 0 {
            None
        } else if p.recent {
            Some(n - 1)
        } else {
            Some(p.index as usize % n)
        }
    }

    /// Live blocks and rounded bytes of arena instance `inst` allocated after
    /// sequence number `after`.
    /// Live large blocks of arena instance `inst`: those of at least
    /// [`LARGE`] bytes, which live in chunks of their own.
    fn large_of(&self, inst: u32) -> (u64, u64) {
        self.blocks
            .iter()
            .filter(|b| b.owner == Owner::Arena(inst) && b.mem.size >= self.large[inst as usize])
            .fold((0, 0), |(n, bytes), b| {
                (n + 1, bytes + b.mem.size.next_multiple_of(8) as u64)
            })
    }

    /// The size of the chunk of arena instance `inst` that holds `addr`, if
    /// the model can still reach the arena (in a slot, or held by a
    /// coroutine).
    fn chunk_size_of(&self, inst: u32, addr: usize) -> Option<usize> {
        let mut size = None;
        let mut find = |c: ChunkInfo| {
            if addr >= c.base && addr < c.base + c.size {
                size = Some(c.size);
            }
        };
        if let Some(sl) = self.slots.iter().find(|s| s.c.inst == inst) {
            match &sl.handle {
                Handle::Plain(a) => for_each_chunk(&**a, &mut find),
                Handle::Locked(a) => for_each_chunk(&**a, &mut find),
            };
        } else if let Some(r) = self.retired.iter().find(|r| r.c.inst == inst) {
            match &r.arena {
                WeakHandle::Plain(w) => w.upgrade().map(|a| for_each_chunk(&*a, &mut find)),
                WeakHandle::Locked(w) => w.upgrade().map(|a| for_each_chunk(&*a, &mut find)),
            };
        }
        size
    }

    fn live_of(&self, inst: u32, after: u64) -> (u64, u64) {
        self.blocks
            .iter()
            .filter(|b| b.owner == Owner::Arena(inst) && b.seq > after)
            .fold((0, 0), |(n, bytes), b| {
                (n + 1, bytes + b.mem.size.next_multiple_of(8) as u64)
            })
    }

    fn check_block(&self, b: &Block, full: bool, when: &'static str) {
        assert_eq!(
            is_arena_pointer(b.mem.ptr),
            b.owner != Owner::Heap,
            "{when}: block {b:?} changed sides"
        );
        // Large blocks are sampled between full checks: every block gets a
        // full check before it is freed.
        // SAFETY: a live block.
        if let Some(off) = unsafe { b.mem.first_corruption(!full) } {
            panic!(
                "{when}: block {b:?} is corrupted at offset {off} (byte {:#04x})",
                // SAFETY: `off` lies inside the live block.
                unsafe { b.mem.read(off) }
            );
        }
    }

    fn check_all_blocks(&self, when: &'static str) {
        for b in &self.blocks {
            self.check_block(b, false, when);
        }
    }

    /// Compares an arena's counters with the model.
    fn check_arena(&self, slot: usize, when: &'static str) -> ArenaStats {
        let sl = &self.slots[slot];
        let cps = self
            .frames
            .iter()
            .filter(|f| matches!(f, Frame::NoEscape { slot: x, .. } if *x == slot))
            .count() as u32;
        let users = 1
            + self
                .frames
                .iter()
                .filter(|f| match **f {
                    Frame::Region { slot: x } | Frame::NoEscape { slot: x, .. } => x == slot,
                })
                .count()
            + self.co_users(sl.c.inst);
        assert_eq!(
            sl.handle.users(),
            users,
            "{when}: handles of slot {slot} (the slot's, one per frame and one per coroutine region)"
        );
        let s = sl.handle.stats();
        self.check_counts(&s, &sl.c, cps, when);
        self.check_chunks(slot, false, when);
        s
    }

    /// Compares the counters of every arena that the model dropped but
    /// coroutines still hold with the model.
    fn check_retired(&self, when: &'static str) {
        for r in &self.retired {
            assert_eq!(
                r.arena.users(),
                self.co_users(r.c.inst),
                "{when}: handles of dropped arena instance {} (one per coroutine region)",
                r.c.inst
            );
            let s = r.arena.stats().expect("held by a coroutine, so alive");
            self.check_counts(&s, &r.c, 0, when);
        }
    }

    /// Invariant R2 of SAFETY.md, checked against the model's own live
    /// blocks: besides its home chunk and its current chunk, every chunk an
    /// arena's lanes hold in their chains, and every chunk of a large block,
    /// holds a live block of that arena; and right after a reset (`reset`),
    /// the spare chunks fit in the retained capacity.
    fn check_chunks(&self, slot: usize, reset: bool, when: &'static str) {
        const MAX: usize = 256;
        let sl = &self.slots[slot];
        let inst = sl.c.inst;
        // Collected without allocating (a region may be active).
        let mut chunks = [(0usize, 0usize, ChunkKind::Spare); MAX];
        let mut n = 0;
        let mut collect = |c: ChunkInfo| {
            assert!(n < MAX, "{when}: more than {MAX} chunks");
            chunks[n] = (c.base, c.size, c.kind);
            n += 1;
        };
        let target = match &sl.handle {
            Handle::Plain(a) => for_each_chunk(&**a, &mut collect),
            Handle::Locked(a) => for_each_chunk(&**a, &mut collect),
        };
        let (mut held, mut spares) = (0usize, 0usize);
        for &(base, size, kind) in &chunks[..n] {
            match kind {
                ChunkKind::Spare => spares += size,
                ChunkKind::Current | ChunkKind::Home => held += size,
                ChunkKind::Chain | ChunkKind::Large => {
                    held += size;
                    let live = self.blocks.iter().any(|b| {
                        b.owner == Owner::Arena(inst)
                            && (b.mem.ptr as usize) >= base
                            && (b.mem.ptr as usize) < base + size
                    });
                    assert!(
                        live,
                        "{when}: slot {slot} holds a {kind:?} chunk at {base:#x} ({size} bytes) with no live block"
                    );
                }
            }
        }
        if reset {
            assert!(
                spares == 0 || held + spares <= target,
                "{when}: slot {slot} keeps {spares} bytes of spares beyond its retained capacity {target} ({held} held)"
            );
        }
    }

    fn check_counts(&self, s: &ArenaStats, c: &Counts, cps: u32, when: &'static str) {
        let inst = c.inst;
        let (live, bytes) = self.live_of(inst, 0);
        assert_eq!(
            s.live_blocks, live,
            "{when}: live blocks of arena instance {inst}\n{s}"
        );
        assert_eq!(
            s.live_bytes, bytes,
            "{when}: live bytes of arena instance {inst}\n{s}"
        );
        assert_eq!(
            (s.large_blocks, s.large_bytes),
            self.large_of(inst),
            "{when}: large blocks of arena instance {inst}\n{s}"
        );
        assert_eq!(
            s.allocations, c.allocs,
            "{when}: allocations of arena instance {inst}\n{s}"
        );
        assert_eq!(
            s.bytes_allocated, c.bytes,
            "{when}: bytes allocated of arena instance {inst}\n{s}"
        );
        assert_eq!(
            s.resets, c.resets,
            "{when}: resets of arena instance {inst}\n{s}"
        );
        assert_eq!(
            s.escapes, c.escapes,
            "{when}: escapes of arena instance {inst}\n{s}"
        );
        assert_eq!(
            s.escaped_blocks, c.escaped_blocks,
            "{when}: escaped blocks of arena instance {inst}\n{s}"
        );
        assert_eq!(
            s.escaped_bytes, c.escaped_bytes,
            "{when}: escaped bytes of arena instance {inst}\n{s}"
        );
        assert_eq!(s.spills, 0, "{when}: spills of arena instance {inst}\n{s}");
        assert_eq!(
            s.busy_lanes, 0,
            "{when}: busy lanes of arena instance {inst}\n{s}"
        );
        assert_eq!(
            s.active_checkpoints, cps,
            "{when}: checkpoints of arena instance {inst}\n{s}"
        );
        assert!(
            s.live_bytes <= s.bytes_in_use,
            "{when}: arena instance {inst}\n{s}"
        );
        assert!(
            s.bytes_in_use <= s.peak_bytes_in_use,
            "{when}: arena instance {inst}\n{s}"
        );
        assert!(
            s.bytes_in_use <= s.chunk_bytes,
            "{when}: arena instance {inst}\n{s}"
        );
    }

    /// Counts `n` allocations of `bytes` bytes in all on arena instance
    /// `inst`, or nothing for the heap.
    fn count_arena(&mut self, inst: Option<u32>, n: u64, bytes: u64) {
        if let Some(inst) = inst {
            let c = self.counts_mut(inst);
            c.allocs += n;
            c.bytes += bytes;
        }
    }

    fn count_arena_alloc(&mut self, inst: Option<u32>, size: usize) {
        self.count_arena(inst, 1, size as u64);
        if self
            .regions
            .last()
            .is_some_and(|e| e.holder != Holder::Main)
        {
            inc(&self.cov.co_region_allocs);
        }
    }

    // -- operations ---------------------------------------------------------

    fn op_alloc(&mut self, size: usize, align_log2: u8, zeroed: bool) {
        let align = 1usize << align_log2;
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: non-zero size.
        let p = unsafe {
            if zeroed {
                alloc_zeroed(layout)
            } else {
                alloc(layout)
            }
        };
        assert!(!p.is_null(), "allocation of {layout:?} failed");
        assert_eq!(p as usize % align, 0, "misaligned block for {layout:?}");
        let ctx = self.context();
        let owner = self.context_owner();
        assert_eq!(
            is_arena_pointer(p),
            ctx.is_some(),
            "allocation of {layout:?} in context {owner:?} landed on the wrong side"
        );
        if zeroed {
            // SAFETY: a fresh block of `size` bytes.
            if let Some(off) = unsafe { first_nonzero(p, size) } {
                panic!("alloc_zeroed({layout:?}) in {owner:?}: byte {off} is not zero");
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        // SAFETY: a fresh block of `size` bytes.
        unsafe { fill_raw(p, id, 0, size) };
        self.seq += 1;
        self.blocks.push(Block {
            mem: pattern::Block {
                ptr: p,
                size,
                align,
                id,
            },
            seq: self.seq,
            owner,
        });
        self.count_arena_alloc(ctx, size);
        if ctx.is_none() {
            self.inner.allocs += 1;
        }
        inc(if ctx.is_some() {
            &self.cov.arena_allocs
        } else {
            &self.cov.heap_allocs
        });
    }

    fn note_free(&mut self, b: &Block) {
        if matches!(b.owner, Owner::Arena(inst) if !self.is_alive(inst)) {
            inc(&self.cov.orphan_frees);
        }
        if let Owner::Arena(inst) = b.owner
            && b.mem.size < self.large[inst as usize]
        {
            self.small_freed[inst as usize] = true;
        }
    }

    fn op_free(&mut self, pick: Pick, remote: bool) {
        let Some(i) = self.pick(pick) else { return };
        let b = self.blocks.remove(i);
        self.check_block(&b, true, "before free");
        self.note_free(&b);
        if remote {
            self.helper.free(b.mem.ptr, b.mem.layout());
            inc(&self.cov.remote_frees);
        } else {
            // SAFETY: a live block with this layout.
            unsafe { dealloc(b.mem.ptr, b.mem.layout()) };
            if b.owner == Owner::Heap {
                self.inner.frees += 1;
            }
        }
    }

    fn op_realloc(&mut self, pick: Pick, resize: Resize) {
        let Some(i) = self.pick(pick) else { return };
        let b = self.blocks[i];
        self.check_block(&b, true, "before realloc");
        let new_size = match resize {
            Resize::To(n) => n,
            Resize::GrowBy(d) => b.mem.size + d as usize,
            Resize::ShrinkBy(d) => b.mem.size.saturating_sub(d as usize).max(1),
        };
        // A large block that shrinks to an eighth of its chunk or less moves
        // to a chunk its size: the chunk's size, before the call, decides.
        let shrink_moves = match b.owner {
            Owner::Arena(inst)
                if b.mem.size >= self.large[inst as usize] && new_size < b.mem.size =>
            {
                self.chunk_size_of(inst, b.mem.ptr as usize)
                    .is_some_and(|chunk| {
                        let pad = b.mem.align.saturating_sub(CHUNK_HEADER);
                        let need = CHUNK_HEADER + pad + new_size.next_multiple_of(8);
                        need.next_power_of_two().max(64 << 10) * 8 < chunk
                    })
            }
            _ => false,
        };
        // SAFETY: a live block with this layout; `new_size` is non-zero and
        // far from overflowing when rounded to the alignment.
        let p = unsafe { realloc(b.mem.ptr, b.mem.layout(), new_size) };
        assert!(!p.is_null(), "realloc of {b:?} to {new_size} failed");
        assert_eq!(p as usize % b.mem.align, 0, "realloc of {b:?} misaligned");
        let ctx = self.context();
        let ctx_owner = self.context_owner();
        let mut nb = Block {
            mem: pattern::Block {
                ptr: p,
                size: new_size,
                ..b.mem
            },
            ..b
        };
        if b.owner == Owner::Heap {
            // A heap block stays on the heap, whatever the context.
            assert!(!is_arena_pointer(p), "heap block {b:?} moved into an arena");
            self.inner.reallocs += 1;
        } else if p == b.mem.ptr {
            // In place: only a region of the block's own arena may do that.
            assert_eq!(
                ctx_owner, b.owner,
                "arena block {b:?} was resized in place in context {ctx_owner:?}"
            );
            assert!(
                !shrink_moves,
                "{b:?} shrank to {new_size} in place in a chunk eight times its need"
            );
            if new_size.next_multiple_of(8) > b.mem.size.next_multiple_of(8) {
                // Growth in place only for a block allocated after the
                // innermost checkpoint of its arena (else a reset to that
                // checkpoint would reclaim the tail).
                // Only the interpreter takes checkpoints, on arenas in
                // slots (an arena with a frame on it is never dropped).
                let inst = ctx.expect("in place means in a region");
                let floor = self.slot_of_inst(inst).and_then(|slot| {
                    self.frames.iter().rev().find_map(|f| match *f {
                        Frame::NoEscape { slot: x, seq } if x == slot => Some(seq),
                        _ => None,
                    })
                });
                // A large block is alone in its chunk, outside the bump
                // chain: no reset can cut its tail, so it may grow in place
                // whenever its chunk has room.
                if let Some(floor) = floor
                    && b.mem.size < self.large[inst as usize]
                {
                    assert!(
                        b.seq > floor,
                        "{b:?} grew in place to {new_size} although it predates the innermost checkpoint (sequence {floor})"
                    );
                }
                inc(&self.cov.realloc_grow_in_place);
            }
            self.count_arena_alloc(ctx, new_size);
            inc(&self.cov.realloc_in_place);
        } else {
            // Shrinking inside a region of the block's arena is in place,
            // except for a large block that shrinks below the threshold: it
            // moves out of its chunk of its own into the bump chain.
            let large = match b.owner {
                Owner::Arena(inst) => self.large[inst as usize],
                Owner::Heap => usize::MAX,
            };
            let leaves_its_chunk = b.mem.size >= large && new_size < large;
            let must_stay = ctx_owner == b.owner && new_size <= b.mem.size;
            assert!(
                !must_stay || leaves_its_chunk || shrink_moves,
                "shrinking {b:?} to {new_size} in its own arena moved it to {p:?}"
            );
            assert_eq!(
                is_arena_pointer(p),
                ctx.is_some(),
                "arena block {b:?} moved to the wrong side in context {ctx_owner:?}"
            );
            self.note_free(&b);
            self.count_arena_alloc(ctx, new_size);
            if ctx.is_none() {
                self.inner.allocs += 1;
            }
            self.seq += 1;
            nb.owner = ctx_owner;
            nb.seq = self.seq;
            inc(&self.cov.realloc_moved);
        }
        let keep = b.mem.size.min(new_size);
        // SAFETY: the new block has `new_size` bytes.
        if let Some(off) = unsafe { check_raw(p, b.mem.id, 0, keep) } {
            panic!("realloc of {b:?} to {new_size} at {p:?} lost byte {off}");
        }
        // SAFETY: as above.
        unsafe { fill_raw(p, b.mem.id, keep, new_size) };
        if p == b.mem.ptr {
            self.blocks[i] = nb;
        } else {
            self.blocks.remove(i);
            self.blocks.push(nb);
        }
    }

    fn op_stats(&self, slot: usize) {
        self.check_arena(slot, "Stats");
        self.check_all_blocks("Stats");
    }

    fn op_reset(&mut self, slot: usize) {
        let open = self
            .frames
            .iter()
            .filter(|f| matches!(f, Frame::NoEscape { slot: x, .. } if *x == slot))
            .count();
        let result = match &self.slots[slot].handle {
            Handle::Plain(a) => a.try_reset(),
            Handle::Locked(a) => a.try_reset(),
        };
        if open > 0 {
            assert_eq!(
                result,
                Err(ResetError::OutOfOrder { newer: open }),
                "full reset of slot {slot} with {open} no_escape block(s) open"
            );
            return;
        }
        let r = result.expect("a full reset with no checkpoint open");
        let (n, bytes) = self.live_of(self.slots[slot].c.inst, 0);
        assert_eq!(
            (r.escaped_blocks, r.escaped_bytes, r.busy_lanes, r.untracked),
            (n, bytes, 0, false),
            "full reset of slot {slot}: {r}"
        );
        let sl = &mut self.slots[slot];
        sl.c.resets += 1;
        if n > 0 {
            sl.c.escapes += 1;
            sl.c.escaped_blocks += n;
            sl.c.escaped_bytes += bytes;
        }
        let s = self.check_arena(slot, "after a full reset");
        self.check_chunks(slot, true, "after a full reset");
        if n == 0 {
            assert_eq!(s.bytes_in_use, 0, "a clean full reset of slot {slot}\n{s}");
            self.small_freed[self.slots[slot].c.inst as usize] = false;
            inc(&self.cov.full_resets_clean);
        } else {
            inc(&self.cov.full_resets_escaped);
        }
        self.check_all_blocks("after a full reset");
    }

    fn op_drop_arena(&mut self, slot: usize) {
        let used = self.frames.iter().any(|f| match *f {
            Frame::Region { slot: x } | Frame::NoEscape { slot: x, .. } => x == slot,
        });
        if used {
            return; // a frame uses it
        }
        let old_inst = self.slots[slot].c.inst;
        let co_users = self.co_users(old_inst);
        assert_eq!(
            self.slots[slot].handle.users(),
            1 + co_users,
            "handles of slot {slot} before dropping it (the slot's and one per coroutine region)"
        );
        let fresh = self.spares[slot].pop().expect("pre-made arena");
        let old = std::mem::replace(&mut self.slots[slot], Slot::new(fresh, self.next_inst));
        self.next_inst += 1;
        self.large.push(large_from(slot));
        self.small_freed.push(false);
        if co_users == 0 {
            let (live, _) = self.live_of(old_inst, 0);
            if live > 0 {
                inc(&self.cov.drops_with_live_blocks);
            }
            drop(old);
            self.inner.frees += 1; // the `Rc`'s heap box
        } else {
            // Coroutines hold it for their regions: the arena lives on until
            // the last of them ends (see `bury`).
            let Slot { handle, c } = old;
            self.retired.push(Retired {
                arena: handle.downgrade(),
                c,
            });
            drop(handle);
            inc(&self.cov.arenas_retired);
            self.check_retired("after dropping an arena that coroutines hold");
        }
        // Its live blocks are orphans now (or still the retired arena's);
        // they must stay valid.
        self.check_all_blocks("after dropping an arena");
    }

    /// An arena that the model dropped while coroutines held it is dropped
    /// when the last of their regions of it ends. Checks that each one no
    /// longer held is gone, frees what the model kept of it (the `Weak`, and
    /// with it the `Rc`'s heap box), and checks the others.
    fn bury(&mut self, when: &'static str) {
        let mut i = 0;
        while i < self.retired.len() {
            let inst = self.retired[i].c.inst;
            if self.co_users(inst) > 0 {
                i += 1;
                continue;
            }
            let r = self.retired.remove(i);
            assert_eq!(
                r.arena.users(),
                0,
                "{when}: arena instance {inst} outlived the last coroutine region that held it"
            );
            let (live, _) = self.live_of(inst, 0);
            if live > 0 {
                inc(&self.cov.drops_with_live_blocks);
            }
            if !self.regions.is_empty() {
                inc(&self.cov.arenas_dropped_in_regions);
            }
            drop(r);
            self.inner.frees += 1; // the `Rc`'s heap box, with the last `Weak`
        }
        self.check_retired(when);
    }

    /// Checks every arena and block after a coroutine operation.
    fn after_co_op(&self, when: &'static str) {
        for slot in 0..SLOTS {
            self.check_arena(slot, when);
        }
        self.check_retired(when);
        self.check_all_blocks(when);
    }

    fn pick_co(&self, index: u16) -> Option<usize> {
        match self.cos.len() {
            0 => None,
            n => Some(index as usize % n),
        }
    }

    /// Resumes coroutine `i`, which enters a region of `slot`'s arena and
    /// suspends inside it: the newest region in the thread's list.
    fn co_enter(&mut self, i: usize, slot: usize) {
        let inst = self.slots[slot].c.inst;
        let holder = Holder::Co(self.cos[i].id);
        self.regions.push(Entry { inst, holder });
        let h = self.slots[slot].handle.clone();
        let r = self.cos[i].co.resume(Cmd::Enter(h));
        assert!(
            matches!(r, CoroutineResult::Yield(())),
            "{holder:?} did not suspend inside the region it entered"
        );
        self.cos[i].depth += 1;
    }

    fn op_co_start(&mut self, slot: usize) {
        if self.cos.len() >= MAX_COROUTINES {
            return;
        }
        // `Coroutine::new` maps a stack of its own; it does not allocate.
        self.cos.push(Co {
            id: self.next_co,
            co: coroutine(),
            depth: 0,
        });
        self.next_co += 1;
        self.co_enter(self.cos.len() - 1, slot);
        inc(&self.cov.co_starts);
        let n = self.cos.len() as u64;
        self.cov
            .max_coroutines
            .set(self.cov.max_coroutines.get().max(n));
        self.after_co_op("after a coroutine started in a region");
    }

    fn op_co_enter(&mut self, index: u16, slot: usize) {
        let Some(i) = self.pick_co(index) else { return };
        if self.cos[i].depth >= MAX_CO_REGIONS {
            return;
        }
        self.co_enter(i, slot);
        inc(&self.cov.co_enters);
        self.after_co_op("after a coroutine entered a nested region");
    }

    fn op_co_leave(&mut self, index: u16) {
        let Some(i) = self.pick_co(index) else { return };
        let holder = Holder::Co(self.cos[i].id);
        self.end_region(holder);
        let r = self.cos[i].co.resume(Cmd::Leave);
        self.cos[i].depth -= 1;
        if self.cos[i].depth == 0 {
            assert!(
                matches!(r, CoroutineResult::Return(())),
                "{holder:?} left its last region but did not return"
            );
            // Finished: dropping it unwinds nothing.
            drop(self.cos.remove(i));
        } else {
            assert!(
                matches!(r, CoroutineResult::Yield(())),
                "{holder:?} did not suspend after leaving a region"
            );
        }
        inc(&self.cov.co_leaves);
        self.bury("after a coroutine left a region");
        self.after_co_op("after a coroutine left a region");
    }

    fn op_co_drop(&mut self, index: u16) {
        let Some(i) = self.pick_co(index) else { return };
        let co = self.cos.remove(i);
        // The unwinding allocates before it leaves any region, so in the
        // newest one (never on the heap: this coroutine holds a region).
        let ctx = self.context();
        assert!(ctx.is_some());
        self.count_arena(ctx, self.unwind.allocs, self.unwind.bytes);
        // What the unwinding allocates it frees.
        if let Some(inst) = ctx {
            self.small_freed[inst as usize] = true;
        }
        for _ in 0..co.depth {
            self.end_region(Holder::Co(co.id));
        }
        drop(co);
        inc(&self.cov.co_unwinds);
        self.bury("after dropping a suspended coroutine");
        self.after_co_op("after dropping a suspended coroutine");
    }

    /// Checks the reset at the end of a `no_escape` block on `slot` that
    /// began when the sequence counter was `seq` and the arena's counters
    /// were `before`: exactly the blocks of the arena allocated since, and
    /// still live, escaped.
    fn after_no_escape(
        &mut self,
        slot: usize,
        seq: u64,
        before: &ArenaStats,
        report: Option<ResetReport>,
    ) {
        let (n, bytes) = self.live_of(self.slots[slot].c.inst, seq);
        if let Some(r) = report {
            assert_eq!(
                (r.escaped_blocks, r.escaped_bytes, r.busy_lanes),
                (n, bytes, 0),
                "reset_to on slot {slot}: {r}"
            );
            assert_eq!((r.concurrent_checkpoints, r.untracked), (0, false));
        }
        let sl = &mut self.slots[slot];
        sl.c.resets += 1;
        if n > 0 {
            sl.c.escapes += 1;
            sl.c.escaped_blocks += n;
            sl.c.escaped_bytes += bytes;
        }
        let after = self.check_arena(slot, "after no_escape");
        self.check_chunks(slot, true, "after no_escape");
        if n == 0 {
            // Large blocks live in chunks of their own: the bump part returns
            // to its checkpoint exactly, whatever large blocks came and went,
            // unless the arena held dead memory (a small block freed since
            // its last clean full reset): a chunk whose blocks all died, or
            // the newest piece emptied below the checkpoint, may have been
            // handed back meanwhile. Then it ends lower (SAFETY.md, R6).
            let (now, then) = (
                after.bytes_in_use - after.large_bytes,
                before.bytes_in_use - before.large_bytes,
            );
            let inst = self.slots[slot].c.inst;
            if !self.small_freed[inst as usize] {
                assert_eq!(
                    now, then,
                    "a clean no_escape on slot {slot} did not return to its checkpoint\nbefore: {before}\nafter: {after}"
                );
            } else {
                assert!(
                    now <= then,
                    "a clean no_escape on slot {slot} ended above its checkpoint\nbefore: {before}\nafter: {after}"
                );
            }
            inc(&self.cov.no_escape_clean);
        } else {
            inc(&self.cov.no_escape_escaped);
            self.cov
                .escaped_blocks
                .set(self.cov.escaped_blocks.get() + n);
        }
        self.check_all_blocks("after no_escape");
    }

    /// Checks the arena after a checkpoint on `slot` was dropped: nothing
    /// was reset.
    fn after_discard(&mut self, slot: usize) {
        self.check_arena(slot, "after dropping a checkpoint");
        inc(&self.cov.checkpoints_discarded);
    }

    /// Frees everything and checks that every arena is back to empty.
    fn finish(&mut self) {
        assert!(self.frames.is_empty());
        // Coroutines still suspended are dropped, oldest first: each unwinds
        // its regions, out of order while younger coroutines hold newer ones.
        let n = self.cos.len() as u64;
        self.cov
            .co_unwinds_at_end
            .set(self.cov.co_unwinds_at_end.get() + n);
        while !self.cos.is_empty() {
            self.op_co_drop(0);
        }
        assert!(self.regions.is_empty(), "{:?}", self.regions);
        assert!(self.retired.is_empty());
        while let Some(b) = self.blocks.pop() {
            self.check_block(&b, true, "at the end");
            self.note_free(&b);
            // SAFETY: a live block with this layout.
            unsafe { dealloc(b.mem.ptr, b.mem.layout()) };
            if b.owner == Owner::Heap {
                self.inner.frees += 1;
            }
        }
        for slot in 0..SLOTS {
            let s = self.check_arena(slot, "at the end");
            assert_eq!(s.live_blocks, 0);
            let r = match &self.slots[slot].handle {
                Handle::Plain(a) => a.reset(),
                Handle::Locked(a) => a.reset(),
            };
            assert!(r.is_clean(), "final reset of slot {slot}: {r}");
            let s = self.slots[slot].handle.stats();
            assert_eq!(s.bytes_in_use, 0, "slot {slot} after the final reset\n{s}");
        }
    }
}

// ---------------------------------------------------------------------------
// the interpreter
// ---------------------------------------------------------------------------

/// Runs `ops[*pc..]` until the end of the list or an operation that ends the
/// innermost frame (which is the one this call runs in).
fn interpret(st: &mut State<'_>, ops: &[Op], pc: &mut usize) {
    while *pc < ops.len() {
        let op = ops[*pc];
        *pc += 1;
        inc(&st.cov.ops);
        if st.cov.ops.get().is_multiple_of(CHUNK_CHECK_EVERY) {
            for slot in 0..SLOTS {
                st.check_chunks(slot, false, "every few operations");
            }
        }
        match op {
            Op::Alloc {
                size,
                align_log2,
                zeroed,
            } => st.op_alloc(size, align_log2, zeroed),
            Op::Free(p) => st.op_free(p, false),
            Op::FreeOnOtherThread(p) => st.op_free(p, true),
            Op::Realloc(p, r) => st.op_realloc(p, r),
            Op::Stats(a) => st.op_stats(a as usize % SLOTS),
            Op::Reset(a) => st.op_reset(a as usize % SLOTS),
            Op::DropArena(a) => st.op_drop_arena(a as usize % SLOTS),
            Op::CoStart(a) => st.op_co_start(a as usize % SLOTS),
            Op::CoEnter(c, a) => st.op_co_enter(c, a as usize % SLOTS),
            Op::CoLeave(c) => st.op_co_leave(c),
            Op::CoDrop(c) => st.op_co_drop(c),
            Op::EnterRegion(a) => {
                if st.frames.len() >= MAX_FRAMES {
                    continue;
                }
                let slot = a as usize % SLOTS;
                st.frames.push(Frame::Region { slot });
                let inst = st.slots[slot].c.inst;
                st.regions.push(Entry {
                    inst,
                    holder: Holder::Main,
                });
                let depth = st.frames.len() as u64;
                st.cov.max_depth.set(st.cov.max_depth.get().max(depth));
                match st.slots[slot].handle.clone() {
                    Handle::Plain(h) => with_bumper(&*h, || interpret(st, ops, pc)),
                    Handle::Locked(h) => with_bumper(&*h, || interpret(st, ops, pc)),
                }
                // Out of order if a coroutine entered a region since.
                let e = st.end_region(Holder::Main);
                assert_eq!(e.inst, inst);
                st.frames.pop();
            }
            Op::NoEscapeBegin(a) => begin_checkpoint(st, ops, pc, a, None, 1),
            Op::CheckpointBegin { arena, discard } => {
                begin_checkpoint(st, ops, pc, arena, Some(discard), 1)
            }
            Op::Burst { count, size } => {
                for _ in 0..count {
                    st.op_alloc(size as usize, 0, false);
                }
            }
            Op::Nest { arena, depth } => begin_checkpoint(st, ops, pc, arena, Some(false), depth),
            Op::LeaveRegion => {
                if matches!(st.frames.last(), Some(Frame::Region { .. })) {
                    return;
                }
            }
            Op::NoEscapeEnd => {
                if matches!(st.frames.last(), Some(Frame::NoEscape { .. })) {
                    return;
                }
            }
        }
    }
}

/// Runs a `no_escape` block (`explicit` is `None`) or an explicit
/// checkpoint, reset or (`Some(true)`) dropped at its end, around the
/// following operations.
///
/// `nest` above 1: the operations first run inside `nest - 1` more explicit
/// checkpoints of the same arena (reset at their end, every fifth dropped),
/// each ended by its own `NoEscapeEnd`.
fn begin_checkpoint(
    st: &mut State<'_>,
    ops: &[Op],
    pc: &mut usize,
    arena: u8,
    explicit: Option<bool>,
    nest: u8,
) {
    let open = st
        .frames
        .iter()
        .filter(|f| matches!(f, Frame::NoEscape { .. }))
        .count();
    if st.frames.len() >= MAX_FRAMES || open >= MAX_NO_ESCAPE {
        return;
    }
    let slot = arena as usize % SLOTS;
    let handle = st.slots[slot].handle.clone();
    let before = handle.stats();
    let seq = st.seq;
    st.frames.push(Frame::NoEscape { slot, seq });
    let inner = |st: &mut State<'_>, pc: &mut usize| {
        if nest > 1 {
            let discard = nest.is_multiple_of(5);
            begin_checkpoint(st, ops, pc, arena, Some(discard), nest - 1);
        }
        interpret(st, ops, pc);
    };
    let report = match (&handle, explicit) {
        (Handle::Plain(h), None) => {
            h.no_escape(|| inner(st, pc));
            None
        }
        (Handle::Locked(h), None) => {
            h.no_escape(|| inner(st, pc));
            None
        }
        (Handle::Plain(h), Some(discard)) => {
            let cp = h.checkpoint();
            inner(st, pc);
            (!discard).then(|| h.reset_to(cp))
        }
        (Handle::Locked(h), Some(discard)) => {
            let cp = h.checkpoint();
            inner(st, pc);
            (!discard).then(|| h.reset_to(cp))
        }
    };
    drop(handle);
    st.frames.pop();
    if explicit == Some(true) {
        st.after_discard(slot);
    } else {
        st.after_no_escape(slot, seq, &before, report);
    }
}

fn run_case(ops: &[Op], unwind: UnwindCost, helper: &Helper, cov: &Coverage) {
    let mut st = State::new(ops, unwind, helper, cov);
    let caps = |st: &State<'_>| {
        [
            st.blocks.capacity(),
            st.frames.capacity(),
            st.regions.capacity(),
            st.cos.capacity(),
            st.retired.capacity(),
        ]
    };
    let before = caps(&st);
    let start = inner_calls();
    let mut pc = 0;
    interpret(&mut st, ops, &mut pc);
    // The interpreter must not have allocated (its allocations would have
    // distorted the arenas' counts).
    assert_eq!(caps(&st), before);
    st.finish();
    assert_eq!(caps(&st), before);
    // Exactly the heap traffic the model predicts reached the inner
    // allocator from this thread: nothing spilled, no arena block went there,
    // and no heap block was moved into an arena.
    let end = inner_calls();
    let got = InnerCalls {
        allocs: end.allocs - start.allocs,
        frees: end.frees - start.frees,
        reallocs: end.reallocs - start.reallocs,
    };
    assert_eq!(got, st.inner, "calls to the inner allocator");
}

#[test]
fn random_operation_sequences_match_the_model() {
    let p = params();
    let helper = Helper {
        req: Mutex::new(Request::Idle),
        cv: Condvar::new(),
    };
    let cov = Coverage::default();
    // Measured twice: the figure must not depend on whether it is the
    // thread's first unwinding.
    let unwind = if p.coroutines {
        let first = measure_unwind();
        let second = measure_unwind();
        assert_eq!(first, second, "what unwinding a coroutine allocates");
        second
    } else {
        UnwindCost::default()
    };
    let config = Config {
        cases: p.cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = match p.seed {
        Some(seed) => {
            // ChaCha takes 32 bytes of seed: spread the number over them.
            let mut bytes = [0u8; 32];
            for (i, chunk) in bytes.chunks_mut(8).enumerate() {
                chunk.copy_from_slice(&common::pattern::word(seed, i).to_le_bytes());
            }
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
        }
        None => TestRunner::new(config),
    };
    let strategy = prop::collection::vec(op_strategy(&p), 0..=p.max_ops);
    let result = std::thread::scope(|s| {
        s.spawn(|| helper.serve());
        struct Quit<'a>(&'a Helper);
        impl Drop for Quit<'_> {
            fn drop(&mut self) {
                self.0.quit();
            }
        }
        let _quit = Quit(&helper);
        runner.run(&strategy, |ops| {
            run_case(&ops, unwind, &helper, &cov);
            Ok(())
        })
    });
    if p.coroutines {
        println!(
            "unwinding a coroutine allocates {} block(s), {} bytes",
            unwind.allocs, unwind.bytes
        );
    } else {
        println!("coroutine operations off");
    }
    println!("coverage over {} cases: {cov}", p.cases);
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, ops)) => panic!(
            "model test failed: {reason}\nminimal failing sequence ({} ops):\n{ops:#?}",
            ops.len()
        ),
        Err(e) => panic!("model test aborted: {e}"),
    }
}
