// A checkpoint belongs to the thread that took it.
use bumper::LockedArena;

fn main() {
    let arena = LockedArena::new();
    let cp = arena.checkpoint();
    std::thread::scope(|s| {
        s.spawn(move || arena.reset_to(cp));
    });
}
