"""The sign-in page against a real relay: a one-time link, the new password, two-factor
enrolment and recovery codes, then password + TOTP; refusals (wrong password, wrong or
replayed code, used link, used recovery code); the session cookie and CSRF."""

import re
import urllib.parse

from playwright.sync_api import expect
from relayserver import (  # noqa: F401 (fixtures)
    SESSION_COOKIE,
    fresh_code,
    open_page,
    relay,
    sign_in,
    sign_in_with_password,
    totp_step,
    wrong_code,
)

PASSWORD = "correct horse battery staple"


def alert(page):
    return page.get_by_role("alert")


def me_status(page) -> int:
    return page.evaluate("fetch('/api/me', {cache: 'no-store'}).then(response => response.status)")


def sign_out(page, relay):
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{relay.url}/signin")
    expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()


def type_code(page, code):
    expect(page.get_by_role("heading", name="Two-factor code")).to_be_visible()
    page.get_by_label("Code from your authenticator app").fill(code)
    page.get_by_role("button", name="Continue").click()


def test_first_sign_in_from_a_link_then_sign_out_and_in_again_with_password_and_totp(relay, open_page):
    page = open_page()
    company = relay.add_company("ACME Korea")
    engineer_id, link = relay.add_engineer(company, "kim.minji")
    assert re.fullmatch(re.escape(relay.url) + r"/signin#[^#\s]{20,}", link), link

    page.goto(link)
    expect(page.get_by_role("heading", name="Choose a password for kim.minji")).to_be_visible()
    # The token leaves the address bar (and the history entry) at once.
    assert page.url == f"{relay.url}/signin", page.url
    assert page.evaluate("location.hash") == ""
    # Password managers: the new password is a new one, for this login.
    assert page.get_by_label("New password").get_attribute("autocomplete") == "new-password"
    assert page.get_by_label("The same password again").get_attribute("autocomplete") == "new-password"
    assert page.locator("#new-password-username").input_value() == "kim.minji"
    assert page.locator("#new-password-username").get_attribute("autocomplete") == "username"
    expect(page.locator("#new-password-hint")).to_contain_text("12 characters")
    expect(page.locator("#new-password-hint")).to_contain_text("72 bytes")

    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("The same password again").fill(PASSWORD)
    page.get_by_role("button", name="Set password").click()

    # Enrolment: a QR code (an SVG image), and the same secret for manual entry.
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
    qr = page.locator("#qr svg")
    expect(qr).to_have_count(1)
    assert qr.evaluate("svg => svg.namespaceURI") == "http://www.w3.org/2000/svg"
    assert qr.evaluate("svg => svg.getBoundingClientRect().width") >= 100
    shown = page.locator("#totp-secret").inner_text()
    secret = re.sub(r"\s", "", shown)
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), f"not a base32 key: {shown!r}"
    assert re.fullmatch(r"([A-Z2-7]{4} )*[A-Z2-7]{1,4}", shown.strip()), f"not in groups of four: {shown!r}"
    otpauth = page.locator("#otpauth-link").get_attribute("href")
    parameters = urllib.parse.parse_qs(urllib.parse.urlsplit(otpauth).query)
    assert otpauth.startswith("otpauth://totp/") and parameters["secret"] == [secret], otpauth
    assert page.get_by_label("Type the 6-digit code the app shows").get_attribute("autocomplete") == "one-time-code"

    code, step = fresh_code(secret, totp_step() - 2)
    page.get_by_label("Type the 6-digit code the app shows").fill(code)
    page.get_by_role("button", name="Confirm").click()

    # Recovery codes, once; then the console.
    expect(page.get_by_role("heading", name="Store your recovery codes")).to_be_visible()
    codes = [text.strip() for text in page.locator("#recovery-codes li").all_inner_texts()]
    assert len(codes) >= 5 and len(set(codes)) == len(codes), codes
    assert all(re.fullmatch(r"[a-z0-9]{4}(-[a-z0-9]{4}){2,3}", code) for code in codes), codes
    page.get_by_role("button", name="I have stored these").click()
    page.wait_for_url(f"{relay.url}/")
    expect(page.locator("#me-login")).to_have_text("kim.minji")
    expect(page.locator("#me-company")).to_have_text("ACME Korea")
    assert me_status(page) == 200
    page.reload()
    expect(page.locator("#me-login")).to_have_text("kim.minji")
    assert codes[0] not in page.content()

    # The sign-in page sends a signed-in engineer to the console.
    page.goto(f"{relay.url}/signin")
    page.wait_for_url(f"{relay.url}/")

    sign_out(page, relay)
    assert me_status(page) == 401
    page.goto(f"{relay.url}/")
    page.wait_for_url(f"{relay.url}/signin")

    # Again, with the password and a TOTP code: no enrolment, no recovery codes this time.
    assert page.get_by_label("Login", exact=True).get_attribute("autocomplete") == "username"
    assert page.get_by_label("Password", exact=True).get_attribute("autocomplete") == "current-password"
    sign_in_with_password(page, relay, "kim.minji", PASSWORD)
    assert page.get_by_label("Code from your authenticator app").get_attribute("autocomplete") == "one-time-code"
    next_code, step = fresh_code(secret, step)
    type_code(page, next_code)
    page.wait_for_url(f"{relay.url}/")
    expect(page.locator("#me-login")).to_have_text("kim.minji")
    assert me_status(page) == 200
    assert engineer_id


