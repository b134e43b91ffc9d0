"""The web viewer's end-to-end encryption (js/secure.js) in Chromium, against PROTOCOL.md §10.4.

The vectors are read from the document. The host side is the document's bytes, or, where a
test needs records the document does not list, plain WebCrypto calls written here (not
secure.js); the venv has no `cryptography`, so checks Python can make alone (SHA-256) are
made with hashlib.
"""

import base64
import hashlib
import re

import pytest

from conftest import PROTOCOL

LABEL = b"SupportRelay E2E v1"


def _vectors():
    text = PROTOCOL.read_text(encoding="utf-8")
    block = re.search(r"#### E2E vector: fixed-keys.*?```text\n(.*?)```", text, re.S)
    assert block, "docs/PROTOCOL.md has no '#### E2E vector: fixed-keys' block in §10.4"
    return dict(line.split(": ", 1) for line in block.group(1).strip().split("\n"))


VECTORS = _vectors()


def vector_bytes(name):
    return bytes.fromhex(VECTORS[name].replace(" ", ""))


def payload(name, frame_type):
    """The payload of a §10.4 frame, after checking its header (§2) against the payload."""
    frame = vector_bytes(name)
    assert frame[0] == frame_type and int.from_bytes(frame[1:4], "big") == len(frame) - 4, name
    return frame[4:]


# Shared by every page script: secure.js, hex helpers, the vectors, and a host made of
# plain WebCrypto calls (independent of secure.js) for records the document does not list.
PRELUDE = r"""
const secure = await import('/js/secure.js');
const V = arg.vectors;
const hex = (text) => Uint8Array.from(text.replace(/ /g, '').match(/../g) ?? [], (pair) => parseInt(pair, 16));
const toHex = (bytes) => Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
const framePayload = (name) => hex(V[name]).slice(4);
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) { out.set(part, offset); offset += part.length; }
  return out;
};
const utf8 = (text) => new TextEncoder().encode(text);
const str16 = (bytes) => concat(Uint8Array.of(bytes.length >> 8, bytes.length & 255), bytes);
const PKCS8 = { Ed25519: hex('302e020100300506032b657004220420'), X25519: hex('302e020100300506032b656e04220420') };
const importPrivate = (algorithm, raw, usages) =>
  crypto.subtle.importKey('pkcs8', concat(PKCS8[algorithm], raw), { name: algorithm }, false, usages);

async function vectorViewer(options = {}) {
  const identity = await secure.identityFromPrivateKey(hex(V['viewer-identity-private']));
  return new secure.ViewerHandshake({
    sessionID: hex(V['session-id']), identity, name: V['viewer-name'], organization: V['viewer-organization'],
    ephemeral: hex(V['viewer-ephemeral-private']), ...options,
  });
}
// A viewer of the vectors that has received the host's KeyShare (keys exist).
async function keyedViewer(options = {}) {
  const viewer = await vectorViewer(options);
  await viewer.start();
  await viewer.receiveKeyShare(framePayload('host-key-share-frame'));
  return viewer;
}
// A viewer of the vectors that has verified the host's Identity.
async function establishedViewer(options = {}) {
  const viewer = await keyedViewer(options);
  await viewer.open(framePayload('host-identity-record'));
  return viewer;
}
// What a call threw: {name, kind, message}, or null when it did not throw.
async function refusal(call) {
  try { await call(); return null; } catch (error) {
    return { name: error.name, kind: error.kind ?? null, message: error.message };
  }
}
// §5.3.5 sealing with plain WebCrypto: AES-256-GCM, nonce 4 zero bytes || u64 seq, AAD the header.
async function rawSeal(keyBytes, sequence, innerType, inner) {
  const plaintext = concat(Uint8Array.of(innerType), inner);
  const length = plaintext.length + 16;
  const header = Uint8Array.of(0x49, length >> 16, (length >> 8) & 255, length & 255);
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setBigUint64(4, BigInt(sequence));
  const key = await crypto.subtle.importKey('raw', keyBytes, 'AES-GCM', false, ['encrypt']);
  return new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: header }, key, plaintext));
}
async function rawOpen(keyBytes, sequence, sealed) {
  const header = Uint8Array.of(0x49, sealed.length >> 16, (sealed.length >> 8) & 255, sealed.length & 255);
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setBigUint64(4, BigInt(sequence));
  const key = await crypto.subtle.importKey('raw', keyBytes, 'AES-GCM', false, ['decrypt']);
  return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv, additionalData: header }, key, sealed));
}
const hostSeal = (sequence, innerType, inner) => rawSeal(hex(V['key-host-to-viewer']), sequence, innerType, inner);
// The host's Identity payload (§5.3.6) signed by `privateKey` over label || role || th.
async function identityPayload(privateKey, role, transcript, name, organization = '') {
  const signed = concat(utf8('SupportRelay E2E v1 identity'), Uint8Array.of(role), transcript);
  const signature = new Uint8Array(await crypto.subtle.sign('Ed25519', privateKey, signed));
  return concat(signature, str16(utf8(name)), str16(utf8(organization)));
}
"""


