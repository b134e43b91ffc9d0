"""Browser keys to X11 keysyms (js/keysyms.js, PROTOCOL.md §5.2.5) with real key presses in Chromium.

Playwright's keyboard presses keys on a focused textarea; keys Playwright's layout lacks
(F13–F24, é, 안) go through the DevTools protocol's Input.dispatchKeyEvent, the same path.
Expected values are X11's own (keysymdef.h) where the machine has it, and the PROTOCOL.md
examples.
"""

import pathlib
import re

import pytest

from conftest import REPOSITORY

# From X11 keysymdef.h (the names PROTOCOL.md §5.2.5 and the host use).
XK = {
    "BackSpace": 0xFF08, "Tab": 0xFF09, "Return": 0xFF0D, "Pause": 0xFF13, "Scroll_Lock": 0xFF14,
    "Escape": 0xFF1B, "Home": 0xFF50, "Left": 0xFF51, "Up": 0xFF52, "Right": 0xFF53, "Down": 0xFF54,
    "Page_Up": 0xFF55, "Page_Down": 0xFF56, "End": 0xFF57, "Print": 0xFF61, "Insert": 0xFF63, "Menu": 0xFF67,
    "Num_Lock": 0xFF7F, "KP_Enter": 0xFF8D, "KP_Left": 0xFF96, "KP_Begin": 0xFF9D, "KP_End": 0xFF9C,
    "KP_Insert": 0xFF9E, "KP_Delete": 0xFF9F, "KP_Multiply": 0xFFAA, "KP_Add": 0xFFAB, "KP_Subtract": 0xFFAD,
    "KP_Decimal": 0xFFAE, "KP_Divide": 0xFFAF, "KP_0": 0xFFB0, "KP_1": 0xFFB1, "KP_5": 0xFFB5, "KP_9": 0xFFB9,
    "F1": 0xFFBE, "F4": 0xFFC1, "F12": 0xFFC9, "F13": 0xFFCA, "F24": 0xFFD5,
    "Shift_L": 0xFFE1, "Shift_R": 0xFFE2, "Control_L": 0xFFE3, "Control_R": 0xFFE4, "Caps_Lock": 0xFFE5,
    "Alt_L": 0xFFE9, "Alt_R": 0xFFEA, "Super_L": 0xFFEB, "Super_R": 0xFFEC,
    "ISO_Level3_Shift": 0xFE03, "Delete": 0xFFFF,
}

# Playwright key → the keysyms of its keydown events, in order (modifiers first).
PRESSES = [
    ("ShiftLeft", ["Shift_L"]),
    ("ShiftRight", ["Shift_R"]),
    ("ControlLeft", ["Control_L"]),
    ("ControlRight", ["Control_R"]),
    ("AltLeft", ["Alt_L"]),
    ("AltRight", ["Alt_R"]),
    ("MetaLeft", ["Super_L"]),
    ("MetaRight", ["Super_R"]),
    ("AltGraph", ["ISO_Level3_Shift"]),
    # Chromium's keypad as Playwright drives it: NumLock off, so the unshifted keys are the
    # navigation keys and Shift gives the digits.
    ("Numpad1", ["KP_End"]),
    ("Numpad0", ["KP_Insert"]),
    ("Numpad5", ["KP_Begin"]),
    ("Numpad4", ["KP_Left"]),
    ("NumpadDecimal", ["KP_Delete"]),
    ("Shift+Numpad1", ["Shift_L", "KP_1"]),
    ("Shift+Numpad5", ["Shift_L", "KP_5"]),
    ("Shift+Numpad9", ["Shift_L", "KP_9"]),
    ("Shift+Numpad0", ["Shift_L", "KP_0"]),
    ("Shift+NumpadDecimal", ["Shift_L", "KP_Decimal"]),
    ("NumpadMultiply", ["KP_Multiply"]),
    ("NumpadAdd", ["KP_Add"]),
    ("NumpadSubtract", ["KP_Subtract"]),
    ("NumpadDivide", ["KP_Divide"]),
    ("NumpadEnter", ["KP_Enter"]),
    ("NumLock", ["Num_Lock"]),
    ("F1", ["F1"]),
    ("F12", ["F12"]),
    ("Alt+F4", ["Alt_L", "F4"]),
    ("ArrowLeft", ["Left"]),
    ("ArrowUp", ["Up"]),
    ("ArrowRight", ["Right"]),
    ("ArrowDown", ["Down"]),
    ("Escape", ["Escape"]),
    ("Tab", ["Tab"]),
    ("Shift+Tab", ["Shift_L", "Tab"]),
    ("Enter", ["Return"]),
    ("Backspace", ["BackSpace"]),
    ("Delete", ["Delete"]),
    ("Insert", ["Insert"]),
    ("Home", ["Home"]),
    ("End", ["End"]),
    ("PageUp", ["Page_Up"]),
    ("PageDown", ["Page_Down"]),
    ("CapsLock", ["Caps_Lock"]),
    ("ScrollLock", ["Scroll_Lock"]),
    ("PrintScreen", ["Print"]),
    ("Pause", ["Pause"]),
    ("ContextMenu", ["Menu"]),
    ("a", [0x61]),
    ("A", [0x41]),
    ("Shift+KeyA", ["Shift_L", 0x41]),
    ("Control+KeyA", ["Control_L", 0x61]),
    ("Space", [0x20]),
    ("Digit1", [0x31]),
    ("Shift+Digit1", ["Shift_L", 0x21]),
]

