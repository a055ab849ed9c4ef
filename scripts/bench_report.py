#!/usr/bin/env python3
"""Regenerate BENCHMARKS.md and its chart from a benchmark run.

Reads
  - criterion's results, <criterion>/<workload>/<setting>/new/estimates.json
    (median and its 95% confidence interval), written by `cargo bench`;
  - the JSON of the untimed count run (`alloc_count`): inner-allocator calls
    per iteration and peak RSS per workload and setting;
  - the JSON of the untimed callgrind run (`callgrind_ops`): instructions
    per operation of the region-API benches and per alloc+free pair of
    `small`;
  - the run log of scripts/bench.sh (target/bench/run.tsv): the commands,
    their wall times, the commit, the load average;
and writes BENCHMARKS.md (machine, commands, medians, ratios to glibc and to
the best peer of each workload, inner calls per iteration, peak RSS; the
region-API and reset benches (`region_speed`) with their instruction
counts; the targets of issues 8 and 10) and an SVG bar chart. Everything in BENCHMARKS.md is
generated except the section between the ANALYSIS markers, which is kept
as it is.

Usage: scripts/bench_report.py [--criterion DIR] [--counts FILE] [--callgrind FILE]
                               [--run FILE] [--out FILE] [--svg FILE] [--check]

  --criterion DIR  criterion's output (default target/criterion)
  --counts FILE    alloc_count's JSON (default target/bench/counts.json);
                   repeat it to lay a filtered run's counts over a full one's
  --callgrind FILE callgrind_ops's JSON (default target/bench/callgrind.json)
  --run FILE       scripts/bench.sh's run log (default target/bench/run.tsv)
  --out FILE       the markdown to write (default: print it on stdout); the
                   analysis section of an existing FILE is kept
  --svg FILE       the chart to write (default docs/bench.svg)
  --check          exit with status 1 if a target is missed

Python 3.11 standard library only. Ratios are time / reference time: below 1
is faster.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from html import escape

# Display order of the settings.
ORDER = [
    "glibc",
    "mimalloc",
    "jemalloc",
    "floor",
    "bumpalo",
    "bumper-no-region",
    "bumper-region",
    "bumper-mimalloc-no-region",
    "bumper-mimalloc-region",
]
# The allocators bumper is compared with.
PEERS = ["glibc", "mimalloc", "jemalloc", "bumpalo"]
# Settings the count run does not repeat: the shim outside a region passes
# every call on, so their counts are those of the bare inner allocator.
COUNT_AS = {"bumper-no-region": "glibc", "bumper-mimalloc-no-region": "mimalloc"}
WORKLOADS = ["small", "vecgrow", "json", "btree", "syn", "regex", "markdown", "mlp", "threads2"]
# The unsafe bump allocator of benches/common/floor.rs that every table compares with.
FLOOR = "floor"

# Targets of the brief and issue 17: (workload, setting, reference, bound on
# time ratio).
TARGETS = [
    ("small", "bumper-region", FLOOR, 1.10),
    ("vecgrow", "bumper-region", "glibc", 1.00),
    ("json", "bumper-region", FLOOR, 1.05),
    ("btree", "bumper-region", FLOOR, 1.05),
    ("syn", "bumper-region", FLOOR, 1.05),
    ("regex", "bumper-region", FLOOR, 1.05),
    ("mlp", "bumper-region", "mimalloc", 1.00),
    ("threads2", "bumper-region", "jemalloc", 1.00),
] + [
    (w, s, ref, 1.02)
    for w in WORKLOADS
    for s, ref in (("bumper-no-region", "glibc"), ("bumper-mimalloc-no-region", "mimalloc"))
]
RSS_BOUND = 1.3  # peak RSS of bumper-region at most 1.3x glibc's
PAIR_BOUND = 10  # instructions per alloc+free pair in a region: bumpalo's + 10
NO_REGION_PAIR_BOUND = 2  # instructions per alloc+free pair outside regions over the inner allocator
# The bare inner allocator of each no-region setting.
INNER_OF = {"bumper-no-region": "glibc", "bumper-mimalloc-no-region": "mimalloc"}
POLL_BOUND_NS = 5.0  # "a few nanoseconds" of InRegion poll overhead, read as <= 5 ns

# The criterion groups of benches/region_speed.rs (not workloads), in order:
# (group, title, baseline function or None, how rows compare with it
# ("diff": minus the baseline, "ratio": over it), what one operation is).
API_GROUPS = [
    ("enter-alloc", "Entering a region around one allocation and free", "inside-Arena-region", "diff",
     "enter a region on a thread that has entered it before, allocate and free one `Box<u64>`, "
     "leave; the baseline is the allocation and free alone, in a region entered once"),
    ("enter-empty", "Entering a region around an empty closure", "no-region", "diff",
     "enter a region on a thread that has entered it before, run an empty closure, leave; the "
     "baseline is the closure alone"),
    ("poll-pending", "Polling a future wrapped in `in_region` / `in_arena`", "bare", "diff",
     "one poll, by hand with `Waker::noop()`, of a pinned future that is never ready; the "
     "baseline polls it unwrapped"),
    ("poll-ready", "Wrapping a ready future, one poll, drop", "bare", "diff",
     "`in_region(region.clone(), ready(1))` (resp. `in_arena`), pinned, polled once, dropped "
     "(the drop enters the region once more); the baseline is `ready(1)` unwrapped"),
    ("scoped-alloc", "`scoped` against `with_bumper` + `no_escape`, one allocation and free", None, None,
     "a checkpoint, a region entry, one `Box<u64>` allocated and freed, the exit and the reset"),
    ("scoped-empty", "`scoped` against `with_bumper` + `no_escape`, empty closure", None, None,
     "a checkpoint, a region entry, an empty closure, the exit and the reset"),
    ("reset-scale", "A reset against the allocations since its checkpoint", "1000-allocs-32B", "ratio",
     "one `reset_to` after N allocations since the checkpoint, all freed oldest first (dead, "
     "not reclaimed by the frees); only the reset is timed (`iter_custom`, one reset per "
     "sample). `cold-cache`: a 64 MiB buffer is swept after the allocations"),
    ("lease", "A pool lease around one request-like poll (issue 16, §1)", "50-allocs-in-region", "diff",
     "`pool.take()`, one `in_region` poll (resp. `with_bumper`) that makes 50 small allocations "
     "live at once and frees them, then the lease's drop (reset, back to the pool); the baseline "
     "is the 50 allocations alone, in a region entered once"),
    ("explicit-box", "A `Box<u64>` through an explicit handle (issue 16, §4)", "Arena-inside", "ratio",
     "`allocator_api2::boxed::Box::new_in(7, handle)` and its drop, through `&Arena` / "
     "`&LockedArena` outside any region and inside a region of the same arena, and `Global`"),
    ("explicit-vec", "64 pushes into a `Vec<u64>` through an explicit handle (issue 16, §4)", "Arena-inside", "ratio",
     "`allocator_api2::vec::Vec::new_in(handle)`, 64 pushes (its growth), its drop; handles as "
     "for `explicit-box`"),
]
API_GROUP_NAMES = [g[0] for g in API_GROUPS]

ANALYSIS_BEGIN = "<!-- ANALYSIS: kept as it is by scripts/bench_report.py; edit freely -->"
ANALYSIS_END = "<!-- END ANALYSIS -->"

COLOURS = {
    "glibc": "#7f7f7f",
    "mimalloc": "#b0b0b0",
    "jemalloc": "#d0d0d0",
    "floor": "#000000",
    "bumpalo": "#e08a2e",
    "bumper-no-region": "#9ecae1",
    "bumper-region": "#2171b5",
    "bumper-mimalloc-no-region": "#a1d99b",
    "bumper-mimalloc-region": "#238b45",
}

WORKLOAD_TEXT = {
    "small": "100 000 allocations per iteration from a fixed xorshift64 sequence: 1/4 "
    "`Box<u64>`, 1/4 `Box<[u64; 4]>`, 1/2 `Vec<u8>` with an exact capacity uniform in "
    "8..=512 B and its first (up to) 16 bytes written. Half are dropped at once, half go "
    "into a 64-slot ring at a random slot (dropping its previous occupant), so frees are "
    "mixed LIFO/random with about 64 objects live; all are freed by the end.",
    "vecgrow": "push 100 000 `u64` one at a time into `Vec::new()`: 17 reallocations by "
    "doubling, up to a 1 MiB block.",
    "json": "parse a generated document of about 1 MiB (records with numbers, strings, "
    "booleans, nulls, a nested object and a small array of objects) into "
    "`serde_json::Value`, walk every node, drop it. The document is made once, from a "
    "fixed seed, outside the timing.",
    "btree": "insert 50 000 keys made with `format!` into a `BTreeMap<String, u64>`, "
    "walk it, drop it.",
    "syn": "parse about 400 KB of real Rust (bumper's own sources at one commit, shipped in "
    "`benches/data/syn_corpus.rs.txt`) with `syn::parse_file` and print it back with "
    "`prettyplease::unparse`.",
    "regex": "compile 16 regular expressions with `regex::Regex::new` and count each one's "
    "matches in a generated text of 64 KiB (words, dates, addresses, numbers; made once, "
    "outside the timing).",
    "markdown": "render a generated Markdown document of about 256 KiB (headings, emphasis, "
    "links, lists, code blocks, tables, quotes; made once, outside the timing) to HTML with "
    "`pulldown-cmark`.",
    "mlp": "ndarray forward pass: 20 batches of 64x512 through 512-512-512-10 (ReLU on "
    "the hidden layers), written with allocating operations (`x.dot(&w) + &b`, "
    "`mapv`). Weights and inputs are made once, from a fixed seed. Criterion's flat "
    "sampling.",
    "threads2": "two scoped threads, each running one iteration of `small`, joined "
    "before the iteration ends. Under bumper's region settings the spawning thread is in a "
    "region of one `LockedArena` and spawns them with `bumper::thread::scope`, so they "
    "inherit the region (each on a lane of its own) and the spawns' own bookkeeping comes "
    "from the arena too; it resets the arena after the joins. Everywhere else they are "
    "plain `std::thread::scope` threads.",
}


# --------------------------------------------------------------------------
# Inputs


def load_criterion(root):
    """{workload: {setting: {median, lo, hi, mtime}}}"""
    results = {}
    if not os.path.isdir(root):
        return results
    for workload in sorted(os.listdir(root)):
        wdir = os.path.join(root, workload)
        if not os.path.isdir(wdir) or workload == "report":
            continue
        for setting in os.listdir(wdir):
            path = os.path.join(wdir, setting, "new", "estimates.json")
            if not os.path.isfile(path):
                continue
            with open(path) as f:
                median = json.load(f)["median"]
            ci = median["confidence_interval"]
            results.setdefault(workload, {})[setting] = {
                "median": median["point_estimate"],
                "lo": ci["lower_bound"],
                "hi": ci["upper_bound"],
                "mtime": os.path.getmtime(path),
            }
    return results


def load_counts(paths):
    """{(workload, setting): record}, and the iteration count. Records of a
    later file replace those of an earlier one."""
    counts, iters = {}, None
    for path in paths:
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            doc = json.load(f)
        counts.update({(r["workload"], r["setting"]): r for r in doc["results"]})
        iters = doc.get("iters", iters)
    return counts, iters


def load_callgrind(path):
    """callgrind_ops's JSON: ({(group, name): record}, [(group, name)] in
    the binary's order, the document), or empty ones if there is none."""
    if not path or not os.path.isfile(path):
        return {}, [], None
    with open(path) as f:
        doc = json.load(f)
    recs = {(r["group"], r["name"]): r for r in doc["results"]}
    return recs, [(r["group"], r["name"]) for r in doc["results"]], doc


