//! The deterministic generator the workloads build their inputs with.

/// xorshift64: fast, deterministic, good enough for test data.
pub struct XorShift(u64);

impl XorShift {
    /// A generator from a non-zero seed.
    pub const fn new(seed: u64) -> XorShift {
        XorShift(seed)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n`.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A float uniform in `[-1, 1)`.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}
