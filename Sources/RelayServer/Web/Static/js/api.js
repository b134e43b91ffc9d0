// The relay's JSON API (docs: the web API contract), as the pages call it.
//
// - Bodies are JSON; a POST carries `X-CSRF-Token` once the page knows the session's token
//   (from GET /api/me, see setCSRFToken).
// - A non-2xx answer becomes an ApiError whose message is the server's `error` sentence,
//   made ready to show (capital first letter, full stop).
// - With `{ signedIn: true }` (the console's calls), 401 means the session ended: the page
//   goes to /signin and the promise rejects with an ApiError whose `redirected` is true.

let csrfToken = null;

/** Sets the session's CSRF token, sent with every later POST. */
export function setCSRFToken(token) {
  csrfToken = typeof token === 'string' && token !== '' ? token : null;
}

/** An answer of the relay that is not a success, or no answer at all (status 0). */
export class ApiError extends Error {
  constructor(message, status, { retryAfter = null, redirected = false } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.retryAfter = retryAfter;
    this.redirected = redirected;
  }
}

/** A server sentence ("the code is wrong; type …") as the page shows it. */
export function sentence(text) {
  let s = String(text).trim();
  if (s === '') return s;
  s = s[0].toUpperCase() + s.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

export function getJSON(path, options = {}) {
  return request('GET', path, undefined, options);
}

export function postJSON(path, body = {}, options = {}) {
  return request('POST', path, body, options);
}

async function request(method, path, body, { signedIn = false } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    if (csrfToken !== null) headers['X-CSRF-Token'] = csrfToken;
    init.body = JSON.stringify(body ?? {});
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError('The relay did not answer. Check your network connection, then try again.', 0);
  }
  if (response.ok) {
    if (response.status === 204) return null;
    const text = await response.text();
    if (text === '') return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new ApiError(
        'The relay sent an answer this page cannot read. Reload the page; if it happens again, tell the relay\'s administrator.',
        response.status,
      );
    }
  }
  if (response.status === 401 && signedIn) {
    location.assign('/signin');
    throw new ApiError('You are not signed in. Opening the sign-in page…', 401, { redirected: true });
  }
  throw await errorOf(response);
}

async function errorOf(response) {
  const status = response.status;
  const retryHeader = response.headers.get('Retry-After');
  const retryAfter = retryHeader !== null && /^\d+$/.test(retryHeader.trim()) ? Number(retryHeader.trim()) : null;
  let message = null;
  try {
    const data = JSON.parse(await response.text());
    if (data && typeof data.error === 'string' && data.error.trim() !== '') message = sentence(data.error);
  } catch {
    // Not JSON (a proxy's page, an older relay): fall back to the status below.
  }
  if (message === null) message = fallbackMessage(status);
  if (status === 429 && retryAfter !== null && !/\bsecond|\bminute/i.test(message)) {
    message += ` Try again in ${waitWords(retryAfter)}.`;
  }
  return new ApiError(message, status, { retryAfter });
}

function fallbackMessage(status) {
  switch (status) {
    case 400:
      return 'The relay did not accept this request. Reload the page and try again.';
    case 401:
      return 'You are not signed in. Sign in again.';
    case 403:
      return 'The relay refused this request. Reload the page and try again.';
    case 404:
    case 405:
      return 'This relay does not offer this page\'s functions (it may be an older version). Ask the relay\'s administrator.';
    case 429:
      return 'Too many attempts. Wait a little, then try again.';
    default:
      return `The relay answered with an error (HTTP ${status}). Try again in a moment; if it persists, tell the relay's administrator.`;
  }
}

function waitWords(seconds) {
  if (seconds < 90) return seconds === 1 ? '1 second' : `${seconds} seconds`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minutes`;
}

/**
 * Ends the session and goes to /signin (the pages' "Sign out" button). If the relay
 * refuses, says so in `alert` and enables `button` again.
 */
export async function signOut(button, alert) {
  button.disabled = true;
  alert.textContent = '';
  try {
    await postJSON('/api/signout', {}, { signedIn: true });
    location.assign('/signin');
  } catch (error) {
    if (error instanceof ApiError && error.redirected) return;
    alert.textContent = `Signing out did not work: ${error.message}`;
    button.disabled = false;
  }
}