def load_run(path):
    """The run log of scripts/bench.sh: {key: value}, env list, steps list."""
    run = {"env": [], "steps": []}
    if not path or not os.path.isfile(path):
        return None
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "step":
                run["steps"].append((parts[1], parts[2], float(parts[3])))
            elif parts[0] == "env":
                run["env"].append(parts[1])
            elif len(parts) >= 2:
                run[parts[0]] = parts[1]
    return run


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine(run):
    model, flags = "unknown", ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown":
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1]
    except OSError:
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    nproc = sh(["nproc"]).strip() or str(os.cpu_count())
    simd = [x for x in ("avx2", "fma", "avx512f") if re.search(rf"\b{x}\b", flags)]
    lines = [
        f"- CPU: {model}, {nproc} logical cores (`nproc`)"
        + (f"; {', '.join(simd)}" if simd else ""),
        f"- memory: {mem}",
        f"- kernel: {platform.system()} {platform.release()}",
        f"- {run.get('rustc') if run else (sh(['rustc', '-V']).strip() or 'rustc unknown')}",
    ]
    if run:
        dirty = " (with uncommitted changes in src/ or benches/)" if run.get("dirty") == "yes" else ""
        lines += [
            f"- bumper at commit `{run.get('commit', 'unknown')}`{dirty}",
            f"- date: {run.get('date', 'unknown')}",
            f"- load average (1, 5, 15 min) at the start: {run.get('load_start', '?')}, "
            f"at the end of the runs: {run.get('load_end', '?')}",
        ]
    return lines


