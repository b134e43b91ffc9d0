"""An X11 desktop for browser tests, observed with the X server's own tools, not ours.

- `Desktop`: a private Xvfb (it picks a free display number: `-displayfd`) with the X
  programs a test runs on it (xterm, xev, xlogo, xsetroot), stopped together.
- `Desktop.capture()`: the whole screen as `xwd -root` writes it, parsed here into RGB bytes
  (`parse_xwd`), so pixel checks do not trust the relay-agent's own X capture.
- `Desktop.xev(...)`: an xev window whose printed events are parsed (`XevEvent`).
- `read_selection` / `SelectionOwner`: the X clipboard (or any selection) read and set through
  libX11 with ctypes, as any X client does (ICCCM ConvertSelection / SetSelectionOwner); no
  xclip or xsel needed. `python x11.py own DISPLAY SELECTION TEXT` is the owner's process.
- `start_x11_host(relay, company, name, desktop)`: an enrolled host (key set at the relay)
  running `relay-agent host --source x11:DISPLAY` on the desktop; stopped with the relay.

Needs Xvfb, xwd, xwininfo (x11-apps, x11-utils), xterm and libX11, all in
scripts/lib/prerequisites.sh.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import os
import pathlib
import re
import shutil
import struct
import subprocess
import sys
import time

TOOLS = ("Xvfb", "xwd", "xwininfo", "xdpyinfo", "xterm", "xev", "xsetroot")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


# ---- XWD (X Window Dump, file version 7) ----


@dataclasses.dataclass
class Screen:
    """An image as RGB bytes, row by row, 3 bytes a pixel."""

    width: int
    height: int
    rgb: bytes

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        at = (y * self.width + x) * 3
        return tuple(self.rgb[at : at + 3])

    def differences(self, other: Screen, limit: int = 10) -> tuple[int, list[str]]:
        """How many pixels differ from `other` (same size), and the first `limit` of them."""
        assert (self.width, self.height) == (other.width, other.height), (
            f"sizes differ: {self.width}×{self.height} and {other.width}×{other.height}"
        )
        count, examples = 0, []
        if self.rgb == other.rgb:
            return 0, []
        row_bytes = self.width * 3
        for y in range(self.height):
            mine = self.rgb[y * row_bytes : (y + 1) * row_bytes]
            theirs = other.rgb[y * row_bytes : (y + 1) * row_bytes]
            if mine == theirs:
                continue
            for x in range(self.width):
                if mine[x * 3 : x * 3 + 3] != theirs[x * 3 : x * 3 + 3]:
                    count += 1
                    if len(examples) < limit:
                        examples.append(f"({x},{y}): {tuple(mine[x * 3 : x * 3 + 3])} vs {tuple(theirs[x * 3 : x * 3 + 3])}")
        return count, examples

    def bounding_box_of_differences(self, other: Screen) -> tuple[int, int, int, int] | None:
        """(left, top, right, bottom) of the pixels that differ from `other`, or None."""
        row_bytes = self.width * 3
        left, top, right, bottom = self.width, None, -1, None
        for y in range(self.height):
            mine, theirs = self.rgb[y * row_bytes : (y + 1) * row_bytes], other.rgb[y * row_bytes : (y + 1) * row_bytes]
            if mine == theirs:
                continue
            top = y if top is None else top
            bottom = y
            columns = [x for x in range(self.width) if mine[x * 3 : x * 3 + 3] != theirs[x * 3 : x * 3 + 3]]
            left, right = min(left, columns[0]), max(right, columns[-1])
        return None if top is None else (left, top, right, bottom)


def parse_xwd(data: bytes) -> Screen:
    """Decodes an XWD file of a TrueColor or DirectColor ZPixmap with 24 or 32 bits a pixel
    (what `xwd -root` writes for a depth-24 screen) into RGB."""
    if len(data) < 100:
        raise ValueError(f"not an XWD file: {len(data)} bytes, shorter than its header")
    fields = struct.unpack(">25I", data[:100])
    (header_size, version, pixmap_format, _depth, width, height, _xoffset, byte_order, _unit, _bit_order, _pad,
     bits_per_pixel, bytes_per_line, visual_class, red_mask, green_mask, blue_mask, _bits_per_rgb, _entries,
     ncolors) = fields[:20]  # fmt: skip
    if version != 7:
        raise ValueError(f"XWD file version {version}; only version 7 is read")
    if pixmap_format != 2:
        raise ValueError(f"XWD pixmap format {pixmap_format}; only ZPixmap (2) is read")
    if visual_class not in (4, 5):
        raise ValueError(f"XWD visual class {visual_class}; only TrueColor (4) and DirectColor (5) are read")
    if bits_per_pixel not in (24, 32):
        raise ValueError(f"XWD with {bits_per_pixel} bits a pixel; only 24 and 32 are read")
    start = header_size + ncolors * 12
    pixels = data[start:]
    if len(pixels) < bytes_per_line * height:
        raise ValueError(f"XWD pixel data is {len(pixels)} bytes, less than {bytes_per_line} × {height}")
    step = bits_per_pixel // 8

    def channel(mask: int) -> tuple[int, int]:
        shift = (mask & -mask).bit_length() - 1
        if mask >> shift != 0xFF:
            raise ValueError(f"XWD colour mask {mask:#x} is not 8 contiguous bits")
        return shift // 8, shift

    # Byte index of each channel inside a pixel in memory.
    def index(mask: int) -> int:
        byte, _ = channel(mask)
        return byte if byte_order == 0 else step - 1 - byte  # 0 = LSBFirst

    red, green, blue = index(red_mask), index(green_mask), index(blue_mask)
    rgb = bytearray(width * height * 3)
    if bytes_per_line == width * step:
        body = pixels[: width * height * step]
        rgb[0::3], rgb[1::3], rgb[2::3] = body[red::step], body[green::step], body[blue::step]
    else:
        for y in range(height):
            row = pixels[y * bytes_per_line : y * bytes_per_line + width * step]
            out = slice(y * width * 3, (y + 1) * width * 3)
            line = bytearray(width * 3)
            line[0::3], line[1::3], line[2::3] = row[red::step], row[green::step], row[blue::step]
            rgb[out] = line
    return Screen(width, height, bytes(rgb))


# ---- xev ----


@dataclasses.dataclass
class XevEvent:
    """One event as xev printed it."""

    kind: str  # "KeyPress", "ButtonPress", ...
    window: int
    fields: dict
    text: str

    @property
    def keysym(self) -> str | None:
        return self.fields.get("keysym")

    @property
    def keysym_value(self) -> int | None:
        value = self.fields.get("keysym_value")
        return int(value, 16) if value else None


_EVENT_HEAD = re.compile(r"^(\w+) event, serial \d+, synthetic (YES|NO), window (0x[0-9a-f]+)", re.M)


def parse_xev(output: str) -> list[XevEvent]:
    events = []
    heads = list(_EVENT_HEAD.finditer(output))
    for number, head in enumerate(heads):
        end = heads[number + 1].start() if number + 1 < len(heads) else len(output)
        text = output[head.start() : end]
        fields: dict = {"synthetic": head.group(2) == "YES"}
        position = re.search(r"\((-?\d+),(-?\d+)\), root:\((-?\d+),(-?\d+)\)", text)
        if position:
            fields["x"], fields["y"], fields["root_x"], fields["root_y"] = (int(value) for value in position.groups())
        button = re.search(r"\bbutton (\d+)", text)
        if button:
            fields["button"] = int(button.group(1))
        key = re.search(r"keycode (\d+) \(keysym (0x[0-9a-f]+), ([^)]*)\)", text)
        if key:
            fields["keycode"], fields["keysym_value"], fields["keysym"] = int(key.group(1)), key.group(2), key.group(3)
        state = re.search(r"\bstate (0x[0-9a-f]+)", text)
        if state:
            fields["state"] = int(state.group(1), 16)
        events.append(XevEvent(head.group(1), int(head.group(3), 16), fields, text))
    return events


class Xev:
    """An xev window; `events()` parses what it has printed so far."""

    def __init__(self, desktop: Desktop, name: str, geometry: str):
        self.desktop = desktop
        self.name = name
        self.output = desktop.folder / f"xev-{name}.txt"
        command = ["xev", "-name", name, "-geometry", geometry, "-event", "keyboard", "-event", "button", "-event", "mouse"]
        self.process = desktop.run(command, stdout=self.output)
        self.geometry = desktop.wait_for_window(name)

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def events(self, *kinds: str) -> list[XevEvent]:
        return [event for event in parse_xev(self.text()) if not kinds or event.kind in kinds]

    def mark(self) -> int:
        """How many events xev has printed so far (`events_since(mark)` reads only newer ones)."""
        return len(parse_xev(self.text()))

    def events_since(self, mark: int, *kinds: str) -> list[XevEvent]:
        return [event for event in parse_xev(self.text())[mark:] if not kinds or event.kind in kinds]

    def wait_for(self, predicate, mark: int = 0, timeout: float = 10, what: str = "the expected events") -> list[XevEvent]:
        """Waits until `predicate(events since mark)` is true; returns those events."""
        deadline = time.monotonic() + timeout
        while True:
            events = parse_xev(self.text())[mark:]
            if predicate(events):
                return events
            if time.monotonic() > deadline:
                summary = "\n".join(f"  {event.kind} {event.fields}" for event in events) or "  (none)"
                raise AssertionError(f"xev {self.name} did not print {what} within {timeout} s; it printed:\n{summary}")
            time.sleep(0.05)


# ---- The desktop ----


@dataclasses.dataclass
class WindowGeometry:
    x: int
    y: int
    width: int
    height: int
    border: int
    id: int


class Desktop:
    """A private Xvfb and the X programs run on it."""

    def __init__(self, folder: pathlib.Path, width: int = 1280, height: int = 800, depth: int = 24):
        missing = missing_tools()
        if missing:
            raise RuntimeError(
                f"missing X tools: {', '.join(missing)}; install them (Debian: apt-get install xvfb x11-apps x11-utils "
                "x11-xserver-utils xterm), or run scripts/lib/prerequisites.sh's ensure_prerequisites"
            )
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.width, self.height, self.depth = width, height, depth
        self.display = ""
        self.server: subprocess.Popen | None = None
        self.processes: list[subprocess.Popen] = []
        self._logs: list = []

    @property
    def number(self) -> int:
        return int(self.display.lstrip(":"))

    def environment(self, **extra: str) -> dict:
        environment = {**os.environ, "DISPLAY": self.display, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        environment.pop("XAUTHORITY", None)
        return {**environment, **extra}

    def start(self, timeout: float = 15) -> Desktop:
        read, write = os.pipe()
        log = open(self.folder / "xvfb.log", "wb")
        self._logs.append(log)
        # -noreset: Xvfb would reset when its last client leaves, refusing a client that connects
        # meanwhile. -nolisten tcp: local clients only.
        self.server = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{self.width}x{self.height}x{self.depth}", "-nolisten", "tcp", "-noreset"],
            pass_fds=(write,), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(write)
        number = b""
        deadline = time.monotonic() + timeout
        os.set_blocking(read, False)
        while not number.endswith(b"\n"):
            if self.server.poll() is not None or time.monotonic() > deadline:
                os.close(read)
                self.stop()
                raise RuntimeError(f"Xvfb did not start within {timeout} s:\n{(self.folder / 'xvfb.log').read_text(errors='replace')}")
            try:
                number += os.read(read, 64)
            except BlockingIOError:
                time.sleep(0.05)
        os.close(read)
        self.display = f":{int(number.strip())}"
        while subprocess.run(["xdpyinfo"], env=self.environment(), capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Xvfb on {self.display} accepts no connection after {timeout} s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            _end(process)
        self.processes.clear()
        if self.server is not None:
            _end(self.server)
            self.server = None
        for log in self._logs:
            log.close()
        self._logs.clear()

    def run(self, command: list[str], stdout: pathlib.Path | None = None) -> subprocess.Popen:
        """Starts an X program on this desktop; it is stopped with the desktop."""
        output = open(stdout or self.folder / f"{pathlib.Path(command[0]).name}-{len(self.processes)}.log", "wb")
        self._logs.append(output)
        process = subprocess.Popen(
            command, env=self.environment(), stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.folder
        )
        self.processes.append(process)
        return process

    def call(self, *command: str) -> str:
        """Runs an X tool to its end; returns its standard output."""
        result = subprocess.run(command, env=self.environment(), capture_output=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"`{' '.join(command)}` on {self.display} failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
        return result.stdout.decode(errors="replace")

    def window(self, name: str) -> WindowGeometry | None:
        """The geometry of the viewable top-level window named `name`, or None."""
        result = subprocess.run(["xwininfo", "-name", name], env=self.environment(), capture_output=True, text=True, timeout=10)
        if result.returncode != 0 or "IsViewable" not in result.stdout:
            return None

        def number(label: str) -> int:
            return int(re.search(rf"{label}:\s*(-?\d+)", result.stdout).group(1))

        window_id = int(re.search(r"Window id: (0x[0-9a-f]+)", result.stdout).group(1), 16)
        return WindowGeometry(
            number("Absolute upper-left X"), number("Absolute upper-left Y"), number("Width"), number("Height"), number("Border width"), window_id
        )

    def wait_for_window(self, name: str, timeout: float = 15) -> WindowGeometry:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            geometry = self.window(name)
            if geometry is not None:
                return geometry
            time.sleep(0.05)
        raise AssertionError(f"no viewable window named {name!r} on {self.display} after {timeout} s")

    def xterm(
        self,
        name: str,
        geometry: str,
        command: str,
        *arguments: str,
        font: str = "fixed",
        face: tuple[str, int] | None = None,
        colours: tuple[str, str] = ("black", "white"),
    ) -> WindowGeometry:
        """An xterm running `sh -c COMMAND ARGUMENTS...` (the first argument is $0), in the core
        font `font` (the X server's built-in `fixed` by default) or the fontconfig `face` (name,
        points); returns its window's geometry once it is viewable."""
        fonts = ["-fa", face[0], "-fs", str(face[1])] if face else ["-fn", font]
        self.run(
            ["xterm", "-name", name, "-title", name, *fonts, "-geometry", geometry, "-fg", colours[0], "-bg", colours[1],
             "+sb", "-u8", "-xrm", "XTerm*cursorBlink: false", "-e", "sh", "-c", command, *arguments],
        )  # fmt: skip
        return self.wait_for_window(name)

    def xev(self, name: str, geometry: str) -> Xev:
        return Xev(self, name, geometry)

    def capture(self) -> Screen:
        """The whole screen, read by xwd from the X server."""
        result = subprocess.run(["xwd", "-root", "-silent"], env=self.environment(), capture_output=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"xwd -root on {self.display} failed ({result.returncode}): {result.stderr.decode(errors='replace')}")
        screen = parse_xwd(result.stdout)
        assert (screen.width, screen.height) == (self.width, self.height), f"xwd read {screen.width}×{screen.height}"
        return screen

    def pointer(self) -> tuple[int, int]:
        """Where the X pointer is (root coordinates), as xdotool reports it; (-1, -1) without xdotool."""
        if shutil.which("xdotool") is None:
            return -1, -1
        output = self.call("xdotool", "getmouselocation", "--shell")
        values = dict(line.split("=", 1) for line in output.split())
        return int(values["X"]), int(values["Y"])

    def keyboard_mapping(self) -> str:
        return self.call("xmodmap", "-pke") if shutil.which("xmodmap") else ""

    def has_font_face(self, name: str) -> bool:
        """Whether fontconfig knows a font family `name` (for xterm -fa)."""
        if shutil.which("fc-list") is None:
            return False
        result = subprocess.run(["fc-list", ":", "family"], capture_output=True, text=True, timeout=30)
        return any(name in line.split(",") for line in result.stdout.splitlines())


