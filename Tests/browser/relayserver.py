"""A real relay-server for browser tests, and the helpers to sign an engineer in through it.

The tests import the fixtures from here (`from relayserver import relay, open_page  # noqa`):

- `relay`: a `Relay` started for one test on 127.0.0.1 with free ports, a temporary data
  folder and its self-signed development certificate; stopped afterwards (its log is
  printed when the test failed).
- `open_page`: makes a page in a new browser context that accepts the development
  certificate; every page is checked at the end for uncaught errors and CSP refusals.

`sign_in(page, relay, login, password)` adds an engineer and goes through the one-time link,
the new password and the two-factor enrolment in the browser, as an engineer would.
`totp(secret, step)` computes RFC 6238 codes (SHA-1, 6 digits, 30 s steps).

The relay binaries come from `.build/debug` (scripts/test.sh builds them first; set
RELAY_BUILD_DIR to use others). This module never builds.
"""

from __future__ import annotations

import base64
import dataclasses
import errno
import hashlib
import hmac
import json
import os
import pathlib
import re
import socket
import sqlite3
import struct
import subprocess
import time
import urllib.parse

import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("RELAY_BUILD_DIR", REPOSITORY / ".build" / "debug"))
SERVER = BUILD / "relay-server"
AGENT = BUILD / "relay-agent"

SESSION_COOKIE = "__Host-supportrelay-session"

# ---- TOTP (RFC 6238 over RFC 4226), as an authenticator app computes it ----

STEP_SECONDS = 30


