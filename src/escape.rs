//! What happens when memory escapes: the message that names what escaped
//! and how to fix it, and the [`EscapePolicy`] that decides how loudly to
//! report it. Runs only in user-facing methods, never on the allocator path.

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::report::{AllocSite, EscapePolicy, ResetReport};
use crate::sites;
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
        let since = match site {
            EscapeSite::Drop => "of the arena",
            EscapeSite::Reset | EscapeSite::NoEscape => "allocated since the checkpoint",
        };
        write!(
            out,
            "{} block(s) ({}) {since} are still in use \
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
    if r.sites().next().is_some() {
        out.write_str("Escaped blocks by allocation site:")?;
        for s in r.sites() {
            write!(
                out,
                "\n  {} block(s) ({}) allocated at",
                s.blocks,
                Bytes(s.bytes)
            )?;
            if s.site.0 == 0 {
                out.write_str(" unknown or other sites")?;
            } else {
                write!(out, "\n{:#}", s.site)?;
            }
        }
        out.write_str("\n")?;
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
/// `warned` is the arena's flag for [`EscapePolicy::Warn`]. A panic (under
/// [`EscapePolicy::Panic`]) names the line that called the public method.
#[track_caller]
#[inline]
pub(crate) fn handle_escape(
    policy: EscapePolicy,
    warned: &AtomicBool,
    site: EscapeSite,
    arena: u64,
    r: &ResetReport,
) {
    if r.escaped() {
        apply_policy(policy, warned, site, arena, r);
    }
}

/// [`handle_escape`] once something escaped: out of line, so that a clean
/// reset pays one test.
#[track_caller]
#[cold]
#[inline(never)]
fn apply_policy(
    policy: EscapePolicy,
    warned: &AtomicBool,
    site: EscapeSite,
    arena: u64,
    r: &ResetReport,
) {
    match policy {
        EscapePolicy::Keep => {}
        EscapePolicy::Warn => {
            if warned.swap(true, Ordering::Relaxed) {
                return;
            }
            const SUFFIX: &[u8] = b" (EscapePolicy::Warn: said once per arena; choose another \
                policy with ArenaBuilder::escape_policy)\n";
            sys::write_stderr(b"warning: ");
            if r.sites().next().is_some() {
                // A tracking arena: naming the sites allocates, which is
                // fine for a mode meant for hunting escapes.
                sys::write_stderr(escape_message(site, arena, r).as_bytes());
            } else {
                let mut text = StackText {
                    buf: [0; 1024],
                    len: 0,
                };
                let _ = write_message(&mut text, site, arena, r);
                sys::write_stderr(&text.buf[..text.len]);
            }
            sys::write_stderr(SUFFIX);
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

impl AllocSite {
    /// The recorded return addresses, innermost first (empty for an unknown
    /// site).
    ///
    /// ```
    /// assert!(bumper::AllocSite::default().frames().is_empty());
    /// ```
    #[must_use]
    pub fn frames(&self) -> Vec<usize> {
        let (frames, len) = sites::frames(self.0);
        frames[..len].to_vec()
    }
}

/// Names that belong to the allocator's own machinery, not to the code that
/// asked for the block: left out of a printed site.
#[cfg(feature = "symbolize")]
fn is_plumbing(name: &str) -> bool {
    const PREFIXES: [&str; 12] = [
        "bumper::",
        "<bumper::",
        "alloc::",
        "<alloc::",
        "core::",
        "<core::",
        "std::",
        "<std::",
        "__rust",
        "__rdl",
        "<T as alloc",
        "allocator_api2",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
}

impl fmt::Display for AllocSite {
    /// One line per frame of the code that allocated (the allocator's own
    /// frames left out), with function names and source lines when the
    /// `symbolize` feature is on and the binary has debug information;
    /// addresses otherwise. `{:#}` indents the lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let indent = if f.alternate() { "    " } else { "" };
        let frames = self.frames();
        if frames.is_empty() {
            return write!(f, "{indent}(unknown site)");
        }
        #[cfg_attr(not(feature = "symbolize"), allow(unused_mut))]
        let mut shown = 0;
        #[cfg(feature = "symbolize")]
        for &addr in &frames {
            let mut line = None;
            // Return addresses point after the call: look up the call.
            backtrace::resolve(addr.wrapping_sub(1) as *mut core::ffi::c_void, |sym| {
                if line.is_some() {
                    return;
                }
                let name = sym.name().map(|n| format!("{n:#}")).unwrap_or_default();
                if name.is_empty() || is_plumbing(&name) {
                    return;
                }
                let place = match (sym.filename(), sym.lineno()) {
                    (Some(file), Some(l)) => format!(" at {}:{l}", file.display()),
                    _ => String::new(),
                };
                line = Some(format!("{name}{place}"));
            });
            if let Some(line) = line {
                if shown > 0 {
                    f.write_str("\n")?;
                }
                write!(f, "{indent}{line}")?;
                shown += 1;
                if shown == 6 {
                    break;
                }
            }
        }
        if shown == 0 {
            for (i, addr) in frames.iter().take(8).enumerate() {
                if i > 0 {
                    f.write_str("\n")?;
                }
                write!(f, "{indent}{addr:#x}")?;
            }
        }
        Ok(())
    }
}
