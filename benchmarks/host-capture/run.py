#!/usr/bin/env python3
"""Host capture beside x11vnc: the same scripted desktop, shared by each in turn.

Each run starts a fresh Xvfb (1920x1080x24) twice with the same desktop and the same
scripted workload, and shares it

  (a) with x11vnc (defaults: XDAMAGE hints, polling), viewed by TigerVNC's vncviewer on a
      second Xvfb, forced to ZRLE (-PreferredEncoding=ZRLE -AutoSelect=0 -FullColor=1);
  (b) with `relay-agent host` (release build) through a local relay-server, viewed by
      `relay-agent view` (attended session by support code, end-to-end encrypted).

The desktop: xterm "typing" (text typed into `cat` through XTest, about 9 characters a
second, Return every 48), xterm "pages" (a page of this repository's sources replaced
every second), xterm "dragged" (moved along a rectangle for 3 s of every 8, the pointer
with it), xclock (-update 1) and xeyes (following the pointer).

For each side it reports, over the same window (from the viewer's first update to the
end of the workload): bytes to the viewer (its socket's bytes_received, from `ss`),
updates per second (x11vnc's own FramebufferUpdate count; the relay viewer's count of
TileUpdates), and the sharing process's CPU (utime+stime from /proc: x11vnc, or the
relay-agent host), per second and per update. Also the X server's and the relay's CPU.

The relay host runs at --fps; by default twice the updates per second x11vnc reached in
the same run (rounded up): the host coalesces what changes within a frame interval into
one update, so at twice x11vnc's rate it sends about as many updates as x11vnc.

  benchmarks/host-capture/run.py                       3 runs of 60 s, results to stdout
  benchmarks/host-capture/run.py --out DIR             also raw logs and JSON per run in DIR
  benchmarks/host-capture/run.py --runs 1 --seconds 20 --fps 15
  benchmarks/host-capture/run.py --bin .build-release/release   skip the build
  benchmarks/host-capture/run.py --relay-only --fps 40 --runs 1   the relay side alone (to profile it)

Needs (Debian): xvfb x11vnc tigervnc-viewer xterm x11-apps xdotool x11-xserver-utils
iproute2 libxtst6 (scripts/lib/prerequisites.sh installs them).
"""

import argparse
import ctypes
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TOOLS = ["Xvfb", "x11vnc", "vncviewer", "xterm", "xclock", "xeyes", "xdotool", "xsetroot", "ss"]


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


def bytes_received(port, pid):
    """bytes_received of process `pid`'s TCP connection to 127.0.0.1:`port` (ss tcp_info)."""
    output = subprocess.run(
        ["ss", "-tinpH", "state", "established", f"( dport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    # Each socket is a line with users:(...) followed by its tcp_info line.
    blocks = re.split(r"\n(?=\S)", output.strip())
    for block in blocks:
        if f"pid={pid}," in block:
            match = re.search(r"bytes_received:(\d+)", block)
            return int(match.group(1)) if match else 0
    raise RuntimeError(f"no connection of pid {pid} to port {port} in ss output:\n{output}")


class Processes:
    """Child processes of one phase, stopped together (SIGTERM, then SIGKILL)."""

    def __init__(self, folder):
        self.folder = folder
        self.children = []

    def start(self, name, arguments, env=None, **options):
        log = open(self.folder / f"{name}.log", "wb")
        process = subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT, env=env, **options)
        self.children.append((name, process))
        return process

    def log(self, name):
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, process, sig=signal.SIGTERM, timeout=10):
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_all(self):
        for _, process in reversed(self.children):
            self.stop(process, timeout=5)


