// One connection of the web viewer to the relay: a WebSocket carrying the protocol's byte
// stream (docs/PROTOCOL.md §1.3), from Hello to the end of the session. No DOM here: the
// page (viewer.js) gives an observer and paints what it is told.
//
// What it does, in the order of docs/PROTOCOL.md:
// - Hello as a viewer with every capability, as relay-agent view announces; HelloAck
//   (version 1, the payload limit, §5.1.2); ViewerAuth with an empty token (the relay logs
//   in the engineer of the session cookie, §1.3), for a new support code or a host id.
// - CodeIssued (§5.1.5), then Paired (§5.1.7); the end-to-end handshake with secure.js
//   (§5.3.1), ended after 30 s (§5.3.8); by host id the host key is checked against its pin
//   before anything is sealed (§5.3.8 "A changed host key").
// - Every §5.2 message inside Sealed: AccessGranted, ScreenInit, TileUpdate (tiles.js),
//   Clipboard in; UpdateRequest, Pointer, Key, Clipboard out. Pacing as §7.9: two
//   requests outstanding, the first a full refresh, one more per completed update.
// - Ping every 30 s from HelloAck on, Pong to the relay's Pings (§8.4); a connection that
//   has heard nothing for 150 s is dead.
// - §2.3: a peer frame that fails may be one the relay completed with zero bytes because
//   the host left mid-frame; when the relay's Bye or Error follows, that is the reason.
//
// Relay and host strings are untrusted: printable() removes what §5.2.7 says to remove,
// and the page inserts them as text only.

import { sentence } from './api.js';
import {
  checkPinnedHostKey,
  fingerprint,
  handshakeDeadlineError,
  handshakeDeadlineMilliseconds,
  HostKeyChangedError,
  SecureChannelError,
  ViewerHandshake,
} from './secure.js';
import { TileDecoder, TileError } from './tiles.js';
import {
  ABSOLUTE_MAXIMUM_PAYLOAD_LENGTH,
  ByeReason,
  Capability,
  decode,
  encode,
  frame,
  FrameReader,
  InnerType,
  isPeerMessageType,
  messageTypeName,
  MessageType,
  MINIMUM_ANNOUNCED_PAYLOAD_LENGTH,
  PROTOCOL_VERSION,
  Role,
  UpdateRequestFlag,
  ViewerRequest,
  WireError,
} from './wire.js';

/** Hello.software of this page (§5.1.1). */
export const SOFTWARE = 'supportrelay-web/1';
/** The WebSocket subprotocol the relay requires (§1.3). */
export const SUBPROTOCOL = 'supportrelay.v1';

const KEEPALIVE_MILLISECONDS = 30_000; // §8.4
const DEAD_AFTER_MILLISECONDS = 150_000; // §8.4: the reference agent's five unanswered Pings
const HELLO_DEADLINE_MILLISECONDS = 20_000; // the relay's own deadline is 10 s (§8.4)
const DAMAGE_GRACE_MILLISECONDS = 2_000; // §2.3: how long to wait for the relay's Bye
const REQUESTS_IN_FLIGHT = 2; // §7.9, as the Swift viewer
const MAXIMUM_TRACKED_REQUESTS = 64;

/** The states a connection goes through, as the page shows them (viewer DOM contract). */
export const ConnectionState = Object.freeze({
  connecting: 'connecting',
  waitingForCustomer: 'waiting-for-customer',
  handshake: 'handshake',
  waitingForAccess: 'waiting-for-access',
  live: 'live',
});

// C0 and C1 controls, DEL, and the bidi overrides and isolates (§5.2.7).
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/gu;
const UNPRINTABLE_KEEPING_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/gu;

/**
 * A string from the relay or the host, as a person may see it: control characters and
 * bidi overrides removed (§5.2.7), cut to `limit` characters with "…". With
 * `keepLines`, line breaks and tabs stay (clipboard text).
 */
