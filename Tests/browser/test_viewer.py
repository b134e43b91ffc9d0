"""The viewer page (/view) against a real relay and real hosts (relay-agent host).

- An enrolled host sharing a synthetic scene: the page reaches live, counts updates, sizes the
  canvas to the host's screen, shows figures and the host's name.
- Pixel equality: a host replaying one known frame (a PNG of benchmarks/frames, decoded here
  by a small PNG reader); the canvas equals it byte for byte.
- A support code: the page shows the code and the customer's command; that command, run as
  it is shown, pairs; the page's security code equals the one the host agent prints.
- View only: with the box ticked, clicks, keys, wheel and pastes send no Pointer, Key or
  Clipboard (the page's sealed records are watched by wrapping crypto.subtle.encrypt, whose
  plaintext starts with the inner type); a host that allows viewing only is shown as such.
- The end: a host that quits ends the session with its reason in words.
- Names and clipboard text from a host are shown as text, never run as HTML.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import pty
import re
import shlex
import shutil
import struct
import subprocess
import time
import zlib

import pytest
from playwright.sync_api import expect
from relayserver import AGENT, REPOSITORY, open_page, relay, sign_in, wait_until_online  # noqa: F401 (fixtures)

PASSWORD = "a long enough passphrase"
LIVE_TIMEOUT = 30_000
FRAME = REPOSITORY / "benchmarks" / "frames" / "terminal-scroll" / "0001.png"

# Records the inner type of every sealed record the page makes: AES-GCM plaintexts begin with
# it (PROTOCOL.md §5.3.5). Installed before the page's own scripts run.
WATCH_SEALED = """
(() => {
  const encrypt = crypto.subtle.encrypt.bind(crypto.subtle);
  window.__sealedTypes = [];
  window.__sealedPointers = [];
  crypto.subtle.encrypt = function (algorithm, key, data) {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (algorithm && algorithm.name === 'AES-GCM') {
      window.__sealedTypes.push(bytes[0]);
      // Pointer (§5.2.4): x, y, buttons.
      if (bytes[0] === 0x43 && bytes.length === 6) {
        window.__sealedPointers.push([(bytes[1] << 8) | bytes[2], (bytes[3] << 8) | bytes[4], bytes[5]]);
      }
    }
    return encrypt(algorithm, key, data);
  };
})();
"""
UPDATE_REQUEST, POINTER, KEY, CLIPBOARD = 0x42, 0x43, 0x44, 0x45


# ---- Hosts ----


def start_host(relay, company: str, name: str, source: str, *extra: str) -> str:
    """Enrolls a host with a key and runs `relay-agent host` for it with `source`, like the
    fixture's run_host; returns its id. The agent stops with the relay."""
    host_id = relay.enroll_host(company, name)
    give_host_a_key(relay, host_id)
    run_host_agent(relay, host_id, source, *extra)
    return host_id


def give_host_a_key(relay, host_id: str) -> None:
    """Makes a new key for the host (its file replaces the old one) and sets it at the relay."""
    key_file = relay.folder / f"{host_id}.key"
    key_file.unlink(missing_ok=True)
    relay.cli_json("host", "set-key", host_id, "--public-key", relay.new_public_key(key_file, host_id))


def run_host_agent(relay, host_id: str, source: str, *extra: str) -> subprocess.Popen:
    """Runs relay-agent for an enrolled host with its key file; its log is agent-ID.log."""
    command = [
        str(AGENT), "host", "--relay", relay.address, "--fingerprint", relay.fingerprint, "--host-id", host_id,
        "--key-file", str(relay.folder / f"{host_id}.key"), "--any-engineer", "--source", source, *extra,
    ]  # fmt: skip
    return run_agent(relay, command, f"agent-{host_id}.log", append=True)


def run_agent(relay, command: list[str], log_name: str, append: bool = False) -> subprocess.Popen:
    """Runs a relay-agent whose output goes to LOG_NAME in the relay's folder (printed when a
    test fails); it is stopped with the relay."""
    with open(relay.folder / log_name, "ab" if append else "wb") as log:
        agent = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=relay.folder,
            env=relay._agent_environment(),
        )  # fmt: skip
    relay._agents.append(agent)
    return agent


def log_text(relay, log_name: str) -> str:
    path = relay.folder / log_name
    return path.read_text(errors="replace") if path.exists() else ""


def wait_for_log(relay, log_name: str, pattern: str, timeout: float = 30) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, log_text(relay, log_name))
        if match:
            return match
        time.sleep(0.1)
    raise AssertionError(f"{log_name} never printed /{pattern}/ within {timeout} s:\n{log_text(relay, log_name)}")


def signed_in_page(open_page, relay, company: str, login: str = "kim.minji", **context):
    page = open_page(**context)
    sign_in(page, relay, login, PASSWORD, company=company)
    return page


def open_viewer(page, relay, fragment: str) -> None:
    page.goto(f"{relay.url}/view#{fragment}")


def expect_state(page, state: str, timeout: float = LIVE_TIMEOUT) -> None:
    expect(page.locator("body")).to_have_attribute("data-state", state, timeout=timeout)


def updates(page) -> int:
    return int(page.locator("body").get_attribute("data-updates"))


def wait_for_updates(page, count: int, timeout: float = LIVE_TIMEOUT / 1000) -> None:
    """Waits until the page has applied more than `count` updates (polled here: the page's CSP
    forbids the eval that wait_for_function needs)."""
    deadline = time.monotonic() + timeout
    while updates(page) <= count:
        assert time.monotonic() < deadline, f"the page applied {updates(page)} updates, not more than {count}"
        time.sleep(0.05)


# ---- A PNG reader (8-bit RGB or RGBA, not interlaced: what relay-agent writes and reads) ----