def start_xvfb(processes, name, screen):
    read, write = os.pipe()
    process = processes.start(
        name, ["Xvfb", "-displayfd", str(write), "-screen", "0", screen, "-nolisten", "tcp", "-noreset"], pass_fds=(write,)
    )
    os.close(write)
    number = b""
    while not number.endswith(b"\n"):
        chunk = os.read(read, 16)
        if not chunk:
            os.close(read)
            raise RuntimeError(f"Xvfb did not start: {processes.log(name)}")
        number += chunk
    os.close(read)
    return f":{number.decode().strip()}", process


class XInput:
    """XTest keys and pointer, and window moves, through libX11/libXtst (ctypes): no
    process per event, so the workload costs the same in both phases."""

    def __init__(self, display):
        self.x11 = ctypes.CDLL("libX11.so.6")
        self.xtst = ctypes.CDLL("libXtst.so.6")
        self.x11.XOpenDisplay.restype = ctypes.c_void_p
        self.x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        self.x11.XStringToKeysym.restype = ctypes.c_ulong
        self.x11.XStringToKeysym.argtypes = [ctypes.c_char_p]
        self.x11.XKeysymToKeycode.restype = ctypes.c_ubyte
        self.x11.XKeysymToKeycode.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
        self.x11.XMoveWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int]
        self.x11.XFlush.argtypes = [ctypes.c_void_p]
        self.x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self.xtst.XTestFakeKeyEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
        self.xtst.XTestFakeMotionEvent.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_ulong]
        self.display = self.x11.XOpenDisplay(display.encode())
        if not self.display:
            raise RuntimeError(f"cannot open X display {display}")
        self.keycodes = {}

    NAMES = {" ": "space", ".": "period", ",": "comma", "-": "minus", "/": "slash", ";": "semicolon", "\n": "Return"}

    def key(self, character):
        if character not in self.keycodes:
            keysym = self.x11.XStringToKeysym(self.NAMES.get(character, character).encode())
            self.keycodes[character] = self.x11.XKeysymToKeycode(self.display, keysym)
        code = self.keycodes[character]
        self.xtst.XTestFakeKeyEvent(self.display, code, 1, 0)
        self.xtst.XTestFakeKeyEvent(self.display, code, 0, 0)
        self.x11.XFlush(self.display)

    def move(self, window, x, y):
        self.x11.XMoveWindow(self.display, window, x, y)
        self.xtst.XTestFakeMotionEvent(self.display, -1, x + 40, y + 30, 0)
        self.x11.XFlush(self.display)

    def close(self):
        self.x11.XCloseDisplay(self.display)


TEXT = (
    "the relay forwards sealed records between host and viewer, "
    "0123456789 tiles of 64 by 64 pixels, copies, palettes and runs; "
    "damage tells the host which parts of the screen were drawn. "
)


PARTS = ("typing", "pages", "drag", "xclock", "xeyes")
# The parts of the desktop in use (--parts); all by default.
parts = set(PARTS)


def workload_events(seconds):
    """(time, action, argument) for the whole window, the same in every phase."""
    events = []
    typed = 0
    t = 0.5
    while t < seconds and "typing" in parts:
        character = TEXT[typed % len(TEXT)]
        typed += 1
        events.append((t, "key", "\n" if typed % 48 == 0 else character))
        t += 0.11
    # The dragged window: 3 s of every 8, 25 moves a second around a 600x300 rectangle.
    path = []
    for step in range(75):
        fraction = step / 75
        edge, along = divmod(fraction * 4, 1)
        corners = [(300, 620), (900, 620), (900, 320), (300, 320), (300, 620)]
        (x0, y0), (x1, y1) = corners[int(edge)], corners[int(edge) + 1]
        path.append((int(x0 + (x1 - x0) * along), int(y0 + (y1 - y0) * along)))
    cycle = 0.0
    while cycle + 5 < seconds and "drag" in parts:
        for step, (x, y) in enumerate(path):
            events.append((cycle + 2 + step * 0.04, "move", (x, y)))
        cycle += 8
    events.sort(key=lambda event: event[0])
    return events