export function printable(text, limit = 200, { keepLines = false } = {}) {
  const cleaned = String(text ?? '')
    .toWellFormed()
    .replace(keepLines ? UNPRINTABLE_KEEPING_LINES : UNPRINTABLE, '');
  const characters = Array.from(cleaned);
  return characters.length > limit ? `${characters.slice(0, limit - 1).join('')}…` : cleaned;
}

/**
 * The viewer's side of one WebSocket to the relay. `target` is `{kind: 'code'}` (a new
 * support code) or `{kind: 'host', hostID}`. The observer's methods (all optional) are
 * called as the session goes:
 * - `state(name)`: one of ConnectionState's values;
 * - `codeIssued({code, validForSeconds, confirmSecurityCode})`;
 * - `paired({peerName, peerOrganization, peerSoftware, mode, sessionID})` (printable);
 * - `securityCode(sas)` once the end-to-end keys exist;
 * - `peerIdentity({name, organization, fingerprint, pinned})`: the host's signed Identity
 *   (printable; `pinned` is 'new' or 'same' by host id, null by support code);
 * - `access({inputAllowed})`;
 * - `screen({width, height, name, pixels})`: a new framebuffer (RGBA, updated in place);
 * - `update({dirty, bytes, latency, requestID})`: a completed update, to paint; `latency` is
 *   the time from the engineer's first input since the last update to this one (what a click
 *   or a key costs), or null when no input came in between: a request that waited for a still
 *   screen to change says nothing about the connection;
 * - `clipboard(text)` (as sent: insert as text only);
 * - `ended(outcome)`: once, at the end (see #end).
 */
export class ViewerConnection {
  #target;
  #identity;
  #login;
  #company;
  #relayOrigin;
  #observer;
  #url;

  #socket = null;
  #reader = new FrameReader();
  #limit = 0; // the relay's payload limit from HelloAck (§2.2)
  #allowed = 0; // the capabilities HelloAck allows (§5.1.2)
  // 'hello' → 'auth' → 'awaiting-host' (code mode) → 'paired'
  #phase = 'hello';
  #queue = [];
  #draining = false;
  #ended = false;
  #timers = new Set();
  #deadline = null;
  #damage = null;
  #lastReceived = 0;
  #pingNonce = 0n;
  #opened = false;

  #paired = null;
  #handshake = null;
  #identified = false;
  #access = null;
  #decoder = null;
  #requesting = false;
  #nextRequestID = 1;
  #sentAt = new Map();
  /** When the first input since the last completed update was sent (null: none). */
  #inputSince = null;
  #pendingBytes = 0;
  #pendingDirty = null;
  #paused = false;
  #owed = 0; // requests held back while paused

  /** Bytes received on the WebSocket so far (kbit/s). */
  bytesReceived = 0;
  /** Completed screen updates so far. */
  updates = 0;

  constructor({ url, target, identity, login = '', company = '', relayOrigin, observer = {} }) {
    if (target?.kind !== 'code' && !(target?.kind === 'host' && typeof target.hostID === 'string' && target.hostID)) {
      throw new TypeError("a viewer connection's target is {kind: 'code'} or {kind: 'host', hostID}");
    }
    this.#url = url;
    this.#target = target;
    this.#identity = identity;
    this.#login = String(login ?? '');
    this.#company = String(company ?? '');
    this.#relayOrigin = relayOrigin;
    this.#observer = observer;
  }