def _end(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


# ---- Selections (the X clipboard) through libX11 ----

_SELECTION_CLEAR, _SELECTION_REQUEST, _SELECTION_NOTIFY = 29, 30, 31
_PROP_MODE_REPLACE = 0
_ANY_PROPERTY_TYPE = 0
_NONE = 0


class _XSelectionRequestEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int), ("display", ctypes.c_void_p),
        ("owner", ctypes.c_ulong), ("requestor", ctypes.c_ulong), ("selection", ctypes.c_ulong), ("target", ctypes.c_ulong),
        ("property", ctypes.c_ulong), ("time", ctypes.c_ulong),
    ]  # fmt: skip


class _XSelectionEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int), ("display", ctypes.c_void_p),
        ("requestor", ctypes.c_ulong), ("selection", ctypes.c_ulong), ("target", ctypes.c_ulong), ("property", ctypes.c_ulong),
        ("time", ctypes.c_ulong),
    ]  # fmt: skip


class _XEvent(ctypes.Union):
    _fields_ = [("type", ctypes.c_int), ("xselectionrequest", _XSelectionRequestEvent), ("xselection", _XSelectionEvent), ("pad", ctypes.c_long * 24)]


def _libx11():
    path = ctypes.util.find_library("X11") or "libX11.so.6"
    x = ctypes.CDLL(path)
    signatures = {
        "XOpenDisplay": (ctypes.c_void_p, [ctypes.c_char_p]),
        "XCloseDisplay": (ctypes.c_int, [ctypes.c_void_p]),
        "XDefaultRootWindow": (ctypes.c_ulong, [ctypes.c_void_p]),
        "XCreateSimpleWindow": (
            ctypes.c_ulong,
            [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_ulong, ctypes.c_ulong],
        ),
        "XInternAtom": (ctypes.c_ulong, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]),
        "XGetAtomName": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_ulong]),
        "XFree": (ctypes.c_int, [ctypes.c_void_p]),
        "XConvertSelection": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]),
        "XSetSelectionOwner": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]),
        "XGetSelectionOwner": (ctypes.c_ulong, [ctypes.c_void_p, ctypes.c_ulong]),
        "XPending": (ctypes.c_int, [ctypes.c_void_p]),
        "XNextEvent": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(_XEvent)]),
        "XFlush": (ctypes.c_int, [ctypes.c_void_p]),
        "XSync": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
        "XConnectionNumber": (ctypes.c_int, [ctypes.c_void_p]),
        "XSendEvent": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.POINTER(_XEvent)]),
        "XChangeProperty": (
            ctypes.c_int,
            [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int],
        ),
        "XDeleteProperty": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]),
        "XGetWindowProperty": (
            ctypes.c_int,
            [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_ulong,
             ctypes.POINTER(ctypes.c_ulong), ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_ulong), ctypes.POINTER(ctypes.c_ulong),
             ctypes.POINTER(ctypes.c_void_p)],
        ),  # fmt: skip
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(x, name)
        function.restype, function.argtypes = restype, argtypes
    return x


