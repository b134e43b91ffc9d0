"""Outside attacks on the relay's web port in a real browser and against the real
relay-server process (issue 13; docs/SECURITY.md §4.4, docs/OPERATIONS.md "The web port").

- Markup in every name an outsider or an admin chooses (company, engineer login, enrolled
  host, the customer's machine name sent with a support code) stays text on every page:
  enrolment, console, the viewer by host and by code. Quotes in the payloads also try to
  break out of attributes.
- Another site open in the same browser as a signed-in engineer can neither read the
  console's JSON, nor sign the engineer out, nor open the session's WebSocket, nor frame
  the console.
- A flood of half-sent sign-in requests from many addresses: the relay's resident memory
  (VmRSS of the process) comes back near where it was once the connections are gone, and
  the relay serves on.

Each test fails if the defence it attacks breaks.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import threading
import time

from playwright.sync_api import expect
from relayserver import AGENT, Relay, open_page, relay, sign_in  # noqa: F401 (fixtures)

PASSWORD = "a long enough passphrase"

# Each payload carries an element with an id starting "xss", a handler that would set
# window.__xss, and quotes to leave an attribute value.
COMPANY = "ACME\"' data-xss=1 x=\"><i id=xss-company></i>&amp;"
LOGIN = "kim\"'><i id=xss-login></i>"
HOST = "PC-03\"' onmouseover='window.__xss=1'><i id=xss-host></i><img src=x onerror=\"window.__xss='host'\">"
MACHINE = "laptop\"'><i id=xss-machine></i><svg onload=\"window.__xss='machine'\">"

# Lists what markup from a name would have made: elements with an xss id, attributes named
# data-xss or on… (the app has no inline handlers: its CSP would refuse them), and the flag.
INJECTED = """
() => {
  const found = [];
  for (const element of document.querySelectorAll('*')) {
    if (element.id && element.id.startsWith('xss')) found.push(element.outerHTML);
    for (const attribute of element.attributes) {
      if (attribute.name === 'data-xss' || attribute.name.startsWith('on')) found.push(`${element.tagName} ${attribute.name}`);
    }
  }
  if (window.__xss !== undefined) found.push(`window.__xss = ${window.__xss}`);
  return found;
}
"""


def assert_nothing_injected(page, where: str) -> None:
    page.wait_for_timeout(200)  # an injected image's onerror would have run by now
    assert page.evaluate(INJECTED) == [], f"{where}: markup from a name became HTML"


def test_markup_in_every_name_stays_text_on_every_page(relay, open_page):
    company = relay.add_company(COMPANY)
    host_id = relay.run_host(company, HOST)
    page = open_page()

    def on_password_form(page):
        expect(page.locator("#new-password-login")).to_have_text(LOGIN)
        assert_nothing_injected(page, "the new-password form")

    sign_in(page, relay, LOGIN, PASSWORD, company=company, on_password_form=on_password_form)
    expect(page.locator("#me-login")).to_have_text(LOGIN)
    expect(page.locator("#me-company")).to_have_text(COMPANY)
    row = page.locator(f"#hosts-body tr[data-host-id='{host_id}']")
    expect(row.locator("td.name")).to_have_text(HOST)
    expect(row.locator(".badge")).to_have_text("online", timeout=30_000)
    page.get_by_label("Search by name or id").fill("<i id=xss")
    expect(row).to_have_count(1)
    assert_nothing_injected(page, "the console")

    # The viewer of the enrolled host: its name from the relay and from the host's Identity.
    page.goto(f"{relay.url}/view#host={host_id}")
    expect(page.locator("body")).to_have_attribute("data-state", "live", timeout=30_000)
    expect(page.locator("#peer")).to_contain_text(HOST)
    expect(page.locator("#peer")).to_contain_text(COMPANY)
    expect(page.locator("#peer")).to_have_attribute("title", re.compile(re.escape(f"{HOST} of {COMPANY}")))
    assert page.title().startswith(HOST)
    assert_nothing_injected(page, "the viewer of an enrolled host")

    # A support code: the customer, whom the engineer does not know, names the machine.
    page.goto(f"{relay.url}/view#code")
    expect(page.locator("body")).to_have_attribute("data-state", "waiting-for-customer", timeout=30_000)
    code = re.sub(r"\D", "", page.locator("#code").inner_text())
    customer = [
        str(AGENT), "host", "--relay", relay.address, "--fingerprint", relay.fingerprint, "--code", code,
        "--accept", "full", "--source", "synthetic:scrolling-text", "--name", MACHINE,
    ]  # fmt: skip
    with open(relay.folder / "agent-customer.log", "wb") as log:
        agent = subprocess.Popen(customer, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=relay._agent_environment())
    relay._agents.append(agent)
    expect(page.locator("body")).to_have_attribute("data-state", "live", timeout=30_000)
    expect(page.locator("#peer")).to_contain_text(MACHINE)
    assert_nothing_injected(page, "the viewer of a support code")


# ---- Another site in the same browser ----

ATTACK = """
async ([relay, csrf]) => {
  const result = {};
  try {
    const response = await fetch(relay + '/api/me', { credentials: 'include' });
    result.read = 'read ' + response.status + ' ' + (await response.text());
  } catch (error) {
    result.read = 'blocked';
  }
  // Requests it cannot read but may send: sign-out with and without a guessed token.
  for (const headers of [{ 'Content-Type': 'text/plain' }, { 'Content-Type': 'text/plain', 'X-CSRF-Token': csrf }]) {
    try {
      await fetch(relay + '/api/signout', { method: 'POST', mode: 'no-cors', credentials: 'include', headers, body: '{}' });
    } catch (error) {}
  }
  // The session's WebSocket, without the token and with a guessed one.
  result.sockets = [];
  for (const path of ['/ws', '/ws?csrf=' + encodeURIComponent(csrf)]) {
    result.sockets.push(await new Promise((resolve) => {
      const socket = new WebSocket(relay.replace('https:', 'wss:') + path, 'supportrelay.v1');
      socket.binaryType = 'arraybuffer';
      socket.onopen = () => { resolve('open'); socket.close(); };
      socket.onclose = (event) => resolve('closed ' + event.code);
      setTimeout(() => resolve('timeout'), 5000);
    }));
  }
  return result;
}
"""


def test_another_site_in_the_same_browser_cannot_use_the_engineers_session(relay, open_page, static_site):
    page = open_page()
    sign_in(page, relay, "victim.park", PASSWORD)
    csrf = page.evaluate("fetch('/api/me').then(response => response.json()).then(me => me.csrfToken)")
    assert csrf

    attacker = page.context.new_page()
    seen = []
    attacker.on("websocket", lambda socket: seen.append(socket.url))
    attacker.goto(f"{static_site}/blank.html")
    # The attacker does not know the token; a made-up one of the right form stands for a guess.
    guessed = "A" * len(csrf)
    result = attacker.evaluate(ATTACK, [relay.url, guessed])
    assert result["read"] == "blocked", result
    assert all(outcome != "open" for outcome in result["sockets"]), result
    assert len(seen) == 2

    # A form that posts to the sign-out route from the other site, into a frame of its own.
    attacker.set_content(
        f"""<iframe name=sink></iframe>
        <form id=f method=post action="{relay.url}/api/signout" target=sink enctype=text/plain>
        <input name='{{"a":"' value='"}}'></form>"""
    )
    attacker.evaluate("document.getElementById('f').submit()")
    attacker.wait_for_timeout(500)

    # The console in a frame of the other site: frame-ancestors 'none' leaves it empty.
    attacker.set_content(f"<iframe id=console src='{relay.url}/' width=600 height=400></iframe>")
    attacker.wait_for_timeout(1000)
    framed = [frame for frame in attacker.frames if frame != attacker.main_frame]
    assert framed, "the frame was not made"
    for frame in framed:
        try:
            text = frame.evaluate("document.body ? document.body.innerText : ''")
        except Exception:  # a blocked frame has no document to evaluate in
            text = ""
        assert "Hosts" not in text and "victim.park" not in text, f"the console rendered inside another site's frame: {frame.url}"
    attacker.close()

    # The engineer is still signed in: nothing the other site sent signed them out.
    assert page.evaluate("fetch('/api/me').then(response => response.status)") == 200
    me = page.evaluate("fetch('/api/me').then(response => response.json())")
    assert me["login"] == "victim.park"


# ---- Memory under a flood ----


def _vmrss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


def _tls(port: int, source: str | None = None) -> ssl.SSLSocket:
    """A TLS connection to the relay on 127.0.0.1 from `source` (a loopback address), ALPN
    http/1.1, not checking the development certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0) if source else None)
    return context.wrap_socket(raw, server_hostname="localhost")


