#!/usr/bin/env bash
# Three relay nodes on one machine, one PostgreSQL, haproxy in front: the product across
# nodes. Builds SupportRelay (release, as scripts/demo.sh), starts a throwaway PostgreSQL,
# makes the accounts once in it, starts three `relay-server serve` nodes on loopback that
# share the database, the certificate and the cluster secret, and haproxy as the
# plain-TCP load balancer (round robin, each node's /healthz checked over HTTPS). Then:
#   1. an enrolled host registers through haproxy, and a viewer on another node reaches it
#      by host id (cross-node session, PNG snapshot);
#   2. attended: a viewer on node-a asks for a support code, a host presents it on node-c;
#   3. kill -9 of the host's node: the host comes back through haproxy on a live node
#      within its back-off, the viewer reaches it again by id, and a survivor closes the
#      dead node's open usage record as relay_restart (`relay-server usage export`);
#      then the killed node is started again and rejoins.
# The host shares a private Xvfb desktop with real X applications (xterm, xclock, xeyes),
# or, without Xvfb, a synthetic desktop; never your own display.
# Everything (processes, PostgreSQL, the temporary folder) is stopped and removed on exit;
# the snapshots stay in ./demo-snapshots/cluster.
#   scripts/cluster-demo.sh                  haproxy on 127.0.0.1:7450, nodes on 7451-7459
#   RELAY_PORT=17450 scripts/cluster-demo.sh another range (RELAY_PORT … RELAY_PORT+9)
#   KEEP_RUNNING=1 scripts/cluster-demo.sh   leave the nodes, haproxy, PostgreSQL, the host
#                                            and its desktop running, and say how to connect
# Needs no terminal: runs the same with CI=true and no standard input.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/prerequisites.sh
source scripts/lib/exit-hooks.sh
source scripts/lib/postgres.sh
source scripts/lib/xvfb.sh
ensure_prerequisites
started_at=$SECONDS

base_port="${RELAY_PORT:-7450}"
lb_port="$base_port"
nodes=(node-a node-b node-c)
declare -A relay_port admin_port cluster_port node_pid node_log
for index in 0 1 2; do
    name="${nodes[$index]}"
    relay_port[$name]=$((base_port + 1 + 3 * index))
    admin_port[$name]=$((base_port + 2 + 3 * index))
    cluster_port[$name]=$((base_port + 3 + 3 * index))
done
# The lease is the default (15 s): a survivor takes a node for dead, and closes its open
# records, once it has not renewed it for that long. Counters are saved every 2 s (the
# default is 30 s), so that the record the survivor closes holds the bytes relayed so far.
lease_seconds=15
checkpoint_seconds=2

# Every port must be free before anything starts.
for port in "$lb_port" "${relay_port[@]}" "${admin_port[@]}" "${cluster_port[@]}"; do
    if ! python3 -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
        echo "error: port $port on 127.0.0.1 is in use (the demo needs $base_port to $((base_port + 9))): stop what uses it, or choose another range with RELAY_PORT=NNNN" >&2
        exit 1
    fi
done

echo "==> Building relay-server and relay-agent (release)"
build=(swift build -c release --scratch-path .build-release)
"${build[@]}" --product relay-server
"${build[@]}" --product relay-agent
bin="$("${build[@]}" --show-bin-path)"
server="$bin/relay-server"
agent="$bin/relay-agent"