# --------------------------------------------------------------------------
# Formatting


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns / scale >= 100 else f"{ns / scale:.3f} {unit}"
    return f"{ns:.1f} ns"


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}x"


def fmt_count(x):
    if x is None:
        return "–"
    if abs(x - round(x)) < 0.05:
        return f"{round(x):,}"
    return f"{x:,.1f}"


def fmt_kib(kib):
    return "–" if kib is None else f"{kib / 1024:.1f} MiB"


def fmt_secs(s):
    s = int(round(s))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def order_key(name):
    return (ORDER.index(name), "") if name in ORDER else (len(ORDER), name)


def best_peer(funcs):
    peers = [(funcs[p]["median"], p) for p in PEERS if p in funcs]
    return min(peers) if peers else (None, None)


def count_record(counts, workload, setting):
    """The count record for a setting, and whether it was borrowed."""
    if (workload, setting) in counts:
        return counts[(workload, setting)], False
    alias = COUNT_AS.get(setting)
    if alias and (workload, alias) in counts:
        return counts[(workload, alias)], True
    return None, False


# --------------------------------------------------------------------------
# The chart


def svg_chart(results, workloads, title):
    """Horizontal bars: median time relative to glibc, per workload."""
    bar, gap, group_gap = 13, 3, 16
    left, right, top = 190, 70, 46
    width = 820
    plot_w = width - left - right
    rows = []
    vmax = 1.0
    for w in workloads:
        funcs = results.get(w, {})
        glibc = funcs.get("glibc")
        if not glibc:
            continue
        bars = [
            (s, funcs[s]["median"] / glibc["median"]) for s in sorted(funcs, key=order_key)
        ]
        vmax = max(vmax, *(r for _, r in bars))
        rows.append((w, glibc["median"], bars))
    vmax = max(1.5, (int(vmax * 4) + 1) / 4)
    height = top + sum(22 + len(b) * (bar + gap) + group_gap for _, _, b in rows) + 30

    def x(v):
        return left + plot_w * v / vmax

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14" '
        f'font-weight="bold">{escape(title)}</text>',
        f'<text x="{width / 2}" y="34" text-anchor="middle" fill="#555">median time per '
        "iteration relative to glibc malloc (shorter is faster; dashed line: glibc)</text>",
    ]
    # Grid.
    step = 0.25 if vmax <= 2 else 0.5
    v = 0.0
    while v <= vmax + 1e-9:
        out.append(
            f'<line x1="{x(v):.1f}" y1="{top}" x2="{x(v):.1f}" y2="{height - 24}" '
            f'stroke="#eee"/>'
            f'<text x="{x(v):.1f}" y="{height - 10}" text-anchor="middle" fill="#555">'
            f"{v:g}x</text>"
        )
        v += step
    out.append(
        f'<line x1="{x(1):.1f}" y1="{top}" x2="{x(1):.1f}" y2="{height - 24}" '
        f'stroke="#333" stroke-dasharray="4,3"/>'
    )
    y = top
    for w, glibc_ns, bars in rows:
        out.append(
            f'<text x="8" y="{y + 14}" font-weight="bold" font-size="12">{escape(w)}</text>'
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" fill="#555">'
            f"glibc {escape(fmt_time(glibc_ns))}</text>"
        )
        y += 22
        for s, r in bars:
            colour = COLOURS.get(s, "#444")
            out.append(
                f'<text x="{left - 6}" y="{y + bar - 3}" text-anchor="end">{escape(s)}</text>'
                f'<rect x="{left}" y="{y}" width="{max(0.5, x(r) - left):.1f}" height="{bar}" '
                f'fill="{colour}"><title>{escape(w)} / {escape(s)}: {r:.2f}x glibc</title></rect>'
                f'<text x="{x(r) + 4:.1f}" y="{y + bar - 3}" fill="#333">{r:.2f}x</text>'
            )
            y += bar + gap
        y += group_gap
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------
# The markdown


def analysis_section(path):
    if path and os.path.isfile(path):
        with open(path) as f:
            text = f.read()
        i, j = text.find(ANALYSIS_BEGIN), text.find(ANALYSIS_END)
        if i >= 0 and j > i:
            return text[i + len(ANALYSIS_BEGIN) : j].strip("\n")
    return "## Analysis\n\nNone yet."


def fmt_ir(x):
    if x is None:
        return "–"
    return f"{x:,.0f}" if abs(x) >= 100 or abs(x - round(x)) < 0.05 else f"{x:,.1f}"


def fmt_signed(x, fmt):
    if x is None:
        return "–"
    return ("+" if x >= 0 else "−") + fmt(abs(x))


