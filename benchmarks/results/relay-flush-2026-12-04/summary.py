#!/usr/bin/env python3
"""Tables of the flush-size A/B (base: 8b0b5fc's relay-server, new: f4582ac's), from this folder's files."""
import json, os, re, statistics
here = os.path.dirname(os.path.abspath(__file__))
def tp(build, run):
    r = json.load(open(f"{here}/{build}-throughput-run{run}.json"))["results"]
    return r
def kib(build, warm, run):
    text = open(f"{here}/{build}-warm{warm}-run{run}.txt").read()
    return float(re.search(r"per session: ([0-9.]+) KiB", text).group(1))
print("| build | run | 1 session: relay / haproxy MB per CPU-s | ratio | 50 sessions: relay / haproxy | ratio | p99 µs at 50, relay / haproxy | KiB per session after 128 KiB | after 1 MiB |")
print("|---|---|---|---|---|---|---|---|---|")
for build in ("base", "new"):
    rows = []
    for run in (1, 2, 3):
        r = tp(build, run)
        rows.append((r["throughput_relay_1"]["mb_per_peer_cpu_second"], r["throughput_haproxy_1"]["mb_per_peer_cpu_second"], r["ratio_1"]["per_cpu_second"],
                     r["throughput_relay_50"]["mb_per_peer_cpu_second"], r["throughput_haproxy_50"]["mb_per_peer_cpu_second"], r["ratio_50"]["per_cpu_second"],
                     r["throughput_relay_50"]["latency_p99_us"], r["throughput_haproxy_50"]["latency_p99_us"], kib(build, 128, run), kib(build, 1024, run)))
        x = rows[-1]
        print(f"| {build} | {run} | {x[0]:,.0f} / {x[1]:,.0f} | {x[2]:.2f} | {x[3]:,.0f} / {x[4]:,.0f} | {x[5]:.2f} | {x[6]:,.0f} / {x[7]:,.0f} | {x[8]:.1f} | {x[9]:.1f} |")
    med = lambda i: statistics.median(r[i] for r in rows)
    rng = lambda i, f: f"{f(min(r[i] for r in rows))}–{f(max(r[i] for r in rows))}"
    print(f"| {build} | median | {med(0):,.0f} / {med(1):,.0f} | **{med(2):.2f}** ({rng(2, lambda v: f'{v:.2f}')}) | {med(3):,.0f} / {med(4):,.0f} | **{med(5):.2f}** ({rng(5, lambda v: f'{v:.2f}')}) | {med(6):,.0f} / {med(7):,.0f} | **{med(8):.1f}** ({rng(8, lambda v: f'{v:.1f}')}) | **{med(9):.1f}** ({rng(9, lambda v: f'{v:.1f}')}) |")