def run(page, body, **arg):
    """Runs `body` (an async function body after PRELUDE, with `arg`) in the page."""
    return page.evaluate("async (arg) => {\n" + PRELUDE + body + "\n}", {"vectors": VECTORS, **arg})


TAMPERING = (
    "a message between host and viewer was altered, replayed, reordered or dropped on the way"
)


def assert_tampering(refused, detail=None):
    assert refused is not None, "the record was accepted"
    assert refused["name"] == "SecureChannelError" and refused["kind"] == "recordRejected", refused
    assert refused["message"].startswith("end-to-end check failed ("), refused
    assert TAMPERING in refused["message"] and "Connect again" in refused["message"], refused
    if detail:
        assert detail in refused["message"], refused


# MARK: - The document and Chromium


def test_the_vectors_hash_as_the_document_says():
    """Python alone (hashlib): the commitment and the transcript hash follow from the shares."""
    viewer_share = payload("viewer-key-share-frame", 0x48)
    host_share = payload("host-key-share-frame", 0x48)
    commitment = payload("key-commit-frame", 0x47)
    assert commitment == bytes([1]) + hashlib.sha256(viewer_share).digest()
    transcript = hashlib.sha256(LABEL + vector_bytes("session-id") + commitment[1:] + host_share + viewer_share)
    assert transcript.digest() == vector_bytes("transcript-hash")
    assert [host_share[:2], viewer_share[:2]] == [bytes([1, 1]), bytes([1, 2])]
    for name in ("host-identity-record", "viewer-identity-record", "host-record-1-clipboard-hello"):
        payload(name, 0x49)


def test_chromium_imports_fixed_private_keys_as_pkcs8_and_as_jwk_only_with_x(module_page):
    result = run(
        module_page,
        r"""
        const out = {};
        const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_')
          .replace(/=+$/, '');
        const tries = async (name, call) => {
          try { await call(); out[name] = 'ok'; } catch (error) { out[name] = error.name; }
        };
        for (const [algorithm, name, usages] of [['Ed25519', 'host-identity-private', ['sign']],
                                                 ['X25519', 'host-ephemeral-private', ['deriveBits']]]) {
          const raw = hex(V[name]);
          const key = await crypto.subtle.importKey('pkcs8', concat(PKCS8[algorithm], raw), { name: algorithm }, true,
                                                    usages);
          const jwk = await crypto.subtle.exportKey('jwk', key);
          out[algorithm + ' pkcs8 x'] = toHex(Uint8Array.from(atob(jwk.x.replace(/-/g, '+').replace(/_/g, '/')),
                                                              (c) => c.charCodeAt(0)));
          await tries(algorithm + ' raw', () => crypto.subtle.importKey('raw', raw, algorithm, false, usages));
          const d = b64url(raw);
          await tries(algorithm + ' jwk d', () =>
            crypto.subtle.importKey('jwk', { kty: 'OKP', crv: algorithm, d }, { name: algorithm }, false, usages));
          await tries(algorithm + ' jwk d x', () =>
            crypto.subtle.importKey('jwk', { kty: 'OKP', crv: algorithm, d, x: jwk.x }, { name: algorithm }, false,
                                    usages));
          await tries(algorithm + ' jwk d wrong x', () =>
            crypto.subtle.importKey('jwk', { kty: 'OKP', crv: algorithm, d, x: b64url(new Uint8Array(32).fill(9)) },
                                    { name: algorithm }, false, usages));
        }
        return out;
        """,
    )
    host_share = payload("host-key-share-frame", 0x48)
    assert result["Ed25519 pkcs8 x"] == host_share[34:66].hex()
    assert result["X25519 pkcs8 x"] == host_share[2:34].hex()
    for algorithm in ("Ed25519", "X25519"):
        # A raw private key is not importable; a JWK needs `x`, and the right one.
        assert result[f"{algorithm} raw"] in ("SyntaxError", "NotSupportedError", "DataError")
        assert result[f"{algorithm} jwk d"] == "DataError"
        assert result[f"{algorithm} jwk d x"] == "ok"
        assert result[f"{algorithm} jwk d wrong x"] == "DataError"


# MARK: - The vectors


def test_viewer_reproduces_the_documented_handshake_byte_for_byte(module_page):
    result = run(
        module_page,
        r"""
        const viewer = await vectorViewer();
        const before = viewer.sas;
        const commit = await viewer.start();
        const { keyShare, identityRecord } = await viewer.receiveKeyShare(framePayload('host-key-share-frame'));
        return { before, commit: toHex(commit), keyShare: toHex(keyShare), identityRecord: toHex(identityRecord),
                 sas: viewer.sas, established: viewer.established };
        """,
    )
    assert result["before"] is None
    assert result["commit"] == payload("key-commit-frame", 0x47).hex()
    assert result["keyShare"] == payload("viewer-key-share-frame", 0x48).hex()
    assert result["identityRecord"] == payload("viewer-identity-record", 0x49).hex()
    assert result["sas"] == VECTORS["short-authentication-string"]
    assert result["established"] is False
    # What the host checks: the share sent is the one committed to.
    assert hashlib.sha256(bytes.fromhex(result["keyShare"])).digest() == bytes.fromhex(result["commit"])[1:]