class _Connection:
    def __init__(self, display: str):
        self.x = _libx11()
        self.display = self.x.XOpenDisplay(display.encode())
        if not self.display:
            raise RuntimeError(f"cannot open X display {display}")
        root = self.x.XDefaultRootWindow(self.display)
        self.window = self.x.XCreateSimpleWindow(self.display, root, 0, 0, 1, 1, 0, 0, 0)

    def atom(self, name: str) -> int:
        return self.x.XInternAtom(self.display, name.encode(), 0)

    def atom_name(self, atom: int) -> str:
        if atom == 0:
            return "None"
        pointer = self.x.XGetAtomName(self.display, atom)
        name = ctypes.string_at(pointer).decode(errors="replace")
        self.x.XFree(pointer)
        return name

    def next_event(self, timeout: float) -> _XEvent | None:
        deadline = time.monotonic() + timeout
        event = _XEvent()
        while True:
            if self.x.XPending(self.display) > 0:
                self.x.XNextEvent(self.display, ctypes.byref(event))
                return event
            if time.monotonic() > deadline:
                return None
            time.sleep(0.005)

    def close(self) -> None:
        if self.display:
            self.x.XCloseDisplay(self.display)
            self.display = None


@dataclasses.dataclass
class SelectionContent:
    owner: int  # the owner's window, 0 when no client owns the selection
    type: str  # the property's type, e.g. "UTF8_STRING"; "None" when the owner refused
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8" if self.type != "STRING" else "latin-1")


