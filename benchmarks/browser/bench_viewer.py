#!/usr/bin/env python3
"""The browser viewer benchmark (issue 13 item 6), in headless Debian Chromium driven by Playwright.

decode: the decode-and-paint rate of TileUpdate bodies in the browser's own decoder
  (Sources/RelayServer/Web/Static/js/tiles.js), painted on a canvas as the viewer page
  does (putImageData of each update's dirty rectangle). The bodies come from the Swift
  encoder: `relay-bench codec --save-bodies` writes the 1920x1080 synthetic cases (typing,
  scroll, full-screen) and each recorded desktop folder of benchmarks/frames. The time
  per update is split into the inflate (timed alone on a DecompressionStream, as tiles.js
  feeds it), parse + draw (the rest of TileDecoder.apply) and putImageData.
  Targets: >= 60 updates/s for typing and scroll, >= 20 for full-screen.

latency: the time from a click in the browser to the changed pixels on the viewer's
  canvas, through a local relay-server and a relay-agent host on loopback. The host
  shares a private Xvfb (1920x1080) showing click_target.py, a window that changes colour
  on every press of button 1. The page is the real viewer (/view); an init script times
  the pointerdown, the first WebSocket send after it, the last message received before
  the paint, and the first putImageData on the canvas whose pixels at the click point
  changed (and the first animation frame that shows them). Target: <= 50 ms median.

Each run is a fresh browser (decode) or a fresh viewer session (latency); figures are the
median and the range over --runs runs. Needs: benchmarks/.build/release/relay-bench (swift
build -c release --package-path benchmarks), release relay-server and relay-agent
(--build-dir), Xvfb, and the Playwright virtual environment of the browser tests:

    .build-browser-venv/bin/python benchmarks/browser/bench_viewer.py
    .build-browser-venv/bin/python benchmarks/browser/bench_viewer.py --part decode --json out.json
"""

from __future__ import annotations

import argparse
import datetime
import functools
import http.server
import json
import os
import pathlib
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = pathlib.Path(__file__).resolve().parent
REPOSITORY = HERE.parents[1]
STATIC = REPOSITORY / "Sources" / "RelayServer" / "Web" / "Static"
FRAMES = REPOSITORY / "benchmarks" / "frames"
SYNTHETIC_CASES = ("typing", "scroll", "full-screen")
DECODE_TARGETS = {"typing": 60.0, "scroll": 60.0, "full-screen": 20.0}
LATENCY_TARGET_MS = 50.0
PASSWORD = "a long enough benchmark passphrase"

BENCH_PAGE = b"""<!doctype html><meta charset=utf-8><title>viewer decode benchmark</title>
<style>html,body{margin:0;background:#000}canvas{display:block}</style>
<canvas id=screen width=1920 height=1080></canvas>
<script type=module src=/bench/decode_page.js></script>
"""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- Figures ----


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def fmt_spread(entry: dict, digits: int = 1) -> str:
    if len(entry["runs"]) == 1:
        return fmt(entry["median"], digits)
    return f"{fmt(entry['median'], digits)} ({fmt(entry['min'], digits)}–{fmt(entry['max'], digits)})"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def chromium_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by the Chromium processes under this one."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    ticks: dict[int, int] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        names[pid] = name
        ticks[pid] = int(fields[11]) + int(fields[12])
    total, stack = 0, list(children.get(os.getpid(), []))
    while stack:
        pid = stack.pop()
        stack += children.get(pid, [])
        if "chrom" in names.get(pid, ""):
            total += ticks.get(pid, 0)
    return total / os.sysconf("SC_CLK_TCK")


def machine(browser_version: str | None) -> dict:
    model = "unknown"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import importlib.metadata

        playwright_version = importlib.metadata.version("playwright")
    except Exception:  # noqa: BLE001 (only a label)
        playwright_version = "unknown"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "chromium": browser_version,
        "playwright": playwright_version,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "load_average": os.getloadavg(),
    }


def launch(playwright, chromium: str):
    # As Tests/browser/conftest.py launches it: Debian's Chromium, headless, no other flags.
    return playwright.chromium.launch(executable_path=chromium, headless=True)


