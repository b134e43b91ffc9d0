#!/usr/bin/env bash
# Records real desktop frames for `relay-bench codec --frames DIR`: Xvfb at 1920x1080x24,
# real applications driven by xdotool, and the host's own X11 capture (X11ScreenSource,
# through the FrameRecording test in RelayScreenTests), so every frame is exactly the
# BGRX screen a host would send. Frames are written as benchmarks/frames/<scenario>/NNNN.png.
#
#   benchmarks/frames/record.sh                      all scenarios, 25 frames each
#   FRAMES=60 benchmarks/frames/record.sh browser-scroll
#   SCRATCH_PATH=.build-x benchmarks/frames/record.sh   build in another folder
#
# Scenarios:
#   terminal-scroll   xterm running less on this repository's sources, one line per Down key
#   browser-scroll    dillo showing docs/PROTOCOL.md as a web page, three mouse-wheel clicks per frame
#   window-drag       an xterm dragged across a desktop with a browser window, 24x12 px per frame
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/prerequisites.sh
source scripts/lib/xvfb.sh
ensure_prerequisites

frames="${FRAMES:-25}"
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(terminal-scroll browser-scroll window-drag)
out="benchmarks/frames"
scratch=()
[ -z "${SCRATCH_PATH:-}" ] || scratch=(--scratch-path "$SCRATCH_PATH")

# The applications: a terminal, a light browser, xsetroot for the desktop colour.
missing=()
for tool in xterm:xterm dillo:dillo xsetroot:x11-xserver-utils; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> Installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "==> Building the tests (the frame recorder is one)"
swift build --build-tests "${scratch[@]}"

unset DISPLAY
start_xvfb 1920x1080x24

# A fixed folder, so the browser's address bar reads the same in every recording.
work="${TMPDIR:-/tmp}/supportrelay-frames"
rm -rf "$work"
mkdir -p "$work"
app_pids=()
cleanup() {
    for pid in "${app_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
    stop_xvfb
}
trap cleanup EXIT

# Content: the repository's own sources as a long text, and its protocol document as a
# web page (headings, paragraphs, tables, code blocks).
find Sources -name '*.swift' | sort | xargs cat > "$work/sources.txt"
awk '
    function escape(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); return s }
    BEGIN {
        print "<html><head><title>SupportRelay protocol</title><style>"
        print "body { font-family: DejaVu Sans, sans-serif; margin: 24px 64px; background: #ffffff; color: #222222 }"
        print "h1, h2, h3 { color: #1f4e79 } pre { background: #f3f3f3; padding: 8px; border: 1px solid #dddddd }"
        print "table { border-collapse: collapse } td { border: 1px solid #bbbbbb; padding: 2px 8px }"
        print "</style></head><body>"
    }
    /^```/ { if (code) { print "</pre>"; code = 0 } else { print "<pre>"; code = 1 }; next }
    code { print escape($0); next }
    /^\|/ {
        if (!table) { print "<table>"; table = 1 }
        if ($0 ~ /^\|[-| :]+\|$/) next
        line = escape($0); gsub(/^\| *| *\|$/, "", line); gsub(/ *\| */, "</td><td>", line)
        print "<tr><td>" line "</td></tr>"; next
    }
    table { print "</table>"; table = 0 }
    /^### / { print "<h3>" escape(substr($0, 5)) "</h3>"; next }
    /^## / { print "<h2>" escape(substr($0, 4)) "</h2>"; next }
    /^# / { print "<h1>" escape(substr($0, 3)) "</h1>"; next }
    /^[-*] / { print "<ul><li>" escape(substr($0, 3)) "</li></ul>"; next }
    /^$/ { print "<p>"; next }
    { print escape($0) }
    END { print "</body></html>" }
' docs/PROTOCOL.md > "$work/protocol.html"

# wait_for_window NAME: the id of the first visible window whose name matches.
wait_for_window() {
    xdotool search --sync --onlyvisible --name "$1" | head -n1
}

record() {
    local scenario="$1" step="$2" settle="$3"
    rm -rf "${out:?}/$scenario"
    echo "==> Recording $scenario ($frames frames)"
    RELAY_RECORD_DIR="$PWD/$out/$scenario" RELAY_RECORD_FRAMES="$frames" RELAY_RECORD_STEP="$step" \
        RELAY_RECORD_SETTLE_MS="$settle" swift test --skip-build "${scratch[@]}" --filter FrameRecording
}

stop_apps() {
    for pid in "${app_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    app_pids=()
    sleep 0.5
}

terminal=(xterm -fa "DejaVu Sans Mono" -fs 11 -bg "#1e1e1e" -fg "#d4d4d4" -cr "#d4d4d4")

for scenario in "${scenarios[@]}"; do
    case "$scenario" in
    terminal-scroll)
        xsetroot -solid "#1e1e1e"
        "${terminal[@]}" -T terminal-scroll -geometry 211x62+0+0 -e less -N "$work/sources.txt" &
        app_pids+=($!)
        window="$(wait_for_window terminal-scroll)"
        # xterm ignores synthetic (XSendEvent) keys: focus it and type through XTest.
        xdotool windowfocus --sync "$window"
        sleep 1
        record "$scenario" "xdotool key Down" 120
        ;;
    browser-scroll)
        xsetroot -solid "#2e5a87"
        dillo -g 1920x1080+0+0 "file://$work/protocol.html" >/dev/null 2>&1 &
        app_pids+=($!)
        window="$(wait_for_window 'SupportRelay protocol')"
        xdotool mousemove --window "$window" 960 600
        sleep 2
        record "$scenario" "xdotool click --repeat 3 --delay 15 5" 250
        ;;
    window-drag)
        xsetroot -solid "#2e5a87"
        dillo -g 1200x900+660+60 "file://$work/protocol.html" >/dev/null 2>&1 &
        app_pids+=($!)
        wait_for_window 'SupportRelay protocol' >/dev/null
        "${terminal[@]}" -T window-drag -geometry 100x30+40+40 -e less -N "$work/sources.txt" &
        app_pids+=($!)
        window="$(wait_for_window window-drag)"
        sleep 2
        # Each step moves the terminal 24 px right and 12 px down from where it is.
        record "$scenario" "eval \$(xdotool getwindowgeometry --shell $window); xdotool windowmove $window \$((X + 24)) \$((Y + 12))" 150
        ;;
    *)
        echo "error: unknown scenario '$scenario'; the scenarios are terminal-scroll, browser-scroll, window-drag" >&2
        exit 1
        ;;
    esac
    stop_apps
done

du -sh "$out"/*/ 2>/dev/null || true
