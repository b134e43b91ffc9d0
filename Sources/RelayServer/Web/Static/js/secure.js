// The viewer's side of the end-to-end encryption between host and viewer (docs/PROTOCOL.md
// §5.3: §5.3.1 order, §5.3.2 KeyCommit, §5.3.3 KeyShare, §5.3.4 transcript and keys,
// §5.3.5 Sealed, §5.3.6 Identity, §5.3.7 short authentication string, §5.3.8 receiver's
// rules; checked against the vectors of §10.4), the engineer's identity key, and host-key
// pins (§5.3.8 "A changed host key", SECURITY.md §6.1 and §9.2), kept in IndexedDB.
//
// It works on message payloads, not frames: the page frames them (wire.js). The page:
// - sends start()'s KeyCommit on Paired; gives the host's KeyShare to receiveKeyShare() and
//   sends the KeyShare and Identity record it returns; gives every Sealed payload to open();
// - for any other peer frame (a §5.2 message in clear, a KeyCommit) ends the session with
//   unexpectedFrame(type);
// - decodes the inner payloads open() returns (wire.js); one that does not decode ends the
//   session (§5.3.8 "a wrong inner message");
// - connected by host id: calls checkPinnedHostKey() with the hostKey of the host's Identity
//   before it seals anything; by support code: shows `sas` instead (§5.3.8, last paragraph);
// - ends the session when the handshake is not complete 30 s after Paired
//   (handshakeDeadlineError());
// - on every SecureChannelError: sends Bye(protocol_error) with its message, shows the
//   message, closes. A failed ViewerHandshake refuses everything after.

import { InnerType, MessageType as WireMessageType, frameHeader } from './wire.js';

const VERSION = 1;
const ROLE_HOST = 1;
const ROLE_VIEWER = 2;
const KEY_SHARE_LENGTH = 66;
const TAG_LENGTH = 16;
// One byte of inner type and the tag (§5.3.5).
const RECORD_OVERHEAD = 1 + TAG_LENGTH;
const MAXIMUM_FRAME_PAYLOAD = 0xffffff;
const DEFAULT_PAYLOAD_LIMIT = 1_048_576;
// The smallest limit a relay announces (§9).
const MINIMUM_PAYLOAD_LIMIT = 65_536;
// The reference agents cut name and organization to this many bytes (§5.3.6).
const IDENTITY_TEXT_LIMIT = 1024;

const LABEL = new TextEncoder().encode('SupportRelay E2E v1');
const KEYS_LABEL = new TextEncoder().encode('SupportRelay E2E v1 keys');
const IDENTITY_LABEL = new TextEncoder().encode('SupportRelay E2E v1 identity');
// RFC 8410 PrivateKeyInfo up to the 32 key bytes: Chromium imports fixed X25519 and Ed25519
// private keys as pkcs8 (it has no raw private import, and a JWK needs the public `x` too).
const PKCS8_PREFIX = Object.freeze({
  Ed25519: '302e020100300506032b657004220420',
  X25519: '302e020100300506032b656e04220420',
});

// Message and inner types of §4 and §5.3.6, from wire.js.
const MessageType = Object.freeze({ ...WireMessageType, ...InnerType });

const TYPE_NAMES = Object.freeze({
  0x40: 'ScreenInit',
  0x41: 'TileUpdate',
  0x42: 'UpdateRequest',
  0x43: 'Pointer',
  0x44: 'Key',
  0x45: 'Clipboard',
  0x46: 'AccessGranted',
  0x47: 'KeyCommit',
  0x48: 'KeyShare',
  0x49: 'Sealed',
  0x4a: 'Identity',
});

// Inner types a viewer opens after the host's Identity (host → viewer, §5.2), and seals.
const VIEWER_RECEIVES = Object.freeze([0x40, 0x41, 0x45, 0x46]);
const VIEWER_SENDS = Object.freeze([0x42, 0x43, 0x44, 0x45]);

/** How long after Paired the handshake may take (§5.3.8 "No handshake in time"). */
export const handshakeDeadlineMilliseconds = 30_000;

/**
 * Why the end-to-end channel failed or refused something. `kind` is one of
 * 'peerWithoutEncryption', 'unsupportedVersion', 'handshakeFailed', 'recordRejected',
 * 'unexpectedMessage', 'endedDuringHandshake', 'sendFailed', 'tooLarge', 'hostKeyChanged'.
 * Every kind but 'tooLarge' ends the session.
 */
export class SecureChannelError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'SecureChannelError';
    this.kind = kind;
  }
}

