#!/usr/bin/env bash
# The main job: builds SupportRelay, starts relay-server on its embedded SQLite default,
# and pairs a demo host and viewer through it — once by support code, once by host id —
# with typed input and clipboard text crossing the relay. Then tells you how to connect
# your own.
#   scripts/demo.sh                  relay on 127.0.0.1:7443, data in ./relay-data
#   RELAY_PORT=17443 scripts/demo.sh another port
#   KEEP_RUNNING=1 scripts/demo.sh   leave the relay running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/prerequisites.sh
ensure_prerequisites

port="${RELAY_PORT:-7443}"
admin_port="$((port + 1))"
data="${RELAY_DATA:-./relay-data}"
relay="127.0.0.1:$port"

echo "==> Building relay-server and relay-agent"
swift build --product relay-server
swift build --product relay-agent
bin="$(swift build --show-bin-path)"
server="$bin/relay-server"
agent="$bin/relay-agent"

log="$(mktemp -t relay-demo.XXXXXX)"
echo "==> Starting relay-server (log: $log)"
"$server" serve --listen "$relay" --admin-listen "127.0.0.1:$admin_port" --data "$data" >"$log" 2>&1 &
server_pid=$!
cleanup() {
    if [ -z "${KEEP_RUNNING:-}" ] && kill -0 "$server_pid" 2>/dev/null; then
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

echo "==> Adding a demo company, engineer and enrolled host (tokens are shown once)"
company="$("$server" company add "Demo Company" --data "$data" --json | json_field id)"
token="$("$server" engineer add --company "$company" "demo.engineer" --data "$data" --json | json_field token)"
enrolled="$("$server" host enroll --company "$company" "데모 PC (demo)" --data "$data" --json)"
host_id="$(echo "$enrolled" | json_field id)"
host_secret="$(echo "$enrolled" | json_field secret)"
trust=(--relay "$relay" --fingerprint "$fingerprint")

echo
echo "==> Attended: the engineer asks for a support code, the customer enters it"
viewer_log="$(mktemp -t relay-viewer.XXXXXX)"
"$agent" view "${trust[@]}" --token "$token" --new-code \
    --type "Hello from support, 안녕하세요" --clipboard "ticket #4711" --duration 2 >"$viewer_log" 2>&1 &
viewer_pid=$!
code=""
for _ in $(seq 1 100); do
    code="$(grep -o 'Support code: [0-9]*' "$viewer_log" | awk '{print $3}' || true)"
    [ -n "$code" ] && break
    sleep 0.1
done
[ -n "$code" ] || { echo "error: the viewer got no support code:" >&2; cat "$viewer_log" >&2; exit 1; }
echo "[viewer] $(grep 'Support code' "$viewer_log")"
"$agent" host "${trust[@]}" --code "$code" | sed 's/^/[host]   /'
wait "$viewer_pid" || true
sed 's/^/[viewer] /' "$viewer_log" | grep -v 'Support code'

echo
echo "==> Unattended: the enrolled host stays registered, the engineer connects by host id"
host_log="$(mktemp -t relay-host.XXXXXX)"
"$agent" host "${trust[@]}" --host-id "$host_id" --secret "$host_secret" --once >"$host_log" 2>&1 &
host_pid=$!
for _ in $(seq 1 100); do grep -q 'Registered' "$host_log" && break; sleep 0.1; done
"$agent" view "${trust[@]}" --token "$token" --host "$host_id" --type "ipconfig" --duration 1 | sed 's/^/[viewer] /'
wait "$host_pid" || true
sed 's/^/[host]   /' "$host_log"

curl_metrics() { command -v curl >/dev/null && curl -sk "https://127.0.0.1:$admin_port/metrics" | grep -E '^relay_(sessions_total|bytes_relayed_total)' || true; }
echo
echo "==> Relay metrics"
curl_metrics

cat <<EOT

Done: two sessions went through the relay at $relay, recorded in $data.

Connect your own host and viewer (another machine: use this machine's DNS name):
  relay-agent view --relay $relay --fingerprint $fingerprint --token $token --new-code
  relay-agent host --relay $relay --fingerprint $fingerprint --code NNNNNN
or the enrolled demo host:
  relay-agent host --relay $relay --fingerprint $fingerprint --host-id $host_id --secret $host_secret
  relay-agent view --relay $relay --fingerprint $fingerprint --token $token --host $host_id
The binaries are in $bin. Run the relay yourself with: $server serve --data $data
Screen sharing arrives with the screen-streaming release (input and clipboard work today).
EOT
if [ -n "${KEEP_RUNNING:-}" ]; then echo "The relay keeps running (pid $server_pid)."; fi
