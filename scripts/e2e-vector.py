#!/usr/bin/env python3
"""Recomputes PROTOCOL.md §10.4 ("E2E vector: fixed-keys") with Python's `cryptography`
package, an implementation independent of the Swift code, and checks every output line.
Usage: scripts/e2e-vector.py [docs/PROTOCOL.md]; exits 1 on a mismatch."""
import hashlib
import re
import struct
import sys

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

path = sys.argv[1] if len(sys.argv) > 1 else "docs/PROTOCOL.md"
text = open(path, encoding="utf-8").read()
block = re.search(r"#### E2E vector: fixed-keys.*?```text\n(.*?)```", text, re.S)
if not block:
    sys.exit(f"{path}: no 'E2E vector: fixed-keys' block")
v = dict(line.split(": ", 1) for line in block.group(1).strip().split("\n"))
b = lambda name: bytes.fromhex(v[name].replace(" ", ""))
raw = lambda key: key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
frame = lambda kind, payload: bytes([kind]) + len(payload).to_bytes(3, "big") + payload

host_id = Ed25519PrivateKey.from_private_bytes(b("host-identity-private"))
viewer_id = Ed25519PrivateKey.from_private_bytes(b("viewer-identity-private"))
host_e = X25519PrivateKey.from_private_bytes(b("host-ephemeral-private"))
viewer_e = X25519PrivateKey.from_private_bytes(b("viewer-ephemeral-private"))
host_share = bytes([1, 1]) + raw(host_e) + raw(host_id)
viewer_share = bytes([1, 2]) + raw(viewer_e) + raw(viewer_id)
commitment = hashlib.sha256(viewer_share).digest()
transcript = hashlib.sha256(b"SupportRelay E2E v1" + b("session-id") + commitment + host_share + viewer_share).digest()
shared = host_e.exchange(viewer_e.public_key())
okm = HKDF(hashes.SHA256(), 68, transcript, b"SupportRelay E2E v1 keys").derive(shared)
code = "%06d" % (struct.unpack(">I", okm[64:68])[0] % 1_000_000)


def seal(key, sequence, inner):
    header = bytes([0x49]) + (len(inner) + 16).to_bytes(3, "big")
    return header + AESGCM(key).encrypt(bytes(4) + sequence.to_bytes(8, "big"), inner, header)


def identity(key, role, name, organization):
    signature = key.sign(b"SupportRelay E2E v1 identity" + bytes([role]) + transcript)
    text = lambda s: len(s.encode()).to_bytes(2, "big") + s.encode()
    return bytes([0x4A]) + signature + text(name) + text(organization)


computed = {
    "key-commit-frame": frame(0x47, bytes([1]) + commitment),
    "host-key-share-frame": frame(0x48, host_share),
    "viewer-key-share-frame": frame(0x48, viewer_share),
    "transcript-hash": transcript,
    "x25519-shared-secret": shared,
    "key-host-to-viewer": okm[:32],
    "key-viewer-to-host": okm[32:64],
    "host-identity-record": seal(okm[:32], 0, identity(host_id, 1, v["host-name"], "")),
    "viewer-identity-record": seal(okm[32:64], 0, identity(viewer_id, 2, v["viewer-name"], v["viewer-organization"])),
    "host-record-1-clipboard-hello": seal(okm[:32], 1, bytes([0x45]) + b"hello"),
}
failed = [name for name, value in computed.items() if value.hex(" ") != v[name]]
if v["short-authentication-string"] != f"{code[:3]} {code[3:]}":
    failed.append("short-authentication-string")
for name in failed:
    print(f"{path} §10.4: {name} differs from an independent computation", file=sys.stderr)
if failed:
    sys.exit(1)
print(f"{path} §10.4: all {len(computed) + 1} end-to-end vector values match an independent implementation (pyca/cryptography)")
