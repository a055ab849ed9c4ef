//! A lane's marks: pure bookkeeping, no memory access.
//!
//! A *mark* is a position in the lane's chain: a chunk (its sequence number
//! `seq` and an opaque id) and an address in it. Marks cut each chunk into
//! *pieces*: a chunk's first piece runs from its first data byte to its
//! first mark (its count lives in the chunk header), and each mark's piece
//! runs from the mark to the next mark in the same chunk, or to the chunk's
//! end (its count lives in the mark). A block belongs to the piece that
//! holds its first byte; of several marks at one address, the newest.
//!
//! Two kinds of marks:
//! - a **checkpoint mark** (`serial != 0`) is where a checkpoint was taken
//!   on this lane: resetting it reclaims what lies above it;
//! - a **floor** (`serial == 0`) is left by a reset that found live blocks
//!   above its checkpoint: it separates those blocks from what is allocated
//!   next, so that the next allocations can be reclaimed on their own. A
//!   floor is removed as soon as the piece under it holds no live block
//!   ([`Marks::settle`]), so every floor has a live block right below it.
//!
//! The marks are kept sorted by position (`seq`, then `addr`): a new mark is
//! always taken at the bump pointer, at or above every other one, and a reset
//! removes every mark above its target.
#![forbid(unsafe_code)]

use core::ops::Range;

use crate::chunk::ChunkHeader;
use crate::mapvec::MapVec;

/// Live blocks and their bytes (rounded to the 8-byte granule).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) live: u64,
    pub(crate) bytes: u64,
}

impl Counts {
    /// Adds `other`.
    #[inline]
    pub(crate) fn add(&mut self, other: Counts) {
        self.live = self.live.wrapping_add(other.live);
        self.bytes = self.bytes.wrapping_add(other.bytes);
    }

    /// Takes away one block of `bytes` bytes.
    #[inline]
    pub(crate) fn sub_block(&mut self, bytes: u64) {
        self.live = self.live.wrapping_sub(1);
        self.bytes = self.bytes.wrapping_sub(bytes);
    }
}

/// A position in a lane's chain, and the counts of the piece it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mark {
    /// The checkpoint's serial, or 0 for a floor.
    pub(crate) serial: u64,
    /// The sequence number of the chunk the mark lies in.
    pub(crate) seq: u64,
    /// That chunk (never read here: only the lane looks into chunks).
    pub(crate) chunk: *mut ChunkHeader,
    /// The address the mark lies at.
    pub(crate) addr: usize,
    /// The mark's piece.
    pub(crate) counts: Counts,
}

impl Mark {
    fn pos(&self) -> (u64, usize) {
        (self.seq, self.addr)
    }
}

/// A piece of a chunk: its first piece, or the piece of mark `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    First,
    Mark(usize),
}

/// A lane's marks, oldest (lowest) first.
pub(crate) struct Marks {
    v: MapVec<Mark>,
}

impl Marks {
    pub(crate) const fn new() -> Self {
        Marks { v: MapVec::new() }
    }

    /// The marks.
    #[inline]
    pub(crate) fn all(&self) -> &[Mark] {
        self.v.as_slice()
    }