/** The host's identity key is not the one pinned for it (§5.3.8, SECURITY.md §9.2). */
export class HostKeyChangedError extends SecureChannelError {
  constructor({ relayOrigin, hostID, pinnedFingerprint, presentedFingerprint }) {
    super(
      'hostKeyChanged',
      `The identity key of host ${hostID} at relay ${relayOrigin} has changed; the session was not started.\n` +
        `  pinned in this browser: ${pinnedFingerprint}\n` +
        `  presented now: ${presentedFingerprint}\n` +
        'Someone may be intercepting this connection (the relay, or an attacker on the network), or the host ' +
        'was enrolled again or its key file was replaced.\n' +
        "To verify, ask the host's owner for its key's fingerprint: `relay-agent keygen --show --host-id " +
        `${hostID}\` on the host prints it, and so does the host agent when it starts.\n` +
        "Only if it is the presented one, forget the pinned key in this browser (the viewer offers it with " +
        'this message) and connect again. If not, or nobody changed the host, do not connect: tell the ' +
        "relay's operator and your security contact.",
    );
    this.name = 'HostKeyChangedError';
    this.relayOrigin = relayOrigin;
    this.hostID = hostID;
    this.pinnedFingerprint = pinnedFingerprint;
    this.presentedFingerprint = presentedFingerprint;
  }
}

/** The browser could not keep or read the viewer's keys (IndexedDB). */
export class KeyStoreError extends Error {
  constructor(message) {
    super(message);
    this.name = 'KeyStoreError';
  }
}

/** §5.3.8 "No handshake in time": the error to end the session with after the deadline. */
export function handshakeDeadlineError() {
  return new SecureChannelError(
    'endedDuringHandshake',
    `the host did not complete the end-to-end handshake within ${handshakeDeadlineMilliseconds / 1000} s: ` +
      'it may be an old relay-agent without end-to-end encryption; the session was ended. ' +
      'Update relay-agent on both sides',
  );
}

function tampered(detail) {
  return new SecureChannelError(
    'recordRejected',
    `end-to-end check failed (${detail}): a message between host and viewer was altered, replayed, reordered ` +
      'or dropped on the way, by the relay or someone between you and it; the session was ended. ' +
      'Connect again; if it happens again, tell your administrator',
  );
}

function bug(what) {
  return new TypeError(`${what}; this is a bug in the web viewer: please report it`);
}

function typeName(type) {
  return TYPE_NAMES[type] ?? `type 0x${type.toString(16).padStart(2, '0')}`;
}

// MARK: - Bytes and WebCrypto

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function fromHex(hex) {
  return Uint8Array.from(hex.match(/../g), (pair) => parseInt(pair, 16));
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let index = 0; index < a.length; index++) difference |= a[index] ^ b[index];
  return difference === 0;
}

function isBytes(value, length) {
  return value instanceof Uint8Array && (length === undefined || value.length === length);
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

// The Sealed frame's own header, the record's additional data (§2, §5.3.5).
function sealedHeader(payloadLength) {
  return frameHeader(MessageType.sealed, payloadLength);
}

// Four zero bytes and the sequence number as a u64, big-endian (§5.3.5).
function nonce(sequence) {
  const bytes = new Uint8Array(12);
  new DataView(bytes.buffer).setBigUint64(4, sequence);
  return bytes;
}

async function rawPublicKey(key) {
  return new Uint8Array(await crypto.subtle.exportKey('raw', key));
}

function privateKeyInfo(algorithm, raw) {
  return concat(fromHex(PKCS8_PREFIX[algorithm]), raw);
}

function base64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

function fromBase64URL(text) {
  const padded = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (character) => character.charCodeAt(0));
}

// The public half of a fixed private key: imported once as extractable pkcs8, read from
// the JWK's `x`; the key that is kept is imported again, not extractable.
async function publicKeyOf(algorithm, raw, usages) {
  const info = privateKeyInfo(algorithm, raw);
  const extractable = await crypto.subtle.importKey('pkcs8', info, { name: algorithm }, true, usages);
  return fromBase64URL((await crypto.subtle.exportKey('jwk', extractable)).x);
}

async function importFixedKeyPair(algorithm, raw, usages) {
  if (!isBytes(raw, 32)) throw bug(`a fixed ${algorithm} private key must be 32 bytes`);
  const publicKey = await publicKeyOf(algorithm, raw, usages);
  const info = privateKeyInfo(algorithm, raw);
  const privateKey = await crypto.subtle.importKey('pkcs8', info, { name: algorithm }, false, usages);
  return { privateKey, publicKey };
}

// UTF-8 of `text`, cut between characters (grapheme clusters) to at most `limit` bytes,
// as the reference agents cut name and organization (§5.3.6).
function cutText(text, limit) {
  const encoder = new TextEncoder();
  const bytes = encoder.encode(text);
  if (bytes.length <= limit) return bytes;
  let used = 0;
  for (const { segment } of new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(text)) {
    const length = encoder.encode(segment).length;
    if (used + length > limit) break;
    used += length;
  }
  return bytes.slice(0, used);
}

