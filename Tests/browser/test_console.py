"""The console page against a real relay: the company's hosts only, search, names as text,
an online host's Connect link, the support-code button and the customer's command, and the
way back to sign-in."""

import re
import shlex
import subprocess
import time

from playwright.sync_api import expect
from relayserver import AGENT, open_page, relay, sign_in  # noqa: F401 (fixtures)

PASSWORD = "a long enough passphrase"


def host_names(page):
    return [text.strip() for text in page.locator("#hosts-body td.name").all_inner_texts()]


def stub_viewer(page):
    """Answers /view with a blank page in this context: these tests check where the console
    sends the engineer, not the viewer (which has tests of its own)."""
    page.context.route(
        re.compile(r"/view(#.*)?$"),
        lambda route: route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>viewer</title>"),
    )


def row(page, host_id):
    return page.locator(f"#hosts-body tr[data-host-id='{host_id}']")


def test_the_host_list_shows_the_companys_enrolled_hosts_only_and_search_filters(relay, open_page):
    ours = relay.add_company("ACME Korea")
    theirs = relay.add_company("Other Ltd")
    ids = {
        "Accounting PC-03": relay.enroll_host(ours, "Accounting PC-03"),
        "Reception laptop": relay.enroll_host(ours, "Reception laptop"),
        "회계팀 PC-07": relay.enroll_host(ours, "회계팀 PC-07"),
    }
    relay.enroll_host(theirs, "Other Ltd server")

    page = open_page()
    sign_in(page, relay, "kim.minji", PASSWORD, company=ours)
    expect(page.locator("#hosts-body tr")).to_have_count(3)
    assert sorted(host_names(page)) == sorted(ids)
    assert "Other Ltd server" not in page.locator("main").inner_text()
    expect(page.locator("#hosts-count")).to_contain_text("3 hosts")

    for name, host_id in ids.items():
        cells = row(page, host_id)
        expect(cells.locator("td.name")).to_have_text(name)
        expect(cells.locator("td.id")).to_have_text(host_id)
        # Enrolled without a key and never connected: offline, never seen, no Connect.
        expect(cells.locator(".badge")).to_have_text("offline")
        expect(cells.locator("td.seen")).to_have_text("never")
        expect(cells.get_by_role("link", name=re.compile("Connect"))).to_have_count(0)

    search = page.get_by_label("Search by name or id")
    search.press_sequentially("pc")
    expect(page.locator("#hosts-body tr")).to_have_count(2)
    assert sorted(host_names(page)) == ["Accounting PC-03", "회계팀 PC-07"]
    expect(page.locator("#hosts-count")).to_contain_text("2 of 3")

    search.fill("회계")
    expect(page.locator("#hosts-body tr")).to_have_count(1)
    assert host_names(page) == ["회계팀 PC-07"]

    search.fill(ids["Reception laptop"])
    expect(page.locator("#hosts-body tr")).to_have_count(1)
    assert host_names(page) == ["Reception laptop"]

    search.fill("no such host")
    expect(page.locator("#hosts-body tr")).to_have_count(0)
    expect(page.locator("#hosts-empty")).to_contain_text("no such host")

    search.press("Escape")
    expect(page.locator("#hosts-body tr")).to_have_count(3)


def test_a_host_name_with_markup_is_shown_as_text(relay, open_page):
    company = relay.add_company('<svg onload="window.__xss=2">')
    name = "<img src=x onerror=window.__xss=1>"
    host_id = relay.enroll_host(company, name)
    page = open_page()
    sign_in(page, relay, "lee.jisoo", PASSWORD, company=company)
    expect(row(page, host_id).locator("td.name")).to_have_text(name)
    expect(page.locator("#me-company")).to_have_text('<svg onload="window.__xss=2">')
    page.get_by_label("Search by name or id").fill("<img")
    expect(row(page, host_id)).to_have_count(1)
    page.wait_for_timeout(300)  # an injected image would have failed to load by now
    assert page.locator("#hosts-body img, header svg").count() == 0
    assert page.evaluate("window.__xss") is None


