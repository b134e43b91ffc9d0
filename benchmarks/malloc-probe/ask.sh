#!/usr/bin/env bash
# Asks a process running with malloc-probe (malloc_probe.c) for its heap figures: writes
# DIR/request, waits up to 30 s for DIR/reply, prints it. Usage: ask.sh DIR
set -euo pipefail
dir=${1:?usage: ask.sh MALLOC_PROBE_DIR}
rm -f "$dir/reply"
: >"$dir/request"
for _ in $(seq 300); do
    if [[ -f $dir/reply ]]; then cat "$dir/reply"; exit 0; fi
    sleep 0.1
done
echo "ask.sh: no reply in $dir within 30 s (is the process running with LD_PRELOAD=libmalloc-probe.so and MALLOC_PROBE_DIR=$dir?)" >&2
exit 1
