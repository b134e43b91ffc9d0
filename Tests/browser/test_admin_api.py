"""The admin API (/api/admin/, issue 14) attacked from its contract alone, as a customer's
security team would: a real relay-server over TLS on loopback, people signed in through
the real sign-in pages in Chromium (link, password, two-factor), then the API called with
their session cookies from a plain HTTPS client, and with API tokens.

- Every role (admin, manager, engineer, operator) against every route: what it may read,
  that everything else is 403 (401 without a session), and that refused changes changed
  nothing. A manager sees their engineers and their groups' hosts; an engineer their own
  sessions; an operator the relay's counts only.
- Two companies: nothing of one shows in the other's answers or files, and the other's ids
  are 404 to every change.
- CSRF and Origin on session POSTs; API tokens by scope, revoked and made-up ones,
  throttling of repeated failures.
- Exports: the CSV's BOM, CRLF and formula escaping, XLSX read back with openpyxl, filters,
  the audit entry. Markup in every free-text field comes back as the same JSON text.
- Keyset pages over ~120 sessions (with equal start times across a page boundary) and
  made-up cursors, the signed webhook and its alerts, sessions ending with the engineer
  (removed, disabled, new two-factor), a rotated host key, and that every refusal is a
  JSON sentence that says what to do.

The product bugs this file found first (nulls left out, internals in a webhook's failure,
a refusal's advice, the relay's version, a taken login's sentence) are fixed; their tests
stay as ordinary tests.

Usage rows are written into the relay's SQLite file while it runs (the `session` table),
plus one real session through the browser viewer. One relay serves the whole module;
tests that change shared things put them back.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import hmac
import http.client
import http.server
import io
import json
import re
import ssl
import threading
import time
import urllib.parse

import openpyxl
import pytest
from relayserver import SESSION_COOKIE, Relay, insert_usage, sign_in, wait_until_online

PASSWORD = "a long enough passphrase"

# Cell values a spreadsheet would run as formulas, as host names.
HYPERLINK = '=HYPERLINK("http://evil","x")'
PLUS = "+1-2"
KOREAN_HOST = "회계팀 PC-03"
# Markup, quotes, backslashes, a JSON line separator and a template in one free-text value.
XSS = "\"'><img src=x onerror=alert(1)><script>alert('x')</script>\\ \u2028 {{7*7}} ${7*7} 한글"

# ---- An HTTPS client for the API ----


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the relay's development certificate
    context.set_alpn_protocols(["http/1.1"])
    return context


TLS = _tls_context()


@dataclasses.dataclass
class Response:
    method: str
    path: str
    status: int
    headers: dict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.body)

    def __str__(self) -> str:
        return f"{self.method} {self.path} → {self.status} {self.text[:400]}"


# Every 4xx answer any test saw, checked by test_every_refusal_is_a_json_sentence_that_says_what_to_do.
REFUSALS: list[Response] = []


class Api:
    """Calls the relay's web port as one caller: a session cookie (POSTs with the page's
    Origin and the session's CSRF token), an API token, or nobody."""

    def __init__(self, relay: Relay, *, cookie: str | None = None, token: str | None = None, name: str = ""):
        self.relay = relay
        self.cookie = cookie
        self.token = token
        self.name = name
        self._csrf: str | None = None

    def request(self, method: str, path: str, body=None, headers: dict | None = None, *, raw: bytes | None = None) -> Response:
        sent = {"Host": self.relay.address, **(headers or {})}
        if self.cookie is not None:
            sent["Cookie"] = f"{SESSION_COOKIE}={self.cookie}"
        if self.token is not None:
            sent["Authorization"] = f"Bearer {self.token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        connection = http.client.HTTPSConnection("127.0.0.1", self.relay.port, context=TLS, timeout=30)
        try:
            connection.request(method, path, body=data, headers=sent)
            answer = connection.getresponse()
            response = Response(method, path, answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read())
        finally:
            connection.close()
        if 400 <= response.status < 500:
            REFUSALS.append(response)
        return response

    def get(self, path: str, **parameters) -> Response:
        if parameters:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(parameters)
        return self.request("GET", path)

    @property
    def csrf(self) -> str:
        if self._csrf is None:
            me = self.get("/api/admin/me")
            assert me.status == 200, str(me)
            self._csrf = me.json()["csrf"]
        return self._csrf

    def post(self, path: str, body=None) -> Response:
        headers = {}
        if self.cookie is not None:
            headers = {"Origin": self.relay.url, "X-CSRF-Token": self.csrf}
        return self.request("POST", path, {} if body is None else body, headers)

    def ok(self, method: str, path: str, body=None, **parameters):
        """The JSON of a 200 answer (fails with the answer otherwise)."""
        response = self.get(path, **parameters) if method == "GET" else self.post(path, body)
        assert response.status == 200, f"{self.name}: {response}"
        assert response.headers.get("content-type", "").startswith("application/json"), f"{self.name}: {response.headers}"
        return response.json()


def expect_status(response: Response, status: int, who: str = "") -> Response:
    assert response.status == status, f"{who}: expected {status}, got {response}"
    return response


# Internals that a person should never read in a refusal.
INTERNALS = re.compile(r"Error\(|Swift\.|Optional\(|DecodingError|keyNotFound|typeMismatch|valueNotFound|\bnil\b|GRDB|SQLITE|sqlite3|Foundation\.|\bat line\b|\bstack\b")
# Words that tell the reader what to do, or what a request must be.
DIRECTIONS = re.compile(
    r";|e\.g\.|\b(must|required|use|try|ask|sign|reload|start|choose|give|pick|type|send|remove|set|check|enter|open|add|"
    r"wait|pass|make|made by|contact|change|write|only|again)\b",
    re.IGNORECASE,
)


def refusal_problem(response: Response) -> str | None:
    """What is wrong with a 4xx answer as a refusal a person can act on; None if nothing."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return f"not JSON ({response.headers.get('content-type')})"
    try:
        body = json.loads(response.body)
    except ValueError:
        return "a body that is not JSON"
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return 'no {"error": "…"} string'
    sentence = body["error"].strip()
    if len(sentence.split()) < 5:
        return "too short to say what happened and what to do"
    if INTERNALS.search(sentence):
        return "shows the program's internals"
    if not DIRECTIONS.search(sentence):
        return "does not say what to do"
    return None


# ---- A webhook receiver on loopback ----


class Receiver:
    """A tiny HTTP server on 127.0.0.1 that keeps every POST it gets."""

    def __init__(self):
        self.posts: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.posts.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def received(self, path: str) -> list[dict]:
        with self.lock:
            return [post for post in self.posts if post["path"] == path]

    def wait_for(self, path: str, predicate, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for post in self.received(path):
                if predicate(post):
                    return post
            time.sleep(0.1)
        raise AssertionError(f"no delivery to {path} matched within {timeout} s; got {self.received(path)}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- The world: two companies and an operators' one, everyone signed in ----


@dataclasses.dataclass
class Row:
    id: str
    company: str
    engineer: str
    host_id: str | None
    host_name: str
    mode: str
    started_ms: int
    ended_ms: int | None
    reason: str | None


@dataclasses.dataclass
class World:
    relay: Relay
    receiver: Receiver
    a: str  # company ids
    b: str
    ops: str
    ids: dict  # login or name → id (company A unless prefixed "b:")
    api: dict  # "alice", "mina", "kim", "ops", "bob", "nobody" → Api
    rows: list  # every inserted or real session Row of both companies
    range: dict  # from/to covering every row
    b_markers: list  # strings of company B that must never reach company A

    def a_rows(self, **match) -> list[Row]:
        return [row for row in self.rows if row.company == self.a and all(getattr(row, k) == v for k, v in match.items())]


def _sign_in(browser, relay: Relay, company: str, login: str, role: str) -> tuple[str, str]:
    """Adds a person with `role` by the CLI and signs them in through the pages; returns
    (engineer id, session cookie)."""
    added = relay.cli_json("engineer", "add", "--company", company, "--role", role, "--web-url", relay.url, login)
    context = browser.new_context(ignore_https_errors=True)
    try:
        sign_in(context.new_page(), relay, login, PASSWORD, company=company, link=relay._on_this_relay(added["signin_link"]))
        cookie = next(c["value"] for c in context.cookies() if c["name"] == SESSION_COOKIE)
    finally:
        context.close()  # the web session lives on at the relay: the cookie is all the API needs
    return added["id"], cookie


def _insert_sessions(relay: Relay, rows: list[Row]) -> None:
    """Writes usage rows into the running relay's database (WAL: the relay keeps going)."""
    insert_usage(
        relay,
        (
            (
                row.id, row.company, row.engineer, row.host_id, row.host_name, row.mode, row.started_ms, row.ended_ms,
                None if row.ended_ms is None else (row.ended_ms - row.started_ms) // 1000,
                1000 + index, 200 + index, 10, 5, row.reason, "203.0.113.7:50000", "198.51.100.9:40000", "test-node",
                row.ended_ms or row.started_ms, "browser" if index % 2 else "agent",
            )
            for index, row in enumerate(rows)
        ),
    )  # fmt: skip