function str16(bytes) {
  return concat(Uint8Array.of(bytes.length >>> 8, bytes.length & 0xff), bytes);
}

// §3: well-formed UTF-8 or nothing; a leading U+FEFF is an ordinary character.
function decodeUTF8(bytes) {
  return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
}

// The Identity record's payload (§5.3.6): signature, name, organization; null if malformed.
function decodeIdentity(payload) {
  let offset = 64;
  const texts = [];
  for (let field = 0; field < 2; field++) {
    if (payload.length < offset + 2) return null;
    const length = (payload[offset] << 8) | payload[offset + 1];
    offset += 2;
    if (payload.length < offset + length) return null;
    try {
      texts.push(decodeUTF8(payload.subarray(offset, offset + length)));
    } catch {
      return null;
    }
    offset += length;
  }
  if (offset !== payload.length) return null;
  return { signature: payload.slice(0, 64), name: texts[0], organization: texts[1] };
}

// MARK: - Identity

/**
 * A new engineer identity: an Ed25519 key pair whose private key cannot be exported.
 * @returns {Promise<{privateKey: CryptoKey, publicKey: Uint8Array}>}
 */
export async function generateIdentity() {
  const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
  return { privateKey: pair.privateKey, publicKey: await rawPublicKey(pair.publicKey) };
}

/**
 * An identity from a fixed 32-byte Ed25519 private key (RFC 8032), for test vectors: the
 * private key is imported non-extractable.
 * @returns {Promise<{privateKey: CryptoKey, publicKey: Uint8Array}>}
 */
export async function identityFromPrivateKey(raw) {
  return importFixedKeyPair('Ed25519', raw, ['sign']);
}

/**
 * `SHA256:` and the unpadded base64 of SHA-256 of the raw 32-byte key (§5.3.8, SECURITY.md §6.1).
 * @returns {Promise<string>}
 */
export async function fingerprint(publicKey) {
  if (!isBytes(publicKey, 32)) throw bug('a fingerprint is taken of a 32-byte public key');
  return 'SHA256:' + base64(await sha256(publicKey)).replace(/=+$/, '');
}

// MARK: - IndexedDB

const DATABASE = 'supportrelay-viewer';
const IDENTITY_STORE = 'identity';
const PIN_STORE = 'pinnedHostKeys';
const IDENTITY_KEY = 'engineer';

function storageFailure(what, cause) {
  const detail = cause?.message ? ` (${cause.name}: ${cause.message})` : '';
  return new KeyStoreError(
    `this browser did not let the viewer ${what}${detail}. Allow this site to store data (it is blocked in some ` +
      'private windows and by some privacy settings), then reload the page',
  );
}

function openDatabase(what) {
  return new Promise((resolve, reject) => {
    let request;
    try {
      request = indexedDB.open(DATABASE, 1);
    } catch (error) {
      reject(storageFailure(what, error));
      return;
    }
    request.onupgradeneeded = () => {
      request.result.createObjectStore(IDENTITY_STORE);
      request.result.createObjectStore(PIN_STORE);
    };
    request.onsuccess = () => {
      const database = request.result;
      // Another tab that upgrades the database must not wait for this one.
      database.onversionchange = () => database.close();
      resolve(database);
    };
    request.onerror = () => reject(storageFailure(what, request.error));
    request.onblocked = () =>
      reject(storageFailure(what, { name: 'Blocked', message: 'another tab of the viewer holds an older database' }));
  });
}

// Runs `body(store)` in one transaction and resolves with its result once it committed.
async function inTransaction(what, storeName, mode, body) {
  const database = await openDatabase(what);
  try {
    return await new Promise((resolve, reject) => {
      const transaction = database.transaction(storeName, mode);
      let result;
      transaction.oncomplete = () => resolve(result);
      transaction.onerror = () => reject(storageFailure(what, transaction.error));
      transaction.onabort = () => reject(storageFailure(what, transaction.error));
      body(transaction.objectStore(storeName), (value) => {
        result = value;
      });
    });
  } finally {
    database.close();
  }
}

function validIdentity(record) {
  return (
    record &&
    record.privateKey instanceof CryptoKey &&
    record.privateKey.algorithm.name === 'Ed25519' &&
    record.privateKey.type === 'private' &&
    isBytes(record.publicKey, 32)
  );
}

