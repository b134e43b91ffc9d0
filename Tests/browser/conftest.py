"""Shared fixtures of the browser tests: Debian's Chromium driven by Playwright for Python.

Run through scripts/test.sh (which makes the virtual environment), or by hand:
    source scripts/lib/prerequisites.sh; ensure_prerequisites; ensure_browser_tools
    "$BROWSER_PYTHON" -m pytest Tests/browser
"""

import functools
import http.server
import os
import pathlib
import threading

import pytest
from playwright.sync_api import sync_playwright

REPOSITORY = pathlib.Path(__file__).resolve().parents[2]
STATIC = REPOSITORY / "Sources" / "RelayServer" / "Web" / "Static"
PROTOCOL = REPOSITORY / "docs" / "PROTOCOL.md"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")

# A page with no script of its own, from which a test imports the app's modules.
BLANK_PAGE = b"<!doctype html><meta charset=utf-8><title>module test</title>"


class _StaticHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the web app's files as they are in the repository, and /blank.html."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript"}

    def do_GET(self):
        if self.path == "/blank.html":
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(BLANK_PAGE)))
            self.end_headers()
            self.wfile.write(BLANK_PAGE)
            return
        super().do_GET()

    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="session")
def static_site():
    """The app's static files over http://127.0.0.1 (a secure context: WebCrypto works)."""
    handler = functools.partial(_StaticHandler, directory=str(STATIC))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def module_page(browser, static_site):
    """A blank page on the static site: `page.evaluate("import('/js/x.js')")` loads a module."""
    context = browser.new_context()
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{static_site}/blank.html")
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