def read_png(path: pathlib.Path) -> tuple[int, int, bytes]:
    """Width, height and RGBA pixels (alpha 255 for RGB) of a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    offset, chunks, header = 8, [], None
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, f"{path}: unsupported PNG layout {header}"
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows, previous, position = [], bytearray(stride), 0
    for _ in range(height):
        kind = raw[position]
        line = bytearray(raw[position + 1 : position + 1 + stride])
        position += 1 + stride
        unfilter(kind, line, previous, channels)
        rows.append(bytes(line))
        previous = line
    pixels = b"".join(rows)
    if channels == 4:
        return width, height, pixels
    rgba = bytearray(width * height * 4)
    rgba[0::4], rgba[1::4], rgba[2::4] = pixels[0::3], pixels[1::3], pixels[2::3]
    rgba[3::4] = b"\xff" * (width * height)
    return width, height, bytes(rgba)


def unfilter(kind: int, line: bytearray, previous: bytearray, channels: int) -> None:
    if kind == 0:
        return
    if kind == 2:
        for index in range(len(line)):
            line[index] = (line[index] + previous[index]) & 0xFF
        return
    for index in range(len(line)):
        left = line[index - channels] if index >= channels else 0
        up = previous[index]
        if kind == 1:
            predictor = left
        elif kind == 3:
            predictor = (left + up) >> 1
        elif kind == 4:
            up_left = previous[index - channels] if index >= channels else 0
            estimate = left + up - up_left
            distances = (abs(estimate - left), abs(estimate - up), abs(estimate - up_left))
            predictor = left if distances[0] <= distances[1] and distances[0] <= distances[2] else up if distances[1] <= distances[2] else up_left
        else:
            raise AssertionError(f"PNG filter type {kind} does not exist")
        line[index] = (line[index] + predictor) & 0xFF


CANVAS_DIGEST = """
async () => {
  const canvas = document.getElementById('screen');
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', pixels));
  return {width: canvas.width, height: canvas.height, sha256: Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('')};
}
"""

# The first pixels that differ from `expected` (base64 of RGBA), for the failure message.
CANVAS_DIFFERENCES = """
(expected) => {
  const canvas = document.getElementById('screen');
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const want = Uint8Array.from(atob(expected), (c) => c.charCodeAt(0));
  const found = [];
  let count = 0;
  for (let index = 0; index < want.length; index += 4) {
    if (pixels[index] !== want[index] || pixels[index + 1] !== want[index + 1] || pixels[index + 2] !== want[index + 2] || pixels[index + 3] !== want[index + 3]) {
      count += 1;
      if (found.length < 5) found.push({pixel: index / 4, canvas: Array.from(pixels.slice(index, index + 4)), host: Array.from(want.slice(index, index + 4))});
    }
  }
  return {count, found};
}
"""


# ---- Tests ----


def test_an_enrolled_hosts_screen_goes_live_with_its_size_figures_and_name(relay, open_page):
    company = relay.add_company("ACME Korea")
    host_id = start_host(relay, company, "Accounting PC-03", "synthetic:scrolling-text:1024x640")
    page = signed_in_page(open_page, relay, company)
    wait_until_online(page, host_id)

    open_viewer(page, relay, f"host={host_id}")
    expect_state(page, "live")
    expect(page.locator("body")).not_to_have_attribute("data-updates", "0", timeout=LIVE_TIMEOUT)
    size = page.evaluate("(() => { const c = document.getElementById('screen'); return [c.width, c.height]; })()")
    assert size == [1024, 640]
    wait_for_log(relay, f"agent-{host_id}.log", r"screen 1024×640")

    # The scene scrolls: updates keep coming, and the figures are numbers after a second or two.
    first = updates(page)
    wait_for_updates(page, first + 5)
    # Latency is input to pixels: none until the engineer does something.
    page.locator("#screen").hover()
    page.mouse.move(200, 200)
    page.mouse.move(220, 230)
    expect(page.locator('[data-figure="latency"]')).to_have_text(re.compile(r"^\d+ ms$"), timeout=5000)
    fps = float(page.locator('[data-figure="fps"]').inner_text())
    kbps = float(page.locator('[data-figure="kbps"]').inner_text())
    assert fps > 0 and kbps > 0, (fps, kbps)

    expect(page.locator("#peer")).to_contain_text("Accounting PC-03")
    expect(page.locator("#peer")).to_contain_text("ACME Korea")
    # The host's Identity signs its id; its key's fingerprint is shown with it.
    expect(page.locator("#peer")).to_contain_text(host_id)
    expect(page.locator("#peer")).to_contain_text("SHA256:")
    expect(page.locator("#sas")).to_have_text(re.compile(r"^\d{3} \d{3}$"))
    expect(page.locator("#status")).to_contain_text("Live")
    assert page.title().startswith("Accounting PC-03")

    # Closing the tab says Bye: the host hears why the engineer left.
    page.close()
    wait_for_log(relay, f"agent-{host_id}.log", r"the engineer ended the session \(normal\): The engineer closed the viewer")


@pytest.fixture
def small_payload_relay(request, tmp_path):
    """A relay that announces the smallest payload limit (64 KiB, PROTOCOL.md §9), so that a
    whole-screen update arrives in many parts (§7.6). Its log is printed if the test failed."""
    from relayserver import Relay

    failed_before = request.session.testsfailed
    server = Relay(tmp_path / "small-relay", {"maximum_payload_bytes": 65_536}).start()
    try:
        yield server
    finally:
        server.stop()
        if request.session.testsfailed > failed_before:
            print(f"\n===== relay-server log (64 KiB limit) =====\n{server.log()}")
            for agent_log in sorted(server.folder.glob("agent-*.log")):
                print(f"--- {agent_log.name} ---\n{agent_log.read_text(errors='replace')[-4000:]}")


@pytest.mark.parametrize("limit", ["default", "64 KiB"])
def test_the_canvas_equals_the_hosts_frame_byte_for_byte(limit, request, open_page, tmp_path):
    # A replay of one real desktop frame (1920×1080, from Xvfb): the host sends exactly its
    # pixels, and nothing changes after the first update. With a 64 KiB limit that update
    # comes in parts, and the page paints once the last part is in.
    relay = request.getfixturevalue("relay" if limit == "default" else "small_payload_relay")
    folder = tmp_path / "one-frame"
    folder.mkdir()
    shutil.copy(FRAME, folder / "0001.png")
    width, height, rgba = read_png(FRAME)
    company = relay.add_company()
    host_id = start_host(relay, company, "Replay PC", f"replay:{folder}")
    page = signed_in_page(open_page, relay, company)
    wait_until_online(page, host_id)

    open_viewer(page, relay, f"host={host_id}")
    expect_state(page, "live")
    wait_for_updates(page, 0)
    canvas = page.evaluate(CANVAS_DIGEST)
    assert (canvas["width"], canvas["height"]) == (width, height)
    if canvas["sha256"] != hashlib.sha256(rgba).hexdigest():
        import base64

        differences = page.evaluate(CANVAS_DIFFERENCES, base64.b64encode(rgba).decode())
        pytest.fail(f"the canvas differs from the host's frame in {differences['count']} pixels: {differences['found']}")
    # Fit shrinks the screen into the window (smoothly); 1:1 shows it pixel for pixel.
    box = page.locator("#screen").bounding_box()
    assert box["width"] < width and abs(box["width"] / box["height"] - width / height) < 0.01
    page.locator("#scale-toggle").click()
    expect(page.locator("#scale-toggle")).to_have_attribute("aria-pressed", "true")
    box = page.locator("#screen").bounding_box()
    assert (round(box["width"]), round(box["height"])) == (width, height)
    # Scaling changes the drawing, never the pixels.
    assert page.evaluate(CANVAS_DIGEST)["sha256"] == hashlib.sha256(rgba).hexdigest()


def customer_command(page, relay, *extra: str) -> list[str]:
    """The command the page shows for the customer, checked, as an argument list for the
    relay-agent under test, with `extra` arguments added."""
    code = re.sub(r"\D", "", page.locator("#code").inner_text())
    command = page.locator("#customer-command").inner_text()
    assert command == f"relay-agent host --relay {relay.address} --fingerprint {relay.fingerprint} --code {code}"
    return [str(AGENT), *shlex.split(command)[1:], *extra]


def test_a_support_code_pairs_with_the_customers_agent_and_both_show_the_same_security_code(relay, open_page):
    company = relay.add_company("ACME Korea")
    page = signed_in_page(open_page, relay, company, permissions=["clipboard-read", "clipboard-write"])
    open_viewer(page, relay, "code")
    expect_state(page, "waiting-for-customer")
    expect(page.locator("#code")).to_have_text(re.compile(r"^\d{3} \d{3}$"))
    expect(page.locator("#code-expiry")).to_contain_text(re.compile(r"Expires in (10:00|9:\d\d)"))
    assert page.title().startswith("Support code ")
    page.locator("#copy-command").click()
    expect(page.locator("#copy-command-result")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == page.locator("#customer-command").inner_text()

    # The customer runs exactly the command shown (and answers the consent prompt in advance).
    command = customer_command(page, relay, "--accept", "full", "--source", "synthetic:scrolling-text", "--name", "Reception laptop")
    run_agent(relay, command, "agent-customer.log")
    expect_state(page, "live")
    wait_for_updates(page, 2)
    host_code = wait_for_log(relay, "agent-customer.log", r"Security code: (\d{3} \d{3})").group(1)
    expect(page.locator("#sas")).to_have_text(host_code)
    expect(page.locator("#peer")).to_contain_text("Reception laptop")
    expect(page.locator("#code-card")).to_be_hidden()

    # Code mode never reconnects: when the customer's agent leaves, the session is over.
    relay._agents[-1].terminate()
    expect_state(page, "ended", timeout=15_000)
    expect(page.locator("#end-reason")).to_contain_text("The other side left the session")
    expect(page.locator("#again")).to_have_text("New support code")


def test_the_customer_compares_the_security_code_then_allows_viewing_only(relay, open_page):
    # The customer's agent asks on a terminal (a pty here): while it waits, the page shows
    # the security code that the agent's question shows; the customer answers "view only".
    company = relay.add_company()
    page = open_page()
    page.add_init_script(WATCH_SEALED)
    sign_in(page, relay, "kim.minji", PASSWORD, company=company)
    open_viewer(page, relay, "code")
    expect_state(page, "waiting-for-customer")
    controller, terminal = pty.openpty()
    try:
        command = customer_command(page, relay, "--source", "synthetic:scrolling-text", "--name", "Front desk")
        with open(relay.folder / "agent-customer.log", "wb") as log:
            agent = subprocess.Popen(command, stdin=terminal, stdout=log, stderr=subprocess.STDOUT, cwd=relay.folder,
                                     env=relay._agent_environment())  # fmt: skip
        relay._agents.append(agent)
        expect_state(page, "waiting-for-access")
        host_code = wait_for_log(relay, "agent-customer.log", r"Security code: (\d{3} \d{3})").group(1)
        wait_for_log(relay, "agent-customer.log", r"Your answer")
        expect(page.locator("#sas")).to_have_text(host_code)
        expect(page.locator("#sas-large")).to_have_text(host_code)
        expect(page.locator("#sas-card")).to_be_visible()
        expect(page.locator("#status")).to_contain_text("Waiting for the customer to accept")
        os.write(controller, b"v\n")

        expect_state(page, "live")
        wait_for_updates(page, 1)
        expect(page.locator("#view-only")).to_be_checked()
        expect(page.locator("#view-only")).to_be_disabled()
        expect(page.locator("#status")).to_contain_text("view only")
        expect(page.locator("#sas-card")).to_be_hidden()
        # Nothing of the engineer's input is sealed: only UpdateRequests go out.
        page.evaluate("window.__sealedTypes.length = 0")
        page.locator("#screen").click(position={"x": 40, "y": 30})
        page.keyboard.type("ab")
        page.mouse.wheel(0, 240)
        wait_for_updates(page, updates(page) + 2)
        sealed = set(page.evaluate("window.__sealedTypes"))
        assert sealed == {UPDATE_REQUEST}, f"sealed inner types: {sorted(sealed)}"
        assert "ignored (view only)" not in log_text(relay, "agent-customer.log")
    finally:
        os.close(controller)
        os.close(terminal)


def sealed_during(page, action) -> list[int]:
    """The inner types the page sealed while `action` ran and two more updates arrived."""
    page.evaluate("window.__sealedTypes.length = 0")
    action()
    wait_for_updates(page, updates(page) + 2)
    return page.evaluate("window.__sealedTypes.slice()")


def test_view_only_stops_the_engineers_input_and_lifting_it_lets_input_through_again(relay, open_page):
    company = relay.add_company()
    host_id = start_host(relay, company, "Lab PC", "synthetic:scrolling-text")
    page = open_page(permissions=["clipboard-read", "clipboard-write"])
    page.add_init_script(WATCH_SEALED)
    sign_in(page, relay, "kim.minji", PASSWORD, company=company)
    wait_until_online(page, host_id)
    open_viewer(page, relay, f"host={host_id}")
    expect_state(page, "live")
    expect(page.locator("#view-only")).to_be_enabled()
    expect(page.locator("#view-only")).not_to_be_checked()
    screen = page.locator("#screen")

    def use_everything():
        screen.click(position={"x": 50, "y": 40})
        page.keyboard.type("ab")
        page.mouse.wheel(0, 120)

    sealed = sealed_during(page, use_everything)
    assert POINTER in sealed and KEY in sealed, sealed
    # A click is a press and a release; "ab" is four Key messages; one wheel notch two Pointers.
    assert sealed.count(KEY) == 4, sealed
    # Text that comes without keys (an IME, Korean) is typed as a press and release each.
    sealed = sealed_during(page, lambda: page.keyboard.insert_text("한글"))
    assert sealed.count(KEY) == 4, sealed

    # The special keys menu sends its chord; Send clipboard sends the local clipboard's text.
    sealed = sealed_during(page, lambda: (page.locator("#special-keys summary").click(),
                                          page.locator('button[data-special="Ctrl+Alt+Del"]').click()))  # fmt: skip
    assert sealed.count(KEY) == 6, sealed
    page.evaluate("navigator.clipboard.writeText('copied by the engineer')")
    sealed = sealed_during(page, lambda: page.locator("#clipboard-send").click())
    assert CLIPBOARD in sealed, sealed
    wait_for_log(relay, f"agent-{host_id}.log", r"clipboard from the engineer: copied by the engineer")
    # Ctrl+V on the screen: the text reaches the host's clipboard before the V that pastes it.
    page.evaluate("navigator.clipboard.writeText('pasted by the engineer')")
    screen.click(position={"x": 50, "y": 40})
    sealed = [kind for kind in sealed_during(page, lambda: page.keyboard.press("Control+V")) if kind != UPDATE_REQUEST]
    assert sealed == [KEY, CLIPBOARD, KEY, KEY, KEY], sealed
    wait_for_log(relay, f"agent-{host_id}.log", r"clipboard from the engineer: pasted by the engineer")

    page.locator("#view-only").check()
    expect(page.locator("#status")).to_contain_text("View only is on")
    expect(page.locator("#clipboard-send")).to_be_disabled()

    def try_everything():
        use_everything()
        page.keyboard.press("Control+V")
        page.keyboard.press("Tab")

    sealed = sealed_during(page, try_everything)
    assert set(sealed) == {UPDATE_REQUEST}, sealed

    page.locator("#view-only").uncheck()
    sealed = sealed_during(page, lambda: (screen.click(position={"x": 5, "y": 5}), page.keyboard.type("c")))
    assert KEY in sealed and POINTER in sealed, sealed


def stop(agent: subprocess.Popen, kill: bool = False) -> None:
    """Stops an agent: SIGTERM (it says Bye) or SIGKILL (its connection just drops)."""
    agent.kill() if kill else agent.terminate()
    agent.wait(timeout=15)


def test_a_host_that_quits_ends_the_session_with_the_reason_in_words(relay, open_page):
    company = relay.add_company()
    host_id = start_host(relay, company, "Warehouse PC", "synthetic:scrolling-text")
    page = signed_in_page(open_page, relay, company)
    wait_until_online(page, host_id)
    open_viewer(page, relay, f"host={host_id}")
    expect_state(page, "live")
    wait_for_updates(page, 1)

    stop(relay._agents[-1])  # Ctrl-C at the host: its agent says Bye and exits
    # The host may be back in a moment, so the page looks; it is offline, so the page stops.
    expect_state(page, "reconnecting", timeout=10_000)
    expect_state(page, "ended", timeout=20_000)
    reason = page.locator("#end-reason")
    expect(reason).to_contain_text("The other side left the session")
    expect(reason).to_contain_text("The host ended the session (normal): The customer stopped sharing the screen")
    expect(reason).to_contain_text("The host is offline now")
    expect(page.locator("#status")).to_have_text("Session ended.")
    expect(page.locator("#again")).to_have_text("Connect again")
    expect(page.locator("#disconnect")).to_be_disabled()


def test_a_dropped_host_is_reconnected_when_it_comes_back(relay, open_page):
    company = relay.add_company()
    host_id = start_host(relay, company, "Kiosk", "synthetic:scrolling-text")
    page = signed_in_page(open_page, relay, company)
    wait_until_online(page, host_id)
    open_viewer(page, relay, f"host={host_id}")
    expect_state(page, "live")
    wait_for_updates(page, 1)
    before = updates(page)

    stop(relay._agents[-1], kill=True)  # the host's connection drops without a Bye
    expect_state(page, "reconnecting", timeout=10_000)
    expect(page.locator("#status")).to_contain_text("Reconnecting")
    # Its agent restarts a few seconds later; meanwhile the page waits for it.
    expect(page.locator("#progress-text")).to_contain_text("The host is offline; waiting for it to come back", timeout=5_000)
    page.wait_for_timeout(3000)
    expect_state(page, "reconnecting")
    run_host_agent(relay, host_id, "synthetic:scrolling-text")
    expect_state(page, "live", timeout=30_000)
    wait_for_updates(page, before + 2)
    expect(page.locator("#peer")).to_contain_text("Kiosk")

    # The engineer's own Disconnect is final: no reconnect.
    page.locator("#disconnect").click()
    expect_state(page, "ended")
    expect(page.locator("#end-reason")).to_contain_text("You ended the session")
    wait_for_log(relay, f"agent-{host_id}.log", r"the engineer ended the session \(normal\): The engineer closed the viewer")
    page.wait_for_timeout(2500)
    expect_state(page, "ended")


def test_a_changed_host_key_stops_the_session_until_the_engineer_forgets_the_old_one(relay, open_page):
    company = relay.add_company()
    host_id = start_host(relay, company, "Server room PC", "synthetic:scrolling-text")
    page = signed_in_page(open_page, relay, company)
    wait_until_online(page, host_id)
    open_viewer(page, relay, f"host={host_id}")
    expect_state(page, "live")  # first connection: the host's key is pinned
    expect(page.locator("#notice")).to_contain_text("is pinned now")
    wait_for_updates(page, 0)
    old = re.search(r"key (SHA256:\S+) \(", log_text(relay, f"agent-{host_id}.log")).group(1)
    expect(page.locator("#peer")).to_contain_text(old)
    page.locator("#disconnect").click()
    expect_state(page, "ended")
    shown = updates(page)

    # The host gets a new key (enrolled again, or someone in between).
    stop(relay._agents[-1])
    give_host_a_key(relay, host_id)
    run_host_agent(relay, host_id, "synthetic:scrolling-text")
    wait_until_online(page, host_id)
    new = re.findall(r"key (SHA256:\S+) \(", log_text(relay, f"agent-{host_id}.log"))[-1]
    assert new != old
    page.locator("#again").click()
    expect_state(page, "ended")
    pin_error = page.locator("#pin-error")
    expect(pin_error).to_be_visible()
    expect(pin_error).to_contain_text(f"pinned in this browser: {old}")
    expect(pin_error).to_contain_text(f"presented now: {new}")
    expect(page.locator("#end-reason")).to_contain_text("not the one this browser pinned")
    assert updates(page) == shown  # nothing of this session was shown
    wait_for_log(relay, f"agent-{host_id}.log", r"refused the host's key")

    page.locator("#repin").click()
    expect_state(page, "live")
    expect(page.locator("#peer")).to_contain_text(new)
    expect(page.locator("#pin-card")).to_be_hidden()


def test_names_and_clipboard_text_from_the_relay_and_the_host_are_shown_as_text(relay, open_page):
    host_name = '<img src=x onerror="window.__pwned=1">Evil <b>PC</b>\u202egnp.exe'
    company_name = "<script>window.__pwned=2</script>ACME & Co"
    clipboard = '<img src=y onerror="window.__pwned=3">copied\nsecond line'
    company = relay.add_company(company_name)
    host_id = start_host(relay, company, host_name, "synthetic:scrolling-text", "--clipboard", clipboard)
    page = signed_in_page(open_page, relay, company, permissions=["clipboard-read", "clipboard-write"])
    wait_until_online(page, host_id)
    open_viewer(page, relay, f"host={host_id}")
    expect_state(page, "live")
    wait_for_updates(page, 1)

    peer = page.locator("#peer")
    # As text, with the bidi override removed (PROTOCOL.md §5.2.7).
    expect(peer).to_contain_text('<img src=x onerror="window.__pwned=1">Evil <b>PC</b>gnp.exe')
    expect(peer).to_contain_text(company_name)
    assert peer.locator("img, b, script").count() == 0
    assert page.title().startswith('<img src=x onerror="window.__pwned=1">Evil <b>PC</b>gnp.exe')
    expect(page.locator("#clipboard-received")).to_have_text(clipboard)
    assert page.locator("#clipboard-panel img").count() == 0
    assert page.evaluate("navigator.clipboard.readText()") == clipboard
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('img:not(.brand img)').length") == 0


def test_a_company_that_requires_it_has_the_engineer_type_the_customers_security_code(relay, open_page):
    company = relay.add_company()
    relay.cli("company", "policy", company, "--confirm-security-code", "on")
    page = open_page()
    page.add_init_script(WATCH_SEALED)
    sign_in(page, relay, "kim.minji", PASSWORD, company=company)

    open_viewer(page, relay, "code")
    expect_state(page, "waiting-for-customer")
    run_agent(relay, customer_command(page, relay, "--accept", "full", "--source", "synthetic:scrolling-text"), "agent-1.log")
    expect_state(page, "live")
    host_code = wait_for_log(relay, "agent-1.log", r"Security code: (\d{3} \d{3})").group(1)
    form = page.locator("#sas-confirm-form")
    expect(form).to_be_visible()
    expect(page.locator("#status")).to_contain_text("type the security code")
    # The engineer's own code stays out of sight: the point is to hear the customer's.
    expect(page.locator("#sas-chip")).to_be_hidden()
    expect(page.locator("#sas-large")).to_be_hidden()
    expect(page.locator("#sas-instructions")).to_contain_text("Ask the customer to read out")
    # Until the code is confirmed nothing of the engineer's input goes out.
    sealed = sealed_during(page, lambda: (page.locator("#screen").click(position={"x": 5, "y": 5}), page.keyboard.type("x")))
    assert set(sealed) == {UPDATE_REQUEST}, sealed
    page.locator("#sas-confirm").fill("12")
    form.get_by_role("button", name="Confirm").click()
    expect(page.locator("#sas-confirm-error")).to_contain_text("six digits")
    page.locator("#sas-confirm").fill(host_code)
    form.get_by_role("button", name="Confirm").click()
    expect(form).to_be_hidden()
    expect(page.locator("#sas-chip")).to_be_visible()
    expect(page.locator("#sas")).to_have_text(host_code)
    sealed = sealed_during(page, lambda: (page.locator("#screen").click(), page.keyboard.type("x")))
    assert KEY in sealed and POINTER in sealed, sealed
    page.locator("#disconnect").click()
    expect_state(page, "ended")

    # A code that differs means someone is in between: the session ends, for both sides.
    page.locator("#again").click()
    expect_state(page, "waiting-for-customer")
    run_agent(relay, customer_command(page, relay, "--accept", "full", "--source", "synthetic:scrolling-text"), "agent-2.log")
    expect(form).to_be_visible(timeout=LIVE_TIMEOUT)
    host_code = wait_for_log(relay, "agent-2.log", r"Security code: (\d{3} \d{3})").group(1)
    wrong = f"{(int(host_code.replace(' ', '')) + 1) % 1_000_000:06d}"
    page.locator("#sas-confirm").fill(wrong)
    form.get_by_role("button", name="Confirm").click()
    expect_state(page, "ended")
    expect(page.locator("#end-reason")).to_contain_text("someone may be in between")
    wait_for_log(relay, "agent-2.log", r"protocol_error\): The engineer was read a different security code")


# ---- The session module (js/viewer-session.js) against a scripted relay and host ----
#
# The page's WebSocket is replaced by one whose other end is written here: a relay that
# answers Hello, ViewerAuth (a support code, then Paired) and Ping, and a host made of plain
# WebCrypto calls (not secure.js) that completes the end-to-end handshake (PROTOCOL.md §5.3)
# and seals what a test gives it. Screen updates are zlib streams of stored blocks, each
# ending in the sync flush (§7.1). These check what a real relay and host rarely do.

SESSION_PRELUDE = r"""
const wire = await import('/js/wire.js');
const secure = await import('/js/secure.js');
const { ViewerConnection } = await import('/js/viewer-session.js');
const { MessageType: T, encode, decode, frame } = wire;
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) { out.set(part, offset); offset += part.length; }
  return out;
};
const utf8 = (text) => new TextEncoder().encode(text);
const str16 = (bytes) => concat(Uint8Array.of(bytes.length >> 8, bytes.length & 255), bytes);
const u16 = (value) => Uint8Array.of(value >> 8, value & 255);
const u32 = (value) => Uint8Array.of(value >>> 24, (value >> 16) & 255, (value >> 8) & 255, value & 255);
const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
const raw = async (key) => new Uint8Array(await crypto.subtle.exportKey('raw', key));
const sleep = (milliseconds) => new Promise((resolve) => setTimeout(resolve, milliseconds));
async function waitFor(what, predicate, milliseconds = 5000) {
  const end = performance.now() + milliseconds;
  while (!predicate()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
const nonce = (sequence) => { const bytes = new Uint8Array(12); new DataView(bytes.buffer).setBigUint64(4, BigInt(sequence)); return bytes; };
const sealedHeader = (length) => Uint8Array.of(0x49, length >> 16, (length >> 8) & 255, length & 255);

class FakeSocket {
  static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
  constructor(url, protocol) {
    this.url = url; this.protocol = protocol; this.readyState = 0; this.sent = []; this.split = false;
    FakeSocket.current = this;
    setTimeout(() => { this.readyState = 1; this.onopen?.({}); }, 0);
  }
  send(bytes) { this.sent.push(new Uint8Array(bytes)); this.relay?.(new Uint8Array(bytes)); }
  close(code) { this.readyState = 3; this.closedWith = code; }
  // To the viewer: one message, or (split) one message per byte.
  deliver(bytes) {
    if (this.readyState !== 1) return;
    if (!this.split) { this.onmessage?.({ data: bytes.slice().buffer }); return; }
    for (const byte of bytes) this.onmessage?.({ data: Uint8Array.of(byte).buffer });
  }
}
globalThis.WebSocket = FakeSocket;

// The host's side of §5.3, with plain WebCrypto.
class FakeHost {
  sendSequence = 0; receiveSequence = 0;
  async start(sessionID) {
    this.sessionID = sessionID;
    this.identity = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    this.ephemeral = await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
    this.share = concat(Uint8Array.of(1, 1), await raw(this.ephemeral.publicKey), await raw(this.identity.publicKey));
  }
  async keyed(viewerShare) {
    this.th = await sha256(concat(utf8('SupportRelay E2E v1'), this.sessionID, this.commit.slice(1), this.share, viewerShare));
    const peer = await crypto.subtle.importKey('raw', viewerShare.slice(2, 34), 'X25519', false, []);
    const dh = await crypto.subtle.deriveBits({ name: 'X25519', public: peer }, this.ephemeral.privateKey, 256);
    const ikm = await crypto.subtle.importKey('raw', dh, 'HKDF', false, ['deriveBits']);
    const okm = new Uint8Array(await crypto.subtle.deriveBits(
      { name: 'HKDF', hash: 'SHA-256', salt: this.th, info: utf8('SupportRelay E2E v1 keys') }, ikm, 544));
    this.sealing = await crypto.subtle.importKey('raw', okm.slice(0, 32), 'AES-GCM', false, ['encrypt']);
    this.opening = await crypto.subtle.importKey('raw', okm.slice(32, 64), 'AES-GCM', false, ['decrypt']);
    const code = String(new DataView(okm.buffer).getUint32(64) % 1000000).padStart(6, '0');
    this.sas = `${code.slice(0, 3)} ${code.slice(3)}`;
  }
  async sealFrame(type, payload) {
    const plaintext = concat(Uint8Array.of(type), payload);
    const header = sealedHeader(plaintext.length + 16);
    const body = new Uint8Array(await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv: nonce(this.sendSequence++), additionalData: header }, this.sealing, plaintext));
    return concat(header, body);
  }
  async open(body) {
    const plaintext = new Uint8Array(await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: nonce(this.receiveSequence++), additionalData: sealedHeader(body.length) }, this.opening, body));
    return { type: plaintext[0], payload: plaintext.slice(1) };
  }
  async identityRecord(name) {
    const signed = concat(utf8('SupportRelay E2E v1 identity'), Uint8Array.of(1), this.th);
    const signature = new Uint8Array(await crypto.subtle.sign('Ed25519', this.identity.privateKey, signed));
    return this.sealFrame(0x4a, concat(signature, str16(utf8(name)), str16(utf8(''))));
  }
}