  /** Opens the WebSocket; the rest follows from the relay's answers. */
  start() {
    if (this.#socket) throw new Error('a ViewerConnection is started once; make a new one to connect again');
    let socket;
    try {
      socket = new WebSocket(this.#url, SUBPROTOCOL);
    } catch (error) {
      queueMicrotask(() => this.#end({ cause: 'closed', opened: false, detail: error.message }));
      return;
    }
    this.#socket = socket;
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => this.#socketOpened();
    socket.onmessage = (event) => this.#received(event.data);
    socket.onclose = (event) => this.#closed(event);
    socket.onerror = () => {}; // onclose follows with what can be known
    this.#notify('state', ConnectionState.connecting);
    this.#after(HELLO_DEADLINE_MILLISECONDS, () => {
      if (this.#phase === 'hello') this.#end({ cause: 'closed', opened: this.#opened, timedOut: true });
    });
  }

  /**
   * Whether the customer allowed input and the session is on (§5.2.7), and neither the
   * relay nor the host left input out of their capabilities (§5.1.2, §5.1.7).
   */
  get inputAllowed() {
    const capable = (this.#allowed & Capability.input) !== 0 && (this.#paired?.peerCapabilities & Capability.input) !== 0;
    return capable && !this.#ended && this.#access?.inputAllowed === true && this.#handshake?.established === true;
  }

  /** Whether clipboard text may be sent (input allowed, and the clipboard capability). */
  get clipboardAllowed() {
    const capable = (this.#allowed & Capability.clipboard) !== 0 && (this.#paired?.peerCapabilities & Capability.clipboard) !== 0;
    return capable && this.inputAllowed;
  }

  get ended() {
    return this.#ended;
  }

  /** The session's short authentication string ("123 456"), once the keys exist. */
  get securityCode() {
    return this.#handshake?.sas ?? null;
  }

  /** The relay's payload limit less a Sealed record's overhead: the largest clipboard text in bytes. */
  get maximumInnerPayload() {
    return this.#handshake?.maximumInnerPayload ?? 0;
  }

  /** Pointer (§5.2.4): host pixels and the buttons held now. Dropped unless input is allowed. */
  sendPointer(x, y, buttons) {
    if (!this.inputAllowed) return false;
    this.#inputSince ??= performance.now();
    this.#seal(MessageType.pointer, encode.pointer({ x, y, buttons }));
    return true;
  }

  /** Key messages (§5.2.5), in order: `[{keysym, down}]`. Dropped unless input is allowed. */
  sendKeys(steps) {
    if (!this.inputAllowed) return false;
    this.#inputSince ??= performance.now();
    for (const { keysym, down } of steps) this.#seal(MessageType.key, encode.key({ keysym, down }));
    return true;
  }

  /**
   * Clipboard (§5.2.6). Resolves once sealed and sent; rejects with a 'tooLarge'
   * SecureChannelError (the session goes on) when the text does not fit one message.
   */
  sendClipboard(text) {
    if (!this.clipboardAllowed) return Promise.resolve(false);
    return this.#seal(MessageType.clipboard, encode.clipboard({ text: String(text).toWellFormed() }), { rethrowTooLarge: true });
  }

  /**
   * While paused (the page is hidden) a completed update asks for no next one, so the
   * host captures and sends nothing (§7.9); resuming sends the requests held back.
   */
  setPaused(paused) {
    this.#paused = Boolean(paused);
    if (this.#paused || this.#owed === 0) return;
    const owed = this.#owed;
    this.#owed = 0;
    this.#request(owed, false);
  }

  /** The engineer ends the session: Bye(normal) and close (§8.6). */
  disconnect(text = 'The engineer closed the viewer.') {
    this.#end({ cause: 'local', text }, { reason: ByeReason.normal, text });
  }

  /**
   * Ends the session because of something only this page could check (the engineer typed
   * a different security code, §5.1.5): Bye with `reason` and `byeText`, and `message` for
   * the engineer.
   */
  refuse(message, byeText, reason = ByeReason.protocolError) {
    this.#end({ cause: 'failure', message }, { reason, text: byeText });
  }

  /** Closes without a word (the page is going away or starting over). */
  close() {
    this.#end({ cause: 'local', text: '' }, null, { silent: true });
  }

  // MARK: - Socket events

  #socketOpened() {
    if (this.#ended) return;
    this.#opened = true;
    this.#lastReceived = performance.now();
    this.#send(MessageType.hello, encode.hello({
      version: PROTOCOL_VERSION,
      role: Role.viewer,
      capabilities: Capability.all,
      software: SOFTWARE,
    }));
  }

  #received(data) {
    if (this.#ended) return;
    const bytes = new Uint8Array(data);
    this.bytesReceived += bytes.length;
    this.#lastReceived = performance.now();
    let frames;
    try {
      frames = this.#reader.push(bytes);
    } catch (error) {
      for (const whole of error.frames ?? []) this.#queue.push(whole);
      this.#queue.push({ failure: error });
      this.#drain();
      return;
    }
    for (const whole of frames) this.#queue.push(whole);
    this.#drain();
  }

  #closed(event) {
    if (this.#ended) return;
    // Whatever is still queued was received before the close: the relay's Bye may be there.
    this.#queue.push({ closed: event });
    this.#drain();
  }

  // Frames are handled one at a time, in order: opening a record and decoding an update
  // are asynchronous, and each must finish before the next frame is looked at.
  async #drain() {
    if (this.#draining) return;
    this.#draining = true;
    try {
      while (this.#queue.length > 0 && !this.#ended) {
        const item = this.#queue.shift();
        if (item.closed) {
          this.#socketClosed(item.closed);
        } else if (item.failure) {
          this.#streamFailed(item.failure);
        } else {
          await this.#handle(item.type, item.payload);
        }
      }
    } catch (error) {
      this.#unexpected(error);
    } finally {
      this.#draining = false;
    }
  }

  #socketClosed(event) {
    if (this.#damage) {
      this.#fail(this.#damage, { sendBye: false });
      return;
    }
    this.#end({ cause: 'closed', opened: this.#opened, code: event.code });
  }

  // §2.1: an unknown type or a header over the limit. Nothing after it can be read.
  #streamFailed(error) {
    const message =
      `The relay sent data this page cannot read (${error.kind ?? error.message}), so the connection was closed. ` +
      'Connect again; if it happens again, report it to the relay\'s operator with the browser console\'s log.';
    this.#end({ cause: 'failure', message }, { reason: ByeReason.protocolError, text: `the viewer could not read a frame: ${error.message}` });
  }

