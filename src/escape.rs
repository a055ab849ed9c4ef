//! What happens when memory escapes: the message that names what escaped
//! and how to fix it, and the [`EscapePolicy`] that decides how loudly to
//! report it. Runs only in user-facing methods, never on the allocator path.

use crate::report::{EscapePolicy, ResetReport};
use crate::stats::Bytes;
use crate::sys;

/// Where an escape was found, for the message.
#[derive(Clone, Copy)]
pub(crate) enum EscapeSite {
    Reset,
    NoEscape,
    Drop,
}

/// Builds the escape message.
pub(crate) fn escape_message(site: EscapeSite, arena: u64, r: &ResetReport) -> String {
    let what = match site {
        EscapeSite::Reset => "reset",
        EscapeSite::NoEscape => "the end of a `no_escape` block",
        EscapeSite::Drop => "drop",
    };
    let mut msg = format!("bumper: memory escaped arena #{arena} at {what}: ");
    if r.escaped_blocks > 0 {
        msg += &format!(
            "{} block(s) ({}) allocated since the checkpoint are still in use \
             (returned from the block, stored in an outer collection or a global, or leaked). ",
            r.escaped_blocks,
            Bytes(r.escaped_bytes)
        );
    }
    if r.busy_lanes > 0 {
        msg += &format!(
            "{} lane(s) were in use by other threads inside a region of this arena. ",
            r.busy_lanes
        );
    }
    if r.concurrent_checkpoints > 0 {
        msg += &format!(
            "{} newer checkpoint(s) of other threads were active, so nothing was reset. ",
            r.concurrent_checkpoints
        );
    }
    msg += "The memory was kept valid and will not be reused. Fix: copy results into memory \
            allocated outside the region (before `with_bumper`), or move the checkpoint outward \
            (for a LockedArena, reset only after the threads using it have finished).";
    msg
}

/// Applies `policy` to an escape. Called only from user-facing methods,
/// never from the allocator path.
pub(crate) fn handle_escape(policy: EscapePolicy, site: EscapeSite, arena: u64, r: &ResetReport) {
    if !r.escaped() {
        return;
    }
    match policy {
        EscapePolicy::Keep => {}
        EscapePolicy::Panic => {
            if !std::thread::panicking() {
                panic!("{}", escape_message(site, arena, r));
            }
        }
        EscapePolicy::Abort => {
            let msg = escape_message(site, arena, r);
            sys::write_stderr(msg.as_bytes());
            sys::write_stderr(b"\n");
            std::process::abort();
        }
    }
}