def start_desktop(processes, display):
    """The desktop's programs on `display`; returns the typing and dragged windows' ids."""
    env = dict(os.environ, DISPLAY=display)
    subprocess.run(["xsetroot", "-solid", "#2e4a62"], env=env, check=True)
    sources = sorted(str(path) for path in (REPO / "Sources").rglob("*.swift"))
    listing = processes.folder / "pages.txt"
    listing.write_text("\n".join(sources) + "\n")
    pages = f'while :; do while read -r f; do clear; head -n 44 "$f"; sleep 1; done < "{listing}"; done'
    terminal = ["xterm", "-bg", "#101820", "-fg", "#e0e0e0"]
    processes.start("xterm-typing", terminal + ["-T", "typing", "-geometry", "100x30+20+20", "-e", "cat"], env=env)
    if "pages" in parts:
        processes.start("xterm-pages", terminal + ["-T", "pages", "-geometry", "110x46+700+20", "-e", "bash", "-c", pages], env=env)
    dragged = "ls -l /usr/bin | head -n 14; exec sleep 100000"
    processes.start("xterm-dragged", terminal + ["-T", "dragged", "-geometry", "64x16+300+620", "-e", "bash", "-c", dragged], env=env)
    if "xclock" in parts:
        processes.start("xclock", ["xclock", "-geometry", "170x170+1720+30", "-update", "1"], env=env)
    if "xeyes" in parts:
        processes.start("xeyes", ["xeyes", "-geometry", "170x110+1720+230"], env=env)

    def window(name):
        found = subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--name", f"^{name}$"], env=env, capture_output=True, text=True, timeout=20)
        return int(found.stdout.split()[0])

    typing, dragged_window = window("typing"), window("dragged")
    # Keys go to the typing terminal whatever the pointer does (no window manager here).
    subprocess.run(["xdotool", "windowfocus", "--sync", str(typing)], env=env, check=True, timeout=20)
    time.sleep(2)
    return typing, dragged_window


def run_workload(display, dragged, seconds):
    x = XInput(display)
    start = time.monotonic()
    try:
        for at, action, argument in workload_events(seconds):
            delay = start + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if action == "key":
                x.key(argument)
            else:
                x.move(dragged, *argument)
        remaining = start + seconds - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
    finally:
        x.close()


def phase_x11vnc(folder, seconds):
    processes = Processes(folder)
    try:
        display, xvfb = start_xvfb(processes, "xvfb", "1920x1080x24")
        viewer_display, _ = start_xvfb(processes, "xvfb-viewer", "1920x1200x24")
        _, dragged = start_desktop(processes, display)
        port = free_port()
        server = processes.start("x11vnc", ["x11vnc", "-display", display, "-rfbport", str(port), "-localhost", "-nopw", "-shared", "-forever"])
        wait_for(lambda: f"PORT={port}" in processes.log("x11vnc"), 30, "x11vnc to listen")
        viewer = processes.start(
            "vncviewer",
            ["vncviewer", "-PreferredEncoding=ZRLE", "-AutoSelect=0", "-FullColor=1", "-Shared=1", "-RemoteResize=0", f"localhost::{port}"],
            env=dict(os.environ, DISPLAY=viewer_display),
        )
        wait_for(lambda: "Using ZRLE encoding" in processes.log("x11vnc"), 30, "vncviewer to connect with ZRLE")
        time.sleep(1)  # the first full update
        return measure(processes, "x11vnc", server, xvfb, viewer, port, seconds, display, dragged, x11vnc_counts)
    finally:
        processes.stop_all()


def x11vnc_counts(processes, viewer, server):
    processes.stop(viewer)
    log = wait_for(lambda: (lambda text: text if "TOTALS" in text else None)(processes.log("x11vnc")), 10, "x11vnc's statistics")
    updates = int(re.search(r"FramebufferUpdate\s*:\s*(\d+)", log).group(1))
    transmitted = int(re.search(r"TOTALS\s*:\s*\d+\s*\|\s*(\d+)/", log).group(1))
    return updates, {"x11vnc_transmit_bytes": transmitted, "encodings": re.findall(r"^\S+ \S+\s+(\w+)\s*:\s*(\d+) \|\s*(\d+)/", log, re.M)[:8]}


