// The Usage tab: filters (dates, time zone, engineer, host, mode, how it ended), the
// totals, the chart per day, the engineers with the most time, and the sessions page by
// page, with export links for exactly the applied filters.
//
// GET /api/admin/usage/summary?FILTERS and /api/admin/usage?FILTERS&after&limit
// (notes/admin-api.md "Usage filters").

import { getJSON } from './api.js';
import {
  END_REASONS,
  USAGE_EXPORT_FORMATS,
  daysBetween,
  dayWords,
  durationLabel,
  endReasonWords,
  formatBytes,
  formatDateTime,
  formatNumber,
  hoursLabel,
  plural,
  previousMonth,
  rangeWords,
  usageQuery,
  validDay,
  validTimeZone,
} from './admin-format.js';
import { chartSummary, drawDayChart, redrawOnResize, shareBar } from './admin-chart.js';
import { Messages, PagedList, cell, el, exportLinks, timeElement } from './admin-ui.js';

const PAGE_SIZE = 100;
const $ = (id) => document.getElementById(id);

let context = null;
let applied = null;
let summary = null;
let summaryGeneration = 0;
let applyGeneration = 0;
let list = null;
const messages = { form: null, list: null };

export const usageSection = { init };

/** The filters the tab starts with: the previous calendar month in the console's zone. */
export function defaultUsageFilters(now, zone) {
  return { ...previousMonth(now, zone), tz: zone, engineer: '', host: '', mode: '', reason: '' };
}

/** What is wrong with `filters`, as a sentence and the field to fix, or null. */
export function usageFilterProblem(filters) {
  if (!validDay(filters.from)) return { field: 'usage-from', text: 'Choose the first day (From), then Apply.' };
  if (!validDay(filters.to)) return { field: 'usage-to', text: 'Choose the last day (To), then Apply.' };
  if (filters.from > filters.to) return { field: 'usage-from', text: 'The first day is after the last day. Swap them, then Apply.' };
  if (!validTimeZone(filters.tz)) {
    return { field: 'usage-tz', text: `“${filters.tz}” is not a time zone this browser knows. Type a name such as Europe/Berlin or Asia/Seoul, or UTC.` };
  }
  return null;
}

function init(ctx) {
  context = ctx;
  messages.form = new Messages($('usage-alert'), $('usage-status'));
  messages.list = new Messages($('usage-list-alert'), null);

  const reasons = $('usage-reason');
  for (const [value, words] of END_REASONS) reasons.append(el('option', { text: words, attrs: { value } }));

  if (context.role === 'engineer') {
    // An engineer's usage is their own: no engineer filter, no ranking.
    $('usage-engineer-field').hidden = true;
    $('usage-engineers-panel').hidden = true;
  }

  writeForm(defaultUsageFilters(Date.now(), context.zone));
  $('usage-form').addEventListener('submit', (event) => {
    event.preventDefault();
    apply();
  });
  $('usage-reset').addEventListener('click', () => {
    writeForm(defaultUsageFilters(Date.now(), readForm().tz || context.zone));
    apply();
  });

  list = new PagedList({
    load: (after) => getJSON(`/api/admin/usage?${usageQuery(applied, { after, limit: PAGE_SIZE })}`, { signedIn: true }),
    render: renderSessions,
    button: $('usage-more'),
    messages: messages.list,
    what: 'sessions',
  });
  redrawOnResize($('usage-chart'), drawChart);
  apply();
}

function readForm() {
  const value = (id) => $(id).value.trim();
  return {
    from: value('usage-from'),
    to: value('usage-to'),
    tz: value('usage-tz'),
    engineer: context.role === 'engineer' ? '' : value('usage-engineer'),
    host: value('usage-host'),
    mode: value('usage-mode'),
    reason: value('usage-reason'),
  };
}

function writeForm(filters) {
  $('usage-from').value = filters.from;
  $('usage-to').value = filters.to;
  $('usage-tz').value = filters.tz;
  $('usage-engineer').value = filters.engineer;
  $('usage-host').value = filters.host;
  $('usage-mode').value = filters.mode;
  $('usage-reason').value = filters.reason;
}

