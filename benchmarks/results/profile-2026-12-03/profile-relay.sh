#!/bin/bash
# Profiles relay-server while relay-bench relay forwards one session flat out.
# BIN=PATH profiles another relay-server binary (default: the release build).
set -u
out=$(cd "$(dirname "$0")" && pwd)
cd "$out/../../.."
log=$out/bench-$1.log
benchmarks/.build/release/relay-bench relay --relay-binary "${BIN:-.build-release/release/relay-server}" \
    --sessions 1 --seconds 12 --latency-samples 0 --idle 0 --traffic tile > $out/bench-$1.txt 2> $log &
bench=$!
pid=""
for i in $(seq 1 600); do
  pid=$(grep -o "relay-server pid [0-9]*" $log 2>/dev/null | awk '{print $3}')
  if [ -n "$pid" ] && grep -q "throughput: relay" $log; then break; fi
  sleep 0.1
done
sleep 3
perf record -e cpu-clock -F 999 -g -p $pid -o $out/perf-$1.data -- sleep 6 2> $out/perf-record-$1.txt
wait $bench
echo "pid $pid"
