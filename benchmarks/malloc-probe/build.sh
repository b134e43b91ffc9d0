#!/usr/bin/env bash
# Builds libmalloc-probe.so into benchmarks/malloc-probe/.build/ (ignored by the root
# .gitignore's ".build*") and prints its path.
set -euo pipefail
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$here/.build"
cc=$(command -v cc || command -v clang || command -v gcc) || { echo "build.sh: no C compiler (cc, clang or gcc)" >&2; exit 2; }
"$cc" -O2 -fPIC -shared -pthread -o "$here/.build/libmalloc-probe.so" "$here/malloc_probe.c"
echo "$here/.build/libmalloc-probe.so"
