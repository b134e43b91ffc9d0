// The admin console's building blocks: elements made with text only (never HTML), a
// section's messages, busy buttons, the one <dialog> every confirmation and small form
// uses, row menus, copy buttons, panels that show a secret once, and "Load more" lists.

import { ApiError } from './api.js';

export const SVG_NS = 'http://www.w3.org/2000/svg';

/** An element with a class, text and attributes; children may be nodes or strings. */
export function el(tag, { className, text, attrs, children } = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === false || value === null || value === undefined) continue;
    node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children ?? []) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An SVG element with attributes. */
export function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

/**
 * Replaces `container`'s children; when the focus was on an element of it with a
 * `data-focus-key`, the new element with the same key gets the focus back (a list that
 * is drawn again after a change must not drop the keyboard user at the page's top).
 */
export function replaceKeepingFocus(container, nodes) {
  const active = document.activeElement;
  const key = active instanceof HTMLElement && container.contains(active) ? (active.dataset.focusKey ?? null) : null;
  container.replaceChildren(...nodes);
  if (key === null) return;
  for (const candidate of container.querySelectorAll('[data-focus-key]')) {
    if (candidate.dataset.focusKey === key) {
      candidate.focus();
      break;
    }
  }
}

/** A table cell with text or a node. */
export function cell(content, className, attrs) {
  const td = el('td', { className, attrs });
  if (content instanceof Node) td.append(content);
  else if (content !== null && content !== undefined) td.textContent = String(content);
  return td;
}

/** A <time> with its machine-readable value, shown as `words`. */
export function timeElement(iso, words, fallback = '') {
  if (!words) return document.createTextNode(fallback);
  return el('time', { text: words, attrs: { datetime: iso } });
}

/** A small coloured label: `kind` is one of online, offline, busy, ok, warn, danger, idle. */
export function badge(text, kind) {
  return el('span', { className: `badge ${kind}`, text });
}

/** Whether an error already took the page elsewhere (401: the sign-in page). */
export function redirected(error) {
  return error instanceof ApiError && error.redirected;
}