# Keys outside Playwright's US layout, as a keyboard would send them (DevTools protocol).
DISPATCHED = [
    ({"key": "F13", "code": "F13", "windowsVirtualKeyCode": 124}, "F13"),
    ({"key": "F24", "code": "F24", "windowsVirtualKeyCode": 135}, "F24"),
    # é on a French keyboard's 2 key.
    ({"key": "é", "code": "Digit2", "text": "é", "windowsVirtualKeyCode": 50}, 0xE9),
    # A precomposed Hangul syllable: U+C548.
    ({"key": "안", "code": "KeyD", "text": "안", "windowsVirtualKeyCode": 229}, 0x0100C548),
    # An astral character: U+1F600.
    ({"key": "😀", "code": "KeyQ", "text": "😀", "windowsVirtualKeyCode": 81}, 0x0101F600),
]

RECORDER = r"""
async () => {
  const keys = await import('/js/keysyms.js');
  const area = document.createElement('textarea');
  document.body.append(area);
  area.focus();
  window.recorded = [];
  for (const type of ['keydown', 'keyup']) {
    area.addEventListener(type, (event) => {
      // As the viewer does: keep Tab, F-keys and the rest in the page.
      event.preventDefault();
      recorded.push({ type, key: event.key, code: event.code, location: event.location,
                      keysym: keys.keysymForEvent(event) });
    });
  }
}
"""


def x11_keysyms(header, prefix="XK_"):
    """Name → value of every `#define XK_name 0x…` (or another prefix) in an X11 keysym header."""
    pattern = r"#define " + prefix + r"(\w+)\s+0x([0-9a-fA-F]+)"
    return {name: int(value, 16) for name, value in re.findall(pattern, header.read_text())}


def keysym(value):
    return XK[value] if isinstance(value, str) else value


@pytest.fixture
def key_page(module_page):
    module_page.evaluate(RECORDER)
    return module_page


def recorded(page):
    events = page.evaluate("recorded.splice(0)")
    return [event for event in events if event["type"] == "keydown"], events


def test_the_keysym_names_here_are_x11s():
    """Every keysym name this file expects has X11's value, where keysymdef.h is installed."""
    header = pathlib.Path("/usr/include/X11/keysymdef.h")
    if not header.exists():
        pytest.skip("no /usr/include/X11/keysymdef.h on this machine (x11proto-dev)")
    defined = x11_keysyms(header)
    assert {name: defined.get(name) for name in XK} == XK


def test_the_modules_named_keysyms_are_x11s(module_page):
    """The module's Keysym table against keysymdef.h, and its media keys against XF86keysym.h."""
    header = pathlib.Path("/usr/include/X11/keysymdef.h")
    media = pathlib.Path("/usr/include/X11/XF86keysym.h")
    if not header.exists() or not media.exists():
        pytest.skip("no /usr/include/X11/keysymdef.h and XF86keysym.h on this machine (x11proto-dev)")
    defined = x11_keysyms(header)
    table = module_page.evaluate("async () => ({ ...(await import('/js/keysyms.js')).Keysym })")
    assert table and {name: defined.get(name) for name in table} == table
    keys = {"AudioVolumeMute": "AudioMute", "AudioVolumeDown": "AudioLowerVolume", "AudioVolumeUp": "AudioRaiseVolume",
            "MediaPlayPause": "AudioPlay", "MediaStop": "AudioStop", "MediaTrackPrevious": "AudioPrev",
            "MediaTrackNext": "AudioNext"}
    result = module_page.evaluate(
        "async (keys) => { const { keysymForEvent } = await import('/js/keysyms.js');"
        " return keys.map((key) => keysymForEvent({ key, code: '', location: 0 })); }",
        list(keys),
    )
    xf86 = x11_keysyms(media, "XF86XK_")
    assert result == [xf86[name] for name in keys.values()]


