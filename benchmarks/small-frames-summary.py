#!/usr/bin/env python3
"""Prints RESULTS.md's small-frame table from `relay-bench relay --frame-rate … --json` runs.

Usage: small-frames-summary.py DIR
Reads DIR/run*.json and DIR/rate*-run*.json (any JSON file of `relay-bench relay` with a
frame rate), groups the runs by frame rate and session count, and prints per group the
median (min–max) of each peer's CPU µs per frame, the ratio relay / haproxy per run, and
the latency probe's p50 and p99 where the runs took samples (median and range over the runs).
"""
import glob
import json
import os
import statistics
import sys


def spread(values, digits=1):
    values = sorted(values)
    fmt = f"{{:,.{digits}f}}"
    return f"{fmt.format(statistics.median(values))} ({fmt.format(values[0])}–{fmt.format(values[-1])})"


groups = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    try:
        with open(path) as file:
            run = json.load(file)
    except json.JSONDecodeError:
        print(f"skipped {path}: not a finished run's JSON", file=sys.stderr)
        continue
    rate = run["settings"].get("frame_rate_per_session")
    if rate is None:
        continue
    results = run["results"]
    for key, relay in results.items():
        if not key.startswith("throughput_relay_"):
            continue
        haproxy = results[key.replace("relay", "haproxy", 1)]
        group = groups.setdefault((rate, relay["sessions"], run["settings"]["tile_payload_bytes"]), [])
        group.append((relay, haproxy))

print("| sessions × frames/s (payload) | runs | frames/s forwarded | relay CPU µs per frame | haproxy CPU µs per frame | relay / haproxy, per run | p50 µs relay / haproxy | p99 µs relay / haproxy |")
print("|---|---|---|---|---|---|---|---|")
for (rate, sessions, payload), runs in sorted(groups.items()):
    relay_us = [r["peer_cpu_us_per_frame"] for r, _ in runs]
    haproxy_us = [h["peer_cpu_us_per_frame"] for _, h in runs]
    ratios = ", ".join(f"{r['peer_cpu_us_per_frame'] / h['peer_cpu_us_per_frame']:.2f}" for r, h in runs)
    fps = spread([r["frames_per_second"] for r, _ in runs], 0)
    with_latency = [(r, h) for r, h in runs if r.get("latency_samples") and h.get("latency_samples")]
    if with_latency:
        p50 = f"{spread([r['latency_p50_us'] for r, _ in with_latency], 0)} / {spread([h['latency_p50_us'] for _, h in with_latency], 0)}"
        p99 = f"{spread([r['latency_p99_us'] for r, _ in with_latency], 0)} / {spread([h['latency_p99_us'] for _, h in with_latency], 0)}"
    else:
        p50 = p99 = "not taken"
    errors = sum(r["errors"] + h["errors"] for r, h in runs)
    note = "" if errors == 0 else f" ({errors} errors)"
    print(
        f"| {sessions} × {rate:g} ({payload} B){note} | {len(runs)} | {fps} | **{spread(relay_us)}** | {spread(haproxy_us)} | {ratios} | {p50} | {p99} |"
    )
