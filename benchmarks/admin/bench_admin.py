#!/usr/bin/env python3
"""The admin console's usage page and exports over a big usage history (issue 14 item 10).

A release relay-server serves a real relay data folder whose SQLite store holds 10M usage
records of 10 companies, 1M of them for the measured company, over 13 months
(2025-11-01 .. 2026-11-30 UTC). A script calls the admin API over TLS with an API token of
scope `export` (Authorization: Bearer sra_...), as docs/admin-openapi.yaml describes:

  page, first           GET /api/admin/usage?from&to&limit=50 (the whole 13 months)
  page, deep            the same with `after` = the cursor of a row ~900,000 rows in
                        (a different cursor per request, rows 900,000, 901,000, ...)
  summary, month        GET /api/admin/usage/summary for 2026-11 (one month, whole company)
  summary, engineer     the same for the busiest engineer over 2025-12-01 .. 2026-11-30
  export, CSV           GET /api/admin/usage/export?format=csv over the 13 months (1M rows)
  export, XLSX          the same with format=xlsx (information)

plus, as information, a few more requests the console makes (pages with an engineer or a
host filter, the whole company's summary over a year). Targets: pages and summaries
<= 100 ms (median and p95 of --requests requests after 2 untimed ones), CSV export
>= 200k rows/s, the relay's RSS (/proc/PID/status, sampled every 10 ms) during the
export within a few MB of before it.

Seeding (once, then cached in --cache): `relay-server company add` makes the data folder
(so the schema is the relay's own, every migration applied) and the companies; engineers,
hosts and the usage records are inserted with Python's sqlite3 in time order across the
companies (as a relay writes them), 10M rows in big transactions, with the relay's indexes
in place (built row by row as a relay builds them; no ANALYZE, which the relay never runs).
Each run copies the cached folder, adds an API token row to it (`api_token`: id `tk-...`,
digest = SHA-256 of the secret, scope `export`; the token is `sra_<id>.<secret>`), and
starts `relay-server serve` on it.

It also prints EXPLAIN QUERY PLAN of the store's SQL for each case
(Sources/RelayStore/SQLStore+Admin.swift, usagePage(_:after:limit:) and
usageSummary(_:timeZone:), copied here), times those statements in this process with the
same SQLite (also with PRAGMA mmap_size, and the summaries' proposed two statements), and
times the relay's checkpoint UPDATE of 10,000 live sessions. --perf records the relay with
`perf record` during one more CSV export; --proposal NAME applies an index change of
PROPOSALS to the run's copy afterwards and measures everything again (RESULTS.md, "Admin
console (issue 14)", says what was measured and proposed).

    swift build -c release --scratch-path .build-release --product relay-server
    python3 benchmarks/admin/bench_admin.py --perf --json benchmarks/admin/results/admin-DATE.json
    python3 benchmarks/admin/bench_admin.py --proposal filter-order --proposal summary-cover-started

The first run seeds (it took 26 minutes, 6.5k rows/s, at load average 8-12 on 2 cores)
into --cache (4 GiB), and each run copies it (another 4 GiB). Not part of scripts/test.sh.
Needs only Python 3.10+ (standard library), the relay-server binary (--build-dir) and,
for --perf, perf.
"""

from __future__ import annotations

import argparse
import bisect
import datetime
import hashlib
import http.client
import json
import os
import pathlib
import platform
import random
import secrets
import shutil
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
REPOSITORY = HERE.parents[1]
DEFAULT_BUILD = REPOSITORY / ".build-release" / "release"
DEFAULT_CACHE = REPOSITORY / ".build-bench-admin"

# What the seeded history looks like. Changing any of it makes a new cache entry.
SEED_VERSION = 1
RANGE_START = datetime.datetime(2025, 11, 1, tzinfo=datetime.timezone.utc)
RANGE_END = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)  # exclusive
MEASURED = "Hanbit Support"  # the measured company's name
# The other companies: name, share of the rest of the rows, UTC offset of their office hours.
OTHERS = [
    ("Daon Logistics", 0.25, 9), ("Seoul Medical Group", 0.16, 9), ("Nara Insurance", 0.13, 9),
    ("Busan Port Services", 0.11, 9), ("Acme Field Service", 0.10, -5), ("Mirae Schools", 0.08, 9),
    ("Tokyo Retail KK", 0.07, 9), ("Jeju Hotels", 0.06, 9), ("Small Law Office", 0.04, 9),
]  # fmt: skip
MEASURED_OFFSET_HOURS = 9
NODE_NAME = "bench-relay"

TARGET_PAGE_MS = 100.0
TARGET_EXPORT_ROWS_PER_S = 200_000.0
PAGE_LIMIT = 50

SURNAMES = ["kim", "lee", "park", "choi", "jung", "kang", "cho", "yoon", "jang", "lim", "han", "oh", "seo", "shin", "kwon"]
GIVEN = ["minji", "jiwoo", "seojun", "hayoon", "doyun", "seoyeon", "jihoon", "yuna", "hyunwoo", "soyeon", "taeyang",
         "eunji", "junho", "dahye", "sungmin", "alex", "sam", "jordan", "maria", "david", "emma", "noah"]  # fmt: skip
TEAMS = ["회계팀", "영업팀", "인사팀", "총무팀", "개발팀", "물류센터", "Front desk", "Sales", "Warehouse", "Clinic"]
END_REASONS = [("normal", 0.70), ("peer_left", 0.15), ("idle_timeout", 0.06), ("declined", 0.03), ("relay_shutdown", 0.02),
               ("relay_restart", 0.02), ("revoked", 0.01), ("protocol_error", 0.005), ("handshake_timeout", 0.005)]  # fmt: skip


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def ms(moment: datetime.datetime) -> int:
    return int(moment.timestamp() * 1000)


