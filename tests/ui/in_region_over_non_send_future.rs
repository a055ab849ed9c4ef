// An `InRegion` over a future that is not `Send` is not `Send` either.
use bumper::{LockedArena, in_region};

fn assert_send<T: Send>(_: T) {}

fn main() {
    let arena = LockedArena::new();
    let not_send = async {
        let rc = std::rc::Rc::new(1);
        std::future::ready(()).await;
        drop(rc);
    };
    assert_send(in_region(arena.region(), not_send));
}
