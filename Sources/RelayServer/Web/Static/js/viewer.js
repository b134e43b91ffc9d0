// The viewer page (/view): a support engineer sees and controls a customer's PC live.
// `/view#host=ID` connects to an enrolled host; `/view#code` asks for a support code and
// waits for the customer's PC to present it.
//
// The protocol is viewer-session.js, the mouse and keyboard viewer-input.js; this module
// is the page: the states of the DOM contract (body[data-state]), the code and security
// code, the canvas (only the changed rectangle is put), the figures, scale and full
// screen, the clipboard, and what happens at the end: the reason in words, and for an
// enrolled host a reconnect with back-off while the console's host list shows it online.
//
// Every string from the relay or the host is untrusted: it goes into the page as text
// (textContent), never as HTML.

import { getJSON, sentence } from './api.js';
import { specialKeys } from './keysyms.js';
import { forgetPinnedHostKey, loadOrCreateIdentity } from './secure.js';
import { ViewerInput } from './viewer-input.js';
import { ConnectionState, printable, ViewerConnection } from './viewer-session.js';
import { ByeReason, describeBye, describeError, ErrorCode } from './wire.js';

const RECONNECT_GIVE_UP_MILLISECONDS = 120_000;
const RECONNECT_MAXIMUM_DELAY_MILLISECONDS = 15_000;
// An enrolled host's agent that restarts is offline for a moment; one offline this long has left.
const RECONNECT_OFFLINE_GRACE_MILLISECONDS = 10_000;
const RECONNECT_OFFLINE_POLL_MILLISECONDS = 1_000;
const CONFIRM_DEADLINE_MILLISECONDS = 120_000; // as relay-agent view (PROTOCOL.md §5.1.5)
const NOTICE_MILLISECONDS = 6_000;
const SCALE_STORAGE_KEY = 'supportrelay.viewer.scale';

// ---- Pure helpers (exported for tests) ----

