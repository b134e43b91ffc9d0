#!/usr/bin/env bash
# make-relay-cert.sh DNS_NAME [OUT_DIR]
#
# Makes TLS material for a SupportRelay relay with the openssl command-line tool:
#   - a private certificate authority (ECDSA P-256, 10 years), unless OUT_DIR/ca.pem
#     already exists, in which case that CA (and OUT_DIR/ca-key.pem) signs the new cert;
#   - a relay certificate for DNS_NAME (ECDSA P-256, 825 days, serverAuth), signed by it.
#
# OUT_DIR defaults to ./relay-certs. Private keys are written with mode 0600. Never put
# OUT_DIR inside the repository and never commit a key. See certs/README.md.
set -euo pipefail

usage() {
    echo "usage: $0 DNS_NAME [OUT_DIR]" >&2
    echo "  e.g. $0 relay.example.com /etc/supportrelay/tls" >&2
}

die() {
    echo "make-relay-cert.sh: $*" >&2
    exit 1
}

if [[ $# -lt 1 || $# -gt 2 || "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    usage
    exit 2
fi

name="$1"
out="${2:-./relay-certs}"

command -v openssl >/dev/null 2>&1 \
    || die "openssl is not installed; install it (Debian/Ubuntu: sudo apt-get install openssl) and run again"

# A DNS name: letters, digits and hyphens in dot-separated labels, at most 253 characters;
# a leading "*." is allowed for a wildcard. IP addresses are refused on purpose (README).
lower="$(printf '%s' "$name" | tr 'A-Z' 'a-z')"
if [[ ${#lower} -gt 253 ]] \
    || ! [[ "$lower" =~ ^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ ]]; then
    die "\"$name\" is not a DNS name; give the name agents use to reach the relay, e.g. relay.example.com"
fi
if [[ "$lower" =~ ^[0-9.]+$ ]]; then
    die "\"$name\" is an IP address; this script makes DNS-name certificates only (see certs/README.md): give the relay a DNS name"
fi

umask 077
mkdir -p "$out" || die "cannot create the folder $out"
[[ -w "$out" ]] || die "cannot write to $out"

# Private keys must not end up in a git repository (this one or any other), unless the
# folder is ignored there. RELAY_CERT_ALLOW_GIT=1 skips the check (e.g. etckeeper's /etc).
if [[ "${RELAY_CERT_ALLOW_GIT:-0}" != 1 ]] && command -v git >/dev/null 2>&1 \
    && git -C "$out" rev-parse --is-inside-work-tree >/dev/null 2>&1 \
    && ! git -C "$out" check-ignore -q "$(cd "$out" && pwd)/relay-key.pem" 2>/dev/null; then
    repo="$(git -C "$out" rev-parse --show-toplevel 2>/dev/null || true)"
    rmdir "$out" 2>/dev/null || true
    die "$out is inside the git repository $repo and not ignored there; give a folder outside it (e.g. /etc/supportrelay/tls or ~/relay-certs) so no private key is committed"
fi

ca_cert="$out/ca.pem"
ca_key="$out/ca-key.pem"
cert="$out/relay-cert.pem"
key="$out/relay-key.pem"
csr="$out/relay.csr"
ext="$out/relay-ext.cnf"
trap 'rm -f "$csr" "$ext" "$out/ca.srl"' EXIT

if [[ -e "$ca_cert" ]]; then
    [[ -e "$ca_key" ]] || die "$ca_cert exists but $ca_key does not; put the CA's key there, or move ca.pem aside to make a new CA"
    echo "Using the existing CA $ca_cert."
else
    echo "Making a private CA in $ca_cert (ECDSA P-256, 10 years)."
    openssl ecparam -name prime256v1 -genkey -noout -out "$ca_key"
    chmod 600 "$ca_key"
    openssl req -x509 -new -sha256 -key "$ca_key" -days 3650 \
        -subj "/CN=SupportRelay private CA" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$ca_cert"
    chmod 644 "$ca_cert"
fi

if [[ -e "$cert" || -e "$key" ]]; then
    # Rotation: keep the previous pair next to the new one until the relay has restarted.
    stamp="$(date -u +%Y%m%dT%H%M%SZ)"
    [[ -e "$cert" ]] && mv "$cert" "$cert.$stamp"
    [[ -e "$key" ]] && mv "$key" "$key.$stamp"
    echo "Moved the previous relay-cert.pem/relay-key.pem aside (suffix .$stamp); delete them once the relay runs with the new pair."
fi
echo "Making the relay certificate for $lower (825 days)."
openssl ecparam -name prime256v1 -genkey -noout -out "$key"
chmod 600 "$key"
openssl req -new -sha256 -key "$key" -subj "/CN=$lower" -out "$csr"
cat > "$ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:$lower
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
openssl x509 -req -sha256 -in "$csr" -CA "$ca_cert" -CAkey "$ca_key" -CAcreateserial \
    -days 825 -extfile "$ext" -out "$cert" 2>/dev/null \
    || die "openssl could not sign the certificate; is $ca_key the key of $ca_cert?"
chmod 644 "$cert"
openssl verify -CAfile "$ca_cert" "$cert" >/dev/null \
    || die "the new certificate does not verify against $ca_cert"

fingerprint="$(openssl x509 -in "$cert" -noout -fingerprint -sha256 | sed 's/^[^=]*=//')"
abs_out="$(cd "$out" && pwd)"

cat <<MSG

Done. In $abs_out:
  ca.pem          the CA certificate: copy it to every agent (public)
  ca-key.pem      the CA's private key (0600): keep it offline; it signs future relay certificates
  relay-cert.pem  the relay certificate for $lower
  relay-key.pem   the relay's private key (0600): only the relay reads it
  fingerprint     $fingerprint

Run the relay with it:
  relay-server serve --cert $abs_out/relay-cert.pem --key $abs_out/relay-key.pem

Agents connect by the DNS name and trust the CA:
  relay-agent view --relay $lower:7443 --ca ca.pem --token TOKEN --new-code
  relay-agent host --relay $lower:7443 --ca ca.pem --code NNNNNN
(or pin this certificate alone with --fingerprint $fingerprint)
MSG
