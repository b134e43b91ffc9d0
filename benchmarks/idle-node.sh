#!/usr/bin/env bash
# 10,000 (or N) paired idle sessions on this node, split over several relay-server
# processes, each with its own relay-bench load process, all at the same time.
#
# Why split: each session is two TLS connections, so 10,000 sessions are 20,000 sockets in
# the relay. Where RLIMIT_NOFILE has a hard cap of 20,000 that cannot be raised (a
# container without CAP_SYS_RESOURCE), one process cannot hold them, nor can one load
# process hold the 20,000 client ends. On a host you control, raise the limit and run
# `relay-bench relay --skip-throughput --idle 10000` instead.
#
#   benchmarks/idle-node.sh [TOTAL_SESSIONS] [PROCESSES]     # defaults: 10000 2
#   RELAY_BINARY=PATH benchmarks/idle-node.sh ...            # another relay-server build
#
# Prints each process's figures and the node's: sessions paired, relay RSS added, KiB per
# session, graded against issue 16's target (32 KiB per paired idle session) and the
# earlier 64 KiB one. Raw JSON of each part goes to benchmarks/results/ when KEEP_RESULTS=1.
set -euo pipefail
cd "$(dirname "$0")/.."

total="${1:-10000}"
processes="${2:-2}"
bench=benchmarks/.build/release/relay-bench
relay="${RELAY_BINARY:-}"
if [ -z "$relay" ]; then
    relay=.build-release/release/relay-server
    [ -x "$relay" ] || relay=.build/release/relay-server
fi
for binary in "$bench" "$relay"; do
    [ -x "$binary" ] || { echo "missing $binary: build with 'swift build -c release --scratch-path .build-release --product relay-server' and 'swift build -c release --package-path benchmarks' (or set RELAY_BINARY)" >&2; exit 1; }
done
per=$(( total / processes ))
[ $(( per * processes )) -eq "$total" ] || { echo "TOTAL_SESSIONS ($total) must divide evenly by PROCESSES ($processes)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "==> $total idle sessions: $processes relay-server processes with $per each, started together"
pids=()
for i in $(seq 1 "$processes"); do
    "$bench" relay --relay-binary "$relay" --skip-throughput --idle "$per" --json > "$work/part-$i.json" 2> "$work/part-$i.log" &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
if [ "$status" -ne 0 ]; then
    tail -n 20 "$work"/part-*.log >&2
    exit 1
fi
if [ "${KEEP_RESULTS:-0}" = 1 ]; then
    stamp=$(date -u +%Y-%m-%d-%H%M)
    for i in $(seq 1 "$processes"); do cp "$work/part-$i.json" "benchmarks/results/idle-node-$stamp-part$i.json"; done
fi
python3 - "$total" "$work"/part-*.json <<'EOF'
import json, sys
total = int(sys.argv[1])
paired = delta = 0
for index, path in enumerate(sys.argv[2:], 1):
    idle = json.load(open(path))["results"]["idle"]
    part_delta = idle["rss_after_kib"] - idle["rss_before_kib"]
    paired += min(idle["paired_sessions"], idle["live_sessions"])
    delta += part_delta
    print(f"  relay-server {index}: {idle['paired_sessions']} sessions paired in {idle['setup_seconds']:.1f} s, "
          f"{idle['live_sessions']} open when measured, "
          f"RSS {idle['rss_before_kib']} -> {idle['rss_after_kib']} KiB, {idle['relay_fds_before']} -> {idle['relay_fds']} fds, "
          f"{idle['kib_per_session']:.1f} KiB per session, errors {idle['errors']}")
per_session = delta / max(paired, 1)
def verdict(limit):
    return "PASS" if paired == total and per_session <= limit else "FAIL"
print(f"node: {paired} of {total} sessions open at once; relay RSS added {delta} KiB; "
      f"{per_session:.1f} KiB per session -> {verdict(32)} against issue 16's <= 32 KiB, {verdict(64)} against the earlier <= 64 KiB")
EOF
