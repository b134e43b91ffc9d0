# Shared by scripts/test.sh and benchmarks/frames/record.sh: a private X server for the
# X11 capture and input tests when no display is set.
# shellcheck shell=bash
source "$(dirname "${BASH_SOURCE[0]}")/exit-hooks.sh"

XVFB_PID=""

# start_xvfb [WIDTHxHEIGHTxDEPTH]
# Starts Xvfb on a free display number (Xvfb picks it: -displayfd), waits until it accepts
# connections, exports DISPLAY, and stops it when the calling script exits.
start_xvfb() {
    local screen="${1:-1920x1080x24}"
    if ! command -v Xvfb >/dev/null 2>&1; then
        echo "warning: Xvfb is not installed (Debian: apt-get install xvfb x11-utils); the X11 tests will be skipped" >&2
        return 0
    fi
    local number_file
    number_file="$(mktemp)"
    # -noreset: Xvfb otherwise resets whenever its last client disconnects, and a test
    # connecting during the reset is refused. -nolisten tcp: local clients only.
    Xvfb -displayfd 3 -screen 0 "$screen" -nolisten tcp -noreset 3>"$number_file" >/dev/null 2>&1 &
    XVFB_PID=$!
    on_exit stop_xvfb
    local waited=0
    while [ ! -s "$number_file" ]; do
        if ! kill -0 "$XVFB_PID" 2>/dev/null || [ "$waited" -ge 100 ]; then
            echo "error: Xvfb did not start; run 'Xvfb -displayfd 1 -screen 0 $screen' by hand to see why" >&2
            rm -f "$number_file"
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    export DISPLAY=":$(head -n1 "$number_file" | tr -d '[:space:]')"
    rm -f "$number_file"
    waited=0
    until xdpyinfo >/dev/null 2>&1; do
        if [ "$waited" -ge 100 ]; then
            echo "error: Xvfb on $DISPLAY does not accept connections after 10 s" >&2
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "==> Xvfb on $DISPLAY ($screen)"
}

stop_xvfb() {
    if [ -n "$XVFB_PID" ]; then
        kill "$XVFB_PID" 2>/dev/null || true
        wait "$XVFB_PID" 2>/dev/null || true
        XVFB_PID=""
    fi
}
