#!/usr/bin/env bash
# The main job: builds SupportRelay, starts relay-server on its embedded SQLite default,
# and streams a desktop through it to a viewer that reconstructs it byte for byte and
# saves it as a PNG: first by support code (attended), then by host id (unattended).
# The host shares the real X display in $DISPLAY when there is one; otherwise a desktop
# with real X applications on a private Xvfb; without Xvfb, a synthetic desktop.
# Then tells you where the snapshots are, how to connect your own host and viewer, and
# how to sign in to the web console (https://localhost:PORT/) as the demo engineer.
# Release binaries (the first build takes about 15 minutes on 2 cores).
#   scripts/demo.sh                  relay on 127.0.0.1:7443, data in ./relay-data
#   RELAY_PORT=17443 scripts/demo.sh another port
#   KEEP_RUNNING=1 scripts/demo.sh   leave the relay, the enrolled host and its desktop
#                                    running afterwards, for the web console
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/prerequisites.sh
ensure_prerequisites

port="${RELAY_PORT:-7443}"
admin_port="$((port + 1))"
data="${RELAY_DATA:-./relay-data}"
relay="127.0.0.1:$port"

echo "==> Building relay-server and relay-agent (release)"
build=(swift build -c release --scratch-path .build-release)
"${build[@]}" --product relay-server
"${build[@]}" --product relay-agent
bin="$("${build[@]}" --show-bin-path)"
server="$bin/relay-server"
agent="$bin/relay-agent"

snapshots="$(pwd)/demo-snapshots"
mkdir -p "$snapshots"
xvfb_pid=""
app_pids=()

# The screen to share: the user's display, else a private Xvfb desktop with real X
# applications, else a generated scene.
if [ -n "${DISPLAY:-}" ] && xdpyinfo >/dev/null 2>&1; then
    source_spec="x11"
    echo "==> Sharing your X display $DISPLAY"
elif command -v Xvfb >/dev/null 2>&1; then
    for number in $(seq 90 120); do
        [ -e "/tmp/.X11-unix/X$number" ] || [ -e "/tmp/.X$number-lock" ] || { display=":$number"; break; }
    done
    # -noreset: Xvfb otherwise resets when its last client leaves, and xsetroot's
    # background, set while no application is open yet, went with it.
    Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp -noreset >/dev/null 2>&1 &
    xvfb_pid=$!
    for _ in $(seq 1 50); do DISPLAY="$display" xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done
    export DISPLAY="$display"
    xsetroot -solid '#2e4a62' 2>/dev/null || true
    if command -v xterm >/dev/null 2>&1; then
        xterm -geometry 100x30+40+40 -fa Monospace -fs 11 -bg '#101820' -fg '#e0e0e0' -T "SupportRelay demo" \
            -e bash -c 'printf "SupportRelay demo desktop (Xvfb %s)\n\n" "$DISPLAY"; uname -a; echo; df -h / | head -3; echo; ls -la /; sleep 600' &
        app_pids+=($!)
    fi
    if command -v xclock >/dev/null 2>&1; then xclock -geometry 180x180+1060+40 -update 1 & app_pids+=($!); fi
    if command -v xeyes >/dev/null 2>&1; then xeyes -geometry 160x110+1070+260 & app_pids+=($!); fi
    sleep 1
    source_spec="x11:$display"
    echo "==> No X display here: sharing a private Xvfb desktop ($display) with xterm, xclock and xeyes"
else
    source_spec="synthetic:moving-window"
    echo "==> No X display and no Xvfb: sharing a synthetic desktop"
fi