def test_an_online_host_has_a_connect_link_that_opens_the_viewer_in_a_new_tab(relay, open_page):
    if not AGENT.is_file():
        raise AssertionError(f"{AGENT} is missing: build it (swift build --product relay-agent)")
    company = relay.add_company()
    offline = relay.enroll_host(company, "Stays offline")
    page = open_page()
    sign_in(page, relay, "park.seojun", PASSWORD, company=company)
    started = time.monotonic()
    online = relay.run_host(company, "Front desk PC")

    # The list refreshes by itself (every 10 s): the new host appears, online.
    badge = row(page, online).locator(".badge")
    try:
        expect(badge).to_have_text("online", timeout=25_000)
    except AssertionError:
        raise AssertionError(f"the host did not show as online; its agent said:\n{relay.agent_log(online)}") from None
    assert time.monotonic() - started < 25
    expect(row(page, online).locator("td.seen")).not_to_have_text("never")

    connect = row(page, online).get_by_role("link", name=re.compile("Connect"))
    expect(connect).to_have_attribute("href", f"/view#host={online}")
    expect(connect).to_have_attribute("target", "_blank")
    assert "noopener" in connect.get_attribute("rel").split()
    expect(row(page, offline).get_by_role("link", name=re.compile("Connect"))).to_have_count(0)

    # Keyboard: the link is reachable with Tab and opens with Enter.
    stub_viewer(page)
    page.get_by_label("Search by name or id").focus()
    page.keyboard.press("Tab")
    assert connect.evaluate("link => link === document.activeElement")
    with page.context.expect_page() as opened:
        page.keyboard.press("Enter")
    viewer = opened.value
    viewer.wait_for_load_state()
    assert viewer.url == f"{relay.url}/view#host={online}"
    assert viewer.evaluate("window.opener") is None
    viewer.close()


def test_a_session_from_the_console_shows_the_host_busy_then_in_recent_sessions(relay, open_page):
    company = relay.add_company()
    host_id = relay.run_host(company, "Warehouse PC")
    page = open_page()
    sign_in(page, relay, "kang.daniel", PASSWORD, company=company)
    expect(row(page, host_id).locator(".badge")).to_have_text("online", timeout=25_000)
    expect(page.locator("#sessions-empty")).to_be_visible()

    # The real viewer: Connect opens it in a new tab, and it goes live.
    with page.context.expect_page() as opened:
        row(page, host_id).get_by_role("link", name=re.compile("Connect")).click()
    viewer = opened.value
    expect(viewer.locator("body")).to_have_attribute("data-state", "live", timeout=30_000)

    # While the session runs the host is busy: no Connect link.
    expect(row(page, host_id).locator(".badge")).to_have_text("busy", timeout=25_000)
    expect(row(page, host_id).get_by_role("link", name=re.compile("Connect"))).to_have_count(0)
    expect(row(page, host_id).locator("td.action")).to_have_text("In a session")

    # Closing the viewer's tab ends the session: the host is online again and the session
    # is listed with its host, mode, client and how it ended.
    viewer.close()
    expect(row(page, host_id).locator(".badge")).to_have_text("online", timeout=25_000)
    sessions = page.locator("#sessions-body tr")
    expect(sessions).to_have_count(1, timeout=25_000)
    cells = [text.strip() for text in sessions.first.locator("td").all_inner_texts()]
    host, mode, client, started, duration, ended = cells
    assert (host, mode, client) == ("Warehouse PC", "unattended", "browser"), cells
    assert started and re.search(r"\d", started), cells
    assert re.fullmatch(r"\d+ s|\d+ min( \d+ s)?", duration), cells
    assert ended and ended != "in progress", cells
    expect(page.locator("#sessions-empty")).to_be_hidden()


