// The API tokens tab: the company's tokens for scripts, a new one (its secret shown
// once), and revocation after a confirmation.
//
// GET /api/admin/tokens; POST /api/admin/tokens, /api/admin/tokens/revoke.

import { getJSON, postJSON } from './api.js';
import { formatDateTime, plural } from './admin-format.js';
import { Messages, badge, busy, cell, confirmAction, el, messageOf, redirected, showOnce, timeElement } from './admin-ui.js';

const $ = (id) => document.getElementById(id);

const SCOPE_WORDS = { export: 'export (read only)', admin: 'admin' };

let context = null;
let messages = null;
let tokens = [];
let loaded = false;
let loading = null;

export const tokensSection = { init, show: () => load() };

function init(ctx) {
  context = ctx;
  messages = new Messages($('tokens-alert'), $('tokens-status'));
  for (const span of document.querySelectorAll('#panel-tokens .zone[data-zone="default"]')) span.textContent = `(${context.zone})`;
  $('token-form').addEventListener('submit', create);
  load();
}

function load() {
  if (loading !== null) return loading;
  if (!loaded) messages.info('Loading API tokens…');
  loading = (async () => {
    try {
      const answer = await getJSON('/api/admin/tokens', { signedIn: true });
      tokens = Array.isArray(answer?.tokens) ? answer.tokens : [];
      loaded = true;
      messages.clear();
    } catch (error) {
      messages.error('The API tokens could not be loaded', error);
    } finally {
      loading = null;
    }
    render();
  })();
  return loading;
}

function render() {
  $('tokens-body').replaceChildren(...tokens.map(tokenRow));
  $('tokens-count').textContent = loaded ? plural(tokens.length, 'token', 'tokens') : '';
  $('tokens-empty').hidden = !loaded || tokens.length > 0;
  $('tokens-table').hidden = tokens.length === 0;
}

function when(iso, never) {
  const words = formatDateTime(iso, context.zone, context.locale);
  return words ? timeElement(iso, words) : el('span', { className: 'muted', text: never });
}

function tokenRow(token) {
  const name = String(token.name ?? '');
  const revoke = el('button', { className: 'small danger', text: 'Revoke…', attrs: { type: 'button', 'aria-label': `Revoke ${name}` } });
  revoke.addEventListener('click', () => revokeToken(token, revoke));
  return el('tr', {
    attrs: { 'data-token-id': token.id },
    children: [
      cell(name, 'name'),
      cell(badge(SCOPE_WORDS[token.scope] ?? String(token.scope ?? ''), token.scope === 'admin' ? 'busy' : 'offline')),
      cell(when(token.createdAt, ''), 'when'),
      cell(String(token.createdBy ?? ''), 'mono small'),
      cell(when(token.lastUsedAt, 'never'), 'when'),
      cell(revoke, 'action'),
    ],
  });
}

async function revokeToken(token, button) {
  const done = await confirmAction({
    title: `Revoke ${token.name}?`,
    text: 'Scripts that use this token are refused from now on. This cannot be undone: make a new token if they still need one.',
    confirmLabel: 'Revoke token',
    returnFocus: button,
    action: () => postJSON('/api/admin/tokens/revoke', { id: token.id }, { signedIn: true }),
  });
  if (done) {
    tokens = tokens.filter((item) => item.id !== token.id);
    render();
    messages.info(`${token.name} was revoked.`);
    $('token-name').focus();
  }
}

async function create(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const alert = $('token-alert');
  alert.textContent = '';
  const name = $('token-name').value.trim();
  if (name === '') {
    alert.textContent = 'Name the token after the script that will use it, then make it.';
    $('token-name').focus();
    return;
  }
  const scope = form.querySelector('input[name="scope"]:checked')?.value ?? 'export';
  try {
    const answer = await busy($('token-submit'), () => postJSON('/api/admin/tokens', { name, scope }, { signedIn: true }));
    if (answer === undefined) return;
    form.reset();
    if (answer?.token) {
      tokens = [answer.token, ...tokens.filter((item) => item.id !== answer.token.id)];
      render();
    }
    showOnce($('tokens-once'), {
      heading: `Token “${answer?.token?.name ?? name}” made`,
      intro: 'Give this secret to the script now: it goes in the Authorization header as Bearer SECRET.',
      items: [{ label: 'Secret', value: String(answer?.secret ?? ''), copyWhat: 'Token secret' }],
      note: 'The relay keeps only a digest of it and never shows it again. If it is lost, revoke the token and make a new one.',
    });
  } catch (error) {
    if (!redirected(error)) alert.textContent = `The token was not made: ${messageOf(error)}`;
  }
}