def test_a_wrong_password_is_refused_and_the_button_is_disabled_while_the_request_runs(relay, open_page):
    page = open_page()
    engineer = sign_in(page, relay, "lee.jisoo", PASSWORD)
    sign_out(page, relay)

    # Record every change of the submit button's disabled state.
    page.evaluate(
        """() => {
            const button = document.getElementById('password-submit');
            window.__disabledStates = [];
            new MutationObserver(() => window.__disabledStates.push(button.disabled))
                .observe(button, { attributes: true, attributeFilter: ['disabled'] });
        }"""
    )
    sign_in_with_password(page, relay, engineer.login, PASSWORD + "x")
    expect(alert(page)).to_contain_text("wrong")
    assert page.evaluate("window.__disabledStates") == [True, False]
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_be_enabled()
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    assert page.url == f"{relay.url}/signin"
    assert me_status(page) == 401

    # An unknown login gets the same answer.
    sign_in_with_password(page, relay, "nobody.here", PASSWORD)
    expect(alert(page)).to_contain_text("wrong")
    assert me_status(page) == 401


def test_a_wrong_totp_code_is_refused(relay, open_page):
    page = open_page()
    engineer = sign_in(page, relay, "park.seojun", PASSWORD)
    sign_out(page, relay)
    sign_in_with_password(page, relay, engineer.login, PASSWORD)
    type_code(page, wrong_code(engineer.secret))
    expect(alert(page)).to_contain_text("wrong")
    assert me_status(page) == 401
    # The right code still works after one mistake.
    type_code(page, engineer.next_code())
    page.wait_for_url(f"{relay.url}/")
    assert me_status(page) == 200


def test_a_totp_code_used_once_is_refused_the_second_time(relay, open_page):
    page = open_page()
    engineer = sign_in(page, relay, "choi.yuna", PASSWORD)
    sign_out(page, relay)

    sign_in_with_password(page, relay, engineer.login, PASSWORD)
    code = engineer.next_code()
    type_code(page, code)
    page.wait_for_url(f"{relay.url}/")
    sign_out(page, relay)

    # Same code, same 30-second step, right password: refused as already used.
    assert totp_step() <= engineer.last_step + 1
    sign_in_with_password(page, relay, engineer.login, PASSWORD)
    type_code(page, code)
    expect(alert(page)).to_contain_text("already used")
    assert me_status(page) == 401