def test_viewer_opens_the_hosts_documented_records(module_page):
    result = run(
        module_page,
        r"""
        const viewer = await keyedViewer();
        const identity = await viewer.open(framePayload('host-identity-record'));
        const established = viewer.established;
        const clipboard = await viewer.open(framePayload('host-record-1-clipboard-hello'));
        return { identity: { ...identity, hostKey: toHex(identity.hostKey) }, established,
                 clipboard: { type: clipboard.type, text: new TextDecoder().decode(clipboard.payload) } };
        """,
    )
    assert result["identity"] == {
        "type": 0x4A,
        "name": VECTORS["host-name"],
        "organization": "",
        "hostKey": payload("host-key-share-frame", 0x48)[34:66].hex(),
    }
    assert result["established"] is True
    assert result["clipboard"] == {"type": 0x45, "text": "hello"}


def test_names_in_the_hosts_identity_are_kept_as_sent(module_page):
    """§3: a leading U+FEFF is an ordinary character, kept; text is not normalised."""
    result = run(
        module_page,
        r"""
        const hostKey = await importPrivate('Ed25519', hex(V['host-identity-private']), ['sign']);
        const identity = await identityPayload(hostKey, 1, hex(V['transcript-hash']), '\ufeffFRONT-DESK', 'e\u0301');
        const viewer = await keyedViewer();
        const opened = await viewer.open(await hostSeal(0, 0x4a, identity));
        return [opened.name, opened.organization];
        """,
    )
    assert result == ["\ufeffFRONT-DESK", "e\u0301"]


def test_viewer_seals_its_later_records_as_plain_aes_gcm_does(module_page):
    result = run(
        module_page,
        r"""
        const viewer = await establishedViewer();
        const key = hex(V['key-viewer-to-host']);
        const request = Uint8Array.of(0, 0, 0, 7, 1);
        const key_a = Uint8Array.of(0, 0, 0, 0x61, 1);
        // Two seals in flight at once are numbered 1 and 2 in call order.
        const [first, second] = await Promise.all([viewer.seal(0x42, request), viewer.seal(0x44, key_a)]);
        const third = await viewer.seal(0x45, new Uint8Array(0));
        return {
          first: toHex(first), expectedFirst: toHex(await rawSeal(key, 1, 0x42, request)),
          second: toHex(second), expectedSecond: toHex(await rawSeal(key, 2, 0x44, key_a)),
          third: toHex(third), opened: toHex(await rawOpen(key, 3, third)),
        };
        """,
    )
    assert result["first"] == result["expectedFirst"]
    assert result["second"] == result["expectedSecond"]
    assert len(bytes.fromhex(result["third"])) == 17
    assert result["opened"] == "45"


# MARK: - Refusals


@pytest.mark.parametrize(
    "change",
    [
        "sealed[0] ^= 0x01",  # the first ciphertext byte
        "sealed[40] ^= 0x80",  # inside the signature
        "sealed[sealed.length - 1] ^= 0x01",  # the tag
        "sealed = concat(sealed, Uint8Array.of(0))",  # a longer record: another header (AAD)
        "sealed = sealed.slice(0, sealed.length - 1)",  # a shorter one
        "sealed = sealed.slice(0, 16)",  # too short to be a record
        "sealed = new Uint8Array(sealed.length)",  # completed with zero bytes by the relay (§2.3)
    ],
)
def test_a_changed_record_is_refused_as_tampering(module_page, change):
    refused = run(
        module_page,
        f"""
        const viewer = await keyedViewer();
        let sealed = framePayload('host-identity-record');
        {change};
        return refusal(() => viewer.open(sealed));
        """,
    )
    assert_tampering(refused)


def test_replayed_reordered_and_misdirected_records_are_refused(module_page):
    result = run(
        module_page,
        r"""
        const hello = utf8('hello');
        const records = [];
        for (let sequence = 1; sequence <= 3; sequence++) records.push(await hostSeal(sequence, 0x45, hello));
        const out = {};
        // The document's record 1 is what this host seals as 1.
        out.same = toHex(records[0]) === toHex(framePayload('host-record-1-clipboard-hello'));
        let viewer = await keyedViewer();
        await viewer.open(framePayload('host-identity-record'));
        out.replayedIdentity = await refusal(() => viewer.open(framePayload('host-identity-record')));
        viewer = await establishedViewer();
        await viewer.open(records[0]);
        out.replayed = await refusal(() => viewer.open(records[0]));
        viewer = await establishedViewer();
        await viewer.open(records[0]);
        out.reordered = await refusal(() => viewer.open(records[2]));
        viewer = await establishedViewer();
        out.dropped = await refusal(() => viewer.open(records[1]));
        viewer = await keyedViewer();
        out.recordOneFirst = await refusal(() => viewer.open(records[0]));
        // The viewer's own Identity, reflected back: the other direction's key.
        viewer = await keyedViewer();
        out.reflected = await refusal(() => viewer.open(framePayload('viewer-identity-record')));
        // The same record in another session (another session id, so another transcript and keys).
        viewer = await vectorViewer({ sessionID: new Uint8Array(16) });
        await viewer.start();
        await viewer.receiveKeyShare(framePayload('host-key-share-frame'));
        out.otherSession = await refusal(() => viewer.open(framePayload('host-identity-record')));
        out.otherSessionSAS = viewer.sas;
        return out;
        """,
    )
    assert result.pop("same") is True
    assert result.pop("otherSessionSAS") != VECTORS["short-authentication-string"]
    assert_tampering(result.pop("replayedIdentity"), "record 1 did not verify")
    assert_tampering(result.pop("replayed"), "record 2 did not verify")
    assert_tampering(result.pop("reordered"), "record 2 did not verify")
    assert_tampering(result.pop("dropped"), "record 1 did not verify")
    assert_tampering(result.pop("recordOneFirst"), "record 0 did not verify")
    for refused in result.values():
        assert_tampering(refused, "record 0 did not verify")


