// The Audit tab: the audit log (who changed what) and the access log (every sign-in and
// connection attempt), each filtered, newest first, page by page, with export links.
// Read only: nothing here changes either log.
//
// GET /api/admin/audit?from&to&tz&actor&action&after&limit (and …/export?…&format=),
// GET /api/admin/access?from&to&tz&event&outcome&after&limit (and …/export).

import { getJSON } from './api.js';
import { LOG_EXPORT_FORMATS, accessQuery, auditQuery, formatDateTime, lastDays, validDay, validTimeZone } from './admin-format.js';
import { Messages, PagedList, badge, cell, el, exportLinks, timeElement } from './admin-ui.js';

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 100;
const DEFAULT_DAYS = 30;

/** The audit log's actions (OPERATIONS.md "Audit log"), for the filter's suggestions. */
export const AUDIT_ACTIONS = [
  'engineer_add', 'engineer_remove', 'engineer_rotate', 'engineer_set_key', 'engineer_set_password', 'engineer_enrol_totp',
  'engineer_reset_totp', 'engineer_signin_link', 'engineer_recovery_code', 'host_enroll', 'host_remove', 'host_rotate',
  'host_set_key', 'company_add', 'company_remove', 'company_rotate', 'company_policy', 'export', 'hold', 'release', 'purge',
  'purge_dry_run', 'restart_recovery',
];

const OUTCOME_KINDS = { accepted: 'online', rejected: 'danger', throttled: 'busy' };

let context = null;

export const auditSection = { init };

/** A log's filter form, list and export links. */
class LogView {
  constructor({ prefix, keys, query, path, what, row }) {
    this.prefix = prefix;
    this.keys = keys;
    this.query = query;
    this.path = path;
    this.what = what;
    this.row = row;
    this.applied = null;
    this.messages = new Messages($(`${prefix}-alert`), $(`${prefix}-status`));
    this.list = new PagedList({
      load: (after) => getJSON(`${path}?${query(this.applied, { after, limit: PAGE_SIZE })}`, { signedIn: true }),
      render: (rows, options) => this.render(rows, options),
      button: $(`${prefix}-more`),
      messages: this.messages,
      what,
    });
    const range = lastDays(Date.now(), context.zone, DEFAULT_DAYS);
    $(`${prefix}-from`).value = range.from;
    $(`${prefix}-to`).value = range.to;
    $(`${prefix}-tz`).value = context.zone;
    $(`${prefix}-form`).addEventListener('submit', (event) => {
      event.preventDefault();
      this.apply();
    });
  }

  read() {
    const filters = {};
    for (const key of this.keys) filters[key] = $(`${this.prefix}-${key}`).value.trim();
    return filters;
  }

  problem(filters) {
    if (!validDay(filters.from)) return [`${this.prefix}-from`, 'Choose the first day (From), then Apply.'];
    if (!validDay(filters.to)) return [`${this.prefix}-to`, 'Choose the last day (To), then Apply.'];
    if (filters.from > filters.to) return [`${this.prefix}-from`, 'The first day is after the last day. Swap them, then Apply.'];
    if (!validTimeZone(filters.tz)) return [`${this.prefix}-tz`, `“${filters.tz}” is not a time zone this browser knows. Type a name such as Europe/Berlin or Asia/Seoul, or UTC.`];
    return null;
  }

  async apply() {
    const filters = this.read();
    const problem = this.problem(filters);
    this.messages.clear();
    if (problem !== null) {
      this.messages.alert.textContent = problem[1];
      $(problem[0]).focus();
      return;
    }
    this.applied = filters;
    for (const span of document.querySelectorAll(`.zone[data-zone="${this.prefix}"]`)) span.textContent = `(${filters.tz})`;
    exportLinks($(`${this.prefix}-exports`), `${this.path}/export`, this.query(filters), LOG_EXPORT_FORMATS, `the ${this.what}`);
    this.messages.info(`Loading the ${this.what}…`);
    $(`${this.prefix}-apply`).setAttribute('aria-busy', 'true');
    const done = await this.list.reset();
    $(`${this.prefix}-apply`).removeAttribute('aria-busy');
    if (done) this.messages.info('');
  }

  render(rows, { append, failed = false }) {
    const body = $(`${this.prefix}-body`);
    const made = rows.map((row) => this.row(row, this.applied.tz));
    if (append) body.append(...made);
    else body.replaceChildren(...made);
    const shown = this.list.rows.length;
    $(`${this.prefix}-empty`).hidden = shown > 0 || failed || this.applied === null;
    $(`${this.prefix}-table`).hidden = shown === 0;
    $(`${this.prefix}-count`).textContent = shown === 0 ? '' : `${shown} shown${this.list.next === null ? '' : ', more to load'}`;
  }
}

function whenCell(iso, zone) {
  return cell(timeElement(iso, formatDateTime(iso, zone, context.locale)), 'when');
}

function optional(text) {
  return text === null || text === undefined || text === '' ? el('span', { className: 'muted', text: '—' }) : String(text);
}

function auditRow(entry, zone) {
  return el('tr', {
    children: [
      whenCell(entry.at, zone),
      cell(String(entry.actor ?? ''), 'mono small'),
      cell(String(entry.action ?? ''), 'mono small'),
      cell(optional(entry.subject), 'mono small'),
      cell(optional(entry.detail), 'detail'),
    ],
  });
}

function accessRow(entry, zone) {
  const outcome = String(entry.outcome ?? '');
  return el('tr', {
    children: [
      whenCell(entry.at, zone),
      cell(String(entry.event ?? ''), 'mono small'),
      cell(badge(outcome, OUTCOME_KINDS[outcome] ?? 'offline')),
      cell(String(entry.sourceAddress ?? ''), 'mono small'),
      cell(optional(entry.subject), 'mono small'),
      cell(optional(entry.detail), 'detail'),
    ],
  });
}

function init(ctx) {
  context = ctx;
  $('audit-actions').replaceChildren(...AUDIT_ACTIONS.map((action) => el('option', { attrs: { value: action } })));
  const audit = new LogView({
    prefix: 'audit',
    keys: ['from', 'to', 'tz', 'actor', 'action'],
    query: auditQuery,
    path: '/api/admin/audit',
    what: 'audit entries',
    row: auditRow,
  });
  const access = new LogView({
    prefix: 'access',
    keys: ['from', 'to', 'tz', 'event', 'outcome'],
    query: accessQuery,
    path: '/api/admin/access',
    what: 'access events',
    row: accessRow,
  });
  audit.apply();
  access.apply();
}
