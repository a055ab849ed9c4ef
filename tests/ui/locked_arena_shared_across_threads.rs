// Control case: a `LockedArena` *can* be shared between threads. If this
// stops compiling, the harness (not the property) is broken.
use bumper::{with_bumper, LockedArena};

fn main() {
    let arena = LockedArena::new();
    std::thread::scope(|s| {
        s.spawn(|| with_bumper(&arena, || vec![1, 2, 3]));
    });
}
