// The Engineers tab: the company's people (a manager: their own engineers, read only);
// for an admin, invitations (a one-time sign-in link shown once) and per person a new
// link, role, manager, a manager's host groups, disable or enable, two-factor reset and
// removal.
//
// GET /api/admin/engineers; POST /api/admin/engineers, …/link, …/role, …/manager,
// …/groups, …/disable, …/enable, …/reset-totp, …/remove.

import { getJSON, postJSON } from './api.js';
import { formatDateTime, matchesQuery, parseGroups, plural } from './admin-format.js';
import { Messages, badge, busy, cell, confirmAction, el, messageOf, openDialog, redirected, replaceKeepingFocus, rowMenu, showOnce, timeElement } from './admin-ui.js';

const $ = (id) => document.getElementById(id);

const ROLES = [
  ['engineer', 'Engineer'],
  ['manager', 'Manager'],
  ['admin', 'Admin'],
];
const ROLE_WORDS = { ...Object.fromEntries(ROLES), operator: 'Operator' };

let context = null;
let messages = null;
let engineers = [];
let loaded = false;
let loading = null;

export const engineersSection = { init, show: () => load() };

/** "active", "invited" (no password set yet) or "disabled", with the badge's colour. */
export function engineerStatus(engineer) {
  if (engineer?.disabled === true) return { words: 'disabled', kind: 'offline' };
  if (engineer?.password === false && engineer?.twoFactor !== true) return { words: 'invited', kind: 'busy' };
  return { words: 'active', kind: 'online' };
}

/** The people who can be someone's manager: managers, by login. */
export function managerChoices(list, exceptID = null) {
  return list
    .filter((person) => person.role === 'manager' && person.id !== exceptID)
    .sort((a, b) => String(a.login).localeCompare(String(b.login)));
}

function init(ctx) {
  context = ctx;
  messages = new Messages($('engineers-alert'), $('engineers-status'));
  for (const span of document.querySelectorAll('#panel-engineers .zone[data-zone="default"]')) span.textContent = `(${context.zone})`;
  if (!context.isAdmin) {
    $('engineers-readonly').hidden = false;
    for (const node of document.querySelectorAll('#panel-engineers .admin-only')) node.remove();
  } else {
    $('invite-form').addEventListener('submit', invite);
  }
  $('engineers-search').addEventListener('input', render);
  $('engineers-search').addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && event.currentTarget.value !== '') {
      event.currentTarget.value = '';
      render();
    }
  });
  $('engineers-refresh').addEventListener('click', () => busy($('engineers-refresh'), load));
  load();
}

function load() {
  if (loading !== null) return loading;
  if (!loaded) messages.info('Loading engineers…');
  loading = (async () => {
    try {
      const answer = await getJSON('/api/admin/engineers', { signedIn: true });
      engineers = Array.isArray(answer?.engineers) ? answer.engineers : [];
      loaded = true;
      messages.clear();
    } catch (error) {
      messages.error('The engineers could not be loaded', error);
    } finally {
      loading = null;
    }
    render();
  })();
  return loading;
}

function render() {
  const query = $('engineers-search').value;
  const shown = engineers.filter((person) => matchesQuery(person, query, ['login', 'role', 'managerLogin']));
  replaceKeepingFocus($('engineers-body'), shown.map(engineerRow));
  const count = $('engineers-count');
  if (!loaded) count.textContent = '';
  else if (shown.length === engineers.length) count.textContent = plural(engineers.length, 'person', 'people');
  else count.textContent = `${shown.length} of ${plural(engineers.length, 'person', 'people')} shown`;
  const empty = $('engineers-empty');
  empty.hidden = !loaded || shown.length > 0;
  if (loaded && engineers.length === 0) {
    empty.textContent = context.isAdmin ? 'Nobody yet. Invite someone below.' : 'No engineers are assigned to you yet. Ask your company\'s admin to assign them.';
  } else if (loaded && shown.length === 0) {
    empty.textContent = 'Nobody matches the search. Clear it to see everyone.';
  }
  $('engineers-table').hidden = shown.length === 0;
  if (context.isAdmin) fillManagerSelect();
}

function fillManagerSelect() {
  const select = $('invite-manager');
  const chosen = select.value;
  const options = [el('option', { text: 'No manager', attrs: { value: '' } })];
  for (const person of managerChoices(engineers)) options.push(el('option', { text: person.login, attrs: { value: person.id } }));
  select.replaceChildren(...options);
  select.value = [...select.options].some((option) => option.value === chosen) ? chosen : '';
}