/** The sentence of an error: the relay's own words for an ApiError. */
export function messageOf(error) {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A section's messages: `alert` (role=alert) for what went wrong, `status` (role=status)
 * for loading and done.
 */
export class Messages {
  constructor(alert, status) {
    this.alert = alert;
    this.status = status;
  }

  /** Shows "what: the relay's sentence"; nothing when the page is leaving for sign-in. */
  error(what, error) {
    if (redirected(error)) return;
    if (this.status) this.status.textContent = '';
    this.alert.textContent = what ? `${what}: ${messageOf(error)}` : messageOf(error);
  }

  info(text) {
    if (this.status) this.status.textContent = text;
  }

  clear() {
    this.alert.textContent = '';
    if (this.status) this.status.textContent = '';
  }
}

/** Runs `action` with `button` disabled and marked busy. */
export async function busy(button, action) {
  if (button) {
    if (button.disabled) return undefined;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
  }
  try {
    return await action();
  } finally {
    if (button) {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  }
}

// ---- Copy ----

const $ = (id) => document.getElementById(id);

/** Puts `text` on the clipboard; says so in the page's live region. */
export async function copyText(text, what = 'Text') {
  const live = $('copy-status');
  try {
    await navigator.clipboard.writeText(text);
    if (live) live.textContent = `${what} copied to the clipboard.`;
    return true;
  } catch {
    if (live) live.textContent = `${what} could not be copied: select it and copy it by hand (Ctrl+C).`;
    return false;
  }
}

/** A "Copy" button for `text` whose label names `what`. */
export function copyButton(text, what, label = 'Copy') {
  const button = el('button', { className: 'small', text: label, attrs: { type: 'button', 'aria-label': `${label} ${what.toLowerCase()}` } });
  button.addEventListener('click', async () => {
    const done = await copyText(text, what);
    if (done) {
      button.textContent = 'Copied';
      setTimeout(() => {
        button.textContent = label;
      }, 2000);
    }
  });
  return button;
}

/**
 * A panel that shows what the relay gives out only once (a sign-in link, a token, a
 * webhook secret, an enrolment's commands), with copy buttons, until dismissed.
 * `items`: [{label, value, multiline}]. Replaces what `container` held; focuses the panel.
 */
export function showOnce(container, { heading, intro, items, note }) {
  const panel = el('section', { className: 'once', attrs: { 'aria-label': heading, tabindex: '-1' } });
  panel.append(el('h3', { text: heading }));
  if (intro) panel.append(el('p', { text: intro }));
  for (const item of items) {
    const row = el('div', { className: 'once-item' });
    if (item.label) row.append(el('p', { className: 'once-label', text: item.label }));
    const value = el(item.multiline ? 'pre' : 'code', { className: item.multiline ? 'once-value' : 'once-value secret', text: item.value });
    row.append(value, copyButton(item.value, item.copyWhat ?? item.label ?? 'Text'));
    panel.append(row);
  }
  if (note) panel.append(el('p', { className: 'small muted', text: note }));
  const dismiss = el('button', { className: 'small', text: 'Done, hide this', attrs: { type: 'button' } });
  dismiss.addEventListener('click', () => {
    container.replaceChildren();
    container.hidden = true;
  });
  panel.append(el('div', { className: 'actions', children: [dismiss] }));
  container.replaceChildren(panel);
  container.hidden = false;
  panel.focus();
  return panel;
}

// ---- The dialog ----

let dialogOpen = false;

/**
 * Opens the page's <dialog> (#dialog) with a title, a text, fields and a submit button.
 * `fields`: [{name, label, type: 'text'|'textarea'|'select'|'checkboxes'|'url', value,
 * options: [[value, words]], hint, required, list (a datalist id), placeholder}].
 * `onSubmit(values)` runs while the dialog stays open; its error is shown in the dialog
 * and the person can correct and retry. Resolves with what onSubmit returned, or null
 * when cancelled. `danger` makes the submit button red; `returnFocus` gets the focus back.
 */
export function openDialog({ title, text, fields = [], submitLabel = 'Save', danger = false, onSubmit, returnFocus = null }) {
  const dialog = $('dialog');
  if (dialogOpen) return Promise.resolve(null);
  dialogOpen = true;
  const opener = returnFocus ?? document.activeElement;
  $('dialog-title').textContent = title;
  const description = $('dialog-text');
  description.textContent = text ?? '';
  description.hidden = !text;
  const alert = $('dialog-alert');
  alert.textContent = '';
  const body = $('dialog-fields');
  body.replaceChildren(...fields.map(fieldElement));
  const submit = $('dialog-submit');
  submit.textContent = submitLabel;
  submit.classList.toggle('danger', danger);
  submit.classList.toggle('primary', !danger);
  const form = $('dialog-form');

  return new Promise((resolve) => {
    let result = null;
    const onFormSubmit = async (event) => {
      event.preventDefault();
      if (submit.disabled) return;
      alert.textContent = '';
      const values = readFields(body, fields);
      const missing = fields.find((field) => field.required && String(values[field.name] ?? '').trim() === '');
      if (missing) {
        alert.textContent = `Fill in “${missing.label}”.`;
        body.querySelector(`[name="${missing.name}"]`)?.focus();
        return;
      }
      const cancel = $('dialog-cancel');
      cancel.disabled = true;
      try {
        result = await busy(submit, () => (onSubmit ? onSubmit(values) : values));
        if (result === undefined || result === null) result = true;
        dialog.close('done');
      } catch (error) {
        if (redirected(error)) {
          dialog.close('cancel');
          return;
        }
        alert.textContent = messageOf(error);
      } finally {
        cancel.disabled = false;
      }
    };
    const onCancelClick = () => dialog.close('cancel');
    // While the relay works on the change, Escape does not hide it: its answer must be shown.
    const onCancelEvent = (event) => {
      if (submit.disabled) event.preventDefault();
    };
    const onClose = () => {
      form.removeEventListener('submit', onFormSubmit);
      $('dialog-cancel').removeEventListener('click', onCancelClick);
      dialog.removeEventListener('cancel', onCancelEvent);
      dialog.removeEventListener('close', onClose);
      dialogOpen = false;
      if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
      resolve(dialog.returnValue === 'done' ? result : null);
    };
    form.addEventListener('submit', onFormSubmit);
    $('dialog-cancel').addEventListener('click', onCancelClick);
    dialog.addEventListener('cancel', onCancelEvent);
    dialog.addEventListener('close', onClose);
    dialog.returnValue = '';
    dialog.showModal();
    const first = body.querySelector('input, textarea, select');
    (first ?? $('dialog-cancel')).focus();
  });
}

/** Asks before something that cannot be undone; resolves true once `action` succeeded. */
export async function confirmAction({ title, text, confirmLabel, action, returnFocus }) {
  const result = await openDialog({ title, text, submitLabel: confirmLabel, danger: true, onSubmit: async () => (await action()) ?? true, returnFocus });
  return result !== null;
}

let fieldCounter = 0;

function fieldElement(field) {
  fieldCounter += 1;
  const id = `dialog-field-${fieldCounter}`;
  const wrap = el('div', { className: 'field' });
  const hintId = field.hint ? `${id}-hint` : null;
  if (field.type === 'checkboxes') {
    const set = el('fieldset', { className: 'checkboxes', attrs: { 'aria-describedby': hintId } });
    set.append(el('legend', { text: field.label }));
    const chosen = new Set(field.value ?? []);
    if ((field.options ?? []).length === 0) set.append(el('p', { className: 'small muted', text: field.emptyText ?? 'Nothing to choose yet.' }));
    for (const [value, words] of field.options ?? []) {
      const box = el('input', { attrs: { type: 'checkbox', name: field.name, value } });
      box.checked = chosen.has(value);
      set.append(el('label', { className: 'check', children: [box, ` ${words}`] }));
    }
    wrap.append(set);
  } else {
    wrap.append(el('label', { text: field.label, attrs: { for: id } }));
    let input;
    if (field.type === 'textarea') {
      input = el('textarea', { attrs: { id, name: field.name, rows: field.rows ?? 4, spellcheck: 'false', 'aria-describedby': hintId } });
      input.value = field.value ?? '';
    } else if (field.type === 'select') {
      input = el('select', { attrs: { id, name: field.name, 'aria-describedby': hintId } });
      for (const [value, words] of field.options ?? []) input.append(el('option', { text: words, attrs: { value } }));
      input.value = field.value ?? '';
    } else {
      input = el('input', {
        attrs: {
          id,
          name: field.name,
          type: field.type === 'url' ? 'url' : 'text',
          autocomplete: 'off',
          spellcheck: 'false',
          list: field.list,
          placeholder: field.placeholder,
          'aria-describedby': hintId,
        },
      });
      input.value = field.value ?? '';
    }
    if (field.required) input.setAttribute('aria-required', 'true');
    if (field.className) input.classList.add(field.className);
    wrap.append(input);
  }
  if (field.hint) wrap.append(el('p', { className: 'hint', text: field.hint, attrs: { id: hintId } }));
  return wrap;
}

function readFields(body, fields) {
  const values = {};
  for (const field of fields) {
    if (field.type === 'checkboxes') {
      values[field.name] = [...body.querySelectorAll(`input[type="checkbox"][name="${field.name}"]`)].filter((box) => box.checked).map((box) => box.value);
    } else {
      const input = body.querySelector(`[name="${field.name}"]`);
      values[field.name] = input ? input.value : '';
    }
  }
  return values;
}

// ---- Row menus ----

/**
 * An "Actions" menu button for a table row: a disclosure whose list is placed next to
 * the button on screen (fixed, so a scrolling table does not clip it). `items`:
 * [{label, run(summary), danger}] — run gets the button back to return the focus to.
 * `focusKey` lets replaceKeepingFocus find the button again in a redrawn table.
 */
export function rowMenu(label, items, focusKey = null) {
  const details = el('details', { className: 'menu row-menu' });
  const summary = el('summary', { className: 'button small', text: 'Actions', attrs: { 'aria-label': label, 'data-focus-key': focusKey } });
  const list = el('div', { className: 'menu-items', attrs: { role: 'group', 'aria-label': label } });
  for (const item of items) {
    const button = el('button', { className: item.danger ? 'danger-text' : '', text: item.label, attrs: { type: 'button' } });
    button.addEventListener('click', () => {
      details.open = false;
      item.run(summary);
    });
    list.append(button);
  }
  details.append(summary, list);
  details.addEventListener('toggle', () => {
    if (!details.open) return;
    for (const other of document.querySelectorAll('details.row-menu[open]')) if (other !== details) other.open = false;
    placeMenu(summary, list);
    list.querySelector('button')?.focus();
  });
  details.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && details.open) {
      event.preventDefault();
      details.open = false;
      summary.focus();
      return;
    }
    if (!details.open || (event.key !== 'ArrowDown' && event.key !== 'ArrowUp')) return;
    const buttons = [...list.querySelectorAll('button')];
    const index = buttons.indexOf(document.activeElement);
    const next = event.key === 'ArrowDown' ? (index + 1) % buttons.length : (index - 1 + buttons.length) % buttons.length;
    buttons[next]?.focus();
    event.preventDefault();
  });
  return details;
}