  // MARK: - Frames

  async #handle(type, payload) {
    if (this.#damage) {
      // §2.3: only the relay's Bye or Error (after frames it held, such as a Pong) can
      // explain a damaged peer message.
      if (type === MessageType.ping || type === MessageType.pong) return;
      if (type !== MessageType.bye && type !== MessageType.error) {
        this.#fail(this.#damage);
        return;
      }
    }
    switch (type) {
      case MessageType.ping:
        this.#send(MessageType.pong, encode.pong({ nonce: this.#control('ping', payload).nonce }));
        return;
      case MessageType.pong:
        this.#control('pong', payload);
        return;
      case MessageType.bye: {
        const bye = this.#control('bye', payload);
        this.#end({ cause: 'bye', reason: bye.reason, text: printable(bye.text, 600) });
        return;
      }
      case MessageType.error: {
        const error = this.#control('error', payload);
        this.#end({ cause: 'error', code: error.code, text: printable(error.message, 600) });
        return;
      }
    }
    if (isPeerMessageType(type)) {
      if (this.#phase !== 'paired') {
        this.#relayBroke(`it forwarded ${messageTypeName(type)} before the session was paired`);
        return;
      }
      await this.#peerFrame(type, payload);
      return;
    }
    if (type === MessageType.helloAck && this.#phase === 'hello') return this.#helloAck(this.#control('helloAck', payload));
    if (type === MessageType.codeIssued && this.#phase === 'auth' && this.#target.kind === 'code') {
      return this.#codeIssued(this.#control('codeIssued', payload));
    }
    const waitingForPair = this.#phase === 'awaiting-host' || (this.#phase === 'auth' && this.#target.kind === 'host');
    if (type === MessageType.paired && waitingForPair) return this.#pairedWith(this.#control('paired', payload));
    this.#relayBroke(`it sent ${messageTypeName(type)}, which a viewer does not expect at this point`);
  }