async function apply() {
  const filters = readForm();
  const problem = usageFilterProblem(filters);
  for (const id of ['usage-from', 'usage-to', 'usage-tz']) $(id).removeAttribute('aria-invalid');
  if (problem !== null) {
    messages.form.clear();
    $('usage-alert').textContent = problem.text;
    $(problem.field).setAttribute('aria-invalid', 'true');
    $(problem.field).focus();
    return;
  }
  applied = filters;
  messages.form.clear();
  messages.list.clear();
  $('usage-range').textContent = `${rangeWords(filters.from, filters.to, context.locale)} · ${plural(daysBetween(filters.from, filters.to), 'day', 'days', context.locale)} · ${filters.tz}`;
  for (const span of document.querySelectorAll('.zone[data-zone="usage"]')) span.textContent = `(${filters.tz})`;
  exportLinks($('usage-exports'), '/api/admin/usage/export', usageQuery(filters), USAGE_EXPORT_FORMATS, 'the sessions');
  messages.form.info('Loading usage…');
  // No button is disabled meanwhile: a newer Apply wins (older answers are dropped).
  applyGeneration += 1;
  const generation = applyGeneration;
  $('usage-apply').setAttribute('aria-busy', 'true');
  await Promise.all([loadSummary(), list.reset()]);
  if (generation !== applyGeneration) return;
  $('usage-apply').removeAttribute('aria-busy');
  if ($('usage-alert').textContent === '') messages.form.info('');
  updateCount();
}

// ---- Summary, chart, engineers ----

async function loadSummary() {
  summaryGeneration += 1;
  const generation = summaryGeneration;
  summary = null;
  try {
    const answer = await getJSON(`/api/admin/usage/summary?${usageQuery(applied)}`, { signedIn: true });
    if (generation !== summaryGeneration) return;
    summary = {
      sessions: Number(answer?.sessions) || 0,
      seconds: Number(answer?.seconds) || 0,
      bytes: Number(answer?.bytes) || 0,
      byDay: (Array.isArray(answer?.byDay) ? answer.byDay : []).map((day) => ({
        day: String(day.day ?? ''),
        sessions: Number(day.sessions) || 0,
        seconds: Number(day.seconds) || 0,
      })),
      byEngineer: Array.isArray(answer?.byEngineer) ? answer.byEngineer : [],
    };
    renderSummary();
  } catch (error) {
    if (generation !== summaryGeneration) return;
    renderSummary();
    messages.form.error('The totals could not be loaded', error);
  }
}

function renderSummary() {
  const locale = context.locale;
  $('usage-total-sessions').textContent = summary ? formatNumber(summary.sessions, locale) : '–';
  $('usage-total-hours').textContent = summary ? hoursLabel(summary.seconds, locale) : '–';
  $('usage-total-duration').textContent = summary && summary.seconds >= 60 ? durationLabel(summary.seconds) : '';
  $('usage-total-bytes').textContent = summary ? formatBytes(summary.bytes, locale) : '–';

  const days = summary?.byDay ?? [];
  drawChart();
  $('usage-chart-summary').textContent = summary ? chartSummary(days, locale) : '';
  $('usage-days-body').replaceChildren(
    ...days.map((day) =>
      el('tr', {
        children: [
          el('th', { text: dayWords(day.day, locale), attrs: { scope: 'row' } }),
          cell(formatNumber(day.sessions, locale), 'number'),
          cell(durationLabel(day.seconds), 'number'),
        ],
      }),
    ),
  );

  const engineers = summary?.byEngineer ?? [];
  const most = Math.max(1, ...engineers.map((row) => Number(row.seconds) || 0));
  $('usage-engineers-body').replaceChildren(...engineers.map((row) => engineerRow(row, most)));
  $('usage-engineers-empty').hidden = summary === null || engineers.length > 0;
  $('usage-engineers-table').hidden = engineers.length === 0;
}