def api_section(results, cg, stale, run):
    """The generated section on benches/region_speed.rs and callgrind_ops."""
    recs, order, doc = cg
    out = [
        "## Region API and resets",
        "",
        "bumper only (`Bumper<System>`), from `benches/region_speed.rs` (criterion, timed) and "
        "`benches/callgrind_ops.rs` (the same operations, from `benches/api/mod.rs`, counted in "
        "instructions under callgrind). Criterion runs them in its step above; the count run is "
        "`cargo bench -p bumper-benches --bench callgrind_ops > target/bench/callgrind.json`, "
        "which runs each operation in a fresh process under `valgrind --tool=callgrind "
        "--collect-atstart=no --toggle-collect=bumper_bench_measured` with `BUMPER_RESERVE=1G` "
        "(valgrind refuses the default 64 GiB reservation) and divides the instructions (`Ir`) "
        "executed inside the measuring loop by the number of calls (100 000; 10 resets). A count "
        "includes the loop and an indirect call of the operation, 5 instructions (the "
        "`enter-empty` / `no-region` row). Every region is entered on a thread that has entered "
        "it before.",
        "",
    ]
    if doc is None:
        out += ["No callgrind counts (target/bench/callgrind.json): instructions not shown.", ""]
    else:
        when = doc.get("date_unix")
        start = float(run["start"]) if run and "start" in run else None
        note = f"Counts: {doc.get('valgrind', 'valgrind')}, `{doc.get('env', '')}`"
        if start and when and when < start:
            note += "; from an earlier run than this one"
        out += [note + ".", ""]
    for group, title, base, how, text in API_GROUPS:
        funcs = results.get(group, {})
        names = [n for g, n in order if g == group and (n in funcs or (g, n) in recs)]
        names += sorted(n for n in funcs if n not in names)
        if not names:
            continue
        out += [f"### {title}", "", f"`{group}`: {text}.", ""]
        head = "| function | median | 95% CI of median | instructions |"
        rule = "|---|---:|---:|---:|"
        if base:
            if how == "diff":
                head += f" time − `{base}` | instructions − `{base}` |"
            else:
                head += f" time / `{base}` | instructions / `{base}` |"
            rule += "---:|---:|"
        out += [head, rule]
        b = funcs.get(base) if base else None
        bir = recs.get((group, base), {}).get("ir_per_call") if base else None
        for n in names:
            r = funcs.get(n)
            ir = recs.get((group, n), {}).get("ir_per_call")
            name = f"`{n}`" + ("†" if (group, n) in stale else "")
            row = f"| {name} | {fmt_time(r['median']) if r else '–'} | " + (
                f"{fmt_time(r['lo'])} – {fmt_time(r['hi'])}" if r else "–"
            ) + f" | {fmt_ir(ir)} |"
            if base:
                if n == base:
                    row += " | |"
                elif how == "diff":
                    dt = r["median"] - b["median"] if r and b else None
                    di = ir - bir if ir is not None and bir is not None else None
                    row += f" {fmt_signed(dt, fmt_time)} | {fmt_signed(di, fmt_ir)} |"
                else:
                    rt = r["median"] / b["median"] if r and b else None
                    ri = ir / bir if ir is not None and bir else None
                    row += f" {fmt_ratio(rt)} | {fmt_ratio(ri)} |"
            out.append(row)
        out.append("")
    # small, per pair.
    small = [(n, recs[("small", n)]) for g, n in order if g == "small"]
    if small:
        ref = recs.get(("small", "bumpalo"), {}).get("ir_per_pair")
        out += [
            "### Instructions per alloc+free pair: `small`",
            "",
            "One iteration of the `small` workload per call (after two unmeasured ones), as the "
            "criterion benches run it: `bumper-region` in a region with a checkpoint and reset per "
            "iteration, `bumpalo` the explicit-API version with a `Bump` reset per iteration, "
            "`bumper-no-region` through the shim to glibc. Per pair: instructions per iteration / "
            "100 000 (the allocation, the free, and the workload's own work: the random numbers, "
            "the ring, the writes, which differ a little between std's and bumpalo's `Vec`).",
            "",
            "| setting | instructions per iteration | per alloc+free pair | − `bumpalo` |",
            "|---|---:|---:|---:|",
        ]
        for n, r in small:
            d = r["ir_per_pair"] - ref if ref is not None else None
            out.append(
                f"| `{n}` | {fmt_ir(r['ir_per_call'])} | {r['ir_per_pair']:.1f} | "
                + ("" if n == "bumpalo" else fmt_signed(d, lambda x: f"{x:.1f}"))
                + " |"
            )
        out.append("")
    return out


def load_interleaved(path):
    """scripts/bench_interleaved.py's JSON as {workload: {setting: {median}}}, and the document."""
    if not path or not os.path.isfile(path):
        return {}, None
    with open(path) as f:
        doc = json.load(f)
    res = {}
    for r in doc["results"]:
        res.setdefault(r["workload"], {})[r["setting"]] = {
            "median": r["median_ns"], "rounds": r["rounds"], "lo": r["median_ns"], "hi": r["median_ns"], "mtime": 0,
        }
    return res, doc


