//! What happens when memory escapes: the message that names what escaped
//! and how to fix it, and the [`EscapePolicy`] that decides how loudly to
//! report it. Runs only in user-facing methods, never on the allocator path.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

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

/// Writes the escape message to `out`.
fn write_message(
    out: &mut impl fmt::Write,
    site: EscapeSite,
    arena: u64,
    r: &ResetReport,
) -> fmt::Result {
    let what = match site {
        EscapeSite::Reset => "reset",
        EscapeSite::NoEscape => "the end of a `no_escape` block",
        EscapeSite::Drop => "drop",
    };
    write!(out, "bumper: memory escaped arena #{arena} at {what}: ")?;
    if r.escaped_blocks > 0 {
        write!(
            out,
            "{} block(s) ({}) allocated since the checkpoint are still in use \
             (returned from the block, stored in an outer collection or a global, or leaked). ",
            r.escaped_blocks,
            Bytes(r.escaped_bytes)
        )?;
    }
    if r.busy_lanes > 0 {
        write!(
            out,
            "{} lane(s) were in use by other threads inside a region of this arena. ",
            r.busy_lanes
        )?;
    }
    if r.concurrent_checkpoints > 0 {
        write!(
            out,
            "{} newer checkpoint(s) of other threads were active, so nothing was reset. ",
            r.concurrent_checkpoints
        )?;
    }
    out.write_str(
        "The memory was kept valid and will not be reused. Fix: copy results into memory \
         allocated outside the region (before `with_bumper`), or move the checkpoint outward \
         (for a LockedArena, reset only after the threads using it have finished).",
    )
}

/// Builds the escape message.
pub(crate) fn escape_message(site: EscapeSite, arena: u64, r: &ResetReport) -> String {
    let mut msg = String::new();
    let _ = write_message(&mut msg, site, arena, r);
    msg
}

/// A message buffer on the stack, so that a warning allocates nothing (it
/// may run inside a region, whose counters it must not disturb).
struct StackText {
    buf: [u8; 1024],
    len: usize,
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Applies `policy` to an escape. Called only from user-facing methods,
/// never from the allocator path.
/// `warned` is the arena's flag for [`EscapePolicy::Warn`].
pub(crate) fn handle_escape(
    policy: EscapePolicy,
    warned: &AtomicBool,
    site: EscapeSite,
    arena: u64,
    r: &ResetReport,
) {
    if !r.escaped() {
        return;
    }
    match policy {
        EscapePolicy::Keep => {}
        EscapePolicy::Warn => {
            if !warned.swap(true, Ordering::Relaxed) {
                let mut text = StackText {
                    buf: [0; 1024],
                    len: 0,
                };
                let _ = write_message(&mut text, site, arena, r);
                sys::write_stderr(b"warning: ");
                sys::write_stderr(&text.buf[..text.len]);
                sys::write_stderr(
                    b" (EscapePolicy::Warn: said once per arena; choose another policy with \
                      ArenaBuilder::escape_policy)\n",
                );
            }
        }
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
