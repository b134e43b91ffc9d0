// The engineer's console (/): who is signed in, the company's enrolled hosts (searchable,
// refreshed every 10 s), a new support code for a customer, and recent sessions.
//
// Every name from the relay (hosts, logins, the company) is inserted as text, never as
// HTML. The pure helpers are exported for tests; the page itself starts only where the
// console's markup is.

import { ApiError, getJSON, setCSRFToken, signOut } from './api.js';

const REFRESH_MS = 10_000;

// ---- Pure helpers ----

/** "just now", "3 min ago", "5 h ago", "2 days ago", "on 3 Nov 2026", or "never". */
export function lastSeenWords(iso, now = Date.now()) {
  if (iso === null || iso === undefined || iso === '') return 'never';
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return 'never';
  const seconds = Math.max(0, Math.floor((now - at) / 1000));
  if (seconds < 60) return 'just now';
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  const days = Math.floor(hours / 24);
  if (days < 7) return days === 1 ? '1 day ago' : `${days} days ago`;
  return `on ${new Date(at).toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: 'numeric' })}`;
}

/** "42 s", "5 min 3 s", "2 h 10 min". */
export function durationWords(milliseconds) {
  const seconds = Math.max(0, Math.round(milliseconds / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return seconds % 60 === 0 ? `${minutes} min` : `${minutes} min ${seconds % 60} s`;
  const hours = Math.floor(minutes / 60);
  return minutes % 60 === 0 ? `${hours} h` : `${hours} h ${minutes % 60} min`;
}

/** The hosts whose name or id contains every word of `query` (any case). */
export function filterHosts(hosts, query) {
  const words = String(query).toLowerCase().split(/\s+/).filter((word) => word !== '');
  if (words.length === 0) return hosts;
  return hosts.filter((host) => {
    const text = `${String(host.name ?? '')}\n${String(host.id ?? '')}`.toLowerCase();
    return words.every((word) => text.includes(word));
  });
}

/** The command a customer runs for a support code. */
export function customerCommand(relay, fingerprint) {
  return `relay-agent host --relay ${relay || 'RELAY'} --fingerprint ${fingerprint || 'FP'} --code CODE`;
}

function dateTimeWords(iso) {
  const at = Date.parse(iso ?? '');
  if (Number.isNaN(at)) return '';
  return new Date(at).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function element(tag, { className, text, attributes } = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attributes ?? {})) node.setAttribute(name, value);
  return node;
}

function cell(content, className) {
  const td = element('td', { className });
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  return td;
}

// ---- The page ----

const $ = (id) => document.getElementById(id);

const state = {
  me: null,
  hosts: [],
  hostsLoaded: false,
  sessions: [],
  timer: null,
  refreshing: false,
};

async function start() {
  let me;
  try {
    me = await getJSON('/api/me', { signedIn: true });
  } catch (error) {
    if (error instanceof ApiError && error.redirected) return;
    $('loading').textContent = '';
    $('alert').textContent = `The console could not load: ${error.message} Reload the page to try again.`;
    return;
  }
  state.me = me;
  setCSRFToken(me.csrfToken);
  showIdentity(me);
  $('loading').textContent = '';
  $('content').hidden = false;
  await refresh();
  schedule();
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refresh().then(schedule);
  });
}

function showIdentity(me) {
  $('me-login').textContent = String(me.login ?? '');
  $('me-company').textContent = String(me.company ?? '');
  $('who').hidden = false;
  $('sign-out').hidden = false;
  $('customer-command').textContent = customerCommand(me.relay, me.fingerprint);
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(async () => {
    if (!document.hidden) await refresh();
    schedule();
  }, REFRESH_MS);
}

async function refresh() {
  if (state.refreshing) return;
  state.refreshing = true;
  try {
    await Promise.all([refreshHosts(), refreshSessions()]);
  } finally {
    state.refreshing = false;
  }
}

async function refreshHosts() {
  try {
    const answer = await getJSON('/api/hosts', { signedIn: true });
    state.hosts = Array.isArray(answer?.hosts) ? answer.hosts : [];
    state.hostsLoaded = true;
    $('hosts-alert').textContent = '';
  } catch (error) {
    if (error instanceof ApiError && error.redirected) return;
    $('hosts-alert').textContent = `The host list could not be loaded: ${error.message} The console tries again every 10 seconds.`;
  }
  renderHosts();
}

async function refreshSessions() {
  try {
    const answer = await getJSON('/api/sessions', { signedIn: true });
    state.sessions = Array.isArray(answer?.sessions) ? answer.sessions : [];
    $('sessions-alert').textContent = '';
  } catch (error) {
    if (error instanceof ApiError && error.redirected) return;
    $('sessions-alert').textContent = `Recent sessions could not be loaded: ${error.message} The console tries again every 10 seconds.`;
  }
  renderSessions();
}

