#!/usr/bin/env python3
"""Interleaved timing of every workload under every allocator setting.

Each cell (workload, setting) runs in a fresh process of its criterion bench
binary (`BIN --time WORKLOAD SETTING SECS`, see benches/common/mod.rs:
`measured_child`), which prints the median CPU time (of the whole process,
all threads) and wall time of one iteration. The CPU time is the one kept
as `median_ns`: waiting for a core on a loaded machine does not count. The cells
run in ROUNDS rounds, each round visiting every cell once in a shuffled
order, and each cell keeps its best round's median: on a shared machine,
load that comes and goes then hits every setting alike instead of whole
binaries, as a criterion run does (one binary after the other).

Usage: scripts/bench_interleaved.py [--rounds 3] [--secs 0.6] [--out FILE] [WORKLOAD...]
Builds nothing: run `cargo bench -p bumper-benches --no-run` first.
Writes JSON ({"results": [{workload, setting, median_ns, rounds: [...]}]}).
"""

import argparse
import glob
import json
import os
import random
import subprocess
import sys
import time

BINARIES = {
    "alloc_glibc": ["glibc"],
    "alloc_mimalloc": ["mimalloc"],
    "alloc_jemalloc": ["jemalloc"],
    "alloc_floor": ["floor"],
    "alloc_bumper": ["bumper-region", "bumper-no-region", "bumpalo"],
    "alloc_bumper_mimalloc": ["bumper-mimalloc-region", "bumper-mimalloc-no-region"],
}
WORKLOADS = ["small", "vecgrow", "json", "btree", "syn", "regex", "markdown", "mlp", "threads2"]
WITH_BUMPALO = {"small", "vecgrow"}


def newest(name):
    paths = [p for p in glob.glob(f"target/release/deps/{name}-*") if "." not in os.path.basename(p)]
    return max(paths, key=os.path.getmtime) if paths else None


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--secs", type=float, default=0.6)
    p.add_argument("--out", default="target/bench/interleaved.json")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("workloads", nargs="*")
    a = p.parse_args(argv)
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ws = [w for w in WORKLOADS if not a.workloads or any(f in w for f in a.workloads)]
    cells = []
    for b, settings in BINARIES.items():
        exe = newest(b)
        if exe is None:
            sys.exit(f"{b}: not built (cargo bench -p bumper-benches --no-run)")
        for s in settings:
            for w in ws:
                if s == "bumpalo" and w not in WITH_BUMPALO:
                    continue
                cells.append((w, s, exe))
    rng = random.Random(a.seed)
    rounds = {(w, s): [] for w, s, _ in cells}
    load = [open("/proc/loadavg").read().split()[:3]]
    t0 = time.time()
    for r in range(a.rounds):
        order = cells[:]
        rng.shuffle(order)
        for w, s, exe in order:
            out = subprocess.run([exe, "--time", w, s, str(a.secs)], capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"{w}/{s} failed: {out.stderr}")
            cpu, wall, n = out.stdout.split()[-3:]
            rounds[(w, s)].append((int(cpu), int(n), int(wall)))
            print(f"round {r + 1}: {w}/{s}: CPU {int(cpu) / 1e6:.3f} ms, wall {int(wall) / 1e6:.3f} ms "
                  f"({n} iterations)", file=sys.stderr)
        load.append(open("/proc/loadavg").read().split()[:3])
    results = [
        {"workload": w, "setting": s, "median_ns": min(m for m, _, _ in rounds[(w, s)]),
         "rounds": [m for m, _, _ in rounds[(w, s)]], "iterations": [n for _, n, _ in rounds[(w, s)]],
         "wall_median_ns": min(t for _, _, t in rounds[(w, s)]), "wall_rounds": [t for _, _, t in rounds[(w, s)]]}
        for (w, s) in rounds
    ]
    doc = {"tool": "bench_interleaved", "rounds": a.rounds, "secs": a.secs, "load": load,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t0)),
           "wall_secs": round(time.time() - t0), "results": results}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
    print(a.out, file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