# ---- decode: bodies, a static site, the page ----


def make_bodies(relay_bench: pathlib.Path, directory: pathlib.Path, frame_folders: list[pathlib.Path], updates: int) -> None:
    if not relay_bench.is_file():
        sys.exit(
            f"bench_viewer: {relay_bench} is missing: build it with `swift build -c release --package-path benchmarks` "
            "(or give --relay-bench PATH, or --bodies DIR with bodies written earlier)"
        )
    commands = [[str(relay_bench), "codec", "--save-bodies", str(directory), "--updates", str(updates)]]
    commands += [[str(relay_bench), "codec", "--save-bodies", str(directory), "--frames", str(folder)] for folder in frame_folders]
    for command in commands:
        log("==> " + " ".join(command))
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"bench_viewer: `{' '.join(command)}` failed ({result.returncode}):\n{result.stderr}{result.stdout}")
        log(result.stdout.strip())


class _Handler(http.server.SimpleHTTPRequestHandler):
    """/bench.html, /bench/* (this folder), /bodies/* (the bodies) and the web app's files."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript", ".bin": "application/octet-stream"}
    bodies: pathlib.Path = pathlib.Path()

    def translate_path(self, path):
        clean = urllib.parse.unquote(path.split("?", 1)[0].split("#", 1)[0])
        for prefix, root in (("/bench/", HERE), ("/bodies/", self.bodies)):
            if clean.startswith(prefix):
                parts = [part for part in clean[len(prefix) :].split("/") if part not in ("", ".", "..")]
                return str(root.joinpath(*parts))
        return super().translate_path(path)

    def do_GET(self):
        if self.path == "/bench.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(BENCH_PAGE)))
            self.end_headers()
            self.wfile.write(BENCH_PAGE)
            return
        super().do_GET()

    def log_message(self, format, *args):
        pass


def serve(bodies: pathlib.Path) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(type("Handler", (_Handler,), {"bodies": bodies}), directory=str(STATIC))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def decode_run(playwright, chromium: str, site: str, cases: list[str], seconds: float) -> tuple[dict, str]:
    browser = launch(playwright, chromium)
    try:
        context = browser.new_context(viewport={"width": 1920, "height": 1080})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{site}/bench.html")
        page.wait_for_selector("body[data-ready=yes]", state="attached", timeout=30_000)
        results = {}
        for name in cases:
            page.evaluate("(name) => window.bench.inflateCase(name, {seconds: 0, minimumPasses: 0})", name)  # loads the bodies
            cpu, wall = chromium_cpu_seconds(), time.monotonic()
            result = page.evaluate("([name, seconds]) => window.bench.decodeCase(name, {seconds})", [name, seconds])
            result["chromium_cpu_per_wall"] = (chromium_cpu_seconds() - cpu) / (time.monotonic() - wall)
            result["inflate_ms"] = page.evaluate("([name, seconds]) => window.bench.inflateCase(name, {seconds})", [name, seconds / 2])["inflate_ms"]
            results[name] = result
            log(
                f"    {name}: {result['updates_per_second']:.1f} updates/s, apply {result['apply_ms']['mean']:.2f} ms "
                f"(inflate alone {result['inflate_ms']['mean']:.2f}), paint {result['paint_ms']['mean']:.2f} ms, "
                f"checks {result['checks']}"
            )
        if errors:
            sys.exit("bench_viewer: errors in the benchmark page:\n" + "\n".join(errors))
        return results, browser.version
    finally:
        browser.close()


def profile_cases(playwright, chromium: str, site: str, cases: list[str], seconds: float) -> dict:
    """Self time per JavaScript function (and V8's own buckets: program, garbage collector,
    idle) in the timed parts of each case, sampled every 100 µs by DevTools' Profiler."""
    browser = launch(playwright, chromium)
    profiles = {}
    try:
        page = browser.new_context(viewport={"width": 1920, "height": 1080}).new_page()
        page.goto(f"{site}/bench.html")
        page.wait_for_selector("body[data-ready=yes]", state="attached", timeout=30_000)
        cdp = page.context.new_cdp_session(page)
        finished: list[dict] = []
        cdp.on("Profiler.consoleProfileFinished", lambda event: finished.append(event["profile"]))
        cdp.send("Profiler.enable")
        cdp.send("Profiler.setSamplingInterval", {"interval": 100})
        for name in cases:
            page.evaluate("(name) => window.bench.inflateCase(name, {seconds: 0, minimumPasses: 0})", name)
            finished.clear()
            page.evaluate("([name, seconds]) => window.bench.decodeCase(name, {seconds, profile: true})", [name, seconds])
            page.wait_for_timeout(200)  # the last profile's event
            self_time: dict[str, float] = {}
            for profile in finished:
                nodes = {node["id"]: node for node in profile["nodes"]}
                for sample, delta in zip(profile["samples"], profile["timeDeltas"]):
                    frame = nodes[sample]["callFrame"]
                    url = frame.get("url", "").rsplit("/", 1)[-1]
                    key = f"{frame['functionName'] or '(anonymous)'}{' (' + url + ')' if url else ''}"
                    self_time[key] = self_time.get(key, 0.0) + delta / 1000.0
            # decodeCase's own time is the benchmark's loop and DevTools starting and stopping
            # a profile per pass: it is left out of the shares.
            harness = self_time.pop("decodeCase (decode_page.js)", 0.0)
            total = sum(self_time.values())
            top = sorted(self_time.items(), key=lambda item: -item[1])[:12]
            profiles[name] = {
                "passes": len(finished),
                "total_ms": total,
                "left_out_ms": harness,
                "top": [{"function": key, "ms": ms, "share": ms / total} for key, ms in top],
            }
    finally:
        browser.close()
    return profiles


