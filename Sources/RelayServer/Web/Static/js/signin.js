// The sign-in page (/signin): login and password, then a two-factor code; or, from a
// one-time link (/signin#TOKEN), a new password and a two-factor enrolment. Every step is
// one POST of the web API contract; the answer's `next` says which form comes next.
//
// Server data (logins, the QR code, secrets, recovery codes) only ever reaches the page
// as text nodes or as a parsed and cleaned SVG document, never as HTML.

import { getJSON, postJSON } from './api.js';

const SVG_NS = 'http://www.w3.org/2000/svg';
const VIEWS = ['password-form', 'code-form', 'new-password-form', 'enrol-form', 'recovery'];

const $ = (id) => document.getElementById(id);
const alertBox = $('alert');
const statusLine = $('status');

let busy = false;
let recoveryCodes = [];

function showView(id) {
  for (const view of VIEWS) $(view).hidden = view !== id;
  const target = $(id).querySelector('input:not([tabindex="-1"]):not([type="hidden"]), [tabindex="-1"]:is(h1)');
  if (target !== null) target.focus();
}

function showError(message) {
  statusLine.textContent = '';
  alertBox.textContent = message;
}

function clearMessages() {
  alertBox.textContent = '';
  statusLine.textContent = '';
}

/** Runs one request with the form's submit button disabled; shows the error it ends with. */
async function submitting(form, action, { onError } = {}) {
  if (busy) return;
  busy = true;
  const button = form.querySelector('button[type="submit"]');
  if (button !== null) {
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  }
  clearMessages();
  try {
    await action();
  } catch (error) {
    showError(error instanceof Error ? error.message : String(error));
    if (onError) onError(error);
  } finally {
    busy = false;
    if (button !== null) {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }
}

/** Goes on with the step the relay names in `answer.next`. */
function proceed(answer) {
  const next = answer && typeof answer.next === 'string' ? answer.next : '';
  switch (next) {
    case 'code':
      $('code').value = '';
      showView('code-form');
      break;
    case 'enrol':
      showEnrolment(answer);
      break;
    case 'password':
      showNewPassword(typeof answer.login === 'string' ? answer.login : '');
      break;
    case 'done':
      if (Array.isArray(answer.recoveryCodes) && answer.recoveryCodes.length > 0) {
        showRecoveryCodes(answer.recoveryCodes);
      } else {
        openConsole();
      }
      break;
    default:
      throw new Error(
        `The relay asked for a sign-in step this page does not know ("${next}"). Reload the page; if it happens again, tell the relay's administrator that the relay and its pages do not match.`,
      );
  }
}

function openConsole() {
  statusLine.textContent = 'Signed in. Opening the console…';
  location.assign('/');
}

function restart() {
  for (const form of document.querySelectorAll('form')) form.reset();
  clearSecrets();
  clearMessages();
  showView('password-form');
}

function clearSecrets() {
  $('qr').replaceChildren();
  $('totp-secret').textContent = '';
  const link = $('otpauth-link');
  link.hidden = true;
  link.setAttribute('href', '#');
}

// ---- Step 1: login and password ----

$('password-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const login = $('login').value.trim();
  const password = $('password').value;
  if (login === '' || password === '') {
    showError('Type your login and your password.');
    (login === '' ? $('login') : $('password')).focus();
    return;
  }
  submitting(
    event.currentTarget,
    async () => {
      const answer = await postJSON('/api/signin/password', { login, password });
      $('password').value = '';
      proceed(answer);
    },
    {
      onError: () => {
        $('password').value = '';
        $('password').focus();
      },
    },
  );
});

// ---- Step 2: a two-factor or recovery code ----

$('code-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const code = $('code').value.trim();
  if (code === '') {
    showError('Type the code your authenticator app shows, or one of your recovery codes.');
    $('code').focus();
    return;
  }
  submitting(event.currentTarget, async () => proceed(await postJSON('/api/signin/code', { code })), {
    onError: () => {
      $('code').value = '';
      $('code').focus();
    },
  });
});

// ---- Step 3: a new password (after a one-time link) ----

function showNewPassword(login) {
  $('new-password-login').textContent = login;
  $('new-password-username').value = login;
  $('new-password').value = '';
  $('new-password-again').value = '';
  showView('new-password-form');
}

$('new-password-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const password = $('new-password').value;
  const again = $('new-password-again').value;
  if (password === '') {
    showError('Type the password you want, then the same password again.');
    $('new-password').focus();
    return;
  }
  if (password !== again) {
    showError('The two passwords differ. Type the same password in both fields.');
    $('new-password-again').value = '';
    $('new-password-again').focus();
    return;
  }
  submitting(
    event.currentTarget,
    async () => {
      const answer = await postJSON('/api/signin/new-password', { password });
      $('new-password').value = '';
      $('new-password-again').value = '';
      proceed(answer);
    },
    {
      onError: () => {
        $('new-password-again').value = '';
        $('new-password').select();
        $('new-password').focus();
      },
    },
  );
});

