// Control case: a `Region` and an `InRegion` over a `Send` future can cross
// threads (as a tokio multi-thread runtime needs).
use bumper::{LockedArena, Region, in_region};

fn assert_send<T: Send + Sync + 'static>(_: &T) {}

fn main() {
    let arena = LockedArena::new();
    let region: Region = arena.region();
    assert_send(&region);
    let fut = in_region(region, async { vec![1u8; 10].len() });
    std::thread::spawn(move || drop(fut)).join().unwrap();
}
