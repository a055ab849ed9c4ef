//! Running one test of this binary again, alone, in a child process.
//!
//! Some tests need a process to themselves (process-wide figures, a panic
//! hook, `exit`, `fork`), or end the process on purpose (an abort, a fault).
//! Such a test is written in two halves, selected by [`is_child`]:
//!
//! ```ignore
//! #[test]
//! fn the_abort_policy_aborts_with_the_message() {
//!     const NAME: &str = "the_abort_policy_aborts_with_the_message";
//!     if !is_child(NAME) {
//!         // The parent: run the child half and check how it ended.
//!         let out = Child::new(NAME).run(Expect::Signal(libc::SIGABRT));
//!         assert!(out.stderr.contains("memory escaped arena"), "{out}");
//!         return;
//!     }
//!     // The child: the scenario itself.
//! }
//! ```
//!
//! The child is this test binary, run with `--exact NAME --nocapture
//! --test-threads=1` and the environment variable [`CHILD_VAR`] set to
//! `NAME`, so it runs that test alone. Its stdout and stderr are captured.
//! A child that does not end within the timeout (default 300 s, or
//! `BUMPER_CHILD_TIMEOUT_SECS`) is killed and fails the test, so a hang
//! cannot stall the run.

use std::fmt;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Set in a child to the name of the test it runs.
pub const CHILD_VAR: &str = "BUMPER_TEST_CHILD";

/// Whether this process is the child run of test `test`.
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD_VAR).as_deref() == Ok(test)
}

/// How the child must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exit status 0.
    Success,
    /// This exit code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Anything but success: a non-zero exit code or a signal.
    Failure,
    /// Any ending; the test checks only the output.
    Any,
}

impl Expect {
    fn holds(self, status: ExitStatus) -> bool {
        match self {
            Expect::Success => status.success(),
            Expect::Code(code) => status.code() == Some(code),
            Expect::Signal(signal) => status.signal() == Some(signal),
            Expect::Failure => !status.success(),
            Expect::Any => true,
        }
    }
}

/// A child run of one test, built up before it is started with [`run`].
///
/// [`run`]: Child::run
#[derive(Debug, Clone)]
pub struct Child {
    test: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    timeout: Duration,
}

impl Child {
    /// A child run of test `test` (its full name, as `--exact` takes it).
    pub fn new(test: &str) -> Child {
        let secs = super::env::env_or("BUMPER_CHILD_TIMEOUT_SECS", 300);
        Child {
            test: test.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            timeout: Duration::from_secs(secs),
        }
    }

    /// Sets one more environment variable in the child (the child inherits
    /// the parent's environment besides).
    pub fn env(mut self, key: &str, value: &str) -> Child {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Runs the child even if the test is `#[ignore]`d (libtest's
    /// `--include-ignored`): for an ignored test that reproduces a known bug
    /// in a child of its own.
    pub fn include_ignored(mut self) -> Child {
        self.args.push("--include-ignored".to_owned());
        self
    }

    /// How long the child may run before it is killed and the test fails.
    pub fn timeout(mut self, timeout: Duration) -> Child {
        self.timeout = timeout;
        self
    }

    /// Runs the child to its end and returns its output. Panics, with the
    /// child's output in the message, if it could not be started, if it did
    /// not end within the timeout, or if it did not end as `expect` says.
    #[track_caller]
    pub fn run(self, expect: Expect) -> Output {
        let exe = std::env::current_exe().expect("the path of this test binary");
        let mut child = Command::new(exe)
            .args(["--exact", &self.test, "--nocapture", "--test-threads=1"])
            .args(&self.args)
            .env(CHILD_VAR, &self.test)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: could not start the child: {e}", self.test));
        let stdout = Capture::start(child.stdout.take().expect("a piped stdout"));
        let stderr = Capture::start(child.stderr.take().expect("a piped stderr"));

        let deadline = Instant::now() + self.timeout;
        let pause = Duration::from_millis(5);
        let exited = loop {
            if let Some(status) = child.try_wait().expect("wait for the child") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(pause);
        };
        let status = match exited {
            Some(status) => status,
            None => {
                // Ignore the error: the child may have ended just now.
                let _ = child.kill();
                child.wait().expect("wait for the killed child")
            }
        };
        // The output is complete once both pipes are closed. A process the
        // child started may still hold them; wait for that too, but only
        // until the deadline.
        while !(stdout.done() && stderr.done()) && Instant::now() < deadline {
            std::thread::sleep(pause);
        }
        let closed = stdout.done() && stderr.done();
        let out = Output {
            test: self.test,
            status,
            stdout: stdout.text(),
            stderr: stderr.text(),
        };
        if exited.is_none() {
            panic!(
                "{}: the child did not finish within {:?} and was killed\n{out}",
                out.test, self.timeout
            );
        }
        if !closed {
            panic!(
                "{}: the child ended, but its stdout or stderr was still open after {:?}\n{out}",
                out.test, self.timeout
            );
        }
        // libtest prints this before it runs the test, so it is there even
        // if the test then aborts; without it, `test` named no test.
        if !out.stdout.contains("running 1 test") {
            panic!("{}: the child ran no test of that name\n{out}", out.test);
        }
        if !expect.holds(out.status) {
            panic!(
                "{}: the child should have ended with {expect:?}\n{out}",
                out.test
            );
        }
        out
    }
}

/// Reads one of the child's pipes to its end on a thread of its own, so
/// that neither pipe can fill up and block the child.
struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

impl Capture {
    fn start(mut pipe: impl Read + Send + 'static) -> Capture {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bytes);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // Any other error ends the capture, like end of file.
                    Err(_) => break,
                }
            }
        });
        Capture { bytes, reader }
    }

    fn done(&self) -> bool {
        self.reader.is_finished()
    }

    /// What was read so far.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }
}

/// How a child ended, and what it printed.
#[derive(Debug)]
pub struct Output {
    test: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Everything, for an assertion message: `assert!(.., "{out}")`.
impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "child run of {}: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.test, self.status, self.stdout, self.stderr
        )
    }
}