function storedIdentity(record) {
  if (!validIdentity(record)) {
    throw new KeyStoreError(
      'the identity key this browser keeps for the viewer is damaged. Clear this site\'s data in the browser ' +
        'settings to make a new one (hosts that list engineer keys then need the new key from you)',
    );
  }
  return { privateKey: record.privateKey, publicKey: new Uint8Array(record.publicKey) };
}

/**
 * The engineer's identity in this browser profile: made on first use and kept in IndexedDB
 * (the private key stays non-extractable). Every tab of the profile gets the same one.
 * @returns {Promise<{privateKey: CryptoKey, publicKey: Uint8Array}>}
 */
export async function loadOrCreateIdentity() {
  const what = 'keep its identity key';
  const existing = await inTransaction(what, IDENTITY_STORE, 'readonly', (store, done) => {
    const request = store.get(IDENTITY_KEY);
    request.onsuccess = () => done(request.result);
  });
  if (existing !== undefined) return storedIdentity(existing);
  // Made outside the transaction (WebCrypto would let it commit early); another tab may
  // have stored one meanwhile, and then that one is kept.
  const fresh = await generateIdentity();
  const kept = await inTransaction(what, IDENTITY_STORE, 'readwrite', (store, done) => {
    const request = store.get(IDENTITY_KEY);
    request.onsuccess = () => {
      if (request.result !== undefined) {
        done(request.result);
        return;
      }
      const record = { privateKey: fresh.privateKey, publicKey: fresh.publicKey, created: new Date().toISOString() };
      store.add(record, IDENTITY_KEY).onsuccess = () => done(record);
    };
  });
  return storedIdentity(kept);
}

function checkPinArguments(relayOrigin, hostID) {
  if (typeof relayOrigin !== 'string' || relayOrigin === '' || typeof hostID !== 'string' || hostID === '') {
    throw bug('a pinned host key is kept under a relay origin and a host id, both non-empty strings');
  }
}

/**
 * Checks the host's identity key (from its verified Identity) against the pin for this
 * relay and host id, pinning it when there is none (trust on first use, §5.3.8).
 * Throws HostKeyChangedError when another key is pinned.
 * @returns {Promise<{pinned: 'new' | 'same', fingerprint: string}>}
 */
export async function checkPinnedHostKey(relayOrigin, hostID, hostKey) {
  checkPinArguments(relayOrigin, hostID);
  if (!isBytes(hostKey, 32)) throw bug('a host key to pin must be 32 bytes');
  const presented = await fingerprint(hostKey);
  const outcome = await inTransaction('keep the host keys it pinned', PIN_STORE, 'readwrite', (store, done) => {
    const key = [relayOrigin, hostID];
    const request = store.get(key);
    request.onsuccess = () => {
      const pin = request.result;
      if (pin === undefined) {
        const record = { relayOrigin, hostID, hostKey: new Uint8Array(hostKey), pinned: new Date().toISOString() };
        store.add(record, key).onsuccess = () => done({ pinned: 'new' });
      } else if (isBytes(pin.hostKey, 32) && equalBytes(pin.hostKey, hostKey)) {
        done({ pinned: 'same' });
      } else {
        done({ changed: isBytes(pin.hostKey, 32) ? pin.hostKey : new Uint8Array(32) });
      }
    };
  });
  if (outcome.changed) {
    throw new HostKeyChangedError({
      relayOrigin,
      hostID,
      pinnedFingerprint: await fingerprint(outcome.changed),
      presentedFingerprint: presented,
    });
  }
  return { pinned: outcome.pinned, fingerprint: presented };
}

/**
 * Forgets the host key pinned for this relay and host id, after the user checked the new
 * fingerprint with the host's owner (SECURITY.md §9.2). Resolves to whether a pin was there.
 * @returns {Promise<boolean>}
 */
export async function forgetPinnedHostKey(relayOrigin, hostID) {
  checkPinArguments(relayOrigin, hostID);
  return inTransaction('forget the pinned host key', PIN_STORE, 'readwrite', (store, done) => {
    const key = [relayOrigin, hostID];
    const request = store.count(key);
    request.onsuccess = () => {
      if (request.result === 0) {
        done(false);
        return;
      }
      store.delete(key).onsuccess = () => done(true);
    };
  });
}

// MARK: - The handshake and the records

/**
 * The viewer's end-to-end handshake and record layer for one session (§5.3). Methods run
 * one at a time in call order (each waits for the one before), so records are numbered in
 * the order they were handed in; send them in the order their promises resolve.
 */
export class ViewerHandshake {
  #sessionID;
  #identity;
  #name;
  #organization;
  #fixedEphemeral;
  #payloadLimit;

  // 'new' → 'committed' (KeyCommit sent) → 'awaitingIdentity' (keys, own Identity sealed)
  // → 'established' (the host's Identity verified).
  #state = 'new';
  #failure = null;
  #inbound = Promise.resolve();
  #outbound = Promise.resolve();

