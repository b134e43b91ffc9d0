"""An engineer works on a real X11 desktop through the browser viewer (/view), end to end.

One private Xvfb for this module (x11.py) with a plain desktop: a plaid root window, an xterm
that writes what is typed into it to a file, an xlogo and an xev window. One real relay-server,
one enrolled host running `relay-agent host --source x11:DISPLAY` on that desktop, and one
engineer signed in with password and TOTP in Chromium who opens the host in the viewer. Every
check reads the X side with the X server's own tools (xwd, xev, the xterm's file, an ICCCM
selection request through libX11), never through SupportRelay's code:

- the canvas (getImageData) equals the X screen as xwd reads it, byte for byte (RGB);
- clicks, right clicks and wheel steps arrive at xev at the host pixel under the page's
  pointer, through the canvas's scaling;
- typed ASCII and Korean (through the viewer's hidden textarea, as an IME delivers it) arrive
  in the xterm;
- the clipboard: the page's clipboard reaches the host (the Send clipboard button and a paste;
  the host prints it), and `relay-agent host --clipboard TEXT` reaches the page's clipboard;
  the X CLIPBOARD selection both ways: the page's text becomes the X clipboard, and a copy
  made on the X desktop reaches the page;
- the special-keys menu's Ctrl+Alt+Del and Alt+Tab reach X as held modifiers and a key;
- with SCREENSHOTS=1, a screenshot of the viewer at 1280×800 is saved to docs/images/viewer.png.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import os
import re
import time

import pytest
from playwright.sync_api import expect
from relayserver import REPOSITORY, PageProblems, Relay, sign_in, wait_until_online
from x11 import Desktop, Screen, SelectionOwner, Xev, read_selection, start_x11_host

PASSWORD = "a long enough passphrase"
WIDTH, HEIGHT = 1280, 800
VIEWPORT = {"width": 1280, "height": 800}
LIVE_TIMEOUT = 30_000
SCREENSHOT = REPOSITORY / "docs" / "images" / "viewer.png"

# The whole canvas as RGB (base64) with the number of pixels whose alpha is not 255.
CANVAS_RGB = """
() => {
  const canvas = document.getElementById('screen');
  const rgba = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const rgb = new Uint8Array(canvas.width * canvas.height * 3);
  let notOpaque = 0;
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2];
    if (rgba[i + 3] !== 255) notOpaque++;
  }
  let text = '';
  for (let i = 0; i < rgb.length; i += 0x8000) text += String.fromCharCode.apply(null, rgb.subarray(i, i + 0x8000));
  return { width: canvas.width, height: canvas.height, rgb: btoa(text), notOpaque };
}
"""

# Where the canvas's pixels are drawn in the page: its content box, letterboxed if the page
# uses object-fit: contain.
CANVAS_BOX = """
() => {
  const canvas = document.getElementById('screen');
  const box = canvas.getBoundingClientRect();
  const style = getComputedStyle(canvas);
  const number = (name) => parseFloat(style[name]) || 0;
  let left = box.left + number('borderLeftWidth') + number('paddingLeft');
  let top = box.top + number('borderTopWidth') + number('paddingTop');
  let width = box.width - number('borderLeftWidth') - number('paddingLeft') - number('borderRightWidth') - number('paddingRight');
  let height = box.height - number('borderTopWidth') - number('paddingTop') - number('borderBottomWidth') - number('paddingBottom');
  const fit = style.objectFit;
  if (fit === 'contain' || fit === 'scale-down') {
    let scale = Math.min(width / canvas.width, height / canvas.height);
    if (fit === 'scale-down') scale = Math.min(scale, 1);
    left += (width - canvas.width * scale) / 2; top += (height - canvas.height * scale) / 2;
    width = canvas.width * scale; height = canvas.height * scale;
  } else if (fit !== 'fill') {
    return { unsupported: fit };
  }
  return { left, top, width, height, columns: canvas.width, rows: canvas.height, viewportWidth: innerWidth, viewportHeight: innerHeight };
}
"""


# ---- The desktop, the relay and the signed-in viewer (one of each for the module) ----


@dataclasses.dataclass
class Scene:
    desktop: Desktop
    typed: object  # pathlib.Path of the file the xterm writes what is typed to
    xterm: object  # its WindowGeometry
    xev: Xev


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    desktop = Desktop(tmp_path_factory.mktemp("desktop"), WIDTH, HEIGHT).start()
    try:
        desktop.call("xsetroot", "-mod", "16", "16", "-fg", "#4d6584", "-bg", "#2c3a4f")
        typed = desktop.folder / "typed.txt"
        typed.touch()
        banner = "printf 'An xterm on a real X11 desktop: what you type here goes to a file.\\n\\n'; exec cat >> \"$0\""
        xterm = desktop.xterm("typing", "80x16+40+40", banner, str(typed), colours=("#1d2733", "#f4f1e8"))
        desktop.run(["xlogo", "-geometry", "220x220+1000+60", "-fg", "#2c3a4f", "-bg", "#e8eef6"])
        desktop.wait_for_window("xlogo")
        xev = desktop.xev("events", "420x240+780+500")
        yield Scene(desktop, typed, xterm, xev)
    finally:
        desktop.stop()


@dataclasses.dataclass
class Session:
    relay: Relay
    page: object
    host_id: str
    company: str


@pytest.fixture(scope="module")
def session(request, browser, scene, tmp_path_factory):
    failed_before = request.session.testsfailed
    relay = Relay(tmp_path_factory.mktemp("relay")).start()
    context = None
    problems = PageProblems()
    try:
        context = browser.new_context(ignore_https_errors=True, viewport=VIEWPORT)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=relay.url)
        page = context.new_page()
        problems.watch(page)
        engineer = sign_in(page, relay, "kim.minji", PASSWORD)
        host_id = start_x11_host(relay, engineer.company, "Design workstation (Xvfb)", scene.desktop)
        wait_until_online(page, host_id)
        page.goto(f"{relay.url}/view#host={host_id}")
        expect(page.locator("body")).to_have_attribute("data-state", "live", timeout=LIVE_TIMEOUT)
        yield Session(relay, page, host_id, engineer.company)
    finally:
        if context is not None:
            context.close()
        relay.stop()
        if request.session.testsfailed > failed_before:
            text = f"\n===== relay-server log for {request.node.nodeid} =====\n{relay.log()}\n"
            for agent_log in sorted(relay.folder.glob("agent-*.log")):
                text += f"--- {agent_log.name} ---\n{agent_log.read_text(errors='replace')[-6000:]}\n"
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            (reporter.write_line if reporter is not None else print)(text)
    assert not problems.errors, "problems in the viewer page:\n" + "\n".join(problems.errors)


@pytest.fixture
def viewer(session):
    """The live viewer page (each test starts with the session live)."""
    state = session.page.evaluate("document.body.dataset.state")
    if state != "live":
        status, reason = session.page.locator("#status").inner_text(), session.page.locator("#end-reason").inner_text()
        raise AssertionError(f"the viewer is {state!r}, not live: {status!r} {reason!r}")
    return session.page


# ---- Page ↔ host pixels ----


def canvas_screen(page) -> tuple[Screen, int]:
    answer = page.evaluate(CANVAS_RGB)
    return Screen(answer["width"], answer["height"], base64.b64decode(answer["rgb"])), answer["notOpaque"]


@dataclasses.dataclass
class Target:
    """A host pixel and the page point that shows it."""

    x: int
    y: int
    page_x: float
    page_y: float


def page_point(page, x: int, y: int, search: int = 8) -> Target:
    """A whole-numbered page point inside the displayed host pixel (x, y) or a neighbour within
    `search` pixels, away from the pixel's edges (so that a viewer reading fractional or
    whole-numbered mouse coordinates maps it the same way). Returns that pixel and point."""
    box = page.evaluate(CANVAS_BOX)
    assert "unsupported" not in box, f"the canvas uses object-fit {box['unsupported']}, which this test does not map"
    assert (box["columns"], box["rows"]) == (WIDTH, HEIGHT), f"the canvas is {box['columns']}×{box['rows']}, not the host's {WIDTH}×{HEIGHT}"
    scale_x, scale_y = box["width"] / box["columns"], box["height"] / box["rows"]

    def along(pixel: int, start: float, scale: float, limit: float) -> tuple[int, float]:
        for offset in sorted(range(-search, search + 1), key=abs):
            candidate = pixel + offset
            point = round(start + (candidate + 0.5) * scale)
            position = (point - start) / scale
            if math.floor(position) == candidate and 0.2 <= position - candidate <= 0.8 and 0 <= point < limit:
                return candidate, float(point)
        raise AssertionError(f"no page point shows host pixel {pixel}±{search} away from its edges (scale {scale})")

    host_x, point_x = along(x, box["left"], scale_x, box["viewportWidth"])
    host_y, point_y = along(y, box["top"], scale_y, box["viewportHeight"])
    return Target(host_x, host_y, point_x, point_y)


# What the page shows at a point: the canvas, or the element over it.
ELEMENT_AT = """
([x, y]) => {
  const element = document.elementFromPoint(x, y);
  if (!element) return 'nothing';
  if (element.id === 'screen') return 'screen';
  return `${element.tagName.toLowerCase()}${element.id ? '#' + element.id : ''}: ${(element.textContent || '').trim().slice(0, 120)}`;
}
"""


def click_host(page, x: int, y: int, button: str = "left", timeout: float = 15) -> Target:
    """Clicks the page point that shows host pixel (x, y) (or a neighbour, see page_point), once
    nothing covers the canvas there (the viewer's notices do for a few seconds)."""
    target = page_point(page, x, y)
    deadline = time.monotonic() + timeout
    while (element := page.evaluate(ELEMENT_AT, [target.page_x, target.page_y])) != "screen":
        if time.monotonic() > deadline:
            raise AssertionError(f"host pixel ({target.x}, {target.y}) is covered by {element} for more than {timeout} s")
        time.sleep(0.1)
    page.mouse.click(target.page_x, target.page_y, button=button)
    return target


def wait_for_file(path, expected: str, timeout: float = 15, explain=None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        content = path.read_text(encoding="utf-8", errors="backslashreplace")
        if content == expected:
            return
        if time.monotonic() > deadline:
            message = f"the xterm wrote {content!r}, not {expected!r}, within {timeout} s"
            raise AssertionError(message + ("\n" + explain() if explain else ""))
        time.sleep(0.05)


def wait_for_log(relay, log_name: str, pattern: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        path = relay.folder / log_name
        text = path.read_text(errors="replace") if path.exists() else ""
        if re.search(pattern, text, re.M):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{log_name} did not print /{pattern}/ within {timeout} s:\n{text[-3000:]}")
        time.sleep(0.05)


def wait_for_selection(display: str, expected: str, selection: str = "CLIPBOARD", timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        content = read_selection(display, selection)
        if content.owner and content.type != "None" and content.text == expected:
            return
        if time.monotonic() > deadline:
            primary = read_selection(display, "PRIMARY") if selection != "PRIMARY" else None
            raise AssertionError(
                f"the X {selection} selection holds {content.text!r} (owner {content.owner:#x}, type {content.type}), not {expected!r}, "
                f"after {timeout} s" + (f"; PRIMARY holds {primary.text!r} (owner {primary.owner:#x})" if primary else "")
            )
        time.sleep(0.1)


# ---- The tests ----


def test_the_canvas_equals_the_x_screen_as_xwd_reads_it(viewer, scene):
    page = viewer
    deadline = time.monotonic() + 20
    while True:
        expected = scene.desktop.capture()
        actual, not_opaque = canvas_screen(page)
        assert (actual.width, actual.height) == (WIDTH, HEIGHT), f"the canvas is {actual.width}×{actual.height}, the X screen {WIDTH}×{HEIGHT}"
        assert not_opaque == 0, f"{not_opaque} canvas pixels are not opaque"
        if actual.rgb == expected.rgb:
            break
        if time.monotonic() > deadline:
            count, examples = actual.differences(expected)
            box = actual.bounding_box_of_differences(expected)
            raise AssertionError(
                f"20 s after going live the canvas still differs from the X screen in {count} of {WIDTH * HEIGHT} pixels, "
                f"within {box} (left, top, right, bottom); first ones (canvas vs xwd): {examples}; "
                f"updates applied: {page.evaluate('document.body.dataset.updates')}"
            )
        time.sleep(0.25)
    # The scene is what the test drew: the plaid root, the xterm's light background.
    assert expected.pixel(2, 2) in {(0x4D, 0x65, 0x84), (0x2C, 0x3A, 0x4F)}, expected.pixel(2, 2)
    assert expected.pixel(scene.xterm.x + 30, scene.xterm.y + scene.xterm.height - 10) == (0xF4, 0xF1, 0xE8)


def test_clicks_and_wheel_steps_arrive_at_the_host_pixel_under_the_pointer(viewer, scene):
    page, xev = viewer, scene.xev
    window = xev.geometry
    inner_x, inner_y = window.x + window.border, window.y + window.border
    for wanted, button, number in (((window.x + 301, window.y + 187), "left", 1), ((window.x + 233, window.y + 119), "right", 3)):
        mark = xev.mark()
        target = click_host(page, *wanted, button=button)
        events = xev.wait_for(
            lambda events, number=number: any(e.kind == "ButtonRelease" and e.fields.get("button") == number for e in events),
            mark,
            what=f"a ButtonRelease of button {number}",
        )
        presses = [event for event in events if event.kind == "ButtonPress"]
        assert [event.fields["button"] for event in presses] == [number], [event.text for event in events]
        press = presses[0].fields
        assert (press["root_x"], press["root_y"]) == (target.x, target.y), (
            f"the page clicked at ({target.page_x}, {target.page_y}), which shows host pixel ({target.x}, {target.y}); X got the press at "
            f"root ({press['root_x']}, {press['root_y']})"
        )
        assert (press["x"], press["y"]) == (target.x - inner_x, target.y - inner_y)
        assert not presses[0].fields["synthetic"]

    # A wheel step down is button 5 pressed and released; up is button 4.
    for delta, number in ((120, 5), (-120, 4)):
        mark = xev.mark()
        page.mouse.wheel(0, delta)
        events = xev.wait_for(
            lambda events, number=number: any(e.kind == "ButtonRelease" and e.fields.get("button") == number for e in events),
            mark,
            what=f"wheel button {number}",
        )
        assert [event.fields["button"] for event in events if event.kind == "ButtonPress"] == [number]


def test_typed_ascii_and_korean_arrive_in_the_xterm(viewer, scene):
    page, desktop = viewer, scene.desktop
    terminal = scene.xterm
    before = scene.typed.read_text(encoding="utf-8")
    # A click in the xterm moves the X pointer there (no window manager: keys go to the window
    # under the pointer) and gives the viewer the page's keyboard focus.
    target = click_host(page, terminal.x + terminal.width // 2, terminal.y + terminal.height - 20)
    if desktop.pointer() != (-1, -1):
        deadline = time.monotonic() + 5
        while desktop.pointer() != (target.x, target.y) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert desktop.pointer() == (target.x, target.y)
    assert page.evaluate("document.activeElement && document.activeElement.id") == "keyboard-input"

    page.keyboard.type("hello, relay 123")
    page.keyboard.press("Enter")
    wait_for_file(scene.typed, before + "hello, relay 123\n")

    # Korean comes as text (an IME's composition, or Playwright's insert_text): only `input`
    # events on the focused textarea, no keydown.
    page.keyboard.insert_text("안녕하세요")
    page.keyboard.press("Enter")
    wait_for_file(scene.typed, before + "hello, relay 123\n안녕하세요\n", explain=lambda: korean_at_xev(page, scene))


def korean_at_xev(page, scene) -> str:
    """What X receives when the viewer sends Korean to an xev window (for the failure message)."""
    xev = scene.xev
    mark = xev.mark()
    click_host(page, xev.geometry.x + 200, xev.geometry.y + 200)
    page.keyboard.insert_text("안녕")
    time.sleep(2)
    lines = [
        f"  {event.kind} keycode {event.fields.get('keycode')} keysym {event.fields.get('keysym_value')} ({event.fields.get('keysym')})"
        for event in xev.events_since(mark, "KeyPress", "KeyRelease")
    ]
    return "xev received for '안녕' (expected keysyms 0x100c548, 0x100b155):\n" + ("\n".join(lines) or "  nothing")


def test_the_pages_clipboard_reaches_the_host_by_button_and_by_paste(viewer, session, scene):
    page = viewer
    log_name = f"agent-{session.host_id}.log"
    # Keys the page sends with a paste (Ctrl+V) go to the xev window, not the xterm.
    click_host(page, scene.xev.geometry.x + 150, scene.xev.geometry.y + 150)
    sent = "복사 from the viewer: 한국어 and ASCII 123"
    page.evaluate("(text) => navigator.clipboard.writeText(text)", sent)
    page.locator("#clipboard-send").click()
    wait_for_log(session.relay, log_name, f"clipboard from the engineer: {re.escape(sent)}$")

    pasted = "pasted into the viewer 붙여넣기"
    page.evaluate("(text) => navigator.clipboard.writeText(text)", pasted)
    click_host(page, scene.xev.geometry.x + 150, scene.xev.geometry.y + 150)
    page.keyboard.press("Control+V")
    wait_for_log(session.relay, log_name, f"clipboard from the engineer: {re.escape(pasted)}$")


def test_the_pages_clipboard_lands_in_the_x_clipboard(viewer, scene):
    page, desktop = viewer, scene.desktop
    click_host(page, scene.xev.geometry.x + 150, scene.xev.geometry.y + 150)
    sent = "for the X clipboard: 클립보드 456"
    page.evaluate("(text) => navigator.clipboard.writeText(text)", sent)
    page.locator("#clipboard-send").click()
    wait_for_selection(desktop.display, sent, timeout=8)


def test_a_copy_on_the_x_desktop_reaches_the_pages_clipboard(viewer, scene):
    page, desktop = viewer, scene.desktop
    copied = "copied on the host 호스트에서 복사"
    owner = SelectionOwner(desktop.display, "CLIPBOARD", copied, desktop.folder / "clipboard-owner.log")
    try:
        expect(page.locator("#clipboard-received")).to_have_text(copied, timeout=8_000)
        deadline = time.monotonic() + 5
        while page.evaluate("navigator.clipboard.readText()") != copied and time.monotonic() < deadline:
            time.sleep(0.1)
        assert page.evaluate("navigator.clipboard.readText()") == copied
        assert owner.requests(), "the host never asked the X clipboard's owner for its text"
    finally:
        owner.stop()


def test_a_hosts_clipboard_text_reaches_the_page(session, scene):
    """`relay-agent host --clipboard TEXT` (a second host on the same desktop): the text is
    shown in the viewer and put on the page's clipboard."""
    relay = session.relay
    text = "from the host: 서버 주소 10.0.0.7"
    host_id = start_x11_host(relay, session.company, "Second workstation", scene.desktop, "--clipboard", text)
    page = session.page.context.new_page()
    try:
        page.goto(f"{relay.url}/")  # the context's session cookie: signed in
        wait_until_online(page, host_id)
        page.goto(f"{relay.url}/view#host={host_id}")
        expect(page.locator("body")).to_have_attribute("data-state", "live", timeout=LIVE_TIMEOUT)
        expect(page.locator("#clipboard-received")).to_have_text(text, timeout=10_000)
        deadline = time.monotonic() + 5
        while page.evaluate("navigator.clipboard.readText()") != text and time.monotonic() < deadline:
            time.sleep(0.1)
        assert page.evaluate("navigator.clipboard.readText()") == text
    finally:
        page.close()


@pytest.mark.parametrize(
    "name, modifiers, key",
    [
        ("Ctrl+Alt+Del", ({"Control_L", "Control_R"}, {"Alt_L", "Alt_R", "Meta_L", "Meta_R"}), "Delete"),
        ("Alt+Tab", ({"Alt_L", "Alt_R", "Meta_L", "Meta_R"},), "Tab"),
    ],
)
def test_the_special_keys_menu_presses_the_combination_at_the_x_server(viewer, scene, name, modifiers, key):
    page, xev = viewer, scene.xev
    # The X pointer over the xev window: X sends it the keys.
    click_host(page, xev.geometry.x + 120, xev.geometry.y + 60)
    mark = xev.mark()
    menu = page.locator("details#special-keys")
    if menu.get_attribute("open") is None:
        menu.locator("summary").click()
    page.locator(f'#special-keys button[data-special="{name}"]').click()
    events = xev.wait_for(
        lambda events: any(e.kind == "KeyRelease" and e.keysym == key for e in events)
        and not held_after(events),
        mark,
        what=f"{name} pressed and every key released",
    )
    keys = [(event.kind, event.keysym) for event in events if event.kind in ("KeyPress", "KeyRelease")]
    presses = [keysym for kind, keysym in keys if kind == "KeyPress"]
    assert len(presses) == len(modifiers) + 1, keys
    for group, keysym in zip(modifiers, presses):
        assert keysym in group, f"{name}: pressed {presses}"
    assert presses[-1] == key, f"{name}: pressed {presses}"
    press = next(event for event in events if event.kind == "KeyPress" and event.keysym == key)
    control, mod1 = 0x04, 0x08
    expected_state = (control if any("Control_L" in group for group in modifiers) else 0) | mod1
    assert press.fields["state"] & (control | mod1) == expected_state, (
        f"{key} arrived with modifier state {press.fields['state']:#x}, not with {expected_state:#x} held"
    )


def held_after(events) -> set:
    held = set()
    for event in events:
        if event.kind == "KeyPress":
            held.add(event.keysym)
        elif event.kind == "KeyRelease":
            held.discard(event.keysym)
    return held


@pytest.mark.skipif(os.environ.get("SCREENSHOTS") != "1", reason="SCREENSHOTS=1 saves docs/images/viewer.png")
def test_a_screenshot_of_the_viewer_on_the_live_desktop(viewer, scene):
    page, desktop = viewer, scene.desktop
    menu = page.locator("details#special-keys")
    if menu.get_attribute("open") is not None:
        menu.locator("summary").click()
    expect(page.locator("#notice")).to_be_hidden(timeout=15_000)
    # The desktop of someone at work: a terminal with real output (in a scalable font when
    # there is one) instead of the xev window, and a line being typed in the other terminal.
    desktop.call("xdotool", "windowunmap", "--sync", str(scene.xev.geometry.id))
    face = ("DejaVu Sans Mono", 10) if desktop.has_font_face("DejaVu Sans Mono") else None
    commands = (
        "for c in 'uname -srm' 'df -h /' 'ls /etc/X11'; do printf '$ %s\\n' \"$c\"; sh -c \"$c\"; echo; done; "
        "printf '$ '; exec sleep 2147483647"
    )
    desktop.xterm("support", "86x22+40+300", commands, face=face, colours=("#e8eef6", "#1d2733"))
    terminal = scene.xterm
    click_host(page, terminal.x + terminal.width // 2, terminal.y + terminal.height - 20)
    before = scene.typed.read_text(encoding="utf-8")
    line = "The printer queue is running again; closing the ticket."
    page.keyboard.type(line, delay=40)
    page.keyboard.press("Enter")
    wait_for_file(scene.typed, before + line + "\n")
    page.mouse.move(2, 2)
    deadline = time.monotonic() + 20
    while canvas_screen(page)[0].rgb != desktop.capture().rgb:
        assert time.monotonic() < deadline, "the canvas did not settle to the X screen within 20 s"
        time.sleep(0.1)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    data = SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (VIEWPORT["width"], VIEWPORT["height"])
