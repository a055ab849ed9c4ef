//! SAFETY.md §5, §6 and §14: an unlocked `Arena` cannot be shared between
//! threads, and a checkpoint cannot leave its thread; the compiler rejects
//! both. The files under `tests/ui/` are compiled with `rustc` against the
//! `bumper` library this test binary was built with (type checking only),
//! so the test needs no extra dependencies or build of its own.

// These tests exist to allocate: `vec!` is deliberate.
#![allow(clippy::useless_vec)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory holding this test binary and the dependencies it was
/// linked against (`target/<profile>/deps`).
fn deps_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The newest `libbumper-*.rlib` next to this binary: the one it was built
/// with.
fn bumper_rlib(deps: &Path) -> PathBuf {
    std::fs::read_dir(deps)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("libbumper-") && name.ends_with(".rlib")
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).unwrap())
        .expect("libbumper rlib next to the test binary")
}

/// Type-checks `tests/ui/<file>`; returns (success, diagnostics).
fn check(file: &str) -> (bool, String) {
    let deps = deps_dir();
    let rlib = bumper_rlib(&deps);
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out_dir = std::env::temp_dir().join(format!("bumper-ui-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = Command::new(rustc)
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/ui")
                .join(file),
        )
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "bin",
            "--emit",
            "metadata",
        ])
        .arg("--out-dir")
        .arg(&out_dir)
        .arg("--extern")
        .arg(format!("bumper={}", rlib.display()))
        .arg("-L")
        .arg(format!("dependency={}", deps.display()))
        .output()
        .expect("run rustc");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_harness_accepts_a_locked_arena_shared_across_threads() {
    let (ok, diag) = check("locked_arena_shared_across_threads.rs");
    assert!(ok, "the control case failed to compile:\n{diag}");
}

#[test]
fn an_arena_cannot_be_shared_across_threads() {
    let (ok, diag) = check("arena_shared_across_threads.rs");
    assert!(!ok, "sharing an Arena across threads compiled");
    assert!(diag.contains("E0277"), "{diag}");
    assert!(
        diag.contains("cannot be shared between threads safely"),
        "{diag}"
    );
    assert!(diag.contains("Arena"), "{diag}");
}

#[test]
fn a_checkpoint_cannot_be_sent_to_another_thread() {
    let (ok, diag) = check("checkpoint_sent_to_thread.rs");
    assert!(!ok, "sending a Checkpoint to another thread compiled");
    assert!(diag.contains("E0277"), "{diag}");
    assert!(
        diag.contains("cannot be sent between threads safely"),
        "{diag}"
    );
}

#[test]
fn the_harness_accepts_a_region_and_its_future_sent_across_threads() {
    let (ok, diag) = check("region_future_is_send.rs");
    assert!(ok, "the control case failed to compile:\n{diag}");
}

#[test]
fn an_in_region_future_over_a_non_send_future_is_not_send() {
    let (ok, diag) = check("in_region_over_non_send_future.rs");
    assert!(!ok, "an InRegion over a non-Send future was Send");
    assert!(
        diag.contains("future cannot be sent between threads safely"),
        "{diag}"
    );
    assert!(diag.contains("Rc"), "{diag}");
}

#[test]
fn an_in_arena_future_is_not_send() {
    let (ok, diag) = check("in_arena_future_is_not_send.rs");
    assert!(!ok, "an InArena future was Send");
    assert!(diag.contains("E0277"), "{diag}");
    assert!(diag.contains("Arena"), "{diag}");
}

#[test]
fn no_region_can_be_obtained_from_an_arena() {
    let (ok, diag) = check("no_region_from_an_arena.rs");
    assert!(!ok, "an unlocked Arena handed out a Region");
    assert!(diag.contains("E0599"), "{diag}");
    assert!(diag.contains("region"), "{diag}");
}
