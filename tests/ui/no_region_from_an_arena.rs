// Only a `LockedArena` can back a `Region`: an unlocked `Arena` has no
// `region()`.
use bumper::Arena;

fn main() {
    let arena = Arena::new();
    let _region = arena.region();
}
