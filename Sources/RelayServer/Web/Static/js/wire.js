// RelayWire for the browser: frames and messages of the SupportRelay protocol.
//
// The contract is docs/PROTOCOL.md: frames §2, primitive types §3, message types §4,
// relay-control messages §5.1, peer messages §5.2, the wire form of KeyCommit, KeyShare
// and Sealed §5.3 (the cryptography is secure.js), codes and decoding errors §6.
// Tests/browser/test_wire_vectors.py runs every §10 vector through this module in Chromium.
//
// Encoders take a plain object and return the message's payload (no frame header);
// decoders take a payload and return a plain object with the field names of the
// document's tables. `frame()` adds the 4-byte header, `FrameReader` takes it off.

export const PROTOCOL_VERSION = 1;
export const HEADER_LENGTH = 4;
/** §2.1: a receiver's default maximum payload length. */
export const DEFAULT_MAXIMUM_PAYLOAD_LENGTH = 1_048_576;
/** §2: the largest payload a UInt24 length can describe. */
export const ABSOLUTE_MAXIMUM_PAYLOAD_LENGTH = 0xff_ffff;
/** §5.1.2, §9: a HelloAck announcing less than this is refused. */
export const MINIMUM_ANNOUNCED_PAYLOAD_LENGTH = 65_536;
/** §5.3.5: a Sealed payload is its inner type byte and inner payload, then a 16-byte tag. */
export const SEALED_TAG_LENGTH = 16;
export const SEALED_OVERHEAD = 1 + SEALED_TAG_LENGTH;
/** §5.3.2, §5.3.3: the end-to-end handshake version and the KeyCommit and KeyShare sizes. */
export const E2E_VERSION = 1;
export const KEY_COMMIT_LENGTH = 33;
export const KEY_SHARE_LENGTH = 66;
/** §5.2.1: the largest screen side. */
export const MAXIMUM_SCREEN_DIMENSION = 16_384;

/** §4: every message type of version 1. */
export const MessageType = Object.freeze({
  hello: 0x01,
  helloAck: 0x02,
  hostAuth: 0x03,
  viewerAuth: 0x04,
  codeIssued: 0x05,
  hostRegistered: 0x06,
  paired: 0x07,
  ping: 0x08,
  pong: 0x09,
  bye: 0x0a,
  error: 0x0b,
  screenInit: 0x40,
  tileUpdate: 0x41,
  updateRequest: 0x42,
  pointer: 0x43,
  key: 0x44,
  clipboard: 0x45,
  accessGranted: 0x46,
  keyCommit: 0x47,
  keyShare: 0x48,
  sealed: 0x49,
});

/** §5.3.6: Identity is an inner type, only ever inside Sealed, never a frame type. */
export const InnerType = Object.freeze({ identity: 0x4a });

/** §6.2 */
export const ByeReason = Object.freeze({
  normal: 1,
  peerLeft: 2,
  relayShutdown: 3,
  idleTimeout: 4,
  handshakeTimeout: 5,
  protocolError: 6,
  revoked: 7,
  relayRestart: 8,
  declined: 9,
});

/** §6.1 */
export const ErrorCode = Object.freeze({
  unsupportedVersion: 1,
  malformedMessage: 2,
  frameTooLarge: 3,
  unexpectedMessage: 4,
  authenticationFailed: 5,
  invalidCode: 6,
  noSuchHost: 7,
  hostBusy: 8,
  rateLimited: 9,
  relayFull: 10,
  timeout: 11,
  internalError: 12,
});

/** Hello.role, KeyShare.role (§5.1.1, §5.3.3). */
export const Role = Object.freeze({ host: 1, viewer: 2 });
/** Paired.mode (§5.1.7). */
export const PairingMode = Object.freeze({ attended: 1, unattended: 2 });
/** `caps` bits (§3). */
export const Capability = Object.freeze({ screenTiles: 0x1, input: 0x2, clipboard: 0x4, glyphs: 0x8, all: 0xf });
/** HostAuth.method (§5.1.3). */
export const HostAuthMethod = Object.freeze({ supportCode: 1, enrolled: 2, namedSupportCode: 3, key: 4 });
/** ViewerAuth.request (§5.1.4). */
export const ViewerRequest = Object.freeze({ newSupportCode: 1, connect: 2 });
/** CodeIssued.flags (§5.1.5). */
export const CodeIssuedFlag = Object.freeze({ confirmSecurityCode: 0x01 });
/** ScreenInit.pixelFormat (§5.2.1). */
export const PixelFormat = Object.freeze({ bgrx8888: 1 });
/** UpdateRequest.flags (§5.2.3). */
export const UpdateRequestFlag = Object.freeze({ fullRefresh: 0x01 });
/** Pointer.buttons (§5.2.4). */
export const PointerButton = Object.freeze({ left: 0x01, middle: 0x02, right: 0x04, wheelUp: 0x08, wheelDown: 0x10 });
/** AccessGranted.flags (§5.2.7). */
export const AccessGrantedFlag = Object.freeze({ inputAllowed: 0x01 });

// ---------------------------------------------------------------------------------------
// Errors (§6.3)

/** The decoding error kinds of §6.3, spelled as the document (and WireError.Kind) spells them. */
export const WireErrorKind = Object.freeze({
  truncatedFrame: 'truncated frame',
  frameTooLarge: 'frame too large',
  unknownMessageType: 'unknown message type',
  truncatedMessage: 'truncated message',
  trailingBytes: 'trailing bytes',
  invalidUTF8: 'invalid UTF-8',
  invalidField: 'invalid field',
  fieldTooLong: 'field too long',
});

