#!/usr/bin/env bash
# The whole benchmark pipeline, in order: build, the criterion benches (one
# binary per allocator, and region_speed for the region API and resets), the
# untimed count run (inner-allocator calls and peak RSS), the untimed
# callgrind run (instructions per operation; needs valgrind), the interleaved
# timing (scripts/bench_interleaved.py: CPU time per iteration, every
# workload and setting in shuffled rounds), and the report
# that regenerates BENCHMARKS.md and docs/bench.svg.
#
# Usage: scripts/bench.sh [WORKLOAD...]
#   WORKLOAD  only these criterion groups and count runs (substring match,
#             as criterion's own filter); the report then marks the results
#             of earlier runs that it still shows as stale. The callgrind
#             run is not filtered: it is deterministic and takes seconds.
#
# Environment:
#   BENCH_SAMPLES, BENCH_WARMUP_SECS, BENCH_MEASUREMENT_SECS
#                      criterion settings (default 20 samples, 1 s, 2.5 s;
#                      see benches/common/mod.rs); raise them for a long run
#   BENCH_COUNT_ITERS  iterations per count run (default 10)
#   BENCH_RESET_SAMPLES  samples of region_speed's reset-scale group (default 100)
#   BENCH_LABEL        a note for the top of BENCHMARKS.md, e.g. "provisional"
#   BENCH_ROUNDS, BENCH_ROUND_SECS  rounds and seconds per cell of the
#                      interleaved timing (default 3, 0.6)
#
# Every step's command and wall time go to target/bench/run.tsv, which the
# report prints as "the exact commands".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=target/bench
mkdir -p "$out"
run="$out/run.tsv"
# A filtered run counts only some workloads: its counts go to a file of their
# own, which the report lays over those of the last full run.
counts="$out/counts.json"
counts_args=(--counts "$counts")
if [ $# -gt 0 ]; then
    counts="$out/counts-filtered.json"
    counts_args+=(--counts "$counts")
else
    rm -f "$out/counts-filtered.json"
fi
iters="${BENCH_COUNT_ITERS:-10}"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }
start=$(now)

{
    printf 'start\t%s\n' "$start"
    printf 'date\t%s\n' "$(date -u +'%Y-%m-%d %H:%M UTC')"
    printf 'load_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
    printf 'commit\t%s\n' "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    printf 'dirty\t%s\n' "$(git status --porcelain -- src benches 2>/dev/null | grep -q . && echo yes || echo no)"
    printf 'rustc\t%s\n' "$(rustc -V)"
    for v in BENCH_SAMPLES BENCH_WARMUP_SECS BENCH_MEASUREMENT_SECS BENCH_RESET_SAMPLES BENCH_LABEL; do
        if [ -n "${!v:-}" ]; then printf 'env\t%s=%s\n' "$v" "${!v}"; fi
    done
    if [ $# -gt 0 ]; then printf 'filter\t%s\n' "$*"; fi
} >"$run"

# step NAME [--stdout FILE] COMMAND...: runs COMMAND, records it and its time.
step() {
    local name=$1 to=""
    shift
    if [ "$1" = "--stdout" ]; then
        to=$2
        shift 2
    fi
    local shown="$*"
    [ -n "$to" ] && shown="$shown > $to"
    printf '\n==> %s\n' "$shown" >&2
    local t0 t1
    t0=$(now)
    if [ -n "$to" ]; then "$@" >"$to"; else "$@"; fi
    t1=$(now)
    printf 'step\t%s\t%s\t%s\n' "$name" "$shown" "$(secs "$t0" "$t1")" >>"$run"
}

filter=()
if [ $# -gt 0 ]; then
    # criterion takes one regex; the count run takes several substrings.
    filter=("$(IFS='|'; echo "$*")")
fi

step build cargo bench -p bumper-benches --no-run
step build-count cargo bench -p bumper-benches --bench alloc_count --no-run
step build-callgrind cargo bench -p bumper-benches --bench callgrind_ops --no-run
step criterion cargo bench -p bumper-benches -- "${filter[@]}"
step count --stdout "$counts" cargo bench -p bumper-benches --bench alloc_count -- --iters "$iters" "$@"
callgrind="$out/callgrind.json"
if command -v valgrind >/dev/null; then
    step callgrind --stdout "$callgrind" cargo bench -p bumper-benches --bench callgrind_ops
else
    printf '\nvalgrind not found: no callgrind run (the report keeps the last counts)\n' >&2
fi

# Interleaved rounds of every cell, CPU time per iteration: the times the
# targets use (steadier than criterion's on a shared machine).
step interleaved scripts/bench_interleaved.py --rounds "${BENCH_ROUNDS:-3}" --secs "${BENCH_ROUND_SECS:-0.6}" "$@"

printf 'load_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)" >>"$run"
printf 'total\t%s\n' "$(secs "$start" "$(now)")" >>"$run"

# The report prints its own command line; it is not a timed step.
report=(scripts/bench_report.py --run "$run" "${counts_args[@]}" --callgrind "$callgrind" --out BENCHMARKS.md --svg docs/bench.svg)
printf '\n==> %s\n' "${report[*]}" >&2
"${report[@]}"