log="$(mktemp -t relay-demo.XXXXXX)"
echo "==> Starting relay-server (log: $log)"
"$server" serve --listen "$relay" --admin-listen "127.0.0.1:$admin_port" --data "$data" >"$log" 2>&1 &
server_pid=$!
host_pid=""
cleanup() {
    [ -n "${KEEP_RUNNING:-}" ] && return
    for pid in $host_pid "${app_pids[@]}" $xvfb_pid; do kill "$pid" 2>/dev/null || true; done
    if kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
for _ in $(seq 1 100); do
    grep -q '^  fingerprint:' "$log" && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "error: relay-server did not start:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done
fingerprint="$(grep '^  fingerprint:' "$log" | awk '{print $2}')"
sed -n '/relay-server listening/,/fingerprint:/p' "$log"

json_field() { grep -o "\"$1\":\"[^\"]*\"" | head -1 | cut -d'"' -f4; }

# The agents' keys and the viewer's known_hosts go in the demo's own folder, made new for
# each run, not in your ~/.config/supportrelay (docs/SECURITY.md "Where keys live").
export XDG_CONFIG_HOME="$(cd "$data" && pwd)/demo-config"
rm -rf "$XDG_CONFIG_HOME"
public_key() { awk '/^public key:/ {print $3}'; }

echo "==> Adding a demo company, its engineer and an enrolled host; both log in with keys"
company="$("$server" company add "Demo Company" --data "$data" --json | json_field id)"
# The engineer makes a key on their machine and gives the admin its public half.
engineer_key="$("$agent" keygen | public_key)"
web="https://localhost:$port"
engineer_json="$("$server" engineer add --company "$company" "demo.engineer" --role admin --public-key "$engineer_key" --web-url "$web" --data "$data" --json)"
signin_link="$(echo "$engineer_json" | json_field signin_link)"
echo "[admin]  engineer demo.engineer added: $(echo "$engineer_json" | json_field fingerprint), and a one-time sign-in link for the web console"
# The admin enrolls the PC; on the PC, keygen makes its key; the admin sets it.
host_id="$("$server" host enroll --company "$company" "데모 PC (demo)" --data "$data" --json | json_field id)"
host_key="$("$agent" keygen --host-id "$host_id" | public_key)"
"$server" host set-key "$host_id" --public-key "$host_key" --data "$data" | sed 's/^/[admin]  /'
trust=(--relay "$relay" --fingerprint "$fingerprint")

echo
echo "==> Attended: the engineer asks for a support code, the customer enters it"
viewer_log="$(mktemp -t relay-viewer.XXXXXX)"
"$agent" view "${trust[@]}" --new-code --snapshot "$snapshots/attended.png" --stats --click 400,300 \
    --type "echo Hello from support" --clipboard "ticket #4711" --duration 4 >"$viewer_log" 2>&1 &
viewer_pid=$!
code=""
for _ in $(seq 1 100); do
    code="$(grep -o 'Support code: [0-9]*' "$viewer_log" | awk '{print $3}' || true)"
    [ -n "$code" ] && break
    sleep 0.1
done
[ -n "$code" ] || { echo "error: the viewer got no support code:" >&2; cat "$viewer_log" >&2; exit 1; }
echo "[viewer] $(grep 'Support code' "$viewer_log")"
# --accept full: the demo answers the customer's question itself (a person would be asked).
"$agent" host "${trust[@]}" --code "$code" --accept full --source "$source_spec" --fps 20 --clipboard "customer's clipboard" | sed 's/^/[host]   /'
wait "$viewer_pid" || true
sed 's/^/[viewer] /' "$viewer_log" | grep -v 'Support code'

echo
echo "==> Unattended: the enrolled host stays registered, the engineer connects by host id"
host_log="$(mktemp -t relay-host.XXXXXX)"
# It shares the same desktop and stays registered after the session, for the web console.
# An enrolled host lets in only the engineers whose keys its administrator lists
# (--engineer-keys FILE), or with --any-engineer the company's engineers the relay vouches
# for: the demo's choice, so that the browser viewer (a key of its own) can connect too
# (docs/SECURITY.md §4.5, §6.4).
"$agent" host "${trust[@]}" --host-id "$host_id" --any-engineer --source "$source_spec" --fps 30 >"$host_log" 2>&1 &
host_pid=$!
for _ in $(seq 1 100); do
    grep -q 'Registered' "$host_log" && break
    if ! kill -0 "$host_pid" 2>/dev/null; then
        echo "error: the enrolled host did not start:" >&2
        cat "$host_log" >&2
        exit 1
    fi
    sleep 0.1
done
"$agent" view "${trust[@]}" --host "$host_id" --snapshot "$snapshots/unattended.png" --stats --duration 3 | sed 's/^/[viewer] /'
sleep 0.5
sed 's/^/[host]   /' "$host_log"

curl_metrics() { command -v curl >/dev/null && curl -sk "https://127.0.0.1:$admin_port/metrics" | grep -E '^relay_(sessions_total|bytes_relayed_total)' || true; }
echo
echo "==> Relay metrics"
curl_metrics

cat <<EOT

Done: two sessions went through the relay at $relay, recorded in $data.
The viewer's reconstructed screens (equal, byte for byte, to what the hosts captured):
  $snapshots/attended.png     ($source_spec)
  $snapshots/unattended.png   ($source_spec)

The web console: $web/  (a self-signed development certificate: accept the browser's
warning once, or give the relay a real one, docs/OPERATIONS.md "The web port")
Sign in as demo.engineer with this one-time link (24 h): choose a password, scan the QR
code with an authenticator app, and Connect to "데모 PC (demo)". demo.engineer is also
the company's admin: the admin console at $web/admin shows the two sessions above in
its usage history (chart, CSV/XLSX export), the hosts, people, audit log and API tokens.
  $signin_link
$(if [ -z "${KEEP_RUNNING:-}" ]; then echo "(the relay stops now: run KEEP_RUNNING=1 scripts/demo.sh to try the console)"; fi)

Connect your own host and viewer (another machine: use this machine's DNS name):
  XDG_CONFIG_HOME=$XDG_CONFIG_HOME relay-agent view --relay $relay --fingerprint $fingerprint --new-code
  relay-agent host --relay $relay --fingerprint $fingerprint --code NNNNNN [--source x11:DISPLAY]
or the enrolled demo host:
  XDG_CONFIG_HOME=$XDG_CONFIG_HOME relay-agent view --relay $relay --fingerprint $fingerprint --host $host_id
(the demo engineer's and host's keys are in $XDG_CONFIG_HOME/supportrelay, mode 0600; no
secret is ever sent to the relay: TLS proves each key)
The binaries are in $bin. Run the relay yourself with: $server serve --data $data
Add --snapshot FILE.png --stats to the viewer to save the screen and watch the figures;
"relay-agent host --source help" lists what a host can share.
EOT
if [ -n "${KEEP_RUNNING:-}" ]; then
    echo "The relay (pid $server_pid) and the enrolled host (pid $host_pid) keep running; stop them with: kill $server_pid $host_pid ${app_pids[*]} $xvfb_pid"
fi