// What a person can do about each kind: a frame or message from the relay or the peer
// that fails to decode ends the connection (§2.1, §5), and is a bug to report.
const RECEIVED_ADVICE =
  "The connection has to end (PROTOCOL.md §2.1, §5); if it happens again, report it with the browser console's log.";
const SENT_ADVICE = 'Nothing was sent: fix the value before sending it.';

/** A frame or message that cannot be decoded or encoded; `kind` is one of WireErrorKind's strings. */
export class WireError extends Error {
  constructor(kind, message, options) {
    super(message, options);
    this.name = 'WireError';
    this.kind = kind;
  }
}

function receivedError(kind, what) {
  return new WireError(kind, `${what} (${kind}). ${RECEIVED_ADVICE}`);
}

function sendingError(kind, what) {
  return new WireError(kind, `${what} (${kind}). ${SENT_ADVICE}`);
}

// ---------------------------------------------------------------------------------------
// Names and sentences for people (§6.1, §6.2)

const TYPE_NAMES = new Map([
  [MessageType.hello, 'Hello'],
  [MessageType.helloAck, 'HelloAck'],
  [MessageType.hostAuth, 'HostAuth'],
  [MessageType.viewerAuth, 'ViewerAuth'],
  [MessageType.codeIssued, 'CodeIssued'],
  [MessageType.hostRegistered, 'HostRegistered'],
  [MessageType.paired, 'Paired'],
  [MessageType.ping, 'Ping'],
  [MessageType.pong, 'Pong'],
  [MessageType.bye, 'Bye'],
  [MessageType.error, 'Error'],
  [MessageType.screenInit, 'ScreenInit'],
  [MessageType.tileUpdate, 'TileUpdate'],
  [MessageType.updateRequest, 'UpdateRequest'],
  [MessageType.pointer, 'Pointer'],
  [MessageType.key, 'Key'],
  [MessageType.clipboard, 'Clipboard'],
  [MessageType.accessGranted, 'AccessGranted'],
  [MessageType.keyCommit, 'KeyCommit'],
  [MessageType.keyShare, 'KeyShare'],
  [MessageType.sealed, 'Sealed'],
]);

/** True for the type bytes §4 assigns (0x4A, Identity, is an inner type and not one of them). */
export function isKnownMessageType(type) {
  return TYPE_NAMES.has(type);
}

/** True for the peer range 0x40–0x7F (§4), whether assigned or not. */
export function isPeerMessageType(type) {
  return (type & 0xc0) === 0x40;
}

/** "ScreenInit" for 0x40; "type 0x4a" for a byte §4 does not assign. */
export function messageTypeName(type) {
  return TYPE_NAMES.get(type) ?? `type 0x${hex2(type)}`;
}

const BYE_NAMES = ['', 'normal', 'peer_left', 'relay_shutdown', 'idle_timeout', 'handshake_timeout',
  'protocol_error', 'revoked', 'relay_restart', 'declined'];

const BYE_SENTENCES = [
  '',
  'The session was ended on purpose by the other side.',
  'The other side left the session: it ended it, lost its connection or failed.',
  'The relay is shutting down. Connect again in a minute, or use another relay node.',
  'The relay heard nothing from this browser for too long and closed the connection. ' +
    'Check the network connection and connect again.',
  'Signing in to the relay took too long. Check the network path to the relay and try again.',
  'The other end sent something the protocol does not allow, so the session ended. ' +
    'Make sure both sides run current software, and report it if it happens again.',
  'The account or host this connection signed in with was removed or given a new key, ' +
    "or the host connected again from elsewhere. Sign in again, or ask the relay's administrator.",
  'The relay restarted, which ended the session. Connect again.',
  'The customer declined the session, or did not answer in time.',
];

/** §6.2's name of a Bye reason: "peer_left", or "unknown_N" for a reason it does not list. */
export function byeReasonName(reason) {
  return BYE_NAMES[reason] || `unknown_${reason}`;
}

/** A short English sentence for the user about why a session ended (§6.2). */
export function describeBye(reason) {
  return BYE_SENTENCES[reason] ||
    `The session ended for a reason this page does not know (${byeReasonName(reason)}); ` +
    'updating the page may explain it.';
}

const ERROR_NAMES = ['', 'unsupported_version', 'malformed_message', 'frame_too_large', 'unexpected_message',
  'authentication_failed', 'invalid_code', 'no_such_host', 'host_busy', 'rate_limited', 'relay_full', 'timeout',
  'internal_error'];

const ERROR_SENTENCES = [
  '',
  "The relay does not speak this page's protocol version. Reload the page, or ask the relay's operator " +
    'to update the relay.',
  'The relay could not decode a message from this page. This is a bug: report it with the browser ' +
    "console's log.",
  "This page sent a message larger than the relay accepts. This is a bug: report it; the relay's operator " +
    'can raise the limit meanwhile.',
  'The relay did not expect that message at this point. This is a bug: report it with the browser ' +
    "console's log.",
  "Sign-in was refused: the relay did not accept this account's credentials. Sign in again, or ask the " +
    "relay's administrator to check your account and key.",
  'The support code is wrong, expired or already used, or it was withdrawn. Ask for a new code and read ' +
    'it to the customer.',
  'No host with that id is reachable. Check the host id, and that the host PC is on and its agent running.',
  'The host already has a viewer. Wait until that session ends, or ask the colleague who is connected.',
  "Too many failed attempts. Wait the time the relay's message names, then try again; do not keep guessing.",
  'The relay is full or shutting down. Try again later, or use another relay node.',
  'The relay waited too long: signing in did not finish in time, or the support code expired unused. ' +
    'Check the network; for an expired code, ask for a new one.',
  "The relay failed. Report the relay's message to its operator.",
];