function placeMenu(summary, list) {
  // CSSOM (element.style), which the page's style-src 'self' allows; no style attribute.
  const box = summary.getBoundingClientRect();
  list.style.visibility = 'hidden';
  const height = list.offsetHeight;
  const width = list.offsetWidth;
  const below = window.innerHeight - box.bottom;
  const top = below >= height + 8 || box.top < height + 8 ? box.bottom + 4 : box.top - height - 4;
  const left = Math.max(8, Math.min(box.right - width, window.innerWidth - width - 8));
  list.style.top = `${Math.max(8, top)}px`;
  list.style.left = `${left}px`;
  list.style.visibility = '';
}

function closeMenus(except = null) {
  for (const menu of document.querySelectorAll('details.row-menu[open]')) if (!menu.contains(except)) menu.open = false;
}

/** Closes row menus on a click elsewhere, on scroll and on resize (their place is fixed). */
export function installMenuClosers() {
  document.addEventListener('click', (event) => closeMenus(event.target));
  window.addEventListener('scroll', () => closeMenus(), { capture: true, passive: true });
  window.addEventListener('resize', () => closeMenus());
}

// ---- Paged lists ----

/**
 * A list read page by page with the API's `next` cursor (keyset: earlier pages are never
 * read again). `load(after)` returns {rows, next}; `render(rows, {append, failed})` shows
 * them (failed: the first page could not be read, so say nothing about emptiness).
 * `reset()` starts over (new filters); an answer to an older reset is dropped.
 */