def interleaved_section(il, doc, counts):
    if not il:
        return []
    ws = [w for w in WORKLOADS if w in il]
    out = [
        "### Interleaved timing: best round's median CPU time, relative to the floor",
        "",
        f"`scripts/bench_interleaved.py --rounds {doc['rounds']} --secs {doc['secs']}` ({doc['date']}, "
        f"{fmt_secs(doc['wall_secs'])}; load average at the start of each round and at the end: "
        + ", ".join("/".join(l) for l in doc["load"])
        + "). Every cell is a fresh process of its bench binary (`BIN --time WORKLOAD SETTING "
        "SECS`): two unmeasured iterations, then single iterations for about SECS seconds, the "
        "median of their CPU time (`CLOCK_PROCESS_CPUTIME_ID`, all threads of the process: on a "
        "loaded machine, waiting for a core does not count); the cells run in rounds, each round "
        "in a new random order, and each cell keeps its best round. Load that comes and goes "
        "then hits every setting alike, where a criterion run times one binary after the other. "
        "These are the times the targets below use.",
        "",
        "| workload | floor | " + " | ".join(s for s in ORDER if s != FLOOR) + " |",
        "|---|---:|" + "---:|" * (len(ORDER) - 1),
    ]
    for w in ws:
        f = il[w].get(FLOOR)
        cells = [
            fmt_ratio(il[w][s]["median"] / f["median"]) if s in il[w] and f else "–"
            for s in ORDER if s != FLOOR
        ]
        out.append(f"| {w} | {fmt_time(f['median']) if f else '–'} | " + " | ".join(cells) + " |")
    out += [
        "",
        "The shim outside regions against its bare inner allocator, and a region against "
        "jemalloc and glibc (same rounds):",
        "",
        "| workload | `bumper-no-region` / `glibc` | `bumper-mimalloc-no-region` / `mimalloc` | "
        "`bumper-region` / `glibc` | `bumper-region` / `jemalloc` | `bumper-region` / `mimalloc` |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for w in ws:
        r = il[w]

        def q(a, b):
            return fmt_ratio(r[a]["median"] / r[b]["median"]) if a in r and b in r else "–"

        out.append(
            f"| {w} | {q('bumper-no-region', 'glibc')} | {q('bumper-mimalloc-no-region', 'mimalloc')} | "
            f"{q('bumper-region', 'glibc')} | {q('bumper-region', 'jemalloc')} | {q('bumper-region', 'mimalloc')} |"
        )
    out.append("")
    return out


def workload_ir(cg):
    """{(workload, setting): instructions per iteration} of callgrind group `workload`."""
    recs = cg[0] if cg else {}
    return {
        (r["workload"], r["setting"]): r["ir_per_call"]
        for (g, _), r in recs.items()
        if g == "workload"
    }


def allocs_per_iter(counts, w, setting="glibc"):
    rec = counts.get((w, setting))
    return rec["steady"]["alloc"] if rec else None


def workload_cg_section(cg, counts):
    """Instructions per iteration of every workload and setting (callgrind)."""
    ir = workload_ir(cg)
    if not ir:
        return []
    ws = [w for w in WORKLOADS if any(k[0] == w for k in ir)]
    settings = [s for s in ORDER if any(k[1] == s for k in ir)]
    out = [
        "### Instructions per iteration, every workload (callgrind)",
        "",
        "Each cell is one fresh process of the criterion bench binary itself (`BIN --measure "
        "WORKLOAD SETTING`, see `common::measured_child`) under `valgrind --tool=callgrind "
        "--collect-atstart=no --toggle-collect=bumper_bench_measured`, `BUMPER_RESERVE=1G`: "
        "two unmeasured iterations, then the instructions (`Ir`) of 4 (`small`), 20 (`vecgrow`) "
        "or 1 (the rest) measured ones, per iteration. `threads2` is left out (callgrind counts "
        "the measuring thread only), and so is `mlp` (its matrix kernels take minutes under "
        "valgrind, for 320 allocations per iteration). Unlike the times, these repeat to the "
        "instruction.",
        "",
        "| workload | " + " | ".join(f"`{s}`" for s in settings) + " |",
        "|---|" + "---:|" * len(settings),
    ]
    for w in ws:
        out.append(f"| {w} | " + " | ".join(
            f"{ir[(w, s)] / 1e6:,.2f} M" if (w, s) in ir else "–" for s in settings
        ) + " |")
    out += ["", "Relative to the floor (instructions):", "",
            "| workload | " + " | ".join(f"`{s}`" for s in settings if s != FLOOR) + " |",
            "|---|" + "---:|" * (len(settings) - 1)]
    for w in ws:
        fl = ir.get((w, FLOOR))
        out.append(f"| {w} | " + " | ".join(
            fmt_ratio(ir[(w, s)] / fl) if (w, s) in ir and fl else "–" for s in settings if s != FLOOR
        ) + " |")
    out += [
        "",
        "The shim outside regions, over its bare inner allocator: extra instructions per "
        "iteration divided by the allocations per iteration (`alloc` + `alloc_zeroed` calls of "
        "the count run; each is freed too, so this is per alloc+free pair, reallocations "
        "included in the extra).",
        "",
        "| workload | allocations/iter | `bumper-no-region` − `glibc` | per pair | "
        "`bumper-mimalloc-no-region` − `mimalloc` | per pair |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for w in ws:
        n = allocs_per_iter(counts, w)
        cells = []
        for s, inner in INNER_OF.items():
            a, b = ir.get((w, s)), ir.get((w, inner))
            if a is None or b is None:
                cells += ["–", "–"]
                continue
            d = a - b
            # With few allocations, a difference is the workload's own code
            # compiled differently around the shim, not a per-call cost.
            cells += [fmt_signed(d, fmt_ir), fmt_signed(d / n, lambda x: f"{x:.2f}") if n and n >= 1000 else "–"]
        out.append(f"| {w} | {fmt_count(n)} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def report(results, counts, iters, run, analysis, svg_rel, argv, cg=({}, [], None), il=({}, None)):
    out = []
    label = next((e.split("=", 1)[1] for e in (run or {}).get("env", []) if e.startswith("BENCH_LABEL=")), None)
    workloads = [w for w in WORKLOADS if w in results] + sorted(
        set(results) - set(WORKLOADS) - set(API_GROUP_NAMES)
    )
    out += [
        "# Benchmarks",
        "",
        "<!-- Generated by scripts/bench_report.py (run scripts/bench.sh). Only the",
        "     analysis section between its markers is kept when it runs again. -->",
        "",
    ]
    if label:
        out += [f"> **{label}**", ""]
    out += [
        "> Read the ratios, not the absolute times: the machine is a shared VM, and ratios "
        "across *different binaries* are good to about ±10% (code layout differs; see the "
        "analysis).",
        "",
        f"![Median time relative to glibc, per workload]({svg_rel})",
        "",
        "## How to run",
        "",
        "```sh",
        "scripts/bench.sh                    # everything: build, criterion, count and callgrind runs, this file",
        "scripts/bench.sh json mlp           # only these workloads (older results are marked stale)",
        "BENCH_MEASUREMENT_SECS=10 BENCH_SAMPLES=50 scripts/bench.sh   # a longer, quieter run",
        "cargo bench -p bumper-benches -- small                        # criterion only, one group",
        "cargo bench -p bumper-benches --bench alloc_count -- --iters 10 > counts.json",
        "cargo bench -p bumper-benches --bench region_speed            # region API and resets only",
        "cargo bench -p bumper-benches --bench callgrind_ops > callgrind.json  # instructions (valgrind)",
        "scripts/bench_interleaved.py --rounds 3 --secs 0.6          # interleaved CPU times (the targets use them)",
        "scripts/bench_report.py --check     # exit 1 if a target below is missed",
        "```",
        "",
        "A binary has exactly one `#[global_allocator]`, and the workloads are unmodified "
        "code, so each allocator is its own bench binary running the same workloads "
        "(`benches/common/`, one file per workload) under the same criterion group and "
        "function names:",
        "",
        "| binary | global allocator | settings (criterion function names) |",
        "|---|---|---|",
        "| `alloc_glibc` | none: std's `System`, glibc malloc | `glibc` |",
        "| `alloc_mimalloc` | `mimalloc::MiMalloc` | `mimalloc` |",
        "| `alloc_jemalloc` | `tikv_jemallocator::Jemalloc` | `jemalloc` |",
        "| `alloc_bumper` | `Bumper<System>` | `bumper-region`, `bumper-no-region`, `bumpalo` |",
        "| `alloc_bumper_mimalloc` | `Bumper<MiMalloc>` | `bumper-mimalloc-region`, `bumper-mimalloc-no-region` |",
        "| `alloc_floor` | the floor (`benches/common/floor.rs`: unsafe, bench only) | `floor` |",
        "| `alloc_count` (not timed) | `Bumper<Counting<inner>>` | counts calls and peak RSS, prints JSON |",
        "| `region_speed` | `Bumper<System>` | the region API and resets, bumper only: see [below](#region-api-and-resets) |",
        "| `callgrind_ops` (not timed) | `Bumper<System>` | instructions per operation under callgrind, prints JSON |",
        "",
        "- `*-region`: each iteration is `with_bumper(&arena, || arena.no_escape(|| "
        "workload()))`, one `Arena` made before timing; region entry, checkpoint and reset "
        "are inside the timed iteration. `threads2` uses a `LockedArena` and "
        "`bumper::thread::scope` instead (see below).",
        "- `floor`: each iteration in a `floor::scope`, whose end moves the thread's cursor "
        "back: an unsafe global bump allocator (a thread-local cursor in one reserved range, "
        "frees that retreat only at the tip, growth at the tip, no accounting, one range "
        "compare, no escape detection) that no sound allocator can beat by much.",
        "- Every bench binary also runs one cell on its own: `BIN --measure WORKLOAD SETTING` "
        "(for callgrind) and `BIN --time WORKLOAD SETTING SECS` (for the interleaved rounds).",
        "- `*-no-region`: the shim installed, no region: its cost over the bare inner "
        "allocator (`glibc`, resp. `mimalloc`).",
        "- `bumpalo`: the same allocation sequence written against bumpalo's explicit API "
        "(`bumpalo::boxed::Box`, `bumpalo::collections::Vec`), one `Bump` reset at the end of "
        "every iteration (inside the timing): the ceiling for an explicit bump allocator. "
        "Only `small` and `vecgrow` have such a version.",
        "- Inner calls per iteration come from `alloc_count`: every call that reaches the "
        "allocator below the shim (alloc, realloc and free, on all threads), the first "
        "iteration apart, the steady state the mean of the others; \"in region\" counts "
        "those made by a thread inside a region. Peak RSS is `VmHWM` of a fresh process per "
        "workload and setting, input included. The no-region settings are not counted "
        "again: the shim passes every call on, so their counts are glibc's and mimalloc's.",
        "",
        "## Workloads",
        "",
    ]
    for w in workloads:
        out.append(f"- **{w}**: {WORKLOAD_TEXT.get(w, '(no description)')}")
    out.append("")

    # Machine and commands.
    out += ["## Machine and commands", ""] + machine(run) + [""]
    if run and run["steps"]:
        out += ["| step | command | wall time |", "|---|---|---:|"]
        for name, cmd, secs in run["steps"]:
            # A `|` ends a table cell even inside a code span, unless escaped.
            out.append(f"| {name} | `{cmd.replace('|', chr(92) + '|')}` | {fmt_secs(secs)} |")
        out.append(f"| report | `{' '.join(['scripts/bench_report.py'] + argv)}` | |")
        if "total" in run:
            out.append(f"| **total** | | **{fmt_secs(float(run['total']))}** |")
        env = [e for e in run["env"] if not e.startswith("BENCH_LABEL=")]
        out += [
            "",
            "Criterion settings: "
            + (", ".join(f"`{e}`" for e in env) if env else "the defaults")
            + " (defaults: 20 samples, 1 s warm-up, 2.5 s measurement per function; "
            "`mlp` uses flat sampling; `reset-scale` one reset per sample, "
            "`BENCH_RESET_SAMPLES` samples, default 100). Count run: "
            + (f"{iters} iterations" if iters else "not run")
            + " per workload and setting.",
        ]
    else:
        out.append("No run log (target/bench/run.tsv): the commands were not recorded.")
    out.append("")

    start = float(run["start"]) if run and "start" in run else None
    stale = set()
    for w, funcs in results.items():
        for s, r in funcs.items():
            if start and r["mtime"] < start:
                stale.add((w, s))

    # Summary.
    out += [
        "## Results",
        "",
        "### Summary: median time relative to glibc",
        "",
        "Bold: the fastest setting of the workload (glibc's median if glibc is). *Best peer*: the fastest of glibc, "
        "mimalloc, jemalloc and bumpalo.",
        "",
        "| workload | glibc median | " + " | ".join(ORDER[1:]) + " | best peer |",
        "|---|---:|" + "---:|" * len(ORDER[1:]) + "---|",
    ]
    for w in workloads:
        funcs = results[w]
        glibc = funcs.get("glibc")
        fastest = min(funcs, key=lambda s: funcs[s]["median"])
        cells = []
        for s in ORDER[1:]:
            if s not in funcs or not glibc:
                cells.append("–")
                continue
            c = fmt_ratio(funcs[s]["median"] / glibc["median"])
            if (w, s) in stale:
                c += "†"
            cells.append(f"**{c}**" if s == fastest else c)
        _, peer = best_peer(funcs)
        glibc_cell = "–"
        if glibc:
            glibc_cell = fmt_time(glibc["median"]) + ("†" if (w, "glibc") in stale else "")
            if fastest == "glibc":
                glibc_cell = f"**{glibc_cell}**"
        out.append(
            f"| {w} | {glibc_cell} | "
            + " | ".join(cells)
            + f" | {peer or '–'} |"
        )
    out.append("")
    if stale:
        out += ["† from an earlier criterion run than this one (a filtered run).", ""]

    out += [
        "### Summary: median time relative to the floor",
        "",
        "The floor (`benches/common/floor.rs`) is an unsafe global bump allocator, bench only: a "
        "thread-local cursor, frees that retreat only at the tip, growth at the tip, a reset per "
        "iteration, no accounting and no escape detection. No sound allocator beats it by much on "
        "unmodified code.",
        "",
        "| workload | floor median | " + " | ".join(s for s in ORDER if s != FLOOR) + " |",
        "|---|---:|" + "---:|" * (len(ORDER) - 1),
    ]
    for w in workloads:
        funcs = results[w]
        fl = funcs.get(FLOOR)
        cells = []
        for s in ORDER:
            if s == FLOOR:
                continue
            if s not in funcs or not fl:
                cells.append("–")
                continue
            cells.append(fmt_ratio(funcs[s]["median"] / fl["median"]) + ("†" if (w, s) in stale else ""))
        out.append(f"| {w} | {fmt_time(fl['median']) if fl else '–'} | " + " | ".join(cells) + " |")
    out.append("")

    # Details.
    out += ["### Per workload", ""]
    for w in workloads:
        funcs = results[w]
        glibc = funcs.get("glibc")
        floor = funcs.get(FLOOR)
        glibc_counts, _ = count_record(counts, w, "glibc")
        peer_ns, peer = best_peer(funcs)
        out += [
            f"#### {w}",
            "",
            f"| setting | median | 95% CI of median | vs glibc | vs floor | vs best peer ({peer or '–'}) "
            "| inner calls/iter | first iter | peak RSS | RSS vs glibc |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        arena_notes = []
        for s in sorted(funcs, key=order_key):
            r = funcs[s]
            rec, borrowed = count_record(counts, w, s)
            calls = first = rss = rss_ratio = "–"
            if rec:
                calls = fmt_count(rec["steady"]["calls"])
                if "region" in s and not s.endswith("no-region"):
                    calls += f" ({fmt_count(rec['steady']['in_region'])} in region)"
                first = fmt_count(rec["first"]["calls"])
                rss = fmt_kib(rec["peak_rss_kib"])
                if glibc_counts:
                    rss_ratio = fmt_ratio(rec["peak_rss_kib"] / glibc_counts["peak_rss_kib"])
                if borrowed:
                    calls += " ="
                    rss += " ="
                if "arena" in rec and not borrowed:
                    a = rec["arena"]
                    arena_notes.append(
                        f"`{s}`: the arena served {fmt_count(a['allocations_per_iter'])} "
                        f"allocations ({a['bytes_per_iter'] / 2**20:.1f} MiB) per iteration, "
                        f"peak in use {a['peak_bytes_in_use'] / 2**20:.1f} MiB, capacity "
                        f"{a['chunk_bytes'] / 2**20:.1f} MiB in {a['chunks']} chunks, "
                        f"{a['escapes']} escapes, {a['bytes_in_use_after']} B in use after the "
                        "last reset."
                    )
            name = s + ("†" if (w, s) in stale else "")
            out.append(
                f"| {name} | {fmt_time(r['median'])} | {fmt_time(r['lo'])} – {fmt_time(r['hi'])} "
                f"| {fmt_ratio(r['median'] / glibc['median']) if glibc else '–'} "
                f"| {fmt_ratio(r['median'] / floor['median']) if floor else '–'} "
                f"| {fmt_ratio(r['median'] / peer_ns) if peer_ns else '–'} "
                f"| {calls} | {first} | {rss} | {rss_ratio} |"
            )
        out.append("")
        if any(COUNT_AS.get(s) for s in funcs):
            out += ["= counts of the bare inner allocator (not run again; see above).", ""]
        for n in arena_notes:
            out.append(f"- {n}")
        if arena_notes:
            out.append("")

    out += interleaved_section(il[0], il[1], counts)
    out += workload_cg_section(cg, counts)
    out += api_section(results, cg, stale, run)

    # Targets.
    rows, missed = targets(il[0] or results, counts, cg[0], results)
    out += [
        "### Targets (the brief; issues 8, 10 and 17)",
        "",
        "Time ratios from the interleaved rounds above"
        if il[0]
        else "Time ratios from the criterion medians above",
        "(the region-API rows from criterion).",
        "",
        "| workload | target | measured | met |",
        "|---|---|---:|:---:|",
    ] + rows + [""]
    out += [ANALYSIS_BEGIN, analysis, ANALYSIS_END, ""]
    return "\n".join(out), missed


def targets(results, counts, cg=None, api_results=None):
    rows, missed = [], 0
    cg = cg or {}
    api_results = results if api_results is None else api_results

    def row(w, text, measured, ok):
        nonlocal missed
        if ok is None:
            rows.append(f"| {w} | {text} | {measured} | – |")
        else:
            missed += not ok
            rows.append(f"| {w} | {text} | {measured} | {'yes' if ok else '**NO**'} |")

    for w, s, ref, bound in TARGETS:
        funcs = results.get(w, {})
        text = f"`{s}` ≤ {bound:.2f}x `{ref}`"
        if s in funcs and ref in funcs:
            r = funcs[s]["median"] / funcs[ref]["median"]
            row(w, text, f"{r:.2f}x", r <= bound)
        elif w in results:
            row(w, text, "not run", None)
    for w in WORKLOADS:
        settings = [s for s in ("bumper-region", "bumper-mimalloc-region") if (w, s) in counts]
        if settings:
            ns = [counts[(w, s)]["steady"]["in_region"] for s in settings]
            row(
                w,
                "no inner calls inside a region, steady state ("
                + ", ".join(f"`{s}`" for s in settings)
                + ")",
                " / ".join(fmt_count(n) for n in ns),
                all(n == 0 for n in ns),
            )
        rec, base = counts.get((w, "bumper-region")), counts.get((w, "glibc"))
        if rec and base:
            r = rec["peak_rss_kib"] / base["peak_rss_kib"]
            row(w, f"`bumper-region` peak RSS ≤ {RSS_BOUND}x glibc's", f"{r:.2f}x", r <= RSS_BOUND)

    def ir(group, name):
        return cg.get((group, name), {}).get("ir_per_call")

    def med(group, name):
        return api_results.get(group, {}).get(name, {}).get("median")

    # Issue 17: the same targets in instructions (callgrind), which repeat.
    wir = workload_ir((cg, [], None))
    for w, s_, ref, bound in TARGETS:
        a, b = wir.get((w, s_)), wir.get((w, ref))
        if ref == FLOOR and a is not None and b:
            row(w, f"`{s_}` ≤ {bound:.2f}x `{ref}` in instructions (callgrind)", f"{a / b:.3f}x", a / b <= bound)
    # Issue 17: the shim outside regions, instructions per pair over the inner allocator.
    n = allocs_per_iter(counts, "small")
    for s_, inner in INNER_OF.items():
        a, b = wir.get(("small", s_)), wir.get(("small", inner))
        if a is not None and b is not None and n:
            d = (a - b) / n
            row(
                "small",
                f"`{s_}` instructions per alloc+free pair ≤ `{inner}`'s + {NO_REGION_PAIR_BOUND} (callgrind)",
                f"{a / n:.1f} vs {b / n:.1f} ({d:+.2f})",
                d <= NO_REGION_PAIR_BOUND,
            )
    # Issue 10: instructions per pair.
    reg, bump = cg.get(("small", "bumper-region")), cg.get(("small", "bumpalo"))
    if reg and bump:
        d = reg["ir_per_pair"] - bump["ir_per_pair"]
        row(
            "small",
            f"instructions per alloc+free pair in a region ≤ `bumpalo`'s + {PAIR_BOUND} (callgrind)",
            f"{reg['ir_per_pair']:.1f} vs {bump['ir_per_pair']:.1f} ({d:+.1f})",
            d <= PAIR_BOUND,
        )
    # Issue 8: entering a Region costs no more than with_bumper on a LockedArena.
    for group in ("enter-alloc", "enter-empty"):
        a, b = ir(group, "Region-enter"), ir(group, "LockedArena-with_bumper")
        ta, tb = med(group, "Region-enter"), med(group, "LockedArena-with_bumper")
        if a is not None and b is not None:
            t = f"; time {ta / tb:.2f}x" if ta and tb else ""
            row(
                group,
                "`Region::enter` ≤ `with_bumper(&LockedArena)` in instructions (callgrind), on a "
                "thread that entered before",
                f"{a / b:.2f}x ({fmt_ir(a)} vs {fmt_ir(b)}){t}",
                a <= b,
            )
    # Issue 8: the poll overhead of InRegion, "a few nanoseconds".
    a, b = med("poll-pending", "in_region"), med("poll-pending", "bare")
    if a and b:
        ia, ib = ir("poll-pending", "in_region"), ir("poll-pending", "bare")
        extra = f" ({fmt_ir(ia - ib)} instructions)" if ia is not None and ib is not None else ""
        row(
            "poll-pending",
            f"`InRegion` poll overhead a few ns (read here as ≤ {POLL_BOUND_NS:g} ns)",
            f"{fmt_time(a - b)}{extra}",
            (a - b) <= POLL_BOUND_NS,
        )
    # Issue 10, Scale: a reset's cost does not grow with the allocations.
    many, same = ir("reset-scale", "1000000-allocs-32B"), ir("reset-scale", "1000-allocs-32KiB")
    few = ir("reset-scale", "1000-allocs-32B")
    if many is not None and same is not None:
        row(
            "reset-scale",
            "a reset's instructions do not grow with the allocations since the checkpoint: "
            "1 000 000 × 32 B against 1 000 × 32 KiB (the same bytes and chunks)",
            f"{many / same:.2f}x",
            many <= same,
        )
    if many is not None and few is not None:
        tm, tf = med("reset-scale", "1000000-allocs-32B"), med("reset-scale", "1000-allocs-32B")
        t = f"; time {tm / tf:.1f}x" if tm and tf else ""
        row(
            "reset-scale",
            "1 000 000 against 1 000 allocations of 32 B (1000x the bytes; see the analysis)",
            f"instructions {many / few:.2f}x{t}",
            None,
        )
    return rows, missed


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--criterion", default=os.path.join("target", "criterion"))
    p.add_argument("--counts", action="append")
    p.add_argument("--callgrind", default=os.path.join("target", "bench", "callgrind.json"))
    p.add_argument("--run", default=os.path.join("target", "bench", "run.tsv"))
    p.add_argument("--out")
    p.add_argument("--svg", default=os.path.join("docs", "bench.svg"))
    p.add_argument("--check", action="store_true")
    p.add_argument("--interleaved", default=os.path.join("target", "bench", "interleaved.json"))
    args = p.parse_args(argv)

    results = load_criterion(args.criterion)
    if not results:
        sys.exit(f"{args.criterion}: no criterion results; run scripts/bench.sh first")
    counts, iters = load_counts(args.counts or [os.path.join("target", "bench", "counts.json")])
    run = load_run(args.run)

    base = os.path.dirname(os.path.abspath(args.out)) if args.out else os.getcwd()
    svg_rel = os.path.relpath(os.path.abspath(args.svg), base)
    label = next((e.split("=", 1)[1] for e in (run or {}).get("env", []) if e.startswith("BENCH_LABEL=")), None)
    # The label's first clause ("Provisional run ...: details") titles the chart.
    title = "bumper benchmarks" + (f": {label.split(':')[0]}" if label else "")
    if run:
        title += f" (commit {run.get('commit', '?')}, {run.get('date', '?')})"
    workloads = [w for w in WORKLOADS if w in results]
    os.makedirs(os.path.dirname(os.path.abspath(args.svg)), exist_ok=True)
    with open(args.svg, "w") as f:
        f.write(svg_chart(results, workloads, title))

    cg = load_callgrind(args.callgrind)
    il = load_interleaved(args.interleaved)
    md, missed = report(results, counts, iters, run, analysis_section(args.out), svg_rel, argv, cg, il)
    if args.out:
        with open(args.out, "w") as f:
            f.write(md)
    else:
        print(md, end="")
    if args.check and missed:
        print(f"{missed} target(s) missed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