function engineerRow(person) {
  const login = String(person.login ?? '');
  const self = login === String(context.me?.login ?? '');
  const row = el('tr', { attrs: { 'data-engineer-id': person.id } });
  const name = el('span', { text: login });
  row.append(cell(self ? el('span', { children: [name, ' ', el('span', { className: 'tag', text: 'you' })] }) : name, 'name'));
  row.append(cell(ROLE_WORDS[person.role] ?? String(person.role ?? '')));
  row.append(cell(person.managerLogin ? String(person.managerLogin) : el('span', { className: 'muted', text: '—' })));
  const groups = Array.isArray(person.groups) ? person.groups.map(String) : [];
  row.append(cell(person.role === 'manager' ? groups.join(', ') || el('span', { className: 'muted', text: 'none yet' }) : el('span', { className: 'muted', text: '—' })));
  const status = engineerStatus(person);
  row.append(cell(badge(status.words, status.kind), 'status'));
  row.append(cell(person.twoFactor === true ? 'On' : el('span', { className: 'muted', text: 'Not set up' })));
  const created = formatDateTime(person.createdAt, context.zone, context.locale);
  row.append(cell(timeElement(person.createdAt, created), 'when'));
  if (context.isAdmin) row.append(cell(rowMenu(`Actions for ${login}`, actionsFor(person, self), `menu:${person.id}`), 'action'));
  return row;
}

function actionsFor(person, self) {
  const items = [
    { label: 'New sign-in link…', run: (back) => newLink(person, back) },
    { label: 'Change role…', run: (back) => changeRole(person, back) },
    { label: 'Assign manager…', run: (back) => assignManager(person, back) },
  ];
  if (person.role === 'manager') items.push({ label: 'Host groups…', run: (back) => setGroups(person, back) });
  if (person.disabled === true) items.push({ label: 'Enable', run: (back) => enable(person, back) });
  else if (!self) items.push({ label: 'Disable…', danger: true, run: (back) => disable(person, back) });
  if (person.twoFactor === true) items.push({ label: 'Reset two-factor…', danger: true, run: (back) => resetTwoFactor(person, back) });
  if (!self) items.push({ label: 'Remove…', danger: true, run: (back) => remove(person, back) });
  return items;
}

function replaceEngineer(updated) {
  if (!updated || typeof updated.id !== 'string') return;
  const index = engineers.findIndex((person) => person.id === updated.id);
  if (index >= 0) engineers[index] = updated;
  else engineers.push(updated);
  render();
}

function linkPanel(login, answer) {
  const expires = formatDateTime(answer?.expiresAt, context.zone, context.locale);
  showOnce($('engineers-once'), {
    heading: `Sign-in link for ${login}`,
    intro: `Send this link to ${login} by a channel you trust. It works once${expires ? `, until ${expires}` : ''}: they choose a password and set up two-factor sign-in with it.`,
    items: [{ label: 'Sign-in link', value: String(answer?.signInLink ?? ''), copyWhat: 'Sign-in link' }],
    note: 'The relay shows this link only now. If it is lost, make a new one.',
  });
}

async function newLink(person, back) {
  const answer = await openDialog({
    title: `New sign-in link for ${person.login}`,
    text: 'The new link lets them set a new password and two-factor sign-in. An earlier link of theirs stops working.',
    submitLabel: 'Make link',
    returnFocus: back,
    onSubmit: () => postJSON('/api/admin/engineers/link', { id: person.id }, { signedIn: true }),
  });
  if (answer && answer !== true) linkPanel(person.login, answer);
}

async function changeRole(person, back) {
  const done = await openDialog({
    title: `Role of ${person.login}`,
    fields: [{ name: 'role', label: 'Role', type: 'select', value: person.role, options: ROLES, hint: 'Engineers see their own sessions; managers their engineers and the hosts of their groups; admins everything.' }],
    submitLabel: 'Save role',
    returnFocus: back,
    onSubmit: async ({ role }) => (await postJSON('/api/admin/engineers/role', { id: person.id, role }, { signedIn: true }))?.engineer,
  });
  if (done) {
    replaceEngineer(done);
    messages.info(`${person.login} is now ${(ROLE_WORDS[done.role] ?? done.role ?? '').toLowerCase()}.`);
  }
}

async function assignManager(person, back) {
  const choices = managerChoices(engineers, person.id).map((manager) => [manager.id, manager.login]);
  const done = await openDialog({
    title: `Manager of ${person.login}`,
    text: choices.length === 0 ? 'Nobody has the manager role yet: give someone that role first.' : 'The manager sees this person\'s sessions.',
    fields: [{ name: 'managerID', label: 'Manager', type: 'select', value: person.managerID ?? '', options: [['', 'No manager'], ...choices] }],
    submitLabel: 'Save manager',
    returnFocus: back,
    onSubmit: async ({ managerID }) =>
      (await postJSON('/api/admin/engineers/manager', { id: person.id, managerID: managerID === '' ? null : managerID }, { signedIn: true }))?.engineer,
  });
  if (done) {
    replaceEngineer(done);
    messages.info(done.managerLogin ? `${person.login}'s manager is now ${done.managerLogin}.` : `${person.login} has no manager now.`);
  }
}