def _exchange(port: int, request: str) -> bytes:
    """Sends one request with `Connection: close` and reads the whole answer."""
    with _tls(port) as tls:
        tls.sendall(request.encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    return answer


def _open_connections(relay: Relay) -> float:
    metrics = _exchange(relay.admin_port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    match = re.search(rb"^relay_connections_open (\S+)$", metrics, re.M)
    assert match, metrics[:400]
    return float(match.group(1))


def _half_sent_sign_in(relay: Relay, source: str) -> ssl.SSLSocket | None:
    """A TLS connection from `source` that sent a sign-in head and 15,000 of the 16,000
    body bytes it announced, and then nothing."""
    head = (
        f"POST /api/signin/password HTTP/1.1\r\nHost: {relay.address}\r\nOrigin: https://{relay.address}\r\n"
        "Content-Type: application/json\r\nContent-Length: 16000\r\n\r\n"
    )
    try:
        tls = _tls(relay.port, source)
        tls.sendall(head.encode() + b'{"login":"' + b"a" * 14_990)
        return tls
    except OSError:
        return None


def _flood(relay: Relay) -> list[ssl.SSLSocket]:
    """Opens 10 half-sent sign-ins from each of 30 addresses, six threads at a time."""
    held: list[ssl.SSLSocket] = []
    lock = threading.Lock()

    def flood(first: int) -> None:
        for source in range(first, 30, 6):
            for _ in range(10):
                connection = _half_sent_sign_in(relay, f"127.0.40.{source + 1}")
                if connection is not None:
                    with lock:
                        held.append(connection)

    threads = [threading.Thread(target=flood, args=(first,)) for first in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return held


def test_a_flood_of_half_sent_sign_ins_leaves_the_relays_memory_where_it_was(tmp_path):
    server = Relay(tmp_path / "flood", {"handshake_timeout_seconds": 4, "heap_trim_seconds": 2}).start()
    try:
        pid = server.process.pid
        form = json.dumps({"login": "nobody", "password": "not the password"})
        sign_in_request = (
            f"POST /api/signin/password HTTP/1.1\r\nHost: {server.address}\r\nOrigin: https://{server.address}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(form)}\r\nConnection: close\r\n\r\n{form}"
        )
        # Warm up what every connection uses once (TLS contexts, the web app, bcrypt's thread).
        for _ in range(3):
            assert _exchange(server.port, sign_in_request).startswith(b"HTTP/1.1 401")
        time.sleep(1)
        before = _vmrss_kib(pid)

        # Twice: 300 connections, 10 from each of 30 addresses (the most each may hold before
        # sign-in). What is left afterwards must not grow with the number of past floods.
        for flood in (1, 2):
            held = _flood(server)
            peak = _vmrss_kib(pid)
            assert len(held) >= 150, f"only {len(held)} of 300 connections were opened"
            for connection in held:
                connection.close()
            deadline = time.monotonic() + 30
            after = _vmrss_kib(pid)
            while time.monotonic() < deadline:
                after = _vmrss_kib(pid)
                if _open_connections(server) == 0 and after <= before + 12 * 1024:
                    break
                time.sleep(0.5)
            assert _open_connections(server) == 0
            assert after <= before + 12 * 1024, f"flood {flood}: VmRSS {before} KiB before, {peak} KiB in it, still {after} KiB 30 s after it"

        # The relay still answers.
        page = _exchange(server.port, f"GET / HTTP/1.1\r\nHost: {server.address}\r\nConnection: close\r\n\r\n")
        assert page.startswith(b"HTTP/1.1 200")
    finally:
        server.stop()
