"""The admin console (/admin) end to end, from the user's side (issue 14 item 9): a real
relay-server, people signed in through the real one-time link, password and two-factor
code, headless Chromium clicking what docs/OPERATIONS.md §10 "The admin console" tells
an admin, a manager and an engineer to click.

1. An admin opens the console from the engineer console, filters a month on the Usage tab
   (rows written into the relay's SQLite `session` table: Korean names, formula-looking
   host names), reads the totals and the chart, and downloads the CSV and XLSX exports
   with the page's links.
2. The admin enrols a host with the form, sees its commands once, runs them on "the host"
   (relay-agent), gives it the key through the host's menu and sees it come online; the
   audit tab shows what they did.
3. The admin removes an engineer whose browser viewer is live: the viewer ends (revoked)
   within seconds and the engineer's pages go to the sign-in page.
4. A manager sees their engineers, their groups' hosts and those sessions only; an engineer
   their own sessions only; nothing of another company appears in anyone's page.
5. A form or fetch on another origin cannot make the admin's browser change anything
   (CSRF); markup typed into every free-text field is shown as text (no script runs, no
   CSP refusal).
6. With UPDATE_SCREENSHOTS=1 the tests write the docs' screenshots (1280x800):
   docs/images/admin-usage.png, admin-hosts.png and admin-audit.png (a Korean font must be
   installed, e.g. Debian's fonts-nanum, or 한국 shows as boxes); CI never writes them.

One failing test records a bug: the customer at a host is told the engineer's "your web
session ended …; sign in again" when the engineer's account ends during a session.

One relay and one signed-in admin serve the whole module; the tests run in file order (the
XSS test comes last: it fills the company with markup). Every page the tests open is
watched for uncaught errors and CSP refusals.
"""

from __future__ import annotations

import calendar
import csv
import dataclasses
import datetime
import decimal
import hashlib
import http.server
import io
import json
import os
import pathlib
import random
import re
import shlex
import ssl
import subprocess
import threading
import time
import urllib.parse

import openpyxl
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect
from relayserver import AGENT, REPOSITORY, PageProblems, Relay, insert_usage, sign_in, wait_until_online

PASSWORD = "a long enough passphrase"
VIEWPORT = {"width": 1280, "height": 800}
IMAGES = REPOSITORY / "docs" / "images"
UPDATE_SCREENSHOTS = os.environ.get("UPDATE_SCREENSHOTS") == "1"

KOREAN_HOST = "회계팀 PC-03"
KOREAN_ENGINEER = "김민지"
HYPERLINK = '=HYPERLINK("http://x","y")'
PLUS = "+1-2"
ATTENDED_HOST = "고객 노트북 (박 대리)"
B_HOST = "B-ONLY 비밀 호스트"

# The export's columns (OPERATIONS.md §9 "Columns").
COLUMNS = [
    "session_id", "company_id", "engineer", "host_id", "host_name", "mode", "started_at", "ended_at", "duration_s",
    "bytes_to_viewer", "bytes_to_host", "frames_to_viewer", "frames_to_host", "end_reason", "viewer_addr", "host_addr",
    "relay_node", "viewer_client",
]  # fmt: skip

# The viewer's sentence for Bye(revoked) (wire.js BYE_SENTENCES).
REVOKED_WORDS = "The account or host this connection signed in with was removed or given a new key"

# ---- What the console shows, computed as admin-format.js does (en-US) ----


def _number(value: decimal.Decimal, digits: int) -> str:
    """Intl.NumberFormat('en-US', {maximumFractionDigits: digits}) of a positive value."""
    rounded = value.quantize(decimal.Decimal(1).scaleb(-digits), rounding=decimal.ROUND_HALF_UP)
    text = f"{rounded:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def hours_label(seconds: int) -> str:
    hours = decimal.Decimal(seconds) / 3600
    return f"{_number(hours, 0 if hours >= 1000 else 1)} h"


def bytes_label(count: int) -> str:
    value, unit = decimal.Decimal(float(count)), 0
    units = ["B", "KB", "MB", "GB", "TB", "PB"]
    if count <= 0:
        return "0 B"
    while value >= 1024 and unit < len(units) - 1:
        value, unit = decimal.Decimal(float(value) / 1024), unit + 1
    if unit == 0:
        return f"{_number(value, 0)} B"
    return f"{_number(value, 1 if value < 10 else 0)} {units[unit]}"