  #ephemeralPrivateKey = null;
  #ownShare = null;
  #commitment = null;
  #transcriptHash = null;
  #hostIdentityKey = null;
  #hostIdentityVerifier = null;
  #sealingKey = null;
  #openingKey = null;
  #sendSequence = 0n;
  #receiveSequence = 0n;
  #sas = null;

  /**
   * @param {object} options
   * @param {Uint8Array} options.sessionID the 16 bytes of Paired's session id
   * @param {{privateKey: CryptoKey, publicKey: Uint8Array}} options.identity the engineer's Ed25519 key
   * @param {string} [options.name] the engineer's name for the host's prompt
   * @param {string} [options.organization] the engineer's company
   * @param {Uint8Array|CryptoKeyPair} [options.ephemeral] a fixed X25519 private key (32 bytes) or
   *     key pair, for test vectors; by default a fresh one is made in start()
   * @param {number} [options.payloadLimit] the relay's payload limit from HelloAck (default 1 MiB)
   */
  constructor({ sessionID, identity, name = '', organization = '', ephemeral, payloadLimit = DEFAULT_PAYLOAD_LIMIT }) {
    if (!isBytes(sessionID, 16)) throw bug('the session id from Paired must be 16 bytes');
    if (!identity || !(identity.privateKey instanceof CryptoKey) || !isBytes(identity.publicKey, 32)) {
      throw bug('the identity must be {privateKey: CryptoKey, publicKey: 32 bytes}, as loadOrCreateIdentity() gives');
    }
    if (typeof name !== 'string' || typeof organization !== 'string') {
      throw bug('name and organization must be strings');
    }
    const limitInRange = payloadLimit >= MINIMUM_PAYLOAD_LIMIT && payloadLimit <= MAXIMUM_FRAME_PAYLOAD;
    if (!Number.isInteger(payloadLimit) || !limitInRange) {
      throw bug(`the payload limit must be an integer from ${MINIMUM_PAYLOAD_LIMIT} to ${MAXIMUM_FRAME_PAYLOAD}`);
    }
    this.#sessionID = new Uint8Array(sessionID);
    this.#identity = { privateKey: identity.privateKey, publicKey: new Uint8Array(identity.publicKey) };
    this.#name = name;
    this.#organization = organization;
    this.#fixedEphemeral = ephemeral ?? null;
    this.#payloadLimit = payloadLimit;
  }

  /** The six digits both sides show, as "123 456"; null until the keys exist (§5.3.7). */
  get sas() {
    return this.#sas;
  }

  /** Whether the host's Identity has been verified: records may be sealed from now on. */
  get established() {
    return this.#state === 'established' && this.#failure === null;
  }

  /** The largest inner payload a record may carry: the relay's limit less 17 bytes (§5.3.5). */
  get maximumInnerPayload() {
    return this.#payloadLimit - RECORD_OVERHEAD;
  }

