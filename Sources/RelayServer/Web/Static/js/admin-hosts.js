// The Hosts tab: the company's enrolled hosts (a manager: those of their groups, read
// only), filtered by group and searched; for an admin, enrolment (its commands shown
// once) and per host rename, group, key rotation and removal.
//
// GET /api/admin/hosts; POST /api/admin/hosts, …/rename, …/group, …/key, …/remove.

import { getJSON, postJSON } from './api.js';
import { formatDateTime, matchesQuery, plural } from './admin-format.js';
import { Messages, badge, busy, cell, confirmAction, el, messageOf, openDialog, redirected, replaceKeepingFocus, rowMenu, showOnce, timeElement } from './admin-ui.js';

const $ = (id) => document.getElementById(id);

const NO_GROUP = '';
const ALL_GROUPS = '*';

let context = null;
let messages = null;
let hosts = [];
let groups = [];
let loaded = false;
let loading = null;

export const hostsSection = { init, show: () => load() };

/** The hosts of `group` ('*': all, '': none) that match the search words. */
export function visibleHosts(list, group, query) {
  return list.filter(
    (host) =>
      (group === ALL_GROUPS || String(host.group ?? '') === group) && matchesQuery(host, query, ['name', 'id', 'group', 'fingerprint']),
  );
}

/** The groups of the answer and of the hosts, sorted, without repeats. */
export function groupNames(answerGroups, list) {
  const names = new Set((Array.isArray(answerGroups) ? answerGroups : []).map(String));
  for (const host of list) if (host.group) names.add(String(host.group));
  return [...names].filter((name) => name !== '').sort((a, b) => a.localeCompare(b));
}

function init(ctx) {
  context = ctx;
  messages = new Messages($('hosts-alert'), $('hosts-status'));
  for (const span of document.querySelectorAll('#panel-hosts .zone[data-zone="default"]')) span.textContent = `(${context.zone})`;
  if (!context.isAdmin) {
    $('hosts-readonly').hidden = false;
    for (const node of document.querySelectorAll('#panel-hosts .admin-only')) node.remove();
  } else {
    $('host-enrol-form').addEventListener('submit', enrol);
  }
  $('hosts-group').addEventListener('change', render);
  $('hosts-search').addEventListener('input', render);
  $('hosts-search').addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && event.currentTarget.value !== '') {
      event.currentTarget.value = '';
      render();
    }
  });
  $('hosts-refresh').addEventListener('click', () => busy($('hosts-refresh'), load));
  load();
}

/** Reads the hosts again (one request at a time). */
function load() {
  if (loading !== null) return loading;
  if (!loaded) messages.info('Loading hosts…');
  loading = (async () => {
    try {
      const answer = await getJSON('/api/admin/hosts', { signedIn: true });
      hosts = Array.isArray(answer?.hosts) ? answer.hosts : [];
      groups = groupNames(answer?.groups, hosts);
      loaded = true;
      messages.clear();
    } catch (error) {
      messages.error('The hosts could not be loaded', error);
    } finally {
      loading = null;
    }
    fillGroups();
    render();
  })();
  return loading;
}

function fillGroups() {
  const select = $('hosts-group');
  const chosen = select.value;
  const options = [el('option', { text: 'All groups', attrs: { value: ALL_GROUPS } })];
  for (const group of groups) options.push(el('option', { text: group, attrs: { value: group } }));
  if (hosts.some((host) => !host.group)) options.push(el('option', { text: 'No group', attrs: { value: NO_GROUP } }));
  select.replaceChildren(...options);
  select.value = [...select.options].some((option) => option.value === chosen) ? chosen : ALL_GROUPS;
  $('host-groups').replaceChildren(...groups.map((group) => el('option', { attrs: { value: group } })));
}

function render() {
  const group = $('hosts-group').value;
  const query = $('hosts-search').value;
  const shown = visibleHosts(hosts, group, query);
  replaceKeepingFocus($('hosts-body'), shown.map(hostRow));
  const online = hosts.filter((host) => host.online === true).length;
  const count = $('hosts-count');
  if (!loaded) count.textContent = '';
  else if (shown.length === hosts.length) count.textContent = `${plural(hosts.length, 'host', 'hosts')}, ${online} online`;
  else count.textContent = `${shown.length} of ${plural(hosts.length, 'host', 'hosts')} shown`;

  const empty = $('hosts-empty');
  empty.hidden = !loaded || shown.length > 0;
  if (loaded && hosts.length === 0) {
    empty.textContent = context.isAdmin
      ? 'No hosts are enrolled yet. Enrol a PC below to reach it without a support code.'
      : 'No hosts in your groups yet. Ask your company\'s admin to put hosts in your groups.';
  } else if (loaded && shown.length === 0) {
    empty.textContent = 'No host matches this group and search. Choose “All groups” or clear the search.';
  }
  $('hosts-table').hidden = shown.length === 0;
}