def phase_relay(folder, seconds, fps, binaries, damage=True):
    processes = Processes(folder)
    data = Path(tempfile.mkdtemp(prefix="host-capture-relay-"))
    try:
        display, xvfb = start_xvfb(processes, "xvfb", "1920x1080x24")
        _, dragged = start_desktop(processes, display)
        server_bin, agent_bin = str(binaries / "relay-server"), str(binaries / "relay-agent")
        port = free_port()
        relay = processes.start(
            "relay-server", [server_bin, "serve", "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{free_port()}", "--data", str(data / "relay")]
        )
        fingerprint = wait_for(lambda: (re.search(r"^\s+fingerprint: (\S+)", processes.log("relay-server"), re.M) or [None, None])[1], 60, "relay-server to start")
        env = dict(os.environ, XDG_CONFIG_HOME=str(data / "config"))
        company = json.loads(subprocess.run([server_bin, "company", "add", "Bench", "--data", str(data / "relay"), "--json"], capture_output=True, text=True, check=True).stdout)["id"]
        keygen = subprocess.run([agent_bin, "keygen"], env=env, capture_output=True, text=True, check=True).stdout
        key = re.search(r"^public key:\s+(\S+)", keygen, re.M)
        if key is None:
            raise RuntimeError(f"relay-agent keygen printed no public key:\n{keygen}")
        subprocess.run(
            [server_bin, "engineer", "add", "--company", company, "bench.engineer", "--public-key", key.group(1), "--data", str(data / "relay"), "--json"],
            capture_output=True, text=True, check=True,
        )
        trust = ["--relay", f"127.0.0.1:{port}", "--fingerprint", fingerprint]
        viewer = processes.start("relay-view", [agent_bin, "view", *trust, "--new-code"], env=env)
        code = wait_for(lambda: (re.search(r"Support code: (\d+)", processes.log("relay-view")) or [None, None])[1], 30, "a support code")
        host_env = dict(env, RELAY_X11_DAMAGE="on" if damage else "off")
        host = processes.start(
            "relay-host", [agent_bin, "host", *trust, "--code", code, "--accept", "full", "--source", f"x11:{display}", "--fps", f"{fps:g}"], env=host_env
        )
        wait_for(lambda: "Screen 1920×1080" in processes.log("relay-view"), 30, "the relay viewer's screen")
        time.sleep(1)  # the first full update

        def relay_counts(processes, viewer, server):
            processes.stop(viewer, signal.SIGINT)
            log = processes.log("relay-view")
            match = re.search(r"Received (\d+) screen updates, (\d+) bytes", log)
            if match is None:
                raise RuntimeError(f"the relay viewer printed no totals:\n{log}")
            return int(match.group(1)), {"viewer_update_bytes": int(match.group(2))}

        result = measure(processes, "relay" if damage else "relay-without-damage", host, xvfb, viewer, port, seconds, display, dragged, relay_counts, relay=relay)
        result["fps"] = fps
        result["capture_method"] = (re.search(r"^Capturing \S+ with (.+)\.$", processes.log("relay-host"), re.M) or [None, "?"])[1]
        return result
    finally:
        processes.stop_all()
        shutil.rmtree(data, ignore_errors=True)