function drawChart() {
  const container = $('usage-chart');
  if (summary === null) {
    container.replaceChildren();
    return;
  }
  drawDayChart(container, summary.byDay, { labelledBy: 'usage-chart-summary', locale: context.locale });
}

function engineerRow(row, most) {
  const login = String(row.engineer ?? '');
  const show = el('button', {
    className: 'link',
    text: login,
    attrs: { type: 'button', title: `Show only ${login}'s sessions` },
  });
  show.addEventListener('click', () => {
    $('usage-engineer').value = login;
    apply();
  });
  const seconds = Number(row.seconds) || 0;
  return el('tr', {
    children: [
      cell(show, 'name'),
      cell(formatNumber(row.sessions, context.locale), 'number'),
      cell(durationLabel(seconds), 'number'),
      cell(shareBar(seconds / most), 'share-col'),
    ],
  });
}

// ---- Sessions ----

function renderSessions(rows, { append, failed = false }) {
  const body = $('usage-body');
  const made = rows.map(sessionRow);
  if (append) body.append(...made);
  else body.replaceChildren(...made);
  const shown = list.rows.length;
  // After an error the alert says what happened; "no sessions match" would be untrue.
  $('usage-empty').hidden = shown > 0 || failed;
  $('usage-table').hidden = shown === 0;
  updateCount();
}

function updateCount() {
  const shown = list?.rows.length ?? 0;
  const count = $('usage-count');
  if (shown === 0) count.textContent = '';
  else if (summary !== null && summary.sessions >= shown) count.textContent = `${formatNumber(shown, context.locale)} of ${plural(summary.sessions, 'session', 'sessions', context.locale)} shown`;
  else count.textContent = `${plural(shown, 'session', 'sessions', context.locale)} shown`;
}

const MODE_WORDS = { attended: 'Attended', unattended: 'Unattended' };

function sessionRow(session) {
  const zone = applied.tz;
  const locale = context.locale;
  const row = el('tr', { attrs: { 'data-session-id': session.id } });
  row.append(cell(timeElement(session.startedAt, formatDateTime(session.startedAt, zone, locale)), 'when'));
  row.append(cell(String(session.engineer ?? ''), 'name'));

  const host = el('span', { className: 'stacked' });
  host.append(el('span', { text: String(session.hostName ?? '') || '—' }));
  if (session.hostID) host.append(el('span', { className: 'mono small muted nowrap', text: String(session.hostID) }));
  row.append(cell(host));

  row.append(cell(MODE_WORDS[session.mode] ?? String(session.mode ?? '')));

  const open = session.endedAt === null || session.endedAt === undefined;
  if (open) {
    const started = Date.parse(session.startedAt ?? '');
    const sofar = Number.isNaN(started) ? '' : `${durationLabel((Date.now() - started) / 1000)} so far`;
    row.append(cell(sofar, 'number'));
  } else {
    row.append(cell(session.durationSeconds === null || session.durationSeconds === undefined ? '' : durationLabel(session.durationSeconds), 'number'));
  }

  const toViewer = Number(session.bytesToViewer) || 0;
  const toHost = Number(session.bytesToHost) || 0;
  row.append(
    cell(formatBytes(toViewer + toHost, locale), 'number', {
      title: `${formatBytes(toViewer, locale)} to the viewer, ${formatBytes(toHost, locale)} to the host`,
    }),
  );

  if (open) row.append(cell(el('span', { className: 'badge online', text: 'running' })));
  else {
    const at = formatDateTime(session.endedAt, zone, locale);
    row.append(cell(endReasonWords(session.endReason), 'reason', at ? { title: `Ended ${at}` } : undefined));
  }
  row.append(cell(String(session.viewerClient ?? '')));

  const addresses = el('span', { className: 'stacked mono small nowrap' });
  if (session.viewerAddress) addresses.append(el('span', { text: `viewer ${session.viewerAddress}` }));
  if (session.hostAddress) addresses.append(el('span', { text: `host ${session.hostAddress}` }));
  row.append(cell(addresses));
  return row;
}