  /**
   * Starts the handshake on Paired: makes the ephemeral key and commits to this side's
   * KeyShare (§5.3.1 step 1).
   * @returns {Promise<Uint8Array>} the KeyCommit payload (33 bytes)
   */
  start() {
    return this.#inSequence(async () => {
      if (this.#state !== 'new') throw bug('the end-to-end handshake was started twice');
      const ephemeral = await this.#ephemeralKeyPair();
      const share = concat(Uint8Array.of(VERSION, ROLE_VIEWER), ephemeral.publicKey, this.#identity.publicKey);
      this.#ephemeralPrivateKey = ephemeral.privateKey;
      this.#ownShare = share;
      this.#commitment = await sha256(share);
      this.#state = 'committed';
      return concat(Uint8Array.of(VERSION), this.#commitment);
    });
  }

  /**
   * The host's KeyShare arrived (§5.3.1 step 3): derives the keys and seals this side's
   * Identity as record 0.
   * @returns {Promise<{keyShare: Uint8Array, identityRecord: Uint8Array}>} the KeyShare
   *     payload to send, then the Sealed payload of the viewer's Identity
   */
  receiveKeyShare(hostSharePayload) {
    return this.#inSequence(async () => {
      if (!isBytes(hostSharePayload)) throw bug('receiveKeyShare takes the KeyShare payload as a Uint8Array');
      this.#checkArrival(MessageType.keyShare);
      const share = new Uint8Array(hostSharePayload);
      this.#checkHostShare(share);
      const hostEphemeral = share.slice(2, 34);
      const hostIdentity = share.slice(34, 66);
      let ephemeralKey;
      try {
        ephemeralKey = await crypto.subtle.importKey('raw', hostEphemeral, { name: 'X25519' }, false, []);
        this.#hostIdentityVerifier = await crypto.subtle.importKey('raw', hostIdentity, 'Ed25519', false, ['verify']);
      } catch {
        throw new SecureChannelError(
          'handshakeFailed',
          "the host's key share holds an invalid key; the session was ended",
        );
      }
      this.#hostIdentityKey = hostIdentity;
      this.#transcriptHash = await sha256(concat(LABEL, this.#sessionID, this.#commitment, share, this.#ownShare));
      const okm = await this.#keyMaterial(ephemeralKey);
      const keyUsage = (bytes, usage) => crypto.subtle.importKey('raw', bytes, { name: 'AES-GCM' }, false, [usage]);
      this.#openingKey = await keyUsage(okm.slice(0, 32), 'decrypt');
      this.#sealingKey = await keyUsage(okm.slice(32, 64), 'encrypt');
      const code = new DataView(okm.buffer, 64, 4).getUint32(0) % 1_000_000;
      const digits = String(code).padStart(6, '0');
      this.#sas = `${digits.slice(0, 3)} ${digits.slice(3)}`;

      const signed = concat(IDENTITY_LABEL, Uint8Array.of(ROLE_VIEWER), this.#transcriptHash);
      const signature = new Uint8Array(await crypto.subtle.sign('Ed25519', this.#identity.privateKey, signed));
      const identity = concat(
        signature,
        str16(cutText(this.#name, IDENTITY_TEXT_LIMIT)),
        str16(cutText(this.#organization, IDENTITY_TEXT_LIMIT)),
      );
      this.#state = 'awaitingIdentity';
      const identityRecord = await this.#sealRecord(MessageType.identity, identity, this.#sendSequence++);
      return { keyShare: new Uint8Array(this.#ownShare), identityRecord };
    });
  }

  /**
   * Opens a Sealed payload from the host (§5.3.5). The first must be the host's Identity
   * (§5.3.6): its signature is verified with the identity key of the host's KeyShare.
   * @returns {Promise<{type: number, payload: Uint8Array} |
   *     {type: 0x4a, name: string, organization: string, hostKey: Uint8Array}>}
   */
  open(sealedPayload) {
    return this.#inSequence(async () => {
      if (!isBytes(sealedPayload)) throw bug('open takes the Sealed payload as a Uint8Array');
      this.#checkArrival(MessageType.sealed);
      const sequence = this.#receiveSequence;
      const length = sealedPayload.length;
      if (length < RECORD_OVERHEAD || length > MAXIMUM_FRAME_PAYLOAD) {
        throw tampered(`a Sealed record of ${length} bytes cannot be one: it needs at least ${RECORD_OVERHEAD}`);
      }
      let plaintext;
      try {
        const opened = await crypto.subtle.decrypt(
          { name: 'AES-GCM', iv: nonce(sequence), additionalData: sealedHeader(length), tagLength: 128 },
          this.#openingKey,
          sealedPayload,
        );
        plaintext = new Uint8Array(opened);
      } catch {
        throw tampered(`record ${sequence} did not verify`);
      }
      this.#receiveSequence = sequence + 1n;
      const type = plaintext[0];
      const payload = plaintext.subarray(1);
      if (this.#state === 'awaitingIdentity') return this.#verifyIdentity(type, payload);
      if (type === MessageType.identity) {
        throw new SecureChannelError(
          'unexpectedMessage',
          `the host sent a second Identity record (record ${sequence}); only record 0 may be one, ` +
            'so the session was ended',
        );
      }
      if (!VIEWER_RECEIVES.includes(type)) {
        throw new SecureChannelError(
          'unexpectedMessage',
          `the host sealed ${typeName(type)} (record ${sequence}), which a viewer does not receive; ` +
            'the session was ended',
        );
      }
      return { type, payload };
    });
  }

  /**
   * Seals a message for the host (§5.3.5): UpdateRequest, Pointer, Key or Clipboard, once
   * the host's Identity has been verified (and, by host id, its key pin checked).
   * Throws a 'tooLarge' SecureChannelError, which does not end the session, when the
   * inner payload exceeds maximumInnerPayload: the message is not sent.
   * @returns {Promise<Uint8Array>} the Sealed payload
   */
  seal(innerType, innerPayload) {
    if (!VIEWER_SENDS.includes(innerType)) {
      return Promise.reject(bug(`a viewer does not send ${typeName(innerType)} in a sealed record`));
    }
    if (!isBytes(innerPayload)) return Promise.reject(bug('seal takes the inner payload as a Uint8Array'));
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#state !== 'established') {
      return Promise.reject(bug("nothing may be sealed before the host's Identity has been verified (§5.3.1)"));
    }
    if (innerPayload.length > this.maximumInnerPayload) {
      // §2.2: a message that cannot be split is not sent, and the user is told why.
      const clipboard = innerType === MessageType.clipboard;
      return Promise.reject(
        new SecureChannelError(
          'tooLarge',
          `${clipboard ? 'the clipboard text' : `this ${typeName(innerType)}`} is ${innerPayload.length} bytes, ` +
            `more than the ${this.maximumInnerPayload} bytes one message may carry through this relay; ` +
            `it was not sent. ${clipboard ? 'Copy less text at a time' : 'Please report this bug in the web viewer'}`,
        ),
      );
    }
    const sequence = this.#sendSequence++;
    // A copy: the caller may reuse its buffer before the record is sealed.
    const payload = new Uint8Array(innerPayload);
    const sealed = this.#outbound.then(() => {
      if (this.#failure) throw this.#failure;
      return this.#sealRecord(innerType, payload, sequence);
    });
    this.#outbound = sealed.catch(() => {});
    return sealed;
  }

  /**
   * The error for a peer frame that is neither a KeyShare nor a Sealed record (§5.3.8):
   * a §5.2 message in clear, or a KeyCommit, which only a viewer sends. The channel is
   * failed from now on; end the session with the returned error.
   * @returns {SecureChannelError}
   */
  unexpectedFrame(frameType) {
    const error = this.#frameError(frameType);
    this.#failure ??= error;
    this.#forgetKeys();
    return error;
  }

  // MARK: private

  // Runs `operation` after the ones before it; its first SecureChannelError fails the channel.
  #inSequence(operation) {
    const result = this.#inbound.then(async () => {
      if (this.#failure) throw this.#failure;
      try {
        return await operation();
      } catch (error) {
        if (error instanceof SecureChannelError) {
          this.#failure ??= error;
          this.#forgetKeys();
        }
        throw error;
      }
    });
    this.#inbound = result.catch(() => {});
    return result;
  }

  #forgetKeys() {
    this.#ephemeralPrivateKey = null;
    this.#sealingKey = null;
    this.#openingKey = null;
  }

  async #ephemeralKeyPair() {
    const fixed = this.#fixedEphemeral;
    if (fixed === null) {
      const pair = await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
      return { privateKey: pair.privateKey, publicKey: await rawPublicKey(pair.publicKey) };
    }
    if (fixed instanceof Uint8Array) return importFixedKeyPair('X25519', fixed, ['deriveBits']);
    if (fixed.privateKey instanceof CryptoKey && fixed.publicKey instanceof CryptoKey) {
      return { privateKey: fixed.privateKey, publicKey: await rawPublicKey(fixed.publicKey) };
    }
    throw bug('a fixed ephemeral key must be a 32-byte X25519 private key or an X25519 CryptoKeyPair');
  }

  // Order (§5.3.8 "Out of order or misdirected"): a KeyShare only right after KeyCommit,
  // a Sealed record only once the keys exist.
  #checkArrival(frameType) {
    if (frameType === MessageType.keyShare && this.#state === 'committed') return;
    const keyed = this.#state === 'awaitingIdentity' || this.#state === 'established';
    if (frameType === MessageType.sealed && keyed) return;
    throw this.#frameError(frameType);
  }

  #frameError(frameType) {
    if (frameType >= MessageType.screenInit && frameType <= MessageType.accessGranted) {
      // Once the host's Identity opened the host is known to encrypt: a frame in clear
      // can only have been put in on the way.
      if (this.#state === 'established') {
        return tampered(`a plaintext ${typeName(frameType)} arrived in the encrypted session`);
      }
      return new SecureChannelError(
        'peerWithoutEncryption',
        `the other side does not encrypt end to end; update relay-agent (the host sent ${typeName(frameType)} ` +
          'unencrypted: an old relay-agent, or the relay altered the session); the session was ended',
      );
    }
    if (frameType === MessageType.keyCommit) {
      return new SecureChannelError(
        'handshakeFailed',
        'the host sent KeyCommit, which only a viewer sends: the relay or the host altered the session; ' +
          'the session was ended. Connect again',
      );
    }
    if (frameType === MessageType.keyShare) {
      const why = this.#state === 'new' ? 'before this viewer committed to its own share' : 'a second time';
      return new SecureChannelError(
        'handshakeFailed',
        `the host sent its KeyShare ${why}, out of turn in the end-to-end handshake; the session was ended. ` +
          'Connect again',
      );
    }
    if (frameType === MessageType.sealed) {
      return new SecureChannelError(
        'handshakeFailed',
        'the host sent a Sealed record before the end-to-end keys were agreed, out of turn in the handshake; ' +
          'the session was ended. Connect again',
      );
    }
    return new SecureChannelError(
      'unexpectedMessage',
      `the host sent ${typeName(frameType)}, which is not a message of the end-to-end session; ` +
        'the session was ended. Update relay-agent and this page (reload it)',
    );
  }

