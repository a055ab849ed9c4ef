//! [`MapVec`]: a growable array of `Copy` records in memory mapped from the
//! OS, for bookkeeping that has no fixed bound (an arena's checkpoints, a
//! lane's marks) and must not come from the global allocator.
//!
//! It grows by doubling: a new mapping, a copy, and the old mapping given
//! back. A growth the OS refuses makes [`MapVec::push`] return false and
//! changes nothing, so callers degrade (an untracked checkpoint) instead of
//! failing. Nothing here allocates through the global allocator, panics or
//! unwinds.

use core::marker::PhantomData;
use core::ptr;

use crate::sys;

/// A growable array of `T` in mapped memory.
pub(crate) struct MapVec<T: Copy> {
    ptr: *mut T,
    len: usize,
    /// Capacity in elements; 0 while nothing is mapped.
    cap: usize,
    _owns: PhantomData<T>,
}

// SAFETY: a `MapVec` owns its mapping, like a `Vec`; it is only reached
// through whatever synchronises its owner (a spin lock, a lane's claim).
unsafe impl<T: Copy + Send> Send for MapVec<T> {}

impl<T: Copy> MapVec<T> {
    /// An empty array; maps nothing until the first push.
    pub(crate) const fn new() -> Self {
        MapVec {
            ptr: ptr::null_mut(),
            len: 0,
            cap: 0,
            _owns: PhantomData,
        }
    }

    /// The elements.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[T] {
        if self.cap == 0 {
            return &[];
        }
        // SAFETY: the first `len` elements of the mapping are initialised,
        // and the mapping lives as long as `self`.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The elements, mutably.
    #[inline]
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        if self.cap == 0 {
            return &mut [];
        }
        // SAFETY: as in `as_slice`, and `&mut self` makes the access unique.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Number of elements.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `value`. Returns false, changing nothing, if the array is full
    /// and the OS refuses the memory to grow it.
    #[inline]
    pub(crate) fn push(&mut self, value: T) -> bool {
        if self.len == self.cap && !self.grow() {
            return false;
        }
        // SAFETY: `len < cap`, so the slot lies inside the mapping.
        unsafe { self.ptr.add(self.len).write(value) };
        self.len += 1;
        true
    }

    /// Removes the element at `index`, shifting the tail down. Does nothing
    /// if `index` is out of range.
    #[inline]
    pub(crate) fn remove(&mut self, index: usize) {
        if index >= self.len {
            return;
        }
        self.as_mut_slice().copy_within(index + 1.., index);
        self.len -= 1;
    }

    /// Keeps the first `len` elements (all of them if there are fewer).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Doubles the capacity (at least one page of elements).
    #[cold]
    #[inline(never)]
    fn grow(&mut self) -> bool {
        let size = core::mem::size_of::<T>().max(1);
        let page = sys::page_size();
        let bytes = match (self.cap * size).checked_mul(2) {
            Some(b) => b.max(page).next_multiple_of(page),
            None => return false,
        };
        let fresh = sys::map(bytes).cast::<T>();
        if fresh.is_null() {
            return false;
        }
        debug_assert!(fresh.addr() % core::mem::align_of::<T>() == 0);
        if self.cap != 0 {
            // SAFETY: both mappings hold at least `len` elements and are
            // distinct; the old one came from `map` with this length and
            // nothing refers to it after the copy.
            unsafe {
                ptr::copy_nonoverlapping(self.ptr, fresh, self.len);
                sys::unmap(self.ptr.cast(), self.cap * size);
            }
        }
        self.ptr = fresh;
        self.cap = bytes / size;
        true
    }

    /// Gives the mapping back; the array is empty afterwards.
    pub(crate) fn free(&mut self) {
        if self.cap != 0 {
            let size = core::mem::size_of::<T>().max(1);
            // SAFETY: the mapping came from `map` with this length, and the
            // array stops referring to it below.
            unsafe { sys::unmap(self.ptr.cast(), self.cap * size) };
        }
        self.ptr = ptr::null_mut();
        self.len = 0;
        self.cap = 0;
    }
}

impl<T: Copy> Drop for MapVec<T> {
    fn drop(&mut self) {
        self.free();
    }
}

#[cfg(test)]
mod tests {
    use super::MapVec;

    #[test]
    fn grows_past_a_page_and_keeps_its_elements() {
        let mut v = MapVec::<[u64; 3]>::new();
        for i in 0..1000u64 {
            assert!(v.push([i, i * 2, i * 3]));
        }
        assert_eq!(v.len(), 1000);
        assert!(
            v.as_slice()
                .iter()
                .enumerate()
                .all(|(i, e)| e[0] == i as u64 && e[2] == 3 * i as u64)
        );
        v.remove(0);
        assert_eq!(v.as_slice()[0][0], 1);
        v.truncate(10);
        assert_eq!(v.len(), 10);
        v.free();
        assert_eq!(v.len(), 0);
        assert!(v.as_slice().is_empty());
    }
}