    /// Mark `i`, mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, i: usize) -> &mut Mark {
        &mut self.v.as_mut_slice()[i]
    }

    pub(crate) fn len(&self) -> usize {
        self.v.len()
    }

    /// The newest mark.
    #[inline]
    pub(crate) fn top(&self) -> Option<&Mark> {
        self.v.as_slice().last()
    }

    /// Adds a mark at the top. Returns false if the memory for it cannot be
    /// had (the caller then leaves that checkpoint untracked on the lane).
    pub(crate) fn push(&mut self, mark: Mark) -> bool {
        debug_assert!(
            self.top().is_none_or(|t| t.pos() <= mark.pos()),
            "a mark below the top one"
        );
        self.v.push(mark)
    }

    /// The indices of the marks of the chunk with sequence number `seq`.
    pub(crate) fn run(&self, seq: u64) -> Range<usize> {
        let all = self.all();
        let lo = all.partition_point(|m| m.seq < seq);
        let hi = lo + all[lo..].partition_point(|m| m.seq == seq);
        lo..hi
    }

    /// The piece of chunk `seq` that holds address `addr`.
    pub(crate) fn piece_of(&self, seq: u64, addr: usize) -> Piece {
        let run = self.run(seq);
        let all = self.all();
        let n = all[run.clone()].partition_point(|m| m.addr <= addr);
        if n == 0 {
            Piece::First
        } else {
            Piece::Mark(run.start + n - 1)
        }
    }

    /// The index of the mark of checkpoint `serial`, searched from the top.
    pub(crate) fn find(&self, serial: u64) -> Option<usize> {
        debug_assert!(serial != 0);
        self.all().iter().rposition(|m| m.serial == serial)
    }

    /// Removes mark `i`, whose piece joins the piece below it in the same
    /// chunk: mark `i - 1` if it lies in that chunk, otherwise the chunk's
    /// first piece, whose counts `first` receives.
    pub(crate) fn remove_into_lower(&mut self, i: usize, first: &mut Counts) {
        let m = self.all()[i];
        match self.lower(i) {
            Piece::Mark(j) => self.get_mut(j).counts.add(m.counts),
            Piece::First => first.add(m.counts),
        }
        self.v.remove(i);
    }

    /// The piece right below mark `i`'s, in the same chunk.
    pub(crate) fn lower(&self, i: usize) -> Piece {
        let all = self.all();
        if i > 0 && all[i - 1].seq == all[i].seq {
            Piece::Mark(i - 1)
        } else {
            Piece::First
        }
    }

    /// The mark right above piece `p` of chunk `seq`, in the same chunk.
    pub(crate) fn above(&self, seq: u64, p: Piece) -> Option<usize> {
        let all = self.all();
        let i = match p {
            Piece::First => self.run(seq).start,
            Piece::Mark(i) => i + 1,
        };
        (i < all.len() && all[i].seq == seq).then_some(i)
    }

    /// After piece `p` of chunk `seq` lost its last live block: removes the
    /// floors that piece now holds up (a floor is there only to keep live
    /// blocks below it apart). Each removed floor's piece joins `p`, which
    /// may then be empty again, so this repeats. `first` is the chunk's
    /// first piece. Returns how many marks were removed.
    pub(crate) fn settle(&mut self, seq: u64, p: Piece, first: &mut Counts) -> u32 {
        let mut removed = 0;
        loop {
            let empty = match p {
                Piece::First => first.live == 0,
                Piece::Mark(i) => self.all()[i].counts.live == 0,
            };
            if !empty {
                return removed;
            }
            match self.above(seq, p) {
                Some(j) if self.all()[j].serial == 0 => {
                    self.remove_into_lower(j, first);
                    removed += 1;
                }
                _ => return removed,
            }
        }
    }

    /// Whether every piece of chunk `seq` is empty, given its first piece.
    pub(crate) fn chunk_is_empty(&self, seq: u64, first: Counts) -> bool {
        first.live == 0 && self.all()[self.run(seq)].iter().all(|m| m.counts.live == 0)
    }

    /// Moves the marks of chunk `seq` (all of whose pieces are empty) to the
    /// first data byte `addr` of the next chunk of the chain, `next_seq` /
    /// `next`, whose first piece is `next_first`: the newest of them takes
    /// over that piece. Returns how many marks moved.
    pub(crate) fn move_to_next(
        &mut self,
        seq: u64,
        next_seq: u64,
        next: *mut ChunkHeader,
        addr: usize,
        next_first: &mut Counts,
    ) -> u32 {
        let run = self.run(seq);
        if run.is_empty() {
            return 0;
        }
        for i in run.clone() {
            let m = self.get_mut(i);
            debug_assert!(m.counts.live == 0 && m.serial != 0);
            m.seq = next_seq;
            m.chunk = next;
            m.addr = addr;
            m.counts = Counts::default();
        }
        self.get_mut(run.end - 1).counts = *next_first;
        *next_first = Counts::default();
        run.len() as u32
    }

    /// Keeps the first `n` marks.
    pub(crate) fn truncate(&mut self, n: usize) {
        self.v.truncate(n);
    }

    /// Live blocks and bytes in the marks' pieces.
    pub(crate) fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for m in self.all() {
            c.add(m.counts);
        }
        c
    }

    /// Gives the memory back (the lane is being destroyed).
    pub(crate) fn free(&mut self) {
        self.v.free();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(seq: u64) -> *mut ChunkHeader {
        core::ptr::without_provenance_mut(seq as usize * 0x1000)
    }

    fn mark(serial: u64, seq: u64, addr: usize, live: u64) -> Mark {
        Mark {
            serial,
            seq,
            chunk: chunk(seq),
            addr,
            counts: Counts {
                live,
                bytes: live * 8,
            },
        }
    }

    fn marks(ms: &[Mark]) -> Marks {
        let mut m = Marks::new();
        for &x in ms {
            assert!(m.push(x));
        }
        m
    }

    #[test]
    fn a_block_belongs_to_the_newest_mark_at_or_below_it_in_its_chunk() {
        let m = marks(&[
            mark(1, 1, 100, 0),
            mark(2, 2, 50, 0),
            mark(3, 2, 50, 0),
            mark(4, 2, 80, 0),
        ]);
        assert_eq!(m.run(1), 0..1);
        assert_eq!(m.run(2), 1..4);
        assert_eq!(m.run(3), 4..4);
        assert_eq!(m.piece_of(1, 99), Piece::First);
        assert_eq!(m.piece_of(1, 100), Piece::Mark(0));
        assert_eq!(m.piece_of(2, 10), Piece::First);
        assert_eq!(
            m.piece_of(2, 50),
            Piece::Mark(2),
            "the newest of two marks at one address"
        );
        assert_eq!(m.piece_of(2, 79), Piece::Mark(2));
        assert_eq!(m.piece_of(2, 4000), Piece::Mark(3));
        assert_eq!(m.piece_of(3, 4000), Piece::First);
        assert_eq!(m.find(3), Some(2));
        assert_eq!(m.find(9), None);
    }

    #[test]
    fn a_removed_mark_joins_the_piece_below_it_in_its_chunk() {
        let mut m = marks(&[mark(1, 1, 100, 2), mark(2, 2, 50, 3), mark(3, 2, 60, 4)]);
        let mut first = Counts::default();
        m.remove_into_lower(2, &mut first);
        assert_eq!(m.all()[1].counts.live, 7);
        m.remove_into_lower(1, &mut first);
        assert_eq!(
            first.live, 7,
            "the lowest mark of a chunk joins its first piece"
        );
        assert_eq!(m.len(), 1);
        assert_eq!(m.counts().live, 2);
    }

    #[test]
    fn floors_above_an_empty_piece_are_removed_but_checkpoints_stay() {
        // Chunk 1: first piece (empty), floor, floor (empty), checkpoint.
        let mut m = marks(&[mark(0, 1, 10, 0), mark(0, 1, 20, 0), mark(7, 1, 30, 5)]);
        let mut first = Counts::default();
        assert_eq!(m.settle(1, Piece::First, &mut first), 2);
        assert_eq!(m.len(), 1);
        assert_eq!(
            m.all()[0].serial,
            7,
            "a checkpoint's mark is never removed by a free"
        );
        // A floor stays while the piece under it holds a live block.
        let mut m = marks(&[mark(0, 1, 10, 1), mark(0, 1, 20, 3)]);
        let mut first = Counts { live: 1, bytes: 8 };
        assert_eq!(m.settle(1, Piece::First, &mut first), 0);
        assert_eq!(m.settle(1, Piece::Mark(0), &mut first), 0);
        m.get_mut(0).counts.live = 0;
        assert_eq!(m.settle(1, Piece::Mark(0), &mut first), 1);
        assert_eq!(
            m.all()[0].counts.live,
            3,
            "the floor's piece joined the one below"
        );
    }

    #[test]
    fn marks_of_an_empty_chunk_move_to_the_start_of_the_next() {
        let mut m = marks(&[mark(1, 1, 100, 0), mark(2, 1, 200, 0), mark(3, 3, 500, 2)]);
        assert!(m.chunk_is_empty(1, Counts::default()));
        assert!(!m.chunk_is_empty(3, Counts::default()));
        let mut next_first = Counts { live: 4, bytes: 32 };
        assert_eq!(m.move_to_next(1, 3, chunk(3), 128, &mut next_first), 2);
        assert_eq!(next_first, Counts::default());
        let a = m.all();
        assert_eq!((a[0].seq, a[0].addr, a[0].counts.live), (3, 128, 0));
        assert_eq!((a[1].seq, a[1].addr, a[1].counts.live), (3, 128, 4));
        assert_eq!(m.run(3), 0..3);
        assert_eq!(m.piece_of(3, 128), Piece::Mark(1));
    }

    #[test]
    fn any_depth_of_marks() {
        let mut m = Marks::new();
        for i in 0..10_000u64 {
            assert!(m.push(mark(i + 1, i / 100, i as usize, 1)));
        }
        assert_eq!(m.find(1), Some(0));
        assert_eq!(m.piece_of(50, 5050), Piece::Mark(5050));
        assert_eq!(m.counts().live, 10_000);
    }
}