def read_selection(display: str, selection: str = "CLIPBOARD", target: str = "UTF8_STRING", timeout: float = 5) -> SelectionContent:
    """Asks the selection's owner for its content as `target`, like any X client pasting."""
    connection = _Connection(display)
    try:
        x = connection.x
        selection_atom = connection.atom(selection)
        owner = x.XGetSelectionOwner(connection.display, selection_atom)
        if owner == _NONE:
            return SelectionContent(0, "None", b"")
        prop = connection.atom("SUPPORTRELAY_TEST_PASTE")
        x.XConvertSelection(connection.display, selection_atom, connection.atom(target), prop, connection.window, 0)
        x.XFlush(connection.display)
        deadline = time.monotonic() + timeout
        while True:
            event = connection.next_event(max(0.0, deadline - time.monotonic()))
            if event is None:
                raise AssertionError(
                    f"the owner of {selection} on {display} (window {owner:#x}) did not answer a {target} request within {timeout} s"
                )
            if event.type == _SELECTION_NOTIFY:
                break
        if event.xselection.property == _NONE:
            return SelectionContent(owner, "None", b"")
        actual_type, actual_format = ctypes.c_ulong(), ctypes.c_int()
        items, after, data = ctypes.c_ulong(), ctypes.c_ulong(), ctypes.c_void_p()
        x.XGetWindowProperty(
            connection.display, connection.window, prop, 0, 1 << 24, 1, _ANY_PROPERTY_TYPE,
            ctypes.byref(actual_type), ctypes.byref(actual_format), ctypes.byref(items), ctypes.byref(after), ctypes.byref(data),
        )  # fmt: skip
        type_name = connection.atom_name(actual_type.value)
        if type_name == "INCR":
            raise AssertionError(f"the owner of {selection} sends its content incrementally (INCR); this reader takes only small texts")
        size = items.value * (actual_format.value // 8 if actual_format.value in (8, 16) else ctypes.sizeof(ctypes.c_long))
        content = ctypes.string_at(data, size) if data.value else b""
        if data.value:
            x.XFree(data)
        return SelectionContent(owner, type_name, content)
    finally:
        connection.close()


class SelectionOwner:
    """A process that owns an X selection with a text, answering TARGETS, UTF8_STRING, STRING,
    TEXT and text/plain;charset=utf-8 requests, until another client takes the selection or
    `stop()`. Like a text editor after Ctrl+C."""

    def __init__(self, display: str, selection: str, text: str, log: pathlib.Path):
        self.log = log
        output = open(log, "wb")
        self.process = subprocess.Popen(
            [sys.executable, __file__, "own", display, selection, text], stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        output.close()
        deadline = time.monotonic() + 10
        while "owner" not in log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"could not take {selection} on {display}:\n{log.read_text(errors='replace')}")
            time.sleep(0.02)

    def requests(self) -> list[str]:
        """The requests answered so far, as "TARGET for REQUESTOR-WINDOW" lines."""
        return [line[len("request ") :] for line in self.log.read_text(errors="replace").splitlines() if line.startswith("request ")]

    def stop(self) -> None:
        _end(self.process)


def _own_selection(display: str, selection: str, text: str) -> None:
    connection = _Connection(display)
    x = connection.x
    selection_atom = connection.atom(selection)
    utf8, string, text_atom, plain = (connection.atom(name) for name in ("UTF8_STRING", "STRING", "TEXT", "text/plain;charset=utf-8"))
    targets, atom_type = connection.atom("TARGETS"), connection.atom("ATOM")
    x.XSetSelectionOwner(connection.display, selection_atom, connection.window, 0)
    x.XSync(connection.display, 0)
    if x.XGetSelectionOwner(connection.display, selection_atom) != connection.window:
        print(f"could not own {selection}", flush=True)
        sys.exit(1)
    print(f"owner {connection.window:#x} of {selection}", flush=True)
    data = text.encode()
    while True:
        event = connection.next_event(3600)
        if event is None:
            continue
        if event.type == _SELECTION_CLEAR:
            print("lost the selection", flush=True)
            return
        if event.type != _SELECTION_REQUEST:
            continue
        request = event.xselectionrequest
        prop = request.property or request.target
        answer = _XEvent()
        answer.xselection.type = _SELECTION_NOTIFY
        answer.xselection.requestor, answer.xselection.selection = request.requestor, request.selection
        answer.xselection.target, answer.xselection.time, answer.xselection.property = request.target, request.time, prop
        if request.target == targets:
            offered = (ctypes.c_ulong * 5)(targets, utf8, string, text_atom, plain)
            x.XChangeProperty(connection.display, request.requestor, prop, atom_type, 32, _PROP_MODE_REPLACE, offered, 5)
        elif request.target in (utf8, text_atom, plain):
            kind = plain if request.target == plain else utf8
            x.XChangeProperty(connection.display, request.requestor, prop, kind, 8, _PROP_MODE_REPLACE, data, len(data))
        elif request.target == string:
            latin = text.encode("latin-1", errors="replace")
            x.XChangeProperty(connection.display, request.requestor, prop, string, 8, _PROP_MODE_REPLACE, latin, len(latin))
        else:
            answer.xselection.property = _NONE
        x.XSendEvent(connection.display, request.requestor, 0, 0, ctypes.byref(answer))
        x.XFlush(connection.display)
        print(f"request {connection.atom_name(request.target)} for {request.requestor:#x}", flush=True)


# ---- A relay-agent host sharing the desktop ----


def start_x11_host(relay, company: str, name: str, desktop: Desktop, *extra: str) -> str:
    """Enrolls a host, gives it a key (set at the relay) and runs `relay-agent host --source
    x11:DISPLAY` for it; returns its id. Its output goes to agent-ID.log in the relay's folder
    (printed when a test fails); it stops with the relay."""
    from relayserver import AGENT  # the relay-server fixtures' module, next to this file

    host_id = relay.enroll_host(company, name)
    key_file = relay.folder / f"{host_id}.key"
    relay.cli_json("host", "set-key", host_id, "--public-key", relay.new_public_key(key_file, host_id))
    command = [
        str(AGENT), "host", "--relay", relay.address, "--fingerprint", relay.fingerprint, "--host-id", host_id,
        "--key-file", str(key_file), "--any-engineer", "--source", f"x11:{desktop.display}", *extra,
    ]  # fmt: skip
    with open(relay.folder / f"agent-{host_id}.log", "ab") as log:
        agent = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=relay.folder,
            env={**relay._agent_environment(), "DISPLAY": desktop.display},
        )  # fmt: skip
    relay._agents.append(agent)
    return host_id


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "own":
        _own_selection(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        print(f"usage: {sys.argv[0]} own DISPLAY SELECTION TEXT", file=sys.stderr)
        sys.exit(2)