  // §5.3.3 and §5.3.8 "Malformed handshake message".
  #checkHostShare(share) {
    const malformed = (why) =>
      new SecureChannelError('handshakeFailed', `the host's KeyShare is malformed (${why}); the session was ended`);
    const length = share.length;
    if (length < KEY_SHARE_LENGTH) throw malformed(`truncated message: ${length} of ${KEY_SHARE_LENGTH} bytes`);
    if (length > KEY_SHARE_LENGTH) throw malformed(`trailing bytes: ${length} bytes, not ${KEY_SHARE_LENGTH}`);
    if (share[0] !== VERSION) {
      throw new SecureChannelError(
        'unsupportedVersion',
        `the host speaks end-to-end version ${share[0]}, this viewer speaks ${VERSION}; ` +
          'update relay-agent on the host and reload this page',
      );
    }
    if (share[1] === ROLE_VIEWER) {
      throw new SecureChannelError(
        'handshakeFailed',
        "the host's key share says it comes from a viewer: someone replayed this side's own share; " +
          'the session was ended',
      );
    }
    if (share[1] !== ROLE_HOST) throw malformed(`invalid field: role ${share[1]}`);
  }

  // X25519 with the host's share, then HKDF-SHA256 into 68 bytes (§5.3.4).
  async #keyMaterial(hostEphemeral) {
    const zero = () =>
      new SecureChannelError(
        'handshakeFailed',
        "the host's ephemeral key is a low-order point (the key agreement gave zero): someone altered " +
          'the handshake; the session was ended',
      );
    let shared;
    try {
      // Chromium refuses a zero result itself (OperationError), as WebCrypto specifies.
      const algorithm = { name: 'X25519', public: hostEphemeral };
      shared = new Uint8Array(await crypto.subtle.deriveBits(algorithm, this.#ephemeralPrivateKey, 256));
    } catch {
      throw zero();
    } finally {
      // Used once (§5.3): forget the ephemeral private key.
      this.#ephemeralPrivateKey = null;
    }
    if (shared.every((byte) => byte === 0)) throw zero();
    const ikm = await crypto.subtle.importKey('raw', shared, { name: 'HKDF' }, false, ['deriveBits']);
    const bits = await crypto.subtle.deriveBits(
      { name: 'HKDF', hash: 'SHA-256', salt: this.#transcriptHash, info: KEYS_LABEL },
      ikm,
      68 * 8,
    );
    return new Uint8Array(bits);
  }

  async #sealRecord(innerType, innerPayload, sequence) {
    const plaintext = concat(Uint8Array.of(innerType), innerPayload);
    try {
      const header = sealedHeader(plaintext.length + TAG_LENGTH);
      const sealed = await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv: nonce(sequence), additionalData: header, tagLength: 128 },
        this.#sealingKey,
        plaintext,
      );
      return new Uint8Array(sealed);
    } catch (error) {
      // A sequence number was used and nothing went out: the host could not open past it.
      const failure = new SecureChannelError(
        'sendFailed',
        `this browser could not encrypt a message (${error?.name ?? 'error'}), so the end-to-end channel ` +
          'cannot go on; the session was ended. Connect again',
      );
      this.#failure ??= failure;
      throw failure;
    }
  }

  // Record 0 (§5.3.6, §5.3.8 "A wrong first record").
  async #verifyIdentity(type, payload) {
    if (type !== MessageType.identity) {
      throw new SecureChannelError(
        'unexpectedMessage',
        `the host's first sealed record is ${typeName(type)}, not its Identity; the session was ended`,
      );
    }
    const identity = decodeIdentity(payload);
    if (identity === null) {
      throw new SecureChannelError('handshakeFailed', "the host's Identity record is malformed; the session was ended");
    }
    const signed = concat(IDENTITY_LABEL, Uint8Array.of(ROLE_HOST), this.#transcriptHash);
    const valid = await crypto.subtle.verify('Ed25519', this.#hostIdentityVerifier, identity.signature, signed);
    if (!valid) {
      throw new SecureChannelError(
        'handshakeFailed',
        "the host's identity signature does not verify: its key did not sign this handshake, so someone may " +
          'be in between; the session was ended',
      );
    }
    this.#state = 'established';
    return {
      type: MessageType.identity,
      name: identity.name,
      organization: identity.organization,
      hostKey: new Uint8Array(this.#hostIdentityKey),
    };
  }
}
