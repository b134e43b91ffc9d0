// The Relay tab (operators): this relay node, its retention periods, the live sessions
// and every company's counts. No company's content is shown or asked for.
//
// GET /api/admin/relay.

import { getJSON } from './api.js';
import { formatNumber } from './admin-format.js';
import { keptFor } from './admin-retention.js';
import { Messages, badge, busy, cell, el } from './admin-ui.js';

const $ = (id) => document.getElementById(id);

let context = null;
let messages = null;
let loaded = false;
let loading = null;

export const relaySection = { init, show: () => load() };

function init(ctx) {
  context = ctx;
  messages = new Messages($('relay-alert'), $('relay-status'));
  $('relay-refresh').addEventListener('click', () => busy($('relay-refresh'), load));
  load();
}

function load() {
  if (loading !== null) return loading;
  if (!loaded) messages.info('Loading the relay\'s figures…');
  loading = (async () => {
    try {
      const answer = await getJSON('/api/admin/relay', { signedIn: true });
      loaded = true;
      messages.clear();
      render(answer);
    } catch (error) {
      messages.error('The relay\'s figures could not be loaded', error);
    } finally {
      loading = null;
    }
  })();
  return loading;
}

function render(answer) {
  const locale = context.locale;
  const node = [answer?.node, answer?.version ? `version ${answer.version}` : null].filter(Boolean).join(' · ');
  $('relay-node').textContent = node;
  const companies = Array.isArray(answer?.companies) ? answer.companies : [];
  $('relay-live').textContent = formatNumber(answer?.liveSessions, locale);
  $('relay-companies').textContent = formatNumber(companies.length, locale);
  $('relay-usage-days').textContent = keptFor(answer?.retention?.usageMonths, answer?.retention?.usageDays, locale);
  $('relay-access-days').textContent = keptFor(answer?.retention?.accessMonths, answer?.retention?.accessDays, locale);
  $('relay-stats').hidden = false;

  $('relay-body').replaceChildren(
    ...companies.map((company) =>
      el('tr', {
        attrs: { 'data-company-id': company.id },
        children: [
          cell(String(company.name ?? ''), 'name'),
          cell(String(company.id ?? ''), 'id mono'),
          cell(formatNumber(company.engineers, locale), 'number'),
          cell(`${formatNumber(company.hostsOnline, locale)} of ${formatNumber(company.hosts, locale)}`, 'number'),
          cell(formatNumber(company.sessionsLast30Days, locale), 'number'),
          cell(company.held === true ? badge('on hold', 'busy') : el('span', { className: 'muted', text: 'no' })),
        ],
      }),
    ),
  );
  $('relay-empty').hidden = companies.length > 0;
  $('relay-table').hidden = companies.length === 0;
}