def grdb_datetime(moment: datetime.datetime) -> str:
    """A DATETIME column as GRDB writes it: `2026-12-03 07:56:57.588` (UTC)."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def make_id(rng: random.Random, prefix: str) -> str:
    """An id as Secrets.makeID(prefix:) makes them (`co-7hq2mx9c4e`)."""
    alphabet = "23456789abcdefghjkmnpqrstuvwxyz"
    return prefix + "-" + "".join(rng.choice(alphabet) for _ in range(10))


# ---- The relay's binary and its data folder ----


def relay_cli(server: pathlib.Path, data: pathlib.Path, *args: str) -> dict:
    command = [str(server), *args, "--data", str(data), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"`{' '.join(command)}` failed with status {result.returncode}:\n{result.stderr}{result.stdout}")
    return json.loads(result.stdout)


# ---- Seeding ----


class CompanyPlan:
    """One company's people, hosts and how its sessions look."""

    def __init__(self, rng: random.Random, company_id: str, rows: int, offset_hours: int, engineers: int, hosts: int):
        self.id = company_id
        self.rows = rows
        self.offset_hours = offset_hours
        logins: list[str] = []
        while len(logins) < engineers:
            login = f"{rng.choice(GIVEN)}.{rng.choice(SURNAMES)}"
            if login in logins:
                login += str(len(logins))
            logins.append(login)
        self.logins = logins
        # Some engineers take more sessions than others (0.5x .. 1.5x).
        self.login_weights = [0.5 + rng.random() for _ in logins]
        self.login_cumulative = _cumulative(self.login_weights)
        self.offices = {login: _ipv4(rng, 198, 51) for login in logins}
        hosts_list = []
        for index in range(hosts):
            team = rng.choice(TEAMS)
            name = f"{team} PC-{index:04d}"
            if index % 97 == 0:
                name = f"=cmd|' /C calc'!A0 {index}"  # formula-looking: the CSV escapes it
            elif index % 89 == 0:
                name = f"{team}, 2F, PC {index}"  # a comma: the CSV quotes it
            hosts_list.append((make_id(rng, "ho"), name, team))
        self.hosts = hosts_list
        self.attended_names = [f"DESKTOP-{rng.getrandbits(28):07X}" for _ in range(max(100, rows // 40))]


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def _ipv4(rng: random.Random, a: int, b: int) -> str:
    return f"{a}.{b}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def day_weights(days: list[datetime.date]) -> list[float]:
    """Weekdays 1.0, Saturday 0.25, Sunday 0.12; the history grows by a fifth over the range."""
    weights = []
    for index, day in enumerate(days):
        base = (1.0, 1.0, 1.0, 1.0, 1.0, 0.25, 0.12)[day.weekday()]
        weights.append(base * (1.0 + 0.2 * index / max(1, len(days) - 1)))
    return weights


def spread_exactly(total: int, weights: list[float]) -> list[int]:
    """`total` split by `weights` into whole numbers that add up to `total` exactly."""
    scale = total / sum(weights)
    counts, carried, given = [], 0.0, 0
    for weight in weights:
        carried += weight * scale
        count = round(carried) - given
        counts.append(count)
        given += count
    return counts


def seed(server: pathlib.Path, folder: pathlib.Path, total_rows: int, measured_rows: int, rng_seed: int) -> dict:
    """Makes the data folder in `folder`/data; returns the manifest."""
    started = time.monotonic()
    data = folder / "data"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rng = random.Random(rng_seed)

    log(f"seed: companies with {server.name} company add")
    measured = relay_cli(server, data, "company", "add", MEASURED)
    companies = [(measured["id"], MEASURED, measured_rows, MEASURED_OFFSET_HOURS)]
    rest = total_rows - measured_rows
    others = spread_exactly(rest, [share for _, share, _ in OTHERS])
    for (name, _, offset), rows in zip(OTHERS, others):
        added = relay_cli(server, data, "company", "add", name)
        companies.append((added["id"], name, rows, offset))

    plans = []
    for company_id, _, rows, offset in companies:
        engineers = max(8, rows // 8_500)  # ~8,500 sessions per engineer over the 13 months
        hosts = max(40, rows // 250)
        plans.append(CompanyPlan(rng, company_id, rows, offset, engineers, hosts))

    database = sqlite3.connect(data / "relay.sqlite", isolation_level=None)
    database.execute("PRAGMA journal_mode = DELETE")
    database.execute("PRAGMA synchronous = OFF")
    database.execute("PRAGMA cache_size = -4000000")  # 4 GB: the indexes stay in memory while seeding
    now = datetime.datetime.now(datetime.timezone.utc)
    database.execute("BEGIN")
    for plan in plans:
        for index, login in enumerate(plan.logins):
            role = "admin" if index == 0 else ("manager" if index % 15 == 1 else "engineer")
            database.execute(
                "INSERT INTO engineer (id, companyID, login, tokenDigest, createdAt, role) VALUES (?, ?, ?, x'', ?, ?)",
                (make_id(rng, "en"), plan.id, login, grdb_datetime(now), role),
            )
        for host_id, name, team in plan.hosts:
            database.execute(
                "INSERT INTO host (id, companyID, name, secretDigest, createdAt, groupName) VALUES (?, ?, ?, x'', ?, ?)",
                (host_id, plan.id, name, grdb_datetime(now), team),
            )
    database.execute("COMMIT")

    days = []
    day = RANGE_START.date()
    while day < RANGE_END.date():
        days.append(day)
        day += datetime.timedelta(days=1)
    weights = day_weights(days)
    per_day = [spread_exactly(plan.rows, weights) for plan in plans]
    reasons, reason_cumulative = [r for r, _ in END_REASONS], _cumulative([w for _, w in END_REASONS])

    insert = (
        "INSERT INTO session (id, companyID, engineerLogin, hostID, hostName, mode, startedAt, endedAt, durationSeconds, "
        "bytesToViewer, bytesToHost, framesToViewer, framesToHost, endReason, viewerAddress, hostAddress, relayNode, "
        "checkpointedAt, viewerClient) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    written, batch = 0, []
    database.execute("BEGIN")
    for day_index, day in enumerate(days):
        midnight = ms(datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc))
        rows = []
        for plan, counts in zip(plans, per_day):
            for _ in range(counts[day_index]):
                rows.append(session_row(rng, plan, midnight, reasons, reason_cumulative))
        rows.sort(key=lambda row: row[6])
        batch += rows
        if len(batch) >= 250_000 or day_index == len(days) - 1:
            database.executemany(insert, batch)
            written += len(batch)
            batch = []
            database.execute("COMMIT")
            database.execute("BEGIN")
            rate = written / (time.monotonic() - started)
            log(f"seed: {written:,} of {total_rows:,} rows ({day.isoformat()}), {rate:,.0f} rows/s")
    database.execute("COMMIT")
    database.execute("PRAGMA journal_mode = WAL")  # as the relay keeps it
    database.close()

    manifest = {
        "seed_version": SEED_VERSION,
        "rows": total_rows,
        "measured_rows": measured_rows,
        "rng_seed": rng_seed,
        "measured_company": measured["id"],
        "companies": [{"id": c[0], "name": c[1], "rows": c[2]} for c in companies],
        "measured_engineers": plans[0].logins,
        "measured_hosts": len(plans[0].hosts),
        "range": [RANGE_START.isoformat(), RANGE_END.isoformat()],
        "seconds": round(time.monotonic() - started, 1),
        "made_at": now.isoformat(timespec="seconds"),
        "made_with": str(server),
        "file_bytes": (data / "relay.sqlite").stat().st_size,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    log(f"seed: done in {manifest['seconds']} s, {manifest['file_bytes'] / 2**30:.2f} GiB")
    return manifest


def session_row(rng: random.Random, plan: CompanyPlan, midnight: int, reasons: list[str], reason_cumulative: list[float]) -> tuple:
    """One closed session of `plan`'s company on the UTC day starting at `midnight`, in the
    company's office hours (08:00-19:00 local, a few outside them)."""
    random_ = rng.random
    local_hour = rng.gauss(13.0, 2.6) if random_() < 0.93 else random_() * 24.0
    offset_ms = int(((local_hour - plan.offset_hours) % 24.0) * 3_600_000)
    started = midnight + offset_ms + rng.randrange(1000)
    login = plan.logins[bisect.bisect_left(plan.login_cumulative, random_() * plan.login_cumulative[-1])]
    reason = reasons[min(len(reasons) - 1, bisect.bisect_left(reason_cumulative, random_() * reason_cumulative[-1]))]
    if reason == "declined":
        seconds = random_() * 30.0
    else:
        seconds = min(8 * 3600.0, max(1.0, rng.lognormvariate(6.3, 1.0)))  # median ~9 min
    ended = started + int(seconds * 1000)
    duration = max(0, ended - started) // 1000
    unattended = random_() < 0.4
    if unattended:
        host_id, host_name, _ = plan.hosts[rng.randrange(len(plan.hosts))]
        mode = "unattended"
    else:
        host_id, host_name = None, plan.attended_names[rng.randrange(len(plan.attended_names))]
        mode = "attended"
    to_viewer = int(seconds * rng.lognormvariate(10.6, 0.8))  # ~40 kB/s of tiles
    to_host = int(seconds * rng.lognormvariate(5.7, 0.5))  # ~300 B/s of input
    frames_viewer = int(seconds * (2 + 10 * random_()))
    frames_host = int(seconds * (1 + 4 * random_()))
    if random_() < 0.05:
        viewer = f"[2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}]:{rng.randrange(1024, 65536)}"
    else:
        viewer = f"{plan.offices[login]}:{rng.randrange(1024, 65536)}"
    host = f"{_ipv4(rng, 203, 0)}:{rng.randrange(1024, 65536)}"
    client = "browser" if random_() < 0.45 else "agent"
    return (f"{rng.getrandbits(128):032x}", plan.id, login, host_id, host_name, mode, started, ended, duration, to_viewer,
            to_host, frames_viewer, frames_host, reason, viewer, host, NODE_NAME, ended, client)  # fmt: skip


def cached_seed(server: pathlib.Path, cache: pathlib.Path, total_rows: int, measured_rows: int, rng_seed: int, reseed: bool) -> tuple[pathlib.Path, dict]:
    """The seeded folder for these settings: from the cache, or made now."""
    folder = cache / f"seed-v{SEED_VERSION}-{total_rows}-{measured_rows}-{rng_seed}"
    manifest_path = folder / "manifest.json"
    if not reseed and manifest_path.is_file() and (folder / "data" / "relay.sqlite").is_file():
        manifest = json.loads(manifest_path.read_text())
        log(f"seed: reusing {folder} (made {manifest['made_at']} in {manifest['seconds']} s)")
        return folder, manifest
    return folder, seed(server, folder, total_rows, measured_rows, rng_seed)


# ---- The relay under test ----


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Relay:
    def __init__(self, server: pathlib.Path, folder: pathlib.Path):
        self.server = server
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 600) -> float:
        """Starts the relay and returns the seconds it took to listen: on a store of an
        older schema, the migrations run first (v8 builds indexes: about 1.5 min on 10M rows)."""
        config = self.folder / "relay.json"
        config.write_text(json.dumps({
            "listen": f"127.0.0.1:{self.port}", "admin_listen": f"127.0.0.1:{free_port()}",
            "data_directory": str(self.data), "node_name": NODE_NAME,
            # The history spans 13 months: with the default 12, the relay's purge at start
            # would delete (and VACUUM) the oldest month under the benchmark.
            "usage_retention_months": 24,
        }))  # fmt: skip
        self.stdout = self.folder / "relay.stdout"
        with open(self.stdout, "wb") as out, open(self.folder / "relay.stderr", "wb") as err:
            self.process = subprocess.Popen(
                [str(self.server), "serve", "--config", str(config), "--log-level", "warning"],
                cwd=self.folder, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if "relay-server listening" in self.stdout.read_text(errors="replace"):
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return time.monotonic() - started
                except OSError:
                    pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"relay-server did not start within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in (self.folder / "relay.stdout", self.folder / "relay.stderr") if p.exists())

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    # /proc figures of the relay process.
    def status(self, field: str) -> int:
        """A `kB` line of /proc/PID/status, in bytes."""
        return self.memory()[field]

    def memory(self) -> dict[str, int]:
        """VmRSS, RssAnon, RssFile, VmHWM… of /proc/PID/status, in bytes."""
        values = {}
        for line in pathlib.Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if rest.strip().endswith(" kB"):
                values[name] = int(rest.split()[0]) * 1024
        return values

    def cpu_seconds(self) -> float:
        stat = pathlib.Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset_peak(self) -> bool:
        """Resets VmHWM to the current RSS (clear_refs 5); False where that is not allowed."""
        try:
            pathlib.Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False


def add_token(database_path: pathlib.Path, company_id: str) -> str:
    """An API token of scope `export`, inserted as SQLStore.createAPIToken stores one."""
    rng = random.Random()
    token_id = make_id(rng, "tk")
    secret = secrets.token_urlsafe(32)  # 43 characters of base64url, as Secrets.makeSecret()
    with sqlite3.connect(database_path) as database:
        database.execute(
            "INSERT INTO api_token (id, companyID, name, digest, scope, createdAt, createdBy) VALUES (?, ?, ?, ?, 'export', ?, 'bench')",
            (token_id, company_id, "admin benchmark", hashlib.sha256(secret.encode()).digest(), grdb_datetime(datetime.datetime.now(datetime.timezone.utc))),
        )  # fmt: skip
    return f"sra_{token_id}.{secret}"


class Client:
    """One keep-alive HTTPS connection to the web port (the relay's self-signed certificate
    is not verified: loopback)."""

    def __init__(self, port: int, token: str):
        self.port = port
        self.headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"}
        self.context = ssl._create_unverified_context()
        self.context.set_alpn_protocols(["http/1.1"])  # the relay's port tells its protocols apart by ALPN
        self.connection: http.client.HTTPSConnection | None = None

    def _connection(self) -> http.client.HTTPSConnection:
        if self.connection is None:
            self.connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=600)
            self.connection.connect()
        return self.connection

    def get(self, path: str, sink=None) -> tuple[int, dict, bytes | None, float, float]:
        """GET `path`: (status, headers, body or None when `sink` took it, seconds to the
        first body byte, seconds to the last). The connection is made before the clock starts."""
        for attempt in range(2):
            connection = self._connection()
            try:
                started = time.perf_counter()
                connection.request("GET", path, headers=self.headers)
                response = connection.getresponse()
                first = time.perf_counter() - started
                if sink is None:
                    body = response.read()
                else:
                    body = None
                    while chunk := response.read(1 << 18):
                        sink(chunk)
                total = time.perf_counter() - started
                if response.will_close:
                    self.close()
                return response.status, dict(response.getheaders()), body, first, total
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def json(self, path: str) -> tuple[dict, float]:
        status, _, body, _, total = self.get(path)
        if status != 200:
            raise SystemExit(f"GET {path} answered {status}: {body[:500]!r}")
        return json.loads(body), total

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


# ---- The cases ----


def query(**values) -> str:
    return urllib.parse.urlencode({k: v for k, v in values.items() if v is not None})


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-fraction * len(ordered) // 1)) - 1))]


def timed_requests(client: Client, paths: list[str], warmup: int, check) -> dict:
    """One request per path: the first `warmup` untimed, the others timed (ms). Every
    answer is checked."""
    warmup_ms, times = [], []
    for index, path in enumerate(paths):
        answer, seconds = client.json(path)
        check(answer)
        (warmup_ms if index < warmup else times).append(seconds * 1000)
    return {
        "requests": len(times), "median_ms": statistics.median(times), "p95_ms": percentile(times, 0.95),
        "min_ms": min(times), "max_ms": max(times), "warmup_ms": warmup_ms, "times_ms": times, "example": paths[-1],
    }  # fmt: skip


class RSSSampler(threading.Thread):
    def __init__(self, relay: Relay, interval: float = 0.01):
        super().__init__(daemon=True)
        self.relay, self.interval = relay, interval
        self.samples: list[tuple[float, int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        start = time.perf_counter()
        while not self.halt.is_set():
            memory = self.relay.memory()
            self.samples.append((time.perf_counter() - start, memory["VmRSS"], memory["RssAnon"]))
            self.halt.wait(self.interval)

    def stop(self) -> list[tuple[float, int, int]]:
        self.halt.set()
        self.join()
        return self.samples


def idle_rss(relay: Relay, seconds: float = 1.0) -> tuple[int, int]:
    """The median RSS and anonymous RSS over `seconds` with no request running."""
    rss, anon = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        memory = relay.memory()
        rss.append(memory["VmRSS"])
        anon.append(memory["RssAnon"])
        time.sleep(0.02)
    return int(statistics.median(rss)), int(statistics.median(anon))


def export_once(relay: Relay, client: Client, path: str, kind: str, expected_rows: int) -> dict:
    """One export with the relay's RSS sampled; the rows counted from the body."""
    time.sleep(2.0)  # let the previous request's work settle
    before, anon_before = idle_rss(relay)
    peak_reset = relay.reset_peak()
    cpu_before = relay.cpu_seconds()
    client_cpu_before = time.process_time()
    state = {"bytes": 0, "newlines": 0, "head": b"", "tail": b""}
    sheet = None
    if kind == "xlsx":
        sheet = open(relay.folder / "export.xlsx", "wb")

    def sink(chunk: bytes) -> None:
        state["bytes"] += len(chunk)
        if len(state["head"]) < 4096:
            state["head"] += chunk[:4096]
        state["tail"] = (state["tail"] + chunk)[-4096:]
        if kind == "csv":
            state["newlines"] += chunk.count(b"\n")
        if sheet:
            sheet.write(chunk)

    sampler = RSSSampler(relay)
    sampler.start()
    status, headers, body, first, total = client.get(path, sink=sink)
    samples = sampler.stop()
    cpu = relay.cpu_seconds() - cpu_before
    client_cpu = time.process_time() - client_cpu_before
    hwm = relay.status("VmHWM") if peak_reset else None
    right_after = relay.status("VmRSS")
    time.sleep(3.0)
    after, anon_after = idle_rss(relay)
    if status != 200:
        raise SystemExit(f"GET {path} answered {status}: {state['head'][:500]!r}")
    if kind == "csv":
        if not state["head"].startswith(b"\xef\xbb\xbf"):
            raise SystemExit(f"the CSV export does not start with a BOM: {state['head'][:80]!r}")
        rows = state["newlines"] - 1  # the header line
    else:
        sheet.close()
        rows = count_xlsx_rows(relay.folder / "export.xlsx") - 1
        (relay.folder / "export.xlsx").unlink()
    if rows != expected_rows:
        raise SystemExit(f"the {kind} export has {rows:,} rows, not {expected_rows:,}")
    peak = max(value for _, value, _ in samples)
    anon_peak = max(value for _, _, value in samples)
    return {
        "format": kind, "rows": rows, "bytes": state["bytes"], "seconds": total, "first_byte_seconds": first,
        "rows_per_s": rows / total, "relay_cpu_seconds": cpu, "relay_cpu_per_wall": cpu / total,
        "rows_per_relay_cpu_s": rows / cpu if cpu else None, "client_cpu_seconds": client_cpu,
        "rss_before": before, "rss_peak_sampled": peak, "rss_hwm": hwm, "rss_right_after": right_after, "rss_after": after,
        "rss_anon_before": anon_before, "rss_anon_peak_sampled": anon_peak, "rss_anon_after": anon_after,
        "rss_samples": len(samples), "content_type": headers.get("Content-Type"),
        "content_disposition": headers.get("Content-Disposition"),
        "rss_trace": [(round(t, 2), v, a) for t, v, a in samples[:: max(1, len(samples) // 200)]],
    }  # fmt: skip


def count_xlsx_rows(path: pathlib.Path) -> int:
    """`<row` elements in the workbook's first sheet, streamed (the sheet is ~1 GB of XML)."""
    with zipfile.ZipFile(path) as workbook:
        names = [n for n in workbook.namelist() if n.startswith("xl/worksheets/") and n.endswith(".xml")]
        count, carry = 0, b""
        with workbook.open(sorted(names)[0]) as sheet:
            while chunk := sheet.read(1 << 20):
                data = carry + chunk
                count += data.count(b"<row ") + data.count(b"<row>")
                carry = data[-4:]  # shorter than a match: none is counted twice
        return count


# ---- The store's SQL, as SQLStore+Admin.swift builds it (for EXPLAIN and timing) ----

SESSION_COLUMNS = ", ".join(
    "s." + name.strip()
    for name in (
        "id, companyID, engineerLogin, hostID, hostName, mode, startedAt, endedAt, bytesToViewer, bytesToHost, "
        "framesToViewer, framesToHost, endReason, viewerAddress, hostAddress, relayNode, checkpointedAt, viewerClient"
    ).split(",")
)
SECONDS = "COALESCE(s.durationSeconds, (s.checkpointedAt - s.startedAt) / 1000)"
TOP_ENGINEERS = 20
MMAP_BYTES = 16 << 30  # the in-process variant with the file memory-mapped (PRAGMA mmap_size)


def day_range(first: str, last: str) -> tuple[int, int]:
    """`from`/`to` dates (UTC, `to` inclusive) as the API reads them: [from midnight, day after `to`)."""
    start = datetime.datetime.fromisoformat(first).replace(tzinfo=datetime.timezone.utc)
    end = datetime.datetime.fromisoformat(last).replace(tzinfo=datetime.timezone.utc) + datetime.timedelta(days=1)
    return ms(start), ms(end)


def conditions(company: str, engineer: str | None = None, host: str | None = None) -> tuple[str, list]:
    """SQLStore.usageConditions for a token's caller (scope: the whole company)."""
    terms, arguments = ["s.companyID = ?"], [company]
    if engineer is not None:
        terms.append("s.engineerLogin = ?")
        arguments.append(engineer)
    if host is not None:
        terms.append("s.hostID = ?")
        arguments.append(host)
    return " AND ".join(terms), arguments


def page_statements(company: str, first: str, last: str, cursor: tuple[int, str] | None = None, **filters) -> list[tuple[str, list]]:
    """usagePage(_:after:limit:) with limit 51 (the API asks one more than the page)."""
    sql, arguments = conditions(company, **filters)
    low, high = day_range(first, last)
    sql += " AND s.startedAt >= ? AND s.startedAt < ?"
    arguments += [cursor[0] if cursor else low, high]
    if cursor:
        sql += " AND (s.startedAt > ? OR (s.startedAt = ? AND s.id > ?))"
        arguments += [cursor[0], cursor[0], cursor[1]]
    arguments.append(PAGE_LIMIT + 1)
    return [(f"SELECT {SESSION_COLUMNS} FROM session s WHERE {sql} ORDER BY s.startedAt, s.id LIMIT ?", arguments)]


def summary_statements(company: str, first: str, last: str, **filters) -> list[tuple[str, list]]:
    """usageSummary(_:timeZone:) in UTC, as of migration v8: by day (with the bytes; the
    totals are the days' sums), then by engineer (grouped by `+s.engineerLogin`)."""
    sql, arguments = conditions(company, **filters)
    low, high = day_range(first, last)
    day_arguments: list = []
    for start in range(low, high, 86_400_000):
        key = datetime.datetime.fromtimestamp(start / 1000, datetime.timezone.utc).date().isoformat()
        day_arguments += [key, start, min(high, start + 86_400_000)]
    values = ", ".join(["(?, ?, ?)"] * (len(day_arguments) // 3))
    by_day = (
        f"WITH days(day, lo, hi) AS (VALUES {values}) "
        f"SELECT days.day, COUNT(s.id), COALESCE(SUM({SECONDS}), 0), COALESCE(SUM(s.bytesToViewer + s.bytesToHost), 0) FROM days "
        f"LEFT JOIN session s ON s.startedAt >= days.lo AND s.startedAt < days.hi AND {sql} "
        "GROUP BY days.day ORDER BY days.lo"
    )
    by_engineer = (
        f"SELECT s.engineerLogin, COUNT(*) AS n, COALESCE(SUM({SECONDS}), 0) AS t "
        f"FROM session s WHERE {sql} AND s.startedAt >= ? AND s.startedAt < ? "
        "GROUP BY +s.engineerLogin ORDER BY t DESC, n DESC, s.engineerLogin LIMIT ?"
    )
    return [(by_day, day_arguments + arguments), (by_engineer, arguments + [low, high, TOP_ENGINEERS])]


def explain(database: sqlite3.Connection, statements: list[tuple[str, list]]) -> list[list[str]]:
    plans = []
    for sql, arguments in statements:
        rows = database.execute("EXPLAIN QUERY PLAN " + sql, arguments).fetchall()
        plans.append([detail for _, _, _, detail in rows])
    return plans


def time_statements(database: sqlite3.Connection, statements: list[tuple[str, list]], repeats: int) -> list[float]:
    """The median ms of each statement over `repeats` runs (after one untimed run)."""
    medians = []
    for sql, arguments in statements:
        database.execute(sql, arguments).fetchall()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            database.execute(sql, arguments).fetchall()
            times.append((time.perf_counter() - started) * 1000)
        medians.append(statistics.median(times))
    return medians


# ---- Machine ----


def machine(server: pathlib.Path) -> dict:
    cpu = "?"
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = next(int(l.split()[1]) for l in pathlib.Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
    linked = subprocess.run(["ldd", str(server)], capture_output=True, text=True).stdout
    sqlite_lib = next((l.strip() for l in linked.splitlines() if "sqlite" in l), "not dynamically linked")
    head = subprocess.run(["git", "-C", str(REPOSITORY), "log", "-1", "--format=%h %cI"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory / 2**20, 1),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}", "python": platform.python_version(),
        "sqlite_python": sqlite3.sqlite_version, "relay_sqlite": sqlite_lib, "relay_server": str(server),
        "relay_server_built": datetime.datetime.fromtimestamp(server.stat().st_mtime, datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_head": head, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip


# ---- Main ----

ALL_FROM, ALL_TO = "2025-11-01", "2026-11-30"  # the 13 months: all of the company's rows
YEAR_FROM, YEAR_TO = "2025-12-01", "2026-11-30"
MONTH_FROM, MONTH_TO = "2026-11-01", "2026-11-30"


def prepare(database_path: pathlib.Path, manifest: dict, requests: int, warmup: int) -> dict:
    """Cursors, the engineer and host of the filtered cases, and the counts the answers must show."""
    company = manifest["measured_company"]
    database = sqlite3.connect(f"file:{database_path}?mode=ro", uri=True)
    low, high = day_range(ALL_FROM, ALL_TO)
    total = database.execute("SELECT COUNT(*) FROM session s WHERE s.companyID = ? AND s.startedAt >= ? AND s.startedAt < ?", (company, low, high)).fetchone()[0]
    # Row 900,000 (of 1M), then one cursor 1,000 rows further per request; every page full.
    deep = min(900_000, total * 9 // 10)
    step = max(1, min(1000, (total - deep - 2 * PAGE_LIMIT) // (requests + warmup)))
    cursors = database.execute(
        "SELECT startedAt, id FROM session WHERE companyID = ? AND startedAt >= ? AND startedAt < ? ORDER BY startedAt, id LIMIT ? OFFSET ?",
        (company, low, high, (requests + warmup) * step, deep - 1),
    ).fetchall()[::step]  # fmt: skip
    year = day_range(YEAR_FROM, YEAR_TO)
    engineer, engineer_year = database.execute(
        "SELECT engineerLogin, COUNT(*) FROM session WHERE companyID = ? AND startedAt >= ? AND startedAt < ? GROUP BY engineerLogin ORDER BY 2 DESC LIMIT 1",
        (company, *year),
    ).fetchone()  # fmt: skip
    host, host_rows = database.execute(
        "SELECT hostID, COUNT(*) FROM session WHERE companyID = ? AND hostID IS NOT NULL GROUP BY hostID ORDER BY 2 DESC LIMIT 1", (company,)
    ).fetchone()
    month = day_range(MONTH_FROM, MONTH_TO)
    month_rows = database.execute("SELECT COUNT(*) FROM session WHERE companyID = ? AND startedAt >= ? AND startedAt < ?", (company, *month)).fetchone()[0]
    year_rows = database.execute("SELECT COUNT(*) FROM session WHERE companyID = ? AND startedAt >= ? AND startedAt < ?", (company, *year)).fetchone()[0]
    engineer_month = database.execute(
        "SELECT COUNT(*) FROM session WHERE companyID = ? AND engineerLogin = ? AND startedAt >= ? AND startedAt < ?", (company, engineer, *month)
    ).fetchone()[0]
    all_rows = database.execute("SELECT COUNT(*) FROM session").fetchone()[0]
    database.close()
    return {
        "company": company, "company_rows": total, "all_rows": all_rows, "deep_row": deep, "cursors": cursors,
        "engineer": engineer, "engineer_year_rows": engineer_year, "engineer_month_rows": engineer_month,
        "host": host, "host_rows": host_rows, "month_rows": month_rows, "year_rows": year_rows,
    }  # fmt: skip


def cases(prep: dict, requests: int, info_requests: int) -> list[dict]:
    """Each case: its API paths (one per request, warm-ups first), the check of an answer,
    and the store's statements for one request."""
    company, engineer, host = prep["company"], prep["engineer"], prep["host"]

    def page(min_rows: int = PAGE_LIMIT):
        def check(answer):
            assert len(answer["rows"]) >= min(min_rows, PAGE_LIMIT) and answer["next"], answer
        return check

    def summary(sessions: int):
        def check(answer):
            assert answer["sessions"] == sessions, (answer["sessions"], sessions)
        return check

    def deep_check(answer):
        assert len(answer["rows"]) == PAGE_LIMIT and answer["next"], answer

    first_path = "/api/admin/usage?" + query(**{"from": ALL_FROM, "to": ALL_TO, "limit": PAGE_LIMIT})
    deep_paths = [
        "/api/admin/usage?" + query(**{"from": ALL_FROM, "to": ALL_TO, "limit": PAGE_LIMIT, "after": f"{started}:{id_}"})
        for started, id_ in prep["cursors"]
    ]
    month_path = "/api/admin/usage/summary?" + query(**{"from": MONTH_FROM, "to": MONTH_TO})
    engineer_year = "/api/admin/usage/summary?" + query(**{"from": YEAR_FROM, "to": YEAR_TO, "engineer": engineer})
    return [
        {"name": "page, first", "key": "page_first", "target": True, "paths": [first_path] * (requests + 2), "check": page(),
         "statements": page_statements(company, ALL_FROM, ALL_TO),
         "what": f"GET /api/admin/usage?from={ALL_FROM}&to={ALL_TO}&limit=50 ({prep['company_rows']:,} rows in range)"},
        {"name": "page, deep", "key": "page_deep", "target": True, "paths": deep_paths, "check": deep_check,
         "statements": page_statements(company, ALL_FROM, ALL_TO, cursor=tuple(prep["cursors"][0])),
         "what": f"the same with after=STARTED:ID of row {prep['deep_row']:,} (+1,000 per request)"},
        {"name": "summary, month", "key": "summary_month", "target": True, "paths": [month_path] * (requests + 2),
         "check": summary(prep["month_rows"]), "statements": summary_statements(company, MONTH_FROM, MONTH_TO),
         "proposed": proposed_summary_statements(company, MONTH_FROM, MONTH_TO),
         "what": f"GET /api/admin/usage/summary?from={MONTH_FROM}&to={MONTH_TO} ({prep['month_rows']:,} sessions)"},
        {"name": "summary, engineer, year", "key": "summary_engineer_year", "target": True, "paths": [engineer_year] * (requests + 2),
         "check": summary(prep["engineer_year_rows"]), "statements": summary_statements(company, YEAR_FROM, YEAR_TO, engineer=engineer),
         "proposed": proposed_summary_statements(company, YEAR_FROM, YEAR_TO, engineer=engineer),
         "what": f"GET /api/admin/usage/summary?from={YEAR_FROM}&to={YEAR_TO}&engineer={engineer} ({prep['engineer_year_rows']:,} sessions, the busiest engineer)"},
        # Information: other requests of the usage page.
        {"name": "page, engineer filter", "key": "page_engineer", "target": False,
         "paths": ["/api/admin/usage?" + query(**{"from": ALL_FROM, "to": ALL_TO, "limit": PAGE_LIMIT, "engineer": engineer})] * (info_requests + 2),
         "check": page(), "statements": page_statements(company, ALL_FROM, ALL_TO, engineer=engineer),
         "what": f"first page, engineer={engineer}, the 13 months"},
        {"name": "page, host filter", "key": "page_host", "target": False,
         "paths": ["/api/admin/usage?" + query(**{"from": ALL_FROM, "to": ALL_TO, "limit": PAGE_LIMIT, "host": host})] * (info_requests + 2),
         "check": page(), "statements": page_statements(company, ALL_FROM, ALL_TO, host=host),
         "what": f"first page, host={host} ({prep['host_rows']:,} sessions), the 13 months"},
        {"name": "summary, engineer, month", "key": "summary_engineer_month", "target": False,
         "paths": ["/api/admin/usage/summary?" + query(**{"from": MONTH_FROM, "to": MONTH_TO, "engineer": engineer})] * (info_requests + 2),
         "check": summary(prep["engineer_month_rows"]), "statements": summary_statements(company, MONTH_FROM, MONTH_TO, engineer=engineer),
         "proposed": proposed_summary_statements(company, MONTH_FROM, MONTH_TO, engineer=engineer),
         "what": f"summary of {MONTH_FROM[:7]}, engineer={engineer} ({prep['engineer_month_rows']:,} sessions)"},
        {"name": "summary, company, year", "key": "summary_year", "target": False,
         "paths": ["/api/admin/usage/summary?" + query(**{"from": YEAR_FROM, "to": YEAR_TO})] * (min(info_requests, 5) + 2),
         "check": summary(prep["year_rows"]), "statements": summary_statements(company, YEAR_FROM, YEAR_TO),
         "proposed": proposed_summary_statements(company, YEAR_FROM, YEAR_TO),
         "what": f"summary {YEAR_FROM}..{YEAR_TO}, whole company ({prep['year_rows']:,} sessions)"},
    ]  # fmt: skip


def measure_relay(server: pathlib.Path, run: pathlib.Path, token: str, prep: dict, all_cases: list[dict], args, exports: bool = True) -> dict:
    """Starts the relay on the run's copy, times every case and the exports, stops it."""
    out: dict = {}
    relay = Relay(server, run)
    out["start_seconds"] = relay.start()
    log(f"relay: listening after {out['start_seconds']:.1f} s")
    try:
        client = Client(relay.port, token)
        me, _ = client.json("/api/admin/me")
        assert me["role"] == "token" and me["companyID"] == prep["company"], me
        out["rss_after_start"] = relay.status("VmRSS")
        results = {}
        for case in all_cases:
            log(f"case: {case['name']} ({len(case['paths']) - 2} requests)")
            result = timed_requests(client, case["paths"], 2, case["check"])
            results[case["key"]] = {"name": case["name"], "what": case["what"], "target": case["target"], **result}
            log(f"  median {result['median_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms")
        out["requests"] = results
        out["exports"] = []
        export_path = "/api/admin/usage/export?" + query(**{"from": ALL_FROM, "to": ALL_TO})
        for kind, runs in (("csv", args.csv_runs), ("xlsx", args.xlsx_runs)) if exports else ():
            for index in range(runs):
                log(f"export: {kind} {index + 1} of {runs}")
                result = export_once(relay, client, f"{export_path}&format={kind}", kind, prep["company_rows"])
                log(f"  {result['rows']:,} rows in {result['seconds']:.2f} s: {result['rows_per_s']:,.0f} rows/s "
                    f"(relay cpu/wall {result['relay_cpu_per_wall']:.2f}); RSS {mib(result['rss_before'])} -> peak "
                    f"{mib(result['rss_peak_sampled'])} -> {mib(result['rss_after'])} MiB")  # fmt: skip
                out["exports"].append(result)
        if exports and args.perf:
            log("export: csv once more under perf record (not timed)")
            out["perf"] = perf_export(relay, client, f"{export_path}&format=csv", prep["company_rows"], run)
        client.close()
    finally:
        out["relay_log_tail"] = relay.log()[-2000:]
        relay.stop()
    return out


def perf_export(relay: Relay, client: Client, path: str, rows: int, run: pathlib.Path) -> dict:
    """Where the relay's CPU goes during a CSV export: perf record of the process, perf report
    by library and by symbol (Swift names demangled)."""
    data = run / "perf.data"
    recorder = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(relay.process.pid), "-o", str(data)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(1.0)
    result = export_once(relay, client, path, "csv", rows)
    recorder.send_signal(2)
    recorder.wait(timeout=60)
    reports = {}
    for name, sort in (("by_library", "dso"), ("by_symbol", "dso,sym")):
        text = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", sort, "--stdio", "-g", "none", "--percent-limit", "0.7"],
                              capture_output=True, text=True).stdout  # fmt: skip
        if shutil.which("swift"):
            text = subprocess.run(["swift", "demangle", "--simplified"], input=text, capture_output=True, text=True).stdout or text
        reports[name] = [line for line in text.splitlines() if line.strip() and not line.startswith("#")][:40]
    (run / "perf-report.txt").write_text("\n".join(reports["by_library"] + [""] + reports["by_symbol"]) + "\n")
    return {"export": {k: v for k, v in result.items() if k != "rss_trace"}, **reports}


def sql_figures(database_path: pathlib.Path, all_cases: list[dict], repeats: int, pragmas: tuple[str, ...] = ()) -> dict:
    """EXPLAIN QUERY PLAN and in-process time of each case's statements; for the summaries,
    also of the proposed statements, checked against the current statements' answer.
    `pragmas` run first on the connection (the relay's own connections: none of these)."""
    database = sqlite3.connect(f"file:{database_path}?mode=ro", uri=True)
    for pragma in pragmas:
        database.execute(pragma).fetchall()
    figures = {}
    for case in all_cases:
        entry = {
            "plans": explain(database, case["statements"]),
            "statement_ms": time_statements(database, case["statements"], repeats),
            "sql": [sql if len(sql) < 600 else sql[:300] + " ... " + sql[-250:] for sql, _ in case["statements"]],
        }
        if "proposed" in case:
            entry["proposed_plans"] = explain(database, case["proposed"])
            entry["proposed_ms"] = time_statements(database, case["proposed"], repeats)
            current = [database.execute(sql, arguments).fetchall() for sql, arguments in case["statements"]]
            proposed = [database.execute(sql, arguments).fetchall() for sql, arguments in case["proposed"]]
            entry["proposed_same_answer"] = same_summary(current, proposed)
        figures[case["key"]] = entry
    database.close()
    return figures


def proposed_summary_statements(company: str, first: str, last: str, **filters) -> list[tuple[str, list]]:
    """The summary as proposed (RESULTS.md): by engineer groups by `+s.engineerLogin`, so
    that SQLite reads the range rather than the whole company in session_engineer's order
    (which saves the GROUP BY's sort); by day as it is."""
    (by_day, day_arguments), (by_engineer, engineer_arguments) = summary_statements(company, first, last, **filters)
    return [(by_day, day_arguments), (by_engineer.replace("GROUP BY s.engineerLogin", "GROUP BY +s.engineerLogin"), engineer_arguments)]


def same_summary(current: list[list[tuple]], proposed: list[list[tuple]]) -> bool:
    """Whether the proposed statements' answer is the current one's."""
    return [[tuple(row) for row in rows] for rows in current] == [[tuple(row) for row in rows] for rows in proposed]


def checkpoint_ms(database_path: pathlib.Path, sessions: int = 10_000, repeats: int = 7) -> dict:
    """The relay's checkpoint (UsageRecorder.flush: new counters for every live session, one
    transaction, the UPDATE of SQLStore.write) for `sessions` open sessions of the measured
    company: median wall and CPU ms of this process (CPU time is steadier on a shared machine). The open sessions are added once, on 2026-12-02 (outside every
    measured range) with another relay node's name (the relay under test leaves them open)."""
    database = sqlite3.connect(database_path, isolation_level=None)
    database.execute("PRAGMA secure_delete = ON")
    company = database.execute("SELECT id FROM company ORDER BY createdAt LIMIT 1").fetchone()[0]
    ids = [row[0] for row in database.execute("SELECT id FROM session WHERE relayNode = 'bench-other' AND endedAt IS NULL")]
    if len(ids) < sessions:
        rng = random.Random(10)
        start = ms(datetime.datetime(2026, 12, 2, 9, tzinfo=datetime.timezone.utc))
        rows = []
        for index in range(sessions - len(ids)):
            started = start + index * 1000
            rows.append((f"{rng.getrandbits(128):032x}", company, f"live.{index % 100}", None, f"DESKTOP-{index:07X}", "attended", started, None, None,
                         0, 0, 0, 0, None, "198.51.100.7:40000", "203.0.113.9:50000", "bench-other", started, "browser"))  # fmt: skip
        database.execute("BEGIN")
        database.executemany("INSERT INTO session VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)".replace(
            "VALUES", "(id, companyID, engineerLogin, hostID, hostName, mode, startedAt, endedAt, durationSeconds, bytesToViewer, "
            "bytesToHost, framesToViewer, framesToHost, endReason, viewerAddress, hostAddress, relayNode, checkpointedAt, viewerClient) VALUES"), rows)  # fmt: skip
        database.execute("COMMIT")
        ids = [row[0] for row in database.execute("SELECT id FROM session WHERE relayNode = 'bench-other' AND endedAt IS NULL")]
    update = (
        "UPDATE session SET bytesToViewer = ?, bytesToHost = ?, framesToViewer = ?, framesToHost = ?, checkpointedAt = ? "
        "WHERE id = ? AND endedAt IS NULL"
    )
    times, cpu = [], []
    for round_ in range(repeats + 1):
        at = ms(datetime.datetime(2026, 12, 2, 12, tzinfo=datetime.timezone.utc)) + round_ * 30_000
        arguments = [(round_ * 1000 + i, round_ * 10 + i, round_ * 5, round_ * 2, at, id_) for i, id_ in enumerate(ids)]
        started, started_cpu = time.perf_counter(), time.process_time()
        database.execute("BEGIN")
        database.executemany(update, arguments)
        database.execute("COMMIT")
        if round_ > 0:
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
    database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    database.close()
    return {"wall_ms": statistics.median(times), "cpu_ms": statistics.median(cpu), "wall_runs": times, "cpu_runs": cpu}


# Index changes to try (--proposal NAME, in the order given), applied to the run's copy
# after the main measurement; the relay is then started again on it and measured again.
PROPOSALS = {
    # The filtered pages: the filter's equality, then the page order (startedAt, id), so that
    # SQLite reads the filter's rows in page order instead of the company's rows.
    "filter-order": [
        "DROP INDEX session_engineer",
        'CREATE INDEX "session_engineer" ON "session"("companyID", "engineerLogin", "startedAt", "id")',
        "DROP INDEX session_host",
        'CREATE INDEX "session_host" ON "session"("companyID", "hostID", "startedAt", "id")',
    ],
    # The summaries read only index entries: the engineer's index (as filter-order, plus the
    # summed columns) and a second company index by start time with the summed columns. It
    # has no `id`, so it covers the by-day statement only with COUNT(s.startedAt) for
    # COUNT(s.id) (measured on bdb66ad; summary-cover-started is the one proposed).
    "summary-cover": [
        "DROP INDEX session_engineer",
        'CREATE INDEX "session_engineer" ON "session"("companyID", "engineerLogin", "startedAt", "id", "durationSeconds", "checkpointedAt", '
        '"bytesToViewer", "bytesToHost")',
        'CREATE INDEX "session_company_usage" ON "session"("companyID", "startedAt", "engineerLogin", "durationSeconds", "checkpointedAt", '
        '"bytesToViewer", "bytesToHost")',
    ],
    # As summary-cover, but the company's index by start time (pages, exports) carries the
    # summed columns itself instead of a second index by start time: smaller.
    "summary-cover-started": [
        "DROP INDEX session_engineer",
        'CREATE INDEX "session_engineer" ON "session"("companyID", "engineerLogin", "startedAt", "id", "durationSeconds", "checkpointedAt", '
        '"bytesToViewer", "bytesToHost")',
        "DROP INDEX session_company_started",
        'CREATE INDEX "session_company_started" ON "session"("companyID", "startedAt", "id", "engineerLogin", "durationSeconds", "checkpointedAt", '
        '"bytesToViewer", "bytesToHost")',
    ],
}


def index_bytes(database_path: pathlib.Path) -> dict:
    """Bytes of each index of `session` (dbstat), or {} where SQLite lacks dbstat."""
    try:
        with sqlite3.connect(f"file:{database_path}?mode=ro", uri=True) as database:
            rows = database.execute(
                "SELECT name, SUM(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master WHERE tbl_name = 'session') GROUP BY name"
            ).fetchall()
        return dict(rows)
    except sqlite3.Error:
        return {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", type=pathlib.Path, default=DEFAULT_BUILD, help="folder with relay-server (default: .build-release/release)")
    parser.add_argument("--cache", type=pathlib.Path, default=DEFAULT_CACHE, help="seeded data folders and the run's copy (default: .build-bench-admin)")
    parser.add_argument("--rows", type=int, default=10_000_000, help="usage records of all companies (default 10M)")
    parser.add_argument("--measured-rows", type=int, default=1_000_000, help="records of the measured company (default 1M)")
    parser.add_argument("--seed", type=int, default=14, help="random seed of the history")
    parser.add_argument("--reseed", action="store_true", help="seed again even if the cache has this history")
    parser.add_argument("--seed-only", action="store_true", help="seed (or check the cache) and stop")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page/summary case (default 20)")
    parser.add_argument("--info-requests", type=int, default=10, help="timed requests per information case (default 10; 5 at most for the year summary)")
    parser.add_argument("--csv-runs", type=int, default=3, help="CSV exports (default 3)")
    parser.add_argument("--xlsx-runs", type=int, default=1, help="XLSX exports (default 1)")
    parser.add_argument("--sql-repeats", type=int, default=5, help="in-process runs of each statement (default 5)")
    parser.add_argument("--perf", action="store_true", help="one more CSV export under perf record: where the relay's CPU goes")
    parser.add_argument("--proposal", action="append", default=[], choices=sorted(PROPOSALS), help="then apply these index changes and measure again")
    parser.add_argument("--label", default="", help="what the relay-server binary is (e.g. the commit it was built from), for the report")
    parser.add_argument("--json", type=pathlib.Path, help="write every figure here")
    args = parser.parse_args()

    server = (args.build_dir / "relay-server").resolve()
    if not server.is_file():
        raise SystemExit(f"{server} is missing: swift build -c release --scratch-path .build-release --product relay-server")
    seeded, manifest = cached_seed(server, args.cache.resolve(), args.rows, args.measured_rows, args.seed, args.reseed)
    if args.seed_only:
        return 0

    report: dict = {"command": " ".join([pathlib.Path(sys.executable).name, *sys.argv]), "load_average_start": os.getloadavg(),
                    "seed": manifest, "machine": machine(server), "label": args.label}  # fmt: skip
    run = args.cache.resolve() / "run"
    if run.exists():
        shutil.rmtree(run)
    (run / "data").mkdir(parents=True)
    started = time.monotonic()
    shutil.copyfile(seeded / "data" / "relay.sqlite", run / "data" / "relay.sqlite")
    os.chmod(run / "data", 0o700)
    os.chmod(run / "data" / "relay.sqlite", 0o600)
    log(f"run: copied the seeded store to {run} in {time.monotonic() - started:.1f} s")
    database_path = run / "data" / "relay.sqlite"
    prep = prepare(database_path, manifest, args.requests, 2)
    token = add_token(database_path, prep["company"])
    report["file_bytes"] = database_path.stat().st_size
    report["prepared"] = {k: v for k, v in prep.items() if k != "cursors"}
    log(f"run: {prep['all_rows']:,} rows in the store, {prep['company_rows']:,} of the measured company; engineer {prep['engineer']}")

    all_cases = cases(prep, args.requests, args.info_requests)
    report.update(measure_relay(server, run, token, prep, all_cases, args))
    report["load_average_end"] = os.getloadavg()
    log("sql: EXPLAIN QUERY PLAN and in-process timings")
    report["sql"] = sql_figures(database_path, all_cases, args.sql_repeats)
    report["sql_mmap"] = sql_figures(database_path, all_cases, args.sql_repeats, (f"PRAGMA mmap_size = {MMAP_BYTES}",))
    report["index_bytes"] = index_bytes(database_path)
    log("sql: the relay's checkpoint of 10,000 live sessions")
    report["checkpoint_ms"] = checkpoint_ms(database_path)

    report["proposals"] = {}
    for name in args.proposal:
        log(f"proposal {name}: applying to the run's copy")
        started = time.monotonic()
        with sqlite3.connect(database_path, isolation_level=None) as database:
            for statement in PROPOSALS[name]:
                database.execute(statement)
            database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        proposal = {"sql": PROPOSALS[name], "apply_seconds": time.monotonic() - started, "load_average_start": os.getloadavg()}
        again = argparse.Namespace(**{**vars(args), "csv_runs": min(1, args.csv_runs), "xlsx_runs": 0, "perf": False})
        proposal.update(measure_relay(server, run, token, prep, all_cases, again))
        proposal["sql_figures"] = sql_figures(database_path, all_cases, args.sql_repeats)
        proposal["index_bytes"] = index_bytes(database_path)
        proposal["checkpoint_ms"] = checkpoint_ms(database_path)
        report["proposals"][name] = proposal
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str))
        log(f"wrote {args.json}")
    return 0


# ---- Report ----


def mib(value: int | None) -> str:
    return "—" if value is None else f"{value / 2**20:.1f}"


def print_report(report: dict) -> None:
    m, seed_ = report["machine"], report["seed"]
    print(f"\n## Admin console benchmark — {m['date']}\n")
    print(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}; relay SQLite: {m['relay_sqlite']} "
          f"(Python's: {m['sqlite_python']}); relay-server built {m['relay_server_built']} (HEAD {m['git_head']}).")  # fmt: skip
    if report["label"]:
        print(f"Binary: {report['label']}.")
    print(f"Load average: start {report['load_average_start']}, end {report['load_average_end']}.")
    print(f"Store: {report['prepared']['all_rows']:,} sessions in {len(seed_['companies'])} companies, {report['file_bytes'] / 2**30:.2f} GiB; "
          f"measured company {report['prepared']['company']}: {report['prepared']['company_rows']:,} rows.")  # fmt: skip
    print_measurement(report)
    print("\nEXPLAIN QUERY PLAN and in-process time (median ms) of the store's statements for one request:\n")
    print_sql(report["requests"], report["sql"])
    print(f"\nThe same statements with PRAGMA mmap_size = {MMAP_BYTES} (ms): " + "; ".join(
        f"{report['requests'][key]['name']} " + " + ".join(f"{v:.1f}" for v in s["statement_ms"])
        + (" (proposed " + " + ".join(f"{v:.1f}" for v in s["proposed_ms"]) + ")" if "proposed_ms" in s else "")
        for key, s in report["sql_mmap"].items()))  # fmt: skip
    if report.get("perf"):
        print("\nperf, relay-server during one CSV export, by library:\n")
        print("\n".join("    " + line for line in report["perf"]["by_library"][:12]))
        print("\nby symbol:\n")
        print("\n".join("    " + line for line in report["perf"]["by_symbol"][:30]))
    print(f"\nIndex sizes (MiB): " + ", ".join(f"{k} {v / 2**20:.0f}" for k, v in report["index_bytes"].items()))
    print(f"Checkpoint of 10,000 live sessions (one transaction, in-process): {report['checkpoint_ms']['wall_ms']:.1f} ms, "
          f"CPU {report['checkpoint_ms']['cpu_ms']:.1f} ms")  # fmt: skip
    for name, proposal in report["proposals"].items():
        print(f"\n### With proposal {name} (applied in {proposal['apply_seconds']:.0f} s)\n")
        print("\n".join("    " + statement for statement in proposal["sql"]))
        print_measurement(proposal)
        print()
        print_sql(proposal["requests"], proposal["sql_figures"])
        print(f"\nIndex sizes (MiB): " + ", ".join(f"{k} {v / 2**20:.0f}" for k, v in proposal["index_bytes"].items()))
        print(f"Checkpoint of 10,000 live sessions (one transaction, in-process): {proposal['checkpoint_ms']['wall_ms']:.1f} ms, "
              f"CPU {proposal['checkpoint_ms']['cpu_ms']:.1f} ms")  # fmt: skip


def print_measurement(report: dict) -> None:
    print("\n| request | what | n | median ms | p95 ms | min–max ms | target |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in report["requests"].values():
        verdict = ("PASS" if r["median_ms"] <= TARGET_PAGE_MS and r["p95_ms"] <= TARGET_PAGE_MS else "FAIL") if r["target"] else "info"
        print(f"| {r['name']} | {r['what']} | {r['requests']} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | {r['min_ms']:.1f}–{r['max_ms']:.1f} | "
              f"{'≤ 100 ms: ' + verdict if r['target'] else verdict} |")  # fmt: skip
    if not report["exports"]:
        return
    print("\n| export | rows | MB | s | rows/s | first byte s | relay cpu/wall | rows per relay CPU-s | RSS before MiB | peak (sampled) | VmHWM | after | anon before | anon peak | anon after | target |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for e in report["exports"]:
        verdict = ("≥ 200k rows/s: " + ("PASS" if e["rows_per_s"] >= TARGET_EXPORT_ROWS_PER_S else "FAIL")) if e["format"] == "csv" else "info"
        print(f"| {e['format']} | {e['rows']:,} | {e['bytes'] / 1e6:.1f} | {e['seconds']:.2f} | {e['rows_per_s']:,.0f} | {e['first_byte_seconds']:.2f} | "
              f"{e['relay_cpu_per_wall']:.2f} | {e['rows_per_relay_cpu_s']:,.0f} | {mib(e['rss_before'])} | {mib(e['rss_peak_sampled'])} | "
              f"{mib(e['rss_hwm'])} | {mib(e['rss_after'])} | {mib(e['rss_anon_before'])} | {mib(e['rss_anon_peak_sampled'])} | "
              f"{mib(e['rss_anon_after'])} | {verdict} |")  # fmt: skip


def print_sql(requests: dict, figures: dict) -> None:
    for key, s in figures.items():
        line = f"- {requests[key]['name']}: " + "; ".join(
            f"{ms_:.1f} ms [" + " / ".join(plan) + "]" for plan, ms_ in zip(s["plans"], s["statement_ms"]))  # fmt: skip
        if "proposed_ms" in s:
            line += f". Proposed statements: " + "; ".join(
                f"{ms_:.1f} ms [" + " / ".join(plan) + "]" for plan, ms_ in zip(s["proposed_plans"], s["proposed_ms"]))
            line += f" (same answer: {s['proposed_same_answer']})"
        print(line)


if __name__ == "__main__":
    sys.exit(main())
