// Pure helpers of the admin console (/admin): query strings of the admin API, numbers,
// sizes, durations, dates in a chosen time zone, and the chart's scales and day labels.
// No DOM, no fetch: tests import this module on a blank page (Tests/browser/test_admin_units.py).
//
// `locale` is undefined on the page (the browser's own) and fixed in tests.

// ---- Query strings (docs: notes/admin-api.md, "Usage filters") ----

/** The usage filters in the order the API lists them (export links stay readable). */
export const USAGE_FILTER_KEYS = ['from', 'to', 'tz', 'engineer', 'host', 'mode', 'reason'];
export const AUDIT_FILTER_KEYS = ['from', 'to', 'tz', 'actor', 'action'];
export const ACCESS_FILTER_KEYS = ['from', 'to', 'tz', 'event', 'outcome'];

/**
 * `key=value&…` of the pairs whose value is not empty, trimmed, percent-encoded with
 * encodeURIComponent (a space is %20 and a `+` of an offset is %2B: every server decodes
 * those alike).
 */
export function queryString(pairs) {
  const parts = [];
  for (const [key, raw] of pairs) {
    if (raw === null || raw === undefined) continue;
    const value = String(raw).trim();
    if (value === '') continue;
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
  }
  return parts.join('&');
}

function filterQuery(keys, filters, extra) {
  const pairs = keys.map((key) => [key, filters?.[key]]);
  for (const [key, value] of Object.entries(extra ?? {})) pairs.push([key, value]);
  return queryString(pairs);
}

/**
 * The query of the usage routes for `filters` ({from, to, tz, engineer, host, mode,
 * reason}); `extra` ({after, limit, format}) follows them. Empty filters are left out.
 */
export function usageQuery(filters, extra = {}) {
  return filterQuery(USAGE_FILTER_KEYS, filters, extra);
}

/** The query of /api/admin/audit and its export ({from, to, tz, actor, action}). */
export function auditQuery(filters, extra = {}) {
  return filterQuery(AUDIT_FILTER_KEYS, filters, extra);
}

/** The query of /api/admin/access and its export ({from, to, tz, event, outcome}). */
export function accessQuery(filters, extra = {}) {
  return filterQuery(ACCESS_FILTER_KEYS, filters, extra);
}

/** The export formats the console links to, with their button words. */
export const USAGE_EXPORT_FORMATS = [
  { format: 'csv', label: 'CSV' },
  { format: 'jsonl', label: 'JSON Lines' },
  { format: 'xlsx', label: 'Excel (XLSX)' },
];
export const LOG_EXPORT_FORMATS = USAGE_EXPORT_FORMATS.slice(0, 2);

// ---- Numbers, sizes, durations ----

const numberFormats = new Map();

function numberFormat(locale, options) {
  const key = `${locale ?? ''}|${JSON.stringify(options)}`;
  let format = numberFormats.get(key);
  if (format === undefined) {
    format = new Intl.NumberFormat(locale, options);
    numberFormats.set(key, format);
  }
  return format;
}

/** A count with the locale's grouping ("1,234"); a missing number is 0. */
export function formatNumber(value, locale = undefined) {
  const number = Number(value);
  return numberFormat(locale, { maximumFractionDigits: 0 }).format(Number.isFinite(number) ? number : 0);
}

const BYTE_UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];

/**
 * "0 B", "512 B", "1.5 KB", "12 KB", "3.4 GB": binary multiples (1 KB = 1,024 bytes, as
 * the file managers people know count), one decimal below 10, none above.
 */
