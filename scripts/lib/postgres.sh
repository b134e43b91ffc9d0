# Shared by scripts/test.sh and the cluster's scripts: a throwaway PostgreSQL server for
# the PostgreSQL store's tests (Debian's postgresql package; NOTES.md "PostgreSQL").
# shellcheck shell=bash
source "$(dirname "${BASH_SOURCE[0]}")/exit-hooks.sh"

POSTGRES_DIR=""
POSTGRES_BIN=""

# As the postgres user when run as root (initdb refuses root), else as oneself.
as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# start_postgres: a new cluster in a temporary folder, listening on a free loopback port
# (and a socket in that folder), trusting local connections, without fsync (nothing in it
# outlives the run); stopped and deleted when the script exits. Exports
# RELAY_TEST_POSTGRES=postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable.
start_postgres() {
    POSTGRES_BIN="$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)"
    if [ -z "$POSTGRES_BIN" ] || [ ! -x "$POSTGRES_BIN/initdb" ]; then
        echo "error: PostgreSQL's server programs are missing (Debian: apt-get install postgresql)" >&2
        exit 1
    fi
    POSTGRES_DIR="$(mktemp -d)"
    # mktemp's folder is 0700 and root's: the server runs as postgres.
    [ "$(id -u)" -ne 0 ] || chown postgres:postgres "$POSTGRES_DIR"
    local port
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    as_postgres "$POSTGRES_BIN/initdb" -D "$POSTGRES_DIR/data" -U postgres --auth=trust -E UTF8 --no-sync >"$POSTGRES_DIR/initdb.log" 2>&1 || {
        cat "$POSTGRES_DIR/initdb.log" >&2
        echo "error: initdb failed (above)" >&2
        exit 1
    }
    on_exit stop_postgres
    if ! as_postgres "$POSTGRES_BIN/pg_ctl" -D "$POSTGRES_DIR/data" -l "$POSTGRES_DIR/server.log" -w -t 60 \
        -o "-p $port -k $POSTGRES_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null; then
        cat "$POSTGRES_DIR/server.log" >&2
        echo "error: PostgreSQL did not start (its log is above)" >&2
        exit 1
    fi
    export RELAY_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
    echo "==> PostgreSQL $("$POSTGRES_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $POSTGRES_DIR)"
}

stop_postgres() {
    [ -n "$POSTGRES_DIR" ] || return 0
    as_postgres "$POSTGRES_BIN/pg_ctl" -D "$POSTGRES_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$POSTGRES_DIR"
    POSTGRES_DIR=""
}