function hostRow(host) {
  const id = String(host.id ?? '');
  const name = String(host.name ?? '');
  const row = el('tr', { attrs: { 'data-host-id': id } });
  row.append(cell(name, 'name'));
  row.append(cell(host.group ? String(host.group) : el('span', { className: 'muted', text: 'none' })));
  row.append(cell(id, 'id mono'));
  row.append(cell(host.online === true ? badge('online', 'online') : badge('offline', 'offline'), 'status'));
  const seen = formatDateTime(host.lastSeenAt, context.zone, context.locale);
  row.append(cell(seen ? timeElement(host.lastSeenAt, seen) : el('span', { className: 'muted', text: 'never' }), 'when'));

  const login = el('span', { className: 'stacked' });
  login.append(el('span', { text: LOGIN_WORDS[host.loginMethod] ?? String(host.loginMethod ?? '') }));
  if (host.fingerprint) login.append(el('span', { className: 'mono small muted fingerprint', text: String(host.fingerprint) }));
  row.append(cell(login));

  if (context.isAdmin) {
    row.append(
      cell(
        rowMenu(`Actions for ${name}`, [
          { label: 'Rename…', run: (back) => rename(host, back) },
          { label: 'Change group…', run: (back) => changeGroup(host, back) },
          { label: 'Rotate key…', run: (back) => rotateKey(host, back) },
          { label: 'Remove…', danger: true, run: (back) => remove(host, back) },
        ], `menu:${id}`),
        'action',
      ),
    );
  }
  return row;
}

const LOGIN_WORDS = { key: 'Key', token: 'Secret (old)', none: 'No key yet' };

function replaceHost(updated) {
  if (!updated || typeof updated.id !== 'string') return;
  const index = hosts.findIndex((host) => host.id === updated.id);
  if (index >= 0) hosts[index] = updated;
  else hosts.push(updated);
  groups = groupNames(groups, hosts);
  fillGroups();
  render();
}

async function rename(host, back) {
  const done = await openDialog({
    title: `Rename ${host.name}`,
    fields: [{ name: 'name', label: 'New name', value: host.name, required: true }],
    submitLabel: 'Rename',
    returnFocus: back,
    onSubmit: async ({ name }) => (await postJSON('/api/admin/hosts/rename', { id: host.id, name: name.trim() }, { signedIn: true }))?.host,
  });
  if (done) {
    replaceHost(done);
    messages.info(`Renamed to ${done.name ?? 'the new name'}.`);
  }
}

async function changeGroup(host, back) {
  const done = await openDialog({
    title: `Group of ${host.name}`,
    text: 'Managers of this group will see the host. Leave it empty for no group.',
    fields: [{ name: 'group', label: 'Group', value: host.group ?? '', list: 'host-groups' }],
    submitLabel: 'Save group',
    returnFocus: back,
    onSubmit: async ({ group }) => (await postJSON('/api/admin/hosts/group', { id: host.id, group: group.trim() }, { signedIn: true }))?.host,
  });
  if (done) {
    replaceHost(done);
    messages.info(done.group ? `${done.name} is now in ${done.group}.` : `${done.name} is in no group now.`);
  }
}

async function rotateKey(host, back) {
  const done = await openDialog({
    title: `Rotate the key of ${host.name}`,
    text: 'The old key stops working at once and the host\'s live sessions end. The host needs the new key\'s private half to connect again.',
    fields: [
      {
        name: 'publicKey',
        label: 'New public key',
        type: 'textarea',
        required: true,
        className: 'mono',
        hint: 'Paste what relay-agent keygen printed on the host.',
      },
    ],
    submitLabel: 'Set key',
    danger: true,
    returnFocus: back,
    onSubmit: async ({ publicKey }) => (await postJSON('/api/admin/hosts/key', { id: host.id, publicKey: publicKey.trim() }, { signedIn: true }))?.host,
  });
  if (done) {
    replaceHost(done);
    messages.info(`${done.name ?? host.name} has a new key${done.fingerprint ? ` (${done.fingerprint})` : ''}.`);
  }
}

async function remove(host, back) {
  const removed = await confirmAction({
    title: `Remove ${host.name}?`,
    text: `The host ${host.name} (${host.id}) can no longer connect, and its live sessions end now. Its past sessions stay in the usage history.`,
    confirmLabel: 'Remove host',
    returnFocus: back,
    action: () => postJSON('/api/admin/hosts/remove', { id: host.id }, { signedIn: true }),
  });
  if (removed) {
    hosts = hosts.filter((item) => item.id !== host.id);
    fillGroups();
    render();
    messages.info(`${host.name} was removed.`);
    $('hosts-search').focus();
  }
}

async function enrol(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const alert = $('host-enrol-alert');
  alert.textContent = '';
  const name = $('host-enrol-name').value.trim();
  if (name === '') {
    alert.textContent = 'Type a name for the host, such as the PC\'s name or where it stands.';
    $('host-enrol-name').focus();
    return;
  }
  const body = { name, group: $('host-enrol-group').value.trim() };
  const key = $('host-enrol-key').value.trim();
  if (key !== '') body.publicKey = key;
  try {
    const answer = await busy($('host-enrol-submit'), () => postJSON('/api/admin/hosts', body, { signedIn: true }));
    if (answer === undefined) return;
    form.reset();
    if (answer?.host) replaceHost(answer.host);
    const commands = Array.isArray(answer?.commands) ? answer.commands.map(String) : [];
    const items = [];
    if (commands.length > 0) items.push({ label: 'Run on the host', value: commands.join('\n'), multiline: true, copyWhat: 'Commands' });
    showOnce($('hosts-once'), {
      heading: `${answer?.host?.name ?? name} is enrolled`,
      intro: answer?.text ? String(answer.text) : 'Run these commands on the host.',
      items,
      note: 'This is shown only now. Copy what you need before you hide it.',
    });
  } catch (error) {
    if (!redirected(error)) alert.textContent = `The host was not enrolled: ${messageOf(error)}`;
  }
}
