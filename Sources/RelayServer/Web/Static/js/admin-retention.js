// The Retention tab: how long the relay keeps usage and access records, what the next
// hourly purge would destroy, and the company's legal hold (placed with a reason,
// released after a confirmation).
//
// GET /api/admin/retention; POST /api/admin/hold, /api/admin/hold/release.

import { getJSON, postJSON } from './api.js';
import { formatDateTime, plural } from './admin-format.js';
import { Messages, busy, confirmAction, messageOf, redirected } from './admin-ui.js';

const $ = (id) => document.getElementById(id);

let context = null;
let messages = null;
let loading = null;

export const retentionSection = { init, show: () => load() };

/**
 * "The next hourly purge (at 3 Nov 2026, 14:00) would destroy 12 sessions and 340 access
 * events (5 sessions and 20 access events kept by the hold)."
 */
export function purgeSentence(nextPurge, held, at, locale = undefined) {
  const sessions = Number(nextPurge?.sessions) || 0;
  const events = Number(nextPurge?.accessEvents) || 0;
  const keptSessions = Number(nextPurge?.heldSessions) || 0;
  const keptEvents = Number(nextPurge?.heldAccessEvents) || 0;
  const when = at ? ` (at ${at})` : '';
  let kept = '';
  if (held || keptSessions > 0 || keptEvents > 0) {
    kept = ` (${plural(keptSessions, 'session', 'sessions', locale)} and ${plural(keptEvents, 'access event', 'access events', locale)} kept by the hold)`;
  }
  if (sessions === 0 && events === 0) {
    return `The next hourly purge${when} would destroy nothing${kept}: no record is older than the retention periods.`;
  }
  return (
    `The next hourly purge${when} would destroy ${plural(sessions, 'session', 'sessions', locale)} and ` +
    `${plural(events, 'access event', 'access events', locale)}${kept}.`
  );
}

/** How long records are kept: "12 months" (the API's months; days from an older relay). */
export function keptFor(months, days, locale = undefined) {
  if (months !== undefined && months !== null) return plural(Number(months) || 0, 'month', 'months', locale);
  if (days !== undefined && days !== null) return plural(Number(days) || 0, 'day', 'days', locale);
  return '–';
}

function init(ctx) {
  context = ctx;
  messages = new Messages($('retention-alert'), $('retention-status'));
  $('retention-refresh').addEventListener('click', () => busy($('retention-refresh'), load));
  $('hold-form').addEventListener('submit', placeHold);
  $('hold-release').addEventListener('click', releaseHold);
  load();
}

function load() {
  if (loading !== null) return loading;
  if ($('retention-content').hidden) messages.info('Loading retention…');
  loading = (async () => {
    try {
      const answer = await getJSON('/api/admin/retention', { signedIn: true });
      messages.clear();
      render(answer);
    } catch (error) {
      messages.error('The retention settings could not be loaded', error);
    } finally {
      loading = null;
    }
  })();
  return loading;
}

function render(answer) {
  $('retention-usage').textContent = keptFor(answer?.usageMonths, answer?.usageDays, context.locale);
  $('retention-access').textContent = keptFor(answer?.accessMonths, answer?.accessDays, context.locale);
  const hold = answer?.hold ?? null;
  const at = formatDateTime(answer?.nextPurge?.at, context.zone, context.locale);
  $('retention-purge').textContent = answer?.nextPurge ? purgeSentence(answer.nextPurge, hold !== null, at, context.locale) : '';
  $('retention-content').hidden = false;

  $('hold-panel').hidden = false;
  $('hold-on').hidden = hold === null;
  $('hold-form').hidden = hold !== null;
  if (hold !== null) {
    const since = formatDateTime(hold.heldAt, context.zone, context.locale);
    const by = hold.heldBy ? ` by ${hold.heldBy}` : '';
    $('hold-since').textContent = since ? `Placed ${since}${by}.` : `Placed${by}.`;
    $('hold-reason').textContent = String(hold.reason ?? '');
  }
}

async function placeHold(event) {
  event.preventDefault();
  const alert = $('hold-alert');
  alert.textContent = '';
  const reason = $('hold-reason-input').value.trim();
  if (reason === '') {
    alert.textContent = 'Write why the records must be kept (it goes to the audit log), then place the hold.';
    $('hold-reason-input').focus();
    return;
  }
  try {
    const answer = await busy($('hold-submit'), () => postJSON('/api/admin/hold', { reason }, { signedIn: true }));
    if (answer === undefined) return;
    $('hold-reason-input').value = '';
    await load();
    messages.info('The hold is on: the purge keeps every record of the company until you release it.');
    $('hold-release').focus();
  } catch (error) {
    if (!redirected(error)) alert.textContent = `The hold was not placed: ${messageOf(error)}`;
  }
}

async function releaseHold() {
  const released = await confirmAction({
    title: 'Release the legal hold?',
    text: 'The next hourly purge then destroys every record older than the retention periods, for good. Release the hold only when the matter it was placed for is closed.',
    confirmLabel: 'Release hold',
    returnFocus: $('hold-release'),
    action: () => postJSON('/api/admin/hold/release', {}, { signedIn: true }),
  });
  if (released) {
    await load();
    messages.info('The hold is released.');
    $('hold-reason-input').focus();
  }
}