def totp_step(at: float | None = None) -> int:
    """The 30-second step `at` (default: now) falls in."""
    return int((time.time() if at is None else at) // STEP_SECONDS)


def totp(secret: str, step: int | None = None) -> str:
    """The 6-digit code of `step` (default: the current one) for a base32 secret."""
    cleaned = re.sub(r"[\s-]", "", secret).upper()
    key = base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    counter = totp_step() if step is None else step
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def fresh_code(secret: str, last_step: int) -> tuple[str, int]:
    """A code the relay has not seen: of the current step, or of the next one (the relay
    accepts one step either way) if the current one was used. Waits when both were used."""
    while True:
        current = totp_step()
        step = max(current, last_step + 1)
        if step <= current + 1:
            return totp(secret, step), step
        time.sleep(0.5)


def wrong_code(secret: str) -> str:
    """A well-formed code that matches no step the relay accepts now."""
    current = totp_step()
    accepted = {totp(secret, step) for step in range(current - 2, current + 3)}
    candidate = int(totp(secret, current))
    while f"{candidate:06d}" in accepted:
        candidate = (candidate + 111_111) % 1_000_000
    return f"{candidate:06d}"


# ---- The relay ----


class RelayCommandError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Relay:
    """One relay-server process on loopback with its own data folder."""

    def __init__(self, folder: pathlib.Path, settings: dict | None = None):
        for binary in (SERVER,):
            if not binary.is_file():
                raise RuntimeError(
                    f"{binary} is missing: build it first (swift build --product relay-server, "
                    "or run scripts/test.sh, which builds before the browser tests)"
                )
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.data = folder / "data"
        self.config = folder / "relay.json"
        self.stdout_path = folder / "relay.stdout"
        self.stderr_path = folder / "relay.stderr"
        # Tests make many wrong sign-in attempts from 127.0.0.1 on purpose; the relay's
        # default throttle (5 free failures per source) would answer 429 before they end.
        self.settings = {"free_auth_failures_per_source": 1000, **(settings or {})}
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.admin_port = 0
        self.fingerprint = ""
        self._help: dict[tuple[str, ...], str] = {}
        self._agents: list[subprocess.Popen] = []
        self._companies = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Relay:
        for attempt in range(3):
            self.port, self.admin_port = _free_port(), _free_port()
            self.config.write_text(
                json.dumps(
                    {
                        "listen": self.address,
                        "admin_listen": f"127.0.0.1:{self.admin_port}",
                        "data_directory": str(self.data),
                        **self.settings,
                    }
                )
            )
            with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
                self.process = _while_busy(
                    lambda: subprocess.Popen(
                        [str(SERVER), "serve", "--config", str(self.config), "--log-level", "info"],
                        cwd=self.folder,
                        stdout=out,
                        stderr=err,
                        stdin=subprocess.DEVNULL,
                    )
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                banner = self.stdout_path.read_text(errors="replace")
                if "relay-server listening" in banner and "fingerprint:" in banner:
                    match = re.search(r"fingerprint:\s*([0-9A-Fa-f:]{64,})", banner)
                    self.fingerprint = match.group(1) if match else ""
                    if self._accepts_connections():
                        return self
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
            log = self.log()
            self.stop()
            if "cannot listen" in log and attempt < 2:
                continue  # another process took a port between the probe and the start
            raise RuntimeError(f"relay-server did not start within {timeout} s:\n{log}")
        raise AssertionError("unreachable")

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        for agent in self._agents:
            _end(agent)
        self._agents.clear()
        if self.process is not None:
            _end(self.process)
            self.process = None

    def log(self, lines: int = 300) -> str:
        parts = []
        for name, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()
                cut = f"(first {len(text) - lines} lines left out)\n" if len(text) > lines else ""
                parts.append(f"--- relay-server {name} ---\n{cut}" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    # ---- Admin commands ----

    def cli(self, *args: str) -> str:
        """Runs `relay-server ARGS --data DATA`; returns its standard output."""
        command = [str(SERVER), *args, "--data", str(self.data)]
        result = _while_busy(lambda: subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=self.folder))
        if result.returncode != 0:
            raise RelayCommandError(
                f"`relay-server {' '.join(args)}` failed with status {result.returncode}:\n{result.stderr}{result.stdout}"
            )
        return result.stdout

    def cli_json(self, *args: str) -> dict:
        output = self.cli(*args, "--json")
        try:
            return json.loads(output)
        except json.JSONDecodeError as error:
            raise RelayCommandError(f"`relay-server {' '.join(args)} --json` printed no JSON ({error}):\n{output}") from None

    def help(self, *subcommand: str) -> str:
        if subcommand not in self._help:
            result = subprocess.run([str(SERVER), *subcommand, "--help"], capture_output=True, text=True, timeout=30)
            self._help[subcommand] = result.stdout + result.stderr
        return self._help[subcommand]

    def add_company(self, name: str | None = None) -> str:
        """Adds a company; returns its id."""
        self._companies += 1
        return self.cli_json("company", "add", name or f"Test company {self._companies}")["id"]

    def add_engineer(self, company: str, login: str) -> tuple[str, str]:
        """Adds an engineer who signs in with the browser; returns (engineer id, one-time
        sign-in link on this relay)."""
        usage = self.help("engineer", "add")
        args = ["engineer", "add", "--company", company]
        if re.search(r"(?<!\[)--public-key <", usage):
            # This relay still wants a login key for every engineer.
            args += ["--public-key", self.new_public_key()]
        if "--web-url" in usage:
            args += ["--web-url", self.url]
        args += ["--", login] if login.startswith("-") else [login]
        added = self.cli_json(*args)
        link = added.get("signin_link") or self.signin_link(added["id"])
        return added["id"], self._on_this_relay(link)

    def signin_link(self, engineer_id: str) -> str:
        """A new one-time sign-in link for an engineer (earlier ones stop working)."""
        answer = self.cli_json("engineer", "signin-link", engineer_id, "--web-url", self.url)
        link = answer.get("signin_link")
        if not link:
            match = re.search(r"https://\S+/signin#\S+", json.dumps(answer))
            if not match:
                raise RelayCommandError(f"`engineer signin-link` printed no link: {answer}")
            link = match.group(0)
        return self._on_this_relay(link)

    def _on_this_relay(self, link: str) -> str:
        parsed = urllib.parse.urlsplit(link)
        assert parsed.scheme == "https" and parsed.path == "/signin" and parsed.fragment, f"not a sign-in link: {link}"
        return f"{self.url}/signin#{parsed.fragment}"

    def new_public_key(self, key_file: pathlib.Path | None = None, host_id: str | None = None) -> str:
        """Makes an Ed25519 key with relay-agent keygen; returns its public key."""
        if not AGENT.is_file():
            raise RuntimeError(f"{AGENT} is missing: build it first (swift build --product relay-agent)")
        key_file = key_file or self.folder / f"key-{time.monotonic_ns()}.key"
        command = [str(AGENT), "keygen", "--key-file", str(key_file)]
        if host_id is not None:
            command += ["--host-id", host_id]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, env=self._agent_environment())
        match = re.search(r"public key:\s*(\S+)", result.stdout)
        if result.returncode != 0 or not match:
            raise RelayCommandError(f"relay-agent keygen failed ({result.returncode}):\n{result.stderr}{result.stdout}")
        return match.group(1)

    def enroll_host(self, company: str, name: str) -> str:
        """Enrolls a host (without a key: it shows as offline); returns its id."""
        args = ["host", "enroll", "--company", company]
        args += ["--", name] if name.startswith("-") else [name]
        return self.cli_json(*args)["id"]

    def run_host(self, company: str, name: str) -> str:
        """Enrolls a host with a key and runs relay-agent for it (a synthetic screen), so the
        relay has it online; returns its id. The agent stops with the relay."""
        host_id = self.enroll_host(company, name)
        key_file = self.folder / f"{host_id}.key"
        self.cli_json("host", "set-key", host_id, "--public-key", self.new_public_key(key_file, host_id))
        log = open(self.folder / f"agent-{host_id}.log", "wb")
        agent = subprocess.Popen(
            [
                str(AGENT), "host", "--relay", self.address, "--fingerprint", self.fingerprint, "--host-id", host_id,
                "--key-file", str(key_file), "--any-engineer", "--source", "synthetic:scrolling-text",
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.folder, env=self._agent_environment(),
        )  # fmt: skip
        log.close()
        self._agents.append(agent)
        return host_id

    def agent_log(self, host_id: str) -> str:
        path = self.folder / f"agent-{host_id}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _agent_environment(self) -> dict:
        # The agent's config folder (known_hosts, keys) stays inside this test's folder.
        return {**os.environ, "XDG_CONFIG_HOME": str(self.folder / "agent-config"), "HOME": str(self.folder)}


def _while_busy(start, seconds: float = 120):
    """Runs `start`, again while the binary is being written (a build linking it: ETXTBSY)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return start()
        except OSError as error:
            if error.errno != errno.ETXTBSY or time.monotonic() > deadline:
                raise
            time.sleep(1)


def _end(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def relay(request, tmp_path):
    """A relay-server for this test; its log is printed if the test failed."""
    failed_before = request.session.testsfailed
    server = Relay(tmp_path / "relay").start()
    try:
        yield server
    finally:
        server.stop()
        if request.session.testsfailed > failed_before:
            text = f"\n===== relay-server log for {request.node.nodeid} =====\n{server.log()}\n"
            for agent_log in sorted(server.folder.glob("agent-*.log")):
                text += f"--- {agent_log.name} ---\n{agent_log.read_text(errors='replace')[-4000:]}\n"
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(text)
            else:
                print(text)


# ---- Browser pages ----


@dataclasses.dataclass
class PageProblems:
    errors: list = dataclasses.field(default_factory=list)

    def watch(self, page) -> None:
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: uncaught {error}"))
        page.on(
            "console",
            lambda message: self.errors.append(f"{page.url}: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text
            else None,
        )


@pytest.fixture
def open_page(browser):
    """`open_page()` makes a page in a new browser context (which trusts the relay's
    development certificate). At the end, none of these pages may have had an uncaught
    error or a CSP refusal."""
    contexts = []
    problems = PageProblems()

    def make(**options):
        context = browser.new_context(ignore_https_errors=True, **options)
        contexts.append(context)
        page = context.new_page()
        # Only the pages the tests open; tabs a page opens (the viewer) are not checked here.
        problems.watch(page)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not problems.errors, "problems in the pages:\n" + "\n".join(problems.errors)


# ---- Signing in through the pages ----


@dataclasses.dataclass
class Engineer:
    id: str
    company: str
    login: str
    password: str
    secret: str
    recovery_codes: list[str]
    last_step: int

    def next_code(self) -> str:
        """A fresh TOTP code (one the relay has not accepted yet); remembers its step."""
        code, self.last_step = fresh_code(self.secret, self.last_step)
        return code


def wait_until_online(page, host_id: str, timeout: float = 30) -> None:
    """Waits until the signed-in page's /api/hosts shows `host_id` online (registered, free)."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        hosts = page.evaluate("fetch('/api/hosts').then((response) => response.json())")["hosts"]
        status = next((host["status"] for host in hosts if host["id"] == host_id), None)
        if status == "online":
            return
        time.sleep(0.2)
    raise AssertionError(f"host {host_id} is {status}, not online, after {timeout} s")


def sign_in(
    page, relay: Relay, login: str, password: str, *, company: str | None = None, link: str | None = None, on_password_form=None
) -> Engineer:
    """Adds an engineer (to `company`, or a new one) unless a `link` is given, then opens the
    one-time link in `page`, chooses `password`, enrols two-factor with the secret the page
    shows, reads the recovery codes and ends on the console. Returns what the engineer
    would keep: the TOTP secret and the recovery codes. `on_password_form(page)` is called
    when the page asks for the new password."""
    if company is None:
        company = relay.add_company()
    engineer_id = ""
    if link is None:
        engineer_id, link = relay.add_engineer(company, login)
    page.goto(link)
    page.get_by_role("heading", name=f"Choose a password for {login}").wait_for()
    if on_password_form is not None:
        on_password_form(page)
    page.get_by_label("New password").fill(password)
    page.get_by_label("The same password again").fill(password)
    page.get_by_role("button", name="Set password").click()
    page.get_by_role("heading", name="Set up two-factor sign-in").wait_for()
    secret = re.sub(r"\s", "", page.locator("#totp-secret").inner_text())
    assert secret, "the enrolment shows no key for manual entry"
    code, step = fresh_code(secret, totp_step() - 2)
    page.get_by_label("Type the 6-digit code the app shows").fill(code)
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("heading", name="Store your recovery codes").wait_for()
    codes = [item.strip() for item in page.locator("#recovery-codes li").all_inner_texts()]
    page.get_by_role("button", name="I have stored these").click()
    page.wait_for_url(f"{relay.url}/")
    page.get_by_role("heading", name="Hosts").wait_for()
    return Engineer(engineer_id, company, login, password, secret, codes, step)


def sign_in_with_password(page, relay: Relay, login: str, password: str) -> None:
    """Fills the sign-in page's login form and submits it (the page is on /signin)."""
    page.get_by_label("Login", exact=True).fill(login)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


# ---- Usage rows written straight into a relay's database ----

SESSION_COLUMNS = (
    "id", "companyID", "engineerLogin", "hostID", "hostName", "mode", "startedAt", "endedAt", "durationSeconds",
    "bytesToViewer", "bytesToHost", "framesToViewer", "framesToHost", "endReason", "viewerAddress", "hostAddress",
    "relayNode", "checkpointedAt", "viewerClient",
)  # fmt: skip


def insert_usage(relay: Relay, rows) -> None:
    """Writes usage rows (tuples in SESSION_COLUMNS order) into the running relay's
    database, as a relay with history would hold them (WAL: the relay keeps going)."""
    columns = ", ".join(SESSION_COLUMNS)
    marks = ", ".join("?" * len(SESSION_COLUMNS))
    database = sqlite3.connect(relay.data / "relay.sqlite", timeout=30)
    try:
        with database:
            database.executemany(f"INSERT INTO session ({columns}) VALUES ({marks})", list(rows))
    finally:
        database.close()