/** §6.1's name of an error code: "invalid_code", or "unknown_N" for a code it does not list. */
export function errorCodeName(code) {
  return ERROR_NAMES[code] || `unknown_${code}`;
}

/** A short English sentence for the user: what the relay's Error means and what to do (§6.1). */
export function describeError(code) {
  return ERROR_SENTENCES[code] ||
    `The relay refused with an error this page does not know (${errorCodeName(code)}). ` +
    "Read the relay's message; reloading the page may help.";
}

// ---------------------------------------------------------------------------------------
// Frames (§2)

/** The 4-byte header of a frame (§2); Sealed uses it as AAD (§5.3.5). */
export function frameHeader(type, payloadLength) {
  if (!isKnownMessageType(type)) {
    throw sendingError(WireErrorKind.unknownMessageType,
      `frame type ${type} is not a message type of PROTOCOL.md §4`);
  }
  if (!Number.isInteger(payloadLength) || payloadLength < 0 || payloadLength > ABSOLUTE_MAXIMUM_PAYLOAD_LENGTH) {
    throw sendingError(WireErrorKind.frameTooLarge,
      `a ${messageTypeName(type)} payload of ${payloadLength} bytes does not fit a frame: ` +
      `at most ${ABSOLUTE_MAXIMUM_PAYLOAD_LENGTH} bytes`);
  }
  return new Uint8Array([type, payloadLength >>> 16, (payloadLength >>> 8) & 0xff, payloadLength & 0xff]);
}

/**
 * The whole frame: header and payload (§2). `maximumPayloadLength` is the receiver's
 * limit (§2.2), HelloAck's value towards the relay; by default only the UInt24 bounds it.
 */
export function frame(type, payload, maximumPayloadLength = ABSOLUTE_MAXIMUM_PAYLOAD_LENGTH) {
  const bytes = asBytes(payload, 'frame payload');
  const header = frameHeader(type, bytes.length);
  if (bytes.length > maximumPayloadLength) {
    throw sendingError(WireErrorKind.frameTooLarge,
      `a ${messageTypeName(type)} payload of ${bytes.length} bytes is more than the receiver's limit ` +
      `of ${maximumPayloadLength} (§2.2)`);
  }
  const whole = new Uint8Array(HEADER_LENGTH + bytes.length);
  whole.set(header, 0);
  whole.set(bytes, HEADER_LENGTH);
  return whole;
}

/**
 * Cuts a byte stream into frames (§2.1). Chunks may end anywhere: inside a header, inside
 * a payload, or hold several frames. Each header is checked (type, then length against
 * the limit) before any of its payload is buffered. After a failure the reader stays
 * failed: the stream cannot be resynchronised.
 *
 * A payload that lies whole inside one pushed chunk is a view of that chunk (no copy):
 * do not reuse a chunk's buffer after pushing it.
 */
export class FrameReader {
  #limit;
  #header = new Uint8Array(HEADER_LENGTH);
  #headerFill = 0;
  #type = 0;
  #payload = null; // the payload being filled across chunks
  #payloadFill = 0;
  #failure = null;

  constructor(maximumPayloadLength = DEFAULT_MAXIMUM_PAYLOAD_LENGTH) {
    this.maximumPayloadLength = maximumPayloadLength;
  }

  /** The receiver's limit (§2.1); an agent raises it to what its relay announced (§2.2). */
  get maximumPayloadLength() {
    return this.#limit;
  }

  set maximumPayloadLength(limit) {
    if (!Number.isInteger(limit) || limit < 0 || limit > ABSOLUTE_MAXIMUM_PAYLOAD_LENGTH) {
      throw new RangeError(`a frame reader's limit must be an integer from 0 to ` +
        `${ABSOLUTE_MAXIMUM_PAYLOAD_LENGTH} bytes (PROTOCOL.md §2.1), not ${limit}`);
    }
    this.#limit = limit;
  }

  /** Bytes held of an unfinished frame. */
  get bufferedBytes() {
    return this.#payload ? HEADER_LENGTH + this.#payloadFill : this.#headerFill;
  }

