// The Alerts tab: the company's security alerts page by page, and the webhook they are
// posted to (saved with a new signing secret shown once, removed, tested).
//
// GET /api/admin/alerts?after&limit; GET/POST /api/admin/webhook; POST /api/admin/webhook/test.

import { getJSON, postJSON } from './api.js';
import { alertKindWords, formatDateTime, queryString } from './admin-format.js';
import { Messages, PagedList, busy, cell, confirmAction, el, redirected, showOnce, timeElement } from './admin-ui.js';

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 25;

let context = null;
let messages = null;
let webhookMessages = null;
let list = null;
let webhook = { url: null, lastDelivery: null };

export const alertsSection = { init };

/** What the last delivery did: "Last delivery 3 Nov 2026, 09:12: HTTP 200." */
export function deliveryWords(delivery, at) {
  if (!delivery) return 'Nothing was delivered yet.';
  const when = at ? ` ${at}` : '';
  if (delivery.error) return `Last delivery${when} failed: ${delivery.error}`;
  if (delivery.status === null || delivery.status === undefined) return `Last delivery${when}: no answer.`;
  return `Last delivery${when}: HTTP ${delivery.status}.`;
}

/** Whether `text` is an https:// address a webhook may have. */
export function webhookURLProblem(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    return 'Type the whole address, starting with https://.';
  }
  if (url.protocol !== 'https:') return 'The address must start with https:// (deliveries carry your company\'s alerts).';
  return null;
}

function init(ctx) {
  context = ctx;
  messages = new Messages($('alerts-alert'), $('alerts-status'));
  webhookMessages = new Messages($('webhook-alert'), $('webhook-status'));
  for (const span of document.querySelectorAll('#panel-alerts .zone[data-zone="default"]')) span.textContent = `(${context.zone})`;
  list = new PagedList({
    load: (after) => getJSON(`/api/admin/alerts?${queryString([['after', after], ['limit', PAGE_SIZE]])}`, { signedIn: true }),
    render,
    button: $('alerts-more'),
    messages,
    what: 'alerts',
  });
  $('alerts-refresh').addEventListener('click', () => busy($('alerts-refresh'), loadAlerts));
  $('webhook-form').addEventListener('submit', save);
  $('webhook-remove').addEventListener('click', remove);
  $('webhook-test').addEventListener('click', test);
  loadAlerts();
  loadWebhook();
}

async function loadAlerts() {
  messages.info('Loading alerts…');
  if (await list.reset()) messages.info('');
}

function render(rows, { append, failed = false }) {
  const made = rows.map((alert) =>
    el('tr', {
      children: [
        cell(timeElement(alert.at, formatDateTime(alert.at, context.zone, context.locale)), 'when'),
        cell(alertKindWords(alert.kind)),
        cell(String(alert.subject ?? ''), 'name'),
        cell(String(alert.detail ?? ''), 'detail'),
      ],
    }),
  );
  if (append) $('alerts-body').append(...made);
  else $('alerts-body').replaceChildren(...made);
  const shown = list.rows.length;
  $('alerts-empty').hidden = shown > 0 || failed;
  $('alerts-table').hidden = shown === 0;
  $('alerts-count').textContent = shown === 0 ? '' : `${shown} shown${list.next === null ? '' : ', more to load'}`;
}

async function loadWebhook() {
  try {
    const answer = await getJSON('/api/admin/webhook', { signedIn: true });
    webhook = { url: answer?.url ?? null, lastDelivery: answer?.lastDelivery ?? null };
    renderWebhook();
  } catch (error) {
    webhookMessages.error('The webhook could not be read', error);
  }
}

function renderWebhook() {
  const state = $('webhook-state');
  state.replaceChildren();
  if (webhook.url) {
    state.append('Alerts go to ', el('code', { className: 'break', text: webhook.url }), '.');
    $('webhook-url').value = webhook.url;
  } else {
    state.textContent = 'No webhook is set: alerts are shown here only.';
  }
  $('webhook-delivery').textContent = webhook.url
    ? deliveryWords(webhook.lastDelivery, formatDateTime(webhook.lastDelivery?.at, context.zone, context.locale))
    : '';
  $('webhook-remove').hidden = !webhook.url;
  $('webhook-test').hidden = !webhook.url;
}

async function save(event) {
  event.preventDefault();
  webhookMessages.clear();
  const url = $('webhook-url').value.trim();
  const problem = url === '' ? 'Type the address the alerts go to, starting with https://.' : webhookURLProblem(url);
  if (problem) {
    webhookMessages.alert.textContent = problem;
    $('webhook-url').focus();
    return;
  }
  try {
    const answer = await busy($('webhook-save'), () => postJSON('/api/admin/webhook', { url }, { signedIn: true }));
    if (answer === undefined) return;
    webhook = { url: answer?.url ?? url, lastDelivery: null };
    renderWebhook();
    showOnce($('webhook-once'), {
      heading: 'Webhook saved',
      intro: 'Check each delivery with this secret: X-SupportRelay-Signature is sha256= and the HMAC-SHA256 of the body with it, in hex.',
      items: [{ label: 'Signing secret', value: String(answer?.secret ?? ''), copyWhat: 'Signing secret' }],
      note: 'It is shown only now. Saving the webhook again makes a new one.',
    });
  } catch (error) {
    webhookMessages.error('The webhook was not saved', error);
  }
}

async function remove() {
  const removed = await confirmAction({
    title: 'Remove the webhook?',
    text: 'Alerts are then only shown here. Its signing secret stops being used.',
    confirmLabel: 'Remove webhook',
    returnFocus: $('webhook-url'),
    action: () => postJSON('/api/admin/webhook', { url: '' }, { signedIn: true }),
  });
  if (removed) {
    webhook = { url: null, lastDelivery: null };
    $('webhook-url').value = '';
    $('webhook-once').replaceChildren();
    $('webhook-once').hidden = true;
    renderWebhook();
    webhookMessages.info('The webhook was removed.');
  }
}

async function test() {
  webhookMessages.clear();
  webhookMessages.info('Sending a test alert…');
  try {
    const answer = await busy($('webhook-test'), () => postJSON('/api/admin/webhook/test', {}, { signedIn: true }));
    if (answer === undefined) return;
    webhookMessages.info(`The webhook answered HTTP ${answer?.status ?? '?'}: the test alert was delivered.`);
  } catch (error) {
    if (!redirected(error)) webhookMessages.error('The test alert was not delivered', error);
  }
  loadWebhook();
}