async function knownGroups() {
  try {
    const answer = await getJSON('/api/admin/hosts', { signedIn: true });
    return Array.isArray(answer?.groups) ? answer.groups.map(String) : [];
  } catch {
    // The dialog says so and still takes typed groups.
    return null;
  }
}

async function setGroups(person, back) {
  const current = Array.isArray(person.groups) ? person.groups.map(String) : [];
  const known = await knownGroups();
  const all = [...new Set([...(known ?? []), ...current])].sort((a, b) => a.localeCompare(b));
  const done = await openDialog({
    title: `Host groups of ${person.login}`,
    text: 'A manager sees the hosts of these groups and the sessions with them.',
    fields: [
      { name: 'groups', label: 'Groups of enrolled hosts', type: 'checkboxes', value: current, options: all.map((group) => [group, group]), emptyText: known === null ? 'The host groups could not be read; type them below.' : 'No host has a group yet; type groups below.' },
      { name: 'other', label: 'Other groups', hint: 'Separate several with commas, as in: Sales, Front desk.' },
    ],
    submitLabel: 'Save groups',
    returnFocus: back,
    onSubmit: async ({ groups, other }) => {
      const chosen = parseGroups([...groups, ...parseGroups(other)].join(','));
      return (await postJSON('/api/admin/engineers/groups', { id: person.id, groups: chosen }, { signedIn: true }))?.engineer;
    },
  });
  if (done) {
    replaceEngineer(done);
    const groups = Array.isArray(done.groups) ? done.groups : [];
    messages.info(groups.length > 0 ? `${person.login} manages ${groups.join(', ')}.` : `${person.login} has no host groups now.`);
  }
}

async function disable(person, back) {
  let updated = null;
  const done = await confirmAction({
    title: `Disable ${person.login}?`,
    text: `${person.login} can no longer sign in or connect, and their live sessions end now. You can enable them again later.`,
    confirmLabel: 'Disable',
    returnFocus: back,
    action: async () => {
      updated = (await postJSON('/api/admin/engineers/disable', { id: person.id }, { signedIn: true }))?.engineer;
    },
  });
  if (done) {
    replaceEngineer(updated);
    messages.info(`${person.login} is disabled.`);
  }
}

async function enable(person, back) {
  messages.clear();
  // The menu closed under the focus: put it back on the menu's button first, so the
  // redrawn table keeps it there.
  if (back?.isConnected) back.focus();
  try {
    const answer = await postJSON('/api/admin/engineers/enable', { id: person.id }, { signedIn: true });
    replaceEngineer(answer?.engineer);
    messages.info(`${person.login} can sign in again.`);
  } catch (error) {
    messages.error(`${person.login} could not be enabled`, error);
  }
}

async function resetTwoFactor(person, back) {
  let updated = null;
  const done = await confirmAction({
    title: `Reset two-factor sign-in of ${person.login}?`,
    text: `Their authenticator app and recovery codes stop working and their web sessions end. Make them a new sign-in link afterwards, so they can set up two-factor sign-in again.`,
    confirmLabel: 'Reset two-factor',
    returnFocus: back,
    action: async () => {
      updated = (await postJSON('/api/admin/engineers/reset-totp', { id: person.id }, { signedIn: true }))?.engineer;
    },
  });
  if (done) {
    replaceEngineer(updated);
    messages.info(`Two-factor sign-in of ${person.login} was reset. Make them a new sign-in link.`);
  }
}

async function remove(person, back) {
  const done = await confirmAction({
    title: `Remove ${person.login}?`,
    text: `${person.login} can no longer sign in or connect, and their live sessions end now. Their past sessions stay in the usage history.`,
    confirmLabel: 'Remove',
    returnFocus: back,
    action: () => postJSON('/api/admin/engineers/remove', { id: person.id }, { signedIn: true }),
  });
  if (done) {
    engineers = engineers.filter((item) => item.id !== person.id);
    render();
    messages.info(`${person.login} was removed.`);
    $('engineers-search').focus();
  }
}

async function invite(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const alert = $('invite-alert');
  alert.textContent = '';
  const login = $('invite-login').value.trim();
  if (login === '') {
    alert.textContent = 'Type the login the person will sign in with, such as kim.minji.';
    $('invite-login').focus();
    return;
  }
  const body = { login, role: $('invite-role').value };
  if ($('invite-manager').value !== '') body.managerID = $('invite-manager').value;
  try {
    const answer = await busy($('invite-submit'), () => postJSON('/api/admin/engineers', body, { signedIn: true }));
    if (answer === undefined) return;
    form.reset();
    replaceEngineer(answer?.engineer);
    linkPanel(answer?.engineer?.login ?? login, answer);
  } catch (error) {
    if (!redirected(error)) alert.textContent = `${login} was not invited: ${messageOf(error)}`;
  }
}
