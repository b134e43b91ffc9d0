#!/bin/bash
# Where an idle session's memory goes (issue 16 item 5). Run from anywhere; writes here.
#   1. 2,000 idle sessions on the release relay-server, as measured in RESULTS.md;
#   2. the same with glibc's mmap threshold at 16 KiB (each buffer of 16 KiB or more is
#      its own mapping, so its untouched pages are not resident);
#   3. the same with jemalloc, mimalloc and tcmalloc preloaded (Debian: libjemalloc2,
#      libmimalloc2.0, libtcmalloc-minimal4);
#   4. 1,000 idle sessions under heaptrack (Debian: heaptrack), then every live
#      allocation at the peak sorted into what made it (breakdown.py).
set -eu
out=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$out/../../.." && pwd)
cd "$repo"
bench=benchmarks/.build/release/relay-bench
relay=${BIN:-$repo/.build-release/release/relay-server}
wrapper=$out/.relay-wrapper
cat > "$wrapper" <<WRAP
#!/bin/bash
# relay-server serve under \$RELAY_PRELOAD (and heaptrack's output file); every other command as it is
if [ "\$1" = "serve" ] && [ -n "\${RELAY_PRELOAD:-}" ]; then
  LD_PRELOAD=\$RELAY_PRELOAD exec "$relay" "\$@"
fi
exec "$relay" "\$@"
WRAP
chmod +x "$wrapper"
idle() { "$bench" relay --skip-throughput --idle "$1" --relay-binary "$wrapper" > "$out/$2.txt" 2> "$out/$2.log"; grep -A2 '^idle:' "$out/$2.txt"; }
idle 2000 idle-glibc
GLIBC_TUNABLES=glibc.malloc.mmap_threshold=16384 idle 2000 idle-glibc-mmap16k
for lib in jemalloc:libjemalloc.so.2 mimalloc:libmimalloc.so.2 tcmalloc:libtcmalloc_minimal.so.4; do
  RELAY_PRELOAD=/usr/lib/x86_64-linux-gnu/${lib#*:} idle 2000 "idle-${lib%%:*}"
done
# heaptrack's files are large (a few hundred MB raw, 45 MB of stacks): kept in a temporary directory.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
RELAY_PRELOAD=/usr/lib/heaptrack/libheaptrack_preload.so DUMP_HEAPTRACK_OUTPUT=$work/raw idle 1000 idle-heaptrack
rm -f "$wrapper"
/usr/lib/heaptrack/libexec/heaptrack_interpret < "$work/raw" > "$work/data"
heaptrack_print -f "$work/data" --print-peaks 0 --print-allocators 0 --print-temporary 0 --print-leaks 0 \
    -F "$work/peak-stacks.txt" --flamegraph-cost-type peak > /dev/null
python3 "$out/breakdown.py" "$work/peak-stacks.txt" 2000 | tee "$out/breakdown.txt"
