// `in_arena` wraps an unlocked `Arena`, which must stay on its thread: the
// future is never `Send`.
use bumper::{Arena, in_arena};

fn assert_send<T: Send>(_: T) {}

fn main() {
    let arena = Arena::new();
    assert_send(in_arena(&arena, async { 1 }));
}