def test_a_host_share_other_than_the_one_the_host_made_breaks_the_session(module_page):
    """Someone in the middle answers the commitment with a share of their own: the viewer's
    keys and SAS differ from the host's, and the host's Identity does not open."""
    result = run(
        module_page,
        r"""
        const share = framePayload('host-key-share-frame');
        const mallory = await crypto.subtle.generateKey({ name: 'X25519' }, true, ['deriveBits']);
        share.set(new Uint8Array(await crypto.subtle.exportKey('raw', mallory.publicKey)), 2);
        const viewer = await vectorViewer();
        const commit = await viewer.start();
        const { keyShare } = await viewer.receiveKeyShare(share);
        const sas = viewer.sas;
        const opened = await refusal(() => viewer.open(framePayload('host-identity-record')));
        return { sas, opened, keyShare: toHex(keyShare), commit: toHex(commit) };
        """,
    )
    assert result["sas"] != VECTORS["short-authentication-string"]
    assert_tampering(result["opened"], "record 0 did not verify")
    # The viewer still sends the share it committed to, so the host's commitment check holds.
    assert hashlib.sha256(bytes.fromhex(result["keyShare"])).digest() == bytes.fromhex(result["commit"])[1:]


@pytest.mark.parametrize(
    "record, expected",
    [
        # The signature with one bit flipped.
        ("(() => { const p = good.slice(); p[5] ^= 0x04; return p; })()", "identity signature does not verify"),
        # Signed by another key than the KeyShare's identity key.
        ("identityPayload(other, 1, th, 'FRONT-DESK')", "identity signature does not verify"),
        # Signed with the viewer's role byte.
        ("identityPayload(hostKey, 2, th, 'FRONT-DESK')", "identity signature does not verify"),
        # Signed over another transcript.
        ("identityPayload(hostKey, 1, new Uint8Array(32), 'FRONT-DESK')", "identity signature does not verify"),
        # A byte after the organization (§3 trailing bytes).
        ("concat(good, Uint8Array.of(0))", "Identity record is malformed"),
        # A name whose length points past the end.
        ("concat(good.slice(0, 64), Uint8Array.of(0, 9, 0x41))", "Identity record is malformed"),
        # A name that is not UTF-8.
        ("concat(good.slice(0, 64), str16(Uint8Array.of(0xc3, 0x28)), str16(new Uint8Array(0)))",
         "Identity record is malformed"),
        # Only part of a signature.
        ("good.slice(0, 63)", "Identity record is malformed"),
    ],
)
def test_a_host_identity_that_does_not_verify_is_refused(module_page, record, expected):
    result = run(
        module_page,
        f"""
        const th = hex(V['transcript-hash']);
        const hostKey = await importPrivate('Ed25519', hex(V['host-identity-private']), ['sign']);
        const other = await importPrivate('Ed25519', new Uint8Array(32).fill(7), ['sign']);
        const good = await identityPayload(hostKey, 1, th, 'FRONT-DESK');
        // The check of the check: sealed as record 0, the good payload is the document's record.
        const same = toHex(await hostSeal(0, 0x4a, good)) === toHex(framePayload('host-identity-record'));
        const viewer = await keyedViewer();
        const refused = await refusal(async () => viewer.open(await hostSeal(0, 0x4a, await {record})));
        return {{ same, refused }};
        """,
    )
    assert result["same"] is True
    refused = result["refused"]
    assert refused and refused["kind"] == "handshakeFailed" and expected in refused["message"], refused
    assert refused["message"].endswith("the session was ended")


@pytest.mark.parametrize("inner_type", [0x40, 0x41, 0x45, 0x46, 0x42, 0x00])
def test_a_first_record_that_is_not_an_identity_is_refused(module_page, inner_type):
    refused = run(
        module_page,
        """
        const viewer = await keyedViewer();
        return refusal(async () => viewer.open(await hostSeal(0, arg.type, utf8('hello'))));
        """,
        type=inner_type,
    )
    assert refused["kind"] == "unexpectedMessage", refused
    assert "first sealed record is" in refused["message"] and "not its Identity" in refused["message"]