  /**
   * Adds the next bytes of the stream and returns the frames they complete, in order, as
   * `{type, payload}`. Throws WireError (frame too large, unknown message type); the
   * error's `frames` holds the whole frames of this chunk that came before the bad header.
   */
  push(chunk) {
    if (this.#failure) throw this.#failure;
    const bytes = asBytes(chunk, 'FrameReader.push chunk');
    const frames = [];
    let offset = 0;
    try {
      while (offset < bytes.length) {
        if (this.#payload) {
          const count = Math.min(this.#payload.length - this.#payloadFill, bytes.length - offset);
          this.#payload.set(bytes.subarray(offset, offset + count), this.#payloadFill);
          this.#payloadFill += count;
          offset += count;
          if (this.#payloadFill === this.#payload.length) {
            frames.push({ type: this.#type, payload: this.#payload });
            this.#payload = null;
          }
          continue;
        }
        if (this.#headerFill === 0 && bytes.length - offset >= HEADER_LENGTH) {
          // The usual case: the header is in this chunk, and maybe the payload too.
          const length = this.#checkHeader(bytes[offset], bytes[offset + 1], bytes[offset + 2],
            bytes[offset + 3]);
          offset += HEADER_LENGTH;
          if (bytes.length - offset >= length) {
            frames.push({ type: this.#type, payload: bytes.subarray(offset, offset + length) });
            offset += length;
          } else {
            this.#startPayload(length);
          }
          continue;
        }
        this.#header[this.#headerFill++] = bytes[offset++];
        if (this.#headerFill === HEADER_LENGTH) {
          this.#headerFill = 0;
          const header = this.#header;
          const length = this.#checkHeader(header[0], header[1], header[2], header[3]);
          if (length === 0) {
            frames.push({ type: this.#type, payload: new Uint8Array(0) });
          } else {
            this.#startPayload(length);
          }
        }
      }
    } catch (error) {
      error.frames = frames;
      this.#failure = error;
      throw error;
    }
    return frames;
  }

  /** The stream has ended: throws WireError (truncated frame) if it ended inside a frame. */
  end() {
    if (this.#failure) throw this.#failure;
    if (this.#headerFill > 0) {
      this.#failure = receivedError(WireErrorKind.truncatedFrame,
        `the stream ended after ${this.#headerFill} of a frame header's 4 bytes`);
    } else if (this.#payload) {
      this.#failure = receivedError(WireErrorKind.truncatedFrame,
        `the stream ended after ${this.#payloadFill} of a ${messageTypeName(this.#type)} frame's ` +
        `${this.#payload.length} payload bytes`);
    }
    if (this.#failure) throw this.#failure;
  }

  // §2.1 steps 2 and 3: the type, then the length, from the 4 header bytes alone.
  #checkHeader(type, length0, length1, length2) {
    if (!isKnownMessageType(type)) {
      throw receivedError(WireErrorKind.unknownMessageType,
        `a frame header has type byte 0x${hex2(type)}, which PROTOCOL.md §4 does not assign`);
    }
    const length = (length0 << 16) | (length1 << 8) | length2;
    if (length > this.#limit) {
      throw receivedError(WireErrorKind.frameTooLarge,
        `a ${messageTypeName(type)} frame header announces ${length} payload bytes, ` +
        `more than this receiver's limit of ${this.#limit}`);
    }
    this.#type = type;
    return length;
  }

  #startPayload(length) {
    this.#payload = new Uint8Array(length);
    this.#payloadFill = 0;
  }
}

// ---------------------------------------------------------------------------------------
// Primitive types (§3): reading

const UTF8_DECODER = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const UTF8_ENCODER = new TextEncoder();

class PayloadReader {
  constructor(messageName, payload) {
    this.messageName = messageName;
    this.bytes = asBytes(payload, `${messageName} payload`);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    this.offset = 0;
  }

  get remaining() {
    return this.bytes.length - this.offset;
  }

  need(count, field) {
    if (this.remaining < count) {
      throw receivedError(WireErrorKind.truncatedMessage,
        `${this.messageName}.${field} needs ${count} bytes, but the payload has ${this.remaining} left`);
    }
  }

  u8(field) {
    this.need(1, field);
    return this.bytes[this.offset++];
  }

  u16(field) {
    this.need(2, field);
    const value = this.view.getUint16(this.offset);
    this.offset += 2;
    return value;
  }

  u32(field) {
    this.need(4, field);
    const value = this.view.getUint32(this.offset);
    this.offset += 4;
    return value;
  }

  u64(field) {
    this.need(8, field);
    const value = this.view.getBigUint64(this.offset);
    this.offset += 8;
    return value;
  }

  /** A copy of the next `count` bytes (keys and digests outlive the payload). */
  bytesCopy(count, field) {
    this.need(count, field);
    const value = this.bytes.slice(this.offset, this.offset + count);
    this.offset += count;
    return value;
  }

  /** The rest of the payload, as a view. */
  rest() {
    const value = this.bytes.subarray(this.offset);
    this.offset = this.bytes.length;
    return value;
  }

  str16(field) {
    this.need(2, `${field} length`);
    const length = this.view.getUint16(this.offset);
    if (this.remaining - 2 < length) {
      throw receivedError(WireErrorKind.truncatedMessage,
        `${this.messageName}.${field}'s length prefix says ${length} bytes, ` +
        `but the payload has ${this.remaining - 2} left`);
    }
    this.offset += 2;
    return this.utf8(length, field);
  }

  text(field) {
    return this.utf8(this.remaining, field);
  }

  utf8(length, field) {
    let value;
    try {
      value = UTF8_DECODER.decode(this.bytes.subarray(this.offset, this.offset + length));
    } catch {
      throw receivedError(WireErrorKind.invalidUTF8,
        `${this.messageName}.${field}: its ${length} bytes are not well-formed UTF-8`);
    }
    this.offset += length;
    return value;
  }

  code6(field) {
    this.need(6, field);
    let code = '';
    for (let index = 0; index < 6; index++) {
      const byte = this.bytes[this.offset + index];
      if (byte < 0x30 || byte > 0x39) {
        throw receivedError(WireErrorKind.invalidField,
          `${this.messageName}.${field} must be six ASCII digits, but byte ${index + 1} is 0x${hex2(byte)}`);
      }
      code += String.fromCharCode(byte);
    }
    this.offset += 6;
    return code;
  }

  /** A u8 from a listed set (§3 "Enumerations"). */
  choice(field, allowed, meaning) {
    const value = this.u8(field);
    if (!allowed.includes(value)) {
      throw receivedError(WireErrorKind.invalidField, `${this.messageName}.${field} is ${value}; ${meaning}`);
    }
    return value;
  }

  end() {
    if (this.remaining > 0) {
      throw receivedError(WireErrorKind.trailingBytes,
        `${this.remaining} bytes follow the last field of ${this.messageName}`);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Primitive types (§3): writing

class PayloadWriter {
  constructor(messageName) {
    this.messageName = messageName;
    this.parts = [];
    this.length = 0;
  }

  #integer(field, value, bytes, maximum) {
    if (!Number.isInteger(value) || value < 0 || value > maximum) {
      throw sendingError(WireErrorKind.invalidField,
        `${this.messageName}.${field} is ${value}, not an integer from 0 to ${maximum}`);
    }
    const part = new Uint8Array(bytes);
    for (let index = bytes - 1, rest = value; index >= 0; index--, rest = Math.floor(rest / 256)) {
      part[index] = rest % 256;
    }
    return this.raw(part);
  }

  u8(field, value) {
    return this.#integer(field, value, 1, 0xff);
  }

  u16(field, value) {
    return this.#integer(field, value, 2, 0xffff);
  }

  u32(field, value) {
    return this.#integer(field, value, 4, 0xffff_ffff);
  }

  u64(field, value) {
    let big;
    try {
      big = typeof value === 'bigint' ? value : BigInt(value);
    } catch {
      big = -1n;
    }
    if (big < 0n || big > 0xffff_ffff_ffff_ffffn || (typeof value === 'number' && !Number.isSafeInteger(value))) {
      throw sendingError(WireErrorKind.invalidField,
        `${this.messageName}.${field} is ${value}, not a BigInt (or safe integer) from 0 to 2^64 − 1`);
    }
    const part = new Uint8Array(8);
    new DataView(part.buffer).setBigUint64(0, big);
    return this.raw(part);
  }

  /** Exactly `count` bytes (keys, digests, session ids). */
  fixed(field, value, count) {
    if (!(value instanceof Uint8Array) || value.length !== count) {
      throw sendingError(WireErrorKind.invalidField,
        `${this.messageName}.${field} must be a Uint8Array of ${count} bytes, ` +
        `got ${describeValue(value)}`);
    }
    return this.raw(value);
  }

  str16(field, value) {
    const bytes = utf8Bytes(this.messageName, field, value);
    if (bytes.length > 0xffff) {
      throw sendingError(WireErrorKind.fieldTooLong,
        `${this.messageName}.${field} is ${bytes.length} bytes of UTF-8; a str16 holds at most 65535`);
    }
    this.u16(`${field} length`, bytes.length);
    return this.raw(bytes);
  }

  text(field, value) {
    return this.raw(utf8Bytes(this.messageName, field, value));
  }

  code6(field, value) {
    let digits = value;
    if (Number.isInteger(value) && value >= 0 && value < 1_000_000) digits = String(value).padStart(6, '0');
    if (typeof digits !== 'string' || !/^[0-9]{6}$/.test(digits)) {
      throw sendingError(WireErrorKind.invalidField,
        `${this.messageName}.${field} must be six digits ("042917") or a number below 1000000, ` +
        `got ${describeValue(value)}`);
    }
    return this.raw(UTF8_ENCODER.encode(digits));
  }

  choice(field, value, allowed, meaning) {
    if (!allowed.includes(value)) {
      throw sendingError(WireErrorKind.invalidField, `${this.messageName}.${field} is ${value}; ${meaning}`);
    }
    return this.u8(field, value);
  }

  raw(bytes) {
    this.parts.push(bytes);
    this.length += bytes.length;
    return this;
  }

  finish() {
    if (this.parts.length === 1) return this.parts[0].slice();
    const payload = new Uint8Array(this.length);
    let offset = 0;
    for (const part of this.parts) {
      payload.set(part, offset);
      offset += part.length;
    }
    return payload;
  }
}

function utf8Bytes(messageName, field, value) {
  if (typeof value !== 'string') {
    throw sendingError(WireErrorKind.invalidField,
      `${messageName}.${field} must be a string, got ${describeValue(value)}`);
  }
  // TextEncoder would silently turn a lone surrogate into U+FFFD: refuse instead (§3 "UTF-8").
  if (!value.isWellFormed()) {
    throw sendingError(WireErrorKind.invalidUTF8,
      `${messageName}.${field} holds a lone UTF-16 surrogate, which has no UTF-8 form ` +
      '(String.prototype.toWellFormed() replaces it)');
  }
  return UTF8_ENCODER.encode(value);
}

// ---------------------------------------------------------------------------------------
// Session ids (§3 `sessionid`): 32 lowercase hex digits for people, 16 bytes for secure.js.

/** The 16 bytes of a session id given as 32 hex digits (dashes allowed) or as bytes. */
export function sessionIDBytes(sessionID) {
  if (sessionID instanceof Uint8Array && sessionID.length === 16) return sessionID.slice();
  const hex = typeof sessionID === 'string' ? sessionID.replaceAll('-', '') : '';
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) {
    throw sendingError(WireErrorKind.invalidField,
      `a session id is 32 hex digits or 16 bytes, got ${describeValue(sessionID)}`);
  }
  return hexToBytes(hex);
}

/** 32 lowercase hex digits, high 64 bits first: how a session id is shown (§3). */
export function sessionIDString(bytes) {
  return bytesToHex(bytes);
}

// ---------------------------------------------------------------------------------------
// Messages: encoders (payloads, §5)

const ROLES = [Role.host, Role.viewer];
const ROLE_MEANING = 'only 1 (host) and 2 (viewer) are allowed';
const MODES = [PairingMode.attended, PairingMode.unattended];
const METHODS = [HostAuthMethod.supportCode, HostAuthMethod.enrolled, HostAuthMethod.namedSupportCode,
  HostAuthMethod.key];
const METHOD_MEANING = 'only 1 (support code), 2 (enrolled host and secret), 3 (support code and machine name) ' +
  'and 4 (enrolled host and key) are allowed';
const REQUESTS = [ViewerRequest.newSupportCode, ViewerRequest.connect];
const REQUEST_MEANING = 'only 1 (new support code) and 2 (connect to an enrolled host) are allowed';

function screenSide(value) {
  return Number.isInteger(value) && value >= 1 && value <= MAXIMUM_SCREEN_DIMENSION;
}

/** One function per message: a plain object in (the fields decode returns), the payload out. */
export const encode = Object.freeze({
  hello({ version = PROTOCOL_VERSION, role, capabilities, software }) {
    return new PayloadWriter('Hello').u16('version', version).choice('role', role, ROLES, ROLE_MEANING)
      .u32('capabilities', capabilities).str16('software', software).finish();
  },

  helloAck({ version = PROTOCOL_VERSION, capabilities, maximumPayloadLength, relayNode }) {
    return new PayloadWriter('HelloAck').u16('version', version).u32('capabilities', capabilities)
      .u32('maximumPayloadLength', maximumPayloadLength).str16('relayNode', relayNode).finish();
  },

  /** {method: 1, code} | {method: 2, hostID, secret} | {method: 3, code, machineName} | {method: 4, hostID} */
  hostAuth({ method, code, machineName, hostID, secret }) {
    const writer = new PayloadWriter('HostAuth').choice('method', method, METHODS, METHOD_MEANING);
    switch (method) {
      case HostAuthMethod.supportCode:
        return writer.code6('code', code).finish();
      case HostAuthMethod.enrolled:
        return writer.str16('hostID', hostID).str16('secret', secret).finish();
      case HostAuthMethod.namedSupportCode:
        return writer.code6('code', code).str16('machineName', machineName).finish();
      default:
        return writer.str16('hostID', hostID).finish();
    }
  },

  /**
   * {token, request: 1} asks for a support code, {token, request: 2, hostID} connects to
   * an enrolled host. An empty token (the default) is a key login (§5.1.4).
   */
  viewerAuth({ token = '', request, hostID }) {
    const writer = new PayloadWriter('ViewerAuth').str16('token', token)
      .choice('request', request, REQUESTS, REQUEST_MEANING);
    if (request === ViewerRequest.connect) writer.str16('hostID', hostID);
    return writer.finish();
  },

  codeIssued({ code, validForSeconds, flags = 0 }) {
    return new PayloadWriter('CodeIssued').code6('code', code).u32('validForSeconds', validForSeconds)
      .u8('flags', flags).finish();
  },

  hostRegistered({ hostName }) {
    return new PayloadWriter('HostRegistered').str16('hostName', hostName).finish();
  },

  /** sessionID: 32 hex digits or 16 bytes. */
  paired({ sessionID, mode, peerCapabilities, peerName, peerSoftware, peerOrganization = '' }) {
    return new PayloadWriter('Paired').raw(sessionIDBytes(sessionID))
      .choice('mode', mode, MODES, 'only 1 (attended) and 2 (unattended) are allowed')
      .u32('peerCapabilities', peerCapabilities).str16('peerName', peerName)
      .str16('peerSoftware', peerSoftware).str16('peerOrganization', peerOrganization).finish();
  },

  /** nonce: a BigInt (or a safe integer). */
  ping({ nonce }) {
    return new PayloadWriter('Ping').u64('nonce', nonce).finish();
  },

  pong({ nonce }) {
    return new PayloadWriter('Pong').u64('nonce', nonce).finish();
  },

  bye({ reason, text = '' }) {
    return new PayloadWriter('Bye').u16('reason', reason).str16('text', text).finish();
  },

  error({ code, message }) {
    return new PayloadWriter('Error').u16('code', code).str16('message', message).finish();
  },

  screenInit({ width, height, pixelFormat = PixelFormat.bgrx8888, name }) {
    if (!screenSide(width) || !screenSide(height)) {
      throw sendingError(WireErrorKind.invalidField,
        `ScreenInit: ${width}×${height} is outside 1…${MAXIMUM_SCREEN_DIMENSION} per side`);
    }
    return new PayloadWriter('ScreenInit').u16('width', width).u16('height', height)
      .choice('pixelFormat', pixelFormat, [PixelFormat.bgrx8888], 'only 1 (bgrx8888) is defined')
      .str16('name', name).finish();
  },

  /** The body is opaque here (§5.2.2); tiles.js reads it. */
  tileUpdate({ body }) {
    return asBytes(body, 'TileUpdate.body').slice();
  },

  updateRequest({ requestID, flags = 0 }) {
    return new PayloadWriter('UpdateRequest').u32('requestID', requestID).u8('flags', flags).finish();
  },

  pointer({ x, y, buttons = 0 }) {
    return new PayloadWriter('Pointer').u16('x', x).u16('y', y).u8('buttons', buttons).finish();
  },

  /** down: true when pressed, false when released. */
  key({ keysym, down }) {
    if (typeof down !== 'boolean') {
      throw sendingError(WireErrorKind.invalidField, `Key.down must be true or false, got ${describeValue(down)}`);
    }
    return new PayloadWriter('Key').u32('keysym', keysym).u8('down', down ? 1 : 0).finish();
  },

  clipboard({ text }) {
    return new PayloadWriter('Clipboard').text('text', text).finish();
  },

  accessGranted({ flags }) {
    return new PayloadWriter('AccessGranted').u8('flags', flags).finish();
  },

  /** commitment: the 32 bytes of SHA-256(share_v) (§5.3.2). */
  keyCommit({ version = E2E_VERSION, commitment }) {
    return new PayloadWriter('KeyCommit').u8('version', version).fixed('commitment', commitment, 32).finish();
  },

  /** ephemeral: 32-byte X25519 public key; identity: 32-byte Ed25519 public key (§5.3.3). */
  keyShare({ version = E2E_VERSION, role, ephemeral, identity }) {
    return new PayloadWriter('KeyShare').u8('version', version).choice('role', role, ROLES, ROLE_MEANING)
      .fixed('ephemeral', ephemeral, 32).fixed('identity', identity, 32).finish();
  },

  /** body: ciphertext and tag (§5.3.5), at least 17 bytes. */
  sealed({ body }) {
    const bytes = asBytes(body, 'Sealed.body');
    if (bytes.length < SEALED_OVERHEAD) {
      throw sendingError(WireErrorKind.invalidField,
        `Sealed.body is ${bytes.length} bytes; a record is at least ${SEALED_OVERHEAD}`);
    }
    return bytes.slice();
  },
});

// ---------------------------------------------------------------------------------------
// Messages: decoders (payloads, §5; errors §3 and §6.3)

/**
 * One function per message: a payload in, a plain object out, with the field names of
 * PROTOCOL.md's tables in camelCase. Throws WireError. Fields are read in order and the
 * first problem is reported (§3).
 */
export const decode = Object.freeze({
  hello(payload) {
    const reader = new PayloadReader('Hello', payload);
    const message = {
      version: reader.u16('version'),
      role: reader.choice('role', ROLES, ROLE_MEANING),
      capabilities: reader.u32('capabilities'),
      software: reader.str16('software'),
    };
    reader.end();
    return message;
  },

  helloAck(payload) {
    const reader = new PayloadReader('HelloAck', payload);
    const message = {
      version: reader.u16('version'),
      capabilities: reader.u32('capabilities'),
      maximumPayloadLength: reader.u32('maximumPayloadLength'),
      relayNode: reader.str16('relayNode'),
    };
    reader.end();
    return message;
  },

  hostAuth(payload) {
    const reader = new PayloadReader('HostAuth', payload);
    const method = reader.choice('method', METHODS, METHOD_MEANING);
    let message;
    switch (method) {
      case HostAuthMethod.supportCode:
        message = { method, code: reader.code6('code') };
        break;
      case HostAuthMethod.enrolled:
        message = { method, hostID: reader.str16('hostID'), secret: reader.str16('secret') };
        break;
      case HostAuthMethod.namedSupportCode:
        message = { method, code: reader.code6('code'), machineName: reader.str16('machineName') };
        break;
      default:
        message = { method, hostID: reader.str16('hostID') };
    }
    reader.end();
    return message;
  },

  viewerAuth(payload) {
    const reader = new PayloadReader('ViewerAuth', payload);
    const message = { token: reader.str16('token'), request: reader.choice('request', REQUESTS, REQUEST_MEANING) };
    if (message.request === ViewerRequest.connect) message.hostID = reader.str16('hostID');
    reader.end();
    return message;
  },

  /** code is the six digits as a string ("042917"). */
  codeIssued(payload) {
    const reader = new PayloadReader('CodeIssued', payload);
    const message = {
      code: reader.code6('code'),
      validForSeconds: reader.u32('validForSeconds'),
      flags: reader.u8('flags'),
    };
    reader.end();
    message.confirmSecurityCode = (message.flags & CodeIssuedFlag.confirmSecurityCode) !== 0;
    return message;
  },

  hostRegistered(payload) {
    const reader = new PayloadReader('HostRegistered', payload);
    const message = { hostName: reader.str16('hostName') };
    reader.end();
    return message;
  },

  /** sessionID: 32 lowercase hex digits; sessionIDBytes: the same 16 bytes (§5.3.4 hashes them). */
  paired(payload) {
    const reader = new PayloadReader('Paired', payload);
    const idBytes = reader.bytesCopy(16, 'sessionID');
    const message = {
      sessionID: sessionIDString(idBytes),
      sessionIDBytes: idBytes,
      mode: reader.choice('mode', MODES, 'only 1 (attended) and 2 (unattended) are allowed'),
      peerCapabilities: reader.u32('peerCapabilities'),
      peerName: reader.str16('peerName'),
      peerSoftware: reader.str16('peerSoftware'),
      peerOrganization: reader.str16('peerOrganization'),
    };
    reader.end();
    return message;
  },

  /** nonce: a BigInt. */
  ping(payload) {
    const reader = new PayloadReader('Ping', payload);
    const message = { nonce: reader.u64('nonce') };
    reader.end();
    return message;
  },

  pong(payload) {
    const reader = new PayloadReader('Pong', payload);
    const message = { nonce: reader.u64('nonce') };
    reader.end();
    return message;
  },

  /** reason: any u16; byeReasonName and describeBye name it (unlisted values are allowed, §5.1.10). */
  bye(payload) {
    const reader = new PayloadReader('Bye', payload);
    const message = { reason: reader.u16('reason'), text: reader.str16('text') };
    reader.end();
    return message;
  },

  /** code: any u16; errorCodeName and describeError name it (unlisted values are allowed, §5.1.11). */
  error(payload) {
    const reader = new PayloadReader('Error', payload);
    const message = { code: reader.u16('code'), message: reader.str16('message') };
    reader.end();
    return message;
  },

  screenInit(payload) {
    const reader = new PayloadReader('ScreenInit', payload);
    const width = reader.u16('width');
    const height = reader.u16('height');
    if (!screenSide(width) || !screenSide(height)) {
      throw receivedError(WireErrorKind.invalidField,
        `ScreenInit: ${width}×${height} is outside 1…${MAXIMUM_SCREEN_DIMENSION} pixels per side`);
    }
    const message = {
      width,
      height,
      pixelFormat: reader.choice('pixelFormat', [PixelFormat.bgrx8888], 'only 1 (bgrx8888) is defined'),
      name: reader.str16('name'),
    };
    reader.end();
    return message;
  },

  /** body: the whole payload, a view (tiles.js validates it, §5.2.2). Never fails. */
  tileUpdate(payload) {
    return { body: new PayloadReader('TileUpdate', payload).rest() };
  },

  updateRequest(payload) {
    const reader = new PayloadReader('UpdateRequest', payload);
    const message = { requestID: reader.u32('requestID'), flags: reader.u8('flags') };
    reader.end();
    message.fullRefresh = (message.flags & UpdateRequestFlag.fullRefresh) !== 0;
    return message;
  },

  pointer(payload) {
    const reader = new PayloadReader('Pointer', payload);
    const message = { x: reader.u16('x'), y: reader.u16('y'), buttons: reader.u8('buttons') };
    reader.end();
    return message;
  },

  /** down: true when pressed. */
  key(payload) {
    const reader = new PayloadReader('Key', payload);
    const keysym = reader.u32('keysym');
    const down = reader.choice('down', [0, 1], 'only 0 (released) and 1 (pressed) are allowed') === 1;
    reader.end();
    return { keysym, down };
  },

  clipboard(payload) {
    return { text: new PayloadReader('Clipboard', payload).text('text') };
  },

  accessGranted(payload) {
    const reader = new PayloadReader('AccessGranted', payload);
    const message = { flags: reader.u8('flags') };
    reader.end();
    message.inputAllowed = (message.flags & AccessGrantedFlag.inputAllowed) !== 0;
    return message;
  },

  keyCommit(payload) {
    const reader = new PayloadReader('KeyCommit', payload);
    const message = {
      version: reader.choice('version', [E2E_VERSION], 'only version 1 of the end-to-end handshake is defined'),
      commitment: reader.bytesCopy(32, 'commitment'),
    };
    reader.end();
    return message;
  },

  /** role is the sender's; a receiver also refuses its own role (§5.3.3), which it knows and this does not. */
  keyShare(payload) {
    const reader = new PayloadReader('KeyShare', payload);
    const message = {
      version: reader.choice('version', [E2E_VERSION], 'only version 1 of the end-to-end handshake is defined'),
      role: reader.choice('role', ROLES, ROLE_MEANING),
      ephemeral: reader.bytesCopy(32, 'ephemeral'),
      identity: reader.bytesCopy(32, 'identity'),
    };
    reader.end();
    return message;
  },

  /** body: ciphertext and tag, a view of the payload (secure.js opens it). */
  sealed(payload) {
    const reader = new PayloadReader('Sealed', payload);
    if (reader.remaining < SEALED_OVERHEAD) {
      throw receivedError(WireErrorKind.truncatedMessage,
        `a Sealed payload of ${reader.remaining} bytes is shorter than an inner type and a 16-byte tag`);
    }
    return { body: reader.rest() };
  },
});

const DECODERS = new Map();
const ENCODERS = new Map();
for (const [key, type] of Object.entries(MessageType)) {
  DECODERS.set(type, decode[key]);
  ENCODERS.set(type, encode[key]);
}

/** Decodes a frame's payload by its type: `{type, name: "ScreenInit", fields}`. Throws WireError. */
export function decodeMessage(type, payload) {
  const decoder = DECODERS.get(type);
  if (!decoder) {
    throw receivedError(WireErrorKind.unknownMessageType,
      `type byte 0x${hex2(type)} is not a message type of PROTOCOL.md §4`);
  }
  return { type, name: messageTypeName(type), fields: decoder(payload) };
}

/** The whole frame of a message: `encodeMessage(MessageType.ping, {nonce: 1n})`. Throws WireError. */
export function encodeMessage(type, fields, maximumPayloadLength = ABSOLUTE_MAXIMUM_PAYLOAD_LENGTH) {
  const encoder = ENCODERS.get(type);
  if (!encoder) {
    throw sendingError(WireErrorKind.unknownMessageType,
      `type ${type} is not a message type of PROTOCOL.md §4`);
  }
  return frame(type, encoder(fields), maximumPayloadLength);
}

// ---------------------------------------------------------------------------------------
// Small helpers

function asBytes(value, what) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError(`${what} must be a Uint8Array or an ArrayBuffer, got ${describeValue(value)}`);
}

function describeValue(value) {
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return String(value);
}

function hex2(byte) {
  return byte.toString(16).padStart(2, '0');
}

/** Lowercase hex, no separators. */
export function bytesToHex(bytes) {
  let hex = '';
  for (const byte of bytes) hex += hex2(byte);
  return hex;
}

/** Bytes of an even-length hex string; spaces are allowed between bytes. */
export function hexToBytes(hex) {
  const digits = hex.replaceAll(' ', '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(digits)) throw new TypeError(`"${hex}" is not a string of hex byte pairs`);
  const bytes = new Uint8Array(digits.length / 2);
  for (let index = 0; index < bytes.length; index++) {
    bytes[index] = parseInt(digits.substr(index * 2, 2), 16);
  }
  return bytes;
}
