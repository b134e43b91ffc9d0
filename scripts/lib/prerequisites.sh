# Shared by scripts/demo.sh and scripts/test.sh: checks the Swift toolchain and installs
# the Debian packages the build needs, only those missing, from Debian's archive.
# shellcheck shell=bash

# python3-cryptography: scripts/e2e-vector.py checks PROTOCOL.md's end-to-end vectors with it.
APT_PACKAGES=(pkg-config libsqlite3-dev zlib1g-dev openssl libpng-dev libx11-dev libxext-dev libxtst-dev xvfb xauth xdotool x11-utils xterm x11-apps x11-xserver-utils python3 python3-cryptography)

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