def test_new_support_code_opens_the_viewer_and_the_customers_command_works(relay, open_page):
    page = open_page()
    sign_in(page, relay, "choi.yuna", PASSWORD)
    me = page.evaluate("fetch('/api/me').then(response => response.json())")

    button = page.get_by_role("link", name="New support code")
    stub_viewer(page)
    with page.context.expect_page() as opened:
        button.click()
    viewer = opened.value
    viewer.wait_for_load_state()
    assert viewer.url == f"{relay.url}/view#code"
    assert viewer.evaluate("window.opener") is None
    viewer.close()

    command = page.locator("#customer-command").inner_text().strip()
    assert command == f"relay-agent host --relay {me['relay']} --fingerprint {me['fingerprint']} --code CODE"

    # The command, as a customer would paste it (with a code that was never issued), reaches
    # this relay and passes the certificate check: the relay refuses the code, not the pin.
    arguments = shlex.split(command.replace("CODE", "000000"))
    assert arguments[0] == "relay-agent"
    result = subprocess.run(
        [str(AGENT), *arguments[1:], "--source", "synthetic:scrolling-text"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"XDG_CONFIG_HOME": str(relay.folder / "customer"), "HOME": str(relay.folder), "PATH": "/usr/bin:/bin"},
    )
    said = (result.stdout + result.stderr).lower()
    assert result.returncode != 0, said
    assert "code" in said, said
    assert "fingerprint" not in said and "certificate" not in said, said


def test_the_console_sends_a_visitor_who_is_not_signed_in_to_the_sign_in_page(relay, open_page):
    page = open_page()
    page.goto(f"{relay.url}/")
    page.wait_for_url(f"{relay.url}/signin")
    expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()


def test_recent_sessions_start_empty_and_a_session_that_ends_sends_the_console_to_sign_in(relay, open_page):
    page = open_page()
    engineer = sign_in(page, relay, "jung.hoseok", PASSWORD)
    expect(page.get_by_role("heading", name="Recent sessions")).to_be_visible()
    expect(page.locator("#sessions-empty")).to_be_visible()
    expect(page.locator("#sessions-body tr")).to_have_count(0)

    # The session ends elsewhere (here: the administrator resets two-factor, which ends web
    # sessions): the next refresh finds 401 and opens the sign-in page.
    relay.cli("engineer", "reset-totp", engineer.id)
    page.wait_for_url(f"{relay.url}/signin", timeout=25_000)


def test_last_seen_duration_and_search_helpers(module_page):
    result = module_page.evaluate(
        """async () => {
            const c = await import('/js/console.js');
            const now = Date.parse('2026-12-02T12:00:00Z');
            const ago = (seconds) => new Date(now - seconds * 1000).toISOString();
            const hosts = [{ id: 'ho-aaaa', name: 'Accounting PC-03' }, { id: 'ho-bbbb', name: '회계팀 PC-07' }, { id: 'ho-cccc', name: 'Reception' }];
            return {
                // The last one is 30 s in the future (clocks differ): not "in the future".
                seen: [null, ago(5), ago(3 * 60 + 20), ago(5 * 3600), ago(86400 + 60), ago(3 * 86400), ago(-30)]
                    .map((iso) => c.lastSeenWords(iso, now)),
                old: c.lastSeenWords('2026-10-01T00:00:00Z', now),
                bad: c.lastSeenWords('yesterday', now),
                durations: [0, 42_000, 60_000, 303_000, 7_800_000, 3_600_000].map(c.durationWords),
                search: ['pc', 'PC 07', 'BBBB', '', '  ', 'nothing'].map((q) => c.filterHosts(hosts, q).map((h) => h.id)),
                command: c.customerCommand('relay.example.com:7443', 'AB:CD'),
            };
        }"""
    )
    assert result["seen"] == ["never", "just now", "3 min ago", "5 h ago", "1 day ago", "3 days ago", "just now"]
    assert result["old"].startswith("on ") and "2026" in result["old"]
    assert result["bad"] == "never"
    assert result["durations"] == ["0 s", "42 s", "1 min", "5 min 3 s", "2 h 10 min", "1 h"]
    assert result["search"] == [
        ["ho-aaaa", "ho-bbbb"],
        ["ho-bbbb"],
        ["ho-bbbb"],
        ["ho-aaaa", "ho-bbbb", "ho-cccc"],
        ["ho-aaaa", "ho-bbbb", "ho-cccc"],
        [],
    ]
    assert result["command"] == "relay-agent host --relay relay.example.com:7443 --fingerprint AB:CD --code CODE"
