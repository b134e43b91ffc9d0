#!/bin/bash
# A/B: the relay before and after the cross-loop copy, alternating, 3 rounds.
out=$(cd "$(dirname "$0")" && pwd)
cd "$out/../../.."
for round in 1 2 3; do
  for v in before mallopt; do
    benchmarks/.build/release/relay-bench relay --relay-binary /tmp/relay-$v --sessions 1,50 --seconds 10 --latency-samples 1000 --idle 0 \
      > $out/ab2-$v-$round.txt 2> $out/ab2-$v-$round.log
  done
done
echo done > /tmp/ab2.status
