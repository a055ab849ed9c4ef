#!/usr/bin/env bash
# Runs bumper's core and stress tests under Miri, AddressSanitizer and
# ThreadSanitizer on the nightly toolchain.
#
# Each tool runs only if its nightly components are installed; a missing
# component is reported as SKIPPED and never fails the script. A finding
# (undefined behaviour, a memory error, a data race) or a failing test does.
#
#   scripts/sanitize.sh            # everything available
#   scripts/sanitize.sh miri asan  # a subset: miri, asan, tsan
#
# Sizes: under the sanitizers the model test runs BUMPER_MODEL_CASES cases
# (default 32) and the stress test BUMPER_STRESS_OPS operations per thread
# (default 20000); under Miri both pick small sizes by themselves. Under all
# three the model test runs without its coroutine operations (regions that
# end out of order): corosensei switches stacks with inline assembly, which
# Miri cannot run and of which the sanitizers are not told here.
# tests/out_of_order_regions.rs is not run under them either.
set -uo pipefail
cd "$(dirname "$0")/.."

TARGET=$(rustc -vV | sed -n 's/^host: //p')
failures=()
skipped=()

# On CI, try once to add missing components (quietly giving up if the
# toolchain server is out of reach).
try_install() {
    [ "${CI:-}" = "true" ] || return 0
    rustup run nightly rustc --version >/dev/null 2>&1 || return 0
    echo "==> trying to install nightly components: $*"
    timeout 120 rustup component add --toolchain nightly "$@" >/dev/null 2>&1 ||
        echo "    could not install them; the checks that need them are skipped"
}

nightly_has() {
    rustup run nightly rustc --version >/dev/null 2>&1 || return 1
    local c
    for c in "$@"; do
        rustup component list --toolchain nightly --installed 2>/dev/null | grep -q "^$c" || return 1
    done
}

# Test targets that exist (some arrive in later commits).
targets() {
    local t args=()
    for t in "$@"; do
        [ -f "tests/$t.rs" ] && args+=(--test "$t")
    done
    echo "${args[@]}"
}

step() {
    local name=$1
    shift
    echo
    echo "==> [$name] $*"
    if "$@"; then
        echo "==> [$name] passed"
    else
        echo "==> [$name] FAILED"
        failures+=("$name")
    fi
}

run_miri() {
    nightly_has miri rust-src || try_install miri rust-src
    if ! nightly_has miri rust-src; then
        skipped+=("miri (needs: rustup component add miri rust-src --toolchain nightly)")
        return
    fi
    export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance -Zmiri-tree-borrows}"
    step miri-lib cargo +nightly miri test --lib
    # The model and stress tests pick small sizes under Miri by themselves
    # (Miri does not pass environment variables through unless told to with
    # -Zmiri-env-forward).
    # shellcheck disable=SC2046
    step miri-core cargo +nightly miri test $(targets miri_core model stress)
    # Interleavings differ between seeds: the threaded core tests under several.
    step miri-seeds env MIRIFLAGS="$MIRIFLAGS -Zmiri-many-seeds=0..8" cargo +nightly miri test --test miri_core
    # The stricter aliasing model too (Stacked Borrows, Miri's default):
    # the core tour and the model.
    # shellcheck disable=SC2046
    step miri-stacked-borrows env MIRIFLAGS="-Zmiri-strict-provenance" \
        cargo +nightly miri test $(targets miri_core model)
}

run_sanitizer() {
    local kind=$1
    nightly_has rust-src || try_install rust-src
    if ! nightly_has rust-src; then
        skipped+=("$kind (needs: rustup component add rust-src --toolchain nightly)")
        return
    fi
    # The model test leaves out its coroutine operations: the sanitizers must
    # be told about stack switches, which corosensei does for ASan only with
    # its `sanitizer` feature and for TSan not at all (so the coroutine tests
    # of out_of_order_regions.rs are not run here either). The fork test runs
    # under ASan only: TSan does not support fork() in a threaded process.
    local extra=()
    [ "$kind" = address ] && extra+=(fork_safety)
    # shellcheck disable=SC2046
    step "$kind" env RUSTFLAGS="-Zsanitizer=$kind" RUSTDOCFLAGS="-Zsanitizer=$kind" \
        BUMPER_MODEL_CASES="${BUMPER_MODEL_CASES:-32}" BUMPER_STRESS_OPS="${BUMPER_STRESS_OPS:-20000}" \
        BUMPER_MODEL_COROUTINES=0 \
        TSAN_OPTIONS="halt_on_error=1" ASAN_OPTIONS="detect_leaks=0:halt_on_error=1" \
        cargo +nightly test -Zbuild-std --target "$TARGET" --target-dir "target/$kind" \
        $(targets miri_core stress model locked ownership seed_examples lifecycle \
            exit_in_region retained_capacity task_scope_threads allocator_api2 "${extra[@]}")
}

tools=("$@")
[ ${#tools[@]} -eq 0 ] && tools=(miri asan tsan)
for tool in "${tools[@]}"; do
    case $tool in
        miri) run_miri ;;
        asan) run_sanitizer address ;;
        tsan) run_sanitizer thread ;;
        *) echo "unknown tool: $tool (use miri, asan, tsan)"; exit 2 ;;
    esac
done

echo
for s in "${skipped[@]}"; do echo "SKIPPED: $s"; done
if [ ${#failures[@]} -gt 0 ]; then
    echo "sanitize: FAILED: ${failures[*]}"
    exit 1
fi
echo "sanitize: all available checks passed"