export class PagedList {
  constructor({ load, render, button, messages, what }) {
    this.load = load;
    this.render = render;
    this.button = button;
    this.messages = messages;
    this.what = what;
    this.next = null;
    this.rows = [];
    this.generation = 0;
    this.loading = false;
    button.addEventListener('click', () => this.more());
  }

  async reset() {
    this.generation += 1;
    const generation = this.generation;
    this.next = null;
    this.rows = [];
    this.button.hidden = true;
    this.loading = true;
    try {
      const page = await this.load(null);
      if (generation !== this.generation) return false;
      this.accept(page, false);
      return true;
    } catch (error) {
      if (generation === this.generation) {
        this.render([], { append: false, failed: true });
        this.messages.error(`The ${this.what} could not be loaded`, error);
      }
      return false;
    } finally {
      if (generation === this.generation) this.loading = false;
    }
  }

  async more() {
    if (this.next === null || this.loading) return;
    const generation = this.generation;
    this.loading = true;
    try {
      await busy(this.button, async () => {
        const page = await this.load(this.next);
        if (generation === this.generation) this.accept(page, true);
      });
    } catch (error) {
      if (generation === this.generation) this.messages.error(`More ${this.what} could not be loaded`, error);
    } finally {
      if (generation === this.generation) this.loading = false;
    }
  }

  accept(page, append) {
    const rows = Array.isArray(page?.rows) ? page.rows : [];
    this.next = typeof page?.next === 'string' && page.next !== '' ? page.next : null;
    this.rows = append ? this.rows.concat(rows) : rows;
    this.render(rows, { append });
    this.button.hidden = this.next === null;
  }
}

/** Fills a container with export links: `/PATH?QUERY&format=…` for each format. */
export function exportLinks(container, path, query, formats, what) {
  container.replaceChildren(
    ...formats.map(({ format, label }) =>
      el('a', {
        className: 'button small',
        text: label,
        attrs: {
          href: `${path}?${query}${query ? '&' : ''}format=${format}`,
          download: '',
          'data-format': format,
          'aria-label': `Download ${what} as ${label}`,
        },
      }),
    ),
  );
}
