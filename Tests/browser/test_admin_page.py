"""Smoke tests of the admin console page (/admin) against a real relay and its admin API:
each role sees its own tabs, every tab of an admin loads without an error under the
relay's CSP (open_page fails a test on a CSP refusal or an uncaught error), the usage
export links download files, and a host enrolled through the form shows its commands once.

The full end-to-end tests of the console are test_admin_console*.py (by others); these
only show that the page and the API fit together."""

import re
import urllib.parse

from playwright.sync_api import expect
from relayserver import open_page, relay, sign_in  # noqa: F401 (fixtures)

PASSWORD = "a long enough passphrase"
ADMIN_TABS = ["Usage", "Hosts", "Engineers", "Retention", "Audit", "API tokens", "Alerts"]


def sign_in_as(page, relay, company, login, role):
    added = relay.cli_json("engineer", "add", "--company", company, "--role", role, "--web-url", relay.url, login)
    sign_in(page, relay, login, PASSWORD, company=company, link=relay._on_this_relay(added["signin_link"]))


def tab_names(page):
    return [name.strip() for name in page.get_by_role("tab").all_inner_texts()]


def test_every_tab_of_an_admin_loads_and_the_usage_exports_download(relay, open_page):
    company = relay.add_company("ACME <Korea>")
    host_id = relay.enroll_host(company, "<img src=x onerror=window.__xss=1>")
    page = open_page()
    sign_in_as(page, relay, company, "alice.admin", "admin")

    page.get_by_role("link", name="Admin console").click()
    page.wait_for_url(re.compile(r"/admin#usage$"))
    expect(page.locator("#me-login")).to_have_text("alice.admin")
    expect(page.locator("#me-company")).to_have_text("ACME <Korea>")
    assert tab_names(page) == ADMIN_TABS

    # Usage: the previous month by default, totals, a chart and a day per table row.
    expect(page.locator("#usage-total-sessions")).to_have_text("0")
    expect(page.locator("#usage-chart svg .day").first).to_be_attached()
    days = page.locator("#usage-chart svg .day").count()
    assert 28 <= days <= 31, days
    expect(page.locator("#usage-empty")).to_be_visible()
    links = page.locator("#usage-exports a")
    expect(links).to_have_count(3)
    for link in links.all():
        href = link.get_attribute("href")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(href).query)
        assert set(query) >= {"from", "to", "tz", "format"}, href
        with page.expect_download() as download:
            link.click()
        name = download.value.suggested_filename
        assert name.endswith("." + query["format"][0]), (href, name)
        assert download.value.failure() is None, (href, download.value.failure())

    # Every other tab loads without an error.
    for name in ADMIN_TABS[1:]:
        page.get_by_role("tab", name=name).click()
        section = page.get_by_role("tab", name=name).get_attribute("data-section")
        assert page.url.endswith(f"#{section}")
        panel = page.locator(f"#panel-{section}")
        expect(panel).to_be_visible()
        page.wait_for_timeout(500)
        alerts = [text for text in panel.locator('[role="alert"]').all_inner_texts() if text.strip()]
        assert not alerts, (name, alerts)

    # Hosts: the name with markup is text; a host enrolled through the form shows its commands once.
    page.get_by_role("tab", name="Hosts").click()
    expect(page.locator(f"#hosts-body tr[data-host-id='{host_id}'] td.name")).to_have_text("<img src=x onerror=window.__xss=1>")
    hosts = page.locator("#panel-hosts")
    hosts.get_by_label("Name", exact=True).fill("Front desk PC")
    hosts.get_by_label("Group (optional)").fill("Reception")
    hosts.get_by_role("button", name="Enrol host").click()
    once = page.locator("#hosts-once")
    expect(once).to_contain_text("Front desk PC is enrolled")
    expect(once.locator("pre")).to_contain_text("relay-agent")
    expect(page.locator("#hosts-body tr")).to_have_count(2)
    page.get_by_role("button", name="Done, hide this").click()
    expect(once).to_be_hidden()

    # A reload keeps the tab.
    page.reload()
    expect(page.get_by_role("tab", name="Hosts")).to_have_attribute("aria-selected", "true")
    assert page.evaluate("window.__xss") is None


def test_each_role_sees_its_own_tabs(relay, open_page):
    company = relay.add_company()
    for login, role, tabs in (
        ("mina.manager", "manager", ["Usage", "Hosts", "Engineers"]),
        ("kim.engineer", "engineer", ["Usage"]),
        ("ops.operator", "operator", ["Relay"]),
    ):
        page = open_page()
        sign_in_as(page, relay, company, login, role)
        page.goto(f"{relay.url}/admin#tokens")
        expect(page.get_by_role("tab").first).to_be_visible()
        assert tab_names(page) == tabs, (role, tab_names(page))
        # A tab the role may not see falls back to the first one.
        expect(page.get_by_role("tab", name=tabs[0])).to_have_attribute("aria-selected", "true")
        panel = page.locator(f"#panel-{page.get_by_role('tab', name=tabs[0]).get_attribute('data-section')}")
        page.wait_for_timeout(500)
        alerts = [text for text in panel.locator('[role="alert"]').all_inner_texts() if text.strip()]
        assert not alerts, (role, alerts)
        if role == "manager":
            page.get_by_role("tab", name="Hosts").click()
            expect(page.locator("#hosts-readonly")).to_be_visible()
            assert page.locator("#host-enrol-form").count() == 0
        page.context.close()