snapshots="$(pwd)/demo-snapshots/cluster"
mkdir -p "$snapshots"
rm -f "$snapshots"/*.png

# Everything the run makes, but the snapshots: configs, keys, logs, the nodes' data folders.
work="$(mktemp -d -t relay-cluster.XXXXXX)"
# The agents' keys and the viewer's known_hosts too, not your ~/.config/supportrelay.
export XDG_CONFIG_HOME="$work/agent-config"
haproxy_pid=""
host_pid=""
app_pids=()
agent_pids=()

# Exit hooks run in the order registered: first the agents, the nodes and haproxy (while
# PostgreSQL still runs, so that the nodes end their leases), the temporary folder, then
# PostgreSQL and Xvfb. KEEP_RUNNING after a successful run clears them all.
# stop_processes PID…: SIGTERM, up to 20 s to finish (a node ends its sessions with a Bye and
# its lease), then SIGKILL for what is still running.
stop_processes() {
    local pid deadline=$((SECONDS + 20))
    kill -TERM "$@" 2>/dev/null || true
    for pid in "$@"; do
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "warning: process $pid did not stop within 20 s of SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}
stop_everything() {
    local pids=($host_pid "${agent_pids[@]}" "${node_pid[@]}" $haproxy_pid "${app_pids[@]}")
    [ ${#pids[@]} -eq 0 ] || stop_processes "${pids[@]}"
}
remove_work() { rm -rf "$work"; }
on_exit stop_everything
on_exit remove_work

# fail MESSAGE: says what failed, shows the end of every log, and exits (the hooks clean up).
fail() {
    echo "error: $1" >&2
    local file
    for file in "$work"/logs/*.log; do
        [ -s "$file" ] || continue
        echo "---- last lines of $(basename "$file")" >&2
        tail -n 25 "$file" >&2
    done
    exit 1
}

# waiting SECONDS COMMAND…: true once COMMAND succeeds, false after SECONDS.
waiting() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}
json_field() { grep -o "\"$1\":\"[^\"]*\"" | head -1 | cut -d'"' -f4; }
public_key() { awk '/^public key:/ {print $3}'; }
prefix() { sed "s/^/$(printf '%-9s' "[$1]")/"; }
elapsed() { echo "$((SECONDS - started_at)) s"; }

start_postgres
store="$RELAY_TEST_POSTGRES"
psql=("$POSTGRES_BIN/psql" "$store" -X -A -t -q)
mkdir -p "$work/logs"

# The screen to share: a private Xvfb desktop with real X applications, else a generated
# scene. (Never $DISPLAY: the demo's enrolled host lets any engineer of the company in.)
if command -v Xvfb >/dev/null 2>&1; then
    start_xvfb 1280x800x24
    xsetroot -solid '#2e4a62' 2>/dev/null || true
    if command -v xterm >/dev/null 2>&1; then
        xterm -geometry 100x30+40+40 -fa Monospace -fs 11 -bg '#101820' -fg '#e0e0e0' -T "SupportRelay cluster demo" \
            -e bash -c 'printf "SupportRelay cluster demo desktop (Xvfb %s)\n\n" "$DISPLAY"; uname -a; echo; df -h / | head -3; echo; ls -la /; sleep infinity' \
            >>"$work/logs/x11-apps.log" 2>&1 &
        app_pids+=($!)
    fi
    if command -v xclock >/dev/null 2>&1; then xclock -geometry 180x180+1060+40 -update 1 >>"$work/logs/x11-apps.log" 2>&1 & app_pids+=($!); fi
    if command -v xeyes >/dev/null 2>&1; then xeyes -geometry 160x110+1070+260 >>"$work/logs/x11-apps.log" 2>&1 & app_pids+=($!); fi
    sleep 1
    source_spec="x11:$DISPLAY"
    echo "==> Sharing a private Xvfb desktop ($DISPLAY) with xterm, xclock and xeyes"
else
    source_spec="synthetic:moving-window"
    echo "==> No Xvfb: sharing a synthetic desktop"
fi

echo "==> The cluster's certificate (one for the public name, every node serves it) and secret"
# One certificate and key for the name agents use (localhost here), on every node: agents
# pin its fingerprint, whichever node haproxy sends them to.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=SupportRelay cluster demo" -addext "subjectAltName=DNS:localhost" \
    -keyout "$work/relay.key" -out "$work/relay.crt" 2>/dev/null
chmod 600 "$work/relay.key"
# The cluster secret: at least 32 random bytes, mode 0600, the same file for every node.
(umask 077 && openssl rand -base64 48 >"$work/cluster.secret")
echo "  certificate $work/relay.crt, cluster secret $work/cluster.secret (mode $(stat -c %a "$work/cluster.secret"))"

echo "==> Accounts, made once in the shared database"
admin=(--store "$store" --data "$work/admin")
company="$("$server" company add "Demo Company" "${admin[@]}" --json | json_field id)"
engineer_key="$("$agent" keygen | public_key)"
web="https://localhost:$lb_port"
engineer_json="$("$server" engineer add --company "$company" "demo.engineer" --role admin --public-key "$engineer_key" --web-url "$web" "${admin[@]}" --json)"
signin_link="$(echo "$engineer_json" | json_field signin_link)"
echo "[admin]  company $company \"Demo Company\"; engineer demo.engineer ($(echo "$engineer_json" | json_field fingerprint))"
host_id="$("$server" host enroll --company "$company" "데모 PC (cluster)" "${admin[@]}" --json | json_field id)"
host_key="$("$agent" keygen --host-id "$host_id" | public_key)"
"$server" host set-key "$host_id" --public-key "$host_key" "${admin[@]}" | prefix admin

start_node() {
    local name="$1"
    node_log[$name]="$work/logs/$name.log"
    "$server" serve --config "$work/$name/relay.json" </dev/null >>"${node_log[$name]}" 2>&1 &
    node_pid[$name]=$!
}
node_ready() { grep -q '^  fingerprint:' "${node_log[$1]}"; }

echo "==> Three relay nodes on one PostgreSQL"
for name in "${nodes[@]}"; do
    mkdir -m 700 "$work/$name"
    (umask 077 && cat >"$work/$name/relay.json" <<EOT
{"listen": "127.0.0.1:${relay_port[$name]}", "admin_listen": "127.0.0.1:${admin_port[$name]}", "node_name": "$name",
 "data_directory": "$work/$name", "store": "$store",
 "certificate": "$work/relay.crt", "key": "$work/relay.key",
 "cluster_listen": "127.0.0.1:${cluster_port[$name]}", "cluster_secret_file": "$work/cluster.secret",
 "node_lease_seconds": $lease_seconds, "usage_checkpoint_seconds": $checkpoint_seconds}
EOT
    )
    start_node "$name"
done
for name in "${nodes[@]}"; do
    waiting 30 node_ready "$name" || {
        kill -0 "${node_pid[$name]}" 2>/dev/null || fail "$name did not start (its log is below)"
        fail "$name did not print its banner within 30 s"
    }
    echo "  $name (pid ${node_pid[$name]}): agents 127.0.0.1:${relay_port[$name]}, admin https://127.0.0.1:${admin_port[$name]}, cluster 127.0.0.1:${cluster_port[$name]}, data $work/$name"
done
fingerprint="$(grep '^  fingerprint:' "${node_log[node-a]}" | awk '{print $2}')"
for name in "${nodes[@]}"; do
    [ "$(grep '^  fingerprint:' "${node_log[$name]}" | awk '{print $2}')" = "$fingerprint" ] || fail "$name serves another certificate than node-a"
done
echo "  every node serves the certificate $fingerprint"
echo "  live nodes in the database (relay_node): $("${psql[@]}" -c "SELECT string_agg(name, ', ' ORDER BY name) FROM relay_node WHERE leaseUntil > now()")"

echo "==> haproxy on 127.0.0.1:$lb_port: plain TCP, round robin, /healthz of each node checked over HTTPS"
# Round robin in the order listed: the enrolled host registers first with node-c, and again
# after its first session with node-b, the node step 3 kills; the viewers stay on node-a.
# (The demo reads where the host is from the database, so another order works too.)
cat >"$work/haproxy.cfg" <<EOT
global
    log stdout format raw local0 info
    stats socket $work/haproxy.sock mode 600 level admin
    nbthread 1

defaults
    mode tcp
    log global
    option tcplog
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout check 2s
    # A node that refuses the connection: try again, the last time on another node.
    retries 2
    option redispatch

frontend relay
    bind 127.0.0.1:$lb_port
    default_backend relay_nodes

backend relay_nodes
    balance roundrobin
    option httpchk GET /healthz
    default-server inter 1s fall 2 rise 2
    server node-c 127.0.0.1:${relay_port[node-c]} check check-ssl verify none port ${admin_port[node-c]}
    server node-b 127.0.0.1:${relay_port[node-b]} check check-ssl verify none port ${admin_port[node-b]}
    server node-a 127.0.0.1:${relay_port[node-a]} check check-ssl verify none port ${admin_port[node-a]}
EOT
haproxy -c -q -f "$work/haproxy.cfg" || fail "haproxy does not accept its configuration ($work/haproxy.cfg)"
haproxy -db -f "$work/haproxy.cfg" </dev/null >"$work/logs/haproxy.log" 2>&1 &
haproxy_pid=$!

# haproxy's view of the nodes, from its stats socket: "node-a UP, node-b DOWN, …".
haproxy_states() {
    python3 - "$work/haproxy.sock" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
rows = [line.split(",") for line in data.decode().splitlines() if line and not line.startswith("#")]
print(", ".join(f"{row[1]} {row[17]}" for row in sorted(rows) if row[0] == "relay_nodes" and row[1] != "BACKEND"))
EOF
}
all_up() { [ "$(haproxy_states)" = "node-a UP, node-b UP, node-c UP" ]; }
waiting 20 all_up || fail "haproxy does not see the three nodes healthy: $(haproxy_states)"
echo "[haproxy] $(haproxy_states)"
relay="127.0.0.1:$lb_port"
trust=(--fingerprint "$fingerprint")
via() { echo "--relay 127.0.0.1:${relay_port[$1]}"; }

# The node the host is registered with, from the database's host directory (a node whose
# lease ran out does not count).
host_node() { "${psql[@]}" -c "SELECT p.node FROM host_presence p JOIN relay_node n ON n.name = p.node WHERE p.hostID = '$host_id' AND n.leaseUntil > now()"; }
registrations() { grep -c '^Registered with the relay' "$host_log" 2>/dev/null || true; }
# The enrolled host is registered and waits for an engineer (its last news says so).
host_idle() { grep -v '^  ' "$host_log" 2>/dev/null | tail -n 1 | grep -q '^Registered with the relay' && [ -n "$(host_node)" ]; }
lines() { wc -l <"$1"; }
# since FILE N TAG: what FILE says after its first N lines.
since() { tail -n "+$(($2 + 1))" "$1" | prefix "$3"; }
# What each node logged about a session (its id is in the viewer's log).
node_lines() {
    local session name
    session="$(grep -o 'session [0-9a-f]\{32\}' "$1" | head -1 | awk '{print $2}')"
    [ -n "$session" ] || return 0
    for name in "${nodes[@]}"; do
        grep -h "session=$session" "${node_log[$name]}" | sed 's/^[^ ]* [a-z]* relay-server: //' | prefix "$name" || true
    done
}

echo
echo "==> 1. Unattended, across nodes: the enrolled host registers through haproxy, the engineer connects by host id to another node ($(elapsed))"
host_log="$work/logs/host.log"
# --any-engineer: the relay decides which of the company's engineers may connect, as in
# scripts/demo.sh (docs/SECURITY.md §8.3).
start_host() {
    "$agent" host --relay "$relay" "${trust[@]}" --host-id "$host_id" --any-engineer --source "$source_spec" --fps 30 </dev/null >>"$host_log" 2>&1 &
    host_pid=$!
}
start_host
waiting 20 host_idle || fail "the enrolled host did not register through haproxy"
prefix host <"$host_log"
home="$(host_node)"
echo "[store]  host_presence: $host_id is registered with $home (haproxy chose it)"
viewer_node=node-a
[ "$home" != node-a ] || viewer_node=node-c
first_home=$home first_viewer=$viewer_node
host_lines=$(lines "$host_log")
echo "[viewer] relay-agent view $(via $viewer_node) --host $host_id   ($viewer_node dials $home's cluster port)"
"$agent" view $(via "$viewer_node") "${trust[@]}" --host "$host_id" --snapshot "$snapshots/1-unattended-cross-node.png" --stats --duration 3 </dev/null \
    >"$work/logs/viewer-1.log" 2>&1 || fail "the viewer on $viewer_node did not reach the host on $home"
prefix viewer <"$work/logs/viewer-1.log"
grep -q '^Snapshot: ' "$work/logs/viewer-1.log" || fail "the viewer saved no snapshot"
node_lines "$work/logs/viewer-1.log"
# After each session an enrolled host registers again: through haproxy, on the next node.
waiting 20 host_idle || fail "the enrolled host did not register again after the session"
since "$host_log" "$host_lines" host
echo "[store]  host_presence: after the session the host registered again through haproxy, now with $(host_node)"

echo
echo "==> 2. Attended, across nodes: a viewer on node-a asks for a support code, the customer presents it on node-c ($(elapsed))"
viewer_log="$work/logs/viewer-2.log"
"$agent" view $(via node-a) "${trust[@]}" --new-code --snapshot "$snapshots/2-attended-cross-node.png" --stats --click 400,300 \
    --type "echo Hello from support, through node-a and node-c" --clipboard "ticket #4711" --duration 4 </dev/null >"$viewer_log" 2>&1 &
viewer_pid=$!
agent_pids+=("$viewer_pid")
code_issued() { grep -qs 'Support code: [0-9]' "$viewer_log"; }
waiting 10 code_issued || fail "the viewer on node-a got no support code"
code="$(grep -o 'Support code: [0-9]*' "$viewer_log" | awk '{print $3}')"
echo "[viewer] $(grep 'Support code' "$viewer_log")"
echo "[store]  support_code: $code belongs to $("${psql[@]}" -c "SELECT node FROM support_code WHERE code = $((10#$code))")"
echo "[host]   relay-agent host $(via node-c) --code $code --accept full"
# --accept full: the demo answers the customer's question itself (a person would be asked).
"$agent" host $(via node-c) "${trust[@]}" --code "$code" --accept full --source "$source_spec" --fps 20 --clipboard "customer's clipboard" --name "customer PC" \
    </dev/null >"$work/logs/attended-host.log" 2>&1 || fail "the attended host on node-c did not get through"
prefix host <"$work/logs/attended-host.log"
wait "$viewer_pid" || fail "the attended viewer on node-a failed"
grep -v 'Support code' "$viewer_log" | prefix viewer
grep -q '^Snapshot: ' "$viewer_log" || fail "the attended viewer saved no snapshot"
node_lines "$viewer_log"

echo
waiting 20 host_idle || fail "the enrolled host is not registered"
home="$(host_node)"
viewer_node=node-a
[ "$home" != node-a ] || viewer_node=node-c
echo "==> 3. kill -9 of $home, the enrolled host's node, in the middle of a session from $viewer_node ($(elapsed))"
viewer_log="$work/logs/viewer-3.log"
echo "[viewer] relay-agent view $(via "$viewer_node") --host $host_id"
"$agent" view $(via "$viewer_node") "${trust[@]}" --host "$host_id" --snapshot "$snapshots/3a-before-kill.png" </dev/null >"$viewer_log" 2>&1 &
viewer_pid=$!
agent_pids+=("$viewer_pid")
screen_up() { grep -qs '^Screen ' "$viewer_log"; }
waiting 15 screen_up || fail "the viewer on $viewer_node did not get the host's screen"
viewer_lines=$(lines "$viewer_log")
prefix viewer <"$viewer_log" | head -n "$viewer_lines"
record="$("${psql[@]}" -F ' ' -c "SELECT id, relayNode FROM session WHERE hostID = '$host_id' AND endedAt IS NULL")"
record_id="${record%% *}"
[ -n "$record_id" ] || fail "no open usage record for the session"
echo "[store]  open usage record $record_id, kept by ${record#* }"
# A checkpoint or two, so that the record holds the bytes relayed so far.
sleep $((checkpoint_seconds * 2))
before=$(registrations)
host_lines=$(lines "$host_log")
kill -9 "${node_pid[$home]}"
killed_at=$SECONDS
wait "${node_pid[$home]}" 2>/dev/null || true
node_pid[$home]=""
echo "[demo]   kill -9 $home"
viewer_done() { ! kill -0 "$viewer_pid" 2>/dev/null; }
waiting 60 viewer_done || fail "the viewer on $viewer_node did not notice that $home died"
wait "$viewer_pid" || true
since "$viewer_log" "$viewer_lines" viewer
home_down() { [[ "$(haproxy_states)" == *"$home DOWN"* ]]; }
waiting 10 home_down && echo "[haproxy] $(haproxy_states)"
came_back() { [ "$(registrations)" -gt "$before" ] && host_idle && [ "$(host_node)" != "$home" ]; }
host_gone() { ! kill -0 "$host_pid" 2>/dev/null; }
came_back_or_gone() { came_back || host_gone; }
waiting 60 came_back_or_gone || fail "the enrolled host did not register again through haproxy within 60 s"
host_restarted=""
if host_gone; then
    host_status=0
    wait "$host_pid" || host_status=$?
    since "$host_log" "$host_lines" host
    host_lines=$(lines "$host_log")
    host_restarted="relay-agent host exited (status $host_status) when $home died, instead of registering again with its back-off"
    echo "warning: $host_restarted: a bug in relay-agent (a connection that breaks without TLS close_notify counts as a TLS failure, which an enrolled host does not retry). Starting it again, as a service manager would." >&2
    start_host
    waiting 60 came_back || fail "the enrolled host, started again, did not register through haproxy within 60 s"
fi
new_home="$(host_node)"
since "$host_log" "$host_lines" host
echo "[store]  host_presence: $host_id is registered with $new_home, $((SECONDS - killed_at)) s after the kill"
echo "[viewer] relay-agent view $(via "$viewer_node") --host $host_id   (the same command as before the kill)"
"$agent" view $(via "$viewer_node") "${trust[@]}" --host "$host_id" --snapshot "$snapshots/3b-after-failover.png" --stats --duration 3 </dev/null \
    >"$work/logs/viewer-4.log" 2>&1 || fail "the viewer on $viewer_node did not reach the host on $new_home"
prefix viewer <"$work/logs/viewer-4.log"
grep -q '^Snapshot: ' "$work/logs/viewer-4.log" || fail "the viewer saved no snapshot after the fail-over"
node_lines "$work/logs/viewer-4.log"

echo "[demo]   waiting for a survivor to take $home for dead ($lease_seconds s without renewing its lease) and close its open record"
closed() { [ "$("${psql[@]}" -c "SELECT endReason FROM session WHERE id = '$record_id'")" = relay_restart ]; }
waiting $((lease_seconds * 3)) closed || fail "no survivor closed $home's record $record_id as relay_restart within $((lease_seconds * 3)) s"
for name in "${nodes[@]}"; do
    [ "$name" = "$home" ] && continue
    grep -h 'closed the usage records of a relay node' "${node_log[$name]}" | sed 's/^[^ ]* [a-z]* relay-server: //' | prefix "$name" || true
done
echo "[store]  record $record_id closed as relay_restart, $((SECONDS - killed_at)) s after the kill"
export_file="$snapshots/usage.csv"
from="$(date -u -d yesterday +%F)" to="$(date -u +%F)"
echo "[admin]  relay-server usage export --store … --company $company --from $from --to $to --output $export_file"
"$server" usage export "${admin[@]}" --company "$company" --from "$from" --to "$to" --output "$export_file" 2>&1 | prefix admin
python3 - "$export_file" <<'EOF' | prefix export
import csv, sys
columns = ["session_id", "mode", "host_name", "duration_s", "bytes_to_viewer", "bytes_to_host", "end_reason", "relay_node"]
with open(sys.argv[1], encoding="utf-8-sig", newline="") as file:
    rows = [[row[column] for column in columns] for row in csv.DictReader(file)]
widths = [max(len(str(cell)) for cell in column) for column in zip(columns, *rows)]
for row in [columns] + rows:
    print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
EOF

echo
echo "==> $home starts again and rejoins ($(elapsed))"
start_node "$home"
restarted() { [ "$(grep -c '^  fingerprint:' "${node_log[$home]}")" -ge 2 ]; }
waiting 30 restarted || fail "$home did not start again"
waiting 20 all_up || fail "haproxy does not see $home healthy again: $(haproxy_states)"
echo "[haproxy] $(haproxy_states)"
echo "  live nodes in the database (relay_node): $("${psql[@]}" -c "SELECT string_agg(name, ', ' ORDER BY name) FROM relay_node WHERE leaseUntil > now()")"

cat <<EOT

Done in $(elapsed): three relay nodes on one PostgreSQL behind haproxy ($relay).
  1. a host registered through haproxy with $first_home, a viewer on $first_viewer reached it by id;
  2. a support code issued on node-a was presented on node-c;
  3. $home was killed (kill -9): the host registered again with $new_home through haproxy,
     the viewer on $viewer_node reached it by the same id, and a survivor closed $home's open
     usage record as relay_restart; then $home started again.
$([ -z "$host_restarted" ] || echo "warning: $host_restarted; the demo started it again.")
The viewer's reconstructed screens ($source_spec), and the usage export:
EOT
ls -1 "$snapshots"/*.png "$export_file" | sed 's/^/  /'

if [ -n "${KEEP_RUNNING:-}" ]; then
    # Nothing to clean up: the exit hooks would stop what is to keep running.
    EXIT_HOOKS=()
    pids="$host_pid ${node_pid[*]} $haproxy_pid ${app_pids[*]} ${XVFB_PID:-}"
    # The nodes stop before PostgreSQL, so that they end their leases and usage records.
    cat >"$work/stop.sh" <<EOT
$(declare -f stop_processes)
stop_processes $pids
$([ "$(id -u)" -ne 0 ] || echo "runuser -u postgres -- ")$POSTGRES_BIN/pg_ctl -D $POSTGRES_DIR/data -m fast stop
rm -rf $work $POSTGRES_DIR
echo "Stopped the cluster demo: nodes, haproxy, the host, its desktop and PostgreSQL; removed $work and $POSTGRES_DIR."
EOT
    cat <<EOT

Still running: node-a, node-b, node-c, haproxy on $relay, PostgreSQL ($store),
the enrolled host "데모 PC (cluster)" ($host_id) and its desktop ($source_spec).
Connect through haproxy (or to one node: 127.0.0.1:${relay_port[node-a]}, :${relay_port[node-b]}, :${relay_port[node-c]}):
  XDG_CONFIG_HOME=$XDG_CONFIG_HOME $agent view --relay $relay --fingerprint $fingerprint --host $host_id
  XDG_CONFIG_HOME=$XDG_CONFIG_HOME $agent view --relay $relay --fingerprint $fingerprint --new-code
  $agent host --relay $relay --fingerprint $fingerprint --code NNNNNN [--source x11:DISPLAY]
Admin commands: $server usage export --store '$store' --company $company --from $(date -u +%F) --to $(date -u +%F)
Each node's /healthz and /metrics: https://127.0.0.1:${admin_port[node-a]}/healthz, :${admin_port[node-b]}, :${admin_port[node-c]}; logs in $work/logs.
The web console through haproxy: $web/ (accept the self-signed certificate); sign in as demo.engineer once with
  $signin_link
Stop it all: bash $work/stop.sh
EOT
fi