def test_a_sign_in_link_works_once(relay, open_page):
    company = relay.add_company()
    _, link = relay.add_engineer(company, "jung.hoseok")
    first = open_page()
    sign_in(first, relay, "jung.hoseok", PASSWORD, company=company, link=link)

    second = open_page()
    second.goto(link)
    expect(alert(second)).to_contain_text("does not work")
    expect(second.get_by_role("heading", name="Choose a password for jung.hoseok")).to_be_hidden()
    expect(second.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
    assert second.url == f"{relay.url}/signin"
    assert me_status(second) == 401


def test_a_link_that_was_never_issued_is_refused(relay, open_page):
    page = open_page()
    page.goto(f"{relay.url}/signin#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    expect(alert(page)).to_contain_text("does not work")
    assert page.url == f"{relay.url}/signin"


def test_a_new_password_that_breaks_a_rule_is_refused_with_the_rule(relay, open_page):
    page = open_page()
    company = relay.add_company()
    _, link = relay.add_engineer(company, "kang.daniel")
    page.goto(link)
    expect(page.get_by_role("heading", name="Choose a password for kang.daniel")).to_be_visible()
    page.get_by_label("New password").fill("short pass")
    page.get_by_label("The same password again").fill("short pass")
    page.get_by_role("button", name="Set password").click()
    expect(alert(page)).to_contain_text("12")
    expect(page.get_by_role("heading", name="Choose a password for kang.daniel")).to_be_visible()

    # Two different passwords never reach the relay.
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("The same password again").fill(PASSWORD + "!")
    page.get_by_role("button", name="Set password").click()
    expect(alert(page)).to_contain_text("differ")

    # The link's sign-in is still pending: a good password goes on to enrolment.
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("The same password again").fill(PASSWORD)
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()


def test_a_recovery_code_works_once(relay, open_page):
    page = open_page()
    engineer = sign_in(page, relay, "han.sora", PASSWORD)
    first, second = engineer.recovery_codes[0], engineer.recovery_codes[1]
    sign_out(page, relay)

    sign_in_with_password(page, relay, engineer.login, PASSWORD)
    type_code(page, first)
    page.wait_for_url(f"{relay.url}/")
    assert me_status(page) == 200
    sign_out(page, relay)

    sign_in_with_password(page, relay, engineer.login, PASSWORD)
    type_code(page, first)
    expect(alert(page)).to_contain_text("used already")
    assert me_status(page) == 401

    type_code(page, second.upper())  # as typed from a printout: any case works
    page.wait_for_url(f"{relay.url}/")
    assert me_status(page) == 200


def test_the_session_cookie_is_httponly_secure_and_samesite_strict(relay, open_page):
    page = open_page()
    sign_in(page, relay, "yoon.jiho", PASSWORD)
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    assert SESSION_COOKIE in cookies, list(cookies)
    session = cookies[SESSION_COOKIE]
    assert session["httpOnly"] is True
    assert session["secure"] is True
    assert session["sameSite"] == "Strict"
    assert session["path"] == "/"
    assert SESSION_COOKIE not in page.evaluate("document.cookie")

    sign_out(page, relay)
    assert SESSION_COOKIE not in {cookie["name"] for cookie in page.context.cookies()}


def test_sign_out_without_the_csrf_token_is_refused(relay, open_page):
    page = open_page()
    sign_in(page, relay, "oh.hyejin", PASSWORD)

    status = page.evaluate(
        """fetch('/api/signout', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })
             .then(response => response.status)"""
    )
    assert status == 403
    wrong = page.evaluate(
        """fetch('/api/signout', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': 'not-the-token' },
             body: '{}' }).then(response => response.status)"""
    )
    assert wrong == 403
    assert me_status(page) == 200

    token = page.evaluate("fetch('/api/me').then(response => response.json()).then(me => me.csrfToken)")
    assert token
    right = page.evaluate(
        """token => fetch('/api/signout', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': token },
             body: '{}' }).then(response => response.status)""",
        token,
    )
    assert right == 204
    assert me_status(page) == 401


def test_a_login_with_markup_is_shown_as_text(relay, open_page):
    page = open_page()
    login = "<img src=x onerror=window.__xss=1>"

    def check_heading(page):
        expect(page.locator("#new-password-login")).to_have_text(login)
        assert page.locator("main img[src='x']").count() == 0
        assert page.evaluate("window.__xss") is None

    sign_in(page, relay, login, PASSWORD, on_password_form=check_heading)
    expect(page.locator("#me-login")).to_have_text(login)
    assert page.locator("header img[src='x']").count() == 0
    assert page.evaluate("window.__xss") is None