@pytest.mark.parametrize(
    "inner_type, words",
    [
        (0x42, "UpdateRequest (record 1), which a viewer does not receive"),
        (0x43, "Pointer (record 1), which a viewer does not receive"),
        (0x44, "Key (record 1), which a viewer does not receive"),
        (0x47, "KeyCommit (record 1), which a viewer does not receive"),
        (0x48, "KeyShare (record 1), which a viewer does not receive"),
        (0x49, "Sealed (record 1), which a viewer does not receive"),
        (0x4B, "type 0x4b (record 1), which a viewer does not receive"),
        (0x00, "type 0x00 (record 1), which a viewer does not receive"),
        (0x4A, "a second Identity record (record 1)"),
    ],
)
def test_inner_types_a_viewer_does_not_receive_are_refused(module_page, inner_type, words):
    result = run(
        module_page,
        """
        const viewer = await establishedViewer();
        const refused = await refusal(async () => viewer.open(await hostSeal(1, arg.type, new Uint8Array(5))));
        // The channel is over: even the genuine record 1 is refused now.
        const after = await refusal(() => viewer.open(framePayload('host-record-1-clipboard-hello')));
        return { refused, after, established: viewer.established };
        """,
        type=inner_type,
    )
    assert result["refused"]["kind"] == "unexpectedMessage", result
    assert words in result["refused"]["message"]
    assert result["after"] == result["refused"]
    assert result["established"] is False


@pytest.mark.parametrize(
    "change, kind, words",
    [
        ("share = share.slice(0, 65)", "handshakeFailed", "truncated message: 65 of 66 bytes"),
        ("share = concat(share, Uint8Array.of(0))", "handshakeFailed", "trailing bytes: 67 bytes, not 66"),
        ("share[0] = 2", "unsupportedVersion", "the host speaks end-to-end version 2, this viewer speaks 1"),
        ("share[0] = 0", "unsupportedVersion", "end-to-end version 0"),
        ("share[1] = 0", "handshakeFailed", "invalid field: role 0"),
        ("share[1] = 3", "handshakeFailed", "invalid field: role 3"),
        ("share[1] = 2", "handshakeFailed", "says it comes from a viewer"),
        # Low-order X25519 points: the key agreement gives 32 zero bytes (§5.3.4).
        ("share.fill(0, 2, 34)", "handshakeFailed", "low-order point"),
        ("share.fill(0, 2, 34); share[2] = 1", "handshakeFailed", "low-order point"),
        ("share.set(hex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'), 2)",
         "handshakeFailed", "low-order point"),
        ("share.set(hex('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'), 2)",
         "handshakeFailed", "low-order point"),
    ],
)
def test_a_malformed_host_key_share_is_refused(module_page, change, kind, words):
    result = run(
        module_page,
        f"""
        const viewer = await vectorViewer();
        await viewer.start();
        let share = framePayload('host-key-share-frame');
        {change};
        const refused = await refusal(() => viewer.receiveKeyShare(share));
        const after = await refusal(() => viewer.receiveKeyShare(framePayload('host-key-share-frame')));
        return {{ refused, after, sas: viewer.sas }};
        """,
    )
    refused = result["refused"]
    assert refused and refused["kind"] == kind and words in refused["message"], refused
    assert result["after"] == refused, "a failed handshake must refuse everything after"
    assert result["sas"] is None


def test_handshake_messages_out_of_order_are_refused(module_page):
    result = run(
        module_page,
        r"""
        const out = {};
        let viewer = await vectorViewer();
        out.shareBeforeCommit = await refusal(() => viewer.receiveKeyShare(framePayload('host-key-share-frame')));
        viewer = await vectorViewer();
        await viewer.start();
        out.sealedBeforeKeys = await refusal(() => viewer.open(framePayload('host-identity-record')));
        viewer = await keyedViewer();
        out.secondShare = await refusal(() => viewer.receiveKeyShare(framePayload('host-key-share-frame')));
        viewer = await establishedViewer();
        out.shareAfterIdentity = await refusal(() => viewer.receiveKeyShare(framePayload('host-key-share-frame')));
        viewer = await vectorViewer();
        out.startTwice = await refusal(async () => { await viewer.start(); await viewer.start(); });
        viewer = await keyedViewer();
        out.keyCommit = viewer.unexpectedFrame(0x47);
        out.afterKeyCommit = await refusal(() => viewer.open(framePayload('host-identity-record')));
        viewer = await keyedViewer();
        out.clearDuringHandshake = viewer.unexpectedFrame(0x40);
        viewer = await vectorViewer();
        out.clearBeforeStart = viewer.unexpectedFrame(0x46);
        viewer = await establishedViewer();
        out.clearAfterIdentity = viewer.unexpectedFrame(0x45);
        out.sealAfterClear = await refusal(() => viewer.seal(0x42, Uint8Array.of(0, 0, 0, 1, 0)));
        for (const name of ['keyCommit', 'clearDuringHandshake', 'clearBeforeStart', 'clearAfterIdentity']) {
          const error = out[name];
          out[name] = { name: error.name, kind: error.kind, message: error.message,
                        isError: error instanceof secure.SecureChannelError && error instanceof Error };
        }
        return out;
        """,
    )
    assert "before this viewer committed" in result["shareBeforeCommit"]["message"]
    assert "a Sealed record before the end-to-end keys were agreed" in result["sealedBeforeKeys"]["message"]
    assert "KeyShare a second time" in result["secondShare"]["message"]
    assert "KeyShare a second time" in result["shareAfterIdentity"]["message"]
    for name in ("shareBeforeCommit", "sealedBeforeKeys", "secondShare", "shareAfterIdentity"):
        assert result[name]["kind"] == "handshakeFailed", result[name]
    assert result["startTwice"]["name"] == "TypeError" and "started twice" in result["startTwice"]["message"]
    assert result["keyCommit"]["isError"] and "KeyCommit, which only a viewer sends" in result["keyCommit"]["message"]
    assert result["afterKeyCommit"]["message"] == result["keyCommit"]["message"]
    for name, type_name in (("clearDuringHandshake", "ScreenInit"), ("clearBeforeStart", "AccessGranted")):
        assert result[name]["kind"] == "peerWithoutEncryption"
        assert result[name]["message"].startswith(
            "the other side does not encrypt end to end; update relay-agent (the host sent " + type_name
        )
    # §5.3.8's words once the host's Identity has opened.
    assert result["clearAfterIdentity"]["message"].startswith(
        "end-to-end check failed (a plaintext Clipboard arrived in the encrypted session): " + TAMPERING
    )
    assert result["sealAfterClear"]["message"] == result["clearAfterIdentity"]["message"]