  // A relay-control message; one that does not decode closes the connection (§5).
  #control(name, payload) {
    try {
      return decode[name](payload);
    } catch (error) {
      if (!(error instanceof WireError)) throw error;
      throw new RelayBrokeError(`its ${messageTypeName(MessageType[name])} does not decode: ${error.message}`);
    }
  }

  #helloAck(ack) {
    if (ack.version !== PROTOCOL_VERSION) {
      this.#relayBroke(`it answered in protocol version ${ack.version}, and this page speaks ${PROTOCOL_VERSION}`);
      return;
    }
    if (ack.maximumPayloadLength < MINIMUM_ANNOUNCED_PAYLOAD_LENGTH) {
      const message =
        `The relay accepts messages of at most ${ack.maximumPayloadLength} bytes, too small for screen updates ` +
        `(at least ${MINIMUM_ANNOUNCED_PAYLOAD_LENGTH} are needed). Ask the relay's operator to raise its limit.`;
      this.#end({ cause: 'failure', message }, { reason: ByeReason.normal, text: 'the relay\'s payload limit is too small for screen updates' });
      return;
    }
    this.#limit = Math.min(ack.maximumPayloadLength, ABSOLUTE_MAXIMUM_PAYLOAD_LENGTH);
    this.#allowed = ack.capabilities;
    // §2.2: an agent accepts frames up to the limit its relay announced.
    this.#reader.maximumPayloadLength = this.#limit;
    this.#phase = 'auth';
    const request = this.#target.kind === 'code'
      ? { token: '', request: ViewerRequest.newSupportCode }
      : { token: '', request: ViewerRequest.connect, hostID: this.#target.hostID };
    this.#send(MessageType.viewerAuth, encode.viewerAuth(request));
    this.#every(KEEPALIVE_MILLISECONDS, () => this.#keepalive());
  }

  #keepalive() {
    if (performance.now() - this.#lastReceived > DEAD_AFTER_MILLISECONDS) {
      this.#end({ cause: 'closed', opened: true, dead: true });
      return;
    }
    this.#pingNonce += 1n;
    this.#send(MessageType.ping, encode.ping({ nonce: this.#pingNonce }));
  }

  #codeIssued(issued) {
    this.#phase = 'awaiting-host';
    this.#notify('codeIssued', {
      code: issued.code,
      validForSeconds: issued.validForSeconds,
      confirmSecurityCode: issued.confirmSecurityCode,
    });
    this.#notify('state', ConnectionState.waitingForCustomer);
  }

  async #pairedWith(paired) {
    this.#phase = 'paired';
    this.#paired = paired;
    this.#notify('paired', {
      peerName: printable(paired.peerName, 120),
      peerOrganization: printable(paired.peerOrganization, 80),
      peerSoftware: printable(paired.peerSoftware, 80),
      mode: paired.mode,
      sessionID: paired.sessionID,
    });
    this.#notify('state', ConnectionState.handshake);
    this.#deadline = this.#after(handshakeDeadlineMilliseconds, () => {
      if (!this.#identified) this.#fail(handshakeDeadlineError());
    });
    try {
      this.#handshake = new ViewerHandshake({
        sessionID: paired.sessionIDBytes,
        identity: this.#identity,
        name: this.#login,
        organization: this.#company,
        payloadLimit: this.#limit,
      });
      this.#send(MessageType.keyCommit, await this.#handshake.start());
    } catch (error) {
      this.#fail(error);
    }
  }

  // MARK: - Peer frames (§5.3)

  async #peerFrame(type, payload) {
    const handshake = this.#handshake;
    if (type === MessageType.keyShare) {
      let answer;
      try {
        answer = await handshake.receiveKeyShare(payload);
      } catch (error) {
        this.#fail(error);
        return;
      }
      this.#send(MessageType.keyShare, answer.keyShare);
      this.#send(MessageType.sealed, answer.identityRecord);
      this.#notify('securityCode', handshake.sas);
      return;
    }
    if (type !== MessageType.sealed) {
      this.#fail(handshake.unexpectedFrame(type));
      return;
    }
    let record;
    try {
      record = await handshake.open(payload);
    } catch (error) {
      if (error instanceof SecureChannelError && error.kind === 'recordRejected') {
        this.#damaged(error);
      } else {
        this.#fail(error);
      }
      return;
    }
    if (this.#ended) return;
    if (record.type === InnerType.identity) {
      await this.#hostIdentity(record);
      return;
    }
    await this.#inner(record.type, record.payload, 4 + payload.length);
  }

  async #hostIdentity({ name, organization, hostKey }) {
    let pinned = null;
    if (this.#target.kind === 'host') {
      // §5.3.8: checked before anything else is sent, and by what this viewer asked for.
      try {
        pinned = (await checkPinnedHostKey(this.#relayOrigin, this.#target.hostID, hostKey)).pinned;
      } catch (error) {
        if (error instanceof HostKeyChangedError) {
          this.#end(
            { cause: 'hostKeyChanged', error, message: error.message },
            { reason: ByeReason.protocolError, text: 'The viewer refused the host\'s key: it is not the one it pinned.' },
          );
        } else {
          const message =
            `The viewer could not check the host's key: ${sentence(error.message)} The session was not started.`;
          this.#end({ cause: 'failure', message }, {
            reason: ByeReason.normal,
            text: 'The viewer could not check the host\'s key against the keys it pinned.',
          });
        }
        return;
      }
    }
    if (this.#ended) return;
    this.#identified = true;
    this.#clear(this.#deadline);
    this.#notify('peerIdentity', {
      name: printable(name, 120),
      organization: printable(organization, 80),
      fingerprint: await fingerprint(hostKey),
      pinned,
    });
    if (!this.#access) this.#notify('state', ConnectionState.waitingForAccess);
  }

  async #inner(type, payload, wireBytes) {
    if (this.#access === null && type !== MessageType.accessGranted) {
      // §5.2.7: nothing is shared before the customer's decision.
      this.#hostBroke(`it sent ${messageTypeName(type)} before AccessGranted, before the customer accepted`);
      return;
    }
    let message;
    try {
      message = decode[INNER_DECODERS[type]](payload);
    } catch (error) {
      if (!(error instanceof WireError)) throw error;
      this.#hostBroke(`its ${messageTypeName(type)} does not decode: ${error.message}`);
      return;
    }
    switch (type) {
      case MessageType.accessGranted:
        if (this.#access !== null) {
          this.#hostBroke('it sent AccessGranted twice');
          return;
        }
        this.#access = { inputAllowed: message.inputAllowed };
        this.#notify('access', { inputAllowed: message.inputAllowed });
        this.#notify('state', ConnectionState.live);
        return;
      case MessageType.screenInit:
        this.#screenInit(message);
        return;
      case MessageType.tileUpdate:
        await this.#tileUpdate(message.body, wireBytes);
        return;
      case MessageType.clipboard:
        this.#notify('clipboard', message.text);
        return;
    }
  }

  #screenInit(screen) {
    this.#decoder ??= new TileDecoder();
    this.#decoder.resize(screen.width, screen.height);
    this.#pendingBytes = 0;
    this.#pendingDirty = null;
    this.#notify('screen', {
      width: screen.width,
      height: screen.height,
      name: printable(screen.name, 120),
      pixels: this.#decoder.pixels,
    });
    if (!this.#requesting) {
      // §7.9: a full refresh first, then incremental requests up to the window.
      this.#requesting = true;
      this.#request(REQUESTS_IN_FLIGHT, true);
    }
  }

  async #tileUpdate(body, wireBytes) {
    if (!this.#decoder) {
      this.#hostBroke('it sent a screen update before ScreenInit');
      return;
    }
    let result;
    try {
      result = await this.#decoder.apply(body);
    } catch (error) {
      if (!(error instanceof TileError)) throw error;
      this.#damaged(new HostBrokeError(`its screen update does not decode: ${error.message}`));
      return;
    }
    if (this.#ended) return;
    this.#pendingBytes += wireBytes;
    if (result.dirty) this.#pendingDirty = union(this.#pendingDirty, result.dirty);
    // §7.6: a large update arrives in parts; the framebuffer is a host frame again after the last.
    if (result.continues) return;
    const sent = this.#sentAt.get(result.requestID);
    this.#forgetRequestsUpTo(result.requestID);
    // Input to pixels: from the first input since the last update, or from the request if
    // the input came before it was sent; nothing when no input came.
    const since = this.#inputSince === null || sent === undefined ? this.#inputSince : Math.max(this.#inputSince, sent);
    this.#inputSince = null;
    const update = {
      dirty: this.#pendingDirty,
      bytes: this.#pendingBytes,
      latency: since === null ? null : performance.now() - since,
      requestID: result.requestID,
    };
    this.#pendingBytes = 0;
    this.#pendingDirty = null;
    this.updates += 1;
    this.#notify('update', update);
    if (this.#paused) {
      this.#owed += 1;
    } else {
      this.#request(1, false);
    }
  }

  #request(count, fullRefresh) {
    for (let index = 0; index < count; index++) {
      const requestID = this.#nextRequestID;
      this.#nextRequestID = (requestID + 1) >>> 0 || 1;
      this.#sentAt.set(requestID, performance.now());
      if (this.#sentAt.size > MAXIMUM_TRACKED_REQUESTS) this.#sentAt.delete(this.#sentAt.keys().next().value);
      const flags = fullRefresh && index === 0 ? UpdateRequestFlag.fullRefresh : 0;
      this.#seal(MessageType.updateRequest, encode.updateRequest({ requestID, flags }));
    }
  }

  // Requests are answered in order: the ones before an answered id are answered too
  // (a host merges requests, §7.9), so their times would only pile up.
  #forgetRequestsUpTo(requestID) {
    if (!this.#sentAt.has(requestID)) return;
    for (const id of this.#sentAt.keys()) {
      this.#sentAt.delete(id);
      if (id === requestID) break;
    }
  }

  // MARK: - Sending

  #send(type, payload) {
    const socket = this.#socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(frame(type, payload, this.#limit || undefined));
    return true;
  }

  // Sealed records are numbered in the order seal() is called and resolve in that order,
  // so sending each as it resolves keeps the numbering (secure.js).
  #seal(type, payload, { rethrowTooLarge = false } = {}) {
    const handshake = this.#handshake;
    if (this.#ended || !handshake?.established) return Promise.resolve(false);
    return handshake.seal(type, payload).then(
      (body) => !this.#ended && this.#send(MessageType.sealed, body),
      (error) => {
        if (error instanceof SecureChannelError && error.kind === 'tooLarge') {
          if (rethrowTooLarge) throw error;
          return false;
        }
        this.#fail(error);
        return false;
      },
    );
  }

  // MARK: - Failures and the end

  // §2.3: wait for the relay's Bye or Error before blaming the host.
  #damaged(error) {
    if (this.#damage) return;
    this.#damage = error;
    this.#after(DAMAGE_GRACE_MILLISECONDS, () => this.#fail(error));
  }

  #relayBroke(what) {
    this.#fail(new RelayBrokeError(what));
  }

  #hostBroke(what) {
    this.#fail(new HostBrokeError(what));
  }

  #unexpected(error) {
    if (error instanceof RelayBrokeError || error instanceof HostBrokeError || error instanceof SecureChannelError) {
      this.#fail(error);
      return;
    }
    console.error('web viewer:', error);
    const message =
      `The viewer failed (${error?.name ?? 'Error'}: ${error?.message ?? error}). Reload the page to connect again; ` +
      "if it happens again, report it with the browser console's log.";
    this.#end({ cause: 'failure', message }, { reason: ByeReason.protocolError, text: 'the web viewer failed' });
  }

  // Ends the session for an error of the relay, the host or the end-to-end channel.
  #fail(error, { sendBye = true } = {}) {
    let message;
    let byeText;
    let reason = ByeReason.protocolError;
    if (error instanceof RelayBrokeError) {
      // §5: a malformed or unexpected relay-control message closes the connection.
      message = `The relay broke the protocol (${error.detail}), so the connection was closed. ` +
        'Connect again; if it happens again, report it to the relay\'s operator.';
      sendBye = false;
    } else if (error instanceof HostBrokeError) {
      message = `The host broke the protocol (${error.detail}), so the session was ended. ` +
        'Connect again; if it happens again, update relay-agent on the host and report it.';
      byeText = `the viewer refused the host's message: ${error.detail}`;
    } else if (error instanceof SecureChannelError) {
      message = sentence(error.message);
      byeText = error.message;
    } else {
      message = `The viewer failed: ${error?.message ?? error}. Reload the page to connect again.`;
      byeText = 'the web viewer failed';
    }
    this.#end({ cause: 'failure', message, error }, sendBye ? { reason, text: byeText } : null);
  }

  /**
   * The end, once. `outcome.cause` is 'bye' ({reason, text}), 'error' ({code, text}),
   * 'closed' (no Bye or Error: {opened, code, dead, timedOut}), 'local' (the engineer),
   * 'failure' ({message}: this page ended it) or 'hostKeyChanged' ({error}). The page gets
   * it with `paired` and `live` added: how far the session got.
   */
  #end(outcome, bye = null, { silent = false } = {}) {
    if (this.#ended) return;
    if (bye) {
      try {
        this.#send(MessageType.bye, encode.bye({ reason: bye.reason, text: bye.text.slice(0, 2000).toWellFormed() }));
      } catch {
        // The Bye is a courtesy: the close below ends the session all the same.
      }
    }
    this.#ended = true;
    for (const timer of this.#timers) {
      clearTimeout(timer);
      clearInterval(timer);
    }
    this.#timers.clear();
    this.#queue.length = 0;
    this.#decoder?.close();
    const socket = this.#socket;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) socket.close(1000);
    }
    if (!silent) this.#notify('ended', { ...outcome, paired: this.#paired !== null, live: this.#access !== null });
  }

  // MARK: - Timers and the observer

  #after(milliseconds, action) {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (!this.#ended) action();
    }, milliseconds);
    this.#timers.add(timer);
    return timer;
  }

  #every(milliseconds, action) {
    const timer = setInterval(() => {
      if (!this.#ended) action();
    }, milliseconds);
    this.#timers.add(timer);
    return timer;
  }

  #clear(timer) {
    if (timer === null) return;
    clearTimeout(timer);
    this.#timers.delete(timer);
  }

  #notify(name, value) {
    const method = this.#observer[name];
    if (typeof method !== 'function') return;
    try {
      method.call(this.#observer, value);
    } catch (error) {
      // A fault of the page must not wedge the protocol; it shows in the console.
      console.error(`web viewer: the page's ${name} handler failed:`, error);
    }
  }
}

const INNER_DECODERS = Object.freeze({
  [MessageType.screenInit]: 'screenInit',
  [MessageType.tileUpdate]: 'tileUpdate',
  [MessageType.clipboard]: 'clipboard',
  [MessageType.accessGranted]: 'accessGranted',
});

class RelayBrokeError extends Error {
  constructor(detail) {
    super(`the relay broke the protocol: ${detail}`);
    this.name = 'RelayBrokeError';
    this.detail = detail;
  }
}

class HostBrokeError extends Error {
  constructor(detail) {
    super(`the host broke the protocol: ${detail}`);
    this.name = 'HostBrokeError';
    this.detail = detail;
  }
}

function union(a, b) {
  if (!a) return { ...b };
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return {
    x,
    y,
    width: Math.max(a.x + a.width, b.x + b.width) - x,
    height: Math.max(a.y + a.height, b.y + b.height) - y,
  };
}