// ---- Step 4: two-factor enrolment ----

function showEnrolment(answer) {
  clearSecrets();
  const secret = typeof answer.secret === 'string' ? answer.secret.replace(/\s+/g, '').toUpperCase() : '';
  $('totp-secret').textContent = (secret.match(/.{1,4}/g) ?? []).join(' ');
  if (typeof answer.qrSVG === 'string' && answer.qrSVG !== '') {
    insertSVG($('qr'), answer.qrSVG);
  } else {
    $('qr').hidden = true;
  }
  if (typeof answer.otpauth === 'string' && answer.otpauth.startsWith('otpauth://')) {
    const link = $('otpauth-link');
    link.setAttribute('href', answer.otpauth);
    link.hidden = false;
  }
  $('enrol-code').value = '';
  showView('enrol-form');
}

$('enrol-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const code = $('enrol-code').value.replace(/\s+/g, '');
  if (code === '') {
    showError('Type the 6-digit code your authenticator app shows for this account.');
    $('enrol-code').focus();
    return;
  }
  submitting(event.currentTarget, async () => proceed(await postJSON('/api/signin/code', { code })), {
    onError: () => {
      $('enrol-code').value = '';
      $('enrol-code').focus();
    },
  });
});

/** Puts the relay's QR code into `container`: parsed as SVG (never as HTML), cleaned. */
function insertSVG(container, text) {
  container.hidden = false;
  const parsed = new DOMParser().parseFromString(text, 'image/svg+xml');
  const root = parsed.documentElement;
  if (root === null || root.namespaceURI !== SVG_NS || root.localName !== 'svg' || parsed.getElementsByTagName('parsererror').length > 0) {
    container.hidden = true;
    statusLine.textContent = 'The QR code could not be shown: add the account in your app by hand with the key below.';
    return;
  }
  clean(root);
  if (!root.hasAttribute('viewBox')) {
    const width = parseFloat(root.getAttribute('width') ?? '');
    const height = parseFloat(root.getAttribute('height') ?? '');
    if (width > 0 && height > 0) root.setAttribute('viewBox', `0 0 ${width} ${height}`);
  }
  const svg = document.importNode(root, true);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'QR code to scan with your authenticator app');
  container.replaceChildren(svg);
}

/** Removes what could run script or load anything from an SVG tree. */
function clean(element) {
  const banned = new Set(['script', 'foreignobject', 'style', 'iframe', 'image', 'use', 'a', 'animate', 'set', 'animatemotion', 'animatetransform']);
  for (const child of [...element.children]) {
    if (banned.has(child.localName.toLowerCase())) child.remove();
    else clean(child);
  }
  for (const attribute of [...element.attributes]) {
    const name = attribute.name.toLowerCase();
    if (name.startsWith('on') || name === 'style' || name.endsWith('href')) element.removeAttribute(attribute.name);
  }
}

// ---- Step 5: recovery codes, once ----

function showRecoveryCodes(codes) {
  recoveryCodes = codes.map(String);
  const list = $('recovery-codes');
  list.replaceChildren(
    ...recoveryCodes.map((code) => {
      const item = document.createElement('li');
      item.textContent = code;
      return item;
    }),
  );
  $('card').classList.add('wide');
  showView('recovery');
}

$('copy-codes').addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText(recoveryCodes.join('\n') + '\n');
    statusLine.textContent = 'The recovery codes are on the clipboard. Paste them into your password manager.';
  } catch {
    statusLine.textContent = 'This browser did not let the page copy. Select the codes with the mouse and copy them by hand.';
  }
});

$('codes-stored').addEventListener('click', () => {
  recoveryCodes = [];
  $('recovery-codes').replaceChildren();
  openConsole();
});

for (const button of document.querySelectorAll('[data-action="restart"]')) button.addEventListener('click', restart);

// ---- Start: a one-time link, or the login form ----

async function start() {
  const token = readLinkToken();
  if (token !== null) {
    for (const view of VIEWS) $(view).hidden = true;
    statusLine.textContent = 'Checking your sign-in link…';
    try {
      proceed(await postJSON('/api/signin/link', { token }));
      statusLine.textContent = '';
    } catch (error) {
      showView('password-form');
      showError(error.message);
    }
    return;
  }
  showView('password-form');
  try {
    // Already signed in (another tab): the console is where to go.
    await getJSON('/api/me');
    location.replace('/');
  } catch {
    // Not signed in: this page is the right one.
  }
}

/** The token of `/signin#TOKEN`, taken out of the address bar (and history) at once. */
function readLinkToken() {
  const hash = location.hash;
  if (hash.length <= 1) return null;
  history.replaceState(null, '', location.pathname + location.search);
  let token = hash.slice(1);
  try {
    token = decodeURIComponent(token);
  } catch {
    // Not percent-encoded: use it as it is.
  }
  return token.trim() === '' ? null : token.trim();
}

start();