def test_seal_refuses_before_the_hosts_identity_and_what_a_viewer_does_not_send(module_page):
    result = run(
        module_page,
        r"""
        const out = {};
        let viewer = await keyedViewer();
        out.beforeIdentity = await refusal(() => viewer.seal(0x45, utf8('hi')));
        viewer = await establishedViewer();
        for (const type of [0x40, 0x41, 0x46, 0x47, 0x48, 0x49, 0x4a]) {
          out['type' + type] = await refusal(() => viewer.seal(type, new Uint8Array(1)));
        }
        viewer = await establishedViewer({ payloadLimit: 65536 });
        out.maximum = viewer.maximumInnerPayload;
        out.tooLarge = await refusal(() => viewer.seal(0x45, new Uint8Array(65536 - 16)));
        // Not sent, so no sequence number used: the next record is still record 1.
        const fits = new Uint8Array(65536 - 17);
        const sealed = await viewer.seal(0x45, fits);
        out.fits = sealed.length;
        out.fitsNumberOne = toHex(sealed) === toHex(await rawSeal(hex(V['key-viewer-to-host']), 1, 0x45, fits));
        out.badLimit = await refusal(async () => vectorViewer({ payloadLimit: 1000 }));
        out.badSession = await refusal(async () => vectorViewer({ sessionID: new Uint8Array(15) }));
        return out;
        """,
    )
    assert result.pop("beforeIdentity")["message"].startswith(
        "nothing may be sealed before the host's Identity has been verified"
    )
    assert result.pop("maximum") == 65536 - 17
    too_large = result.pop("tooLarge")
    assert too_large["kind"] == "tooLarge"
    assert too_large["message"] == (
        "the clipboard text is 65520 bytes, more than the 65519 bytes one message may carry through this relay; "
        "it was not sent. Copy less text at a time"
    )
    assert result.pop("fits") == 65536 and result.pop("fitsNumberOne") is True
    for name, refused in result.items():
        assert refused["name"] == "TypeError", (name, refused)
        assert refused["message"].endswith("this is a bug in the web viewer: please report it"), (name, refused)


# MARK: - A whole session with a host written here