@pytest.mark.parametrize("press, expected", PRESSES, ids=[press for press, _ in PRESSES])
def test_a_key_press_gives_its_keysym(key_page, press, expected):
    key_page.keyboard.press(press)
    downs, events = recorded(key_page)
    assert [event["keysym"] for event in downs] == [keysym(value) for value in expected], events
    # Every keyup maps to the same keysym as its keydown when the modifiers are as they were.
    ups = [event for event in events if event["type"] == "keyup"]
    assert [event["keysym"] for event in reversed(ups)] == [event["keysym"] for event in downs], events


@pytest.mark.parametrize("event, expected", DISPATCHED, ids=[event["key"] for event, _ in DISPATCHED])
def test_keys_outside_playwrights_layout_give_their_keysym(key_page, event, expected):
    session = key_page.context.new_cdp_session(key_page)
    session.send("Input.dispatchKeyEvent", {"type": "keyDown", **event})
    session.send("Input.dispatchKeyEvent", {"type": "keyUp", **{k: v for k, v in event.items() if k != "text"}})
    downs, events = recorded(key_page)
    assert [(down["key"], down["keysym"]) for down in downs] == [(event["key"], keysym(expected))], events


def test_left_and_right_modifiers_without_a_code_follow_the_location(module_page):
    result = module_page.evaluate(
        """async () => {
          const { keysymForEvent } = await import('/js/keysyms.js');
          return ['Shift', 'Control', 'Alt', 'Meta'].flatMap((key) =>
            [1, 2].map((location) => keysymForEvent({ key, code: '', location })));
        }"""
    )
    assert result == [XK[name] for name in (
        "Shift_L", "Shift_R", "Control_L", "Control_R", "Alt_L", "Alt_R", "Super_L", "Super_R")]


def test_keys_without_a_keysym_give_none(module_page):
    result = module_page.evaluate(
        """async () => {
          const { keysymForEvent } = await import('/js/keysyms.js');
          return [{ key: 'Dead', code: 'Quote' }, { key: 'Process', code: 'KeyA' }, { key: 'Unidentified', code: '' },
                  { key: '\\u0001', code: 'KeyA' }, { key: 'F25', code: 'F25' }, {}, null]
            .map((event) => keysymForEvent(event));
        }"""
    )
    assert result == [None] * 7


def test_korean_keyboards_hangul_and_hanja_keys(module_page):
    result = module_page.evaluate(
        """async () => {
          const { keysymForEvent } = await import('/js/keysyms.js');
          return [{ key: 'HangulMode', code: 'Lang1' }, { key: 'HanjaMode', code: 'Lang2' },
                  { key: 'Unidentified', code: 'Lang1' }, { key: 'Unidentified', code: 'Lang2' }]
            .map((event) => keysymForEvent(event));
        }"""
    )
    # XK_Hangul and XK_Hangul_Hanja.
    assert result == [0xFF31, 0xFF34, 0xFF31, 0xFF34]


def test_held_keys_release_what_they_pressed(key_page):
    """Shift let go before keypad 1: its keyup says 'End', the release still sends KP_1."""
    key_page.evaluate(
        """async () => {
          const { HeldKeys } = await import('/js/keysyms.js');
          const held = new HeldKeys();
          window.sent = [];
          const area = document.querySelector('textarea');
          area.addEventListener('keydown', (event) => sent.push(['down', held.press(event)]));
          area.addEventListener('keyup', (event) => sent.push(['up', held.release(event)]));
          window.releaseAll = () => held.releaseAll();
        }"""
    )
    keyboard = key_page.keyboard
    keyboard.down("Shift")
    keyboard.down("Numpad1")
    keyboard.up("Shift")
    keyboard.up("Numpad1")
    # A held key repeats what it pressed, though Shift was let go in between ('A', then 'a').
    keyboard.down("ControlLeft")
    keyboard.down("Shift")
    keyboard.down("KeyA")
    keyboard.up("Shift")
    keyboard.down("KeyA")
    assert key_page.evaluate("sent") == [
        ["down", XK["Shift_L"]], ["down", XK["KP_1"]], ["up", XK["Shift_L"]], ["up", XK["KP_1"]],
        ["down", XK["Control_L"]], ["down", XK["Shift_L"]], ["down", 0x41], ["up", XK["Shift_L"]], ["down", 0x41],
    ]
    # The page lost focus with Control and A held: both are released, last pressed first.
    assert key_page.evaluate("releaseAll()") == [0x41, XK["Control_L"]]
    assert key_page.evaluate("releaseAll()") == []


