// An `Arena` is `!Sync`: another thread cannot run a region on it.
use bumper::{with_bumper, Arena};

fn main() {
    let arena = Arena::new();
    std::thread::scope(|s| {
        s.spawn(|| with_bumper(&arena, || vec![1, 2, 3]));
    });
}
