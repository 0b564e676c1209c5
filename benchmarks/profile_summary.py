#!/usr/bin/env python3
"""Where the time of a profiled run goes: self time per LibTorch operator.

    ordo-bench-kd-step --profile TRACE.json ...
    python3 benchmarks/profile_summary.py TRACE.json [--top 20] [--json]

Reads the chrome://tracing file LibTorch's profiler writes (complete events, "ph": "X", one
nesting per thread) and prints, per operator name, its self time (its own duration less that of
the operators it called), its share of all self time, and its call count, largest first. The
self times of a thread add up to the time its outermost operators took. Standard library only.
"""
import argparse
import collections
import json
import sys


def self_times(events):
    """{name: [self_us, calls]} over every thread of the trace."""
    totals = collections.defaultdict(lambda: [0.0, 0])
    by_thread = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X":
            by_thread[e.get("tid")].append(e)
    for evs in by_thread.values():
        # Parents first: earlier start, and on a tie the longer one.
        evs.sort(key=lambda e: (float(e["ts"]), -float(e["dur"])))
        stack = []  # [end, event, children's time]
        def close(entry):
            end, e, children = entry
            t = totals[e["name"]]
            t[0] += max(0.0, float(e["dur"]) - children)
            t[1] += 1
            if stack:
                stack[-1][2] += float(e["dur"])
        for e in evs:
            start = float(e["ts"])
            while stack and stack[-1][0] <= start:
                close(stack.pop())
            stack.append([start + float(e["dur"]), e, 0.0])
        while stack:
            close(stack.pop())
    return totals


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trace")
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    a = p.parse_args(argv)
    try:
        with open(a.trace) as f:
            events = json.load(f)
    except (OSError, ValueError) as err:
        sys.exit(f"profile_summary.py: {a.trace}: {err}")
    if not isinstance(events, list):
        events = events.get("traceEvents", []) if isinstance(events, dict) else []
    totals = self_times(events)
    if not totals:
        sys.exit(f"profile_summary.py: {a.trace}: no complete ('X') events")
    whole = sum(t[0] for t in totals.values())
    rows = sorted(totals.items(), key=lambda kv: -kv[1][0])[: a.top]
    if a.json:
        print(json.dumps({"self_seconds_total": whole / 1e6,
                          "operators": [{"name": n, "self_seconds": t[0] / 1e6, "share": t[0] / whole,
                                         "calls": t[1]} for n, t in rows]}))
        return
    print(f"self time of all operators: {whole / 1e6:.2f} s")
    print(f"{'operator':<40} {'self s':>9} {'share':>7} {'calls':>8}")
    for n, t in rows:
        print(f"{n:<40} {t[0] / 1e6:9.3f} {100 * t[0] / whole:6.1f}% {t[1]:8d}")


if __name__ == "__main__":
    main(sys.argv[1:])
