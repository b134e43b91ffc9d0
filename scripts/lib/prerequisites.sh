# Shared by scripts/demo.sh and scripts/test.sh: checks the Swift toolchain and installs
# the Debian packages the build needs, only those missing, from Debian's archive.
# shellcheck shell=bash

# libxfixes-dev: the host's X clipboard watches CLIPBOARD through XFIXES (X11Clipboard).
# python3-cryptography: scripts/e2e-vector.py checks PROTOCOL.md's end-to-end vectors with it.
# chromium, python3-venv: the browser tests (Tests/browser) drive Debian's Chromium with
# Playwright for Python, installed in a virtual environment (ensure_browser_tools).
# postgresql: the PostgreSQL store's tests run on a throwaway server (scripts/lib/postgres.sh).
# haproxy: scripts/cluster-demo.sh puts three relay nodes behind it (plain TCP, round robin).
APT_PACKAGES=(pkg-config libsqlite3-dev zlib1g-dev openssl libpng-dev libx11-dev libxext-dev libxtst-dev libxfixes-dev xvfb xauth xdotool x11-utils xterm x11-apps x11-xserver-utils python3 python3-cryptography python3-venv chromium postgresql haproxy)
# libxdamage-dev: the host captures only what the X server reports drawn (X DAMAGE).
# x11vnc, tigervnc-viewer: benchmarks/host-capture/run.py compares the host with x11vnc
# streaming ZRLE to TigerVNC's viewer on the same Xvfb workload (xterm, xclock, xeyes).
APT_PACKAGES+=(libxdamage-dev x11vnc tigervnc-viewer)

# The browser tests' Python: a virtual environment in the repository's .build-browser-venv
# (ignored by git, like every .build* folder), made and filled on first use.
BROWSER_VENV="${BROWSER_VENV:-$PWD/.build-browser-venv}"
PLAYWRIGHT_VERSION="1.65.2"
PYTEST_VERSION="8.4.2"
# Reads the admin console's XLSX exports back in the tests (test_admin_api.py).
OPENPYXL_VERSION="3.1.5"

# ensure_browser_tools: after ensure_prerequisites. Playwright drives /usr/bin/chromium;
# it never downloads a browser of its own (no `playwright install`).
ensure_browser_tools() {
    if [ ! -x "$BROWSER_VENV/bin/python" ]; then
        echo "==> Making the browser tests' Python environment ($BROWSER_VENV)"
        python3 -m venv "$BROWSER_VENV"
    fi
    if ! "$BROWSER_VENV/bin/python" -c "import playwright, pytest, openpyxl" >/dev/null 2>&1; then
        echo "==> Installing Playwright $PLAYWRIGHT_VERSION, pytest $PYTEST_VERSION and openpyxl $OPENPYXL_VERSION (pip, into $BROWSER_VENV)"
        "$BROWSER_VENV/bin/pip" install -q --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION" "pytest==$PYTEST_VERSION" "openpyxl==$OPENPYXL_VERSION"
    fi
    export BROWSER_PYTHON="$BROWSER_VENV/bin/python"
    export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
}

ensure_prerequisites() {
    if ! command -v swift >/dev/null 2>&1; then
        if [ -x /opt/swift/usr/bin/swift ]; then
            export PATH="/opt/swift/usr/bin:$PATH"
        else
            echo "error: no Swift toolchain found. Install Swift 6.1 or newer (swift.org/install) and retry." >&2
            exit 1
        fi
    fi
    local missing=()
    for package in "${APT_PACKAGES[@]}"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> Installing Debian packages: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}