def test_a_whole_session_with_a_host_made_of_plain_webcrypto(module_page):
    """Fresh random keys on both sides: the viewer (secure.js) against a host written here
    with plain WebCrypto calls, which checks the commitment and the viewer's Identity."""
    result = run(
        module_page,
        r"""
        const sessionID = crypto.getRandomValues(new Uint8Array(16));
        const identity = await secure.generateIdentity();
        // Cut between characters to at most 1,024 bytes: 341 é of 3 bytes each (e + U+0301).
        const longName = 'e\u0301'.repeat(400);
        const viewer = new secure.ViewerHandshake(
          { sessionID, identity, name: longName, organization: 'ACME 코리아' });
        const commit = await viewer.start();

        // The host: on KeyCommit, its KeyShare.
        const hostIdentity = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
        const hostEphemeral = await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
        const raw = async (key) => new Uint8Array(await crypto.subtle.exportKey('raw', key));
        const hostShare = concat(Uint8Array.of(1, 1), await raw(hostEphemeral.publicKey),
                                 await raw(hostIdentity.publicKey));
        const { keyShare, identityRecord } = await viewer.receiveKeyShare(hostShare);

        // The host: checks the commitment, derives the keys, opens the viewer's Identity.
        const out = {};
        const shareHash = new Uint8Array(await crypto.subtle.digest('SHA-256', keyShare));
        out.commitmentHolds = toHex(shareHash) === toHex(commit.slice(1));
        const th = new Uint8Array(await crypto.subtle.digest('SHA-256',
          concat(utf8('SupportRelay E2E v1'), sessionID, commit.slice(1), hostShare, keyShare)));
        const viewerEphemeral = await crypto.subtle.importKey('raw', keyShare.slice(2, 34), 'X25519', false, []);
        const dh = await crypto.subtle.deriveBits(
          { name: 'X25519', public: viewerEphemeral }, hostEphemeral.privateKey, 256);
        const ikm = await crypto.subtle.importKey('raw', dh, 'HKDF', false, ['deriveBits']);
        const okm = new Uint8Array(await crypto.subtle.deriveBits(
          { name: 'HKDF', hash: 'SHA-256', salt: th, info: utf8('SupportRelay E2E v1 keys') }, ikm, 544));
        const hostToViewer = okm.slice(0, 32);
        const viewerToHost = okm.slice(32, 64);
        const code = String(new DataView(okm.buffer).getUint32(64) % 1000000).padStart(6, '0');
        out.hostSAS = code.slice(0, 3) + ' ' + code.slice(3);
        out.viewerSAS = viewer.sas;
        const opened = await rawOpen(viewerToHost, 0, identityRecord);
        out.viewerIdentityType = opened[0];
        const signature = opened.slice(1, 65);
        const viewerKey = await crypto.subtle.importKey('raw', keyShare.slice(34, 66), 'Ed25519', false, ['verify']);
        out.signatureVerifies = await crypto.subtle.verify('Ed25519', viewerKey, signature,
          concat(utf8('SupportRelay E2E v1 identity'), Uint8Array.of(2), th));
        out.identityKeyIsTheViewers = toHex(keyShare.slice(34, 66)) === toHex(identity.publicKey);
        const nameLength = (opened[65] << 8) | opened[66];
        const name = new TextDecoder('utf-8', { fatal: true }).decode(opened.slice(67, 67 + nameLength));
        out.nameLength = nameLength;
        out.nameIsWholeCharacters = name === 'e\u0301'.repeat(341);
        const organizationAt = 67 + nameLength;
        const organizationLength = (opened[organizationAt] << 8) | opened[organizationAt + 1];
        const organizationEnd = organizationAt + 2 + organizationLength;
        out.organization = new TextDecoder().decode(opened.slice(organizationAt + 2, organizationEnd));
        out.identityLength = organizationEnd === opened.length;

        // The host's Identity, AccessGranted and ScreenInit; the viewer's UpdateRequest.
        const hostName = '회계팀 PC';
        const signed = concat(utf8('SupportRelay E2E v1 identity'), Uint8Array.of(1), th);
        const hostSignature = new Uint8Array(await crypto.subtle.sign('Ed25519', hostIdentity.privateKey, signed));
        const hostIdentityPayload = concat(hostSignature, str16(utf8(hostName)), str16(utf8('')));
        const hostSaid = await viewer.open(await rawSeal(hostToViewer, 0, 0x4a, hostIdentityPayload));
        out.hostSaid = { ...hostSaid, hostKey: toHex(hostSaid.hostKey) === toHex(await raw(hostIdentity.publicKey)) };
        const granted = await viewer.open(await rawSeal(hostToViewer, 1, 0x46, Uint8Array.of(1)));
        const screen = Uint8Array.of(7, 128, 4, 56, 1, 0, 2, 0x3a, 0x30);
        const screenInit = await viewer.open(await rawSeal(hostToViewer, 2, 0x40, screen));
        out.granted = [granted.type, toHex(granted.payload)];
        out.screenInit = [screenInit.type, toHex(screenInit.payload)];
        const request = await viewer.seal(0x42, Uint8Array.of(0, 0, 0, 1, 1));
        out.request = toHex(await rawOpen(viewerToHost, 1, request));
        return out;
        """,
    )
    assert result.pop("commitmentHolds") is True
    assert result.pop("hostSAS") == result.pop("viewerSAS")
    assert result == {
        "viewerIdentityType": 0x4A,
        "signatureVerifies": True,
        "identityKeyIsTheViewers": True,
        "nameLength": 1023,
        "nameIsWholeCharacters": True,
        "organization": "ACME 코리아",
        "identityLength": True,
        "hostSaid": {"type": 0x4A, "name": "회계팀 PC", "organization": "", "hostKey": True},
        "granted": [0x46, "01"],
        "screenInit": [0x40, "078004380100023a30"],
        "request": "420000000101",
    }


# MARK: - Identity, fingerprints and pins


def test_fingerprint_is_sha256_in_unpadded_base64(module_page):
    key = payload("host-key-share-frame", 0x48)[34:66]
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(key).digest()).decode().rstrip("=")
    assert run(module_page, "return secure.fingerprint(hex(arg.key));", key=key.hex()) == expected
    refused = run(module_page, "return refusal(() => secure.fingerprint(new Uint8Array(31)));")
    assert refused["name"] == "TypeError"