# ---- latency: Xvfb, click target, relay, host, the viewer page ----

# Installed before the viewer's scripts: times a click on canvas#screen until the canvas
# pixels at the click point change. Nothing in the viewer is changed; putImageData and
# WebSocket are wrapped, and pointerdown is heard first (capture phase on window).
PROBE = """
(() => {
  const probe = { armed: null, image: null, results: [], lastMessageAt: 0 };
  window.__clickProbe = probe;
  const NativeSocket = window.WebSocket;
  window.WebSocket = class extends NativeSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', () => { probe.lastMessageAt = performance.now(); });
    }
    send(data) {
      const click = probe.armed;
      if (click && click.sentAt === undefined) click.sentAt = performance.now();
      return super.send(data);
    }
  };
  const finish = (click) => {
    if (click.paintAt === undefined || click.frameAt === undefined) return;
    probe.results.push(click);
    if (probe.armed === click) probe.armed = null;
  };
  const put = CanvasRenderingContext2D.prototype.putImageData;
  CanvasRenderingContext2D.prototype.putImageData = function (image, dx, dy, sx, sy, sw, sh) {
    const result = put.apply(this, arguments);
    if (this.canvas.id !== 'screen') return result;
    probe.image = image;
    const click = probe.armed;
    if (click && click.paintAt === undefined) {
      const inside = arguments.length < 7 || (click.x >= sx && click.x < sx + sw && click.y >= sy && click.y < sy + sh);
      const at = (click.y * image.width + click.x) * 4;
      const now = Array.from(image.data.subarray(at, at + 4));
      if (inside && now.some((value, index) => value !== click.before[index])) {
        click.paintAt = performance.now();
        click.messageAt = probe.lastMessageAt;
        click.after = now;
        finish(click);
      }
    }
    return result;
  };
  addEventListener('pointerdown', (event) => {
    const canvas = document.getElementById('screen');
    if (!canvas || event.target !== canvas || event.button !== 0 || !probe.image) return;
    const clickAt = performance.now();
    const box = canvas.getBoundingClientRect();
    const x = Math.min(canvas.width - 1, Math.max(0, Math.floor(((event.clientX - box.left) * canvas.width) / box.width)));
    const y = Math.min(canvas.height - 1, Math.max(0, Math.floor(((event.clientY - box.top) * canvas.height) / box.height)));
    const at = (y * probe.image.width + x) * 4;
    const click = { x, y, clickAt, eventTimeStamp: event.timeStamp, before: Array.from(probe.image.data.subarray(at, at + 4)) };
    probe.armed = click;
    const context = canvas.getContext('2d');
    const watch = () => {
      const pixel = context.getImageData(x, y, 1, 1).data;
      if (Array.from(pixel).some((value, index) => value !== click.before[index])) {
        click.frameAt = performance.now();
        finish(click);
      } else if (performance.now() - clickAt < 5000) {
        requestAnimationFrame(watch);
      }
    };
    requestAnimationFrame(watch);
  }, { capture: true });
})();
"""