def _make_rows(a: str, b: str, ids: dict) -> list[Row]:
    """~120 sessions of company A over five days (seven with one start time across the
    first page boundary) and 15 of company B, interleaved in time, whose engineer has the
    same login as one of A's."""
    base = (int(time.time()) // 3600 - 10 * 24) * 3600 * 1000
    rows = []
    for index in range(120):
        started = base + (47 if 47 <= index <= 53 else index) * 3_600_000
        engineer, host_id, host_name = {
            0: ("kim.minji", ids[KOREAN_HOST], KOREAN_HOST),
            1: ("kim.minji", ids[HYPERLINK], HYPERLINK),
            2: ("park.jisoo", ids["Warehouse PC"], "Warehouse PC"),
            3: ("mina.manager", ids[PLUS], PLUS),
        }[index % 4]
        open_ = index in (118, 119)
        rows.append(
            Row(
                id=f"se-t{index:03d}a", company=a, engineer=engineer, host_id=host_id, host_name=host_name,
                mode="unattended" if index % 3 == 0 else "attended", started_ms=started,
                ended_ms=None if open_ else started + (60 + index) * 1000,
                reason=None if open_ else ("peer_left" if index % 2 else "normal"),
            )
        )  # fmt: skip
    # A support-code session (no host id) whose names a spreadsheet would also run.
    for index, (engineer, host_name) in enumerate((("@SUM(1+1)", "-2+3"), ("kim.minji", "\t=1+1"))):
        started = base + (120 + index) * 3_600_000
        rows.append(Row(f"se-t{120 + index:03d}a", a, engineer, None, host_name, "attended", started, started + 5000, "normal"))
    for index in range(15):
        started = base + index * 8 * 3_600_000 + 1_800_000
        rows.append(
            Row(
                id=f"se-t{index:03d}b", company=b, engineer="kim.minji", host_id=ids["b:host"], host_name="B-ONLY 비밀 호스트",
                mode="attended", started_ms=started, ended_ms=started + 300_000, reason="peer_left",
            )
        )  # fmt: skip
    return rows


def _real_session(browser, relay: Relay, kim_cookie: str, host_id: str) -> None:
    """kim views a running host in the browser viewer and leaves: one real usage row."""
    context = browser.new_context(ignore_https_errors=True)
    try:
        context.add_cookies([{"name": SESSION_COOKIE, "value": kim_cookie, "url": relay.url}])
        page = context.new_page()
        page.goto(f"{relay.url}/")
        wait_until_online(page, host_id)
        page.goto(f"{relay.url}/view#host={host_id}")
        page.locator("body[data-state='live']").wait_for(timeout=30_000)
    finally:
        context.close()


@pytest.fixture(scope="module")
def world(browser, tmp_path_factory, request):
    failed_before = request.session.testsfailed
    # Exports are limited to 10 a minute per address or company (OPERATIONS.md); these tests
    # make more, all from 127.0.0.1. test_the_shipped_limits_… checks that limit.
    settings = {"admin_request_burst": 1000, "admin_requests_per_minute": 6000, "webhook_allow_loopback": True}
    relay = Relay(tmp_path_factory.mktemp("admin-api") / "relay", settings=settings).start()
    receiver = Receiver()
    try:
        a = relay.add_company("Acme 한국")
        b = relay.add_company("Beta Corp")
        ops = relay.add_company("Relay operators")
        ids: dict = {}
        cookies: dict = {}
        for login, company, role in (
            ("alice", a, "admin"),
            ("mina.manager", a, "manager"),
            ("kim.minji", a, "engineer"),
            ("ops.oh", ops, "operator"),
            ("bob.b", b, "admin"),
        ):
            ids[login], cookies[login] = _sign_in(browser, relay, company, login, role)
        ids["park.jisoo"] = relay.cli_json("engineer", "add", "--company", a, "park.jisoo")["id"]
        ids["b:kim.minji"] = relay.cli_json("engineer", "add", "--company", b, "kim.minji")["id"]
        ids["b:manager"] = relay.cli_json("engineer", "add", "--company", b, "--role", "manager", "b.manager")["id"]
        api = {
            "alice": Api(relay, cookie=cookies["alice"], name="admin alice"),
            "mina": Api(relay, cookie=cookies["mina.manager"], name="manager mina"),
            "kim": Api(relay, cookie=cookies["kim.minji"], name="engineer kim"),
            "ops": Api(relay, cookie=cookies["ops.oh"], name="operator"),
            "bob": Api(relay, cookie=cookies["bob.b"], name="B's admin bob"),
            "nobody": Api(relay, name="no session"),
        }
        alice, bob = api["alice"], api["bob"]

        # Company A's hosts (through the API) and a running one; kim is mina's, mina has Sales.
        for name, group in ((KOREAN_HOST, "Sales"), (HYPERLINK, "Sales"), (PLUS, ""), ("Warehouse PC", "Warehouse")):
            ids[name] = alice.ok("POST", "/api/admin/hosts", {"name": name, "group": group})["host"]["id"]
        ids["live"] = relay.run_host(a, "Live PC")
        alice.ok("POST", "/api/admin/hosts/group", {"id": ids["live"], "group": "Sales"})
        alice.ok("POST", "/api/admin/engineers/manager", {"id": ids["kim.minji"], "managerID": ids["mina.manager"]})
        alice.ok("POST", "/api/admin/engineers/groups", {"id": ids["mina.manager"], "groups": ["Sales"]})
        for scope in ("export", "admin"):
            made = alice.ok("POST", "/api/admin/tokens", {"name": f"A {scope} script", "scope": scope})
            ids[f"a:{scope}-token"], ids[f"a:{scope}-secret"] = made["token"]["id"], made["secret"]

        # Company B: a host in a group of the same name, a manager, a token, a webhook, a
        # legal hold, a removed host (an alert) and an export (an audit entry).
        ids["b:host"] = bob.ok("POST", "/api/admin/hosts", {"name": "B-ONLY 비밀 호스트", "group": "Sales"})["host"]["id"]
        ids["b:host2"] = relay.enroll_host(b, "B-ONLY second host")
        bob.ok("POST", "/api/admin/engineers/manager", {"id": ids["b:kim.minji"], "managerID": ids["b:manager"]})
        bob.ok("POST", "/api/admin/engineers/groups", {"id": ids["b:manager"], "groups": ["Sales"]})
        b_token = bob.ok("POST", "/api/admin/tokens", {"name": "B-ONLY token", "scope": "admin"})
        ids["b:token"] = b_token["token"]["id"]
        ids["b:token-secret"] = b_token["secret"]
        bob.ok("POST", "/api/admin/webhook", {"url": receiver.url("/hook-b")})
        bob.ok("POST", "/api/admin/hold", {"reason": "B-ONLY litigation hold"})
        bob.ok("POST", "/api/admin/hosts/remove", {"id": ids["b:host2"]})

        rows = _make_rows(a, b, ids)
        _insert_sessions(relay, rows)
        today = datetime.datetime.now(datetime.timezone.utc).date()
        # To tomorrow: the real session of now falls inside the range in every time zone.
        span = {"from": (today - datetime.timedelta(days=12)).isoformat(), "to": (today + datetime.timedelta(days=1)).isoformat()}
        assert bob.get("/api/admin/usage/export", **span, format="csv").status == 200

        # One real session: kim views the running host in the browser.
        _real_session(browser, relay, cookies["kim.minji"], ids["live"])
        deadline = time.monotonic() + 20
        while True:
            real = [r for r in api["kim"].ok("GET", "/api/admin/usage", **span, limit=500)["rows"] if r.get("hostID") == ids["live"]]
            if real and real[0].get("endedAt") is not None or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert real, "the real session has no usage row"
        row = real[0]
        rows.append(Row(row["id"], a, "kim.minji", ids["live"], "Live PC", row["mode"], 0, None, row.get("endReason")))

        b_markers = [
            b, ids["b:host"], ids["b:host2"], ids["b:kim.minji"], ids["b:manager"], ids["bob.b"], ids["b:token"],
            "B-ONLY", "bob.b", "b.manager", "Beta Corp", receiver.url("/hook-b"), "se-t000b", "litigation",
        ]  # fmt: skip
        yield World(relay, receiver, a, b, ops, ids, api, rows, span, b_markers)
    finally:
        receiver.close()
        relay.stop()
        if request.session.testsfailed > failed_before:
            text = f"\n===== relay-server log of {request.node.nodeid} =====\n{relay.log()}\n"
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(text)
            else:
                print(text)


# ---- 1. Roles ----

ALL_GET = ["me", "usage", "summary", "export", "hosts", "engineers", "retention", "audit", "audit/export", "access",
           "access/export", "tokens", "alerts", "webhook", "relay"]  # fmt: skip
ALLOWED_GET = {
    "alice": set(ALL_GET) - {"relay"},
    "mina": {"me", "usage", "summary", "export", "hosts", "engineers"},
    "kim": {"me", "usage", "summary", "export"},
    "ops": {"me", "relay"},
}
SECTIONS = {
    "alice": {"usage", "hosts", "engineers", "retention", "audit", "tokens", "alerts"},
    "mina": {"usage", "hosts", "engineers"},
    "kim": {"usage"},
    "ops": {"relay"},
}


def get_path(world: World, route: str) -> str:
    span = urllib.parse.urlencode(world.range)
    return {
        "usage": f"/api/admin/usage?{span}",
        "summary": f"/api/admin/usage/summary?{span}",
        "export": f"/api/admin/usage/export?{span}&format=csv",
        "audit": f"/api/admin/audit?{span}",
        "audit/export": f"/api/admin/audit/export?{span}&format=csv",
        "access": f"/api/admin/access?{span}",
        "access/export": f"/api/admin/access/export?{span}&format=jsonl",
    }.get(route, f"/api/admin/{route}")


def post_routes(world: World, caller: str) -> dict:
    """Every POST route with a body that would do harm if a role without the right got
    through: aimed at company A's people and hosts, and at the caller's own account."""
    ids = world.ids
    me = {"mina": ids["mina.manager"], "kim": ids["kim.minji"], "ops": ids["ops.oh"]}.get(caller, ids["alice"])
    return {
        "hosts": {"name": f"made by {caller}", "group": "Sales"},
        "hosts/rename": {"id": ids[KOREAN_HOST], "name": f"renamed by {caller}"},
        "hosts/group": {"id": ids[KOREAN_HOST], "group": f"moved by {caller}"},
        "hosts/key": {"id": ids[KOREAN_HOST], "publicKey": world.relay.new_public_key()},
        "hosts/remove": {"id": ids[KOREAN_HOST]},
        "engineers": {"login": f"made.by.{caller}", "role": "admin"},
        "engineers/link": {"id": ids["alice"]},
        "engineers/role": {"id": me, "role": "admin"},
        "engineers/manager": {"id": ids["park.jisoo"], "managerID": ids["mina.manager"]},
        "engineers/groups": {"id": ids["mina.manager"], "groups": ["Sales", "Warehouse"]},
        "engineers/disable": {"id": ids["alice"]},
        "engineers/enable": {"id": ids["alice"]},
        "engineers/reset-totp": {"id": ids["alice"]},
        "engineers/remove": {"id": ids["alice"]},
        "hold": {"reason": f"held by {caller}"},
        "hold/release": {},
        "tokens": {"name": f"token of {caller}", "scope": "admin"},
        "tokens/revoke": {"id": ids["a:export-token"]},
        "webhook": {"url": f"https://attacker.example/{caller}"},
        "webhook/test": {},
    }


def snapshot(world: World, admin: Api | None = None) -> dict:
    """What a company's admin (A's unless given) sees of everything a refused POST could
    have changed."""
    alice = admin or world.api["alice"]
    hosts = alice.ok("GET", "/api/admin/hosts")
    engineers = alice.ok("GET", "/api/admin/engineers")["engineers"]
    retention = alice.ok("GET", "/api/admin/retention")
    return {
        "hosts": sorted((h["id"], h["name"], h["group"], h["loginMethod"], h.get("fingerprint")) for h in hosts["hosts"]),
        "engineers": sorted(
            (e["id"], e["login"], e["role"], e.get("managerID"), tuple(e["groups"]), e["disabled"], e["twoFactor"]) for e in engineers
        ),
        "hold": retention.get("hold"),
        "tokens": sorted(t["id"] for t in alice.ok("GET", "/api/admin/tokens")["tokens"]),
        "webhook": alice.ok("GET", "/api/admin/webhook").get("url"),
    }


def test_each_role_reads_only_what_the_contract_gives_it_and_every_other_route_is_403(world):
    for caller, allowed in ALLOWED_GET.items():
        client = world.api[caller]
        me = client.ok("GET", "/api/admin/me")
        assert set(me["sections"]) == SECTIONS[caller], f"{caller}: {me}"
        assert me["role"] == {"alice": "admin", "mina": "manager", "kim": "engineer", "ops": "operator"}[caller]
        for route in ALL_GET:
            response = client.request("GET", get_path(world, route))
            expect_status(response, 200 if route in allowed else 403, f"{caller} GET {route}")
    # Spellings of a route that a router might tell apart from the route but a guard might not.
    for variant in ("/api/admin/hosts/", "/api/admin/./hosts", "/api/admin/%68osts", "/api/admin//hosts", "/api/Admin/hosts",
                    "/api/admin/hosts%2F", "/api/admin/hosts;x", "/api/admin/x/../hosts", "/api/admin/HOSTS"):  # fmt: skip
        for caller in ("nobody", "kim", "ops"):
            response = world.api[caller].request("GET", variant)
            assert response.status in (401, 403, 404), f"{caller}: {response}"
            assert "ho-" not in response.text, f"{caller}: {response}"
    for route in ALL_GET:
        expect_status(world.api["nobody"].request("GET", get_path(world, route)), 401, f"no session GET {route}")
        # A cookie that was never a session is no session either.
        forged = Api(world.relay, cookie="A" * 43, name="forged cookie")
        expect_status(forged.request("GET", get_path(world, route)), 401, f"forged cookie GET {route}")


def test_every_post_is_refused_to_roles_without_the_right_and_changes_nothing(world):
    before = snapshot(world)
    for caller in ("mina", "kim", "ops"):
        for route, body in post_routes(world, caller).items():
            expect_status(world.api[caller].post(f"/api/admin/{route}", body), 403, f"{caller} POST {route}")
    nobody = world.api["nobody"]
    for route, body in post_routes(world, "nobody").items():
        headers = {"Origin": world.relay.url, "X-CSRF-Token": world.api["alice"].csrf}
        expect_status(nobody.request("POST", f"/api/admin/{route}", body, headers), 401, f"no session POST {route}")
    assert snapshot(world) == before, "a refused POST changed company A"
    assert world.api["alice"].ok("GET", "/api/admin/me")["login"] == "alice", "a refused POST ended the admin's session"


def test_a_company_admin_cannot_make_an_operator_who_would_see_every_company(world):
    alice, api_token = world.api["alice"], Api(world.relay, token=world.ids["a:admin-secret"], name="A's admin token")
    before = snapshot(world)
    for caller in (alice, api_token):
        response = caller.post("/api/admin/engineers", {"login": "sneaky.operator", "role": "operator"})
        assert response.status in (400, 403), f"{caller.name} made an operator: {response}"
        response = caller.post("/api/admin/engineers/role", {"id": world.ids["park.jisoo"], "role": "operator"})
        assert response.status in (400, 403), f"{caller.name} made park an operator: {response}"
    assert snapshot(world) == before


def test_a_manager_sees_only_their_engineers_and_the_hosts_of_their_groups(world):
    mina, ids = world.api["mina"], world.ids
    hosts = mina.ok("GET", "/api/admin/hosts")
    assert {h["id"] for h in hosts["hosts"]} == {ids[KOREAN_HOST], ids[HYPERLINK], ids["live"]}, hosts
    assert all(h["group"] == "Sales" for h in hosts["hosts"])
    assert set(hosts["groups"]) <= {"Sales"}, hosts["groups"]

    engineers = mina.ok("GET", "/api/admin/engineers")["engineers"]
    logins = {e["login"] for e in engineers}
    assert "kim.minji" in logins, engineers
    assert logins <= {"kim.minji", "mina.manager"}, f"a manager sees people not assigned to them: {logins}"
    assert all(e.get("managerID") == ids["mina.manager"] for e in engineers if e["login"] != "mina.manager")

    rows = all_usage(mina, world.range)
    engineers_seen = {r["engineer"] for r in rows}
    assert "park.jisoo" not in engineers_seen, "a manager sees an engineer who is not theirs"
    assert engineers_seen <= {"kim.minji", "mina.manager"}, engineers_seen
    kims = {r.id for r in world.a_rows(engineer="kim.minji")}
    assert kims <= {r["id"] for r in rows}, "a manager misses sessions of their own engineer"
    summary = mina.ok("GET", "/api/admin/usage/summary", **world.range)
    assert summary["sessions"] == len(rows), summary
    assert {e["engineer"] for e in summary["byEngineer"]} <= {"kim.minji", "mina.manager"}
    exported = csv_rows(mina.get("/api/admin/usage/export", **world.range, format="csv"))
    assert {r["session_id"] for r in exported} == {r["id"] for r in rows}
    # Asking for someone else's sessions by name or host gives nothing of theirs.
    for filters in ({"engineer": "park.jisoo"}, {"host": ids["Warehouse PC"]}):
        response = mina.get("/api/admin/usage", **world.range, **filters)
        assert response.status in (200, 403, 404), str(response)
        if response.status == 200:
            assert response.json()["rows"] == [], f"a manager reads another engineer's sessions with {filters}"
        response = mina.get("/api/admin/usage/export", **world.range, **filters, format="csv")
        if response.status == 200:
            assert csv_rows(response) == [], f"a manager exports another engineer's sessions with {filters}"


def test_an_engineer_sees_only_their_own_sessions(world):
    kim = world.api["kim"]
    rows = all_usage(kim, world.range)
    assert {r["engineer"] for r in rows} == {"kim.minji"}
    assert {r["id"] for r in rows} == {r.id for r in world.a_rows(engineer="kim.minji")}
    summary = kim.ok("GET", "/api/admin/usage/summary", **world.range)
    assert summary["sessions"] == len(rows)
    assert [e["engineer"] for e in summary["byEngineer"]] == ["kim.minji"]
    exported = csv_rows(kim.get("/api/admin/usage/export", **world.range, format="csv"))
    assert {r["engineer"] for r in exported} == {"kim.minji"} and len(exported) == len(rows)
    for other in ("park.jisoo", "mina.manager", "alice"):
        response = kim.get("/api/admin/usage", **world.range, engineer=other)
        assert response.status in (200, 403, 404), str(response)
        if response.status == 200:
            assert response.json()["rows"] == [], f"an engineer reads {other}'s sessions"
        summary = kim.get("/api/admin/usage/summary", **world.range, engineer=other)
        if summary.status == 200:
            assert summary.json()["sessions"] == 0, f"an engineer counts {other}'s sessions"


def test_the_operator_sees_the_relays_counts_and_no_companys_content(world):
    relay = world.api["ops"].ok("GET", "/api/admin/relay")
    assert relay["node"] and isinstance(relay["liveSessions"], int)
    assert relay["retention"] == {"usageMonths": 12, "accessMonths": 3}, relay["retention"]
    companies = {c["id"]: c for c in relay["companies"]}
    assert {world.a, world.b, world.ops} <= set(companies), relay
    a = companies[world.a]
    assert a["name"] == "Acme 한국"
    alice = world.api["alice"]
    assert a["engineers"] == len(alice.ok("GET", "/api/admin/engineers")["engineers"]), a
    assert a["hosts"] == len(alice.ok("GET", "/api/admin/hosts")["hosts"]), a
    assert a["hostsOnline"] == 1, a
    assert a["sessionsLast30Days"] == len(world.a_rows()), a
    assert companies[world.b]["held"] is True and a["held"] is False
    text = json.dumps(relay, ensure_ascii=False)
    for content in ("kim.minji", "alice", KOREAN_HOST, "Warehouse", "B-ONLY", "se-t0", world.ids[KOREAN_HOST]):
        assert content not in text, f"the operator's view carries company content: {content}"


# ---- Helpers for usage and files ----


def all_usage(client: Api, span: dict, limit: int = 500, **filters) -> list[dict]:
    """Every usage row of the range, page after page."""
    rows, after = [], None
    for _ in range(200):
        parameters = {**span, **filters, "limit": limit}
        if after is not None:
            parameters["after"] = after
        page = client.ok("GET", "/api/admin/usage", **parameters)
        rows += page["rows"]
        after = page.get("next")
        if after is None:
            return rows
    raise AssertionError("the usage pages never end")


def csv_rows(response: Response) -> list[dict]:
    assert response.status == 200, str(response)
    return list(csv.DictReader(io.StringIO(response.body.decode("utf-8-sig"), newline="")))


def jsonl_objects(response: Response) -> list[dict]:
    assert response.status == 200, str(response)
    return [json.loads(line) for line in response.body.decode("utf-8").splitlines() if line.strip()]


def xlsx_cells(response: Response) -> list:
    """Every non-empty cell of every sheet of an XLSX answer (openpyxl must open it)."""
    assert response.status == 200, str(response)
    workbook = openpyxl.load_workbook(io.BytesIO(response.body))
    return [cell for sheet in workbook.worksheets for line in sheet.iter_rows() for cell in line if cell.value is not None]


def file_text(response: Response) -> str:
    """An answer's text as a person would search it: the XLSX's cells, or the body."""
    if response.body[:2] == b"PK":
        return "\n".join(str(cell.value) for cell in xlsx_cells(response))
    return response.text


# ---- 2. Company isolation ----


def test_nothing_of_another_company_reaches_company_a_and_its_ids_are_404_to_every_change(world):
    alice, ids = world.api["alice"], world.ids
    export_token = Api(world.relay, token=world.ids["a:export-secret"], name="A's export token")
    admin_token = Api(world.relay, token=world.ids["a:admin-secret"], name="A's admin token")
    span = world.range
    a_ids = {row.id for row in world.a_rows()}

    answers: list[Response] = []
    for reader in (alice, export_token):
        rows = all_usage(reader, span, limit=50)
        assert {row["id"] for row in rows} == a_ids, f"{reader.name}: the usage rows are not exactly company A's"
        kims = all_usage(reader, span, engineer="kim.minji")
        assert {row["id"] for row in kims} == {row.id for row in world.a_rows(engineer="kim.minji")}, "B's kim.minji counted in A"
        summary = reader.ok("GET", "/api/admin/usage/summary", **span)
        assert summary["sessions"] == len(a_ids), summary
        by_host = reader.get("/api/admin/usage", **span, host=ids["b:host"])
        assert by_host.status in (200, 404), str(by_host)
        if by_host.status == 200:
            assert by_host.json()["rows"] == [], "A reads B's sessions by B's host id"
        answers.append(reader.get("/api/admin/usage/summary", **span))
        answers.append(reader.get("/api/admin/usage/summary", **span, engineer="kim.minji"))
        for fmt in ("csv", "jsonl", "xlsx"):
            answers.append(reader.get("/api/admin/usage/export", **span, format=fmt))
        for log in ("audit", "access"):
            answers.append(reader.get(f"/api/admin/{log}", **span, limit=500))
            answers.append(reader.get(f"/api/admin/{log}"))
            for fmt in ("csv", "jsonl"):
                answers.append(reader.get(f"/api/admin/{log}/export", **span, format=fmt))
    for route in ("me", "hosts", "engineers", "retention", "tokens", "alerts", "webhook"):
        answers.append(alice.get(f"/api/admin/{route}"))
    answers.append(alice.get("/api/admin/usage", **span, limit=500))
    for response in answers:
        assert response.status == 200, str(response)
        text = file_text(response)
        for marker in world.b_markers:
            assert marker not in text, f"{response.method} {response.path} shows company B's {marker!r}"
    csv_ids = {row["session_id"] for row in csv_rows(alice.get("/api/admin/usage/export", **span, format="csv"))}
    assert csv_ids == a_ids

    # Company B's ids through A's session and A's admin token: 404, and B is as it was.
    bob = world.api["bob"]
    b_before = snapshot(world, bob)
    attempts = {
        "hosts/rename": {"id": ids["b:host"], "name": "renamed by A"},
        "hosts/group": {"id": ids["b:host"], "group": "moved by A"},
        "hosts/key": {"id": ids["b:host"], "publicKey": world.relay.new_public_key()},
        "hosts/remove": {"id": ids["b:host"]},
        "engineers/link": {"id": ids["b:kim.minji"]},
        "engineers/role": {"id": ids["b:kim.minji"], "role": "admin"},
        "engineers/manager": {"id": ids["b:kim.minji"], "managerID": None},
        "engineers/groups": {"id": ids["b:manager"], "groups": ["Sales", "Elsewhere"]},
        "engineers/disable": {"id": ids["bob.b"]},
        "engineers/enable": {"id": ids["bob.b"]},
        "engineers/reset-totp": {"id": ids["bob.b"]},
        "engineers/remove": {"id": ids["bob.b"]},
    }
    for caller in (alice, admin_token):
        for route, body in attempts.items():
            expect_status(caller.post(f"/api/admin/{route}", body), 404, f"{caller.name} POST {route} with B's id")
    expect_status(alice.post("/api/admin/tokens/revoke", {"id": ids["b:token"]}), 404, "A revokes B's token")
    # B's manager as manager of A's engineer: refused (400 or 404), and park has no manager.
    response = alice.post("/api/admin/engineers/manager", {"id": ids["park.jisoo"], "managerID": ids["b:manager"]})
    assert response.status in (400, 404), f"A made B's manager the manager of A's engineer: {response}"
    assert snapshot(world, bob) == b_before, "A's requests changed company B"
    park = next(e for e in alice.ok("GET", "/api/admin/engineers")["engineers"] if e["id"] == ids["park.jisoo"])
    assert park.get("managerID") is None
    assert Api(world.relay, token=ids["b:token-secret"]).get("/api/admin/hosts").status == 200, "B's token stopped working"


# ---- 3. CSRF and Origin ----


def test_a_session_post_without_its_csrf_token_or_from_another_origin_is_refused_and_a_bearer_token_needs_neither(world):
    alice, host = world.api["alice"], world.ids[PLUS]
    url, port = world.relay.url, world.relay.port
    wrong = alice.csrf[:-1] + ("B" if alice.csrf[-1] != "B" else "C")
    forged = {
        "no token": {"Origin": url},
        "an empty token": {"Origin": url, "X-CSRF-Token": ""},
        "a wrong token": {"Origin": url, "X-CSRF-Token": wrong},
        "another person's token": {"Origin": url, "X-CSRF-Token": world.api["bob"].csrf},
        "another site": {"Origin": "https://evil.example", "X-CSRF-Token": alice.csrf},
        "another port": {"Origin": f"https://127.0.0.1:{port + 1 if port < 65535 else port - 1}", "X-CSRF-Token": alice.csrf},
        "plain http": {"Origin": f"http://127.0.0.1:{port}", "X-CSRF-Token": alice.csrf},
        "a null origin": {"Origin": "null", "X-CSRF-Token": alice.csrf},
    }
    for what, headers in forged.items():
        response = alice.request("POST", "/api/admin/hosts/rename", {"id": host, "name": f"forged: {what}"}, headers)
        expect_status(response, 403, f"a POST with {what}")
        expect_status(alice.request("POST", "/api/admin/tokens", {"name": f"forged: {what}", "scope": "admin"}, headers), 403, what)
    names = {h["id"]: h["name"] for h in alice.ok("GET", "/api/admin/hosts")["hosts"]}
    assert names[host] == PLUS, f"a forged POST renamed the host to {names[host]!r}"
    assert not [t for t in alice.ok("GET", "/api/admin/tokens")["tokens"] if t["name"].startswith("forged")]

    # Nor may another site read answers: no CORS grant, to a plain request or a preflight.
    evil = {"Origin": "https://evil.example"}
    read = alice.request("GET", "/api/admin/me", headers=evil)
    preflight = alice.request("OPTIONS", "/api/admin/hosts/rename", headers={**evil, "Access-Control-Request-Method": "POST",
                                                                           "Access-Control-Request-Headers": "x-csrf-token"})  # fmt: skip
    for response in (read, preflight):
        assert "access-control-allow-origin" not in response.headers, f"{response} {response.headers}"
        assert "access-control-allow-credentials" not in response.headers, f"{response} {response.headers}"

    # The page's own request works; a script's Bearer token needs no Origin and no token.
    alice.ok("POST", "/api/admin/hosts/rename", {"id": host, "name": "renamed by the page"})
    admin_token = Api(world.relay, token=world.ids["a:admin-secret"], name="A's admin token")
    renamed = admin_token.request("POST", "/api/admin/hosts/rename", {"id": host, "name": PLUS})
    assert renamed.status == 200 and renamed.json()["host"]["name"] == PLUS, str(renamed)


# ---- 4. API tokens ----

EXPORT_READS = ["usage", "summary", "export", "audit", "audit/export", "access", "access/export"]


def test_api_tokens_do_what_their_scope_allows_and_nothing_more(world):
    alice = world.api["alice"]
    export_token = Api(world.relay, token=world.ids["a:export-secret"], name="export token")
    admin_token = Api(world.relay, token=world.ids["a:admin-secret"], name="admin token")
    before = snapshot(world)

    for route in EXPORT_READS:
        expect_status(export_token.request("GET", get_path(world, route)), 200, f"export token GET {route}")
    for fmt in ("jsonl", "xlsx"):
        expect_status(export_token.get("/api/admin/usage/export", **world.range, format=fmt), 200, f"export token {fmt}")
    for route in ("hosts", "engineers", "retention", "tokens", "alerts", "webhook", "relay"):
        expect_status(export_token.request("GET", get_path(world, route)), 403, f"export token GET {route}")
    for route, body in post_routes(world, "export-token").items():
        expect_status(export_token.post(f"/api/admin/{route}", body), 403, f"export token POST {route}")
    assert snapshot(world) == before, "an export token changed something"

    # An admin token manages hosts and people, but not tokens, and is not an operator.
    made = admin_token.ok("POST", "/api/admin/hosts", {"name": "Made by a script", "group": "Scripts"})
    assert made["text"] and any(made["host"]["id"] in command for command in made["commands"]), made
    made = made["host"]
    assert {h["id"] for h in admin_token.ok("GET", "/api/admin/hosts")["hosts"]} >= {made["id"], world.ids[KOREAN_HOST]}
    assert admin_token.ok("POST", "/api/admin/hosts/rename", {"id": made["id"], "name": "Renamed by a script"})["host"]["name"] == "Renamed by a script"
    admin_token.ok("POST", "/api/admin/hosts/remove", {"id": made["id"]})
    expect_status(admin_token.post("/api/admin/tokens", {"name": "made by a token", "scope": "admin"}), 403, "admin token makes a token")
    expect_status(admin_token.post("/api/admin/tokens/revoke", {"id": world.ids["a:export-token"]}), 403, "admin token revokes")
    expect_status(admin_token.get("/api/admin/tokens"), 403, "admin token lists tokens")
    expect_status(admin_token.get("/api/admin/relay"), 403, "admin token reads the relay")

    # The list shows when each was used, never a secret.
    listed = alice.ok("GET", "/api/admin/tokens")
    text = json.dumps(listed)
    for secret in (world.ids["a:export-secret"], world.ids["a:admin-secret"]):
        assert secret not in text and secret.split(".")[-1] not in text, "the token list shows a secret"
    used = {t["id"]: t for t in listed["tokens"]}
    assert used[world.ids["a:export-token"]].get("lastUsedAt"), used

    # Revoked: 401 at once. Made up or malformed: 401.
    made = alice.ok("POST", "/api/admin/tokens", {"name": "short-lived", "scope": "export"})
    assert made["secret"].startswith("sra_") and made["token"]["scope"] == "export"
    short = Api(world.relay, token=made["secret"], name="short-lived token")
    expect_status(short.get("/api/admin/usage/summary", **world.range), 200, "a new token")
    alice.ok("POST", "/api/admin/tokens/revoke", {"id": made["token"]["id"]})
    expect_status(short.get("/api/admin/usage/summary", **world.range), 401, "a revoked token")
    assert made["token"]["id"] not in {t["id"] for t in alice.ok("GET", "/api/admin/tokens")["tokens"]}
    secret = world.ids["a:export-secret"]
    for garbage in ("sra_garbage", secret[:-2] + ("xx" if not secret.endswith("xx") else "yy"), "", "sra_" + "A" * 4000, "x" * 80):
        expect_status(Api(world.relay, token=garbage).get("/api/admin/usage/summary", **world.range), 401, f"token {garbage[:20]!r}")
    for scheme in ("Basic YWxpY2U6cGFzcw==", f"bearer{secret}", f"Token {secret}"):
        response = world.api["nobody"].request("GET", f"/api/admin/usage/summary?{urllib.parse.urlencode(world.range)}", headers={"Authorization": scheme})
        expect_status(response, 401, f"Authorization: {scheme[:12]}")


def test_the_shipped_limits_throttle_exports_and_wrong_tokens_with_retry_after(tmp_path, browser):
    # A relay with the shipped limits: 5 free failures per source (not the harness's 1000),
    # 10 exports at once then 10 a minute.
    relay = Relay(tmp_path / "relay", settings={"free_auth_failures_per_source": 5}).start()
    try:
        company = relay.add_company("Throttled")
        admin = Api(relay, cookie=_sign_in(browser, relay, company, "tess.admin", "admin")[1], name="admin")
        span = {"from": "2026-01-01", "to": "2026-01-31"}
        statuses = [admin.get("/api/admin/usage/export", **span, format="csv").status for _ in range(12)]
        assert statuses[:10] == [200] * 10 and statuses[-1] == 429, statuses
        response = admin.get("/api/admin/usage/export", **span, format="csv")
        retry = response.headers.get("retry-after", "")
        assert response.status == 429 and retry.isdigit() and 0 < int(retry) <= 60, f"{response} {response.headers}"
        expect_status(admin.get("/api/admin/usage/summary", **span), 200, "a summary while exports wait")

        guesser = Api(relay, token="sra_tk-guess.0123456789abcdefghijklmnopqrstuvwxyzABCDEFG", name="guesser")
        statuses = []
        for _ in range(15):
            response = guesser.get("/api/admin/usage/summary", **span)
            statuses.append(response.status)
            if response.status == 429:
                break
        assert statuses[0] == 401, statuses
        assert statuses[-1] == 429, f"15 wrong tokens in a row were never throttled: {statuses}"
        retry = response.headers.get("retry-after", "")
        assert retry.isdigit() and int(retry) > 0, f"429 without a usable Retry-After: {response.headers}"
    finally:
        relay.stop()


# ---- 5. Exports ----


def test_exports_are_excel_safe_files_that_filters_narrow_and_that_leave_an_audit_entry(world):
    alice, span, ids = world.api["alice"], world.range, world.ids
    audit_before = [r["id"] for r in alice.ok("GET", "/api/admin/audit", action="export", limit=500)["rows"]]
    a_ids = {row.id for row in world.a_rows()}

    exported = alice.get("/api/admin/usage/export", **span, format="csv")
    assert exported.status == 200, str(exported)
    assert exported.headers["content-type"].startswith("text/csv"), exported.headers
    assert re.match(r'attachment;\s*filename="?[^"/\\]+\.csv"?', exported.headers.get("content-disposition", "")), exported.headers
    body = exported.body
    assert body.startswith(b"\xef\xbb\xbf"), "the CSV has no UTF-8 BOM (Excel reads it as another code page)"
    assert body.endswith(b"\r\n") and body.count(b"\n") == body.count(b"\r\n"), "the CSV's rows do not all end with CRLF"
    rows = {row["session_id"]: row for row in csv_rows(exported)}
    assert set(rows) == a_ids
    by_host = {}
    for row in world.a_rows():
        by_host.setdefault(row.host_name, row.id)
    assert rows[by_host[KOREAN_HOST]]["host_name"] == KOREAN_HOST
    assert rows[by_host[HYPERLINK]]["host_name"] == "'" + HYPERLINK, rows[by_host[HYPERLINK]]
    assert rows[by_host[PLUS]]["host_name"] == "'" + PLUS, rows[by_host[PLUS]]
    assert rows["se-t120a"]["host_name"] == "'-2+3" and rows["se-t120a"]["engineer"] == "'@SUM(1+1)", rows["se-t120a"]
    assert rows["se-t120a"]["host_id"] == "", rows["se-t120a"]
    assert rows["se-t121a"]["host_name"] == "'\t=1+1", rows["se-t121a"]
    for row in rows.values():
        for column, value in row.items():
            assert not value or value[0] not in "=+-@\t\r" or value.startswith("'"), f"an unescaped formula-looking cell: {column}={value!r}"

    # JSON Lines: the exact values (a JSON reader runs no formulas).
    lines = jsonl_objects(alice.get("/api/admin/usage/export", **span, format="jsonl"))
    assert len(lines) == len(a_ids)
    values = {value for line in lines for value in line.values() if isinstance(value, str)}
    assert {HYPERLINK, PLUS, KOREAN_HOST} <= values, "JSON Lines changed a host name"
    assert a_ids <= values

    # XLSX: opens in openpyxl; Korean intact; formula-looking text is a string cell.
    xlsx = alice.get("/api/admin/usage/export", **span, format="xlsx")
    assert re.match(r'attachment;\s*filename="?[^"/\\]+\.xlsx"?', xlsx.headers.get("content-disposition", "")), xlsx.headers
    cells = xlsx_cells(xlsx)
    texts = [cell.value for cell in cells if isinstance(cell.value, str)]
    assert KOREAN_HOST in texts, "the XLSX lost the Korean host name"
    assert "Acme 한국" in texts or world.a in texts
    assert a_ids <= set(texts), "the XLSX misses sessions"
    formulas = (HYPERLINK, PLUS, "-2+3", "@SUM(1+1)", "\t=1+1")
    risky = [cell for cell in cells if isinstance(cell.value, str) and cell.value.lstrip("'") in formulas]
    assert {cell.value.lstrip("'") for cell in risky} == set(formulas), "the XLSX lost formula-looking names"
    for cell in risky:
        assert cell.data_type == "s", f"{cell.coordinate} {cell.value!r} is a {cell.data_type} cell, not text"
    assert not [c for c in cells if c.data_type == "f"], "the XLSX has formula cells"

    # Filters narrow every format alike.
    for filters, expected in (
        ({"engineer": "park.jisoo"}, world.a_rows(engineer="park.jisoo")),
        ({"mode": "unattended"}, world.a_rows(mode="unattended")),
        ({"host": ids["Warehouse PC"]}, world.a_rows(host_id=ids["Warehouse PC"])),
        ({"engineer": "kim.minji", "mode": "unattended"}, world.a_rows(engineer="kim.minji", mode="unattended")),
        ({"reason": "open"}, world.a_rows(reason=None, ended_ms=None)),
    ):
        want = {row.id for row in expected}
        assert want, filters
        got = {row["session_id"] for row in csv_rows(alice.get("/api/admin/usage/export", **span, **filters, format="csv"))}
        assert got == want, f"CSV with {filters}: {len(got)} rows, expected {len(want)}"
        got = {line.get("session_id", line.get("id")) for line in jsonl_objects(alice.get("/api/admin/usage/export", **span, **filters, format="jsonl"))}
        assert got == want, f"JSON Lines with {filters}"
        assert {row["id"] for row in all_usage(alice, span, **filters)} == want, f"usage with {filters}"
        assert alice.ok("GET", "/api/admin/usage/summary", **span, **filters)["sessions"] == len(want), f"summary with {filters}"

    # Each export is in the audit log, by whom and in which format.
    audit = alice.ok("GET", "/api/admin/audit", action="export", limit=500)["rows"]
    new = [row for row in audit if row["id"] not in audit_before]
    assert len(new) >= 3 + 5 * 2, f"exports without audit entries: {len(new)} new"
    assert all(row["action"] == "export" for row in new)
    assert any("alice" in row["actor"] for row in new)
    assert any("xlsx" in (row.get("detail") or "") for row in new)


def assert_excel_safe_csv(response: Response) -> list[dict]:
    """The CSV's BOM, CRLF rows and no cell a spreadsheet would run; returns its rows."""
    assert response.status == 200 and response.headers["content-type"].startswith("text/csv"), str(response)
    assert response.body.startswith(b"\xef\xbb\xbf"), f"{response.path}: no UTF-8 BOM"
    assert response.body.count(b"\n") == response.body.count(b"\r\n"), f"{response.path}: rows not ended by CRLF"
    rows = csv_rows(response)
    for row in rows:
        for column, value in row.items():
            assert not value or value[0] not in "=+-@\t\r", f"{response.path}: unescaped formula-looking {column}={value!r}"
    return rows


def test_the_audit_and_access_logs_are_newest_first_in_pages_and_their_exports_are_excel_safe(world, browser):
    alice = world.api["alice"]
    # A login a spreadsheet would run reaches the access log when its sign-in link is opened.
    added = alice.ok("POST", "/api/admin/engineers", {"login": HYPERLINK, "role": "engineer"})
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        page.goto(world.relay._on_this_relay(added["signInLink"]))
        page.get_by_role("heading", name=f"Choose a password for {HYPERLINK}").wait_for()
    finally:
        context.close()
    deadline = time.monotonic() + 10
    while not [r for r in alice.ok("GET", "/api/admin/access", limit=50)["rows"] if r.get("subject") == HYPERLINK]:
        assert time.monotonic() < deadline, "opening the sign-in link left no access log row"
        time.sleep(0.2)

    for log in ("audit", "access"):
        everything = alice.ok("GET", f"/api/admin/{log}", limit=500)["rows"]
        keys = [(row["at"], row["id"]) for row in everything]
        assert keys == sorted(keys, reverse=True), f"{log} is not newest first"
        paged, after = [], None
        while True:
            parameters = {"limit": 7} if after is None else {"limit": 7, "after": after}
            page = alice.ok("GET", f"/api/admin/{log}", **parameters)
            paged += page["rows"]
            after = page.get("next")
            if after is None:
                break
        assert [row["id"] for row in paged] == [row["id"] for row in everything], f"{log}'s pages differ from one long page"
        # The exports have every row listed before them (and may have their own audit entry).
        listed = {str(row["id"]) for row in everything}
        rows = assert_excel_safe_csv(alice.get(f"/api/admin/{log}/export", format="csv"))
        assert listed <= {row["id"] for row in rows}, f"{log}'s CSV misses rows"
        lines = jsonl_objects(alice.get(f"/api/admin/{log}/export", format="jsonl"))
        assert listed <= {str(line["id"]) for line in lines}, f"{log}'s JSON Lines miss rows"
    access = {row["subject"] for row in csv_rows(alice.get("/api/admin/access/export", format="csv"))}
    assert "'" + HYPERLINK in access, "the login is not in the access export"
    assert HYPERLINK in {line.get("subject") for line in jsonl_objects(alice.get("/api/admin/access/export", format="jsonl"))}
    alice.ok("POST", "/api/admin/engineers/remove", {"id": added["engineer"]["id"]})


def test_the_summary_has_every_day_of_the_range_in_the_time_zone_and_the_top_engineers(world):
    alice = world.api["alice"]
    for tz in ("UTC", "Asia/Seoul", "-05:00"):
        summary = alice.ok("GET", "/api/admin/usage/summary", **world.range, tz=tz)
        first = datetime.date.fromisoformat(world.range["from"])
        last = datetime.date.fromisoformat(world.range["to"])
        days = [(first + datetime.timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
        assert [day["day"] for day in summary["byDay"]] == days, f"{tz}: {summary['byDay']}"
        assert sum(day["sessions"] for day in summary["byDay"]) == summary["sessions"] == len(world.a_rows()), tz
        seconds = [e["seconds"] for e in summary["byEngineer"]]
        assert seconds == sorted(seconds, reverse=True) and len(seconds) <= 20
        assert {e["engineer"] for e in summary["byEngineer"]} == {row.engineer for row in world.a_rows()}
        assert sum(e["sessions"] for e in summary["byEngineer"]) == summary["sessions"]


# ---- 6. Markup in free text ----


def test_markup_in_every_free_text_field_comes_back_as_the_same_json_text(world):
    alice = world.api["alice"]

    def answer(response: Response) -> dict:
        assert response.status == 200, str(response)
        assert response.headers["content-type"].startswith("application/json")
        return json.loads(response.body.decode("utf-8"))  # strict: raw control characters would fail here

    host = answer(alice.post("/api/admin/hosts", {"name": XSS, "group": XSS}))["host"]
    assert (host["name"], host["group"]) == (XSS, XSS)
    listed = answer(alice.get("/api/admin/hosts"))
    assert next(h for h in listed["hosts"] if h["id"] == host["id"])["name"] == XSS
    assert XSS in listed["groups"]
    assert answer(alice.post("/api/admin/hosts/rename", {"id": host["id"], "name": XSS + "²"}))["host"]["name"] == XSS + "²"
    assert answer(alice.post("/api/admin/hosts/group", {"id": host["id"], "group": "<b>" + XSS}))["host"]["group"] == "<b>" + XSS

    person = answer(alice.post("/api/admin/engineers", {"login": XSS, "role": "engineer"}))
    assert person["engineer"]["login"] == XSS
    assert XSS in [e["login"] for e in answer(alice.get("/api/admin/engineers"))["engineers"]]
    groups = answer(alice.post("/api/admin/engineers/groups", {"id": world.ids["mina.manager"], "groups": ["Sales", XSS]}))
    assert sorted(groups["engineer"]["groups"]) == sorted(["Sales", XSS])
    alice.ok("POST", "/api/admin/engineers/groups", {"id": world.ids["mina.manager"], "groups": ["Sales"]})

    token = answer(alice.post("/api/admin/tokens", {"name": XSS, "scope": "export"}))
    assert token["token"]["name"] == XSS
    assert XSS in [t["name"] for t in answer(alice.get("/api/admin/tokens"))["tokens"]]

    hold = answer(alice.post("/api/admin/hold", {"reason": XSS}))
    assert hold["hold"]["reason"] == XSS
    assert answer(alice.get("/api/admin/retention"))["hold"]["reason"] == XSS
    alice.ok("POST", "/api/admin/hold/release", {})

    hook = "https://hooks.example.com/in?q=" + XSS
    set_hook = alice.post("/api/admin/webhook", {"url": hook})
    if set_hook.status == 200:  # or refused as no URL, with a sentence (test 10)
        assert answer(set_hook)["url"] == hook
        assert answer(alice.get("/api/admin/webhook"))["url"] == hook
    else:
        expect_status(set_hook, 400, "a webhook URL with markup")
    alice.ok("POST", "/api/admin/webhook", {"url": ""})

    # The logs that name these things are JSON too.
    for log in ("audit", "access", "alerts"):
        answer(alice.get(f"/api/admin/{log}", limit=500))

    alice.ok("POST", "/api/admin/tokens/revoke", {"id": token["token"]["id"]})
    alice.ok("POST", "/api/admin/engineers/remove", {"id": person["engineer"]["id"]})
    alice.ok("POST", "/api/admin/hosts/remove", {"id": host["id"]})


# ---- 7. Keyset pages ----


def test_keyset_pages_return_every_row_once_in_start_order(world):
    alice = world.api["alice"]
    pages, after = [], None
    while True:
        parameters = {**world.range, "limit": 50}
        if after is not None:
            parameters["after"] = after
        page = alice.ok("GET", "/api/admin/usage", **parameters)
        pages.append(page["rows"])
        after = page.get("next")
        if after is None or len(pages) > 10:
            break
        assert isinstance(after, str) and after, page.get("next")
    assert [len(p) for p in pages[:-1]] == [50] * (len(pages) - 1), [len(p) for p in pages]
    rows = [row for page in pages for row in page]
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "a row came twice"
    assert set(ids) == {row.id for row in world.a_rows()}, "rows missing from the pages"
    starts = [datetime.datetime.fromisoformat(row["startedAt"].replace("Z", "+00:00")) for row in rows]
    assert starts == sorted(starts), "the pages are not in start order"
    # Seven sessions with one start time straddle the first page's end.
    assert {"se-t047a", "se-t053a"} <= set(ids)

    # Small pages with a filter.
    kims = all_usage(alice, world.range, limit=7, engineer="kim.minji")
    assert len(kims) == len({row["id"] for row in kims}) == len(world.a_rows(engineer="kim.minji"))

    # A cursor that is not one given by the relay: 400 with a sentence.
    cursor = alice.ok("GET", "/api/admin/usage", **world.range, limit=50)["next"]
    for bad in ("zzz", "!!!", "eyJ4IjoxfQ", "\x00", "A" * 5000, "1:", ":se-x", "9" * 40 + ":x"):
        response = alice.get("/api/admin/usage", **world.range, limit=50, after=bad)
        expect_status(response, 400, f"after={bad[:20]!r}")
        assert refusal_problem(response) is None, f"{response}: {refusal_problem(response)}"
    for bad in ("0", "501", "-1", "ten", "1e3"):
        response = alice.get("/api/admin/usage", **world.range, limit=bad)
        expect_status(response, 400, f"limit={bad}")


def test_a_made_up_cursor_stays_inside_the_callers_rows(world):
    # Cursors are opaque to callers, but one can be made up: it must not widen what the
    # caller may see.
    for caller in ("alice", "mina", "kim"):
        client = world.api[caller]
        mine = {row["id"] for row in all_usage(client, world.range)}
        for after in ("1:a", "-5:x", "0:zzz"):
            response = client.get("/api/admin/usage", **world.range, limit=500, after=after)
            assert response.status in (200, 400), str(response)
            if response.status == 200:
                assert {row["id"] for row in response.json()["rows"]} <= mine, f"{caller}: after={after} shows rows not theirs"


def test_a_made_up_cursor_before_the_range_does_not_widen_it(world):
    alice = world.api["alice"]
    middle = min(row.started_ms for row in world.a_rows() if row.id == "se-t060a")
    start = datetime.datetime.fromtimestamp(middle / 1000, datetime.timezone.utc).date()
    narrow = {"from": start.isoformat(), "to": world.range["to"]}
    first = datetime.datetime.combine(start, datetime.time(), datetime.timezone.utc)
    response = alice.get("/api/admin/usage", **narrow, limit=500, after="1:a")
    assert response.status in (200, 400), str(response)
    if response.status == 200:
        early = [row for row in response.json()["rows"] if datetime.datetime.fromisoformat(row["startedAt"].replace("Z", "+00:00")) < first]
        assert not early, f"{len(early)} rows from before from={narrow['from']}, e.g. {early[0]}"


# ---- 8. Webhook and alerts ----


def signature_ok(post: dict, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), post["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(post["headers"].get("x-supportrelay-signature", ""), expected)


def test_the_webhook_is_signed_carries_alerts_and_refuses_plain_http_to_other_machines(world):
    alice, receiver = world.api["alice"], world.receiver
    for url in ("http://example.com/hook", "http://10.0.0.1/hook", "http://127.0.0.1.example.com/hook", "ftp://127.0.0.1/hook",
                "javascript:alert(1)", "no address at all", "https://"):  # fmt: skip
        expect_status(alice.post("/api/admin/webhook", {"url": url}), 400, f"webhook {url}")
    assert alice.ok("GET", "/api/admin/webhook").get("url") is None

    url = receiver.url("/hook-a")
    made = alice.ok("POST", "/api/admin/webhook", {"url": url})
    secret = made["secret"]
    assert made["url"] == url and len(secret) >= 16, made
    shown = alice.ok("GET", "/api/admin/webhook")
    assert shown["url"] == url and secret not in json.dumps(shown), "GET /webhook shows the signing secret again"

    assert alice.ok("POST", "/api/admin/webhook/test", {}) == {"status": 200}
    test = receiver.wait_for("/hook-a", lambda post: True)
    assert test["headers"].get("content-type", "").startswith("application/json")
    json.loads(test["body"])
    assert signature_ok(test, secret), f"bad signature {test['headers'].get('x-supportrelay-signature')!r}"

    host = alice.ok("POST", "/api/admin/hosts", {"name": "Soon removed PC", "group": ""})["host"]
    alice.ok("POST", "/api/admin/hosts/remove", {"id": host["id"]})
    deadline = time.monotonic() + 15
    while True:
        alerts = alice.ok("GET", "/api/admin/alerts")["rows"]
        removed = [a for a in alerts if a["kind"] == "host_removed" and (host["id"] in a["subject"] + a["detail"] or "Soon removed" in a["subject"] + a["detail"])]
        if removed or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert removed, f"no host_removed alert for the removed host: {alerts}"
    delivered = receiver.wait_for("/hook-a", lambda post: b"host_removed" in post["body"] and host["id"].encode() in post["body"])
    assert signature_ok(delivered, secret)
    assert json.loads(delivered["body"])
    last = alice.ok("GET", "/api/admin/webhook")["lastDelivery"]
    assert last and last["status"] == 200, last

    # B's deliveries went to B's address only, and never carried A's things (nor the reverse).
    for post in receiver.received("/hook-b"):
        assert host["id"].encode() not in post["body"] and "Acme".encode() not in post["body"]
    assert receiver.received("/hook-b"), "company B's host removal was never delivered to B's webhook"
    for post in receiver.received("/hook-a"):
        for marker in world.b_markers:
            assert marker.encode() not in post["body"], f"A's webhook got B's {marker}"

    # A changed URL gets a new secret; "" removes the webhook.
    again = alice.ok("POST", "/api/admin/webhook", {"url": receiver.url("/hook-a2")})
    assert again["secret"] != secret
    alice.ok("POST", "/api/admin/webhook", {"url": ""})
    assert alice.ok("GET", "/api/admin/webhook").get("url") is None


# ---- 9. Sessions end with the person ----


def test_removing_or_disabling_an_engineer_ends_their_web_session(world, browser):
    relay, alice = world.relay, world.api["alice"]
    leaver_id, leaver_cookie = _sign_in(browser, relay, world.a, "leaver.lee", "engineer")
    paused_id, paused_cookie = _sign_in(browser, relay, world.a, "paused.pak", "engineer")
    reset_id, reset_cookie = _sign_in(browser, relay, world.a, "reset.rho", "engineer")
    leaver = Api(relay, cookie=leaver_cookie, name="leaver")
    paused = Api(relay, cookie=paused_cookie, name="paused")
    assert leaver.ok("GET", "/api/admin/me")["sections"] == ["usage"]

    # A role change counts from the next request.
    alice.ok("POST", "/api/admin/engineers/role", {"id": leaver_id, "role": "manager"})
    assert set(leaver.ok("GET", "/api/admin/me")["sections"]) == SECTIONS["mina"]
    expect_status(leaver.get("/api/admin/hosts"), 200, "a new manager")
    alice.ok("POST", "/api/admin/engineers/role", {"id": leaver_id, "role": "engineer"})
    expect_status(leaver.get("/api/admin/hosts"), 403, "a manager made engineer again")

    assert alice.ok("POST", "/api/admin/engineers/remove", {"id": leaver_id}) == {}
    expect_status(leaver.get("/api/admin/me"), 401, "a removed engineer's session")
    expect_status(leaver.request("GET", "/api/me"), 401, "a removed engineer's session on /api/me")
    assert leaver_id not in {e["id"] for e in alice.ok("GET", "/api/admin/engineers")["engineers"]}

    disabled = alice.ok("POST", "/api/admin/engineers/disable", {"id": paused_id})["engineer"]
    assert disabled["disabled"] is True
    expect_status(paused.get("/api/admin/me"), 401, "a disabled engineer's session")
    enabled = alice.ok("POST", "/api/admin/engineers/enable", {"id": paused_id})["engineer"]
    assert enabled["disabled"] is False
    expect_status(paused.get("/api/admin/me"), 401, "a session ended by disabling, after enabling again")

    # A new two-factor enrolment: the old phone's session ends too.
    reset = Api(relay, cookie=reset_cookie, name="reset")
    expect_status(reset.get("/api/admin/me"), 200, "before reset-totp")
    assert alice.ok("POST", "/api/admin/engineers/reset-totp", {"id": reset_id})["engineer"]["twoFactor"] is False
    expect_status(reset.get("/api/admin/me"), 401, "a session after reset-totp")

    # An admin cannot lock themselves out.
    me = world.ids["alice"]
    for route, body in (("disable", {"id": me}), ("remove", {"id": me}), ("role", {"id": me, "role": "engineer"})):
        response = alice.post(f"/api/admin/engineers/{route}", body)
        expect_status(response, 409, f"alice {route}s herself")
        assert refusal_problem(response) is None, f"{response}: {refusal_problem(response)}"
    assert alice.ok("GET", "/api/admin/me")["role"] == "admin"


def test_retention_is_in_months_and_a_legal_hold_shows_who_placed_it(world):
    bob = world.api["bob"]
    retention = bob.ok("GET", "/api/admin/retention")
    assert (retention["usageMonths"], retention["accessMonths"]) == (12, 3), retention
    assert retention["hold"]["reason"] == "B-ONLY litigation hold" and "bob.b" in retention["hold"]["heldBy"], retention
    purge = retention["nextPurge"]
    assert all(isinstance(purge[key], int) for key in ("sessions", "accessEvents", "heldSessions", "heldAccessEvents")), purge
    assert datetime.datetime.fromisoformat(purge["at"].replace("Z", "+00:00")) > datetime.datetime.now(datetime.timezone.utc)


def test_a_rotated_host_key_logs_the_running_agent_out(world):
    alice, host = world.api["alice"], world.ids["live"]

    def online() -> bool:
        return next(h for h in alice.ok("GET", "/api/admin/hosts")["hosts"] if h["id"] == host)["online"]

    deadline = time.monotonic() + 20
    while not online():
        assert time.monotonic() < deadline, "the running host never showed online"
        time.sleep(0.2)
    before = next(h for h in alice.ok("GET", "/api/admin/hosts")["hosts"] if h["id"] == host)
    rotated = alice.ok("POST", "/api/admin/hosts/key", {"id": host, "publicKey": world.relay.new_public_key()})["host"]
    assert rotated["loginMethod"] == "key" and rotated.get("fingerprint") and rotated.get("fingerprint") != before.get("fingerprint")
    deadline = time.monotonic() + 10
    while online():
        assert time.monotonic() < deadline, "the host is still online with its old key 10 s after the key was rotated"
        time.sleep(0.2)
    time.sleep(2)  # the agent retries with its old key: it stays out
    assert not online(), "the agent logged in again with its old key"


def test_a_disabled_engineer_cannot_get_back_in_with_a_new_sign_in_link(world, browser):
    relay, alice = world.relay, world.api["alice"]
    gone_id, gone_cookie = _sign_in(browser, relay, world.a, "gone.gim", "engineer")
    alice.ok("POST", "/api/admin/engineers/disable", {"id": gone_id})
    expect_status(Api(relay, cookie=gone_cookie).get("/api/admin/me"), 401, "a disabled engineer's session")
    link = alice.post("/api/admin/engineers/link", {"id": gone_id})
    if link.status != 200:
        assert link.status in (400, 409), str(link)
        return
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        page.set_default_timeout(5000)
        try:
            sign_in(page, relay, "gone.gim", PASSWORD + " again", company=world.a, link=relay._on_this_relay(link.json()["signInLink"]))
        except Exception:  # the link, the password or the enrolment was refused: they stay out
            pass
        cookies = [c["value"] for c in context.cookies() if c["name"] == SESSION_COOKIE]
    finally:
        context.close()
    for cookie in cookies:
        expect_status(Api(relay, cookie=cookie).get("/api/admin/me"), 401, "a disabled engineer's new sign-in")


# ---- 10. Refusals are sentences ----


def test_every_refusal_is_a_json_sentence_that_says_what_to_do(world):
    alice, span = world.api["alice"], world.range
    bad_json = alice.request("POST", "/api/admin/hosts", headers={"Origin": world.relay.url, "X-CSRF-Token": alice.csrf, "Content-Type": "application/json"}, raw=b"{not json")
    triggered = [
        (bad_json, 400),
        (alice.get("/api/admin/usage"), 400),
        (alice.get("/api/admin/usage", **{"from": "2026-13-45", "to": span["to"]}), 400),
        (alice.get("/api/admin/usage", **{"from": span["to"], "to": span["from"]}), 400),
        (alice.get("/api/admin/usage", **span, tz="Mars/Olympus"), 400),
        (alice.get("/api/admin/usage", **span, mode="sideways"), 400),
        (alice.get("/api/admin/usage", **span, reason="bored"), 400),
        (alice.get("/api/admin/usage/export", **span, format="pdf"), 400),
        (alice.get("/api/admin/audit/export", **span, format="xlsx-macro"), 400),
        (alice.get("/api/admin/alerts", after="not a cursor"), 400),
        (alice.get("/api/admin/no-such-route"), 404),
        (alice.post("/api/admin/hosts", {}), 400),
        (alice.post("/api/admin/hosts", {"name": "", "group": ""}), 400),
        (alice.post("/api/admin/hosts/rename", {"id": "ho-nosuchhost", "name": "x"}), 404),
        (alice.post("/api/admin/engineers/link", {"id": "en-nosuchone"}), 404),
        (alice.post("/api/admin/engineers", {"login": "zed", "role": "superuser"}), 400),
        (alice.post("/api/admin/tokens", {"name": "x", "scope": "root"}), 400),
        (alice.post("/api/admin/tokens/revoke", {"id": "tk-nosuchtoken"}), 404),
        (alice.post("/api/admin/hosts/key", {"id": world.ids[PLUS], "publicKey": "not a key"}), 400),
        (alice.request("DELETE", "/api/admin/hosts", headers={"Origin": world.relay.url, "X-CSRF-Token": alice.csrf}), 405),
        (world.api["kim"].get("/api/admin/hosts"), 403),
        (world.api["nobody"].get("/api/admin/me"), 401),
        (Api(world.relay, token="sra_nothing").get("/api/admin/usage/summary", **span), 401),
    ]
    for response, status in triggered:
        expect_status(response, status)
    problems = [f"{response}: {refusal_problem(response)}" for response in [r for r, _ in triggered] + REFUSALS if refusal_problem(response)]
    assert not problems, "refusals that are not a JSON sentence saying what to do:\n" + "\n".join(problems)


def test_refusing_a_taken_login_does_not_send_a_company_admin_to_the_relays_command_line(world):
    # A company's admin in the console, or their script, has no shell on the relay.
    response = world.api["alice"].post("/api/admin/engineers", {"login": "kim.minji", "role": "engineer"})
    expect_status(response, 409, "a taken login")
    sentence = response.json()["error"]
    assert "relay-server" not in sentence and world.a not in sentence, sentence


# ---- The contract's shapes ----


def test_nullable_fields_are_present_as_null_as_the_contract_shows(world):
    alice = world.api["alice"]
    last = alice.ok("GET", "/api/admin/usage", **world.range, limit=500)
    assert "next" in last and last["next"] is None, f"the last page has no \"next\": null: {sorted(last)}"
    no_host = next(row for row in last["rows"] if row["id"] == "se-t120a")
    assert "hostID" in no_host and no_host["hostID"] is None, no_host
    assert "hold" in alice.ok("GET", "/api/admin/retention")
    webhook = alice.ok("GET", "/api/admin/webhook")
    assert "url" in webhook and "lastDelivery" in webhook, webhook
    host = alice.ok("GET", "/api/admin/hosts")["hosts"][0]
    assert {"lastSeenAt", "fingerprint"} <= set(host), host
    engineer = alice.ok("GET", "/api/admin/engineers")["engineers"][0]
    assert {"managerID", "managerLogin"} <= set(engineer), engineer
    row = alice.ok("GET", "/api/admin/audit", limit=500)["rows"][-1]
    assert {"subject", "detail"} <= set(row), row


def test_the_end_reasons_the_documents_name_are_filters(world):
    # docs/OPERATIONS.md "Columns", end_reason (the contract's first draft named others).
    alice = world.api["alice"]
    for reason in ("normal", "peer_left", "relay_shutdown", "relay_restart", "revoked", "idle_timeout", "declined", "open"):
        expect_status(alice.get("/api/admin/usage", **world.range, reason=reason), 200, f"reason={reason}")


def test_the_relay_answer_names_its_version(world):
    relay = world.api["ops"].ok("GET", "/api/admin/relay")
    assert isinstance(relay.get("version"), str) and relay["version"], sorted(relay)


def test_a_failed_webhook_test_says_why_in_words(world):
    alice = world.api["alice"]
    closed = Receiver()
    url = closed.url("/gone")
    closed.close()  # nothing listens there now
    try:
        for hook in (url, url.replace("http://", "https://")):
            alice.ok("POST", "/api/admin/webhook", {"url": hook})
            response = alice.post("/api/admin/webhook/test", {})
            assert response.status >= 400 and response.status != 500, str(response)
            sentence = response.json()["error"]
            internals = re.search(r"\w+\(|errno|NIO|\w+Error\b|\[IPv4\]|SNI\b", sentence)
            assert not internals, f"the webhook test's refusal shows internals ({internals.group(0)!r}): {sentence}"
    finally:
        alice.ok("POST", "/api/admin/webhook", {"url": ""})


def test_a_role_refusal_tells_each_caller_what_they_can_do(world):
    admin_token = Api(world.relay, token=world.ids["a:admin-secret"], name="A's admin token")
    for caller, path in ((world.api["alice"], "/api/admin/relay"), (world.api["ops"], "/api/admin/hosts"), (admin_token, "/api/admin/tokens")):
        response = expect_status(caller.get(path), 403, caller.name)
        assert "ask your company's admin" not in response.json()["error"], f"{caller.name}: {response}"