/** `#code` → {kind: 'code'}; `#host=ID` → {kind: 'host', hostID}; anything else → null. */
export function parseTarget(hash) {
  const text = String(hash ?? '').replace(/^#/, '');
  if (text === 'code') return { kind: 'code' };
  const match = /^host=(.+)$/.exec(text);
  if (!match) return null;
  let hostID;
  try {
    hostID = decodeURIComponent(match[1]).trim();
  } catch {
    return null;
  }
  return hostID === '' ? null : { kind: 'host', hostID };
}

/** Six digits as people read them: "042 917". */
export function groupedCode(digits) {
  const text = String(digits);
  return text.length === 6 ? `${text.slice(0, 3)} ${text.slice(3)}` : text;
}

/** The command the customer runs for a support code (the console shows it with CODE). */
export function customerCommand(relay, fingerprint, code) {
  return `relay-agent host --relay ${relay || 'RELAY'} --fingerprint ${fingerprint || 'FP'} --code ${code}`;
}

/** "9:58" for 598 seconds. */
export function clockWords(seconds) {
  const whole = Math.max(0, Math.ceil(seconds));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`;
}

/** The wait before reconnect attempt `attempt` (0, 1, …): 1 s, 2 s, 4 s … at most 15 s. */
export function reconnectDelay(attempt) {
  return Math.min(1000 * 2 ** Math.min(attempt, 10), RECONNECT_MAXIMUM_DELAY_MILLISECONDS);
}

/** The middle value of the latencies (ms), or null. */
export function median(values) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

// Bye reasons after which an enrolled host may be back in a moment (PROTOCOL.md §6.2).
const RETRY_AFTER_BYE = new Set([ByeReason.peerLeft, ByeReason.relayShutdown, ByeReason.idleTimeout, ByeReason.relayRestart]);
// Errors a reconnect attempt may meet while the host comes back (§6.1).
const RETRY_AFTER_ERROR = new Set([ErrorCode.noSuchHost, ErrorCode.hostBusy, ErrorCode.relayFull, ErrorCode.timeout,
  ErrorCode.internalError]);

/**
 * What to tell the engineer about a connection's end, and whether an enrolled host may be
 * reconnected to (`retry`). `context` is {kind: 'code' | 'host', reconnecting, waitingForHost}.
 */
export function endWords(outcome, context) {
  const details = (text) => (text ? `\nThe relay's words: ${sentence(text)}` : '');
  switch (outcome.cause) {
    case 'bye': {
      let text = describeBye(outcome.reason);
      if (outcome.reason === ByeReason.declined && context.kind === 'host') {
        text = 'The host refused you. Ask its administrator to let your key in.';
      }
      return { text: text + details(outcome.text), retry: RETRY_AFTER_BYE.has(outcome.reason) };
    }
    case 'error': {
      let text = describeError(outcome.code);
      if (outcome.code === ErrorCode.timeout && context.waitingForHost) {
        text = 'The support code expired before the customer used it. Click New support code and read the new code to the customer.';
      }
      return { text: text + details(outcome.text), retry: context.reconnecting && RETRY_AFTER_ERROR.has(outcome.code) };
    }
    case 'closed': {
      let text;
      if (!outcome.opened) {
        text = 'The viewer could not open a connection to the relay. Check your network connection; if you were ' +
          'signed out, sign in again. Then connect again.';
      } else if (outcome.dead) {
        text = 'The relay stopped answering: nothing arrived for 150 seconds. Check your network connection, then connect again.';
      } else if (outcome.timedOut) {
        text = 'The relay did not answer in time. Check your network connection, then connect again.';
      } else {
        text = 'The connection to the relay was lost. Check your network connection, then connect again.';
      }
      return { text, retry: true };
    }
    case 'local':
      return { text: 'You ended the session. Nothing more is sent to or received from the other side.', retry: false };
    default:
      return { text: outcome.message ?? 'The session ended.', retry: false };
  }
}

// ---- The page ----

const $ = (id) => document.getElementById(id);

const page = {
  target: null,
  me: null,
  identity: null,
  connection: null,
  input: null,
  context: null,
  imageData: null,
  state: 'connecting',
  everPaired: false,
  reconnect: null,
  codeExpiresAt: 0,
  codeTimer: 0,
  waitingForHost: false,
  paired: null,
  signed: null,
  securityCode: null,
  inputAllowed: false,
  viewOnly: false,
  confirmRequired: false,
  confirmPending: false,
  confirmTimer: 0,
  hasScreen: false,
  updates: 0,
  figures: null,
  figuresTimer: 0,
  hostClipboard: '',
  noticeTimer: 0,
  scale: 'fit',
};

async function start() {
  page.target = parseTarget(location.hash);
  window.addEventListener('hashchange', () => location.reload());
  setUpControls();
  if (!page.target) {
    showEnded('This page needs to know whom to connect to. Open it from the console: Connect next to a host, ' +
      'or New support code.', { again: false });
    return;
  }
  document.body.dataset.mode = page.target.kind;
  renderPeer();
  // Both at once: the account from the relay, the engineer's key from this browser.
  const identity = loadOrCreateIdentity();
  identity.catch(() => {});
  try {
    page.me = await getJSON('/api/me');
  } catch (error) {
    if (error.status === 401) {
      location.assign('/signin');
      return;
    }
    showEnded(`The viewer could not load your account. ${error.message}`, { again: true, reload: true });
    return;
  }
  try {
    page.identity = await identity;
  } catch (error) {
    showEnded(`The viewer cannot encrypt end to end: ${sentence(error.message)}`, { again: true, reload: true });
    return;
  }
  connect();
}

function connect() {
  page.connection?.close();
  resetSession();
  const me = page.me;
  const connection = new ViewerConnection({
    url: `wss://${location.host}/ws?csrf=${encodeURIComponent(me.csrfToken ?? '')}`,
    target: page.target,
    identity: page.identity,
    login: me.login,
    company: me.company,
    relayOrigin: location.origin,
    observer: observerFor(() => page.connection === connection),
  });
  page.connection = connection;
  connection.setPaused(document.hidden);
  connection.start();
}

// Everything one connection showed, cleared for the next (the picture stays, dimmed).
function resetSession() {
  stopCodeCountdown();
  stopFigures();
  clearTimeout(page.confirmTimer);
  page.waitingForHost = false;
  page.securityCode = null;
  page.inputAllowed = false;
  page.confirmRequired = false;
  page.confirmPending = false;
  page.signed = null;
  $('sas').textContent = '';
  $('sas-large').textContent = '';
  $('sas-chip').hidden = true;
  $('sas-confirm').value = '';
  $('sas-confirm-error').textContent = '';
  $('end-reason').textContent = '';
  $('pin-error').textContent = '';
  $('pin-card').hidden = true;
  $('end-card').hidden = true;
  renderPeer();
}

// The connection's events, for as long as it is the page's connection.
function observerFor(isCurrent) {
  const handlers = {
    state: showState,
    codeIssued: showCode,
    paired: showPaired,
    securityCode: showSecurityCode,
    peerIdentity: showPeerIdentity,
    access: accessGranted,
    screen: showScreen,
    update: paint,
    clipboard: hostClipboard,
    ended: connectionEnded,
  };
  const observer = {};
  for (const [name, handler] of Object.entries(handlers)) {
    observer[name] = (value) => {
      if (isCurrent()) handler(value);
    };
  }
  return observer;
}

// ---- States ----

function setState(state) {
  page.state = state;
  document.body.dataset.state = state;
  render();
}

function showState(state) {
  // A reconnect shows as reconnecting until the host is paired again.
  if (page.reconnect && state === ConnectionState.connecting) {
    $('progress-text').textContent = 'Reconnecting to the relay…';
    return;
  }
  if (state === ConnectionState.live) page.reconnect = null;
  setState(state);
}

const PROGRESS = Object.freeze({
  connecting: 'Connecting to the relay…',
  handshake: 'Setting up end-to-end encryption…',
});

function render() {
  const state = page.state;
  const code = page.target?.kind === 'code';
  const peerName = page.paired?.peerName || (code ? "the customer's PC" : 'the host');
  let status;
  let progress = null;
  switch (state) {
    case 'connecting':
      status = PROGRESS.connecting;
      progress = status;
      break;
    case 'waiting-for-customer':
      status = 'Waiting for the customer to start the agent with the code…';
      break;
    case 'handshake':
      status = `Connected to ${peerName}. ${PROGRESS.handshake}`;
      progress = status;
      break;
    case 'waiting-for-access':
      status = code ? 'Waiting for the customer to accept…' : 'Waiting for the host to grant access…';
      if (!code) progress = status;
      break;
    case 'live':
      status = liveStatus();
      if (!page.hasScreen) progress = "Waiting for the host's screen…";
      break;
    case 'reconnecting':
      status = $('status').textContent || 'Reconnecting…';
      progress = $('progress-text').textContent;
      break;
    default:
      status = 'Session ended.';
  }
  if (state !== 'reconnecting') setStatus(status);
  const sasWanted = code && page.securityCode !== null && (state === 'waiting-for-access' || state === 'handshake');
  const sasShown = sasWanted || (page.confirmPending && state !== 'ended');
  if (sasShown && state !== 'live') progress = null;
  $('progress-card').hidden = progress === null;
  if (progress !== null && state !== 'reconnecting') $('progress-text').textContent = progress;
  $('code-card').hidden = state !== 'waiting-for-customer';
  $('sas-card').hidden = !sasShown;
  $('sas-chip').hidden = page.securityCode === null || page.confirmPending;
  $('sas-large').hidden = page.confirmPending;
  $('sas-confirm-form').hidden = !page.confirmPending;
  $('sas-waiting').textContent = state === 'waiting-for-access' ? 'Waiting for the customer to accept…' : '';
  $('screen-area').classList.toggle('empty', !page.hasScreen);
  renderControls();
}

// The status line is a live region: it changes only when its words do.
function setStatus(text) {
  const status = $('status');
  if (status.textContent !== text) status.textContent = text;
}

function liveStatus() {
  if (!page.inputAllowed) return `Live, view only: ${page.target.kind === 'code' ? 'the customer allowed' : 'the host allows'} viewing only.`;
  if (page.confirmPending) return 'Live: type the security code the customer reads out before you use the screen.';
  if (page.viewOnly) return 'Live, view only: your mouse and keyboard are not sent (View only is on).';
  return 'Live: you see and control the screen. Click it to type.';
}

function inputEnabled() {
  return page.connection?.inputAllowed === true && !page.viewOnly && !page.confirmPending;
}

function renderControls() {
  const live = page.state === 'live';
  const enabled = live && inputEnabled();
  document.body.dataset.input = enabled ? 'on' : 'off';
  $('clipboard-send').disabled = !(enabled && page.connection?.clipboardAllowed);
  const keys = $('special-keys');
  keys.setAttribute('aria-disabled', String(!enabled));
  if (!enabled) keys.open = false;
  for (const button of keys.querySelectorAll('button')) button.disabled = !enabled;
  const viewOnly = $('view-only');
  viewOnly.disabled = !(live && page.inputAllowed);
  viewOnly.checked = page.viewOnly || (live && !page.inputAllowed);
  $('disconnect').disabled = page.state === 'ended';
}

// ---- Support code ----

function showCode({ code, validForSeconds, confirmSecurityCode }) {
  page.waitingForHost = true;
  page.confirmRequired = confirmSecurityCode;
  $('code').textContent = groupedCode(code);
  $('customer-command').textContent = customerCommand(page.me.relay, page.me.fingerprint, code);
  $('copy-command-result').textContent = '';
  document.title = `Support code ${groupedCode(code)} · SupportRelay`;
  page.codeExpiresAt = Date.now() + validForSeconds * 1000;
  stopCodeCountdown();
  const tick = () => {
    const seconds = (page.codeExpiresAt - Date.now()) / 1000;
    const expiry = $('code-expiry');
    expiry.textContent = seconds > 0
      ? `Expires in ${clockWords(seconds)} if the customer does not use it.`
      : 'The code has expired. Ask for a new code.';
    expiry.classList.toggle('soon', seconds < 60);
  };
  tick();
  page.codeTimer = setInterval(tick, 1000);
}

function stopCodeCountdown() {
  clearInterval(page.codeTimer);
  page.codeTimer = 0;
}

async function copyCommand() {
  const text = $('customer-command').textContent;
  try {
    await navigator.clipboard.writeText(text);
    $('copy-command-result').textContent = 'Copied.';
  } catch {
    const selection = getSelection();
    selection.selectAllChildren($('customer-command'));
    $('copy-command-result').textContent = 'The browser did not allow copying: the command is selected, press Ctrl+C.';
  }
}

// ---- Who is on the other side ----

function showPaired(paired) {
  page.everPaired = true;
  page.waitingForHost = false;
  stopCodeCountdown();
  page.paired = paired;
  renderPeer();
  const name = paired.peerName || (page.target.kind === 'host' ? page.target.hostID : "Customer's PC");
  document.title = `${name} · SupportRelay`;
}

function showPeerIdentity(identity) {
  page.signed = identity;
  renderPeer();
  if (identity.pinned === 'new') {
    notice(`First connection to this host from this browser: its key ${identity.fingerprint} is pinned now. ` +
      "Check it once with the host's owner (relay-agent host prints it when it starts).");
  }
  render();
}

function renderPeer() {
  const peer = $('peer');
  const paired = page.paired;
  peer.replaceChildren();
  if (!paired) {
    peer.textContent = page.target?.kind === 'host' ? `Host ${page.target.hostID}` : 'New support code';
    peer.removeAttribute('title');
    return;
  }
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = paired.peerName || (page.target.kind === 'host' ? page.target.hostID : "Customer's PC");
  peer.append(name);
  const parts = [name.textContent];
  if (paired.peerOrganization) {
    const organization = document.createElement('span');
    organization.className = 'organization';
    organization.textContent = ` · ${paired.peerOrganization}`;
    peer.append(organization);
    parts.push(`of ${paired.peerOrganization} (as the relay knows it)`);
  }
  const signed = page.signed;
  if (signed) {
    const claim = signed.organization ? `${signed.name} of ${signed.organization}` : signed.name;
    const line = document.createElement('span');
    line.className = 'signed';
    line.textContent = ` — signed “${claim}” with key ${signed.fingerprint}`;
    peer.append(line);
    parts.push(`; its key ${signed.fingerprint} signed the name “${claim}”`);
  }
  if (paired.peerSoftware) parts.push(`; software ${paired.peerSoftware}`);
  peer.title = parts.join(' ');
}

function showSecurityCode(sas) {
  page.securityCode = sas;
  $('sas').textContent = sas;
  $('sas-large').textContent = sas;
  let instructions = page.target.kind === 'code'
    ? 'Read this code to the customer. Their screen shows the same code with the question whether to let you in. ' +
      'If their code is different, someone is in between: click Disconnect.'
    : 'Encrypted end to end. The host shows the same code.';
  if (page.target.kind === 'code' && page.confirmRequired) {
    // The company wants the codes compared (PROTOCOL.md §5.1.5): the engineer types what
    // the customer reads out, so this side's code stays out of sight until then.
    instructions = 'Ask the customer to read out the six-digit security code on their screen (next to the question ' +
      'whether to let you in), and type it below. Nothing you type or click reaches their PC until the codes match.';
    page.confirmPending = true;
    page.confirmTimer = setTimeout(() => {
      if (!page.confirmPending) return;
      page.connection?.refuse(
        'The security code was not confirmed within 2 minutes; your company requires it, so the session was ended. ' +
          'Start a new session and type the code the customer reads out.',
        'The engineer did not confirm the security code in time.',
        ByeReason.normal,
      );
    }, CONFIRM_DEADLINE_MILLISECONDS);
  }
  $('sas-instructions').textContent = instructions;
  render();
}

async function confirmSecurityCode(event) {
  event.preventDefault();
  const typed = $('sas-confirm').value.replace(/\D/g, '');
  const own = (page.securityCode ?? '').replace(/\D/g, '');
  if (typed.length !== 6) {
    $('sas-confirm-error').textContent = 'Type the six digits the customer reads out from their screen, for example 123 456.';
    return;
  }
  if (typed === own) {
    page.confirmPending = false;
    clearTimeout(page.confirmTimer);
    $('sas-confirm-error').textContent = '';
    notice(`The codes match (${page.securityCode}): nobody is in between. Your mouse and keyboard now reach the host.`);
    render();
    page.input.focus();
    return;
  }
  page.connection?.refuse(
    `The customer's security code (${groupedCode(typed)}) is not yours (${page.securityCode}): someone may be in ` +
      'between (the relay, or whoever holds its key), so the session was ended. Call the customer back and start a new session.',
    'The engineer was read a different security code than the one this screen shows: someone may be in between, so the session was ended.',
  );
}

// ---- Live ----

function accessGranted({ inputAllowed }) {
  page.inputAllowed = inputAllowed;
  page.reconnect = null;
  startFigures();
  if (!inputAllowed) {
    const who = page.target.kind === 'code' ? 'The customer allowed' : 'The host allows';
    notice(`${who} viewing only: your mouse, keyboard and clipboard are not passed on.`);
  }
  render();
  page.input.focus();
}

function showScreen({ width, height, pixels }) {
  const canvas = $('screen');
  canvas.width = width;
  canvas.height = height;
  page.context ??= canvas.getContext('2d', { alpha: false });
  page.imageData = new ImageData(pixels, width, height);
  page.context.putImageData(page.imageData, 0, 0);
  page.hasScreen = true;
  updateRendering();
  render();
}

// Only the changed rectangle is put (the framebuffer is shared with the decoder).
function paint({ dirty, latency }) {
  if (dirty && page.imageData) {
    page.context.putImageData(page.imageData, 0, 0, dirty.x, dirty.y, dirty.width, dirty.height);
  }
  page.updates += 1;
  document.body.dataset.updates = String(page.updates);
  if (latency !== null && page.figures) page.figures.latencies.push(latency);
}

function startFigures() {
  stopFigures();
  page.figures = {
    at: performance.now(),
    updates: page.updates,
    bytes: page.connection.bytesReceived,
    latencies: [],
    lastLatency: null,
  };
  page.figuresTimer = setInterval(updateFigures, 1000);
}

// Stopped figures show dashes: numbers would claim a speed that no longer is.
function stopFigures() {
  clearInterval(page.figuresTimer);
  page.figuresTimer = 0;
  page.figures = null;
  for (const figure of $('figures').querySelectorAll('[data-figure]')) figure.textContent = '–';
}

function updateFigures() {
  const figures = page.figures;
  const connection = page.connection;
  if (!figures || !connection) return;
  const now = performance.now();
  const seconds = (now - figures.at) / 1000;
  if (seconds <= 0) return;
  const fps = (page.updates - figures.updates) / seconds;
  const kbps = ((connection.bytesReceived - figures.bytes) * 8) / 1000 / seconds;
  const latency = median(figures.latencies) ?? figures.lastLatency;
  $('figures').querySelector('[data-figure="fps"]').textContent = fps.toFixed(1);
  $('figures').querySelector('[data-figure="kbps"]').textContent = String(Math.round(kbps));
  $('figures').querySelector('[data-figure="latency"]').textContent = latency === null ? '–' : `${Math.round(latency)} ms`;
  figures.at = now;
  figures.updates = page.updates;
  figures.bytes = connection.bytesReceived;
  figures.lastLatency = latency;
  figures.latencies = [];
}

// Crisp pixels only when the screen is drawn larger than it is (zoom, a high-density
// display in 1:1); smoothing when fit shrinks it.
function updateRendering() {
  const canvas = $('screen');
  const box = canvas.getBoundingClientRect();
  const scale = canvas.width > 0 ? (box.width * devicePixelRatio) / canvas.width : 1;
  canvas.classList.toggle('pixelated', scale > 1.01);
}

function setScale(scale) {
  page.scale = scale === 'actual' ? 'actual' : 'fit';
  const area = $('screen-area');
  area.classList.toggle('fit', page.scale === 'fit');
  area.classList.toggle('actual', page.scale === 'actual');
  $('scale-toggle').setAttribute('aria-pressed', String(page.scale === 'actual'));
  try {
    localStorage.setItem(SCALE_STORAGE_KEY, page.scale);
  } catch {
    // Storage may be off; the choice then lasts for this page.
  }
  updateRendering();
}

async function toggleFullscreen() {
  try {
    if (document.fullscreenElement) {
      await document.exitFullscreen();
      return;
    }
    await $('viewer').requestFullscreen({ navigationUI: 'hide' });
    // In full screen the browser can pass Esc, Alt+Tab and the like to the page (held Esc leaves).
    await navigator.keyboard?.lock?.().catch(() => {});
  } catch (error) {
    notice(`The browser did not allow full screen (${error.message}). Use its own full screen (F11) instead.`, 'warning');
  } finally {
    page.input?.focus();
  }
}

// ---- Clipboard ----

function hostClipboard(text) {
  page.hostClipboard = text;
  $('clipboard-received').textContent = printable(text, 100_000, { keepLines: true });
  $('clipboard-panel').hidden = false;
  if (text === '') return;
  navigator.clipboard.writeText(text).then(
    () => notice('The host copied text: it is on your clipboard too.'),
    () => notice("The host copied text (bottom right). This browser did not let the page put it on your clipboard: click Copy there.", 'warning'),
  );
}

async function copyHostClipboard() {
  try {
    await navigator.clipboard.writeText(page.hostClipboard);
    notice('Copied to your clipboard.');
  } catch (error) {
    getSelection().selectAllChildren($('clipboard-received'));
    notice(`The browser did not allow copying (${error.name}): the text is selected, press Ctrl+C.`, 'warning');
  }
}

async function sendClipboard() {
  if (!inputEnabled()) return;
  let text;
  try {
    text = await navigator.clipboard.readText();
  } catch (error) {
    notice(
      `This browser did not let the page read your clipboard (${error.name}). Allow clipboard access for this site ` +
        '(the icon in the address bar), or click the screen and paste with Ctrl+V.',
      'warning',
    );
    return;
  }
  if (text === '') {
    notice('Your clipboard holds no text: copy some text first.', 'warning');
    return;
  }
  await sendClipboardText(text);
  page.input.focus();
}

async function sendClipboardText(text) {
  try {
    const sent = await page.connection.sendClipboard(text);
    if (sent) {
      const count = Array.from(text).length;
      notice(`Sent ${count} character${count === 1 ? '' : 's'} to the host's clipboard: paste them there with Ctrl+V.`);
    }
  } catch (error) {
    notice(sentence(error.message), 'warning');
  }
}

function notice(text, kind = 'info') {
  const element = $('notice');
  element.textContent = text;
  element.classList.toggle('warning', kind === 'warning');
  element.hidden = false;
  clearTimeout(page.noticeTimer);
  page.noticeTimer = setTimeout(() => {
    element.hidden = true;
  }, NOTICE_MILLISECONDS);
}

// ---- The end, and reconnecting ----

function connectionEnded(outcome) {
  stopCodeCountdown();
  stopFigures();
  clearTimeout(page.confirmTimer);
  page.inputAllowed = false;
  page.confirmPending = false;
  if (outcome.cause === 'hostKeyChanged') {
    showHostKeyChanged(outcome.error);
    return;
  }
  const context = { kind: page.target.kind, reconnecting: page.reconnect !== null, waitingForHost: page.waitingForHost };
  const words = endWords(outcome, context);
  const mayReconnect = page.target.kind === 'host' && words.retry && (page.everPaired || page.reconnect !== null);
  if (mayReconnect) {
    scheduleReconnect(words.text);
    return;
  }
  showEnded(words.text, { again: true });
}

function scheduleReconnect(reason, { offline = false } = {}) {
  const now = Date.now();
  page.reconnect ??= { since: now, attempt: 0, offlineSince: null, timer: 0, countdown: 0, reason };
  const reconnect = page.reconnect;
  reconnect.reason = reason;
  clearTimeout(reconnect.timer);
  clearInterval(reconnect.countdown);
  if (now - reconnect.since >= RECONNECT_GIVE_UP_MILLISECONDS) {
    giveUp(`${reason}\nThe viewer tried to reconnect for 2 minutes without success. Check that the host PC is on and ` +
      'its agent running, then click Connect again.');
    return;
  }
  // While the host is offline its list entry is looked at every second; once it is
  // online, connection attempts back off (1 s, 2 s, 4 s … 15 s).
  let delay = RECONNECT_OFFLINE_POLL_MILLISECONDS;
  if (!offline) {
    delay = reconnectDelay(reconnect.attempt);
    reconnect.attempt += 1;
  }
  const due = now + delay;
  const tick = () => {
    const seconds = Math.max(1, Math.ceil((due - Date.now()) / 1000));
    $('progress-text').textContent = offline
      ? `${reason}\nThe host is offline; waiting for it to come back…`
      : `${reason}\nReconnecting in ${seconds} s…`;
  };
  // The status (a live region) says it once; the card counts down.
  setStatus('Connection lost. Reconnecting…');
  tick();
  reconnect.countdown = setInterval(tick, 1000);
  reconnect.timer = setTimeout(() => attemptReconnect(reconnect), delay);
  setState('reconnecting');
}

// Only while the console's host list shows the host online or busy; a host offline for
// 10 s has left (a restarting agent is back sooner).
async function attemptReconnect(reconnect) {
  clearInterval(reconnect.countdown);
  if (page.reconnect !== reconnect) return;
  let hosts;
  try {
    hosts = (await getJSON('/api/hosts')).hosts ?? [];
  } catch (error) {
    if (page.reconnect !== reconnect) return;
    if (error.status === 401) {
      giveUp('You were signed out, so the viewer stopped reconnecting. Sign in again, then connect from the console.');
    } else {
      scheduleReconnect(reconnect.reason); // the relay itself is not reachable yet
    }
    return;
  }
  if (page.reconnect !== reconnect) return;
  const host = hosts.find((entry) => entry.id === page.target.hostID);
  if (!host) {
    giveUp(`${reconnect.reason}\nThe host is no longer enrolled for your company, so the viewer stopped reconnecting.`);
    return;
  }
  if (host.status !== 'online' && host.status !== 'busy') {
    reconnect.offlineSince ??= Date.now();
    if (Date.now() - reconnect.offlineSince >= RECONNECT_OFFLINE_GRACE_MILLISECONDS) {
      giveUp(`${reconnect.reason}\nThe host is offline now, so the viewer stopped reconnecting. Click Connect again ` +
        'once its PC is on and its agent running.');
      return;
    }
    scheduleReconnect(reconnect.reason, { offline: true });
    return;
  }
  reconnect.offlineSince = null;
  connect();
}

function cancelReconnect() {
  const reconnect = page.reconnect;
  if (!reconnect) return;
  clearTimeout(reconnect.timer);
  clearInterval(reconnect.countdown);
  page.reconnect = null;
}

function giveUp(text) {
  cancelReconnect();
  page.connection?.close();
  showEnded(text, { again: true });
}

function showEnded(text, { again = true, reload = false } = {}) {
  cancelReconnect();
  stopCodeCountdown();
  stopFigures();
  page.input?.releaseAll();
  $('end-reason').textContent = text;
  $('end-card').hidden = false;
  const button = $('again');
  button.hidden = !again;
  button.textContent = page.target?.kind === 'code' ? 'New support code' : 'Connect again';
  button.dataset.reload = String(reload);
  setState('ended');
  setStatus('Session ended.');
  button.focus({ preventScroll: true });
}

function showHostKeyChanged(error) {
  $('pin-error').textContent = error.message;
  $('pin-card').hidden = false;
  $('end-reason').textContent = "The host's key is not the one this browser pinned for it, so the session was not " +
    'started. Read the details, and verify the new key with the host\'s owner before you connect again.';
  cancelReconnect();
  stopFigures();
  setState('ended');
  $('end-card').hidden = true;
  setStatus("Not connected: the host's key has changed.");
}

async function repin() {
  const button = $('repin');
  button.disabled = true;
  try {
    await forgetPinnedHostKey(location.origin, page.target.hostID);
  } catch (error) {
    $('pin-error').textContent = `The viewer could not forget the pinned key: ${sentence(error.message)}`;
    return;
  } finally {
    button.disabled = false;
  }
  $('pin-card').hidden = true;
  connect();
}

function again() {
  if ($('again').dataset.reload === 'true') {
    location.reload();
    return;
  }
  cancelReconnect();
  page.everPaired = false;
  page.paired = null;
  if (page.target.kind === 'code') clearScreen(); // the next customer's PC is another one
  connect();
}

function clearScreen() {
  const canvas = $('screen');
  canvas.width = 1;
  canvas.height = 1;
  page.imageData = null;
  page.hasScreen = false;
  $('clipboard-panel').hidden = true;
  $('clipboard-received').textContent = '';
  page.hostClipboard = '';
}

function disconnect() {
  if (page.reconnect) {
    giveUp('You stopped reconnecting. Nothing is sent to the host.');
    return;
  }
  page.connection?.disconnect('The engineer closed the viewer.');
}

// ---- Controls ----

function setUpControls() {
  const canvas = $('screen');
  const keyboard = $('keyboard-input');
  page.input = new ViewerInput({
    canvas,
    keyboard,
    enabled: inputEnabled,
    send: {
      pointer: (x, y, buttons) => page.connection?.sendPointer(x, y, buttons),
      keys: (steps) => page.connection?.sendKeys(steps),
      clipboard: (text) => sendClipboardText(text),
    },
  });
  page.input.attach();
  keyboard.addEventListener('focus', () => $('screen-area').classList.add('keyboard'));
  keyboard.addEventListener('blur', () => $('screen-area').classList.remove('keyboard'));

  let saved = 'fit';
  try {
    saved = localStorage.getItem(SCALE_STORAGE_KEY) ?? 'fit';
  } catch {
    // No storage: fit.
  }
  setScale(saved);
  $('scale-toggle').addEventListener('click', () => {
    setScale(page.scale === 'fit' ? 'actual' : 'fit');
    page.input.focus();
  });
  new ResizeObserver(updateRendering).observe($('screen-area'));
  window.addEventListener('resize', updateRendering);

  $('fullscreen').addEventListener('click', toggleFullscreen);
  document.addEventListener('fullscreenchange', () => {
    const full = document.fullscreenElement !== null;
    $('fullscreen').setAttribute('aria-pressed', String(full));
    if (!full) navigator.keyboard?.unlock?.();
    updateRendering();
  });

  const keys = $('special-keys');
  keys.querySelector('summary').addEventListener('click', (event) => {
    if (keys.getAttribute('aria-disabled') === 'true') event.preventDefault();
  });
  for (const button of keys.querySelectorAll('button[data-special]')) {
    button.addEventListener('click', () => {
      const steps = specialKeys[button.dataset.special];
      if (steps && inputEnabled()) page.connection.sendKeys(steps);
      keys.open = false;
      page.input.focus();
    });
  }
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && keys.open) {
      keys.open = false;
      page.input.focus();
    }
  });
  // A click anywhere else closes the menu, as menus do.
  document.addEventListener('pointerdown', (event) => {
    if (keys.open && !keys.contains(event.target)) keys.open = false;
  });

  $('view-only').addEventListener('change', (event) => {
    // Keys and buttons still held are released while input still goes out.
    if (event.target.checked) page.input.releaseAll();
    page.viewOnly = event.target.checked;
    render();
    page.input.focus();
  });
  $('clipboard-send').addEventListener('click', sendClipboard);
  $('clipboard-copy').addEventListener('click', copyHostClipboard);
  $('clipboard-close').addEventListener('click', () => {
    $('clipboard-panel').hidden = true;
    page.input.focus();
  });
  $('copy-command').addEventListener('click', copyCommand);
  $('sas-confirm-form').addEventListener('submit', confirmSecurityCode);
  $('disconnect').addEventListener('click', disconnect);
  $('again').addEventListener('click', again);
  $('repin').addEventListener('click', repin);
  // A hidden page asks for no screen updates (the host then sends none) until it is shown.
  document.addEventListener('visibilitychange', () => page.connection?.setPaused(document.hidden));
  // Closing the tab ends the session with a Bye (a support code is voided with it).
  window.addEventListener('pagehide', () => {
    cancelReconnect();
    page.connection?.disconnect('The engineer closed the viewer.');
  });
}

if (document.getElementById('screen')) start();