export function formatBytes(bytes, locale = undefined) {
  let value = Number(bytes);
  if (!Number.isFinite(value) || value <= 0) return '0 B';
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${formatNumber(value, locale)} B`;
  // 1023.96 KB would round to "1,024 KB": show the next unit instead.
  if (Number(value.toFixed(value < 10 ? 1 : 0)) >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = value < 10 ? 1 : 0;
  return `${numberFormat(locale, { minimumFractionDigits: 0, maximumFractionDigits: digits }).format(value)} ${BYTE_UNITS[unit]}`;
}

/** Seconds as hours with at most one decimal: "0 h", "0.5 h", "126.9 h", "1,234 h". */
export function hoursLabel(seconds, locale = undefined) {
  const hours = Math.max(0, Number(seconds) || 0) / 3600;
  const digits = hours >= 1000 ? 0 : 1;
  return `${numberFormat(locale, { maximumFractionDigits: digits }).format(hours)} h`;
}

/** "0 s", "42 s", "5 min", "5 min 3 s", "2 h", "2 h 10 min", "3 d 4 h" (rounded down). */
export function durationLabel(seconds) {
  const total = Math.max(0, Math.round(Number(seconds) || 0));
  if (total < 60) return `${total} s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return total % 60 === 0 ? `${minutes} min` : `${minutes} min ${total % 60} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return minutes % 60 === 0 ? `${hours} h` : `${hours} h ${minutes % 60} min`;
  const days = Math.floor(hours / 24);
  return hours % 24 === 0 ? `${days} d` : `${days} d ${hours % 24} h`;
}

/** "1 session", "3 sessions" (the count with the locale's grouping). */
export function plural(count, one, many, locale = undefined) {
  return `${formatNumber(count, locale)} ${Number(count) === 1 ? one : many}`;
}

// ---- Time zones and dates ----

/** Whether Intl knows `zone` (an IANA name such as "Asia/Seoul", or "UTC"). */
export function validTimeZone(zone) {
  if (typeof zone !== 'string' || zone.trim() === '') return false;
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone.trim() });
    return true;
  } catch {
    return false;
  }
}

/** The zone the console starts with: the company's (`me.timeZone`), else the browser's, else UTC. */
export function defaultTimeZone(companyZone, browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone) {
  if (validTimeZone(companyZone)) return companyZone.trim();
  if (validTimeZone(browserZone)) return browserZone;
  return 'UTC';
}

/** The IANA zones this browser knows (for a datalist), UTC first. */
export function knownTimeZones() {
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  return ['UTC', ...zones.filter((zone) => zone !== 'UTC')];
}

const dateFormats = new Map();

function dateFormat(locale, options) {
  const key = `${locale ?? ''}|${JSON.stringify(options)}`;
  let format = dateFormats.get(key);
  if (format === undefined) {
    format = new Intl.DateTimeFormat(locale, options);
    dateFormats.set(key, format);
  }
  return format;
}

/** The calendar day (`YYYY-MM-DD`) of the instant `now` (ms) in `zone`. */
export function dayIn(now, zone) {
  const parts = dateFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts(new Date(now));
  const part = (type) => parts.find((item) => item.type === type)?.value ?? '';
  return `${part('year')}-${part('month')}-${part('day')}`;
}

function parseDay(day) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(day ?? ''));
  if (match === null) return null;
  const [year, month, date] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const utc = Date.UTC(year, month - 1, date);
  const check = new Date(utc);
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== date) return null;
  return utc;
}

function dayOfUTC(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Whether `day` is a real `YYYY-MM-DD` date. */
export function validDay(day) {
  return parseDay(day) !== null;
}

/** `day` plus `count` days (negative: earlier). */
export function addDays(day, count) {
  const utc = parseDay(day);
  if (utc === null) return '';
  return dayOfUTC(utc + count * 86_400_000);
}

/** The whole previous calendar month, as of `now` in `zone`: {from, to} (to inclusive). */
export function previousMonth(now, zone) {
  const [year, month] = dayIn(now, zone).split('-').map(Number);
  const first = Date.UTC(year, month - 2, 1);
  const last = Date.UTC(year, month - 1, 0);
  return { from: dayOfUTC(first), to: dayOfUTC(last) };
}

/** The `days` days up to and including today in `zone`: {from, to}. */
export function lastDays(now, zone, days) {
  const to = dayIn(now, zone);
  return { from: addDays(to, -(days - 1)), to };
}

/** The number of days from `from` to `to`, both included (0 when to is before from). */
export function daysBetween(from, to) {
  const start = parseDay(from);
  const end = parseDay(to);
  if (start === null || end === null || end < start) return 0;
  return Math.round((end - start) / 86_400_000) + 1;
}

/** An API time in `zone`: "3 Nov 2026, 09:12"; '' for a missing or unreadable one. */
export function formatDateTime(iso, zone, locale = undefined) {
  if (iso === null || iso === undefined || iso === '') return '';
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return '';
  return dateFormat(locale, { timeZone: zone, dateStyle: 'medium', timeStyle: 'short' }).format(new Date(at));
}

/** A `YYYY-MM-DD` day, long: "Tue, 3 Nov 2026" (the day as it is, whatever the zone). */
export function dayWords(day, locale = undefined) {
  const utc = parseDay(day);
  if (utc === null) return String(day ?? '');
  return dateFormat(locale, { timeZone: 'UTC', weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' }).format(new Date(utc));
}

/** A `YYYY-MM-DD` day, short for an axis: "3 Nov". */
export function dayShort(day, locale = undefined) {
  const utc = parseDay(day);
  if (utc === null) return String(day ?? '');
  return dateFormat(locale, { timeZone: 'UTC', day: 'numeric', month: 'short' }).format(new Date(utc));
}

/** A range of days for a sentence: "1 Oct 2026 – 31 Oct 2026", or one day. */
export function rangeWords(from, to, locale = undefined) {
  const format = (day) => {
    const utc = parseDay(day);
    if (utc === null) return String(day ?? '');
    return dateFormat(locale, { timeZone: 'UTC', day: 'numeric', month: 'short', year: 'numeric' }).format(new Date(utc));
  };
  return from === to ? format(from) : `${format(from)} – ${format(to)}`;
}

// ---- Chart scales ----

/** The smallest of 1, 2, 2.5, 5 × 10ⁿ at least `raw`; with `integer`, a whole number ≥ 1. */
export function niceStep(raw, integer = false) {
  if (!(raw > 0) || !Number.isFinite(raw)) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const multiple of [1, 2, 2.5, 5, 10]) {
    const step = Number((multiple * power).toPrecision(12));
    if (integer && !Number.isInteger(step)) continue;
    if (step >= raw * (1 - 1e-9)) return integer ? Math.max(1, step) : step;
  }
  return integer ? Math.max(1, Math.ceil(10 * power)) : 10 * power;
}

/**
 * An axis from 0 to at least `max`: {max, step, ticks}. `intervals` is the number of
 * steps aimed at (4); `count` forces exactly that many (a second axis that shares the
 * first one's grid lines); `integer` keeps steps whole (counts). 0 or less gives the
 * axis of 1.
 */
export function niceScale(max, { intervals = 4, count = null, integer = false } = {}) {
  const value = Number(max) > 0 && Number.isFinite(Number(max)) ? Number(max) : 1;
  const steps = count !== null ? Math.max(1, count) : Math.max(1, intervals);
  const step = niceStep(value / steps, integer);
  const n = count !== null ? steps : Math.max(1, Math.ceil(value / step - 1e-9));
  const ticks = [];
  for (let index = 0; index <= n; index += 1) ticks.push(Number((index * step).toPrecision(12)));
  return { max: ticks[ticks.length - 1], step, ticks };
}

/**
 * Which days of a chart get a label under the axis: at most `maxLabels`, every
 * `step`-th day from the first. [{index, text}] with text as dayShort.
 */
export function dayLabels(days, maxLabels, locale = undefined) {
  const count = days.length;
  if (count === 0) return [];
  const room = Math.max(1, Math.floor(maxLabels));
  let step = Math.max(1, Math.ceil(count / room));
  // A week apart reads better than 5 or 6 days apart.
  if (step > 4 && step < 7) step = 7;
  const labels = [];
  for (let index = 0; index < count; index += step) labels.push({ index, text: dayShort(days[index], locale) });
  return labels;
}

// ---- Words for the API's names ----

export const END_REASONS = [
  ['normal', 'Ended normally'],
  ['peer_left', 'The other side left'],
  ['idle_timeout', 'Idle too long'],
  ['handshake_timeout', 'Did not start in time'],
  ['protocol_error', 'Protocol error'],
  ['revoked', 'Access revoked'],
  ['declined', 'Declined by the customer'],
  ['relay_shutdown', 'Relay shut down'],
  ['relay_restart', 'Closed after a relay restart'],
];

/** How a session ended, for a person; a name this version does not know stays as it is. */
export function endReasonWords(reason) {
  if (reason === null || reason === undefined || reason === '') return 'Still running';
  const known = END_REASONS.find(([name]) => name === reason);
  return known ? known[1] : String(reason);
}

export const ALERT_KINDS = {
  new_sign_in_network: 'Sign-in from a new network',
  unattended_session: 'Unattended session',
  host_removed: 'Host removed',
};

/** A security alert's kind, for a person; an unknown kind stays as it is. */
export function alertKindWords(kind) {
  return Object.hasOwn(ALERT_KINDS, kind) ? ALERT_KINDS[kind] : String(kind ?? '');
}

/** Host groups typed as "Sales, Support , sales": trimmed, without empties or repeats (any case). */
export function parseGroups(text) {
  const seen = new Set();
  const groups = [];
  for (const part of String(text ?? '').split(',')) {
    const group = part.trim();
    if (group === '' || seen.has(group.toLowerCase())) continue;
    seen.add(group.toLowerCase());
    groups.push(group);
  }
  return groups;
}

/** The items whose `fields` contain every word of `query` (any case). */
export function matchesQuery(item, query, fields) {
  const words = String(query ?? '').toLowerCase().split(/\s+/).filter((word) => word !== '');
  if (words.length === 0) return true;
  const text = fields.map((field) => String(item?.[field] ?? '')).join('\n').toLowerCase();
  return words.every((word) => text.includes(word));
}