// A zlib stream of stored blocks: each body is the next part, then the sync flush (§7.1).
class FakeTiles {
  started = false;
  body(requestID, part) {
    const blocks = [];
    if (!this.started) { blocks.push(Uint8Array.of(0x78, 0x01)); this.started = true; }
    for (let offset = 0; offset < part.length; offset += 65535) {
      const chunk = part.subarray(offset, offset + 65535);
      const length = chunk.length;
      blocks.push(Uint8Array.of(0, length & 255, length >> 8, ~length & 255, (~length >> 8) & 255), chunk);
    }
    blocks.push(Uint8Array.of(0, 0, 0, 0xff, 0xff));
    return concat(u32(requestID), ...blocks);
  }
  // A part of solid rectangles {x, y, width, height, rgb: [r, g, b]} (§7.2, §7.4.2).
  solid(width, height, continues, rects) {
    return concat(u16(width), u16(height), Uint8Array.of(continues ? 1 : 0), u32(rects.length),
      ...rects.map((r) => concat(Uint8Array.of(2), u16(r.x), u16(r.y), u16(r.width), u16(r.height),
        Uint8Array.of(r.rgb[2], r.rgb[1], r.rgb[0]))));
  }
}

// A relay and host that pair the viewer by support code, run the handshake, and wait.
async function startSession({ limit = 1_048_576, hostName = 'Test host', split = false } = {}) {
  const events = [];
  const observer = new Proxy({}, { get: (_, name) => (value) => events.push({ name, value }) });
  const host = new FakeHost();
  const tiles = new FakeTiles();
  const sessionID = crypto.getRandomValues(new Uint8Array(16));
  await host.start(sessionID);
  const fromViewer = [];
  let chain = Promise.resolve();
  const connection = new ViewerConnection({
    url: 'wss://relay.test/ws', target: { kind: 'code' }, identity: await secure.generateIdentity(),
    login: 'kim.minji', company: 'ACME', relayOrigin: 'https://relay.test', observer,
  });
  connection.start();
  const socket = FakeSocket.current;
  socket.split = split;
  const handle = async (bytes) => {
    const type = bytes[0];
    const payload = bytes.slice(4);
    const entry = { type, payload };
    fromViewer.push(entry);
    if (type === T.hello) {
      socket.deliver(frame(T.helloAck, encode.helloAck({ capabilities: 7, maximumPayloadLength: limit, relayNode: 'test' })));
    } else if (type === T.viewerAuth) {
      socket.deliver(concat(frame(T.codeIssued, encode.codeIssued({ code: '042917', validForSeconds: 600 })),
        frame(T.paired, encode.paired({ sessionID, mode: 1, peerCapabilities: 7, peerName: hostName, peerSoftware: 'fake/1' }))));
    } else if (type === T.keyCommit) {
      host.commit = payload;
      socket.deliver(frame(T.keyShare, host.share));
    } else if (type === T.keyShare) {
      await host.keyed(payload);
    } else if (type === T.sealed) {
      entry.inner = await host.open(payload);
      if (entry.inner.type === 0x4a) socket.deliver(await host.identityRecord(hostName));
    }
  };
  socket.relay = (bytes) => { chain = chain.then(() => handle(bytes)); };
  const session = {
    connection, socket, host, tiles, events, fromViewer,
    async deliverSealed(type, payload) { socket.deliver(await host.sealFrame(type, payload)); },
    named: (name) => events.filter((event) => event.name === name).map((event) => event.value),
    inner: (type) => fromViewer.filter((entry) => entry.inner?.type === type).map((entry) => entry.inner.payload),
    byes: () => fromViewer.filter((entry) => entry.type === T.bye).map((entry) => decode.bye(entry.payload)),
    ended: () => session.named('ended')[0],
  };
  await waitFor('the host identity to verify', () => session.named('peerIdentity').length === 1);
  return session;
}