def test_the_identity_is_made_once_per_browser_profile_and_kept_private(module_page, browser, static_site):
    identity_script = r"""
        const [first, second] = await Promise.all([secure.loadOrCreateIdentity(), secure.loadOrCreateIdentity()]);
        const signed = utf8('check');
        const signature = await crypto.subtle.sign('Ed25519', first.privateKey, signed);
        const publicKey = await crypto.subtle.importKey('raw', first.publicKey, { name: 'Ed25519' }, false, ['verify']);
        const exported = await refusal(() => crypto.subtle.exportKey('pkcs8', first.privateKey));
        const fresh = await secure.generateIdentity();
        return {
          first: toHex(first.publicKey), second: toHex(second.publicKey),
          extractable: first.privateKey.extractable, algorithm: first.privateKey.algorithm.name,
          verifies: await crypto.subtle.verify('Ed25519', publicKey, signature, signed),
          exported: exported && exported.name,
          fresh: toHex(fresh.publicKey), freshExtractable: fresh.privateKey.extractable,
        };
    """
    first = run(module_page, identity_script)
    assert first["first"] == first["second"] and len(first["first"]) == 64
    assert (first["extractable"], first["algorithm"], first["verifies"]) == (False, "Ed25519", True)
    assert first["exported"] == "InvalidAccessError"
    assert first["fresh"] != first["first"] and first["freshExtractable"] is False
    # The same profile after a reload keeps it; another profile has its own.
    module_page.reload()
    assert run(module_page, identity_script)["first"] == first["first"]
    context = browser.new_context()
    try:
        other = context.new_page()
        other.goto(f"{static_site}/blank.html")
        assert run(other, identity_script)["first"] != first["first"]
    finally:
        context.close()


def test_host_keys_are_pinned_on_first_use_and_a_changed_one_is_refused(module_page):
    result = run(
        module_page,
        r"""
        const relay = 'https://relay.example:443';
        const key = hex(V['host-key-share-frame']).slice(38, 70);
        const other = new Uint8Array(32).fill(5);
        const out = {};
        out.first = await secure.checkPinnedHostKey(relay, 'ho-aawvbeke34', key);
        out.again = await secure.checkPinnedHostKey(relay, 'ho-aawvbeke34', key);
        const changed = await (async () => {
          try { await secure.checkPinnedHostKey(relay, 'ho-aawvbeke34', other); } catch (error) { return error; }
        })();
        out.changed = { name: changed.name, kind: changed.kind, message: changed.message,
                        pinned: changed.pinnedFingerprint, presented: changed.presentedFingerprint,
                        isSecureChannelError: changed instanceof secure.SecureChannelError };
        out.otherHost = await secure.checkPinnedHostKey(relay, 'ho-other', other);
        out.otherRelay = await secure.checkPinnedHostKey('https://relay2.example', 'ho-aawvbeke34', other);
        out.stillChanged = (await refusal(() => secure.checkPinnedHostKey(relay, 'ho-aawvbeke34', other))).kind;
        out.keyFingerprint = await secure.fingerprint(key);
        out.otherFingerprint = await secure.fingerprint(other);
        return out;
        """,
    )
    fingerprint = result["keyFingerprint"]
    assert result["first"] == {"pinned": "new", "fingerprint": fingerprint}
    assert result["again"] == {"pinned": "same", "fingerprint": fingerprint}
    changed = result["changed"]
    assert changed["name"] == "HostKeyChangedError" and changed["kind"] == "hostKeyChanged"
    assert changed["isSecureChannelError"] is True
    assert (changed["pinned"], changed["presented"]) == (fingerprint, result["otherFingerprint"])
    message = changed["message"]
    assert message.startswith(
        "The identity key of host ho-aawvbeke34 at relay https://relay.example:443 has changed; the session was not "
        "started."
    )
    assert f"pinned in this browser: {fingerprint}" in message
    assert f"presented now: {result['otherFingerprint']}" in message
    assert "relay-agent keygen --show --host-id ho-aawvbeke34" in message and "forget the pinned key" in message
    assert result["otherHost"]["pinned"] == "new" and result["otherRelay"]["pinned"] == "new"
    assert result["stillChanged"] == "hostKeyChanged"

    # The pin outlives the page; forgetting it (after the user checked) lets the new key pin.
    module_page.reload()
    after = run(
        module_page,
        r"""
        const relay = 'https://relay.example:443';
        const other = new Uint8Array(32).fill(5);
        const out = {};
        out.still = (await refusal(() => secure.checkPinnedHostKey(relay, 'ho-aawvbeke34', other))).kind;
        out.forgot = await secure.forgetPinnedHostKey(relay, 'ho-aawvbeke34');
        out.forgotAgain = await secure.forgetPinnedHostKey(relay, 'ho-aawvbeke34');
        out.repinned = (await secure.checkPinnedHostKey(relay, 'ho-aawvbeke34', other)).pinned;
        out.same = (await secure.checkPinnedHostKey(relay, 'ho-aawvbeke34', other)).pinned;
        out.otherHostKept = (await secure.checkPinnedHostKey(relay, 'ho-other', other)).pinned;
        out.badArguments = (await refusal(() => secure.checkPinnedHostKey('', 'ho-x', other))).name;
        return out;
        """,
    )
    assert after == {
        "still": "hostKeyChanged",
        "forgot": True,
        "forgotAgain": False,
        "repinned": "new",
        "same": "same",
        "otherHostKept": "same",
        "badArguments": "TypeError",
    }


def test_the_handshake_deadline_error_says_what_to_do(module_page):
    result = run(
        module_page,
        r"""
        const error = secure.handshakeDeadlineError();
        return { kind: error.kind, message: error.message, deadline: secure.handshakeDeadlineMilliseconds };
        """,
    )
    assert result["deadline"] == 30000
    assert result["kind"] == "endedDuringHandshake"
    assert "within 30 s" in result["message"] and "Update relay-agent on both sides" in result["message"]