def free_display() -> int:
    for number in range(120, 200):
        if not pathlib.Path(f"/tmp/.X11-unix/X{number}").exists() and not pathlib.Path(f"/tmp/.X{number}-lock").exists():
            return number
    sys.exit("bench_viewer: no free X display number between :120 and :199")


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def start_host_agent(relay, host_id: str, source: str, fps: float, log_path: pathlib.Path) -> subprocess.Popen:
    from relayserver import AGENT

    key_file = relay.folder / f"{host_id}.key"
    command = [
        str(AGENT), "host", "--relay", relay.address, "--fingerprint", relay.fingerprint, "--host-id", host_id,
        "--key-file", str(key_file), "--any-engineer", "--source", source, "--fps", f"{fps:g}",
    ]  # fmt: skip
    with open(log_path, "ab") as out:
        agent = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=relay.folder, env=relay._agent_environment())
    relay._agents.append(agent)  # stopped with the relay
    return agent


def host_status(page, host_id: str) -> str | None:
    hosts = page.evaluate("fetch('/api/hosts').then((response) => response.json())")["hosts"]
    return next((host["status"] for host in hosts if host["id"] == host_id), None)


def latency(playwright, chromium: str, build_dir: pathlib.Path, fps_values: list[float], runs: int, clicks: int, keep: pathlib.Path) -> tuple[dict, str]:
    os.environ["RELAY_BUILD_DIR"] = str(build_dir)
    sys.path.insert(0, str(REPOSITORY / "Tests" / "browser"))
    import relayserver  # noqa: E402 (reads RELAY_BUILD_DIR when imported)
    from relayserver import Relay, sign_in

    for binary in (relayserver.SERVER, relayserver.AGENT):
        if not binary.is_file():
            sys.exit(
                f"bench_viewer: {binary} is missing: build release binaries with `swift build -c release --scratch-path .build-release` "
                "(or give --build-dir with relay-server and relay-agent in it)"
            )
    if not shutil.which("Xvfb"):
        sys.exit("bench_viewer: Xvfb is missing: apt-get install xvfb (scripts/lib/prerequisites.sh installs it)")
    display = free_display()
    xvfb = subprocess.Popen(
        ["Xvfb", f":{display}", "-screen", "0", "1920x1080x24", "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=open(keep / "xvfb.log", "wb")
    )
    target = relay = browser = None
    try:
        wait_for(lambda: pathlib.Path(f"/tmp/.X11-unix/X{display}").exists() or xvfb.poll() is not None, 15, f"Xvfb :{display} starting")
        if xvfb.poll() is not None:
            sys.exit(f"bench_viewer: Xvfb :{display} exited: {(keep / 'xvfb.log').read_text(errors='replace')}")
        target = subprocess.Popen([sys.executable, str(HERE / "click_target.py"), f":{display}"], stdout=subprocess.PIPE, text=True)
        if target.stdout.readline().strip() != "ready":
            sys.exit("bench_viewer: click_target.py did not map its window")
        relay = Relay(keep / "relay").start()
        company = relay.add_company("Benchmark company")
        host_id = relay.enroll_host(company, "Xvfb click target")
        relay.cli_json("host", "set-key", host_id, "--public-key", relay.new_public_key(relay.folder / f"{host_id}.key", host_id))
        browser = launch(playwright, chromium)
        context = browser.new_context(ignore_https_errors=True, viewport={"width": 1920, "height": 1080})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.add_init_script(PROBE)
        sign_in(page, relay, "bench.engineer", PASSWORD, company=company)
        results = {}
        for fps in fps_values:
            agent = start_host_agent(relay, host_id, f"x11::{display}", fps, relay.folder / f"agent-fps{fps:g}.log")
            wait_for(lambda: host_status(page, host_id) == "online", 30, f"the host (--fps {fps:g}) coming online")
            per_run = []
            for run in range(runs):
                # A new document each run (a goto that changes only the fragment would keep the page).
                page.goto("about:blank")
                page.goto(f"{relay.url}/view#host={host_id}")
                body = page.locator("body")
                wait_for(lambda: body.get_attribute("data-state") == "live" and int(body.get_attribute("data-updates")) > 0, 30, "the viewer going live")
                page.wait_for_timeout(1000)
                box = page.locator("#screen").bounding_box()
                x, y = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5
                page.mouse.move(x, y)
                page.wait_for_timeout(500)
                assert page.evaluate("window.__clickProbe.results.length") == 0, "the probe kept clicks of an earlier page"
                samples = []
                for number in range(clicks):
                    page.wait_for_timeout(random.uniform(150, 350))  # any phase of the host's capture interval
                    page.mouse.down()
                    page.mouse.up()
                    wait_for(lambda: page.evaluate("window.__clickProbe.results.length") > number, 10, f"click {number + 1}'s pixels on the canvas")
                    samples.append(page.evaluate(f"window.__clickProbe.results[{number}]"))
                per_run.append(samples)
                totals = sorted(sample["paintAt"] - sample["clickAt"] for sample in samples)
                log(f"    --fps {fps:g} run {run + 1}: click to paint median {statistics.median(totals):.1f} ms (min {totals[0]:.1f}, max {totals[-1]:.1f})")
            stop(agent)
            relay._agents.remove(agent)
            wait_for(lambda: host_status(page, host_id) != "online", 30, "the host going offline")
            results[f"{fps:g}"] = per_run
        if errors:
            sys.exit("bench_viewer: errors in the viewer page:\n" + "\n".join(errors))
        return results, browser.version
    finally:
        if browser is not None:
            browser.close()
        if relay is not None:
            relay.stop()
        stop(target)
        stop(xvfb)


def latency_figures(per_run: list[list[dict]]) -> dict:
    def parts(sample: dict) -> dict:
        return {
            "click_to_paint": sample["paintAt"] - sample["clickAt"],
            "click_to_frame": sample["frameAt"] - sample["clickAt"],
            "page_out": sample["sentAt"] - sample["clickAt"],
            "round_trip": sample["messageAt"] - sample["sentAt"],
            "page_in": sample["paintAt"] - sample["messageAt"],
        }

    figures = {}
    for key in ("click_to_paint", "click_to_frame", "page_out", "round_trip", "page_in"):
        medians = [statistics.median(parts(sample)[key] for sample in samples) for samples in per_run]
        everything = sorted(parts(sample)[key] for samples in per_run for sample in samples)
        figures[key] = {
            **spread(medians),
            "all_min": everything[0],
            "all_p10": everything[len(everything) // 10],
            "all_p90": everything[min(len(everything) - 1, len(everything) * 9 // 10)],
            "all_max": everything[-1],
            "clicks": len(everything),
        }
    return figures


# ---- Main ----


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + "\n\n" + "\n\n".join(__doc__.split("\n\n")[1:3]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--part", choices=("decode", "latency", "all"), default="all", help="what to measure (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="runs of everything; figures are the median and range over runs (default: 3)")
    parser.add_argument("--seconds", type=float, default=2.0, help="decode: timed seconds per case and run (default: 2)")
    parser.add_argument("--updates", type=int, default=120, help="decode: updates per synthetic case after the first, full one (default: 120)")
    parser.add_argument(
        "--frames",
        action="append",
        type=pathlib.Path,
        help="decode: a recorded folder of PNG frames; repeat for more (default: every folder of benchmarks/frames)",
    )
    parser.add_argument(
        "--bodies",
        type=pathlib.Path,
        help="decode: bodies written earlier by `relay-bench codec --save-bodies` (default: written now into a temporary folder)",
    )
    parser.add_argument(
        "--relay-bench",
        type=pathlib.Path,
        default=REPOSITORY / "benchmarks" / ".build" / "release" / "relay-bench",
        help="the relay-bench binary (default: %(default)s)",
    )
    parser.add_argument("--profile", action="store_true", help="decode: also sample the page's CPU profile per case and print the functions that take the time")
    parser.add_argument(
        "--build-dir", type=pathlib.Path, help="latency: the folder with relay-server and relay-agent (default: .build-release/release, else .build/release)"
    )
    parser.add_argument("--host-fps", default="15", help="latency: relay-agent host --fps values, comma-separated (default: 15, the agent's default)")
    parser.add_argument("--clicks", type=int, default=30, help="latency: clicks per run (default: 30)")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"), help="the Chromium binary (default: %(default)s)")
    parser.add_argument("--json", type=pathlib.Path, help="also write every figure and sample as JSON to this file")
    options = parser.parse_args()
    if options.runs < 1 or options.clicks < 1 or options.seconds <= 0 or options.updates < 1:
        parser.error("--runs, --clicks and --updates must be at least 1, --seconds positive")
    try:
        fps_values = [float(value) for value in options.host_fps.split(",") if value.strip()]
    except ValueError:
        parser.error(f"--host-fps takes numbers separated by commas, not {options.host_fps!r}")
    if not pathlib.Path(options.chromium).is_file():
        sys.exit(f"bench_viewer: {options.chromium} is missing: apt-get install -y --no-install-recommends chromium (or give --chromium PATH)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("bench_viewer: Playwright for Python is missing: run this with .build-browser-venv/bin/python (scripts/test.sh makes it)")

    report: dict = {"command": " ".join([pathlib.Path(sys.executable).name, *sys.argv]), "load_average_start": os.getloadavg()}
    versions = set()
    with tempfile.TemporaryDirectory(prefix="bench-viewer-") as scratch, sync_playwright() as playwright:
        scratch_path = pathlib.Path(scratch)
        if options.part in ("decode", "all"):
            frame_folders = options.frames or sorted(folder for folder in FRAMES.iterdir() if folder.is_dir() and any(folder.glob("*.png")))
            bodies = options.bodies or scratch_path / "bodies"
            if options.bodies is None:
                make_bodies(options.relay_bench, bodies, frame_folders, options.updates)
            cases = [name for name in [*SYNTHETIC_CASES, *(folder.name for folder in frame_folders)] if (bodies / name / "meta.json").is_file()]
            if not cases:
                sys.exit(f"bench_viewer: no case folders with meta.json in {bodies}")
            server = serve(bodies)
            site = f"http://127.0.0.1:{server.server_address[1]}"
            runs = []
            for run in range(options.runs):
                log(f"==> decode, run {run + 1} of {options.runs}")
                results, version = decode_run(playwright, options.chromium, site, cases, options.seconds)
                versions.add(version)
                runs.append(results)
            report["decode"] = {"cases": cases, "runs": runs}
            if options.profile:
                log("==> decode, CPU profile")
                report["decode"]["profile"] = profile_cases(playwright, options.chromium, site, cases, options.seconds)
            server.shutdown()
        if options.part in ("latency", "all"):
            build_dir = options.build_dir
            if build_dir is None:
                build_dir = next(
                    (REPOSITORY / folder for folder in (".build-release/release", ".build/release") if (REPOSITORY / folder / "relay-agent").is_file()),
                    REPOSITORY / ".build-release" / "release",
                )
            log(f"==> latency with {build_dir}, host --fps {options.host_fps}, {options.runs} runs of {options.clicks} clicks")
            samples, version = latency(playwright, options.chromium, build_dir.resolve(), fps_values, options.runs, options.clicks, scratch_path)
            versions.add(version)
            report["latency"] = {"build_dir": str(build_dir), "samples": samples, "figures": {fps: latency_figures(runs) for fps, runs in samples.items()}}
    report["machine"] = machine(", ".join(sorted(versions)) or None)
    print_report(report)
    if options.json:
        options.json.write_text(json.dumps(report, indent=1))
        log(f"==> JSON in {options.json}")
    return 0


def print_report(report: dict) -> None:
    m = report["machine"]
    print(f"\nMachine: {m['cpu']}, {m['cores']} cores, {m['os']}; Chromium {m['chromium']} (headless), Playwright {m['playwright']}")
    loads = [", ".join(f"{value:.2f}" for value in load) for load in (report["load_average_start"], m["load_average"])]
    print(f"Date: {m['date']} (the end); load average (1, 5, 15 min) at the start {loads[0]}, at the end {loads[1]}")
    if "decode" in report:
        runs = report["decode"]["runs"]
        print(f"\nDecode and paint, 1920x1080 (tiles.js + putImageData of the dirty rectangle); median (min–max) over {len(runs)} runs\n")
        rows = []
        for name in report["decode"]["cases"]:
            def pick(path, name=name):
                values = []
                for run in runs:
                    value = run[name]
                    for key in path:
                        value = value[key]
                    values.append(value)
                return spread(values)

            rate = pick(["updates_per_second"])
            target = DECODE_TARGETS.get(name)
            verdict = "" if target is None else (f"≥ {target:g}: **PASS**" if rate["median"] >= target else f"≥ {target:g}: **FAIL**")
            apply, inflate, paint = pick(["apply_ms", "mean"]), pick(["inflate_ms", "mean"]), pick(["paint_ms", "mean"])
            decode = spread([a - i for a, i in zip(apply["runs"], inflate["runs"])])
            checks = all(all(run[name]["checks"].values()) for run in runs)
            frame_rates = [run[name]["frames_rendered_per_second"] for run in runs]
            rendered = "—" if None in frame_rates else fmt_spread(spread(frame_rates), 0)
            first = runs[0][name]
            rows.append(
                [
                    name, fmt_spread(rate), verdict or "—", fmt_spread(apply, 2), fmt_spread(inflate, 2), fmt_spread(decode, 2), fmt_spread(paint, 2),
                    fmt(pick(["apply_ms", "p95"])["median"], 2), rendered,
                    fmt(pick(["chromium_cpu_per_wall"])["median"], 2),
                    f"{first['body_bytes_per_update'] / 1000:,.1f} / {first['inflated_bytes_per_update'] / 1000:,.1f}",
                    "equal" if checks else "**DIFFERENT**",
                ]
            )  # fmt: skip
        print(
            table(
                [
                    "case", "updates/s", "target", "apply ms/update", "inflate alone", "parse + draw", "putImageData ms",
                    "apply p95", "frames rendered/s", "Chromium cpu/wall", "kB body / inflated", "pixels",
                ],
                rows,
            )
        )  # fmt: skip
        if "profile" in report["decode"]:
            print("\nCPU profile of the page's main thread in the timed parts, self time (top functions per case; the benchmark loop left out):")
            for name, profile in report["decode"]["profile"].items():
                top = ", ".join(f"{entry['function']} {entry['share'] * 100:.0f}%" for entry in profile["top"][:8])
                print(f"- {name} ({profile['total_ms']:.0f} ms sampled, {profile['left_out_ms']:.0f} ms left out): {top}")
    if "latency" in report:
        print("\nClick to changed pixels through relay-server and relay-agent host (x11, Xvfb) on loopback; ms, median (min–max) of the run medians\n")
        rows = []
        for fps, figures in report["latency"]["figures"].items():
            total = figures["click_to_paint"]
            verdict = "**PASS**" if total["median"] <= LATENCY_TARGET_MS else "**FAIL**"
            rows.append(
                [
                    fps, fmt_spread(total), f"≤ {LATENCY_TARGET_MS:g}: {verdict}",
                    f"{total['all_p10']:.1f}–{total['all_p90']:.1f} (max {total['all_max']:.0f})", fmt_spread(figures["click_to_frame"]),
                    fmt_spread(figures["page_out"]), fmt_spread(figures["round_trip"]), fmt(figures["round_trip"]["all_min"]),
                    fmt_spread(figures["page_in"]), str(total["clicks"]),
                ]
            )  # fmt: skip
        print(
            table(
                [
                    "host --fps", "click → paint", "target", "p10–p90 all clicks", "click → frame shown", "click → sent",
                    "sent → update received", "its minimum", "received → painted", "clicks",
                ],
                rows,
            )
        )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
