#!/usr/bin/env python3
"""Summarise the allocator benchmarks as markdown, for BENCHMARKS.md.

Reads criterion's results, target/criterion/<workload>/<function>/new/
estimates.json (written by `cargo bench`), and prints, per workload, the
median time of every allocator setting with its ratio to glibc and to
bumpalo, then the speed targets of BRIEF.md that can be checked from those
medians. All numbers come from the last `cargo bench` run of each function.

Usage: scripts/bench_table.py [--machine] [--check] [CRITERION_DIR]

  --machine  also print the machine description (CPU, cores, kernel, rustc)
  --check    exit with status 1 if a checkable target is missed

The ratio columns are time / reference time: below 1 is faster.
"""

import json
import os
import platform
import subprocess
import sys

# Display order; functions not listed come after, alphabetically.
ORDER = [
    "glibc",
    "mimalloc",
    "jemalloc",
    "bumpalo",
    "bumper-region",
    "bumper-no-region",
    "bumper-mimalloc-region",
    "bumper-mimalloc-no-region",
]

# Targets from BRIEF.md, "Performance targets", as
# (workload, function, reference, max ratio of function time / reference time, text).
TARGETS = [
    ("small", "bumper-region", "bumpalo", 1.1, "region <= 1.1x bumpalo's explicit API"),
    ("small", "bumper-region", "glibc", 1 / 1.8, "region >= 1.8x faster than glibc"),
    ("small", "bumper-no-region", "glibc", 1.02, "no region <= 1.02x bare glibc"),
    ("small", "bumper-mimalloc-no-region", "mimalloc", 1.02, "no region <= 1.02x bare mimalloc"),
]


def load(root):
    """{workload: {function: (median_ns, low_ns, high_ns)}}"""
    results = {}
    for workload in sorted(os.listdir(root)):
        wdir = os.path.join(root, workload)
        if not os.path.isdir(wdir) or workload == "report":
            continue
        for function in os.listdir(wdir):
            path = os.path.join(wdir, function, "new", "estimates.json")
            if not os.path.isfile(path):
                continue
            with open(path) as f:
                median = json.load(f)["median"]
            ci = median["confidence_interval"]
            results.setdefault(workload, {})[function] = (
                median["point_estimate"],
                ci["lower_bound"],
                ci["upper_bound"],
            )
    return results


def order_key(name):
    return (ORDER.index(name), "") if name in ORDER else (len(ORDER), name)


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3f} {unit}"
    return f"{ns:.1f} ns"


def ratio(a, b):
    return f"{a / b:.2f}x"


def run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine():
    model = "unknown"
    for line in run(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    rustc = run(["rustc", "-V"]).strip() or "unknown"
    return [
        f"- CPU: {model}, {os.cpu_count()} logical cores",
        f"- kernel: {platform.system()} {platform.release()}",
        f"- {rustc}",
    ]


def main(argv):
    flags = {a for a in argv if a.startswith("--")}
    args = [a for a in argv if not a.startswith("--")]
    unknown = flags - {"--machine", "--check"}
    if unknown or len(args) > 1:
        sys.exit(__doc__)
    root = args[0] if args else os.path.join("target", "criterion")
    if not os.path.isdir(root):
        sys.exit(f"{root}: not found; run `cargo bench` first")
    results = load(root)

    out = []
    if "--machine" in flags:
        out += machine() + [""]
    for workload, funcs in results.items():
        glibc = funcs.get("glibc")
        bumpalo = funcs.get("bumpalo")
        out += [
            f"#### {workload}",
            "",
            "| allocator | median | 95% CI of median | vs glibc | vs bumpalo |",
            "|---|---:|---:|---:|---:|",
        ]
        for name in sorted(funcs, key=order_key):
            med, lo, hi = funcs[name]
            out.append(
                f"| {name} | {fmt_time(med)} | {fmt_time(lo)} – {fmt_time(hi)} "
                f"| {ratio(med, glibc[0]) if glibc else '–'} "
                f"| {ratio(med, bumpalo[0]) if bumpalo else '–'} |"
            )
        out.append("")

    checked = [t for t in TARGETS if t[0] in results]
    missed = 0
    if checked:
        out += [
            "#### Targets",
            "",
            "| workload | target | measured | met |",
            "|---|---|---:|:---:|",
        ]
        for workload, func, ref, bound, text in checked:
            funcs = results[workload]
            if func not in funcs or ref not in funcs:
                out.append(f"| {workload} | {text} | not run | – |")
                continue
            r = funcs[func][0] / funcs[ref][0]
            if bound < 1 and "faster" in text:
                measured = f"{1 / r:.2f}x faster"
            else:
                measured = f"{r:.2f}x"
            ok = r <= bound
            missed += not ok
            out.append(f"| {workload} | {text} | {measured} | {'yes' if ok else 'NO'} |")
        out.append("")

    print("\n".join(out).rstrip())
    if "--check" in flags and missed:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