def duration_label(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min" if seconds % 60 == 0 else f"{minutes} min {seconds % 60} s"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h" if minutes % 60 == 0 else f"{hours} h {minutes % 60} min"
    return f"{hours // 24} d" if hours % 24 == 0 else f"{hours // 24} d {hours % 24} h"


def plural(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


# ---- Usage rows, written into the relay's database ----


@dataclasses.dataclass
class Row:
    id: str
    company: str
    engineer: str
    host_id: str | None
    host_name: str
    mode: str
    started: datetime.datetime  # UTC
    seconds: int
    to_viewer: int
    to_host: int
    reason: str

    @property
    def day(self) -> str:
        return self.started.date().isoformat()


def _session_id(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


def _previous_month(today: datetime.date) -> tuple[datetime.date, datetime.date]:
    last = today.replace(day=1) - datetime.timedelta(days=1)
    return last.replace(day=1), last


def make_rows(a: str, b: str, ids: dict, first: datetime.date, last: datetime.date) -> list[Row]:
    """A month of company A's sessions (weekdays busy, Sundays empty), four rows on the
    month's edges (two inside, two outside) and company B's sessions in the same month,
    one of them by an engineer with the same login as one of A's."""
    rng = random.Random(20261114)
    # (engineer, host name, host id or None for a support-code session, mode)
    combos = [
        (KOREAN_ENGINEER, KOREAN_HOST, ids[KOREAN_HOST], "unattended"),
        ("kim.minji", HYPERLINK, ids[HYPERLINK], "unattended"),
        ("park.jisoo", PLUS, ids[PLUS], "unattended"),
        ("park.jisoo", "Warehouse PC", ids["Warehouse PC"], "unattended"),
        ("park.jisoo", KOREAN_HOST, ids[KOREAN_HOST], "unattended"),
        ("mina.manager", ATTENDED_HOST, None, "attended"),
        ("park.jisoo", "Customer laptop", None, "attended"),
        ("kim.minji", KOREAN_HOST, ids[KOREAN_HOST], "unattended"),
        (KOREAN_ENGINEER, HYPERLINK, ids[HYPERLINK], "unattended"),
        ("kim.minji", "Reception PC", None, "attended"),
    ]
    rows: list[Row] = []

    def add(company, combo, started, seconds):
        engineer, host_name, host_id, mode = combo
        rows.append(
            Row(
                id=_session_id(f"{company}-{len(rows)}"), company=company, engineer=engineer, host_id=host_id,
                host_name=host_name, mode=mode, started=started, seconds=seconds,
                to_viewer=rng.randint(300_000, 60_000_000), to_host=rng.randint(5_000, 900_000),
                reason="normal" if rng.random() < 0.7 else "peer_left",
            )
        )  # fmt: skip

    day = first
    index = 0
    while day <= last:
        weekday = day.weekday()
        count = 0 if weekday == 6 else 1 if weekday == 5 else rng.randint(1, 4)
        if day.day in (12, 13):
            count = 0  # a gap in the middle of the month
        for _ in range(count):
            combo = combos[index] if index < len(combos) else rng.choice(combos)
            started = datetime.datetime.combine(day, datetime.time(rng.randint(8, 17), rng.randint(0, 59), rng.randint(0, 59)), datetime.timezone.utc)
            add(a, combo, started, rng.randint(4, 95) * 60 + rng.randint(0, 59))
            index += 1
        day += datetime.timedelta(days=1)
    midnight = datetime.time(0, 0, 0, tzinfo=datetime.timezone.utc)
    # The month's first and last second are in it; the seconds around it are not.
    add(a, combos[0], datetime.datetime.combine(first, midnight), 600)
    add(a, combos[7], datetime.datetime.combine(last, datetime.time(23, 59, 59, tzinfo=datetime.timezone.utc)), 300)
    add(a, combos[1], datetime.datetime.combine(first, midnight) - datetime.timedelta(seconds=1), 900)
    add(a, combos[2], datetime.datetime.combine(last + datetime.timedelta(days=1), midnight), 1200)
    for number in range(6):
        engineer = "kim.minji" if number % 2 else "b-only.engineer"
        started = datetime.datetime.combine(first + datetime.timedelta(days=3 * number + 1), datetime.time(10, 0, tzinfo=datetime.timezone.utc))
        add(b, (engineer, B_HOST, ids["b:host"], "unattended"), started, 1800 + number)
    return rows


def insert_rows(relay: Relay, rows: list[Row]) -> None:
    """Writes usage rows into the running relay's database (WAL: the relay keeps going)."""
    insert_usage(
        relay,
        (
            (
                row.id, row.company, row.engineer, row.host_id, row.host_name, row.mode,
                int(row.started.timestamp() * 1000), int(row.started.timestamp() * 1000) + row.seconds * 1000,
                row.seconds, row.to_viewer, row.to_host, row.to_viewer // 9000, row.to_host // 300, row.reason,
                f"203.0.113.{10 + index % 40}:{50000 + index}", f"198.51.100.{20 + index % 30}:40000", "relay-1",
                int(row.started.timestamp() * 1000) + row.seconds * 1000, "browser" if index % 3 else "agent",
            )
            for index, row in enumerate(rows)
        ),
    )  # fmt: skip


# ---- The world: company A (admin, manager, engineers, hosts) and company B ----


@dataclasses.dataclass
class World:
    relay: Relay
    a: str
    b: str
    ids: dict  # login or host name → id (company A unless prefixed "b:")
    links: dict  # login → one-time sign-in link (people the tests sign in later)
    admin: object  # alice's page (1280x800), signed in
    new_page: object  # new_page(**context options) → a watched page in a new context
    problems: PageProblems
    rows: list
    month: tuple  # (first, last) day of the previous month, UTC
    b_markers: list  # strings of company B that must never show in company A's pages

    def month_rows(self, company: str | None = None, **match) -> list[Row]:
        first, last = self.month
        company = company or self.a
        return [
            row for row in self.rows
            if row.company == company and first <= row.started.date() <= last and all(getattr(row, k) == v for k, v in match.items())
        ]  # fmt: skip


def admin_call(page, method: str, path: str, body=None) -> dict:
    """Calls the admin API from a signed-in page, as the console does (its CSRF token and
    Origin); for setting the scene only, the tests themselves click."""
    answer = page.evaluate(
        """async ([method, path, body]) => {
          const me = await (await fetch('/api/admin/me')).json();
          const response = await fetch(path, {method, headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf},
                                              body: body === null ? undefined : JSON.stringify(body)});
          return {status: response.status, body: await response.text()};
        }""",
        [method, path, body],
    )
    assert answer["status"] == 200, f"{method} {path} {body} → {answer}"
    return json.loads(answer["body"])


def add_person(relay: Relay, company: str, login: str, role: str = "engineer") -> tuple[str, str]:
    added = relay.cli_json("engineer", "add", "--company", company, "--role", role, "--web-url", relay.url, login)
    return added["id"], relay._on_this_relay(added["signin_link"])


@pytest.fixture(scope="module")
def world(browser, tmp_path_factory, request):
    failed_before = request.session.testsfailed
    relay = Relay(tmp_path_factory.mktemp("admin-console") / "relay", settings={"webhook_allow_loopback": True}).start()
    contexts = []
    problems = PageProblems()

    def new_page(**options):
        context = browser.new_context(ignore_https_errors=True, locale="en-US", timezone_id="UTC", viewport=VIEWPORT, **options)
        contexts.append(context)
        page = context.new_page()
        problems.watch(page)
        return page

    try:
        a = relay.add_company("Acme 한국")
        b = relay.add_company("Beta Corp")
        ids: dict = {}
        links: dict = {}
        ids["alice"], alice_link = add_person(relay, a, "alice", "admin")
        admin = new_page()
        sign_in(admin, relay, "alice", PASSWORD, company=a, link=alice_link)
        for login, role in (("mina.manager", "manager"), ("kim.minji", "engineer"), (KOREAN_ENGINEER, "engineer"), ("park.jisoo", "engineer")):
            ids[login], links[login] = add_person(relay, a, login, role)

        for name, group in ((KOREAN_HOST, "Sales"), (HYPERLINK, "Sales"), (PLUS, "Warehouse"), ("Warehouse PC", "Warehouse")):
            ids[name] = admin_call(admin, "POST", "/api/admin/hosts", {"name": name, "group": group})["host"]["id"]
        ids["Live PC"] = relay.run_host(a, "Live PC")
        admin_call(admin, "POST", "/api/admin/hosts/group", {"id": ids["Live PC"], "group": "Sales"})
        for login in ("kim.minji", KOREAN_ENGINEER):
            admin_call(admin, "POST", "/api/admin/engineers/manager", {"id": ids[login], "managerID": ids["mina.manager"]})
        admin_call(admin, "POST", "/api/admin/engineers/groups", {"id": ids["mina.manager"], "groups": ["Sales"]})

        # Company B, busy with the same kinds of things: a host in a group also called Sales,
        # an engineer with A's login, a removed host (an alert), a token, a hold, a webhook.
        ids["bob.b"], bob_link = add_person(relay, b, "bob.b", "admin")
        bob = new_page()
        sign_in(bob, relay, "bob.b", PASSWORD, company=b, link=bob_link)
        ids["b:kim.minji"], _ = add_person(relay, b, "kim.minji")
        ids["b:manager"], _ = add_person(relay, b, "b-only.manager", "manager")
        ids["b:host"] = admin_call(bob, "POST", "/api/admin/hosts", {"name": B_HOST, "group": "Sales"})["host"]["id"]
        ids["b:gone"] = admin_call(bob, "POST", "/api/admin/hosts", {"name": "B-ONLY removed PC", "group": "Sales"})["host"]["id"]
        admin_call(bob, "POST", "/api/admin/hosts/remove", {"id": ids["b:gone"]})
        admin_call(bob, "POST", "/api/admin/engineers/groups", {"id": ids["b:manager"], "groups": ["Sales"]})
        ids["b:token"] = admin_call(bob, "POST", "/api/admin/tokens", {"name": "B-ONLY token", "scope": "export"})["token"]["id"]
        admin_call(bob, "POST", "/api/admin/hold", {"reason": "B-ONLY litigation hold"})
        admin_call(bob, "POST", "/api/admin/webhook", {"url": "http://127.0.0.1:9/B-ONLY-hook"})
        bob.context.close()

        first, last = _previous_month(datetime.datetime.now(datetime.timezone.utc).date())
        rows = make_rows(a, b, ids, first, last)
        insert_rows(relay, rows)
        b_markers = [b, "Beta Corp", "B-ONLY", "bob.b", "b-only", ids["b:host"], ids["b:gone"], ids["b:kim.minji"], ids["b:manager"],
                     ids["bob.b"], ids["b:token"]] + [row.id for row in rows if row.company == b]  # fmt: skip
        yield World(relay, a, b, ids, links, admin, new_page, problems, rows, (first, last), b_markers)
    finally:
        for context in contexts:
            try:
                context.close()
            except Exception:  # already closed
                pass
        relay.stop()
        if request.session.testsfailed > failed_before:
            text = f"\n===== relay-server log of {request.node.nodeid} =====\n{relay.log()}\n"
            for agent_log in sorted(relay.folder.glob("agent-*.log")):
                text += f"--- {agent_log.name} ---\n{agent_log.read_text(errors='replace')[-3000:]}\n"
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            (reporter.write_line if reporter is not None else print)(text)


@pytest.fixture(autouse=True)
def no_page_problems(world):
    """No page of this test had an uncaught error or a CSP refusal."""
    before = len(world.problems.errors)
    yield
    assert not world.problems.errors[before:], "problems in the pages:\n" + "\n".join(world.problems.errors[before:])


# ---- Helpers ----


def doc_screenshot(page, name: str, *, top: str = "#tabs", bottom: str | None = None) -> None:
    """Writes docs/images/NAME (the viewport, 1280x800) when UPDATE_SCREENSHOTS=1, scrolled
    so that `bottom` (a selector) ends on the picture, as far as `top` stays on it (below
    the page's sticky header)."""
    if not UPDATE_SCREENSHOTS:
        return
    korean = subprocess.run(["fc-list", ":lang=ko"], capture_output=True, text=True).stdout.strip()
    assert korean, "no Korean font: 한국 would show as boxes in the docs' pictures; install one (apt-get install fonts-nanum) and run again"
    assert page.viewport_size == VIEWPORT, page.viewport_size
    page.evaluate(
        """([top, bottom]) => {
          const y = (selector, edge) => document.querySelector(selector).getBoundingClientRect()[edge] + window.scrollY;
          // The page's header stays on top while it scrolls.
          const header = document.querySelector('.app-header').getBoundingClientRect().height;
          const highest = y(top, 'top') - 8 - header;
          const lowest = bottom ? y(bottom, 'bottom') + 4 - window.innerHeight : 0;
          window.scrollTo(0, Math.max(0, Math.min(highest, lowest)));
        }""",
        [top, bottom],
    )
    page.wait_for_timeout(300)  # the fonts, the chart's redraw
    path = IMAGES / name
    page.screenshot(path=str(path))
    assert path.stat().st_size < 300_000, f"{path} is {path.stat().st_size} bytes: keep the docs' pictures under ~300 KB"


def open_console(page, relay: Relay, section: str = "usage") -> None:
    page.goto(f"{relay.url}/admin#{section}")
    expect(page.get_by_role("tab", name=TAB_NAMES[section])).to_have_attribute("aria-selected", "true")


TAB_NAMES = {"usage": "Usage", "hosts": "Hosts", "engineers": "Engineers", "retention": "Retention", "audit": "Audit",
             "tokens": "API tokens", "alerts": "Alerts"}  # fmt: skip


def tab_names(page) -> list[str]:
    return [name.strip() for name in page.get_by_role("tab").all_inner_texts()]


def filter_month(page, first: datetime.date, last: datetime.date, *, engineer: str | None = None) -> None:
    """Types a month into the Usage tab's filters and applies them, as an admin does."""
    panel = page.locator("#panel-usage")
    panel.get_by_label("From", exact=True).fill(first.isoformat())
    panel.get_by_label("To (whole day)").fill(last.isoformat())
    panel.get_by_label("Time zone").fill("UTC")
    if engineer is not None:
        panel.get_by_label("Engineer login").fill(engineer)
    panel.get_by_role("button", name="Apply").click()
    expect(page.locator("#usage-apply")).not_to_have_attribute("aria-busy", "true")


def shown_session_ids(page, expected_count: int) -> list[str]:
    expect(page.locator("#usage-body tr")).to_have_count(expected_count)
    return page.locator("#usage-body tr").evaluate_all("(rows) => rows.map((row) => row.dataset.sessionId)")


def expect_usage(page, rows: list[Row]) -> None:
    """The Usage tab shows exactly `rows`: the list, the totals and the count."""
    ids = shown_session_ids(page, len(rows))
    assert sorted(ids) == sorted(row.id for row in rows)
    expect(page.locator("#usage-total-sessions")).to_have_text(f"{len(rows):,}")
    expect(page.locator("#usage-total-hours")).to_have_text(hours_label(sum(row.seconds for row in rows)))
    expect(page.locator("#usage-total-bytes")).to_have_text(bytes_label(sum(row.to_viewer + row.to_host for row in rows)))
    if rows:
        expect(page.locator("#usage-count")).to_have_text(f"{len(rows):,} of {plural(len(rows), 'session', 'sessions')} shown")


def page_text(page) -> str:
    """What the page shows and holds: its text, its markup and the values of its fields."""
    values = page.evaluate("() => [...document.querySelectorAll('input, textarea, select')].map((field) => field.value).join('\\n')")
    return page.inner_text("body") + "\n" + page.content() + "\n" + values


def assert_nothing_of_company_b(world: World, page, where: str) -> None:
    text = page_text(page)
    leaked = [marker for marker in world.b_markers if marker in text]
    assert not leaked, f"{where}: company B's {leaked} in company A's page"


def open_tab(page, section: str) -> None:
    """Clicks a tab and waits until its panel has loaded (its status lines are empty again)
    without an error."""
    page.get_by_role("tab", name=TAB_NAMES[section]).click()
    panel = page.locator(f"#panel-{section}")
    expect(panel).to_be_visible()
    for status in panel.locator("[role=status]").all():
        expect(status).to_have_text("")
    alerts = [text for text in panel.locator("[role=alert]").all_inner_texts() if text.strip()]
    assert not alerts, (section, alerts)


def first_shown(page, *locators, timeout: float = 10) -> int:
    """Waits until one of `locators` shows text; returns its index."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for index, locator in enumerate(locators):
            if locator.is_visible() and locator.inner_text().strip():
                return index
        page.wait_for_timeout(100)
    raise AssertionError(f"none of {locators} showed anything within {timeout} s")


def menu_item(page, row, item: str) -> None:
    """Opens a table row's Actions menu and clicks one of its items. The button is scrolled
    into view first, as a person scrolls a wide table before clicking: the menu closes on
    any scroll (its place on the screen is fixed)."""
    summary = row.locator("summary", has_text="Actions")
    for attempt in range(5):
        try:
            summary.scroll_into_view_if_needed()
            page.wait_for_timeout(100)
            summary.click()
            row.get_by_role("button", name=item).click(timeout=2000)
            return
        except PlaywrightError:
            if attempt == 4:
                raise
            # The list was drawn again meanwhile (an answer arrived), or a scroll closed the
            # menu: close it, and again.
            page.keyboard.press("Escape")
            page.wait_for_timeout(200)


# ---- 1. Usage: a month, the chart, the exports ----


def test_an_admin_filters_a_month_reads_the_chart_and_exports_csv_and_xlsx(world):
    page, relay = world.admin, world.relay
    first, last = world.month
    month = world.month_rows()
    days_in_month = calendar.monthrange(first.year, first.month)[1]

    # From the engineer console, where the sign-in ended, by the header's link.
    page.goto(f"{relay.url}/")
    page.get_by_role("link", name="Admin console").click()
    page.wait_for_url(re.compile(r"/admin#usage$"))
    expect(page.locator("#me-login")).to_have_text("alice")
    expect(page.locator("#me-company")).to_have_text("Acme 한국")
    assert tab_names(page) == ["Usage", "Hosts", "Engineers", "Retention", "Audit", "API tokens", "Alerts"]
    # The tab starts on the previous calendar month.
    expect(page.locator("#usage-from")).to_have_value(first.isoformat())
    expect(page.locator("#usage-to")).to_have_value(last.isoformat())

    # The month typed in, for one engineer (a Korean login); then the whole month again.
    filter_month(page, first, last, engineer=KOREAN_ENGINEER)
    expect_usage(page, world.month_rows(engineer=KOREAN_ENGINEER))
    page.get_by_role("button", name="Last month").click()
    expect(page.locator("#usage-engineer")).to_have_value("")
    expect_usage(page, month)
    filter_month(page, first, last)
    expect_usage(page, month)
    expect(page.locator("#usage-range")).to_contain_text(f"{days_in_month} days · UTC")
    body = page.locator("#usage-body")
    for name in (KOREAN_HOST, HYPERLINK, PLUS, ATTENDED_HOST):
        expect(body.get_by_text(name, exact=True).first).to_be_visible()
    expect(body.get_by_text(KOREAN_ENGINEER, exact=True).first).to_be_visible()

    # The chart: a day group per day of the month, a bar for each day with sessions, the
    # busiest day's bar the tallest, with its figures in the tooltip.
    per_day: dict[str, list[Row]] = {}
    for row in month:
        per_day.setdefault(row.day, []).append(row)
    chart = page.locator("#usage-chart svg.day-chart")
    expect(chart).to_have_count(1)
    expect(chart.locator("g.day")).to_have_count(days_in_month)
    expect(chart.locator("rect.bar")).to_have_count(len(per_day))
    bars = chart.locator("g.day").evaluate_all(
        """(groups) => groups.map((group) => ({day: group.dataset.day, title: group.querySelector('title').textContent,
             height: group.querySelector('rect.bar') ? Number(group.querySelector('rect.bar').getAttribute('height')) : 0}))"""
    )
    assert [bar["day"] for bar in bars] == [(first + datetime.timedelta(days=n)).isoformat() for n in range(days_in_month)]
    assert {bar["day"] for bar in bars if bar["height"] > 0} == set(per_day)
    busiest = max(per_day, key=lambda day: (sum(row.seconds for row in per_day[day]), len(per_day[day])))
    tallest = max(bars, key=lambda bar: bar["height"])
    assert tallest["day"] == busiest, (tallest, busiest)
    busiest_rows = per_day[busiest]
    assert tallest["title"].endswith(f": {plural(len(busiest_rows), 'session', 'sessions')}, {duration_label(sum(row.seconds for row in busiest_rows))}"), tallest
    empty_day = next(bar for bar in bars if bar["day"] not in per_day)
    assert empty_day["title"].endswith(": 0 sessions, 0 s"), empty_day
    expect(page.locator("#usage-chart-summary")).to_have_text(re.compile(rf"^Sessions on {len(per_day)} of {days_in_month} days\. The busiest day was "))
    expect(page.locator("#usage-days-body tr")).to_have_count(days_in_month)
    ranking = page.locator("#usage-engineers-body tr td.name").all_inner_texts()
    expected_ranking = sorted({row.engineer for row in month}, key=lambda login: -sum(r.seconds for r in month if r.engineer == login))
    assert ranking == expected_ranking, ranking
    doc_screenshot(page, "admin-usage.png", top="#panel-usage", bottom="#usage-chart")

    # The exports of exactly these filters, by the page's links.
    links = page.locator("#usage-exports a")
    expect(links).to_have_count(3)
    for link in links.all():
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(link.get_attribute("href")).query)
        assert (query["from"], query["to"], query["tz"]) == ([first.isoformat()], [last.isoformat()], ["UTC"]), query
        assert "engineer" not in query or query["engineer"] == [""], query
    expected_ids = sorted(row.id for row in month)

    csv_file = download(page, "csv", f"usage-{world.a}-{first}-{last}.csv")
    raw = csv_file.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "the console's CSV has no byte order mark: Excel would garble 김민지"
    records = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert list(records[0]) == COLUMNS
    assert sorted(record["session_id"] for record in records) == expected_ids
    by_id = {record["session_id"]: record for record in records}
    for row in month:
        record = by_id[row.id]
        wanted = "'" + row.host_name if row.host_name[0] in "=+-@" else row.host_name
        assert record["host_name"] == wanted, (record["host_name"], row.host_name)
        assert record["engineer"] == row.engineer and record["company_id"] == world.a
        assert record["started_at"].startswith(row.started.strftime("%Y-%m-%dT%H:%M:%S")), record["started_at"]
    assert any(record["host_name"] == "'" + HYPERLINK for record in records)
    assert any(record["host_name"] == "'" + PLUS for record in records)
    assert any(record["host_name"] == KOREAN_HOST and record["engineer"] == KOREAN_ENGINEER for record in records)
    text = raw.decode("utf-8-sig")
    assert not [marker for marker in world.b_markers if marker in text], "company B's rows in company A's CSV"

    xlsx_file = download(page, "xlsx", f"usage-{world.a}-{first}-{last}.xlsx")
    workbook = openpyxl.load_workbook(xlsx_file)
    assert workbook.sheetnames == ["Usage"]
    sheet = workbook["Usage"]
    table = list(sheet.iter_rows())
    assert [cell.value for cell in table[0]] == COLUMNS
    assert len(table) - 1 == len(month), f"the XLSX has {len(table) - 1} rows, the month {len(month)}"
    column = {name: index for index, name in enumerate(COLUMNS)}
    assert sorted(row[column["session_id"]].value for row in table[1:]) == expected_ids
    cells = [cell for row in table for cell in row]
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"], "the XLSX has formula cells"
    for line in table[1:]:
        row = next(r for r in month if r.id == line[column["session_id"]].value)
        host, engineer = line[column["host_name"]], line[column["engineer"]]
        assert host.data_type == "s" and host.value == row.host_name, (host.coordinate, host.data_type, host.value, row.host_name)
        assert engineer.data_type == "s" and engineer.value == row.engineer, (engineer.coordinate, engineer.value)
        assert line[column["duration_s"]].value == row.seconds
    assert any(line[column["host_name"]].value == HYPERLINK for line in table[1:])
    assert any(line[column["engineer"]].value == KOREAN_ENGINEER and line[column["host_name"]].value == KOREAN_HOST for line in table[1:])
    assert not [cell.value for cell in cells if isinstance(cell.value, str) and any(m in cell.value for m in world.b_markers)]


def download(page, format: str, filename: str) -> pathlib.Path:
    """Clicks the Usage tab's export link of `format`; returns the downloaded file."""
    with page.expect_download() as info:
        page.locator(f"#usage-exports a[data-format='{format}']").click()
    file = info.value
    assert file.failure() is None, f"the {format} export failed: {file.failure()}"
    assert file.suggested_filename == filename
    saved = pathlib.Path(file.path()).with_name(filename)  # openpyxl goes by the file's extension
    file.save_as(saved)
    return saved


# ---- 2. Hosts: enrol with the form, commands once, the host online ----


def test_an_admin_enrols_a_host_runs_its_commands_once_shown_and_sees_it_online(world):
    page, relay = world.admin, world.relay
    open_console(page, relay, "hosts")
    panel = page.locator("#panel-hosts")
    panel.get_by_label("Name", exact=True).fill("Front desk PC")
    panel.get_by_label("Group (optional)").fill("Reception")
    panel.get_by_role("button", name="Enrol host").click()

    once = page.locator("#hosts-once")
    expect(once).to_contain_text("Front desk PC is enrolled")
    row = page.locator("#hosts-body tr", has=page.locator("td.name", has_text=re.compile("^Front desk PC$")))
    expect(row).to_have_count(1)
    host_id = row.get_attribute("data-host-id")
    expect(row).to_contain_text("Reception")
    expect(row).to_contain_text("offline")
    expect(row).to_contain_text("No key yet")
    commands = [line for line in once.locator("pre").inner_text().splitlines() if line.strip()]
    assert commands[0] == f"relay-agent keygen --host-id {host_id}", commands
    run = shlex.split(commands[1])
    assert run[:2] == ["relay-agent", "host"] and "--any-engineer" in run, commands
    assert run[run.index("--relay") + 1] == relay.address and run[run.index("--host-id") + 1] == host_id, commands
    assert run[run.index("--fingerprint") + 1].upper() == relay.fingerprint.upper(), commands
    expect(page.locator("#hosts-count")).to_contain_text("6 hosts")
    page.get_by_role("button", name="Done, hide this").click()
    expect(once).to_be_hidden()
    # Shown once: a reload keeps the tab and the host, not the commands.
    page.reload()
    expect(page.get_by_role("tab", name="Hosts")).to_have_attribute("aria-selected", "true")
    expect(page.locator(f"#hosts-body tr[data-host-id='{host_id}']")).to_have_count(1)
    assert f"keygen --host-id {host_id}" not in page_text(page)

    # On "the host": the first command prints the key, which goes into the host's menu.
    environment = relay._agent_environment()
    made = subprocess.run([str(AGENT), *shlex.split(commands[0])[1:]], capture_output=True, text=True, timeout=60, env=environment)
    key = re.search(r"public key:\s*(\S+)", made.stdout)
    assert made.returncode == 0 and key, made.stdout + made.stderr
    row = page.locator(f"#hosts-body tr[data-host-id='{host_id}']")
    menu_item(page, row, "Rotate key…")
    dialog = page.locator("#dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("New public key").fill(key.group(1))
    dialog.get_by_role("button", name="Set key").click()
    expect(dialog).to_be_hidden()
    expect(row).to_contain_text("SHA256:")
    # The second command, as shown (plus a synthetic screen: this machine has no display).
    with open(relay.folder / f"agent-{host_id}.log", "wb") as log:
        agent = subprocess.Popen(
            [str(AGENT), *run[1:], "--source", "synthetic:scrolling-text"], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=relay.folder, env=environment,
        )  # fmt: skip
    relay._agents.append(agent)
    deadline = time.monotonic() + 30
    while row.locator(".badge.online").count() == 0 or page.locator("#hosts-count").inner_text() != "6 hosts, 2 online":
        assert time.monotonic() < deadline, f"the enrolled host never showed online:\n{relay.agent_log(host_id)}"
        page.get_by_role("button", name="Refresh").click()
        page.wait_for_timeout(500)
    expect(row.locator("td.status")).to_have_text("online")

    # The hosts of one group; then the audit log names what the admin did.
    panel.get_by_label("Group", exact=True).select_option("Reception")
    expect(page.locator("#hosts-body tr")).to_have_count(1)
    panel.get_by_label("Group", exact=True).select_option("*")
    expect(page.locator("#hosts-body tr")).to_have_count(6)
    page.evaluate("() => window.scrollTo(0, 0)")
    page.wait_for_timeout(100)
    row.locator("summary", has_text="Actions").click()
    expect(row.get_by_role("button", name="Remove…")).to_be_visible()
    doc_screenshot(page, "admin-hosts.png")
    page.keyboard.press("Escape")

    page.get_by_role("tab", name="Audit").click()
    audit = page.locator("#audit-body")
    for action in ("host_enroll", "host_set_key", "host_group"):
        expect(audit.locator("tr", has_text=action).first).to_be_visible()
    enrolled = audit.locator("tr", has_text="host_enroll").filter(has_text=host_id)
    expect(enrolled).to_have_count(1)
    expect(enrolled).to_contain_text("console:alice")
    expect(page.locator("#access-body tr").first).to_be_visible()
    doc_screenshot(page, "admin-audit.png")


# ---- 3. A removed engineer's live session ends ----


def test_removing_an_engineer_ends_their_live_viewer_and_their_web_session(world):
    relay, admin = world.relay, world.admin
    host = world.ids["Live PC"]
    engineer = world.new_page()
    leaver = sign_in(engineer, relay, "lee.leaver", PASSWORD, company=world.a)
    console = engineer.context.new_page()
    console.goto(f"{relay.url}/")
    wait_until_online(engineer, host)
    engineer.goto(f"{relay.url}/view#host={host}")
    expect(engineer.locator("body")).to_have_attribute("data-state", "live", timeout=30_000)

    # The admin sees the session running, then removes the engineer from the Engineers tab.
    today = datetime.datetime.now(datetime.timezone.utc).date()
    open_console(admin, relay, "usage")
    admin.locator("#panel-usage").get_by_label("How it ended").select_option("open")
    filter_month(admin, today, today, engineer="lee.leaver")
    running = admin.locator("#usage-body tr")
    expect(running).to_have_count(1)
    expect(running).to_contain_text("running")
    expect(running).to_contain_text("Live PC")

    admin.get_by_role("tab", name="Engineers").click()
    admin.get_by_role("button", name="Refresh").click()
    row = admin.locator(f"#engineers-body tr[data-engineer-id='{leaver.id}']")
    expect(row).to_contain_text("lee.leaver")
    menu_item(admin, row, "Remove…")
    dialog = admin.locator("#dialog")
    expect(dialog.locator("#dialog-title")).to_have_text("Remove lee.leaver?")
    removed_at = time.monotonic()
    dialog.get_by_role("button", name="Remove", exact=True).click()
    expect(dialog).to_be_hidden()
    expect(row).to_have_count(0)
    expect(admin.locator("#engineers-status")).to_have_text("lee.leaver was removed.")

    expect(engineer.locator("body")).to_have_attribute("data-state", "ended", timeout=15_000)
    ended_after = time.monotonic() - removed_at
    expect(engineer.locator("#end-reason")).to_contain_text(REVOKED_WORDS)
    assert ended_after <= 15, ended_after

    # Their pages go to the sign-in page on reload; the usage row says how it ended.
    console.reload()
    console.wait_for_url(re.compile(r"/signin"))
    engineer.goto(f"{relay.url}/admin")
    engineer.wait_for_url(re.compile(r"/signin"))
    admin.get_by_role("tab", name="Usage").click()
    admin.locator("#panel-usage").get_by_label("How it ended").select_option("")
    filter_month(admin, today, today, engineer="lee.leaver")
    expect(admin.locator("#usage-body tr")).to_have_count(1)
    expect(admin.locator("#usage-body tr")).to_contain_text("Access revoked")
    engineer.context.close()


def test_the_customer_at_the_host_is_not_told_to_sign_in_again_when_the_engineer_is_disabled(world):
    relay = world.relay
    host = world.ids["Live PC"]
    engineer = world.new_page()
    paused = sign_in(engineer, relay, "pak.paused", PASSWORD, company=world.a)
    wait_until_online(engineer, host)
    engineer.goto(f"{relay.url}/view#host={host}")
    expect(engineer.locator("body")).to_have_attribute("data-state", "live", timeout=30_000)
    admin_call(world.admin, "POST", "/api/admin/engineers/disable", {"id": paused.id})
    expect(engineer.locator("body")).to_have_attribute("data-state", "ended", timeout=15_000)
    engineer.context.close()
    deadline = time.monotonic() + 10
    while not (ended := re.findall(r"Session ended: .*Engineer pak\.paused left.*", relay.agent_log(host))):
        assert time.monotonic() < deadline, f"the host's agent did not say the session ended:\n{relay.agent_log(host)}"
        time.sleep(0.2)
    told = ended[-1]
    assert "your web session" not in told and "sign in again" not in told, f"the host's agent told the customer: {told}"


# ---- 4. Each role sees its scope; another company's rows never appear ----


def test_a_manager_and_an_engineer_see_only_their_scope_and_no_one_sees_another_company(world):
    relay = world.relay
    first, last = world.month
    hosts = admin_call(world.admin, "GET", "/api/admin/hosts")["hosts"]
    sales = {host["id"] for host in hosts if host["group"] == "Sales"}
    assert {world.ids[KOREAN_HOST], world.ids[HYPERLINK], world.ids["Live PC"]} <= sales

    # The admin: every tab, nothing of company B.
    open_console(world.admin, relay, "usage")
    filter_month(world.admin, first, last, engineer="kim.minji")
    expect_usage(world.admin, world.month_rows(engineer="kim.minji"))
    for section in TAB_NAMES:
        open_tab(world.admin, section)
        assert_nothing_of_company_b(world, world.admin, f"the admin's {section} tab")

    # The manager: Usage, Hosts, Engineers; their engineers, their groups' hosts and those sessions.
    manager = world.new_page()
    sign_in(manager, relay, "mina.manager", PASSWORD, company=world.a, link=world.links["mina.manager"])
    open_console(manager, relay, "usage")
    assert tab_names(manager) == ["Usage", "Hosts", "Engineers"]
    scope = [row for row in world.month_rows() if row.engineer in ("kim.minji", KOREAN_ENGINEER, "mina.manager") or row.host_id in sales]
    assert len(scope) < len(world.month_rows()), "the scene has sessions outside the manager's scope"
    filter_month(manager, first, last)
    expect_usage(manager, scope)
    assert_nothing_of_company_b(world, manager, "the manager's Usage tab")

    manager.get_by_role("tab", name="Hosts").click()
    expect(manager.locator("#hosts-readonly")).to_be_visible()
    expect(manager.locator("#hosts-body tr")).to_have_count(len(sales))
    shown = manager.locator("#hosts-body tr").evaluate_all("(rows) => rows.map((row) => row.dataset.hostId)")
    assert set(shown) == sales
    assert manager.locator("#host-enrol-form").count() == 0 and manager.locator("#hosts-body summary").count() == 0
    assert_nothing_of_company_b(world, manager, "the manager's Hosts tab")

    manager.get_by_role("tab", name="Engineers").click()
    expect(manager.locator("#engineers-readonly")).to_be_visible()
    expect(manager.locator("#engineers-body tr")).to_have_count(3)
    logins = [re.sub(r"\s+you$", "", text.strip()) for text in manager.locator("#engineers-body td.name").all_inner_texts()]
    assert sorted(logins) == sorted(["kim.minji", KOREAN_ENGINEER, "mina.manager"]), logins
    assert manager.locator("#invite-form").count() == 0
    assert_nothing_of_company_b(world, manager, "the manager's Engineers tab")

    # The engineer: Usage only, their own sessions (company B's kim.minji's are not theirs).
    engineer = world.new_page()
    sign_in(engineer, relay, "kim.minji", PASSWORD, company=world.a, link=world.links["kim.minji"])
    engineer.goto(f"{relay.url}/admin#hosts")
    expect(engineer.get_by_role("tab", name="Usage")).to_have_attribute("aria-selected", "true")
    assert tab_names(engineer) == ["Usage"]
    expect(engineer.locator("#usage-engineer-field")).to_be_hidden()
    expect(engineer.locator("#usage-engineers-panel")).to_be_hidden()
    filter_month(engineer, first, last)
    expect_usage(engineer, world.month_rows(engineer="kim.minji"))
    assert_nothing_of_company_b(world, engineer, "the engineer's Usage tab")
    assert world.month_rows(company=world.b, engineer="kim.minji"), "the scene has company B's kim.minji sessions"
    manager.context.close()
    engineer.context.close()


# ---- 5. CSRF from another origin, markup in every free-text field ----


class _Evil(http.server.BaseHTTPRequestHandler):
    page = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, format, *args):
        pass


def evil_site(page: bytes, certificate: tuple[pathlib.Path, pathlib.Path] | None = None):
    """Another origin on 127.0.0.1 serving `page` (over TLS with `certificate`)."""
    handler = type("Handler", (_Evil,), {"page": page})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if certificate is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(certificate[0]), str(certificate[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "https" if certificate else "http"
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}/evil.html"


def test_a_page_on_another_origin_cannot_make_the_admins_browser_remove_a_host(world):
    relay, admin = world.relay, world.admin
    target = world.ids["Warehouse PC"]
    action = f"{relay.url}/api/admin/hosts/remove"
    # A form (text/plain: its body is JSON) that posts itself, and two fetches that carry the
    # browser's cookies; the answers of the fetches are opaque to the page (no CORS).
    attack = f"""<!doctype html><meta charset=utf-8><title>Win a prize</title>
<form id=json method=POST action="{action}" enctype="text/plain"><input type=hidden name='{{"id":"{target}","x":"' value='"}}'></form>
<script>
fetch("{action}", {{method: "POST", mode: "no-cors", credentials: "include", headers: {{"Content-Type": "text/plain"}},
  body: JSON.stringify({{id: "{target}"}})}}).catch(() => {{}});
fetch("{action}", {{method: "POST", credentials: "include", headers: {{"Content-Type": "application/json", "X-CSRF-Token": "guess"}},
  body: JSON.stringify({{id: "{target}"}})}}).catch(() => {{}});
setTimeout(() => document.getElementById("json").submit(), 500);
</script>""".encode()
    tls = relay.data / "tls"
    sites = [evil_site(attack), evil_site(attack, (tls / "relay-cert.pem", tls / "relay-key.pem"))]
    try:
        for _, url in sites:
            # Same browser context as the signed-in admin: the admin visits a bad page.
            evil = admin.context.new_page()
            statuses = []
            evil.on("response", lambda response: statuses.append((response.request.method, response.status)) if response.url == action else None)
            with evil.expect_navigation(url=action, wait_until="commit", timeout=15_000) as navigation:
                evil.goto(url)
            answer = navigation.value
            evil.wait_for_timeout(500)
            assert answer is not None and answer.status in (401, 403), f"{url}: the form's POST got {answer and answer.status}"
            posts = [status for method, status in statuses if method == "POST"]
            assert posts and all(status in (401, 403) for status in posts), f"{url}: {statuses}"
            evil.close()
    finally:
        for server, _ in sites:
            server.shutdown()
            server.server_close()

    open_console(admin, relay, "hosts")
    admin.get_by_role("button", name="Refresh").click()
    expect(admin.locator(f"#hosts-body tr[data-host-id='{target}']")).to_have_count(1)
    assert "Warehouse PC" in [host["name"] for host in admin_call(admin, "GET", "/api/admin/hosts")["hosts"]]


XSS = '"><img src=x onerror=window.__xss=1><script>window.__xss=1</script>'


def expect_no_xss(page) -> None:
    assert page.evaluate("() => window.__xss") is None, "markup typed into the console ran as script"
    assert page.locator("img[src='x']").count() == 0, "markup typed into the console became an element"
    assert page.evaluate("() => [...document.scripts].filter((script) => script.textContent.includes('__xss')).length") == 0


def test_markup_typed_into_every_free_text_field_is_shown_as_text(world):
    page, relay = world.admin, world.relay
    name, group = "PC " + XSS, "Group " + XSS

    # Hosts: the enrolment form's name and group, then Rename… and Change group… dialogs.
    open_console(page, relay, "hosts")
    panel = page.locator("#panel-hosts")
    panel.get_by_label("Name", exact=True).fill(name)
    panel.get_by_label("Group (optional)").fill(group)
    panel.get_by_role("button", name="Enrol host").click()
    expect(page.locator("#hosts-once h3")).to_have_text(f"{name} is enrolled")
    row = page.locator("#hosts-body tr", has=page.locator("td.name", has_text=name))
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(1)).to_have_text(group)
    host_id = row.get_attribute("data-host-id")
    row = page.locator(f"#hosts-body tr[data-host-id='{host_id}']")
    expect(page.locator("#hosts-group option", has_text=group)).to_have_count(1)
    page.get_by_role("button", name="Done, hide this").click()
    menu_item(page, row, "Rename…")
    page.locator("#dialog").get_by_label("New name").fill(name + " 2")
    page.locator("#dialog").get_by_role("button", name="Rename").click()
    expect(row.locator("td.name")).to_have_text(name + " 2")
    menu_item(page, row, "Change group…")
    page.locator("#dialog").get_by_label("Group", exact=True).fill(group + " 2")
    page.locator("#dialog").get_by_role("button", name="Save group").click()
    expect(row.locator("td").nth(1)).to_have_text(group + " 2")
    panel.get_by_label("Search by name, id or fingerprint").fill(XSS)
    expect(page.locator("#hosts-body tr")).to_have_count(1)
    panel.get_by_label("Search by name, id or fingerprint").fill("")
    expect_no_xss(page)

    # Engineers: an invitation's login (refused or not, it comes back as text), and a
    # manager's host groups typed in the dialog.
    page.get_by_role("tab", name="Engineers").click()
    page.locator("#panel-engineers").get_by_label("Login", exact=True).fill(XSS)
    page.get_by_role("button", name="Make a sign-in link").click()
    invited = page.locator("#engineers-once")
    refused = page.locator("#invite-alert")
    if first_shown(page, invited, refused) == 1:
        assert refused.inner_text().startswith(f"{XSS} was not invited: "), refused.inner_text()
    else:
        # Accepted (a login is 1 to 200 bytes of any text): the list, the once panel and
        # the sign-in page the link opens show it as text.
        expect(invited.locator("h3")).to_have_text(f"Sign-in link for {XSS}")
        expect(page.locator("#engineers-body td.name", has_text=XSS)).to_have_count(1)
        link = invited.locator("code.once-value").inner_text()
        invitee = world.new_page()
        invitee.goto(relay._on_this_relay(link))
        expect(invitee.get_by_role("heading", name=f"Choose a password for {XSS}")).to_be_visible()
        expect_no_xss(invitee)
        invitee.context.close()
    mina = page.locator(f"#engineers-body tr[data-engineer-id='{world.ids['mina.manager']}']")
    menu_item(page, mina, "Host groups…")
    page.locator("#dialog").get_by_label("Other groups").fill(group)
    page.locator("#dialog").get_by_role("button", name="Save groups").click()
    expect(mina.locator("td").nth(3)).to_contain_text(group)
    expect(mina.locator("td").nth(3)).to_contain_text("Sales")
    expect_no_xss(page)
    admin_call(page, "POST", "/api/admin/engineers/groups", {"id": world.ids["mina.manager"], "groups": ["Sales"]})

    # Retention: a legal hold's reason, shown back, then released.
    page.get_by_role("tab", name="Retention").click()
    page.locator("#panel-retention").get_by_label("Reason", exact=True).fill(XSS)
    page.get_by_role("button", name="Place a hold").click()
    expect(page.locator("#hold-reason")).to_have_text(XSS)
    expect_no_xss(page)
    page.get_by_role("button", name="Release the hold").click()
    page.locator("#dialog").get_by_role("button", name="Release hold").click()
    expect(page.locator("#hold-form")).to_be_visible()

    # API tokens: a token's name, in the list, the once panel and the revoke dialog.
    page.get_by_role("tab", name="API tokens").click()
    page.locator("#panel-tokens").get_by_label("Name", exact=True).fill(XSS)
    page.get_by_role("button", name="Make token").click()
    expect(page.locator("#tokens-once h3")).to_have_text(f"Token “{XSS}” made")
    token = page.locator("#tokens-body tr", has=page.locator("td.name", has_text=XSS))
    expect(token).to_have_count(1)
    token.get_by_role("button", name=f"Revoke {XSS}").click()
    expect(page.locator("#dialog-title")).to_have_text(f"Revoke {XSS}?")
    page.locator("#dialog").get_by_role("button", name="Revoke token").click()
    expect(token).to_have_count(0)
    expect_no_xss(page)

    # Alerts: a webhook address with markup in its path (refused or shown as text), and the
    # alert of the host removed below, whose subject is the marked-up name.
    page.get_by_role("tab", name="Alerts").click()
    hook = "https://hooks.example.com/" + XSS
    page.locator("#panel-alerts").get_by_label("Address").fill(hook)
    page.get_by_role("button", name="Save", exact=True).click()
    saved = page.locator("#webhook-once")
    refused = page.locator("#webhook-alert")
    if first_shown(page, saved, refused) == 1:
        assert refused.inner_text().startswith("The webhook was not saved: "), refused.inner_text()
    else:
        expect(page.locator("#webhook-state code")).to_have_text(hook)
        page.get_by_role("button", name="Remove webhook").click()
        page.locator("#dialog").get_by_role("button", name="Remove webhook").click()
        expect(page.locator("#webhook-state")).to_have_text("No webhook is set: alerts are shown here only.")
    expect_no_xss(page)

    page.get_by_role("tab", name="Hosts").click()
    menu_item(page, row, "Remove…")
    expect(page.locator("#dialog-title")).to_have_text(f"Remove {name} 2?")
    page.locator("#dialog").get_by_role("button", name="Remove host").click()
    expect(row).to_have_count(0)
    page.get_by_role("tab", name="Alerts").click()
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#alerts-body tr", has_text="Host removed").filter(has_text=name + " 2").first).to_be_visible()

    # Usage and audit filters: free text goes into the query and the export links, encoded.
    page.get_by_role("tab", name="Usage").click()
    page.locator("#panel-usage").get_by_label("Engineer login").fill(XSS)
    page.locator("#panel-usage").get_by_label("Host id").fill(XSS)
    page.locator("#panel-usage").get_by_role("button", name="Apply").click()
    expect(page.locator("#usage-empty")).to_be_visible()
    href = page.locator("#usage-exports a[data-format='csv']").get_attribute("href")
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(href).query)["engineer"] == [XSS], href
    assert "<" not in href and '"' not in href, href
    page.get_by_role("tab", name="Audit").click()
    page.locator("#panel-audit").get_by_label("Actor").fill(XSS)
    page.locator("#panel-audit").get_by_role("button", name="Apply").first.click()
    expect(page.locator("#audit-empty")).to_be_visible()
    expect_no_xss(page)

    # After a reload, every tab once more.
    page.reload()
    for section in TAB_NAMES:
        open_tab(page, section)
        expect_no_xss(page)