// AccessGranted and ScreenInit: the viewer asks for updates.
async function goLive(session, { inputAllowed = true, width = 64, height = 32 } = {}) {
  await session.deliverSealed(0x46, Uint8Array.of(inputAllowed ? 1 : 0));
  await session.deliverSealed(0x40, encode.screenInit({ width, height, name: ':0' }));
  await waitFor('two update requests', () => session.inner(0x42).length === 2);
}
"""


def run_session(module_page, body: str):
    return module_page.evaluate(f"async (arg) => {{ {SESSION_PRELUDE}\n{body} }}", {})


def test_session_paces_updates_and_paints_an_update_once_its_last_part_is_in(module_page):
    result = run_session(
        module_page,
        r"""
        const session = await startSession();
        const out = { sas: session.named('securityCode')[0] === session.host.sas, paired: session.named('paired')[0].peerName };
        // Nothing is sealed before AccessGranted and ScreenInit: no input, no requests.
        out.pointerBeforeAccess = session.connection.sendPointer(1, 1, 0);
        await goLive(session);
        out.states = session.named('state');
        out.requests = session.inner(0x42).map((payload) => decode.updateRequest(payload));
        // Update 1 in two parts: painted, and answered with one more request, after the last.
        const { tiles } = session;
        await session.deliverSealed(0x41, tiles.body(1, tiles.solid(64, 32, true, [{ x: 0, y: 0, width: 8, height: 8, rgb: [255, 0, 0] }])));
        await sleep(100);
        out.afterFirstPart = { updates: session.named('update').length, requests: session.inner(0x42).length };
        await session.deliverSealed(0x41, tiles.body(1, tiles.solid(64, 32, false, [{ x: 10, y: 12, width: 4, height: 2, rgb: [0, 128, 255] }])));
        await waitFor('the update', () => session.named('update').length === 1);
        await waitFor('the third request', () => session.inner(0x42).length === 3);
        const update = session.named('update')[0];
        out.update = { dirty: update.dirty, requestID: update.requestID, latency: typeof update.latency, bytes: update.bytes > 0 };
        out.third = decode.updateRequest(session.inner(0x42)[2]);
        const pixels = session.named('screen')[0].pixels;
        const at = (x, y) => Array.from(pixels.slice((y * 64 + x) * 4, (y * 64 + x) * 4 + 4));
        out.pixels = [at(0, 0), at(7, 7), at(8, 8), at(10, 12), at(14, 13)];
        // Paused (a hidden page): a completed update asks for no next one until resumed.
        session.connection.setPaused(true);
        await session.deliverSealed(0x41, tiles.body(2, tiles.solid(64, 32, false, [])));
        await waitFor('the second update', () => session.named('update').length === 2);
        await sleep(50);
        out.whilePaused = session.inner(0x42).length;
        session.connection.setPaused(false);
        await waitFor('the request held back', () => session.inner(0x42).length === 4);
        out.resumed = decode.updateRequest(session.inner(0x42)[3]).requestID;
        out.pointerLive = session.connection.sendPointer(3, 4, 1);
        await waitFor('the pointer', () => session.inner(0x43).length === 1);
        out.pointer = decode.pointer(session.inner(0x43)[0]);
        out.ended = session.ended() ?? null;
        return out;
        """,
    )
    assert result["sas"] is True and result["paired"] == "Test host"
    assert result["pointerBeforeAccess"] is False
    assert result["states"] == ["connecting", "waiting-for-customer", "handshake", "waiting-for-access", "live"]
    assert result["requests"] == [
        {"requestID": 1, "flags": 1, "fullRefresh": True},
        {"requestID": 2, "flags": 0, "fullRefresh": False},
    ]
    assert result["afterFirstPart"] == {"updates": 0, "requests": 2}
    assert result["update"] == {"dirty": {"x": 0, "y": 0, "width": 14, "height": 14}, "requestID": 1, "latency": "object", "bytes": True}
    assert result["third"] == {"requestID": 3, "flags": 0, "fullRefresh": False}
    assert result["whilePaused"] == 3 and result["resumed"] == 4
    assert result["pixels"] == [[255, 0, 0, 255], [255, 0, 0, 255], [0, 0, 0, 255], [0, 128, 255, 255], [0, 0, 0, 255]]
    assert result["pointerLive"] is True and result["pointer"] == {"x": 3, "y": 4, "buttons": 1}
    assert result["ended"] is None


def test_session_reassembles_frames_sent_one_byte_at_a_time_and_answers_pings(module_page):
    result = run_session(
        module_page,
        r"""
        const session = await startSession({ split: true });
        session.socket.deliver(frame(T.ping, encode.ping({ nonce: 0x0102030405060708n })));
        await waitFor('the pong', () => session.fromViewer.some((entry) => entry.type === T.pong));
        const pong = decode.pong(session.fromViewer.find((entry) => entry.type === T.pong).payload);
        await goLive(session);
        return { pong: pong.nonce.toString(16), live: session.named('state').at(-1) };
        """,
    )
    assert result == {"pong": "102030405060708", "live": "live"}


@pytest.mark.parametrize(
    "scenario, expected",
    [
        # §2.3: a record the relay completed with zeros, then its Bye: the Bye is the reason.
        ("zeros then bye", {"cause": "bye", "reason": 2, "viewer_byes": []}),
        # Without the relay's Bye the damaged record is the host's error.
        ("zeros alone", {"cause": "failure", "words": "End-to-end check failed", "viewer_byes": [6]}),
        # A message in clear after the host's Identity: someone put it in on the way (§5.3.8).
        ("plaintext", {"cause": "failure", "words": "End-to-end check failed (a plaintext ScreenInit", "viewer_byes": [6]}),
        # Nothing shared before the customer's decision (§5.2.7).
        ("screen before access", {"cause": "failure", "words": "before AccessGranted", "viewer_byes": [6]}),
        ("access twice", {"cause": "failure", "words": "AccessGranted twice", "viewer_byes": [6]}),
        ("bad tiles", {"cause": "failure", "words": "does not decode", "viewer_byes": [6]}),
        # A relay-control message after pairing is the relay's fault: closed without a Bye.
        ("code after pairing", {"cause": "failure", "words": "The relay broke the protocol", "viewer_byes": []}),
        ("relay error", {"cause": "error", "code": 12, "viewer_byes": []}),
    ],
)
def test_session_ends_for_what_the_relay_or_host_must_not_send(module_page, scenario, expected):
    result = run_session(
        module_page,
        r"""
        const session = await startSession();
        const scenario = '%s';
        if (scenario !== 'screen before access') await session.deliverSealed(0x46, Uint8Array.of(1));
        if (scenario === 'zeros then bye') {
          session.socket.deliver(concat(sealedHeader(120), new Uint8Array(120),
            frame(T.bye, encode.bye({ reason: 2, text: 'the host disconnected' }))));
        } else if (scenario === 'zeros alone') {
          session.socket.deliver(concat(sealedHeader(120), new Uint8Array(120)));
        } else if (scenario === 'plaintext' || scenario === 'screen before access') {
          const screen = encode.screenInit({ width: 8, height: 8, name: ':0' });
          if (scenario === 'plaintext') session.socket.deliver(frame(T.screenInit, screen));
          else await session.deliverSealed(0x40, screen);
        } else if (scenario === 'access twice') {
          await session.deliverSealed(0x46, Uint8Array.of(1));
        } else if (scenario === 'bad tiles') {
          await session.deliverSealed(0x40, encode.screenInit({ width: 8, height: 8, name: ':0' }));
          await session.deliverSealed(0x41, session.tiles.body(1, session.tiles.solid(9, 8, false, [])));
        } else if (scenario === 'code after pairing') {
          session.socket.deliver(frame(T.codeIssued, encode.codeIssued({ code: '111111', validForSeconds: 60 })));
        } else {
          session.socket.deliver(frame(T.error, encode.error({ code: 12, message: 'the relay failed' })));
        }
        await waitFor('the end', () => session.ended() !== undefined, 4000);
        await sleep(50);
        const ended = session.ended();
        return {
          cause: ended.cause, reason: ended.reason ?? null, code: ended.code ?? null, message: ended.message ?? '',
          text: ended.text ?? '', viewerByes: session.byes().map((bye) => bye.reason), closed: session.socket.readyState,
          endedCount: session.named('ended').length, inputAllowed: session.connection.inputAllowed,
        };
        """
        % scenario,
    )
    assert result["cause"] == expected["cause"], result
    assert result["viewerByes"] == expected["viewer_byes"], result
    if "reason" in expected:
        assert result["reason"] == expected["reason"] and result["text"] == "the host disconnected"
    if "code" in expected:
        assert result["code"] == expected["code"] and result["text"] == "the relay failed"
    if "words" in expected:
        assert expected["words"] in result["message"], result["message"]
    assert result["closed"] == 3 and result["endedCount"] == 1 and result["inputAllowed"] is False


def test_session_refuses_a_relay_limit_too_small_for_screen_updates(module_page):
    result = run_session(
        module_page,
        r"""
        const events = [];
        const connection = new ViewerConnection({
          url: 'wss://relay.test/ws', target: { kind: 'host', hostID: 'ho-aawvbeke34' },
          identity: await secure.generateIdentity(), relayOrigin: 'https://relay.test',
          observer: { ended: (outcome) => events.push(outcome) },
        });
        connection.start();
        const socket = FakeSocket.current;
        socket.relay = (bytes) => {
          if (bytes[0] === T.hello) {
            socket.deliver(frame(T.helloAck, encode.helloAck({ capabilities: 7, maximumPayloadLength: 65_535, relayNode: 'small' })));
          }
        };
        await waitFor('the end', () => events.length === 1);
        const sent = socket.sent.map((bytes) => bytes[0]);
        return { message: events[0].message, sent, bye: decode.bye(socket.sent.at(-1).slice(4)).reason };
        """,
    )
    assert "too small for screen updates" in result["message"] and "raise its limit" in result["message"]
    assert result["sent"] == [0x01, 0x0A] and result["bye"] == 1


def near(position, expected, pixels: float = 2) -> bool:
    return all(abs(got - want) <= pixels for got, want in zip(position, expected, strict=True))


def pointers_during(page, action) -> list[list[int]]:
    """The Pointer messages ([x, y, buttons]) the page sealed while `action` ran."""
    page.evaluate("window.__sealedPointers.length = 0")
    action()
    page.wait_for_timeout(200)
    return page.evaluate("window.__sealedPointers.slice()")


def test_pointer_positions_are_host_pixels_whether_fit_or_1_to_1_and_scrolled(relay, open_page):
    company = relay.add_company()
    host_id = start_host(relay, company, "Big screen", "synthetic:scrolling-text:1920x1080")
    page = open_page(viewport={"width": 1280, "height": 800})
    page.add_init_script(WATCH_SEALED)
    sign_in(page, relay, "kim.minji", PASSWORD, company=company)
    wait_until_online(page, host_id)
    open_viewer(page, relay, f"host={host_id}")
    expect_state(page, "live")
    screen = page.locator("#screen")

    # Fit: the canvas is drawn smaller than the host's screen; clicks are scaled back.
    box = screen.bounding_box()
    assert box["width"] < 1920
    at = {"x": box["width"] * 0.75, "y": box["height"] * 0.5}
    expected = [int(at["x"] * 1920 / box["width"]), int(at["y"] * 1080 / box["height"])]
    clicks = pointers_during(page, lambda: screen.click(position=at))
    # A CSS pixel covers 1.5 host pixels here, and the browser rounds the click's position.
    assert [clicks[-2][2], clicks[-1][2]] == [1, 0] and near(clicks[-2][:2], expected), clicks
    # Right button: pressed and released as button 3 (0x04); the browser's menu stays away.
    clicks = pointers_during(page, lambda: screen.click(position=at, button="right"))
    assert [pointer[2] for pointer in clicks[-2:]] == [4, 0], clicks
    # The wheel: a press and release of button 5 (down) or 4 (up) per notch.
    page.mouse.move(box["x"] + at["x"], box["y"] + at["y"])
    turns = pointers_during(page, lambda: (page.mouse.wheel(0, 240), page.mouse.wheel(0, -120)))
    assert [pointer[2] for pointer in turns][-6:] == [0x10, 0, 0x10, 0, 0x08, 0], turns
    # Moves are coalesced to one message per animation frame, with the last position.
    # (Chromium itself delivers at most one move per frame; 60 in one task show it.)
    moves = pointers_during(page, lambda: screen.evaluate("""(canvas) => {
      const box = canvas.getBoundingClientRect();
      for (let step = 1; step <= 60; step++) {
        canvas.dispatchEvent(new PointerEvent('pointermove', { clientX: box.left + step * 5, clientY: box.top + step * 3, buttons: 0, bubbles: true }));
      }
    }"""))
    assert len(moves) == 1 and moves[0][2] == 0 and near(moves[0][:2], [300 * 1920 / box["width"], 180 * 1080 / box["height"]]), moves

    # 1:1 and scrolled: one canvas pixel is one host pixel, wherever the view is scrolled to.
    page.locator("#scale-toggle").click()
    page.locator("#screen-area").evaluate("(area) => { area.scrollLeft = 500; area.scrollTop = 300; }")
    assert page.locator("#screen-area").evaluate("(area) => [area.scrollLeft, area.scrollTop]") == [500, 300]
    clicks = pointers_during(page, lambda: screen.click(position={"x": 1234, "y": 777}))
    assert clicks[-2] == [1234, 777, 1], clicks


def test_the_engineer_can_stop_a_reconnect(relay, open_page):
    company = relay.add_company()
    host_id = start_host(relay, company, "Shop PC", "synthetic:scrolling-text")
    page = signed_in_page(open_page, relay, company)
    wait_until_online(page, host_id)
    open_viewer(page, relay, f"host={host_id}")
    expect_state(page, "live")
    stop(relay._agents[-1], kill=True)
    expect_state(page, "reconnecting", timeout=10_000)
    expect(page.locator("#progress-text")).to_contain_text("Reconnecting in")
    page.locator("#disconnect").click()
    expect_state(page, "ended")
    expect(page.locator("#end-reason")).to_have_text("You stopped reconnecting. Nothing is sent to the host.")
    page.wait_for_timeout(3000)  # no attempt is left running
    expect_state(page, "ended")


def test_without_a_session_the_viewer_opens_sign_in_and_without_a_target_it_says_what_to_do(relay, open_page):
    page = open_page()
    page.goto(f"{relay.url}/view#code")
    page.wait_for_url(f"{relay.url}/signin")
    # Its idle HTTPS connections would count against the relay's 10 unauthenticated
    # connections per source, and could keep the next page's WebSocket out.
    page.context.close()
    company = relay.add_company()
    page = signed_in_page(open_page, relay, company)
    page.goto(f"{relay.url}/view")
    expect_state(page, "ended")
    expect(page.locator("#end-reason")).to_contain_text("Open it from the console")
    expect(page.locator("#again")).to_be_hidden()
    # A host id that no host has (a new fragment reloads the page): the relay's answer in
    # words, and no reconnect.
    page.goto(f"{relay.url}/view#host=ho-aawvbeke34")
    expect(page.locator("#end-reason")).to_contain_text("No host with that id is reachable")
    expect_state(page, "ended")
    expect(page.locator("#again")).to_have_text("Connect again")
