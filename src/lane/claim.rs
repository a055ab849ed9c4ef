//! The owner claim of a lane: which thread may use its owner-only state.
//!
//! A lane is *claimed* by at most one thread at a time: `owner` holds the
//! claimant's thread id, or 0. A region claims its lane for as long as it
//! runs; a reset, a snapshot or a drop claims a lane for a moment with a
//! *service* claim, marked with [`SERVICE`] so that a thread looking for a
//! lane knows it will be given back shortly. The claim is taken with an
//! acquire CAS and given back with a release store, so each claimant sees
//! everything its predecessor wrote to the owner-only fields.

use core::sync::atomic::Ordering;

use super::Lane;

/// Bit set in `owner` for a service claim (thread ids stay far below it).
const SERVICE: u64 = 1 << 63;

/// Result of [`Lane::try_claim`] and [`Lane::try_service_claim`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Claim {
    /// The calling thread already held the lane.
    Already,
    /// The calling thread took the lane and must release it.
    Taken,
    /// Another thread holds the lane.
    Busy,
}

impl Lane {
    /// Tries to make thread `tid` (never 0) the owner, for a region.
    #[inline]
    pub(crate) fn try_claim(&self, tid: u64) -> Claim {
        self.claim_as(tid, tid)
    }

    /// As [`Lane::try_claim`], with a plain store instead of a
    /// compare-and-swap.
    ///
    /// # Safety
    /// No other thread claims the lane, or reads its claim expecting to
    /// synchronise with this one, while the calling thread may: the lane
    /// belongs to an arena that only one thread at a time can use (an
    /// `Arena`, which is `!Sync`; handing it to another thread synchronises
    /// the two).
    #[inline]
    pub(crate) unsafe fn claim_unshared(&self, tid: u64) -> Claim {
        match self.owner.load(Ordering::Relaxed) {
            cur if cur == tid => Claim::Already,
            0 => {
                self.owner.store(tid, Ordering::Relaxed);
                Claim::Taken
            }
            _ => Claim::Busy,
        }
    }

    /// Tries to take the lane briefly on behalf of thread `tid`, for a reset,
    /// a snapshot or a drop.
    #[inline]
    pub(crate) fn try_service_claim(&self, tid: u64) -> Claim {
        self.claim_as(tid, tid | SERVICE)
    }

    fn claim_as(&self, tid: u64, value: u64) -> Claim {
        let cur = self.owner.load(Ordering::Relaxed);
        if cur == tid {
            return Claim::Already;
        }
        if cur != 0 {
            return Claim::Busy;
        }
        match self
            .owner
            .compare_exchange(0, value, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Claim::Taken,
            Err(_) => Claim::Busy,
        }
    }

    /// Whether the lane is held by a service claim.
    pub(crate) fn is_service_claimed(&self) -> bool {
        self.owner.load(Ordering::Relaxed) & SERVICE != 0
    }

    /// Gives up a claim.
    ///
    /// # Safety
    /// The calling thread must hold the claim (it got [`Claim::Taken`]), and
    /// must not use the lane's owner-only state afterwards.
    #[inline]
    pub(crate) unsafe fn release_claim(&self) {
        self.owner.store(0, Ordering::Release);
    }

    /// The id of the thread holding a region claim (with the service bit
    /// for a service claim), or 0.
    #[inline(always)]
    pub(crate) fn owner(&self) -> u64 {
        self.owner.load(Ordering::Relaxed)
    }
}
