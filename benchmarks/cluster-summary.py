#!/usr/bin/env python3
"""Median and range over several `relay-bench cluster --json` runs, as Markdown tables.

    python3 benchmarks/cluster-summary.py benchmarks/results/cluster-2026-12-03/run*.json

Prints the tables of benchmarks/RESULTS.md "Cluster": pairings, forwarding, database
writes and idle memory. Each cell is the median of the runs, with the smallest and largest
value in parentheses when there are several runs.
"""

import json
import statistics
import sys

SETUPS = {
    "sqlite": "1 node, SQLite",
    "postgres": "1 node, PostgreSQL",
    "postgres-cluster": "1 node, PostgreSQL, cluster settings",
    "cluster3": "3 nodes, PostgreSQL",
}


def cell(values, digits=0, scale=1.0):
    values = [v * scale for v in values if v is not None]
    if not values:
        return "–"
    middle = statistics.median(values)
    text = f"{middle:,.{digits}f}"
    if len(values) > 1:
        text += f" ({min(values):,.{digits}f}–{max(values):,.{digits}f})"
    return text


def section(run, prefix):
    for part in run["sections"]:
        if part["title"].startswith(prefix):
            return part["figures"]
    raise SystemExit(f"no section starting with {prefix!r} in a run")


def pairings(runs):
    print("| setup | mode | in flight | pairings/s | p50 ms | p99 ms | relay CPU ms/pairing | PostgreSQL CPU ms/pairing | transactions/pairing | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    cases = [(f["setup"], f["mode"], f["in_flight"]) for f in section(runs[0], "pairings:")]
    for setup, mode, flight in cases:
        rows = [f for run in runs for f in section(run, "pairings:") if (f["setup"], f["mode"], f["in_flight"]) == (setup, mode, flight)]
        per_pairing = [f["database"]["transactions"] / f["pairings"] if f["database"] and f["pairings"] else None for f in rows]
        print(
            f"| {SETUPS.get(setup, setup)} | {mode} | {flight} | {cell([f['pairings_per_second'] for f in rows])} "
            f"| {cell([f['latency']['p50_ms'] for f in rows], 1)} | {cell([f['latency']['p99_ms'] for f in rows], 1)} "
            f"| {cell([f['relay_cpu_ms_per_pairing'] for f in rows], 2)} | {cell([f['postgres_cpu_ms_per_pairing'] for f in rows], 2)} "
            f"| {cell(per_pairing, 1)} | {sum(f['errors'] for f in rows)} |"
        )
    print()
    print("Three nodes, cross-node beside same-node pairings (p50 ms):")
    print()
    print("| mode | in flight | same node | across nodes |")
    print("|---|---:|---:|---:|")
    for setup, mode, flight in cases:
        if setup != "cluster3":
            continue
        rows = [f for run in runs for f in section(run, "pairings:") if (f["setup"], f["mode"], f["in_flight"]) == (setup, mode, flight)]
        same = [f["latency_same_node"]["p50_ms"] for f in rows if f["latency_same_node"]]
        cross = [f["latency_cross_node"]["p50_ms"] for f in rows if f["latency_cross_node"]]
        print(f"| {mode} | {flight} | {cell(same, 1)} | {cell(cross, 1)} |")
    print()


def forwarding(runs):
    print("| sessions | placement | MB/s | MB per relay CPU-s (all nodes) |")
    print("|---:|---|---:|---:|")
    figures = [f for f in section(runs[0], "forwarding") if "placement" in f]
    for case in figures:
        rows = [f for run in runs for f in section(run, "forwarding") if f.get("placement") == case["placement"] and f["sessions"] == case["sessions"]]
        print(f"| {case['sessions']} | {case['placement']} | {cell([f['mb_per_second'] for f in rows])} | {cell([f['mb_per_relay_cpu_second'] for f in rows])} |")
    print()
    print("| sessions | across / same, MB/s | across / same, MB per relay CPU-s |")
    print("|---:|---:|---:|")
    for case in [f for f in section(runs[0], "forwarding") if "placement" not in f]:
        rows = [f for run in runs for f in section(run, "forwarding") if "placement" not in f and f["sessions"] == case["sessions"]]
        print(
            f"| {case['sessions']} | {cell([f['cross_over_same_mb_per_second'] for f in rows], 2)} "
            f"| {cell([f['cross_over_same_mb_per_relay_cpu_second'] for f in rows], 2)} |"
        )
    print()


def writes(runs):
    windows = [section(run, "PostgreSQL writes") for run in runs]
    print("| what | transactions | rows written | WAL bytes | PostgreSQL CPU ms |")
    print("|---|---:|---:|---:|---:|")
    leases = [w["per_node_minute_leases"] for w in windows]
    print(
        f"| per node-minute, leases alone | {cell([x['transactions'] for x in leases], 1)} | {cell([x['rows_written'] for x in leases], 1)} "
        f"| {cell([x['wal_bytes'] for x in leases])} | {cell([w['leases']['postgres_cpu_seconds'] / (w['leases']['seconds'] / 60) / w['leases']['nodes'] for w in windows], 0, 1000)} |"
    )
    session = [w["per_session_minute"] for w in windows]
    print(
        f"| per session-minute, idle sessions | {cell([x['transactions'] for x in session], 3)} | {cell([x['rows_written'] for x in session], 2)} "
        f"| {cell([x['wal_bytes'] for x in session])} | {cell([x['postgres_cpu_ms'] for x in session], 2)} |"
    )
    print()
    idle = [w["idle_sessions"] for w in windows]
    print(
        f"Idle sessions: {idle[0]['sessions']} over {idle[0]['nodes']} nodes; RSS per session over all nodes "
        f"{cell([w['kib_per_session'] for w in idle], 1)} KiB; sockets per session {cell([w['descriptors_per_session'] for w in idle], 2)}; "
        f"relay CPU over the window, all nodes: {cell([sum(w['relay_cpu_seconds']) for w in idle], 2)} s in {idle[0]['seconds']:.0f} s."
    )
    print()


def main():
    paths = sys.argv[1:]
    if not paths:
        raise SystemExit(__doc__)
    runs = [json.load(open(path)) for path in paths]
    for run in runs:
        print(f"<!-- {run['machine']['date']}, load average {run['machine']['load_average']} -->")
    print()
    # Runs of some parts only (--parts writes) print the tables they have.
    for part in (pairings, forwarding, writes):
        try:
            part(runs)
        except SystemExit as missing:
            print(f"<!-- {part.__name__}: {missing} -->")
            print()


if __name__ == "__main__":
    main()
