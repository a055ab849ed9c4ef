#!/usr/bin/env bash
# The serving figures of BENCHMARKS.md ("Serving") (issue 16): the axum JSON
# service of examples/axum.rs under glibc, mimalloc, Bumper + ArenaLayer and
# Bumper<MiMalloc> + ArenaLayer.
#
#   scripts/serving.sh wrk [SECS] [ROUNDS]   wrk -t1 -c64 -dSECS, interleaved rounds, medians
#   scripts/serving.sh callgrind [REQS]      server instructions per request (valgrind)
#
# The callgrind part runs each variant's server under callgrind, drives it
# with the example's checked client (16 connections x REQS requests after a
# warm-up of 16 x 5) and divides the server's instructions (all threads,
# start-up and shutdown included) by the requests; the start-up's share is
# printed from a run with the warm-up only, so that it can be subtracted.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo build --release --example axum
exe=target/release/examples/axum
mode=${1:-wrk}

case "$mode" in
wrk)
    command -v wrk > /dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
    "$exe" wrk "${2:-4}" "${3:-5}"
    ;;
callgrind)
    reqs=${2:-150}
    dir=$(mktemp -d)
    run_one() { # VARIANT REQS -> total instructions
        local v=$1 n=$2
        mkfifo "$dir/in"
        sleep 100000 > "$dir/in" &
        local holder=$!
        BUMPER_RESERVE=1G BUMPER_AXUM_ALLOC=$v valgrind --tool=callgrind \
            --callgrind-out-file="$dir/$v.out" "$exe" serve "$v" \
            < "$dir/in" > "$dir/$v.child" 2> /dev/null &
        local server=$!
        for _ in $(seq 200); do
            grep -q ready "$dir/$v.child" 2> /dev/null && break
            sleep 0.5
        done
        local addr
        addr=$(awk '/ready/ {print $2}' "$dir/$v.child")
        "$exe" client "$addr" 16 5 > /dev/null
        if [ "$n" -gt 0 ]; then
            "$exe" client "$addr" 16 "$n" > /dev/null
        fi
        kill "$holder"
        wait "$server"
        rm -f "$dir/in"
        grep -E '^(summary|totals):' "$dir/$v.out" | head -1 | awk '{print $2}'
    }
    echo "| variant | instructions per request (server, all threads) |"
    echo "|---|---:|"
    for v in glibc mimalloc bumper bumper-mimalloc; do
        base=$(run_one "$v" 0)
        total=$(run_one "$v" "$reqs")
        echo "| $v | $(( (total - base) / (16 * reqs) )) |"
    done
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 wrk [SECS] [ROUNDS] | callgrind [REQS]" >&2
    exit 2
    ;;
esac
