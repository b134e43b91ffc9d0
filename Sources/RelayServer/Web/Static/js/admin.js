// The admin console (/admin): who is signed in, the tabs their role may see
// (GET /api/admin/me → sections), and each tab's module, started the first time its tab
// is shown. The selected tab is the location's hash (#usage, #hosts…), so a reload or a
// shared link opens the same one.
//
// Every name and sentence from the relay is inserted as text, never as HTML. The pure
// helpers live in admin-format.js (re-exported here for tests); the page itself starts
// only where the admin console's markup is.

import { ApiError, getJSON, setCSRFToken, signOut } from './api.js';
import { defaultTimeZone, knownTimeZones } from './admin-format.js';
import { installMenuClosers } from './admin-ui.js';
import { usageSection } from './admin-usage.js';
import { hostsSection } from './admin-hosts.js';
import { engineersSection } from './admin-engineers.js';
import { retentionSection } from './admin-retention.js';
import { auditSection } from './admin-audit.js';
import { tokensSection } from './admin-tokens.js';
import { alertsSection } from './admin-alerts.js';
import { relaySection } from './admin-relay.js';

export * from './admin-format.js';

/** Every tab in the order the page shows them (the API's section names). */
export const SECTIONS = ['usage', 'hosts', 'engineers', 'retention', 'audit', 'tokens', 'alerts', 'relay'];

const MODULES = {
  usage: usageSection,
  hosts: hostsSection,
  engineers: engineersSection,
  retention: retentionSection,
  audit: auditSection,
  tokens: tokensSection,
  alerts: alertsSection,
  relay: relaySection,
};

const ROLE_WORDS = { admin: 'Admin', manager: 'Manager', engineer: 'Engineer', operator: 'Operator' };

/** The sections of `me.sections` this page knows, in the page's order. */
export function allowedSections(sections) {
  const allowed = new Set(Array.isArray(sections) ? sections : []);
  return SECTIONS.filter((section) => allowed.has(section));
}

/** The tab a hash names ("#hosts"), if it is allowed; else the first allowed one. */
export function sectionForHash(hash, allowed) {
  const name = String(hash ?? '').replace(/^#/, '').split(/[/?&]/)[0].toLowerCase();
  if (allowed.includes(name)) return name;
  return allowed[0] ?? null;
}

// ---- The page ----

const $ = (id) => document.getElementById(id);

const state = {
  context: null,
  allowed: [],
  current: null,
  started: new Set(),
};

async function start() {
  let me;
  try {
    me = await getJSON('/api/admin/me', { signedIn: true });
  } catch (error) {
    if (error instanceof ApiError && error.redirected) return;
    $('loading').textContent = '';
    $('alert').textContent = `The admin console could not load: ${error.message} Reload the page to try again.`;
    return;
  }
  setCSRFToken(me?.csrf ?? me?.csrfToken);
  const role = String(me?.role ?? '');
  state.context = {
    me,
    role,
    isAdmin: role === 'admin',
    zone: defaultTimeZone(me?.timeZone),
    locale: undefined,
  };
  showIdentity(me, role);
  fillTimeZones();
  document.body.dataset.role = role;

  state.allowed = allowedSections(me?.sections);
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    if (!state.allowed.includes(tab.dataset.section)) {
      $(tab.getAttribute('aria-controls'))?.remove();
      tab.remove();
    }
  }
  $('loading').textContent = '';
  if (state.allowed.length === 0) {
    $('alert').textContent = 'Your account has no part of the admin console. Ask your company\'s admin for the manager or admin role, or use the engineer console.';
    return;
  }
  $('content').hidden = false;
  select(sectionForHash(location.hash, state.allowed), { focus: false });
}

function showIdentity(me, role) {
  $('me-login').textContent = String(me?.login ?? '');
  $('me-role').textContent = ROLE_WORDS[role] ?? role;
  const company = String(me?.companyName ?? me?.companyID ?? '');
  $('me-company').textContent = company;
  $('who').hidden = false;
  $('sign-out').hidden = false;
  document.title = company ? `Admin console · ${company} · SupportRelay` : 'Admin console · SupportRelay';
}

function fillTimeZones() {
  const list = $('time-zones');
  if (list.childElementCount > 0) return;
  const fragment = document.createDocumentFragment();
  for (const zone of knownTimeZones()) {
    const option = document.createElement('option');
    option.value = zone;
    fragment.append(option);
  }
  list.append(fragment);
}

// ---- Tabs (WAI-ARIA tabs with automatic activation) ----

function tabs() {
  return [...document.querySelectorAll('#tabs [role="tab"]')];
}

function select(section, { focus = false, updateHash = true } = {}) {
  if (section === null) return;
  state.current = section;
  for (const tab of tabs()) {
    const chosen = tab.dataset.section === section;
    tab.setAttribute('aria-selected', chosen ? 'true' : 'false');
    tab.tabIndex = chosen ? 0 : -1;
    const panel = $(tab.getAttribute('aria-controls'));
    if (panel) panel.hidden = !chosen;
    if (chosen && focus) tab.focus();
  }
  if (updateHash && location.hash !== `#${section}`) history.replaceState(null, '', `#${section}`);
  const module = MODULES[section];
  if (!state.started.has(section)) {
    state.started.add(section);
    module.init(state.context);
  } else if (module.show) {
    module.show(state.context);
  }
}

function onTabKey(event) {
  const list = tabs();
  const index = list.indexOf(event.target);
  if (index < 0) return;
  let next = null;
  switch (event.key) {
    case 'ArrowRight':
    case 'ArrowDown':
      next = list[(index + 1) % list.length];
      break;
    case 'ArrowLeft':
    case 'ArrowUp':
      next = list[(index - 1 + list.length) % list.length];
      break;
    case 'Home':
      next = list[0];
      break;
    case 'End':
      next = list[list.length - 1];
      break;
    default:
      return;
  }
  event.preventDefault();
  select(next.dataset.section, { focus: true });
}

if (document.getElementById('admin-main') !== null && document.getElementById('tabs') !== null) {
  $('sign-out').addEventListener('click', () => signOut($('sign-out'), $('alert')));
  $('tabs').addEventListener('keydown', onTabKey);
  $('tabs').addEventListener('click', (event) => {
    const tab = event.target.closest('[role="tab"]');
    if (tab) select(tab.dataset.section);
  });
  window.addEventListener('hashchange', () => {
    if (state.context === null) return;
    const section = sectionForHash(location.hash, state.allowed);
    if (section !== state.current) select(section, { updateHash: false });
  });
  installMenuClosers();
  start();
}