// ---- Hosts ----

const STATUS_WORDS = { online: 'online', busy: 'busy', offline: 'offline' };

function renderHosts() {
  const query = $('host-search').value;
  const shown = filterHosts(state.hosts, query);
  const focusKey = document.activeElement?.dataset?.focusKey ?? null;

  const body = $('hosts-body');
  body.replaceChildren(...shown.map(hostRow));

  const total = state.hosts.length;
  const online = state.hosts.filter((host) => host.status === 'online').length;
  const count = $('hosts-count');
  if (!state.hostsLoaded) count.textContent = '';
  else if (shown.length === total) count.textContent = `${total} ${total === 1 ? 'host' : 'hosts'}, ${online} online`;
  else count.textContent = `${shown.length} of ${total} ${total === 1 ? 'host' : 'hosts'} shown`;

  const empty = $('hosts-empty');
  if (state.hostsLoaded && total === 0) {
    empty.textContent = `No hosts are enrolled for ${String(state.me?.company ?? 'your company')} yet. The relay's administrator enrolls PCs for unattended access (relay-server host enroll).`;
    empty.hidden = false;
  } else if (state.hostsLoaded && shown.length === 0) {
    empty.textContent = `No host's name or id contains "${query.trim()}". Clear the search to see all ${total} hosts.`;
    empty.hidden = false;
  } else {
    empty.hidden = true;
    empty.textContent = '';
  }
  $('hosts-table').hidden = shown.length === 0;

  if (focusKey !== null && document.activeElement === document.body) {
    for (const candidate of body.querySelectorAll('[data-focus-key]')) {
      if (candidate.dataset.focusKey === focusKey) {
        candidate.focus();
        break;
      }
    }
  }
}

function hostRow(host) {
  const id = String(host.id ?? '');
  const name = String(host.name ?? '');
  const status = Object.hasOwn(STATUS_WORDS, host.status) ? host.status : 'offline';
  const row = element('tr', { attributes: { 'data-host-id': id } });

  row.append(cell(name, 'name'));
  row.append(cell(id, 'id mono'));
  row.append(cell(element('span', { className: `badge ${status}`, text: STATUS_WORDS[status] }), 'status'));

  const seen = element('time', { text: lastSeenWords(host.lastSeen) });
  if (typeof host.lastSeen === 'string' && !Number.isNaN(Date.parse(host.lastSeen))) {
    seen.setAttribute('datetime', host.lastSeen);
    seen.setAttribute('title', dateTimeWords(host.lastSeen));
  }
  row.append(cell(seen, 'seen'));

  let action;
  if (status === 'online') {
    action = element('a', {
      className: 'button small primary',
      text: 'Connect',
      attributes: {
        href: `/view#host=${encodeURIComponent(id)}`,
        target: '_blank',
        rel: 'noopener',
        'aria-label': `Connect to ${name} (opens a new tab)`,
        'data-focus-key': `connect:${id}`,
      },
    });
  } else if (status === 'busy') {
    action = element('span', { className: 'muted small', text: 'In a session' });
  } else {
    action = element('span', { className: 'muted small', text: 'Not connected' });
  }
  row.append(cell(action, 'action'));
  return row;
}

// ---- Sessions ----

function renderSessions() {
  const sessions = state.sessions;
  const now = Date.now();
  $('sessions-body').replaceChildren(
    ...sessions.map((session) => {
      const row = element('tr');
      row.append(cell(String(session.host ?? ''), 'name'));
      row.append(cell(String(session.mode ?? '')));
      row.append(cell(String(session.client ?? '')));
      const started = element('time', { text: dateTimeWords(session.startedAt) });
      if (typeof session.startedAt === 'string') started.setAttribute('datetime', session.startedAt);
      row.append(cell(started));
      const start = Date.parse(session.startedAt ?? '');
      const end = session.endedAt ? Date.parse(session.endedAt) : now;
      const duration = Number.isNaN(start) || Number.isNaN(end) ? '' : durationWords(end - start);
      row.append(cell(session.endedAt ? duration : `${duration} so far`, 'number'));
      row.append(cell(session.endedAt ? String(session.endReason ?? 'ended') : 'in progress'));
      return row;
    }),
  );
  $('sessions-count').textContent = sessions.length === 0 ? '' : `${sessions.length} latest`;
  $('sessions-empty').hidden = sessions.length !== 0;
  $('sessions-table').hidden = sessions.length === 0;
}

// ---- Controls ----

if (document.getElementById('console') !== null && document.getElementById('hosts-body') !== null) {
  $('host-search').addEventListener('input', renderHosts);
  $('host-search').addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && event.currentTarget.value !== '') {
      event.currentTarget.value = '';
      renderHosts();
    }
  });
  $('sign-out').addEventListener('click', () => signOut($('sign-out'), $('alert')));
  start();
}