def measure(processes, side, server, xvfb, viewer, port, seconds, display, dragged, counts, relay=None):
    """CPU and bytes over the workload window; updates from the side's own count."""
    start = time.monotonic()
    cpu0 = cpu_seconds(server.pid)
    xcpu0 = cpu_seconds(xvfb.pid)
    rcpu0 = cpu_seconds(relay.pid) if relay else 0.0
    bytes0 = bytes_received(port, viewer.pid)
    run_workload(display, dragged, seconds)
    elapsed = time.monotonic() - start
    cpu = cpu_seconds(server.pid) - cpu0
    xcpu = cpu_seconds(xvfb.pid) - xcpu0
    rcpu = (cpu_seconds(relay.pid) - rcpu0) if relay else None
    received = bytes_received(port, viewer.pid) - bytes0
    total_received = bytes_received(port, viewer.pid)
    updates, details = counts(processes, viewer, server)
    # Updates are counted over the viewer's whole session, which began one settle second
    # before the window: the rate is over the session (window + 1 s), the initial update included.
    session = elapsed + 1.0
    result = {
        "side": side,
        "seconds": round(elapsed, 2),
        "bytes_to_viewer": received,
        "bytes_to_viewer_per_second": round(received / elapsed),
        "session_bytes_to_viewer": total_received,
        "updates": updates,
        "updates_per_second": round(updates / session, 2),
        "cpu_seconds": round(cpu, 3),
        "cpu_percent_of_a_core": round(100 * cpu / elapsed, 2),
        "cpu_ms_per_update": round(1000 * cpu / max(updates, 1), 3),
        "xvfb_cpu_percent": round(100 * xcpu / elapsed, 2),
    }
    if rcpu is not None:
        result["relay_server_cpu_percent"] = round(100 * rcpu / elapsed, 2)
    result.update(details)
    return result