def test_text_from_the_ime_textarea_gives_unicode_keysyms(key_page):
    result = key_page.evaluate(
        """async () => {
          const { keysymsForText } = await import('/js/keysyms.js');
          return keysymsForText('안녕, héllo\\n');
        }"""
    )
    # 안 U+C548, 녕 U+B155: Unicode keysyms; Latin-1 as itself; newline is Return.
    assert result == [0x0100C548, 0x0100B155, 0x2C, 0x20, 0x68, 0xE9, 0x6C, 0x6C, 0x6F, XK["Return"]]

    # Text typed into the textarea (Playwright inserts non-US characters as input, no keydown).
    key_page.evaluate("document.querySelector('textarea').value = ''")
    key_page.keyboard.insert_text("안녕, héllo")
    typed = key_page.evaluate(
        """async () => (await import('/js/keysyms.js')).keysymsForText(document.querySelector('textarea').value)"""
    )
    assert typed == result[:-1]


def test_text_keysyms_agree_with_the_swift_keysym_table(module_page):
    """Sources/RelayWire/Keysym.swift's control keys and ranges, read from the file."""
    swift = (REPOSITORY / "Sources" / "RelayWire" / "Keysym.swift").read_text(encoding="utf-8")
    constants = {name: int(value, 16) for name, value in re.findall(r"static let (\w+): UInt32 = 0x([0-9A-Fa-f_]+)",
                                                                     swift.replace("_", ""))}
    assert constants == {"returnKey": 0xFF0D, "tab": 0xFF09, "backspace": 0xFF08, "escape": 0xFF1B}
    result = module_page.evaluate(
        """async () => {
          const { keysymsForText, keysymForCodePoint } = await import('/js/keysyms.js');
          return {
            controls: keysymsForText('a\\r\\nb\\rc\\td\\be\\u001bf\\u0000\\u0007\\u007f\\u0085g'),
            edges: [0x1f, 0x20, 0x7e, 0x7f, 0x9f, 0xa0, 0xff, 0x100, 0xd7ff, 0xd800, 0xe000, 0x10ffff, 0x110000]
              .map(keysymForCodePoint),
          };
        }"""
    )
    # \\r\\n is one Return; controls without a key are left out.
    assert result["controls"] == [
        0x61, constants["returnKey"], 0x62, constants["returnKey"], 0x63, constants["tab"], 0x64,
        constants["backspace"], 0x65, constants["escape"], 0x66, 0x67,
    ]
    assert result["edges"] == [
        None, 0x20, 0x7E, None, None, 0xA0, 0xFF, 0x01000100, 0x0100D7FF, None, 0x0100E000, 0x0110FFFF, None,
    ]


def test_special_keys_press_and_release_every_key(module_page):
    result = module_page.evaluate(
        """async () => {
          const { specialKeys } = await import('/js/keysyms.js');
          // Frozen: a page script cannot change what the menu sends.
          try { specialKeys['Alt+Tab'][0].keysym = 0; } catch {}
          try { specialKeys.extra = []; } catch {}
          return { keys: JSON.parse(JSON.stringify(specialKeys)), frozen: Object.isFrozen(specialKeys['Alt+Tab'][0]) };
        }"""
    )
    assert result["frozen"] is True

    def steps(*names):
        codes = [keysym(name) for name in names]
        return [{"keysym": code, "down": True} for code in codes] + [
            {"keysym": code, "down": False} for code in reversed(codes)]

    assert result["keys"] == {
        "Ctrl+Alt+Del": steps("Control_L", "Alt_L", "Delete"),
        "Alt+Tab": steps("Alt_L", "Tab"),
        "Super (Windows key)": steps("Super_L"),
        "Ctrl+Esc": steps("Control_L", "Escape"),
        "Alt+F4": steps("Alt_L", "F4"),
        "PrintScreen": steps("Print"),
    }
