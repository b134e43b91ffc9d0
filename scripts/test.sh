#!/usr/bin/env bash
# The whole test suite: unit, property and end-to-end tests over real TLS on loopback,
# then the browser tests in Chromium and a short libFuzzer run of the RelayWire decoder seeded with docs/PROTOCOL.md's vectors.
#   scripts/test.sh                 everything
#   FUZZ_SECONDS=0 scripts/test.sh  skip the fuzz run
# With DISPLAY unset, an Xvfb is started for the X11 tests and stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/prerequisites.sh
source scripts/lib/xvfb.sh
source scripts/lib/postgres.sh
ensure_prerequisites
ensure_browser_tools

# The X11 capture and input tests need an X display; without one, run them on a private Xvfb.
if [ -z "${DISPLAY:-}" ]; then
    start_xvfb 1920x1080x24
fi

# The PostgreSQL store's tests (every store test runs on SQLite and on PostgreSQL).
start_postgres

# The repository's formatting (.swift-format, STYLE.md): CI fails on a file swift-format would change.
echo "==> Checking the formatting (swift format lint --strict)"
swift format lint --strict --recursive --parallel Sources Tests benchmarks/Sources fuzz/Sources Package.swift

# Warnings are errors in every target of this package (Package.swift, treatAllWarnings).
echo "==> Building (debug, with tests)"
swift build --build-tests
# PROTOCOL.md §10.4 recomputed by another implementation than ours (pyca/cryptography).
echo "==> Checking the end-to-end vectors independently (scripts/e2e-vector.py)"
python3 scripts/e2e-vector.py docs/PROTOCOL.md
echo "==> Running tests"
# One test at a time: on 2 cores, tests that wait on processes, Xvfb or SQLite block Swift's
# 2-thread cooperative pool, and in a parallel run that stalls every other test's TLS
# logins and keepalives past their deadlines.
swift test --skip-build --no-parallel
# The web app in Debian's Chromium (Playwright): its modules against PROTOCOL.md's vectors,
# and sign-in, console and viewer against a real relay-server of this build.
echo "==> Running the browser tests (Tests/browser, Chromium)"
"$BROWSER_PYTHON" -m pytest -q -p no:cacheprovider Tests/browser
# PROTOCOL.md §2.3 under load, alone: Pings every 50 ms each way while 1 MiB frames stream
# both ways through the relay for two minutes, every byte checked.
echo "==> Running the frame-boundary soak (${RELAY_INTERLEAVE_SECONDS:-120} s)"
RELAY_INTERLEAVE_SECONDS="${RELAY_INTERLEAVE_SECONDS:-120}" swift test --skip-build --filter pingsAndLargeFramesInterleaveForMinutesWithEveryByteInPlace

fuzz_seconds="${FUZZ_SECONDS:-30}"
if [ "$fuzz_seconds" -gt 0 ]; then
    echo "==> Fuzzing the frame decoder for ${fuzz_seconds} s"
    scripts/fuzz.sh "$fuzz_seconds"
fi