def summarize(runs):
    lines = []
    figures = [
        ("bytes_to_viewer", "bytes to the viewer", "{:,.0f}"),
        ("updates_per_second", "updates per second", "{:.1f}"),
        ("cpu_percent_of_a_core", "sharing process CPU, % of a core", "{:.2f}"),
        ("cpu_ms_per_update", "sharing process CPU, ms per update", "{:.3f}"),
        ("xvfb_cpu_percent", "X server CPU, % of a core", "{:.2f}"),
    ]
    summary = {}
    sides = [side for side in ("relay", "x11vnc", "relay-without-damage") if side in runs[0]]
    titles = {"relay": "relay host", "x11vnc": "x11vnc", "relay-without-damage": "relay host, DAMAGE off"}
    lines.append(f"{'figure (median, range)':38}" + "".join(f" {titles[side]:>34}" for side in sides))
    for key, name, form in figures:
        row = {}
        for side in sides:
            values = [run[side][key] for run in runs]
            row[side] = {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}
        summary[key] = row
        cells = [f"{form.format(row[s]['median'])} ({form.format(row[s]['min'])}–{form.format(row[s]['max'])})" for s in sides]
        lines.append(f"{name:38}" + "".join(f" {cell:>34}" for cell in cells))
    bytes_ratio = [run["relay"]["bytes_to_viewer"] / run["x11vnc"]["bytes_to_viewer"] for run in runs]
    cpu_ratio = [run["relay"]["cpu_seconds"] / run["x11vnc"]["cpu_seconds"] for run in runs]
    summary["bytes_ratio"] = bytes_ratio
    summary["cpu_ratio"] = cpu_ratio
    lines.append(f"{'bytes, relay / x11vnc (ZRLE)':38} {statistics.median(bytes_ratio):>34.3f}   range {min(bytes_ratio):.3f}–{max(bytes_ratio):.3f}")
    lines.append(f"{'CPU, relay host / x11vnc':38} {statistics.median(cpu_ratio):>34.3f}   range {min(cpu_ratio):.3f}–{max(cpu_ratio):.3f}")
    return summary, "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60, help="workload length per side (default 60)")
    parser.add_argument("--fps", type=float, help="the relay host's --fps (default: twice x11vnc's updates per second in the same run, rounded up)")
    parser.add_argument("--bin", type=Path, help="folder with release relay-server and relay-agent (default: build them)")
    parser.add_argument("--out", type=Path, help="folder for raw logs, per-run JSON and the summary")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"the desktop's parts in use, comma-separated (default: all of {','.join(PARTS)})")
    parser.add_argument(
        "--relay-only", action="store_true", help="run only the relay host's side (needs --fps; no comparison), e.g. to profile it"
    )
    parser.add_argument(
        "--without-damage", action="store_true", help="also run the relay host with RELAY_X11_DAMAGE=off (whole-screen compares, as before DAMAGE)"
    )
    arguments = parser.parse_args()
    parts.clear()
    parts.update(part for part in arguments.parts.split(",") if part)
    if arguments.relay_only and not arguments.fps:
        fail("--relay-only needs --fps: without x11vnc's side there is no rate to follow")
    if not parts <= set(PARTS):
        fail(f"unknown parts: {', '.join(sorted(parts - set(PARTS)))}; the parts are {', '.join(PARTS)}")

    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        fail(f"missing tools: {', '.join(missing)}; install them (Debian: apt-get install xvfb x11vnc tigervnc-viewer xterm x11-apps xdotool x11-xserver-utils iproute2)")
    binaries = arguments.bin
    if binaries is None:
        build = ["swift", "build", "-c", "release", "--scratch-path", ".build-release"]
        for product in ("relay-server", "relay-agent"):
            print(f"==> Building {product} (release)", flush=True)
            subprocess.run(build + ["--product", product], cwd=REPO, check=True)
        binaries = Path(subprocess.run(build + ["--show-bin-path"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip())
    binaries = binaries.resolve()
    out = arguments.out.resolve() if arguments.out else Path(tempfile.mkdtemp(prefix="host-capture-"))
    out.mkdir(parents=True, exist_ok=True)

    runs = []
    for number in range(1, arguments.runs + 1):
        folder = out / f"run{number}"
        for side in ("x11vnc", "relay"):
            (folder / side).mkdir(parents=True, exist_ok=True)
        vnc = None
        if not arguments.relay_only:
            print(f"==> Run {number}: x11vnc + vncviewer (ZRLE), {arguments.seconds:g} s", flush=True)
            vnc = phase_x11vnc(folder / "x11vnc", arguments.seconds)
            print("    " + json.dumps(vnc), flush=True)
        # The host coalesces the changes of a frame interval into one update: at x11vnc's
        # rate it sends fewer updates than x11vnc; at twice that rate about as many.
        fps = arguments.fps or max(1, math.ceil(2 * vnc["updates_per_second"]))
        print(f"==> Run {number}: relay-agent host --fps {fps:g} + relay-agent view, {arguments.seconds:g} s", flush=True)
        ours = phase_relay(folder / "relay", arguments.seconds, fps, binaries)
        print("    " + json.dumps(ours), flush=True)
        run = {"run": number, "relay": ours}
        if vnc is not None:
            run["x11vnc"] = vnc
        if arguments.without_damage:
            (folder / "relay-without-damage").mkdir(parents=True, exist_ok=True)
            print(f"==> Run {number}: the same with RELAY_X11_DAMAGE=off (whole-screen compares)", flush=True)
            run["relay-without-damage"] = phase_relay(folder / "relay-without-damage", arguments.seconds, fps, binaries, damage=False)
            print("    " + json.dumps(run["relay-without-damage"]), flush=True)
        (folder / "result.json").write_text(json.dumps(run, indent=2) + "\n")
        runs.append(run)

    if arguments.relay_only:
        (out / "summary.json").write_text(json.dumps({"runs": runs}, indent=2) + "\n")
        print(f"raw logs and JSON: {out}")
        return
    summary, text = summarize(runs)
    (out / "summary.json").write_text(json.dumps({"runs": runs, "summary": summary}, indent=2) + "\n")
    (out / "summary.txt").write_text(text + "\n")
    print(text)
    print(f"raw logs and JSON: {out}")


if __name__ == "__main__":
    main()
